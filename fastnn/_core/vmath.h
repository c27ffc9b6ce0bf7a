/* Vectorizable exp for float and double.
 *
 * libm's exp is a function call the compiler cannot vectorize (without -ffast-math,
 * which fastnn does not use). These are the Cephes algorithms (S. Moshier, public
 * domain, netlib.org/cephes) written branch-free: x = n ln2 + r with |r| <= ln2/2 (ln2
 * split in two parts so r is exact), exp(r) by a polynomial (float) or a Pade
 * approximant (double), then 2^n built from the exponent bits. Accurate to 1-2 ulp.
 * Out-of-range arguments give inf / 0 as exp does; NaN gives NaN. Every branch is a
 * select between computed values, so loops calling these vectorize.
 */
#ifndef FASTNN_VMATH_H
#define FASTNN_VMATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "clones.h"

static inline float fastnn_expf(float x) {
    const float hi = 88.72283905206835f, lo = -87.33654475f;
    float xc = x < hi ? x : hi;
    xc = xc > lo ? xc : lo;
    /* n = round(x / ln2): adding 1.5 * 2^23 rounds to an integer in float arithmetic */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    /* 2^n as 2^a * 2^b, a = floor(n/2), b = n - a: both factors stay normal numbers
       over the whole range n in [-126, 128] */
    int32_t ni = (int32_t)n;
    int32_t a = ni >> 1, b = ni - a;
    int32_t bits_a = (a + 127) << 23, bits_b = (b + 127) << 23;
    float sa, sb;
    memcpy(&sa, &bits_a, sizeof sa);
    memcpy(&sb, &bits_b, sizeof sb);
    y = y * sa * sb;
    y = x > hi ? INFINITY : y;
    y = x < lo ? 0.0f : y;
    return x != x ? x : y;
}

static inline double fastnn_exp(double x) {
    const double hi = 7.09782712893383996843e2, lo = -7.08396418532264106224e2;
    double xc = x < hi ? x : hi;
    xc = xc > lo ? xc : lo;
    double n = (xc * 1.4426950408889634073599 + 6755399441055744.0) - 6755399441055744.0;
    double r = xc - n * 6.93145751953125e-1;
    r = r - n * 1.42860682030941723212e-6;
    double rr = r * r;
    double px = ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr
                 + 9.99999999999999999910e-1) * r;
    double qx = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
                 + 2.27265548208155028766e-1) * rr + 2.00000000000000000009e0;
    double y = 1.0 + 2.0 * (px / (qx - px));
    int32_t ni = (int32_t)n;
    int32_t a = ni >> 1, b = ni - a;
    int64_t bits_a = (int64_t)(a + 1023) << 52, bits_b = (int64_t)(b + 1023) << 52;
    double sa, sb;
    memcpy(&sa, &bits_a, sizeof sa);
    memcpy(&sb, &bits_b, sizeof sb);
    y = y * sa * sb;
    y = x > hi ? INFINITY : y;
    y = x < lo ? 0.0 : y;
    return x != x ? x : y;
}


/* The activations' exp-bound loops over one row, compiled for AVX-512 / AVX2 / SSE2
 * (chosen at load time, as in simd_optim.h). */

/* sigmoid in place: exp of -|v| only (never overflows); both sides computed, selected */
#define FASTNN_SIGMOID_LOOP(T, EXP, ABS)                     \
    for (ptrdiff_t i = 0; i < n; i++) {                      \
        T v = x[i];                                          \
        T e = EXP(-ABS(v));                                  \
        T s = (T)1 / ((T)1 + e);                             \
        x[i] = v >= 0 ? s : e * s;                           \
    }
FASTNN_CLONES static void fastnn_sigmoid_f32(float* restrict x, ptrdiff_t n) {
    FASTNN_SIGMOID_LOOP(float, fastnn_expf, fabsf)
}
FASTNN_CLONES static void fastnn_sigmoid_f64(double* restrict x, ptrdiff_t n) {
    FASTNN_SIGMOID_LOOP(double, fastnn_exp, fabs)
}

/* float32 tanh in place, computed in double: tanh|v| = (1 - t) / (1 + t), t = e^-2|v|,
 * accurate to float precision down to |v| ~ 1e-4; below, v - v^3/3 is. */
FASTNN_CLONES static void fastnn_tanh_f32(float* restrict x, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) {
        double v = x[i];
        double a = fabs(v);
        double t = fastnn_exp(-2 * a);
        double y = (1 - t) / (1 + t);
        y = a < 1e-4 ? a - a * a * a / 3 : y;
        x[i] = (float)(v >= 0 ? y : -y);
    }
}

/* x[i] = exp(x[i] - shift): softmax's numerators */
FASTNN_CLONES static void fastnn_exp_shift_f32(float* restrict x, ptrdiff_t n, float shift) {
    for (ptrdiff_t i = 0; i < n; i++)
        x[i] = fastnn_expf(x[i] - shift);
}
FASTNN_CLONES static void fastnn_exp_shift_f64(double* restrict x, ptrdiff_t n,
                                               double shift) {
    for (ptrdiff_t i = 0; i < n; i++)
        x[i] = fastnn_exp(x[i] - shift);
}
#endif
