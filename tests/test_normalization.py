"""BatchNormalization and LayerNormalization: the kernels against NumPy in both dtypes on
odd shapes, finite-difference gradients through models, Keras's moving-statistics rule,
training vs inference, trainable=False, weights order, saving and exact resume."""
import numpy as np
import pytest

import fastnn as fn
from fastnn import layers as L
from fastnn._core import norm as K

from test_models import assert_gradients_match, make_data, training_loss

SHAPES = [(1, 1), (1, 7), (7, 1), (33, 7), (1000, 33)]
DTYPES = [np.float32, np.float64]
EPS = 1e-3


def tolerance(dtype):
    # float32: the kernels accumulate the statistics in double but round the mean, var and
    # inv to float32 and normalize in float32, a few ulp per value (eps 1.2e-7); backward
    # subtracts means of products of such values: 1e-5 relative / 1e-5 absolute (for
    # values near 0) is a 50-100x margin over what was measured and far below any
    # formula error (those err by > 1e-2). float64: the same at eps 2.2e-16.
    return (1e-5, 1e-5) if dtype == np.float32 else (1e-11, 1e-12)


def data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    # An offset and a spread per feature, so that normalizing really changes the values.
    x = rng.standard_normal(shape) * rng.uniform(0.5, 3, shape[1]) + rng.uniform(-2, 2,
                                                                                 shape[1])
    return (x.astype(dtype), rng.uniform(0.5, 1.5, shape[1]).astype(dtype),
            rng.standard_normal(shape[1]).astype(dtype),
            rng.standard_normal(shape).astype(dtype))


def reference_bn(x, gamma, beta, dy, mean=None, var=None):
    """Forward and backward in float64; mean/var given = inference (fixed statistics)."""
    x, gamma, beta, dy = (a.astype(np.float64) for a in (x, gamma, beta, dy))
    training = mean is None
    if training:
        mean, var = x.mean(axis=0), x.var(axis=0)
    inv = 1 / np.sqrt(var + EPS)
    xhat = (x - mean) * inv
    out = xhat * gamma + beta
    dgamma, dbeta = (dy * xhat).sum(axis=0), dy.sum(axis=0)
    if training:
        dx = gamma * inv * (dy - dy.mean(axis=0) - xhat * (dy * xhat).mean(axis=0))
    else:
        dx = gamma * inv * dy
    return out, dx, dgamma, dbeta, mean, var


def reference_ln(x, gamma, beta, dy):
    x, gamma, beta, dy = (a.astype(np.float64) for a in (x, gamma, beta, dy))
    mean = x.mean(axis=1, keepdims=True)
    inv = 1 / np.sqrt(x.var(axis=1, keepdims=True) + EPS)
    xhat = (x - mean) * inv
    g = dy * gamma
    dx = inv * (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1,
                                                                         keepdims=True))
    return xhat * gamma + beta, dx, (dy * xhat).sum(axis=0), dy.sum(axis=0)


