"""The model file format: no pickle, nothing executable, checked before anything is
allocated.

A model file is a ZIP archive (stored, not compressed) holding:
- ``fastnn.json``: {"format": "fastnn-model", "version": 1, "kind": "model" | "weights",
  "dtype", "input_dim", "input_shape" (one sample's shape; absent in older files:
  (input_dim,)), "seed", "epochs_trained", "layers": [{"class", "config"}],
  "compile": {"loss", "metrics", "optimizer": config} or null (the loss and each metric a
  name, or {"class", "config"} with the constructor's arguments; files holding names load
  too),
  "optimizer": {"iterations", "slots": [names]} or null, "parameters": count};
- ``parameters.npy``: every weight, flat, in get_weights() order (the model's buffer);
- ``optimizer/<slot>.npy``: the optimizer's slots (moments, accumulators), flat.

Reading checks, in order: the archive, the JSON's size and shape, the format and
version, every layer class against a fixed list and its arguments through the layer's own
validation, the parameter count implied by the architecture against a limit and against
each .npy header, each header's dtype and shape (read with allow_pickle=False), and only
then allocates and reads. Writing is atomic: a temporary file in the same directory, fsync,
then rename, so a crash mid-save never destroys the previous file.
"""
import io
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "fastnn-model"
VERSION = 1
MAX_JSON_BYTES = 1 << 20
MAX_PARAMETERS = 1 << 31          # 8 GiB of float32: beyond it, a file is taken as hostile
MAX_LAYERS = 10_000


class ModelFileError(ValueError):
    """A model file that is not a valid fastnn file (corrupt, truncated, hostile)."""


# ---------------------------------------------------------------------------- writing --

def _npy_bytes(array):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _write_atomically(path, entries):
    """Write a ZIP of {name: bytes} to path via a temporary file and a rename."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastnn-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
                for name, data in entries.items():
                    z.writestr(name, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _describe(model, kind):
    model._require_built("save")
    return _description(model, kind)


def _description(model, kind):
    """The fastnn.json document of a model, built or not (an unbuilt model has no
    parameters and possibly no input_dim; only pickling describes those)."""
    return {"format": FORMAT, "version": VERSION, "kind": kind, "dtype": model.dtype.name,
            "input_dim": model.input_dim, "input_shape": _shape_of(model),
            "seed": model.seed, "epochs_trained": model.epochs_trained, "name": model.name,
            "built": model.built,
            "layers": [{"class": type(layer).__name__, "config": layer.get_config()}
                       for layer in model.layers],
            "parameters": int(model._params.shape[0]) if model.built else 0,
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
    arbitrary callable) raises ValueError when strict (files), and is returned in objects
    {'loss', 'learning_rate'} otherwise (pickling carries those objects as they are).
    save_model writes exactly this, and build_model(doc, arrays, objects) rebuilds it.
    """
    doc = _description(model, "model")
    arrays = {"parameters": model._params} if model.built else {}
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
        doc["compile"] = {"loss": loss,
                          "metrics": [metrics.serialize(m) for m in model._metric_names],
                          "optimizer": config}
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
    _write_atomically(path, entries)


def save_weights(model, path):
    """Only the weights (with the architecture, to check them against on loading)."""
    doc = _describe(model, "weights")
    _write_atomically(path, {"fastnn.json": json.dumps(doc, indent=1).encode(),
                             "parameters.npy": _npy_bytes(model._params)})


# ---------------------------------------------------------------------------- reading --

def _open(path):
    try:
        z = zipfile.ZipFile(os.fspath(path), "r")
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise ModelFileError(f"{path}: not a fastnn model file (not a valid archive: {e})")
    return z


def _read_json(z, path):
    try:
        info = z.getinfo("fastnn.json")
    except KeyError:
        raise ModelFileError(f"{path}: not a fastnn model file (no fastnn.json inside)")
    if info.file_size > MAX_JSON_BYTES:
        raise ModelFileError(f"{path}: fastnn.json is {info.file_size} bytes, more than the "
                             f"{MAX_JSON_BYTES} allowed")
    try:
        with z.open(info) as f:
            raw = f.read(MAX_JSON_BYTES + 1)
        doc = json.loads(raw.decode("utf-8"))
    except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError, ValueError,
            RecursionError) as e:
        raise ModelFileError(f"{path}: fastnn.json is corrupt ({type(e).__name__}: {e})")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a fastnn model file (format is "
                             f"{doc.get('format') if isinstance(doc, dict) else doc!r})")
    if doc.get("version") != VERSION:
        raise ModelFileError(f"{path}: format version {doc.get('version')!r} is not "
                             f"supported (this fastnn reads version {VERSION})")
    return doc


