"""The compiled training step: one call runs a whole step of a Sequential of dense,
dropout, activation and flatten layers under a softmax cross-entropy, with the GIL
released:

  forward (dropout masks included) -> loss and dL/dz -> backward (dW, db, dx and the
  L1/L2 gradients) -> finiteness -> the optimizer's update of every trainable parameter;

and CompiledForward, predict's forward pass in one call.

It chains the kernels' nogil cores (dense.pxd, random.pxd, losses.pxd, ops.pxd, optim.pxd)
in the order fastnn/engine.py's Python step calls their wrappers, so the two give the
same bits; engine.train_step uses this one whenever the model, loss and optimizer are of
the kinds above and the Python step otherwise (and the tests compare the two). Two
things only the compiled step does, for small batches, where a step is a few memory
passes over the parameters:
- the finiteness of the gradients is proven from each dense layer's input and delta
  (_gradient_bounded) instead of a pass over every gradient; when the bound does not
  clear, the pass decides, so the verdict is always the pass's;
- with nothing frozen or regularized, dW is made in blocks of rows that the update
  consumes while they are in cache (_fused_update); the blocks' products may round
  differently in the last bit from the whole product's, so these steps match the Python
  step to rounding, not bit for bit.

A CompiledStep is built once per (model, batch size) from the model's layers and a
training workspace (fastnn/engine.py): it holds the addresses of every buffer, so a
step reads no Python attribute but the few that may change between steps (the
regularization coefficients, dropout rates and the seed). The optimizer's per-step
scalars come prepared in an optim.Update.
"""
from libc.float cimport FLT_MAX, DBL_MAX
from libc.math cimport fabs, sqrt
from libc.stdint cimport uint64_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_C_CONTIGUOUS
from cython cimport floating

from fastnn._core.fpmode cimport fastnn_ftz_on, fastnn_ftz_restore
from fastnn._core.blas cimport chunk_fn, matmul, matvec_in_halves, parallel_run
from fastnn._core.activations cimport bias_activation, activation_grad_bias, LINEAR
from fastnn._core.dense cimport dense_forward_core, dense_backward_core
from fastnn._core.losses cimport softmax_cross_entropy_core
from fastnn._core.ops cimport all_finite_core
from fastnn._core.optim cimport Update, update_t, update_range
from fastnn._core.random cimport mix_key_core, dropout_forward_core, multiply_core

import numpy as np

# Layer kinds (fastnn/engine.py maps the layer classes onto them).
cpdef enum LayerKind:
    DENSE = 0
    DROPOUT = 1
    ACTIVATION = 2
    PASS = 3            # Flatten: the input goes through unchanged

# Step outcomes, as engine.train_step names them.
STATUS = ("ok", "non-finite", "overflow")

# The flat arrays are cut into at most this many chunks for the threads, each at least
# CHUNK_MIN elements (a few µs of streaming: less is not worth a hand-over).
cdef enum:
    MAX_CHUNKS = 16
cdef Py_ssize_t CHUNK_MIN = 1 << 15
# A fused-update tile: about this many elements of dW (256 KB of float32), made and
# consumed by the update while it sits in the core's L2 cache; few enough tiles that
# each product is still worth a BLAS call.
cdef Py_ssize_t TILE_ELEMENTS = 1 << 16


ctypedef struct layer_t:
    int kind, k, m, activation
    double alpha
    void* w
    void* b
    void* dw
    void* db
    void* out           # (n, m) output (NULL: the layer passes its input through)
    void* z             # (n, m) kept logits, or NULL
    void* grad_x        # (n, k) dL/dx, or NULL (the first layer needs none)
    void* mask          # dropout's (n, m) mask
    const void* input   # this step's input (set by the forward pass)
    void* dz            # this step's dL/dz (set by the backward pass)
    Py_ssize_t w_off, b_off     # W's and b's offsets in the flat arrays
    bint use_bias
    double rate
    uint64_t seed
    double kl1, kl2, bl1, bl2


ctypedef struct tile_t:
    int layer
    int r0, r1          # rows r0..r1-1 of the layer's W; r0 = -1: its bias


