"""Optimizer updates: one fused, in-place pass over flat parameter, gradient and slot
arrays (all the same length, C-contiguous), GIL released.

Every kernel first conditions the gradient the way Keras does: g = g * grad_scale (the
factor of global_clipnorm, 1 otherwise), then clip to [-clipvalue, clipvalue]
(clipvalue = inf for none). The formulas are in each optimizer's docstring in
fastnn/optimizers.py; scalars that depend only on the step (bias corrections, the
scheduled learning rate) are computed once per step in Python.
"""
from libc.math cimport sqrt, sqrtf
from cython cimport floating


cdef inline floating _sqrt(floating v) noexcept nogil:
    if floating is float:
        return sqrtf(v)
    else:
        return sqrt(v)


cdef inline floating _condition(floating g, floating scale, floating clip) noexcept nogil:
    g = g * scale
    if g > clip:
        return clip
    if g < -clip:
        return -clip
    return g


def sgd(floating[::1] w, const floating[::1] g, floating lr, floating grad_scale=1,
        floating clipvalue=float("inf")):
    """w -= lr * g."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(w.shape[0]):
            w[i] -= lr * _condition(g[i], grad_scale, clipvalue)


def sgd_momentum(floating[::1] w, const floating[::1] g, floating[::1] velocity,
                 floating lr, floating momentum, bint nesterov, floating grad_scale=1,
                 floating clipvalue=float("inf")):
    """v = mu v - lr g;  w += v  (Nesterov: w += mu v - lr g, with the new v)."""
    cdef Py_ssize_t i
    cdef floating gi, v
    with nogil:
        for i in range(w.shape[0]):
            gi = _condition(g[i], grad_scale, clipvalue)
            v = momentum * velocity[i] - lr * gi
            velocity[i] = v
            if nesterov:
                w[i] += momentum * v - lr * gi
            else:
                w[i] += v


def adagrad(floating[::1] w, const floating[::1] g, floating[::1] accumulator,
            floating lr, floating epsilon, floating grad_scale=1,
            floating clipvalue=float("inf")):
    """G += g^2;  w -= lr g / (sqrt(G) + eps)."""
    cdef Py_ssize_t i
    cdef floating gi, acc
    with nogil:
        for i in range(w.shape[0]):
            gi = _condition(g[i], grad_scale, clipvalue)
            acc = accumulator[i] + gi * gi
            accumulator[i] = acc
            w[i] -= lr * gi / (_sqrt(acc) + epsilon)


def rmsprop(floating[::1] w, const floating[::1] g, floating[::1] mean_square,
            floating[::1] mean_grad, floating[::1] velocity, floating lr, floating rho,
            floating momentum, floating epsilon, bint centered, floating grad_scale=1,
            floating clipvalue=float("inf")):
    """s = rho s + (1 - rho) g^2;  step = lr g / (sqrt(s) + eps);  w -= step.

    centered: mg = rho mg + (1 - rho) g and sqrt(s - mg^2) replaces sqrt(s).
    momentum > 0: v = momentum v + step;  w -= v. mean_grad / velocity are only touched
    when centered / momentum > 0 (pass empty arrays otherwise).
    """
    cdef Py_ssize_t i
    cdef floating gi, s, mg, denom, step, one_minus_rho = 1 - rho
    with nogil:
        for i in range(w.shape[0]):
            gi = _condition(g[i], grad_scale, clipvalue)
            s = rho * mean_square[i] + one_minus_rho * gi * gi
            mean_square[i] = s
            if centered:
                mg = rho * mean_grad[i] + one_minus_rho * gi
                mean_grad[i] = mg
                denom = s - mg * mg
                # s >= mg^2 in exact arithmetic; rounding can make it slightly negative.
                denom = _sqrt(denom) if denom > 0 else 0
            else:
                denom = _sqrt(s)
            step = lr * gi / (denom + epsilon)
            if momentum > 0:
                step = momentum * velocity[i] + step
                velocity[i] = step
            w[i] -= step


def adam(floating[::1] w, const floating[::1] g, floating[::1] m, floating[::1] v,
         floating[::1] v_max, floating lr, floating beta_1, floating beta_2,
         floating epsilon, double bias_correction_1, double bias_correction_2,
         bint amsgrad, floating weight_decay=0, floating grad_scale=1,
         floating clipvalue=float("inf")):
    """Adam / AdamW / AMSGrad in one pass.

    w -= lr * wd * w (decoupled decay, AdamW; wd = 0 for Adam), then
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  (amsgrad: v_max = max(v_max, v))
    w -= lr * (m / bc1) / (sqrt(v / bc2) + eps)  with bc_k = 1 - beta_k^t (the callers's).
    """
    cdef Py_ssize_t i
    cdef floating gi, mi, vi, decay = lr * weight_decay
    cdef floating step_size = <floating>(lr / bias_correction_1)
    cdef floating inv_sqrt_bc2 = <floating>(1.0 / sqrt(bias_correction_2))
    cdef floating one_minus_b1 = 1 - beta_1, one_minus_b2 = 1 - beta_2
    with nogil:
        for i in range(w.shape[0]):
            gi = _condition(g[i], grad_scale, clipvalue)
            if weight_decay != 0:
                w[i] -= decay * w[i]
            mi = beta_1 * m[i] + one_minus_b1 * gi
            vi = beta_2 * v[i] + one_minus_b2 * gi * gi
            m[i] = mi
            v[i] = vi
            if amsgrad:
                if vi < v_max[i]:
                    vi = v_max[i]
                v_max[i] = vi
            w[i] -= step_size * mi / (_sqrt(vi) * inv_sqrt_bc2 + epsilon)
