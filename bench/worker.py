"""A worker process: one implementation alone in its own process, driven over a pipe.

    python bench/worker.py IMPL THREADS DTYPE      (started by driver.py, never by hand)

Measured here, sharing one process with PyTorch's or JAX's thread pools cost fastnn
20-30% (their idle workers spin on the same cores), so every implementation runs in a
process of its own that imports only its library. The driver sends commands as pickled
(name, args) tuples on stdin and reads one pickled ("ok", value) or ("error", text)
reply per command on the process's original stdout; anything the libraries print goes
to stderr. Commands (methods of Runner): ping, prepare_train, prepare_predict, sample,
drop, and long_prepare / long_epoch for --long. A worker holds its own copy of the fixed random data (cases.random_data) and the
shared initial weights (cases.initial_weights), so every process trains on the same
numbers; each timed sample starts from a reset to those weights (untimed).
"""
import importlib
import os
import pickle
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT]          # bench/ modules, and the fastnn of this source tree

import cases    # noqa: E402
import timing   # noqa: E402

# The library each implementation imports (for the version line and the missing-peer
# check, which the driver makes without importing any of them) ...
LIBRARY = {"fastnn-fit": "fastnn", "fastnn-tob": "fastnn", "limit": "scipy",
           "numpy": "numpy", "sklearn": "sklearn", "torch": "torch",
           "torch-fused": "torch", "jax": "jax", "onnxruntime": "onnxruntime"}
# ... and the module whose import loads its BLAS / thread pools: imported before the
# thread count is set (threadpoolctl limits only libraries already loaded).
LOADS = {"limit": "scipy.linalg.blas", "sklearn": "sklearn.neural_network",
         "jax": "optax"}


def set_threads(impl, threads):
    """Each library's own way of using `threads` threads, once it is imported."""
    if impl.startswith("fastnn"):
        import fastnn
        fastnn.set_num_threads(threads)
    elif impl in ("torch", "torch-fused"):
        import torch
        torch.set_num_threads(threads)
    elif impl in ("limit", "numpy", "sklearn"):
        from threadpoolctl import threadpool_limits
        # kept referenced: the limits hold while the object lives
        set_threads.limiter = threadpool_limits(limits=threads, user_api="blas")
    # onnxruntime: SessionOptions (onnx_predict.py); jax: its CPU affinity, set before
    # it is imported (jax_mlp.limit_cpus)


def make_trainer(impl, net, dtype, batch, weights, x, y):
    """An object with reset(), train_steps(x, y, batch, steps) -> seconds and
    predict(x) for one implementation."""
    if impl in ("fastnn-fit", "fastnn-tob"):
        from fastnn_mlp import FastnnMLP
        return FastnnMLP(net, weights, dtype, mode=impl.split("-")[1])
    if impl == "numpy":
        from numpy_mlp import NumpyMLP
        return NumpyMLP(net, weights, dtype)
    if impl in ("torch", "torch-fused"):
        from torch_mlp import TorchMLP
        return TorchMLP(net, weights, dtype, fused=impl == "torch-fused")
    if impl == "jax":
        from jax_mlp import JaxMLP
        return JaxMLP(net, weights, dtype)
    if impl == "sklearn":
        from sklearn_mlp import SklearnMLP
        return SklearnMLP(net, dtype, batch, x[:batch], y[:batch])
    if impl == "limit":
        from gemm_limit import GemmLimit
        return GemmLimit(net, dtype, batch)
    raise ValueError(f"{impl} does not train")


def _repeat(f, n):
    start = time.perf_counter()
    for _ in range(n):
        f()
    return time.perf_counter() - start


