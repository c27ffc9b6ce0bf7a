"""Slides "Regularization (L1 / L2)", "Dropout" and "Early stopping": the weights each
penalty leaves behind, and training vs validation curves with and without dropout and
early stopping."""
import numpy as np

import fastnn as fn
from fastnn.examples.lecture.common import (Figure, Result, Table, Timer, classifier,
                                            compiled, data_or_default, draw, percent,
                                            than)


def _weight_stats(w, zero_tol):
    a = np.abs(w)
    kept = a[a >= zero_tol]
    return {"zero_fraction": float((a < zero_tol).mean()), "mean_abs": float(a.mean()),
            "mean_abs_nonzero": float(kept.mean()) if kept.size else 0.0,
            "max_abs": float(a.max())}


def l1_vs_l2(data=None, l1=1e-3, l2=3e-3, hidden=128, epochs=10, n_train=None,
             learning_rate=0.1, batch_size=32, zero_tol=1e-3, bins=121, seed=0, plot=True):
    """Weight histograms and near-zero fractions without a penalty, with L1 and with L2.

    784-``hidden``-10 ReLU networks trained with SGD without a penalty, with
    l1(``l1``) and with l2(``l2``) on the hidden kernel: statistics and histograms of its
    784 x hidden weights; "zero" is |w| < zero_tol."""
    data = data_or_default(data)
    x, y = data.train(n_train)
    penalties = {"none": None, "L1": fn.regularizers.l1(l1), "L2": fn.regularizers.l2(l2)}
    runs = {}
    with Timer() as t:
        for name, reg in penalties.items():
            fn.set_seed(seed)
            model = compiled(classifier("relu", [hidden], regularizer=reg),
                             fn.optimizers.SGD(learning_rate))
            model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
            w = model.get_weights()[0]
            runs[name] = {"test_accuracy": model.evaluate(*data.test(), batch_size=1000)[1],
                          **_weight_stats(w, zero_tol), "weights": w}
    # Histograms on common bins (an odd count, so that one bin is centred on 0), and the
    # fraction of weights with |w| < t on a log grid of thresholds t.
    top = max(r["max_abs"] for r in runs.values())
    edges = np.linspace(-top, top, bins + 1)
    thresholds = np.geomspace(1e-6, top, 80)
    hist, below = {}, {}
    for k, r in runs.items():
        w = r.pop("weights").ravel()
        hist[k] = np.histogram(w, edges)[0].tolist()
        below[k] = (np.searchsorted(np.sort(np.abs(w)), thresholds) / w.size).tolist()
    none, a, b = runs["none"], runs["L1"], runs["L2"]
    measured = (f"With L1 (λ = {l1:g}), {percent(a['zero_fraction'])} of the first layer's "
                f"weights ended within {zero_tol:g} of zero, against "
                f"{percent(b['zero_fraction'])} with L2 (λ = {l2:g}) and "
                f"{percent(none['zero_fraction'])} without a penalty. With L2 the mean |w| "
                f"was {b['mean_abs']:.4f}, {than(b['mean_abs'], none['mean_abs'])} than "
                f"without a penalty ({none['mean_abs']:.4f}), and the largest weight "
                f"{b['max_abs']:.3f} ({none['max_abs']:.3f} without, {a['max_abs']:.3f} "
                f"with L1). Test accuracy: {none['test_accuracy']:.3f} without, "
                f"{a['test_accuracy']:.3f} with L1, {b['test_accuracy']:.3f} with L2.")
    rows = [[k, r["test_accuracy"], r["zero_fraction"], r["mean_abs"],
             r["mean_abs_nonzero"], r["max_abs"]] for k, r in runs.items()]
    table = Table(f"First-layer weights (784 × {hidden}); zero means |w| < {zero_tol:g}",
                  ["penalty", "test accuracy", "zero fraction", "mean |w|",
                   "mean |w| of the non-zero", "largest |w|"], rows)
    figure = Figure("l1_vs_l2", "L1 vs L2: the weights left behind",
                    {"bin_edges": edges.tolist(), "counts": hist,
                     "thresholds": thresholds.tolist(), "fraction_below": below,
                     "zero_tol": zero_tol,
                     "labels": {"none": "no penalty", "L1": f"L1, λ = {l1:g}",
                                "L2": f"L2, λ = {l2:g}"}})
    note = draw([figure], plot, [_draw_weights])
    settings = {"l1": l1, "l2": l2, "network": f"784-{hidden}-10 ReLU", "epochs": epochs,
                "optimizer": "SGD", "learning_rate": learning_rate, "batch_size": batch_size,
                "training_images": len(x), "zero_tol": zero_tol, "seed": seed,
                "data": data.label}
    return Result("l1_vs_l2", "L1 vs L2 regularization",
                  "L2 (weight decay) multiplies every weight by a factor below 1 at each "
                  "update, so all weights shrink in proportion and few reach zero. L1 "
                  "subtracts a constant amount towards zero, so weights the data does not "
                  "need become (near) zero — sparse — while the useful ones stay large.",
                  measured, runs, [table], [figure], settings, t.seconds, note)


