"""Normalization kernels: batch normalization (statistics of each feature over the batch)
and layer normalization (statistics of each sample over its features), forward and
backward, each one call with the GIL released.

Both compute out = (x - mean) * inv * gamma + beta with inv = 1 / sqrt(var + eps), var the
biased variance (the mean of squared deviations, as Keras). Means and variances are
accumulated in double, in two passes (mean, then squared deviations: no cancellation), in
float and double models alike.

Backward, with xhat = (x - mean) * inv and dy = dL/d(out), over the k values that share
one mean and variance (the batch rows for batch norm, a row's features for layer norm):
    dgamma = sum dy * xhat,  dbeta = sum dy,
    dx = gamma * inv * (dy - mean(dy) - xhat * mean(dy * xhat))      (batch statistics)
    dx = gamma * inv * dy            (batch norm at inference: fixed moving statistics)
dgamma and dbeta of layer norm sum over the rows of the batch.

Shapes: x, out, grad_out (n, m); gamma, beta (m,). All arrays C-contiguous, n, m >= 1.
"""
from libc.math cimport fabs, sqrt
from libc.string cimport memset
from cython cimport floating

from fastnn._core.fpmode cimport fastnn_ftz_on, fastnn_ftz_restore


# -------------------------------------------------------------- batch normalization --

cdef void batch_moments(const floating* x, Py_ssize_t n, Py_ssize_t m, double* acc,
                        floating* mean, floating* var) noexcept nogil:
    """mean[j], var[j] of column j of x (n, m); acc: 2m doubles of scratch."""
    cdef Py_ssize_t i, j
    cdef double d
    cdef double* s = acc
    cdef double* q = acc + m
    memset(acc, 0, 2 * m * sizeof(double))
    for i in range(n):
        for j in range(m):
            s[j] += x[i * m + j]
    for j in range(m):
        s[j] /= n
    for i in range(n):
        for j in range(m):
            d = x[i * m + j] - s[j]
            q[j] += d * d
    for j in range(m):
        mean[j] = <floating>s[j]
        var[j] = <floating>(q[j] / n)


cdef void normalize_columns(const floating* x, const floating* gamma, const floating* beta,
                            const floating* mean, const floating* inv, floating* out,
                            Py_ssize_t n, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in range(n):
        for j in range(m):
            out[i * m + j] = (x[i * m + j] - mean[j]) * inv[j] * gamma[j] + beta[j]


def batch_norm_forward(const floating[:, ::1] x not None, const floating[::1] gamma not None,
                       const floating[::1] beta not None,
                       const floating[::1] moving_mean not None,
                       const floating[::1] moving_var not None, floating[:, ::1] out not None,
                       floating[::1] mean not None, floating[::1] var not None,
                       floating[::1] inv not None, double[::1] acc not None, double epsilon,
                       bint training):
    """Batch normalization of x (n, m) into out.

    training: normalize with the batch's statistics, written to mean and var (m,) (for
    backward and for the moving averages); otherwise with moving_mean and moving_var,
    copied to mean and var. inv (m,) = 1 / sqrt(var + epsilon) either way. acc: 2m doubles.
    """
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], j
    cdef unsigned int mode = fastnn_ftz_on()
    with nogil:
        if training:
            batch_moments(&x[0, 0], n, m, &acc[0], &mean[0], &var[0])
        else:
            for j in range(m):
                mean[j] = moving_mean[j]
                var[j] = moving_var[j]
        for j in range(m):
            inv[j] = <floating>(1.0 / sqrt(<double>var[j] + epsilon))
        normalize_columns(&x[0, 0], &gamma[0], &beta[0], &mean[0], &inv[0], &out[0, 0], n, m)
    fastnn_ftz_restore(mode)


def batch_norm_backward(const floating[:, ::1] x not None, const floating[::1] gamma not None,
                        const floating[::1] mean not None, const floating[::1] inv not None,
                        floating[:, ::1] grad_out not None, floating[::1] grad_gamma not None,
                        floating[::1] grad_beta not None, double[::1] acc not None,
                        bint training, bint need_grad_x):
    """Backward of batch_norm_forward (mean, inv as it wrote them).

    grad_out (n, m): dL/d(out); overwritten with dL/dx when need_grad_x. Fills grad_gamma
    and grad_beta (m,). training: the forward used the batch's statistics (their own
    gradient is then part of dx).
    """
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], i, j
    cdef double* sg = &acc[0]
    cdef double* sb = &acc[m]
    cdef floating dy, xhat
    cdef unsigned int mode = fastnn_ftz_on()
    with nogil:
        memset(sg, 0, 2 * m * sizeof(double))
        for i in range(n):
            for j in range(m):
                dy = grad_out[i, j]
                sg[j] += dy * ((x[i, j] - mean[j]) * inv[j])
                sb[j] += dy
        for j in range(m):
            grad_gamma[j] = <floating>sg[j]
            grad_beta[j] = <floating>sb[j]
            sg[j] /= n
            sb[j] /= n
        if need_grad_x:
            for i in range(n):
                for j in range(m):
                    if training:
                        xhat = (x[i, j] - mean[j]) * inv[j]
                        grad_out[i, j] = gamma[j] * inv[j] * (
                            grad_out[i, j] - <floating>sb[j] - xhat * <floating>sg[j])
                    else:
                        grad_out[i, j] = gamma[j] * inv[j] * grad_out[i, j]
    fastnn_ftz_restore(mode)