class Runner:
    def __init__(self, impl, threads, dtype):
        self.impl, self.threads, self.dtype = impl, threads, dtype
        if impl == "jax":
            from jax_mlp import limit_cpus
            limit_cpus(threads)
        if impl == "limit":
            # fastnn/__init__.py's default for the OpenBLAS both call (read when it
            # loads): the limit runs the same BLAS the way fastnn runs it.
            os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
        # imported now, so the import's cost stays out of every case
        importlib.import_module(LOADS.get(impl, LIBRARY[impl]))
        importlib.import_module(LIBRARY[impl])
        set_threads(impl, threads)
        self.data = None
        self.samplers = {}

    def ping(self):
        lib = sys.modules[LIBRARY[self.impl]]
        return {"pid": os.getpid(), "library": LIBRARY[self.impl],
                "version": getattr(lib, "__version__", None)}

    def _data(self):
        if self.data is None:
            self.data = cases.random_data(cases.DATA_ROWS, 784, self.dtype)
        return self.data

    def prepare_train(self, key, net_key, batch, seconds):
        """Build the implementation for one training case, warm it up and choose the
        steps per sample (about `seconds` each); returns that step count."""
        net = cases.NETS[net_key]
        x, y = self._data()
        t = make_trainer(self.impl, net, self.dtype, batch,
                         cases.initial_weights(net, self.dtype), x, y)

        def run(s):
            t.reset()
            return t.train_steps(x, y, batch, s)

        steps = timing.calibrate_steps(run, seconds, max_steps=x.shape[0] // batch)
        run(steps)        # untimed: whatever the calibrated length makes (JAX's batches)
        self.samplers[key] = lambda: steps * batch / run(steps)
        return steps

    def prepare_predict(self, key, net_key, seconds, batch, onnx_path=None):
        """Latency at batch 1 (sampler key + ':lat', µs) and samples/s at `batch`
        (key + ':thr'); returns the calls per throughput sample."""
        net = cases.NETS[net_key]
        x, y = self._data()
        x1, xb = x[:1], x[:batch]
        if self.impl == "limit":
            from gemm_limit import GemmLimit
            one, big = GemmLimit(net, self.dtype, 1), GemmLimit(net, self.dtype, batch)
            f1, fb = (lambda: one.forward_steps(1)), (lambda: big.forward_steps(1))
        else:
            if self.impl == "onnxruntime":
                from onnx_predict import OnnxPredict
                t = OnnxPredict(onnx_path, self.threads)
            else:
                t = make_trainer(self.impl, net, self.dtype, 32,
                                 cases.initial_weights(net, self.dtype), x, y)
            if hasattr(t, "predictor"):
                f1, fb = t.predictor(x1), t.predictor(xb)
            else:
                f1, fb = (lambda: t.predict(x1)), (lambda: t.predict(xb))
        f1()
        fb()
        calls = max(1, timing.calibrate_steps(lambda s: _repeat(fb, s), seconds,
                                              min_steps=1))
        self.samplers[key + ":lat"] = lambda: timing.latency_sample(f1, seconds) * 1e6
        self.samplers[key + ":thr"] = lambda: calls * batch / _repeat(fb, calls)
        return calls

    def long_prepare(self, net_key, batch):
        """--long: the implementation at its initial state on the real data (random
        when it is not installed); returns the data's description."""
        import long_run
        net = cases.NETS[net_key]
        x, y, source = long_run.load_data(self.dtype)
        t = make_trainer(self.impl, net, self.dtype, batch,
                         cases.initial_weights(net, self.dtype), x, y)
        t.reset()
        self.long = (t, x, y, batch)
        return source

    def long_epoch(self):
        """--long: one more full epoch, no reset (long_run.one_epoch)."""
        import long_run
        name = {v: k for k, v in long_run.IMPLS.items()}[self.impl]
        return long_run.one_epoch(name, *self.long)

    def sample(self, key):
        return self.samplers[key]()

    def drop(self, prefix):
        """Forget the samplers of a finished case (and the objects they hold)."""
        for k in [k for k in self.samplers if k.split(":")[0] == prefix]:
            del self.samplers[k]


def main():
    impl, threads, dtype = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    # Ctrl-C in a terminal reaches the whole process group: the driver handles it and
    # closes the pipes (EOF ends this loop), so a worker does not die mid-reply.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "wb")      # the protocol's channel ...
    os.dup2(2, 1)                              # ... and prints go to stderr
    commands = sys.stdin.buffer
    try:
        runner = Runner(impl, threads, dtype)
        failed = None
    except Exception as exc:
        runner, failed = None, f"{type(exc).__name__}: {exc}"
    while True:
        try:
            name, args = pickle.load(commands)
        except EOFError:                       # the driver closed the pipe (or died)
            return
        try:
            if failed:
                raise RuntimeError(f"{impl} could not start: {failed}")
            reply = ("ok", getattr(runner, name)(*args))
        except Exception as exc:
            traceback.print_exc()
            reply = ("error", f"{type(exc).__name__}: {exc}")
        pickle.dump(reply, replies)
        replies.flush()


if __name__ == "__main__":
    main()
