/* The optimizer updates (they dominate small-batch training), compiled for several
 * instruction sets with one source: GCC/Clang `target_clones` builds an AVX-512, an AVX2
 * and a baseline (SSE2) copy of each loop and picks one when the module loads, so a
 * portable wheel (no -march flag) still uses the CPU's widest vectors. Measured here:
 * Adam over 670k float32 parameters, one thread, 495 us (SSE2) -> 155 us (AVX-512).
 *
 * The loops are the formulas of fastnn/_core/optim.pyx.tp and fastnn/optimizers.py, in the
 * same order of operations; with -ffp-contract=off (setup.py) every copy rounds exactly
 * alike, so results do not depend on which copy runs. Each returns the number of new
 * weights that are not finite. Gradient conditioning: g * scale, clipped to [-clip, clip].
 */
#ifndef FASTNN_SIMD_OPTIM_H
#define FASTNN_SIMD_OPTIM_H
#include <math.h>
#include <stddef.h>

#include "clones.h"


#define FASTNN_COND(T, gi, g, scale, clip) \
    T gi = (g) * (scale);                  \
    gi = gi > (clip) ? (clip) : gi;        \
    gi = gi < -(clip) ? -(clip) : gi;

#define FASTNN_DEFINE_UPDATES(T, SUFFIX, SQRT)                                           \
FASTNN_CLONES static ptrdiff_t fastnn_sgd_##SUFFIX(                                       \
        T* restrict w, const T* restrict g, ptrdiff_t n, T lr, T scale, T clip) {       \
    ptrdiff_t bad = 0;                                                                   \
    for (ptrdiff_t i = 0; i < n; i++) {                                                  \
        FASTNN_COND(T, gi, g[i], scale, clip)                                            \
        T wn = w[i] - lr * gi;                                                           \
        bad += (wn - wn != 0);                                                           \
        w[i] = wn;                                                                       \
    }                                                                                    \
    return bad;                                                                          \
}                                                                                        \
FASTNN_CLONES static ptrdiff_t fastnn_momentum_##SUFFIX(                                  \
        T* restrict w, const T* restrict g, T* restrict vel, ptrdiff_t n, T lr, T mu,    \
        int nesterov, T scale, T clip) {                                                 \
    ptrdiff_t bad = 0;                                                                   \
    if (nesterov) {                                                                      \
        for (ptrdiff_t i = 0; i < n; i++) {                                              \
            FASTNN_COND(T, gi, g[i], scale, clip)                                        \
            T v = mu * vel[i] - lr * gi;                                                 \
            vel[i] = v;                                                                  \
            T wn = w[i] + (mu * v - lr * gi);                                            \
            bad += (wn - wn != 0);                                                       \
            w[i] = wn;                                                                   \
        }                                                                                \
    } else {                                                                             \
        for (ptrdiff_t i = 0; i < n; i++) {                                              \
            FASTNN_COND(T, gi, g[i], scale, clip)                                        \
            T v = mu * vel[i] - lr * gi;                                                 \
            vel[i] = v;                                                                  \
            T wn = w[i] + v;                                                             \
            bad += (wn - wn != 0);                                                       \
            w[i] = wn;                                                                   \
        }                                                                                \
    }                                                                                    \
    return bad;                                                                          \
}                                                                                        \
FASTNN_CLONES static ptrdiff_t fastnn_adam_##SUFFIX(                                      \
        T* restrict w, const T* restrict g, T* restrict m, T* restrict v,                \
        T* restrict vmax, ptrdiff_t n, T keep, T b1, T omb1, T b2, T omb2,               \
        T step, T inv_sqrt_bc2, T eps, T scale, T clip) {                                \
    ptrdiff_t bad = 0;                                                                   \
    if (vmax == NULL) {                                                                  \
        for (ptrdiff_t i = 0; i < n; i++) {                                              \
            FASTNN_COND(T, gi, g[i], scale, clip)                                        \
            T wi = w[i] * keep;                                                          \
            T mi = b1 * m[i] + omb1 * gi;                                                \
            T vi = b2 * v[i] + omb2 * gi * gi;                                           \
            m[i] = mi;                                                                   \
            v[i] = vi;                                                                   \
            T wn = wi - step * mi / (SQRT(vi) * inv_sqrt_bc2 + eps);                     \
            bad += (wn - wn != 0);                                                       \
            w[i] = wn;                                                                   \
        }                                                                                \
    } else {                                                                             \
        for (ptrdiff_t i = 0; i < n; i++) {                                              \
            FASTNN_COND(T, gi, g[i], scale, clip)                                        \
            T wi = w[i] * keep;                                                          \
            T mi = b1 * m[i] + omb1 * gi;                                                \
            T vi = b2 * v[i] + omb2 * gi * gi;                                           \
            m[i] = mi;                                                                   \
            v[i] = vi;                                                                   \
            T vm = vmax[i];                                                              \
            vm = vi > vm ? vi : vm;                                                      \
            vmax[i] = vm;                                                                \
            T wn = wi - step * mi / (SQRT(vm) * inv_sqrt_bc2 + eps);                     \
            bad += (wn - wn != 0);                                                       \
            w[i] = wn;                                                                   \
        }                                                                                \
    }                                                                                    \
    return bad;                                                                          \
}

