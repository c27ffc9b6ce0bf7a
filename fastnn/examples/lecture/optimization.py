"""Slides "Adagrad", "RMSProp", "Momentum", "Adam": the update rules side by side, as loss
curves on Fashion-MNIST and on an ill-conditioned quadratic, each with its formula."""
import numpy as np

import fastnn as fn
from fastnn.examples import hello_world
from fastnn.examples.lecture.common import (Figure, Result, Table, Timer, classifier,
                                            compiled, data_or_default, draw)

NAMES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
LABELS = {"sgd": "SGD", "momentum": "Momentum", "nesterov": "Nesterov", "adagrad": "Adagrad",
          "rmsprop": "RMSProp", "adam": "Adam"}
# The rules as fastnn implements them (the docstrings in fastnn/optimizers.py); g = ∇L.
FORMULAS = {
    "sgd": "w ← w − η·g",
    "momentum": "v ← μ·v − η·g;  w ← w + v",
    "nesterov": "v ← μ·v − η·g;  w ← w + μ·v − η·g",
    "adagrad": "G ← G + g²;  w ← w − η·g / (√G + ε)",
    "rmsprop": "s ← ρ·s + (1−ρ)·g²;  w ← w − η·g / (√s + ε)",
    "adam": "m ← β₁·m + (1−β₁)·g;  v ← β₂·v + (1−β₂)·g²;  w ← w − η·m̂ / (√v̂ + ε)",
}
# Learning rates on the quadratic: η = 1 / (largest curvature) for the three SGD rules (the
# largest step that does not oscillate along the steep axis; Nesterov diverges above
# about 1.36 here), and for the adaptive rules a value that reaches the target quickly
# without settling into an oscillation above it.
QUADRATIC_RATES = {"sgd": 1.0, "momentum": 1.0, "nesterov": 1.0, "adagrad": 0.5,
                   "rmsprop": 0.02, "adam": 0.1}
START = (1.0, 3.0)


def make(name, learning_rate):
    """The optimizer ``name`` (momentum/Nesterov with μ = 0.9, Keras's defaults otherwise);
    learning_rate None: the hello-world example's default for that rule."""
    return hello_world.make_optimizer(name, learning_rate, 0)


def quadratic(name, learning_rate, condition, steps, start=START):
    """Minimize L(w) = ½·(w₁² + w₂² / condition) — mean squared error of a 2-weight linear
    model on 2 samples, so the Hessian is diag(1, 1/condition) — from ``start``, full
    batch. Returns the loss before each step and the weights after it."""
    x = np.array([[1.0, 0.0], [0.0, condition ** -0.5]])
    y = np.zeros((2, 1))
    model = fn.Sequential([fn.layers.Dense(1, use_bias=False, input_dim=2)], dtype="float64")
    model.compile(loss="mse", optimizer=make(name, learning_rate))
    model.set_weights([np.array(start, np.float64).reshape(2, 1)])
    losses, path = [], [list(start)]
    for _ in range(steps):
        losses.append(float(model.train_on_batch(x, y)))
        path.append(model.get_weights()[0][:, 0].tolist())
    return losses, path


def steps_to(losses, target):
    """The first step whose loss is <= target (0-based), or None."""
    hit = np.nonzero(np.asarray(losses) <= target)[0]
    return int(hit[0]) if hit.size else None


