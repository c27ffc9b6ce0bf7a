"""Activation names -> kernel codes. The math lives in fastnn/_core/activations.pyx.

Every activation's derivative is computed from its output alone (sigmoid: y(1-y),
tanh: 1-y², ReLU/leaky ReLU: the sign of y, softmax: y(g - <g, y>)), so a layer's backward
pass needs only the buffer its forward pass wrote.
"""
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


def get(name):
    """The canonical name of an activation ('relu', ...). None means 'linear'."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"activation: expected a name such as 'relu', got {name!r}")
    key = ALIASES.get(name, name)
    if not isinstance(key, str) or key.lower() not in CODES:
        raise ValueError(f"activation: unknown activation {name!r}; expected one of "
                         f"{sorted(CODES)}")
    return key.lower()


def code(name):
    """The kernel code of an activation name."""
    return int(CODES[get(name)])
