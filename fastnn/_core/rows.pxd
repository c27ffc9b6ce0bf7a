# The per_sample output of the loss and metric kernels, shared by losses.pyx and metrics.pyx.

cdef inline double* _rows_out(object per_sample, Py_ssize_t n) except? NULL:
    """The float64 (n,) array receiving each row's (unweighted) value, as a pointer
    (NULL: not wanted). The caller keeps the array alive for the call."""
    cdef double[::1] out
    if per_sample is None:
        return NULL
    out = per_sample
    if out.shape[0] != n:
        raise ValueError(f"per_sample: expected shape ({n},), got ({out.shape[0]},)")
    return &out[0] if n > 0 else NULL
