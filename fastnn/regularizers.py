"""Weight penalties: L1, L2 and both.

penalty(w) = l1 * Σ|w| + l2 * Σ w², added to the *mean* batch loss as it is (no division
by the batch size or the data size; the same convention as Keras). Its gradient,
l1 * sign(w) + 2 * l2 * w, is added to the weight gradient inside the dense backward kernel.
"""
import math
import numbers


class Regularizer:
    """λ₁·Σ|w| + λ₂·Σw². Use `l1`, `l2` or `l1_l2` to make one."""

    def __init__(self, l1=0.0, l2=0.0):
        for name, v in (("l1", l1), ("l2", l2)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise TypeError(f"regularizer: {name} must be a number, got {v!r}")
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"regularizer: {name} must be finite and >= 0, got {v!r}")
        self.l1 = float(l1)
        self.l2 = float(l2)

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self):
        return f"Regularizer(l1={self.l1!r}, l2={self.l2!r})"


def l1(l1=0.01):
    """λ·Σ|w| (Keras's default λ = 0.01)."""
    return Regularizer(l1=l1)


def l2(l2=0.01):
    """λ·Σw² (Keras's default λ = 0.01)."""
    return Regularizer(l2=l2)


def l1_l2(l1=0.01, l2=0.01):
    """λ₁·Σ|w| + λ₂·Σw²."""
    return Regularizer(l1=l1, l2=l2)


def get(value):
    """None, a Regularizer, a config dict, or a name ('l1', 'l2', 'l1_l2')."""
    if value is None or isinstance(value, Regularizer):
        return value
    if isinstance(value, dict):
        unknown = set(value) - {"l1", "l2"}
        if unknown:
            raise ValueError(f"regularizer: unknown keys {sorted(unknown)} in {value!r}; "
                             f"allowed: 'l1', 'l2'")
        return Regularizer(**value)
    if isinstance(value, str) and value in ("l1", "l2", "l1_l2"):
        return {"l1": l1, "l2": l2, "l1_l2": l1_l2}[value]()
    raise ValueError(f"regularizer: expected None, 'l1', 'l2', 'l1_l2' or a "
                     f"fn.regularizers object, got {value!r}")
