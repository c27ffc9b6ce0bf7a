"""Layers: forward, backward, parameters. Each layer is a thin orchestrator around one or
two kernel calls in fastnn/_core; it owns no arrays of its own beyond views of the model's
parameter buffers, so one model can run several forward passes at once (each with its own
buffers, see `make_buffers`).

The protocol (used by fastnn.models.Sequential):
- ``build(input_dim) -> output_dim``: fix the shapes.
- ``param_specs() -> [(name, shape, initializer)]`` and ``bind(params, grads)``: the model
  allocates one flat buffer for all parameters (and one for their gradients) and hands each
  layer its views, so the optimizer updates everything in one kernel call.
- ``make_buffers(n, dtype, training, need_grad_x)``: the per-batch-size buffers, made once.
- ``forward(x, buf, training, key) -> out`` with out a buffer of ``buf`` (or x itself).
- ``backward(x, buf, grad_out, need_grad_x) -> grad_x``; grad_out is overwritten.
  Returns the layer's regularization penalty through ``buf.penalty``.
"""
import numbers

import numpy as np

from fastnn import activations, initializers, regularizers
from fastnn._core import dense as _dense
from fastnn._core import random as _random
from fastnn._core import activations as _act


def _positive_int(name, value, owner):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{owner}: {name} must be >= 1, got {value}")
    return int(value)


class _Buffers:
    """The arrays one layer needs for one batch size (attributes set by the layer)."""
    penalty = 0.0


class Layer:
    """Base class. Subclasses set ``input_dim``/``units`` in ``build``."""
    _counter = {}

    def __init__(self, name=None, input_dim=None):
        kind = type(self).__name__.lower()
        if name is None:
            Layer._counter[kind] = Layer._counter.get(kind, 0) + 1
            name = f"{kind}_{Layer._counter[kind]}"
        if not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string, got {name!r}")
        self.name = name
        self.input_dim = None if input_dim is None else _positive_int(
            "input_dim", input_dim, type(self).__name__)
        self.units = None
        self.built = False

    # -- structure -----------------------------------------------------------------
    def build(self, input_dim):
        self.input_dim = input_dim
        self.units = input_dim
        self.built = True
        return self.units

    def param_specs(self):
        return []

    def bind(self, params, grads):
        pass

    @property
    def weights(self):
        """Live views of the layer's weights, in get_weights() order."""
        return []

    @property
    def gradients(self):
        """Live views of the gradients of ``weights`` (same order)."""
        return []

    def count_params(self):
        return sum(int(np.prod(s)) for _, s, _ in self.param_specs())

    def output_activation(self):
        """The activation applied last by this layer ('softmax', ...) or None."""
        return None

    def keep_logits(self, keep):
        """Ask the layer to keep its pre-activation (for a fused loss)."""

    def logits(self, x, buf):
        raise NotImplementedError

    def penalty(self):
        """The regularization penalty of the current weights."""
        return 0.0

    def get_config(self):
        return {"name": self.name}

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class Dense(Layer):
    """A fully-connected layer: out = activation(x @ W + b).

    Shapes: x (n, input_dim), W (input_dim, units), b (units,), out (n, units).
    """

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, alpha=0.01,
                 input_dim=None, input_shape=None, name=None):
        if input_shape is not None:
            if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 1:
                raise ValueError(f"Dense: input_shape must be a 1-tuple (features,), got "
                                 f"{input_shape!r}")
            input_dim = input_shape[0]
        super().__init__(name, input_dim)
        self.units = _positive_int("units", units, "Dense")
        self.activation = activations.resolve(activation)
        self._code = activations.code(self.activation)
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or \
                not (0 < alpha < 1):
            raise ValueError(f"Dense: alpha (the leaky ReLU slope) must be in (0, 1), got "
                             f"{alpha!r}")
        self.alpha = float(alpha)
        if not isinstance(use_bias, bool):
            raise TypeError(f"Dense: use_bias must be True or False, got {use_bias!r}")
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        initializers.get(kernel_initializer)
        initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self._keep_logits = False
        self.W = self.b = self.dW = self.db = None

    def build(self, input_dim):
        self.input_dim = input_dim
        self.built = True
        return self.units

    def param_specs(self):
        specs = [("kernel", (self.input_dim, self.units), self.kernel_initializer)]
        # Without a bias the kernels still get a (units,) array: a zero bias that is
        # never updated (its gradient is zeroed by the model) keeps one code path.
        specs.append(("bias", (self.units,),
                      self.bias_initializer if self.use_bias else "zeros"))
        return specs

    def bind(self, params, grads):
        self.W, self.b = params
        self.dW, self.db = grads

    @property
    def weights(self):
        return [self.W, self.b] if self.use_bias else [self.W]

    @property
    def gradients(self):
        return [self.dW, self.db] if self.use_bias else [self.dW]

    def count_params(self):
        return self.input_dim * self.units + (self.units if self.use_bias else 0)

    def output_activation(self):
        return self.activation

    def keep_logits(self, keep):
        self._keep_logits = bool(keep)

    def logits(self, x, buf):
        return buf.z

    def _l1_l2(self):
        k = self.kernel_regularizer
        b = self.bias_regularizer if self.use_bias else None
        return (k.l1 if k else 0.0, k.l2 if k else 0.0,
                b.l1 if b else 0.0, b.l2 if b else 0.0)

    def penalty(self):
        kl1, kl2, bl1, bl2 = self._l1_l2()
        p = 0.0
        if kl1 or kl2:
            p += _dense.penalty(self.W.reshape(-1), kl1, kl2)
        if bl1 or bl2:
            p += _dense.penalty(self.b, bl1, bl2)
        return p

    def make_buffers(self, n, dtype, training, need_grad_x):
        buf = _Buffers()
        buf.out = np.empty((n, self.units), dtype)
        buf.z = np.empty((n if self._keep_logits else 0, self.units), dtype)
        buf.grad_x = np.empty((n if training and need_grad_x else 0, self.input_dim), dtype)
        return buf

    def forward(self, x, buf, training, key=0):
        _dense.dense_forward(x, self.W, self.b, buf.out, buf.z, self._code, self.alpha)
        return buf.out

    def backward(self, x, buf, grad_out, need_grad_x, grad_is_dz=False):
        """grad_out: dL/d(out), or dL/dz when grad_is_dz (a fused loss produced it)."""
        kl1, kl2, bl1, bl2 = self._l1_l2()
        code = activations.LINEAR if grad_is_dz else self._code
        buf.penalty = _dense.dense_backward(
            x, self.W, self.b, buf.out, grad_out, self.dW, self.db,
            buf.grad_x, code, self.alpha, kl1, kl2, bl1, bl2)
        if not self.use_bias:
            self.db.fill(0)
        return buf.grad_x if need_grad_x else None

    def get_config(self):
        return {"name": self.name, "units": self.units, "activation": self.activation,
                "use_bias": self.use_bias, "alpha": self.alpha,
                "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer,
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "input_dim": self.input_dim}

    def __repr__(self):
        return f"Dense({self.units}, activation={self.activation!r}, name={self.name!r})"


