"""Losses: how good a network is (step 2 of the lecture), with Keras 3's names, arguments,
defaults and definitions.

A loss is a per-sample value (the mean over the output columns for the element-wise
losses, as Keras's ``mean(..., axis=-1)``); training minimizes its mean over the batch
(Keras's reduction "sum_over_batch_size": sum of weight_i * loss_i over the batch size).

Each loss runs as one kernel call (fastnn/_core/losses.pyx) that writes the loss and its
gradient together. When the network ends in the activation a loss is made for (softmax
for the categorical cross-entropies, sigmoid for binary cross-entropy), the pair is fused:
the loss is computed from the logits by log-sum-exp (stable for any logits) and the
gradient dL/dz = p - y goes straight to the last layer's weights, skipping the
activation's Jacobian. With ``from_logits=True`` (a linear last layer, Keras's
recommended usage) the kernel computes the softmax / sigmoid itself, just as stably.

The function forms (``fn.losses.mae(y_true, y_pred)``, ...) return the per-sample values,
of y_pred's shape without its last axis, as Keras's do. They and ``Loss.__call__``
compute in float64 unless the loss was given ``dtype='float32'``.
"""
import warnings

import numpy as np

from fastnn import _validation as v
from fastnn._config import Configurable
from fastnn._core import losses as _k

REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "mean_with_sample_weight", "none", None)
# Training minimizes the mean over the batch; these reductions say the same.
TRAINING_REDUCTIONS = ("sum_over_batch_size", "mean")


class Loss(Configurable):
    """Base class (Keras's ``keras.losses.Loss`` arguments: reduction, name, dtype).

    ``target`` says what y must look like: 'onehot' (n, m) rows in [0, 1], 'sparse'
    integer labels (n,), 'binary' (n, m) in [0, 1], 'real' (n, m) real values.
    ``fuses_with`` names the last activation whose logits the loss can take instead.
    """
    name = None
    target = "real"
    fuses_with = None

    def __init__(self, reduction="sum_over_batch_size", name=None, dtype=None):
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of "
                             f"{list(REDUCTIONS)}, got {reduction!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string, got {name!r}")
        if dtype is not None and (not isinstance(dtype, str) or
                                  dtype not in ("float32", "float64")):
            raise ValueError(f"{type(self).__name__}: dtype must be None, 'float32' or "
                             f"'float64', got {dtype!r}")
        self.reduction = reduction
        self.name = name if name is not None else type(self).name
        self.dtype = dtype

    # -- training -------------------------------------------------------------------
    def compute(self, p, z, y, sample_weight, grad, scale):
        """Σᵢ wᵢ·lossᵢ over the batch; writes grad = scale · d(Σ wᵢ lossᵢ)/d(out) — or
        d/dz when z (the logits) is given and the loss fuses with the activation."""
        return self._values(p, y, sample_weight, grad, scale, None)

    def _values(self, p, y, sample_weight, grad, scale, per_sample):
        """The loss on the outputs p (the non-fused kernel); per_sample: None or a
        float64 (n,) array that receives each row's loss."""
        raise NotImplementedError

    def check_output(self, activation):
        """Called by compile with the last layer's activation name (or None)."""

    # -- direct use -----------------------------------------------------------------
    def __call__(self, y_true, y_pred, sample_weight=None):
        """The loss of predictions y_pred (..., m) against y_true, reduced as
        ``reduction`` says: a float, or the per-sample values for reduction=None.

        A convenience for users and tests (allocates); training calls ``compute``.
        """
        what = type(self).__name__
        p, y, shape = self._prepare(what, y_true, y_pred)
        n = p.shape[0]
        sw = _weights(what, sample_weight, shape, p.dtype)
        per = np.empty(n)
        grad = np.empty_like(p)
        total = self._values(p, y, sw, grad, 1.0, per)
        if self.reduction in (None, "none"):
            return (per * sw if sw.shape[0] else per).reshape(shape)
        if self.reduction == "sum":
            return float(total)
        if self.reduction == "mean_with_sample_weight":
            weight = float(np.sum(sw)) if sw.shape[0] else float(n)
            return total / weight if weight else 0.0
        return total / n

    def per_sample(self, y_true, y_pred):
        """The per-sample values (y_pred's shape without the last axis), unweighted."""
        p, y, shape = self._prepare(self.name, y_true, y_pred)
        per = np.empty(p.shape[0])
        self._values(p, y, np.empty(0, p.dtype), np.empty_like(p), 1.0, per)
        return float(per[0]) if shape == () else per.reshape(shape)

    def _prepare(self, what, y_true, y_pred):
        """(p (n, m), y for the kernel, the per-sample shape) from arrays of any rank."""
        dt = np.float64 if self.dtype is None else np.dtype(self.dtype)
        p = v.as_array(f"{what}: y_pred", y_pred)
        if p.ndim == 0 or p.shape[-1] == 0 or p.size == 0:
            raise ValueError(f"{what}: y_pred must have at least one sample and one "
                             f"output, got shape {p.shape}")
        shape, m = p.shape[:-1], p.shape[-1]
        p = v._convert(f"{what}: y_pred", p.reshape(-1, m), dt)
        v.check_finite(f"{what}: y_pred", p)
        n = p.shape[0]
        y = v.as_array(f"{what}: y_true", y_true)
        if self.target == "sparse":
            if y.shape == shape + (1,):
                y = y[..., 0]
            if y.shape != shape:
                raise ValueError(f"{what}: y_true must hold one integer label per sample, "
                                 f"shape {shape}, for y_pred of shape {shape + (m,)}; got "
                                 f"{y.shape}")
            y = y.reshape(-1)
        else:
            if y.shape != shape + (m,):
                if m == 1 and y.shape == shape:
                    y = y[..., None]
                else:
                    raise ValueError(f"{what}: y_true must have y_pred's shape "
                                     f"{shape + (m,)}, got {y.shape}")
            y = y.reshape(-1, m)
        return p, v.targets(f"{what}: y_true", y, self.target, m, n, dt), shape

    # -- configuration --------------------------------------------------------------
    def get_config(self):
        """Keras's config: the constructor's arguments (JSON-serializable)."""
        return {"name": self.name, "reduction": self.reduction, "dtype": self.dtype}


