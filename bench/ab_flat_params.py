"""A/B: one Adam kernel call over all parameters in one flat buffer vs one call per weight
array (what a per-parameter design does), float32, interleaved, medians of 7 rounds.

    python bench/ab_flat_params.py
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fastnn._core import optim  # noqa: E402


def bench(shapes, reps):
    sizes = [int(np.prod(s)) for s in shapes]
    n = sum(sizes)
    rng = np.random.default_rng(0)
    flat = {k: rng.random(n, dtype=np.float32) for k in "wgmv"}
    empty = np.empty(0, np.float32)
    bounds = np.cumsum([0] + sizes)
    parts = [{k: flat[k][lo:hi] for k in "wgmv"} for lo, hi in zip(bounds[:-1], bounds[1:])]

    def adam(a):
        optim.adam(a["w"], a["g"], a["m"], a["v"], empty, 1e-3, 0.9, 0.999, 1e-7, 0.1,
                   0.001, False)

    def one_call():
        adam(flat)

    def per_array():
        for p in parts:
            adam(p)
    times = {"flat": [], "per-array": []}
    for _ in range(7):
        for name, f in (("flat", one_call), ("per-array", per_array)):
            start = time.perf_counter()
            for _ in range(reps):
                f()
            times[name].append((time.perf_counter() - start) / reps * 1e6)
    return {k: round(float(np.median(v)), 1) for k, v in times.items()}


if __name__ == "__main__":
    for label, shapes, reps in [
            ("4-8-8-2, 6 arrays", [(4, 8), (8,), (8, 8), (8,), (8, 2), (2,)], 20000),
            ("784-128-10, 4 arrays", [(784, 128), (128,), (128, 10), (10,)], 500),
            ("784-512-512-10, 6 arrays",
             [(784, 512), (512,), (512, 512), (512,), (512, 10), (10,)], 100),
            ("784-8x256-10, 18 arrays",
             [(784, 256), (256,)] + [(256, 256), (256,)] * 7 + [(256, 10), (10,)], 100)]:
        print(f"{label}: µs per update {bench(shapes, reps)}")