class Activation(Layer):
    """An element-wise (or, for softmax, row-wise) activation: out = act(x)."""

    def __init__(self, activation, alpha=0.01, input_dim=None, name=None):
        super().__init__(name, input_dim)
        self.activation = activations.resolve(activation)
        self._code = activations.code(self.activation)
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or \
                not (0 < alpha < 1):
            raise ValueError(f"Activation: alpha (the leaky ReLU slope) must be in (0, 1), "
                             f"got {alpha!r}")
        self.alpha = float(alpha)

    def output_activation(self):
        return self.activation

    def logits(self, x, buf):
        return x

    def make_buffers(self, n, dtype, training, need_grad_x):
        buf = _Buffers()
        buf.out = np.empty((n, self.units), dtype)
        return buf

    def forward(self, x, buf, training, key=0):
        _act.activation_forward(x, buf.out, self._code, self.alpha)
        return buf.out

    def backward(self, x, buf, grad_out, need_grad_x, grad_is_dz=False):
        if not grad_is_dz:
            _act.activation_backward(buf.out, grad_out, self._code, self.alpha)
        return grad_out

    def get_config(self):
        return {"name": self.name, "activation": self.activation, "alpha": self.alpha,
                "input_dim": self.input_dim}

    def __repr__(self):
        return f"Activation({self.activation!r}, name={self.name!r})"


