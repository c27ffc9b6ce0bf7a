"""Data-parallel training (fastnn.distributed.DataParallel): in this process the parts that
need no MPI (the row shares, dropout keys at a row offset, the chief-only penalty, the
no-MPI fallback, the thread share); under ``mpiexec -n 2`` (subprocesses) the training
itself, compared with the same training in one process (tests/mpi_scripts/cases.py).

The MPI tests skip when mpi4py or mpiexec is missing, unless FASTNN_REQUIRE_MPI=1 (CI sets
it: there they must run).
"""
import importlib.util
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fn
from fastnn import _threads, distributed
from fastnn import layers as L

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "mpi_scripts"))
import cases  # noqa: E402

RUN_CASE = os.path.join(os.path.dirname(__file__), "mpi_scripts", "run_case.py")
README = os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md")
# Generous: two ranks share this machine's cores with whatever else runs; a case takes
# 1-3 s when the machine is quiet. A hung collective is what the timeout is there to catch.
TIMEOUT = 240


def _mpiexec():
    """mpiexec next to this Python (the venv's MPICH wheel), else on PATH; skip (or fail
    under FASTNN_REQUIRE_MPI=1) without mpi4py or mpiexec."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = beside if os.path.exists(beside) else shutil.which("mpiexec")
    missing = []
    if importlib.util.find_spec("mpi4py") is None:
        missing.append("mpi4py is not installed")
    if found is None:
        missing.append("no mpiexec next to sys.executable or on PATH")
    if missing:
        reason = "; ".join(missing) + " (pip install 'fastnn[mpi]')"
        if os.environ.get("FASTNN_REQUIRE_MPI") == "1":
            pytest.fail(f"FASTNN_REQUIRE_MPI=1 but {reason}")
        pytest.skip(reason)
    return found


def launch(args, cwd, ranks=2, launcher_args=()):
    """Run ``mpiexec -n ranks [launcher_args] python args`` with this process's fastnn;
    returns (returncode, stdout, stderr). On a timeout the whole job is killed and the
    test fails."""
    mpiexec = _mpiexec()
    env = dict(os.environ)
    # The child imports the fastnn this process imported (the source tree or the install).
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(fn.__file__))
    proc = subprocess.Popen([mpiexec, "-n", str(ranks), *launcher_args, sys.executable,
                             *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"mpiexec {' '.join(args)} did not finish in {TIMEOUT} s (a rank "
                    f"waiting forever?)\nstdout:\n{out}\nstderr:\n{err}")
    return proc.returncode, out, err


def run_case(name, workdir, ranks=2):
    """The case under mpiexec -n ranks: the list of the ranks' results."""
    code, out, err = launch([RUN_CASE, name, str(workdir)], cwd=workdir, ranks=ranks)
    assert code == 0, f"mpiexec failed ({code}):\n{out}\n{err}"
    with open(workdir / "result.pkl", "rb") as f:
        return pickle.load(f)


