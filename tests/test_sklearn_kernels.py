"""The kernels fastnn.sklearn brings (they need no scikit-learn):
fastnn/_core/sparse.pyx, CSR rows into a dense batch buffer, against NumPy (scipy's
toarray) in both dtypes, both index widths, odd shapes, duplicates and bad input; and
fastnn/_core/poisson.pyx, scikit-learn's log-link Poisson loss, against a NumPy/SciPy
reference in both dtypes and by finite differences in float64."""
import numpy as np
import pytest
import scipy.sparse
from scipy.special import xlogy

from fastnn._core import poisson as _poisson
from fastnn._core import sparse as _sparse


def random_csr(n, d, density, dtype, index_dtype, seed=0):
    m = scipy.sparse.random(n, d, density=density, format="csr", dtype=np.float64,
                            random_state=seed)
    m.data = np.random.default_rng(seed).standard_normal(m.nnz)
    m = m.astype(dtype)
    m.indices = m.indices.astype(index_dtype)
    m.indptr = m.indptr.astype(index_dtype)
    return m


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n,d,batch", [(1, 1, 1), (7, 33, 5), (1000, 7, 33), (40, 1000, 40)])
def test_gather_matches_numpy(dtype, index_dtype, n, d, batch):
    m = random_csr(n, d, 0.3, dtype, index_dtype)
    rows = np.random.default_rng(1).integers(0, n, batch).astype(np.int64)
    out = np.full((batch, d), np.nan, dtype)      # every entry must be written
    _sparse.csr_gather_rows(m.data, m.indices, m.indptr, rows, out)
    # Exact: each entry is a copy (or a zero), no arithmetic.
    np.testing.assert_array_equal(out, m.toarray()[rows])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_duplicates_are_summed_and_empty_rows_are_zero(dtype):
    data = np.array([1.0, 2.0, 4.0], dtype)
    indices = np.array([2, 2, 0], np.int32)
    indptr = np.array([0, 0, 2, 3], np.int32)          # row 0 empty, row 1 has (2, 2)
    m = scipy.sparse.csr_matrix((data, indices, indptr), shape=(3, 4))
    out = np.empty((3, 4), dtype)
    _sparse.csr_gather_rows(data, indices, indptr, np.array([0, 1, 2], np.int64), out)
    np.testing.assert_array_equal(out, m.toarray())
    assert out[1, 2] == 3.0


def test_bad_input_is_refused_before_the_kernel():
    m = random_csr(5, 4, 0.5, np.float64, np.int32)
    out = np.empty((2, 4))
    with pytest.raises(ValueError, match=r"row numbers must be in \[0, 5\)"):
        _sparse.csr_gather_rows(m.data, m.indices, m.indptr, np.array([0, 5]), out)
    with pytest.raises(ValueError, match="row numbers"):
        _sparse.csr_gather_rows(m.data, m.indices, m.indptr, np.array([-1, 0]), out)
    with pytest.raises(ValueError, match="out has 2 rows"):
        _sparse.csr_gather_rows(m.data, m.indices, m.indptr, np.array([0]), out)
    with pytest.raises(ValueError, match="same length"):
        _sparse.csr_gather_rows(m.data[:-1], m.indices, m.indptr, np.array([0, 1]), out)
    bad = m.indices.copy()
    bad[0] = 4                                            # a column past the width
    with pytest.raises(ValueError, match="inconsistent"):
        _sparse.csr_gather_rows(m.data, bad, m.indptr, np.arange(5, dtype=np.int64),
                                np.empty((5, 4)))
    ptr = m.indptr.copy()
    ptr[-1] = m.nnz + 3                                   # past the end of data
    with pytest.raises(ValueError, match="inconsistent"):
        _sparse.csr_gather_rows(m.data, m.indices, ptr, np.arange(5, dtype=np.int64),
                                np.empty((5, 4)))
    with pytest.raises((TypeError, ValueError)):          # dtypes must agree
        _sparse.csr_gather_rows(m.data, m.indices, m.indptr, np.array([0, 1]),
                                np.empty((2, 4), np.float32))


