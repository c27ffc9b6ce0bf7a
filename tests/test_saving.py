"""Model files (save/load, resume, hostile files), NaN handling, and threads."""
import contextlib
import io
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import threading
import warnings
import zipfile

import numpy as np
import pytest

import fastnn as fn
from fastnn import _atomic
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


def zip_with_flag(src, dst, member, bit):
    """Copy of src with a ZIP flag bit set on member, in its local and central headers."""
    data = bytearray(src.read_bytes())
    name = member.encode()
    for sig, flags_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        pos = data.find(sig)
        while pos >= 0:
            if data[pos + name_at:pos + name_at + len(name)] == name:
                data[pos + flags_at] |= 1 << bit
            pos = data.find(sig, pos + 1)
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("member", ["fastnn.json", "parameters.npy", "optimizer/m.npy"])
@pytest.mark.parametrize("bit", [0, 5, 6], ids=["encrypted", "patch-data", "strong-encryption"])
def test_unsupported_zip_flags_are_model_file_errors(saved, tmp_path, member, bit):
    # zipfile raises NotImplementedError (bits 5, 6) or RuntimeError (bit 0) for these.
    bad = zip_with_flag(saved, tmp_path / "bad.fnn", member, bit)
    with pytest.raises(ModelFileError, match="encrypted or patch data") as info:
        fn.load_model(bad)
    assert str(bad) in str(info.value) and member in str(info.value)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA, 99, 12345])
def test_unsupported_compression_is_a_model_file_error(saved, tmp_path, method):
    data = bytearray(saved.read_bytes())
    pos = data.find(b"PK\x01\x02")                       # the first central directory entry
    data[pos + 10:pos + 12] = method.to_bytes(2, "little")
    bad = tmp_path / "bad.fnn"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=f"compression method {method}") as info:
        fn.load_model(bad)
    assert "fastnn.json" in str(info.value)


def test_deflated_members_are_read(saved, tmp_path):
    # A model file re-zipped with compression (zip -r, an archive manager) still loads.
    with zipfile.ZipFile(saved) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(tmp_path / "deflated.fnn", "w", zipfile.ZIP_DEFLATED) as z:
        for n, b in entries.items():
            z.writestr(n, b)
    assert same_weights(fn.load_model(saved), fn.load_model(tmp_path / "deflated.fnn"))


def npy_with_header(text, body=b"", version=1):
    field = len(text).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + field + text + body


@pytest.mark.parametrize("text,message", [
    # NumPy's own parser raises tokenize.TokenError on this one (issue 14)...
    (b"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }(", "malformed .npy header"),
    # ... SyntaxError, ValueError or MemoryError on these.
    (b"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }" + b"(" * 300 + b")" * 300,
     "malformed .npy header"),
    (b"{'descr': '<f4', 'fortran_order': False, 'shape': (" + b"9" * 3000 + b",)}",
     "malformed"),
    (b"{'descr': '<f4', 'fortran_order': False, 'shape': (" + b"9" * 30 + b",)}",
     "malformed shape"),
    (b"{'descr': '<f4', 'fortran_order': False, 'shape': (3),}", "malformed shape"),
    (b"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", "malformed"),
    (b"{'descr': '<f4', 'fortran_order': False}", "malformed .npy header"),
    (b"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", "malformed"),
    (b"__import__('os').system('touch pwned')", "malformed .npy header"),
    (b"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,)}", "malformed"),
    (b"{'descr': '\xff', 'fortran_order': False, 'shape': (3,)}", "malformed"),
    (b"{'descr': '|O', 'fortran_order': False, 'shape': (3,)}", "dtype '|O'"),
    (b"{'descr': '<f4', 'fortran_order': True, 'shape': (3,)}", "shape"),
    (b"{'descr': '<f4', 'fortran_order': False, 'shape': (" + b"1, " * 9 + b")}", "shape"),
])
def test_malformed_npy_headers_are_model_file_errors(saved, tmp_path, text, message):
    bad = rewrite(saved, tmp_path / "bad.fnn",
                  replace={"parameters.npy": npy_with_header(text, bytes(64))})
    with pytest.raises(ModelFileError, match=message) as info:
        fn.load_model(bad)
    assert str(bad) in str(info.value) and "parameters.npy" in str(info.value)