def expected_threads(ranks=2):
    """fastnn's default thread count in one of `ranks` ranks on this node."""
    n = max(1, _threads.available_cpus() // ranks)
    limit = _threads._environment_limit()
    return n if limit is None else min(n, limit)


def assert_same_training(ranks, reference, tolerance):
    """Every rank holds bit-identical weights and optimizer state, and they are the
    one-process run's within ``tolerance`` (relative), as are the History's values; the
    callbacks decided the same (epochs run, learning rate)."""
    for other in ranks[1:]:
        for a, b in zip(ranks[0]["weights"], other["weights"]):
            assert np.array_equal(a, b)
        for k in ranks[0]["slots"]:
            assert np.array_equal(ranks[0]["slots"][k], other["slots"][k])
    for result in ranks:
        assert result["size"] == len(ranks)
        assert result["epochs"] == reference["epochs"]
        for key in ("iterations", "epochs_trained", "seed", "learning_rate"):
            assert result[key] == reference[key], key
        for a, b in zip(result["weights"], reference["weights"]):
            assert cases.relative_difference(a, b) <= tolerance
        for k in reference["slots"]:
            assert cases.relative_difference(result["slots"][k],
                                             reference["slots"][k]) <= tolerance
        assert sorted(result["history"]) == sorted(reference["history"])
        for k, values in reference["history"].items():
            assert cases.relative_difference(result["history"][k], values) <= tolerance, k
        assert result["threads"] == expected_threads(len(ranks))


# ------------------------------------------------------------------ no MPI needed --

def test_without_mpi_the_mpi_tests_skip_or_fail_when_required(monkeypatch):
    # What keeps CI honest: there FASTNN_REQUIRE_MPI=1 turns the skip into a failure.
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("FASTNN_REQUIRE_MPI", "1")
    with pytest.raises(pytest.fail.Exception, match="FASTNN_REQUIRE_MPI=1 but mpi4py"):
        _mpiexec()
    monkeypatch.delenv("FASTNN_REQUIRE_MPI")
    with pytest.raises(pytest.skip.Exception, match="mpi4py is not installed"):
        _mpiexec()


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_shares_cover_each_row_once_rank0_never_empty(size):
    for n in range(0, 40):
        spans = [distributed.share(n, r, size) for r in range(size)]
        assert spans[0][0] == 0 and spans[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        sizes = [hi - lo for lo, hi in spans]
        assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
        if n:
            assert sizes[0] >= 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout_masks_of_a_share_are_those_of_its_rows_in_the_batch(dtype):
    # The key advanced by row_offset * width gives rows [lo, hi) of a batch exactly the
    # masks they get when the whole batch runs at once (the kernel keys entry (i, j) by
    # key + i * width + j).
    fn.set_seed(3)
    model = fn.Sequential([L.Dense(33, input_dim=7), L.Dropout(0.4), L.Dense(5),
                           L.Dropout(0.3, seed=2**63 + 5)], dtype=dtype)
    model.compile(loss="mse", optimizer="sgd")
    x = np.random.default_rng(0).standard_normal((23, 7)).astype(dtype)

    def masks(rows, offset):
        ws = model._train_workspace(rows.shape[0])
        model._forward(np.ascontiguousarray(rows), ws, True, 4, 9, offset)
        return [ws.bufs[i].mask.copy() for i, _ in model._dropout_layers]
    whole = masks(x, 0)
    for lo, hi in [(0, 12), (12, 23), (5, 6), (22, 23)]:
        for part, full in zip(masks(x[lo:hi], lo), whole):
            assert np.array_equal(part, full[lo:hi])
    # a share not shifted gets other masks (so the test can fail)
    assert not np.array_equal(masks(x[12:], 0)[0], whole[0][12:])


@pytest.mark.parametrize("layer", ["dense", "maxout"])
def test_backward_without_penalty_is_backward_of_the_unregularized_layer(layer):
    def make(reg):
        fn.set_seed(1)
        regs = dict(kernel_regularizer=fn.regularizers.L1L2(0.01, 0.02) if reg else None,
                    bias_regularizer=fn.regularizers.L2(0.03) if reg else None)
        first = (L.Dense(6, activation="tanh", input_dim=4, **regs) if layer == "dense"
                 else L.Maxout(6, pieces=3, input_dim=4, **regs))
        model = fn.Sequential([first, L.Dense(2, **regs)], dtype="float64")
        model.compile(loss="mse", optimizer="sgd")
        return model
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((9, 4)), rng.standard_normal((9, 2))
    plain, regularized = make(False), make(True)
    with_penalty = regularized.gradients(x, y)
    for lay in regularized.layers:
        lay._backward_penalty = False
    without = regularized.gradients(x, y)
    ws = regularized._step_ws
    assert all(buf.penalty == 0.0 for buf in ws.bufs)
    for a, b, c in zip(without, plain.gradients(x, y), with_penalty):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, c) for a, c in zip(without, with_penalty))


