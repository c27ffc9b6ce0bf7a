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
  Returns the layer's regularization penalty through ``buf.penalty``. With
  ``_backward_penalty`` False (a data-parallel fit sets it on every rank but the chief, so
  that the summed gradient has the penalty's once), backward leaves the regularization
  gradient out and reports a penalty of 0.
"""
import numbers

import numpy as np

from fastnn import activations, initializers, regularizers
from fastnn._core import dense as _dense
from fastnn._core import random as _random
from fastnn._core import activations as _act
from fastnn._core import norm as _norm


def _positive_int(name, value, owner):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{owner}: {name} must be >= 1, got {value}")
    return int(value)


def _sample_shape(owner, name, value):
    """A sample shape: a tuple of positive ints (an int n means (n,))."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not value:
        raise TypeError(f"{owner}: {name} must be a tuple of positive integers such as "
                        f"(784,) or (28, 28), got {value!r}")
    if any(d is None for d in value):
        raise ValueError(f"{owner}: {name} {tuple(value)!r} has an unknown (None) "
                         f"dimension; fastnn needs every dimension of a sample fixed")
    return tuple(_positive_int(f"{name} entries", d, owner) for d in value)


class _Buffers:
    """The arrays one layer needs for one batch size (attributes set by the layer)."""
    penalty = 0.0


_generation = [0]


def config_generation():
    """A count of the changes to built layers' kernel settings (a leaky ReLU slope set
    after construction): fastnn/engine.py rebuilds its compiled passes, which hold those
    settings, when it moves."""
    return _generation[0]


class _KernelSetting:
    """A layer attribute its kernels (and the compiled passes that hold it) use: checked
    whenever it is set, and a change moves config_generation(). Subclasses say what is
    allowed."""
    expected = None

    def __set_name__(self, owner, name):
        self.name, self.slot = name, "_" + name

    def __get__(self, layer, owner=None):
        return self if layer is None else getattr(layer, self.slot)

    def __set__(self, layer, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
                not self.allowed(value):
            raise ValueError(f"{type(layer).__name__}: {self.name} {self.expected}, got "
                             f"{value!r}")
        setattr(layer, self.slot, float(value))
        _generation[0] += 1


class _Slope(_KernelSetting):
    expected = "(the leaky ReLU slope) must be in (0, 1)"

    @staticmethod
    def allowed(value):
        return 0 < value < 1


class _Rate(_KernelSetting):
    # (a training workspace sizes the dropout buffers by it: rate 0 needs none)
    expected = "must be a number in [0, 1)"

    @staticmethod
    def allowed(value):
        return 0 <= value < 1


class Layer:
    """Base class. Subclasses set ``input_dim``/``units`` in ``build``.

    Every layer takes ``name``, ``input_dim`` (the number of input features, for the first
    layer), ``input_shape`` (Keras 2's spelling: the shape of one sample, e.g. (784,);
    only Flatten takes more than one dimension) and ``trainable`` (False: fit leaves the
    layer's weights as they are; read at compile time, as Keras does).
    """
    _counter = {}
    _takes_nd_input = False     # only Flatten accepts samples of shape (d1, d2, ...)
    _state_count = 0            # trailing entries of `weights` that are never trained
    _name_prefix = None         # automatic names: f"{prefix}_{k}" (the class name lowered)
    _backward_penalty = True    # backward adds the regularization gradient (see above)

    def __init__(self, name=None, input_dim=None, input_shape=None, trainable=True):
        owner = type(self).__name__
        kind = self._name_prefix or owner.lower()
        if name is None:
            Layer._counter[kind] = Layer._counter.get(kind, 0) + 1
            name = f"{kind}_{Layer._counter[kind]}"
        if not isinstance(name, str):
            raise TypeError(f"{owner}: name must be a string, got {name!r}")
        self.name = name
        self.input_dim = None if input_dim is None else _positive_int(
            "input_dim", input_dim, owner)
        self.input_shape = None
        if input_shape is not None:
            shape = _sample_shape(owner, "input_shape", input_shape)
            if len(shape) != 1 and not self._takes_nd_input:
                raise ValueError(f"{owner}: input_shape must be a 1-tuple (features,), got "
                                 f"{tuple(input_shape)!r}; for samples with more dimensions "
                                 f"put fn.layers.Flatten(input_shape=...) first")
            dim = int(np.prod(shape))
            if self.input_dim is not None and self.input_dim != dim:
                raise ValueError(f"{owner}: input_dim={self.input_dim} contradicts "
                                 f"input_shape={shape}")
            self.input_shape, self.input_dim = shape, dim
        self.trainable = trainable
        self.units = None
        self.built = False
        self._bound_params = None   # this layer's parameter views, set by the model
        self._model = None          # the model holding the layer (see _ask_model)

    @property
    def trainable(self):
        """Whether fit updates this layer's weights (takes effect at the next compile)."""
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{type(self).__name__}: trainable must be True or False, got "
                            f"{value!r}")
        self._trainable = bool(value)

    # -- structure -----------------------------------------------------------------
    def build(self, input_dim):
        self.input_dim = input_dim
        self.units = input_dim
        self.built = True
        return self.units

    def param_specs(self):
        return []

    def spec_trainable(self):
        """One flag per ``param_specs()`` entry: does the optimizer update it?"""
        return [self.trainable] * len(self.param_specs())

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

    @property
    def weight_names(self):
        """The names of ``weights`` ('kernel', 'bias', 'gamma', ...), same order."""
        return [name for name, _, _ in self.param_specs()][:len(self.weights)]

    @property
    def trainable_weight_names(self):
        """The names of ``trainable_weights``, same order."""
        names = self.weight_names if self.trainable else []
        return names[:len(names) - self._state_count] if names else []

    @property
    def trainable_weights(self):
        """Live views of the weights fit updates (Keras's order)."""
        if not self.trainable:
            return []
        ws = self.weights
        return ws[:len(ws) - self._state_count]

    @property
    def trainable_gradients(self):
        """Live views of the gradients of ``trainable_weights`` (same order)."""
        if not self.trainable:
            return []
        gs = self.gradients
        return gs[:len(gs) - self._state_count]

    @property
    def non_trainable_weights(self):
        """Live views of the weights fit leaves alone (e.g. moving statistics)."""
        ws = self.weights
        return ws if not self.trainable else ws[len(ws) - self._state_count:]

    def _ask_model(self):
        """Keras's layers have weights as soon as the model's input shape is known
        (Sequential([fn.Input((784,)), Dense(10)]).layers[0].kernel exists): an unbuilt
        layer of a model that declares its input shape asks that model to build (drawing
        the model's seed then, as model.get_weights() does)."""
        model = getattr(self, "_model", None)
        if self._bound_params is None and model is not None:
            model._build_if_declared()

    def __getstate__(self):
        # A copied layer belongs to no model (and does not drag it along): it carries the
        # weights it has, which it gets first if its model can build.
        self._ask_model()
        state = self.__dict__.copy()
        state["_model"] = None
        return state

    def get_weights(self):
        """Copies of the weights (an empty list before the layer is built; a layer of a
        model whose input shape is known is built)."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        """Set the weights from a list shaped like get_weights() (values are copied)."""
        targets = self.weights
        dtype = targets[0].dtype if targets else np.float32
        assign_weights(f"{self.name}.set_weights", targets, weights, dtype)

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

    def update_state(self, buf):
        """After a training step's update: fold the step's statistics into the layer's
        non-trainable state (batch normalization's moving averages)."""

    def invalid_weights(self):
        """Why the layer's current weights break an invariant of the layer (a message),
        or None. Loading checks it: a file can hold finite values no layer could reach."""
        return None

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        """The layer ``get_config()`` describes (a new layer, unbuilt)."""
        return from_config(cls.__name__, config)

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


def assign_weights(what, targets, weights, dtype):
    """Copy the arrays ``weights`` into the live views ``targets`` after checking count,
    shapes and finiteness (nothing is written unless everything is right)."""
    from fastnn import _validation as v
    if not isinstance(weights, (list, tuple)):
        raise TypeError(f"{what}: weights must be a list of arrays (as from "
                        f"get_weights()), got {type(weights).__name__}")
    weights = list(weights)
    if len(weights) != len(targets):
        raise ValueError(f"{what}: expected {len(targets)} arrays, got {len(weights)}")
    arrays = []
    for i, (src, dst) in enumerate(zip(weights, targets)):
        arr = v.as_array(f"{what}: weights[{i}]", src)
        if arr.shape != dst.shape:
            raise ValueError(f"{what}: weights[{i}] must have shape {dst.shape}, got "
                             f"{arr.shape}")
        arr = v._convert(f"{what}: weights[{i}]", arr, dtype)
        v.check_finite(f"{what}: weights[{i}]", arr)
        arrays.append(arr)
    for src, dst in zip(arrays, targets):
        dst[...] = src


class Dense(Layer):
    """A fully-connected layer: out = activation(x @ W + b).

    Shapes: x (n, input_dim), W (input_dim, units), b (units,), out (n, units).
    """

    alpha = _Slope()

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, alpha=0.01,
                 input_dim=None, input_shape=None, name=None, trainable=True,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 dtype=None, lora_rank=None, lora_alpha=None):
        super().__init__(name, input_dim, input_shape, trainable)
        # Keras 3's arguments without a fastnn counterpart: the model's dtype applies to
        # every layer (Sequential(dtype=...)); no constraints, activity penalty or LoRA.
        _reject_unsupported(type(self).__name__, {
            "activity_regularizer": activity_regularizer,
            "kernel_constraint": kernel_constraint, "bias_constraint": bias_constraint,
            "dtype": dtype, "lora_rank": lora_rank, "lora_alpha": lora_alpha})
        self.units = _positive_int("units", units, "Dense")
        self.activation = activations.resolve(activation)
        self._code = activations.code(self.activation)
        self.alpha = alpha
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
        self._ask_model()
        if self.W is None:
            return []
        return [self.W, self.b] if self.use_bias else [self.W]

    def _built_for(self, what):
        """Build through the model if it can; AttributeError naming ``what`` if the layer
        is still unbuilt (Keras's message)."""
        self._ask_model()
        if self.W is None:
            raise AttributeError(f"You must build the layer before accessing `{what}` "
                                 f"(layer {self.name!r}: its model's input shape is not "
                                 f"known yet)")

    @property
    def kernel(self):
        """The live (input_dim, units) weight matrix (Keras's name; W is fastnn's)."""
        self._built_for("kernel")
        return self.W

    @property
    def bias(self):
        """The live (units,) bias, None when use_bias=False (Keras's name)."""
        self._built_for("bias")
        return self.b if self.use_bias else None

    @property
    def gradients(self):
        if self.W is None:
            return []
        return [self.dW, self.db] if self.use_bias else [self.dW]

    def count_params(self):
        return self.input_dim * self.units + (self.units if self.use_bias else 0)

    def output_activation(self):
        return self.activation

    def keep_logits(self, keep):
        self._keep_logits = bool(keep)

    def logits(self, x, buf):
        return buf.z

    def _backward_l1_l2(self):
        """The coefficients backward applies (none when _backward_penalty is off)."""
        return self._l1_l2() if self._backward_penalty else (0.0, 0.0, 0.0, 0.0)

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
        kl1, kl2, bl1, bl2 = self._backward_l1_l2()
        code = activations.LINEAR if grad_is_dz else self._code
        buf.penalty = _dense.dense_backward(
            x, self.W, self.b, buf.out, grad_out, self.dW, self.db,
            buf.grad_x, code, self.alpha, kl1, kl2, bl1, bl2)
        if not self.use_bias:
            self.db.fill(0)
        return buf.grad_x if need_grad_x else None

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "units": self.units,
                "activation": self.activation,
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

    alpha = _Slope()

    def __init__(self, activation, alpha=0.01, input_dim=None, name=None, input_shape=None,
                 trainable=True):
        super().__init__(name, input_dim, input_shape, trainable)
        self.activation = activations.resolve(activation)
        self._code = activations.code(self.activation)
        self.alpha = alpha

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
        return {"name": self.name, "trainable": self.trainable,
                "activation": self.activation, "alpha": self.alpha,
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

    rate = _Rate()

    def __init__(self, rate, seed=None, input_dim=None, name=None, input_shape=None,
                 trainable=True):
        super().__init__(name, input_dim, input_shape, trainable)
        self.rate = rate
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
        return {"name": self.name, "trainable": self.trainable, "rate": self.rate,
                "seed": self.seed, "input_dim": self.input_dim}

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
                 input_dim=None, name=None, input_shape=None, trainable=True):
        super().__init__(units, None, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, input_dim=input_dim,
                         input_shape=input_shape, name=name, trainable=trainable)
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
        kl1, kl2, bl1, bl2 = self._backward_l1_l2()
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


class Flatten(Layer):
    """Flattens each sample to one row: (n, d1, d2, ...) -> (n, d1·d2·...), in row-major
    order (Keras's Flatten with data_format='channels_last').

    fastnn's layers compute on rows, so inside a model this is the identity. As the first
    layer (``Flatten(input_shape=(28, 28))``, or after ``fn.Input(shape=(28, 28))``) it gives
    the model samples of that shape: fit/evaluate/predict/train_on_batch then take x of
    shape (n, 28, 28) and see it as (n, 784) through a reshape view, not a copy.
    """
    _takes_nd_input = True

    def __init__(self, data_format=None, input_shape=None, input_dim=None, name=None,
                 trainable=True):
        super().__init__(name, input_dim, input_shape, trainable)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Flatten: data_format must be None or 'channels_last' (rows "
                             f"are flattened in row-major order), got {data_format!r}")
        self.data_format = data_format

    def make_buffers(self, n, dtype, training, need_grad_x):
        return _Buffers()

    def forward(self, x, buf, training, key=0):
        return x

    def backward(self, x, buf, grad_out, need_grad_x, grad_is_dz=False):
        return grad_out

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable,
                  "data_format": self.data_format, "input_dim": self.input_dim}
        if self.input_shape is not None:
            config["input_shape"] = list(self.input_shape)
        return config

    def __repr__(self):
        return f"Flatten(name={self.name!r})"