def assert_close(actual, expected, dtype):
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# ------------------------------------------------------------------------- kernels --

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_kernels_match_numpy(shape, dtype, training):
    x, gamma, beta, dy = data(shape, dtype)
    n, m = shape
    moving_mean = np.linspace(-1, 1, m).astype(dtype)
    moving_var = np.linspace(0.5, 2, m).astype(dtype)
    out = np.empty(shape, dtype)
    mean, var, inv = (np.empty(m, dtype) for _ in range(3))
    acc = np.empty(2 * m)
    K.batch_norm_forward(x, gamma, beta, moving_mean, moving_var, out, mean, var, inv, acc,
                         EPS, training)
    fixed = () if training else (moving_mean, moving_var)
    ref_out, ref_dx, ref_dg, ref_db, ref_mean, ref_var = reference_bn(x, gamma, beta, dy,
                                                                      *fixed)
    assert_close(out, ref_out, dtype)
    assert_close(mean, ref_mean, dtype)
    assert_close(var, ref_var, dtype)
    grad = dy.copy()
    dgamma, dbeta = np.empty(m, dtype), np.empty(m, dtype)
    K.batch_norm_backward(x, gamma, mean, inv, grad, dgamma, dbeta, acc, training, True)
    assert_close(grad, ref_dx, dtype)
    assert_close(dgamma, ref_dg, dtype)
    assert_close(dbeta, ref_db, dtype)
    # Without need_grad_x, grad_out is left alone and the parameter gradients are the same.
    grad = dy.copy()
    K.batch_norm_backward(x, gamma, mean, inv, grad, dgamma, dbeta, acc, training, False)
    np.testing.assert_array_equal(grad, dy)
    assert_close(dgamma, ref_dg, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_update_is_keras_rule_in_the_model_dtype(dtype):
    rng = np.random.default_rng(1)
    mm, mv, mean, var = (rng.random(33).astype(dtype) for _ in range(4))
    expected_mean = mm * dtype(0.99) + mean * dtype(1 - 0.99)
    expected_var = mv * dtype(0.99) + var * dtype(1 - 0.99)
    K.batch_norm_update(mm, mv, mean, var, 0.99)
    np.testing.assert_array_equal(mm, expected_mean)
    np.testing.assert_array_equal(mv, expected_var)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_layer_norm_kernels_match_numpy(shape, dtype):
    x, gamma, beta, dy = data(shape, dtype, seed=2)
    n, m = shape
    out = np.empty(shape, dtype)
    mean, inv = np.empty((n, 1), dtype), np.empty((n, 1), dtype)
    K.layer_norm_forward(x, gamma, beta, out, mean, inv, EPS)
    ref_out, ref_dx, ref_dg, ref_db = reference_ln(x, gamma, beta, dy)
    assert_close(out, ref_out, dtype)
    grad = dy.copy()
    dgamma, dbeta = np.empty(m, dtype), np.empty(m, dtype)
    K.layer_norm_backward(x, gamma, mean, inv, grad, dgamma, dbeta, np.empty(2 * m), True)
    assert_close(grad, ref_dx, dtype)
    assert_close(dgamma, ref_dg, dtype)
    assert_close(dbeta, ref_db, dtype)


# ------------------------------------------------------------------ gradient checks --

@pytest.mark.parametrize("layer", ["batch", "layer"])
@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False),
                                           (False, False)])
def test_gradients_through_a_model(layer, center, scale):
    fn.set_seed(12)
    make = L.BatchNormalization if layer == "batch" else L.LayerNormalization
    norm = make(center=center, scale=scale)
    model = fn.Sequential([L.Dense(7, activation="tanh", input_dim=5), norm,
                           L.Dense(3, activation="softmax")], dtype="float64")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    # gamma and beta away from 1 and 0, so that they matter in every term.
    weights = model.get_weights()
    rng = np.random.default_rng(3)
    for i in (2, 3) if center and scale else ((2,) if center or scale else ()):
        weights[i] = rng.uniform(0.5, 1.5, 7)
    model.set_weights(weights)
    x, y = make_data(11, 5, 3, "sparse")
    assert_gradients_match(model, x, y)
    assert len(model.gradients(x, y)) == 4 + center + scale


def test_gradients_of_batch_norm_first_and_with_regression():
    fn.set_seed(13)
    model = fn.Sequential([L.BatchNormalization(input_dim=4), L.Dense(2)], dtype="float64")
    model.compile(loss="mse", optimizer="sgd")
    x, y = make_data(9, 4, 2, "real")
    assert_gradients_match(model, x * 3 + 1, y)


def test_frozen_batch_norm_runs_in_inference_mode_and_its_gradient_is_right():
    fn.set_seed(14)
    bn = L.BatchNormalization(trainable=False)
    model = fn.Sequential([L.Dense(6, input_dim=3), bn, L.Dense(2, activation="softmax")],
                          dtype="float64")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    weights = model.get_weights()
    weights[4], weights[5] = np.linspace(-1, 1, 6), np.linspace(0.5, 2, 6)   # mm, mv
    model.set_weights(weights)
    x, y = make_data(8, 3, 2, "sparse")
    assert_gradients_match(model, x, y)      # Dense, Dense: moving statistics fixed
    before = bn.get_weights()
    model.fit(x, y, epochs=3, batch_size=4, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, bn.get_weights()))


