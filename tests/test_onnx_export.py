"""ONNX export: every layer kind and activation, both dtypes, checked by onnx.checker (full
check) and run in ONNX Runtime (CPU) against model.predict; metadata; errors."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fn
from fastnn import layers as L

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from fastnn.export import onnx as onnx_export  # noqa: E402  (needs onnx to be useful)

ACTIVATIONS = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"]
DTYPES = ["float32", "float64"]
# float32: fastnn (OpenBLAS sgemm, its own vectorized exp/tanh) and ONNX Runtime (MLAS
# sgemm, its own exp/tanh approximations) sum and round differently: each op differs by a
# few ulp (float32 eps = 1.2e-7), and outputs of order 1 after dot products up to 784 long
# differ by at most 3.7e-7 (measured: tanh, 1000 rows, 3 seeds). 1e-5, absolute (outputs
# near 0) and relative (large linear outputs), leaves a 25x margin and still catches a
# wrong weight, layout or activation (those err by >= 1e-2). float64: the same ops at
# eps 2.2e-16 differ by <= 8e-16 (measured); 1e-9 is the bound.
TOLERANCE = {"float32": 1e-5, "float64": 1e-9}


def inputs(n, width, dtype, seed=0):
    # Scaled by 3 so every activation is exercised in its non-linear range and ReLUs
    # see both signs.
    return (3 * np.random.default_rng(seed).standard_normal((n, width))).astype(dtype)


def export(model, tmp_path, name="model.onnx", **kwargs):
    path = tmp_path / name
    model.export(path, verbose=False, **kwargs)
    onnx.checker.check_model(str(path), full_check=True)
    return path


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run(path, x):
    return session(path).run(None, {"input": x})[0]


def assert_matches(model, tmp_path, width, batches=(1, 1000), **kwargs):
    path = export(model, tmp_path, **kwargs)
    sess = session(path)
    tol = TOLERANCE[model.dtype.name]
    for n in batches:
        x = inputs(n, width, model.dtype)
        got = sess.run(None, {"input": x})[0]
        assert got.dtype == model.dtype and got.shape == (n, model.output_dim)
        np.testing.assert_allclose(got, model.predict(x), rtol=tol, atol=tol)
    return path


# ---------------------------------------------------------------- every layer kind --
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_dense_each_activation(act, dtype, tmp_path):
    model = fn.Sequential([L.Dense(33, activation=act, input_dim=7, alpha=0.3),
                           L.Dense(5, activation=act, use_bias=False)], dtype=dtype)
    assert_matches(model, tmp_path, 7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_layer_each_activation(act, dtype, tmp_path):
    model = fn.Sequential([L.Dense(13, input_dim=7), L.Activation(act, alpha=0.25)],
                          dtype=dtype)
    assert_matches(model, tmp_path, 7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pieces,use_bias", [(1, True), (2, True), (3, False), (4, True)])
def test_maxout(pieces, use_bias, dtype, tmp_path):
    model = fn.Sequential([L.Maxout(6, pieces=pieces, use_bias=use_bias, input_dim=7),
                           L.Dense(3)], dtype=dtype)
    # A non-zero bias, so that the kernel's column grouping (u * pieces + p) matters in
    # the bias as well as in W.
    model.build()
    if use_bias:
        model.layers[0].weights[1][...] = np.linspace(-2, 2, 6 * pieces)
    assert_matches(model, tmp_path, 7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxout_takes_the_max_within_each_group(dtype, tmp_path):
    # A hand-made layer whose pieces are known: unit u's pieces are x0 * (u + p) for
    # p < 3, so the max is the largest or smallest piece depending on the sign of x0.
    layer = L.Maxout(2, pieces=3, input_dim=1)
    model = fn.Sequential([layer], dtype=dtype)
    model.build()
    layer.weights[0][...] = [[0, 1, 2, 1, 2, 3]]
    layer.weights[1][...] = 0
    x = np.array([[1.0], [-1.0]], dtype)
    np.testing.assert_array_equal(run(export(model, tmp_path), x), [[2, 3], [0, -1]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_is_identity_and_trained_weights_are_exported(dtype, tmp_path):
    model = fn.Sequential([L.Dense(17, activation="relu", input_dim=7), L.Dropout(0.5),
                           L.Maxout(8, pieces=2), L.Dropout(0.2),
                           L.Dense(3, activation="softmax")], dtype=dtype)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    x = inputs(300, 7, dtype, seed=1)
    model.fit(x, (x[:, 0] > 0).astype(int) + (x[:, 1] > 1), epochs=3, verbose=0)
    assert_matches(model, tmp_path, 7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layers", [[L.Dropout(0.5, input_dim=4)],
                                    [L.Activation("linear", input_dim=4), L.Dropout(0.1)]],
                         ids=["dropout", "linear+dropout"])
def test_identity_model(layers, dtype, tmp_path):
    # No layer writes a node: the graph is input -> Identity -> output.
    model = fn.Sequential(layers, dtype=dtype)
    x = inputs(5, 4, dtype)
    np.testing.assert_array_equal(run(export(model, tmp_path), x), x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_opset_versions(opset, dtype, tmp_path):
    # 13 is the lowest accepted, 18 moved ReduceMax's axes to an input.
    model = fn.Sequential([L.Dense(9, activation="leaky_relu", input_dim=7),
                           L.Maxout(4, pieces=3), L.Dense(3, activation="softmax")],
                          dtype=dtype)
    path = assert_matches(model, tmp_path, 7, opset_version=opset)
    assert [(o.domain, o.version) for o in onnx.load(str(path)).opset_import] == [("", opset)]


def test_large_float32_inputs_stay_within_tolerance(tmp_path):
    # A wider, deeper float32 net (fashion-MNIST shaped) still meets 1e-5 at batch 1000.
    model = fn.Sequential([L.Dense(128, activation="relu", input_dim=784),
                           L.Dense(64, activation="tanh"), L.Dense(10, activation="softmax")])
    path = export(model, tmp_path)
    x = np.random.default_rng(3).random((1000, 784), dtype=np.float32)
    np.testing.assert_allclose(run(path, x), model.predict(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_layer(dtype, tmp_path):
    model = fn.Sequential([L.Dense(6, input_dim=7), L.Softmax()], dtype=dtype)
    assert_matches(model, tmp_path, 7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("first", ["input", "input_shape"])
def test_flatten_takes_samples_of_any_shape(first, dtype, tmp_path):
    # (n, 4, 3, 2) samples, flattened in row-major order as fastnn's reshape view does.
    shape = (4, 3, 2)
    layers = [L.Flatten(input_shape=shape)] if first == "input_shape" else \
        [fn.Input(shape=shape), L.Flatten()]
    model = fn.Sequential(layers + [L.Dense(9, activation="tanh"), L.Flatten(),
                                    L.Dense(3, activation="softmax")], dtype=dtype)
    path = export(model, tmp_path)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [4, 3, 2]
    sess = session(path)
    tol = TOLERANCE[dtype]
    for n in (1, 1000):
        x = inputs(n, 24, dtype).reshape(n, *shape)
        np.testing.assert_allclose(sess.run(None, {"input": x})[0], model.predict(x),
                                   rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_input_layer_and_nested_sequential(dtype, tmp_path):
    # The nested model's layers are part of the outer model's layers; the Input gives
    # the input width (and, for float64, the dtype of a model made without one).
    inner = fn.Sequential([L.Dense(8, activation="relu"), L.Dropout(0.4),
                           L.Maxout(5, pieces=2)], dtype=dtype, name="inner")
    outer = fn.Sequential([fn.Input(shape=(7,), dtype=dtype), inner,
                           L.Dense(3, activation="sigmoid")], name="outer")
    assert outer.dtype == dtype
    assert_matches(outer, tmp_path, 7)
    assert_matches(inner, tmp_path, 7)     # the nested model alone, its shared weights


# ------------------------------------------------------------- the file's contents --
def test_dynamic_batch_dimension(tmp_path):
    model = fn.Sequential([L.Dense(5, activation="relu", input_dim=3), L.Dense(2)])
    path = export(model, tmp_path)
    graph = onnx.load(str(path)).graph
    for value, width in ((graph.input[0], 3), (graph.output[0], 2)):
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch" and not dims[0].HasField("dim_value")
        assert dims[1].dim_value == width
    sess = session(path)
    for n in (1, 2, 7, 1000, 0):
        x = inputs(n, 3, np.float32)
        got = sess.run(None, {"input": x})[0]
        assert got.shape == (n, 2)
        if n:
            np.testing.assert_allclose(got, model.predict(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_weights_are_stored_bit_exactly_in_the_model_dtype(dtype, tmp_path):
    model = fn.Sequential([L.Dense(4, activation="tanh", input_dim=3), L.Maxout(2),
                           L.Dense(1, use_bias=False)], dtype=dtype)
    path = export(model, tmp_path)
    stored = {t.name: onnx.numpy_helper.to_array(t)
              for t in onnx.load(str(path)).graph.initializer}
    weights = [stored[f"{layer.name}/{kind}"] for layer in model.layers
               for kind in ("kernel", "bias") if f"{layer.name}/{kind}" in stored]
    assert len(weights) == len(model.get_weights()) == 5
    for got, want in zip(weights, model.get_weights()):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_metadata(tmp_path):
    model = fn.Sequential([L.Dense(4, activation="relu", input_dim=3, name="hidden"),
                           L.Dropout(0.5), L.Dense(2, activation="softmax", name="probs")],
                          name="classifier")
    proto = onnx.load(str(export(model, tmp_path)))
    assert proto.producer_name == "fastnn"
    assert proto.producer_version == fn.__version__
    assert "Sequential 'classifier' (float32)" in proto.doc_string
    assert "'hidden'" in proto.doc_string and "'probs'" in proto.doc_string
    assert proto.graph.name == "classifier"
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    assert proto.ir_version == onnx.helper.find_min_ir_version_for(proto.opset_import) == 8
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["output"]
    types = {i.type.tensor_type.elem_type for i in list(proto.graph.input) +
             list(proto.graph.output)}
    assert types == {onnx.TensorProto.FLOAT}


def test_float64_model_has_double_input_and_output(tmp_path):
    model = fn.Sequential([L.Dense(2, input_dim=3)], dtype="float64")
    sess = session(export(model, tmp_path))
    assert [i.type for i in sess.get_inputs()] == ["tensor(double)"]
    assert [o.type for o in sess.get_outputs()] == ["tensor(double)"]


def test_verbose_prints_like_keras(tmp_path, capsys):
    model = fn.Sequential([L.Dense(2, input_dim=3)])
    model.export(tmp_path / "a.onnx")
    assert capsys.readouterr().out == f"Saved artifact at '{tmp_path / 'a.onnx'}'.\n"
    model.export(str(tmp_path / "b.onnx"), verbose=False)
    assert capsys.readouterr().out == ""


def test_overwrites_atomically_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    model = fn.Sequential([L.Dense(2, input_dim=3)])
    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous file")

    def fail(fd):
        raise OSError("disk full")
    monkeypatch.setattr(onnx_export.os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        model.export(path, verbose=False)
    assert path.read_bytes() == b"previous file"
    assert os.listdir(tmp_path) == ["model.onnx"]      # no temporary file left behind
    monkeypatch.undo()
    export(model, tmp_path)                            # and a later export replaces it
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_import_fastnn_does_not_import_onnx():
    script = ("import sys, numpy as np, fastnn as fn\n"
              "fn.Sequential([fn.layers.Dense(2, input_dim=3)]).predict(np.ones((1, 3)))\n"
              "bad = [m for m in sys.modules if m.split('.')[0] in "
              "('onnx', 'onnxruntime', 'skl2onnx') or m == 'fastnn.export.onnx']\n"
              "assert not bad, bad\n")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fn.__file__)))
    subprocess.run([sys.executable, "-c", script], check=True, env=env)


# ------------------------------------------------------------------------- errors --
def test_format_other_than_onnx(tmp_path):
    model = fn.Sequential([L.Dense(2, input_dim=3)])
    for fmt in ("tf_saved_model", "ONNX", None):
        with pytest.raises(ValueError, match="format must be 'onnx'"):
            model.export(tmp_path / "m", format=fmt)
    assert os.listdir(tmp_path) == []


def test_unbuilt_model(tmp_path):
    with pytest.raises(ValueError, match="export: the model is not built yet"):
        fn.Sequential([L.Dense(2)]).export(tmp_path / "m.onnx")


def test_layer_without_translation_is_named(tmp_path):
    class Scaled(L.Dense):       # a subclass may compute something else: refused
        pass
    model = fn.Sequential([L.Dense(4, input_dim=3), Scaled(2, name="my_scaled")])
    with pytest.raises(ValueError, match=r"layer 'my_scaled' \(Scaled\) cannot be exported "
                                         r"to ONNX.*exportable layers: Activation, Dense, "
                                         r"Dropout, Flatten, Maxout, Softmax"):
        model.export(tmp_path / "m.onnx", verbose=False)
    assert os.listdir(tmp_path) == []


def test_onnx_not_installed(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)     # makes `import onnx` fail
    model = fn.Sequential([L.Dense(2, input_dim=3)])
    with pytest.raises(ImportError, match=r"pip install 'fastnn\[onnx\]'"):
        model.export(tmp_path / "m.onnx")


@pytest.mark.parametrize("bad", [12, 10**6, 17.0, True, "17"])
def test_bad_opset_version(bad, tmp_path):
    model = fn.Sequential([L.Dense(2, input_dim=3)])
    with pytest.raises(ValueError, match="opset_version must be an integer from 13"):
        model.export(tmp_path / "m.onnx", opset_version=bad)


def test_bad_arguments(tmp_path):
    model = fn.Sequential([L.Dense(2, input_dim=3)])
    with pytest.raises(ValueError, match="input_signature must be None"):
        model.export(tmp_path / "m.onnx", input_signature=[(None, 3)])
    with pytest.raises(TypeError, match="filepath must be a str or os.PathLike"):
        model.export(3)
    with pytest.raises(ValueError, match="is a directory"):
        model.export(tmp_path)
    with pytest.raises(TypeError, match="unexpected keyword argument 'opset'"):
        model.export(tmp_path / "m.onnx", opset=17)
    assert os.listdir(tmp_path) == []
