"""Seeded fuzzing of the readers of files from outside: model files (``fn.load_model``,
``model.load_weights``) and IDX files (``fn.datasets.read_idx``).

Each test takes a valid file, damages it in many seeded ways and reads every result. What a
reader may do with a damaged file (the documented contract, nothing more):

- ``load_model`` / ``load_weights``: load it into a valid model, or raise
  ``fn.ModelFileError`` whose message names the file. Nothing else: not a plain
  ``ValueError`` (``ModelFileError`` subclasses ``ValueError``, so a caller catching
  ``ValueError`` is protected too, but a plain one here means an error escaped unconverted),
  not ``TypeError``, ``KeyError``, ``NotImplementedError``, ``tokenize.TokenError``, ...
  A model that loads must predict outputs of the right shape and dtype, finite while its
  weights are moderate, and save and load back bit-identically.
- ``read_idx``: return an array of an IDX dtype and of the shape the header gives, or raise
  ``ValueError`` whose message names the file. (``OSError`` is documented for files that
  cannot be opened or read; a damaged content cannot cause that.)

Everything is deterministic: mutation ``i`` of a test is drawn from
``random.Random(f"{test}/{i}")``; a failure report gives the test, ``i`` and what was done,
which ``mutate(base, kind, seed)`` reproduces. ``FUZZ_ROUNDS`` (environment) scales the
number of mutations for a longer run; the default keeps the whole file under a minute.
"""
import gzip
import io
import json
import math
import os
import random
import struct
import zipfile

import numpy as np
import pytest

import fastnn as fn
from fastnn import datasets as ds
from fastnn import layers as L

ROUNDS = int(os.environ.get("FUZZ_ROUNDS", "1"))
MODEL_MUTATIONS = 100 * ROUNDS     # per (base file, mutation kind)
IDX_MUTATIONS = 60 * ROUNDS        # per (base file, mutation kind)
SEED = 14


# ------------------------------------------------------------------------ model files --

def _nets():
    """Every layer kind, several activations, optimizers with state and without (4 inputs)."""
    reg = fn.regularizers.l2(1e-3)
    return {
        "dense-adam": (lambda: [L.Dense(5, activation="relu", input_dim=4,
                                        kernel_regularizer=reg),
                                L.Dense(3, activation="softmax")],
                       lambda: dict(loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                                    optimizer=fn.optimizers.Adam(0.01, amsgrad=True))),
        "all-kinds-sgd": (lambda: [L.Dense(6, activation="tanh", input_dim=4), L.Dropout(0.25),
                                   L.Maxout(3, pieces=2), L.Activation("leaky_relu"),
                                   L.Dense(2, activation="sigmoid")],
                          lambda: dict(loss="binary_crossentropy",
                                       optimizer=fn.optimizers.SGD(0.1, momentum=0.9))),
        "maxout-schedule": (lambda: [L.Maxout(4, pieces=3, input_dim=4), L.Activation("relu"),
                                     L.Dense(1)],
                            lambda: dict(loss="mse", optimizer=fn.optimizers.RMSprop(
                                fn.optimizers.schedules.CosineDecay(0.01, 20)))),
        "plain-sgd": (lambda: [L.Dense(3, input_dim=4), L.Dropout(0.5),
                               L.Dense(2, activation="linear")],
                      lambda: dict(loss="mse", optimizer="sgd")),       # no optimizer slots
        "flatten-softmax": (lambda: [fn.Input(shape=(2, 2)), L.Flatten(),
                                     L.Dense(3, activation="relu"), L.Softmax()],
                            lambda: dict(loss="categorical_crossentropy",
                                         optimizer=fn.optimizers.Adagrad(0.1))),
        "uncompiled": (lambda: [L.Dense(3, activation="sigmoid", input_dim=4),
                                L.Activation("tanh"), L.Dense(2, activation="softmax")],
                       None),
        # The normalization layers, scale/center on and off (gamma/beta then stay in the
        # file as ones/zeros), BatchNormalization's moving statistics trained.
        "normalization-adam": (lambda: [L.Dense(6, input_dim=4), L.BatchNormalization(),
                                        L.Activation("relu"), L.LayerNormalization(),
                                        L.Dense(2)],
                               lambda: dict(loss="mse", optimizer=fn.optimizers.Adam(0.01))),
        "normalization-off": (lambda: [L.BatchNormalization(scale=False, center=False,
                                                            input_dim=4),
                                       L.Dense(5, activation="tanh"),
                                       L.LayerNormalization(scale=False),
                                       L.BatchNormalization(center=False, momentum=0.5),
                                       L.LayerNormalization(center=False, epsilon=1e-5),
                                       L.Dense(3, activation="softmax")],
                              lambda: dict(loss="categorical_crossentropy",
                                           optimizer=fn.optimizers.SGD(0.1, momentum=0.5))),
    }


