"""The driver's side of the worker processes (worker.py), and the busy-loop process of
the load case.

Workers are started one at a time (so no import competes with a measurement) and are
kept for a group of cases with the same thread count and dtype; the driver interleaves
them round by round with timing.interleave, one command ("reset, run k steps, return
the rate") per sample, and sleeps while they run. A worker dies with the driver: its
pipe closes (EOF ends its loop), and on Linux it also gets SIGKILL when the driver's
thread that started it exits (PR_SET_PDEATHSIG), like the busy-loop process.
"""
import contextlib
import ctypes
import importlib.util
import os
import pickle
import signal
import subprocess
import sys

from worker import LIBRARY

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "worker.py")
BUSY_LOOP = "while True: pass"

INSTALL = {"torch": "pip install torch==2.13.0", "sklearn": "pip install scikit-learn",
           "jax": "pip install jax jaxlib optax", "onnxruntime": "pip install onnxruntime"}


def missing(impls):
    """{impl: why it is skipped} for implementations whose library is not installed
    (found without importing it: the driver never loads a peer's thread pools)."""
    out = {}
    for impl in impls:
        lib = LIBRARY[impl]
        libs = [lib, "optax"] if lib == "jax" else [lib]
        absent = [m for m in libs if importlib.util.find_spec(m) is None]
        if absent:
            out[impl] = f"{', '.join(absent)} not installed ({INSTALL.get(lib, '')})"
    return out


def _die_with_parent():
    """In the child before exec: get SIGKILL when the parent goes (Linux only)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class WorkerError(RuntimeError):
    pass


class Worker:
    """One implementation in its own process; call(name, *args) runs a Runner method."""

    def __init__(self, impl, threads, dtype):
        self.impl, self.threads, self.dtype = impl, threads, dtype
        self.proc = subprocess.Popen([sys.executable, WORKER, impl, str(threads), dtype],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     preexec_fn=_die_with_parent)
        self.info = self.call("ping")        # waits until its imports are done

    def call(self, name, *args):
        try:
            pickle.dump((name, args), self.proc.stdin)
            self.proc.stdin.flush()
            status, value = pickle.load(self.proc.stdout)
        except (EOFError, BrokenPipeError, OSError) as exc:
            raise WorkerError(f"{self.impl} worker exited (return code "
                              f"{self.proc.poll()}; its traceback is on stderr)") from exc
        if status != "ok":
            raise WorkerError(value)
        return value

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


class Workers:
    """The live workers, keyed (impl, threads, dtype); a context manager that closes
    them all, also on errors and Ctrl-C."""

    def __init__(self):
        self.live = {}
        self.extra_pids = []         # other processes of ours (the busy loop)

    def get(self, impl, threads, dtype):
        key = (impl, threads, dtype)
        if key not in self.live:
            self.live[key] = Worker(impl, threads, dtype)
        return self.live[key]

    def pids(self):
        """Processes of this run whose CPU time is ours (for machine.other_load)."""
        return [w.proc.pid for w in self.live.values() if w.proc.returncode is None] + \
            list(self.extra_pids)

    def close(self):
        while self.live:
            _, w = self.live.popitem()
            w.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@contextlib.contextmanager
def busy_process(workers=None):
    """One plain busy-loop Python process beside the measurement, killed afterwards
    whatever happens (exceptions, Ctrl-C; PR_SET_PDEATHSIG if the driver is killed).
    Its CPU time is counted as ours in `workers`' pids, so other_load stays the load
    of everyone else."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY_LOOP], preexec_fn=_die_with_parent)
    if workers is not None:
        workers.extra_pids.append(proc.pid)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
        if workers is not None:
            workers.extra_pids.remove(proc.pid)
