"""The Keras losses: each kernel against a NumPy reference (value, gradient, per-sample
values) in float32 and float64 on odd shapes, by central differences of the kernel itself,
and through a model by finite differences; the classes' names, arguments, defaults and
reductions; from_logits after a linear layer; saving; bad arguments."""
import json
import math
import zipfile

import numpy as np
import pytest
from scipy.special import logsumexp

import fastnn as fn
from fastnn import layers as L
from fastnn._core import losses as K
from test_kernels import FD_ATOL, FD_RTOL, SHAPES_2D, fd_gradient, nan_out, rng_for, ro
from test_models import assert_gradients_match

EPS = 1e-7          # Keras's backend epsilon, used by the kernels' clipping
DTYPES = [np.float32, np.float64]
# The kernels convert every input to double before the arithmetic and sum in double, and
# the references below work in double from the very same dtype-rounded inputs, so the
# loss agrees to double precision in both dtypes: n*m <= 7000 terms of at most a few ulps
# each give < 1e-12 of the summed magnitude; 1e-11 leaves slack.
LOSS_RTOL = 1e-11
# Each gradient entry is computed in double and rounded once to the output dtype:
# relative error <= eps/2 of the dtype (3e-8 for float32) plus the double error. 2e-7 and
# 1e-12 keep a margin while any wrong formula (a missing 1/m, a sign) fails by far.
GRAD_RTOL = {np.float32: 2e-7, np.float64: 1e-12}


# ------------------------------------------------------------------ references --
# Each: (per-row losses (n,), gradient d(sum_i w_i loss_i)/dp before scaling,
#        its magnitude for the tolerance).

def _ref_elementwise(name, p, y, delta=1.0):
    m = p.shape[1]
    e = p - y
    if name == "mean_squared_error":
        return np.mean(e ** 2, 1), 2 * e / m, 2 * np.abs(e) / m
    if name == "mean_absolute_error":
        return np.mean(np.abs(e), 1), np.sign(e) / m, None
    if name == "mean_absolute_percentage_error":
        den = np.maximum(np.abs(y), EPS)
        return 100 * np.mean(np.abs(e) / den, 1), 100 * np.sign(e) / den / m, None
    if name == "mean_squared_logarithmic_error":
        pp, yy = np.maximum(p, EPS), np.maximum(y, EPS)
        d = np.log(pp + 1) - np.log(yy + 1)
        g = np.where(p >= EPS, 2 * d / (pp + 1), 0.0) / m
        return np.mean(d ** 2, 1), g, np.abs(g)
    if name == "huber_loss":
        small = np.abs(e) <= delta
        h = np.where(small, 0.5 * e ** 2, delta * np.abs(e) - 0.5 * delta ** 2)
        g = np.where(small, e, delta * np.sign(e)) / m
        return np.mean(h, 1), g, None
    if name == "log_cosh":
        # log(cosh e) without overflow for large |e|
        return np.mean(np.logaddexp(e, -e) - math.log(2), 1), np.tanh(e) / m, None
    if name == "poisson":
        return np.mean(p - y * np.log(p + EPS), 1), (1 - y / (p + EPS)) / m, \
            (1 + np.abs(y) / (p + EPS)) / m
    if name == "kl_divergence":
        t, q = np.clip(y, EPS, 1), np.clip(p, EPS, 1)
        g = np.where((p >= EPS) & (p <= 1), -t / q, 0.0)
        return np.sum(t * np.log(t / q), 1), g, None
    if name in ("hinge", "squared_hinge"):
        t = 2 * y - 1 if np.all((y == 0) | (y == 1)) else y
        h = np.maximum(1 - t * p, 0)
        if name == "hinge":
            return np.mean(h, 1), np.where(h > 0, -t, 0.0) / m, None
        return np.mean(h ** 2, 1), -2 * t * h / m, None
    if name == "categorical_hinge":
        pos = np.sum(y * p, 1)
        negs = (1 - y) * p
        k = np.argmax(negs, 1)
        li = np.maximum(negs[np.arange(len(p)), k] - pos + 1, 0)
        g = -y.copy()
        g[np.arange(len(p)), k] += 1 - y[np.arange(len(p)), k]
        g[li <= 0] = 0
        return li, g, np.abs(y) + 1
    if name == "cosine_similarity":
        a = np.minimum(1 / np.sqrt(np.sum(y * y, 1, keepdims=True)), 1 / EPS)
        sp = np.sum(p * p, 1, keepdims=True)
        b = np.minimum(1 / np.sqrt(sp), 1 / EPS)
        c = np.sum(y * p, 1, keepdims=True)
        bb = np.where(sp > EPS * EPS, b ** 3, 0.0)
        g = a * (c * bb * p - b * y)
        return -(a * b * c)[:, 0], g, a * (np.abs(c) * bb * np.abs(p) + b * np.abs(y))
    raise ValueError(name)


