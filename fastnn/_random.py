"""Seeds. One global seed source (`set_seed`); each model draws its own 63-bit seed from it
when it is built, and every random choice the model makes is a pure function of that seed
and a counter: initial weights, the validation split, each epoch's shuffle and each step's
dropout masks. So the same seed and data give bit-identical training, and training resumed
at epoch k makes exactly the choices the uninterrupted run would have made.
"""
import numpy as np

_state = {"rng": np.random.default_rng()}


def set_seed(seed):
    """Seed fastnn: models built afterwards are reproducible (given the same thread count)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"set_seed: seed must be an integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"set_seed: seed must be >= 0, got {seed}")
    _state["rng"] = np.random.default_rng(int(seed))


def new_model_seed():
    """A fresh 63-bit seed for one model, drawn from the global source."""
    return int(_state["rng"].integers(0, 2**63 - 1))


# Streams derived from a model seed; the tags keep them independent.
INIT, SPLIT, SHUFFLE, DROPOUT = 1, 2, 3, 4


def generator(model_seed, stream, *counters):
    """A NumPy Generator for one stream (e.g. SHUFFLE, epoch) of one model."""
    return np.random.default_rng([int(model_seed), stream, *[int(c) for c in counters]])
