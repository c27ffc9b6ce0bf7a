"""Weight penalties: L1, L2 and both (Keras 3's classes, defaults and aliases).

penalty(w) = l1 * Σ|w| + l2 * Σ w², added to the *mean* batch loss as it is (no division
by the batch size or the data size; the same convention as Keras). Its gradient,
l1 * sign(w) + 2 * l2 * w, is added to the weight gradient inside the dense backward kernel,
which reads only the two factors: every regularizer here is an (l1, l2) pair.

As in Keras 3, ``l1``, ``l2`` and ``l1_l2`` are the classes ``L1``, ``L2`` and ``L1L2``
under their old names (so ``l1_l2()`` has Keras 3's defaults l1 = l2 = 0; the *string*
'l1_l2' means l1 = l2 = 0.01, as in Keras).
"""
import math
import numbers

import numpy as np

from fastnn._config import Configurable
from fastnn._core import dense as _dense


def _factor(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"regularizer: {name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"regularizer: {name} must be finite and >= 0, got {value!r}")
    return float(value)


class Regularizer(Configurable):
    """λ₁·Σ|w| + λ₂·Σw² (the base of L1, L2 and L1L2; every subclass sets both factors)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor("l1", l1)
        self.l2 = _factor("l2", l2)

    def __call__(self, x):
        """The penalty of the weights x (any shape), as a float."""
        x = np.ascontiguousarray(x)
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float64)
        return float(_dense.penalty(x.reshape(-1), self.l1, self.l2))

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1L2(Regularizer):
    """l1·Σ|w| + l2·Σw² (Keras 3's defaults: both 0)."""

    def __init__(self, l1=0.0, l2=0.0):
        super().__init__(l1=l1, l2=l2)


class L1(Regularizer):
    """l1·Σ|w| (Keras's default l1 = 0.01)."""

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """l2·Σw² (Keras's default l2 = 0.01)."""

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


# Keras's aliases: the same classes, not second implementations.
l1 = L1
l2 = L2
l1_l2 = L1L2

CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
# Strings mean Keras's defaults for each penalty ('l1_l2': both 0.01, as Keras says).
_NAMES = {"l1": L1, "l2": L2, "l1_l2": lambda: L1L2(l1=0.01, l2=0.01)}


def serialize(regularizer):
    """{'class_name': 'L2', 'config': {'l2': 0.01}} (Keras's form), or None."""
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}


def _from_dict(value):
    if "class_name" in value:
        unknown = set(value) - {"class_name", "config"}
        cls = CLASSES.get(value["class_name"])
        if unknown or cls is None or not isinstance(value.get("config", {}), dict):
            raise ValueError(f"regularizer: cannot rebuild {value!r}; expected "
                             f"{{'class_name': one of {sorted(CLASSES)}, 'config': {{...}}}}")
        config = value.get("config", {})
        allowed = set(cls().get_config())
    else:
        # The flat {'l1': ..., 'l2': ...} form (older model files).
        cls, config, allowed = L1L2, value, {"l1", "l2"}
    unknown = set(config) - allowed
    if unknown:
        raise ValueError(f"regularizer: unknown keys {sorted(unknown)} in {value!r}; "
                         f"allowed: {', '.join(repr(k) for k in sorted(allowed))}")
    return cls(**config)


def get(value):
    """None, a Regularizer, a config dict (``serialize``'s or a flat {'l1', 'l2'}), or a
    name ('l1', 'l2', 'l1_l2')."""
    if value is None or isinstance(value, Regularizer):
        return value
    if isinstance(value, dict):
        return _from_dict(value)
    if isinstance(value, str) and value in _NAMES:
        return _NAMES[value]()
    raise ValueError(f"regularizer: expected None, 'l1', 'l2', 'l1_l2' or a "
                     f"fn.regularizers object (L1, L2, L1L2), got {value!r}")


deserialize = get
