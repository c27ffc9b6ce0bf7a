"""Small data-movement and reduction kernels used by the training loop."""
from libc.string cimport memcpy
from libc.math cimport sqrt, isfinite
from libc.stdint cimport int64_t
from cython cimport floating


def gather_rows(const floating[:, ::1] src, const int64_t[::1] index, floating[:, ::1] out):
    """out[i, :] = src[index[i], :] for i < len(index) (the minibatch gather).

    index values are in range (they come from a permutation made in Python).
    """
    cdef Py_ssize_t i, m = src.shape[1]
    if m == 0:
        return
    with nogil:
        for i in range(index.shape[0]):
            memcpy(&out[i, 0], &src[index[i], 0], m * sizeof(floating))


def gather_values(const int64_t[::1] src, const int64_t[::1] index, int64_t[::1] out):
    """out[i] = src[index[i]] (integer labels and sample indices)."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(index.shape[0]):
            out[i] = src[index[i]]


def gather_weights(const floating[::1] src, const int64_t[::1] index, floating[::1] out):
    """out[i] = src[index[i]] (per-sample weights)."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(index.shape[0]):
            out[i] = src[index[i]]


def segment_sum_squares(const floating[::1] x, const int64_t[::1] bounds, double[::1] out):
    """out[s] = sum of x[bounds[s]:bounds[s+1]]^2 (per-parameter gradient norms)."""
    cdef Py_ssize_t s, i
    cdef double acc
    with nogil:
        for s in range(bounds.shape[0] - 1):
            acc = 0
            for i in range(bounds[s], bounds[s + 1]):
                acc += <double>x[i] * x[i]
            out[s] = acc


def scale_segments(floating[::1] x, const int64_t[::1] bounds, const double[::1] scales):
    """x[bounds[s]:bounds[s+1]] *= scales[s] in place (per-parameter clipnorm)."""
    cdef Py_ssize_t s, i
    cdef floating f
    with nogil:
        for s in range(bounds.shape[0] - 1):
            f = <floating>scales[s]
            if f != 1:
                for i in range(bounds[s], bounds[s + 1]):
                    x[i] *= f


def all_finite(const floating[::1] x):
    """True when no entry of x is NaN or +-inf."""
    cdef Py_ssize_t i
    cdef bint ok = True
    with nogil:
        for i in range(x.shape[0]):
            if not isfinite(x[i]):
                ok = False
                break
    return ok
