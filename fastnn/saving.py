"""The model file format: no pickle, nothing executable, checked before anything is
allocated.

A model file is a ZIP archive (written stored, not compressed) holding:
- ``fastnn.json``: {"format": "fastnn-model", "version": 1, "kind": "model" | "weights",
  "dtype", "input_dim", "input_shape" (one sample's shape; absent in older files:
  (input_dim,)), "seed", "epochs_trained", "layers": [{"class", "config"}],
  "compile": {"loss", "metrics", "optimizer": config} or null (the loss and each metric a
  name, or {"class", "config"} with the constructor's arguments; files holding names load
  too),
  "optimizer": {"iterations", "slots": [names]} or null, "parameters": count};
- ``parameters.npy``: every weight, flat, in get_weights() order (the model's buffer);
- ``optimizer/<slot>.npy``: the optimizer's slots (moments, accumulators), flat.

Reading checks, in order: that the path is a regular file (not a FIFO, a device or a
socket, also behind a symlink: fastnn._files), the archive, that no member name occurs
twice, each member's ZIP flags and compression method (stored or deflated; no encryption),
the JSON's size and shape, the format and version, every layer class against a fixed list,
the parameter count implied by the architecture against a limit, and then every .npy member
to be read: its header (parsed here, strictly: a dict literal of descr, fortran_order and
shape, nothing evaluated), dtype and shape against that count, and the sizes the ZIP
directory declares for it against the header and the archive's length. Only then is the
model built (the layers' arguments checked by their own validation), allocated, and read.

Errors: a file that cannot be opened raises OSError (FileNotFoundError, IsADirectoryError,
PermissionError); every other failure to read or check it raises ModelFileError naming the
file (and the member: fastnn.json for its fields), whatever the standard library raised
underneath. The conversion
happens where foreign bytes are parsed (opening the archive, opening and reading a member,
the .npy header, the JSON), so a bug in fastnn itself is never disguised as a bad file.

Writing is atomic (fastnn._atomic): a temporary file in the same directory, fsync, then
rename, so a crash mid-save never destroys the previous file; the temporaries of saves
killed mid-write are removed by the next save to the same path.
"""
import contextlib
import io
import json
import math
import os
import re
import struct
import zipfile
import zlib

import numpy as np

from fastnn import _atomic, _files

FORMAT = "fastnn-model"
VERSION = 1
MAX_JSON_BYTES = 1 << 20
MAX_PARAMETERS = 1 << 31          # 8 GiB of float32: beyond it, a file is taken as hostile
MAX_LAYERS = 10_000


class ModelFileError(ValueError):
    """A model file that is not a valid fastnn file (corrupt, truncated, hostile), or
    whose weights do not fit the model given to load_weights. The message names the file
    and, where one is at fault, the member inside it."""


# ---------------------------------------------------------------------------- writing --

def _npy_bytes(array):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _write_zip(path, entries):
    """Write a ZIP of {name: bytes} to path atomically (fastnn._atomic)."""
    with _atomic.atomic_write(path) as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
            for name, data in entries.items():
                z.writestr(name, data)


def _describe(model, kind):
    model._require_built("save")
    return _description(model, kind)


# The model classes files are built as, by name (Keras's register_keras_serializable
# table): fastnn.models registers Sequential when it is imported, so saving never imports
# models (models imports saving to write).
MODEL_CLASSES = {}


def register_model_class(cls):
    """Let load_model and unpickling build models of class ``cls`` (by its __name__).
    Returns cls, so it can decorate a class."""
    MODEL_CLASSES[cls.__name__] = cls
    return cls


def _description(model, kind):
    """The fastnn.json document of a model, built or not (an unbuilt model has no
    parameters and possibly no input_dim; only pickling describes those)."""
    return {"format": FORMAT, "version": VERSION, "kind": kind, "dtype": model.dtype.name,
            "input_dim": model.input_dim, "input_shape": _shape_of(model),
            "seed": model.seed, "epochs_trained": model.epochs_trained, "name": model.name,
            "built": model.built,
            "layers": [{"class": type(layer).__name__, "config": layer.get_config()}
                       for layer in model.layers],
            "parameters": model.parameter_store.size if model.built else 0,
            "compile": None, "optimizer": None}


