"""Tests for the typed Cython kernels in fastnn._core, each against a plain-NumPy reference.

Every kernel is checked in float32 and float64 on odd shapes (rows 1, 7, 33, 1000 with
1000 only at small widths; widths 1, 7, 33), with read-only arrays for every const
memoryview argument and NaN-prefilled output buffers (the layers hand the kernels
np.empty outputs, so a kernel must never read what it is supposed to overwrite).
Derivatives are additionally checked in float64 by central finite differences.

Tolerances (see RTOL below) are always *relative to the magnitude of the terms that were
summed* (e.g. |A| @ |B| for a product), never to the possibly-cancelled result, so a
correct kernel cannot fail by cancellation and a wrong formula (an error of order the
terms themselves) cannot pass.
"""
import math
import os
import zlib

import numpy as np
import pytest
from scipy.special import expit, logsumexp
from threadpoolctl import threadpool_limits

from fastnn._core import activations, blas, dense, losses, ops, optim
from fastnn._core import random as krandom

import reference_optimizers as reference

# Activation codes, as documented in activations.pxd.
LINEAR, SIGMOID, TANH, RELU, LEAKY_RELU, SOFTMAX = range(6)
ACTS = [LINEAR, SIGMOID, TANH, RELU, LEAKY_RELU, SOFTMAX]
ACT_NAMES = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"]
LEAKY_ALPHA = 0.25  # exactly representable in float32, so both dtypes use the same alpha

DTYPES = [np.float32, np.float64]

# Tolerance relative to the magnitude of the summed terms.
# float32: eps = 6.0e-8. A dot product of k terms has a worst-case relative error of
#   about k*eps and typically sqrt(k)*eps (blocked BLAS summation); for k <= 1000 the
#   observed error is ~1e-6 of the magnitude, so 1e-5 keeps an order of magnitude of slack
#   while any wrong formula (an error of order the magnitude itself) still fails.
# float64: eps = 1.1e-16; even k*eps for k = 1000 is 1.1e-13, so 1e-12 is safe and tight.
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
# The loss kernels accumulate the loss in double whatever the input dtype, and the
# reference works in double from the very same (dtype-rounded) inputs, so the loss value
# agrees to double precision in both dtypes: n*m <= 7000 nonnegative terms give at most
# ~7e-13 relative error; 1e-11 leaves slack. The one exception is mean_squared_error in
# float32, whose difference p - y is formed in float before being squared in double
# (relative error ~2 eps32 per term), so it gets RTOL[float32] (see loss_rtol).
LOSS_RTOL = 1e-11


def loss_rtol(name, dtype):
    return RTOL[dtype] if name == "mse" else LOSS_RTOL

# Finite differences (float64 only): central differences with h = 1e-6. Truncation error
# is h^2/6 * |f'''| ~ 1e-13 for the O(1)-curvature functions used here (inputs are kept
# away from kinks and from clipping boundaries), and rounding error is about
# eps * |f| / h ~ 1.1e-16 * |f| / 1e-6 ~ 1e-10 * |f|; every function differentiated below
# has |f| = O(1..10) (losses are differentiated one row at a time to keep |f| small),
# so the total error is < ~2e-9, under atol 1e-8. rtol 1e-6 then still detects any
# mistake larger than a millionth of the gradient (a missing 1/m, a sign, a dropped term).
FD_H = 1e-6
FD_RTOL, FD_ATOL = 1e-6, 1e-8

ROWS = [1, 7, 33, 1000]
WIDTHS = [1, 7, 33]
# Batch 1000 only with the small widths, to keep the whole file fast.
SHAPES_2D = [(n, m) for n in ROWS for m in WIDTHS if not (n == 1000 and m == 33)]


@pytest.fixture(autouse=True, scope="module")
def _single_blas_thread():
    # The machine is shared and the products are small: one BLAS thread.
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def rng_for(*key):
    """A generator seeded from the test's parameters, so every case is reproducible."""
    # crc32, not hash(): str hashes are randomized per process.
    return np.random.default_rng([zlib.crc32(repr(k).encode()) for k in key] + [12345])


def ro(a, dtype=None):
    """A C-contiguous, read-only copy (for const memoryview arguments)."""
    a = np.array(a, dtype=dtype, order="C", copy=True)
    a.setflags(write=False)
    return a


def nan_out(shape, dtype):
    """An output buffer full of NaN: the kernel must overwrite every entry."""
    return np.full(shape, np.nan, dtype=dtype)


def assert_close(actual, expected, mag, dtype, what=""):
    """|actual - expected| <= RTOL[dtype] * mag, element-wise (mag >= |terms| summed)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    mag = np.broadcast_to(np.asarray(mag, dtype=np.float64), expected.shape)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    assert np.all(np.isfinite(actual)), f"{what}: non-finite entries"
    tol = RTOL[dtype] * mag + np.finfo(dtype).tiny
    err = np.abs(actual - expected)
    bad = err > tol
    assert not bad.any(), (
        f"{what}: {bad.sum()} entries off; worst err/mag = "
        f"{np.max(err / (mag + np.finfo(dtype).tiny)):.3g} (rtol {RTOL[dtype]:g})")


def act_ref(z, a, alpha=LEAKY_ALPHA):
    z = np.asarray(z, dtype=np.float64)
    if a == LINEAR:
        return z.copy()
    if a == SIGMOID:
        return expit(z)
    if a == TANH:
        return np.tanh(z)
    if a == RELU:
        return np.maximum(z, 0.0)
    if a == LEAKY_RELU:
        return np.where(z > 0, z, alpha * z)
    if a == SOFTMAX:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise ValueError(a)


def act_backward_ref(y, g, a, alpha=LEAKY_ALPHA):
    """dL/dz from dL/dy and the output y, in float64."""
    y = np.asarray(y, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if a == LINEAR:
        return g.copy()
    if a == SIGMOID:
        return g * y * (1 - y)
    if a == TANH:
        return g * (1 - y * y)
    if a == RELU:
        return np.where(y > 0, g, 0.0)
    if a == LEAKY_RELU:
        return np.where(y > 0, g, alpha * g)
    if a == SOFTMAX:
        return y * (g - np.sum(g * y, axis=1, keepdims=True))
    raise ValueError(a)


def away_from_zero(rng, shape, lo=0.05, hi=3.0):
    """Random values with |v| in [lo, hi] and random signs (no kinks within FD_H)."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(lo, hi, size=shape)


def fd_gradient(f, x, h=FD_H):
    """Central-difference gradient of the scalar function f at the float64 array x."""
    x = np.array(x, dtype=np.float64)
    g = np.empty_like(x)
    for idx in np.ndindex(*x.shape):
        xp = x.copy()
        xp[idx] += h
        xm = x.copy()
        xm[idx] -= h
        g[idx] = (f(xp) - f(xm)) / (2 * h)
    return g


# ---------------------------------------------------------------------------
# blas.matmul_into
# ---------------------------------------------------------------------------

# (m, n, k): every combination of the odd sizes, which exercises all three BLAS paths of
# blas.matmul -- gemv when m == 1 or n == 1, ger when k == 1 (and beta in {0, 1}), gemm
# otherwise -- plus long products (k = 1000) and tall outputs (m = 1000) at small widths.
MATMUL_SHAPES = [(m, n, k) for m in WIDTHS for n in WIDTHS for k in WIDTHS] + [
    (1000, 1, 7), (1000, 7, 1), (1000, 7, 7), (1, 7, 1000), (7, 1, 1000), (7, 7, 1000),
]
# alpha / beta: plain product, beta = 1 accumulation (with alpha 1 and alpha != 1), and a
# general beta (which must leave the ger path for gemm when k == 1). Exactly representable
# in float32 so both dtypes use the very same scalars.
ALPHA_BETA = [(1.0, 0.0), (-1.5, 0.0), (1.0, 1.0), (-1.5, 1.0), (0.5, -0.75)]


def _matmul_case(rng, dtype, m, n, k, ta, tb, alpha, beta):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    opa = (a.T if ta else a).astype(np.float64)
    opb = (b.T if tb else b).astype(np.float64)
    ref = alpha * (opa @ opb) + (beta * c0.astype(np.float64) if beta != 0 else 0.0)
    mag = abs(alpha) * (np.abs(opa) @ np.abs(opb)) + abs(beta) * np.abs(c0)
    # With beta == 0 BLAS must not read C at all: prefill with NaN to prove it.
    c = c0.copy() if beta != 0 else nan_out((m, n), dtype)
    return ro(a), ro(b), c, ref, mag


