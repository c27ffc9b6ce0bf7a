"""Keras compatibility of names (issue 12, items 2 and 6): Keras 2's ``lr=``/``decay=`` on
every optimizer, ``schedules.InverseTimeDecay``, the regularizer classes ``L1``/``L2``/
``L1L2`` (and their aliases), and the activations as functions (``fn.activations.relu``).

Activation functions are checked against NumPy references in both dtypes on odd shapes;
tolerances as in tests/test_kernels.py (they run the same kernels).
"""
import math
import warnings

import numpy as np
import pytest
from scipy.special import expit, softmax as sp_softmax

import fastnn as fn
from fastnn import activations as A
from fastnn import optimizers as O
from fastnn import regularizers as R
from fastnn import schedules as S

DTYPES = [np.float32, np.float64]
# Relative tolerance on the activation values: float32 sigmoid/tanh/softmax use the
# vectorized Cephes exp (1-3 ulp, see vmath.h) plus a division, a few eps32 (6e-8) in all;
# float64 likewise a few eps64. 1e-6 / 1e-13 leave an order of magnitude of slack while a
# wrong formula (an error of order the value) fails.
ACT_RTOL = {np.float32: 1e-6, np.float64: 1e-13}


def _all_optimizer_classes():
    return sorted(O.CLASSES.values(), key=lambda c: c.__name__)


# -------------------------------------------------------------------- lr= (Keras 2) --
@pytest.mark.parametrize("cls", _all_optimizer_classes(), ids=lambda c: c.__name__)
def test_lr_is_learning_rate_with_a_deprecation_warning(cls):
    with pytest.warns(DeprecationWarning, match=r"lr is deprecated.*use learning_rate") as rec:
        opt = cls(lr=0.0625)
    assert opt.learning_rate == 0.0625
    assert opt.get_config() == cls(learning_rate=0.0625).get_config()
    # the warning points at the caller's line, not into fastnn
    assert rec[0].filename == __file__


@pytest.mark.parametrize("cls", _all_optimizer_classes(), ids=lambda c: c.__name__)
def test_lr_and_learning_rate_together_is_an_error(cls):
    with pytest.raises(ValueError, match="both lr and learning_rate"):
        cls(learning_rate=0.1, lr=0.2)
    with pytest.raises(ValueError, match="both lr and learning_rate"):
        cls(0.1, lr=0.2)


def test_lr_is_validated_like_learning_rate():
    with pytest.warns(DeprecationWarning):
        with pytest.raises(ValueError, match="learning_rate"):
            O.SGD(lr=-1.0)
    with pytest.warns(DeprecationWarning):
        with pytest.raises(TypeError, match="learning_rate"):
            O.Adam(lr="fast")


def test_no_warning_without_keras2_names():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for cls in _all_optimizer_classes():
            cls(learning_rate=0.01)
            cls()


def test_lr_accepted_by_a_user_subclass():
    class MySGD(O.SGD):
        def __init__(self, learning_rate=0.3, **kw):
            super().__init__(learning_rate, **kw)
    with pytest.warns(DeprecationWarning):
        assert MySGD(lr=0.5).learning_rate == 0.5


# ----------------------------------------------------------------- decay= (Keras 2) --
@pytest.mark.parametrize("cls", _all_optimizer_classes(), ids=lambda c: c.__name__)
def test_decay_becomes_inverse_time_decay(cls):
    with pytest.warns(DeprecationWarning, match=r"decay is deprecated.*InverseTimeDecay"):
        opt = cls(learning_rate=0.2, decay=0.01)
    sched = opt.learning_rate
    assert type(sched) is S.InverseTimeDecay
    assert (sched.initial_learning_rate, sched.decay_steps, sched.decay_rate,
            sched.staircase) == (0.2, 1, 0.01, False)


def test_decay_follows_keras2s_formula():
    # Keras 2: lr_t = lr / (1 + decay * iterations), iterations = updates done before this
    # one. Plain SGD in float64 makes the step size visible exactly: w_k+1 = w_k - lr_k g.
    lr, decay = 0.1, 0.05
    with pytest.warns(DeprecationWarning):
        opt = O.SGD(lr=lr, decay=decay)
    w = np.zeros(3)
    opt.build(w, np.array([0, 3], np.int64))
    g = np.array([1.0, -2.0, 0.5])
    want = w.copy()
    for k in range(50):
        assert opt.current_learning_rate() == lr / (1 + decay * k)
        opt.apply(w, g)
        want = want - (lr / (1 + decay * k)) * g
    # Same operations in the same order in float64 (-ffp-contract=off): exact.
    assert np.array_equal(w, want)


