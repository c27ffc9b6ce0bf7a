"""Model files (save/load, resume, hostile files), NaN handling, and threads."""
import io
import json
import os
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pytest

import fastnn as fn
from fastnn import layers as L
from fastnn.saving import ModelFileError


def make_model(dtype="float32"):
    model = fn.Sequential([
        L.Dense(16, activation="relu", input_dim=10,
                kernel_regularizer=fn.regularizers.l2(1e-4)),
        L.Dropout(0.3), L.Maxout(6, pieces=2), L.Activation("tanh"),
        L.Dense(3, activation="softmax")], dtype=dtype)
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=fn.optimizers.Adam(fn.optimizers.schedules.CosineDecay(0.01, 50),
                                               amsgrad=True),
                  metrics=["accuracy"])
    return model


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 10)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 1)
    return x, y


def same_weights(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights()))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_roundtrip_everything(tmp_path, dtype):
    fn.set_seed(1)
    x, y = data()
    model = make_model(dtype)
    model.fit(x, y, epochs=2, verbose=0)
    path = tmp_path / "m.fnn"
    model.save(path)
    loaded = fn.load_model(path)
    assert loaded.dtype == model.dtype and same_weights(model, loaded)
    assert [type(l).__name__ for l in loaded.layers] == \
        ["Dense", "Dropout", "Maxout", "Activation", "Dense"]
    assert loaded.layers[0].kernel_regularizer.l2 == 1e-4
    assert loaded.optimizer.iterations == model.optimizer.iterations
    for k, v in model.optimizer.variables().items():
        if k != "iterations":
            assert np.array_equal(v, loaded.optimizer.variables()[k])
    assert loaded.optimizer.amsgrad and \
        isinstance(loaded.optimizer.learning_rate, fn.optimizers.schedules.CosineDecay)
    np.testing.assert_array_equal(model.predict(x), loaded.predict(x))
    assert model.evaluate(x, y) == loaded.evaluate(x, y)
    # compile=False gives the architecture and weights only
    bare = fn.load_model(path, compile=False)
    assert not bare.compiled and same_weights(model, bare)


def test_file_has_no_pickle_and_documents_itself(tmp_path):
    fn.set_seed(1)
    model = make_model()
    path = tmp_path / "m.fnn"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        doc = json.loads(z.read("fastnn.json"))
        for name in names - {"fastnn.json"}:
            np.load(io.BytesIO(z.read(name)), allow_pickle=False)   # plain arrays only
    assert doc["format"] == "fastnn-model" and doc["version"] == 1
    assert "parameters.npy" in names and "optimizer/m.npy" in names


RESUME_SCRIPT = r"""
import sys, numpy as np, fastnn as fn
sys.path.insert(0, {tests!r})
from test_saving import data
x, y = data()
model = fn.load_model({path!r})
model.fit(x, y, epochs=4, initial_epoch=2, batch_size=32, verbose=0)
np.savez({out!r}, *model.get_weights())
"""


def test_resume_in_a_new_process_is_bit_identical(tmp_path):
    x, y = data()
    fn.set_seed(7)
    straight = make_model()
    straight.fit(x, y, epochs=4, batch_size=32, verbose=0)
    fn.set_seed(7)
    first = make_model()
    first.fit(x, y, epochs=2, batch_size=32, verbose=0)
    path, out = str(tmp_path / "half.fnn"), str(tmp_path / "w.npz")
    first.save(path)
    script = RESUME_SCRIPT.format(tests=os.path.dirname(__file__), path=path, out=out)
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(fn.get_num_threads()))
    # cwd elsewhere, so the child imports the same fastnn as this process, not the
    # source tree (which has no compiled kernels in a clean clone).
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(fn.__file__))
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=tmp_path)
    resumed = np.load(out)
    for i, w in enumerate(straight.get_weights()):
        assert np.array_equal(w, resumed[f"arr_{i}"])


def test_save_is_atomic(tmp_path, monkeypatch):
    fn.set_seed(1)
    model = make_model()
    path = tmp_path / "m.fnn"
    model.save(path)
    before = path.read_bytes()
    model.fit(*data(), epochs=1, verbose=0)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("simulated crash mid-save")
    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    assert path.read_bytes() == before                       # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["m.fnn"]  # no temporary left behind


def test_save_and_load_weights(tmp_path):
    fn.set_seed(1)
    a = make_model()
    a.fit(*data(), epochs=1, verbose=0)
    a.save_weights(tmp_path / "w.fnn")
    fn.set_seed(2)
    b = make_model()
    assert not same_weights(a, b)
    b.load_weights(tmp_path / "w.fnn")
    assert same_weights(a, b)
    other = fn.Sequential([L.Dense(5, input_dim=10)])
    with pytest.raises(ValueError, match="different architecture"):
        other.load_weights(tmp_path / "w.fnn")
    with pytest.raises(ModelFileError, match="only weights"):
        fn.load_model(tmp_path / "w.fnn")


