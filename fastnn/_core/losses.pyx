"""Losses with their gradient in one pass (the accuracy counts live in metrics.pyx).

Every loss returns the *sum* over samples of  weight_i * loss_i  (loss_i is the per-sample
loss, averaged over the output columns for mse and binary cross-entropy, as Keras does)
and writes  grad = d(sum_i weight_i * loss_i) / d(input) * scale. The caller passes
scale = 1 / batch_size to get the gradient of the mean batch loss. sample_weight has
length n or 0 (all ones). Shapes: (n, m) outputs/targets, (n,) integer labels.

The fused kernels (softmax / sigmoid + cross-entropy) take the logits z as well as the
activation p, compute the loss from z by log-sum-exp (never log of an underflowed
probability) and return dL/dz = p - y directly. The *_from_logits kernels serve Keras's
from_logits=True after a linear last layer: they take the logits alone and compute the
softmax / sigmoid inside the same pass.

Every kernel also takes label_smoothing where Keras's loss has it (targets become
y (1 - s) + s / m for the categorical cross-entropies, y (1 - s) + s / 2 for the binary
one; 0 leaves y as is) and per_sample: None, or a float64 (n,) array that receives each
row's unweighted loss (for the function forms and reduction=None).
"""
from libc.math cimport exp, log, log1p, fabs, sqrt, tanh
from libc.stdint cimport int64_t
from cython cimport floating

from fastnn._core.rows cimport _rows_out

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


cdef inline double _target(const floating* y, Py_ssize_t label, Py_ssize_t j) noexcept nogil:
    # A row of targets, or (y == NULL) the one-hot row of an integer label.
    if y != NULL:
        return y[j]
    return 1.0 if j == label else 0.0


cdef inline double _weight(const floating[::1] sw, Py_ssize_t i) noexcept nogil:
    return sw[i] if sw.shape[0] > 0 else 1.0


cdef inline void _keep(double* per_sample, Py_ssize_t i, double li) noexcept nogil:
    if per_sample != NULL:
        per_sample[i] = li


cdef inline double _smoothed(const floating* y, Py_ssize_t label, Py_ssize_t j,
                             double keep, double add) noexcept nogil:
    # Target j of a row (or of an integer label's one-hot row) after label smoothing.
    return keep * _target(y, label, j) + add


# ------------------------------------------------------------ cross-entropies --

cdef double _softmax_cross_entropy_row(const floating* z, const floating* p,
                                       const floating* y, Py_ssize_t label, Py_ssize_t m,
                                       double keep, double add, double gscale,
                                       floating* grad) noexcept nogil:
    """Cross-entropy of softmax(z) for one row; p = softmax(z), or NULL to compute it
    here (from_logits). Writes gscale * dL/dz. loss = sum_j t_j (lse - z_j),
    dL/dz_j = (sum_j t_j) softmax_j - t_j."""
    cdef Py_ssize_t j
    cdef double lse = _logsumexp(z, m), li = 0, st = 0, t, q
    for j in range(m):
        t = _smoothed(y, label, j, keep, add)
        li += t * (lse - z[j])
        st += t
    for j in range(m):
        q = p[j] if p != NULL else exp(z[j] - lse)
        grad[j] = <floating>(gscale * (st * q - _smoothed(y, label, j, keep, add)))
    return li


cdef double softmax_cross_entropy_core(const floating* z, const floating* p,
                                       const floating* y, const int64_t* labels,
                                       const floating* sample_weight, Py_ssize_t n,
                                       Py_ssize_t m, double label_smoothing, double scale,
                                       floating* grad, double* per_sample) noexcept nogil:
    """Σᵢ wᵢ·lossᵢ of softmax(z) (z, grad: (n, m)) against target rows y (n, m), or, when
    y is NULL, integer labels (n,) in [0, m). p = softmax(z) (NULL: computed here, for
    from_logits). sample_weight (n,) or NULL (all ones); per_sample (n,) or NULL. Writes
    grad = scale·wᵢ·dlossᵢ/dz."""
    cdef Py_ssize_t i
    cdef double total = 0, li, w, keep = 1 - label_smoothing, add = label_smoothing / m
    for i in range(n):
        w = sample_weight[i] if sample_weight != NULL else 1.0
        li = _softmax_cross_entropy_row(z + i * m, p + i * m if p != NULL else NULL,
                                        y + i * m if y != NULL else NULL,
                                        labels[i] if y == NULL else -1, m, keep, add,
                                        w * scale, grad + i * m)
        total += w * li
        _keep(per_sample, i, li)
    return total


