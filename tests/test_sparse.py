"""fastnn/_core/sparse.pyx: CSR rows into a dense batch buffer, against NumPy (scipy's
toarray) in both dtypes, both index widths, odd shapes, duplicates and bad input."""
import numpy as np
import pytest
import scipy.sparse

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
