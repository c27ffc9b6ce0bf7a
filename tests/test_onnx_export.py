"""ONNX export: every layer kind and activation, both dtypes, checked by onnx.checker (full
check) and run in ONNX Runtime (CPU) against model.predict; metadata; errors."""
import os
import subprocess
import tempfile
import sys
import warnings

import numpy as np
import pytest

import fastnn as fn
from fastnn import _atomic as fastnn_atomic
from fastnn import layers as L

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


ACTIVATIONS = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"]
DTYPES = ["float32", "float64"]
# float32: fastnn (OpenBLAS sgemm, its own vectorized exp/tanh) and ONNX Runtime (MLAS
# sgemm, its own exp/tanh approximations) sum and round differently: each op differs by a
# few ulp (float32 eps = 1.2e-7), and outputs of order 1 after dot products up to 784 long
# differ by at most 3.7e-7 (measured: tanh, 1000 rows, 3 seeds). 1e-5, absolute (outputs
# near 0) and relative (large linear outputs), leaves a 25x margin and still catches a
# wrong weight, layout or activation (those err by >= 1e-2). float64: 1e-9 is the issue's
# bound; Dense, Maxout and the activations differ by <= 8e-16 (measured), the
# normalization layers (written with elementary double ops, see fastnn/export/onnx.py) by
# <= 1e-15 (measured with the variance near epsilon, the worst case of the float32
# epsilon attribute the operators would have: test_float64_normalization_with_variance_
# near_epsilon).
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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["BatchNormalization", "LayerNormalization"])
@pytest.mark.parametrize("scale,center", [(True, True), (False, True), (True, False)])
def test_normalization_layers(kind, scale, center, dtype, tmp_path):
    # Trained, so that gamma, beta and BatchNormalization's moving statistics are not
    # their initial values; scale/center off leave gamma/beta out of the public weights.
    model = fn.Sequential([L.Dense(12, input_dim=7),
                           getattr(L, kind)(scale=scale, center=center),
                           L.Activation("tanh"), L.Dense(3)], dtype=dtype)
    model.compile(loss="mse", optimizer="adam")
    x = inputs(200, 7, dtype, seed=2)
    model.fit(x, x[:, :3] ** 2, epochs=3, verbose=0)
    assert_matches(model, tmp_path, 7)


@pytest.mark.parametrize("opset", [13, 17, 18])
@pytest.mark.parametrize("scale", [0.1, 0.01])
def test_float64_normalization_with_variance_near_epsilon(scale, opset, tmp_path):
    # ONNX's epsilon attribute is a float32: with the operators, 1e-3 became
    # 1e-3 + 4.7e-11 and outputs erred by up to 2.4e-8 where the variance is near epsilon.
    ln = fn.Sequential([L.LayerNormalization(input_dim=8)], dtype="float64")
    bn = fn.Sequential([L.BatchNormalization(input_dim=3, epsilon=1e-5)], dtype="float64")
    bn.build()
    gamma, beta, mean, variance = bn.layers[0].weights
    gamma[...], beta[...], mean[...] = [1.5, -0.5, 2.0], [0.1, 0.0, -3.0], [0.2, 0.0, -1.0]
    variance[...] = [1e-6, 1e-5, 3e-5]         # features that barely varied in training
    for model, width, x_scale in ((ln, 8, scale), (bn, 3, 1.0)):
        path = export(model, tmp_path, opset_version=opset)
        for n in (1, 1000):
            x = x_scale * np.random.default_rng(n).standard_normal((n, width))
            got = run(path, x)
            np.testing.assert_allclose(got, model.predict(x), rtol=1e-9, atol=1e-9)


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
    monkeypatch.setattr(fastnn_atomic.os, "fsync", fail)
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
    # From a temporary directory: run from the source tree, `import fastnn` would find the
    # uncompiled package there instead of the one under test.
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=tempfile.gettempdir())


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
                                         r"to ONNX.*exportable layers: Activation, "
                                         r"BatchNormalization, Dense, Dropout, Flatten, "
                                         r"LayerNormalization, Maxout, Softmax"):
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


