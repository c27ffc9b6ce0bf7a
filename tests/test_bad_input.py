"""Bad input through the public API gets a clear ValueError/TypeError that names the
argument and what was expected: never a crash, a hang or silent broadcasting.

Also: inputs of another dtype, non-contiguous and read-only inputs give the same results as
pre-converted C-contiguous arrays, and property-based tests (hypothesis) over predict/fit
inputs: the outcome is always a correct result or a ValueError/TypeError.

Tests named test_bug_* were written against bugs found in review (now fixed).
"""
import os
import subprocess
import tempfile
import sys
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn as fn
from fastnn import layers as L

WIDTH = 4          # input width of every test model
N = 8              # rows of the standard test data

# loss name -> (output units, output activation, target kind)
LOSSES = {
    "mse": (1, None, "real"),
    "mse3": (3, None, "real"),
    "binary_crossentropy": (1, "sigmoid", "binary"),
    "categorical_crossentropy": (3, "softmax", "onehot"),
    "sparse_categorical_crossentropy": (3, "softmax", "sparse"),
}
XY_METHODS = ["fit", "evaluate", "train_on_batch", "gradients"]
X_METHODS = XY_METHODS + ["predict"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Keep CPU use modest (the machine is shared); restore the setting afterwards."""
    previous = fn.get_num_threads()
    fn.set_num_threads(1)
    yield
    fn.set_num_threads(previous)


def make_model(loss="mse", dtype="float32", seed=0, metrics=None, hidden="tanh"):
    units, act, _ = LOSSES[loss]
    fn.set_seed(seed)
    model = fn.Sequential([L.Dense(5, activation=hidden, input_dim=WIDTH),
                           L.Dense(units, activation=act)], dtype=dtype)
    model.compile(loss=loss.replace("mse3", "mse"), optimizer="sgd", metrics=metrics)
    return model


def make_data(loss="mse", n=N, seed=0):
    units, _, kind = LOSSES[loss]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, WIDTH))
    labels = np.arange(n) % units
    if kind == "sparse":
        y = labels
    elif kind == "onehot":
        y = np.eye(units)[labels]
    elif kind == "binary":
        y = (rng.random((n, units)) > 0.5).astype(float)
    else:
        y = rng.standard_normal((n, units))
    return x, y


def call(model, method, x, y=None, **kw):
    if method == "fit":
        kw.setdefault("epochs", 1)
        kw.setdefault("batch_size", 4)
        return model.fit(x, y, verbose=0, **kw)
    if method == "predict":
        return model.predict(x, **kw)
    return getattr(model, method)(x, y, **kw)


def same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(u, w) for u, w in zip(a, b))


def assert_unchanged(model, before):
    assert same_weights(model.get_weights(), before), "a rejected call changed the weights"


# ------------------------------------------------------- layers, model, globals --
@pytest.mark.parametrize("units, exc, pattern", [
    (0, ValueError, r"Dense: units must be >= 1, got 0"),
    (-3, ValueError, r"Dense: units must be >= 1, got -3"),
    (2.5, TypeError, r"Dense: units must be a positive integer, got 2\.5"),
    (True, TypeError, r"Dense: units must be a positive integer, got True"),
    ("3", TypeError, r"Dense: units must be a positive integer"),
    (None, TypeError, r"Dense: units must be a positive integer"),
])
def test_dense_units(units, exc, pattern):
    with pytest.raises(exc, match=pattern):
        L.Dense(units)


def test_dense_accepts_numpy_integer_units():
    assert L.Dense(np.int64(3)).units == 3


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"input_dim": 0}, ValueError, r"input_dim must be >= 1"),
    ({"input_dim": 2.5}, TypeError, r"input_dim must be a positive integer"),
    ({"input_shape": (3, 4)}, ValueError, r"input_shape must be a 1-tuple"),
    ({"activation": "bogus"}, ValueError, r"unknown activation 'bogus'; expected one of"),
    ({"activation": 5}, TypeError, r"activation: expected a name such as 'relu', got 5"),
    ({"kernel_initializer": "bogus"}, ValueError, r"unknown initializer 'bogus'"),
    ({"bias_initializer": "nope"}, ValueError, r"unknown initializer 'nope'"),
    ({"kernel_regularizer": "bogus"}, ValueError, r"regularizer: expected None, 'l1'"),
    ({"alpha": 0}, ValueError, r"alpha .* must be in \(0, 1\)"),
    ({"use_bias": "yes"}, TypeError, r"use_bias must be True or False"),
])
def test_dense_other_arguments(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        L.Dense(3, **kwargs)


def test_activation_layer_unknown_name():
    with pytest.raises(ValueError, match=r"unknown activation 'swishy'; expected one of"):
        L.Activation("swishy")


@pytest.mark.parametrize("rate", [1, 1.0, -0.1, 1.5, float("nan"), "0.5", True, None])
def test_dropout_rate(rate):
    with pytest.raises((ValueError, TypeError), match=r"Dropout: rate must be a number in "
                                                      r"\[0, 1\)"):
        L.Dropout(rate)


def test_dropout_seed():
    with pytest.raises(ValueError, match=r"Dropout: seed must be None or an integer >= 0"):
        L.Dropout(0.5, seed=-1)


@pytest.mark.parametrize("dtype, exc", [
    ("int32", ValueError), ("float16", ValueError), ("complex64", ValueError),
    (np.int64, ValueError), (bool, ValueError), ("bogus", TypeError), (5, TypeError),
])
def test_sequential_dtype(dtype, exc):
    with pytest.raises(exc, match=r"Sequential: dtype must be 'float32' or 'float64'"):
        fn.Sequential([L.Dense(1, input_dim=WIDTH)], dtype=dtype)


def test_sequential_non_layer():
    with pytest.raises(TypeError, match=r"Sequential.add: expected a fn.layers layer"):
        fn.Sequential([L.Dense(1, input_dim=WIDTH), "relu"])


def test_sequential_without_layers():
    model = fn.Sequential()
    model.compile(loss="mse", optimizer="sgd")
    with pytest.raises(ValueError, match=r"the model has no layers"):
        model.fit(np.ones((4, WIDTH)), np.ones(4), verbose=0)


@pytest.mark.parametrize("seed, exc", [(-1, ValueError), ("a", TypeError), (1.5, TypeError),
                                       (True, TypeError), (None, TypeError)])
def test_set_seed(seed, exc):
    with pytest.raises(exc, match=r"set_seed: seed must be"):
        fn.set_seed(seed)


@pytest.mark.parametrize("n, exc", [(0, ValueError), (-2, ValueError), ("x", TypeError),
                                    (1.5, TypeError), (None, TypeError), (True, TypeError)])
def test_set_num_threads(n, exc):
    before = fn.get_num_threads()
    with pytest.raises(exc, match=r"set_num_threads: n must be"):
        fn.set_num_threads(n)
    assert fn.get_num_threads() == before


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: fn.regularizers.l1(-1), ValueError, r"regularizer: l1 must be finite and >= 0"),
    (lambda: fn.regularizers.l2(float("nan")), ValueError, r"regularizer: l2 must be finite"),
    (lambda: fn.regularizers.l1_l2(l1=0.1, l2=float("inf")), ValueError,
     r"regularizer: l2 must be finite"),
    (lambda: fn.regularizers.l1("a"), TypeError, r"regularizer: l1 must be a number"),
    (lambda: fn.regularizers.l2(True), TypeError, r"regularizer: l2 must be a number"),
    (lambda: fn.regularizers.get("l3"), ValueError, r"regularizer: expected None, 'l1'"),
    (lambda: fn.regularizers.get(5), ValueError, r"regularizer: expected None"),
    (lambda: L.Dense(3, kernel_regularizer=fn.regularizers.l2(-0.5)), ValueError,
     r"regularizer: l2 must be finite and >= 0"),
])
def test_regularizers(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


# ----------------------------------------------------------------------- compile --
@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"loss": None}, ValueError, r"compile: loss is required"),
    ({"loss": "bogus"}, ValueError, r"compile: unknown loss 'bogus'; expected one of"),
    ({"loss": 5}, ValueError, r"compile: unknown loss 5"),
    ({"loss": "mse", "optimizer": "bogus"}, ValueError, r"compile: unknown optimizer 'bogus'"),
    ({"loss": "mse", "optimizer": None}, ValueError, r"compile: unknown optimizer None"),
    ({"loss": "mse", "optimizer": 3}, ValueError, r"compile: unknown optimizer 3"),
    ({"loss": "mse", "metrics": ["bogus"]}, ValueError, r"compile: unknown metric 'bogus'"),
    ({"loss": "mse", "metrics": [["accuracy"]]}, ValueError, r"compile: unknown metric"),
    ({"loss": "mse", "metrics": 5}, TypeError, r"compile: metrics must be a list of names"),
])
def test_compile_bad_arguments(kwargs, exc, pattern):
    model = fn.Sequential([L.Dense(1, input_dim=WIDTH)])
    kwargs.setdefault("optimizer", "sgd")
    with pytest.raises(exc, match=pattern):
        model.compile(**kwargs)


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: fn.optimizers.SGD(learning_rate=-1), ValueError, r"SGD: learning_rate"),
    (lambda: fn.optimizers.SGD(learning_rate="a"), TypeError, r"SGD: learning_rate"),
    (lambda: fn.optimizers.SGD(learning_rate=float("nan")), ValueError, r"must be finite"),
])
def test_optimizer_bad_learning_rate(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


@pytest.mark.parametrize("method", XY_METHODS)
def test_before_compile(method):
    model = fn.Sequential([L.Dense(1, input_dim=WIDTH)])
    x, y = make_data()
    with pytest.raises(ValueError, match=rf"{method}: call model.compile\(loss=..., "
                                         rf"optimizer=...\) first"):
        call(model, method, x, y)


def test_predict_before_build():
    model = fn.Sequential([L.Dense(3), L.Dense(1)])
    with pytest.raises(ValueError, match=r"predict: the model is not built yet"):
        model.predict(np.ones((2, WIDTH)))


# ------------------------------------------------------------------------- x ----
def _bad_x_cases():
    x, _ = make_data()
    big = x.copy()
    big[2, 1] = 1e39                     # fits float64, overflows float32
    nan, pinf, ninf = x.copy(), x.copy(), x.copy()
    nan[3, 2] = np.nan
    pinf[0, 0] = np.inf
    ninf[7, 3] = -np.inf
    return [
        ("1-D", x[:, 0], ValueError, r"x: expected a 2-D array \(samples, features\), got "
                                     r"shape \(8,\) \(use x.reshape\(-1, 1\)"),
        ("3-D", x[None], ValueError, r"x: expected a 2-D array .* got shape \(1, 8, 4\)"),
        ("0-D", np.float64(1.0), ValueError, r"x: expected a 2-D array .* got shape \(\)"),
        ("zero rows", x[:0], ValueError, r"x: has no samples \(shape \(0, 4\)\)"),
        ("zero features", x[:, :0], ValueError, r"x: expected 4 features per sample"),
        ("width 3", x[:, :3], ValueError, r"x: expected 4 features per sample \(the model's "
                                          r"input width\), got shape \(8, 3\)"),
        ("width 5", np.hstack([x, x[:, :1]]), ValueError, r"x: expected 4 features"),
        ("NaN", nan, ValueError, r"x: contains NaN or infinity \(first at index \(3, 2\)\)"),
        ("+inf", pinf, ValueError, r"x: contains NaN or infinity \(first at index \(0, 0\)\)"),
        ("-inf", ninf, ValueError, r"x: contains NaN or infinity \(first at index \(7, 3\)\)"),
        ("overflow", big, ValueError, r"x: values up to 1e\+39 overflow the model dtype "
                                      r"float32"),
        ("strings", x.astype(str), TypeError, r"x: expected a numeric array \(bool, int or "
                                              r"float\), got dtype <U"),
        ("bytes", x.astype("S8"), TypeError, r"x: expected a numeric array .* got dtype \|S"),
        ("object", x.astype(object), TypeError, r"x: expected a numeric array .* got dtype "
                                                r"object"),
        ("complex", x.astype(np.complex64), TypeError, r"x: expected a numeric array .* "
                                                       r"complex64"),
        ("datetime", np.zeros((N, WIDTH), "datetime64[s]"), TypeError,
         r"x: expected a numeric array .* datetime64"),
        ("ragged", [[1.0, 2.0, 3.0, 4.0]] * 7 + [[1.0, 2.0]], TypeError,
         r"x: expected a numeric array, could not convert list"),
        ("list of strings", [["a"] * WIDTH] * N, TypeError, r"x: expected a numeric array"),
    ]


BAD_X = _bad_x_cases()


@pytest.mark.parametrize("method", X_METHODS)
@pytest.mark.parametrize("case", BAD_X, ids=[c[0] for c in BAD_X])
def test_bad_x(method, case):
    _, bad, exc, pattern = case
    model = make_model()
    _, y = make_data()
    before = model.get_weights()
    with pytest.raises(exc, match=rf"{method}: {pattern}"):
        call(model, method, bad, y)
    assert_unchanged(model, before)


def test_float64_1e39_into_float64_model_is_fine():
    model = make_model(dtype="float64")
    x, _ = make_data()
    x[2, 1] = 1e39
    out = model.predict(x)
    assert out.dtype == np.float64 and np.isfinite(out).all()


def test_float64_1e30_into_float32_model_is_representable():
    # 1e30 < float32 max (3.4e38): it converts exactly enough and is NOT an overflow.
    model = make_model()
    x = np.full((2, WIDTH), 1e30)
    np.testing.assert_array_equal(model.predict(x), model.predict(x.astype(np.float32)))


@pytest.mark.parametrize("method", XY_METHODS)
def test_x_none(method):
    model = make_model()
    _, y = make_data()
    exc, pattern = ((ValueError, rf"{method}: x and y are required")
                    if method != "predict" else
                    (TypeError, rf"{method}: x: expected a numeric array"))
    with pytest.raises(exc, match=pattern):
        call(model, method, None, y)


def test_unbuilt_model_bad_x():
    """Without input_dim the model is built from x's width: bad x still gives the error."""
    for bad, exc, pattern in [(np.ones(5), ValueError, r"x: expected a 2-D array"),
                              (np.ones((2, 3, 4)), ValueError, r"x: expected a 2-D array"),
                              (np.ones((0, 4)), ValueError, r"x: has no samples"),
                              (np.ones((4, 0)), ValueError, r"x: has no features"),
                              (np.array([["a"]]), TypeError, r"x: expected a numeric array")]:
        model = fn.Sequential([L.Dense(3), L.Dense(1)])
        model.compile(loss="mse", optimizer="sgd")
        with pytest.raises(exc, match=rf"fit: {pattern}"):
            model.fit(bad, np.ones(len(bad)), verbose=0)


# ------------------------------------------------------------------------- y ----
def _bad_y_cases():
    cases = []
    for loss in LOSSES:
        units, _, kind = LOSSES[loss]
        _, y = make_data(loss)
        cases += [
            (loss, "7 rows", y[:7], ValueError, r"y: has 7 samples but x has 8; they must "
                                                r"match"),
            (loss, "9 rows", np.concatenate([y, y[:1]]), ValueError,
             r"y: has 9 samples but x has 8"),
            (loss, "strings", y.astype(str), TypeError, r"y: expected a numeric array"),
            (loss, "object", y.astype(object), TypeError, r"y: expected a numeric array .* "
                                                          r"object"),
            (loss, "complex", y.astype(complex), TypeError, r"y: expected a numeric array .* "
                                                            r"complex128"),
            (loss, "3-D", y.reshape(N, -1)[:, :, None], ValueError,
             r"y: (expected shape|sparse_categorical_crossentropy expects)"),
        ]
        if kind == "sparse":
            cases += [
                (loss, "negative label", np.array([0, 1, 2, -1, 0, 1, 2, 0]), ValueError,
                 r"y: labels must be in \[0, 3\) for a model with 3 outputs, got values in "
                 r"\[-1, 2\]"),
                (loss, "label == classes", np.array([0, 1, 2, 3, 0, 1, 2, 0]), ValueError,
                 r"y: labels must be in \[0, 3\) .* got values in \[0, 3\]"),
                (loss, "label 1.5", np.array([0, 1, 1.5, 2, 0, 1, 2, 0]), ValueError,
                 r"y: labels must be whole numbers, got e.g. .*1\.5"),
                (loss, "label NaN", np.array([0, 1, np.nan, 2, 0, 1, 2, 0]), ValueError,
                 r"y: labels contain NaN or infinity"),
                (loss, "label inf", np.array([0, 1, np.inf, 2, 0, 1, 2, 0]), ValueError,
                 r"y: labels contain NaN or infinity"),
                (loss, "huge label", np.array([0, 1, 2, 2**63, 0, 1, 2, 0], np.uint64),
                 ValueError, r"y: labels must be in \[0, 3\)"),
                (loss, "one-hot", np.eye(3)[np.arange(N) % 3], ValueError,
                 r"y: sparse_categorical_crossentropy expects integer labels of shape "
                 r"\(8,\), got shape \(8, 3\) \(for one-hot targets use "
                 r"loss='categorical_crossentropy'\)"),
            ]
            continue
        nan, inf = y.astype(float), y.astype(float)
        nan[1, 0] = np.nan
        inf[5, units - 1] = -np.inf
        cases += [
            (loss, "NaN", nan, ValueError, r"y: contains NaN or infinity \(first at index "
                                           r"\(1, 0\)\)"),
            (loss, "inf", inf, ValueError, r"y: contains NaN or infinity"),
            (loss, f"width {units + 1}", np.hstack([y, y[:, :1]]), ValueError,
             rf"y: expected {units} columns \(the model's output width\), got shape "
             rf"\(8, {units + 1}\)"),
            (loss, "one row", y[:1], ValueError, r"y: has 1 samples but x has 8"),
        ]
        if units > 1:
            cases += [
                (loss, "(n, 1) vs wide output", y[:, :1], ValueError,
                 rf"y: expected {units} columns"),
                (loss, "(n,) vs wide output", y[:, 0], ValueError,
                 rf"y: got a 1-D array of shape \(8,\) but the model has {units} outputs; "
                 rf"pass y of shape \(n, {units}\)"),
            ]
        if kind in ("binary", "onehot"):
            cases += [
                (loss, "target 1.5", np.where(y > 0.5, 1.5, 0.0), ValueError,
                 r"y: targets for this loss must be in \[0, 1\], got values in \[0, 1.5\]"),
                (loss, "target -0.5", np.where(y > 0.5, 1.0, -0.5), ValueError,
                 r"y: targets for this loss must be in \[0, 1\], got values in \[-0.5, 1\]"),
            ]
    return cases


BAD_Y = _bad_y_cases()


@pytest.mark.parametrize("method", XY_METHODS)
@pytest.mark.parametrize("case", BAD_Y, ids=[f"{c[0]}-{c[1]}" for c in BAD_Y])
def test_bad_y(method, case):
    loss, _, bad, exc, pattern = case
    model = make_model(loss)
    x, _ = make_data(loss)
    before = model.get_weights()
    with pytest.raises(exc, match=rf"{method}: {pattern}"):
        call(model, method, x, bad)
    assert_unchanged(model, before)


def test_categorical_1d_hint_mentions_sparse():
    model = make_model("categorical_crossentropy")
    x, _ = make_data()
    with pytest.raises(ValueError, match=r"or integer labels with "
                                         r"loss='sparse_categorical_crossentropy'"):
        model.evaluate(x, np.arange(N) % 3)


def test_fit_y_none():
    model = make_model()
    x, _ = make_data()
    with pytest.raises(ValueError, match=r"fit: x and y are required"):
        model.fit(x, None, verbose=0)


@pytest.mark.parametrize("loss", ["mse", "binary_crossentropy"])
def test_1d_target_against_one_output_is_the_same_as_column(loss):
    """The documented rule: y of shape (n,) is accepted only for a one-output model, where
    it is unambiguous, and means exactly y.reshape(n, 1)."""
    x, y2 = make_data(loss)
    y1 = y2[:, 0]
    assert y1.shape == (N,)
    a, b = make_model(loss), make_model(loss)
    assert same_weights(a.get_weights(), b.get_weights())
    assert a.evaluate(x, y1) == b.evaluate(x, y2)
    ga, gb = a.gradients(x, y1), b.gradients(x, y2)
    assert same_weights(ga, gb)
    assert a.train_on_batch(x, y1) == b.train_on_batch(x, y2)
    ha = a.fit(x, y1, epochs=2, batch_size=3, verbose=0, validation_split=0.25)
    hb = b.fit(x, y2, epochs=2, batch_size=3, verbose=0, validation_split=0.25)
    assert ha.history["loss"] == hb.history["loss"]
    assert ha.history["val_loss"] == hb.history["val_loss"]
    assert same_weights(a.get_weights(), b.get_weights())


def test_sparse_labels_column_and_float_whole_numbers_are_accepted():
    x, y = make_data("sparse_categorical_crossentropy")
    model = make_model("sparse_categorical_crossentropy")
    ref = model.evaluate(x, y)
    assert model.evaluate(x, y.reshape(-1, 1)) == ref
    assert model.evaluate(x, y.astype(np.float64)) == ref
    assert model.evaluate(x, y.astype(np.uint8)) == ref


# --------------------------------------------------------------- sample_weight --
BAD_SW = [
    ("NaN", np.array([1, 1, np.nan, 1, 1, 1, 1, 1.0]), ValueError,
     r"sample_weight: contains NaN or infinity \(first at index \(2,\)\)"),
    ("inf", np.array([1, 1, 1, 1, 1, 1, 1, np.inf]), ValueError,
     r"sample_weight: contains NaN or infinity"),
    ("negative", np.array([1, 1, 1, -0.5, 1, 1, 1, 1]), ValueError,
     r"sample_weight: weights must be >= 0, got -0.5"),
    ("7 entries", np.ones(7), ValueError, r"sample_weight: expected shape \(8,\), got \(7,\)"),
    ("(n, 1)", np.ones((N, 1)), ValueError, r"sample_weight: expected shape \(8,\), got "
                                            r"\(8, 1\)"),
    ("scalar", 2.0, ValueError, r"sample_weight: expected shape \(8,\), got \(\)"),
    ("(1,)", np.ones(1), ValueError, r"sample_weight: expected shape \(8,\), got \(1,\)"),
    ("strings", np.array(["1"] * N), TypeError, r"sample_weight: expected a numeric array"),
    ("complex", np.ones(N, complex), TypeError, r"sample_weight: expected a numeric array"),
]


@pytest.mark.parametrize("method", XY_METHODS)
@pytest.mark.parametrize("case", BAD_SW, ids=[c[0] for c in BAD_SW])
def test_bad_sample_weight(method, case):
    _, sw, exc, pattern = case
    model = make_model()
    x, y = make_data()
    before = model.get_weights()
    with pytest.raises(exc, match=rf"{method}: {pattern}"):
        call(model, method, x, y, sample_weight=sw)
    assert_unchanged(model, before)


# ------------------------------------------------------- fit/evaluate arguments --
@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
@pytest.mark.parametrize("batch_size, exc, pattern", [
    (0, ValueError, r"batch_size: must be >= 1, got 0"),
    (-1, ValueError, r"batch_size: must be >= 1, got -1"),
    (1.5, TypeError, r"batch_size: expected an integer, got 1.5"),
    (True, TypeError, r"batch_size: expected an integer, got True"),
    ("32", TypeError, r"batch_size: expected an integer, got '32'"),
])
def test_batch_size(method, batch_size, exc, pattern):
    model = make_model()
    x, y = make_data()
    with pytest.raises(exc, match=rf"{method}: {pattern}"):
        call(model, method, x, y, batch_size=batch_size)


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"epochs": -1}, ValueError, r"fit: epochs: must be >= 0, got -1"),
    ({"epochs": 1.5}, TypeError, r"fit: epochs: expected an integer, got 1.5"),
    ({"epochs": None}, TypeError, r"fit: epochs: expected an integer, got None"),
    ({"initial_epoch": -1}, ValueError, r"fit: initial_epoch: must be >= 0"),
    ({"validation_batch_size": 0}, ValueError, r"fit: validation_batch_size: must be >= 1"),
    ({"verbose": 3}, ValueError, r"fit: verbose must be 0, 1, 2 or 'auto', got 3"),
    ({"verbose": True}, ValueError, r"fit: verbose must be 0, 1, 2 or 'auto'"),
    ({"shuffle": "yes"}, TypeError, r"fit: shuffle must be True or False"),
    ({"validation_split": -0.1}, ValueError, r"fit: validation_split: must be in \[0, 1\), "
                                             r"got -0.1"),
    ({"validation_split": 1}, ValueError, r"fit: validation_split: must be in \[0, 1\), "
                                          r"got 1.0"),
    ({"validation_split": 1.5}, ValueError, r"fit: validation_split: must be in \[0, 1\)"),
    ({"validation_split": float("nan")}, ValueError, r"fit: validation_split: must be finite"),
    ({"validation_split": "0.1"}, TypeError, r"fit: validation_split: expected a number"),
    ({"validation_split": 0.01}, ValueError, r"fit: validation_split=0.01 leaves 8 training "
                                             r"and 0 validation samples out of 8; both must "
                                             r"be at least 1"),
    ({"validation_split": 0.99}, ValueError, r"fit: validation_split=0.99 leaves 0 training "
                                             r"and 8 validation samples"),
])
def test_fit_arguments(kwargs, exc, pattern):
    model = make_model()
    x, y = make_data()
    before = model.get_weights()
    kwargs = {"epochs": 1, **kwargs}
    with pytest.raises(exc, match=pattern):
        model.fit(x, y, verbose=kwargs.pop("verbose", 0), **kwargs)
    assert_unchanged(model, before)