cdef inline const floating* _weights_or_null(const floating[::1] sw) noexcept nogil:
    return &sw[0] if sw.shape[0] > 0 else NULL


def softmax_cross_entropy(const floating[:, ::1] z not None, const floating[:, ::1] p not None,
                          const floating[:, ::1] y not None, const floating[::1] sample_weight not None,
                          floating[:, ::1] grad not None, double scale,
                          double label_smoothing=0.0, per_sample=None):
    """Categorical cross-entropy of softmax(z) (p) against targets y (one-hot or soft).

    loss_i = sum_j t_ij * (lse(z_i) - z_ij);  dL/dz_ij = (sum_j t_ij) * p_ij - t_ij.
    """
    cdef Py_ssize_t n = z.shape[0], m = z.shape[1]
    cdef double total = 0
    cdef double* out = _rows_out(per_sample, n)
    if n == 0:
        return 0.0
    with nogil:
        total = softmax_cross_entropy_core(&z[0, 0], &p[0, 0], &y[0, 0], <const int64_t*>NULL,
                                           _weights_or_null(sample_weight), n, m,
                                           label_smoothing, scale, &grad[0, 0], out)
    return total


def sparse_softmax_cross_entropy(const floating[:, ::1] z not None, const floating[:, ::1] p not None,
                                 const int64_t[::1] labels not None,
                                 const floating[::1] sample_weight not None,
                                 floating[:, ::1] grad not None, double scale, per_sample=None):
    """Cross-entropy of softmax(z) (p) against integer labels in [0, m) (checked in Python).

    loss_i = lse(z_i) - z_i[label_i];  dL/dz_ij = p_ij - [j == label_i].
    """
    cdef Py_ssize_t n = z.shape[0], m = z.shape[1]
    cdef double total = 0
    cdef double* out = _rows_out(per_sample, n)
    if n == 0:
        return 0.0
    with nogil:
        total = softmax_cross_entropy_core(&z[0, 0], &p[0, 0], <const floating*>NULL,
                                           &labels[0], _weights_or_null(sample_weight), n,
                                           m, 0.0, scale, &grad[0, 0], out)
    return total


def cross_entropy_from_logits(const floating[:, ::1] z not None,
                              const floating[:, ::1] y not None,
                              const floating[::1] sample_weight not None,
                              floating[:, ::1] grad not None, double scale,
                              double label_smoothing=0.0, per_sample=None):
    """softmax_cross_entropy for from_logits=True: the softmax is computed here from z
    (the output of a linear layer); same loss and dL/dz."""
    cdef Py_ssize_t n = z.shape[0], m = z.shape[1]
    cdef double total = 0
    cdef double* out = _rows_out(per_sample, n)
    if n == 0:
        return 0.0
    with nogil:
        total = softmax_cross_entropy_core(&z[0, 0], <const floating*>NULL, &y[0, 0],
                                           <const int64_t*>NULL,
                                           _weights_or_null(sample_weight), n, m,
                                           label_smoothing, scale, &grad[0, 0], out)
    return total


def sparse_cross_entropy_from_logits(const floating[:, ::1] z not None,
                                     const int64_t[::1] labels not None,
                                     const floating[::1] sample_weight not None,
                                     floating[:, ::1] grad not None, double scale,
                                     per_sample=None):
    """sparse_softmax_cross_entropy for from_logits=True (softmax computed here)."""
    cdef Py_ssize_t n = z.shape[0], m = z.shape[1]
    cdef double total = 0
    cdef double* out = _rows_out(per_sample, n)
    if n == 0:
        return 0.0
    with nogil:
        total = softmax_cross_entropy_core(&z[0, 0], <const floating*>NULL,
                                           <const floating*>NULL, &labels[0],
                                           _weights_or_null(sample_weight), n, m, 0.0,
                                           scale, &grad[0, 0], out)
    return total


cdef inline double _sigmoid(double v) noexcept nogil:
    # Never exp of a large positive number: no overflow, no 0/0.
    cdef double e
    if v >= 0:
        return 1.0 / (1.0 + exp(-v))
    e = exp(v)
    return e / (1.0 + e)


