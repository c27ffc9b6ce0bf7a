"""Slide "Don't always blame overfitting": a deep sigmoid network that is bad on its own
training data, and a large network trained on few images that memorizes them, each with
what fn.recipe.diagnose says about it."""
import fastnn as fn
from fastnn.examples.lecture.common import (Figure, Result, Table, Timer, classifier,
                                            compiled, data_or_default, draw)


def _run(model, train, held_out, epochs, batch_size):
    history = model.fit(*train, batch_size=batch_size, epochs=epochs, verbose=0,
                        validation_data=held_out, monitor_gradients=True)
    h = history.history
    report = fn.recipe.diagnose(history)
    return {"train_accuracy": h["accuracy"], "val_accuracy": h["val_accuracy"],
            "loss": h["loss"], "val_loss": h["val_loss"], "diagnosis": report.case_names(),
            "evidence": report.primary.evidence}


def overfitting_vs_bad_training(data=None, depth=8, width=64, deep_epochs=5,
                                deep_learning_rate=0.1, memorize_images=300,
                                memorize_width=256, memorize_epochs=50, held_out=1000,
                                batch_size=32, seed=0, plot=True):
    """A network that is bad on its training data and one that overfits, each diagnosed.

    (1) ``depth`` sigmoid layers of ``width`` trained with SGD on all but the last
    ``held_out`` training images; (2) two ReLU layers of ``memorize_width`` trained with
    Adam on the first ``memorize_images`` images. Both validated on the last ``held_out``
    training images and diagnosed."""
    data = data_or_default(data)
    n = len(data.x_train)
    val = data.train(held_out, offset=n - held_out)
    with Timer() as t:
        fn.set_seed(seed)
        deep = compiled(classifier("sigmoid", [width] * depth),
                        fn.optimizers.SGD(deep_learning_rate))
        bad = _run(deep, data.train(n - held_out), val, deep_epochs, batch_size)
        fn.set_seed(seed)
        big = compiled(classifier("relu", [memorize_width] * 2), fn.optimizers.Adam(1e-3))
        memo = _run(big, data.train(memorize_images), val, memorize_epochs, batch_size)
    runs = {"deep_sigmoid": bad, "memorizer": memo}
    gap = memo["train_accuracy"][-1] - memo["val_accuracy"][-1]
    verdict = ("bad on its own training data, so this is not overfitting"
               if "not_good_on_training" in bad["diagnosis"] else "good on its training data")
    measured = (f"The {depth}-layer sigmoid network ended at training accuracy "
                f"{bad['train_accuracy'][-1]:.3f} (held-out {bad['val_accuracy'][-1]:.3f}): "
                f"{verdict}; fn.recipe.diagnose said {', '.join(bad['diagnosis'])} "
                f"({bad['evidence']}). The memorizing network, trained on "
                f"{memorize_images} images, reached training accuracy "
                f"{memo['train_accuracy'][-1]:.3f} but held-out "
                f"{memo['val_accuracy'][-1]:.3f} (a gap of {gap:.3f}); diagnose said "
                f"{', '.join(memo['diagnosis'])}.")
    labels = {"deep_sigmoid": f"{depth} sigmoid layers of {width}, SGD",
              "memorizer": f"2 ReLU layers of {memorize_width} on {memorize_images} images, "
                           f"Adam"}
    rows = [[labels[k], r["train_accuracy"][-1], r["val_accuracy"][-1],
             ", ".join(r["diagnosis"]), r["evidence"]] for k, r in runs.items()]
    table = Table("Final epoch and what fn.recipe.diagnose says",
                  ["network", "training accuracy", "held-out accuracy", "diagnosis",
                   "evidence (first finding)"], rows)
    figure = Figure("overfitting_vs_bad_training", "Bad training vs overfitting",
                    {k: {"label": labels[k], "train_accuracy": r["train_accuracy"],
                         "val_accuracy": r["val_accuracy"]} for k, r in runs.items()})
    note = draw([figure], plot, [_draw])
    settings = {"depth": depth, "width": width, "deep_epochs": deep_epochs,
                "deep_learning_rate": deep_learning_rate, "memorize_images": memorize_images,
                "memorize_width": memorize_width, "memorize_epochs": memorize_epochs,
                "held_out": held_out, "batch_size": batch_size, "seed": seed,
                "data": data.label}
    return Result("overfitting_vs_bad_training", "Don't always blame overfitting",
                  "Poor results on test data are not always overfitting. First check the "
                  "training data: a network that is bad there needs a different network or "
                  "training (the recipe's first step); only a network that is good on "
                  "training data and bad on held-out data is overfitting.",
                  measured, runs, [table], [figure], settings, t.seconds, note)


def _draw(plt, d):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, run in zip(axes, d.values()):
        epochs = range(1, len(run["train_accuracy"]) + 1)
        ax.plot(epochs, run["train_accuracy"], "o-", ms=3, label="training")
        ax.plot(epochs, run["val_accuracy"], "s-", ms=3, label="held-out")
        ax.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title=run["label"])
        ax.grid(alpha=0.3)
        ax.legend(loc="center right")      # the curves sit near 0.1 or above 0.7
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig
