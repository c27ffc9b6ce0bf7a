"""Slides "Deeper is not always better" and "ReLU / Maxout": training accuracy and the
gradient norm of every layer for networks of 1 ... 10 hidden layers, with sigmoid, ReLU and
maxout units (gradients from fit(monitor_gradients=True))."""
import numpy as np

import fastnn as fn
from fastnn.examples.lecture.common import (Figure, Result, Table, Timer, classifier,
                                            compiled, data_or_default, draw, first_to_last)

DEPTHS = tuple(range(1, 11))
KIND_LABELS = {"sigmoid": "sigmoid", "relu": "ReLU", "maxout": "maxout"}


def depth_sweep(kind, data, depths, width, epochs, n_train, learning_rate, batch_size,
                seed):
    """Train one network per depth; {'train_accuracy': [...], 'test_accuracy': [...],
    'grad_norm': [[per layer, input first]...], 'first_to_last': [...], 'diverged':
    [depth...]} over depths. A network whose loss becomes NaN stops there (on_nan='stop')
    and is listed in 'diverged' with the numbers it had reached."""
    x, y = data.train(n_train)
    xte, yte = data.test()
    out = {"train_accuracy": [], "test_accuracy": [], "grad_norm": [], "first_to_last": [],
           "diverged": []}
    for depth in depths:
        fn.set_seed(seed)
        model = compiled(classifier(kind, [width] * depth), fn.optimizers.SGD(learning_rate))
        h = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0,
                      monitor_gradients=True, on_nan="stop").history
        if len(h["loss"]) < epochs or not np.isfinite(h["loss"][-1]):
            out["diverged"].append(depth)
        norms = h["grad_norm"][-1] if h.get("grad_norm") else {"first": np.nan, "last": np.nan}
        out["train_accuracy"].append(h["accuracy"][-1])
        out["test_accuracy"].append(model.evaluate(xte, yte, batch_size=1000)[1])
        out["grad_norm"].append(list(norms.values()))
        out["first_to_last"].append(first_to_last(norms))
    return out


def _divergence_note(sweeps):
    """' (… diverged …)' naming the networks whose loss became NaN, or ''."""
    parts = [f"{KIND_LABELS[k]} with {', '.join(map(str, s['diverged']))} hidden layers"
             for k, s in sweeps.items() if s["diverged"]]
    return (" Training diverged (NaN loss; its numbers are from where it stopped) for " +
            "; ".join(parts) + ".") if parts else ""


def _settings(depths, width, epochs, n_train, learning_rate, batch_size, seed, data):
    return {"depths": list(depths), "width": width, "epochs": epochs,
            "training_images": n_train or len(data.x_train), "optimizer": "SGD",
            "learning_rate": learning_rate, "batch_size": batch_size, "seed": seed,
            "data": data.label}


def deeper_not_better(data=None, depths=DEPTHS, width=128, epochs=5, n_train=None,
                      learning_rate=0.05, batch_size=32, seed=0, plot=True):
    """Training accuracy and per-layer gradient norms of sigmoid networks, by depth.

    Sigmoid networks of each depth in ``depths`` (hidden layers of ``width`` units),
    SGD, ``epochs`` epochs: training accuracy and per-layer gradient norms (last epoch)."""
    data = data_or_default(data)
    with Timer() as t:
        sweep = depth_sweep("sigmoid", data, depths, width, epochs, n_train, learning_rate,
                            batch_size, seed)
    acc, ratio = sweep["train_accuracy"], sweep["first_to_last"]
    best = int(np.argmax(acc))
    numbers = {"depths": list(depths), "sigmoid": sweep}
    shallow, deep = depths[0], depths[-1]
    measured = (f"With sigmoid units and {epochs} epochs of SGD, training accuracy was "
                f"{acc[0]:.3f} with {shallow} hidden layer{'s' * (shallow > 1)}, best "
                f"({acc[best]:.3f}) with {depths[best]}, and {acc[-1]:.3f} with {deep} "
                f"(chance is 0.100).")
    if len(depths) > 1 and ratio[0] > 0 and ratio[-1] > 0:
        factor = (ratio[0] / ratio[-1]) ** (1 / (deep - shallow))
        numbers["shrink_per_layer"] = factor
        measured += (f" The first layer's gradient norm was {ratio[-1]:.1e} times the "
                     f"output layer's in the {deep}-layer network against {ratio[0]:.1e} "
                     f"with {shallow}: a factor of about {factor:.2g} for every layer "
                     f"added.")
    measured += _divergence_note({"sigmoid": sweep})
    rows = [[d, a, te, r] for d, a, te, r in zip(depths, acc, sweep["test_accuracy"], ratio)]
    table = Table("Sigmoid networks by depth (gradient norms: last epoch's average)",
                  ["hidden layers", "training accuracy", "test accuracy",
                   "first / output layer gradient norm"], rows)
    figure = Figure("deeper_not_better", "Deeper sigmoid networks: accuracy and gradients",
                    {"depths": list(depths), "train_accuracy": acc,
                     "grad_norm": sweep["grad_norm"]})
    note = draw([figure], plot, [_draw_deeper])
    return Result("deeper_not_better", "Deeper is not always better (vanishing gradients)",
                  "A deeper network is not automatically better, not even on the training "
                  "data: backpropagating through a sigmoid multiplies the gradient by "
                  "σ'(z) ≤ 1/4, so the layers near the input get tiny gradients and learn "
                  "very slowly while the layers near the output have already converged.",
                  measured, numbers, [table], [figure],
                  _settings(depths, width, epochs, n_train, learning_rate, batch_size, seed,
                            data), t.seconds, note)