cdef double _sigmoid_cross_entropy_row(const floating* z, const floating* p,
                                       const floating* y, Py_ssize_t m, double keep,
                                       double add, double gscale,
                                       floating* grad) noexcept nogil:
    """Sum over the row of the binary cross-entropy of sigmoid(z) from the logits,
    max(z, 0) - z t + log(1 + exp(-|z|)); p = sigmoid(z) or NULL to compute it here.
    Writes gscale * (p - t)."""
    cdef Py_ssize_t j
    cdef double li = 0, v, t, q
    for j in range(m):
        v = z[j]
        t = keep * y[j] + add
        li += (v if v > 0 else 0) - v * t + log1p(exp(-fabs(v)))
        q = p[j] if p != NULL else _sigmoid(v)
        grad[j] = <floating>(gscale * (q - t))
    return li


def sigmoid_binary_cross_entropy(const floating[:, ::1] z not None, const floating[:, ::1] p not None,
                                 const floating[:, ::1] y not None,
                                 const floating[::1] sample_weight not None,
                                 floating[:, ::1] grad not None, double scale,
                                 double label_smoothing=0.0, per_sample=None):
    """Binary cross-entropy of sigmoid(z) (p) against y in [0, 1], averaged over columns.

    Per entry, from the logits: max(z, 0) - z*t + log(1 + exp(-|z|)), which neither
    overflows nor takes log(0). dL/dz_ij = (p_ij - t_ij) / m.
    """
    cdef Py_ssize_t n = z.shape[0], m = z.shape[1], i
    cdef double total = 0, li, w, keep = 1 - label_smoothing, add = label_smoothing / 2
    cdef double* out = _rows_out(per_sample, n)
    with nogil:
        for i in range(n):
            w = _weight(sample_weight, i)
            li = _sigmoid_cross_entropy_row(&z[i, 0], &p[i, 0], &y[i, 0], m, keep, add,
                                            w * scale / m, &grad[i, 0]) / m
            total += w * li
            _keep(out, i, li)
    return total


def binary_cross_entropy_from_logits(const floating[:, ::1] z not None,
                                     const floating[:, ::1] y not None,
                                     const floating[::1] sample_weight not None,
                                     floating[:, ::1] grad not None, double scale,
                                     double label_smoothing=0.0, per_sample=None):
    """sigmoid_binary_cross_entropy for from_logits=True (sigmoid computed here)."""
    cdef Py_ssize_t n = z.shape[0], m = z.shape[1], i
    cdef double total = 0, li, w, keep = 1 - label_smoothing, add = label_smoothing / 2
    cdef double* out = _rows_out(per_sample, n)
    with nogil:
        for i in range(n):
            w = _weight(sample_weight, i)
            li = _sigmoid_cross_entropy_row(&z[i, 0], <const floating*>NULL, &y[i, 0], m,
                                            keep, add, w * scale / m, &grad[i, 0]) / m
            total += w * li
            _keep(out, i, li)
    return total


cdef double _clipped_cross_entropy_row(const floating* p, const floating* y,
                                       Py_ssize_t label, Py_ssize_t m, double keep,
                                       double add, double gscale,
                                       floating* grad) noexcept nogil:
    """The loss of one row (see categorical_cross_entropy); writes gscale * dL/dp."""
    cdef Py_ssize_t j
    cdef double s = 0, li = 0, sy = 0, q, t
    for j in range(m):
        s += p[j]
    if s < EPS:
        s = EPS
    for j in range(m):
        q = p[j] / s
        t = _smoothed(y, label, j, keep, add)
        if q < EPS:
            li -= t * log(EPS)
        elif q > 1 - EPS:
            li -= t * log(1 - EPS)
        else:
            li -= t * log(q)
            sy += t
    gscale /= s
    for j in range(m):
        q = p[j] / s
        if EPS <= q <= 1 - EPS:
            grad[j] = <floating>(gscale * (sy - _smoothed(y, label, j, keep, add) / q))
        else:
            grad[j] = <floating>(gscale * sy)
    return li


