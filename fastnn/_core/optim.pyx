"""Optimizer updates: one fused, in-place pass over flat parameter, gradient and slot
arrays (all the same length, C-contiguous), GIL released.

Every kernel first conditions the gradient the way Keras does: g = g * grad_scale (the
factor of global_clipnorm, 1 otherwise), then clip to [-clipvalue, clipvalue]
(clipvalue = inf for none). The formulas are in each optimizer's docstring in
fastnn/optimizers.py; scalars that depend only on the step (bias corrections, the
scheduled learning rate) are computed once per step in Python.

Every kernel returns the number of weights whose new value is not finite (counted in the
same pass, at no measurable cost), so the caller learns about an overflowing update.
"""
from libc.math cimport sqrt
from cython cimport floating

from fastnn._core.fpmode cimport fastnn_ftz_on, fastnn_ftz_restore


cdef extern from "simd_optim.h":
    # Every update loop, compiled for AVX-512 / AVX2 / SSE2 and chosen at load time (see
    # simd_optim.h). Each returns the number of non-finite new weights.
    Py_ssize_t fastnn_sgd_f32(float* w, const float* g, Py_ssize_t n, float lr,
                              float scale, float clip) noexcept nogil
    Py_ssize_t fastnn_sgd_f64(double* w, const double* g, Py_ssize_t n, double lr,
                              double scale, double clip) noexcept nogil
    Py_ssize_t fastnn_momentum_f32(float* w, const float* g, float* vel, Py_ssize_t n,
                                   float lr, float mu, int nesterov, float scale,
                                   float clip) noexcept nogil
    Py_ssize_t fastnn_momentum_f64(double* w, const double* g, double* vel, Py_ssize_t n,
                                   double lr, double mu, int nesterov, double scale,
                                   double clip) noexcept nogil
    Py_ssize_t fastnn_adagrad_f32(float* w, const float* g, float* acc, Py_ssize_t n,
                                  float lr, float eps, float scale, float clip) noexcept nogil
    Py_ssize_t fastnn_adagrad_f64(double* w, const double* g, double* acc, Py_ssize_t n,
                                  double lr, double eps, double scale,
                                  double clip) noexcept nogil
    Py_ssize_t fastnn_rmsprop_f32(float* w, const float* g, float* ms, float* mg, float* vel,
                                  Py_ssize_t n, float lr, float rho, float mu, float eps,
                                  float scale, float clip) noexcept nogil
    Py_ssize_t fastnn_rmsprop_f64(double* w, const double* g, double* ms, double* mg,
                                  double* vel, Py_ssize_t n, double lr, double rho,
                                  double mu, double eps, double scale,
                                  double clip) noexcept nogil
    Py_ssize_t fastnn_adam_f32(float* w, const float* g, float* m, float* v, float* vmax,
                               Py_ssize_t n, float keep, float b1, float omb1, float b2,
                               float omb2, float step, float inv_sqrt_bc2, float eps,
                               float scale, float clip) noexcept nogil
    Py_ssize_t fastnn_adam_f64(double* w, const double* g, double* m, double* v,
                               double* vmax, Py_ssize_t n, double keep, double b1,
                               double omb1, double b2, double omb2, double step,
                               double inv_sqrt_bc2, double eps, double scale,
                               double clip) noexcept nogil

    Py_ssize_t fastnn_nadam_f32(float* w, const float* g, float* m, float* v, Py_ssize_t n,
                                float b1, float omb1, float b2, float omb2, float cm,
                                float cg, float inv_sqrt_bc2, float eps, float scale,
                                float clip) noexcept nogil
    Py_ssize_t fastnn_nadam_f64(double* w, const double* g, double* m, double* v,
                                Py_ssize_t n, double b1, double omb1, double b2,
                                double omb2, double cm, double cg, double inv_sqrt_bc2,
                                double eps, double scale, double clip) noexcept nogil
    Py_ssize_t fastnn_adamax_f32(float* w, const float* g, float* m, float* u, Py_ssize_t n,
                                 float b1, float omb1, float b2, float step, float eps,
                                 float scale, float clip) noexcept nogil
    Py_ssize_t fastnn_adamax_f64(double* w, const double* g, double* m, double* u,
                                 Py_ssize_t n, double b1, double omb1, double b2,
                                 double step, double eps, double scale,
                                 double clip) noexcept nogil
    Py_ssize_t fastnn_lion_f32(float* w, const float* g, float* m, Py_ssize_t n, float keep,
                               float lr, float b1, float omb1, float b2, float omb2,
                               float scale, float clip) noexcept nogil
    Py_ssize_t fastnn_lion_f64(double* w, const double* g, double* m, Py_ssize_t n,
                               double keep, double lr, double b1, double omb1, double b2,
                               double omb2, double scale, double clip) noexcept nogil
    Py_ssize_t fastnn_adadelta_f32(float* w, const float* g, float* acc, float* acc_delta,
                                   Py_ssize_t n, float lr, float rho, float eps, float scale,
                                   float clip) noexcept nogil
    Py_ssize_t fastnn_adadelta_f64(double* w, const double* g, double* acc,
                                   double* acc_delta, Py_ssize_t n, double lr, double rho,
                                   double eps, double scale, double clip) noexcept nogil