class Softmax(Activation):
    """Softmax over the features of each sample (Keras's layers.Softmax(axis=-1)).

    Like a softmax activation, it fuses with the categorical cross-entropies: trained with
    one, the loss is computed from its input (the logits), stably.
    """

    def __init__(self, axis=-1, input_dim=None, name=None, input_shape=None,
                 trainable=True):
        if axis not in (-1, 1) or isinstance(axis, bool):
            raise ValueError(f"Softmax: axis must be -1 (the features of each sample), got "
                             f"{axis!r}")
        super().__init__("softmax", input_dim=input_dim, name=name, input_shape=input_shape,
                         trainable=trainable)
        self.axis = -1

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "axis": self.axis,
                "input_dim": self.input_dim}

    def __repr__(self):
        return f"Softmax(name={self.name!r})"


def _normalization_arguments(owner, axis, epsilon, center, scale, initializers_,
                             unsupported):
    """Checks shared by the normalization layers; returns epsilon as a float."""
    if isinstance(axis, bool) or axis not in (-1, 1):
        raise ValueError(f"{owner}: axis must be -1 (the features of each sample), got "
                         f"{axis!r}")
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or \
            not 0 < epsilon < float("inf"):
        raise ValueError(f"{owner}: epsilon must be a number > 0, got {epsilon!r}")
    for arg, value in (("center", center), ("scale", scale)):
        if not isinstance(value, bool):
            raise TypeError(f"{owner}: {arg} must be True or False, got {value!r}")
    for init in initializers_:
        initializers.get(init)
    _reject_unsupported(owner, unsupported)
    return float(epsilon)


