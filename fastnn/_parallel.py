"""Splitting one memory-bound pass (the optimizer update, the finiteness check) across
threads.

The optimizer update streams every parameter, gradient and slot through memory once a
step; on one core it is bound by that core's share of the cache bandwidth, and at small
batches it is most of the step. Its kernels release the GIL and are element-wise, so the
flat arrays can be cut into contiguous chunks that run at the same time; the result is
bit-identical to one pass. No OpenMP: persistent Python threads that block on an event
(never spin) between jobs, so while BLAS runs they take none of its CPU time. The count
follows fastnn.set_num_threads, the one thread setting.
"""
import threading

from fastnn import _threads

# Below this many elements a pass takes a few µs and waking a thread costs more.
MIN_ELEMENTS = 1 << 16


class _Worker:
    def __init__(self):
        self.go = threading.Event()
        self.done = threading.Event()
        self.job = None
        self.error = None
        thread = threading.Thread(target=self._loop, name="fastnn-worker", daemon=True)
        thread.start()

    def _loop(self):
        while True:
            self.go.wait()
            self.go.clear()
            try:
                self.result = self.job()
            except BaseException as e:      # re-raised in the calling thread
                self.error = e
            self.done.set()


_workers = []
_lock = threading.Lock()


def chunks(size):
    """[(start, stop)] cutting range(size) into one contiguous chunk per thread."""
    threads = _threads.get_num_threads()
    if threads <= 1 or size < MIN_ELEMENTS:
        return [(0, size)]
    parts = min(threads, size // (MIN_ELEMENTS // 2))
    step = -(-size // parts)
    step = -(-step // 16) * 16          # keep chunk starts 64-byte aligned for floats
    return [(lo, min(lo + step, size)) for lo in range(0, size, step)]


def run(jobs):
    """Run callables at the same time (the first in this thread); return their results.

    Only one caller at a time uses the workers (others run their jobs serially), so
    training two models from two threads stays correct.
    """
    if len(jobs) == 1 or not _lock.acquire(blocking=False):
        return [job() for job in jobs]
    try:
        while len(_workers) < len(jobs) - 1:
            _workers.append(_Worker())
        used = _workers[:len(jobs) - 1]
        for worker, job in zip(used, jobs[1:]):
            worker.job = job
            worker.error = None
            worker.done.clear()
            worker.go.set()
        first = jobs[0]()
        results = [first]
        for worker in used:
            worker.done.wait()
            if worker.error is not None:
                raise worker.error
            results.append(worker.result)
        return results
    finally:
        _lock.release()


class ChunkedCheck:
    """all_finite over a flat array, one chunk per thread (views made once)."""

    def __init__(self, array):
        self.array = array
        self.key = None

    def __call__(self):
        from fastnn._core import ops
        threads = _threads.get_num_threads()
        if self.key != threads:
            self.parts = [self.array[lo:hi] for lo, hi in chunks(self.array.shape[0])]
            self.jobs = [(lambda a=a: ops.all_finite(a)) for a in self.parts]
            self.key = threads
        if len(self.jobs) == 1:
            return self.jobs[0]()
        return all(run(self.jobs))