def categorical_cross_entropy(const floating[:, ::1] p not None,
                              const floating[:, ::1] y not None,
                              const floating[::1] sample_weight not None,
                              floating[:, ::1] grad not None, double scale,
                              double label_smoothing=0.0, per_sample=None):
    """Cross-entropy on outputs that are not a softmax (Keras's from_logits=False path).

    Each row is normalized to sum 1, then clipped to [EPS, 1 - EPS]:
    q_ij = clip(p_ij / s_i), s_i = sum_j p_ij, loss_i = -sum_j t_ij log q_ij.
    dL/dp_ik = (sum_{j unclipped} t_ij - [k unclipped] t_ik / q_ik) / s_i.
    """
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i
    cdef double total = 0, li, w, keep = 1 - label_smoothing, add = label_smoothing / m
    cdef double* out = _rows_out(per_sample, n)
    with nogil:
        for i in range(n):
            w = _weight(sample_weight, i)
            li = _clipped_cross_entropy_row(&p[i, 0], &y[i, 0], -1, m, keep, add, w * scale,
                                            &grad[i, 0])
            total += w * li
            _keep(out, i, li)
    return total


def sparse_categorical_cross_entropy(const floating[:, ::1] p not None,
                                     const int64_t[::1] labels not None,
                                     const floating[::1] sample_weight not None,
                                     floating[:, ::1] grad not None, double scale,
                                     per_sample=None):
    """categorical_cross_entropy against integer labels in [0, m) (checked in Python):
    the one-hot targets are implied, never built."""
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i
    cdef double total = 0, li, w
    cdef double* out = _rows_out(per_sample, n)
    with nogil:
        for i in range(n):
            w = _weight(sample_weight, i)
            li = _clipped_cross_entropy_row(&p[i, 0], <const floating*>NULL, labels[i], m,
                                            1.0, 0.0, w * scale, &grad[i, 0])
            total += w * li
            _keep(out, i, li)
    return total


def binary_cross_entropy(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
                         const floating[::1] sample_weight not None, floating[:, ::1] grad not None,
                         double scale, double label_smoothing=0.0, per_sample=None):
    """Binary cross-entropy on outputs that are not a sigmoid, clipped to [EPS, 1 - EPS].

    loss_i = -mean_j (t log q + (1 - t) log(1 - q)), q = clip(p);
    dL/dp_ij = (q - t) / (q (1 - q)) / m where unclipped, 0 where clipped.
    """
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i, j
    cdef double total = 0, li, q, t, w, keep = 1 - label_smoothing, add = label_smoothing / 2
    cdef double* out = _rows_out(per_sample, n)
    with nogil:
        for i in range(n):
            li = 0
            w = _weight(sample_weight, i)
            for j in range(m):
                q = p[i, j]
                t = keep * y[i, j] + add
                if q < EPS or q > 1 - EPS:
                    q = EPS if q < EPS else 1 - EPS
                    grad[i, j] = 0
                else:
                    grad[i, j] = <floating>(w * scale / m * (q - t) / (q * (1 - q)))
                li -= t * log(q) + (1 - t) * log(1 - q)
            total += w * li / m
            _keep(out, i, li / m)
    return total


# ------------------------------------------------------- element-wise losses --
# loss_i = factor * sum_j f(p_ij, y_ij): each f returns its value and writes df/dp.
# The constant `a` is the loss's parameter (Huber's delta; for the hinges, whether the
# batch's {0, 1} labels are read as {-1, 1}).

ctypedef double (*elementwise_loss)(double p, double t, double a,
                                    double* d) noexcept nogil


cdef inline double _sign(double v) noexcept nogil:
    return (v > 0) - (v < 0)


cdef double _squared(double p, double t, double a, double* d) noexcept nogil:
    d[0] = 2 * (p - t)
    return (p - t) * (p - t)


cdef double _absolute(double p, double t, double a, double* d) noexcept nogil:
    d[0] = _sign(p - t)
    return fabs(p - t)


cdef double _absolute_percentage(double p, double t, double a, double* d) noexcept nogil:
    # Keras: |t - p| / max(|t|, EPS) (times 100, in the factor)
    cdef double den = fabs(t) if fabs(t) > EPS else EPS
    d[0] = _sign(p - t) / den
    return fabs(t - p) / den