# ----------------------------------------------------------- moving statistics --

@pytest.mark.parametrize("dtype", DTYPES)
def test_moving_statistics_follow_keras_rule_in_fit(dtype):
    """BN first: its input is the data, so the moving averages can be replayed exactly.
    12 samples in batches of 8 (8 features): the last batch is 4 rows, and the batch size
    equals the number of features (the statistics buffers must not be sliced as rows)."""
    fn.set_seed(15)
    x, y = make_data(12, 8, 3, "sparse")
    x = (x * 2 + 1).astype(dtype)
    bn = L.BatchNormalization(momentum=0.9, input_dim=8)
    model = fn.Sequential([bn, L.Dense(3, activation="softmax")], dtype=np.dtype(dtype).name)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    mm, mv = np.zeros(8, dtype), np.ones(8, dtype)
    for _ in range(2):
        for batch in (x[:8], x[8:]):
            mean = batch.astype(np.float64).mean(axis=0).astype(dtype)
            var = batch.astype(np.float64).var(axis=0).astype(dtype)
            mm = mm * dtype(0.9) + mean * dtype(1 - 0.9)
            mv = mv * dtype(0.9) + var * dtype(1 - 0.9)
    rtol = 1e-6 if dtype == np.float32 else 1e-13    # the batch statistics' own rounding
    np.testing.assert_allclose(bn.get_weights()[2], mm, rtol=rtol)
    np.testing.assert_allclose(bn.get_weights()[3], mv, rtol=rtol)
    # Inference uses them.
    gamma, beta, mm, mv = bn.get_weights()
    w, b = model.layers[1].get_weights()
    z = ((x - mm) / np.sqrt(mv + EPS) * gamma + beta) @ w + b
    e = np.exp(z - z.max(axis=1, keepdims=True))
    assert_close(model.predict(x), e / e.sum(axis=1, keepdims=True), dtype)