# Each function checks nothing (fastnn/optimizers.py did) and hands the flat arrays to
# the loop in simd_optim.h, with flush-to-zero on for the call.

def sgd(floating[::1] w not None, const floating[::1] g not None, floating lr,
        floating grad_scale=1, floating clipvalue=float("inf")):
    """w -= lr * g. Returns the number of non-finite new weights."""
    cdef Py_ssize_t n = w.shape[0], bad = 0
    if n == 0:
        return 0
    cdef unsigned int mode = fastnn_ftz_on()
    with nogil:
        if floating is float:
            bad = fastnn_sgd_f32(&w[0], &g[0], n, lr, grad_scale, clipvalue)
        else:
            bad = fastnn_sgd_f64(&w[0], &g[0], n, lr, grad_scale, clipvalue)
    fastnn_ftz_restore(mode)
    return bad

def sgd_momentum(floating[::1] w not None, const floating[::1] g not None,
                 floating[::1] velocity not None, floating lr, floating momentum,
                 bint nesterov, floating grad_scale=1, floating clipvalue=float("inf")):
    """v = mu v - lr g;  w += v  (Nesterov: w += mu v - lr g, with the new v)."""
    cdef Py_ssize_t n = w.shape[0], bad = 0
    if n == 0:
        return 0
    cdef unsigned int mode = fastnn_ftz_on()
    with nogil:
        if floating is float:
            bad = fastnn_momentum_f32(&w[0], &g[0], &velocity[0], n, lr, momentum,
                                      nesterov, grad_scale, clipvalue)
        else:
            bad = fastnn_momentum_f64(&w[0], &g[0], &velocity[0], n, lr, momentum,
                                      nesterov, grad_scale, clipvalue)
    fastnn_ftz_restore(mode)
    return bad

def adagrad(floating[::1] w not None, const floating[::1] g not None,
            floating[::1] accumulator not None, floating lr, floating epsilon,
            floating grad_scale=1, floating clipvalue=float("inf")):
    """G += g^2;  w -= lr g / (sqrt(G) + eps)."""
    cdef Py_ssize_t n = w.shape[0], bad = 0
    if n == 0:
        return 0
    cdef unsigned int mode = fastnn_ftz_on()
    with nogil:
        if floating is float:
            bad = fastnn_adagrad_f32(&w[0], &g[0], &accumulator[0], n, lr, epsilon,
                                     grad_scale, clipvalue)
        else:
            bad = fastnn_adagrad_f64(&w[0], &g[0], &accumulator[0], n, lr, epsilon,
                                     grad_scale, clipvalue)
    fastnn_ftz_restore(mode)
    return bad


