from cython cimport floating

# Activation codes shared by the kernels and fastnn/activations.py.
cpdef enum Activation:
    LINEAR = 0
    SIGMOID = 1
    TANH = 2
    RELU = 3
    LEAKY_RELU = 4
    SOFTMAX = 5

cdef void bias_activation(floating* out, const floating* bias, floating* keep_z,
                          Py_ssize_t n, Py_ssize_t m, int activation,
                          floating alpha) noexcept nogil

cdef void activation_grad_bias(const floating* out, floating* grad, floating* grad_bias,
                               Py_ssize_t n, Py_ssize_t m, int activation,
                               floating alpha) noexcept nogil