def _ref_logits(name, z, y, smoothing):
    """from_logits cross-entropies; y: (n, m) targets or (n,) labels."""
    n, m = z.shape
    if name == "sparse":
        t = np.zeros((n, m))
        t[np.arange(n), y] = 1
    else:
        t = y
    if name in ("categorical", "sparse"):
        t = t * (1 - smoothing) + smoothing / m
        lse = logsumexp(z, 1, keepdims=True)
        q = np.exp(z - lse)
        st = t.sum(1, keepdims=True)
        return np.sum(t * (lse - z), 1), st * q - t, st * q + t
    t = t * (1 - smoothing) + smoothing / 2
    q = 1 / (1 + np.exp(-z))
    li = np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))), 1)
    return li, (q - t) / m, (q + t) / m


# ------------------------------------------------------------------ the cases --

def _inputs(name, rng, n, m):
    """(p, y) in float64 for a loss, away from kinks by more than the FD step."""
    e = rng.choice([-1.0, 1.0], (n, m)) * rng.uniform(0.05, 2.5, (n, m))
    if name in ("mean_squared_error", "mean_absolute_error", "log_cosh"):
        y = rng.standard_normal((n, m))
        return y + e, y
    if name == "huber_loss":
        y = rng.standard_normal((n, m))
        e = np.where(np.abs(np.abs(e) - 1.0) < 0.01, e * 1.5, e)   # not at |e| == delta
        return y + e, y
    if name == "mean_absolute_percentage_error":
        y = rng.choice([-1.0, 1.0], (n, m)) * rng.uniform(0.1, 3, (n, m))
        return y + e, y
    if name == "mean_squared_logarithmic_error":
        return rng.uniform(0.01, 3, (n, m)), rng.uniform(0, 3, (n, m))
    if name == "poisson":
        return rng.uniform(0.1, 3, (n, m)), rng.integers(0, 5, (n, m)).astype(float)
    if name == "kl_divergence":
        y = rng.uniform(0, 1, (n, m))
        y[rng.random((n, m)) < 0.2] = 0.0      # clipped to EPS
        return rng.uniform(0.05, 0.95, (n, m)), y
    if name in ("hinge", "squared_hinge"):
        y = rng.choice([-1.0, 1.0], (n, m))
        margin = rng.choice([-1.0, 1.0], (n, m)) * rng.uniform(0.05, 1.5, (n, m))
        return (1 - margin) * y, y          # 1 - t p = margin, away from the kink
    if name == "categorical_hinge":
        y = np.eye(m)[rng.integers(0, m, n)]
        return rng.standard_normal((n, m)), y
    if name == "cosine_similarity":
        return rng.standard_normal((n, m)), rng.standard_normal((n, m))
    raise ValueError(name)


ELEMENTWISE = {
    "mean_squared_error": K.mean_squared_error,
    "mean_absolute_error": K.mean_absolute_error,
    "mean_absolute_percentage_error": K.mean_absolute_percentage_error,
    "mean_squared_logarithmic_error": K.mean_squared_logarithmic_error,
    "huber_loss": lambda p, y, sw, g, s, per_sample=None: K.huber(p, y, sw, g, s, 1.0,
                                                                   per_sample=per_sample),
    "log_cosh": K.log_cosh,
    "poisson": K.poisson,
    "kl_divergence": K.kl_divergence,
    "hinge": K.hinge,
    "squared_hinge": K.squared_hinge,
    "categorical_hinge": K.categorical_hinge,
    "cosine_similarity": K.cosine_similarity,
}


