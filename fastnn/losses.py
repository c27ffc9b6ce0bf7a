"""Losses: how good a network is (step 2 of the lecture). Keras's names and definitions:
the reported loss is the mean over the batch of the per-sample loss; mse and binary
cross-entropy average over the output columns too.

Each loss runs as one kernel call that writes the loss and its gradient together. When the
network ends in the activation a loss is made for (softmax for the categorical
cross-entropies, sigmoid for binary cross-entropy), the pair is fused: the loss is computed
from the logits by log-sum-exp (stable for any logits) and the gradient dL/dz = p - y goes
straight to the last layer's weights, skipping the activation's Jacobian.
"""
import numpy as np

from fastnn._core import losses as _k


class Loss:
    """Base class. ``target`` says what y must look like:
    'onehot' (n, m) rows, 'sparse' integer labels (n,), 'binary' (n, m) in [0, 1],
    'real' (n, m) real values."""
    name = None
    target = "real"
    fuses_with = None

    def compute(self, p, z, y, sample_weight, grad, scale):
        """Σᵢ wᵢ·lossᵢ over the batch; writes grad = scale · d(Σ wᵢ lossᵢ)/d(out) — or
        d/dz when z (the logits) is given and the loss fuses with the activation."""
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The mean loss of predictions y_pred (n, m) against y_true, as a float.

        A convenience for users and tests (allocates); training calls ``compute``.
        """
        from fastnn import _validation as v
        p = v.as_float_matrix("y_pred", y_pred, np.float64)
        y = v.targets("y_true", y_true, self.target, p.shape[1], p.shape[0], np.float64)
        sw = v.sample_weights("sample_weight", sample_weight, p.shape[0], np.float64)
        grad = np.empty_like(p)
        return self.compute(p, None, y, sw, grad, 1.0) / p.shape[0]

    def get_config(self):
        return self.name

    def __repr__(self):
        return f"{type(self).__name__}()"


class MeanSquaredError(Loss):
    """mse: lossᵢ = mean_j (pᵢⱼ - yᵢⱼ)²."""
    name = "mse"
    target = "real"

    def compute(self, p, z, y, sample_weight, grad, scale):
        return _k.mean_squared_error(p, y, sample_weight, grad, scale)


class CategoricalCrossentropy(Loss):
    """lossᵢ = -Σⱼ yᵢⱼ log pᵢⱼ against one-hot (or soft) targets y (n, m).

    After a softmax it is computed from the logits: lossᵢ = lse(zᵢ) - Σⱼ yᵢⱼ zᵢⱼ (for rows
    of y summing to 1). Otherwise each row of p is normalized and clipped to [1e-7, 1-1e-7]
    as Keras does.
    """
    name = "categorical_crossentropy"
    target = "onehot"
    fuses_with = "softmax"

    def compute(self, p, z, y, sample_weight, grad, scale):
        if z is not None:
            return _k.softmax_cross_entropy(z, p, y, sample_weight, grad, scale)
        return _k.categorical_cross_entropy(p, y, sample_weight, grad, scale)


class SparseCategoricalCrossentropy(Loss):
    """Categorical cross-entropy against integer labels y (n,) in [0, m)."""
    name = "sparse_categorical_crossentropy"
    target = "sparse"
    fuses_with = "softmax"

    def compute(self, p, z, y, sample_weight, grad, scale):
        if z is not None:
            return _k.sparse_softmax_cross_entropy(z, p, y, sample_weight, grad, scale)
        return _k.sparse_categorical_cross_entropy(p, y, sample_weight, grad, scale)


class BinaryCrossentropy(Loss):
    """lossᵢ = -mean_j (yᵢⱼ log pᵢⱼ + (1-yᵢⱼ) log(1-pᵢⱼ)), y in [0, 1].

    After a sigmoid it is computed from the logits (max(z,0) - z·y + log(1+e^-|z|));
    otherwise p is clipped to [1e-7, 1-1e-7] as Keras does.
    """
    name = "binary_crossentropy"
    target = "binary"
    fuses_with = "sigmoid"

    def compute(self, p, z, y, sample_weight, grad, scale):
        if z is not None:
            return _k.sigmoid_binary_cross_entropy(z, p, y, sample_weight, grad, scale)
        return _k.binary_cross_entropy(p, y, sample_weight, grad, scale)


LOSSES = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
}


def get(loss):
    """A Loss from a name ('mse', 'categorical_crossentropy', ...) or a Loss instance."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]()
    raise ValueError(f"compile: unknown loss {loss!r}; expected one of {sorted(LOSSES)} "
                     f"or a fn.losses.Loss")