def _shape_of(model):
    """One sample's shape as a list (None while the model declares none)."""
    shape = model._input_shape if model.built else model._known_input_shape()
    return None if shape is None else list(shape)


def describe(model, strict=True):
    """The model as a model file holds it: (doc, arrays, objects).

    doc is the JSON-able fastnn.json document, arrays {entry name without '.npy': flat
    array (a live view)} the parameters and optimizer slots. Built or not, compiled or
    not. What cannot be described as data (a custom loss, a learning rate that is an
    arbitrary callable, a custom metric) raises ValueError when strict (files), and is
    returned in objects {'loss', 'learning_rate', 'metrics'} otherwise (pickling carries
    those objects as they are).
    save_model writes exactly this, and build_model(doc, arrays, objects) rebuilds it.
    """
    doc = _description(model, "model")
    arrays = {"parameters": model.parameter_store.params} if model.built else {}
    objects = {}
    if model.compiled:
        opt = model.optimizer
        config = opt.get_config()
        if opt.learning_rate is not None and callable(opt.learning_rate) and \
                config["learning_rate"] is None:
            if strict:
                raise ValueError("save: the optimizer's learning rate is an arbitrary "
                                 "callable, which cannot be stored as data; use a schedule "
                                 "from fn.optimizers.schedules, or save_weights()")
            objects["learning_rate"] = opt.learning_rate
        from fastnn import losses, metrics
        try:
            loss = losses.serialize(model.loss)
        except ValueError:
            if strict:
                raise
            objects["loss"] = model.loss
            loss = None
        try:
            metric_docs = [metrics.serialize(m) for m in model._metric_names]
        except ValueError:
            if strict:
                raise
            objects["metrics"] = list(model._metric_names)
            metric_docs = []
        doc["compile"] = {"loss": loss, "metrics": metric_docs, "optimizer": config}
        state = opt.variables()
        slots = [k for k, v in state.items() if k != "iterations" and v.shape[0] > 0]
        doc["optimizer"] = {"iterations": int(state["iterations"]), "slots": slots}
        for k in slots:
            arrays[f"optimizer/{k}"] = state[k]
    return doc, arrays, objects


def save_model(model, path):
    """Architecture, weights, dtype, compile settings and optimizer state to one file."""
    model._require_built("save")
    doc, arrays, _ = describe(model, strict=True)
    entries = {"fastnn.json": json.dumps(doc, indent=1).encode()}
    entries.update({f"{name}.npy": _npy_bytes(a) for name, a in arrays.items()})
    _write_zip(path, entries)


def save_weights(model, path):
    """Only the weights (with the architecture, to check them against on loading)."""
    doc = _describe(model, "weights")
    _write_zip(path, {"fastnn.json": json.dumps(doc, indent=1).encode(),
                      "parameters.npy": _npy_bytes(model.parameter_store.params)})


# ---------------------------------------------------------------------------- reading --

# What the standard library raises on damaged archive bytes, and nothing wider: zipfile
# (BadZipFile; NotImplementedError for an unknown compression method, zip version or flag
# bit; RuntimeError for an encrypted member; ValueError and UnicodeDecodeError for bad
# names and offsets; struct.error), EOFError, zlib.error, OSError from reads, RecursionError
# (a RuntimeError) from deeply nested JSON. Programming errors (TypeError, AttributeError,
# KeyError, NameError, ...) are not in the list: they surface as themselves.
_DAMAGE = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError,
           ValueError, struct.error, EOFError, zlib.error, OSError, OverflowError)
_STORED_OR_DEFLATED = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_ENCRYPTED, _PATCHED, _STRONG_ENCRYPTION = 1 << 0, 1 << 5, 1 << 6


@contextlib.contextmanager
def _parsing(path, member):
    """Around code that parses a member's bytes: damage becomes a ModelFileError that
    names the file and the member."""
    try:
        yield
    except ModelFileError:
        raise
    except _DAMAGE as e:
        raise ModelFileError(f"{path}: {member} is corrupt ({type(e).__name__}: {e})") \
            from None


@contextlib.contextmanager
def _open(path):
    """The model file as an open ZipFile. OSError if the file cannot be opened (missing,
    a directory, no permission); ModelFileError if it is not a regular file (a FIFO would
    block, /dev/zero never end) or not a readable archive, or names a member twice."""
    try:
        f = _files.open_regular(path)
    except _files.NotARegularFile as e:
        raise ModelFileError(f"not a fastnn model file: {e}") from None
    with f:
        try:
            z = zipfile.ZipFile(f, "r")
        except _DAMAGE as e:
            raise ModelFileError(f"{path}: not a fastnn model file (not a valid archive: "
                                 f"{type(e).__name__}: {e})") from None
        with z:
            _refuse_duplicates(z, path)
            yield z


def _refuse_duplicates(z, path):
    """zipfile keeps a duplicate member name's last entry: which of two fastnn.json (or
    parameters.npy) a reader sees would depend on the reader. fastnn writes each once."""
    seen = set()
    for name in z.namelist():
        if name in seen:
            raise ModelFileError(f"{path}: the archive holds more than one member named "
                                 f"{name!r:.200}")
        seen.add(name)


def _member(z, name, path):
    """Open member ``name`` for reading, refusing what fastnn never writes (encryption,
    patch data, compression other than deflate) before zipfile sees it."""
    try:
        info = z.getinfo(name)
    except KeyError:
        raise ModelFileError(f"{path}: {name} is missing") from None
    if info.flag_bits & (_ENCRYPTED | _PATCHED | _STRONG_ENCRYPTION):
        raise ModelFileError(f"{path}: {name} is encrypted or patch data (ZIP flag bits "
                             f"{info.flag_bits:#06x}); fastnn writes plain members")
    if info.compress_type not in _STORED_OR_DEFLATED:
        raise ModelFileError(f"{path}: {name} uses ZIP compression method "
                             f"{info.compress_type}; fastnn reads stored or deflated members")
    with _parsing(path, name):
        return info, z.open(info)


def _read_json(z, path):
    if "fastnn.json" not in z.namelist():
        raise ModelFileError(f"{path}: not a fastnn model file (no fastnn.json inside)")
    info, f = _member(z, "fastnn.json", path)
    if info.file_size > MAX_JSON_BYTES:
        raise ModelFileError(f"{path}: fastnn.json is {info.file_size} bytes, more than the "
                             f"{MAX_JSON_BYTES} allowed")
    with _parsing(path, "fastnn.json"), f:
        raw = f.read(MAX_JSON_BYTES + 1)
        doc = json.loads(raw.decode("utf-8"))
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a fastnn model file (format is "
                             f"{doc.get('format') if isinstance(doc, dict) else doc!r:.80})")
    if doc.get("version") != VERSION:
        raise ModelFileError(f"{path}: fastnn.json: format version {doc.get('version')!r:.80} "
                             f"is not supported (this fastnn reads version {VERSION})")
    return doc


def _field(doc, key, kind, path, where="fastnn.json"):
    value = doc.get(key) if isinstance(doc, dict) else None
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ModelFileError(f"{path}: {where}: '{key}' must be an integer, got {value!r:.80}")
    if kind is not int and not isinstance(value, kind):
        raise ModelFileError(f"{path}: {where}: '{key}' has the wrong type "
                             f"({type(value).__name__})")
    return value


def _expected_parameters(layer_docs, input_dim, path):
    """The parameter count the architecture implies, computed without allocating."""
    dim, total = input_dim, 0
    for i, entry in enumerate(layer_docs):
        cls, config = entry["class"], entry["config"]
        if cls in ("Dense", "Maxout"):
            units = config.get("units")
            pieces = config.get("pieces", 1) if cls == "Maxout" else 1
            for name, v in (("units", units), ("pieces", pieces)):
                if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1 << 24:
                    raise ModelFileError(f"{path}: fastnn.json: layer {i} ({cls}): {name} "
                                         f"must be an integer in [1, 2^24], got {v!r:.80}")
            width = units * pieces
            total += dim * width + width
            dim = units
        elif cls in ("BatchNormalization", "LayerNormalization"):
            # gamma, beta (and the moving mean and variance): one value per feature each
            total += dim * (4 if cls == "BatchNormalization" else 2)
        if total > MAX_PARAMETERS:
            raise ModelFileError(f"{path}: fastnn.json: the architecture has more than "
                                 f"{MAX_PARAMETERS} parameters; refusing to allocate it")
    return total