def _assert_grad(grad, g_ref, mag, dtype):
    mag = np.abs(g_ref) if mag is None else mag
    err = np.abs(grad.astype(np.float64) - g_ref)
    assert np.all(err <= GRAD_RTOL[dtype] * mag + 1e-300), \
        f"worst err/mag {np.max(err / (mag + 1e-300)):.3g}"


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("n,m", SHAPES_2D)
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_reference(dtype, name, n, m, weighted):
    rng = rng_for("keras-loss", dtype, name, n, m, weighted)
    p, y = (a.astype(dtype) for a in _inputs(name, rng, n, m))
    w = rng.uniform(0, 3, n).astype(dtype) if weighted else np.ones(n, dtype)
    if weighted:
        w[0] = 0
    sw = ro(w) if weighted else ro(np.empty(0, dtype))
    scale = 1.0 / n
    grad = nan_out((n, m), dtype)
    per = np.full(n, np.nan)
    total = ELEMENTWISE[name](ro(p), ro(y), sw, grad, scale, per_sample=per)
    p64, y64, w64 = p.astype(np.float64), y.astype(np.float64), w.astype(np.float64)
    li, g, mag = _ref_elementwise(name, p64, y64)
    assert isinstance(total, float)
    np.testing.assert_allclose(total, np.sum(w64 * li), rtol=0,
                               atol=LOSS_RTOL * np.sum(np.abs(w64 * li)) + 1e-300)
    np.testing.assert_allclose(per, li, rtol=0, atol=LOSS_RTOL * np.max(np.abs(li)) + 1e-300)
    ws = (w64 * scale)[:, None]
    _assert_grad(grad, ws * g, None if mag is None else np.abs(ws) * mag, dtype)
    if weighted:
        assert np.all(grad[0] == 0)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("n,m", [(1, 1), (7, 5), (4, 33)])
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_kernel_gradient_finite_differences(name, n, m, weighted):
    """grad = scale * d(sum_i w_i loss_i)/dp by central differences of the kernel's own
    returned loss, one row at a time (see test_kernels for the FD error budget)."""
    rng = rng_for("keras-loss-fd", name, n, m, weighted)
    p, y = _inputs(name, rng, n, m)
    w = rng.uniform(0.2, 3.0, n) if weighted else None
    kernel = ELEMENTWISE[name]
    grad = nan_out((n, m), np.float64)
    kernel(ro(p), ro(y), ro(w) if weighted else ro(np.empty(0)), grad, 0.25)
    fd = np.empty((n, m))
    scratch = np.empty((1, m))
    # The hinges read 0/1 labels per call: a row of -1/1 labels stays -1/1 only if the
    # row is not all 1s, so differentiate rows against the batch's interpretation.
    for i in range(n):
        swi = ro(w[i:i + 1]) if weighted else ro(np.empty(0))
        yi = y[i:i + 1]
        if name in ("hinge", "squared_hinge") and np.all(yi == 1):
            continue        # 1 stays 1 either way; this row is checked by the reference
        fd[i] = fd_gradient(lambda v, yi=yi, swi=swi: kernel(ro(v[None, :]), ro(yi), swi,
                                                             scratch, 1.0), p[i])
    keep = np.ones(n, bool)
    if name in ("hinge", "squared_hinge"):
        keep = ~np.all(y == 1, axis=1)
    np.testing.assert_allclose(grad[keep], 0.25 * fd[keep], rtol=FD_RTOL, atol=FD_ATOL)


LOGIT_CASES = [("categorical", 0.0), ("categorical", 0.1), ("sparse", 0.0),
               ("binary", 0.0), ("binary", 0.2)]


def _logit_inputs(kind, rng, n, m, scale=4.0):
    z = scale * rng.standard_normal((n, m))
    if kind == "sparse":
        return z, rng.integers(0, m, n).astype(np.int64)
    if kind == "categorical":
        y = rng.uniform(0, 1, (n, m))
        return z, y / y.sum(1, keepdims=True)
    return z, rng.uniform(0, 1, (n, m))


def _logit_kernel(kind, z, y, sw, grad, scale, smoothing, per_sample=None):
    if kind == "sparse":
        return K.sparse_cross_entropy_from_logits(z, y, sw, grad, scale, per_sample=per_sample)
    kernel = K.cross_entropy_from_logits if kind == "categorical" \
        else K.binary_cross_entropy_from_logits
    return kernel(z, y, sw, grad, scale, smoothing, per_sample=per_sample)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("n,m", SHAPES_2D)