cdef double _squared_log(double p, double t, double a, double* d) noexcept nogil:
    # Keras: (log(max(p, EPS) + 1) - log(max(t, EPS) + 1))^2
    cdef double pp = p if p > EPS else EPS, tt = t if t > EPS else EPS
    cdef double e = log1p(pp) - log1p(tt)
    d[0] = 2 * e / (1 + pp) if p >= EPS else 0.0
    return e * e


cdef double _huber(double p, double t, double a, double* d) noexcept nogil:
    cdef double e = p - t
    if fabs(e) <= a:
        d[0] = e
        return 0.5 * e * e
    d[0] = a * _sign(e)
    return a * fabs(e) - 0.5 * a * a


cdef double _log_cosh(double p, double t, double a, double* d) noexcept nogil:
    # log(cosh(x)) = |x| + log1p(exp(-2|x|)) - log 2: never overflows (Keras writes the
    # same as x + softplus(-2x) - log 2).
    cdef double x = p - t, ax = fabs(x)
    d[0] = tanh(x)
    return ax + log1p(exp(-2 * ax)) - 0.6931471805599453


cdef double _poisson(double p, double t, double a, double* d) noexcept nogil:
    # Keras: p - t log(p + EPS)
    d[0] = 1 - t / (p + EPS)
    return p - t * log(p + EPS)


cdef double _kl_divergence(double p, double t, double a, double* d) noexcept nogil:
    # Keras clips both to [EPS, 1]: t log(t / p); the clip stops the gradient.
    cdef double tt = t if t > EPS else EPS, pp = p if p > EPS else EPS
    if tt > 1:
        tt = 1
    if pp > 1:
        pp = 1
    d[0] = -tt / pp if EPS <= p <= 1 else 0.0
    return tt * log(tt / pp)


cdef inline double _hinge_label(double t, double a) noexcept nogil:
    return 2 * t - 1 if a != 0 else t


cdef double _hinge(double p, double t, double a, double* d) noexcept nogil:
    cdef double tt = _hinge_label(t, a), h = 1 - tt * p
    if h > 0:
        d[0] = -tt
        return h
    d[0] = 0
    return 0


cdef double _squared_hinge(double p, double t, double a, double* d) noexcept nogil:
    cdef double tt = _hinge_label(t, a), h = 1 - tt * p
    if h > 0:
        d[0] = -2 * tt * h
        return h * h
    d[0] = 0
    return 0


cdef double _elementwise(const floating[:, ::1] p, const floating[:, ::1] y,
                         const floating[::1] sample_weight, floating[:, ::1] grad,
                         double scale, elementwise_loss f, double a, double factor,
                         double* out) noexcept nogil:
    """sum_i w_i loss_i with loss_i = factor * sum_j f(p_ij, y_ij); writes
    grad = scale * w_i * factor * df/dp and (out != NULL) each loss_i."""
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i, j
    cdef double total = 0, li, w, g, d
    for i in range(n):
        w = _weight(sample_weight, i)
        g = w * scale * factor
        li = 0
        for j in range(m):
            li += f(p[i, j], y[i, j], a, &d)
            grad[i, j] = <floating>(g * d)
        li *= factor
        total += w * li
        _keep(out, i, li)
    return total


def mean_squared_error(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
                       const floating[::1] sample_weight not None, floating[:, ::1] grad not None,
                       double scale, per_sample=None):
    """loss_i = mean_j (p_ij - y_ij)^2;  dL/dp_ij = 2 (p_ij - y_ij) / m."""
    cdef double* out = _rows_out(per_sample, p.shape[0])
    cdef double total
    with nogil:
        total = _elementwise(p, y, sample_weight, grad, scale, _squared, 0.0,
                                1.0 / p.shape[1], out)
    return total


def mean_absolute_error(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
                        const floating[::1] sample_weight not None,
                        floating[:, ::1] grad not None, double scale, per_sample=None):
    """loss_i = mean_j |p_ij - y_ij|;  dL/dp_ij = sign(p_ij - y_ij) / m (0 where equal)."""
    cdef double* out = _rows_out(per_sample, p.shape[0])
    cdef double total
    with nogil:
        total = _elementwise(p, y, sample_weight, grad, scale, _absolute, 0.0,
                                1.0 / p.shape[1], out)
    return total


