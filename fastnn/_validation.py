"""Every check on user input, in one place. Nothing reaches a kernel (which runs without
bounds checks and without the GIL) until it has passed through here: right type, right
shape, right dtype, C-contiguous, finite, labels in range.

Errors are ValueError (bad value or shape) or TypeError (bad type), and always name the
argument and what was expected.
"""
import numbers

import numpy as np

from fastnn._core import ops as _ops


def _kind_ok(arr):
    # bool, integers, unsigned and real floats convert to a float dtype exactly enough;
    # complex (would drop the imaginary part), object, strings, dates do not.
    return arr.dtype.kind in "biuf"


def as_array(name, value):
    """np.asarray with a clear TypeError for things that are not numeric arrays."""
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(f"{name}: masked arrays are not supported; pass "
                        f"np.ma.filled(x, value) or drop the masked rows")
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as e:   # ragged nested lists, ...
            raise TypeError(f"{name}: expected a numeric array, could not convert "
                            f"{type(value).__name__}: {e}") from None
    if not _kind_ok(arr):
        raise TypeError(f"{name}: expected a numeric array (bool, int or float), got dtype "
                        f"{arr.dtype}")
    return arr


def check_finite(name, arr):
    """ValueError if arr (C-contiguous float) holds NaN or ±inf."""
    if arr.size and not _ops.all_finite(arr.reshape(-1)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name}: contains NaN or infinity (first at index "
                         f"{tuple(int(i) for i in bad)})")


def _convert(name, arr, dtype):
    """C-contiguous copy (or view) of arr in dtype; refuses values the dtype cannot hold
    (float64 beyond float32's range would silently become inf)."""
    if arr.dtype.kind == "f" and arr.dtype.itemsize > np.dtype(dtype).itemsize and arr.size:
        finite = arr[np.isfinite(arr)]
        big = np.abs(finite).max(initial=0)
        if big > np.finfo(dtype).max:
            raise ValueError(f"{name}: values up to {big:g} overflow the model dtype "
                             f"{np.dtype(dtype).name}")
    return np.ascontiguousarray(arr, dtype=dtype)


def as_float_matrix(name, value, dtype, width=None):
    """A C-contiguous (n, width) array of dtype with n >= 1, converted once, finite."""
    arr = check_matrix_shape(name, as_array(name, value), width)
    out = _convert(name, arr, dtype)
    check_finite(name, out)
    return out


def check_matrix_shape(name, arr, width=None):
    """arr itself, if it is (n, width) with n >= 1 (any width >= 1 when width is None)."""
    if arr.ndim != 2:
        hint = " (use x.reshape(-1, 1) for a single feature)" if arr.ndim == 1 else ""
        raise ValueError(f"{name}: expected a 2-D array (samples, features), got shape "
                         f"{arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: has no samples (shape {arr.shape})")
    if width is not None and arr.shape[1] != width:
        raise ValueError(f"{name}: expected {width} features per sample (the model's input "
                         f"width), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name}: has no features (shape {arr.shape})")
    return arr


def as_float_samples(name, value, dtype, shape):
    """Samples of shape ``shape`` (an (n, *shape) array) as the C-contiguous (n, prod(shape))
    matrix of dtype the layers compute on: a reshape view of value when it already is
    C-contiguous in dtype, else of the one converted copy; n >= 1, finite."""
    if len(shape) == 1:
        return as_float_matrix(name, value, dtype, width=shape[0])
    arr = check_samples_shape(name, as_array(name, value), shape)
    out = _convert(name, arr, dtype)
    check_finite(name, out)
    return out.reshape(out.shape[0], -1)


def check_samples_shape(name, arr, shape):
    """arr itself, if it holds n >= 1 samples of shape ``shape`` ((n, *shape))."""
    if len(shape) == 1:
        return check_matrix_shape(name, arr, shape[0])
    if arr.shape[1:] != tuple(shape):
        dims = ", ".join(str(d) for d in shape)
        raise ValueError(f"{name}: expected an array of shape (samples, {dims}) (the model's "
                         f"input shape), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: has no samples (shape {arr.shape})")
    return arr


def targets(name, value, kind, width, n, dtype):
    """Validate and convert targets y for a loss with target kind ``kind``.

    'sparse': integer labels (n,) or (n, 1), whole numbers in [0, width) -> int64 (n,).
    otherwise: a float (n, width) array. A 1-D y of length n is accepted only when the
    model has one output (then it is unambiguous: sample i's target); against a wider
    output it is an error, never broadcast.
    """
    arr = as_array(name, value)
    if kind == "sparse":
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(f"{name}: sparse_categorical_crossentropy expects integer labels "
                             f"of shape ({n},), got shape {arr.shape} (for one-hot targets "
                             f"use loss='categorical_crossentropy')")
        _check_rows(name, arr, n)
        if arr.dtype.kind == "f":
            if not np.isfinite(arr).all():
                raise ValueError(f"{name}: labels contain NaN or infinity")
            if not (arr == np.round(arr)).all():
                raise ValueError(f"{name}: labels must be whole numbers, got e.g. "
                                 f"{arr[arr != np.round(arr)][0]!r}")
        if arr.size and (arr.min() < 0 or arr.max() >= width):
            raise ValueError(f"{name}: labels must be in [0, {width}) for a model with "
                             f"{width} outputs, got values in [{arr.min()}, {arr.max()}]")
        return np.ascontiguousarray(arr, dtype=np.int64)
    if arr.ndim == 1:
        if width != 1:
            raise ValueError(f"{name}: got a 1-D array of shape {arr.shape} but the model "
                             f"has {width} outputs; pass y of shape (n, {width})"
                             + (" (or integer labels with loss="
                                "'sparse_categorical_crossentropy')" if kind == "onehot"
                                else ""))
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected shape ({n}, {width}), got {arr.shape}")
    _check_rows(name, arr, n)
    if arr.shape[1] != width:
        raise ValueError(f"{name}: expected {width} columns (the model's output width), got "
                         f"shape {arr.shape}")
    out = _convert(name, arr, dtype)
    check_finite(name, out)
    if kind in ("binary", "onehot") and out.size and (out.min() < 0 or out.max() > 1):
        raise ValueError(f"{name}: targets for this loss must be in [0, 1], got values in "
                         f"[{out.min():g}, {out.max():g}]")
    return out


def _check_rows(name, arr, n):
    if arr.shape[0] != n:
        raise ValueError(f"{name}: has {arr.shape[0]} samples but x has {n}; they must "
                         f"match")


def sample_weights(name, value, n, dtype):
    """None -> an empty array (the kernels' 'unweighted'); else (n,) finite, >= 0."""
    if value is None:
        return np.empty(0, dtype)
    arr = as_array(name, value)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n},), got {arr.shape}")
    out = _convert(name, arr, dtype)
    check_finite(name, out)
    if out.size and out.min() < 0:
        raise ValueError(f"{name}: weights must be >= 0, got {out.min():g}")
    return out


def positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return int(value)


def real(name, value, low=None, high=None, low_open=False, high_open=False):
    """A finite real number within [low, high] (open ends where asked)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name}: must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)) or \
            high is not None and (value > high or (high_open and value == high)):
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name}: must be in {lo}{low if low is not None else '-inf'}, "
                         f"{high if high is not None else 'inf'}{hi}, got {value}")
    return value
