"""Thread control: the one place that decides how many threads fastnn uses.

`set_num_threads(n)` sets it. The parallel parts are fastnn's own: the large matrix
products, cut into blocks of output columns (or rows) that n threads take from a shared
counter (fastnn/_core/workpool.h), and the optimizer update (and finiteness check), split
in chunks over the same n threads (fastnn/_parallel.py). BLAS itself is set to one thread
(through threadpoolctl, which covers NumPy's and SciPy's OpenBLAS): its static split waits
on every call for a thread the scheduler has descheduled, so beside one busy process a
step with 2 OpenBLAS threads ran 3-100x slower than with 1 on a 2-core machine; with blocks
taken from a counter a late thread takes none and costs nothing. The default, applied the
first time a model is built, is this process's share of the CPUs (`default_threads`): the
CPUs it may really use (the affinity mask and a cgroup (container) CPU quota, not just the
host's core count), divided among the MPI ranks of a data-parallel job on this node, and
never more than an explicit OPENBLAS_NUM_THREADS / OMP_NUM_THREADS or, inside a Dask
worker, the worker's thread count (Dask's nanny also sets OPENBLAS_NUM_THREADS=1 in its
workers). So neither a container, nor K ranks on one node, nor a node full of Dask workers
is oversubscribed. fastnn's idle threads block, never spin.
"""
import math
import os
import sys

from threadpoolctl import threadpool_info, threadpool_limits

# threads: the count in force; by_user: set through set_num_threads (a default is re-derived
# when the CPU share changes, a user's choice never); node_ranks: processes sharing the
# node's CPUs (the MPI ranks of a data-parallel job on it).
_state = {"threads": None, "limiter": None, "by_user": False, "node_ranks": 1}


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


def _environment_limit():
    """The thread count OpenBLAS would take from the environment (its own precedence:
    OPENBLAS_NUM_THREADS, then OMP_NUM_THREADS), or None when neither is a positive
    integer."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def _dask_worker_threads():
    """The thread count of the Dask worker running this code, or None outside one
    (distributed is looked at only if it is already imported)."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        worker = distributed.get_worker()
    except (ValueError, AttributeError):
        return None
    state = getattr(worker, "state", None)
    nthreads = getattr(state, "nthreads", None) or getattr(worker, "nthreads", None)
    return nthreads if isinstance(nthreads, int) and nthreads > 0 else None


def default_threads():
    """The default thread count: this process's share of the CPUs (see the module
    docstring)."""
    n = max(1, available_cpus() // _state["node_ranks"])
    for limit in (_environment_limit(), _dask_worker_threads()):
        if limit is not None:
            n = min(n, limit)
    return n


def share_node(ranks):
    """``ranks`` processes share this node's CPUs (fastnn.distributed calls it with the
    MPI ranks on the node): the default thread count becomes the share of one, also if
    it was applied already, unless the user chose a count."""
    _state["node_ranks"] = max(1, int(ranks))
    if _state["threads"] is not None and not _state["by_user"]:
        _apply(default_threads())


def set_num_threads(n):
    """Use n threads for fastnn's large matrix products and its optimizer update (BLAS,
    NumPy/SciPy's included, runs single-threaded; see the module docstring).

    n must be a positive integer. Returns the previous setting (None if never set).
    """
    if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
        raise TypeError(f"set_num_threads: n must be a positive integer, got {n!r}")
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    previous = _apply(n)
    _state["by_user"] = True
    return previous


def _apply(n):
    from fastnn._core import blas
    previous = _state["threads"]
    # BLAS itself runs single-threaded; fastnn splits its large products over its own n
    # threads (fastnn/_core/workpool.h says why: OpenBLAS's static split stalls on a busy
    # machine).
    _state["limiter"] = threadpool_limits(limits=1, user_api="blas")
    blas.set_split_threads(n)
    _state["threads"] = n
    return previous


def get_num_threads():
    """The thread count fastnn set (the default once a model has been built)."""
    ensure_default()
    return _state["threads"]


def ensure_default():
    """Apply the default thread count once, unless the user already chose one."""
    if _state["threads"] is None:
        _apply(default_threads())


def blas_info():
    """threadpoolctl's description of the loaded BLAS libraries (for reports)."""
    import fastnn._core.blas  # noqa: F401
    return [i for i in threadpool_info() if i.get("user_api") == "blas"]