def _reject_unsupported(owner, unsupported):
    """Keras arguments fastnn accepts only at their neutral value (None or False)."""
    for arg, value in unsupported.items():
        if value is not None and value is not False:
            raise ValueError(f"{owner}: {arg}={value!r} is not supported (only "
                             f"{arg}={'False' if value is True else 'None'})")


class _Normalization(Layer):
    """Shared parts: the parameters gamma (scale) and beta (center), always in the buffer
    (fixed at 1 and 0, and never trained, when scale or center is False: one kernel path),
    listed in ``weights`` only when used, as in Keras. gamma_regularizer/beta_regularizer
    add their penalty to the loss and its gradient in the backward pass, as Dense's do.
    Not supported (a clear error): constraints (fastnn has none), an axis other than -1,
    LayerNormalization's rms_scaling, BatchNormalization's synchronized."""

    def build(self, input_dim):
        self.input_dim = self.units = input_dim
        self.built = True
        return input_dim

    def _used(self):
        """Which of param_specs() appear in weights."""
        return [self.scale, self.center] + [True] * self._state_count

    def spec_trainable(self):
        return [self.trainable and used for used in self._used()[:2]] + \
            [False] * self._state_count

    @property
    def weights(self):
        self._ask_model()
        if self._params is None:
            return []
        return [p for p, used in zip(self._params, self._used()) if used]

    def _named(self, name):
        """The live parameter ``name`` of param_specs() (Keras's attribute: None for an
        unused gamma/beta)."""
        self._ask_model()
        if self._params is None:
            raise AttributeError(f"You must build the layer before accessing `{name}` "
                                 f"(layer {self.name!r}: its model's input shape is not "
                                 f"known yet)")
        i = [n for n, _, _ in self.param_specs()].index(name)
        return self._params[i] if self._used()[i] else None

    gamma = property(lambda self: self._named("gamma"), doc="The live scale (features,).")
    beta = property(lambda self: self._named("beta"), doc="The live offset (features,).")

    @property
    def gradients(self):
        if self._params is None:
            return []
        return [g for g, used in zip(self._grads, self._used()) if used]

    @property
    def weight_names(self):
        return [name for (name, _, _), used in zip(self.param_specs(), self._used()) if used]

    def count_params(self):
        return self.input_dim * sum(self._used())

    def bind(self, params, grads):
        self._params, self._grads = params, grads

    def _regularizers(self, gamma_regularizer, beta_regularizer):
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_regularizer = regularizers.get(beta_regularizer)

    def _penalized(self):
        """(index in param_specs, regularizer) of the used, regularized gamma and beta."""
        return [(i, r) for i, (r, used) in enumerate(
            ((self.gamma_regularizer, self.scale), (self.beta_regularizer, self.center)))
            if r is not None and used]

    def penalty(self):
        return sum(_dense.penalty(self._params[i], r.l1, r.l2) for i, r in self._penalized())

    def _penalty_gradients(self, buf):
        """Add the regularizers' gradients to dgamma/dbeta; their penalty to buf.penalty."""
        buf.penalty = sum(_norm.add_penalty_gradient(self._params[i], self._grads[i],
                                                     r.l1, r.l2)
                          for i, r in self._penalized())

    def _config(self):
        return {"name": self.name, "trainable": self.trainable, "axis": self.axis,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": self.beta_initializer,
                "gamma_initializer": self.gamma_initializer,
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "input_dim": self.input_dim}