def test_model_checkpoint_best_only(tmp_path):
    fn.set_seed(1)
    x, y = data()
    model = make_model()
    ckpt = fn.callbacks.ModelCheckpoint(str(tmp_path / "best.fnn"), monitor="loss",
                                        save_best_only=True)
    seen = []
    log = fn.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: seen.append((logs["loss"], model.get_weights())))
    model.fit(x, y, epochs=5, verbose=0, callbacks=[ckpt, log])
    best = min(range(5), key=lambda i: seen[i][0])
    loaded = fn.load_model(tmp_path / "best.fnn")
    assert all(np.array_equal(a, b) for a, b in zip(seen[best][1], loaded.get_weights()))
    model.fit(x, y, epochs=2, verbose=0, callbacks=[
        fn.callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}.fnn"))])
    assert (tmp_path / "e1.fnn").exists() and (tmp_path / "e2.fnn").exists()


# ------------------------------------------------------------------- hostile files --

def rewrite(src, dst, json_edit=None, replace=None, drop=()):
    with zipfile.ZipFile(src) as z:
        entries = {n: z.read(n) for n in z.namelist() if n not in drop}
    if json_edit is not None:
        doc = json.loads(entries["fastnn.json"])
        json_edit(doc)
        entries["fastnn.json"] = json.dumps(doc).encode()
    entries.update(replace or {})
    with zipfile.ZipFile(dst, "w") as z:
        for n, b in entries.items():
            z.writestr(n, b)
    return dst


def npy(array):
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


@pytest.fixture
def saved(tmp_path):
    fn.set_seed(1)
    model = make_model()
    path = tmp_path / "good.fnn"
    model.save(path)
    return path


def set_path(doc, keys, value):
    target = doc
    for k in keys[:-1]:
        target = target[k]
    target[keys[-1]] = value


HOSTILE_JSON = [
    (["version"], 99, "version"),
    (["format"], "pickle", "not a fastnn model file"),
    (["dtype"], "object", "dtype"),
    (["input_dim"], 10**12, "out of range"),
    (["layers", 0, "class"], "os.system", "unknown layer class"),
    (["layers", 0, "class"], "__import__", "unknown layer class"),
    (["layers", 0, "config", "units"], 10**9, "units"),
    (["layers", 0, "config", "units"], -4, "units"),
    (["layers", 0, "config", "activation"], "eval", "invalid configuration"),
    (["layers", 0, "config", "evil"], 1, "invalid configuration"),
    (["layers", 2, "config", "pieces"], 10**8, "pieces"),
    (["parameters"], 5, "parameters"),
    (["layers"], [], "layers"),
    (["seed"], "x", "seed"),
    (["compile", "loss"], "builtins.eval", "invalid compile settings"),
    (["compile", "optimizer", "name"], "os", "invalid compile settings"),
    (["compile", "optimizer", "beta_1"], 7.0, "invalid compile settings"),
    (["optimizer", "slots"], ["../../etc/passwd"], "unexpected optimizer slot"),
]


@pytest.mark.parametrize("keys,value,message", HOSTILE_JSON)
def test_hostile_json_is_refused_clearly(saved, tmp_path, keys, value, message):
    bad = rewrite(saved, tmp_path / "bad.fnn",
                  json_edit=lambda doc: set_path(doc, keys, value))
    with pytest.raises(ModelFileError, match=message):
        fn.load_model(bad)


def test_pickle_inside_is_never_executed(saved, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))
    payload = npy(np.array([Evil()], dtype=object))
    bad = rewrite(saved, tmp_path / "bad.fnn", replace={"parameters.npy": payload})
    with pytest.raises(ModelFileError, match="dtype"):
        fn.load_model(bad)
    assert not marker.exists()


@pytest.mark.parametrize("replacement,message", [
    (np.zeros(10**6, np.float32), "shape"),                  # wrong size
    (np.zeros(5, np.float64), "dtype"),                      # wrong dtype
    (np.zeros((2, 2), np.float32), "shape"),
])
def test_wrong_arrays_are_refused(saved, tmp_path, replacement, message):
    bad = rewrite(saved, tmp_path / "bad.fnn", replace={"parameters.npy": npy(replacement)})
    with pytest.raises(ModelFileError, match=message):
        fn.load_model(bad)


def test_absurd_header_shape_does_not_allocate(saved, tmp_path):
    # A .npy header claiming 2^40 floats: refused from the header, nothing allocated.
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (2**40,)})
    bad = rewrite(saved, tmp_path / "bad.fnn",
                  replace={"parameters.npy": header.getvalue() + b"\0" * 64})
    with pytest.raises(ModelFileError, match="shape"):
        fn.load_model(bad)


