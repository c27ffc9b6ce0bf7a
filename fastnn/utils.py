"""Keras's fn.utils (to_categorical, normalize, set_random_seed, PyDataset), and tools for
users checking their own models."""
import numpy as np

from fastnn._random import set_seed as set_random_seed
from fastnn.data_adapters import PyDataset
from fastnn.datasets import to_categorical

Sequence = PyDataset   # Keras 3 exports PyDataset under its Keras 2 name too

__all__ = ["to_categorical", "normalize", "set_random_seed", "PyDataset", "Sequence",
           "float64_copy", "check_gradients"]


def normalize(x, axis=-1, order=2):
    """x divided by its norm of the given order along axis (Keras's
    keras.utils.normalize): a new float array of x's shape; zero norms count as 1, so
    all-zero slices stay zero.

    x: a numeric array (ints become float64). axis: an int, or None for the norm of the
    whole (vector or matrix) array, as np.linalg.norm takes it. order: as np.linalg.norm's ord.
    """
    from fastnn import _validation as v
    x = v.as_array("normalize: x", x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    try:
        norm = np.atleast_1d(np.linalg.norm(x, order, axis))
    except (ValueError, TypeError) as e:
        raise ValueError(f"normalize: cannot take the order-{order!r} norm of an array of "
                         f"shape {x.shape} along axis {axis!r}: {e}") from None
    norm[norm == 0] = 1
    return x / np.expand_dims(norm, -1 if axis is None else axis)


def float64_copy(model):
    """A float64 copy of a built model: same layers, same weights (as float64), same loss.
    The optimizer is not copied."""
    from fastnn import layers as L
    from fastnn.models import Sequential
    model._require_built("float64_copy")
    copy = Sequential([L.from_config(type(layer).__name__, layer.get_config())
                       for layer in model.layers], dtype="float64")
    copy._build(model._input_shape)
    copy.set_weights(model.get_weights())
    if model.compiled:
        copy.compile(loss=model.loss, optimizer="sgd")
    return copy


def check_gradients(model, x, y, sample_weight=None, epsilon=1e-6, max_entries=200,
                    seed=0):
    """Finite-difference check of the model's backpropagation, on (x, y), in float64.

    Compares ``model.gradients(x, y)`` with central differences of the training loss
    (dropout masks held fixed) on a float64 copy of the model (the original is not
    touched). At most ``max_entries`` randomly chosen entries per weight array are
    checked (all of them for small arrays).

    Returns {"<layer>/kernel": worst relative error, "<layer>/bias": ...}, where the
    relative error of an entry is |a - n| / max(|a| + |n|, 1e-2 · rms(A), 1e-8), A being
    the whole analytic gradient array: the floor keeps entries whose gradient is nearly
    zero (where the finite difference is all rounding noise, ~1e-10) from reporting huge
    relative errors. Values around 1e-6 or below mean the gradients are right; 1e-3 or more
    means something is wrong (or x sits on a kink of ReLU/maxout).
    """
    from fastnn import _validation as v
    epsilon = v.real("check_gradients: epsilon", epsilon, 0, 1e-2, low_open=True)
    max_entries = v.positive_int("check_gradients: max_entries", max_entries)
    seed = v.positive_int("check_gradients: seed", seed, minimum=0)
    m = float64_copy(model)
    if not m.compiled:
        raise ValueError("check_gradients: compile the model first (the loss is needed)")
    x, y, sw = m._prepare("check_gradients", x, y, sample_weight)
    analytic = m.gradients(x, y, sample_weight=sample_weight)
    rng = np.random.default_rng(seed)
    names = [f"{layer.name}/{kind}" for layer in m.layers
             for kind in layer.trainable_weight_names]

    def loss():
        return m._batch_pass("check_gradients", x, y, sample_weight, None)[0]

    report = {}
    for name, w, a in zip(names, m.trainable_weights, analytic):
        flat, aflat = w.reshape(-1), a.reshape(-1)
        idx = np.arange(flat.size)
        if flat.size > max_entries:
            idx = rng.choice(flat.size, max_entries, replace=False)
        worst = 0.0
        floor = max(1e-2 * float(np.sqrt(np.mean(aflat ** 2))), 1e-8)
        for i in idx:
            old = flat[i]
            flat[i] = old + epsilon
            up = loss()
            flat[i] = old - epsilon
            down = loss()
            flat[i] = old
            numeric = (up - down) / (2 * epsilon)
            err = abs(aflat[i] - numeric) / max(abs(aflat[i]) + abs(numeric), floor)
            worst = max(worst, err)
        report[name] = float(worst)
    return report
