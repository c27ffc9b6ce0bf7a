# The dense layer's kernels on raw pointers, for compiled callers (fastnn/_core/step.pyx);
# dense.pyx documents them and wraps each for Python. Shapes: x (n, k), w (k, m), b (m,).
from cython cimport floating

cdef void dense_forward_core(const floating* x, const floating* w, const floating* b,
                             floating* out, floating* keep_z, int n, int k, int m,
                             int activation, floating alpha) noexcept nogil

cdef double dense_backward_core(const floating* x, const floating* w, const floating* b,
                                const floating* out, floating* grad_out, floating* grad_w,
                                floating* grad_b, floating* grad_x, int n, int k, int m,
                                int activation, floating alpha, floating kernel_l1,
                                floating kernel_l2, floating bias_l1,
                                floating bias_l2) noexcept nogil