def test_validation_split_stratified_empty_classes():
    # Classes of 3, 3 and 2 samples: round(0.1 * size) = 0 from each -> nothing held out.
    model = make_model("sparse_categorical_crossentropy")
    x, _ = make_data()
    with pytest.raises(ValueError, match=r"fit: validation_split=0.1 leaves 8 training and "
                                         r"0 validation samples"):
        model.fit(x, np.repeat(np.arange(3), [3, 3, 2]), validation_split=0.1, verbose=0)


def test_epochs_zero_trains_nothing():
    model = make_model()
    x, y = make_data()
    before = model.get_weights()
    model.fit(x, y, epochs=0, verbose=0)
    assert_unchanged(model, before)


def _bad_validation_data():
    x, y = make_data()
    nan = y.copy()
    nan[0, 0] = np.nan
    return [
        ("ndarray", np.stack([x, x]), ValueError, r"fit: validation_data must be a tuple "
                                                  r"\(x_val, y_val\)"),
        ("1-tuple", (x,), ValueError, r"fit: validation_data must be a tuple"),
        ("4-tuple", (x, y, np.ones(N), 1), ValueError, r"fit: validation_data must be a tuple"),
        ("dict", {"x": x, "y": y}, ValueError, r"fit: validation_data must be a tuple"),
        ("string", "val", ValueError, r"fit: validation_data must be a tuple"),
        ("wrong width", (x[:, :3], y), ValueError, r"fit: validation_data: x: expected 4 "
                                                   r"features"),
        ("row mismatch", (x, y[:5]), ValueError, r"fit: validation_data: y: has 5 samples but "
                                                 r"x has 8"),
        ("NaN in y_val", (x, nan), ValueError, r"fit: validation_data: y: contains NaN"),
        ("x_val None", (None, y), ValueError, r"fit: validation_data needs both x_val and "
                                              r"y_val"),
        ("bad sample weights", (x, y, np.ones(3)), ValueError,
         r"fit: validation_data: sample_weight: expected shape \(8,\), got \(3,\)"),
        ("strings", (x.astype(str), y), TypeError, r"fit: validation_data: x: expected a "
                                                   r"numeric array"),
    ]