def optimizers(data=None, names=NAMES, n_train=None, hidden=256, epochs=5, batch_size=64,
               condition=100.0, steps=400, target=1e-3, seed=0, plot=True):
    """Six update rules on Fashion-MNIST and on an ill-conditioned quadratic.

    (1) A 784-``hidden``-10 ReLU network on Fashion-MNIST with each optimizer at its
    usual learning rate (the hello-world defaults), per-batch training loss. (2) The
    ill-conditioned quadratic of ``quadratic`` for ``steps`` steps: the number of steps to
    bring the loss to ``target`` times its initial value."""
    data = data_or_default(data)
    x, y = data.train(n_train)
    fashion, quad = {}, {}
    with Timer() as t:
        for name in names:
            fn.set_seed(seed)
            optimizer = make(name, None)      # the hello-world default rate for the rule
            model = compiled(classifier("relu", [hidden]), optimizer)
            batch_losses = []
            record = fn.callbacks.LambdaCallback(
                on_train_batch_end=lambda b, logs: batch_losses.append(logs["batch_loss"]))
            history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0,
                                callbacks=[record])
            fashion[name] = {"learning_rate": optimizer.learning_rate,
                             "batch_loss": batch_losses,
                             "final_epoch_loss": history.history["loss"][-1],
                             "test_accuracy": model.evaluate(*data.test(),
                                                             batch_size=1000)[1]}
            losses, path = quadratic(name, QUADRATIC_RATES[name], condition, steps)
            quad[name] = {"learning_rate": QUADRATIC_RATES[name], "loss": losses,
                          "path": path,
                          "steps_to_target": steps_to(losses, target * losses[0])}
    reached = {n: q["steps_to_target"] for n, q in quad.items()}
    best_fashion = min(names, key=lambda n: fashion[n]["final_epoch_loss"])

    def when(n):
        return f"{reached[n]} steps" if reached[n] is not None else f"not within {steps}"

    measured = (f"On Fashion-MNIST the lowest last-epoch training loss after {epochs} epochs "
                f"was {LABELS[best_fashion]}'s "
                f"({fashion[best_fashion]['final_epoch_loss']:.3f}")
    if "sgd" in names and best_fashion != "sgd":
        measured += f"; SGD's was {fashion['sgd']['final_epoch_loss']:.3f}"
    measured += (f"). On the quadratic with condition number {condition:g}, the loss fell to "
                 f"{target:g} of its start in " +
                 ", ".join(f"{when(n)} ({LABELS[n]})" for n in names) + ".")
    if "sgd" in names and "momentum" in names and reached["momentum"] is not None:
        sgd = reached["sgd"]
        measured += (f" Momentum, with the same learning rate as SGD, needed "
                     f"{reached['momentum']} steps against SGD's "
                     f"{sgd if sgd is not None else f'more than {steps}'}.")
    rows = [[LABELS[n], FORMULAS[n], fashion[n]["learning_rate"],
             fashion[n]["final_epoch_loss"], fashion[n]["test_accuracy"],
             quad[n]["learning_rate"], when(n)] for n in names]
    table = Table("The update rules (g = ∇L) and what they did",
                  ["optimizer", "update rule", "η on Fashion-MNIST", "last-epoch loss",
                   "test accuracy", "η on the quadratic", f"steps to {target:g} × initial"],
                  rows)
    figure = Figure("optimizers", "Optimizers on the same data and on an ill-conditioned "
                    "problem",
                    {"labels": {n: LABELS[n] for n in names},
                     "formulas": {n: FORMULAS[n] for n in names},
                     "fashion_batch_loss": {n: fashion[n]["batch_loss"] for n in names},
                     "quadratic_loss": {n: quad[n]["loss"] for n in names},
                     "quadratic_path": {n: quad[n]["path"] for n in names},
                     "condition": condition, "target": target * quad[names[0]]["loss"][0]})
    note = draw([figure], plot, [_draw])
    settings = {"names": list(names), "network": f"784-{hidden}-10 ReLU", "epochs": epochs,
                "batch_size": batch_size, "training_images": len(x),
                "condition": condition, "steps": steps, "target": target,
                "start": list(START), "momentum": 0.9, "seed": seed, "data": data.label}
    return Result("optimizers", "Optimizers: SGD, Momentum, Nesterov, Adagrad, RMSProp, Adam",
                  "Plain gradient descent uses one learning rate for every weight, so on an "
                  "ill-conditioned problem it must be small enough for the steepest direction "
                  "and crawls along the flat one. Momentum keeps moving along a consistent "
                  "direction; Adagrad, RMSProp and Adam divide each weight's step by the size "
                  "of its recent gradients.",
                  measured, {"fashion": fashion, "quadratic": quad}, [table], [figure],
                  settings, t.seconds, note)


def _moving_average(values, window):
    v = np.asarray(values, np.float64)
    window = max(1, min(window, len(v)))
    return np.convolve(v, np.ones(window) / window, mode="valid")


def _draw(plt, d):
    fig, (left, mid, right) = plt.subplots(1, 3, figsize=(16, 5.6))
    lines = []
    for name, label in d["labels"].items():
        smooth = _moving_average(d["fashion_batch_loss"][name], 20)
        (line,) = left.plot(np.arange(len(smooth)) + 1, smooth, lw=1.2)
        lines.append((line, f"{label}:  {d['formulas'][name]}"))
        mid.semilogy(d["quadratic_loss"][name], color=line.get_color(), lw=1.2)
        path = np.array(d["quadratic_path"][name])
        right.plot(path[:, 0], path[:, 1], ".-", color=line.get_color(), lw=0.8, ms=2)
    left.set(xlabel="step", ylabel="training loss (moving average of 20 batches)",
             title="Fashion-MNIST, usual learning rates")
    mid.axhline(d["target"], color="gray", ls=":")
    mid.set(xlabel="step", ylabel="loss (log scale)",
            title=f"Ill-conditioned quadratic (condition {d['condition']:g})")
    w1, w2 = np.meshgrid(np.linspace(-1.5, 1.5, 200), np.linspace(-1, 3.5, 200))
    right.contour(w1, w2, 0.5 * (w1 ** 2 + w2 ** 2 / d["condition"]),
                  levels=np.geomspace(1e-3, 1, 10), colors="lightgray", linewidths=0.8)
    right.set(xlim=(-1.5, 1.5), ylim=(-1, 3.5), xlabel="w₁ (steep)", ylabel="w₂ (flat)",
              title="Paths from (1, 3) to the minimum (0, 0)")
    for ax in (left, mid, right):
        ax.grid(alpha=0.3, which="both")
    fig.legend([l for l, _ in lines], [s for _, s in lines], loc="lower center", ncol=2,
               fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    return fig