@pytest.mark.parametrize("prefix,message", [
    (b"\x93NUMPX\x01\x00", "bad magic"), (b"\x93NUMPY\x04\x00", "version"),
    (b"\x93NUMPY\x01\x00\xff\xff", "more than"), (b"\x93NUMPY\x01\x00\x20\x00{'des", "truncated"),
    (b"\x93NUMPY\x02", "bad magic"),
])
def test_damaged_npy_prefix(saved, tmp_path, prefix, message):
    bad = rewrite(saved, tmp_path / "bad.fnn", replace={"parameters.npy": prefix})
    with pytest.raises(ModelFileError, match=message):
        fn.load_model(bad)


def test_npy_headers_numpy_writes_are_read_in_any_version_and_byte_order(saved, tmp_path):
    params = fn.load_model(saved)._params
    for version in ((1, 0), (2, 0), (3, 0)):
        for order in "<>":
            buf = io.BytesIO()
            array = params.astype(order + "f4")
            np.lib.format.write_array(buf, array, version=version)
            p = rewrite(saved, tmp_path / "v.fnn", replace={"parameters.npy": buf.getvalue()})
            np.testing.assert_array_equal(fn.load_model(p)._params, params)


def test_a_directory_or_an_unreadable_path_is_an_oserror(tmp_path):
    # Not a damaged file: the file cannot be opened at all.
    with pytest.raises(IsADirectoryError):
        fn.load_model(tmp_path)


def test_weights_for_another_architecture_are_a_model_file_error(tmp_path):
    a = fn.Sequential([L.Maxout(4, pieces=2, input_dim=3)])
    a.save_weights(tmp_path / "w.fnn")
    b = fn.Sequential([L.Maxout(4, pieces=3, input_dim=3)])       # same units, more pieces
    with pytest.raises(ModelFileError, match="different architecture"):
        b.load_weights(tmp_path / "w.fnn")


def test_out_of_range_counters_are_refused(saved, tmp_path):
    for keys in (["epochs_trained"], ["optimizer", "iterations"]):
        for value in (-1, 2**63):
            bad = rewrite(saved, tmp_path / "bad.fnn",
                          json_edit=lambda doc: set_path(doc, keys, value))
            with pytest.raises(ModelFileError, match="out of range"):
                fn.load_model(bad)


# ------------------------------------------------------- atomic writes, temporaries --

def test_model_files_get_the_mode_open_would_give(tmp_path):
    old = os.umask(0o027)
    try:
        make_model().save(tmp_path / "m.fnn")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "m.fnn").st_mode) == 0o640


def test_stale_temporaries_are_removed_live_ones_kept(tmp_path):
    fn.set_seed(1)
    model = make_model()
    path = tmp_path / "m.fnn"
    # A dead writer's temporary (a pid in the name proves nothing, even our own: pids are
    # reused), another target's, and files that only look alike: only the first goes.
    stale = tmp_path / f".m.fnn.tmp-{os.getpid()}-0badc0de"
    others = [tmp_path / ".other.fnn.tmp-1-0badc0de", tmp_path / ".m.fnn.tmp-x-0badc0de",
              tmp_path / ".m.fnn.tmp-1-0badc0de.keep"]
    for p in [stale] + others:
        p.write_bytes(b"half a file")
    # A live writer in this process: its temporary is locked.
    live, live_name = _atomic._create_locked(str(path))
    model.save(path)
    assert not stale.exists() and all(p.exists() for p in others)
    assert os.path.exists(live_name)
    live.close()                        # the writer dies without renaming
    model.save(path)
    assert not os.path.exists(live_name)
    assert sorted(os.listdir(tmp_path)) == sorted(["m.fnn"] + [p.name for p in others])
    fn.load_model(path)


