"""Small data-movement and reduction kernels used by the training loop."""
import sys
from libc.string cimport memcpy
from libc.stdint cimport int64_t
from cython cimport floating


cdef extern from "simd_optim.h":
    int fastnn_words_finite(const unsigned int* w, Py_ssize_t n, Py_ssize_t stride,
                            Py_ssize_t offset, unsigned int mask) noexcept nogil

# Which 32-bit half of a double holds the sign and exponent.
cdef Py_ssize_t _HIGH_WORD = 1 if sys.byteorder == "little" else 0


def gather_rows(const floating[:, ::1] src not None, const int64_t[::1] index not None,
                floating[:, ::1] out not None):
    """out[i, :] = src[index[i], :] for i < len(index) (the minibatch gather).

    index values are in range (they come from a permutation made in Python).
    """
    cdef Py_ssize_t i, m = src.shape[1]
    if m == 0:
        return
    with nogil:
        for i in range(index.shape[0]):
            memcpy(&out[i, 0], &src[index[i], 0], m * sizeof(floating))


def gather_values(const int64_t[::1] src not None, const int64_t[::1] index not None, int64_t[::1] out not None):
    """out[i] = src[index[i]] (integer labels and sample indices)."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(index.shape[0]):
            out[i] = src[index[i]]


def gather_weights(const floating[::1] src not None, const int64_t[::1] index not None, floating[::1] out not None):
    """out[i] = src[index[i]] (per-sample weights)."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(index.shape[0]):
            out[i] = src[index[i]]


def segment_sum_squares(const floating[::1] x not None, const int64_t[::1] bounds not None, double[::1] out not None):
    """out[s] = sum of x[bounds[s]:bounds[s+1]]^2 (per-parameter gradient norms)."""
    cdef Py_ssize_t s, i
    cdef double acc
    with nogil:
        for s in range(bounds.shape[0] - 1):
            acc = 0
            for i in range(bounds[s], bounds[s + 1]):
                acc += <double>x[i] * x[i]
            out[s] = acc


def scale_segments(floating[::1] x not None, const int64_t[::1] bounds not None, const double[::1] scales not None):
    """x[bounds[s]:bounds[s+1]] *= scales[s] in place (per-parameter clipnorm)."""
    cdef Py_ssize_t s, i
    cdef floating f
    with nogil:
        for s in range(bounds.shape[0] - 1):
            f = <floating>scales[s]
            if f != 1:
                for i in range(bounds[s], bounds[s + 1]):
                    x[i] *= f


def all_finite(const floating[::1] x not None):
    """True when no entry of x is NaN or +-inf.

    Tests the exponent bits as integers (all ones means inf or NaN) with an or-reduction
    and no early exit (simd_optim.h: compiled for AVX-512 / AVX2 / SSE2). A double's
    exponent lives in its high 32-bit word, so doubles are tested through that word.
    """
    cdef Py_ssize_t n = x.shape[0]
    cdef const unsigned int* p
    cdef int ok
    if n == 0:
        return True
    p = <const unsigned int*>&x[0]
    with nogil:
        if floating is float:
            ok = fastnn_words_finite(p, n, 1, 0, 0x7f800000u)
        else:
            ok = fastnn_words_finite(p, n, 2, _HIGH_WORD, 0x7ff00000u)
    return ok != 0
