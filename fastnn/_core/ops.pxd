# The finiteness test on raw pointers, for compiled callers (fastnn/_core/step.pyx).
from cython cimport floating

cdef bint all_finite_core(const floating* x, Py_ssize_t n) noexcept nogil