LIVE_WRITER = r"""
import sys
from fastnn import _atomic
f, name = _atomic._create_locked(sys.argv[1])
f.write(b"half written")
f.flush()
print(name, flush=True)
sys.stdin.read()                        # alive until killed
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX only")
def test_another_process_live_temporary_is_kept_until_it_dies(tmp_path):
    fn.set_seed(1)
    model = make_model()
    path = tmp_path / "m.fnn"
    writer = subprocess.Popen([sys.executable, "-c", LIVE_WRITER, str(path)], env=child_env(),
                              cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        name = writer.stdout.readline().strip()
        assert os.path.exists(name)
        model.save(path)
        assert os.path.exists(name)                       # a live writer's: kept
    finally:
        writer.kill()
        writer.wait()
    model.save(path)
    assert not os.path.exists(name)                       # its writer is dead: removed
    assert os.listdir(tmp_path) == ["m.fnn"]


def test_concurrent_saves_from_threads(tmp_path):
    fn.set_seed(1)
    models = [make_model() for _ in range(3)]
    path = tmp_path / "m.fnn"
    errors = []

    def save_repeatedly(model):
        try:
            for _ in range(15):
                model.save(path)
        except Exception as e:          # noqa: BLE001 -- reported below
            errors.append(e)
    threads = [threading.Thread(target=save_repeatedly, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and os.listdir(tmp_path) == ["m.fnn"]
    assert any(same_weights(fn.load_model(path), m) for m in models)


KILLED_SAVES = r"""
import os, random, signal, sys, time
import numpy as np
import fastnn as fn
from fastnn import _atomic
path, seed, kills = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fn.set_seed(0)
model = fn.Sequential([fn.layers.Dense(256, input_dim=1000), fn.layers.Dense(10)])
model.compile(loss="mse", optimizer="adam")      # 3 arrays of 259k floats: 3 MB a file
model.save(path)
rng = random.Random(seed)
left_behind = 0
for _ in range(kills):
    pid = os.fork()
    if pid == 0:                                 # the child saves until it is killed
        while True:
            model.save(path)
    time.sleep(rng.uniform(0.002, 0.04))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    fn.load_model(path)                          # the previous or the newest file: intact
    left_behind += len(_atomic.temporaries(path))