/* RMSprop's loop, expanded once per (centered, momentum) pair with constant flags so each
 * copy is a straight loop. s >= mg^2 holds exactly; rounding can make s - mg^2 slightly
 * negative, hence d * (d > 0) (which keeps a NaN a NaN). */
#define FASTNN_RMSPROP_LOOP(T, SQRT, CENTERED, MOMENTUM)                                 \
    for (ptrdiff_t i = 0; i < n; i++) {                                                  \
        FASTNN_COND(T, gi, g[i], scale, clip)                                            \
        T s = rho * ms[i] + omr * gi * gi;                                               \
        ms[i] = s;                                                                       \
        T d = s;                                                                         \
        if (CENTERED) {                                                                  \
            T mgi = rho * mg[i] + omr * gi;                                              \
            mg[i] = mgi;                                                                 \
            d = s - mgi * mgi;                                                           \
            d = d * (T)(d > 0);                                                          \
        }                                                                                \
        T step = lr * gi / (SQRT(d) + eps);                                              \
        if (MOMENTUM) {                                                                  \
            step = mu * vel[i] + step;                                                   \
            vel[i] = step;                                                               \
        }                                                                                \
        T wn = w[i] - step;                                                              \
        bad += (wn - wn != 0);                                                           \
        w[i] = wn;                                                                       \
    }

#define FASTNN_DEFINE_ADAPTIVE(T, SUFFIX, SQRT)                                          \
FASTNN_CLONES static ptrdiff_t fastnn_adagrad_##SUFFIX(                                   \
        T* restrict w, const T* restrict g, T* restrict acc, ptrdiff_t n, T lr, T eps,   \
        T scale, T clip) {                                                               \
    ptrdiff_t bad = 0;                                                                   \
    for (ptrdiff_t i = 0; i < n; i++) {                                                  \
        FASTNN_COND(T, gi, g[i], scale, clip)                                            \
        T a = acc[i] + gi * gi;                                                          \
        acc[i] = a;                                                                      \
        T wn = w[i] - lr * gi / (SQRT(a) + eps);                                         \
        bad += (wn - wn != 0);                                                           \
        w[i] = wn;                                                                       \
    }                                                                                    \
    return bad;                                                                          \
}                                                                                        \
FASTNN_CLONES static ptrdiff_t fastnn_rmsprop_##SUFFIX(                                   \
        T* restrict w, const T* restrict g, T* restrict ms, T* restrict mg,              \
        T* restrict vel, ptrdiff_t n, T lr, T rho, T mu, T eps, T scale, T clip) {       \
    ptrdiff_t bad = 0;                                                                   \
    T omr = 1 - rho;                                                                     \
    if (mg == NULL && vel == NULL) { FASTNN_RMSPROP_LOOP(T, SQRT, 0, 0) }                \
    else if (mg == NULL) { FASTNN_RMSPROP_LOOP(T, SQRT, 0, 1) }                          \
    else if (vel == NULL) { FASTNN_RMSPROP_LOOP(T, SQRT, 1, 0) }                         \
    else { FASTNN_RMSPROP_LOOP(T, SQRT, 1, 1) }                                          \
    return bad;                                                                          \
}

/* Nadam, Adamax, Lion (Keras 3's rules) and Adadelta. The step-only scalars (bias and
 * momentum-schedule corrections times the learning rate) come from optim.pyx.tp and
 * optimizers.py.
 *   Nadam:   w -= (cm * m + cg * g) / (sqrt(v) * inv_sqrt_bc2 + eps)
 *   Adamax:  u = max(b2 u, |g|);  w -= step * m / (u + eps)
 *   Lion:    c = b1 m + (1 - b1) g;  w = w * keep - lr * sign(c);  m = b2 m + (1 - b2) g
 *   Adadelta: a = rho a + (1 - rho) g^2;  d = sqrt(ad + eps) g / sqrt(a + eps);
 *            ad = rho ad + (1 - rho) d^2;  w -= lr d
 * The max and the sign are written so that a NaN stays a NaN (and is counted). */