def test_decay_zero_keeps_a_constant_rate():
    with pytest.warns(DeprecationWarning):
        opt = O.Adam(learning_rate=0.01, decay=0.0)
    assert opt.learning_rate == 0.01


def test_decay_with_a_schedule_is_a_clear_error():
    with pytest.raises(ValueError, match=r"decay .*cannot be combined.*InverseTimeDecay"):
        O.SGD(S.ExponentialDecay(0.1, 10, 0.5), decay=0.01)


@pytest.mark.parametrize("decay, exc", [(-0.1, ValueError), (float("nan"), ValueError),
                                        ("0.1", TypeError), (True, TypeError)])
def test_decay_is_validated(decay, exc):
    with pytest.raises(exc, match="decay"):
        O.RMSprop(decay=decay)


def test_keras2_model_saves_and_resumes(tmp_path):
    # The course's Keras 2 idiom, saved mid-training, resumes exactly.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 4))
    y = x @ rng.standard_normal((4, 2))

    def model():
        fn.set_seed(11)
        m = fn.Sequential([fn.layers.Dense(5, activation="tanh", input_dim=4),
                           fn.layers.Dense(2)], dtype="float64")
        with pytest.warns(DeprecationWarning):
            m.compile(loss="mse", optimizer=O.SGD(lr=0.1, momentum=0.9, decay=0.02))
        return m

    one = model()
    one.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0)
    two = model()
    two.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    two.save(tmp_path / "m.fnn")
    three = fn.load_model(tmp_path / "m.fnn")
    assert type(three.optimizer.learning_rate) is S.InverseTimeDecay
    three.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(one.get_weights(), three.get_weights()):
        assert np.array_equal(a, b)


# ---------------------------------------------------------------- InverseTimeDecay --
@pytest.mark.parametrize("staircase", [False, True])
def test_inverse_time_decay_formula(staircase):
    sched = S.InverseTimeDecay(0.5, 7, 0.3, staircase=staircase)
    for step in [0, 1, 6, 7, 8, 13, 14, 100, 12345]:
        p = math.floor(step / 7) if staircase else step / 7
        assert sched(step) == pytest.approx(0.5 / (1 + 0.3 * p), rel=1e-15)


def test_inverse_time_decay_config_round_trip():
    opt = O.Adam(S.InverseTimeDecay(0.01, 5, 0.5, staircase=True))
    new = fn.optimizers.from_config(opt.get_config())
    assert type(new.learning_rate) is S.InverseTimeDecay
    assert new.get_config() == opt.get_config()
    assert fn.optimizers.schedules.InverseTimeDecay is S.InverseTimeDecay


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(initial_learning_rate=-1.0, decay_steps=1, decay_rate=0.1), ValueError,
     "initial_learning_rate"),
    (dict(initial_learning_rate=0.1, decay_steps=0, decay_rate=0.1), ValueError,
     "decay_steps"),
    (dict(initial_learning_rate=0.1, decay_steps=1.5, decay_rate=0.1), TypeError,
     "decay_steps"),
    (dict(initial_learning_rate=0.1, decay_steps=1, decay_rate=-0.1), ValueError,
     "decay_rate"),
    (dict(initial_learning_rate=0.1, decay_steps=1, decay_rate=0.1, staircase="no"),
     TypeError, "staircase"),
])
def test_inverse_time_decay_validation(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        S.InverseTimeDecay(**kwargs)


# -------------------------------------------------------------------- regularizers --
def test_regularizer_classes_have_keras3s_defaults_and_configs():
    assert R.L1().get_config() == {"l1": 0.01}
    assert R.L2().get_config() == {"l2": 0.01}
    assert R.L1L2().get_config() == {"l1": 0.0, "l2": 0.0}
    assert R.L1L2(l1=0.1, l2=0.2).get_config() == {"l1": 0.1, "l2": 0.2}
    assert R.L1(0.3).get_config() == {"l1": 0.3} and R.L2(0.4).get_config() == {"l2": 0.4}
    # both factors are always readable (the kernels take the pair)
    assert (R.L1(0.3).l1, R.L1(0.3).l2) == (0.3, 0.0)
    assert (R.L2(0.4).l1, R.L2(0.4).l2) == (0.0, 0.4)


def test_lowercase_names_are_the_classes():
    assert R.l1 is R.L1 and R.l2 is R.L2 and R.l1_l2 is R.L1L2
    assert fn.regularizers.L2 is R.L2


@pytest.mark.parametrize("name, cls, config", [
    ("l1", R.L1, {"l1": 0.01}), ("l2", R.L2, {"l2": 0.01}),
    ("l1_l2", R.L1L2, {"l1": 0.01, "l2": 0.01}),     # Keras: the string means 0.01 each
])
def test_regularizer_strings(name, cls, config):
    reg = R.get(name)
    assert type(reg) is cls and reg.get_config() == config


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (33, 5), (3, 4, 2)])
def test_regularizer_call_matches_numpy(shape, dtype):
    w = np.random.default_rng(sum(shape)).standard_normal(shape).astype(dtype)
    w64 = w.astype(np.float64)
    for reg, want in [(R.L1(0.3), 0.3 * np.abs(w64).sum()),
                      (R.L2(0.2), 0.2 * (w64 ** 2).sum()),
                      (R.L1L2(0.1, 0.05), 0.1 * np.abs(w64).sum() + 0.05 * (w64 ** 2).sum())]:
        # the kernel sums in double from the same dtype-rounded values: double accuracy
        assert reg(w) == pytest.approx(want, rel=1e-13)


