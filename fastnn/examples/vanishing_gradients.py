"""Vanishing gradients, the lecture's figure made real: a deep sigmoid network against the
same depth with ReLU, on Fashion-MNIST, with the gradient norm of every layer.

    python -m fastnn.examples.vanishing_gradients [--depth 8] [--epochs 2] [--plot out.png]

With sigmoid, each layer multiplies the backpropagated gradient by σ'(z) ≤ 1/4, so the
layers near the input get gradients orders of magnitude smaller than those near the
output: they learn slowly, and the deep network trains worse than a shallow one. ReLU's
derivative is 1 where the unit is active, so the gradient reaches the first layer intact.
"""
import argparse
import sys

import numpy as np

import fastnn as fn
from fastnn import datasets


def deep_network(depth, width, activation):
    init = "he_uniform" if activation == "relu" else "glorot_uniform"
    layers = [fn.layers.Dense(width, activation=activation, kernel_initializer=init,
                              input_dim=784)]
    layers += [fn.layers.Dense(width, activation=activation, kernel_initializer=init)
               for _ in range(depth - 1)]
    layers.append(fn.layers.Dense(10, activation="softmax"))
    return fn.Sequential(layers)


def run(activation, depth, width, epochs, data, seed):
    (xtr, ytr), (xte, yte) = data
    fn.set_seed(seed)
    model = deep_network(depth, width, activation)
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=fn.optimizers.SGD(0.1), metrics=["accuracy"])
    history = model.fit(xtr, ytr, batch_size=64, epochs=epochs, verbose=0,
                        monitor_gradients=True)
    _, acc = model.evaluate(xte, yte, batch_size=1000)
    return history, acc


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fastnn.examples.vanishing_gradients",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, default=8, help="hidden layers (default 8)")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--data", default="small", choices=["small", "full"],
                   help="the shipped subset (default) or the full set when installed")
    p.add_argument("--plot", default=None, help="write the gradient-norm figure (PNG) here")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    raw = datasets.load_fashion_mnist(subset="small" if args.data == "small" else None,
                                      download=False)
    data = tuple((datasets.prepare_images(x), y.astype(np.int64)) for x, y in raw)
    print(f"{args.depth} hidden layers of {args.width}, SGD 0.1, {args.epochs} epochs, "
          f"{len(data[0][0]):,} training images")
    results = {}
    for activation in ("sigmoid", "relu"):
        history, acc = run(activation, args.depth, args.width, args.epochs, data, args.seed)
        results[activation] = history
        norms = history.history["grad_norm"][-1]
        first, last = list(norms.values())[0], list(norms.values())[-1]
        print(f"\n{activation}: test accuracy {acc:.3f}; gradient norm per layer, "
              f"input layer first (last epoch):")
        for name, value in norms.items():
            bar = "#" * max(1, int(np.log10(value / last) * 8 + 40)) if value > 0 else ""
            print(f"  {name:>10}  {value:10.3e}  {bar}")
        print(f"  first/last layer ratio: {first / last:.1e}")
        print("  diagnosis:", ", ".join(fn.recipe.diagnose(history).case_names()))
    if args.plot:
        try:
            plt = fn.plot._pyplot()
        except ImportError as e:
            print(f"\nno plot: {e}")
            return 0
        fig, ax = plt.subplots(figsize=(6, 4))
        for activation, history in results.items():
            norms = history.history["grad_norm"][-1]
            ax.semilogy(range(1, len(norms) + 1), list(norms.values()), "o-",
                        label=activation)
        ax.set_xlabel("layer (1 = next to the input)")
        ax.set_ylabel("gradient norm (log scale)")
        ax.set_title(f"Vanishing gradients: {args.depth} hidden layers")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"\nfigure written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