def relu_maxout(data=None, depths=DEPTHS, width=128, epochs=5, n_train=None,
                learning_rate=0.05, batch_size=32, seed=0, plot=True, compare=None):
    """The same depths with sigmoid, ReLU and maxout units.

    The sweep of ``deeper_not_better`` with ReLU and with Maxout (2 pieces) units.
    ``compare``: that experiment's Result with the same sizes, to reuse its sigmoid sweep
    (it is trained again otherwise)."""
    data = data_or_default(data)
    settings = _settings(depths, width, epochs, n_train, learning_rate, batch_size, seed,
                         data)
    with Timer() as t:
        sweeps = {}
        if compare is not None and compare.settings == settings:
            sweeps["sigmoid"] = compare.numbers["sigmoid"]
        for kind in ("sigmoid", "relu", "maxout"):
            if kind not in sweeps:
                sweeps[kind] = depth_sweep(kind, data, depths, width, epochs, n_train,
                                           learning_rate, batch_size, seed)
    deep = depths[-1]
    acc = {k: s["train_accuracy"] for k, s in sweeps.items()}
    ratio = {k: s["first_to_last"] for k, s in sweeps.items()}
    best = {k: depths[int(np.argmax(a))] for k, a in acc.items()}
    measured = (f"With {deep} hidden layers, training accuracy after {epochs} epochs was "
                f"{acc['sigmoid'][-1]:.3f} with sigmoid, {acc['relu'][-1]:.3f} with ReLU "
                f"and {acc['maxout'][-1]:.3f} with maxout; the first layer's gradient norm "
                f"was {ratio['sigmoid'][-1]:.1e}, {ratio['relu'][-1]:.1e} and "
                f"{ratio['maxout'][-1]:.1e} times the output layer's. The best depth was "
                f"{best['sigmoid']} for sigmoid, {best['relu']} for ReLU and "
                f"{best['maxout']} for maxout." + _divergence_note(sweeps))
    rows = [[d] + [acc[k][i] for k in sweeps] + [ratio[k][i] for k in sweeps]
            for i, d in enumerate(depths)]
    table = Table("Training accuracy and first / output layer gradient norm by depth",
                  ["hidden layers"] + [f"{KIND_LABELS[k]} accuracy" for k in sweeps] +
                  [f"{KIND_LABELS[k]} gradient ratio" for k in sweeps], rows)
    figure = Figure("relu_maxout", "Sigmoid, ReLU and maxout by depth",
                    {"depths": list(depths),
                     "train_accuracy": acc, "first_to_last": ratio,
                     "grad_norm_deepest": {k: s["grad_norm"][-1] for k, s in sweeps.items()}})
    note = draw([figure], plot, [_draw_relu_maxout])
    return Result("relu_maxout", "ReLU and maxout mitigate vanishing gradients",
                  "ReLU's derivative is 1 wherever a unit is active, and maxout (a learnable "
                  "piecewise-linear activation of which ReLU is a special case) passes the "
                  "gradient on to the winning piece unchanged: the gradient reaches the "
                  "first layer intact, so deep networks train.",
                  measured, {"depths": list(depths), **sweeps}, [table], [figure], settings,
                  t.seconds, note)


def _draw_deeper(plt, d):
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(d["depths"], d["train_accuracy"], "o-", label="sigmoid")
    left.axhline(0.1, color="gray", ls=":", label="chance")
    left.set(xlabel="hidden layers", ylabel="training accuracy", ylim=(0, 1),
             title="Training accuracy by depth")
    left.legend()
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(d["depths"])))
    for depth, norms, c in zip(d["depths"], d["grad_norm"], colors):
        right.semilogy(range(1, len(norms) + 1), norms, "o-", color=c, ms=3,
                       label=f"{depth} hidden")
    right.set(xlabel="layer (1 = next to the input; last = output)",
              ylabel="gradient norm (log scale)", title="Gradient norm per layer")
    right.legend(fontsize="x-small", ncol=2)
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def _draw_relu_maxout(plt, d):
    fig, (left, mid, right) = plt.subplots(1, 3, figsize=(15, 4))
    for kind, acc in d["train_accuracy"].items():
        left.plot(d["depths"], acc, "o-", label=KIND_LABELS[kind])
        mid.semilogy(d["depths"], d["first_to_last"][kind], "o-", label=KIND_LABELS[kind])
        norms = d["grad_norm_deepest"][kind]
        right.semilogy(range(1, len(norms) + 1), norms, "o-", label=KIND_LABELS[kind])
    left.axhline(0.1, color="gray", ls=":", label="chance")
    left.set(xlabel="hidden layers", ylabel="training accuracy", ylim=(0, 1),
             title="Training accuracy by depth")
    mid.set(xlabel="hidden layers", ylabel="first / output layer (log scale)",
            title="Gradient norm ratio by depth")
    right.set(xlabel="layer (1 = next to the input; last = output)",
              ylabel="gradient norm (log scale)",
              title=f"Per layer, {d['depths'][-1]} hidden layers")
    for ax in (left, mid, right):
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.tight_layout()
    return fig
