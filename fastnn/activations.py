"""Activations: Keras's functions (``fn.activations.relu(x)`` on arrays) and the kernel
codes layers run them with. The math lives in fastnn/_core/activations.pyx.

A layer never calls these functions while training: ``Dense(activation=fn.activations.relu)``
resolves the function to its name ('relu', what the layer's config stores) and runs the
fused kernel. Calling a function on an array runs that same kernel.

Every activation's derivative is computed from its output alone (sigmoid: y(1-y),
tanh: 1-y², ReLU/leaky ReLU: the sign of y, softmax: y(g - <g, y>)), so a layer's backward
pass needs only the buffer its forward pass wrote.
"""
import numpy as np

from fastnn import _validation as v
from fastnn._core import activations as _kernels
from fastnn._core.activations import Activation as _Code

CODES = {
    "linear": _Code.LINEAR,
    "sigmoid": _Code.SIGMOID,
    "tanh": _Code.TANH,
    "relu": _Code.RELU,
    "leaky_relu": _Code.LEAKY_RELU,
    "softmax": _Code.SOFTMAX,
}
ALIASES = {None: "linear", "leakyrelu": "leaky_relu"}

LINEAR, SIGMOID, TANH, RELU, LEAKY_RELU, SOFTMAX = (
    int(CODES[k]) for k in ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"))


# ------------------------------------------------------------ the functions, on arrays --
def _apply(x, code, alpha=0.0, axis=-1):
    """act(x) for an array of any shape, through the layer kernel on a (rows, last axis)
    view; softmax runs along ``axis``. float32/float64 stay; other numbers become
    float64. Returns a new array; x is not modified."""
    arr = v.as_array("x", x)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if arr.ndim == 0:
        return _apply(arr.reshape(1), code, alpha).reshape(())
    if code == SOFTMAX and axis not in (-1, arr.ndim - 1):
        return np.moveaxis(_apply(np.moveaxis(arr, axis, -1), code, alpha), -1, axis)
    out = np.array(arr, order="C")          # a copy the kernel works in
    if out.size:
        rows = out.reshape(-1, out.shape[-1])
        _kernels.activation_forward(rows, rows, code, alpha)
    return out


def linear(x):
    """x (as a float array)."""
    return _apply(x, LINEAR)


def sigmoid(x):
    """1 / (1 + exp(-x))."""
    return _apply(x, SIGMOID)


def tanh(x):
    """tanh(x)."""
    return _apply(x, TANH)


def relu(x):
    """max(x, 0)."""
    return _apply(x, RELU)


def leaky_relu(x, negative_slope=0.2):
    """x for x > 0, negative_slope · x otherwise (Keras's default slope 0.2).

    In a layer (``Dense(activation=fn.activations.leaky_relu)``) the slope is the layer's
    ``alpha`` (fastnn's default 0.01), as for activation='leaky_relu'.
    """
    slope = v.real("leaky_relu: negative_slope", negative_slope, 0)
    return _apply(x, LEAKY_RELU, slope)


def softmax(x, axis=-1):
    """exp(x) / Σ exp(x) along ``axis`` (shifted by the maximum, so it never overflows)."""
    arr = v.as_array("x", x)
    ndim = max(arr.ndim, 1)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or \
            not -ndim <= axis < ndim:
        raise ValueError(f"softmax: axis must be an integer in [{-ndim}, {ndim}) for an "
                         f"array of {arr.ndim} dimensions, got {axis!r}")
    return _apply(arr, SOFTMAX, axis=int(axis))


FUNCTIONS = {"linear": linear, "sigmoid": sigmoid, "tanh": tanh, "relu": relu,
             "leaky_relu": leaky_relu, "softmax": softmax}
_NAME_OF = {f: name for name, f in FUNCTIONS.items()}


# ------------------------------------------------------------------------ resolution --
def resolve(activation):
    """The canonical name ('relu', ...) of a name, an alias or a function of this module;
    None means 'linear'. What layers store."""
    if callable(activation):
        name = _NAME_OF.get(activation)
        if name is None:
            raise ValueError(f"activation: {activation!r} is not one of fastnn's activations;"
                             f" activations are fused into the kernels, so only "
                             f"{', '.join('fn.activations.' + k for k in FUNCTIONS)} (or "
                             f"their names) work")
        return name
    if activation is not None and not isinstance(activation, str):
        raise TypeError(f"activation: expected a name such as 'relu', got {activation!r} "
                        f"(or a function such as fn.activations.relu)")
    key = ALIASES.get(activation, activation)
    if not isinstance(key, str) or key.lower() not in CODES:
        raise ValueError(f"activation: unknown activation {activation!r}; expected one of "
                         f"{sorted(CODES)}")
    return key.lower()


def get(identifier):
    """The activation function for a name or a function (Keras's ``activations.get``);
    None means ``linear``."""
    return FUNCTIONS[resolve(identifier)]


def serialize(activation):
    """The name of an activation function (Keras's ``activations.serialize``)."""
    return resolve(activation)


def deserialize(name):
    """The function of a name (Keras's ``activations.deserialize``)."""
    if not isinstance(name, str):
        raise TypeError(f"activation: deserialize expects a name such as 'relu', got "
                        f"{name!r}")
    return get(name)


def code(activation):
    """The kernel code of an activation (name or function)."""
    return int(CODES[resolve(activation)])