def _draw_weights(plt, d):
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    edges = np.array(d["bin_edges"])
    for name, label in d["labels"].items():
        counts = np.array(d["counts"][name], np.float64)
        counts[counts == 0] = np.nan       # empty bins: no bar on the log scale
        left.stairs(counts, edges, label=label, lw=1.3)
        right.semilogx(d["thresholds"], d["fraction_below"][name], label=label, lw=1.5)
    left.set_yscale("log")
    left.set(xlabel="first-layer weight", ylabel="number of weights (log scale)",
             title="Weight histograms")
    right.axvline(d["zero_tol"], color="gray", ls=":", label=f"|w| = {d['zero_tol']:g}")
    right.set(xlabel="threshold t (log scale)", ylabel="fraction of weights with |w| < t",
              ylim=(0, 1), title="How many weights are (near) zero")
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _curves(h):
    """The four per-epoch series of a History's dict (or a run's)."""
    return {k: list(h[k]) for k in ("loss", "val_loss", "accuracy", "val_accuracy")}


def dropout_and_early_stopping(data=None, n_train=2000, held_out=1000, width=512,
                               epochs=40, rate=0.5, patience=5, batch_size=32,
                               learning_rate=1e-3, seed=0, plot=True):
    """Training vs validation curves with and without dropout and early stopping.

    Two ReLU layers of ``width`` trained with Adam on the first ``n_train`` training
    images, validated on the last ``held_out``: without regularization, with Dropout(rate)
    after each hidden layer, and without regularization but with EarlyStopping(
    patience, restore_best_weights=True) on the validation loss."""
    data = data_or_default(data)
    train = data.train(n_train)
    val = data.train(held_out, offset=len(data.x_train) - held_out)
    es = fn.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)
    runs = {}
    with Timer() as t:
        for name, dropout, callbacks in (("plain", 0.0, []), ("dropout", rate, []),
                                         ("early_stopping", 0.0, [es])):
            fn.set_seed(seed)
            model = compiled(classifier("relu", [width] * 2, dropout=dropout),
                             fn.optimizers.Adam(learning_rate))
            history = model.fit(*train, batch_size=batch_size, epochs=epochs, verbose=0,
                                validation_data=val, callbacks=callbacks)
            runs[name] = {**_curves(history.history),
                          "test_accuracy": model.evaluate(*data.test(), batch_size=1000)[1],
                          "diagnosis": fn.recipe.diagnose(history).case_names()}
    stop = runs["early_stopping"]
    stop["epochs_run"] = len(stop["loss"])
    stop["restored_epoch"] = es.best_epoch + 1
    stop["best_val_epoch"] = int(np.argmin(stop["val_loss"])) + 1
    for r in runs.values():
        r["final_gap"] = r["accuracy"][-1] - r["val_accuracy"][-1]
        r["best_val_loss"] = min(r["val_loss"])
    plain, drop = runs["plain"], runs["dropout"]
    measured = (f"Without regularization the training accuracy reached "
                f"{plain['accuracy'][-1]:.3f} against {plain['val_accuracy'][-1]:.3f} on "
                f"validation (a gap of {plain['final_gap']:.3f}); the validation loss was "
                f"lowest in epoch {int(np.argmin(plain['val_loss'])) + 1} "
                f"({plain['best_val_loss']:.3f}) and ended at {plain['val_loss'][-1]:.3f}. "
                f"With dropout {rate:g} the gap was {drop['final_gap']:.3f} "
                f"({than(drop['final_gap'], plain['final_gap'])}) and the last validation "
                f"loss {drop['val_loss'][-1]:.3f}. EarlyStopping (patience "
                f"{patience}) stopped after epoch {stop['epochs_run']} and restored the "
                f"weights of epoch {stop['restored_epoch']} (its lowest validation loss was "
                f"in epoch {stop['best_val_epoch']}). Test accuracy: "
                f"{plain['test_accuracy']:.3f} plain, {drop['test_accuracy']:.3f} with "
                f"dropout, {stop['test_accuracy']:.3f} early-stopped.")
    labels = {"plain": "no regularization", "dropout": f"dropout {rate:g}",
              "early_stopping": f"early stopping (patience {patience})"}
    rows = [[labels[k], len(r["loss"]), r["accuracy"][-1], r["val_accuracy"][-1],
             r["final_gap"], r["val_loss"][-1], r["best_val_loss"], r["test_accuracy"],
             ", ".join(r["diagnosis"])] for k, r in runs.items()]
    table = Table("Last epoch of each run (early stopping: its restored weights are what "
                  "the test accuracy measures)",
                  ["run", "epochs", "training accuracy", "validation accuracy", "gap",
                   "validation loss", "lowest validation loss", "test accuracy",
                   "fn.recipe.diagnose"], rows)
    figure = Figure("dropout_and_early_stopping", "Dropout and early stopping",
                    {"labels": labels, "runs": {k: _curves(r) for k, r in runs.items()},
                     "stopped_epoch": stop["epochs_run"],
                     "restored_epoch": stop["restored_epoch"]})
    note = draw([figure], plot, [_draw_curves])
    settings = {"training_images": n_train, "held_out": held_out,
                "network": f"784-{width}-{width}-10 ReLU", "epochs": epochs,
                "dropout": rate, "patience": patience, "optimizer": "Adam",
                "learning_rate": learning_rate, "batch_size": batch_size, "seed": seed,
                "data": data.label}
    return Result("dropout_and_early_stopping", "Dropout and early stopping",
                  "When a network is good on training data but not on validation data "
                  "(overfitting), dropout (training each minibatch on a random thinned "
                  "network) narrows the gap, and early stopping keeps the weights of the "
                  "epoch where the validation loss was lowest.",
                  measured, runs, [table], [figure], settings, t.seconds, note)


