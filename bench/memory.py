"""Peak memory of training one epoch on Fashion-MNIST-sized data (60000 x 784 float32),
each implementation in a fresh Python process: the high-water mark of its resident set
(resource.getrusage ru_maxrss) over the whole process, imports included.

The parent writes the data set once to .npy files (the real Fashion-MNIST when fastnn
finds it installed, else random data of the same shape); the child np.load()s them, so
loading costs exactly the data set and no conversion temporaries. The child is started
through a small launcher process: Linux carries a process's ru_maxrss across fork+exec,
so a child forked straight from the (large) suite would report the suite's own size;
a grandchild of a small launcher starts from the launcher's ~10 MB. The child also
reports VmHWM (/proc/self/status) of its own memory image as a cross-check.
fastnn's budget is
    data set + 4 x parameters (weights, gradients, 2 optimizer slots)
    + batch buffers (the workspace of one batch size) + 60 MB
where 60 MB (10^6 bytes) stands for the interpreter with numpy, scipy and fastnn loaded.

Run as a child:  python bench/memory.py IMPL NET DTYPE BATCH THREADS DATA_DIR
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ROWS = 60000
OVERHEAD = 60e6


LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def maxrss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # KiB on Linux


def vmhwm_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None


def prepare_data(directory, dtype="float32"):
    """Write x.npy / y.npy into directory; returns a description of the data."""
    source = "random 60000x784"
    x = y = None
    try:
        from fastnn import datasets
        (xr, yr), _ = datasets.load_fashion_mnist(download=False)
        x = datasets.prepare_images(xr, dtype=dtype)
        y = yr.astype(np.int64)
        source = "Fashion-MNIST train set (real)"
    except Exception:
        rng = np.random.default_rng(0)
        x = rng.random((ROWS, 784), dtype=np.dtype(dtype).type)
        y = rng.integers(0, 10, ROWS, dtype=np.int64)
    np.save(os.path.join(directory, "x.npy"), x)
    np.save(os.path.join(directory, "y.npy"), y)
    return {"source": source, "rows": int(x.shape[0]), "bytes": int(x.nbytes + y.nbytes)}


def batch_buffer_bytes(net, dtype, batch):
    """fastnn's training workspace for one batch size: the gathered x, y, sample
    weights and loss gradient, and per Dense layer its output, its input gradient (not
    for the first layer) and the logits of the last (kept for the fused loss)."""
    isz = np.dtype(dtype).itemsize
    floats = batch * (net.inputs + 1 + net.outputs)
    for i, (k, m) in enumerate(net.layers):
        floats += batch * m + (batch * k if i > 0 else 0)
    floats += batch * net.outputs
    return floats * isz + batch * 8


def budget_bytes(net, dtype, batch, data_bytes):
    isz = np.dtype(dtype).itemsize
    return data_bytes + 4 * net.n_params * isz + batch_buffer_bytes(net, dtype, batch) \
        + OVERHEAD


def measure(impl, net_key, dtype, batch, threads, data_dir, timeout=600):
    """Run one child; returns its JSON report (or {'error': ...})."""
    cmd = [sys.executable, "-c", LAUNCHER, sys.executable, os.path.abspath(__file__), impl,
           net_key, dtype, str(batch), str(threads), data_dir]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def temp_dir():
    return tempfile.TemporaryDirectory(prefix="fastnn-bench-mem-")


# ------------------------------------------------------------------------- child --
def child(impl, net_key, dtype, batch, threads, data_dir):
    sys.path[:0] = [HERE, ROOT]          # bench/ modules, and the fastnn of this tree
    from cases import NETS, initial_weights
    net = NETS[net_key]
    import fastnn as fn   # numpy/scipy/fastnn in every child, as a user would have
    fn.set_num_threads(threads)
    if impl.startswith("torch"):
        import torch
        torch.set_num_threads(threads)
        from torch_mlp import TorchMLP
    base = maxrss_bytes()
    x = np.load(os.path.join(data_dir, "x.npy"))
    y = np.load(os.path.join(data_dir, "y.npy"))
    after_load = maxrss_bytes()
    weights = initial_weights(net, dtype)
    steps = -(-x.shape[0] // batch)
    start = time.perf_counter()
    if impl == "fastnn":
        from fastnn_mlp import build_model
        model = build_model(net, weights, dtype)
        del weights
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    elif impl == "numpy":
        from numpy_mlp import NumpyMLP
        NumpyMLP(net, weights, dtype).train_steps(x, y, batch, steps)
    elif impl == "torch-fused":
        TorchMLP(net, weights, dtype, fused=True).train_steps(x, y, batch, steps)
    else:
        raise SystemExit(f"unknown impl {impl}")
    seconds = time.perf_counter() - start
    print(json.dumps({"impl": impl, "peak_bytes": maxrss_bytes(), "vmhwm_bytes": vmhwm_bytes(),
                      "imports_bytes": base,
                      "after_load_bytes": after_load, "data_bytes": int(x.nbytes + y.nbytes),
                      "seconds": seconds}))


if __name__ == "__main__":
    a = sys.argv[1:]
    child(a[0], a[1], a[2], int(a[3]), int(a[4]), a[5])