@pytest.mark.parametrize("alpha,beta", ALPHA_BETA)
@pytest.mark.parametrize("tb", [False, True], ids=["N", "T"])
@pytest.mark.parametrize("ta", [False, True], ids=["N", "T"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_into_all_paths(dtype, ta, tb, alpha, beta):
    rng = rng_for("matmul", dtype, ta, tb, alpha, beta)
    for m, n, k in MATMUL_SHAPES:
        a, b, c, ref, mag = _matmul_case(rng, dtype, m, n, k, ta, tb, alpha, beta)
        blas.matmul_into(a, b, c, ta, tb, alpha, beta)
        assert_close(c, ref, mag, dtype, f"matmul m={m} n={n} k={k} ta={ta} tb={tb}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_into_default_arguments(dtype):
    rng = rng_for("matmul-default", dtype)
    a = rng.standard_normal((7, 33)).astype(dtype)
    b = rng.standard_normal((33, 7)).astype(dtype)
    c = nan_out((7, 7), dtype)
    blas.matmul_into(ro(a), ro(b), c)  # alpha=1, beta=0, no transposes
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    assert_close(c, a64 @ b64, np.abs(a64) @ np.abs(b64), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_into_repeated_accumulation(dtype):
    # beta = 1 repeatedly, as a gradient accumulator would, on the three paths.
    rng = rng_for("matmul-acc", dtype)
    for m, n, k in [(1, 7, 7), (7, 1, 7), (7, 7, 1), (7, 7, 7)]:
        c = np.zeros((m, n), dtype)
        ref = np.zeros((m, n))
        mag = np.zeros((m, n))
        for _ in range(3):
            a = rng.standard_normal((m, k)).astype(dtype)
            b = rng.standard_normal((k, n)).astype(dtype)
            blas.matmul_into(ro(a), ro(b), c, False, False, 1.0, 1.0)
            ref += a.astype(np.float64) @ b.astype(np.float64)
            mag += np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
        assert_close(c, ref, mag, dtype, f"accumulate m={m} n={n} k={k}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_into_empty_sum_beta_zero_and_one(dtype):
    # k == 0: an empty sum. beta = 0 gives zeros, beta = 1 leaves C unchanged.
    a = np.zeros((3, 0), dtype)
    b = np.zeros((0, 4), dtype)
    c = nan_out((3, 4), dtype)
    blas.matmul_into(a, b, c, False, False, 1.0, 0.0)
    assert np.array_equal(c, np.zeros((3, 4)))
    c = np.arange(12, dtype=dtype).reshape(3, 4)
    blas.matmul_into(a, b, c, False, False, 1.0, 1.0)
    assert np.array_equal(c, np.arange(12).reshape(3, 4))


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_into_empty_sum_general_beta(dtype):
    a = np.zeros((3, 0), dtype)
    b = np.zeros((0, 4), dtype)
    c = np.ones((3, 4), dtype)
    blas.matmul_into(a, b, c, False, False, 1.0, 2.0)
    assert np.array_equal(c, np.full((3, 4), 2.0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_into_copy_of_noncontiguous_slice(dtype):
    rng = rng_for("matmul-slice", dtype)
    big_a = rng.standard_normal((66, 99)).astype(dtype)
    big_b = rng.standard_normal((21, 14)).astype(dtype)
    va, vb = big_a[::2, 1::3], big_b[::3, ::2]       # (33, 33) and (7, 7): strided views
    assert not va.flags.c_contiguous and not vb.flags.c_contiguous
    # A strided view is rejected (never silently misread as contiguous) ...
    with pytest.raises(ValueError):
        blas.matmul_into(va, big_a[:33, :7].copy(), nan_out((33, 7), dtype))
    # ... and a C-contiguous copy of it (read-only too) gives the right product.
    a = ro(np.ascontiguousarray(va[:7, :7]))
    b = ro(np.ascontiguousarray(vb))
    c = nan_out((7, 7), dtype)
    blas.matmul_into(a, b, c, True, True, 1.0, 0.0)
    a64, b64 = va[:7, :7].astype(np.float64), vb.astype(np.float64)
    assert_close(c, a64.T @ b64.T, np.abs(a64.T) @ np.abs(b64.T), dtype)


def test_read_only_output_is_rejected():
    # const is only on the inputs: a read-only *output* must be refused, not written.
    a = ro(np.ones((2, 2)))
    c = ro(np.zeros((2, 2)))
    with pytest.raises(ValueError):
        blas.matmul_into(a, a, c)
    assert np.array_equal(c, np.zeros((2, 2)))


# ---------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------

def test_activation_enum_codes():
    assert [int(v) for v in activations.Activation] == ACTS
    assert [v.name.lower() for v in activations.Activation] == ACT_NAMES


@pytest.mark.parametrize("n,m", SHAPES_2D)
@pytest.mark.parametrize("act", ACTS, ids=ACT_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_forward_backward(dtype, act, n, m):
    rng = rng_for("act", dtype, act, n, m)
    x = (2 * rng.standard_normal((n, m))).astype(dtype)
    out = nan_out((n, m), dtype)
    activations.activation_forward(ro(x), out, act, LEAKY_ALPHA)
    y_ref = act_ref(x, act)
    # Element-wise activations are accurate to a few ulp of the output; softmax adds a
    # sum of m terms and an exp of (x - max) whose argument is rounded to |x - max| ulps.
    x64 = x.astype(np.float64)
    spread = np.abs(x64 - x64.max(axis=1, keepdims=True)) if act == SOFTMAX else 0.0
    assert_close(out, y_ref, np.abs(y_ref) * (1 + spread), dtype, "forward")

    g = rng.standard_normal((n, m)).astype(dtype)
    grad = g.copy()
    activations.activation_backward(ro(out), grad, act, LEAKY_ALPHA)
    y = out.astype(np.float64)
    dz_ref = act_backward_ref(y, g, act)
    # Error bound of each backward formula evaluated in the dtype (no cancellation
    # hidden: e.g. tanh's 1 - y*y is bounded by 1 + y*y, not by its small result).
    g64 = np.abs(g.astype(np.float64))
    if act == SOFTMAX:
        mag = y * (g64 + np.sum(g64 * y, axis=1, keepdims=True))
    elif act == TANH:
        mag = g64 * (1 + y * y)
    else:
        mag = g64 * np.abs(act_backward_ref(y, np.ones_like(y), act))
    assert_close(grad, dz_ref, mag, dtype, "backward")


@pytest.mark.parametrize("act", ACTS, ids=ACT_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_forward_in_place(dtype, act):
    # "x and out may be the same buffer"
    rng = rng_for("act-inplace", dtype, act)
    x = (2 * rng.standard_normal((7, 7))).astype(dtype)
    expected = nan_out((7, 7), dtype)
    activations.activation_forward(x, expected, act, LEAKY_ALPHA)
    activations.activation_forward(x, x, act, LEAKY_ALPHA)
    assert np.array_equal(x, expected)


@pytest.mark.parametrize("n,m", [(1, 1), (7, 7), (33, 33), (1000, 7)])
@pytest.mark.parametrize("act", ACTS, ids=ACT_NAMES)
def test_activation_backward_finite_differences(act, n, m):
    """activation_backward is the derivative of activation_forward (float64).

    L = sum(R * act(x)) for a random R; dL/dx = activation_backward(act(x), R). Rows are
    independent and each activation is row-wise, so perturbing column j of every row at
    once and differencing the per-row sums gives column j of the gradient for all rows.
    """
    rng = rng_for("act-fd", act, n, m)
    x = away_from_zero(rng, (n, m))  # |x| >= 0.05: ReLU / leaky ReLU kinks are far away
    r = rng.standard_normal((n, m))

    def row_losses(xx):
        y = np.empty_like(xx)
        activations.activation_forward(ro(xx), y, act, LEAKY_ALPHA)
        return np.sum(r * y, axis=1)

    fd = np.empty((n, m))
    for j in range(m):
        xp, xm = x.copy(), x.copy()
        xp[:, j] += FD_H
        xm[:, j] -= FD_H
        fd[:, j] = (row_losses(xp) - row_losses(xm)) / (2 * FD_H)
    out = np.empty((n, m))
    activations.activation_forward(ro(x), out, act, LEAKY_ALPHA)
    grad = r.copy()
    activations.activation_backward(ro(out), grad, act, LEAKY_ALPHA)
    np.testing.assert_allclose(grad, fd, rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_extreme_inputs(dtype):
    x = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0],
                  [1000.0, 1000.0, -1000.0]], dtype=dtype)
    for act in ACTS:
        out = nan_out(x.shape, dtype)
        activations.activation_forward(ro(x), out, act, LEAKY_ALPHA)
        assert np.all(np.isfinite(out)), ACT_NAMES[act]
        grad = np.ones_like(out)
        activations.activation_backward(ro(out), grad, act, LEAKY_ALPHA)
        assert np.all(np.isfinite(grad)), ACT_NAMES[act]
    out = nan_out(x.shape, dtype)
    activations.activation_forward(ro(x), out, SIGMOID)
    assert np.array_equal(out, [[1.0, 0.0, 0.5], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    activations.activation_forward(ro(x), out, TANH)
    assert np.array_equal(out, [[1.0, -1.0, 0.0], [-1.0, -1.0, -1.0], [1.0, 1.0, -1.0]])
    activations.activation_forward(ro(x), out, SOFTMAX)
    assert np.allclose(out, [[1, 0, 0], [1 / 3] * 3, [0.5, 0.5, 0]], rtol=1e-6, atol=0)
    assert np.allclose(out.sum(axis=1), 1.0, rtol=1e-6)


# ---------------------------------------------------------------------------
# dense
# ---------------------------------------------------------------------------

DENSE_SHAPES = [(n, k, m) for n in ROWS for k in WIDTHS for m in WIDTHS
                if not (n == 1000 and (k == 33 or m == 33))]


def _dense_numpy(x, w, b, act):
    z = x @ w + b
    return z, act_ref(z, act)


@pytest.mark.parametrize("act", ACTS, ids=ACT_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_forward_backward_reference(dtype, act):
    rng = rng_for("dense", dtype, act)
    for n, k, m in DENSE_SHAPES:
        x = rng.standard_normal((n, k)).astype(dtype)
        w = (rng.standard_normal((k, m)) / math.sqrt(k)).astype(dtype)
        b = rng.standard_normal(m).astype(dtype)
        x64, w64, b64 = (v.astype(np.float64) for v in (x, w, b))
        z_ref, y_ref = _dense_numpy(x64, w64, b64, act)
        mag_z = np.abs(x64) @ np.abs(w64) + np.abs(b64)
        what = f"n={n} k={k} m={m}"

        out = nan_out((n, m), dtype)
        keep_z = nan_out((n, m), dtype)
        dense.dense_forward(ro(x), ro(w), ro(b), out, keep_z, act, LEAKY_ALPHA)
        assert_close(keep_z, z_ref, mag_z, dtype, "keep_z " + what)
        # Every activation here is 1-Lipschitz per entry except softmax (|dp_j| <=
        # 2 max|dz|): the output error is bounded by 2 * the row's largest z magnitude.
        mag_y = 2 * mag_z.max(axis=1, keepdims=True) + np.abs(y_ref)
        assert_close(out, y_ref, mag_y, dtype, "out " + what)
        out2 = nan_out((n, m), dtype)  # no keep_z: pass an array with no rows
        dense.dense_forward(ro(x), ro(w), ro(b), out2, np.empty((0, m), dtype), act,
                            LEAKY_ALPHA)
        assert np.array_equal(out2, out)

        r = rng.standard_normal((n, m)).astype(dtype)
        grad_out = r.copy()
        grad_w, grad_b, grad_x = (nan_out(s, dtype) for s in ((k, m), (m,), (n, k)))
        pen = dense.dense_backward(ro(x), ro(w), ro(b), ro(out), grad_out, grad_w, grad_b,
                                   grad_x, act, LEAKY_ALPHA)
        assert pen == 0.0
        y = out.astype(np.float64)
        dz = act_backward_ref(y, r, act)
        # |dz| <= 2 * max_row |dL/dy| for every activation here (see above).
        mag_dz = np.broadcast_to(2 * np.abs(r.astype(np.float64)).max(axis=1, keepdims=True),
                                 (n, m))
        assert_close(grad_out, dz, mag_dz, dtype, "dz " + what)
        assert_close(grad_w, x64.T @ dz, np.abs(x64.T) @ mag_dz, dtype, "grad_w " + what)
        assert_close(grad_b, dz.sum(axis=0), mag_dz.sum(axis=0), dtype, "grad_b " + what)
        assert_close(grad_x, dz @ w64.T, mag_dz @ np.abs(w64.T), dtype, "grad_x " + what)

        # grad_x with no rows: not computed, and nothing else changes.
        grad_out2 = r.copy()
        grad_w2, grad_b2 = nan_out((k, m), dtype), nan_out((m,), dtype)
        dense.dense_backward(ro(x), ro(w), ro(b), ro(out), grad_out2, grad_w2, grad_b2,
                             np.empty((0, k), dtype), act, LEAKY_ALPHA)
        assert np.array_equal(grad_w2, grad_w) and np.array_equal(grad_b2, grad_b)


PENALTIES = {
    "none": (0.0, 0.0, 0.0, 0.0),
    "kernel_l1": (0.03, 0.0, 0.0, 0.0),
    "kernel_l2": (0.0, 0.07, 0.0, 0.0),
    "bias_l1_l2": (0.0, 0.0, 0.05, 0.02),
    "all": (0.03, 0.07, 0.05, 0.02),
}


@pytest.mark.parametrize("pen", list(PENALTIES))
@pytest.mark.parametrize("act", ACTS, ids=ACT_NAMES)
@pytest.mark.parametrize("n,k,m", [(5, 4, 3), (1, 3, 7), (7, 1, 1), (6, 7, 1)])
def test_dense_backward_finite_differences(n, k, m, act, pen):
    """grad_w, grad_b, grad_x and the penalty of dense_backward against central
    differences of L = sum(R * act(x @ w + b)) + penalty(w, b), all float64.

    For l1, |w| and |b| >= 0.1 (the kink at 0 is 1e5 steps away); z is kept >= 1e-3
    away from 0 for the ReLU kinks (checked below).
    """
    kl1, kl2, bl1, bl2 = PENALTIES[pen]
    rng = rng_for("dense-fd", n, k, m, act, pen)
    for _ in range(100):
        x = rng.standard_normal((n, k))
        w = away_from_zero(rng, (k, m), 0.1, 1.0)
        b = away_from_zero(rng, (m,), 0.1, 1.0)
        if np.min(np.abs(x @ w + b)) > 1e-3:
            break
    else:
        pytest.fail("could not draw z away from the ReLU kink")
    r = rng.standard_normal((n, m))

    def penalty_ref(ww, bb):
        return (kl1 * np.abs(ww).sum() + kl2 * (ww ** 2).sum()
                + bl1 * np.abs(bb).sum() + bl2 * (bb ** 2).sum())

    def total(xx, ww, bb):
        return np.sum(r * act_ref(xx @ ww + bb, act)) + penalty_ref(ww, bb)

    out = np.empty((n, m))
    dense.dense_forward(ro(x), ro(w), ro(b), out, np.empty((0, m)), act, LEAKY_ALPHA)
    grad_out = r.copy()
    grad_w, grad_b, grad_x = nan_out((k, m), np.float64), nan_out(m, np.float64), \
        nan_out((n, k), np.float64)
    pen_value = dense.dense_backward(ro(x), ro(w), ro(b), ro(out), grad_out, grad_w, grad_b,
                                     grad_x, act, LEAKY_ALPHA, kl1, kl2, bl1, bl2)
    np.testing.assert_allclose(pen_value, penalty_ref(w, b), rtol=1e-13, atol=0)
    np.testing.assert_allclose(grad_w, fd_gradient(lambda v: total(x, v, b), w),
                               rtol=FD_RTOL, atol=FD_ATOL)
    np.testing.assert_allclose(grad_b, fd_gradient(lambda v: total(x, w, v), b),
                               rtol=FD_RTOL, atol=FD_ATOL)
    np.testing.assert_allclose(grad_x, fd_gradient(lambda v: total(v, w, b), x),
                               rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_penalty_both_dtypes(dtype):
    # Reference check of the returned penalty and its gradient in both dtypes.
    rng = rng_for("dense-pen", dtype)
    n, k, m = 7, 33, 7
    x = rng.standard_normal((n, k)).astype(dtype)
    w = away_from_zero(rng, (k, m), 0.1, 1.0).astype(dtype)
    b = away_from_zero(rng, (m,), 0.1, 1.0).astype(dtype)
    kl1, kl2, bl1, bl2 = 0.5, 0.25, 0.125, 0.75  # exact in float32
    out = np.empty((n, m), dtype)
    dense.dense_forward(ro(x), ro(w), ro(b), out, np.empty((0, m), dtype), LINEAR)
    dz = rng.standard_normal((n, m)).astype(dtype)
    grad_w, grad_b = nan_out((k, m), dtype), nan_out(m, dtype)
    pen = dense.dense_backward(ro(x), ro(w), ro(b), ro(out), dz.copy(), grad_w, grad_b,
                               np.empty((0, k), dtype), LINEAR, 0.0, kl1, kl2, bl1, bl2)
    x64, w64, b64, dz64 = (v.astype(np.float64) for v in (x, w, b, dz))
    pen_ref = (kl1 * np.abs(w64).sum() + kl2 * (w64 ** 2).sum()
               + bl1 * np.abs(b64).sum() + bl2 * (b64 ** 2).sum())
    assert_close(pen, pen_ref, pen_ref, dtype, "penalty")
    gw_ref = x64.T @ dz64 + kl1 * np.sign(w64) + 2 * kl2 * w64
    gw_mag = np.abs(x64.T) @ np.abs(dz64) + kl1 + 2 * kl2 * np.abs(w64)
    assert_close(grad_w, gw_ref, gw_mag, dtype, "grad_w")
    gb_ref = dz64.sum(axis=0) + bl1 * np.sign(b64) + 2 * bl2 * b64
    gb_mag = np.abs(dz64).sum(axis=0) + bl1 + 2 * bl2 * np.abs(b64)
    assert_close(grad_b, gb_ref, gb_mag, dtype, "grad_b")


@pytest.mark.parametrize("dtype", DTYPES)
def test_penalty_kernel(dtype):
    rng = rng_for("penalty", dtype)
    for size in [0, 1, 7, 33, 1000]:
        w = rng.standard_normal(size).astype(dtype)
        w64 = w.astype(np.float64)
        ref = 0.3 * np.abs(w64).sum() + 0.2 * (w64 ** 2).sum()
        got = dense.penalty(ro(w), 0.3, 0.2)
        # Accumulated in double from the dtype's values: double precision in both dtypes.
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_forward_copy_of_noncontiguous_slice_and_extremes(dtype):
    rng = rng_for("dense-slice", dtype)
    big = rng.standard_normal((14, 99)).astype(dtype)
    view = big[::2, ::3]  # (7, 33), strided
    assert not view.flags.c_contiguous
    w = rng.standard_normal((33, 7)).astype(dtype)
    b = np.zeros(7, dtype)
    with pytest.raises(ValueError):
        dense.dense_forward(view, w, b, nan_out((7, 7), dtype), np.empty((0, 7), dtype),
                            LINEAR)
    x = ro(np.ascontiguousarray(view))
    out = nan_out((7, 7), dtype)
    dense.dense_forward(x, ro(w), ro(b), out, np.empty((0, 7), dtype), SOFTMAX)
    v64, w64 = view.astype(np.float64), w.astype(np.float64)
    mag = 2 * (np.abs(v64) @ np.abs(w64)).max(axis=1, keepdims=True)
    assert_close(out, act_ref(v64 @ w64, SOFTMAX), mag, dtype)
    # Huge pre-activations: softmax and sigmoid stay finite.
    for act in (SOFTMAX, SIGMOID, TANH):
        out = nan_out((7, 7), dtype)
        dense.dense_forward(x, ro(1000 * w), ro(b), out, np.empty((0, 7), dtype), act)
        assert np.all(np.isfinite(out))


# ---------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------

LOSSES = ["softmax_ce", "sparse_softmax_ce", "sigmoid_bce", "mse", "categorical_ce",
          "binary_ce"]


def _loss_inputs(name, rng, n, m, dtype):
    """(kernel args before sample_weight, the value the gradient is taken with respect
    to, a NumPy function of that value giving per-row losses, the label / target)."""
    if name in ("softmax_ce", "sparse_softmax_ce", "sigmoid_bce"):
        z = (2 * rng.standard_normal((n, m))).astype(dtype)
        p = (act_ref(z, SOFTMAX) if name != "sigmoid_bce" else expit(z)).astype(dtype)
        if name == "sparse_softmax_ce":
            y = rng.integers(0, m, size=n).astype(np.int64)
        elif name == "softmax_ce":
            # soft targets whose rows do *not* sum to 1, to test the sum_j y_ij factor
            y = rng.uniform(0, 1, (n, m)).astype(dtype)
        else:
            y = rng.uniform(0, 1, (n, m)).astype(dtype)
        return z, p, y
    if name == "mse":
        return None, rng.standard_normal((n, m)).astype(dtype), \
            rng.standard_normal((n, m)).astype(dtype)
    if name == "categorical_ce":
        # unnormalized positive outputs; q = p / rowsum stays in (EPS, 1 - EPS) for m > 1
        return None, rng.uniform(0.1, 1.0, (n, m)).astype(dtype), \
            rng.uniform(0, 1, (n, m)).astype(dtype)
    if name == "binary_ce":
        return None, rng.uniform(0.1, 0.9, (n, m)).astype(dtype), \
            rng.uniform(0, 1, (n, m)).astype(dtype)
    raise ValueError(name)


def _call_loss(name, z, p, y, sw, grad, scale):
    if name == "softmax_ce":
        return losses.softmax_cross_entropy(z, p, y, sw, grad, scale)
    if name == "sparse_softmax_ce":
        return losses.sparse_softmax_cross_entropy(z, p, y, sw, grad, scale)
    if name == "sigmoid_bce":
        return losses.sigmoid_binary_cross_entropy(z, p, y, sw, grad, scale)
    if name == "mse":
        return losses.mean_squared_error(p, y, sw, grad, scale)
    if name == "categorical_ce":
        return losses.categorical_cross_entropy(p, y, sw, grad, scale)
    if name == "binary_ce":
        return losses.binary_cross_entropy(p, y, sw, grad, scale)
    raise ValueError(name)


EPS = 1e-7  # the kernels' clipping epsilon (Keras's backend epsilon)


def _loss_ref(name, z, p, y, w, scale):
    """(per-row losses, gradient, gradient magnitude) in float64 from the NumPy formulas.

    Per-row loss is averaged over columns for mse and the binary cross-entropies. The
    gradient is scale * d(sum_i w_i loss_i)/d(input) with input z for the fused kernels
    and p otherwise.
    """
    p = p.astype(np.float64)
    n, m = p.shape
    ws = (w * scale)[:, None]
    if name == "softmax_ce":
        z, y = z.astype(np.float64), y.astype(np.float64)
        li = np.sum(y * (logsumexp(z, axis=1)[:, None] - z), axis=1)
        sy = y.sum(axis=1, keepdims=True)
        return li, ws * (sy * p - y), np.abs(ws) * (sy * p + y)
    if name == "sparse_softmax_ce":
        z = z.astype(np.float64)
        li = logsumexp(z, axis=1) - z[np.arange(n), y]
        onehot = np.zeros((n, m))
        onehot[np.arange(n), y] = 1.0
        return li, ws * (p - onehot), np.abs(ws) * (p + onehot)
    if name == "sigmoid_bce":
        z, y = z.astype(np.float64), y.astype(np.float64)
        li = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))), axis=1)
        return li, ws / m * (p - y), np.abs(ws) / m * (p + y)
    if name == "mse":
        y = y.astype(np.float64)
        li = np.mean((p - y) ** 2, axis=1)
        return li, ws * 2 / m * (p - y), np.abs(ws) * 2 / m * (np.abs(p) + np.abs(y))
    if name == "categorical_ce":
        y = y.astype(np.float64)
        s = np.maximum(p.sum(axis=1, keepdims=True), EPS)
        q = p / s
        clipped = (q < EPS) | (q > 1 - EPS)
        li = -np.sum(y * np.log(np.clip(q, EPS, 1 - EPS)), axis=1)
        sy = np.sum(np.where(clipped, 0.0, y), axis=1, keepdims=True)
        term = np.where(clipped, 0.0, y / np.where(clipped, 1.0, q))
        return li, ws / s * (sy - term), np.abs(ws) / s * (sy + term)
    if name == "binary_ce":
        y = y.astype(np.float64)
        clipped = (p < EPS) | (p > 1 - EPS)
        q = np.clip(p, EPS, 1 - EPS)
        li = -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q), axis=1)
        g = np.where(clipped, 0.0, ws / m * (q - y) / (q * (1 - q)))
        return li, g, np.where(clipped, 0.0, np.abs(ws) / m * (q + y) / (q * (1 - q)))
    raise ValueError(name)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("n,m", SHAPES_2D)
@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_reference(dtype, name, n, m, weighted):
    rng = rng_for("loss", dtype, name, n, m, weighted)
    z, p, y = _loss_inputs(name, rng, n, m, dtype)
    if weighted:
        w = rng.uniform(0.0, 3.0, n).astype(dtype)
        w[0] = 0.0  # a zero weight contributes neither loss nor gradient
        sw = ro(w)
    else:
        w = np.ones(n)
        sw = ro(np.empty(0, dtype))  # length 0 means all ones
    scale = 1.0 / n  # what the caller passes for the mean batch loss
    grad = nan_out((n, m), dtype)
    total = _call_loss(name, None if z is None else ro(z), ro(p), ro(y), sw, grad, scale)
    li, g_ref, g_mag = _loss_ref(name, z, p, y, w.astype(np.float64), scale)
    total_ref = np.sum(w.astype(np.float64) * li)
    assert isinstance(total, float)
    # Every per-row loss here is >= 0 and weights are >= 0: no cancellation in the sum.
    np.testing.assert_allclose(total, total_ref, rtol=loss_rtol(name, dtype), atol=1e-300)
    assert_close(grad, g_ref, g_mag, dtype, "grad")
    if weighted:
        assert np.all(grad[0] == 0)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("n,m", [(1, 1), (7, 5), (4, 33)])
@pytest.mark.parametrize("name", LOSSES)
def test_loss_gradient_finite_differences(name, n, m, weighted):
    """The gradient is scale * d(sum_i w_i loss_i)/d(input), by central differences of
    the kernel's own returned loss (float64), one row at a time (|f| = O(1))."""
    rng = rng_for("loss-fd", name, n, m, weighted)
    z, p, y = _loss_inputs(name, rng, n, m, np.float64)
    w = rng.uniform(0.2, 3.0, n) if weighted else None
    scale = 0.25
    grad = nan_out((n, m), np.float64)
    sw = ro(w) if weighted else ro(np.empty(0))
    _call_loss(name, None if z is None else ro(z), ro(p), ro(y), sw, grad, scale)
    fused = z is not None
    fd = np.empty((n, m))
    scratch = np.empty((1, m))
    for i in range(n):
        swi = ro(w[i:i + 1]) if weighted else ro(np.empty(0))
        yi = ro(y[i:i + 1])

        def f(v, i=i, swi=swi, yi=yi):
            v = ro(v[None, :])
            if fused:  # the loss is a function of z alone; p only enters the gradient
                return _call_loss(name, v, ro(p[i:i + 1]), yi, swi, scratch, 1.0)
            return _call_loss(name, None, v, yi, swi, scratch, 1.0)

        fd[i] = fd_gradient(f, (z if fused else p)[i])
    np.testing.assert_allclose(grad, scale * fd, rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_clipping(dtype):
    """Non-fused cross-entropies clip probabilities to [EPS, 1 - EPS]: finite loss,
    the documented gradient at clipped entries, for outputs that are exactly 0 or 1."""
    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1e-9, 0.3, 0.7]], dtype)
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.5, 0.0]], dtype)
    w = np.ones(3)
    for name in ("categorical_ce", "binary_ce"):
        grad = nan_out(p.shape, dtype)
        total = _call_loss(name, None, ro(p), ro(y), ro(np.empty(0, dtype)), grad, 0.5)
        li, g_ref, g_mag = _loss_ref(name, None, p, y, w, 0.5)
        assert np.isfinite(total) and np.all(np.isfinite(grad))
        np.testing.assert_allclose(total, li.sum(), rtol=LOSS_RTOL)
        assert_close(grad, g_ref, g_mag, dtype, name)
    # -log(EPS) ~ 16.1 for a confidently wrong 0/1 output, not inf
    grad = nan_out((1, 1), dtype)
    total = losses.binary_cross_entropy(ro([[0.0]], dtype), ro([[1.0]], dtype),
                                        ro(np.empty(0, dtype)), grad, 1.0)
    np.testing.assert_allclose(total, -math.log(EPS), rtol=1e-12)
    assert grad[0, 0] == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_losses_extreme_logits(dtype):
    """Logits of +-1000: log-sum-exp and the sigmoid form never overflow."""
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0],
                  [1000.0, 1000.0, -1000.0]], dtype)
    p = nan_out(z.shape, dtype)
    activations.activation_forward(ro(z), p, SOFTMAX)
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype)
    empty = ro(np.empty(0, dtype))
    grad = nan_out(z.shape, dtype)
    total = losses.softmax_cross_entropy(ro(z), ro(p), ro(y), empty, grad, 1.0)
    # exact: row 0: lse = 1000, loss 2000; row 1: log 3; row 2: 1000 + log 2 + 1000
    expected = 2000.0 + math.log(3.0) + 2000.0 + math.log(2.0)
    np.testing.assert_allclose(total, expected, rtol=1e-12)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, p.astype(np.float64) - y, rtol=0, atol=1e-6)
    labels = ro(np.array([1, 0, 2], np.int64))
    grad = nan_out(z.shape, dtype)
    total = losses.sparse_softmax_cross_entropy(ro(z), ro(p), labels, empty, grad, 1.0)
    np.testing.assert_allclose(total, expected, rtol=1e-12)
    assert np.all(np.isfinite(grad))

    ps = nan_out(z.shape, dtype)
    activations.activation_forward(ro(z), ps, SIGMOID)
    grad = nan_out(z.shape, dtype)
    total = losses.sigmoid_binary_cross_entropy(ro(z), ro(ps), ro(y), empty, grad, 1.0)
    # per entry max(z,0) - z*y + log1p(exp(-|z|)): 1000 for a confidently wrong entry
    zz, yy = z.astype(np.float64), y.astype(np.float64)
    ref = np.sum(np.mean(np.maximum(zz, 0) - zz * yy + np.log1p(np.exp(-np.abs(zz))), 1))
    assert np.isfinite(total)
    np.testing.assert_allclose(total, ref, rtol=1e-12)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_on_copy_of_noncontiguous_slice(dtype):
    rng = rng_for("loss-slice", dtype)
    big = rng.standard_normal((66, 14)).astype(dtype)
    view = big[1::2, ::2]  # (33, 7)
    assert not view.flags.c_contiguous
    y = rng.standard_normal((33, 7)).astype(dtype)
    empty = np.empty(0, dtype)
    with pytest.raises(ValueError):
        losses.mean_squared_error(view, y, empty, nan_out((33, 7), dtype), 1.0)
    grad = nan_out((33, 7), dtype)
    total = losses.mean_squared_error(ro(np.ascontiguousarray(view)), ro(y), ro(empty),
                                      grad, 1.0)
    li, g_ref, g_mag = _loss_ref("mse", None, view, y, np.ones(33), 1.0)
    np.testing.assert_allclose(total, li.sum(), rtol=loss_rtol("mse", dtype))
    assert_close(grad, g_ref, g_mag, dtype)


