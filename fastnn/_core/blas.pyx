"""Row-major matrix products for float and double; see blas.pxd for the operand swap."""
from libc.string cimport memset
from cython cimport floating


cdef extern from "workpool.h" nogil:
    void fastnn_pool_run(chunk_fn fn, void* args, int nchunks, int threads)
    void fastnn_pool_run_lingering(chunk_fn fn, void* args, int nchunks, int threads)


# The threads a large gemm is split over (fastnn.set_num_threads sets it; BLAS itself runs
# single-threaded, see workpool.h for why).
cdef int _split_threads = 1
# Products below this many multiply-adds (about 10-20 µs on one core) run whole: waking
# a worker costs a few µs and the per-block BLAS calls a few more. Measured on
# 784-512-512-10 / 784-128-10 (fit, 2 threads): lowering it from 4M to 1M took batch 8
# from 17k to 31k samples/s and the small net's batch 32 from 204k to 240k (their
# 3.2M-multiply-add products now use both cores); 512K gained nothing more.
cdef double SPLIT_MIN = 1 << 20
# Each block does at least this many multiply-adds (a few µs on one core), so the
# per-block cost of taking it is small.
cdef double CHUNK_MIN = 1 << 18
# A batch-1 product x @ B is split in two halves of B's rows from this many
# multiply-adds (1 MB of float32 weights: two cores' caches then hold one half each).
cdef double HALVES_MIN = 1 << 18


cdef void parallel_run(chunk_fn fn, void* args, int nchunks) noexcept nogil:
    """fn(args, 0..nchunks-1) on fastnn's threads (the caller is one), each chunk taken
    from a shared counter (workpool.h); chunks must be independent."""
    fastnn_pool_run(fn, args, nchunks, _split_threads)


ctypedef struct _HalvesJob:
    bint is_double
    int k, n, ldb, half
    const void* x
    const void* b
    void* partial


cdef inline void _half_product(_HalvesJob* j, int chunk, const floating* x,
                               const floating* b, floating* partial) noexcept nogil:
    cdef int lo = 0 if chunk == 0 else j.half
    cdef int rows = j.half if chunk == 0 else j.k - j.half
    gemv(True, rows, j.n, <floating>1, b + <Py_ssize_t>lo * j.ldb, j.ldb, x + lo, 1,
         <floating>0, partial + <Py_ssize_t>chunk * j.n, 1)


cdef void _halves_chunk(void* p, int chunk) noexcept nogil:
    cdef _HalvesJob* j = <_HalvesJob*>p
    if j.is_double:
        _half_product(j, chunk, <const double*>j.x, <const double*>j.b, <double*>j.partial)
    else:
        _half_product(j, chunk, <const float*>j.x, <const float*>j.b, <float*>j.partial)


cdef bint matvec_in_halves(int k, int n, const floating* x, const floating* b, int ldb,
                           floating* partial, floating* y) noexcept nogil:
    """y[n] = x[k] @ B[k, n] (row-major, row stride ldb) as the sum of the products of
    B's two halves of rows, one per thread (the caller takes the first, a worker the
    second when it is awake: each keeps its half of B in its core's cache from one
    predict to the next), partial (2, n) their scratch. The halves are fixed by the
    shape, so the bits are the same for every thread count >= 2. Returns False, having
    done nothing, when one thread is set or the product is too small to split."""
    cdef _HalvesJob job
    cdef int j
    if _split_threads <= 1 or <double>k * n < HALVES_MIN or k < 2:
        return False
    job.is_double = floating is double
    job.k = k
    job.n = n
    job.ldb = ldb
    job.half = k // 2
    job.x = x
    job.b = b
    job.partial = partial
    fastnn_pool_run_lingering(_halves_chunk, &job, 2, _split_threads)
    for j in range(n):
        y[j] = partial[j] + partial[n + j]
    return True


def set_split_threads(int n):
    """Split large products over n threads (1: never split). Returns the previous count."""
    global _split_threads
    if n < 1:
        raise ValueError(f"set_split_threads: n must be >= 1, got {n}")
    previous = _split_threads
    _split_threads = n
    return previous


