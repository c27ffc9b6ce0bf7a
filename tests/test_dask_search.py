"""Hyper-parameter search over a Dask cluster: scikit-learn's GridSearchCV over
fastnn.sklearn.MLPClassifier through joblib's Dask backend, on a LocalCluster of 2 worker
processes with 1 thread each, gives exactly the scores of the same search with n_jobs=1;
and a fit inside a worker uses the worker's share of the CPUs.

Skips without dask.distributed or scikit-learn unless FASTNN_REQUIRE_MPI=1 (CI sets it:
the distributed tests must run there).
"""
import importlib.util
import os
import re
import warnings

import numpy as np
import pytest

import fastnn as fn


def _require(*modules):
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed (pip install 'fastnn[test]')"
        if os.environ.get("FASTNN_REQUIRE_MPI") == "1":
            pytest.fail(f"FASTNN_REQUIRE_MPI=1 but {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def client():
    _require("distributed", "sklearn", "joblib")
    import dask
    from dask.distributed import Client, LocalCluster
    # Dask's nanny sets OPENBLAS_NUM_THREADS=1 (and OMP, MKL) in its workers; dropping
    # that here leaves the worker's thread count as the only limit, so the thread test
    # below sees fastnn honour it (on a machine with more than one CPU).
    no_env = {f"distributed.nanny.pre-spawn-environ.{k}": None
              for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    with dask.config.set(no_env):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _threads_in_worker():
    """In a task: (OPENBLAS_NUM_THREADS, fastnn's thread count after building a model,
    the BLAS libraries' thread counts)."""
    import fastnn as fn
    model = fn.Sequential([fn.layers.Dense(3, input_dim=2)])
    model.build()
    return (os.environ.get("OPENBLAS_NUM_THREADS"), fn.get_num_threads(),
            [i["num_threads"] for i in fn._threads.blas_info()])


def test_a_worker_uses_its_thread_count_not_the_machines_cpus(client):
    workers = sorted(client.scheduler_info()["workers"])
    assert len(workers) == 2
    for address in workers:
        env, threads, blas = client.submit(_threads_in_worker, workers=[address],
                                           pure=False).result()
        assert env is None                   # the worker's nthreads is the only limit
        assert threads == 1 and blas and all(t == 1 for t in blas)


def test_default_threads_follow_a_dask_worker_and_the_environment(monkeypatch):
    import sys
    import types
    from fastnn import _threads
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    fake = types.ModuleType("distributed")
    fake.get_worker = lambda: types.SimpleNamespace(state=types.SimpleNamespace(nthreads=1))
    monkeypatch.setitem(sys.modules, "distributed", fake)
    assert _threads.default_threads() == 1
    outside = types.ModuleType("distributed")

    def no_worker():
        raise ValueError("No worker found")
    outside.get_worker = no_worker
    monkeypatch.setitem(sys.modules, "distributed", outside)
    assert _threads.default_threads() == _threads.available_cpus()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _threads.default_threads() == 1
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1000")   # OpenBLAS's own precedence;
    assert _threads.default_threads() == _threads.available_cpus()   # never above the CPUs
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "auto")   # not a count: ignored
    assert _threads.default_threads() == 1


def _digits():
    from sklearn.datasets import load_digits
    x, y = load_digits(return_X_y=True)
    return x[:600] / 16.0, y[:600]


def _search():
    from sklearn.model_selection import GridSearchCV
    from fastnn.sklearn import MLPClassifier
    return GridSearchCV(MLPClassifier(max_iter=30, random_state=0),
                        {"hidden_layer_sizes": [(16,), (32,)], "alpha": [1e-4, 1e-1]},
                        cv=3)


def test_grid_search_on_dask_scores_exactly_as_n_jobs_1(client):
    import joblib
    from dask.distributed import get_task_stream
    from sklearn.exceptions import ConvergenceWarning
    x, y = _digits()
    previous = fn.get_num_threads()
    fn.set_num_threads(1)     # the workers' count: the same BLAS calls, bit for bit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            local = _search().set_params(n_jobs=1).fit(x, y)
            with get_task_stream(client) as stream, joblib.parallel_backend("dask"):
                remote = _search().fit(x, y)
    finally:
        fn.set_num_threads(previous)
    # the fits ran on the cluster, on both workers
    assert len({task["worker"] for task in stream.data}) == 2
    keys = [k for k in local.cv_results_ if re.fullmatch(r"split\d+_test_score", k)]
    assert len(keys) == 3
    for k in keys + ["mean_test_score", "rank_test_score"]:
        np.testing.assert_array_equal(remote.cv_results_[k], local.cv_results_[k])
    assert remote.best_params_ == local.best_params_
    for a, b in zip(remote.best_estimator_.coefs_, local.best_estimator_.coefs_):
        np.testing.assert_array_equal(a, b)
    assert local.best_score_ > 0.5     # 10 classes: chance is 0.1 (measured 0.64)


def test_readme_dask_search(client, capsys):
    """The README's search block, run against this cluster's scheduler address."""
    from sklearn.exceptions import ConvergenceWarning
    readme = os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md")
    text = open(readme, encoding="utf-8").read()
    start = text.index("**Many models at once")
    code = re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)
    assert 'Client("tcp://scheduler-host:8786")' in code
    code = code.replace('"tcp://scheduler-host:8786"', repr(client.scheduler.address))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        names = {}
        exec(compile(code, "README.md", "exec"), names)
        names["client"].close()
    out = capsys.readouterr().out
    best = re.search(r"\{'alpha': .*\} (\S+)", out)
    assert best and float(best.group(1)) > 0.8