NETS = _nets()


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch):
    """The fuzz tests the readers; every loaded model is saved again (check_loaded), and
    each save's fsync, a disk flush, made up most of the file's wall time on a busy
    machine (94 s of wall for 7 s of CPU). Durability is tested in test_saving.py."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)
BASES = [(net, dtype, kind) for net in NETS for dtype in ("float32", "float64")
         for kind in ("model", "weights")
         if not (kind == "weights" and net not in ("all-kinds-sgd", "uncompiled",
                                                    "normalization-off"))]


def build(net, dtype, seed=3):
    fn.set_seed(seed)
    layers, compile_args = NETS[net]
    model = fn.Sequential(layers(), dtype=dtype)
    if compile_args is not None:
        model.compile(**compile_args())
    else:
        model.build(4)
    return model


def inputs(model, n):
    """n samples in [-1, 1] of the model's input shape."""
    shape = (n,) + tuple(model.input_shape[1:])
    return np.linspace(-1, 1, math.prod(shape)).reshape(shape).astype(model.dtype)


def _train_briefly(model):
    x = inputs(model, 16)
    units = model.output_dim
    y = (np.arange(16) % max(units, 2)).astype(float) if model.loss.name.startswith(
        "sparse") else np.random.default_rng(1).uniform(0, 1, (16, units))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)


