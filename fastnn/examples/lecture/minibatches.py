"""Slide "Why minibatches": time per epoch and test accuracy after a fixed training-time
budget, for batch sizes 1 ... 1024."""
import time

import numpy as np

import fastnn as fn
from fastnn.examples.lecture.common import (Figure, Result, Table, Timer, classifier,
                                            compiled, data_or_default, draw)

BATCH_SIZES = (1, 4, 16, 64, 256, 1024)


class TimeBudget(fn.callbacks.Callback):
    """Stop training after ``budget`` seconds of training time and evaluate the test
    accuracy at ``checkpoints`` evenly spaced times; the evaluations are not counted as
    training time."""

    def __init__(self, budget, checkpoints, x_test, y_test):
        super().__init__()
        self.budget = budget
        self.marks = list(np.linspace(budget / checkpoints, budget, checkpoints))
        self.test = (x_test, y_test)

    def _evaluate(self):
        acc = self.model.evaluate(*self.test, batch_size=1000)[1]
        self.curve.append([self.seconds, self.updates, acc])

    def on_train_begin(self, logs=None):
        self.seconds = 0.0
        self.updates = self.samples = 0
        self.curve = []
        self._evaluate()
        self._last = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._seen = 0

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.seconds += now - self._last
        self.updates += 1
        self.samples += logs["size"] - self._seen
        self._seen = logs["size"]
        if self.marks and self.seconds >= self.marks[0]:
            while self.marks and self.seconds >= self.marks[0]:
                self.marks.pop(0)
            self._evaluate()
            if not self.marks:
                self.model.stop_training = True
        self._last = time.perf_counter()


def minibatches(data=None, batch_sizes=BATCH_SIZES, budget=2.0, hidden=256, checkpoints=10,
                learning_rate=1e-3, seed=0, plot=True):
    """Time per epoch and test accuracy after a fixed training time, per batch size.

    For each batch size, a 784-``hidden``-10 ReLU network trained with Adam for
    ``budget`` seconds of training time on all the training images."""
    data = data_or_default(data)
    x, y = data.train()
    runs = {}
    with Timer() as t:
        for b in batch_sizes:
            fn.set_seed(seed)
            model = compiled(classifier("relu", [hidden]), fn.optimizers.Adam(learning_rate))
            clock = TimeBudget(budget, checkpoints, *data.test())
            model.fit(x, y, batch_size=b, epochs=1 << 30, verbose=0, callbacks=[clock])
            per_sample = clock.seconds / clock.samples
            runs[b] = {"seconds_per_sample": per_sample,
                       "seconds_per_epoch": per_sample * len(x),
                       "updates": clock.updates, "epochs": clock.samples / len(x),
                       "test_accuracy": clock.curve[-1][2], "curve": clock.curve}
    small, large = batch_sizes[0], batch_sizes[-1]
    speedup = runs[small]["seconds_per_sample"] / runs[large]["seconds_per_sample"]
    best = max(batch_sizes, key=lambda b: runs[b]["test_accuracy"])
    measured = (f"One epoch ({len(x):,} images) took {runs[small]['seconds_per_epoch']:.2f} s "
                f"at batch size {small} and {runs[large]['seconds_per_epoch']:.3f} s at "
                f"{large}: {speedup:.0f} times less time per image. In the same "
                f"{budget:g} s, batch size {small} made {runs[small]['updates']:,} updates "
                f"and reached test accuracy {runs[small]['test_accuracy']:.3f}; batch size "
                f"{large} made {runs[large]['updates']:,} and reached "
                f"{runs[large]['test_accuracy']:.3f}; the best was batch size {best} "
                f"({runs[best]['test_accuracy']:.3f}, {runs[best]['updates']:,} updates). "
                f"Times depend on this machine and its load; the ratios are what carry over.")
    rows = [[b, r["seconds_per_epoch"], 1e6 * r["seconds_per_sample"], r["updates"],
             r["epochs"], r["test_accuracy"]] for b, r in runs.items()]
    table = Table(f"Batch sizes, each trained for {budget:g} s",
                  ["batch size", "seconds per epoch", "µs per image", "updates in budget",
                   "epochs in budget", "test accuracy"], rows)
    figure = Figure("minibatches", "Why minibatches",
                    {"batch_size": list(batch_sizes),
                     "seconds_per_epoch": [r["seconds_per_epoch"] for r in runs.values()],
                     "curves": {str(b): r["curve"] for b, r in runs.items()},
                     "curve_columns": ["training seconds", "updates", "test accuracy"]})
    note = draw([figure], plot, [_draw])
    settings = {"batch_sizes": list(batch_sizes), "budget_seconds": budget,
                "network": f"784-{hidden}-10 ReLU", "optimizer": "Adam",
                "learning_rate": learning_rate, "checkpoints": checkpoints, "seed": seed,
                "threads": fn.get_num_threads(), "data": data.label}
    return Result("minibatches", "Why minibatches",
                  "A minibatch is one matrix product instead of many vector products, so "
                  "large batches cost much less time per example: an epoch is faster. Small "
                  "batches update more often per epoch but each epoch is slow; with the same "
                  "training time a moderate batch size usually does best, and a huge batch "
                  "makes too few updates.",
                  measured, {str(b): r for b, r in runs.items()}, [table], [figure],
                  settings, t.seconds, note)


def _draw(plt, d):
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.loglog(d["batch_size"], d["seconds_per_epoch"], "o-")
    left.set(xlabel="batch size", ylabel="seconds per epoch (log scale)",
             title="Time per epoch")
    for b, curve in d["curves"].items():
        c = np.array(curve)[1:]            # without the untrained start (chance level)
        right.plot(c[:, 0], c[:, 2], "o-", ms=3, label=f"batch {b}")
    right.set(xlabel="training time (s)", ylabel="test accuracy",
              title="Test accuracy for the same training time")
    right.legend(fontsize="small")
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig
