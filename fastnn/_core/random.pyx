"""Counter-based random numbers for dropout masks.

Entry i of a mask is a pure function of (key, i): a SplitMix64 finalizer of key + i.
No generator state is carried between calls, so a run is reproducible from the seed,
epoch and step alone (what exact resume needs), and the result does not depend on how
the work is split across threads.
"""
from libc.stdint cimport uint64_t
from cython cimport floating

from fastnn._core.fpmode cimport fastnn_ftz_on, fastnn_ftz_restore


cdef inline uint64_t _mix(uint64_t z) noexcept nogil:
    # SplitMix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
    z = (z ^ (z >> 30)) * <uint64_t>0xbf58476d1ce4e5b9ULL
    z = (z ^ (z >> 27)) * <uint64_t>0x94d049bb133111ebULL
    return z ^ (z >> 31)


cdef uint64_t mix_key_core(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) noexcept nogil:
    cdef uint64_t k = _mix(seed + <uint64_t>0x9e3779b97f4a7c15ULL)
    k = _mix(k ^ (a + <uint64_t>0x9e3779b97f4a7c15ULL))
    k = _mix(k ^ (b + <uint64_t>0x3c6ef372fe94f82aULL))
    return _mix(k ^ (c + <uint64_t>0xdaa66d2c7ddf743fULL))


def mix_key(uint64_t seed, uint64_t a, uint64_t b, uint64_t c):
    """A 64-bit stream key from a seed and three counters (e.g. epoch, step, layer)."""
    return mix_key_core(seed, a, b, c)


def uniform(floating[::1] out not None, uint64_t key):
    """out[i] = a uniform number in [0, 1) from (key, i) (53 or 24 random bits)."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(out.shape[0]):
            if floating is float:
                # 24 bits: every value is exactly representable, so the result stays < 1
                # (a 53-bit value rounded to float could round up to 1.0f).
                out[i] = <float>((_mix(key + <uint64_t>i) >> 40) * (1.0 / 16777216.0))
            else:
                out[i] = (_mix(key + <uint64_t>i) >> 11) * (1.0 / 9007199254740992.0)


cdef void dropout_forward_core(const floating* x, floating* mask, floating* out,
                               Py_ssize_t n, Py_ssize_t m, double rate,
                               uint64_t key) noexcept nogil:
    """dropout_forward on raw pointers (x, mask, out: (n, m))."""
    cdef Py_ssize_t i, size = n * m
    cdef floating keep_scale = <floating>(1.0 / (1.0 - rate))
    # Drop when the top 53 bits, as an integer, fall below rate * 2^53.
    cdef uint64_t threshold = <uint64_t>(rate * 9007199254740992.0)
    for i in range(size):
        if (_mix(key + <uint64_t>i) >> 11) < threshold:
            mask[i] = 0
            out[i] = 0
        else:
            mask[i] = keep_scale
            out[i] = x[i] * keep_scale


def dropout_forward(const floating[:, ::1] x not None, floating[:, ::1] mask not None, floating[:, ::1] out not None,
                    double rate, uint64_t key):
    """Inverted dropout: mask = (u >= rate) / (1 - rate), out = x * mask; shapes (n, m).

    0 <= rate < 1 is checked in Python. Kept units are scaled by 1 / (1 - rate) so the
    expected activation is unchanged and nothing needs rescaling at inference. Entry
    (i, j) is decided by (key, i·m + j).
    """
    if x.shape[0] == 0 or x.shape[1] == 0:
        return
    if mask.shape[0] != x.shape[0] or mask.shape[1] != x.shape[1] or \
            out.shape[0] != x.shape[0] or out.shape[1] != x.shape[1]:
        raise ValueError(f"dropout_forward: mask {mask.shape} and out {out.shape} must "
                         f"have x's shape {x.shape}")
    cdef unsigned int mode = fastnn_ftz_on()
    with nogil:
        dropout_forward_core(&x[0, 0], &mask[0, 0], &out[0, 0], x.shape[0], x.shape[1],
                             rate, key)
    fastnn_ftz_restore(mode)


cdef void multiply_core(floating* x, const floating* factor, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(size):
        x[i] *= factor[i]


def multiply_inplace(floating[:, ::1] x not None, const floating[:, ::1] factor not None):
    """x *= factor, element-wise, same shapes (dropout's backward)."""
    if x.shape[0] == 0 or x.shape[1] == 0:
        return
    if factor.shape[0] != x.shape[0] or factor.shape[1] != x.shape[1]:
        raise ValueError(f"multiply_inplace: factor {factor.shape} must have x's shape "
                         f"{x.shape}")
    cdef unsigned int mode = fastnn_ftz_on()
    with nogil:
        multiply_core(&x[0, 0], &factor[0, 0], x.shape[0] * x.shape[1])
    fastnn_ftz_restore(mode)