def _input_shape(doc, input_dim, path):
    """The sample shape the file declares (absent: (input_dim,)), checked against it."""
    shape = doc.get("input_shape", [input_dim])
    if not isinstance(shape, list) or not 1 <= len(shape) <= 32 or any(
            isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= 1 << 24
            for d in shape) or math.prod(shape) != input_dim:
        raise ModelFileError(f"{path}: fastnn.json: input_shape must be a list of up to 32 "
                             f"positive integers whose product is input_dim {input_dim}, got "
                             f"{shape!r:.80}")
    return tuple(shape)


def _architecture(doc, path):
    """Check the architecture a file describes without building it: returns
    (dtype, input_dim, layer entries, parameter count)."""
    from fastnn import layers as L
    dtype = _field(doc, "dtype", str, path)
    if dtype not in ("float32", "float64"):
        raise ModelFileError(f"{path}: fastnn.json: dtype must be float32 or float64, got "
                             f"{dtype!r:.80}")
    input_dim = _field(doc, "input_dim", int, path)
    if not 1 <= input_dim <= 1 << 24:
        raise ModelFileError(f"{path}: fastnn.json: input_dim {input_dim} is out of range "
                             f"(1 to 2^24)")
    layer_docs = _field(doc, "layers", list, path)
    if not 1 <= len(layer_docs) <= MAX_LAYERS:
        raise ModelFileError(f"{path}: fastnn.json: {len(layer_docs)} layers (expected 1 "
                             f"to {MAX_LAYERS})")
    for i, entry in enumerate(layer_docs):
        cls = _field(entry, "class", str, path, f"fastnn.json: layer {i}")
        _field(entry, "config", dict, path, f"fastnn.json: layer {i}")
        if cls not in L.LAYERS:
            raise ModelFileError(f"{path}: fastnn.json: layer {i}: unknown layer class "
                                 f"{cls!r:.80} (known: {sorted(L.LAYERS)})")
    expected = _expected_parameters(layer_docs, input_dim, path)
    if _field(doc, "parameters", int, path) != expected:
        raise ModelFileError(f"{path}: fastnn.json: 'parameters' is {doc['parameters']} but "
                             f"the architecture has {expected}")
    return dtype, input_dim, layer_docs, expected


def _build(doc, path):
    from fastnn import layers as L
    dtype, input_dim, layer_docs, _ = _architecture(doc, path)
    layers = []
    for i, entry in enumerate(layer_docs):
        config = dict(entry["config"])
        config["input_dim"] = input_dim if i == 0 else None
        try:
            layers.append(L.from_config(entry["class"], config))
        except (TypeError, ValueError) as e:
            raise ModelFileError(f"{path}: fastnn.json: layer {i} ({entry['class']}): "
                                 f"invalid configuration: {e}") from None
    model = MODEL_CLASSES["Sequential"](layers, dtype=dtype)
    model.seed = _field(doc, "seed", int, path)
    if not 0 <= model.seed < 2**63:
        raise ModelFileError(f"{path}: fastnn.json: seed {model.seed} is out of range "
                             f"(0 to 2^63 - 1)")
    try:
        model._build(_input_shape(doc, input_dim, path))
    except ValueError as e:
        raise ModelFileError(f"{path}: fastnn.json: invalid architecture: {e}") from None
    model.epochs_trained = _counter(doc, "epochs_trained", path)
    return model


def _counter(doc, key, path, where="fastnn.json"):
    """A count (epochs, iterations): an integer in [0, 2^63)."""
    value = _field(doc, key, int, path, where)
    if not 0 <= value < 2**63:
        raise ModelFileError(f"{path}: {where}: '{key}' {value} is out of range (0 to "
                             f"2^63 - 1)")
    return value


# The .npy header is parsed here, not by NumPy: NumPy's parser tokenizes the header as
# Python and lets its tokenizer's and literal_eval's exceptions through; this one reads the
# only form there is (a dict literal of 'descr', 'fortran_order' and 'shape', in any order,
# ASCII) and refuses anything else.
_NPY_MAGIC = b"\x93NUMPY"
_NPY_MAX_HEADER = 4096      # fastnn's headers are 118 bytes; NumPy's own limit is 10000
_NPY_DTYPES = {"<f4": "float32", ">f4": "float32", "<f8": "float64", ">f8": "float64"}
_NPY_ITEM = re.compile(r"\s*'(descr|fortran_order|shape)'\s*:\s*"
                       r"('[<>|=]?[a-zA-Z][0-9]{0,3}'|True|False|\([0-9 ,]{0,200}\))"
                       r"\s*(?:,|(?=\s*$))")