def test_truncated_corrupt_and_missing(saved, tmp_path):
    raw = saved.read_bytes()
    for cut in (10, len(raw) // 2, len(raw) - 30):
        p = tmp_path / f"cut{cut}.fnn"
        p.write_bytes(raw[:cut])
        with pytest.raises(ModelFileError):
            fn.load_model(p)
    p = tmp_path / "noise.fnn"
    p.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ModelFileError, match="not a fastnn model file"):
        fn.load_model(p)
    bad = rewrite(saved, tmp_path / "nojson.fnn", drop=("fastnn.json",))
    with pytest.raises(ModelFileError, match="no fastnn.json"):
        fn.load_model(bad)
    bad = rewrite(saved, tmp_path / "noparams.fnn", drop=("parameters.npy",))
    with pytest.raises(ModelFileError, match="missing"):
        fn.load_model(bad)
    nan = np.full(fn.load_model(saved)._params.shape, np.nan, np.float32)
    bad = rewrite(saved, tmp_path / "nan.fnn", replace={"parameters.npy": npy(nan)})
    with pytest.raises(ModelFileError, match="NaN"):
        fn.load_model(bad)
    bad = rewrite(saved, tmp_path / "badjson.fnn", replace={"fastnn.json": b"{not json"})
    with pytest.raises(ModelFileError, match="corrupt"):
        fn.load_model(bad)
    with pytest.raises(FileNotFoundError):
        fn.load_model(tmp_path / "does-not-exist.fnn")


# ------------------------------------------------------------------------------ NaN --

def exploding_regression():
    fn.set_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)) * 100
    y = x @ rng.standard_normal((4, 1)) * 100
    model = fn.Sequential([L.Dense(16, activation="relu", input_dim=4), L.Dense(1)])
    model.compile(loss="mse", optimizer=fn.optimizers.SGD(10.0))
    return model, x, y


def test_nan_raises_naming_epoch_batch_and_keeps_finite_weights():
    model, x, y = exploding_regression()
    snapshots = []
    cb = fn.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: snapshots.append(model.get_weights()))
    with pytest.raises(FloatingPointError, match=r"epoch \d+, batch \d+.*layer"):
        model.fit(x, y, batch_size=8, epochs=50, verbose=0, callbacks=[cb])
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert same_weights_list(snapshots[-1], model.get_weights())


def same_weights_list(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a, b))


@pytest.mark.parametrize("on_nan", ["warn", "stop"])
def test_nan_warn_or_stop_quietly(on_nan):
    model, x, y = exploding_regression()
    if on_nan == "warn":
        with pytest.warns(RuntimeWarning, match="non-finite"):
            model.fit(x, y, batch_size=8, epochs=50, verbose=0, on_nan=on_nan)
    else:
        model.fit(x, y, batch_size=8, epochs=50, verbose=0, on_nan=on_nan)
    assert all(np.isfinite(w).all() for w in model.get_weights())


# -------------------------------------------------------------------------- threads --

def test_predict_and_evaluate_from_many_threads_match_serial():
    fn.set_seed(3)
    x, y = data()
    model = make_model()
    model.fit(x, y, epochs=1, verbose=0)
    inputs = [np.random.default_rng(i).standard_normal((50 + 7 * i, 10)).astype(np.float32)
              for i in range(8)]
    serial = [model.predict(xi, batch_size=16) for xi in inputs]
    serial_eval = model.evaluate(x, y, batch_size=16)
    results, evals, errors = [None] * 8, [None] * 8, []

    def work(i):
        try:
            for _ in range(20):
                results[i] = model.predict(inputs[i], batch_size=16)
                evals[i] = model.evaluate(x, y, batch_size=16)
        except Exception as e:       # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for a, b in zip(serial, results):
        np.testing.assert_array_equal(a, b)
    assert all(e == serial_eval for e in evals)


def test_training_one_model_from_two_threads_is_refused():
    fn.set_seed(3)
    x = np.random.default_rng(0).standard_normal((20000, 10)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    model = make_model()
    started = threading.Event()
    release = threading.Event()

    class Hold(fn.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            started.set()
            release.wait(10)
    t = threading.Thread(target=lambda: model.fit(x, y, epochs=1, verbose=0,
                                                  callbacks=[Hold()]))
    t.start()
    assert started.wait(10)
    try:
        with pytest.raises(RuntimeError, match="another thread"):
            model.fit(x, y, epochs=1, verbose=0)
        with pytest.raises(RuntimeError, match="another thread"):
            model.train_on_batch(x[:5], y[:5])
    finally:
        release.set()
        t.join()


def test_set_num_threads_is_honoured_by_blas():
    previous = fn.get_num_threads()
    try:
        fn.set_num_threads(1)
        info = fn._threads.blas_info()
        assert info and all(i["num_threads"] == 1 for i in info)
    finally:
        fn.set_num_threads(previous)
    assert 1 <= fn._threads.available_cpus() <= (os.cpu_count() or 1)
