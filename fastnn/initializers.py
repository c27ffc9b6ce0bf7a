"""Weight initializers (Keras's names and formulas). Each fills an array in place from a
NumPy Generator; fan_in/fan_out are the kernel's (inputs, units).
"""
import numpy as np


def glorot_uniform(rng, shape):
    """U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    a = np.sqrt(6.0 / (shape[0] + shape[-1]))
    return rng.uniform(-a, a, size=shape)


def glorot_normal(rng, shape):
    """Truncated normal (±2σ), σ = sqrt(2 / (fan_in + fan_out))."""
    return _truncated_normal(rng, shape, np.sqrt(2.0 / (shape[0] + shape[-1])))


def he_uniform(rng, shape):
    """U(-a, a), a = sqrt(6 / fan_in) (He et al. 2015, for ReLU)."""
    a = np.sqrt(6.0 / shape[0])
    return rng.uniform(-a, a, size=shape)


def he_normal(rng, shape):
    """Truncated normal (±2σ), σ = sqrt(2 / fan_in)."""
    return _truncated_normal(rng, shape, np.sqrt(2.0 / shape[0]))


def zeros(rng, shape):
    return np.zeros(shape)


def ones(rng, shape):
    return np.ones(shape)


def _truncated_normal(rng, shape, stddev):
    # Keras divides by 0.8796 so that the truncated distribution has the intended stddev.
    stddev = stddev / 0.87962566103423978
    out = rng.standard_normal(size=shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(size=int(bad.sum()))
        bad = np.abs(out) > 2
    return out * stddev


INITIALIZERS = {f.__name__: f for f in
                (glorot_uniform, glorot_normal, he_uniform, he_normal, zeros, ones)}


def get(name):
    if not isinstance(name, str) or name not in INITIALIZERS:
        raise ValueError(f"initializer: unknown initializer {name!r}; expected one of "
                         f"{sorted(INITIALIZERS)}")
    return INITIALIZERS[name]