ctypedef struct plan_t:
    layer_t* layers
    int nlayers, n, in_dim, out_dim
    bint is_double, fused, logits_of_input, sparse
    bint use_bound      # prove the gradients finite from the layers' inputs and deltas
    bint may_fuse       # no frozen ranges: dW may be made tile by tile into the update
    void* partial       # CompiledForward's (2, widest layer) scratch for batch 1, or NULL
    tile_t* tiles       # the fused update's pieces (see _fused_update)
    Py_ssize_t* tile_bad
    int n_tiles
    double label_smoothing
    void* grad          # (n, out_dim) dL/d(output)
    void* output        # (n, out_dim) the network's output
    void* grads         # the flat gradient
    # the flat arrays in chunks for the threads: trainable ones for the update, all for
    # the finiteness check; frozen ranges, whose gradient is zeroed
    Py_ssize_t update_lo[MAX_CHUNKS]
    Py_ssize_t update_hi[MAX_CHUNKS]
    int n_update
    Py_ssize_t check_lo[MAX_CHUNKS]
    Py_ssize_t check_hi[MAX_CHUNKS]
    int n_check
    Py_ssize_t* frozen_lo
    Py_ssize_t* frozen_hi
    int n_frozen


ctypedef struct pass_job_t:
    const plan_t* plan
    const update_t* update      # NULL: the finiteness check
    Py_ssize_t* result          # one per chunk


cdef void _update_chunk(void* args, int chunk) noexcept nogil:
    cdef pass_job_t* job = <pass_job_t*>args
    job.result[chunk] = update_range(job.update, job.plan.update_lo[chunk],
                                     job.plan.update_hi[chunk], NULL)


cdef void _check_chunk(void* args, int chunk) noexcept nogil:
    cdef pass_job_t* job = <pass_job_t*>args
    cdef const plan_t* p = job.plan
    cdef Py_ssize_t lo = p.check_lo[chunk], hi = p.check_hi[chunk]
    if p.is_double:
        job.result[chunk] = all_finite_core(<const double*>p.grads + lo, hi - lo)
    else:
        job.result[chunk] = all_finite_core(<const float*>p.grads + lo, hi - lo)


cdef Py_ssize_t _run_chunks(const plan_t* p, const update_t* u, chunk_fn fn,
                            int nchunks, Py_ssize_t* result) noexcept nogil:
    """fn's chunks 0..nchunks-1 on fastnn's threads; the sum of their results."""
    cdef pass_job_t job
    cdef Py_ssize_t total = 0
    cdef int c
    job.plan = p
    job.update = u
    job.result = result
    parallel_run(fn, &job, nchunks)
    for c in range(nchunks):
        total += result[c]
    return total


cdef bint _grads_finite(const plan_t* p) noexcept nogil:
    cdef Py_ssize_t result[MAX_CHUNKS]
    return _run_chunks(p, NULL, _check_chunk, p.n_check, result) == p.n_check


cdef Py_ssize_t _apply_update(const plan_t* p, const update_t* u) noexcept nogil:
    cdef Py_ssize_t result[MAX_CHUNKS]
    return _run_chunks(p, u, _update_chunk, p.n_update, result)


cdef const floating* _forward(plan_t* p, const floating* x, uint64_t epoch,
                              uint64_t step, bint training) noexcept nogil:
    """The forward pass (training: with dropout); returns the network's output."""
    cdef const floating* h = x
    cdef layer_t* L
    cdef int i
    for i in range(p.nlayers):
        L = &p.layers[i]
        L.input = h
        if L.kind == DENSE:
            if p.partial != NULL and p.n == 1 and matvec_in_halves(
                    L.k, L.m, h, <const floating*>L.w, L.m, <floating*>p.partial,
                    <floating*>L.out):
                # one sample (predict): its product from both cores' caches
                bias_activation(<floating*>L.out, <const floating*>L.b, <floating*>L.z,
                                1, L.m, L.activation, <floating>L.alpha)
            else:
                dense_forward_core(h, <const floating*>L.w, <const floating*>L.b,
                                   <floating*>L.out, <floating*>L.z, p.n, L.k, L.m,
                                   L.activation, <floating>L.alpha)
            h = <floating*>L.out
        elif L.kind == DROPOUT:
            if training and L.rate > 0:
                dropout_forward_core(h, <floating*>L.mask, <floating*>L.out, p.n, L.m,
                                     L.rate, mix_key_core(L.seed, epoch, step, i))
                h = <floating*>L.out
        elif L.kind == ACTIVATION:
            _copy(h, <floating*>L.out, <Py_ssize_t>p.n * L.m)
            bias_activation(<floating*>L.out, <const floating*>NULL, <floating*>NULL, p.n,
                            L.m, L.activation, <floating>L.alpha)
            h = <floating*>L.out
    return h