@pytest.mark.parametrize("n,m", SHAPES_2D)
@pytest.mark.parametrize("dtype", DTYPES)
def test_count_correct(dtype, n, m):
    rng = rng_for("count", dtype, n, m)
    # Small integers make ties common: the first maximum must win, as in np.argmax.
    p = rng.integers(0, 3, (n, m)).astype(dtype)
    y = rng.integers(0, 3, (n, m)).astype(dtype)
    labels = rng.integers(0, m, n).astype(np.int64)
    assert losses.count_correct_onehot(ro(p), ro(y)) == \
        int(np.sum(np.argmax(p, 1) == np.argmax(y, 1)))
    assert losses.count_correct_sparse(ro(p), ro(labels)) == \
        int(np.sum(np.argmax(p, 1) == labels))
    # Binary accuracy, with values exactly at the threshold (not "> threshold").
    pb = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], (n, m)).astype(dtype)
    yb = rng.choice([0.0, 0.5, 1.0], (n, m)).astype(dtype)
    assert losses.count_correct_binary(ro(pb), ro(yb)) == int(np.sum((pb > 0.5) == (yb > 0.5)))
    assert losses.count_correct_binary(ro(pb), ro(yb), 0.25) == \
        int(np.sum((pb > 0.25) == (yb > 0.25)))