def _weights(what, sample_weight, shape, dtype):
    """Per-sample weights for a loss call: None -> empty; a scalar -> every sample."""
    n = int(np.prod(shape, dtype=np.int64))
    if sample_weight is not None and np.ndim(sample_weight) == 0:
        sample_weight = np.full(n, v.real(f"{what}: sample_weight", sample_weight, 0))
    elif sample_weight is not None:
        sample_weight = v.as_array(f"{what}: sample_weight", sample_weight)
        if sample_weight.shape != shape:
            raise ValueError(f"{what}: sample_weight must have shape {shape} (one weight per "
                             f"sample), got {sample_weight.shape}")
        sample_weight = sample_weight.reshape(-1)
    return v.sample_weights(f"{what}: sample_weight", sample_weight, n, dtype)


def _axis(what, axis):
    # fastnn's outputs are (samples, units): the loss runs over the units.
    if isinstance(axis, bool) or axis not in (-1, 1):
        raise ValueError(f"{what}: axis must be -1 (the outputs' last axis), got {axis!r}")
    return int(axis)


def _smoothing(what, label_smoothing):
    return v.real(f"{what}: label_smoothing", label_smoothing, 0, 1)


def _flag(what, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what}: {name} must be True or False, got {value!r}")
    return bool(value)


# ----------------------------------------------------------------- regression --

class _Elementwise(Loss):
    """A loss whose kernel takes (p, y, sample_weight, grad, scale, per_sample)."""
    kernel = None

    def _values(self, p, y, sample_weight, grad, scale, per_sample):
        return self.kernel(p, y, sample_weight, grad, scale, per_sample=per_sample)


class MeanSquaredError(_Elementwise):
    """lossᵢ = mean_j (yᵢⱼ - pᵢⱼ)²."""
    name = "mean_squared_error"
    kernel = staticmethod(_k.mean_squared_error)


class MeanAbsoluteError(_Elementwise):
    """lossᵢ = mean_j |yᵢⱼ - pᵢⱼ|."""
    name = "mean_absolute_error"
    kernel = staticmethod(_k.mean_absolute_error)


class MeanAbsolutePercentageError(_Elementwise):
    """lossᵢ = 100 · mean_j |yᵢⱼ - pᵢⱼ| / max(|yᵢⱼ|, 1e-7)."""
    name = "mean_absolute_percentage_error"
    kernel = staticmethod(_k.mean_absolute_percentage_error)


class MeanSquaredLogarithmicError(_Elementwise):
    """lossᵢ = mean_j (log(max(pᵢⱼ, 1e-7) + 1) - log(max(yᵢⱼ, 1e-7) + 1))²."""
    name = "mean_squared_logarithmic_error"
    kernel = staticmethod(_k.mean_squared_logarithmic_error)