@pytest.mark.parametrize("kind,smoothing", LOGIT_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_from_logits_kernel_reference(dtype, kind, smoothing, n, m, weighted):
    rng = rng_for("logits", dtype, kind, smoothing, n, m, weighted)
    z, y = _logit_inputs(kind, rng, n, m)
    z = z.astype(dtype)
    y = y if kind == "sparse" else y.astype(dtype)
    w = rng.uniform(0, 3, n).astype(dtype) if weighted else np.ones(n, dtype)
    sw = ro(w) if weighted else ro(np.empty(0, dtype))
    grad = nan_out((n, m), dtype)
    per = np.full(n, np.nan)
    total = _logit_kernel(kind, ro(z), ro(y), sw, grad, 0.5, smoothing, per)
    li, g, mag = _ref_logits(kind, z.astype(np.float64),
                             y if kind == "sparse" else y.astype(np.float64), smoothing)
    w64 = w.astype(np.float64)
    np.testing.assert_allclose(total, np.sum(w64 * li), rtol=LOSS_RTOL)
    np.testing.assert_allclose(per, li, rtol=LOSS_RTOL)
    # exp and the sigmoid are computed in double from the rounded logits: the gradient
    # is one rounding from the double value, as for the other kernels.
    ws = (w64 * 0.5)[:, None]
    _assert_grad(grad, ws * g, np.abs(ws) * mag, dtype)


@pytest.mark.parametrize("kind,smoothing", LOGIT_CASES)
def test_from_logits_kernel_finite_differences(kind, smoothing):
    rng = rng_for("logits-fd", kind, smoothing)
    z, y = _logit_inputs(kind, rng, 5, 4, scale=1.5)
    grad = nan_out(z.shape, np.float64)
    _logit_kernel(kind, ro(z), ro(y), ro(np.empty(0)), grad, 1.0, smoothing)
    scratch = np.empty((1, 4))
    for i in range(5):
        fd = fd_gradient(lambda v, i=i: _logit_kernel(kind, ro(v[None, :]), ro(y[i:i + 1]),
                                                      ro(np.empty(0)), scratch, 1.0,
                                                      smoothing), z[i])
        np.testing.assert_allclose(grad[i], fd, rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize("dtype", DTYPES)
def test_from_logits_kernels_extreme_logits(dtype):
    """Logits of +-1000 neither overflow nor take log(0): exact losses, finite gradients."""
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0]], dtype)
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype)
    grad = nan_out(z.shape, dtype)
    total = K.cross_entropy_from_logits(ro(z), ro(y), ro(np.empty(0, dtype)), grad, 1.0)
    np.testing.assert_allclose(total, 2000.0 + math.log(3.0), rtol=1e-12)
    assert np.all(np.isfinite(grad))
    total = K.sparse_cross_entropy_from_logits(ro(z), ro(np.array([1, 0])),
                                               ro(np.empty(0, dtype)), grad, 1.0)
    np.testing.assert_allclose(total, 2000.0 + math.log(3.0), rtol=1e-12)
    total = K.binary_cross_entropy_from_logits(ro(z), ro(y), ro(np.empty(0, dtype)), grad,
                                               1.0)
    zz, yy = z.astype(np.float64), y.astype(np.float64)
    ref = np.sum(np.mean(np.maximum(zz, 0) - zz * yy + np.log1p(np.exp(-np.abs(zz))), 1))
    np.testing.assert_allclose(total, ref, rtol=1e-12)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("dtype", DTYPES)
def test_label_smoothing_in_the_probability_kernels(dtype):
    """label_smoothing turns y into y (1 - s) + s/m (categorical) or + s/2 (binary) in the
    fused and the clipped kernels alike: equal to the unsmoothed kernel on smoothed y."""
    rng = rng_for("smoothing", dtype)
    n, m, s = 7, 5, 0.3
    z = rng.standard_normal((n, m)).astype(dtype)
    pc = np.exp(z - logsumexp(z, 1, keepdims=True)).astype(dtype)
    pb = (1 / (1 + np.exp(-z.astype(np.float64)))).astype(dtype)
    y = np.eye(m, dtype=dtype)[rng.integers(0, m, n)]
    empty = ro(np.empty(0, dtype))
    g1, g2 = nan_out((n, m), dtype), nan_out((n, m), dtype)
    for smooth_y, call in [
        (y * (1 - s) + s / m, lambda yy, g, ls: K.softmax_cross_entropy(ro(z), ro(pc), ro(yy),
                                                                        empty, g, 1.0, ls)),
        (y * (1 - s) + s / m, lambda yy, g, ls: K.categorical_cross_entropy(ro(pc), ro(yy),
                                                                            empty, g, 1.0, ls)),
        (y * (1 - s) + s / 2, lambda yy, g, ls: K.sigmoid_binary_cross_entropy(
            ro(z), ro(pb), ro(yy), empty, g, 1.0, ls)),
        (y * (1 - s) + s / 2, lambda yy, g, ls: K.binary_cross_entropy(ro(pb), ro(yy), empty,
                                                                       g, 1.0, ls)),
    ]:
        a = call(y, g1, s)
        b = call(smooth_y.astype(np.float64).astype(dtype), g2, 0.0)
        # the smoothed targets differ only by the rounding of y (1 - s) + s/m to dtype
        tol = {np.float32: 1e-6, np.float64: 1e-13}[dtype]
        np.testing.assert_allclose(a, b, rtol=tol)
        np.testing.assert_allclose(g1, g2, rtol=tol * 10, atol=tol)


def test_per_sample_rejects_a_wrong_length():
    p = ro(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"per_sample: expected shape \(3,\)"):
        K.mean_absolute_error(p, p, ro(np.empty(0)), np.empty((3, 2)), 1.0,
                              per_sample=np.empty(2))


# ------------------------------------------------------- through a model (FD) --

