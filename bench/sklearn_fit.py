"""fastnn.sklearn.MLPClassifier.fit against scikit-learn's MLPClassifier.fit, at equal
settings, on Fashion-MNIST (the full set when fastnn finds it, else the shipped subset).

    python bench/sklearn_fit.py                       # 2 interleaved rounds, 10 epochs, adam
    python bench/sklearn_fit.py --rounds 3 --max-iter 5 --solver sgd --subset small
    python bench/sklearn_fit.py --threads 1               # BLAS on one thread for both

Each fit runs in a fresh process (one library per process: no shared BLAS pools or
caches); rounds alternate the order (fastnn, sklearn / sklearn, fastnn). Both get the same
float32 data (pixels / 255), the same parameters and random_state, so they compute the
same network (fastnn.sklearn follows scikit-learn's initialization, batches and update
rules); the test accuracy of each is printed to show it. The ratio is the median of the
per-round ratios of fit's wall time, with its min-max.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))


def load(subset):
    import numpy as np

    import fastnn as fn
    if subset == "auto":
        try:
            data = fn.datasets.load_fashion_mnist(download=False)
            subset = "full"
        except fn.datasets.DatasetNotFoundError:
            data = fn.datasets.load_fashion_mnist(subset="small")
            subset = "small"
    else:
        data = fn.datasets.load_fashion_mnist(subset=None if subset == "full" else subset,
                                              download=False)
    (xtr, ytr), (xte, yte) = data
    prep = lambda x: (x.reshape(len(x), -1) / np.float32(255)).astype(np.float32)  # noqa
    return prep(xtr), ytr, prep(xte), yte, subset


def child(args):
    """Fit one library's MLPClassifier once; print a JSON line with the results."""
    x, y, xt, yt, subset = load(args.subset)
    if args.threads:
        import fastnn as fn
        fn.set_num_threads(args.threads)     # fastnn's threads and every BLAS (threadpoolctl)
    if args.impl == "fastnn":
        from fastnn.sklearn import MLPClassifier
    else:
        from sklearn.neural_network import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=tuple(args.hidden), solver=args.solver,
                        max_iter=args.max_iter, random_state=0, batch_size=args.batch_size,
                        **({"learning_rate_init": 0.01} if args.solver == "sgd" else {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # ConvergenceWarning at max_iter
        start = time.perf_counter()
        clf.fit(x, y)
        seconds = time.perf_counter() - start
    print(json.dumps({"impl": args.impl, "seconds": seconds, "n_iter": clf.n_iter_,
                      "loss": float(clf.loss_), "train_rows": len(x), "subset": subset,
                      "test_accuracy": float(clf.score(xt, yt))}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-iter", type=int, default=10)
    parser.add_argument("--solver", default="adam", choices=["adam", "sgd", "lbfgs"])
    parser.add_argument("--hidden", type=int, nargs="+", default=[100])
    parser.add_argument("--batch-size", default="auto",
                        type=lambda s: s if s == "auto" else int(s))
    parser.add_argument("--subset", default="auto", choices=["auto", "full", "small"])
    parser.add_argument("--threads", type=int, default=0,
                        help="threads for fastnn and BLAS in both (default: all)")
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.impl:
        return child(args)
    common = ["--max-iter", str(args.max_iter), "--solver", args.solver, "--subset",
              args.subset, "--threads", str(args.threads), "--batch-size",
              str(args.batch_size), "--hidden", *map(str, args.hidden)]
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE) + os.pathsep +
               os.environ.get("PYTHONPATH", ""))
    results = []
    for r in range(args.rounds):
        order = ["fastnn", "sklearn"] if r % 2 == 0 else ["sklearn", "fastnn"]
        row = {}
        for impl in order:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--impl", impl,
                                  *common], env=env, check=True, capture_output=True,
                                 text=True).stdout
            row[impl] = json.loads(out.strip().splitlines()[-1])
            print(f"round {r + 1}: {impl:7s} {row[impl]['seconds']:8.2f} s  "
                  f"test accuracy {row[impl]['test_accuracy']:.4f}  "
                  f"n_iter {row[impl]['n_iter']}", file=sys.stderr)
        results.append(row)
    ratios = sorted(r["sklearn"]["seconds"] / r["fastnn"]["seconds"] for r in results)
    median = ratios[len(ratios) // 2] if len(ratios) % 2 else \
        (ratios[len(ratios) // 2 - 1] + ratios[len(ratios) // 2]) / 2
    first = results[0]
    print(f"MLPClassifier{tuple(args.hidden)} solver={args.solver} max_iter={args.max_iter} "
          f"batch_size={args.batch_size} "
          f"on {first['fastnn']['train_rows']} Fashion-MNIST rows ({first['fastnn']['subset']}),"
          f" float32, {args.threads or 'all'} thread(s), {args.rounds} interleaved rounds")
    for impl in ("fastnn", "sklearn"):
        secs = sorted(r[impl]["seconds"] for r in results)
        print(f"  {impl:7s} fit {secs[len(secs) // 2]:8.2f} s (min {secs[0]:.2f}, max "
              f"{secs[-1]:.2f})  test accuracy {first[impl]['test_accuracy']:.4f}")
    print(f"  fastnn is {median:.1f}x faster (per-round ratios {ratios[0]:.1f}-{ratios[-1]:.1f})")
    print(json.dumps({"ratio_median": median, "ratios": ratios, "rounds": results}))


if __name__ == "__main__":
    main()
