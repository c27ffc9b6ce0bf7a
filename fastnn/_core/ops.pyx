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


cdef bint all_finite_core(const floating* x, Py_ssize_t n) noexcept nogil:
    """True when none of x[0..n) is NaN or +-inf (see all_finite)."""
    if n == 0:
        return True
    if floating is float:
        return fastnn_words_finite(<const unsigned int*>x, n, 1, 0, 0x7f800000u) != 0
    else:
        return fastnn_words_finite(<const unsigned int*>x, n, 2, _HIGH_WORD,
                                   0x7ff00000u) != 0


def all_finite(const floating[::1] x not None):
    """True when no entry of x is NaN or +-inf.

    Tests the exponent bits as integers (all ones means inf or NaN) with an or-reduction
    and no early exit (simd_optim.h: compiled for AVX-512 / AVX2 / SSE2). A double's
    exponent lives in its high 32-bit word, so doubles are tested through that word.
    """
    cdef Py_ssize_t n = x.shape[0]
    cdef bint ok
    if n == 0:
        return True
    with nogil:
        ok = all_finite_core(&x[0], n)
    return ok


# ------------------------------------------------------------------------------------------
# Gather-and-convert: rows of an array of any numeric dtype (uint8 images, int labels turned
# features, float64 data for a float32 model; memory-mapped or strided) written into a
# C-contiguous floating batch buffer, one batch at a time, so nothing is ever converted whole.

ctypedef fused source_t:
    unsigned char
    signed char
    unsigned short
    short
    unsigned int
    int
    unsigned long long
    long long
    float
    double


cdef void gather_convert_core(const source_t* src, Py_ssize_t row_stride,
                              Py_ssize_t col_stride, Py_ssize_t m, const int64_t* index,
                              Py_ssize_t start, Py_ssize_t n, floating* out) noexcept nogil:
    """out[i, j] = (floating) src[r(i), j] for i < n, j < m, with r(i) = index[i] (or
    start + i when index is NULL). Strides count elements and may be negative."""
    cdef Py_ssize_t i, j, r
    cdef const source_t* p
    cdef floating* o
    for i in range(n):
        r = index[i] if index != NULL else start + i
        p = src + r * row_stride
        o = out + i * m
        if col_stride == 1:         # contiguous rows: a loop the compiler vectorizes
            for j in range(m):
                o[j] = <floating>p[j]
        else:
            for j in range(m):
                o[j] = <floating>p[j * col_stride]


cdef inline Py_ssize_t _elements(Py_ssize_t stride_bytes, Py_ssize_t itemsize) noexcept nogil:
    return stride_bytes // itemsize


def gather_convert_rows(const source_t[:, :] src not None, const int64_t[::1] index not None,
                        floating[:, ::1] out not None):
    """out[i, :] = src[index[i], :] converted to out's dtype, for i < len(index).

    src: any (rows, m) layout of a native-endian integer or float dtype (a memmap is read
    only where index points). Raises ValueError when shapes disagree or an index is out
    of range (checked before the GIL is released).
    """
    cdef Py_ssize_t i, n = index.shape[0], m = src.shape[1], rows = src.shape[0]
    if out.shape[0] < n or out.shape[1] != m:
        raise ValueError(f"gather_convert_rows: out has shape ({out.shape[0]}, {out.shape[1]}), "
                         f"need at least ({n}, {m})")
    for i in range(n):
        if index[i] < 0 or index[i] >= rows:
            raise ValueError(f"gather_convert_rows: index[{i}] = {index[i]} is out of range "
                             f"for {rows} rows")
    if n == 0 or m == 0:
        return
    with nogil:
        gather_convert_core(&src[0, 0], _elements(src.strides[0], sizeof(source_t)),
                            _elements(src.strides[1], sizeof(source_t)), m, &index[0], 0,
                            n, &out[0, 0])


def convert_rows(const source_t[:, :] src not None, Py_ssize_t start,
                 floating[:, ::1] out not None):
    """out[i, :] = src[start + i, :] converted to out's dtype, for i < out.shape[0]
    (a batch of consecutive rows, e.g. for evaluate/predict or a streamed batch)."""
    cdef Py_ssize_t n = out.shape[0], m = src.shape[1]
    if out.shape[1] != m:
        raise ValueError(f"convert_rows: out has {out.shape[1]} columns, src has {m}")
    if start < 0 or start + n > src.shape[0]:
        raise ValueError(f"convert_rows: rows [{start}, {start + n}) out of range for "
                         f"{src.shape[0]} rows")
    if n == 0 or m == 0:
        return
    with nogil:
        gather_convert_core(&src[0, 0], _elements(src.strides[0], sizeof(source_t)),
                            _elements(src.strides[1], sizeof(source_t)), m, NULL, start, n,
                            &out[0, 0])
