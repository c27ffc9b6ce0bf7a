"""A/B: the optimizer update (and the finiteness check) split across threads vs one pass,
through fit, interleaved in one process (784-512-512-10, float32, Adam).

    python bench/ab_parallel_update.py            # with fastnn's default OPENBLAS_THREAD_TIMEOUT=4
    OPENBLAS_THREAD_TIMEOUT=28 python bench/ab_parallel_update.py   # OpenBLAS's own default

Prints split/single throughput ratios per batch size (median of 6 alternations).
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fastnn as fn  # noqa: E402
from fastnn import _parallel  # noqa: E402


def main():
    layers = fn.layers
    rng = np.random.default_rng(0)
    x = rng.random((4096, 784), dtype=np.float32)
    y = rng.integers(0, 10, 4096)
    fn.set_seed(0)
    model = fn.Sequential([layers.Dense(512, activation="relu", input_dim=784),
                           layers.Dense(512, activation="relu"),
                           layers.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    default_min = _parallel.MIN_ELEMENTS
    for batch in (1, 8, 32, 128, 512):
        n = min(4096, batch * 150)
        ratios = []
        for _ in range(6):
            rate = {}
            for mode in ("split", "single"):
                _parallel.MIN_ELEMENTS = default_min if mode == "split" else 1 << 62
                model.optimizer._chunk_key = None      # re-cut the cached chunk views
                model.parameter_store.grads_finite.key = None
                model.fit(x[:batch * 3], y[:batch * 3], batch_size=batch, verbose=0)
                start = time.perf_counter()
                model.fit(x[:n], y[:n], batch_size=batch, verbose=0)
                rate[mode] = n / (time.perf_counter() - start)
            ratios.append(rate["split"] / rate["single"])
        print(f"batch {batch:4d}: split/single {np.median(ratios):.3f} "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f}); "
              f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT')}")
    _parallel.MIN_ELEMENTS = default_min


if __name__ == "__main__":
    main()