class Huber(Loss):
    """lossᵢ = mean_j h(pᵢⱼ - yᵢⱼ): h(e) = e²/2 for |e| <= delta, else
    delta·|e| - delta²/2."""
    name = "huber_loss"

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(reduction, name, dtype)
        self.delta = v.real("Huber: delta", delta, 0, low_open=True)

    def _values(self, p, y, sample_weight, grad, scale, per_sample):
        return _k.huber(p, y, sample_weight, grad, scale, self.delta, per_sample=per_sample)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


class LogCosh(_Elementwise):
    """lossᵢ = mean_j log(cosh(pᵢⱼ - yᵢⱼ)) (about e²/2 for small errors, |e| - log 2
    for large ones)."""
    name = "log_cosh"
    kernel = staticmethod(_k.log_cosh)


class Poisson(_Elementwise):
    """lossᵢ = mean_j (pᵢⱼ - yᵢⱼ · log(pᵢⱼ + 1e-7)); p must stay positive (a softplus
    or exponential last layer)."""
    name = "poisson"
    kernel = staticmethod(_k.poisson)


class KLDivergence(_Elementwise):
    """lossᵢ = Σ_j t log(t / q), t = clip(yᵢⱼ, 1e-7, 1), q = clip(pᵢⱼ, 1e-7, 1)."""
    name = "kl_divergence"
    kernel = staticmethod(_k.kl_divergence)


class Hinge(_Elementwise):
    """lossᵢ = mean_j max(1 - yᵢⱼ pᵢⱼ, 0) for labels -1/1; as Keras, a batch whose labels
    are all 0 or 1 is read as -1/1."""
    name = "hinge"
    kernel = staticmethod(_k.hinge)


class SquaredHinge(_Elementwise):
    """lossᵢ = mean_j max(1 - yᵢⱼ pᵢⱼ, 0)² (labels as for Hinge)."""
    name = "squared_hinge"
    kernel = staticmethod(_k.squared_hinge)


class CategoricalHinge(_Elementwise):
    """lossᵢ = max(max_j (1 - yᵢⱼ) pᵢⱼ - Σ_j yᵢⱼ pᵢⱼ + 1, 0) for one-hot y."""
    name = "categorical_hinge"
    kernel = staticmethod(_k.categorical_hinge)


