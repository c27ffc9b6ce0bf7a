"""Row-major matrix products for float and double; see blas.pxd for the operand swap."""
from libc.string cimport memset
from cython cimport floating


cdef void matmul(bint trans_a, bint trans_b, int m, int n, int k,
                 floating alpha, const floating* a, int lda,
                 const floating* b, int ldb,
                 floating beta, floating* c, int ldc) noexcept nogil:
    """C[m, n] = alpha * op(A) @ op(B) + beta * C, choosing the fastest BLAS level.

    A vector-shaped product goes to level-2 BLAS: gemv when m or n is 1, ger when k is 1.
    They stream each operand once without gemm's packing into blocks, which is what a
    product with a dimension of 1 (a batch of one sample) pays for without gaining from;
    at batch 1 gemv + ger were measured at about half the time of gemm for the same
    products. beta must be 0 or 1 for the ger path; any other beta goes to gemm. Empty
    products never reach BLAS.
    """
    cdef int i, j
    if m <= 0 or n <= 0:
        return
    if k <= 0:
        # An empty sum: C = beta * C.
        if beta == 0:
            for i in range(m):
                memset(c + i * ldc, 0, n * sizeof(floating))
        elif beta != 1:
            for i in range(m):
                for j in range(n):
                    c[i * ldc + j] *= beta
        return
    if m == 1:
        # c[0, :] = alpha * op(B)^T @ op(A)[0, :] (+ beta c)
        gemv(not trans_b, k if not trans_b else n, n if not trans_b else k, alpha,
             b, ldb, a, lda if trans_a else 1, beta, c, 1)
    elif n == 1:
        # c[:, 0] = alpha * op(A) @ op(B)[:, 0] (+ beta c)
        gemv(trans_a, m if not trans_a else k, k if not trans_a else m, alpha,
             a, lda, b, 1 if trans_b else ldb, beta, c, ldc)
    elif k == 1 and (beta == 0 or beta == 1):
        if beta == 0:
            for i in range(m):
                memset(c + i * ldc, 0, n * sizeof(floating))
        ger(m, n, alpha, a, 1 if trans_a else lda, b, ldb if trans_b else 1, c, ldc)
    else:
        gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)


def matmul_into(const floating[:, ::1] a not None, const floating[:, ::1] b not None, floating[:, ::1] c not None,
                bint trans_a=False, bint trans_b=False, floating alpha=1, floating beta=0):
    """c = alpha * op(a) @ op(b) + beta * c for C-contiguous 2-D arrays (test entry point).

    Shapes are the caller's responsibility: op(a) is (m, k), op(b) is (k, n), c is (m, n).
    """
    cdef int m = c.shape[0], n = c.shape[1]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    cdef int lda = a.shape[1], ldb = b.shape[1], ldc = c.shape[1]
    with nogil:
        matmul(trans_a, trans_b, m, n, k, alpha, &a[0, 0] if a.shape[0] * a.shape[1] else NULL,
               lda if lda > 0 else 1, &b[0, 0] if b.shape[0] * b.shape[1] else NULL,
               ldb if ldb > 0 else 1, beta, &c[0, 0] if m * n else NULL, ldc if ldc > 0 else 1)