class BatchNormalization(_Normalization):
    """Batch normalization (Ioffe & Szegedy 2015), Keras's BatchNormalization.

    Training (fit, train_on_batch): each feature is normalized with the batch's mean and
    biased variance, out = gamma · (x − mean) / sqrt(var + epsilon) + beta, and after each
    update step the moving statistics follow Keras's rule
    moving = moving · momentum + batch · (1 − momentum). Inference (predict, evaluate) and
    a layer with trainable=False (as Keras: frozen batch norm runs in inference mode) use
    the moving statistics. moving_mean and moving_variance (initially 0 and 1) live in the
    model's parameter buffer as non-trainable weights: saved, loaded and resumed exactly;
    get_weights() order as Keras: gamma, beta, moving_mean, moving_variance.
    Shapes: x, out (n, features); each weight (features,).
    """
    _state_count = 2
    _name_prefix = "batch_normalization"

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, synchronized=False, input_dim=None,
                 input_shape=None, name=None, trainable=True):
        super().__init__(name, input_dim, input_shape, trainable)
        owner = "BatchNormalization"
        self.epsilon = _normalization_arguments(
            owner, axis, epsilon, center, scale,
            (beta_initializer, gamma_initializer, moving_mean_initializer,
             moving_variance_initializer),
            {"beta_constraint": beta_constraint, "gamma_constraint": gamma_constraint,
             "synchronized": synchronized})
        self._regularizers(gamma_regularizer, beta_regularizer)
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or \
                not 0 <= momentum <= 1:
            raise ValueError(f"{owner}: momentum must be a number in [0, 1], got "
                             f"{momentum!r}")
        self.axis, self.momentum = -1, float(momentum)
        self.center, self.scale = center, scale
        self.beta_initializer, self.gamma_initializer = beta_initializer, gamma_initializer
        self.moving_mean_initializer = moving_mean_initializer
        self.moving_variance_initializer = moving_variance_initializer
        self._params = self._grads = None

    def param_specs(self):
        m = (self.input_dim,)
        return [("gamma", m, self.gamma_initializer if self.scale else "ones"),
                ("beta", m, self.beta_initializer if self.center else "zeros"),
                ("moving_mean", m, self.moving_mean_initializer),
                ("moving_variance", m, self.moving_variance_initializer)]

    moving_mean = property(lambda self: self._named("moving_mean"),
                           doc="The live moving mean (features,).")
    moving_variance = property(lambda self: self._named("moving_variance"),
                               doc="The live moving variance (features,).")

    def invalid_weights(self):
        # A variance is never negative (moving averages of variances stay >= 0); a negative
        # one makes inference take the square root of a negative number: NaN outputs.
        if (self.moving_variance < 0).any():
            return "moving_variance has negative entries"
        return None

    def make_buffers(self, n, dtype, training, need_grad_x):
        buf = _Buffers()
        m = self.units
        buf.out = np.empty((n, m), dtype)
        # (1, m), not (m,): a workspace's row views slice arrays whose first dimension is
        # the batch size (see models._first_rows), which m may equal.
        buf.mean, buf.var, buf.inv = (np.empty((1, m), dtype) for _ in range(3))
        buf.acc = np.empty((1, 2 * m), np.float64)
        buf.batch_statistics = False
        return buf

    def forward(self, x, buf, training, key=0):
        gamma, beta, moving_mean, moving_var = self._params
        buf.batch_statistics = bool(training and self.trainable)
        _norm.batch_norm_forward(x, gamma, beta, moving_mean, moving_var, buf.out,
                                 buf.mean[0], buf.var[0], buf.inv[0], buf.acc[0],
                                 self.epsilon, buf.batch_statistics)
        return buf.out

    def backward(self, x, buf, grad_out, need_grad_x, grad_is_dz=False):
        _norm.batch_norm_backward(x, self._params[0], buf.mean[0], buf.inv[0], grad_out,
                                  self._grads[0], self._grads[1], buf.acc[0],
                                  buf.batch_statistics, need_grad_x)
        self._penalty_gradients(buf)
        return grad_out if need_grad_x else None

    def update_state(self, buf):
        if buf.batch_statistics:
            _norm.batch_norm_update(self._params[2], self._params[3], buf.mean[0],
                                    buf.var[0], self.momentum)

    def get_config(self):
        config = self._config()
        config.update(momentum=self.momentum,
                      moving_mean_initializer=self.moving_mean_initializer,
                      moving_variance_initializer=self.moving_variance_initializer)
        return config

    def __repr__(self):
        return f"BatchNormalization(name={self.name!r})"