def test_without_mpi4py_and_mpiexec_the_strategy_is_one_rank(monkeypatch):
    for name in distributed._LAUNCHER_SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, "mpi4py", None)      # import mpi4py fails
    strategy = distributed.DataParallel()
    assert (strategy.rank, strategy.size, strategy.is_chief, strategy.comm) == \
        (0, 1, True, None)
    assert strategy.share(10) == (0, 10)
    x, y, sw, xv, yv = cases.classification_data()

    def train(distribute):
        fn.set_seed(6)
        model = cases._classifier()
        history = model.fit(x, y, batch_size=50, epochs=3, sample_weight=sw,
                            validation_data=(xv, yv), verbose=0, distribute=distribute)
        return model, history
    alone, h1 = train(None)
    one_rank, h2 = train(strategy)
    for a, b in zip(alone.get_weights(), one_rank.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h1.history["val_loss"] == h2.history["val_loss"]
    assert strategy.allreduce_calls == 0


def test_launched_by_mpiexec_without_mpi4py_refuses(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setenv("PMI_SIZE", "4")
    with pytest.raises(RuntimeError, match=r"one of 4 .*mpi4py is not installed"):
        distributed.DataParallel()


def test_bad_arguments():
    with pytest.raises(TypeError, match="mpi4py communicator"):
        distributed.DataParallel(comm="world")
    model = cases._classifier()
    x, y, _, _, _ = cases.classification_data()
    with pytest.raises(TypeError, match="distribute must be a fastnn.distributed"):
        model.fit(x, y, epochs=1, verbose=0, distribute="mpi")


def test_node_share_sets_the_default_thread_count_not_a_chosen_one(monkeypatch):
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    saved = dict(_threads._state)
    previous = fn.get_num_threads()
    try:
        _threads._state.update(threads=None, by_user=False, node_ranks=1)
        _threads.ensure_default()
        assert fn.get_num_threads() == _threads.available_cpus()
        _threads.share_node(_threads.available_cpus() * 4)      # more ranks than CPUs
        assert fn.get_num_threads() == 1
        assert all(i["num_threads"] == 1 for i in _threads.blas_info())
        _threads.share_node(1)
        fn.set_num_threads(1)                                   # the user's choice stays
        _threads.share_node(2)
        assert fn.get_num_threads() == 1
    finally:
        _threads._state.update(saved)
        fn.set_num_threads(previous)
        _threads._state["by_user"] = saved["by_user"]


# --------------------------------------------------------------- under mpiexec -n 2 --

def test_two_ranks_train_as_one_process_float64(tmp_path):
    """Dropout, Adam, L1/L2, sample weights, a memory-mapped x, validation data, an
    EarlyStopping that stops and a ReduceLROnPlateau that halves the rate twice, the
    last batch of each epoch 1 row (rank 1's share empty), and ranks that started with
    different models (rank 0's is broadcast)."""
    ranks = run_case("equivalence", tmp_path)
    reference = cases.equivalence(None, 0, str(tmp_path))
    # float64: the ranks' sums differ from one process's only in summation order (about
    # 1e-16 relative per step, measured ≤ 6e-16 after 70 Adam steps), far below 1e-9.
    assert_same_training(ranks, reference, 1e-9)
    assert {"accuracy", "auc", "precision", "top_k_categorical_accuracy", "val_auc",
            "val_precision"} <= set(reference["history"])
    assert reference["epochs"][-1] < 13 and reference["stopped_epoch"] > 0
    assert reference["learning_rate"] < 0.02
    assert all(r["stopped_epoch"] == reference["stopped_epoch"] for r in ranks)
    # one gradient reduction per step (ranks 0 and 1 both)
    assert all(r["allreduce_calls"] == reference["iterations"] - 4 for r in ranks)


def test_two_ranks_validation_split_sgd_one_step_epochs(tmp_path):
    """Also validation data of one row (rank 1's share of it is empty)."""
    ranks = run_case("validation_split", tmp_path)
    reference = cases.validation_split(None, 0, str(tmp_path))
    assert_same_training(ranks, reference, 1e-9)
    for result in ranks:
        assert cases.relative_difference(result["one_row_val_loss"],
                                         reference["one_row_val_loss"]) <= 1e-9


def test_three_ranks_unequal_shares(tmp_path):
    """Batches of 50 in shares of 17, 17, 16 (dropout keys at rows 17 and 34), the last
    batch of 1 row leaving ranks 1 and 2 empty."""
    ranks = run_case("equivalence", tmp_path, ranks=3)
    reference = cases.equivalence(None, 0, str(tmp_path))
    assert_same_training(ranks, reference, 1e-9)


def test_two_ranks_float32(tmp_path):
    ranks = run_case("float32", tmp_path)
    reference = cases.float32(None, 0, str(tmp_path))
    # float32 sums in another order differ by a few ulps (6e-8) per step; after 28 Adam
    # steps the weights measured ≤ 5e-7 apart, the tolerance leaves a 20x margin.
    assert_same_training(ranks, reference, 1e-5)


def test_nan_stop_raises_on_every_rank_at_the_same_step(tmp_path):
    ranks = run_case("nan_stop", tmp_path)
    reference = cases.nan_stop(None, 0, str(tmp_path))
    where = re.search(r"epoch \d+, batch \d+", reference["error"]).group()
    for result in ranks:
        assert result["error"] is not None and where in result["error"]
        assert result["iterations"] == reference["iterations"]
        for a, b in zip(result["weights"], reference["weights"]):
            assert np.all(np.isfinite(a))
            assert cases.relative_difference(a, b) <= 1e-9


def test_only_the_chief_prints_and_writes_files(tmp_path):
    chief, other = run_case("chief_writes", tmp_path)
    assert "Epoch 1/2" in chief["stdout"] and "Epoch 2/2" in chief["stdout"]
    assert other["stdout"] == ""
    files = sorted(os.listdir(tmp_path))
    assert [f for f in files if "rank1" in f] == []
    for name in ("log-rank0.csv", "ckpt-rank0-1.fnn", "ckpt-rank0-2.fnn", "model-rank0.fnn",
                 "weights-rank0.fnn"):
        assert name in files
    model = fn.load_model(tmp_path / "model-rank0.fnn")
    assert model.epochs_trained == 2


def test_ranks_with_different_data_raise_the_same_error(tmp_path):
    ranks = run_case("mismatch", tmp_path)
    for result in ranks:
        assert "the ranks' data or arguments differ" in result["error"]
        assert "(251, 12)" in result["error"] and "(250, 12)" in result["error"]


def test_callbacks_acting_on_one_rank_cannot_split_the_job(tmp_path):
    ranks = run_case("uneven_callbacks", tmp_path)
    for result in ranks:
        # rank 1 stopped after batch 2 of the first epoch: so did rank 0
        assert result["first_epochs"] == [0] and result["iterations_after_first"] == 3
        # rank 0 stopped after the second epoch: so did rank 1
        assert result["second_epochs"] == [0, 1]
        assert result["error"].startswith("RanksDiverged: fit(distribute=...): after "
                                          "epoch 1 the ranks' weights differ")


def test_batch_normalization_is_refused_on_every_rank(tmp_path):
    for result in run_case("batch_norm", tmp_path):
        assert "batch normalization" in result["error"]
        assert "Synchronized batch statistics are not supported" in result["error"]


def test_an_exception_on_one_rank_aborts_the_job(tmp_path):
    code, out, err = launch([RUN_CASE, "fail_on_rank1", str(tmp_path)], cwd=tmp_path)
    assert code != 0, f"{out}\n{err}"
    assert "rank 1 of 2 failed" in err and "deliberate failure on rank 1" in err, err
    assert not (tmp_path / "result.pkl").exists()


def readme_block(after):
    """The first ```python block after the README line containing ``after``."""
    text = open(README, encoding="utf-8").read()
    start = text.index(after)
    block = re.search(r"```python\n(.*?)```", text[start:], re.S)
    return block.group(1)


def test_readme_data_parallel_script(tmp_path):
    """The README's train.py, started as its command says but with 2 ranks on two 'hosts'
    that are both this machine."""
    script = readme_block("`train.py`:")
    (tmp_path / "train.py").write_text(script)
    code, out, err = launch(["train.py"], cwd=tmp_path,
                            launcher_args=("-hosts", "localhost,localhost"))
    assert code == 0, f"{out}\n{err}"
    accuracy = float(re.search(r"test accuracy (\S+)", out).group(1))
    assert accuracy > 0.7
    assert out.count("test accuracy") == 1               # printed by the chief only
    assert (tmp_path / "model.fnn").exists() and (tmp_path / "ckpt.fnn").exists()