# -------------------------------------------------------- scikit-learn estimators --
def sk():
    """fastnn.sklearn (skips without scikit-learn)."""
    pytest.importorskip("sklearn")
    import fastnn.sklearn
    return fastnn.sklearn


def features(n=300, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal((n, 5)).astype(dtype)


def targets(case, x):
    k = np.digitize(x[:, 0] + 0.5 * x[:, 1], [-0.6, 0.6])        # 3 balanced classes
    return {"binary": (x[:, 0] > 0).astype(int),
            "multiclass": k,
            "strings": np.array(["cat", "dog", "emu"])[k],
            "binary-strings": np.array(["no", "yes"])[(x[:, 0] > 0).astype(int)],
            "bool": x[:, 1] > 0,
            "float-labels": k.astype(float) + 1,
            "multilabel": np.stack([x[:, 0] > 0, x[:, 1] > 0.5, x[:, 2] < 0], 1).astype(int),
            "regression": x[:, 0] - 2 * x[:, 1] ** 2,
            "regression-2": np.stack([x[:, 0], x[:, 1] * x[:, 2]], 1)}[case]


CLASSIFIER_CASES = ["binary", "multiclass", "strings", "binary-strings", "bool",
                    "float-labels", "multilabel"]
REGRESSOR_CASES = ["regression", "regression-2"]


def fitted(case, dtype=np.float64, library=None):
    """A small network fitted on `case` (fastnn's estimator, or library's of that name)."""
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    library = library or sk()
    x = features(dtype=dtype)
    cls = library.MLPRegressor if case.startswith("regression") else library.MLPClassifier
    est = cls(hidden_layer_sizes=(16, 8), max_iter=60, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(x, targets(case, x))


def run_estimator(path, x, input_name="X"):
    return session(path).run(None, {input_name: x})


def probabilities_of(output, zipmap, classes):
    if not zipmap:
        return output
    assert isinstance(output, list) and all(isinstance(row, dict) for row in output)
    keys = [k.item() if hasattr(k, "item") else k for k in classes]
    return np.array([[row[k] for k in keys] for row in output])


def assert_labels_match(label, est, x, proba, tol):
    """label == est.predict(x), except where two classes are within tol (where the two
    libraries' rounding may pick either)."""
    want = est.predict(x)
    if want.ndim == 2:          # multi-label: p > 0.5 per label
        undecided = np.abs(proba - 0.5) < tol
        assert label.dtype == np.int64 and label.shape == want.shape
        assert np.all((label == want) | undecided)
        return
    top2 = np.sort(proba, axis=1)[:, -2:]
    undecided = top2[:, 1] - top2[:, 0] < tol
    as_label = want.astype(object if label.dtype == object else np.int64)
    assert label.shape == want.shape
    assert np.all((label == as_label) | undecided)
    assert undecided.mean() < 0.01


@pytest.mark.parametrize("zipmap", [True, False], ids=["zipmap", "tensor"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CLASSIFIER_CASES)
def test_classifier_export_matches_predict_and_predict_proba(case, dtype, zipmap, tmp_path):
    est = fitted(case, dtype)
    assert est.model_.dtype == dtype
    path = tmp_path / "clf.onnx"
    est.export(path, zipmap=zipmap, dtype=dtype)
    onnx.checker.check_model(str(path), full_check=True)
    tol = TOLERANCE[dtype]
    # ZipMap holds float32 only: a float64 model's probabilities there are rounded.
    proba_tol = 1e-6 if zipmap and dtype == "float64" else tol
    for n in (1, 1000):
        x = features(n, seed=1, dtype=dtype)
        label, output = run_estimator(path, x)
        proba = probabilities_of(output, zipmap, est.classes_)
        np.testing.assert_allclose(proba, est.predict_proba(x), rtol=proba_tol,
                                   atol=proba_tol)
        assert_labels_match(label, est, x, proba, tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", REGRESSOR_CASES)
def test_regressor_export_matches_predict(case, dtype, tmp_path):
    est = fitted(case, dtype)
    path = tmp_path / "reg.onnx"
    est.export(path, dtype=dtype)
    onnx.checker.check_model(str(path), full_check=True)
    tol = TOLERANCE[dtype]
    for n in (1, 1000):
        x = features(n, seed=1, dtype=dtype)
        (variable,) = run_estimator(path, x)
        assert variable.dtype == dtype and variable.shape == (n, est.n_outputs_)
        np.testing.assert_allclose(variable, est.predict(x).reshape(n, -1), rtol=tol,
                                   atol=tol)


@pytest.mark.parametrize("case", ["multiclass", "regression"])
def test_float64_estimator_exports_float32_by_default(case, tmp_path):
    # What code serving scikit-learn's MLPs feeds (skl2onnx's FloatTensorType): float32,
    # whatever the training data was. The weights are rounded to float32, so the outputs
    # agree to float32's precision.
    est = fitted(case, np.float64)
    path = tmp_path / "m.onnx"
    est.export(path)
    sess = session(path)
    assert [i.type for i in sess.get_inputs()] == ["tensor(float)"]
    x = features(1000, seed=1, dtype=np.float32)
    out = sess.run(None, {"X": x})
    if case == "regression":
        np.testing.assert_allclose(out[0][:, 0], est.predict(x), rtol=1e-5, atol=1e-5)
    else:
        proba = probabilities_of(out[1], True, est.classes_)
        np.testing.assert_allclose(proba, est.predict_proba(x), rtol=1e-5, atol=1e-5)
        assert_labels_match(out[0], est, x, proba, 1e-5)


def test_estimator_with_dropout_and_sparse_training_exports(tmp_path):
    # fastnn's extra dropout= puts Dropout layers in model_ (the identity here); training
    # on sparse rows changes nothing in the exported graph.
    import warnings
    import scipy.sparse
    from sklearn.exceptions import ConvergenceWarning
    x = features()
    est = sk().MLPClassifier(hidden_layer_sizes=(16, 8), dropout=0.3, max_iter=30,
                             random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(scipy.sparse.csr_matrix(x), targets("multiclass", x))
    assert any(isinstance(layer, L.Dropout) for layer in est.model_.layers)
    path = tmp_path / "m.onnx"
    est.export(path, zipmap=False, dtype="float64")
    xt = features(1000, seed=1)
    label, proba = run_estimator(path, xt)
    np.testing.assert_allclose(proba, est.predict_proba(xt), rtol=1e-9, atol=1e-9)
    assert_labels_match(label, est, xt, proba, 1e-9)


def test_estimator_input_name_opset_and_metadata(tmp_path):
    est = fitted("multiclass")
    path = tmp_path / "m.onnx"
    est.export(path, input_name="float_input", opset_version=21)
    proto = onnx.load(str(path))
    assert proto.producer_name == "fastnn" and "MLPClassifier" in proto.doc_string
    assert sorted((o.domain, o.version) for o in proto.opset_import) == \
        [("", 21), ("ai.onnx.ml", 1)]
    label, _ = run_estimator(path, features(4, dtype=np.float32), "float_input")
    assert label.shape == (4,)


def test_matches_the_outputs_skl2onnx_gives_sklearns_own_mlps(tmp_path):
    skl2onnx = pytest.importorskip("skl2onnx")
    import sklearn.neural_network

    def signature(sess, outputs):
        return ([(i.name, i.type, i.shape) for i in sess.get_inputs()],
                [(o.name, o.type, o.shape) for o in sess.get_outputs()],
                [python_types(v) for v in outputs])

    def python_types(value):
        if isinstance(value, list):      # ZipMap: [{class: probability}]
            key, prob = next(iter(value[0].items()))
            return "list", type(key), type(prob)
        return type(value), value.dtype, value.shape[1:]

    x = features(6, seed=2, dtype=np.float32)
    for case in CLASSIFIER_CASES + REGRESSOR_CASES:
        for zipmap in ((True, False) if case in CLASSIFIER_CASES else (None,)):
            ours = fitted(case)
            theirs = fitted(case, library=sklearn.neural_network)
            options = None if zipmap is None else {"zipmap": zipmap}
            ref = ort.InferenceSession(
                skl2onnx.to_onnx(theirs, x[:1], options=options).SerializeToString(),
                providers=["CPUExecutionProvider"])
            path = tmp_path / f"{case}.onnx"
            ours.export(path, **({} if zipmap is None else {"zipmap": zipmap}))
            mine = session(path)
            got = signature(mine, mine.run(None, {"X": x}))
            want = signature(ref, ref.run(None, {"X": x}))
            if case == "regression-2":
                # skl2onnx 1.20 reshapes a 2-output regressor's (N, 2) to (N * 2, 1).
                assert got[1] == [("variable", "tensor(float)", [None, 2])]
                assert want[1] == [("variable", "tensor(float)", [None, 1])]
                got, want = got[0], want[0]
            assert got == want, (case, zipmap)


@pytest.mark.parametrize("dtype", DTYPES)
def test_poisson_regressor_exports_the_exponential(dtype, tmp_path):
    # loss='poisson': model_ outputs log(prediction) (out_activation_ 'exp'); the graph
    # ends with Exp, so "variable" is predict's value.
    x = features(dtype=dtype)
    est = sk().MLPRegressor(hidden_layer_sizes=(8,), loss="poisson", max_iter=60,
                            random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(x, np.exp(x[:, 0] / 2))
    assert est.out_activation_ == "exp"
    path = tmp_path / "poisson.onnx"
    est.export(path, dtype=dtype)
    onnx.checker.check_model(str(path), full_check=True)
    tol = TOLERANCE[dtype]
    for n in (1, 1000):
        xt = features(n, seed=1, dtype=dtype)
        (variable,) = run_estimator(path, xt)
        np.testing.assert_allclose(variable[:, 0], est.predict(xt), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label", [0, "only"])
def test_one_class_classifier_exports_the_constant_label(label, dtype, tmp_path):
    # scikit-learn fits one class: classes_ [label], predict gives it always and
    # predict_proba has 2 columns; the file used to fail in ONNX Runtime.
    x = features(dtype=dtype)
    est = sk().MLPClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(x, np.full(len(x), label))
    with pytest.raises(ValueError, match="fitted on one class.*zipmap=False"):
        est.export(tmp_path / "zipmap.onnx")
    assert not os.path.exists(tmp_path / "zipmap.onnx")
    path = tmp_path / "one.onnx"
    est.export(path, zipmap=False, dtype=dtype)
    onnx.checker.check_model(str(path), full_check=True)
    tol = TOLERANCE[dtype]
    for n in (1, 1000):
        xt = features(n, seed=1, dtype=dtype)
        got_label, proba = run_estimator(path, xt)
        assert proba.shape == (n, 2)
        np.testing.assert_allclose(proba, est.predict_proba(xt), rtol=tol, atol=tol)
        assert got_label.tolist() == est.predict(xt).tolist() == [label] * n


def test_estimator_export_errors(tmp_path):
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        sk().MLPClassifier().export(tmp_path / "m.onnx")
    est = fitted("binary")
    with pytest.raises(ValueError, match="format must be 'onnx'"):
        est.export(tmp_path / "m.onnx", format="tf_saved_model")
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        est.export(tmp_path / "m.onnx", dtype="float16")
    with pytest.raises(TypeError, match="zipmap must be True or False"):
        est.export(tmp_path / "m.onnx", zipmap="columns")
    with pytest.raises(ValueError, match="input_name 'label' is the name of an output"):
        est.export(tmp_path / "m.onnx", input_name="label")
    # Classes that are neither integers nor strings (fit refuses non-integral floats, so
    # this is the guard alone).
    est.classes_ = np.array([0.5, 1.5])
    with pytest.raises(ValueError, match=r"classes \[0.5, 1.5\] cannot be ONNX labels"):
        est.export(tmp_path / "m.onnx")
    # uint64 classes past int64 used to wrap to negative labels silently.
    est.classes_ = np.array([3, 2**63], dtype=np.uint64)
    with pytest.raises(ValueError, match=r"class 9223372036854775808 does not fit"):
        est.export(tmp_path / "m.onnx")
    est.classes_ = np.array([3, 2**63 - 1], dtype=np.uint64)
    est.export(tmp_path / "ok.onnx")
    label = session(tmp_path / "ok.onnx").get_outputs()[0]
    assert label.type == "tensor(int64)"
    os.remove(tmp_path / "ok.onnx")
    assert os.listdir(tmp_path) == []