class LayerNormalization(_Normalization):
    """Layer normalization (Ba, Kiros & Hinton 2016), Keras's LayerNormalization: each
    sample is normalized over its features with its own mean and biased variance,
    out = gamma · (x − mean) / sqrt(var + epsilon) + beta; the same in training and
    inference. Shapes: x, out (n, features); gamma, beta (features,).
    """
    _name_prefix = "layer_normalization"

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 input_dim=None, input_shape=None, name=None, trainable=True):
        super().__init__(name, input_dim, input_shape, trainable)
        self.epsilon = _normalization_arguments(
            "LayerNormalization", axis, epsilon, center, scale,
            (beta_initializer, gamma_initializer),
            {"rms_scaling": rms_scaling, "beta_constraint": beta_constraint,
             "gamma_constraint": gamma_constraint})
        self._regularizers(gamma_regularizer, beta_regularizer)
        self.axis = -1
        self.center, self.scale = center, scale
        self.beta_initializer, self.gamma_initializer = beta_initializer, gamma_initializer
        self._params = self._grads = None

    def param_specs(self):
        m = (self.input_dim,)
        return [("gamma", m, self.gamma_initializer if self.scale else "ones"),
                ("beta", m, self.beta_initializer if self.center else "zeros")]

    def make_buffers(self, n, dtype, training, need_grad_x):
        buf = _Buffers()
        buf.out = np.empty((n, self.units), dtype)
        buf.mean = np.empty((n, 1), dtype)
        buf.inv = np.empty((n, 1), dtype)
        buf.acc = np.empty((1, 2 * self.units), np.float64)
        return buf

    def forward(self, x, buf, training, key=0):
        _norm.layer_norm_forward(x, self._params[0], self._params[1], buf.out, buf.mean,
                                 buf.inv, self.epsilon)
        return buf.out

    def backward(self, x, buf, grad_out, need_grad_x, grad_is_dz=False):
        _norm.layer_norm_backward(x, self._params[0], buf.mean, buf.inv, grad_out,
                                  self._grads[0], self._grads[1], buf.acc[0], need_grad_x)
        self._penalty_gradients(buf)
        return grad_out if need_grad_x else None

    def get_config(self):
        return self._config()

    def __repr__(self):
        return f"LayerNormalization(name={self.name!r})"