class Dropout(Layer):
    """Inverted dropout: in training, each unit is zeroed with probability `rate` and the
    survivors are scaled by 1 / (1 - rate); at inference the layer is the identity.

    The masks are made in Cython from the model's seed, the epoch, the step and the
    layer's position (a counter-based generator), so training is reproducible and resumable.
    rate = 0 costs nothing: the input passes through untouched.
    """

    def __init__(self, rate, seed=None, input_dim=None, name=None):
        super().__init__(name, input_dim)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or \
                not (0 <= rate < 1):
            raise ValueError(f"Dropout: rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)
        if seed is not None and (isinstance(seed, bool) or
                                 not isinstance(seed, numbers.Integral) or seed < 0):
            raise ValueError(f"Dropout: seed must be None or an integer >= 0, got {seed!r}")
        self.seed = seed

    def make_buffers(self, n, dtype, training, need_grad_x):
        buf = _Buffers()
        active = training and self.rate > 0
        buf.out = np.empty((n if active else 0, self.units), dtype)
        buf.mask = np.empty((n if active else 0, self.units), dtype)
        return buf

    def forward(self, x, buf, training, key=0):
        if not training or self.rate == 0:
            return x
        _random.dropout_forward(x, buf.mask, buf.out, self.rate, key)
        return buf.out

    def backward(self, x, buf, grad_out, need_grad_x, grad_is_dz=False):
        if self.rate > 0:
            _random.multiply_inplace(grad_out, buf.mask)
        return grad_out

    def get_config(self):
        return {"name": self.name, "rate": self.rate, "seed": self.seed,
                "input_dim": self.input_dim}

    def __repr__(self):
        return f"Dropout({self.rate}, name={self.name!r})"


class Maxout(Dense):
    """Maxout (Goodfellow et al. 2013): a linear layer with units · pieces outputs, then
    the maximum over each group of `pieces`: out[:, u] = max_p (x @ W + b)[:, u·pieces + p].

    A learnable piecewise-linear activation (ReLU is the special case max(z, 0)).
    Backward routes each output's gradient to the piece that won.
    Shapes: W (input_dim, units · pieces), b (units · pieces,), out (n, units).
    """

    def __init__(self, units, pieces=2, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 input_dim=None, name=None):
        super().__init__(units, None, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, input_dim=input_dim,
                         name=name)
        self.pieces = _positive_int("pieces", pieces, "Maxout")

    def param_specs(self):
        width = self.units * self.pieces
        return [("kernel", (self.input_dim, width), self.kernel_initializer),
                ("bias", (width,), self.bias_initializer if self.use_bias else "zeros")]

    def count_params(self):
        width = self.units * self.pieces
        return self.input_dim * width + (width if self.use_bias else 0)

    def output_activation(self):
        return None

    def keep_logits(self, keep):
        pass

    def make_buffers(self, n, dtype, training, need_grad_x):
        buf = _Buffers()
        width = self.units * self.pieces
        buf.out = np.empty((n, self.units), dtype)
        buf.z = np.empty((n, width), dtype)
        buf.winner = np.empty((n, self.units), np.int32)
        buf.grad_x = np.empty((n if training and need_grad_x else 0, self.input_dim), dtype)
        return buf

    def forward(self, x, buf, training, key=0):
        _dense.maxout_forward(x, self.W, self.b, buf.z, buf.out, buf.winner, self.pieces)
        return buf.out

    def backward(self, x, buf, grad_out, need_grad_x, grad_is_dz=False):
        kl1, kl2, bl1, bl2 = self._l1_l2()
        # buf.z is free after the forward pass: reuse it as the scratch dL/dz.
        buf.penalty = _dense.maxout_backward(x, self.W, self.b, grad_out, buf.winner, buf.z,
                                             self.dW, self.db, buf.grad_x, kl1, kl2, bl1,
                                             bl2)
        if not self.use_bias:
            self.db.fill(0)
        return buf.grad_x if need_grad_x else None

    def get_config(self):
        config = super().get_config()
        del config["activation"], config["alpha"]
        config["pieces"] = self.pieces
        return config

    def __repr__(self):
        return f"Maxout({self.units}, pieces={self.pieces}, name={self.name!r})"


LAYERS = {"Dense": Dense, "Activation": Activation, "Dropout": Dropout, "Maxout": Maxout}


def from_config(kind, config):
    """Rebuild a layer from ``get_config()`` output (used by model loading)."""
    if kind not in LAYERS:
        raise ValueError(f"unknown layer type {kind!r}; expected one of {sorted(LAYERS)}")
    config = dict(config)
    for key in ("kernel_regularizer", "bias_regularizer"):
        if config.get(key) is not None:
            config[key] = regularizers.get(config[key])
    return LAYERS[kind](**config)