def batch_norm_update(floating[::1] moving_mean not None, floating[::1] moving_var not None,
                      const floating[::1] mean not None, const floating[::1] var not None,
                      double momentum):
    """Keras's moving averages: moving = moving * momentum + batch * (1 - momentum), in the
    model's dtype (momentum and 1 - momentum rounded to it, as Keras's ops do)."""
    cdef Py_ssize_t j, m = moving_mean.shape[0]
    cdef floating keep = <floating>momentum, take = <floating>(1.0 - momentum)
    with nogil:
        for j in range(m):
            moving_mean[j] = moving_mean[j] * keep + mean[j] * take
            moving_var[j] = moving_var[j] * keep + var[j] * take


# -------------------------------------------------------------- layer normalization --

def layer_norm_forward(const floating[:, ::1] x not None, const floating[::1] gamma not None,
                       const floating[::1] beta not None, floating[:, ::1] out not None,
                       floating[:, ::1] mean not None, floating[:, ::1] inv not None,
                       double epsilon):
    """Layer normalization of each row of x (n, m) into out; writes each row's mean and
    inv = 1 / sqrt(var + epsilon) to mean and inv (n, 1) for backward."""
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], i, j
    cdef double s, q, d, mu
    cdef floating mu_f, inv_f
    cdef unsigned int mode = fastnn_ftz_on()
    with nogil:
        for i in range(n):
            s = 0
            for j in range(m):
                s += x[i, j]
            mu = s / m
            q = 0
            for j in range(m):
                d = x[i, j] - mu
                q += d * d
            mu_f = <floating>mu
            inv_f = <floating>(1.0 / sqrt(q / m + epsilon))
            mean[i, 0] = mu_f
            inv[i, 0] = inv_f
            for j in range(m):
                out[i, j] = (x[i, j] - mu_f) * inv_f * gamma[j] + beta[j]
    fastnn_ftz_restore(mode)


def layer_norm_backward(const floating[:, ::1] x not None, const floating[::1] gamma not None,
                        const floating[:, ::1] mean not None, const floating[:, ::1] inv not None,
                        floating[:, ::1] grad_out not None, floating[::1] grad_gamma not None,
                        floating[::1] grad_beta not None, double[::1] acc not None,
                        bint need_grad_x):
    """Backward of layer_norm_forward. grad_out (n, m): dL/d(out), overwritten with dL/dx
    when need_grad_x. Fills grad_gamma and grad_beta (m,) (sums over the rows); acc: 2m
    doubles of scratch."""
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], i, j
    cdef double* sg = &acc[0]
    cdef double* sb = &acc[m]
    cdef double a, b
    cdef floating dy, xhat, g, mean_g, mean_gx
    cdef unsigned int mode = fastnn_ftz_on()
    with nogil:
        memset(sg, 0, 2 * m * sizeof(double))
        for i in range(n):
            a = 0
            b = 0
            for j in range(m):
                dy = grad_out[i, j]
                xhat = (x[i, j] - mean[i, 0]) * inv[i, 0]
                sg[j] += dy * xhat
                sb[j] += dy
                g = dy * gamma[j]
                a += g
                b += g * xhat
            if need_grad_x:
                mean_g = <floating>(a / m)
                mean_gx = <floating>(b / m)
                for j in range(m):
                    xhat = (x[i, j] - mean[i, 0]) * inv[i, 0]
                    grad_out[i, j] = inv[i, 0] * (grad_out[i, j] * gamma[j] - mean_g
                                                  - xhat * mean_gx)
        for j in range(m):
            grad_gamma[j] = <floating>sg[j]
            grad_beta[j] = <floating>sb[j]
    fastnn_ftz_restore(mode)


# ------------------------------------------------------------------- regularization --

def add_penalty_gradient(const floating[::1] w not None, floating[::1] grad not None,
                         double l1, double l2):
    """grad += l1 · sign(w) + 2 · l2 · w (the gradient of gamma_/beta_regularizer);
    returns the penalty l1 · Σ|w| + l2 · Σw²."""
    cdef Py_ssize_t i
    cdef double s1 = 0, s2 = 0, v
    cdef floating a = <floating>l1, b = <floating>(2 * l2)
    with nogil:
        for i in range(w.shape[0]):
            v = w[i]
            s1 += fabs(v)
            s2 += v * v
            grad[i] += b * w[i] + (a if w[i] > 0 else (-a if w[i] < 0 else 0))
    return l1 * s1 + l2 * s2
