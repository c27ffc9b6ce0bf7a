"""What the suite measures: the networks, their shared initial weights and data, and the
case matrix of a quick and a default run.

Every implementation (fastnn, NumPy, PyTorch, JAX, the GEMM-only limit) starts from the same
weights (Glorot-uniform from a fixed seed, zero biases) and trains on the same fixed
random data, so a repeat can be reset to exactly the same state (see run.py).
"""
from dataclasses import dataclass, field

import numpy as np

SEED = 20240601
DATA_ROWS = 32768          # rows of the fixed random training set (one per dtype)
CLASSES = 10


@dataclass(frozen=True)
class Net:
    key: str                 # short name for the command line
    name: str                # what the table shows
    hidden: tuple            # hidden layer widths
    activation: str          # 'relu' or 'sigmoid' (every hidden layer)
    optimizer: str           # 'adam' (lr 1e-3) or 'momentum' (SGD lr 0.01, momentum 0.9)
    inputs: int = 784
    outputs: int = CLASSES

    @property
    def sizes(self):
        return (self.inputs,) + tuple(self.hidden) + (self.outputs,)

    @property
    def layers(self):
        """(fan_in, fan_out) of each Dense layer."""
        s = self.sizes
        return list(zip(s[:-1], s[1:]))

    @property
    def n_params(self):
        return sum(k * m + m for k, m in self.layers)

    @property
    def lr(self):
        return 1e-3 if self.optimizer == "adam" else 0.01

    @property
    def optimizer_label(self):
        return "Adam" if self.optimizer == "adam" else "SGD+momentum 0.9"


NETS = {
    "big": Net("big", "784-512-512-10", (512, 512), "relu", "adam"),
    "small": Net("small", "784-128-10", (128,), "relu", "adam"),
    "deep": Net("deep", "784-8x256-10", (256,) * 8, "sigmoid", "momentum"),
}

# The implementations, in the order each round runs them (A B C ... A B C ...), each in
# a worker process of its own (worker.py).
TRAIN_IMPLS = ["fastnn-fit", "fastnn-tob", "limit", "numpy", "sklearn", "torch",
               "torch-fused", "jax"]
PREDICT_IMPLS = ["fastnn", "limit", "numpy", "sklearn", "torch", "jax", "onnxruntime"]
# The peers fastnn is held against ("fastnn / best peer"): per round, the best of them.
TRAIN_PEERS = ["torch-fused", "jax"]
PREDICT_PEERS = ["onnxruntime", "torch", "jax"]
MEMORY_IMPLS = ["fastnn", "numpy", "torch-fused"]
# The load case (one busy-loop process beside): (implementation, threads), where None is
# all usable CPUs.
LOAD_IMPLS = [("fastnn-fit", None), ("fastnn-fit", 1), ("jax", None), ("torch-fused", None)]


def worker_impl(impl):
    """The worker that runs a predict implementation ("fastnn" is fastnn-fit's)."""
    return "fastnn-fit" if impl == "fastnn" else impl


@dataclass
class Plan:
    """The case matrix of one run (the command-line options fill it in)."""
    cases: list = field(default_factory=lambda: ["train", "predict", "load", "memory"])
    nets: list = field(default_factory=lambda: ["big", "small", "deep"])
    predict_nets: list = field(default_factory=lambda: ["big", "small", "deep"])
    dtypes: list = field(default_factory=lambda: ["float32", "float64"])
    threads: list = field(default_factory=list)         # filled from the CPU count
    batches: list = field(default_factory=lambda: [1, 8, 32, 128, 512])
    train_impls: list = field(default_factory=lambda: list(TRAIN_IMPLS))
    predict_impls: list = field(default_factory=lambda: list(PREDICT_IMPLS))
    memory_impls: list = field(default_factory=lambda: list(MEMORY_IMPLS))
    load_net: str = "big"
    load_batches: list = field(default_factory=lambda: [32, 128, 512])
    load_impls: list = field(default_factory=lambda: list(LOAD_IMPLS))
    rounds: int = 5                 # interleaved repeats of every measurement
    seconds: float = 0.08           # target length of one timed sample
    predict_batch: int = 1024
    memory_batch: int = 128


def quick_plan(all_threads):
    """A few minutes: what the issue-11 targets need (784-512-512-10 and 784-128-10,
    float32, all cores, fastnn fit against PyTorch fused and JAX, with the GEMM limit),
    predict for both ReLU models against ONNX Runtime, PyTorch and JAX, the load case,
    and fastnn's peak memory."""
    return Plan(cases=["train", "predict", "load", "memory"], nets=["big", "small"],
                predict_nets=["big", "small"], dtypes=["float32"], threads=[all_threads],
                train_impls=["fastnn-fit", "limit", "torch-fused", "jax"],
                predict_impls=["fastnn", "limit", "torch", "jax", "onnxruntime"],
                load_impls=[("fastnn-fit", None), ("fastnn-fit", 1), ("jax", None)],
                rounds=5, seconds=0.06, memory_impls=["fastnn"])


def default_plan(all_threads):
    threads = [all_threads] + ([1] if all_threads != 1 else [])
    return Plan(threads=threads)


def initial_weights(net, dtype, seed=SEED):
    """[(W, b), ...] Glorot-uniform W (fan_in, fan_out), zero b, the same for every
    implementation."""
    rng = np.random.default_rng(seed)
    out = []
    for k, m in net.layers:
        limit = np.sqrt(6.0 / (k + m))
        w = rng.uniform(-limit, limit, (k, m)).astype(dtype)
        out.append((w, np.zeros(m, dtype)))
    return out


def random_data(rows, inputs, dtype, seed=SEED + 1):
    """A fixed random data set: inputs uniform in [0, 1) (like scaled pixels), labels
    uniform over the classes (int64)."""
    rng = np.random.default_rng(seed)
    x = rng.random((rows, inputs), dtype=np.dtype(dtype).type)
    y = rng.integers(0, CLASSES, rows, dtype=np.int64)
    return x, y
