"""scikit-learn's Poisson loss on a log link, with its gradient in one pass.

MLPRegressor(loss='poisson') predicts mu = exp(z) from a linear last layer z and minimizes
half the Poisson deviance, as scikit-learn writes it (constant term included):
    loss_i = sum_j  xlogy(y_ij, y_ij) - y_ij z_ij - y_ij + exp(z_ij),
    dloss_i / dz_ij = exp(z_ij) - y_ij.
Same conventions as fastnn/_core/losses.pyx: returns the sum over samples of
weight_i * loss_i and writes grad = weight_i * dloss_i/dz * scale; sample_weight has
length n or 0 (all ones).
"""
from libc.math cimport exp, log
from cython cimport floating


cdef double poisson_log_link_core(const floating* z, const floating* y,
                                  const floating* sw, Py_ssize_t n, Py_ssize_t m,
                                  floating* grad, double scale, double* per_sample
                                  ) noexcept nogil:
    """z, y, grad: row-major (n, m); sw: (n,) or NULL (all ones); per_sample: (n,)
    receiving each row's unweighted loss, or NULL."""
    cdef Py_ssize_t i, j, k
    cdef double total = 0, row, w, t, mu
    for i in range(n):
        w = sw[i] if sw != NULL else 1.0
        row = 0
        for j in range(m):
            k = i * m + j
            t = y[k]
            mu = exp(z[k])
            row += (t * log(t) if t > 0 else 0.0) - t * z[k] - t + mu
            grad[k] = <floating>(w * (mu - t) * scale)
        if per_sample != NULL:
            per_sample[i] = row
        total += w * row
    return total


def poisson_log_link(const floating[:, ::1] z not None, const floating[:, ::1] y not None,
                     const floating[::1] sample_weight not None,
                     floating[:, ::1] grad not None, double scale, per_sample=None):
    """Σᵢ wᵢ Σⱼ (xlogy(y, y) − y·z − y + eᶻ) over z, y, grad (n, m); grad = wᵢ(eᶻ − y)·scale.
    sample_weight: (n,) or empty; per_sample: None or a float64 (n,) array receiving each
    row's unweighted loss."""
    cdef Py_ssize_t n = z.shape[0], m = z.shape[1]
    if y.shape[0] != n or y.shape[1] != m or grad.shape[0] != n or grad.shape[1] != m:
        raise ValueError(f"poisson_log_link: z {(n, m)}, y {(y.shape[0], y.shape[1])} "
                         f"and grad {(grad.shape[0], grad.shape[1])} must have one shape")
    if sample_weight.shape[0] not in (0, n):
        raise ValueError(f"poisson_log_link: sample_weight must have length 0 or {n}, got "
                         f"{sample_weight.shape[0]}")
    cdef double[::1] rows
    cdef double* out = NULL
    if per_sample is not None:
        rows = per_sample
        if rows.shape[0] != n:
            raise ValueError(f"poisson_log_link: per_sample must have shape ({n},)")
        if n:
            out = &rows[0]
    if n == 0 or m == 0:
        return 0.0
    cdef double total
    with nogil:
        total = poisson_log_link_core(&z[0, 0], &y[0, 0],
                                      &sample_weight[0] if sample_weight.shape[0] else NULL,
                                      n, m, &grad[0, 0], scale, out)
    return total
