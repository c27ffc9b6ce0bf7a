# Flush-to-zero for the duration of a kernel call (see fpmode.h).
cdef extern from "fpmode.h":
    unsigned int fastnn_ftz_on() noexcept nogil
    void fastnn_ftz_restore(unsigned int old) noexcept nogil