# ---------------------------------------------------------------------------
# optimizers
# ---------------------------------------------------------------------------

OPT_SIZES = [1, 7, 33, 1000]
# (grad_scale, clipvalue); None = use the kernel's defaults (1, +inf).
CONDITIONING = {"default": None, "scaled": (0.5, math.inf), "clipped": (1.0, 0.3),
                "scaled_clipped": (0.75, 0.25)}


def _condition_ref(g, cond):
    if cond is None:
        return g
    gs, clip = cond
    return np.clip(g * gs, -clip, clip)


def _cond_kwargs(cond):
    return {} if cond is None else {"grad_scale": cond[0], "clipvalue": cond[1]}


OPTIMIZERS = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "rmsprop_centered",
              "rmsprop_momentum", "rmsprop_centered_momentum", "adam", "adamw", "amsgrad"]


def _opt_steps(name, dtype, size, cond, rng, steps=4):
    """Run `steps` kernel updates and the same updates of the float64 NumPy reference
    (tests/reference_optimizers.py).

    Returns [(kernel array, reference array), ...] for the parameter and every slot.
    """
    w = rng.standard_normal(size).astype(dtype)
    # Gradients shrink over the steps, so AMSGrad's running max differs from v.
    grads = [(rng.standard_normal(size) * 2.0 ** -s).astype(dtype) for s in range(steps)]
    w64 = w.astype(np.float64)
    lr, mu, rho, eps = 0.125, 0.875, 0.875, 1e-7
    b1, b2, wd = 0.875, 0.96875, 0.0625
    kw = _cond_kwargs(cond)
    empty = np.empty(0, dtype)
    rate = reference.constant(lr)
    centered, nesterov, amsgrad = "centered" in name, name == "nesterov", name == "amsgrad"
    momentum = mu if "momentum" in name else 0.0
    decay = wd if name == "adamw" else 0.0
    slots = {}   # the kernel's slot arrays, under the reference's names
    if name == "sgd":
        ref = reference.RefSGD(rate)
    elif name in ("momentum", "nesterov"):
        ref = reference.RefSGD(rate, mu, nesterov)
        slots["velocity"] = np.zeros(size, dtype)
    elif name == "adagrad":
        ref = reference.RefAdagrad(rate, 0.1, eps)   # Keras starts the accumulator at 0.1
        slots["accumulator"] = np.full(size, 0.1, dtype)
    elif name.startswith("rmsprop"):
        ref = reference.RefRMSprop(rate, rho, momentum, eps, centered)
        slots["mean_square"] = np.zeros(size, dtype)
        slots["mean_grad"] = np.zeros(size, dtype) if centered else empty.copy()
        slots["velocity"] = np.zeros(size, dtype) if momentum else empty.copy()
    else:
        ref = reference.RefAdam(rate, b1, b2, eps, amsgrad, decay)
        slots["m"] = np.zeros(size, dtype)
        slots["v"] = np.zeros(size, dtype)
        slots["v_max"] = np.zeros(size, dtype) if amsgrad else empty.copy()

    for k, g in enumerate(grads):
        gro = ro(g)
        if name == "sgd":
            optim.sgd(w, gro, lr, **kw)
        elif name in ("momentum", "nesterov"):
            optim.sgd_momentum(w, gro, slots["velocity"], lr, mu, nesterov, **kw)
        elif name == "adagrad":
            optim.adagrad(w, gro, slots["accumulator"], lr, eps, **kw)
        elif name.startswith("rmsprop"):
            optim.rmsprop(w, gro, slots["mean_square"], slots["mean_grad"],
                          slots["velocity"], lr, rho, momentum, eps, centered, **kw)
        else:
            t = k + 1
            optim.adam(w, gro, slots["m"], slots["v"], slots["v_max"], lr, b1, b2, eps,
                       1 - b1 ** t, 1 - b2 ** t, amsgrad, decay, **kw)
        w64 = ref.step(w64, _condition_ref(g.astype(np.float64), cond), k)
    want = ref.slots()
    return [("w", w, w64)] + [(k, slots[k], want.get(k, empty)) for k in slots]