MODEL_CASES = [
    # (loss object, last activation, target kind)
    (fn.losses.MeanAbsoluteError(), "linear", "real"),
    (fn.losses.MeanAbsolutePercentageError(), "linear", "real"),
    (fn.losses.MeanSquaredLogarithmicError(), "sigmoid", "positive"),
    (fn.losses.Huber(), "linear", "real"),
    (fn.losses.Huber(delta=0.3), "linear", "real"),
    (fn.losses.LogCosh(), "linear", "real"),
    (fn.losses.Poisson(), "sigmoid", "counts"),
    (fn.losses.KLDivergence(), "softmax", "onehot-soft"),
    (fn.losses.Hinge(), "linear", "signs"),
    (fn.losses.SquaredHinge(), "linear", "signs"),
    (fn.losses.CategoricalHinge(), "linear", "onehot"),
    (fn.losses.CosineSimilarity(), "linear", "real"),
    (fn.losses.CategoricalCrossentropy(from_logits=True), "linear", "onehot"),
    (fn.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), "linear",
     "onehot"),
    (fn.losses.CategoricalCrossentropy(label_smoothing=0.1), "softmax", "onehot"),
    (fn.losses.SparseCategoricalCrossentropy(from_logits=True), "linear", "sparse"),
    (fn.losses.BinaryCrossentropy(from_logits=True), "linear", "binary"),
    (fn.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2), "linear", "binary"),
    (fn.losses.BinaryCrossentropy(label_smoothing=0.2), "sigmoid", "binary"),
]


def _targets(kind, rng, n, out):
    if kind == "real":
        return rng.standard_normal((n, out)) + 2.0 * rng.choice([-1, 1], (n, out))
    if kind == "positive":
        return rng.uniform(0, 1, (n, out))
    if kind == "counts":
        return rng.integers(0, 4, (n, out)).astype(float)
    if kind == "onehot-soft":
        y = rng.uniform(0, 1, (n, out))
        return y / y.sum(1, keepdims=True)
    if kind == "signs":
        return rng.choice([-1.0, 1.0], (n, out))
    if kind == "onehot":
        return np.eye(out)[rng.integers(0, out, n)]
    if kind == "sparse":
        return rng.integers(0, out, n)
    return (rng.random((n, out)) > 0.5).astype(float)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("loss,last,kind", MODEL_CASES, ids=[repr(c[0]) for c in MODEL_CASES])
def test_loss_gradients_through_model(loss, last, kind, weighted):
    fn.set_seed(3)
    model = fn.Sequential([L.Dense(6, activation="tanh", input_dim=4),
                           L.Dense(3, activation=last)], dtype="float64")
    model.compile(loss=loss, optimizer="sgd")
    assert not model._fused or not getattr(loss, "from_logits", False)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 4))
    y = _targets(kind, rng, 9, 3)
    sw = rng.random(9) * 2 if weighted else None
    assert_gradients_match(model, x, y, sample_weight=sw)
    # the model's loss is the loss object's own value on the predictions
    expected = loss(y, model.predict(x), sample_weight=sw)
    assert model.evaluate(x, y, sample_weight=sw) == pytest.approx(expected, rel=1e-12)