#define FASTNN_DEFINE_MORE_UPDATES(T, SUFFIX, SQRT, FABS)                                \
FASTNN_CLONES static ptrdiff_t fastnn_nadam_##SUFFIX(                                     \
        T* restrict w, const T* restrict g, T* restrict m, T* restrict v, ptrdiff_t n,   \
        T b1, T omb1, T b2, T omb2, T cm, T cg, T inv_sqrt_bc2, T eps, T scale,          \
        T clip) {                                                                        \
    ptrdiff_t bad = 0;                                                                   \
    for (ptrdiff_t i = 0; i < n; i++) {                                                  \
        FASTNN_COND(T, gi, g[i], scale, clip)                                            \
        T mi = b1 * m[i] + omb1 * gi;                                                    \
        T vi = b2 * v[i] + omb2 * gi * gi;                                               \
        m[i] = mi;                                                                       \
        v[i] = vi;                                                                       \
        T wn = w[i] - (cm * mi + cg * gi) / (SQRT(vi) * inv_sqrt_bc2 + eps);             \
        bad += (wn - wn != 0);                                                           \
        w[i] = wn;                                                                       \
    }                                                                                    \
    return bad;                                                                          \
}                                                                                        \
FASTNN_CLONES static ptrdiff_t fastnn_adamax_##SUFFIX(                                    \
        T* restrict w, const T* restrict g, T* restrict m, T* restrict u, ptrdiff_t n,   \
        T b1, T omb1, T b2, T step, T eps, T scale, T clip) {                            \
    ptrdiff_t bad = 0;                                                                   \
    for (ptrdiff_t i = 0; i < n; i++) {                                                  \
        FASTNN_COND(T, gi, g[i], scale, clip)                                            \
        T mi = b1 * m[i] + omb1 * gi;                                                    \
        T ui = b2 * u[i];                                                                \
        T ag = FABS(gi);                                                                 \
        ui = ui >= ag ? ui : ag;                                                         \
        m[i] = mi;                                                                       \
        u[i] = ui;                                                                       \
        T wn = w[i] - step * mi / (ui + eps);                                            \
        bad += (wn - wn != 0);                                                           \
        w[i] = wn;                                                                       \
    }                                                                                    \
    return bad;                                                                          \
}                                                                                        \
FASTNN_CLONES static ptrdiff_t fastnn_lion_##SUFFIX(                                      \
        T* restrict w, const T* restrict g, T* restrict m, ptrdiff_t n, T keep, T lr,    \
        T b1, T omb1, T b2, T omb2, T scale, T clip) {                                   \
    ptrdiff_t bad = 0;                                                                   \
    for (ptrdiff_t i = 0; i < n; i++) {                                                  \
        FASTNN_COND(T, gi, g[i], scale, clip)                                            \
        T mi = m[i];                                                                     \
        T c = b1 * mi + omb1 * gi;                                                       \
        T sign = c > 0 ? (T)1 : (c < 0 ? (T)-1 : c);                                     \
        m[i] = b2 * mi + omb2 * gi;                                                      \
        T wn = w[i] * keep - lr * sign;                                                  \
        bad += (wn - wn != 0);                                                           \
        w[i] = wn;                                                                       \
    }                                                                                    \
    return bad;                                                                          \
}                                                                                        \
FASTNN_CLONES static ptrdiff_t fastnn_adadelta_##SUFFIX(                                  \
        T* restrict w, const T* restrict g, T* restrict acc, T* restrict acc_delta,      \
        ptrdiff_t n, T lr, T rho, T eps, T scale, T clip) {                              \
    ptrdiff_t bad = 0;                                                                   \
    T omr = 1 - rho;                                                                     \
    for (ptrdiff_t i = 0; i < n; i++) {                                                  \
        FASTNN_COND(T, gi, g[i], scale, clip)                                            \
        T a = rho * acc[i] + omr * gi * gi;                                              \
        acc[i] = a;                                                                      \
        T ad = acc_delta[i];                                                             \
        T d = SQRT(ad + eps) * gi / SQRT(a + eps);                                       \
        acc_delta[i] = rho * ad + omr * d * d;                                           \
        T wn = w[i] - lr * d;                                                            \
        bad += (wn - wn != 0);                                                           \
        w[i] = wn;                                                                       \
    }                                                                                    \
    return bad;                                                                          \
}

FASTNN_DEFINE_UPDATES(float, f32, sqrtf)
FASTNN_DEFINE_UPDATES(double, f64, sqrt)
FASTNN_DEFINE_ADAPTIVE(float, f32, sqrtf)
FASTNN_DEFINE_ADAPTIVE(double, f64, sqrt)
FASTNN_DEFINE_MORE_UPDATES(float, f32, sqrtf, fabsf)
FASTNN_DEFINE_MORE_UPDATES(double, f64, sqrt, fabs)

/* 1 when none of the n 32-bit words w[i * stride + offset] has an all-ones exponent
 * field under `mask` (an inf or NaN); the finiteness check of the gradients before every
 * update. Floats: stride 1, mask 0x7f800000. Doubles: the high word of each (stride 2,
 * offset 1 on little-endian), mask 0x7ff00000. An or-reduction with no early exit, so it
 * streams at memory speed in the widest vectors the CPU has. */
FASTNN_CLONES static int fastnn_words_finite(const unsigned int* restrict w, ptrdiff_t n,
                                             ptrdiff_t stride, ptrdiff_t offset,
                                             unsigned int mask) {
    unsigned int bad = 0;
    if (stride == 1) {
        for (ptrdiff_t i = 0; i < n; i++)
            bad |= (w[i] & mask) == mask;
    } else {
        for (ptrdiff_t i = 0; i < n; i++)
            bad |= (w[2 * i + offset] & mask) == mask;
    }
    return bad == 0;
}
#endif