@pytest.mark.parametrize("cond", list(CONDITIONING))
@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_optimizer_kernels(dtype, name, cond):
    for size in OPT_SIZES:
        rng = rng_for("opt", dtype, name, cond, size)
        for what, got, expected in _opt_steps(name, dtype, size, CONDITIONING[cond], rng):
            if expected.size == 0:
                assert got.size == 0, what  # unused slots stay empty
                continue
            # A few steps of element-wise updates: each step adds a few roundings of the
            # magnitudes involved (|w|, |slot|, and the O(1) step), so the error is a
            # small multiple of eps * (|value| + 1).
            assert_close(got, expected, np.abs(expected) + 1.0, dtype,
                         f"{name} {cond} size={size} {what}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_optimizer_clipping_is_applied(dtype):
    # A huge gradient is clipped before the update: |step| = lr * clipvalue exactly.
    w = np.zeros(3, dtype)
    optim.sgd(w, ro([1e30, -1e30, 0.1], dtype), 0.5, grad_scale=2.0, clipvalue=0.25)
    assert np.array_equal(w, np.array([-0.125, 0.125, -0.1], dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_optimizer_on_copy_of_noncontiguous_slice(dtype):
    rng = rng_for("opt-slice", dtype)
    big = rng.standard_normal(99).astype(dtype)
    view = big[::3]
    assert not view.flags.c_contiguous
    w = rng.standard_normal(33).astype(dtype)
    with pytest.raises(ValueError):
        optim.sgd(w.copy(), view, 0.5)
    w2 = w.copy()
    optim.sgd(w2, ro(np.ascontiguousarray(view)), 0.5)
    assert_close(w2, w.astype(np.float64) - 0.5 * view, np.abs(w) + 1, dtype)


# ---------------------------------------------------------------------------
# ops
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("n,m", SHAPES_2D)
@pytest.mark.parametrize("dtype", DTYPES)
def test_gather(dtype, n, m):
    rng = rng_for("gather", dtype, n, m)
    src = rng.standard_normal((n, m)).astype(dtype)
    index = np.concatenate([rng.permutation(n), rng.integers(0, n, 5)]).astype(np.int64)
    out = nan_out((len(index), m), dtype)
    ops.gather_rows(ro(src), ro(index), out)
    assert np.array_equal(out, src[index])
    labels = rng.integers(-5, 10 ** 12, n).astype(np.int64)
    outl = np.full(len(index), -1, np.int64)
    ops.gather_values(ro(labels), ro(index), outl)
    assert np.array_equal(outl, labels[index])
    sw = rng.uniform(0, 2, n).astype(dtype)
    outw = nan_out(len(index), dtype)
    ops.gather_weights(ro(sw), ro(index), outw)
    assert np.array_equal(outw, sw[index])
    # from a C-contiguous copy of a strided slice
    view = np.repeat(src, 2, axis=0)[::2]
    assert not view.flags.c_contiguous or n == 1
    out2 = nan_out((len(index), m), dtype)
    ops.gather_rows(ro(np.ascontiguousarray(view)), ro(index), out2)
    assert np.array_equal(out2, src[index])


@pytest.mark.parametrize("dtype", DTYPES)
def test_segment_sum_squares_and_scale_segments(dtype):
    rng = rng_for("segments", dtype)
    x = rng.standard_normal(1050).astype(dtype)
    bounds = np.array([0, 1, 1, 8, 41, 41, 1041], np.int64)  # includes empty segments
    out = nan_out(len(bounds) - 1, np.float64)
    ops.segment_sum_squares(ro(x), ro(bounds), out)
    x64 = x.astype(np.float64)
    ref = np.array([np.sum(x64[a:b] ** 2) for a, b in zip(bounds[:-1], bounds[1:])])
    # Squares of dtype values accumulated in double: double precision in both dtypes.
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=0)
    assert out[1] == 0 and out[4] == 0

    scales = np.array([0.5, 3.0, 1.0, 0.1, 2.0, 0.25])
    y = x.copy()
    ops.scale_segments(y, ro(bounds), ro(scales))
    expected = x.copy()
    for (a, b), s in zip(zip(bounds[:-1], bounds[1:]), scales):
        expected[a:b] = expected[a:b] * dtype(s)  # one rounding in the dtype, as in C
    assert np.array_equal(y, expected)
    assert np.array_equal(y[1041:], x[1041:]) and y.size > 1041  # beyond the bounds


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_finite(dtype):
    for size in [0, 1, 7, 33, 1000]:
        x = np.linspace(-1, 1, size).astype(dtype)
        assert ops.all_finite(ro(x)) is True
        for bad in (np.nan, np.inf, -np.inf):
            for pos in ({0, size // 2, size - 1} if size else set()):
                y = x.copy()
                y[pos] = bad
                assert ops.all_finite(ro(y)) is False, (size, bad, pos)
    big = np.array([np.finfo(dtype).max, -np.finfo(dtype).max, np.finfo(dtype).tiny], dtype)
    assert ops.all_finite(ro(big)) is True


# ---------------------------------------------------------------------------
# random
# ---------------------------------------------------------------------------

_M64 = (1 << 64) - 1


def _mix_int(z):
    """SplitMix64's finalizer on a Python int (the reference)."""
    z &= _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _mix_np(z):
    """The same on a uint64 array (array arithmetic wraps modulo 2^64)."""
    z = np.asarray(z, dtype=np.uint64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _stream(key, count):
    """The 53-bit integers (mix(key + i) >> 11) for i < count."""
    ctr = np.arange(count, dtype=np.uint64) + np.uint64(key)  # wraps modulo 2^64
    return _mix_np(ctr) >> np.uint64(11)


def _mix_key_ref(seed, a, b, c):
    k = _mix_int(seed + 0x9E3779B97F4A7C15)
    k = _mix_int(k ^ ((a + 0x9E3779B97F4A7C15) & _M64))
    k = _mix_int(k ^ ((b + 0x3C6EF372FE94F82A) & _M64))
    return _mix_int(k ^ ((c + 0xDAA66D2C7DDF743F) & _M64))


def _unmix_int(z):
    """Inverse of _mix_int (each step of SplitMix64's finalizer is a bijection)."""
    def unxorshift(v, s):
        x = v
        for _ in range(64 // s + 1):
            x = v ^ (x >> s)
        return x
    z = unxorshift(z, 31)
    z = (z * pow(0x94D049BB133111EB, -1, 1 << 64)) & _M64
    z = unxorshift(z, 27)
    z = (z * pow(0xBF58476D1CE4E5B9, -1, 1 << 64)) & _M64
    return unxorshift(z, 30)


def test_mix_key_reference_and_distinct():
    keys = set()
    for seed in (0, 1, 42, _M64):
        for a in range(3):
            for b in range(3):
                for c in range(3):
                    k = krandom.mix_key(seed, a, b, c)
                    assert k == _mix_key_ref(seed, a, b, c)
                    assert 0 <= k <= _M64
                    assert k == krandom.mix_key(seed, a, b, c)  # deterministic
                    keys.add(k)
    assert len(keys) == 4 * 27  # every (seed, epoch, step, layer) gets its own stream


def test_unmix_inverts_mix():
    for v in (0, 1, 12345, _M64, 0x0123456789ABCDEF):
        assert _mix_int(_unmix_int(v)) == v


@pytest.mark.parametrize("dtype", DTYPES)
def test_uniform(dtype):
    count = 100_000
    for key in (0, 1, krandom.mix_key(7, 1, 2, 3), _M64 - 5):  # includes a wrapping key
        u = nan_out(count, dtype)
        krandom.uniform(u, key)
        assert np.all(u >= 0) and np.all(u < 1)
        # Bit-exact against the SplitMix64 reference: (mix(key + i) >> 11) / 2^53 for
        # float64; the top 24 bits, (mix >> 40) / 2^24, for float32 (exact in float).
        if dtype == np.float64:
            ref = _stream(key, count).astype(np.float64) / 2.0 ** 53
        else:
            ref = ((_stream(key, count) >> np.uint64(29)).astype(np.float64)
                   / 2.0 ** 24).astype(dtype)
        assert np.array_equal(u, ref)
        # Statistically uniform: mean within 6 standard errors (sd of U(0,1) is 1/sqrt(12))
        # and every tenth of [0, 1) holds count/10 +- 6 binomial standard deviations.
        assert abs(u.mean() - 0.5) < 6 / math.sqrt(12 * count)
        hist = np.histogram(u, bins=10, range=(0, 1))[0]
        assert np.all(np.abs(hist - count / 10) < 6 * math.sqrt(count * 0.1 * 0.9))
        v = nan_out(count, dtype)
        krandom.uniform(v, key)
        assert np.array_equal(u, v)  # a pure function of the key


def test_uniform_largest_float64_value_is_below_one():
    # The key whose first draw has all 64 mixed bits set gives (2^53 - 1) / 2^53 < 1.
    key = _unmix_int(_M64)
    u = np.empty(1, np.float64)
    krandom.uniform(u, key)
    assert u[0] == (2.0 ** 53 - 1) / 2.0 ** 53 and u[0] < 1


def test_uniform_float32_stays_below_one():
    key = _unmix_int(_M64)  # the first draw is the largest possible 53-bit value
    u = np.empty(1, np.float32)
    krandom.uniform(u, key)
    assert u[0] < 1


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_forward(dtype, rate):
    n, m = 1000, 33
    rng = rng_for("dropout", dtype, rate)
    x = rng.standard_normal((n, m)).astype(dtype)
    keep = dtype(1.0 / (1.0 - rate))
    key = krandom.mix_key(2024, 3, 17, 1)
    mask, out = nan_out((n, m), dtype), nan_out((n, m), dtype)
    krandom.dropout_forward(ro(x), mask, out, rate, key)
    assert set(np.unique(mask)) <= {dtype(0), keep}
    assert np.array_equal(out, x * mask)  # x * keep_scale, one rounding, as in the kernel
    dropped = mask == 0
    if rate == 0:
        assert not dropped.any() and np.array_equal(out, x)
    # Bit-exact against the reference: drop entry (i, j) when the 53-bit value of
    # counter i*m + j is below rate * 2^53.
    threshold = int(rate * 2.0 ** 53)
    assert np.array_equal(dropped.ravel(), _stream(key, n * m) < np.uint64(threshold))
    # Fraction dropped: for N independent Bernoulli(rate) draws Hoeffding gives
    # P(|frac - rate| >= t) <= 2 exp(-2 N t^2); t for a 1e-9 false-failure chance.
    N = n * m
    t = math.sqrt(math.log(2 / 1e-9) / (2 * N))  # ~0.018 for N = 33000
    for k in (key, krandom.mix_key(2024, 3, 18, 1), krandom.mix_key(1, 0, 0, 0)):
        mk = nan_out((n, m), dtype)
        krandom.dropout_forward(ro(x), mk, nan_out((n, m), dtype), rate, k)
        assert abs(np.mean(mk == 0) - rate) <= t
    # Deterministic given the key; a different key gives a different mask.
    mask2, out2 = nan_out((n, m), dtype), nan_out((n, m), dtype)
    krandom.dropout_forward(ro(x), mask2, out2, rate, key)
    assert np.array_equal(mask, mask2) and np.array_equal(out, out2)
    mask3 = nan_out((n, m), dtype)
    krandom.dropout_forward(ro(x), mask3, nan_out((n, m), dtype), rate, key + 1)
    if 0 < rate:
        assert not np.array_equal(mask, mask3)
    # Entry (i, j) depends only on (key, i*m + j): the mask does not depend on the shape.
    mask4 = nan_out((n * m, 1), dtype)
    krandom.dropout_forward(ro(x.reshape(n * m, 1)), mask4, nan_out((n * m, 1), dtype),
                            rate, key)
    assert np.array_equal(mask4.ravel(), mask.ravel())


@pytest.mark.parametrize("n,m", [(1, 1), (7, 7), (33, 33), (1000, 7)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_small_shapes_and_backward(dtype, n, m):
    rng = rng_for("dropout-small", dtype, n, m)
    x = rng.standard_normal((n, m)).astype(dtype)
    mask, out = nan_out((n, m), dtype), nan_out((n, m), dtype)
    krandom.dropout_forward(ro(x), mask, out, 0.3, 99)
    assert np.all(np.isfinite(mask)) and np.array_equal(out, x * mask)
    # multiply_inplace is dropout's backward: grad *= mask.
    g = rng.standard_normal((n, m)).astype(dtype)
    g2 = g.copy()
    krandom.multiply_inplace(g2, ro(mask))
    assert np.array_equal(g2, g * mask)


@pytest.mark.skipif(os.environ.get("FASTNN_EXPECT_BOUNDSCHECK") != "1",
                    reason="only on the bounds-checked build (.ci/run sets this)")
def test_this_build_really_checks_bounds():
    # An out-of-range row index: the checked build must raise, never read out of range.
    src = np.zeros((3, 4), np.float32)
    out = np.zeros((1, 4), np.float32)
    with pytest.raises(IndexError):
        ops.gather_rows(src, np.array([7], np.int64), out)


# ---------------------------------------------------------------------------
# kernels added after the first review: sparse clipped cross-entropy, maxout, and the
# vectorized exp behind sigmoid / tanh / softmax
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,m", SHAPES_2D)
@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_categorical_cross_entropy_equals_one_hot_path(dtype, n, m, weighted):
    # Integer labels must give exactly what the one-hot kernel gives on the one-hot rows
    # (same row routine, same arithmetic), including rows with clipped probabilities.
    rng = rng_for("sparse-cce", dtype, n, m, weighted)
    p = rng.random((n, m)).astype(dtype)
    p[:, 0] = 0                                   # a clipped column (q < EPS)
    labels = rng.integers(0, m, n).astype(np.int64)
    onehot = np.eye(m, dtype=dtype)[labels]
    sw = rng.random(n).astype(dtype) if weighted else np.empty(0, dtype)
    g1, g2 = nan_out((n, m), dtype), nan_out((n, m), dtype)
    a = losses.sparse_categorical_cross_entropy(ro(p), ro(labels), ro(sw), g1, 1.0 / n)
    b = losses.categorical_cross_entropy(ro(p), ro(onehot), ro(sw), g2, 1.0 / n)
    assert a == b
    assert np.array_equal(g1, g2)
    # and the value against a plain NumPy formula
    s = np.maximum(p.astype(np.float64).sum(1), 1e-7)
    q = np.clip(p[np.arange(n), labels] / s, 1e-7, 1 - 1e-7)
    w = sw.astype(np.float64) if weighted else np.ones(n)
    assert a == pytest.approx(np.sum(-w * np.log(q)), rel=LOSS_RTOL)


def _maxout_ref(x, w, b, pieces):
    z = x.astype(np.float64) @ w + b
    n, width = z.shape
    groups = z.reshape(n, width // pieces, pieces)
    winner = groups.argmax(axis=2) + np.arange(width // pieces) * pieces
    return z, groups.max(axis=2), winner


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k,units,pieces", [(1, 1, 1, 1), (1, 7, 3, 2), (7, 33, 5, 3),
                                              (33, 7, 1, 4), (1000, 7, 7, 2)])
def test_maxout_forward_backward_reference(dtype, n, k, units, pieces):
    rng = rng_for("maxout", dtype, n, k, units, pieces)
    width = units * pieces
    x = rng.standard_normal((n, k)).astype(dtype)
    w = rng.standard_normal((k, width)).astype(dtype)
    b = rng.standard_normal(width).astype(dtype)
    z_ref, out_ref, winner_ref = _maxout_ref(x, w, b, pieces)
    mag_z = np.abs(x).astype(np.float64) @ np.abs(w) + np.abs(b)
    z, out = nan_out((n, width), dtype), nan_out((n, units), dtype)
    winner = np.full((n, units), -1, np.int32)
    dense.maxout_forward(ro(x), ro(w), ro(b), z, out, winner, pieces)
    assert_close(z, z_ref, mag_z, dtype, "maxout z")
    assert_close(out, np.take_along_axis(z.astype(np.float64), winner, 1), 0, dtype,
                 "maxout out is z at the winner")
    # the winner is a maximum of its group (ties within rounding may pick another index)
    assert np.all(winner // pieces == np.arange(units))
    assert_close(out, out_ref, mag_z[np.arange(n)[:, None], winner_ref], dtype, "maxout max")

    grad_out = rng.standard_normal((n, units)).astype(dtype)
    dz = nan_out((n, width), dtype)
    gw, gb, gx = nan_out((k, width), dtype), nan_out(width, dtype), nan_out((n, k), dtype)
    pen = dense.maxout_backward(ro(x), ro(w), ro(b), ro(grad_out), ro(winner), dz, gw, gb,
                                gx, 0.0, 0.01, 0.0, 0.0)
    dz_ref = np.zeros((n, width))
    np.put_along_axis(dz_ref, winner.astype(np.int64), grad_out.astype(np.float64), 1)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    assert_close(dz, dz_ref, np.abs(dz_ref), dtype, "maxout dz")
    assert_close(gb, dz_ref.sum(0), np.abs(dz_ref).sum(0), dtype, "maxout db")
    assert_close(gw, x64.T @ dz_ref + 0.02 * w64,
                 np.abs(x64).T @ np.abs(dz_ref) + 0.02 * np.abs(w64), dtype, "maxout dW")
    assert_close(gx, dz_ref @ w64.T, np.abs(dz_ref) @ np.abs(w64).T, dtype, "maxout dx")
    assert pen == pytest.approx(0.01 * np.sum(w64 ** 2), rel=RTOL[dtype])


# The activations call a vectorized Cephes exp (fastnn/_core/vmath.h): 1-2 ulp in float32
# and ~3 ulp in float64, well inside RTOL. These values sit on its edges: the ends of the
# range (where 2^n is built from two factors), the region near float32's smallest normal
# number, the switch to the series in float32 tanh (|v| = 1e-4), and overflow/underflow.
EXP_EDGES = [-1000.0, -745.0, -708.5, -700.0, -104.0, -88.5, -87.4, -87.3, -86.9, -50.0,
             -20.0, -1.0, -1e-4, -9.9e-5, -1e-6, 0.0, 1e-6, 9.9e-5, 1e-4, 1.0, 20.0,
             50.0, 88.3, 88.7, 89.0, 700.0, 709.7, 710.0, 1000.0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", [SIGMOID, TANH, SOFTMAX])
def test_vectorized_exp_edges(dtype, act):
    v = np.array(EXP_EDGES, dtype=dtype)
    with np.errstate(over="ignore", under="ignore"):
        x = v.reshape(-1, 1) if act != SOFTMAX else np.stack([v, np.zeros_like(v)], 1)
        out = nan_out(x.shape, dtype)
        activations.activation_forward(ro(x), out, act)
        ref = act_ref(x.astype(np.float64), act)
    assert np.all(np.isfinite(out))
    # relative to the value itself (these are single values, not sums), with an absolute
    # floor at float32's smallest normal number: FTZ flushes smaller results to 0.
    tol = 4 * np.finfo(dtype).eps * np.abs(ref) + np.finfo(dtype).tiny
    assert np.all(np.abs(out - ref) <= tol), (out, ref)
