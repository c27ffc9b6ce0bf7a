"""Data-parallel training throughput (issue 15): K MPI ranks x 1 thread against 1 process x
1 thread, the same network, global batch and data.

    python bench/data_parallel.py [--ranks 2] [--rounds 5] [--steps 40] [--epochs 3]
                                  [--batch 256] [--dtype float32]

784-512-512-10 ReLU, softmax cross-entropy on integer labels, Adam, batch 256 (the global
batch: each rank computes its 128 rows). Each sample is a fresh process (or a fresh
`mpiexec -n K` job) that builds the model, runs one untimed epoch, then --epochs timed
epochs of --steps steps through `fit`; its samples/s is the median of the timed epochs'
History samples_per_second (for the MPI job: the chief's, i.e. global samples over the
epoch's wall time). The rounds interleave the two configurations (their order alternates)
and the ratio is the median of the per-round ratios, with its min-max.

Also reported, from the MPI job: the time per step spent in the step's reduction as fit
sees it (the gradient's Allreduce with the scalars' Iallreduce beside it: DataParallel's
allreduce_seconds / allreduce_calls over the timed epochs; it includes waiting for the
slower rank), and, measured after training on the same buffers with a Barrier before each
call (so only communication is timed), the gradient Allreduce alone versus the step's pair
of collectives (the extra cost of the second, small reduction).

Needs mpi4py and mpiexec (pip install 'fastnn[mpi]'); uses the fastnn of this source tree
(build it first). Exit status 1 if the ratio's median is below the 1.6x target.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGET = 1.6


def worker(args):
    sys.path.insert(0, ROOT)
    import numpy as np
    import fastnn as fn
    from fastnn.distributed import DataParallel

    strategy = DataParallel()
    fn.set_num_threads(1)
    n = args.steps * args.batch
    rng = np.random.default_rng(0)
    x = rng.random((n, 784), dtype=np.float32).astype(args.dtype)
    y = rng.integers(0, 10, n)
    fn.set_seed(0)
    model = fn.Sequential([fn.layers.Dense(512, activation="relu", input_dim=784),
                           fn.layers.Dense(512, activation="relu"),
                           fn.layers.Dense(10, activation="softmax")], dtype=args.dtype)
    model.compile(optimizer=fn.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, distribute=strategy)
    strategy.allreduce_seconds, strategy.allreduce_calls = 0.0, 0
    history = model.fit(x, y, batch_size=args.batch, epochs=args.epochs, verbose=0,
                        distribute=strategy)
    result = {"size": strategy.size,
              "samples_per_second": statistics.median(
                  history.samples_per_second),
              "threads": fn.get_num_threads()}
    if strategy.size > 1:
        result["allreduce_ms_per_step"] = \
            1e3 * strategy.allreduce_seconds / strategy.allreduce_calls
        result.update(collectives(strategy, model.parameter_store.grads))
    if strategy.is_chief:
        print("RESULT " + json.dumps(result), flush=True)


def collectives(strategy, grads, reps=100):
    """µs per call of the gradient Allreduce alone and of the step's pair (Iallreduce of
    the scalars beside it), interleaved, medians of `reps`."""
    import numpy as np
    from mpi4py import MPI
    comm = strategy.comm
    scalars = np.zeros(2 + 2, np.float64)       # loss, penalty, one mean metric's state
    alone, pair = [], []
    for _ in range(reps):
        comm.Barrier()
        t = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, grads, op=MPI.SUM)
        alone.append(time.perf_counter() - t)
        comm.Barrier()
        t = time.perf_counter()
        request = comm.Iallreduce(MPI.IN_PLACE, scalars, op=MPI.SUM)
        comm.Allreduce(MPI.IN_PLACE, grads, op=MPI.SUM)
        request.Wait()
        pair.append(time.perf_counter() - t)
    return {"grad_allreduce_us": 1e6 * statistics.median(alone),
            "step_pair_us": 1e6 * statistics.median(pair),
            "gradient_bytes": grads.nbytes}


def mpiexec():
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else shutil.which("mpiexec")


def sample(args, ranks):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--steps", str(args.steps),
           "--epochs", str(args.epochs), "--batch", str(args.batch), "--dtype", args.dtype]
    if ranks > 1:
        cmd = [mpiexec(), "-n", str(ranks)] + cmd
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=ROOT)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        sys.exit(f"sample failed ({' '.join(cmd)}):\n{out.stdout}\n{out.stderr}")
    line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def other_load(seconds=0.5):
    """Cores kept busy by everything on the machine over `seconds` (from /proc/stat)."""
    def read():
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    total0, idle0 = read()
    time.sleep(seconds)
    total1, idle1 = read()
    cores = os.cpu_count() or 1
    return cores * (1 - (idle1 - idle0) / max(1, total1 - total0))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    if mpiexec() is None:
        sys.exit("bench/data_parallel.py: needs mpiexec (pip install 'fastnn[mpi]')")
    rounds = []
    for r in range(args.rounds):
        load = other_load()
        order = [1, args.ranks] if r % 2 == 0 else [args.ranks, 1]
        got = {k: sample(args, k) for k in order}
        one, many = got[1], got[args.ranks]
        rounds.append({"load_before": load, "one": one, "many": many,
                       "ratio": many["samples_per_second"] / one["samples_per_second"]})
        print(f"round {r + 1}: 1x1 {one['samples_per_second']:8.0f} samples/s   "
              f"{args.ranks}x1 {many['samples_per_second']:8.0f} samples/s   "
              f"ratio {rounds[-1]['ratio']:.2f}   Allreduce "
              f"{many['allreduce_ms_per_step']:.2f} ms/step   "
              f"(other load before: {load:.1f} cores)", file=sys.stderr, flush=True)
    med = lambda key, side: statistics.median(r[side][key] for r in rounds)  # noqa: E731
    ratios = [r["ratio"] for r in rounds]
    summary = {
        "network": "784-512-512-10 relu, Adam, sparse softmax cross-entropy",
        "dtype": args.dtype, "global_batch": args.batch, "steps_per_epoch": args.steps,
        "ranks": args.ranks, "rounds": rounds,
        "one_process_samples_per_second": med("samples_per_second", "one"),
        "ranks_samples_per_second": med("samples_per_second", "many"),
        "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "allreduce_ms_per_step": med("allreduce_ms_per_step", "many"),
        "grad_allreduce_us": med("grad_allreduce_us", "many"),
        "step_pair_us": med("step_pair_us", "many"),
        "gradient_bytes": rounds[0]["many"]["gradient_bytes"],
    }
    print(f"\n{summary['network']}, {args.dtype}, global batch {args.batch}, "
          f"{args.rounds} interleaved rounds")
    print(f"  1 process x 1 thread : {summary['one_process_samples_per_second']:,.0f} "
          f"samples/s")
    print(f"  {args.ranks} ranks x 1 thread   : {summary['ranks_samples_per_second']:,.0f} "
          f"samples/s")
    print(f"  ratio                : {summary['ratio_median']:.2f}x (min "
          f"{summary['ratio_min']:.2f}, max {summary['ratio_max']:.2f}; target "
          f">= {TARGET}x: {'PASS' if summary['ratio_median'] >= TARGET else 'FAIL'})")
    print(f"  reduction per step   : {summary['allreduce_ms_per_step']:.2f} ms "
          f"(gradient {summary['gradient_bytes'] / 1e6:.1f} MB; Allreduce alone "
          f"{summary['grad_allreduce_us']:.0f} us, with the scalars' Iallreduce "
          f"{summary['step_pair_us']:.0f} us)")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results",
                        time.strftime("data_parallel-%Y%m%d-%H%M%S.json"))
    with open(path, "w") as f:
        json.dump(summary, f, indent=1)
    print(f"  samples: {path}")
    return 0 if summary["ratio_median"] >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