def mean_absolute_percentage_error(const floating[:, ::1] p not None,
                                   const floating[:, ::1] y not None,
                                   const floating[::1] sample_weight not None,
                                   floating[:, ::1] grad not None, double scale,
                                   per_sample=None):
    """loss_i = 100 mean_j |y_ij - p_ij| / max(|y_ij|, EPS);
    dL/dp_ij = 100 sign(p_ij - y_ij) / max(|y_ij|, EPS) / m."""
    cdef double* out = _rows_out(per_sample, p.shape[0])
    cdef double total
    with nogil:
        total = _elementwise(p, y, sample_weight, grad, scale, _absolute_percentage, 0.0,
                                100.0 / p.shape[1], out)
    return total


def mean_squared_logarithmic_error(const floating[:, ::1] p not None,
                                   const floating[:, ::1] y not None,
                                   const floating[::1] sample_weight not None,
                                   floating[:, ::1] grad not None, double scale,
                                   per_sample=None):
    """loss_i = mean_j (log(1 + max(p, EPS)) - log(1 + max(y, EPS)))^2;
    dL/dp = 2 (difference) / (1 + p) / m where p >= EPS, else 0."""
    cdef double* out = _rows_out(per_sample, p.shape[0])
    cdef double total
    with nogil:
        total = _elementwise(p, y, sample_weight, grad, scale, _squared_log, 0.0,
                                1.0 / p.shape[1], out)
    return total


def huber(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
          const floating[::1] sample_weight not None, floating[:, ::1] grad not None,
          double scale, double delta, per_sample=None):
    """loss_i = mean_j h(p_ij - y_ij), h(e) = e^2 / 2 for |e| <= delta, else
    delta (|e| - delta / 2);  dh/de = e, or delta sign(e)."""
    cdef double* out = _rows_out(per_sample, p.shape[0])
    cdef double total
    with nogil:
        total = _elementwise(p, y, sample_weight, grad, scale, _huber, delta,
                                1.0 / p.shape[1], out)
    return total


def log_cosh(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
             const floating[::1] sample_weight not None, floating[:, ::1] grad not None,
             double scale, per_sample=None):
    """loss_i = mean_j log(cosh(p_ij - y_ij));  dL/dp_ij = tanh(p_ij - y_ij) / m."""
    cdef double* out = _rows_out(per_sample, p.shape[0])
    cdef double total
    with nogil:
        total = _elementwise(p, y, sample_weight, grad, scale, _log_cosh, 0.0,
                                1.0 / p.shape[1], out)
    return total


def poisson(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
            const floating[::1] sample_weight not None, floating[:, ::1] grad not None,
            double scale, per_sample=None):
    """loss_i = mean_j (p_ij - y_ij log(p_ij + EPS));  dL/dp = (1 - y / (p + EPS)) / m."""
    cdef double* out = _rows_out(per_sample, p.shape[0])
    cdef double total
    with nogil:
        total = _elementwise(p, y, sample_weight, grad, scale, _poisson, 0.0,
                                1.0 / p.shape[1], out)
    return total


def kl_divergence(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
                  const floating[::1] sample_weight not None, floating[:, ::1] grad not None,
                  double scale, per_sample=None):
    """loss_i = sum_j t log(t / q), t = clip(y, EPS, 1), q = clip(p, EPS, 1) (a sum over
    the row, as Keras); dL/dp = -t / q where p is in [EPS, 1], else 0."""
    cdef double* out = _rows_out(per_sample, p.shape[0])
    cdef double total
    with nogil:
        total = _elementwise(p, y, sample_weight, grad, scale, _kl_divergence, 0.0, 1.0, out)
    return total


cdef bint _all_binary(const floating[:, ::1] y) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            if y[i, j] != 0 and y[i, j] != 1:
                return False
    return True


def hinge(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
          const floating[::1] sample_weight not None, floating[:, ::1] grad not None,
          double scale, per_sample=None):
    """loss_i = mean_j max(1 - t_ij p_ij, 0), t = y in {-1, 1}; as Keras, when every
    label of the batch is 0 or 1 they are read as t = 2 y - 1. dL/dp = -t / m where the
    margin is violated, else 0."""
    cdef double* out = _rows_out(per_sample, p.shape[0])
    cdef double total
    with nogil:
        total = _elementwise(p, y, sample_weight, grad, scale, _hinge, _all_binary(y),
                                1.0 / p.shape[1], out)
    return total