class InputLayer(Layer):
    """The input of a model: the shape of one sample (Keras's InputLayer, made by
    ``fn.Input``). Not a computing layer: a Sequential takes it as its first element and
    records the shape; it is not part of ``model.layers`` (as in Keras).

    dtype: the dtype the data arrives in. 'float32'/'float64' also choose the dtype of a
    Sequential made without one; any other numeric dtype is accepted (inputs are converted
    to the model's dtype once per call).
    batch_size: recorded (and shown by summary) but not enforced: fastnn takes any batch size.
    """
    _takes_nd_input = True
    _name_prefix = "input_layer"

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None,
                 batch_shape=None, input_tensor=None, optional=False, name=None,
                 ragged=None):
        if shape is not None and batch_shape is not None:
            raise ValueError(f"Input: give shape or batch_shape, not both (got shape={shape!r}"
                             f", batch_shape={batch_shape!r})")
        if batch_shape is not None:
            if not isinstance(batch_shape, (tuple, list)) or len(batch_shape) < 2:
                raise ValueError(f"Input: batch_shape must be (batch_size or None, d1, ...), "
                                 f"got {batch_shape!r}")
            batch_size, shape = batch_shape[0], tuple(batch_shape[1:])
        if shape is None:
            raise ValueError("Input: shape is required, e.g. fn.Input(shape=(784,))")
        for arg, value in (("sparse", sparse), ("ragged", ragged), ("optional", optional)):
            if value:
                raise ValueError(f"Input: {arg}=True is not supported (fastnn takes dense "
                                 f"arrays)")
        if input_tensor is not None:
            raise ValueError("Input: tensor/input_tensor is not supported (fastnn has no "
                             "symbolic tensors); pass shape=...")
        super().__init__(name, input_shape=_sample_shape("Input", "shape", shape))
        self.shape = self.input_shape
        self.batch_size = None if batch_size is None else _positive_int(
            "batch_size", batch_size, "Input")
        if dtype is not None:
            try:
                dt = np.dtype(dtype)
            except TypeError:
                raise TypeError(f"Input: dtype must be a numeric dtype such as 'float32', got "
                                f"{dtype!r}") from None
            if dt.kind not in "biuf":
                raise ValueError(f"Input: dtype must be a numeric dtype, got {dt}")
            dtype = dt.name
        self.dtype = dtype

    @property
    def batch_shape(self):
        return (self.batch_size, *self.shape)

    def get_config(self):
        return {"name": self.name, "batch_shape": list(self.batch_shape), "dtype": self.dtype}

    def __repr__(self):
        return f"InputLayer(shape={self.shape!r}, name={self.name!r})"


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None,
          tensor=None, optional=False, ragged=None):
    """The input of a model, Keras 3's ``keras.Input``: ``fn.Input(shape=(784,))`` as the
    first element of ``fn.Sequential([...])`` or through ``model.add``. Returns an
    InputLayer (fastnn has no symbolic tensors)."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse,
                      batch_shape=batch_shape, input_tensor=tensor, optional=optional,
                      name=name, ragged=ragged)


LAYERS = {"Dense": Dense, "Activation": Activation, "Dropout": Dropout, "Maxout": Maxout,
          "Flatten": Flatten, "Softmax": Softmax, "BatchNormalization": BatchNormalization,
          "LayerNormalization": LayerNormalization}


def from_config(kind, config):
    """Rebuild a layer from ``get_config()`` output (used by model loading)."""
    if kind not in LAYERS:
        raise ValueError(f"unknown layer type {kind!r}; expected one of {sorted(LAYERS)}")
    config = dict(config)
    for key in ("kernel_regularizer", "bias_regularizer", "gamma_regularizer",
                "beta_regularizer"):
        if config.get(key) is not None:
            config[key] = regularizers.get(config[key])
    return LAYERS[kind](**config)