@pytest.mark.parametrize("reg", [R.L1(0.02), R.L2(0.03), R.L1L2(0.01, 0.02)],
                         ids=["L1", "L2", "L1L2"])
def test_regularizer_objects_in_dense_save_and_load(reg, tmp_path):
    fn.set_seed(5)
    model = fn.Sequential([fn.layers.Dense(4, activation="relu", input_dim=3,
                                           kernel_regularizer=reg, bias_regularizer=reg),
                           fn.layers.Dense(1)], dtype="float64")
    model.compile(loss="mse", optimizer="adam")
    x = np.random.default_rng(0).standard_normal((16, 3))
    y = x.sum(axis=1, keepdims=True)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    layer = model.layers[0]
    want = reg(layer.weights[0]) + reg(layer.weights[1])
    assert layer.penalty() == pytest.approx(want, rel=1e-13)
    model.save(tmp_path / "r.fnn")
    loaded = fn.load_model(tmp_path / "r.fnn")
    for got in (loaded.layers[0].kernel_regularizer, loaded.layers[0].bias_regularizer):
        assert type(got) is type(reg) and got.get_config() == reg.get_config()
    assert loaded.layers[0].get_config() == layer.get_config()
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)


def test_regularizer_serialize_and_the_older_flat_form():
    assert R.serialize(R.L2(0.5)) == {"class_name": "L2", "config": {"l2": 0.5}}
    assert R.serialize(None) is None
    assert type(R.get(R.serialize(R.L1L2(0.1, 0.2)))) is R.L1L2
    old = R.get({"l1": 0.5, "l2": 0.25})       # files written before the classes existed
    assert type(old) is R.L1L2 and (old.l1, old.l2) == (0.5, 0.25)


@pytest.mark.parametrize("make, exc, match", [
    (lambda: R.L1(-0.1), ValueError, r"regularizer: l1 must be finite and >= 0"),
    (lambda: R.L2(float("inf")), ValueError, r"regularizer: l2 must be finite"),
    (lambda: R.L1L2(l1="a"), TypeError, r"regularizer: l1 must be a number"),
    (lambda: R.L1L2(l2=None), TypeError, r"regularizer: l2 must be a number"),
    (lambda: R.get({"class_name": "L3", "config": {}}), ValueError, r"cannot rebuild"),
    (lambda: R.get({"class_name": "L1", "config": {"l2": 0.1}}), ValueError,
     r"unknown keys \['l2'\]"),
    (lambda: R.get({"class_name": "L1", "config": "l1"}), ValueError, r"cannot rebuild"),
    (lambda: R.get(R.L2), ValueError, r"regularizer: expected None"),
    (lambda: fn.layers.Dense(3, bias_regularizer="L9"), ValueError,
     r"regularizer: expected None"),
])
def test_regularizer_bad_input(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


# --------------------------------------------------------------- activation functions --
def _ref(name, x, slope=0.2):
    x = x.astype(np.float64)
    return {"linear": lambda: x, "sigmoid": lambda: expit(x), "tanh": lambda: np.tanh(x),
            "relu": lambda: np.maximum(x, 0),
            "leaky_relu": lambda: np.where(x > 0, x, slope * x),
            "softmax": lambda: sp_softmax(x, axis=-1)}[name]()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (1,), (7,), (1, 33), (33, 7), (3, 4, 5), (1000, 1)])
@pytest.mark.parametrize("name", list(A.FUNCTIONS))
def test_activation_function_matches_numpy(name, shape, dtype):
    x = (np.random.default_rng(7).standard_normal(shape) * 4).astype(dtype)
    before = x.copy()
    got = getattr(fn.activations, name)(x)
    assert isinstance(got, np.ndarray) and got.dtype == dtype and got.shape == x.shape
    assert np.array_equal(x, before)               # the input is not modified
    want = _ref(name, x)
    np.testing.assert_allclose(got, want, rtol=ACT_RTOL[dtype],
                               atol=np.finfo(dtype).tiny)


@pytest.mark.parametrize("axis", [0, 1, -2, 2, -1])
def test_softmax_axis(axis):
    x = np.random.default_rng(1).standard_normal((3, 4, 5))
    np.testing.assert_allclose(A.softmax(x, axis=axis), sp_softmax(x, axis=axis),
                               rtol=1e-13)


def test_leaky_relu_slope_and_conversions():
    x = np.array([-2.0, -0.5, 0.0, 3.0])
    np.testing.assert_array_equal(A.leaky_relu(x, negative_slope=0.5), [-1.0, -0.25, 0, 3])
    np.testing.assert_array_equal(A.leaky_relu(x), [-0.4, -0.1, 0, 3])   # Keras's 0.2
    got = A.relu([[-1, 2], [3, -4]])                # lists of ints become float64
    assert got.dtype == np.float64 and got.tolist() == [[0, 2], [3, 0]]
    assert A.sigmoid(0.0) == 0.5


@pytest.mark.parametrize("make, exc, match", [
    (lambda: A.relu("abc"), TypeError, r"x: expected a numeric array"),
    (lambda: A.relu(np.array([1 + 2j])), TypeError, r"x: expected a numeric array"),
    (lambda: A.leaky_relu([1.0], negative_slope=-0.1), ValueError, r"negative_slope"),
    (lambda: A.leaky_relu([1.0], negative_slope="x"), TypeError, r"negative_slope"),
    (lambda: A.softmax(np.ones((2, 3)), axis=2), ValueError, r"softmax: axis"),
    (lambda: A.softmax(np.ones((2, 3)), axis=1.0), ValueError, r"softmax: axis"),
    (lambda: A.get(lambda x: x), ValueError, r"not one of fastnn's activations"),
    (lambda: A.get(np.tanh), ValueError, r"not one of fastnn's activations"),
    (lambda: A.get("swishy"), ValueError, r"unknown activation 'swishy'"),
    (lambda: A.get(3), TypeError, r"activation: expected a name such as 'relu'"),
    (lambda: A.deserialize(A.relu), TypeError, r"deserialize expects a name"),
    (lambda: fn.layers.Dense(3, activation=print), ValueError, r"not one of fastnn's"),
])
def test_activation_bad_input(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_get_serialize_deserialize_as_keras():
    assert A.get("relu") is A.relu and A.get(A.relu) is A.relu
    assert A.get(None) is A.linear and A.get("LeakyReLU".lower()) is A.leaky_relu
    for name, f in A.FUNCTIONS.items():
        assert A.serialize(f) == name and A.deserialize(name) is f
        assert f.__name__ == name


def _model(act, last):
    fn.set_seed(21)
    m = fn.Sequential([fn.layers.Dense(6, activation=act, input_dim=3),
                       fn.layers.Activation(act),
                       fn.layers.Dense(3, activation=last)], dtype="float64")
    m.compile(loss="categorical_crossentropy", optimizer="adam")
    return m


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "leaky_relu", "linear"])
def test_callable_activation_in_layers_is_the_fused_kernel(name, tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 3))
    y = np.eye(3)[rng.integers(0, 3, 30)]
    by_name = _model(name, "softmax")
    by_function = _model(getattr(fn.activations, name), fn.activations.softmax)
    # the layer stores the name (configs and files stay plain data) ...
    assert by_function.layers[0].activation == name
    for a, b in zip(by_function.layers, by_name.layers):
        assert {**a.get_config(), "name": None} == {**b.get_config(), "name": None}
    # ... and runs the same kernel: bit-identical training
    by_name.fit(x, y, batch_size=5, epochs=2, verbose=0)
    by_function.fit(x, y, batch_size=5, epochs=2, verbose=0)
    for a, b in zip(by_name.get_weights(), by_function.get_weights()):
        assert np.array_equal(a, b)
    by_function.save(tmp_path / "a.fnn")
    loaded = fn.load_model(tmp_path / "a.fnn")
    assert loaded.layers[0].activation == name
    assert np.array_equal(loaded.predict(x, verbose=0), by_function.predict(x, verbose=0))


def test_dense_with_the_leaky_relu_function_uses_the_layer_alpha():
    x = np.array([[-1.0, 2.0]])
    model = fn.Sequential([fn.layers.Dense(2, activation=fn.activations.leaky_relu,
                                           alpha=0.125, input_dim=2)], dtype="float64")
    model.set_weights([np.eye(2), np.zeros(2)])
    np.testing.assert_array_equal(model.predict(x, verbose=0), [[-0.125, 2.0]])
