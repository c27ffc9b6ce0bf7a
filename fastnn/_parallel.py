"""Splitting one memory-bound pass (the optimizer update, the finiteness check) across
threads.

The optimizer update streams every parameter, gradient and slot through memory once a
step; on one core it is bound by that core's share of the cache bandwidth, and at small
batches it is most of the step. Its kernels release the GIL and are element-wise, so the
flat arrays can be cut into contiguous chunks that run at the same time; the result is
bit-identical to one pass, whichever thread runs which chunk. No OpenMP: persistent
Python threads that block on a queue (never spin), and take chunks from a shared counter
rather than a fixed share, so a thread the scheduler has descheduled stalls nothing. The count
follows fastnn.set_num_threads, the one thread setting.
"""
import itertools
import queue
import threading

from fastnn import _threads

# Below this many elements a pass takes a few µs and waking a thread costs more.
MIN_ELEMENTS = 1 << 16


class _Run:
    """One call of run(): its jobs, taken one by one from a shared counter by the caller
    and by the workers that wake up in time. A descheduled worker (a busy machine) takes
    none and delays nothing: the caller runs what is left itself. Only a job a worker has
    started is waited for."""

    def __init__(self, jobs):
        self.jobs = jobs
        self.results = [None] * len(jobs)
        self.error = None
        self.next = itertools.count()     # next() on it is atomic under the GIL
        self.pending = len(jobs)
        self.finished = threading.Condition(threading.Lock())

    def work(self):
        while True:
            i = next(self.next)
            if i >= len(self.jobs):
                return
            try:
                self.results[i] = self.jobs[i]()
            except BaseException as e:      # re-raised in the calling thread
                self.error = e
            with self.finished:
                self.pending -= 1
                if self.pending == 0:
                    self.finished.notify_all()

    def wait(self):
        with self.finished:
            while self.pending:
                self.finished.wait()


class _Worker:
    def __init__(self):
        self.runs = queue.SimpleQueue()
        thread = threading.Thread(target=self._loop, name="fastnn-worker", daemon=True)
        thread.start()

    def _loop(self):
        while True:
            self.runs.get().work()     # a run that finished meanwhile has nothing left


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
    """Run callables at the same time (in this thread and the workers); return their
    results in order.

    Only one caller at a time uses the workers (others run their jobs serially), so
    training two models from two threads stays correct.
    """
    if len(jobs) == 1 or not _lock.acquire(blocking=False):
        return [job() for job in jobs]
    try:
        while len(_workers) < len(jobs) - 1:
            _workers.append(_Worker())
        this = _Run(jobs)
        for worker in _workers[:len(jobs) - 1]:
            worker.runs.put(this)
        this.work()
        this.wait()
        if this.error is not None:
            raise this.error
        return this.results
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