def rmsprop(floating[::1] w not None, const floating[::1] g not None,
            floating[::1] mean_square not None, floating[::1] mean_grad not None,
            floating[::1] velocity not None, floating lr, floating rho, floating momentum,
            floating epsilon, bint centered, floating grad_scale=1,
            floating clipvalue=float("inf")):
    """s = rho s + (1 - rho) g^2;  step = lr g / (sqrt(s) + eps);  w -= step.

    centered: mg = rho mg + (1 - rho) g and sqrt(s - mg^2) replaces sqrt(s).
    momentum > 0: v = momentum v + step;  w -= v. mean_grad / velocity are only touched
    when centered / momentum > 0 (pass empty arrays otherwise).
    """
    cdef Py_ssize_t n = w.shape[0], bad = 0
    if n == 0:
        return 0
    cdef floating* mg = &mean_grad[0] if centered else NULL
    cdef floating* vel = &velocity[0] if momentum > 0 else NULL
    cdef unsigned int mode = fastnn_ftz_on()
    with nogil:
        if floating is float:
            bad = fastnn_rmsprop_f32(&w[0], &g[0], &mean_square[0], mg, vel, n, lr, rho,
                                     momentum, epsilon, grad_scale, clipvalue)
        else:
            bad = fastnn_rmsprop_f64(&w[0], &g[0], &mean_square[0], mg, vel, n, lr, rho,
                                     momentum, epsilon, grad_scale, clipvalue)
    fastnn_ftz_restore(mode)
    return bad


def adam(floating[::1] w not None, const floating[::1] g not None,
         floating[::1] m not None, floating[::1] v not None, floating[::1] v_max not None,
         floating lr, floating beta_1, floating beta_2, floating epsilon,
         double bias_correction_1, double bias_correction_2, bint amsgrad,
         floating weight_decay=0, floating grad_scale=1, floating clipvalue=float("inf")):
    """Adam / AdamW / AMSGrad in one pass.

    w -= lr * wd * w (decoupled decay, AdamW; wd = 0 for Adam), then
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  (amsgrad: v_max = max(v_max, v))
    w -= lr * (m / bc1) / (sqrt(v / bc2) + eps)  with bc_k = 1 - beta_k^t (the caller's).
    keep = 1 - lr * wd multiplies w first: w * 1 is exactly w when wd = 0.
    """
    cdef Py_ssize_t n = w.shape[0], bad = 0
    if n == 0:
        return 0
    cdef floating keep = 1 - lr * weight_decay
    cdef floating step_size = <floating>(lr / bias_correction_1)
    cdef floating inv_sqrt_bc2 = <floating>(1.0 / sqrt(bias_correction_2))
    cdef floating one_minus_b1 = 1 - beta_1, one_minus_b2 = 1 - beta_2
    cdef floating* vmax = &v_max[0] if amsgrad else NULL
    cdef unsigned int mode = fastnn_ftz_on()
    with nogil:
        if floating is float:
            bad = fastnn_adam_f32(&w[0], &g[0], &m[0], &v[0], vmax, n, keep, beta_1,
                                  one_minus_b1, beta_2, one_minus_b2, step_size,
                                  inv_sqrt_bc2, epsilon, grad_scale, clipvalue)
        else:
            bad = fastnn_adam_f64(&w[0], &g[0], &m[0], &v[0], vmax, n, keep, beta_1,
                                  one_minus_b1, beta_2, one_minus_b2, step_size,
                                  inv_sqrt_bc2, epsilon, grad_scale, clipvalue)
    fastnn_ftz_restore(mode)
    return bad


def nadam(floating[::1] w not None, const floating[::1] g not None,
          floating[::1] m not None, floating[::1] v not None, floating lr, floating beta_1,
          floating beta_2, floating epsilon, double u_t, double u_next, double u_product,
          double u_product_next, double bias_correction_2, floating grad_scale=1,
          floating clipvalue=float("inf")):
    """Nadam, Keras 3's rule: m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    w -= lr * (u_next m / (1 - u_product_next) + (1 - u_t) g / (1 - u_product))
         / (sqrt(v / bc2) + eps)
    with u_t = b1 (1 - 0.5 * 0.96^t), u_next the same at t + 1, u_product = u_1 ... u_t,
    u_product_next = u_product * u_next and bc2 = 1 - b2^t (the caller's).
    """
    cdef Py_ssize_t n = w.shape[0], bad = 0
    if n == 0:
        return 0
    cdef floating cm = <floating>(lr * u_next / (1.0 - u_product_next))
    cdef floating cg = <floating>(lr * (1.0 - u_t) / (1.0 - u_product))
    cdef floating inv_sqrt_bc2 = <floating>(1.0 / sqrt(bias_correction_2))
    cdef floating one_minus_b1 = 1 - beta_1, one_minus_b2 = 1 - beta_2
    cdef unsigned int mode = fastnn_ftz_on()
    with nogil:
        if floating is float:
            bad = fastnn_nadam_f32(&w[0], &g[0], &m[0], &v[0], n, beta_1, one_minus_b1,
                                   beta_2, one_minus_b2, cm, cg, inv_sqrt_bc2, epsilon,
                                   grad_scale, clipvalue)
        else:
            bad = fastnn_nadam_f64(&w[0], &g[0], &m[0], &v[0], n, beta_1, one_minus_b1,
                                   beta_2, one_minus_b2, cm, cg, inv_sqrt_bc2, epsilon,
                                   grad_scale, clipvalue)
    fastnn_ftz_restore(mode)
    return bad