def _parse_npy_header(f, name, path):
    """Read an .npy header from f: (dtype descr, shape, fortran_order, header bytes)."""
    prefix = f.read(8)
    if len(prefix) < 8 or prefix[:6] != _NPY_MAGIC:
        raise ModelFileError(f"{path}: {name} is not an .npy array (bad magic)")
    version = (prefix[6], prefix[7])
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise ModelFileError(f"{path}: {name}: unsupported .npy version {version}")
    width = 2 if version == (1, 0) else 4
    field = f.read(width)
    if len(field) < width:
        raise ModelFileError(f"{path}: {name}: truncated .npy header")
    length = int.from_bytes(field, "little")
    if length > _NPY_MAX_HEADER:
        raise ModelFileError(f"{path}: {name}: .npy header of {length} bytes, more than "
                             f"the {_NPY_MAX_HEADER} allowed")
    text = f.read(length)
    if len(text) < length:
        raise ModelFileError(f"{path}: {name}: truncated .npy header")
    body = text.decode("latin-1").strip()
    fields = _npy_fields(body[1:-1]) if body[:1] == "{" and body[-1:] == "}" else None
    if fields is None or set(fields) != {"descr", "fortran_order", "shape"}:
        raise ModelFileError(f"{path}: {name}: malformed .npy header {body!r:.120}")
    shape = _npy_shape(fields["shape"])
    if shape is None:
        raise ModelFileError(f"{path}: {name}: malformed shape {fields['shape']!r:.60} in "
                             f"the .npy header")
    return fields["descr"].strip("'"), shape, fields["fortran_order"] == "True", \
        8 + width + length


def _npy_fields(inner):
    """{key: value text} of the dict literal's inside, or None if it is not one."""
    fields, pos = {}, 0
    while inner[pos:].strip():
        match = _NPY_ITEM.match(inner, pos)
        if match is None or match.group(1) in fields:
            return None
        fields[match.group(1)] = match.group(2)
        pos = match.end()
    return fields


def _npy_shape(text):
    """The tuple a shape literal such as '(12,)' or '(2, 3)' or '()' denotes, else None."""
    parts = [p.strip() for p in text[1:-1].split(",")]
    if len(parts) == 1:                                    # '()' only; '(3)' is no tuple
        return () if parts[0] == "" else None
    if parts[-1] == "":
        parts.pop()
    if not all(p.isdigit() and len(p) <= 19 for p in parts):
        return None
    return tuple(int(p) for p in parts)


# Deflate's largest expansion is 1032:1 (a 258-byte match in a 2-bit code, zlib's
# technical notes): a deflated member that claims more than that is lying about its size.
_DEFLATE_MAX_RATIO = 1032


def _open_npy(z, name, dtype, count, path):
    """Open member name, a flat (count,) array of dtype, and check it without reading its
    data: the .npy header (dtype, shape; no pickle) and the sizes the ZIP directory
    declares (the member's size = header + data; the stored or compressed bytes inside
    the archive's length). Returns (file positioned at the data, descr, data bytes)."""
    info, f = _member(z, name, path)
    try:
        with _parsing(path, name):
            descr, shape, fortran, header = _parse_npy_header(f, name, path)
        if _NPY_DTYPES.get(descr) != np.dtype(dtype).name:     # either byte order
            raise ModelFileError(f"{path}: {name}: dtype {descr!r}, expected {dtype}")
        if shape != (count,) or fortran:
            raise ModelFileError(f"{path}: {name}: shape {shape}, expected ({count},)")
        size = count * np.dtype(dtype).itemsize
        _check_member_sizes(z, info, header + size, path)
    except BaseException:
        f.close()
        raise
    return f, descr, size