@pytest.fixture(scope="module")
def base_files(tmp_path_factory):
    """(net, dtype, kind) -> bytes of a valid file."""
    folder = tmp_path_factory.mktemp("bases")
    files = {}
    for net, dtype, kind in BASES:
        model = build(net, dtype)
        if model.compiled:
            _train_briefly(model)         # optimizer slots hold state, iterations > 0
        path = folder / f"{net}-{dtype}-{kind}.fnn"
        (model.save if kind == "model" else model.save_weights)(path)
        files[net, dtype, kind] = path.read_bytes()
    return files


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def _zip(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


HOSTILE_VALUES = [None, True, False, 0, -1, 1, 7, 2**31, 2**63, -2**63, 10**400 // 10**380,
                  0.5, -0.0, 1e308, float("nan"), float("inf"), float("-inf"), "", "x",
                  "relu", "softmax", "float16", "object", "Dense", "Maxout", "adam", "mse",
                  "../../etc/passwd", "é\u2028\x00", [], [1], [[[]]], {}, {"a": 1},
                  {"class_name": "CosineDecay", "config": {}}, "A" * 5000]


def _nodes(doc, path=()):
    yield path
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _nodes(v, path + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _nodes(v, path + (i,))


def _edit_json(rng, raw):
    """Structural edit (a value replaced, a key removed or added) or textual edit."""
    if rng.random() < 0.25:
        text = bytearray(raw)
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(text) + 1)
            op = rng.randrange(3)
            char = rng.choice(b'{}[]",:0123456789eE.-+ntfa\\u')
            if op == 0 and pos < len(text):
                text[pos] = char
            elif op == 1:
                text.insert(pos, char)
            elif pos < len(text):
                del text[pos]
        return bytes(text), "text"
    doc = json.loads(raw)
    path = rng.choice(list(_nodes(doc))[1:])
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    op = rng.randrange(4)
    if op == 0 and isinstance(parent, dict):
        del parent[path[-1]]
        what = f"del {path}"
    elif op == 1 and isinstance(parent, dict):
        parent[rng.choice(["evil", "name", "dtype", "units", "pieces", "rate"])] = \
            rng.choice(HOSTILE_VALUES)
        what = f"add key under {path[:-1]}"
    else:
        parent[path[-1]] = value = rng.choice(HOSTILE_VALUES)
        what = f"{path} = {value!r:.40}"
    if rng.random() < 0.03:
        return b"[" * 100000 + b"]" * 100000, "deep nesting"
    if rng.random() < 0.03:
        return json.dumps([doc] * rng.randint(0, 2)).encode(), "not a dict"
    return json.dumps(doc).encode(), what


NPY_CHARS = b"{}()[]':, 0123456789<>|=fiuObcSVUTrueFalsedescrshapefortran_order\n\\\"#\x00\xff"
NPY_HEADERS = [
    b"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296,), }",
    b"{'descr': '|O', 'fortran_order': False, 'shape': (3,), }",
    b"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }",
    b"{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }",
    b"{'descr': '<f4', 'fortran_order': False, 'shape': ((((((((((3,),),),),),),),),),), }",
    b"{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }",
    b"{'descr': '<f4', 'fortran_order': False, 'shape': (3.5,), }",
    b"{'descr': '<f4', 'fortran_order': False, 'shape': (1e9999,), }",
    b"{'descr': '<f4', 'fortran_order': False, 'shape': (" + b"9" * 5000 + b",), }",
    b"{'descr': '<f4', 'fortran_order': False}",
    b"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'extra': 1}",
    b"{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (3,)}",
    b"{'descr': 'V99999999999', 'fortran_order': False, 'shape': (3,), }",
    b"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }" + b"(" * 300,
    b"__import__('os').system('touch pwned')",
    b"{'descr': '<f4', 'fortran_order': 0, 'shape': [3], }",
    b"{'descr': '\xff\xfe', 'fortran_order': False, 'shape': (3,), }",
    b"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\x00\x00",
    b"",
]


def _npy_header_len(data):
    if data[6:7] == b"\x01":
        return 10, struct.unpack("<H", data[8:10])[0]
    return 12, struct.unpack("<I", data[8:12])[0]


def _edit_npy(rng, data):
    """Edits of an .npy member's header (magic, version, length field, the dict text)."""
    data = bytearray(data)
    start, hlen = _npy_header_len(data)
    op = rng.randrange(5)
    if op == 0:                                   # the dict text, a few characters
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(start, start + hlen)
            if rng.random() < 0.7:
                data[pos] = rng.choice(NPY_CHARS)
            elif rng.random() < 0.5:
                data.insert(pos, rng.choice(NPY_CHARS))
            else:
                del data[pos]
        return bytes(data), "header text"
    if op == 1:                                   # a whole crafted header, length kept right
        text = rng.choice(NPY_HEADERS) + b"\n"
        version = rng.choice([1, 2, 3])
        field = struct.pack("<H" if version == 1 else "<I", len(text))
        body = bytes(data[start + hlen:])
        return b"\x93NUMPY" + bytes([version, 0]) + field + text + body, f"header {text[:30]!r}"
    if op == 2:                                   # the length field
        value = rng.choice([0, 1, hlen - 1, hlen + 1, 65535, rng.randrange(1 << 16)])
        data[8:10] = struct.pack("<H", value)
        return bytes(data), f"header length {value}"
    if op == 3:                                   # magic and version
        pos = rng.randrange(8)
        data[pos] = rng.randrange(256)
        return bytes(data), f"magic byte {pos}"
    cut = rng.randrange(start + hlen + 8)         # a header cut short
    return bytes(data[:cut]), f"cut at {cut}"


ZIP_RECORDS = {b"PK\x03\x04": {"version": (4, "<H"), "flags": (6, "<H"), "method": (8, "<H"),
                               "crc": (14, "<I"), "csize": (18, "<I"), "size": (22, "<I"),
                               "namelen": (26, "<H"), "extralen": (28, "<H")},
               b"PK\x01\x02": {"version": (6, "<H"), "flags": (8, "<H"), "method": (10, "<H"),
                               "crc": (16, "<I"), "csize": (20, "<I"), "size": (24, "<I"),
                               "namelen": (28, "<H"), "extralen": (30, "<H"),
                               "commentlen": (32, "<H"), "offset": (42, "<I")},
               b"PK\x05\x06": {"disk": (4, "<H"), "entries": (10, "<H"), "cdsize": (12, "<I"),
                               "cdoffset": (16, "<I"), "commentlen": (20, "<H")}}


def _edit_zip_fields(rng, data):
    """Edits of the ZIP structure: flag bits (encryption, bit 5 'compressed patched data',
    strong encryption, UTF-8 names), compression method, versions, sizes, offsets."""
    data = bytearray(data)
    records = [(pos, sig) for sig in ZIP_RECORDS for pos in _find_all(data, sig)]
    pos, sig = rng.choice(records)
    field = rng.choice(sorted(ZIP_RECORDS[sig]))
    if sig != b"PK\x05\x06" and rng.random() < 0.5:
        field = rng.choice(["flags", "method"])
    offset, fmt = ZIP_RECORDS[sig][field]
    size = struct.calcsize(fmt)
    old = struct.unpack_from(fmt, data, pos + offset)[0]
    if field == "flags":
        value = old ^ (1 << rng.choice([0, 0, 3, 5, 5, 5, 6, 11, 11, 13, rng.randrange(16)]))
    elif field == "method":
        value = rng.choice([1, 6, 8, 8, 9, 12, 12, 14, 14, 19, 93, 95, 98, 99,
                            rng.randrange(65536)])
    elif field == "version":
        value = rng.choice([0, 20, 45, 63, 64, 255, 65535])
    else:
        value = rng.choice([0, 1, old - 1, old + 1, old * 2, (1 << 8 * size) - 1,
                            rng.randrange(1 << 8 * size)]) % (1 << 8 * size)
    struct.pack_into(fmt, data, pos + offset, value)
    return bytes(data), f"{sig[2:]!r}@{pos} {field} {old} -> {value}"


def _find_all(data, needle):
    found, pos = [], data.find(needle)
    while pos >= 0:
        found.append(pos)
        pos = data.find(needle, pos + 1)
    return found


def _flip(rng, data):
    data = bytearray(data)
    positions = [rng.randrange(len(data)) for _ in range(rng.choice([1, 1, 2, 4, 8, 32]))]
    for pos in positions:
        data[pos] ^= rng.randrange(1, 256)
    return bytes(data), f"flip {positions[:4]}"


def _truncate(rng, data):
    cut = rng.randrange(len(data))
    return data[:cut], f"cut at {cut}"


def _splice(rng, data, donors):
    """A run of bytes copied over, into or out of the file (from itself or another file)."""
    donor = rng.choice(donors) if rng.random() < 0.3 else data
    length = rng.choice([1, 2, 4, 8, 30, 200, 2000])
    src = rng.randrange(max(1, len(donor) - length))
    run = donor[src:src + length]
    dst = rng.randrange(len(data))
    op = rng.randrange(3)
    if op == 0:
        return data[:dst] + run + data[dst + len(run):], f"overwrite {length}@{dst}"
    if op == 1:
        return data[:dst] + run + data[dst:], f"insert {length}@{dst}"
    return data[:dst] + data[dst + length:], f"delete {length}@{dst}"


def mutate_model_file(data, kind, rng, donors):
    """One seeded mutation of a model file: (bytes, description, the member an error
    must name or None)."""
    if kind in ("flip", "truncate", "splice", "zip-fields"):
        data, what = (_flip(rng, data) if kind == "flip" else
                      _truncate(rng, data) if kind == "truncate" else
                      _splice(rng, data, donors) if kind == "splice" else
                      _edit_zip_fields(rng, data))
        return data, what, None
    entries = _members(data)
    if kind == "json":
        entries["fastnn.json"], what = _edit_json(rng, entries["fastnn.json"])
        return _zip(entries), what, None
    name = rng.choice(sorted(n for n in entries if n.endswith(".npy")))      # "npy-header"
    entries[name], what = _edit_npy(rng, entries[name])
    return _zip(entries), f"{name}: {what}", name


MODEL_KINDS = ["flip", "truncate", "splice", "json", "npy-header", "zip-fields"]


def check_loaded(model, path):
    """A model that loaded is a valid model."""
    out = model.predict(inputs(model, 3))
    assert out.shape == (3, model.output_dim) and out.dtype == model.dtype
    weights = model.get_weights()
    assert all(np.isfinite(w).all() for w in weights)
    # Moderate weights, inputs in [-1, 1], at most 5 layers: outputs are finite.
    if max(float(np.abs(w).max(initial=0)) for w in weights) < 1e3:
        assert np.isfinite(out).all()
    again = path.with_name("resaved.fnn")
    model.save(again)
    reloaded = fn.load_model(again)
    assert all(np.array_equal(a, b) for a, b in zip(weights, reloaded.get_weights()))


def read_model_file(path, net, dtype, kind, rng):
    """Read with load_model (model files; compile=False one time in five) or load_weights
    into a fresh model of the base's architecture."""
    if kind == "model" and rng.random() < 0.8:
        return fn.load_model(path, compile=rng.random() < 0.75)
    model = build(net, dtype, seed=5)
    model.load_weights(path)
    return model


def fuzz(cases, read, check, allowed, path):
    """Run every (description, bytes, member) of ``cases`` through ``read``: an error must
    be ``allowed`` and name the file (and the member, if not None). Returns the failures."""
    failures, counts = [], {"loaded": 0, "refused": 0}
    for label, data, member in cases:
        path.write_bytes(data)
        try:
            result = read(path)
        except allowed as e:
            counts["refused"] += 1
            for name in (str(path), member):
                if name is not None and name not in str(e):
                    failures.append(f"{label}: {type(e).__name__} not naming {name}: {e}")
            continue
        except Exception as e:   # noqa: BLE001 -- anything else is what the fuzz hunts
            failures.append(f"{label}: {type(e).__module__}.{type(e).__name__}: {e!s:.200}")
            continue
        counts["loaded"] += 1
        try:
            check(result, path)
        except Exception as e:   # noqa: BLE001
            failures.append(f"{label}: loaded, but not valid: {type(e).__name__}: {e!s:.200}")
    return failures, counts


COUNTS = {}


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("net,dtype,file_kind", BASES, ids=lambda v: str(v))
def test_damaged_model_files_are_refused_with_model_file_error(
        base_files, tmp_path, net, dtype, file_kind, kind):
    base = base_files[net, dtype, file_kind]
    donors = list(base_files.values())
    test = f"model/{net}/{dtype}/{file_kind}/{kind}"

    def cases():
        for i in range(MODEL_MUTATIONS):
            rng = random.Random(f"{SEED}/{test}/{i}")
            data, what, member = mutate_model_file(base, kind, rng, donors)
            yield f"{test}#{i} ({what})", data, member

    reader = random.Random(f"{SEED}/{test}/reader")
    failures, counts = fuzz(cases(), lambda p: read_model_file(p, net, dtype, file_kind, reader),
                            check_loaded, fn.ModelFileError, tmp_path / "fuzzed.fnn")
    COUNTS[test] = counts
    assert not failures, f"{len(failures)} of {MODEL_MUTATIONS}:\n" + "\n".join(failures[:15])


# -------------------------------------------------------------------------- IDX files --

IDX_BASES = [(dtype, shape, gz) for dtype, shape in [
    ("uint8", (7, 3)), ("int8", (5,)), ("int16", (2, 3, 4)), ("int32", (3, 1)),
    ("float32", (2, 1, 2, 3)), ("float64", (4,)), ("uint8", (0, 3))] for gz in (False, True)]
IDX_CODES = bytes([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E])


def _idx_base(dtype, shape, gz, folder):
    path = folder / f"{dtype}-{len(shape)}d{'.gz' if gz else ''}"
    array = np.arange(math.prod(shape)).astype(dtype).reshape(shape)
    ds.write_idx(path, array)
    return path.read_bytes()


def _edit_idx_header(rng, content):
    """The IDX header itself: magic, type code, dimension count, dimensions."""
    content = bytearray(content)
    op = rng.randrange(5)
    if op == 4:     # an empty dimension beside huge ones: no data, whatever the others say
        dims = [rng.choice([1, 7, 2**16, 2**31, 2**32 - 1]) for _ in range(rng.randint(2, 4))]
        dims[rng.randrange(len(dims))] = 0
        header = bytes(content[:3]) + bytes([len(dims)])
        return header + b"".join(d.to_bytes(4, "big") for d in dims), f"dims {dims}"
    if op == 0:
        pos = rng.randrange(2)
        content[pos] = rng.randrange(256)
        return bytes(content), f"magic {pos}"
    if op == 1:
        content[2] = rng.choice(IDX_CODES + bytes([rng.randrange(256)]))
        return bytes(content), f"code {content[2]:#x}"
    if op == 2:
        content[3] = rng.choice([0, 1, 2, 3, 4, 5, 255])
        return bytes(content), f"ndim {content[3]}"
    ndim = max(1, min(content[3], 4))
    dim = rng.randrange(ndim)
    value = rng.choice([0, 1, 2, 1000, 2**31, 2**32 - 1, rng.randrange(2**32)])
    content[4 + 4 * dim:8 + 4 * dim] = value.to_bytes(4, "big")
    return bytes(content), f"dim {dim} = {value}"


def _edit_gzip(rng, data):
    """The gzip container: header flags (FTEXT, FHCRC, FEXTRA, FNAME, FCOMMENT), method,
    and the CRC/length trailer."""
    data = bytearray(data)
    op = rng.randrange(3)
    if op == 0:
        data[3] ^= 1 << rng.randrange(8)
        return bytes(data), f"flags {data[3]:#x}"
    if op == 1:
        data[2] = rng.choice([0, 7, 9, 255])
        return bytes(data), f"method {data[2]}"
    pos = len(data) - rng.randrange(1, 9)
    data[pos] ^= rng.randrange(1, 256)
    return bytes(data), f"trailer byte {pos}"


def mutate_idx_file(data, gz, kind, rng, donors):
    if kind == "flip":
        return _flip(rng, data)
    if kind == "truncate":
        return _truncate(rng, data)
    if kind == "splice":
        return _splice(rng, data, donors)
    if kind == "gzip-container":
        return _edit_gzip(rng, data)
    content = gzip.decompress(data) if gz else data
    if kind == "header":
        content, what = _edit_idx_header(rng, content)
    else:                                                 # "append"
        extra = rng.choice([b"\0", b"garbage", bytes(1000), gzip.compress(b"more")])
        content, what = content + extra, f"append {len(extra)}"
    return (gzip.compress(content, mtime=0) if gz else content), what


IDX_KINDS = ["flip", "truncate", "splice", "header", "append", "gzip-container"]
IDX_ITEMS = {np.dtype(t) for t in ("uint8", "int8", "int16", "int32", "float32", "float64")}


def check_array(array, path):
    assert isinstance(array, np.ndarray) and array.dtype in IDX_ITEMS
    assert array.dtype.isnative and 1 <= array.ndim <= 4
    assert array.nbytes <= ds.MAX_IDX_BYTES


@pytest.mark.parametrize("dtype,shape,gz,kind", [
    base + (kind,) for base in IDX_BASES for kind in IDX_KINDS
    if base[2] or kind != "gzip-container"], ids=str)
def test_damaged_idx_files_raise_only_value_error(tmp_path, dtype, shape, gz, kind):
    base = _idx_base(dtype, shape, gz, tmp_path)
    donors = [_idx_base("int16", (3, 2), not gz, tmp_path)]
    test = f"idx/{dtype}/{shape}/{'gz' if gz else 'raw'}/{kind}"

    def cases():
        for i in range(IDX_MUTATIONS):
            rng = random.Random(f"{SEED}/{test}/{i}")
            data, what = mutate_idx_file(base, gz, kind, rng, donors)
            yield f"{test}#{i} ({what})", data, None

    failures, counts = fuzz(cases(), ds.read_idx, check_array, ValueError, tmp_path / "fuzzed")
    COUNTS[test] = counts
    assert not failures, f"{len(failures)} of {IDX_MUTATIONS}:\n" + "\n".join(failures[:15])


def test_every_mutation_ran_and_both_outcomes_occur():
    """Runs after the fuzz tests (file order): each ran all its mutations, and the
    mutations reached both sides of the readers, the refusals and the successful loads
    (a fuzz whose files all fail at the first check would test little). Prints the totals
    (pytest -s shows them)."""
    if not COUNTS:
        pytest.skip("run together with the fuzz tests above")
    for prefix, per_test, name in (("model/", MODEL_MUTATIONS, "model files"),
                                   ("idx/", IDX_MUTATIONS, "IDX files")):
        group = [c for t, c in COUNTS.items() if t.startswith(prefix)]
        if not group:
            continue
        loaded = sum(c["loaded"] for c in group)
        refused = sum(c["refused"] for c in group)
        print(f"\nfuzz: {name}: {loaded + refused} mutations in {len(group)} tests "
              f"({refused} refused, {loaded} loaded)")
        assert all(c["loaded"] + c["refused"] <= per_test for c in group)
        assert loaded > 0.01 * per_test * len(group) and refused > 0.5 * per_test * len(group)
