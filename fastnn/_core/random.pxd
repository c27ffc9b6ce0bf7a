# Dropout's kernels on raw pointers, for compiled callers (fastnn/_core/step.pyx);
# random.pyx documents them and wraps each for Python.
from libc.stdint cimport uint64_t
from cython cimport floating

cdef uint64_t mix_key_core(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) noexcept nogil

cdef void dropout_forward_core(const floating* x, floating* mask, floating* out,
                               Py_ssize_t n, Py_ssize_t m, double rate,
                               uint64_t key) noexcept nogil

cdef void multiply_core(floating* x, const floating* factor, Py_ssize_t size) noexcept nogil