def _check_member_sizes(z, info, expected, path):
    """The ZIP directory's sizes for a member that must hold `expected` bytes."""
    name = info.filename
    if info.file_size != expected:
        raise ModelFileError(f"{path}: {name} is truncated or has trailing data (the archive "
                             f"says {info.file_size} bytes, expected {expected})")
    archive = os.fstat(z.fp.fileno()).st_size
    stored = info.compress_type == zipfile.ZIP_STORED
    if (stored and info.compress_size != info.file_size) or \
            info.header_offset + info.compress_size > archive or \
            info.file_size > _DEFLATE_MAX_RATIO * info.compress_size + 1024:
        raise ModelFileError(f"{path}: {name}: the archive's sizes for it are inconsistent "
                             f"({info.compress_size} bytes {'stored' if stored else 'deflated'}"
                             f" at offset {info.header_offset} for {info.file_size}, in an "
                             f"archive of {archive} bytes)")


def _read_npy(z, name, dtype, count, path):
    """Read a flat array after checking it (_open_npy). Returns it in the native byte
    order."""
    f, descr, size = _open_npy(z, name, dtype, count, path)
    with f:
        with _parsing(path, name):
            data = f.read(size + 1)      # reading to the end makes zipfile check the CRC
    if len(data) != size:
        raise ModelFileError(f"{path}: {name} is truncated or has trailing data "
                             f"({len(data)} bytes, expected {size})")
    array = np.frombuffer(data, dtype=descr).astype(dtype, copy=False)
    if not np.isfinite(array).all():
        raise ModelFileError(f"{path}: {name} contains NaN or infinity")
    return array


def _check_layer_weights(model, path):
    """ModelFileError if a layer's loaded weights break one of its invariants (finite
    values a layer could never hold, e.g. a negative batch-norm variance)."""
    for layer in model.layers:
        problem = layer.invalid_weights()
        if problem is not None:
            raise ModelFileError(f"{path}: parameters.npy: layer {layer.name!r}: {problem}")


def load_model(path, compile=True):
    """Load a model written by ``model.save(path)``: architecture, weights, and (unless
    compile=False) the loss, metrics and optimizer with its state, ready to continue
    training exactly where it stopped."""
    with _open(path) as z:
        doc = _read_json(z, path)
        if doc.get("kind") != "model":
            raise ModelFileError(f"{path}: holds only weights; build the model and call "
                                 f"model.load_weights(path)")
        compile = compile and doc.get("compile") is not None
        dtype, _, _, count = _architecture(doc, path)
        _check_arrays(z, doc, dtype, count, compile, path)      # before anything is built
        model = _build(doc, path)
        store = model.parameter_store
        store.params[:] = _read_npy(z, "parameters.npy", model.dtype, store.size, path)
        _check_layer_weights(model, path)
        if compile:
            _restore_compile(model, doc, lambda k: _read_npy(
                z, f"optimizer/{k}.npy", model.dtype, store.size, path), path)
    return model


def _check_arrays(z, doc, dtype, count, compile, path):
    """Check every .npy member load_model will read (_open_npy: headers and the sizes the
    archive declares), so that a file cannot make it allocate and initialise a model,
    and optimizer slots, of a size its data does not have."""
    names = ["parameters.npy"]
    if compile:
        state_doc = _field(doc, "optimizer", dict, path)
        names += [f"optimizer/{k}.npy" for k in _slot_names(state_doc, path)]
    for name in names:
        _open_npy(z, name, dtype, count, path)[0].close()


_SLOT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _slot_names(state_doc, path):
    """The slot names doc["optimizer"] lists: distinct identifiers (as an optimizer's
    slots are named; whether they are this optimizer's is checked once it exists)."""
    slots = _field(state_doc, "slots", list, path, "fastnn.json: optimizer")
    for k in slots:
        if not isinstance(k, str) or not _SLOT_NAME.fullmatch(k) or slots.count(k) > 1:
            raise ModelFileError(f"{path}: fastnn.json: optimizer: unexpected optimizer "
                                 f"slot {k!r:.80} (slots: {slots!r:.200})")
    return slots