def squared_hinge(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
                  const floating[::1] sample_weight not None, floating[:, ::1] grad not None,
                  double scale, per_sample=None):
    """loss_i = mean_j max(1 - t_ij p_ij, 0)^2 (labels as in hinge);
    dL/dp = -2 t max(1 - t p, 0) / m."""
    cdef double* out = _rows_out(per_sample, p.shape[0])
    cdef double total
    with nogil:
        total = _elementwise(p, y, sample_weight, grad, scale, _squared_hinge,
                                _all_binary(y), 1.0 / p.shape[1], out)
    return total


# ------------------------------------------------------------- row losses --

cdef double _categorical_hinge_row(const floating* p, const floating* y, Py_ssize_t m,
                                   double gscale, floating* grad) noexcept nogil:
    """max(neg - pos + 1, 0), pos = sum_j y_j p_j, neg = max_j (1 - y_j) p_j (the first
    maximum takes the gradient)."""
    cdef Py_ssize_t j, k = 0
    cdef double pos = 0, neg = (1 - <double>y[0]) * p[0], v, li
    for j in range(m):
        pos += <double>y[j] * p[j]
        v = (1 - <double>y[j]) * p[j]
        if v > neg:
            neg = v
            k = j
    li = neg - pos + 1
    if li <= 0:
        for j in range(m):
            grad[j] = 0
        return 0
    for j in range(m):
        grad[j] = <floating>(-gscale * y[j])
    grad[k] = <floating>(gscale * (1 - y[k] - y[k]))
    return li


def categorical_hinge(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
                      const floating[::1] sample_weight not None,
                      floating[:, ::1] grad not None, double scale, per_sample=None):
    """loss_i = max(max_j (1 - y_ij) p_ij - sum_j y_ij p_ij + 1, 0) (one-hot y);
    dL/dp_ij = -y_ij + [j = k] (1 - y_ik) where the loss is positive, k the argmax."""
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i
    cdef double total = 0, li, w
    cdef double* out = _rows_out(per_sample, n)
    with nogil:
        for i in range(n):
            w = _weight(sample_weight, i)
            li = _categorical_hinge_row(&p[i, 0], &y[i, 0], m, w * scale, &grad[i, 0])
            total += w * li
            _keep(out, i, li)
    return total


cdef inline double _inverse_norm(double squares) noexcept nogil:
    # Keras's l2 normalization: x * min(1 / sqrt(sum x^2), 1 / EPS)
    if squares > EPS * EPS:
        return 1 / sqrt(squares)
    return 1 / EPS


cdef double _cosine_similarity_row(const floating* p, const floating* y, Py_ssize_t m,
                                   double gscale, floating* grad) noexcept nogil:
    """-(y / |y|) . (p / |p|). With a = 1/|y|, b = 1/|p| (unclipped), c = y . p:
    dL/dp_j = -a b y_j + a c b^3 p_j; where |p| < EPS, b = 1/EPS is a constant."""
    cdef Py_ssize_t j
    cdef double syy = 0, spp = 0, c = 0, a, b, bb
    cdef double pj, yj
    for j in range(m):
        pj = p[j]
        yj = y[j]
        syy += yj * yj
        spp += pj * pj
        c += yj * pj
    a = _inverse_norm(syy)
    b = _inverse_norm(spp)
    bb = b * b * b if spp > EPS * EPS else 0.0
    for j in range(m):
        grad[j] = <floating>(gscale * a * (c * bb * <double>p[j] - b * <double>y[j]))
    return -a * b * c


def cosine_similarity(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
                      const floating[::1] sample_weight not None,
                      floating[:, ::1] grad not None, double scale, per_sample=None):
    """loss_i = -cos(y_i, p_i) over the output columns (Keras's normalization: 1/|x|
    capped at 1/EPS, so a zero row gives 0)."""
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i
    cdef double total = 0, li, w
    cdef double* out = _rows_out(per_sample, n)
    with nogil:
        for i in range(n):
            w = _weight(sample_weight, i)
            li = _cosine_similarity_row(&p[i, 0], &y[i, 0], m, w * scale, &grad[i, 0])
            total += w * li
            _keep(out, i, li)
    return total


# The accuracy counts moved to metrics.pyx; these names stay for existing callers.
from fastnn._core.metrics import count_correct_onehot, count_correct_sparse, count_correct_binary
