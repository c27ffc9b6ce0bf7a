"""Preprocessing: pixels to [0, 1] floats, labels to one-hot rows."""
import numpy as np


def prepare_images(x, dtype="float32", flatten=True):
    """Scale raw pixels to [0, 1] and (by default) flatten each image.

    Args:
        x: integer array of pixel values 0..255, shape (n, 28, 28) or any
            (n, ...). Floating input is refused, so images cannot be scaled
            twice by mistake.
        dtype: floating dtype of the result, "float32" (default) or "float64".
        flatten: reshape (n, h, w, ...) to (n, h*w*...), e.g. (n, 28, 28) to
            (n, 784), the input a Dense layer wants.

    Returns:
        new C-contiguous array ``x / 255`` of ``dtype``, shape (n, 784) for
        (n, 28, 28) input when flatten is true, else x's shape.

    Raises:
        ValueError: x is not integer, has values outside 0..255, or has fewer
            than 2 dimensions when flatten is true; dtype is not floating.
    """
    x = np.asarray(x)
    try:
        out_dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype: expected a floating dtype such as 'float32', got {dtype!r}") from None
    if out_dtype.kind != "f":
        raise ValueError(f"dtype: expected a floating dtype such as 'float32', got {out_dtype}")
    if x.dtype.kind not in "ui":
        raise ValueError(
            f"x: expected integer pixel values 0..255 (e.g. uint8), got dtype {x.dtype}; "
            "already-scaled float images need no prepare_images")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError(f"x: pixel values must be in 0..255, got {x.min()}..{x.max()}")
    if flatten:
        if x.ndim < 2:
            raise ValueError(f"x: expected shape (n, ...) with at least 2 dimensions to flatten, got {x.shape}")
        x = x.reshape(x.shape[0], -1)
    out = x.astype(out_dtype)
    out /= out_dtype.type(255)
    return out


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode integer class labels (same semantics as Keras).

    Args:
        y: array-like of class indices, integer-valued (integer or whole
            floats), shape (n,) or (n, 1); any shape works, a trailing axis
            of size 1 is dropped as in Keras.
        num_classes: number of classes; default ``max(y) + 1``.
        dtype: dtype of the result (default "float32").

    Returns:
        array of shape ``y.shape + (num_classes,)`` (after dropping a trailing
        1), with a 1 at each label's index and 0 elsewhere. (n,) -> (n, C).

    Raises:
        ValueError: y is not integer-valued, is negative or >= num_classes,
            or num_classes is not a positive integer.
    """
    y = np.asarray(y)
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    if y.dtype.kind == "f":
        # Whole numbers only, and small enough to convert to int64 exactly.
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)) or np.any(np.abs(y) > 2 ** 53):
            raise ValueError("y: expected integer class labels, got non-integer values")
    elif y.dtype.kind not in "ui":
        raise ValueError(f"y: expected integer class labels, got dtype {y.dtype}")
    shape = y.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    labels = y.reshape(-1)
    if labels.size and labels.min() < 0:
        raise ValueError(f"y: class labels must be non-negative, got {labels.min()}")
    labels = labels.astype(np.int64)
    if num_classes is None:
        if labels.size == 0:
            raise ValueError("num_classes: must be given when y is empty")
        num_classes = int(labels.max()) + 1
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes: expected a positive integer, got {num_classes!r}")
    num_classes = int(num_classes)
    if labels.size and labels.max() >= num_classes:
        raise ValueError(f"y: label {labels.max()} is out of range for num_classes={num_classes}")
    out = np.zeros((labels.size, num_classes), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out.reshape(shape + (num_classes,))

