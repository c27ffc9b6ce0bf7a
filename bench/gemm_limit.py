"""The limit: a training step's matrix products alone, through the BLAS fastnn calls.

fastnn calls BLAS through scipy.linalg.cython_blas, i.e. scipy's own OpenBLAS; the
wrappers in scipy.linalg.blas call the same library. Per step and per Dense layer i
(x_i: n x k input, W_i: k x m):
    forward   out_i = x_i @ W_i
    backward  dW_i  = x_i^T @ dz_i          and, for i > 0,   dX_i = dz_i @ W_i^T
(the first layer needs no dX). At batch 1 the same products are gemv, ger and gemv^T.
All operands are preallocated C-contiguous arrays, passed to the Fortran-order BLAS as
their transposes (so no call copies anything), the same operand order a row-major
library uses. Each scipy wrapper call costs about 2 µs of Python (measured and reported
as `wrapper_us`), which makes the limit slightly pessimistic at batch 1.
"""
import time

import numpy as np
from scipy.linalg import blas


class GemmLimit:
    def __init__(self, net, dtype, batch, seed=0):
        dt = np.dtype(dtype)
        p = "s" if dt == np.float32 else "d"
        self.gemm = getattr(blas, p + "gemm")
        self.gemv = getattr(blas, p + "gemv")
        self.ger = getattr(blas, p + "ger")
        self.batch = batch
        rng = np.random.default_rng(seed)
        self.layers = []
        for i, (k, m) in enumerate(net.layers):
            a = {
                "x": rng.random((batch, k), dtype=dt.type),
                "W": (rng.random((k, m), dtype=dt.type) - 0.5) * 0.1,
                "out": np.empty((batch, m), dt),
                "dz": (rng.random((batch, m), dtype=dt.type) - 0.5) * 0.01,
                "dW": np.zeros((k, m), dt),
                "dX": np.empty((batch, k), dt) if i > 0 else None,
            }
            self.layers.append(a)

    # -- one product each; `ops()` lists them in step order --------------------------
    def forward_op(self, a):
        W, x, out = a["W"], a["x"], a["out"]
        if self.batch == 1:
            gemv = self.gemv
            return lambda: gemv(1.0, W.T, x[0], beta=0.0, y=out[0], overwrite_y=1)
        gemm = self.gemm
        return lambda: gemm(1.0, W.T, x.T, beta=0.0, c=out.T, overwrite_c=1)

    def grad_w_op(self, a):
        x, dz, dW = a["x"], a["dz"], a["dW"]
        if self.batch == 1:
            # ger accumulates (dW += dz x^T): the same memory traffic as a fresh write
            ger = self.ger
            return lambda: ger(1.0, dz[0], x[0], a=dW.T, overwrite_a=1)
        gemm = self.gemm
        return lambda: gemm(1.0, dz.T, x.T, trans_b=1, beta=0.0, c=dW.T, overwrite_c=1)

    def grad_x_op(self, a):
        W, dz, dX = a["W"], a["dz"], a["dX"]
        if self.batch == 1:
            gemv = self.gemv
            return lambda: gemv(1.0, W.T, dz[0], beta=0.0, y=dX[0], trans=1, overwrite_y=1)
        gemm = self.gemm
        return lambda: gemm(1.0, W.T, dz.T, trans_a=1, beta=0.0, c=dX.T, overwrite_c=1)

    def ops(self, training=True):
        """[(label, callable)] of one step's products, in the order a step runs them."""
        out = [(f"forward {i}", self.forward_op(a)) for i, a in enumerate(self.layers)]
        if training:
            for i in range(len(self.layers) - 1, -1, -1):
                a = self.layers[i]
                out.append((f"backward {i} dW", self.grad_w_op(a)))
                if a["dX"] is not None:
                    out.append((f"backward {i} dX", self.grad_x_op(a)))
        return out

    # -- the common interface of the suite --------------------------------------------
    def reset(self):
        for a in self.layers:
            a["dW"].fill(0)

    def train_steps(self, x, y, batch, steps):
        """steps repetitions of one training step's products (x, y are not used: the
        products' cost does not depend on the values). Returns seconds."""
        calls = [f for _, f in self.ops(training=True)]
        start = time.perf_counter()
        for _ in range(steps):
            for f in calls:
                f()
        return time.perf_counter() - start

    def forward_steps(self, steps):
        calls = [f for _, f in self.ops(training=False)]
        start = time.perf_counter()
        for _ in range(steps):
            for f in calls:
                f()
        return time.perf_counter() - start


def wrapper_overhead_us(dtype, calls=20000):
    """Python cost of one scipy.linalg.blas gemm call on 1x1 operands, in µs."""
    gemm = blas.sgemm if np.dtype(dtype) == np.float32 else blas.dgemm
    a = np.ones((1, 1), dtype)
    c = np.empty((1, 1), dtype)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            gemm(1.0, a, a, beta=0.0, c=c, overwrite_c=1)
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6
