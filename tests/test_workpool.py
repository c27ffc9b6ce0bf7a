"""fastnn splits its large matrix products over its own threads (fastnn/_core/workpool.h):
BLAS runs single-threaded, the output is cut into blocks that the threads take from a
shared counter. The block layout depends on the shape only, so every thread count >= 2
gives the same bits, whichever thread ran which block."""
import os
import threading

import numpy as np
import pytest

import fastnn as fn
from fastnn import _threads
from fastnn._core import blas

# Shapes of the products a 784-512-512-10 step makes (forward z = x W, dX = d W^T,
# dW = x^T d) at batch 32 and 128, odd ones, and ones too small to split.
SHAPES = [(32, 512, 784), (128, 512, 784), (784, 512, 32), (512, 512, 128),
          (128, 10, 512), (1000, 33, 1000), (33, 1000, 1000), (7, 4096, 1000),
          (4096, 7, 1000), (1, 7, 33), (7, 33, 1)]


def operands(rng, dtype, m, n, k, trans_a, trans_b):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b, rng.standard_normal((m, n)).astype(dtype)


@pytest.fixture
def split_threads():
    """BLAS single-threaded (as fastnn runs it) and the split count restored after."""
    previous = blas.set_split_threads(1)
    with _limit_blas(1):
        yield
    blas.set_split_threads(previous)


def product(a, b, c, trans_a, trans_b, beta, threads):
    blas.set_split_threads(threads)
    out = c.copy()
    blas.matmul_into(a, b, out, trans_a, trans_b, 1.0, beta)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_a_split_product_is_right_and_the_same_for_every_thread_count(split_threads, dtype,
                                                                       m, n, k):
    rng = np.random.default_rng(m * 7 + n * 3 + k)
    for trans_a in (False, True):
        for trans_b in (False, True):
            a, b, c = operands(rng, dtype, m, n, k, trans_a, trans_b)
            for beta in (0.0, 1.0):
                split = product(a, b, c, trans_a, trans_b, beta, 2)
                for threads in (3, 4, 2):
                    assert np.array_equal(product(a, b, c, trans_a, trans_b, beta, threads),
                                          split)
                ref = ((a.T if trans_a else a).astype(np.float64)
                       @ (b.T if trans_b else b).astype(np.float64) + beta * c)
                # Each element is a length-k sum of products of standard normals: its
                # rounding error is about sqrt(k) * eps * |terms|; 8 sqrt(k) eps bounds it.
                eps = np.finfo(dtype).eps
                np.testing.assert_allclose(split, ref, rtol=0, atol=8 * np.sqrt(k) * eps * 4)


def test_one_thread_runs_the_whole_product(split_threads):
    rng = np.random.default_rng(3)
    a, b, c = operands(rng, np.float32, 128, 512, 784, False, False)
    from scipy.linalg import blas as fblas
    # row-major C = A B is column-major C^T = B^T A^T
    whole = fblas.sgemm(1.0, b.T, a.T).T
    assert np.array_equal(product(a, b, c, False, False, 0.0, 1), whole)


def _limit_blas(n):
    from threadpoolctl import threadpool_limits
    return threadpool_limits(n, user_api="blas")


def test_two_callers_at_once_both_get_their_own_product(split_threads):
    # One caller uses the workers, the other runs its blocks itself: both stay right.
    blas.set_split_threads(2)
    rng = np.random.default_rng(4)
    jobs = [operands(rng, np.float32, 128, 512, 784, False, False) for _ in range(2)]
    expected = [a.astype(np.float64) @ b for a, b, _ in jobs]
    results, errors = [None, None], []

    def run(i):
        try:
            a, b, c = jobs[i]
            for _ in range(20):
                out = np.empty_like(c)
                blas.matmul_into(a, b, out)
                np.testing.assert_allclose(out, expected[i], atol=1e-3)
            results[i] = out
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(r is not None for r in results)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_splits_with_its_own_workers(split_threads):
    blas.set_split_threads(2)
    rng = np.random.default_rng(5)
    a, b, c = operands(rng, np.float32, 128, 512, 784, False, False)
    parent = np.empty_like(c)
    blas.matmul_into(a, b, parent)           # the parent's workers exist now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                             # the child: no workers until it splits
        ok = 0
        try:
            child = np.empty_like(c)
            blas.matmul_into(a, b, child)
            ok = int(np.array_equal(child, parent))
        finally:
            os.write(write, bytes([ok]))
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    assert answer == b"\x01"


def test_set_split_threads_rejects_a_count_below_one():
    with pytest.raises(ValueError, match="n must be >= 1"):
        blas.set_split_threads(0)


def test_set_num_threads_splits_in_fastnn_and_keeps_blas_single_threaded():
    previous = fn.get_num_threads()
    try:
        fn.set_num_threads(2)
        assert blas.set_split_threads(2) == 2
        assert all(i["num_threads"] == 1 for i in _threads.blas_info())
    finally:
        fn.set_num_threads(previous)


def _trained(threads):
    previous = fn.get_num_threads()
    try:
        fn.set_num_threads(threads)
        fn.set_seed(11)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((256, 784)).astype(np.float32)
        y = rng.integers(0, 10, 256)
        model = fn.Sequential([fn.layers.Dense(512, activation="relu", input_dim=784),
                               fn.layers.Dense(512, activation="relu"), fn.layers.Dense(10)])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=128, epochs=2, verbose=0, shuffle=False)
        return model.get_weights()
    finally:
        fn.set_num_threads(previous)


def test_training_gives_the_same_bits_for_2_and_3_threads_and_run_after_run():
    two = _trained(2)
    for other in (_trained(2), _trained(3)):
        for w, v in zip(two, other):
            assert np.array_equal(w, v)


# ---------------------------------------------- fastnn/_parallel.py: the update chunks --
class _AsleepWorker:
    """A worker the scheduler never runs: its queue is never read."""

    def __init__(self):
        import queue
        self.runs = queue.SimpleQueue()


def test_parallel_run_finishes_without_a_worker_that_never_wakes(monkeypatch):
    from fastnn import _parallel
    monkeypatch.setattr(_parallel, "_workers", [_AsleepWorker(), _AsleepWorker()])
    ran = []
    jobs = [(lambda i=i: ran.append(i) or i * i) for i in range(3)]
    assert _parallel.run(jobs) == [0, 1, 4]
    assert sorted(ran) == [0, 1, 2]          # each job once, all by the caller


def test_parallel_run_returns_results_in_order_and_raises_a_jobs_error():
    from fastnn import _parallel
    results = _parallel.run([(lambda i=i: i + 1) for i in range(4)])
    assert results == [1, 2, 3, 4]

    def bad():
        raise KeyError("chunk")
    with pytest.raises(KeyError, match="chunk"):
        _parallel.run([lambda: 1, bad, lambda: 3])
    assert _parallel.run([lambda: 5, lambda: 6]) == [5, 6]   # the workers still serve