ctypedef struct _GemmJob:
    bint trans_a, trans_b, split_n, is_double
    int m, n, k, lda, ldb, ldc, width, nchunks
    double alpha, beta
    const void* a
    const void* b
    void* c


cdef inline void _gemm_part(_GemmJob* j, Py_ssize_t lo, int w, const floating* a,
                            const floating* b, floating* c) noexcept nogil:
    """Output columns (split_n) or rows [lo, lo + w) of the job's product."""
    if j.split_n:
        gemm(j.trans_a, j.trans_b, j.m, w, j.k, <floating>j.alpha, a, j.lda,
             b + (lo * j.ldb if j.trans_b else lo), j.ldb, <floating>j.beta, c + lo, j.ldc)
    else:
        gemm(j.trans_a, j.trans_b, w, j.n, j.k, <floating>j.alpha,
             a + (lo if j.trans_a else lo * j.lda), j.lda, b, j.ldb,
             <floating>j.beta, c + lo * j.ldc, j.ldc)


cdef void _gemm_chunk(void* p, int chunk) noexcept nogil:
    cdef _GemmJob* j = <_GemmJob*>p
    cdef Py_ssize_t lo = <Py_ssize_t>chunk * j.width
    # the last block takes the remainder (at most width)
    cdef int w = j.width if chunk < j.nchunks - 1 else (j.n if j.split_n else j.m) - <int>lo
    if j.is_double:
        _gemm_part(j, lo, w, <const double*>j.a, <const double*>j.b, <double*>j.c)
    else:
        _gemm_part(j, lo, w, <const float*>j.a, <const float*>j.b, <float*>j.c)


cdef void split_gemm(bint trans_a, bint trans_b, int m, int n, int k,
                     floating alpha, const floating* a, int lda,
                     const floating* b, int ldb,
                     floating beta, floating* c, int ldc) noexcept nogil:
    """gemm, with a large product cut into blocks of output columns (or rows, whichever
    side is longer) that fastnn's threads take from a shared counter (workpool.h). The
    blocks are independent (each is a whole-K product), so the result is the same for
    every thread count >= 2; one thread runs the product whole, which BLAS may round
    differently (last bits)."""
    cdef double work = <double>m * n * k
    cdef int threads = _split_threads
    cdef bint split_n = n >= m
    cdef int dim = n if split_n else m
    cdef int width, nchunks
    cdef _GemmJob job
    if threads <= 1 or work < SPLIT_MIN:
        gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    # Blocks of 16 (whole cache lines, whole kernel strips), about 4 of them, each at
    # least CHUNK_MIN. Each block is its own BLAS call, which costs (per-call overhead,
    # narrower kernels) whether a worker or the caller runs it: beside one busy process,
    # where the caller runs most blocks itself, 8 blocks made 2 threads 11-16% slower
    # than 1 thread's whole products, 4 blocks 0-3% (measured at batch 32-512 on
    # 784-512-512-10), and an idle machine gained with 4 too (fewer calls, same balance
    # for 2 threads). The layout depends on the shape only, never on the thread count or
    # on which thread takes which block: every count >= 2 gives the same bits, run after
    # run.
    width = <int>(CHUNK_MIN / (work / dim)) + 1
    width = max(width, (dim + 3) // 4)
    width = (width + 15) // 16 * 16
    nchunks = (dim + width - 1) // width       # the last block takes what is left
    if nchunks <= 1:
        gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    job.trans_a = trans_a
    job.trans_b = trans_b
    job.split_n = split_n
    job.is_double = floating is double
    job.m = m
    job.n = n
    job.k = k
    job.lda = lda
    job.ldb = ldb
    job.ldc = ldc
    job.width = width
    job.nchunks = nchunks
    job.alpha = alpha
    job.beta = beta
    job.a = a
    job.b = b
    job.c = c
    fastnn_pool_run(_gemm_chunk, &job, nchunks, threads)


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
        split_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)


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
