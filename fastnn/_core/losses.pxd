# The fused softmax cross-entropy on raw pointers, for compiled callers
# (fastnn/_core/step.pyx); losses.pyx documents it and wraps it for Python.
from libc.stdint cimport int64_t
from cython cimport floating

cdef double softmax_cross_entropy_core(const floating* z, const floating* p,
                                       const floating* y, const int64_t* labels,
                                       const floating* sample_weight, Py_ssize_t n,
                                       Py_ssize_t m, double label_smoothing, double scale,
                                       floating* grad, double* per_sample) noexcept nogil