class CosineSimilarity(_Elementwise):
    """lossᵢ = -cos(yᵢ, pᵢ), in [-1, 1] (-1: same direction); 0 if either row is 0."""
    name = "cosine_similarity"
    kernel = staticmethod(_k.cosine_similarity)

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(reduction, name, dtype)
        self.axis = _axis("CosineSimilarity", axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


# ------------------------------------------------------------ cross-entropies --

class _CrossEntropy(Loss):
    """from_logits: y_pred are logits (a linear last layer); the kernel applies the
    softmax / sigmoid itself. Otherwise y_pred are probabilities, clipped to
    [1e-7, 1 - 1e-7] as Keras does, or (after the matching activation) fused."""
    activation = None          # the activation whose outputs are probabilities

    def __init__(self, from_logits, reduction, name, dtype):
        super().__init__(reduction, name, dtype)
        self.from_logits = _flag(type(self).__name__, "from_logits", from_logits)
        self.fuses_with = None if self.from_logits else self.activation

    def compute(self, p, z, y, sample_weight, grad, scale):
        if z is not None:
            return self._fused(z, p, y, sample_weight, grad, scale)
        return self._values(p, y, sample_weight, grad, scale, None)

    def check_output(self, activation):
        if self.from_logits and activation in ("softmax", "sigmoid"):
            warnings.warn(f'"{self.name}" received from_logits=True, but the model ends in '
                          f'a {activation} activation, so its outputs are not logits. Was '
                          f'this intended? (use a linear last layer, or from_logits=False)',
                          UserWarning, stacklevel=4)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


class _SmoothedCrossEntropy(_CrossEntropy):
    """The cross-entropies against target rows: Keras's label_smoothing and axis."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(from_logits, reduction, name, dtype)
        self.label_smoothing = _smoothing(type(self).__name__, label_smoothing)
        self.axis = _axis(type(self).__name__, axis)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing,
                "axis": self.axis}


class CategoricalCrossentropy(_SmoothedCrossEntropy):
    """lossᵢ = -Σⱼ tᵢⱼ log qᵢⱼ against one-hot (or soft) targets y (n, m), with
    t = y (1 - label_smoothing) + label_smoothing / m.

    q = softmax(p) with from_logits, else each row of p normalized and clipped to
    [1e-7, 1 - 1e-7] as Keras does; after a softmax layer, computed from its logits.
    """
    name = "categorical_crossentropy"
    target = "onehot"
    activation = "softmax"

    def _fused(self, z, p, y, sample_weight, grad, scale):
        return _k.softmax_cross_entropy(z, p, y, sample_weight, grad, scale,
                                        self.label_smoothing)

    def _values(self, p, y, sample_weight, grad, scale, per_sample):
        kernel = _k.cross_entropy_from_logits if self.from_logits \
            else _k.categorical_cross_entropy
        return kernel(p, y, sample_weight, grad, scale, self.label_smoothing,
                      per_sample=per_sample)


class SparseCategoricalCrossentropy(_CrossEntropy):
    """Categorical cross-entropy against integer labels y (n,) in [0, m)."""
    name = "sparse_categorical_crossentropy"
    target = "sparse"
    activation = "softmax"

    def __init__(self, from_logits=False, ignore_class=None,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(from_logits, reduction, name, dtype)
        if ignore_class is not None:
            raise ValueError("SparseCategoricalCrossentropy: ignore_class is not supported "
                             "(every label must be a class in [0, units)); drop those "
                             "samples or give them sample_weight 0")
        self.ignore_class = None

    def _fused(self, z, p, y, sample_weight, grad, scale):
        return _k.sparse_softmax_cross_entropy(z, p, y, sample_weight, grad, scale)

    def _values(self, p, y, sample_weight, grad, scale, per_sample):
        kernel = _k.sparse_cross_entropy_from_logits if self.from_logits \
            else _k.sparse_categorical_cross_entropy
        return kernel(p, y, sample_weight, grad, scale, per_sample=per_sample)

    def get_config(self):
        return {**super().get_config(), "ignore_class": self.ignore_class}


class BinaryCrossentropy(_SmoothedCrossEntropy):
    """lossᵢ = -mean_j (t log q + (1 - t) log(1 - q)), y in [0, 1],
    t = y (1 - label_smoothing) + label_smoothing / 2.

    q = sigmoid(p) with from_logits (computed as max(p,0) - p·t + log(1+e^-|p|)); after a
    sigmoid layer, from its logits the same way; otherwise p clipped to [1e-7, 1-1e-7].
    """
    name = "binary_crossentropy"
    target = "binary"
    activation = "sigmoid"

    def _fused(self, z, p, y, sample_weight, grad, scale):
        return _k.sigmoid_binary_cross_entropy(z, p, y, sample_weight, grad, scale,
                                               self.label_smoothing)

    def _values(self, p, y, sample_weight, grad, scale, per_sample):
        kernel = _k.binary_cross_entropy_from_logits if self.from_logits \
            else _k.binary_cross_entropy
        return kernel(p, y, sample_weight, grad, scale, self.label_smoothing,
                      per_sample=per_sample)


# ------------------------------------------------------------- function forms --

def mean_squared_error(y_true, y_pred):
    """Per-sample mean_j (y - p)², shape y_pred.shape[:-1]."""
    return MeanSquaredError().per_sample(y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    """Per-sample mean_j |y - p|."""
    return MeanAbsoluteError().per_sample(y_true, y_pred)


def mean_absolute_percentage_error(y_true, y_pred):
    """Per-sample 100 · mean_j |y - p| / max(|y|, 1e-7)."""
    return MeanAbsolutePercentageError().per_sample(y_true, y_pred)


def mean_squared_logarithmic_error(y_true, y_pred):
    """Per-sample mean_j (log(max(p, 1e-7) + 1) - log(max(y, 1e-7) + 1))²."""
    return MeanSquaredLogarithmicError().per_sample(y_true, y_pred)


def huber(y_true, y_pred, delta=1.0):
    """Per-sample Huber loss (see Huber)."""
    return Huber(delta=delta).per_sample(y_true, y_pred)


def log_cosh(y_true, y_pred):
    """Per-sample mean_j log(cosh(p - y))."""
    return LogCosh().per_sample(y_true, y_pred)


def kl_divergence(y_true, y_pred):
    """Per-sample Σ_j y log(y / p), both clipped to [1e-7, 1]."""
    return KLDivergence().per_sample(y_true, y_pred)


def poisson(y_true, y_pred):
    """Per-sample mean_j (p - y log(p + 1e-7))."""
    return Poisson().per_sample(y_true, y_pred)


def hinge(y_true, y_pred):
    """Per-sample mean_j max(1 - y p, 0) (0/1 labels read as -1/1)."""
    return Hinge().per_sample(y_true, y_pred)


def squared_hinge(y_true, y_pred):
    """Per-sample mean_j max(1 - y p, 0)²."""
    return SquaredHinge().per_sample(y_true, y_pred)


def categorical_hinge(y_true, y_pred):
    """Per-sample max(max_j (1 - y) p - Σ_j y p + 1, 0)."""
    return CategoricalHinge().per_sample(y_true, y_pred)


def cosine_similarity(y_true, y_pred, axis=-1):
    """Per-sample -cos(y, p)."""
    return CosineSimilarity(axis=axis).per_sample(y_true, y_pred)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample categorical cross-entropy (see CategoricalCrossentropy)."""
    return CategoricalCrossentropy(from_logits, label_smoothing, axis).per_sample(y_true,
                                                                                  y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None,
                                    axis=-1):
    """Per-sample cross-entropy against integer labels."""
    _axis("sparse_categorical_crossentropy", axis)
    return SparseCategoricalCrossentropy(from_logits, ignore_class).per_sample(y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample binary cross-entropy (mean over the last axis)."""
    return BinaryCrossentropy(from_logits, label_smoothing, axis).per_sample(y_true, y_pred)


# Keras's short names for the function forms.
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kullback_leibler_divergence = kl_divergence
logcosh = log_cosh
bce = BCE = binary_crossentropy

CLASSES = {cls.__name__: cls for cls in (
    MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError, Huber, LogCosh, Poisson, KLDivergence, Hinge, SquaredHinge,
    CategoricalHinge, CosineSimilarity, CategoricalCrossentropy,
    SparseCategoricalCrossentropy, BinaryCrossentropy)}

# Every name compile(loss=...) accepts (Keras's class names, function names and
# aliases), each to its class with default arguments.
LOSSES = {
    **CLASSES,
    "mse": MeanSquaredError, "MSE": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "mape": MeanAbsolutePercentageError, "MAPE": MeanAbsolutePercentageError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError, "MSLE": MeanSquaredLogarithmicError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "huber": Huber, "huber_loss": Huber,
    "log_cosh": LogCosh, "logcosh": LogCosh,
    "kl_divergence": KLDivergence, "kld": KLDivergence, "KLD": KLDivergence,
    "kullback_leibler_divergence": KLDivergence,
    "poisson": Poisson,
    "hinge": Hinge, "squared_hinge": SquaredHinge, "categorical_hinge": CategoricalHinge,
    "cosine_similarity": CosineSimilarity,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy,
    "BCE": BinaryCrossentropy,
}


def get(loss):
    """A Loss for training from a name ('mse', 'huber', ...), a Loss class or instance."""
    if isinstance(loss, type) and issubclass(loss, Loss):
        loss = loss()
    elif isinstance(loss, str) and loss in LOSSES:
        # A loss named by a function name or alias keeps that name ('mse'), as before.
        loss = LOSSES[loss]() if loss in CLASSES else LOSSES[loss](name=loss)
    if not isinstance(loss, Loss):
        raise ValueError(f"compile: unknown loss {loss!r}; expected one of {sorted(LOSSES)} "
                         f"or a fn.losses.Loss")
    if loss.reduction not in TRAINING_REDUCTIONS:
        raise ValueError(f"compile: {type(loss).__name__}(reduction={loss.reduction!r}) "
                         f"cannot be trained: fit minimizes the mean loss over the batch "
                         f"(reduction='sum_over_batch_size'); other reductions apply when "
                         f"the loss is called directly")
    return loss


def serialize(loss):
    """{'class', 'config'} of a built-in loss (for model files)."""
    if CLASSES.get(type(loss).__name__) is not type(loss):
        raise ValueError(f"save: custom loss {loss!r} cannot be stored (only fastnn's "
                         f"built-in losses can)")
    return {"class": type(loss).__name__, "config": loss.get_config()}


def deserialize(doc):
    """The loss a serialize() result (or, from older files, a name) describes."""
    if isinstance(doc, str):
        return get(doc)
    if not isinstance(doc, dict) or not isinstance(doc.get("class"), str) or \
            not isinstance(doc.get("config"), dict):
        raise ValueError(f"loss: expected a name or {{'class', 'config'}}, got {doc!r}")
    if doc["class"] not in CLASSES:
        raise ValueError(f"loss: unknown loss class {doc['class']!r} (known: "
                         f"{sorted(CLASSES)})")
    return CLASSES[doc["class"]].from_config(doc["config"])