print(left_behind)
"""


def child_env():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(fn.__file__))
    return env


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL")
def test_saves_killed_mid_write_leave_the_file_intact_and_no_temporaries(tmp_path):
    path = tmp_path / "m.fnn"
    kills = 20
    run = subprocess.run([sys.executable, "-c", KILLED_SAVES, str(path), "14", str(kills)],
                         env=child_env(), cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    # Each kill that landed mid-write left a temporary (until the next save removed it);
    # if none did, the kills missed the window and this test tested nothing.
    assert int(run.stdout) >= 1
    model = fn.load_model(path)
    model.save(path)                             # one normal save
    assert os.listdir(tmp_path) == ["m.fnn"]
    fn.load_model(path)


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


# ------------------------------------- sizes before allocation, non-regular files (rv1) --

def big_model_file(tmp_path, members):
    """A model file declaring Dense(1000) on 1000 float64 inputs, compiled with Adam (8 MB
    of parameters, 16 MB of slots), whose members are members(entries) of the real ones'
    headers: {name: bytes}."""
    doc = {"format": "fastnn-model", "version": 1, "kind": "model", "dtype": "float64",
           "input_dim": 1000, "seed": 1, "epochs_trained": 0, "parameters": 1001000,
           "layers": [{"class": "Dense", "config": {"units": 1000}}],
           "compile": {"loss": "mse", "metrics": [], "optimizer": {
               "class_name": "Adam", "config": {"learning_rate": 0.001}}},
           "optimizer": {"iterations": 1, "slots": ["m", "v"]}}
    header = npy(np.zeros(1001000))[:128]           # the header of the right array
    path = tmp_path / "big.fnn"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("fastnn.json", json.dumps(doc))
        for name, data in members(header).items():
            z.writestr(name, data)
    return path


@pytest.mark.parametrize("members,message", [
    (lambda h: {}, "parameters.npy is missing"),
    (lambda h: {"parameters.npy": h}, "parameters.npy is truncated"),
    (lambda h: {"parameters.npy": h + bytes(8 * 1001000), "optimizer/m.npy": h,
                "optimizer/v.npy": h}, "optimizer/m.npy is truncated"),
    (lambda h: {"parameters.npy": h + bytes(8 * 1001000)}, "optimizer/m.npy is missing"),
], ids=["no-parameters", "header-only", "slot-header-only", "no-slot"])
def test_arrays_are_checked_before_the_model_is_allocated(tmp_path, members, message):
    # Before the fix, load_model built the model (8 MB) and compiled it (16 MB of Adam
    # slots) before it looked at the members. 1 MB is far above what the checks need.
    import tracemalloc
    path = big_model_file(tmp_path, members)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=message):
            fn.load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes allocated before refusing"


def test_the_sizes_the_archive_declares_are_checked(saved, tmp_path):
    # A stored member whose directory sizes are patched (the file grows a claim, not bytes).
    bad = tmp_path / "sizes.fnn"
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as z:
        info = z.getinfo("optimizer/m.npy")
    central = [i for i in range(len(data)) if data.startswith(b"PK\x01\x02", i) and
               data[i + 46:i + 46 + len(info.filename)] == info.filename.encode()][0]
    struct.pack_into("<I", data, central + 20, info.compress_size * 2)     # compressed size
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="optimizer/m.npy: the archive's sizes"):
        fn.load_model(bad)


@contextlib.contextmanager
def deadline(seconds):
    """A blocked open() or read() raises instead of hanging the test run."""
    def expire(signum, frame):
        raise TimeoutError(f"still blocked after {seconds} s")
    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def non_regular_paths(tmp_path):
    fifo = tmp_path / "fifo.fnn"
    os.mkfifo(fifo)
    link = tmp_path / "zero.fnn"
    os.symlink("/dev/zero", link)
    return [(fifo, "FIFO"), (link, "character device"), ("/dev/zero", "character device")]


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"),
                    reason="POSIX FIFOs and /dev/zero")
def test_fifos_and_devices_are_refused_without_reading(tmp_path):
    # Before the fix a FIFO blocked load_model forever and /dev/zero was read without end.
    fn.set_seed(1)
    model = make_model()
    for path, kind in non_regular_paths(tmp_path):
        for load in (fn.load_model, model.load_weights):
            with deadline(10), pytest.raises(ModelFileError, match=kind) as e:
                load(path)
            assert str(path) in str(e.value)


def test_a_symlink_to_a_model_file_loads(saved, tmp_path):
    link = tmp_path / "link.fnn"
    os.symlink(saved, link)
    assert same_weights(fn.load_model(link), fn.load_model(saved))


@pytest.mark.parametrize("member", ["fastnn.json", "parameters.npy", "optimizer/m.npy"])
@pytest.mark.parametrize("first", [True, False])
def test_duplicate_member_names_are_refused(saved, tmp_path, member, first):
    # zipfile keeps the last of two entries of one name; another reader may take the
    # first: the file means two things, so it is refused.
    with zipfile.ZipFile(saved) as z:
        entries = [(n, z.read(n)) for n in z.namelist()]
    copy = (member, dict(entries)[member])
    bad = tmp_path / "dup.fnn"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # zipfile: "Duplicate name"
        with zipfile.ZipFile(bad, "w") as z:
            for n, b in ([copy] + entries if first else entries + [copy]):
                z.writestr(n, b)
    for load in (fn.load_model, make_model().load_weights):
        with pytest.raises(ModelFileError, match=f"more than one member named '{member}'"):
            load(bad)


@pytest.mark.parametrize("keys,value", [
    (["dtype"], "float16"), (["input_dim"], 0), (["parameters"], 5), (["seed"], -1),
    (["layers"], []), (["layers", 0, "class"], "Conv2D"), (["layers", 0, "config", "units"], 0),
    (["input_shape"], [3, 3]), (["layers", 2, "config", "pieces"], "x"),
    (["compile", "loss"], "nope"), (["optimizer", "slots"], [1]),
    (["optimizer", "iterations"], -1), (["epochs_trained"], 2**63)])
def test_errors_about_json_fields_name_the_member(saved, tmp_path, keys, value):
    bad = rewrite(saved, tmp_path / "bad.fnn", json_edit=lambda doc: set_path(doc, keys, value))
    with pytest.raises(ModelFileError) as e:
        fn.load_model(bad)
    assert str(e.value).startswith(f"{bad}: fastnn.json: "), str(e.value)


def test_resaving_keeps_the_files_permission_bits(tmp_path):
    path = tmp_path / "m.fnn"
    model = make_model()
    model.save(path)
    os.chmod(path, 0o600)
    model.save(path)                   # before the fix: 0o666 less the umask
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with _atomic.atomic_write(path, mode=0o640) as f:        # an explicit mode still wins
        f.write(b"x")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_saving_to_a_symlink_writes_its_target(tmp_path):
    # As open(path, "wb") would: the link stays a link, its target gets the new content
    # (atomically, through a temporary next to the target).
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "m.fnn"
    link = tmp_path / "m.fnn"
    os.symlink(os.path.join("real", "m.fnn"), link)      # relative, and dangling at first
    fn.set_seed(1)
    first = make_model()
    first.save(link)
    assert link.is_symlink() and target.is_file()
    fn.set_seed(2)
    second = make_model()
    second.save(link)
    assert link.is_symlink() and os.readlink(link) == os.path.join("real", "m.fnn")
    assert same_weights(fn.load_model(target), second)
    assert not _atomic.temporaries(target) and not _atomic.temporaries(link)


# ------------------------------------------------- layer invariants of loaded weights --
def _batch_norm_with_negative_variance():
    fn.set_seed(3)
    model = fn.Sequential([fn.layers.Dense(4, input_dim=3),
                           fn.layers.BatchNormalization(name="bn"),
                           fn.layers.Dense(2)])
    model.build()
    bn = model.get_layer("bn")
    gamma, beta, mean, var = bn.get_weights()
    var[1] = -0.5              # finite, so only the layer's own invariant can refuse it
    bn.set_weights([gamma, beta, mean, var])
    return model


def test_a_negative_batch_norm_variance_in_a_file_is_refused(tmp_path):
    # Loading it would make every prediction NaN (the square root of a negative number).
    path = str(tmp_path / "bad.fnn")
    _batch_norm_with_negative_variance().save(path)
    with pytest.raises(fn.ModelFileError, match=r"parameters.npy: layer 'bn': moving_variance"):
        fn.load_model(path)


def test_load_weights_refusing_a_negative_variance_leaves_the_model_unchanged(tmp_path):
    path = str(tmp_path / "bad.weights")
    _batch_norm_with_negative_variance().save_weights(path)
    fn.set_seed(4)
    model = fn.Sequential([fn.layers.Dense(4, input_dim=3),
                           fn.layers.BatchNormalization(name="bn"),
                           fn.layers.Dense(2)])
    model.build()
    before = model.get_weights()
    with pytest.raises(fn.ModelFileError, match="moving_variance"):
        model.load_weights(path)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_negative_variance_is_refused_when_unpickling_too():
    import pickle
    with pytest.raises(fn.ModelFileError, match="moving_variance"):
        pickle.loads(pickle.dumps(_batch_norm_with_negative_variance()))