BAD_VAL = _bad_validation_data()


@pytest.mark.parametrize("case", BAD_VAL, ids=[c[0] for c in BAD_VAL])
def test_bad_validation_data(case):
    _, val, exc, pattern = case
    model = make_model()
    x, y = make_data()
    before = model.get_weights()
    with pytest.raises(exc, match=pattern):
        model.fit(x, y, validation_data=val, verbose=0)
    assert_unchanged(model, before)


@pytest.mark.parametrize("class_weight, exc, pattern", [
    ([1.0, 2.0, 3.0], TypeError, r"class_weight must be a dict \{class: weight\}, got list"),
    (np.ones(3), TypeError, r"class_weight must be a dict .* got ndarray"),
    ({-1: 1.0}, ValueError, r"class_weight keys must be class indices in \[0, 3\), got -1"),
    ({3: 1.0}, ValueError, r"class_weight keys must be class indices in \[0, 3\), got 3"),
    ({1.5: 1.0}, ValueError, r"class_weight keys must be class indices .* got 1.5"),
    ({"a": 1.0}, ValueError, r"class_weight keys must be class indices .* got 'a'"),
    ({True: 1.0}, ValueError, r"class_weight keys must be class indices .* got True"),
    ({None: 1.0}, ValueError, r"class_weight keys must be class indices .* got None"),
    ({0: -1.0}, ValueError, r"class_weight\[0\]: must be in \[0, inf\]"),
    ({0: float("nan")}, ValueError, r"class_weight\[0\]: must be finite"),
    ({0: "heavy"}, TypeError, r"class_weight\[0\]: expected a number"),
])
@pytest.mark.parametrize("method", ["fit", "train_on_batch"])
def test_bad_class_weight(method, class_weight, exc, pattern):
    model = make_model("sparse_categorical_crossentropy")
    x, y = make_data("sparse_categorical_crossentropy")
    before = model.get_weights()
    with pytest.raises(exc, match=rf"{method}: {pattern}"):
        call(model, method, x, y, class_weight=class_weight)
    assert_unchanged(model, before)