def _field(doc, key, kind, path, where="fastnn.json"):
    value = doc.get(key) if isinstance(doc, dict) else None
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ModelFileError(f"{path}: {where}: '{key}' must be an integer, got {value!r}")
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
                    raise ModelFileError(f"{path}: layer {i} ({cls}): {name} must be an "
                                         f"integer in [1, 2^24], got {v!r}")
            width = units * pieces
            total += dim * width + width
            dim = units
        if total > MAX_PARAMETERS:
            raise ModelFileError(f"{path}: the architecture has more than {MAX_PARAMETERS} "
                                 f"parameters; refusing to allocate it")
    return total


def _input_shape(doc, input_dim, path):
    """The sample shape the file declares (absent: (input_dim,)), checked against it."""
    shape = doc.get("input_shape", [input_dim])
    if not isinstance(shape, list) or not 1 <= len(shape) <= 32 or any(
            isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= 1 << 24
            for d in shape) or int(np.prod(shape)) != input_dim:
        raise ModelFileError(f"{path}: input_shape must be a list of up to 32 positive "
                             f"integers whose product is input_dim {input_dim}, got {shape!r}")
    return tuple(shape)


def _build(doc, path):
    from fastnn import layers as L
    from fastnn.models import Sequential
    dtype = _field(doc, "dtype", str, path)
    if dtype not in ("float32", "float64"):
        raise ModelFileError(f"{path}: dtype must be float32 or float64, got {dtype!r}")
    input_dim = _field(doc, "input_dim", int, path)
    if not 1 <= input_dim <= 1 << 24:
        raise ModelFileError(f"{path}: input_dim {input_dim} is out of range")
    layer_docs = _field(doc, "layers", list, path)
    if not 1 <= len(layer_docs) <= MAX_LAYERS:
        raise ModelFileError(f"{path}: {len(layer_docs)} layers (expected 1 to {MAX_LAYERS})")
    for i, entry in enumerate(layer_docs):
        cls = _field(entry, "class", str, path, f"layer {i}")
        _field(entry, "config", dict, path, f"layer {i}")
        if cls not in L.LAYERS:
            raise ModelFileError(f"{path}: layer {i}: unknown layer class {cls!r} (known: "
                                 f"{sorted(L.LAYERS)})")
    expected = _expected_parameters(layer_docs, input_dim, path)
    if _field(doc, "parameters", int, path) != expected:
        raise ModelFileError(f"{path}: the file says {doc['parameters']} parameters but its "
                             f"architecture has {expected}")
    layers = []
    for i, entry in enumerate(layer_docs):
        config = dict(entry["config"])
        config["input_dim"] = input_dim if i == 0 else None
        try:
            layers.append(L.from_config(entry["class"], config))
        except (TypeError, ValueError) as e:
            raise ModelFileError(f"{path}: layer {i} ({entry['class']}): invalid "
                                 f"configuration: {e}") from None
    model = Sequential(layers, dtype=dtype)
    model.seed = _field(doc, "seed", int, path)
    if not 0 <= model.seed < 2**63:
        raise ModelFileError(f"{path}: seed {model.seed} is out of range")
    try:
        model._build(_input_shape(doc, input_dim, path))
    except ValueError as e:
        raise ModelFileError(f"{path}: invalid architecture: {e}") from None
    model.epochs_trained = _field(doc, "epochs_trained", int, path)
    return model


def _read_npy(z, name, dtype, count, path):
    """Read a flat array after checking its header: dtype, shape and size, no pickle."""
    try:
        info = z.getinfo(name)
    except KeyError:
        raise ModelFileError(f"{path}: {name} is missing")
    try:
        with z.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, file_dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, file_dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ModelFileError(f"{path}: {name}: unsupported .npy version {version}")
            if file_dtype != np.dtype(dtype) or file_dtype.hasobject:
                raise ModelFileError(f"{path}: {name}: dtype {file_dtype}, expected {dtype}")
            if shape != (count,) or fortran:
                raise ModelFileError(f"{path}: {name}: shape {shape}, expected ({count},)")
            data = f.read(count * file_dtype.itemsize + 1)
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ModelFileError(f"{path}: {name} is corrupt ({type(e).__name__}: {e})")
    if len(data) != count * np.dtype(dtype).itemsize:
        raise ModelFileError(f"{path}: {name} is truncated or has trailing data "
                             f"({len(data)} bytes, expected {count * np.dtype(dtype).itemsize})")
    array = np.frombuffer(data, dtype=dtype)
    if not np.isfinite(array).all():
        raise ModelFileError(f"{path}: {name} contains NaN or infinity")
    return array


