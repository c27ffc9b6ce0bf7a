"""scipy.sparse CSR rows into a dense minibatch buffer: the gather of sparse input.

A training loop over a sparse matrix (TF-IDF features, one-hot encodings) copies only the
current minibatch's rows into the (batch, features) buffer the dense layers read, so the
whole matrix is never densified. Duplicate entries of a row are summed, as scipy's own
products treat them.
"""
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memset
from cython cimport floating

ctypedef fused index_t:
    int32_t
    int64_t


cdef Py_ssize_t csr_gather_rows_core(const floating* data, const index_t* indices,
                                     const index_t* indptr, Py_ssize_t nnz,
                                     Py_ssize_t n_cols, const int64_t* rows,
                                     Py_ssize_t n_rows, floating* out) noexcept nogil:
    """out[i, :] = dense row rows[i] of the CSR matrix (data, indices, indptr), for
    out row-major (n_rows, n_cols). Entries whose position is invalid (indptr out of
    [0, nnz] or decreasing, a column out of [0, n_cols)) are skipped and counted: the
    return value is 0 for a valid matrix. rows must be in range (the caller checks)."""
    cdef Py_ssize_t i, k, lo, hi, col, bad = 0
    cdef floating* row
    for i in range(n_rows):
        row = out + i * n_cols
        memset(row, 0, n_cols * sizeof(floating))
        lo = indptr[rows[i]]
        hi = indptr[rows[i] + 1]
        if lo < 0 or hi > nnz or lo > hi:
            bad += 1
            continue
        for k in range(lo, hi):
            col = indices[k]
            if col < 0 or col >= n_cols:
                bad += 1
            else:
                row[col] += data[k]
    return bad


def csr_gather_rows(const floating[::1] data not None, const index_t[::1] indices not None,
                    const index_t[::1] indptr not None, const int64_t[::1] rows not None,
                    floating[:, ::1] out not None):
    """out[i, :] = row rows[i] of the CSR matrix (data, indices, indptr) as a dense row.

    data, indices: (nnz,); indptr: (n_matrix_rows + 1,); rows: (n,) int64 row numbers;
    out: (n, n_cols) C-contiguous, of data's dtype. ValueError for rows out of range or an
    inconsistent matrix (nothing outside the arrays is ever read or written).
    """
    cdef Py_ssize_t n = rows.shape[0], n_matrix = indptr.shape[0] - 1, i, bad
    if out.shape[0] != n:
        raise ValueError(f"csr_gather_rows: out has {out.shape[0]} rows, rows has {n}")
    if data.shape[0] != indices.shape[0]:
        raise ValueError(f"csr_gather_rows: data ({data.shape[0]}) and indices "
                         f"({indices.shape[0]}) must have the same length")
    if n_matrix < 0:
        raise ValueError("csr_gather_rows: indptr must have at least one entry")
    with nogil:
        bad = 0
        for i in range(n):
            bad += rows[i] < 0 or rows[i] >= n_matrix
    if bad:
        raise ValueError(f"csr_gather_rows: row numbers must be in [0, {n_matrix})")
    if n == 0 or out.shape[1] == 0:
        return
    with nogil:
        bad = csr_gather_rows_core(&data[0] if data.shape[0] else NULL,
                                   &indices[0] if indices.shape[0] else NULL,
                                   &indptr[0], data.shape[0], out.shape[1], &rows[0], n,
                                   &out[0, 0])
    if bad:
        raise ValueError(f"csr_gather_rows: the matrix is inconsistent ({bad} rows or "
                         f"entries with indptr/indices out of range)")
