"""The lecture, reproduced: each claim of the deep-learning course as an experiment that
runs in seconds to a few minutes on a laptop CPU, on Fashion-MNIST (the subset that ships
inside fastnn by default; the full set with data=load_data("full") when installed).

    fastnn-lecture --list
    fastnn-lecture deeper_not_better relu_maxout
    fastnn-lecture all --out lecture/          # one HTML page, the PNGs and a JSON

    from fastnn.examples import lecture
    result = lecture.l1_vs_l2()                # a Result: numbers, tables, figures
    result.numbers["L1"]["zero_fraction"], result.measured

Every experiment function takes size arguments (the defaults are the full lecture, QUICK
holds reduced sizes that run in seconds), a seed, and plot=False to skip the figures
(they need matplotlib: pip install 'fastnn[plot]').
"""
from fastnn.examples.lecture.common import Data, Figure, Result, Table, load_data
from fastnn.examples.lecture.depth import deeper_not_better, relu_maxout
from fastnn.examples.lecture.minibatches import minibatches
from fastnn.examples.lecture.optimization import optimizers
from fastnn.examples.lecture.overfitting import overfitting_vs_bad_training
from fastnn.examples.lecture.regularization import dropout_and_early_stopping, l1_vs_l2

# In the order of the lecture.
EXPERIMENTS = {
    "minibatches": minibatches,
    "overfitting_vs_bad_training": overfitting_vs_bad_training,
    "deeper_not_better": deeper_not_better,
    "relu_maxout": relu_maxout,
    "optimizers": optimizers,
    "l1_vs_l2": l1_vs_l2,
    "dropout_and_early_stopping": dropout_and_early_stopping,
}

# Reduced sizes (fastnn-lecture --quick, and the tests): seconds each, and still sizes
# at which every claim holds clearly for the seeds used, not by a hair.
_QUICK_DEPTH = {"depths": (1, 2, 4, 8), "width": 64, "epochs": 3}
QUICK = {
    "minibatches": {"batch_sizes": (1, 32, 1024), "budget": 0.3, "hidden": 128,
                    "checkpoints": 3},
    "overfitting_vs_bad_training": {"width": 32, "deep_epochs": 3, "memorize_images": 200,
                                    "memorize_width": 128, "memorize_epochs": 25},
    "deeper_not_better": _QUICK_DEPTH,
    "relu_maxout": _QUICK_DEPTH,
    "optimizers": {"n_train": 2000, "hidden": 64, "epochs": 2, "steps": 250},
    "l1_vs_l2": {"epochs": 3, "n_train": 3000},
    "dropout_and_early_stopping": {"n_train": 600, "width": 128, "epochs": 25,
                                   "patience": 3},
}


def run(name, quick=False, seed=0, data=None, plot=True, earlier=None):
    """Run one experiment by name at its default (or QUICK) size. ``earlier``: results
    already computed in this session, {name: Result}, which an experiment may reuse
    (relu_maxout reuses deeper_not_better's sigmoid networks)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; expected one of "
                         f"{', '.join(EXPERIMENTS)}")
    kwargs = dict(QUICK[name]) if quick else {}
    if name == "relu_maxout" and earlier and "deeper_not_better" in earlier:
        kwargs["compare"] = earlier["deeper_not_better"]
    return EXPERIMENTS[name](data=data, seed=seed, plot=plot, **kwargs)


__all__ = ["EXPERIMENTS", "QUICK", "run", "load_data", "Data", "Result", "Table", "Figure",
           *EXPERIMENTS]