def test_class_weight_needs_class_targets():
    model = make_model("mse3")
    x, y = make_data("mse3")
    with pytest.raises(ValueError, match=r"fit: class_weight needs class targets .* not loss "
                                         r"'mse'"):
        model.fit(x, y, class_weight={0: 2.0}, verbose=0)


def test_class_weight_numpy_integer_keys_accepted():
    model = make_model("sparse_categorical_crossentropy")
    x, y = make_data("sparse_categorical_crossentropy")
    model.fit(x, y, class_weight={np.int64(1): 2.0, 0: 1.0}, verbose=0)


# ------------------------------------------------------------------ set_weights --
def test_set_weights_bad():
    model = make_model()
    good = model.get_weights()            # [W0 (4,5), b0 (5,), W1 (5,1), b1 (1,)]
    cases = [
        (good[:-1], ValueError, r"set_weights: expected 4 arrays, got 3"),
        (good + [good[-1]], ValueError, r"set_weights: expected 4 arrays, got 5"),
        ([], ValueError, r"set_weights: expected 4 arrays, got 0"),
        ([good[0].T] + good[1:], ValueError, r"set_weights: weights\[0\] must have shape "
                                             r"\(4, 5\), got \(5, 4\)"),
        (good[:3] + [np.zeros(())], ValueError, r"weights\[3\] must have shape \(1,\), "
                                                r"got \(\)"),
        (good[:2] + [good[2][:, 0]] + good[3:], ValueError, r"weights\[2\] must have shape "
                                                            r"\(5, 1\), got \(5,\)"),
        ([good[0], np.full(5, np.nan)] + good[2:], ValueError,
         r"set_weights: weights\[1\]: contains NaN or infinity"),
        (good[:3] + [np.array([np.inf])], ValueError, r"weights\[3\]: contains NaN"),
        (good[:3] + [np.array(["a"])], TypeError, r"set_weights: weights\[3\]: expected a "
                                                  r"numeric array"),
        (good[:3] + [np.array([1j])], TypeError, r"weights\[3\]: expected a numeric array"),
    ]
    for weights, exc, pattern in cases:
        ws = [w.copy() for w in weights]
        if ws and ws[0].shape == (WIDTH, 5):
            ws[0] += 1.0            # the valid first array must NOT be applied either
        with pytest.raises(exc, match=pattern):
            model.set_weights(ws)
        assert_unchanged(model, good)


def test_set_weights_converts_other_dtypes():
    model = make_model()
    ws = [np.ones(w.shape, np.int64) for w in model.get_weights()]
    model.set_weights(ws)
    assert all(w.dtype == np.float32 and (w == 1).all() for w in model.get_weights())


# ------------------------------------------------- dtype conversion and layouts --
OTHER_DTYPES = [np.float64, np.float16, np.int64, np.int8, np.uint8, np.bool_]


def _grid_x(dtype, n=N):
    """Data exactly representable in every dtype of OTHER_DTYPES."""
    base = (np.arange(n * WIDTH).reshape(n, WIDTH) % 5).astype(np.float64)
    return base.astype(dtype)


@pytest.mark.parametrize("dtype", OTHER_DTYPES)
def test_other_input_dtypes_predict_like_preconverted_float32(dtype):
    model = make_model()
    x = _grid_x(dtype)
    out = model.predict(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, model.predict(x.astype(np.float32)))


def test_float64_values_predict_like_preconverted_float32():
    model = make_model()
    x, _ = make_data()                    # values not exactly representable in float32
    np.testing.assert_array_equal(model.predict(x), model.predict(x.astype(np.float32)))


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.uint8])
def test_other_dtypes_fit_and_evaluate_like_preconverted(dtype):
    x = _grid_x(dtype)
    _, y = make_data()
    a, b = make_model(), make_model()
    ha = a.fit(x, y, epochs=2, batch_size=3, verbose=0)
    hb = b.fit(x.astype(np.float32), y.astype(np.float32), epochs=2, batch_size=3, verbose=0)
    assert ha.history["loss"] == hb.history["loss"]
    assert same_weights(a.get_weights(), b.get_weights())
    assert a.evaluate(x, y) == b.evaluate(x.astype(np.float32), y.astype(np.float32))


