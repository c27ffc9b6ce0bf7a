/* Flush-to-zero / denormals-are-zero for the duration of one kernel call.
 *
 * Subnormal floats (below ~1e-38 in float32) are 10-100x slower on x86; Adam's moments
 * and saturated sigmoids drift into them during long runs. The kernels where they arise
 * (the optimizer updates, activations, dense layers, normalization) set FTZ and DAZ in
 * MXCSR on entry and restore the caller's MXCSR on exit, so the setting never leaks into
 * the rest of the process. Elsewhere than x86 this is a no-op.
 */
#ifndef FASTNN_FPMODE_H
#define FASTNN_FPMODE_H
#if defined(__SSE__) || defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
static inline unsigned int fastnn_ftz_on(void) {
    unsigned int old = _mm_getcsr();
    _mm_setcsr(old | 0x8040u);  /* bit 15: flush to zero, bit 6: denormals are zero */
    return old;
}
static inline void fastnn_ftz_restore(unsigned int old) { _mm_setcsr(old); }
/* The calling thread's mode, to hand to the threads that run part of its work. */
static inline unsigned int fastnn_fp_mode(void) { return _mm_getcsr(); }
#else
static inline unsigned int fastnn_ftz_on(void) { return 0; }
static inline void fastnn_ftz_restore(unsigned int old) { (void)old; }
static inline unsigned int fastnn_fp_mode(void) { return 0; }
#endif
#endif