def adamax(floating[::1] w not None, const floating[::1] g not None,
           floating[::1] m not None, floating[::1] u not None, floating lr, floating beta_1,
           floating beta_2, floating epsilon, double bias_correction_1,
           floating grad_scale=1, floating clipvalue=float("inf")):
    """Adamax: m = b1 m + (1 - b1) g;  u = max(b2 u, |g|);
    w -= (lr / bc1) * m / (u + eps)  with bc1 = 1 - b1^t (the caller's)."""
    cdef Py_ssize_t n = w.shape[0], bad = 0
    if n == 0:
        return 0
    cdef floating step_size = <floating>(lr / bias_correction_1)
    cdef floating one_minus_b1 = 1 - beta_1
    cdef unsigned int mode = fastnn_ftz_on()
    with nogil:
        if floating is float:
            bad = fastnn_adamax_f32(&w[0], &g[0], &m[0], &u[0], n, beta_1, one_minus_b1,
                                    beta_2, step_size, epsilon, grad_scale, clipvalue)
        else:
            bad = fastnn_adamax_f64(&w[0], &g[0], &m[0], &u[0], n, beta_1, one_minus_b1,
                                    beta_2, step_size, epsilon, grad_scale, clipvalue)
    fastnn_ftz_restore(mode)
    return bad


def lion(floating[::1] w not None, const floating[::1] g not None,
         floating[::1] m not None, floating lr, floating beta_1, floating beta_2,
         floating weight_decay=0, floating grad_scale=1, floating clipvalue=float("inf")):
    """Lion: w = w (1 - lr wd) - lr sign(b1 m + (1 - b1) g);  m = b2 m + (1 - b2) g.
    sign(0) = 0. keep = 1 - lr wd is exactly 1 when wd = 0."""
    cdef Py_ssize_t n = w.shape[0], bad = 0
    if n == 0:
        return 0
    cdef floating keep = 1 - lr * weight_decay
    cdef floating one_minus_b1 = 1 - beta_1, one_minus_b2 = 1 - beta_2
    cdef unsigned int mode = fastnn_ftz_on()
    with nogil:
        if floating is float:
            bad = fastnn_lion_f32(&w[0], &g[0], &m[0], n, keep, lr, beta_1, one_minus_b1,
                                  beta_2, one_minus_b2, grad_scale, clipvalue)
        else:
            bad = fastnn_lion_f64(&w[0], &g[0], &m[0], n, keep, lr, beta_1, one_minus_b1,
                                  beta_2, one_minus_b2, grad_scale, clipvalue)
    fastnn_ftz_restore(mode)
    return bad


def adadelta(floating[::1] w not None, const floating[::1] g not None,
             floating[::1] accumulated_grad not None,
             floating[::1] accumulated_delta not None, floating lr, floating rho,
             floating epsilon, floating grad_scale=1, floating clipvalue=float("inf")):
    """Adadelta: a = rho a + (1 - rho) g^2;  d = sqrt(ad + eps) g / sqrt(a + eps);
    ad = rho ad + (1 - rho) d^2;  w -= lr d."""
    cdef Py_ssize_t n = w.shape[0], bad = 0
    if n == 0:
        return 0
    cdef unsigned int mode = fastnn_ftz_on()
    with nogil:
        if floating is float:
            bad = fastnn_adadelta_f32(&w[0], &g[0], &accumulated_grad[0],
                                      &accumulated_delta[0], n, lr, rho, epsilon,
                                      grad_scale, clipvalue)
        else:
            bad = fastnn_adadelta_f64(&w[0], &g[0], &accumulated_grad[0],
                                      &accumulated_delta[0], n, lr, rho, epsilon,
                                      grad_scale, clipvalue)
    fastnn_ftz_restore(mode)
    return bad
