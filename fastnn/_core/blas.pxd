# Row-major BLAS for float and double, through scipy.linalg.cython_blas.
#
# NumPy arrays are row-major and BLAS is column-major. A row-major matrix is the
# column-major storage of its transpose, so  C = op(A) @ op(B)  (row-major) is computed
# as  C^T = op(B)^T @ op(A)^T  (column-major): gemm with the operands and m/n swapped.
# Nothing is copied. Leading dimensions are the row lengths of the C-contiguous arrays.
from cython cimport floating
cimport scipy.linalg.cython_blas as cblas


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating* a, int lda,
                      const floating* b, int ldb,
                      floating beta, floating* c, int ldc) noexcept nogil:
    """C[m, n] = alpha * op(A)[m, k] @ op(B)[k, n] + beta * C, all row-major.

    lda, ldb, ldc are the row lengths of A, B, C as stored. m, n, k must be > 0.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is float:
        cblas.sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb,
                    <float*>a, &lda, &beta, c, &ldc)
    else:
        cblas.dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb,
                    <double*>a, &lda, &beta, c, &ldc)


cdef inline void gemv(bint trans, int m, int n, floating alpha,
                      const floating* a, int lda, const floating* x, int incx,
                      floating beta, floating* y, int incy) noexcept nogil:
    """y = alpha * op(A) @ x + beta * y for a row-major A[m, n] (op(A) = A or A^T)."""
    # Row-major A is column-major A^T (n x m): flip the transpose flag.
    cdef char t = b'N' if trans else b'T'
    if floating is float:
        cblas.sgemv(&t, &n, &m, &alpha, <float*>a, &lda, <float*>x, &incx, &beta, y, &incy)
    else:
        cblas.dgemv(&t, &n, &m, &alpha, <double*>a, &lda, <double*>x, &incx, &beta, y, &incy)


cdef inline void ger(int m, int n, floating alpha, const floating* x, int incx,
                     const floating* y, int incy, floating* a, int lda) noexcept nogil:
    """A[m, n] += alpha * x[m] y[n]^T for a row-major A."""
    # Column-major view: A^T (n x m) += alpha * y x^T.
    if floating is float:
        cblas.sger(&n, &m, &alpha, <float*>y, &incy, <float*>x, &incx, a, &lda)
    else:
        cblas.dger(&n, &m, &alpha, <double*>y, &incy, <double*>x, &incx, a, &lda)


cdef void matmul(bint trans_a, bint trans_b, int m, int n, int k,
                 floating alpha, const floating* a, int lda,
                 const floating* b, int ldb,
                 floating beta, floating* c, int ldc) noexcept nogil


# A job for fastnn's threads: chunk_fn(args, chunk) for chunk in 0..nchunks-1.
ctypedef void (*chunk_fn)(void* args, int chunk) noexcept nogil

cdef void parallel_run(chunk_fn fn, void* args, int nchunks) noexcept nogil

cdef bint matvec_in_halves(int k, int n, const floating* x, const floating* b, int ldb,
                           floating* partial, floating* y) noexcept nogil