def poisson_reference(z, y, w):
    """scikit-learn's poisson_loss(y, exp(z)) times Σw: Σᵢ wᵢ Σⱼ (xlogy(y, y/μ) − y + μ)."""
    mu = np.exp(z.astype(np.float64))
    rows = (xlogy(y, y / mu) - y + mu).sum(axis=1)
    return (rows * w).sum(), rows, w[:, None] * (mu - y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,m", [(1, 1), (7, 3), (33, 1), (1000, 2)])
@pytest.mark.parametrize("weighted", [False, True])
def test_poisson_log_link_matches_numpy(dtype, n, m, weighted):
    rng = np.random.default_rng(n * m)
    z = rng.normal(0, 1.5, (n, m)).astype(dtype)
    y = rng.poisson(2.0, (n, m)).astype(dtype)         # zeros included (xlogy(0, .) = 0)
    w = rng.uniform(0.1, 2, n).astype(dtype) if weighted else np.ones(n, dtype)
    grad = np.full((n, m), np.nan, dtype)
    per = np.empty(n)
    total = _poisson.poisson_log_link(z, y, w if weighted else np.empty(0, dtype), grad,
                                      0.5, per)
    ref_total, ref_rows, ref_grad = poisson_reference(z, y.astype(np.float64),
                                                      w.astype(np.float64))
    # The sums run in double either way; float32 inputs round the gradient to float32.
    # A row's loss is a difference of terms of size ~10 that cancel to as little as
    # 1e-4, so its error is ~1e-15 absolute, not relative: atol 1e-12.
    tol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(total, ref_total, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(per, ref_rows, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, 0.5 * ref_grad, rtol=tol, atol=tol)


def test_poisson_log_link_gradient_by_finite_differences():
    rng = np.random.default_rng(3)
    z = rng.normal(0, 1, (5, 2))
    y = rng.poisson(1.5, (5, 2)).astype(np.float64)
    w = rng.uniform(0.5, 2, 5)
    grad = np.empty_like(z)
    _poisson.poisson_log_link(z, y, w, grad, 1.0)
    h = 1e-6
    for idx in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        fp = _poisson.poisson_log_link(zp, y, w, np.empty_like(z), 1.0)
        fm = _poisson.poisson_log_link(zm, y, w, np.empty_like(z), 1.0)
        # central differences: error O(h²) ~ 1e-12, plus rounding ~ 1e-10 / h
        assert abs((fp - fm) / (2 * h) - grad[idx]) < 1e-6


def test_poisson_log_link_refuses_bad_shapes():
    z = np.zeros((3, 2))
    with pytest.raises(ValueError, match="must have one shape"):
        _poisson.poisson_log_link(z, np.zeros((3, 1)), np.empty(0), np.empty((3, 2)), 1.0)
    with pytest.raises(ValueError, match="sample_weight must have length 0 or 3"):
        _poisson.poisson_log_link(z, z, np.ones(2), np.empty((3, 2)), 1.0)
    with pytest.raises(ValueError, match="per_sample"):
        _poisson.poisson_log_link(z, z, np.empty(0), np.empty((3, 2)), 1.0, np.empty(2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,k,m", [(1, 1, 1), (7, 33, 7), (5, 8, 4), (3, 1000, 3)])
def test_dense_backward_pure_l2_path(dtype, n, k, m):
    """dense_backward with l1 = 0 takes the pure-L2 loop (four partial sums, no sign term;
    added for scikit-learn's alpha): penalty and gradients against NumPy, sizes with
    every remainder mod 4."""
    from fastnn._core import dense
    rng = np.random.default_rng(n * k * m)
    x = rng.standard_normal((n, k)).astype(dtype)
    w = rng.standard_normal((k, m)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    out = np.empty((n, m), dtype)
    dense.dense_forward(x, w, b, out, np.empty((0, m), dtype), 0)      # linear
    dz = rng.standard_normal((n, m)).astype(dtype)
    grad_w, grad_b = np.full((k, m), np.nan, dtype), np.full(m, np.nan, dtype)
    kl2, bl2 = 0.25, 0.75                                 # exact in float32
    pen = dense.dense_backward(x, w, b, out, dz.copy(), grad_w, grad_b,
                               np.empty((0, k), dtype), 0, 0.0, 0.0, kl2, 0.0, bl2)
    w64, b64, x64, dz64 = (a.astype(np.float64) for a in (w, b, x, dz))
    # The penalty sums in double (float32: squares rounded to float32 first, ~6e-8
    # relative each); the gradients carry the GEMM's float32 rounding.
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(pen, kl2 * (w64 ** 2).sum() + bl2 * (b64 ** 2).sum(),
                               rtol=tol)
    np.testing.assert_allclose(grad_w, x64.T @ dz64 + 2 * kl2 * w64, rtol=tol, atol=tol * k)
    np.testing.assert_allclose(grad_b, dz64.sum(axis=0) + 2 * bl2 * b64, rtol=tol,
                               atol=tol * n)