cdef inline void _copy(const floating* src, floating* dst, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t i
    if src != dst:
        for i in range(size):
            dst[i] = src[i]


cdef double _max_abs(const floating* x, Py_ssize_t size, bint* finite) noexcept nogil:
    """max |x[i]|; clears *finite if an entry is NaN or inf (v - v is 0 for every
    finite v and NaN otherwise, and the max alone would skip a NaN)."""
    cdef Py_ssize_t i
    cdef floating mx = 0, a, s = 0
    for i in range(size):
        a = fabs(x[i])
        s += x[i] - x[i]
        if a > mx:
            mx = a
    if s != 0:
        finite[0] = False
    return mx


cdef bint _gradient_bounded(const layer_t* L, const floating* dz, int n,
                            double penalty) noexcept nogil:
    """Are the dense layer's gradients certainly finite, given its input (n, k), dz
    (n, m) and its penalty? |dW_ij| = |Σ_r x_ri dz_rj| <= n·max|x|·max|dz| for every
    partial sum in any order (rounding adds at most a factor 1 + n·eps), |db_j| <=
    n·max|dz|, and the regularization adds at most l1 + 2·l2·max|w| <= l1 + 2·sqrt(l2·P)
    (P, the layer's penalty, is at least l2·Σw²). Below a quarter of the largest
    finite value, no sum can overflow: no inf, hence no NaN."""
    cdef bint finite = True
    cdef double xs = _max_abs(<const floating*>L.input, <Py_ssize_t>n * L.k, &finite)
    cdef double ds = _max_abs(dz, <Py_ssize_t>n * L.m, &finite)
    cdef double l1 = max(L.kl1, L.bl1), l2 = max(L.kl2, L.bl2)
    cdef double bound = n * xs * ds + n * ds + l1 + 2 * sqrt(l2 * penalty)
    cdef double limit = (FLT_MAX if floating is float else DBL_MAX) / 4
    return finite and bound <= limit


cdef double _backward(plan_t* p, floating* g, bint with_dw, bint* bounded) noexcept nogil:
    """The backward pass in reverse, from dL/d(output) in g (p.grad); fills the flat
    gradient and returns the regularization penalty. With p.use_bound, *bounded says
    whether every gradient is certainly finite (_gradient_bounded); else it is False.
    with_dw False (unregularized layers only): every dz, db and dx but no dW, which
    _fused_update or _weight_gradients makes later from each layer's input and dz."""
    cdef layer_t* L
    cdef double penalty = 0, layer_penalty
    cdef int i, last = p.nlayers - 1
    cdef bint is_dz
    bounded[0] = p.use_bound
    for i in range(last, -1, -1):
        L = &p.layers[i]
        is_dz = i == last and p.fused
        if L.kind == DENSE:
            L.dz = g
            layer_penalty = dense_backward_core(
                <const floating*>L.input, <const floating*>L.w, <const floating*>L.b,
                <const floating*>L.out, g, <floating*>L.dw if with_dw else NULL,
                <floating*>L.db, <floating*>L.grad_x, p.n, L.k, L.m,
                LINEAR if is_dz else L.activation, <floating>L.alpha, <floating>L.kl1,
                <floating>L.kl2, <floating>L.bl1, <floating>L.bl2)
            penalty += layer_penalty
            if bounded[0]:
                bounded[0] = _gradient_bounded(L, g, p.n, layer_penalty)
            if not L.use_bias:
                memset(L.db, 0, L.m * sizeof(floating))
            g = <floating*>L.grad_x
        elif L.kind == DROPOUT:
            if L.rate > 0:
                multiply_core(g, <const floating*>L.mask, <Py_ssize_t>p.n * L.m)
        elif L.kind == ACTIVATION:
            if not is_dz:
                activation_grad_bias(<const floating*>L.out, g, <floating*>NULL, p.n, L.m,
                                     L.activation, <floating>L.alpha)
        if g == NULL:
            break           # the first layer with parameters needs no dL/dx
    for i in range(p.n_frozen):
        memset(<floating*>p.grads + p.frozen_lo[i], 0,
               (p.frozen_hi[i] - p.frozen_lo[i]) * sizeof(floating))
    return penalty


cdef void _tile_chunk(void* args, int chunk) noexcept nogil:
    cdef pass_job_t* job = <pass_job_t*>args
    cdef const plan_t* p = job.plan
    cdef const tile_t* t = &p.tiles[chunk]
    cdef const layer_t* L = &p.layers[t.layer]
    if t.r0 < 0:
        job.result[chunk] = update_range(job.update, L.b_off, L.b_off + L.m, NULL)
        return
    if p.is_double:
        _tile_gradient(L, t.r0, t.r1, p.n, <double*>L.dw)
    else:
        _tile_gradient(L, t.r0, t.r1, p.n, <float*>L.dw)
    job.result[chunk] = update_range(job.update, L.w_off + <Py_ssize_t>t.r0 * L.m,
                                     L.w_off + <Py_ssize_t>t.r1 * L.m, NULL)


cdef inline void _tile_gradient(const layer_t* L, int r0, int r1, int n,
                                floating* dw) noexcept nogil:
    """Rows r0..r1-1 of dW = x^T dz (x: the layer's input (n, k), dz (n, m))."""
    matmul(True, False, r1 - r0, L.m, n, <floating>1, <const floating*>L.input + r0, L.k,
           <const floating*>L.dz, L.m, <floating>0, dw + <Py_ssize_t>r0 * L.m, L.m)


cdef Py_ssize_t _fused_update(const plan_t* p, const update_t* u) noexcept nogil:
    """Each block of dW rows made and at once updated from while it is in cache (and the
    biases updated), the blocks shared by the threads: the update then reads dW from
    cache instead of memory. The whole dW is still written (layer.gradients stays
    true). Returns the count of non-finite new weights."""
    return _run_chunks(p, u, _tile_chunk, p.n_tiles, p.tile_bad)


cdef void _weight_gradients(plan_t* p, floating* any) noexcept nogil:
    """Every dense layer's whole dW (the fused update's fallback)."""
    cdef int i
    cdef layer_t* L
    for i in range(p.nlayers):
        L = &p.layers[i]
        if L.kind == DENSE:
            _tile_gradient(L, 0, L.k, p.n, <floating*>L.dw)


cdef bint _unregularized(const plan_t* p) noexcept nogil:
    cdef int i
    for i in range(p.nlayers):
        if p.layers[i].kind == DENSE and (p.layers[i].kl1 != 0 or p.layers[i].kl2 != 0 or
                                          p.layers[i].bl1 != 0 or p.layers[i].bl2 != 0):
            return False
    return True


cdef int _step(plan_t* p, const floating* x, const void* y, const floating* sw,
               uint64_t epoch, uint64_t step, double scale, const update_t* u,
               unsigned int fp_mode, double* loss_sum, double* penalty,
               Py_ssize_t* bad) noexcept nogil:
    """The whole step, flush-to-zero on (the caller's) except in the loss, which runs in
    the caller's mode fp_mode as its Python wrapper does; returns 0 ok, 1 non-finite
    (nothing updated), 2 overflow."""
    cdef const floating* out = _forward(p, x, epoch, step, True)
    cdef const floating* z = out
    cdef layer_t* last = &p.layers[p.nlayers - 1]
    cdef double total
    cdef bint bounded, fuse
    if p.fused:
        z = <const floating*>last.input if p.logits_of_input else <const floating*>last.z
    fastnn_ftz_restore(fp_mode)
    loss_sum[0] = softmax_cross_entropy_core(
        z, out if p.fused else <const floating*>NULL,
        <const floating*>NULL if p.sparse else <const floating*>y,
        <const int64_t*>y if p.sparse else <const int64_t*>NULL, sw, p.n, p.out_dim,
        p.label_smoothing, scale, <floating*>p.grad, <double*>NULL)
    fastnn_ftz_on()
    # Small batches (the step is memory passes over the parameters) fuse dW into the
    # update when no layer is frozen or regularized (the penalty's gradient and the
    # bound's share of it need the whole W first).
    fuse = p.use_bound and p.may_fuse and _unregularized(p)
    penalty[0] = _backward(p, <floating*>p.grad, not fuse, &bounded)
    # NaN/inf before the update, so that a step is applied whole or not at all: the
    # loss (free), then the gradients: proven finite from the layers' inputs and deltas
    # where those are far fewer numbers than the gradients (small batches), else one
    # pass over them, split over the threads. A bound that fails (huge or non-finite
    # values) falls back to the pass, so the verdict is always the pass's.
    total = loss_sum[0] * scale + penalty[0]
    if not (total - total == 0):
        return 1
    if fuse and bounded:
        bad[0] = _fused_update(p, u)
        return 2 if bad[0] else 0
    if fuse:
        _weight_gradients(p, <floating*>p.grad)
    if not (bounded or _grads_finite(p)):
        return 1
    bad[0] = _apply_update(p, u)
    return 2 if bad[0] else 0


cdef void* _ptr(object array) except? NULL:
    """The data address of a C-contiguous array (NULL for None or an empty one). The
    caller keeps the array alive while the address is used."""
    cdef Py_buffer view
    cdef void* address
    if array is None:
        return NULL
    PyObject_GetBuffer(array, &view, PyBUF_C_CONTIGUOUS)
    address = view.buf if view.len > 0 else NULL
    PyBuffer_Release(&view)
    return address


cdef void _clear_plan(plan_t* p) noexcept:
    """A plan that owns no memory yet (every array it may allocate NULL)."""
    p.layers = NULL
    p.tiles = NULL
    p.tile_bad = NULL
    p.partial = NULL
    p.frozen_lo = NULL
    p.frozen_hi = NULL


cdef void _free_plan(plan_t* p) noexcept:
    """Free what a plan allocated (free(NULL) is a no-op)."""
    free(p.layers)
    free(p.tiles)
    free(p.tile_bad)
    free(p.partial)
    free(p.frozen_lo)
    free(p.frozen_hi)
    _clear_plan(p)


cdef int _fill_layers(plan_t* p, object layers, Py_ssize_t itemsize) except -1:
    """p.layers from the layer specs (see CompiledStep); W's and b's offsets in the flat
    gradient when p.grads is set."""
    cdef int i
    cdef layer_t* L
    p.nlayers = len(layers)
    p.layers = <layer_t*>malloc(max(1, p.nlayers) * sizeof(layer_t))
    if p.layers == NULL:
        raise MemoryError()
    for i, (kind, k, m, act, alpha, w, b, dw, db, out, z, grad_x, mask,
            use_bias) in enumerate(layers):
        L = &p.layers[i]
        L.kind, L.k, L.m, L.activation, L.alpha = kind, k, m, act, alpha
        L.w, L.b, L.dw, L.db = _ptr(w), _ptr(b), _ptr(dw), _ptr(db)
        L.out, L.z, L.grad_x, L.mask = _ptr(out), _ptr(z), _ptr(grad_x), _ptr(mask)
        L.use_bias = use_bias
        L.input = NULL
        L.dz = NULL
        L.w_off = L.b_off = 0
        if kind == DENSE and p.grads != NULL:
            L.w_off = (<char*>L.dw - <char*>p.grads) // itemsize
            L.b_off = (<char*>L.db - <char*>p.grads) // itemsize
        L.rate = 0
        L.seed = 0
        L.kl1 = L.kl2 = L.bl1 = L.bl2 = 0
    return 0


cdef class CompiledStep:
    """The compiled step of one model for batches of n rows (see the module docstring).

    layers: one (kind, input width, output width, activation code, alpha, W, b, dW, db,
    out, z, grad_x, mask, use_bias) per layer, arrays None where the kind has none;
    grad (n, out_dim): the loss gradient's buffer; grads: the flat gradient; update_ranges
    and frozen_ranges: [(lo, hi)] of the flat arrays. The arrays are kept alive here.
    """
    cdef plan_t p
    cdef object keep
    cdef readonly object output      # (n, out_dim): the network's output after a step
    cdef readonly object dtype
    # the caller's: the prepared optimizer step, the layers it refreshes every step
    cdef public object update, dense, dropout, loss
    cdef readonly bint chunked    # False: too many trainable ranges (do not run)
    cdef Py_ssize_t _size         # elements of the flat arrays

    def __cinit__(self):
        _clear_plan(&self.p)

    def __init__(self, layers, int n, int in_dim, int out_dim, dtype, bint fused,
                 bint logits_of_input, bint sparse, double label_smoothing, grad, grads,
                 output, frozen_ranges):
        cdef int i
        cdef layer_t* L
        self.dtype = np.dtype(dtype)
        self.keep = (layers, grad, grads, output)
        self.output = output
        self.p.nlayers = len(layers)
        self.p.n = n
        self.p.in_dim = in_dim
        self.p.out_dim = out_dim
        self.p.is_double = self.dtype == np.float64
        self.p.fused = fused
        self.p.logits_of_input = logits_of_input
        self.p.sparse = sparse
        self.p.label_smoothing = label_smoothing
        # The bound reads each dense layer's input and delta once: worth it (instead of
        # the pass over every gradient) while they are under half as many numbers.
        self.p.use_bound = 2 * sum(n * (spec[1] + spec[2]) for spec in layers
                                   if spec[0] == DENSE) < grads.shape[0]
        self.p.grad = _ptr(grad)
        self.p.output = _ptr(output)
        self.p.grads = _ptr(grads)
        _fill_layers(&self.p, layers, self.dtype.itemsize)
        size = grads.shape[0]
        self._size = size
        frozen = [(int(lo), int(hi)) for lo, hi in frozen_ranges if hi > lo]
        trainable, start = [], 0
        for lo, hi in frozen:
            trainable.append((start, lo))
            start = hi
        trainable.append((start, size))
        self.chunked = self._set_chunks(trainable, True)
        self._set_chunks([(0, size)], False)
        self._set_tiles(layers)
        self.p.may_fuse = not frozen
        self.p.n_frozen = len(frozen)
        self.p.frozen_lo = <Py_ssize_t*>malloc(max(1, len(frozen)) * sizeof(Py_ssize_t))
        self.p.frozen_hi = <Py_ssize_t*>malloc(max(1, len(frozen)) * sizeof(Py_ssize_t))
        if self.p.frozen_lo == NULL or self.p.frozen_hi == NULL:
            raise MemoryError()
        for i, (lo, hi) in enumerate(frozen):
            self.p.frozen_lo[i] = lo
            self.p.frozen_hi[i] = hi

    def _set_chunks(self, ranges, bint update):
        """Cut ranges [(lo, hi)] into at most MAX_CHUNKS chunks for the threads: about
        8 in all (a descheduled thread then holds up little), each at least CHUNK_MIN
        elements, starts on 16-element (64-byte) boundaries. Fixed by the shape alone,
        like the product blocks (blas.pyx). Returns False when the ranges themselves are
        more than MAX_CHUNKS (many frozen gaps: the caller takes the Python step)."""
        ranges = [(lo, hi) for lo, hi in ranges if hi > lo]
        if len(ranges) > MAX_CHUNKS:
            return False
        total = sum(hi - lo for lo, hi in ranges)
        width = max(CHUNK_MIN, -(-total // 8))
        width = -(-width // 16) * 16
        chunks = []
        for lo, hi in ranges:
            while hi - lo > width + width // 2:
                end = (lo + width) // 16 * 16       # > lo: width >= CHUNK_MIN > 16
                chunks.append((lo, end))
                lo = end
            chunks.append((lo, hi))
        while len(chunks) > MAX_CHUNKS:
            # merge the smallest pair of pieces of one range (there is one: the ranges
            # are at most MAX_CHUNKS)
            joinable = [j for j in range(len(chunks) - 1) if chunks[j][1] == chunks[j + 1][0]]
            j = min(joinable, key=lambda j: chunks[j + 1][1] - chunks[j][0])
            chunks[j:j + 2] = [(chunks[j][0], chunks[j + 1][1])]
        for i, (lo, hi) in enumerate(chunks):
            if update:
                self.p.update_lo[i], self.p.update_hi[i] = lo, hi
            else:
                self.p.check_lo[i], self.p.check_hi[i] = lo, hi
        if update:
            self.p.n_update = len(chunks)
        else:
            self.p.n_check = len(chunks)
        return True

    def _set_tiles(self, layers):
        """The fused update's pieces: each dense layer's W in blocks of whole rows of
        about TILE_ELEMENTS elements, and its bias."""
        tiles = []
        for i, spec in enumerate(layers):
            if spec[0] != DENSE:
                continue
            k, m = spec[1], spec[2]
            rows = max(1, TILE_ELEMENTS // m)
            tiles += [(i, r0, min(r0 + rows, k)) for r0 in range(0, k, rows)]
            tiles.append((i, -1, -1))
        self.p.n_tiles = len(tiles)
        self.p.tiles = <tile_t*>malloc(max(1, len(tiles)) * sizeof(tile_t))
        self.p.tile_bad = <Py_ssize_t*>malloc(max(1, len(tiles)) * sizeof(Py_ssize_t))
        if self.p.tiles == NULL or self.p.tile_bad == NULL:
            raise MemoryError()
        for c, (i, r0, r1) in enumerate(tiles):
            self.p.tiles[c].layer, self.p.tiles[c].r0, self.p.tiles[c].r1 = i, r0, r1

    @property
    def fuses_update(self):
        """True when a step (of unregularized layers) makes dW tile by tile into the
        update (small batches, nothing frozen)."""
        return self.p.use_bound and self.p.may_fuse

    def __dealloc__(self):
        _free_plan(&self.p)

    @property
    def proves_finite(self):
        """True when a step proves its gradients finite from the layers' inputs and
        deltas (small batches) rather than by a pass over them."""
        return self.p.use_bound

    def set_label_smoothing(self, double label_smoothing):
        """This step's label smoothing (the loss's, which may change between steps)."""
        self.p.label_smoothing = label_smoothing

    def set_layer(self, int i, double rate, uint64_t seed, double kl1, double kl2,
                  double bl1, double bl2):
        """This step's values of what may change between steps: layer i's dropout rate
        and seed, or its regularization coefficients."""
        cdef layer_t* L
        if not 0 <= i < self.p.nlayers:
            raise IndexError(f"CompiledStep.set_layer: layer {i} of {self.p.nlayers}")
        L = &self.p.layers[i]
        L.rate, L.seed = rate, seed
        L.kl1, L.kl2, L.bl1, L.bl2 = kl1, kl2, bl1, bl2

    def run(self, x, y, sw, uint64_t epoch, uint64_t step, double scale, Update update):
        """One training step on x (n, in_dim), targets y ((n,) int64 labels or (n,
        out_dim)) and sample weights sw ((n,) or empty), all C-contiguous of the model's
        dtype (int64 labels), checked by the caller. scale: 1 / the batch's rows.
        update: the optimizer's prepared step. Returns (Σ swᵢ lossᵢ, penalty, status,
        count of non-finite new weights); status as engine.train_step's."""
        cdef double loss_sum = 0, penalty = 0
        cdef Py_ssize_t bad = 0
        cdef int status
        cdef void* xp = _ptr(x)
        cdef void* yp = _ptr(y)
        cdef void* swp = _ptr(sw)
        cdef unsigned int mode
        if x.shape[0] != self.p.n or x.shape[1] != self.p.in_dim or x.dtype != self.dtype:
            raise ValueError(f"CompiledStep.run: x must be ({self.p.n}, {self.p.in_dim}) "
                             f"{self.dtype}, got {x.shape} {x.dtype}")
        if (y.shape != (self.p.n,) or y.dtype != np.int64) if self.p.sparse else \
                (y.shape != (self.p.n, self.p.out_dim) or y.dtype != self.dtype):
            raise ValueError(f"CompiledStep.run: y of shape {y.shape} and dtype {y.dtype} "
                             f"does not fit the loss and the batch")
        if sw.ndim != 1 or sw.shape[0] not in (0, self.p.n) or \
                (sw.shape[0] and sw.dtype != self.dtype):
            raise ValueError(f"CompiledStep.run: sw must be empty or ({self.p.n},) "
                             f"{self.dtype}, got {sw.shape} {sw.dtype}")
        if update is None or not update.ready or update.u.w == NULL or \
                update.u.is_double != self.p.is_double or \
                update.u.g != <const void*>self.p.grads or update.u.size != self._size:
            raise ValueError("CompiledStep.run: update must be an optim.Update prepared "
                             "on this model's flat parameters and gradients")
        mode = fastnn_ftz_on()
        with nogil:
            if self.p.is_double:
                status = _step(&self.p, <const double*>xp, yp, <const double*>swp, epoch,
                               step, scale, &update.u, mode, &loss_sum, &penalty, &bad)
            else:
                status = _step(&self.p, <const float*>xp, yp, <const float*>swp, epoch,
                               step, scale, &update.u, mode, &loss_sum, &penalty, &bad)
        fastnn_ftz_restore(mode)
        return loss_sum, penalty, STATUS[status], bad


cdef class CompiledForward:
    """The inference forward pass of one model for batches of n rows in one nogil call
    (predict): the layers' specs as CompiledStep's (dropout is the identity here), the
    output written into ``output`` (n, out_dim), the last layer's buffer."""
    cdef plan_t p
    cdef object keep
    cdef readonly object output
    cdef readonly object dtype

    def __cinit__(self):
        _clear_plan(&self.p)

    def __init__(self, layers, int n, int in_dim, int out_dim, dtype, output):
        self.dtype = np.dtype(dtype)
        self.keep = (layers, output)
        self.output = output
        self.p.n = n
        self.p.in_dim = in_dim
        self.p.out_dim = out_dim
        self.p.is_double = self.dtype == np.float64
        self.p.grads = NULL
        _fill_layers(&self.p, layers, self.dtype.itemsize)
        if n == 1:
            widest = max(spec[2] for spec in layers)
            self.p.partial = malloc(2 * widest * self.dtype.itemsize)
            if self.p.partial == NULL:
                raise MemoryError()

    def __dealloc__(self):
        _free_plan(&self.p)

    def run(self, x):
        """The outputs for x (n, in_dim) into self.output, returned; None, having done
        nothing, unless x is a C-contiguous, finite numpy array of that shape and of the
        model's dtype (the caller's general path then checks and converts it)."""
        cdef Py_buffer view
        cdef bint ok
        cdef unsigned int mode
        if type(x) is not np.ndarray or x.dtype != self.dtype or not x.flags.c_contiguous:
            return None
        PyObject_GetBuffer(x, &view, PyBUF_C_CONTIGUOUS)
        try:
            ok = view.ndim == 2 and view.shape[0] == self.p.n and \
                view.shape[1] == self.p.in_dim
            if ok:
                mode = fastnn_ftz_on()
                with nogil:
                    if self.p.is_double:
                        ok = all_finite_core(<const double*>view.buf,
                                             <Py_ssize_t>self.p.n * self.p.in_dim)
                        if ok:
                            _forward(&self.p, <const double*>view.buf, 0, 0, False)
                    else:
                        ok = all_finite_core(<const float*>view.buf,
                                             <Py_ssize_t>self.p.n * self.p.in_dim)
                        if ok:
                            _forward(&self.p, <const float*>view.buf, 0, 0, False)
                fastnn_ftz_restore(mode)
        finally:
            PyBuffer_Release(&view)
        return self.output if ok else None