def load_model(path, compile=True):
    """Load a model written by ``model.save(path)``: architecture, weights, and (unless
    compile=False) the loss, metrics and optimizer with its state, ready to continue
    training exactly where it stopped."""
    with _open(path) as z:
        doc = _read_json(z, path)
        if doc.get("kind") != "model":
            raise ModelFileError(f"{path}: holds only weights; build the model and call "
                                 f"model.load_weights(path)")
        model = _build(doc, path)
        model._params[:] = _read_npy(z, "parameters.npy", model.dtype,
                                     model._params.shape[0], path)
        if compile and doc.get("compile") is not None:
            _restore_compile(model, doc, lambda k: _read_npy(
                z, f"optimizer/{k}.npy", model.dtype, model._params.shape[0], path), path)
    return model


def _restore_compile(model, doc, read_slot, path, objects=None):
    """Compile model as doc["compile"] says and restore the optimizer state; read_slot(name)
    returns the slot's flat array (from a file, or from memory). objects: the loss and/or
    learning rate describe(strict=False) could not describe as data."""
    from fastnn import losses, optimizers
    from fastnn import metrics as metrics_module
    objects = objects or {}
    comp = _field(doc, "compile", dict, path)
    loss = objects["loss"] if "loss" in objects else \
        _field(comp, "loss", (str, dict), path, "compile")
    metrics = _field(comp, "metrics", list, path, "compile")
    opt_config = dict(_field(comp, "optimizer", dict, path, "compile"))
    if "learning_rate" in objects:
        opt_config["learning_rate"] = 0.0        # replaced by the callable below
    try:
        optimizer = optimizers.from_config(opt_config)
        if "learning_rate" in objects:
            optimizer.learning_rate = objects["learning_rate"]
        if "loss" not in objects:
            loss = losses.deserialize(loss)
        model.compile(loss=loss, optimizer=optimizer,
                      metrics=[metrics_module.deserialize(m) for m in metrics])
    except (TypeError, ValueError, KeyError) as e:
        raise ModelFileError(f"{path}: invalid compile settings: {e}") from None
    state_doc = _field(doc, "optimizer", dict, path)
    iterations = _field(state_doc, "iterations", int, path, "optimizer")
    slots = _field(state_doc, "slots", list, path, "optimizer")
    if not model.built:
        if iterations != 0 or slots:
            raise ModelFileError(f"{path}: optimizer state for a model that is not built")
        return
    live = optimizer.variables()
    state = {"iterations": iterations}
    for k in slots:
        if not isinstance(k, str) or k not in live or k == "iterations" or \
                live[k].shape[0] == 0:
            raise ModelFileError(f"{path}: unexpected optimizer slot {k!r}")
        state[k] = read_slot(k)
    optimizer.set_variables(state)


def build_model(doc, arrays, objects=None, path="<in-memory model>"):
    """The model describe() described: the same checks and steps as load_model, from
    memory (pickling uses it). doc and arrays are not modified; arrays are copied."""
    from fastnn import layers as L
    from fastnn.models import Sequential
    if doc.get("built", True):
        model = _build(doc, path)
        model._params[:] = _checked_array(arrays, "parameters", model.dtype,
                                          model._params.shape[0], path)
    else:
        dtype = _field(doc, "dtype", str, path)
        layers = [L.from_config(e["class"], e["config"]) for e in
                  _field(doc, "layers", list, path)]
        if doc.get("input_shape") is not None:
            layers.insert(0, L.InputLayer(shape=tuple(doc["input_shape"])))
        model = Sequential(layers, dtype=dtype)
        model.seed = doc.get("seed")
        model.epochs_trained = _field(doc, "epochs_trained", int, path)
    if isinstance(doc.get("name"), str):
        model.name = doc["name"]
    if doc.get("compile") is not None:
        count = model._params.shape[0] if model.built else 0
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
    architecture (layer classes and shapes must match)."""
    model._require_built("load_weights")
    with _open(path) as z:
        doc = _read_json(z, path)
        other = [(e.get("class"), e.get("config", {}).get("units"))
                 for e in _field(doc, "layers", list, path) if isinstance(e, dict)]
        mine = [(type(layer).__name__, layer.get_config().get("units"))
                for layer in model.layers]
        if other != mine or doc.get("input_dim") != model.input_dim:
            raise ValueError(f"load_weights: {path} holds weights for a different "
                             f"architecture ({other}, input {doc.get('input_dim')}) than this "
                             f"model ({mine}, input {model.input_dim})")
        if doc.get("dtype") not in ("float32", "float64"):
            raise ModelFileError(f"{path}: dtype must be float32 or float64")
        data = _read_npy(z, "parameters.npy", doc["dtype"], model._params.shape[0], path)
    model._params[:] = data
