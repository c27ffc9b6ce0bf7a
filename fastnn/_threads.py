"""Thread control: the one place that decides how many threads fastnn's BLAS uses.

fastnn's own kernels are single-threaded loops with the GIL released; all parallelism is
inside BLAS (scipy's OpenBLAS, which `scipy.linalg.cython_blas` calls). So one knob is
enough: `set_num_threads(n)` sets BLAS's thread count through threadpoolctl. The default,
applied the first time a model is built, is the number of CPUs this process may really use:
the affinity mask and a cgroup (container) CPU quota are respected, not just the host's
core count, so BLAS does not oversubscribe a container.

The other parallel part is fastnn's optimizer update (and the finiteness check), split in
chunks over the same number of threads (fastnn/_parallel.py): Python threads that block,
never spin. So that BLAS's idle threads do not spin against them either, fastnn sets
OPENBLAS_THREAD_TIMEOUT=4 at import unless it is already set (see fastnn/__init__.py).
"""
import math
import os

from threadpoolctl import threadpool_info, threadpool_limits

_state = {"threads": None, "limiter": None}


def available_cpus():
    """CPUs this process may use: affinity mask, capped by a cgroup v2/v1 CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def _cgroup_quota():
    """The container's CPU limit in CPUs, or None when there is none."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:           # cgroup v2
            quota, period = f.read().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:                                                     # cgroup v1
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period = int(f.read())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def set_num_threads(n):
    """Use n threads for every BLAS call fastnn makes (and NumPy/SciPy's BLAS with it).

    n must be a positive integer. Returns the previous setting (None if never set).
    """
    if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
        raise TypeError(f"set_num_threads: n must be a positive integer, got {n!r}")
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    import fastnn._core.blas  # noqa: F401  (the kernels load the BLAS that they call)
    previous = _state["threads"]
    _state["limiter"] = threadpool_limits(limits=n, user_api="blas")
    _state["threads"] = n
    return previous


def get_num_threads():
    """The thread count fastnn set (the default once a model has been built)."""
    ensure_default()
    return _state["threads"]


def ensure_default():
    """Apply the default thread count once, unless the user already chose one."""
    if _state["threads"] is None:
        set_num_threads(available_cpus())


def blas_info():
    """threadpoolctl's description of the loaded BLAS libraries (for reports)."""
    import fastnn._core.blas  # noqa: F401
    return [i for i in threadpool_info() if i.get("user_api") == "blas"]