def test_only_training_steps_move_the_statistics():
    fn.set_seed(16)
    bn = L.BatchNormalization()
    model = fn.Sequential([L.Dense(4, input_dim=3), bn, L.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    x, y = make_data(10, 3, 1, "real")
    start = bn.get_weights()[2:]
    model.predict(x)
    model.evaluate(x, y)
    model.gradients(x, y)
    assert all(np.array_equal(a, b) for a, b in zip(start, bn.get_weights()[2:]))
    model.train_on_batch(x, y)
    assert not np.array_equal(start[0], bn.get_weights()[2])
    # fit's updates never touch them through the optimizer: after the step they are
    # exactly the rule applied to the batch (SGD with weight decay of nothing to undo).
    assert bn.non_trainable_weights[0] is bn.weights[2]


def test_training_and_inference_differ_for_batch_norm_not_for_layer_norm():
    fn.set_seed(17)
    x, y = make_data(16, 4, 1, "real")
    for make, differ in ((L.BatchNormalization, True), (L.LayerNormalization, False)):
        model = fn.Sequential([make(input_dim=4), L.Dense(1)], dtype="float64")
        model.compile(loss="mse", optimizer="sgd")
        training = training_loss(model, x, y)      # no update
        inference = model.evaluate(x, y, batch_size=16)
        assert (abs(training - inference) > 1e-3) == differ
    # Layer norm is per sample: a row's output does not depend on the rest of the batch.
    ln = fn.Sequential([L.LayerNormalization(input_dim=4)])
    np.testing.assert_allclose(ln.predict(x)[3:4], ln.predict(x[3:4]), rtol=1e-6)


# -------------------------------------------------------------- weights and saving --

def test_weights_order_names_and_counts_as_keras():
    model = fn.Sequential([L.Dense(3, input_dim=2), L.BatchNormalization(),
                           L.BatchNormalization(center=False), L.LayerNormalization(scale=False)])
    model.build()
    bn, bn2, ln = model.layers[1:]
    assert bn.weight_names == ["gamma", "beta", "moving_mean", "moving_variance"]
    np.testing.assert_array_equal(bn.get_weights()[0], np.ones(3))
    np.testing.assert_array_equal(bn.get_weights()[3], np.ones(3))
    np.testing.assert_array_equal(bn.get_weights()[2], np.zeros(3))
    assert bn2.weight_names == ["gamma", "moving_mean", "moving_variance"]
    assert ln.weight_names == ["beta"]
    assert [len(layer.trainable_weights) for layer in (bn, bn2, ln)] == [2, 1, 1]
    assert [len(layer.non_trainable_weights) for layer in (bn, bn2, ln)] == [2, 2, 0]
    assert [layer.count_params() for layer in (bn, bn2, ln)] == [12, 9, 3]
    lines = []
    model.summary(print_fn=lines.append)
    assert "Trainable params: 21" in lines[0] and "Non-trainable params: 12" in lines[0]
    assert bn.get_config()["momentum"] == 0.99 and bn.epsilon == 1e-3 == ln.epsilon


def test_save_load_and_resume_exactly(tmp_path):
    def make():
        fn.set_seed(18)
        model = fn.Sequential([L.Dense(8, activation="relu", input_dim=5),
                               L.BatchNormalization(momentum=0.8),
                               L.Dropout(0.2), L.LayerNormalization(),
                               L.Dense(3, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        return model
    x, y = make_data(100, 5, 3, "sparse")
    straight = make()
    straight.fit(x, y, epochs=4, batch_size=16, verbose=0)
    first = make()
    first.fit(x, y, epochs=2, batch_size=16, verbose=0)
    first.save(tmp_path / "m.fnn")
    loaded = fn.load_model(tmp_path / "m.fnn")
    np.testing.assert_array_equal(loaded.predict(x), first.predict(x))
    loaded.fit(x, y, epochs=2, batch_size=16, verbose=0)
    for a, b in zip(loaded.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)
    config = fn.Sequential.from_config(straight.get_config()).get_config()
    assert config == straight.get_config()


def test_batch_norm_model_learns():
    fn.set_seed(19)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((400, 2)) * [1, 100] + [0, 500]     # badly scaled features
    y = (x[:, 0] * 100 + (x[:, 1] - 500) > 0).astype(int)
    model = fn.Sequential([L.BatchNormalization(input_dim=2), L.Dense(16, activation="relu"),
                           L.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=fn.optimizers.Adam(0.01),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    assert model.evaluate(x, y)[1] > 0.95


# -------------------------------------------------------------------- bad arguments --

@pytest.mark.parametrize("make, kwargs, exc, pattern", [
    (L.BatchNormalization, {"axis": 0}, ValueError, r"BatchNormalization: axis must be -1"),
    (L.BatchNormalization, {"momentum": 1.5}, ValueError, r"momentum must be a number in "
                                                           r"\[0, 1\]"),
    (L.BatchNormalization, {"epsilon": 0}, ValueError, r"epsilon must be a number > 0"),
    (L.BatchNormalization, {"center": "yes"}, TypeError, r"center must be True or False"),
    (L.BatchNormalization, {"gamma_initializer": "bogus"}, ValueError, r"unknown initializer"),
    (L.BatchNormalization, {"synchronized": True}, ValueError, r"synchronized=True is not "
                                                              r"supported"),
    (L.BatchNormalization, {"gamma_regularizer": "bogus"}, ValueError, r"regularizer: "
                                                                       r"expected None"),
    (L.BatchNormalization, {"beta_constraint": "non_neg"}, ValueError, r"beta_constraint="
                                                                       r"'non_neg' is not "
                                                                       r"supported"),
    (L.LayerNormalization, {"rms_scaling": True}, ValueError, r"rms_scaling=True is not "
                                                             r"supported"),
    (L.LayerNormalization, {"axis": 2}, ValueError, r"LayerNormalization: axis must be -1"),
    (L.LayerNormalization, {"scale": 1}, TypeError, r"scale must be True or False"),
    (L.LayerNormalization, {"epsilon": float("nan")}, ValueError, r"epsilon must be"),
])
def test_bad_arguments(make, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make(**kwargs)


def test_loading_checks_the_parameter_count_of_normalization_layers(tmp_path):
    import json
    import zipfile
    model = fn.Sequential([L.Dense(3, input_dim=2), L.BatchNormalization()])
    model.save(tmp_path / "m.fnn")
    with zipfile.ZipFile(tmp_path / "m.fnn") as z:
        doc = json.loads(z.read("fastnn.json"))
    assert doc["parameters"] == 2 * 3 + 3 + 4 * 3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnx_export_of_the_new_layers(dtype, tmp_path):
    """Flatten (image input), BatchNormalization (moving statistics), LayerNormalization
    and Softmax export and run in ONNX Runtime like predict (tolerances: those of
    tests/test_onnx_export.py, where they are explained)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    fn.set_seed(20)
    model = fn.Sequential([fn.Input((4, 5)), L.Flatten(), L.Dense(8),
                           L.BatchNormalization(center=False), L.Activation("relu"),
                           L.LayerNormalization(), L.Dense(3), L.Softmax()], dtype=dtype)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    rng = np.random.default_rng(5)
    x = (3 * rng.standard_normal((64, 4, 5))).astype(dtype)
    model.fit(x, rng.integers(0, 3, 64), epochs=2, verbose=0)
    path = tmp_path / "m.onnx"
    model.export(path, verbose=False)
    onnx.checker.check_model(str(path), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    tol = 1e-5 if dtype == "float32" else 1e-9
    for n in (1, 64):
        got = session.run(None, {"input": x[:n]})[0]
        np.testing.assert_allclose(got, model.predict(x[:n]), rtol=tol, atol=tol)
    if dtype == "float32":      # the LayerNormalization operator is new in opset 17
        with pytest.raises(ValueError, match=r"needs opset_version >= 17"):
            model.export(tmp_path / "old.onnx", verbose=False, opset_version=16)
    else:                       # float64 writes it with elementary operators: any opset
        model.export(tmp_path / "old.onnx", verbose=False, opset_version=16)
        session = ort.InferenceSession(str(tmp_path / "old.onnx"),
                                       providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(session.run(None, {"input": x})[0], model.predict(x),
                                   rtol=tol, atol=tol)


@pytest.mark.parametrize("make", [L.BatchNormalization, L.LayerNormalization])
def test_gamma_and_beta_regularizers(make, tmp_path):
    fn.set_seed(21)
    norm = make(gamma_regularizer=fn.regularizers.L1L2(l1=0.01, l2=0.02),
                beta_regularizer=fn.regularizers.L2(0.03))
    model = fn.Sequential([L.Dense(5, input_dim=3), norm, L.Dense(2)], dtype="float64")
    model.compile(loss="mse", optimizer="sgd")
    weights = model.get_weights()
    rng = np.random.default_rng(6)
    weights[2], weights[3] = rng.uniform(-1.5, 1.5, 5), rng.standard_normal(5)
    model.set_weights(weights)
    x, y = make_data(9, 3, 2, "real")
    assert_gradients_match(model, x, y)
    gamma, beta = weights[2], weights[3]
    penalty = 0.01 * np.abs(gamma).sum() + 0.02 * (gamma ** 2).sum() + 0.03 * (beta ** 2).sum()
    unregularized = fn.Sequential([L.Dense(5, input_dim=3), make(), L.Dense(2)],
                                  dtype="float64")
    unregularized.compile(loss="mse", optimizer="sgd")
    unregularized.set_weights(weights)
    assert model.evaluate(x, y) == pytest.approx(unregularized.evaluate(x, y) + penalty,
                                                 rel=1e-12)
    model.save(tmp_path / "m.fnn")
    loaded = fn.load_model(tmp_path / "m.fnn").layers[1]
    assert loaded.gamma_regularizer.l1 == 0.01 and loaded.beta_regularizer.l2 == 0.03
    # A regularizer on an unused weight (scale=False: no gamma) adds nothing, as in Keras.
    off = make(scale=False, gamma_regularizer="l2")
    fn.Sequential([L.Dense(5, input_dim=3), off]).build()
    assert off.penalty() == 0