def _restore_compile(model, doc, read_slot, path, objects=None):
    """Compile model as doc["compile"] says and restore the optimizer state; read_slot(name)
    returns the slot's flat array (from a file, or from memory). objects: the loss,
    learning rate and/or metrics describe(strict=False) could not describe as data."""
    from fastnn import losses, optimizers
    from fastnn import metrics as metrics_module
    objects = objects or {}
    comp = _field(doc, "compile", dict, path)
    loss = objects["loss"] if "loss" in objects else \
        _field(comp, "loss", (str, dict), path, "fastnn.json: compile")
    metrics = _field(comp, "metrics", list, path, "fastnn.json: compile")
    opt_config = dict(_field(comp, "optimizer", dict, path, "fastnn.json: compile"))
    if "learning_rate" in objects:
        opt_config["learning_rate"] = 0.0        # replaced by the callable below
    try:
        optimizer = optimizers.from_config(opt_config)
        if "learning_rate" in objects:
            optimizer.learning_rate = objects["learning_rate"]
        if "loss" not in objects:
            loss = losses.deserialize(loss)
        if "metrics" not in objects:
            metrics = [metrics_module.deserialize(m) for m in metrics]
        model.compile(loss=loss, optimizer=optimizer, metrics=objects.get("metrics", metrics))
    except (TypeError, ValueError, KeyError) as e:
        raise ModelFileError(f"{path}: fastnn.json: invalid compile settings: {e}") \
            from None
    state_doc = _field(doc, "optimizer", dict, path)
    iterations = _counter(state_doc, "iterations", path, "fastnn.json: optimizer")
    slots = _slot_names(state_doc, path)
    if not model.built:
        if iterations != 0 or slots:
            raise ModelFileError(f"{path}: fastnn.json: optimizer state for a model that is "
                                 f"not built")
        return
    live = optimizer.variables()
    state = {"iterations": iterations}
    for k in slots:
        if k not in live or k == "iterations" or live[k].shape[0] == 0:
            raise ModelFileError(f"{path}: fastnn.json: optimizer: unexpected optimizer "
                                 f"slot {k!r:.80}")
        state[k] = read_slot(k)
    optimizer.set_variables(state)


def build_model(doc, arrays, objects=None, path="<in-memory model>"):
    """The model describe() described: the same checks and steps as load_model, from
    memory (pickling uses it). doc and arrays are not modified; arrays are copied."""
    from fastnn import layers as L
    if doc.get("built", True):
        model = _build(doc, path)
        store = model.parameter_store
        store.params[:] = _checked_array(arrays, "parameters", model.dtype, store.size, path)
        _check_layer_weights(model, path)
    else:
        dtype = _field(doc, "dtype", str, path)
        layers = [L.from_config(e["class"], e["config"]) for e in
                  _field(doc, "layers", list, path)]
        if doc.get("input_shape") is not None:
            layers.insert(0, L.InputLayer(shape=tuple(doc["input_shape"])))
        model = MODEL_CLASSES["Sequential"](layers, dtype=dtype)
        model.seed = doc.get("seed")
        model.epochs_trained = _counter(doc, "epochs_trained", path)
    if isinstance(doc.get("name"), str):
        model.name = doc["name"]
    if doc.get("compile") is not None:
        count = model.parameter_store.size if model.built else 0
        _restore_compile(model, doc, lambda k: _checked_array(
            arrays, f"optimizer/{k}", model.dtype, count, path), path, objects)
    return model


def _checked_array(arrays, name, dtype, count, path):
    array = arrays.get(name)
    if not isinstance(array, np.ndarray) or array.dtype != np.dtype(dtype) or \
            array.shape != (count,):
        raise ModelFileError(f"{path}: {name}: expected a ({count},) {np.dtype(dtype)} array")
    return array


def load_weights(model, path):
    """Load weights saved by save_weights() or save() into a model of the same
    architecture (layer classes and shapes must match; ModelFileError if not)."""
    model._require_built("load_weights")
    with _open(path) as z:
        doc = _read_json(z, path)
        dtype, input_dim, layer_docs, count = _architecture(doc, path)
        other = [(e["class"], e["config"].get("units")) for e in layer_docs]
        mine = [(type(layer).__name__, layer.get_config().get("units"))
                for layer in model.layers]
        size = model.parameter_store.size
        if other != mine or input_dim != model.input_dim or count != size:
            raise ModelFileError(f"load_weights: {path} holds weights for a different "
                                 f"architecture ({other!r:.300}, input {input_dim}, {count} "
                                 f"parameters) than this model ({mine}, input "
                                 f"{model.input_dim}, {size} parameters)")
        data = _read_npy(z, "parameters.npy", dtype, count, path)
    params = model.parameter_store.params
    previous = params.copy()
    params[:] = data
    try:
        _check_layer_weights(model, path)
    except ModelFileError:
        params[:] = previous       # a refused file leaves the model as it was
        raise