def test_from_logits_after_linear_layer_equals_softmax_layer():
    """Keras's recommended usage: a linear last layer with from_logits=True trains
    exactly like a softmax layer with the fused loss (same weights, same loss, same
    gradients), for the three cross-entropies."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((11, 4))
    for cls, act, y in [
        (fn.losses.SparseCategoricalCrossentropy, "softmax", rng.integers(0, 3, 11)),
        (fn.losses.CategoricalCrossentropy, "softmax", np.eye(3)[rng.integers(0, 3, 11)]),
        (fn.losses.BinaryCrossentropy, "sigmoid", (rng.random((11, 3)) > 0.5) * 1.0),
    ]:
        models = []
        for last, from_logits in ((act, False), ("linear", True)):
            fn.set_seed(7)
            model = fn.Sequential([L.Dense(5, activation="relu", input_dim=4),
                                   L.Dense(3, activation=last)], dtype="float64")
            model.compile(loss=cls(from_logits=from_logits), optimizer="sgd")
            models.append(model)
        models[1].set_weights(models[0].get_weights())
        assert models[0]._fused and not models[1]._fused
        np.testing.assert_allclose(models[1].evaluate(x, y), models[0].evaluate(x, y),
                                   rtol=1e-13)
        for a, b in zip(models[0].gradients(x, y), models[1].gradients(x, y)):
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-14)


def test_from_logits_is_stable_for_huge_logits_and_trains():
    fn.set_seed(4)
    model = fn.Sequential([L.Dense(3, input_dim=2)], dtype="float64")
    model.compile(loss=fn.losses.SparseCategoricalCrossentropy(from_logits=True),
                  optimizer="sgd")
    model.set_weights([np.array([[1000.0, -1000, 0], [0, 0, 0]]), np.zeros(3)])
    assert model.evaluate(np.array([[1.0, 0]]), np.array([1])) == pytest.approx(2000.0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 0] > 1).astype(int)
    fn.set_seed(1)
    model = fn.Sequential([L.Dense(16, activation="relu", input_dim=2), L.Dense(3)])
    model.compile(loss=fn.losses.SparseCategoricalCrossentropy(from_logits=True),
                  optimizer=fn.optimizers.Adam(0.01), metrics=["accuracy"])
    history = model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.9


def test_from_logits_after_a_softmax_warns():
    model = fn.Sequential([L.Dense(3, activation="softmax", input_dim=2)])
    with pytest.warns(UserWarning, match="from_logits=True, but the model ends in a softmax"):
        model.compile(loss=fn.losses.CategoricalCrossentropy(from_logits=True))


# ------------------------------------------------------------ Keras's examples --

def test_keras_documented_values():
    """The values in Keras 3's docstrings (keras/src/losses/losses.py)."""
    Ls = fn.losses
    y3, p3 = [[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
    np.testing.assert_allclose(Ls.categorical_crossentropy(y3, p3), [0.0513, 2.303],
                               atol=5e-4)
    assert Ls.CategoricalCrossentropy()(y3, p3) == pytest.approx(1.177, abs=1e-3)
    assert Ls.CategoricalCrossentropy()(y3, p3, sample_weight=np.array([0.3, 0.7])) == \
        pytest.approx(0.814, abs=1e-3)
    assert Ls.CategoricalCrossentropy(reduction="sum")(y3, p3) == pytest.approx(2.354, abs=1e-3)
    assert Ls.SparseCategoricalCrossentropy()([1, 2], p3) == pytest.approx(1.177, abs=1e-3)
    np.testing.assert_allclose(Ls.SparseCategoricalCrossentropy(reduction=None)([1, 2], p3),
                               [0.0513, 2.303], atol=5e-4)
    yb, zb = [[0, 1], [0, 0]], [[-18.6, 0.51], [2.94, -12.8]]
    bce = Ls.BinaryCrossentropy(from_logits=True)
    assert bce([0, 1, 0, 0], [-18.6, 0.51, 2.94, -12.8]) == pytest.approx(0.8654, abs=1e-4)
    assert bce(yb, zb) == pytest.approx(0.8654, abs=1e-4)
    assert bce(yb, zb, sample_weight=[0.8, 0.2]) == pytest.approx(0.243, abs=1e-3)
    assert Ls.BinaryCrossentropy(from_logits=True, reduction="sum")(yb, zb) == \
        pytest.approx(1.730, abs=1e-3)
    np.testing.assert_allclose(Ls.BinaryCrossentropy(from_logits=True, reduction=None)(yb, zb),
                               [0.235, 1.496], atol=5e-4)
    np.testing.assert_allclose(Ls.binary_crossentropy(yb, [[0.6, 0.4], [0.4, 0.6]]),
                               [0.916, 0.714], atol=5e-4)
    assert np.mean(Ls.huber(yb, [[0.6, 0.4], [0.4, 0.6]])) == pytest.approx(0.155, abs=1e-3)
    assert np.mean(Ls.log_cosh([[0., 1.], [0., 0.]], [[1., 1.], [0., 0.]])) == \
        pytest.approx(0.108, abs=1e-3)
    np.testing.assert_allclose(
        Ls.cosine_similarity([[0., 1.], [1., 1.], [1., 1.]], [[1., 0.], [1., 1.], [-1., -1.]]),
        [0.0, -1.0, 1.0], atol=1e-6)


def test_function_forms_shapes_and_aliases():
    Ls = fn.losses
    rng = np.random.default_rng(0)
    y, p = rng.random((4, 3, 5)), rng.random((4, 3, 5))
    out = Ls.mae(y, p)
    assert out.shape == (4, 3)
    np.testing.assert_allclose(out, np.mean(np.abs(y - p), -1), rtol=1e-14)
    assert isinstance(Ls.mse([1.0, 2.0], [1.0, 3.0]), float)      # rank 1 -> a scalar
    assert Ls.mse([1.0, 2.0], [1.0, 3.0]) == 0.5
    for short, full in [(Ls.mse, Ls.mean_squared_error), (Ls.mae, Ls.mean_absolute_error),
                        (Ls.mape, Ls.mean_absolute_percentage_error),
                        (Ls.msle, Ls.mean_squared_logarithmic_error),
                        (Ls.kld, Ls.kl_divergence), (Ls.logcosh, Ls.log_cosh)]:
        assert short is full
    y2, p2 = rng.random((6, 3)), rng.random((6, 3))
    np.testing.assert_allclose(Ls.huber(y2, p2, delta=0.1),
                               Ls.Huber(delta=0.1, reduction=None)(y2, p2), rtol=1e-15)
    np.testing.assert_allclose(Ls.kl_divergence(y2, p2), np.sum(
        np.clip(y2, EPS, 1) * np.log(np.clip(y2, EPS, 1) / np.clip(p2, EPS, 1)), -1),
        rtol=1e-13)
    np.testing.assert_allclose(Ls.poisson(y2, p2), np.mean(p2 - y2 * np.log(p2 + EPS), -1),
                               rtol=1e-13)
    # hinge: 0/1 labels are read as -1/1
    np.testing.assert_allclose(Ls.hinge([[0.0, 1.0]], [[0.3, 0.4]]),
                               [np.mean(np.maximum(1 - np.array([-1, 1]) * [0.3, 0.4], 0))])


def test_reductions():
    rng = np.random.default_rng(1)
    y, p, w = rng.random((5, 3)), rng.random((5, 3)), rng.random(5)
    per = np.mean((y - p) ** 2, 1)
    mse = fn.losses.MeanSquaredError
    assert mse()(y, p, w) == pytest.approx(np.sum(per * w) / 5, rel=1e-14)
    assert mse(reduction="mean")(y, p, w) == pytest.approx(np.sum(per * w) / 5, rel=1e-14)
    assert mse(reduction="sum")(y, p, w) == pytest.approx(np.sum(per * w), rel=1e-14)
    assert mse(reduction="mean_with_sample_weight")(y, p, w) == \
        pytest.approx(np.sum(per * w) / np.sum(w), rel=1e-14)
    np.testing.assert_allclose(mse(reduction=None)(y, p, w), per * w, rtol=1e-14)
    np.testing.assert_allclose(mse(reduction="none")(y, p), per, rtol=1e-14)
    assert mse()(y, p, 2.0) == pytest.approx(2 * np.mean(per), rel=1e-14)
    assert isinstance(mse(dtype="float32")(y, p), float)


def test_names_defaults_and_configs():
    Ls = fn.losses
    defaults = {
        Ls.MeanSquaredError: "mean_squared_error", Ls.MeanAbsoluteError: "mean_absolute_error",
        Ls.MeanAbsolutePercentageError: "mean_absolute_percentage_error",
        Ls.MeanSquaredLogarithmicError: "mean_squared_logarithmic_error",
        Ls.Huber: "huber_loss", Ls.LogCosh: "log_cosh", Ls.KLDivergence: "kl_divergence",
        Ls.Poisson: "poisson", Ls.Hinge: "hinge", Ls.SquaredHinge: "squared_hinge",
        Ls.CategoricalHinge: "categorical_hinge", Ls.CosineSimilarity: "cosine_similarity",
        Ls.BinaryCrossentropy: "binary_crossentropy",
        Ls.CategoricalCrossentropy: "categorical_crossentropy",
        Ls.SparseCategoricalCrossentropy: "sparse_categorical_crossentropy",
    }
    for cls, name in defaults.items():
        loss = cls()
        assert loss.name == name and loss.reduction == "sum_over_batch_size"
        again = cls.from_config(json.loads(json.dumps(loss.get_config())))
        assert again.get_config() == loss.get_config()
    assert Ls.Huber().delta == 1.0
    bce = Ls.BinaryCrossentropy()
    assert (bce.from_logits, bce.label_smoothing, bce.axis) == (False, 0.0, -1)
    assert Ls.CosineSimilarity().axis == -1
    assert Ls.SparseCategoricalCrossentropy().ignore_class is None
    for alias, cls in [("mae", Ls.MeanAbsoluteError), ("mape", Ls.MeanAbsolutePercentageError),
                       ("msle", Ls.MeanSquaredLogarithmicError), ("huber", Ls.Huber),
                       ("log_cosh", Ls.LogCosh), ("kl_divergence", Ls.KLDivergence),
                       ("kld", Ls.KLDivergence), ("poisson", Ls.Poisson),
                       ("hinge", Ls.Hinge), ("squared_hinge", Ls.SquaredHinge),
                       ("categorical_hinge", Ls.CategoricalHinge),
                       ("cosine_similarity", Ls.CosineSimilarity),
                       ("Huber", Ls.Huber), ("MeanSquaredError", Ls.MeanSquaredError)]:
        assert type(Ls.get(alias)) is cls
    assert Ls.get("mse").name == "mse"
    assert isinstance(Ls.get(Ls.Huber), Ls.Huber)


def test_every_loss_compiles_and_trains_by_name():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = np.abs(x[:, :2]) * 0.3 + 0.1
    for name in ["mae", "mape", "msle", "huber", "log_cosh", "poisson", "kl_divergence",
                 "hinge", "squared_hinge", "categorical_hinge", "cosine_similarity"]:
        fn.set_seed(0)
        model = fn.Sequential([L.Dense(8, activation="tanh", input_dim=3),
                               L.Dense(2, activation="sigmoid")])
        model.compile(loss=name, optimizer="adam")
        history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
        assert np.all(np.isfinite(history.history["loss"])), name


# ------------------------------------------------------------------- saving --

@pytest.mark.parametrize("loss", [
    fn.losses.Huber(delta=2.5), fn.losses.SparseCategoricalCrossentropy(from_logits=True),
    fn.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
    fn.losses.CosineSimilarity(), "mae", "kld",
], ids=repr)
def test_loss_objects_survive_save_and_load(tmp_path, loss):
    fn.set_seed(0)
    sparse = isinstance(loss, fn.losses.SparseCategoricalCrossentropy)
    model = fn.Sequential([L.Dense(3, input_dim=2)])
    model.compile(loss=loss, optimizer="adam")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 2))
    y = rng.integers(0, 3, 8) if sparse else rng.random((8, 3))
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.fnn")
    loaded = fn.load_model(tmp_path / "m.fnn")
    assert type(loaded.loss) is type(model.loss)
    assert loaded.loss.get_config() == model.loss.get_config()
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_files_with_a_loss_name_still_load(tmp_path):
    """Model files written before loss configs existed hold the loss as a name."""
    fn.set_seed(0)
    model = fn.Sequential([L.Dense(2, input_dim=2)])
    model.compile(loss="mse", optimizer="sgd", metrics=[])
    model.save(tmp_path / "new.fnn")
    with zipfile.ZipFile(tmp_path / "new.fnn") as z:
        entries = {name: z.read(name) for name in z.namelist()}
    doc = json.loads(entries["fastnn.json"])
    assert isinstance(doc["compile"]["loss"], dict)
    doc["compile"]["loss"] = "mse"
    entries["fastnn.json"] = json.dumps(doc).encode()
    with zipfile.ZipFile(tmp_path / "old.fnn", "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    loaded = fn.load_model(tmp_path / "old.fnn")
    assert isinstance(loaded.loss, fn.losses.MeanSquaredError) and loaded.loss.name == "mse"


def test_hostile_loss_configs_are_refused(tmp_path):
    fn.set_seed(0)
    model = fn.Sequential([L.Dense(2, input_dim=2)])
    model.compile(loss=fn.losses.Huber(), optimizer="sgd")
    model.save(tmp_path / "m.fnn")
    with zipfile.ZipFile(tmp_path / "m.fnn") as z:
        entries = {name: z.read(name) for name in z.namelist()}
    for bad in [{"class": "os.system", "config": {}}, {"class": "Huber", "config": {"x": 1}},
                {"class": "Huber", "config": {"delta": -1}}, ["Huber"]]:
        doc = json.loads(entries["fastnn.json"])
        doc["compile"]["loss"] = bad
        entries["fastnn.json"] = json.dumps(doc).encode()
        with zipfile.ZipFile(tmp_path / "bad.fnn", "w") as z:
            for name, data in entries.items():
                z.writestr(name, data)
        with pytest.raises(fn.ModelFileError):
            fn.load_model(tmp_path / "bad.fnn")


# ---------------------------------------------------------------- validation --

@pytest.mark.parametrize("make,error,match", [
    (lambda: fn.losses.Huber(delta=-1.0), ValueError, r"Huber: delta: must be in \(0"),
    (lambda: fn.losses.Huber(delta="1"), TypeError, r"Huber: delta: expected a number"),
    (lambda: fn.losses.MeanSquaredError(reduction="avg"), ValueError,
     r"MeanSquaredError: reduction must be one of"),
    (lambda: fn.losses.BinaryCrossentropy(from_logits=1), TypeError,
     r"BinaryCrossentropy: from_logits must be True or False"),
    (lambda: fn.losses.CategoricalCrossentropy(label_smoothing=1.5), ValueError,
     r"CategoricalCrossentropy: label_smoothing: must be in \[0, 1\]"),
    (lambda: fn.losses.CategoricalCrossentropy(axis=0), ValueError,
     r"CategoricalCrossentropy: axis must be -1"),
    (lambda: fn.losses.SparseCategoricalCrossentropy(ignore_class=255), ValueError,
     r"ignore_class is not supported"),
    (lambda: fn.losses.MeanSquaredError(dtype="int8"), ValueError, r"dtype must be None"),
    (lambda: fn.losses.mae([[1.0, 2.0]], [[1.0, 2.0, 3.0]]), ValueError,
     r"mean_absolute_error: y_true must have y_pred's shape \(1, 3\), got \(1, 2\)"),
    (lambda: fn.losses.sparse_categorical_crossentropy([[0.0, 1.0]], [[0.2, 0.8]]), ValueError,
     r"y_true must hold one integer label per sample"),
    (lambda: fn.losses.binary_crossentropy([[2.0]], [[0.5]]), ValueError,
     r"targets for this loss must be in \[0, 1\]"),
    (lambda: fn.losses.MeanSquaredError()([[1.0]], [[np.nan]]), ValueError, r"NaN"),
])
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_compile_refuses_untrainable_reduction_and_unknown_names():
    model = fn.Sequential([L.Dense(2, input_dim=2)])
    with pytest.raises(ValueError, match=r"reduction='sum'\) cannot be trained"):
        model.compile(loss=fn.losses.MeanSquaredError(reduction="sum"))
    with pytest.raises(ValueError, match=r"unknown loss 'maee'; expected one of .*'mae'"):
        model.compile(loss="maee")
