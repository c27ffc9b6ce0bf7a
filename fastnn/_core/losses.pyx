"""Losses with their gradient in one pass, and the accuracy counts.

Every loss returns the *sum* over samples of  weight_i * loss_i  (loss_i is the per-sample
loss, averaged over the output columns for mse and binary cross-entropy, as Keras does)
and writes  grad = d(sum_i weight_i * loss_i) / d(input) * scale. The caller passes
scale = 1 / batch_size to get the gradient of the mean batch loss. sample_weight has
length n or 0 (all ones). Shapes: (n, m) outputs/targets, (n,) integer labels.

The fused kernels (softmax / sigmoid + cross-entropy) take the logits z as well as the
activation p, compute the loss from z by log-sum-exp (never log of an underflowed
probability) and return dL/dz = p - y directly.
"""
from libc.math cimport exp, log, log1p, fabs
from libc.stdint cimport int64_t
from cython cimport floating

# Probabilities fed to a non-fused cross-entropy are clipped to [EPS, 1 - EPS] (Keras's
# backend epsilon) so that log never sees 0.
cdef double EPS = 1e-7


cdef inline double _logsumexp(const floating* z, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t j
    cdef double mx = z[0], s = 0
    for j in range(1, m):
        if z[j] > mx:
            mx = z[j]
    for j in range(m):
        s += exp(z[j] - mx)
    return mx + log(s)


cdef inline double _weight(const floating[::1] sw, Py_ssize_t i) noexcept nogil:
    return sw[i] if sw.shape[0] > 0 else 1.0


def softmax_cross_entropy(const floating[:, ::1] z not None, const floating[:, ::1] p not None,
                          const floating[:, ::1] y not None, const floating[::1] sample_weight not None,
                          floating[:, ::1] grad not None, double scale):
    """Categorical cross-entropy of softmax(z) against targets y (one-hot or soft).

    loss_i = sum_j y_ij * (lse(z_i) - z_ij);  dL/dz_ij = (sum_j y_ij) * p_ij - y_ij.
    """
    cdef Py_ssize_t n = z.shape[0], m = z.shape[1], i, j
    cdef double total = 0, lse, li, sy, w
    with nogil:
        for i in range(n):
            lse = _logsumexp(&z[i, 0], m)
            li = 0
            sy = 0
            for j in range(m):
                li += y[i, j] * (lse - z[i, j])
                sy += y[i, j]
            w = _weight(sample_weight, i)
            total += w * li
            w *= scale
            for j in range(m):
                grad[i, j] = <floating>(w * (sy * p[i, j] - y[i, j]))
    return total


def sparse_softmax_cross_entropy(const floating[:, ::1] z not None, const floating[:, ::1] p not None,
                                 const int64_t[::1] labels not None,
                                 const floating[::1] sample_weight not None,
                                 floating[:, ::1] grad not None, double scale):
    """Cross-entropy of softmax(z) against integer labels in [0, m) (checked in Python).

    loss_i = lse(z_i) - z_i[label_i];  dL/dz_ij = p_ij - [j == label_i].
    """
    cdef Py_ssize_t n = z.shape[0], m = z.shape[1], i, j, c
    cdef double total = 0, w
    with nogil:
        for i in range(n):
            c = labels[i]
            w = _weight(sample_weight, i)
            total += w * (_logsumexp(&z[i, 0], m) - z[i, c])
            w *= scale
            for j in range(m):
                grad[i, j] = <floating>(w * p[i, j])
            grad[i, c] -= <floating>w
    return total


def sigmoid_binary_cross_entropy(const floating[:, ::1] z not None, const floating[:, ::1] p not None,
                                 const floating[:, ::1] y not None,
                                 const floating[::1] sample_weight not None,
                                 floating[:, ::1] grad not None, double scale):
    """Binary cross-entropy of sigmoid(z) against y in [0, 1], averaged over columns.

    Per entry, from the logits: max(z, 0) - z*y + log(1 + exp(-|z|)), which neither
    overflows nor takes log(0). dL/dz_ij = (p_ij - y_ij) / m.
    """
    cdef Py_ssize_t n = z.shape[0], m = z.shape[1], i, j
    cdef double total = 0, li, v, w
    with nogil:
        for i in range(n):
            li = 0
            for j in range(m):
                v = z[i, j]
                li += (v if v > 0 else 0) - v * y[i, j] + log1p(exp(-fabs(v)))
            w = _weight(sample_weight, i)
            total += w * li / m
            w *= scale / m
            for j in range(m):
                grad[i, j] = <floating>(w * (p[i, j] - y[i, j]))
    return total


def mean_squared_error(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
                       const floating[::1] sample_weight not None, floating[:, ::1] grad not None,
                       double scale):
    """loss_i = mean_j (p_ij - y_ij)^2;  dL/dp_ij = 2 (p_ij - y_ij) / m."""
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i, j
    cdef double total = 0, li, d, w
    with nogil:
        for i in range(n):
            li = 0
            for j in range(m):
                d = p[i, j] - y[i, j]
                li += d * d
            w = _weight(sample_weight, i)
            total += w * li / m
            w *= 2 * scale / m
            for j in range(m):
                grad[i, j] = <floating>(w * (p[i, j] - y[i, j]))
    return total


cdef inline double _target(const floating* y, Py_ssize_t label, Py_ssize_t j) noexcept nogil:
    # A row of targets, or (y == NULL) the one-hot row of an integer label.
    if y != NULL:
        return y[j]
    return 1.0 if j == label else 0.0


cdef double _clipped_cross_entropy_row(const floating* p, const floating* y,
                                       Py_ssize_t label, Py_ssize_t m, double w,
                                       double scale, floating* grad) noexcept nogil:
    """w * loss of one row (see categorical_cross_entropy); writes the row's gradient."""
    cdef Py_ssize_t j
    cdef double s = 0, li = 0, sy = 0, q, t
    for j in range(m):
        s += p[j]
    if s < EPS:
        s = EPS
    for j in range(m):
        q = p[j] / s
        t = _target(y, label, j)
        if q < EPS:
            li -= t * log(EPS)
        elif q > 1 - EPS:
            li -= t * log(1 - EPS)
        else:
            li -= t * log(q)
            sy += t
    scale *= w / s
    for j in range(m):
        q = p[j] / s
        if EPS <= q <= 1 - EPS:
            grad[j] = <floating>(scale * (sy - _target(y, label, j) / q))
        else:
            grad[j] = <floating>(scale * sy)
    return w * li


def categorical_cross_entropy(const floating[:, ::1] p not None,
                              const floating[:, ::1] y not None,
                              const floating[::1] sample_weight not None,
                              floating[:, ::1] grad not None, double scale):
    """Cross-entropy on outputs that are not a softmax (Keras's from_logits=False path).

    Each row is normalized to sum 1, then clipped to [EPS, 1 - EPS]:
    q_ij = clip(p_ij / s_i), s_i = sum_j p_ij, loss_i = -sum_j y_ij log q_ij.
    dL/dp_ik = (sum_{j unclipped} y_ij - [k unclipped] y_ik / q_ik) / s_i.
    """
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i
    cdef double total = 0
    with nogil:
        for i in range(n):
            total += _clipped_cross_entropy_row(&p[i, 0], &y[i, 0], -1, m,
                                                _weight(sample_weight, i), scale,
                                                &grad[i, 0])
    return total


def sparse_categorical_cross_entropy(const floating[:, ::1] p not None,
                                     const int64_t[::1] labels not None,
                                     const floating[::1] sample_weight not None,
                                     floating[:, ::1] grad not None, double scale):
    """categorical_cross_entropy against integer labels in [0, m) (checked in Python):
    the one-hot targets are implied, never built."""
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i
    cdef double total = 0
    with nogil:
        for i in range(n):
            total += _clipped_cross_entropy_row(&p[i, 0], NULL, labels[i], m,
                                                _weight(sample_weight, i), scale,
                                                &grad[i, 0])
    return total


def binary_cross_entropy(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
                         const floating[::1] sample_weight not None, floating[:, ::1] grad not None,
                         double scale):
    """Binary cross-entropy on outputs that are not a sigmoid, clipped to [EPS, 1 - EPS].

    loss_i = -mean_j (y log q + (1 - y) log(1 - q)), q = clip(p);
    dL/dp_ij = (q - y) / (q (1 - q)) / m where unclipped, 0 where clipped.
    """
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i, j
    cdef double total = 0, li, q, t, w
    with nogil:
        for i in range(n):
            li = 0
            w = _weight(sample_weight, i)
            for j in range(m):
                q = p[i, j]
                t = y[i, j]
                if q < EPS or q > 1 - EPS:
                    q = EPS if q < EPS else 1 - EPS
                    grad[i, j] = 0
                else:
                    grad[i, j] = <floating>(w * scale / m * (q - t) / (q * (1 - q)))
                li -= t * log(q) + (1 - t) * log(1 - q)
            total += w * li / m
    return total


def count_correct_onehot(const floating[:, ::1] p not None, const floating[:, ::1] y not None):
    """Rows whose argmax of p equals the argmax of y (first maximum wins, as NumPy)."""
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i, j, ap, ay
    cdef Py_ssize_t hits = 0
    with nogil:
        for i in range(n):
            ap = 0
            ay = 0
            for j in range(1, m):
                if p[i, j] > p[i, ap]:
                    ap = j
                if y[i, j] > y[i, ay]:
                    ay = j
            hits += ap == ay
    return hits


def count_correct_sparse(const floating[:, ::1] p not None, const int64_t[::1] labels not None):
    """Rows whose argmax of p equals the integer label."""
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i, j, ap
    cdef Py_ssize_t hits = 0
    with nogil:
        for i in range(n):
            ap = 0
            for j in range(1, m):
                if p[i, j] > p[i, ap]:
                    ap = j
            hits += ap == labels[i]
    return hits


def count_correct_binary(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
                         double threshold=0.5):
    """Entries where (p > threshold) equals (y > threshold): Keras's binary accuracy."""
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i, j
    cdef Py_ssize_t hits = 0
    with nogil:
        for i in range(n):
            for j in range(m):
                hits += (p[i, j] > threshold) == (y[i, j] > threshold)
    return hits