def _draw_curves(plt, d):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[1].sharey(axes[0])
    plain, drop = d["runs"]["plain"], d["runs"]["dropout"]
    for ax, run, label in ((axes[0], plain, d["labels"]["plain"]),
                           (axes[1], drop, d["labels"]["dropout"])):
        epochs = np.arange(1, len(run["loss"]) + 1)
        ax.plot(epochs, run["loss"], "o-", ms=3, label="training loss")
        ax.plot(epochs, run["val_loss"], "s-", ms=3, label="validation loss")
        ax.set(xlabel="epoch", ylabel="loss", title=label)
    axes[0].axvline(d["stopped_epoch"], color="red", ls="--",
                    label=f"early stopping stops ({d['stopped_epoch']})")
    axes[0].axvline(d["restored_epoch"], color="green", ls=":",
                    label=f"weights restored ({d['restored_epoch']})")
    for run, style, label in ((plain, "-", d["labels"]["plain"]),
                              (drop, "--", d["labels"]["dropout"])):
        epochs = np.arange(1, len(run["loss"]) + 1)
        axes[2].plot(epochs, run["accuracy"], style, color="C0", label=f"training, {label}")
        axes[2].plot(epochs, run["val_accuracy"], style, color="C1",
                     label=f"validation, {label}")
    axes[2].set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig
