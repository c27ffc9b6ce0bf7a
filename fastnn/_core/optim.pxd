# A prepared optimizer step for compiled callers (fastnn/_core/step.pyx): optim.pyx's
# rule functions fill an Update (into=...), update_range runs it on a range of elements.

ctypedef struct update_t:
    int rule                # which rule (optim.pyx's Rule); -1: not prepared
    bint is_double
    Py_ssize_t size         # elements of the flat arrays
    void* w
    const void* g
    void* slot[3]           # the rule's slot arrays (NULL: unused)
    double scalar[8]        # the rule's per-step scalars, as the rule computed them
    double scale, clip

cdef class Update:
    cdef update_t u

cdef Py_ssize_t update_range(const update_t* u, Py_ssize_t lo, Py_ssize_t hi,
                             const void* g) noexcept nogil
