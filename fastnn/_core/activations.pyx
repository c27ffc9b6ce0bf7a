"""Element-wise activations, forward and backward, fused with the bias.

Forward works in place on a row-major (n, m) buffer: out = act(out + bias). Backward turns
dL/d(out) into dL/dz in place, using only the activation's output (every activation here
has a derivative expressible through its output), and sums dz over rows into the bias
gradient in the same pass.
"""
from libc.math cimport tanh, fabs
from libc.string cimport memcpy, memset
from cython cimport floating

from fastnn._core.fpmode cimport fastnn_ftz_on, fastnn_ftz_restore


cdef extern from "vmath.h":
    # Vectorizable Cephes exp (1-3 ulp), see vmath.h: libm's exp is a call the compiler
    # cannot vectorize, and these loops are exp-bound. The row loops are compiled for
    # AVX-512 / AVX2 / SSE2 and chosen at load time.
    void fastnn_sigmoid_f32(float* x, Py_ssize_t n) noexcept nogil
    void fastnn_sigmoid_f64(double* x, Py_ssize_t n) noexcept nogil
    void fastnn_tanh_f32(float* x, Py_ssize_t n) noexcept nogil
    void fastnn_exp_shift_f32(float* x, Py_ssize_t n, float shift) noexcept nogil
    void fastnn_exp_shift_f64(double* x, Py_ssize_t n, double shift) noexcept nogil


cdef void _softmax_rows(floating* out, Py_ssize_t n, Py_ssize_t m) noexcept nogil:
    """Row-wise softmax in place, shifted by the row maximum so exp never overflows."""
    cdef Py_ssize_t i, j
    cdef floating mx, s
    cdef floating* row
    for i in range(n):
        row = out + i * m
        mx = row[0]
        for j in range(1, m):
            if row[j] > mx:
                mx = row[j]
        if floating is float:
            fastnn_exp_shift_f32(row, m, mx)
        else:
            fastnn_exp_shift_f64(row, m, mx)
        s = 0
        for j in range(m):
            s += row[j]
        s = 1 / s
        for j in range(m):
            row[j] *= s


cdef void bias_activation(floating* out, const floating* bias, floating* keep_z,
                          Py_ssize_t n, Py_ssize_t m, int activation,
                          floating alpha) noexcept nogil:
    """out[n, m] = act(out + bias) in place; bias may be NULL (no bias).

    If keep_z is not NULL the pre-activation out + bias is also written there (the fused
    losses need the logits for a numerically stable log-sum-exp).
    """
    cdef Py_ssize_t i, j
    cdef floating v, av, zero = 0
    cdef floating* row
    for i in range(n):
        row = out + i * m
        if bias != NULL:
            for j in range(m):
                row[j] += bias[j]
        if keep_z != NULL:
            memcpy(keep_z + i * m, row, m * sizeof(floating))
        if activation == SIGMOID:
            if floating is float:
                fastnn_sigmoid_f32(row, m)
            else:
                fastnn_sigmoid_f64(row, m)
        elif activation == TANH:
            if floating is float:
                fastnn_tanh_f32(row, m)
            else:
                for j in range(m):       # float64: libm's tanh, its accuracy
                    row[j] = tanh(row[j])
        elif activation == RELU:
            for j in range(m):
                v = row[j]
                row[j] = v if v > 0 else 0
        elif activation == LEAKY_RELU:
            for j in range(m):
                v = row[j]
                av = alpha * v
                row[j] = v if v > zero else av
    if activation == SOFTMAX:
        _softmax_rows(out, n, m)


cdef void activation_grad_bias(const floating* out, floating* grad, floating* grad_bias,
                               Py_ssize_t n, Py_ssize_t m, int activation,
                               floating alpha) noexcept nogil:
    """grad[n, m]: dL/d(out) -> dL/dz in place; grad_bias[m] = column sums of dL/dz.

    grad_bias may be NULL. For leaky ReLU the sign of the output equals the sign of z
    (alpha > 0 is enforced in Python), so the output alone decides the branch.
    """
    cdef Py_ssize_t i, j
    cdef floating y, dot, gj, ag, zero = 0
    cdef floating* g
    cdef const floating* o
    if grad_bias != NULL:
        memset(grad_bias, 0, m * sizeof(floating))
    for i in range(n):
        g = grad + i * m
        o = out + i * m
        if activation == SIGMOID:
            for j in range(m):
                y = o[j]
                g[j] *= y * (1 - y)
        elif activation == TANH:
            for j in range(m):
                y = o[j]
                g[j] *= 1 - y * y
        elif activation == RELU:
            # A select between two values already loaded, not a conditional store: no
            # branch to mispredict on random signs, and the loop vectorizes.
            for j in range(m):
                gj = g[j]
                g[j] = gj if o[j] > zero else zero
        elif activation == LEAKY_RELU:
            for j in range(m):
                gj = g[j]
                ag = alpha * gj
                g[j] = gj if o[j] > zero else ag
        elif activation == SOFTMAX:
            # Jacobian-vector product of softmax: dz = y * (g - <g, y>).
            dot = 0
            for j in range(m):
                dot += g[j] * o[j]
            for j in range(m):
                g[j] = o[j] * (g[j] - dot)
        if grad_bias != NULL:
            for j in range(m):
                grad_bias[j] += g[j]


def activation_forward(const floating[:, ::1] x not None, floating[:, ::1] out not None, int activation,
                       floating alpha=0):
    """out[n, m] = act(x[n, m]). x and out may be the same buffer."""
    cdef Py_ssize_t n = out.shape[0], m = out.shape[1]
    if n == 0 or m == 0:
        return
    cdef unsigned int mode = fastnn_ftz_on()
    with nogil:
        if &out[0, 0] != &x[0, 0]:
            memcpy(&out[0, 0], &x[0, 0], n * m * sizeof(floating))
        bias_activation(&out[0, 0], <const floating*>NULL, <floating*>NULL, n, m,
                        activation, alpha)
    fastnn_ftz_restore(mode)


def activation_backward(const floating[:, ::1] out not None, floating[:, ::1] grad not None, int activation,
                        floating alpha=0):
    """grad[n, m]: dL/d(out) -> dL/d(x) in place, given the forward output out[n, m]."""
    cdef Py_ssize_t n = out.shape[0], m = out.shape[1]
    if n == 0 or m == 0:
        return
    cdef unsigned int mode = fastnn_ftz_on()
    with nogil:
        activation_grad_bias(&out[0, 0], &grad[0, 0], <floating*>NULL, n, m,
                             activation, alpha)
    fastnn_ftz_restore(mode)