def _layouts(x):
    wide = np.zeros((x.shape[0], 2 * x.shape[1]), x.dtype)
    wide[:, ::2] = x
    ro = x.copy()
    ro.flags.writeable = False              # float32 C-contiguous: used without a copy
    rev = x[::-1].copy()[::-1]              # negative row stride
    return {"strided x[:, ::2]": wide[:, ::2], "fortran": np.asfortranarray(x),
            "read-only": ro, "reversed rows": rev,
            "transposed view": np.ascontiguousarray(x.T).T}


@pytest.mark.parametrize("layout", list(_layouts(np.zeros((2, 2)))))
@pytest.mark.parametrize("loss", ["mse", "sparse_categorical_crossentropy"])
def test_noncontiguous_and_readonly_inputs(layout, loss):
    x, y = make_data(loss)
    x = x.astype(np.float32)               # so that every layout holds the same values
    if y.dtype.kind == "f":
        y = y.astype(np.float32)
    xs = _layouts(x)[layout]
    ys = _layouts(y.reshape(N, -1))[layout] if y.ndim == 2 else y
    if y.ndim == 1:                        # labels: a read-only / strided 1-D view
        wide = np.zeros(2 * N, y.dtype)
        wide[::2] = y
        ys = wide[::2] if "strided" in layout else y.copy()
        ys.flags.writeable = "read-only" not in layout
    sw = np.linspace(0.5, 1.5, 2 * N)[::2]  # strided sample weights
    assert not np.shares_memory(xs, x) and np.array_equal(xs, x)
    a, b = make_model(loss), make_model(loss)
    np.testing.assert_array_equal(a.predict(xs), b.predict(x))
    assert a.evaluate(xs, ys, sample_weight=sw) == b.evaluate(x, y, sample_weight=sw.copy())
    assert same_weights(a.gradients(xs, ys), b.gradients(x, y))
    a.fit(xs, ys, epochs=2, batch_size=3, sample_weight=sw, verbose=0,
          validation_data=(xs, ys))
    b.fit(x, y, epochs=2, batch_size=3, sample_weight=sw.copy(), verbose=0,
          validation_data=(x, y))
    assert same_weights(a.get_weights(), b.get_weights())
    assert a.train_on_batch(xs, ys) == b.train_on_batch(x, y)
    if not xs.flags.writeable:
        assert not xs.flags.writeable      # still read-only, untouched
    np.testing.assert_array_equal(xs, x)


# ---------------------------------------------------------------- property tests --
def _act(name, z, alpha=0.01):
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if name == "linear":
            return z
        if name == "sigmoid":
            return np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))),
                            np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))))
        if name == "tanh":
            return np.tanh(z)
        if name == "relu":
            return np.maximum(z, 0)
        if name == "leaky_relu":
            return np.where(z > 0, z, alpha * z)
        if name == "softmax":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
    raise AssertionError(name)


_LIPSCHITZ = {"linear": 1.0, "sigmoid": 0.25, "tanh": 1.0, "relu": 1.0, "leaky_relu": 1.0,
              "softmax": 1.0}
_BOUNDED = {"sigmoid": 1.0, "tanh": 2.0, "softmax": 1.0}


def reference_forward(model, x):
    """The network's output by plain NumPy in float64 from get_weights(), and a rigorous
    bound on how far a correct evaluation in the model's dtype may be from it."""
    eps = float(np.finfo(model.dtype).eps)
    h = np.asarray(x, dtype=model.dtype).astype(np.float64)
    err = np.zeros_like(h)
    weights = model.get_weights()
    i = 0
    for layer in model.layers:
        if isinstance(layer, L.Dropout):
            continue
        if isinstance(layer, L.Dense):
            w, b = weights[i].astype(np.float64), weights[i + 1].astype(np.float64)
            i += 2
            k = w.shape[0] + 2
            z = h @ w + b
            err = err @ np.abs(w) + 4 * k * eps * (np.abs(h) @ np.abs(w) + np.abs(b))
        else:
            z = h
        name = layer.activation
        h = _act(name, z, layer.alpha)
        err = err * _LIPSCHITZ[name] + 16 * eps * (np.abs(h) + 1)   # the kernel's own rounding
        if name in _BOUNDED:
            err = np.minimum(err, _BOUNDED[name])
    return h, err


ARCHITECTURES = {
    "relu-linear": lambda: [L.Dense(5, activation="relu", input_dim=WIDTH), L.Dense(2)],
    "tanh-dropout-softmax": lambda: [L.Dense(5, activation="tanh", input_dim=WIDTH),
                                     L.Dropout(0.5), L.Dense(3, activation="softmax")],
    "sigmoid-leaky": lambda: [L.Dense(3, activation="sigmoid", input_dim=WIDTH),
                              L.Dense(2), L.Activation("leaky_relu", alpha=0.2)],
}
_MODEL_CACHE = {}


def cached_model(arch, dtype):
    key = (arch, dtype)
    if key not in _MODEL_CACHE:
        fn.set_seed(7)
        model = fn.Sequential(ARCHITECTURES[arch](), dtype=dtype)
        model.build()
        _MODEL_CACHE[key] = model
    return _MODEL_CACHE[key]


ALL_DTYPES = ["int8", "int64", "uint8", "bool", "float16", "float32", "float64", "complex64",
              "object"]
SPECIALS = [np.nan, np.inf, -np.inf, 1e30, -1e30, 1e39, -1e300, 1e-40, 5e-324, 65504.0]


NUMERIC_DTYPES = ["int8", "int64", "uint8", "bool", "float16", "float32", "float64"]


@st.composite
def input_arrays(draw, rows=st.integers(0, 6)):
    """An x: random dtype, shape (sometimes 0-size or 1-/3-D), layout (C, Fortran, strided,
    read-only) and special values (NaN, inf, 1e30, 1e39, 1e300, subnormals). Half of the
    draws are well-formed (numeric, (n >= 1, WIDTH)) so that valid inputs are common."""
    if draw(st.booleans()):
        dtype = np.dtype(draw(st.sampled_from(NUMERIC_DTYPES)))
        n, width, ndim = max(1, draw(rows)), WIDTH, 2
    else:
        dtype = np.dtype(draw(st.sampled_from(ALL_DTYPES)))
        n = draw(rows)
        width = draw(st.sampled_from([WIDTH, 0, 1, 3, 5]))
        ndim = draw(st.sampled_from([2, 2, 1, 3]))
    shape = {1: (n,), 2: (n, width), 3: (n, width, 2)}[ndim]
    size = int(np.prod(shape))
    base = np.array(draw(st.lists(st.floats(-100, 100, allow_nan=False, width=32),
                                  min_size=size, max_size=size)), np.float64).reshape(shape)
    if size and dtype.kind == "f" and draw(st.integers(0, 2)) == 0:
        special = draw(st.sampled_from(SPECIALS))
        flat = base.reshape(-1)
        flat[draw(st.integers(0, size - 1))] = special
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        if dtype.kind == "b":
            arr = base > 0
        elif dtype.kind == "u":
            arr = np.abs(base).astype(dtype)
        elif dtype.kind == "i":
            arr = base.astype(dtype)
        else:
            arr = base.astype(dtype)
    layout = draw(st.sampled_from(["C", "F", "strided", "read-only"]))
    if layout == "F":
        arr = np.asfortranarray(arr)
    elif layout == "strided" and ndim >= 2:
        wide = np.zeros(shape[:1] + (2 * shape[1],) + shape[2:], dtype)
        wide[:, ::2] = arr
        arr = wide[:, ::2]
    elif layout == "read-only":
        arr = arr.copy()
        arr.flags.writeable = False
    return arr


def expected_x_error(x, model_dtype, width=WIDTH):
    """The exception class a correct implementation raises for x, or None if x is valid."""
    if x.dtype.kind not in "biuf":
        return TypeError
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] != width:
        return ValueError
    if x.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(x)
        if not finite.all():
            return ValueError
        if x.size and np.abs(x).max() > np.finfo(model_dtype).max:
            return ValueError         # would overflow to inf in the model's dtype
    return None


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(x=input_arrays(), arch=st.sampled_from(sorted(ARCHITECTURES)),
       dtype=st.sampled_from(["float32", "float64"]),
       batch_size=st.sampled_from([None, 1, 2, 100]))
def test_property_predict(x, arch, dtype, batch_size):
    model = cached_model(arch, dtype)
    expected = expected_x_error(x, model.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # no RuntimeWarning (overflow in cast, ...) either
        if expected is not None:
            with pytest.raises(expected, match=r"predict: x: "):
                model.predict(x, batch_size=batch_size)
            return
        out = model.predict(x, batch_size=batch_size)
    assert out.dtype == model.dtype and out.shape == (x.shape[0], model.output_dim)
    assert out.flags.c_contiguous and out.flags.writeable
    ref, bound = reference_forward(model, x)
    assert np.isfinite(out).all()
    assert (np.abs(out - ref) <= bound + 1e-300).all(), (out, ref, bound)
    # Same bits as pre-converted, C-contiguous input of the model's dtype.
    np.testing.assert_array_equal(out, model.predict(np.ascontiguousarray(x, model.dtype),
                                                     batch_size=batch_size))


@st.composite
def fit_cases(draw):
    """(loss, x, y, sample_weight): valid data of random dtypes and layouts, with (about
    half of the time) one of x, y or sample_weight corrupted."""
    loss = draw(st.sampled_from(["mse", "binary_crossentropy",
                                 "sparse_categorical_crossentropy"]))
    units, _, kind = LOSSES[loss]
    corrupt = draw(st.sampled_from([None, None, None, "x", "y", "sw"]))
    x = draw(input_arrays(rows=st.integers(0, 7)))
    if corrupt != "x":
        while expected_x_error(x, np.float32) is not None:
            x = draw(input_arrays(rows=st.integers(1, 7)))
    n = x.shape[0] if x.ndim >= 1 else 0
    bad_y = corrupt == "y"
    # y: shapes, dtypes and values; bad ones only when y is the one being corrupted.
    m = draw(st.sampled_from([n, max(n - 1, 0), n + 1])) if bad_y else n
    ydtypes = ["int64", "uint8", "bool", "float32", "float64", "float16"]
    ydtype = np.dtype(draw(st.sampled_from(ydtypes + (["complex64", "object"]
                                                      if bad_y else []))))
    if kind == "sparse":
        shape = draw(st.sampled_from([(m,), (m, 1)] + ([(m, 3), (m, 1, 1)] if bad_y else [])))
        values = st.integers(-1, 3) if bad_y else st.integers(0, 2)
    else:
        shape = draw(st.sampled_from([(m,), (m, 1)] + ([(m, 2), (m, 1, 1)] if bad_y else [])))
        values = st.sampled_from([0.0, 1.0, 0.25]) if kind == "binary" else \
            st.floats(-5, 5, width=32)
        if bad_y and kind == "binary":
            values = st.sampled_from([0.0, 1.0, 0.25, -0.5, 1.5])
    size = int(np.prod(shape))
    base = np.array(draw(st.lists(values, min_size=size, max_size=size)),
                    np.float64).reshape(shape)
    if bad_y and size and ydtype.kind == "f" and draw(st.booleans()):
        base.reshape(-1)[draw(st.integers(0, size - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf, 1.5, -0.5, 1e39]))
    with np.errstate(over="ignore", invalid="ignore"):
        if ydtype.kind == "b":
            y = base != 0
        elif ydtype.kind in "iu":
            y = (np.abs(base) if ydtype.kind == "u" else base).astype(ydtype)
        else:
            y = base.astype(ydtype)
    layout = draw(st.sampled_from(["C", "read-only", "strided"]))
    if layout == "read-only":
        y = y.copy()
        y.flags.writeable = False
    elif layout == "strided" and y.ndim >= 1:
        wide = np.zeros((2 * y.shape[0],) + y.shape[1:], y.dtype)
        wide[::2] = y
        y = wide[::2]
    sw = None
    if corrupt == "sw" or draw(st.booleans()):
        good = [0.0, 0.5, 1.0, 2.0]
        weights = st.sampled_from(good + ([-1.0, np.nan, np.inf] if corrupt == "sw" else []))
        sw = np.array(draw(st.lists(weights, min_size=n, max_size=n)), np.float64)
        if corrupt == "sw":
            sw = draw(st.sampled_from([sw, sw[:-1], sw.reshape(-1, 1), sw.astype(complex)]))
    return loss, x, y, sw


def expected_fit_error(loss, x, y, sw, model_dtype):
    """(exception class or None, converted x, y, sw) following the documented rules."""
    units, _, kind = LOSSES[loss]
    err = expected_x_error(x, model_dtype)
    if err is not None:
        return err, None
    n = x.shape[0]
    if y.dtype.kind not in "biuf":
        return TypeError, None
    if kind == "sparse":
        yy = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
        if yy.ndim != 1 or yy.shape[0] != n:
            return ValueError, None
        if yy.dtype.kind == "f" and (not np.isfinite(yy).all() or (yy != np.round(yy)).any()):
            return ValueError, None
        if (yy.astype(np.float64) < 0).any() or (yy.astype(np.float64) >= units).any():
            return ValueError, None
        yc = yy.astype(np.int64)
    else:
        if y.ndim == 1 and units == 1:
            y = y.reshape(-1, 1)
        if y.ndim != 2 or y.shape != (n, units):
            return ValueError, None
        with np.errstate(over="ignore", invalid="ignore"):
            yc = np.ascontiguousarray(y, model_dtype)
        if not np.isfinite(yc).all():
            return ValueError, None
        if kind == "binary" and ((yc < 0).any() or (yc > 1).any()):
            return ValueError, None
    swc = None
    if sw is not None:
        if sw.dtype.kind not in "biuf":
            return TypeError, None
        if sw.shape != (n,) or not np.isfinite(sw).all() or (sw < 0).any():
            return ValueError, None
        swc = sw.astype(model_dtype)
    return None, (np.ascontiguousarray(x, model_dtype), yc, swc)


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=fit_cases(), dtype=st.sampled_from(["float32", "float64"]))
def test_property_fit_and_evaluate(case, dtype):
    loss, x, y, sw = case
    model = make_model(loss, dtype=dtype, seed=3)
    expected, converted = expected_fit_error(loss, x, y, sw, model.dtype)
    before = model.get_weights()
    if expected is not None:
        for method in ("fit", "evaluate"):
            with pytest.raises(expected, match=rf"{method}: (x|y|sample_weight): "):
                call(model, method, x, y, sample_weight=sw)
        assert_unchanged(model, before)
        return
    xc, yc, swc = converted
    history = model.fit(x, y, sample_weight=sw, epochs=2, batch_size=3, verbose=0)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    ref = make_model(loss, dtype=dtype, seed=3)
    ref_history = ref.fit(xc, yc, sample_weight=swc, epochs=2, batch_size=3, verbose=0)
    assert history.history["loss"] == ref_history.history["loss"]
    assert same_weights(model.get_weights(), ref.get_weights())
    assert model.evaluate(x, y, sample_weight=sw) == ref.evaluate(xc, yc, sample_weight=swc)


# ---------------------------------------------------------------- exposed bugs --
@pytest.mark.parametrize("args", [(), (None,)], ids=["y omitted", "y=None"])
def test_bug_evaluate_without_y(args):
    model = make_model()
    x, _ = make_data()
    with pytest.raises(ValueError, match=r"evaluate: .*y"):
        model.evaluate(x, *args)


_SEGFAULT_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, fastnn as fn
    fn.set_num_threads(1)
    model = fn.Sequential([fn.layers.Dense(1, input_dim=4)])
    model.compile(loss="mse", optimizer="sgd")
    try:
        getattr(model, sys.argv[1])(np.ones((3, 4)), None)
    except (ValueError, TypeError) as e:
        print("clear error:", type(e).__name__, e)
        sys.exit(0 if "y" in str(e) else 3)
    print("no error")
    sys.exit(4)
""")


@pytest.mark.parametrize("method", ["train_on_batch", "gradients"])
def test_bug_batch_methods_with_y_none_crash(method):
    # In a subprocess: the bug kills the interpreter.
    # The child must import the same fastnn as this process (the installed one under
    # CI), so its cwd is not the source tree, which has no compiled kernels when clean.
    installed = os.path.dirname(os.path.dirname(os.path.abspath(fn.__file__)))
    proc = subprocess.run([sys.executable, "-c", _SEGFAULT_SCRIPT, method],
                          cwd=tempfile.gettempdir(), capture_output=True, text=True,
                          timeout=120,
                          env={"PYTHONPATH": installed, "OMP_NUM_THREADS": "1",
                               "OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr[-2000:])


def test_bug_validation_data_without_y():
    model = make_model()
    x, y = make_data()
    before = model.get_weights()
    try:
        with pytest.raises(ValueError, match=r"fit: validation_data"):
            model.fit(x, y, validation_data=(x, None), verbose=0)
    finally:
        assert_unchanged(model, before)


def test_bug_failed_compile_leaves_half_compiled_model():
    model = fn.Sequential([L.Dense(1, input_dim=WIDTH)])
    with pytest.raises(ValueError, match=r"compile: sparse_categorical_accuracy"):
        model.compile(loss="mse", optimizer="sgd", metrics=["sparse_categorical_accuracy"])
    x, y = make_data()
    with pytest.raises(ValueError, match=r"evaluate: call model.compile"):
        model.evaluate(x, y)


def test_bug_incompatible_metric_on_unbuilt_model():
    model = fn.Sequential([L.Dense(3), L.Dense(1)])
    with pytest.raises(ValueError, match=r"compile: sparse_categorical_accuracy"):
        model.compile(loss="mse", optimizer="sgd", metrics=["sparse_categorical_accuracy"])


@pytest.mark.parametrize("callbacks", [5, fn.callbacks.History()],
                         ids=["int", "single Callback"])
def test_bug_callbacks_not_a_list(callbacks):
    model = make_model()
    x, y = make_data()
    try:
        model.fit(x, y, callbacks=callbacks, verbose=0)
    except TypeError as e:
        assert "callbacks" in str(e), str(e)
    else:
        assert isinstance(callbacks, fn.callbacks.Callback), "accepted a non-callback"


def test_bug_dtype_none():
    try:
        model = fn.Sequential([L.Dense(1, input_dim=WIDTH)], dtype=None)
    except (ValueError, TypeError) as e:
        assert "dtype" in str(e)
    else:
        assert model.dtype == np.float32


@pytest.mark.parametrize("make", [lambda: L.Dense(3, activation=["relu"]),
                                  lambda: L.Activation({"name": "relu"})],
                         ids=["Dense", "Activation"])
def test_bug_unhashable_activation(make):
    with pytest.raises((ValueError, TypeError), match=r"activation"):
        make()


@pytest.mark.parametrize("weights", [None, 5])
def test_bug_set_weights_not_a_list(weights):
    model = make_model()
    with pytest.raises(TypeError, match=r"set_weights"):
        model.set_weights(weights)


def test_bug_sequential_layers_not_iterable():
    with pytest.raises(TypeError, match=r"Sequential.*layer"):
        fn.Sequential(5)


def test_bug_regularizer_rejects_numpy_float32():
    reg = fn.regularizers.l2(np.float32(0.01))
    assert reg.l2 == pytest.approx(0.01)


def test_bug_regularizer_dict_bad_key():
    with pytest.raises((ValueError, TypeError), match=r"regularizer.*l3|l3.*regularizer"):
        L.Dense(3, kernel_regularizer={"l3": 0.1})


@pytest.mark.parametrize("what", ["y", "sample_weight"])
def test_bug_overflowing_targets_message(what):
    model = make_model()
    x, y = make_data()
    sw = np.ones(N)
    (y if what == "y" else sw)[0] = 1e39
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=rf"evaluate: {what}: .*overflow"):
            model.evaluate(x, y, sample_weight=sw)
