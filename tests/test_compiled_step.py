"""Tests for the compiled training step (fastnn/_core/step.pyx, engine.compiled_step).

1. Same bits: fit through the CompiledStep and through the Python step (forced by
   monkeypatching engine._compiles) give bit-identical parameters, history and optimizer
   state, for every optimizer in both dtypes and for the layer / loss variants the
   compiled step accepts (dropout, regularizers, frozen layers, sample weights, label
   smoothing, from_logits, Flatten, Activation/Softmax last layers).
2. Routing: engine.compiled_step gives a CompiledStep for those models and None for the
   parts only the Python step runs; those still train.
3. Non-finite batches on the compiled path leave weights, slots and iterations untouched.
4. optim.Update (into=, run) and Optimizer.prepare / commit.
5. The nogil cores behind the def wrappers (dropout, softmax cross-entropies,
   all_finite) against NumPy references on odd shapes.
6. The compiled step is bit-identical under 1 and 2 threads when the update is split
   into several chunks.
"""
import re

import numpy as np
import pytest

import fastnn as fn
from fastnn import engine
from fastnn import layers as FL
from fastnn import losses as FLo
from fastnn import optimizers as O
from fastnn import regularizers as R
from fastnn import schedules as S
from fastnn._core import losses as LK
from fastnn._core import ops as OPS
from fastnn._core import optim as K
from fastnn._core import random as RND
from fastnn._core import step as STEP

DTYPES = [np.float32, np.float64]
N_SAMPLES = 150          # 150 = 4·32 + 22: the last, smaller batch is exercised
BATCH = 32
EPOCHS = 2
STEPS_PER_FIT = EPOCHS * -(-N_SAMPLES // BATCH)
IN, HID, OUT = 7, 9, 5

_rng = np.random.default_rng(20261201)
X = _rng.standard_normal((N_SAMPLES, IN))
LABELS = _rng.integers(0, OUT, N_SAMPLES)
ONEHOT = np.eye(OUT)[LABELS]
SW = _rng.uniform(0.1, 2.0, N_SAMPLES)
X2D = _rng.standard_normal((N_SAMPLES, 3, 4))        # 2-D samples for Flatten


# ------------------------------------------------------------------------ helpers --
class _Counter:
    """Wraps engine._compiled_train_step to count the compiled steps actually taken."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.inner(*args, **kwargs)


def _dense_softmax_model(dtype, hidden=None, last=None, first=None):
    layers = [first or FL.Dense(HID, activation="relu", input_dim=IN)]
    layers += hidden or []
    layers += last or [FL.Dense(OUT, activation="softmax")]
    return fn.Sequential(layers, dtype=dtype)


def _fit(build, dtype, compiled, monkeypatch, x=X, y="sparse", sw=None, epochs=EPOCHS,
         batch_size=BATCH, metrics=None, seed=7):
    """Build (from the same global seed), compile and fit; return (model, history,
    number of compiled steps taken)."""
    counter = _Counter(engine._compiled_train_step)
    with monkeypatch.context() as m:
        m.setattr(engine, "_compiled_train_step", counter)
        if not compiled:
            m.setattr(engine, "_compiles", lambda model: False)
        fn.set_seed(seed)
        model, loss, opt = build(dtype)
        model.compile(optimizer=opt, loss=loss, metrics=metrics)
        targets = {"sparse": LABELS, "onehot": ONEHOT}[y] if isinstance(y, str) else y
        hist = model.fit(x.astype(dtype), targets, batch_size=batch_size, epochs=epochs,
                         verbose=0, sample_weight=sw)
    return model, hist, counter.calls


def _state(model, hist):
    """Copies of everything the two paths must agree on."""
    variables = {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v)
                 for k, v in model.optimizer.variables().items()}
    return (model.parameter_store.params.copy(), {k: list(v) for k, v in hist.history.items()},
            variables, getattr(model.optimizer, "_u_product", None))


def _assert_same_bits(a, b):
    params_a, hist_a, vars_a, u_a = a
    params_b, hist_b, vars_b, u_b = b
    assert params_a.dtype == params_b.dtype
    assert np.array_equal(params_a, params_b), \
        f"params differ, max |diff| {np.max(np.abs(params_a - params_b))}"
    assert hist_a.keys() == hist_b.keys()
    for k in hist_a:
        assert np.array_equal(hist_a[k], hist_b[k]), (k, hist_a[k], hist_b[k])
    assert vars_a.keys() == vars_b.keys()
    for k in vars_a:
        assert np.array_equal(vars_a[k], vars_b[k]), k
    assert u_a == u_b


def _compare_paths(build, dtype, monkeypatch, **kw):
    """Fit through both paths and require the same bits; check which path ran."""
    mc, hc, calls_c = _fit(build, dtype, True, monkeypatch, **kw)
    mp, hp, calls_p = _fit(build, dtype, False, monkeypatch, **kw)
    assert calls_c == kw.get("epochs", EPOCHS) * -(-N_SAMPLES // kw.get("batch_size", BATCH))
    assert calls_p == 0
    assert mc.optimizer.iterations == calls_c
    state_c, state_p = _state(mc, hc), _state(mp, hp)
    _assert_same_bits(state_c, state_p)
    return mc, mp


# -------------------------------------------------- 1. compiled == Python, bit for bit --
OPTIMIZERS = {
    "sgd": lambda: O.SGD(0.05),
    "sgd_clipvalue_schedule": lambda: O.SGD(S.ExponentialDecay(0.1, 3, 0.5), clipvalue=0.05),
    "momentum": lambda: O.SGD(0.05, momentum=0.9),
    "nesterov": lambda: O.SGD(0.05, momentum=0.9, nesterov=True),
    "adam": lambda: O.Adam(0.01),
    "adamw": lambda: O.AdamW(0.01, weight_decay=0.05),
    "amsgrad": lambda: O.Adam(0.01, amsgrad=True),
    "rmsprop_centered_momentum": lambda: O.RMSprop(0.01, momentum=0.5, centered=True),
    "adagrad": lambda: O.Adagrad(0.05, initial_accumulator_value=0.1),
    "nadam": lambda: O.Nadam(0.01),
    "adamax": lambda: O.Adamax(0.01),
    "lion": lambda: O.Lion(0.003, weight_decay=0.1),
    "adadelta": lambda: O.Adadelta(1.0),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_same_bits(name, dtype, monkeypatch):
    """Each optimizer's compiled fit equals its Python fit exactly (params, history, slots)."""
    def build(dt):
        return (_dense_softmax_model(dt), FLo.SparseCategoricalCrossentropy(),
                OPTIMIZERS[name]())
    mc, _ = _compare_paths(build, dtype, monkeypatch, metrics=["accuracy"])
    fn.set_seed(7)
    fresh, _, _ = build(dtype)
    fresh.build()
    assert not np.array_equal(fresh.parameter_store.params, mc.parameter_store.params)


def _variant(name, dt):
    """(model, loss, target kind, sample weights, x) of each layer / loss variant."""
    d = lambda *a, **k: FL.Dense(*a, **k)     # noqa: E731
    cce, scce = FLo.CategoricalCrossentropy, FLo.SparseCategoricalCrossentropy
    if name == "onehot_fused":
        return _dense_softmax_model(dt), cce(), "onehot", None, X
    if name == "onehot_fused_smoothing":
        return _dense_softmax_model(dt), cce(label_smoothing=0.2), "onehot", None, X
    if name == "sparse_from_logits":
        return (_dense_softmax_model(dt, last=[d(OUT)]), scce(from_logits=True), "sparse",
                None, X)
    if name == "onehot_from_logits_smoothing":
        return (_dense_softmax_model(dt, last=[d(OUT)]),
                cce(from_logits=True, label_smoothing=0.1), "onehot", None, X)
    if name == "dropout":
        return (_dense_softmax_model(dt, hidden=[FL.Dropout(0.3), d(HID, activation="tanh"),
                                                 FL.Dropout(0.2, seed=5)]),
                scce(), "sparse", None, X)
    if name == "dropout_zero_rate":
        return _dense_softmax_model(dt, hidden=[FL.Dropout(0.0)]), scce(), "sparse", None, X
    if name == "l1l2":
        return (_dense_softmax_model(
            dt, first=d(HID, activation="relu", input_dim=IN,
                        kernel_regularizer=R.L1L2(l1=0.01, l2=0.02),
                        bias_regularizer=R.L1L2(l1=0.003, l2=0.001)),
            last=[d(OUT, activation="softmax", kernel_regularizer=R.L1L2(l2=0.01))]),
                scce(), "sparse", None, X)
    if name == "frozen_middle":
        return (_dense_softmax_model(dt, hidden=[d(HID, activation="relu", trainable=False)]),
                scce(), "sparse", None, X)
    if name == "frozen_first_l1l2":
        return (_dense_softmax_model(
            dt, first=d(HID, activation="relu", input_dim=IN, trainable=False,
                        kernel_regularizer=R.L1L2(l1=0.01, l2=0.01))),
                scce(), "sparse", None, X)
    if name == "sample_weights":
        return _dense_softmax_model(dt), cce(), "onehot", SW, X
    if name == "flatten_2d":
        return (fn.Sequential([FL.Flatten(input_shape=(3, 4)), d(HID, activation="relu"),
                               d(OUT, activation="softmax")], dtype=dt),
                scce(), "sparse", None, X2D)
    if name == "activation_softmax_last":
        return (_dense_softmax_model(dt, last=[d(OUT), FL.Activation("softmax")]), cce(),
                "onehot", SW, X)
    if name == "softmax_layer_last":
        return (_dense_softmax_model(dt, hidden=[FL.Dropout(0.25)],
                                     last=[d(OUT), FL.Softmax()]),
                scce(), "sparse", None, X)
    if name == "no_bias_leaky_relu":
        return (_dense_softmax_model(
            dt, first=d(HID, activation="leaky_relu", use_bias=False, input_dim=IN)),
                scce(), "sparse", None, X)
    if name == "nested_sequential":
        inner = fn.Sequential([d(HID, activation="relu", input_dim=IN), FL.Dropout(0.2)],
                              dtype=dt)
        model = fn.Sequential(dtype=dt)
        model.add(inner)
        model.add(d(OUT, activation="softmax"))
        return model, scce(), "sparse", None, X
    raise KeyError(name)


VARIANTS = ["onehot_fused", "onehot_fused_smoothing", "sparse_from_logits",
            "onehot_from_logits_smoothing", "dropout", "dropout_zero_rate", "l1l2",
            "frozen_middle", "frozen_first_l1l2", "sample_weights", "flatten_2d",
            "activation_softmax_last", "softmax_layer_last", "no_bias_leaky_relu",
            "nested_sequential"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_layer_and_loss_variants_same_bits(variant, dtype, monkeypatch):
    """Each layer / loss variant under Adam: the compiled fit equals the Python fit."""
    def build(dt):
        model, loss, _, _, _ = _variant(variant, dt)
        return model, loss, O.Adam(0.01)

    _, _, y, sw, x = _variant(variant, dtype)      # (the data of the variant)
    mc, mp = _compare_paths(build, dtype, monkeypatch, x=x, y=y, sw=sw, metrics=["accuracy"])
    if variant.startswith("frozen"):
        # the frozen layer did not move on either path, and its slots stayed at 0
        idx = 1 if variant == "frozen_middle" else 0
        fn.set_seed(7)
        fresh = _variant(variant, dtype)[0]
        fresh.build()
        for w_fresh, w in zip(fresh.layers[idx].weights, mc.layers[idx].weights):
            assert np.array_equal(w_fresh, w)
        ranges = mc.parameter_store.frozen_ranges
        assert ranges
        for key, slot in mc.optimizer.variables().items():
            if key != "iterations" and np.asarray(slot).shape[0]:
                for lo, hi in ranges:
                    assert not np.any(np.asarray(slot)[lo:hi]), key


@pytest.mark.parametrize("dtype", [np.float64])
def test_frozen_after_training_slots_same_bits(dtype, monkeypatch):
    """Freezing a trained layer and fitting on: both paths leave the same optimizer state
    (the frozen range's slots untouched, as Keras leaves a non-trainable variable's)."""
    def run(compiled):
        counter = _Counter(engine._compiled_train_step)
        with monkeypatch.context() as m:
            m.setattr(engine, "_compiled_train_step", counter)
            if not compiled:
                m.setattr(engine, "_compiles", lambda model: False)
            fn.set_seed(3)
            model = _dense_softmax_model(dtype)
            opt = O.Adam(0.01)
            model.compile(opt, FLo.SparseCategoricalCrossentropy())
            model.fit(X.astype(dtype), LABELS, batch_size=BATCH, epochs=1, verbose=0)
            model.layers[0].trainable = False
            model.compile(opt, FLo.SparseCategoricalCrossentropy())
            frozen = model.parameter_store.frozen_ranges[0]
            before = {k: np.array(v[frozen[0]:frozen[1]], copy=True)
                      for k, v in opt.variables().items()
                      if k != "iterations" and np.asarray(v).shape[0]}
            hist = model.fit(X.astype(dtype), LABELS, batch_size=BATCH, epochs=1, verbose=0)
            for k, v in before.items():     # untouched while frozen, and not all zero
                assert np.array_equal(opt.variables()[k][frozen[0]:frozen[1]], v), k
                assert np.any(v), k
        assert (counter.calls > 0) == compiled
        return _state(model, hist)

    state_c, state_p = run(True), run(False)
    # the weights agree (both paths hold the frozen layer fixed) ...
    assert np.array_equal(state_c[0], state_p[0])
    # ... and so must the slots
    _assert_same_bits(state_c, state_p)


# ------------------------------------------------------------------- 2. the routing --
def _python_only(name, dt):
    """(model, loss, optimizer, targets) of models the compiled step must refuse."""
    d = FL.Dense
    scce = FLo.SparseCategoricalCrossentropy
    if name == "maxout":
        return (fn.Sequential([FL.Maxout(HID, pieces=2, input_dim=IN),
                               d(OUT, activation="softmax")], dtype=dt), scce(), "adam", LABELS)
    if name == "batchnorm":
        return (_dense_softmax_model(dt, hidden=[FL.BatchNormalization()]), scce(), "adam",
                LABELS)
    if name == "layernorm":
        return (_dense_softmax_model(dt, hidden=[FL.LayerNormalization()]), scce(), "adam",
                LABELS)
    if name == "nested_with_batchnorm":
        inner = fn.Sequential([d(HID, activation="relu", input_dim=IN),
                               FL.BatchNormalization()], dtype=dt)
        model = fn.Sequential(dtype=dt)
        model.add(inner)
        model.add(d(OUT, activation="softmax"))
        return model, scce(), "adam", LABELS
    if name == "mse":
        return _dense_softmax_model(dt), FLo.MeanSquaredError(), "adam", ONEHOT
    if name == "binary_crossentropy":
        return (_dense_softmax_model(dt, last=[d(1, activation="sigmoid")]),
                FLo.BinaryCrossentropy(), "adam", (LABELS % 2).astype(float)[:, None])
    if name == "cce_after_sigmoid":
        return (_dense_softmax_model(dt, last=[d(OUT, activation="sigmoid")]),
                FLo.CategoricalCrossentropy(), "adam", ONEHOT)
    if name == "scce_after_relu_activation":
        return (_dense_softmax_model(dt, last=[d(OUT), FL.Activation("relu")]), scce(),
                "adam", LABELS)
    if name == "clipnorm":
        return _dense_softmax_model(dt), scce(), O.Adam(0.01, clipnorm=0.5), LABELS
    if name == "global_clipnorm":
        return (_dense_softmax_model(dt), scce(), O.SGD(0.05, momentum=0.9,
                                                        global_clipnorm=0.5), LABELS)
    raise KeyError(name)


PYTHON_ONLY = ["maxout", "batchnorm", "layernorm", "nested_with_batchnorm", "mse",
               "binary_crossentropy", "cce_after_sigmoid", "scce_after_relu_activation",
               "clipnorm", "global_clipnorm"]


@pytest.mark.parametrize("name", PYTHON_ONLY)
def test_python_only_models_route_to_python_and_train(name, monkeypatch):
    """compiled_step is None for parts only the Python step runs; one fit still trains."""
    counter = _Counter(engine._compiled_train_step)
    monkeypatch.setattr(engine, "_compiled_train_step", counter)
    fn.set_seed(11)
    model, loss, opt, y = _python_only(name, np.float32)
    model.compile(opt, loss)
    model.build()
    before = model.parameter_store.params.copy()
    hist = model.fit(X.astype(np.float32), y, batch_size=BATCH, epochs=1, verbose=0)
    assert engine.compiled_step(model, engine.train_workspace(model, BATCH)) is None
    assert counter.calls == 0
    assert np.isfinite(hist.history["loss"][0])
    assert model.optimizer.iterations == -(-N_SAMPLES // BATCH)
    assert not np.array_equal(before, model.parameter_store.params)


@pytest.mark.parametrize("variant", ["onehot_fused", "sparse_from_logits", "dropout",
                                     "frozen_middle", "flatten_2d",
                                     "activation_softmax_last", "softmax_layer_last",
                                     "nested_sequential"])
def test_compiled_models_get_a_compiled_step(variant):
    """compiled_step returns a CompiledStep (cached per workspace) for the accepted kinds.
    (A nested Sequential's layers join the outer model's list, so one made of Dense and
    Dropout layers compiles.)"""
    fn.set_seed(2)
    model, loss, y, sw, x = _variant(variant, np.float64)
    model.compile(O.Adam(), loss)
    model.build()
    ws = engine.train_workspace(model, BATCH)
    step = engine.compiled_step(model, ws)
    assert isinstance(step, STEP.CompiledStep)
    assert engine.compiled_step(model, ws) is step
    assert step.dtype == np.float64
    small = engine.train_workspace(model, N_SAMPLES % BATCH)
    assert isinstance(engine.compiled_step(model, small), STEP.CompiledStep)


# ---------------------------------------------------- 3. non-finite batches, compiled --
def _snapshot(model):
    opt = model.optimizer
    slots = {k: np.array(v, copy=True) for k, v in opt.variables().items()
             if isinstance(v, np.ndarray)}
    return (model.parameter_store.params.copy(), slots, opt.iterations,
            getattr(opt, "_u_product", None))


def _assert_snapshot_equal(model, snap):
    params, slots, iterations, u = snap
    now = _snapshot(model)
    assert np.array_equal(now[0], params)
    assert now[1].keys() == slots.keys()
    for k in slots:
        assert np.array_equal(now[1][k], slots[k]), k
    assert now[2] == iterations
    assert now[3] == u


class _BeforeBatch(fn.callbacks.Callback):
    """Snapshots the model's full training state before every batch."""

    def __init__(self):
        super().__init__()
        self.snaps = []

    def on_train_batch_begin(self, batch, logs=None):
        self.snaps.append(_snapshot(self.model))


def _overflowing_row(model, dtype):
    """A finite input row whose first-layer pre-activation overflows to +inf: x_i =
    max·sign(W_ij) for the unit j with the largest Σᵢ|W_ij| (> 1, so the sum exceeds the
    dtype's max), which relu passes on, so the logits and the loss are inf/NaN. (NaN
    itself cannot be fed: every entry point refuses non-finite x with ValueError.)"""
    w = model.layers[0].W
    j = int(np.argmax(np.abs(w).sum(axis=0)))
    assert np.abs(w[:, j]).sum() > 1.2
    return (np.finfo(dtype).max * np.sign(w[:, j])).astype(dtype)


@pytest.mark.parametrize("opt", ["adam", "nadam", "rmsprop"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_finite_batch_changes_nothing_on_compiled_path(opt, dtype, monkeypatch):
    """A batch whose forward pass overflows: non-finite is reported (train_on_batch and
    fit raise FloatingPointError) and weights, every slot, iterations (and Nadam's
    u-product) are exactly as before the batch, on the compiled path."""
    counter = _Counter(engine._compiled_train_step)
    monkeypatch.setattr(engine, "_compiled_train_step", counter)
    fn.set_seed(5)
    model = _dense_softmax_model(dtype, hidden=[FL.Dense(HID, activation="relu")])
    model.compile({"adam": O.Adam(0.01), "nadam": O.Nadam(0.01),
                   "rmsprop": O.RMSprop(0.01, momentum=0.5, centered=True)}[opt],
                  FLo.SparseCategoricalCrossentropy())
    x = X.astype(dtype)
    model.fit(x, LABELS, batch_size=BATCH, epochs=1, verbose=0)   # non-zero slots
    assert isinstance(engine.compiled_step(model, engine.train_workspace(model, BATCH)),
                      STEP.CompiledStep)
    calls = counter.calls
    assert calls == -(-N_SAMPLES // BATCH)

    # a NaN in x never reaches the step: refused up front, nothing changes
    snap = _snapshot(model)
    nan_x = x[:BATCH].copy()
    nan_x[17, 3] = np.nan
    with pytest.raises(ValueError):
        model.train_on_batch(nan_x, LABELS[:BATCH])
    _assert_snapshot_equal(model, snap)

    # train_on_batch with an overflowing (finite) row
    bad = x[:BATCH].copy()
    bad[17] = _overflowing_row(model, dtype)
    with pytest.raises(FloatingPointError):
        model.train_on_batch(bad, LABELS[:BATCH])
    assert counter.calls == calls + 1
    _assert_snapshot_equal(model, snap)
    # a finite batch afterwards trains normally (the compiled path is not stuck)
    model.train_on_batch(x[:BATCH], LABELS[:BATCH])
    assert counter.calls == calls + 2
    assert model.optimizer.iterations == snap[2] + 1
    assert not np.array_equal(model.parameter_store.params, snap[0])

    # fit: the bad row is in the third batch (no shuffle), so two batches train first
    xf = x.copy()
    xf[2 * BATCH + 5] = _overflowing_row(model, dtype)
    cb = _BeforeBatch()
    with pytest.raises(FloatingPointError):
        model.fit(xf, LABELS, batch_size=BATCH, epochs=1, verbose=0, shuffle=False,
                  on_nan="raise", callbacks=[cb])
    assert counter.calls == calls + 5
    assert len(cb.snaps) == 3
    assert cb.snaps[0][2] + 2 == cb.snaps[2][2]          # two good batches counted
    _assert_snapshot_equal(model, cb.snaps[2])
    assert not np.array_equal(cb.snaps[0][0], cb.snaps[2][0])


# ------------------------------------------------------- 4. optim.Update, prepare/commit --
SIZE = 1037                # odd, not a multiple of any SIMD width


def _rule_cases(dt):
    """(name, function, w, g, slots, positional scalars, keyword args) per rule."""
    rng = np.random.default_rng(99)

    def a(lo=-1.0, hi=1.0):
        return rng.uniform(lo, hi, SIZE).astype(dt)

    e = np.empty(0, dt)
    return [
        ("sgd", K.sgd, a(), a(), [], (0.1,), {}),
        ("sgd_clip_scale", K.sgd, a(), a(), [], (0.1,), dict(grad_scale=0.7, clipvalue=0.3)),
        ("momentum", K.sgd_momentum, a(), a(), [a()], (0.1, 0.9, False), {}),
        ("nesterov", K.sgd_momentum, a(), a(), [a()], (0.1, 0.9, True), {}),
        ("adagrad", K.adagrad, a(), a(), [a(0.1, 1)], (0.1, 1e-7), {}),
        ("rmsprop_centered_momentum", K.rmsprop, a(), a(),
         [a(1, 2), a(-0.5, 0.5), a()], (0.01, 0.9, 0.5, 1e-7, True), {}),
        ("rmsprop_plain", K.rmsprop, a(), a(), [a(0, 1), e, e], (0.01, 0.9, 0.0, 1e-7, False),
         dict(clipvalue=0.2)),
        ("adam", K.adam, a(), a(), [a(), a(0, 1), e],
         (0.01, 0.9, 0.999, 1e-7, 1 - 0.9 ** 3, 1 - 0.999 ** 3, False), {}),
        ("adamw_amsgrad", K.adam, a(), a(), [a(), a(0, 1), a(0, 1)],
         (0.01, 0.9, 0.999, 1e-7, 1 - 0.9 ** 5, 1 - 0.999 ** 5, True, 0.04), {}),
        ("nadam", K.nadam, a(), a(), [a(), a(0, 1)],
         (0.01, 0.9, 0.999, 1e-7, 0.45, 0.47, 0.2, 0.2 * 0.47, 1 - 0.999 ** 2), {}),
        ("adamax", K.adamax, a(), a(), [a(), a(0, 1)], (0.01, 0.9, 0.999, 1e-7, 1 - 0.9 ** 4),
         {}),
        ("lion", K.lion, a(), a(), [a()], (0.001, 0.9, 0.99, 0.1), dict(grad_scale=2.0)),
        ("adadelta", K.adadelta, a(), a(), [a(0, 1), a(0, 1)], (1.0, 0.95, 1e-7), {}),
    ]


_RULE_NAMES = [c[0] for c in _rule_cases(np.float64)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rule", _RULE_NAMES)
def test_update_into_then_run_equals_direct_call(rule, dtype):
    """into=Update() fills it without touching any array; run() then equals the direct call."""
    case = {c[0]: c for c in _rule_cases(dtype)}[rule]
    _, func, w, g, slots, scalars, kw = case
    w_d, g_d, slots_d = w.copy(), g.copy(), [s.copy() for s in slots]
    w0, g0, slots0 = w.copy(), g.copy(), [s.copy() for s in slots]

    u = K.Update()
    assert not u.ready
    assert func(w, g, *slots, *scalars, **kw, into=u) == 0
    assert u.ready
    assert np.array_equal(w, w0) and np.array_equal(g, g0)
    for s, s0 in zip(slots, slots0):
        assert np.array_equal(s, s0)

    bad_direct = func(w_d, g_d, *slots_d, *scalars, **kw)
    bad_run = u.run()
    assert bad_run == bad_direct == 0
    assert not np.array_equal(w, w0)                  # the run did update
    assert np.array_equal(w, w_d)
    assert np.array_equal(g, g0) and np.array_equal(g_d, g0)
    for s, s_d in zip(slots, slots_d):
        assert np.array_equal(s, s_d)


def test_update_empty_arrays_and_unprepared():
    """An unprepared Update.run() raises ValueError; an empty prepared one runs as a no-op."""
    with pytest.raises(ValueError):
        K.Update().run()
    for dt in DTYPES:
        u = K.Update()
        e = np.empty(0, dt)
        K.adam(e, e, e, e, e, 0.1, 0.9, 0.999, 1e-7, 0.1, 0.001, False, into=u)
        assert u.ready
        assert u.run() == 0


def test_update_run_counts_non_finite_weights():
    """Update.run returns the kernel's count of non-finite new weights, as the direct call."""
    for dt in DTYPES:
        w = np.ones(33, dt)
        g = np.zeros(33, dt)
        g[[0, 16, 32]] = -np.finfo(dt).max
        w_d = w.copy()
        u = K.Update()
        K.sgd(w, g, 10.0, into=u)
        assert u.run() == K.sgd(w_d, g.copy(), 10.0) == 3
        assert np.array_equal(w, w_d)


def _built(opt, dt):
    rng = np.random.default_rng(4)
    params = rng.uniform(-1, 1, SIZE).astype(dt)
    opt.build(params, np.array([0, 400, SIZE], np.int64))
    return params


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_prepare_commit_equals_apply(name, dtype):
    """prepare changes nothing (iterations, Nadam's _u_product, arrays); run + commit
    then equals apply exactly, over several steps (schedules and bias corrections)."""
    opt_a, opt_b = OPTIMIZERS[name](), OPTIMIZERS[name]()
    w_a, w_b = _built(opt_a, dtype), _built(opt_b, dtype)
    rng = np.random.default_rng(8)
    for step in range(4):
        g = rng.standard_normal(SIZE).astype(dtype)
        opt_a.apply(w_a, g.copy())
        u = K.Update()
        before = _snapshot_opt(opt_b, w_b)
        opt_b.prepare(u, w_b, g)
        _assert_opt_unchanged(opt_b, w_b, before)
        u.run()
        opt_b.commit()
        assert opt_b.iterations == opt_a.iterations == step + 1
        assert getattr(opt_b, "_u_product", None) == getattr(opt_a, "_u_product", None)
        assert np.array_equal(w_a, w_b)
        for k, v in opt_a.variables().items():
            assert np.array_equal(v, opt_b.variables()[k]), k


def _snapshot_opt(opt, w):
    return (opt.iterations, getattr(opt, "_u_product", None), w.copy(),
            {k: np.array(v, copy=True) for k, v in opt.variables().items()})


def _assert_opt_unchanged(opt, w, before):
    it, u, w0, variables = before
    assert opt.iterations == it
    assert getattr(opt, "_u_product", None) == u
    assert np.array_equal(w, w0)
    for k, v in opt.variables().items():
        assert np.array_equal(v, variables[k]), k


def test_nadam_prepare_leaves_u_product():
    """Nadam: prepare leaves _u_product (a non-trivial value after steps); commit advances it."""
    opt = O.Nadam()
    w = _built(opt, np.float64)
    g = np.full(SIZE, 0.1)
    for _ in range(3):
        opt.apply(w, g.copy())
    u_before, it = opt._u_product, opt.iterations
    assert u_before != 1.0
    opt.prepare(K.Update(), w, g)
    assert opt._u_product == u_before and opt.iterations == it
    opt.commit()
    assert opt.iterations == it + 1
    assert opt._u_product == u_before * opt._u(it + 1)


@pytest.mark.parametrize("clip", [dict(clipnorm=1.0), dict(global_clipnorm=1.0)])
def test_prepare_refuses_norm_clipping(clip):
    """prepare raises ValueError under clipnorm / global_clipnorm and changes nothing."""
    opt = O.Adam(**clip)
    w = _built(opt, np.float32)
    with pytest.raises(ValueError):
        opt.prepare(K.Update(), w, np.ones(SIZE, np.float32))
    assert opt.iterations == 0


def test_prepare_unbuilt_raises():
    """prepare on an optimizer that was never built raises ValueError."""
    with pytest.raises(ValueError):
        O.SGD().prepare(K.Update(), np.zeros(3), np.zeros(3))


# ------------------------------------------------ 5. the new cores vs NumPy references --
SHAPES = [(0, 5), (4, 0), (1, 1), (7, 13), (33, 65)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_dropout_forward_and_multiply(shape, dtype):
    """dropout_forward: mask ∈ {0, 1/(1-rate)}, out = x·mask, same key → same mask;
    multiply_inplace: x *= factor exactly."""
    rate = 0.3
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    mask, out = np.full(shape, 7, dtype), np.full(shape, 7, dtype)
    RND.dropout_forward(x, mask, out, rate, 12345)
    keep = dtype(1.0 / (1.0 - rate))
    assert np.all((mask == 0) | (mask == keep))
    assert np.array_equal(out, x * mask)
    mask2, out2 = np.empty(shape, dtype), np.empty(shape, dtype)
    RND.dropout_forward(x, mask2, out2, rate, 12345)
    assert np.array_equal(mask, mask2) and np.array_equal(out, out2)
    if x.size > 1000:
        # 2145 entries: the dropped fraction's std is sqrt(0.21/2145) ≈ 0.01; 0.06 is 6σ
        assert abs(np.mean(mask == 0) - rate) < 0.06
        mask3 = np.empty(shape, dtype)
        RND.dropout_forward(x, mask3, np.empty(shape, dtype), rate, 12346)
        assert not np.array_equal(mask, mask3)
    factor = rng.standard_normal(shape).astype(dtype)
    y = x.copy()
    RND.multiply_inplace(y, factor)
    assert np.array_equal(y, x * factor)


def _lse_reference(z, t, sw, scale):
    """Σ wᵢ Σⱼ tᵢⱼ (lse(zᵢ) − zᵢⱼ) and scale·wᵢ·((Σⱼ tᵢⱼ) softmaxᵢⱼ − tᵢⱼ), in float64;
    also the per-row loss."""
    z = z.astype(np.float64)
    mx = z.max(axis=1, keepdims=True)
    lse = mx + np.log(np.exp(z - mx).sum(axis=1, keepdims=True))
    p = np.exp(z - lse)
    per = (t * (lse - z)).sum(axis=1)
    w = np.ones(z.shape[0]) if sw.size == 0 else sw.astype(np.float64)
    grad = scale * w[:, None] * (t.sum(axis=1, keepdims=True) * p - t)
    return float((w * per).sum()), grad, per, p


# Tolerances: the kernels compute in double whatever the dtype and differ from the
# reference only in the order of the sums and libm's last bit, so the float64 loss sum and
# gradient agree to ~1e-15 relative (1e-12 leaves room). For float32 the gradient is
# rounded to float32 at the end (and a fused kernel reads p in float32): a few float32
# ulps, 2e-6 relative (~16 ulps) plus 1e-8 absolute for entries near 0.
GTOL = {np.float64: dict(rtol=1e-12, atol=1e-15), np.float32: dict(rtol=2e-6, atol=1e-8)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,m", [(1, 1), (3, 2), (17, 11), (40, 3)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
def test_softmax_cross_entropy_kernels(n, m, dtype, weighted, smoothing):
    """The four softmax cross-entropy wrappers match a NumPy log-sum-exp reference (loss
    sum, gradient, per_sample)."""
    rng = np.random.default_rng(n * 100 + m)
    z = (3 * rng.standard_normal((n, m))).astype(dtype)
    labels = rng.integers(0, m, n).astype(np.int64)
    onehot = np.eye(m)[labels]
    soft = rng.dirichlet(np.ones(m), n)            # soft targets for the dense forms
    sw = rng.uniform(0.1, 2, n).astype(dtype) if weighted else np.empty(0, dtype)
    scale = 1.0 / n
    _, _, _, p64 = _lse_reference(z, onehot, sw, scale)
    p = p64.astype(dtype)

    def check(total, grad, per, t, use_p):
        ref_total, ref_grad, ref_per, _ = _lse_reference(z, t, sw, scale)
        if use_p:       # a fused kernel takes the softmax it is given (float32: rounded)
            w = np.ones(n) if sw.size == 0 else sw.astype(np.float64)
            q = p.astype(np.float64)
            ref_grad = scale * w[:, None] * (t.sum(axis=1, keepdims=True) * q - t)
        assert total == pytest.approx(ref_total, rel=1e-12, abs=1e-300)
        np.testing.assert_allclose(grad, ref_grad, **GTOL[dtype])
        np.testing.assert_allclose(per, ref_per, rtol=1e-12, atol=1e-300)

    ysoft = soft.astype(dtype)
    t_soft = ysoft.astype(np.float64) * (1 - smoothing) + smoothing / m
    for kernel, args, use_p in [(LK.softmax_cross_entropy, (z, p, ysoft), True),
                                (LK.cross_entropy_from_logits, (z, ysoft), False)]:
        grad = np.full((n, m), np.nan, dtype)
        per = np.full(n, np.nan)
        total = kernel(*args, sw, grad, scale, smoothing, per_sample=per)
        check(total, grad, per, t_soft, use_p)
    if smoothing == 0.0:           # the sparse forms have no label smoothing
        for kernel, args, use_p in [(LK.sparse_softmax_cross_entropy, (z, p, labels), True),
                                    (LK.sparse_cross_entropy_from_logits, (z, labels), False)]:
            grad = np.full((n, m), np.nan, dtype)
            per = np.full(n, np.nan)
            total = kernel(*args, sw, grad, scale, per_sample=per)
            check(total, grad, per, onehot, use_p)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_kernels_empty_batch(dtype):
    """n == 0 returns 0.0 from every softmax cross-entropy wrapper."""
    z = np.empty((0, 4), dtype)
    e = np.empty(0, dtype)
    labels = np.empty(0, np.int64)
    grad = np.empty((0, 4), dtype)
    per = np.empty(0)
    assert LK.softmax_cross_entropy(z, z, z, e, grad, 1.0, 0.1, per_sample=per) == 0.0
    assert LK.sparse_softmax_cross_entropy(z, z, labels, e, grad, 1.0, per_sample=per) == 0.0
    assert LK.cross_entropy_from_logits(z, z, e, grad, 1.0, 0.1) == 0.0
    assert LK.sparse_cross_entropy_from_logits(z, labels, e, grad, 1.0) == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, 2, 17, 1000, 4099])
def test_all_finite_positions(size, dtype):
    """all_finite is False for a NaN / ±inf at the first, middle or last entry, else True."""
    x = np.random.default_rng(size).standard_normal(size).astype(dtype)
    assert OPS.all_finite(x)
    assert OPS.all_finite(np.empty(0, dtype))
    for pos in sorted({0, size // 2, size - 1}):
        for bad in (np.nan, np.inf, -np.inf):
            y = x.copy()
            y[pos] = bad
            assert not OPS.all_finite(y), (pos, bad)
    big = np.full(size, np.finfo(dtype).max, dtype)   # finite extremes are finite
    big[0] = np.finfo(dtype).tiny / 2                  # (a subnormal too)
    assert OPS.all_finite(big)


# ------------------------------------------------------------------- 6. thread counts --
@pytest.fixture
def restore_threads():
    saved = fn.get_num_threads()
    yield
    fn.set_num_threads(saved)


_BIG_X = np.random.default_rng(6).standard_normal((100, 784)).astype(np.float32)
_BIG_Y = np.random.default_rng(7).integers(0, 10, 100)
_BIG_SIZE = 784 * 300 + 300 + 3010


def _big_build(dt):
    model = fn.Sequential([FL.Dense(300, activation="relu", input_dim=784),
                           FL.Dropout(0.2), FL.Dense(10, activation="softmax")], dtype=dt)
    return model, FLo.SparseCategoricalCrossentropy(), O.Adam(0.001)


def _big_runs(monkeypatch, runs, batch_size):
    states = []
    for threads, compiled in runs:
        fn.set_num_threads(threads)
        assert fn.get_num_threads() == threads
        model, hist, calls = _fit(_big_build, np.float32, compiled, monkeypatch, x=_BIG_X,
                                  y=_BIG_Y, epochs=1, batch_size=batch_size)
        assert calls == (-(-100 // batch_size) if compiled else 0)
        assert model.parameter_store.size == _BIG_SIZE
        states.append(_state(model, hist))
    return states


def test_thread_counts_1_vs_2_chunked_update(restore_threads, monkeypatch):
    """784-300-10 (238,510 parameters: the compiled step cuts its update and finiteness
    check into 7 chunks of >= 32768 elements): 1 and 2 threads give the same bits, and the
    Python path agrees. Batches of 4 keep every matrix product (4·784·300 = 0.94M
    multiply-adds) under blas.pyx's split threshold (2^20), so the compiled step's
    chunking is the only part that runs differently with 2 threads. The Python path
    agrees to rounding: at this batch the compiled step makes dW in blocks of rows fused
    into the update (_assert_fused_matches)."""
    states = _big_runs(monkeypatch, [(1, True), (2, True), (2, False)], batch_size=4)
    _assert_same_bits(states[0], states[1])
    _assert_fused_matches(states[1], states[2])


def test_thread_counts_2_vs_3_split_products(restore_threads, monkeypatch):
    """Batches of 48 (products split into blocks): 2 and 3 threads give the same bits on
    the compiled path (blas.pyx: the block layout depends on the shape alone for every
    count >= 2), and the Python path agrees to rounding (_assert_fused_matches)."""
    states = _big_runs(monkeypatch, [(2, True), (3, True), (3, False)], batch_size=48)
    _assert_same_bits(states[0], states[1])
    _assert_fused_matches(states[1], states[2])


def _assert_fused_matches(fused, python):
    """A step that fuses dW into the update makes dW in blocks of rows, whose products
    BLAS may round differently in the last bit from the whole product's: one epoch of
    Adam carries that along no further than rounding (measured: at most about 1e-6 on
    weights of scale 0.05-0.1); 1e-4 is far below a real difference (a lost or doubled
    update moves a weight by about lr = 1e-3). The losses agree to 1e-5 relative, the
    slots to 1e-4 of their largest magnitude (a slot entry near zero is a cancellation,
    so its relative difference means nothing; measured: 1e-6 of the largest)."""
    np.testing.assert_allclose(fused[0], python[0], rtol=0, atol=1e-4)
    for key in fused[1]:
        np.testing.assert_allclose(fused[1][key], python[1][key], rtol=1e-5)
    for key in fused[2]:
        if key != "iterations":
            a, b = np.asarray(fused[2][key]), np.asarray(python[2][key])
            np.testing.assert_allclose(a, b, rtol=0,
                                       atol=1e-4 * (np.abs(b).max() if b.size else 0))
    assert fused[2]["iterations"] == python[2]["iterations"]


def test_thread_counts_1_vs_2_split_products_agree_to_rounding(restore_threads,
                                                               monkeypatch):
    """Batches of 48 (split products): one thread runs each product whole, two run it
    in blocks (blas.split_gemm), which BLAS rounds differently in the last bits; an
    epoch of Adam steps carries that along but no further than rounding: measured 4e-6
    at most on weights of scale 0.05-0.1, so 1e-4 is 25x the measured and far below a
    real difference (one lost update moves weights by about lr = 1e-3)."""
    states = _big_runs(monkeypatch, [(1, True), (2, True)], batch_size=48)
    np.testing.assert_allclose(states[0][0], states[1][0], rtol=0, atol=1e-4)


# --------------------------------------------- the finiteness bound of small batches --
def _wide_model(dtype):
    """784-300-10 at batch 2: the layers' inputs and deltas (2 x (784+300+300+10)
    numbers) are far fewer than the 238k gradients, so the compiled step proves the
    gradients finite from them instead of a pass over the gradients."""
    m = fn.Sequential([fn.layers.Dense(300, activation="relu", input_dim=784),
                       fn.layers.Dense(10, activation="softmax")], dtype=dtype)
    m.seed = 5
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return m


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_small_batches_prove_the_gradients_finite_and_match_the_python_step(
        dtype, monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 784)).astype(dtype)
    y = rng.integers(0, 10, 40)
    a = _wide_model(dtype)
    a.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False)
    step = engine.compiled_step(a, a._train_cache[2])
    assert step is not None and step.proves_finite
    assert step.fuses_update
    monkeypatch.setattr(engine, "_compiles", lambda model: False)
    b = _wide_model(dtype)
    b.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False)
    # the fused update's dW blocks may round differently from the whole product
    # (_assert_fused_matches); 20 Adam steps keep that at rounding level
    np.testing.assert_allclose(a.parameter_store.params, b.parameter_store.params,
                               rtol=0, atol=1e-4 if dtype == "float32" else 1e-12)


def test_a_diverging_run_stops_where_the_python_step_stops_with_the_same_weights(
        monkeypatch):
    """SGD with a huge learning rate blows the weights up within a few steps; the
    bound then fails (huge or non-finite inputs and deltas) and the full check decides,
    so the compiled step stops at the same batch as the Python step, with the same
    last finite weights, optimizer slots and step count."""
    def run():
        rng = np.random.default_rng(3)
        x = rng.standard_normal((40, 784)).astype(np.float32)
        y = rng.integers(0, 10, 40)
        m = fn.Sequential([fn.layers.Dense(300, activation="relu", input_dim=784),
                           fn.layers.Dense(10, activation="softmax")])
        m.seed = 5
        m.compile(optimizer=fn.optimizers.SGD(1e18, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
        with pytest.raises(FloatingPointError) as err:
            m.fit(x, y, batch_size=2, epochs=3, verbose=0, shuffle=False)
        assert np.all(np.isfinite(m.parameter_store.params))
        # the message names the epoch and batch (layer names differ: automatic)
        message = re.sub(r"dense_\d+", "dense", str(err.value))
        return (message, m.parameter_store.params.copy(), m.optimizer.iterations,
                np.copy(m.optimizer.variables()["velocity"]))
    compiled = run()
    monkeypatch.setattr(engine, "_compiles", lambda model: False)
    python = run()
    assert compiled[0] == python[0] and compiled[2] == python[2]
    assert np.array_equal(compiled[1], python[1])
    assert np.array_equal(compiled[3], python[3])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch", [1, 4])
def test_the_fused_update_leaves_the_whole_gradient_and_matches_the_python_step(
        batch, dtype, monkeypatch):
    """Small batches make dW tile by tile into the update; every tile is still written
    to the flat gradient, so layer.gradients after the step is the batch's gradient
    (to rounding: blocks of rows vs the whole product, a few eps relative to the
    largest: 1e-5 in float32, 1e-13 in float64)."""
    def one_step():
        rng = np.random.default_rng(4)
        x = rng.standard_normal((batch, 784)).astype(dtype)
        y = rng.integers(0, 10, batch)
        m = _wide_model(dtype)
        m.train_on_batch(x, y)
        m.train_on_batch(x[::-1].copy(), y[::-1].copy())
        step = engine.compiled_step(m, m._train_cache[batch])
        return (m.parameter_store.grads.copy(), m.parameter_store.params.copy(),
                step is not None and step.fuses_update)
    fused = one_step()
    monkeypatch.setattr(engine, "_compiles", lambda model: False)
    python = one_step()
    assert fused[2] and not python[2]
    scale = np.abs(python[0]).max()
    tight = dtype == "float64"
    np.testing.assert_allclose(fused[0], python[0], rtol=0,
                               atol=(1e-13 if tight else 1e-5) * scale)
    np.testing.assert_allclose(fused[1], python[1], rtol=0, atol=1e-14 if tight else 1e-6)


# --------------------------------------------------------------- predict in one call --
def _predict_model(dtype):
    m = fn.Sequential([fn.layers.Dense(20, activation="relu", input_dim=13),
                       fn.layers.Dropout(0.4), fn.layers.Dense(9, activation="tanh"),
                       fn.layers.Dense(4, activation="softmax")], dtype=dtype)
    m.seed = 2
    m.build()
    return m


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [1, 7, 32])
def test_predict_in_one_call_gives_the_layer_by_layer_outputs(dtype, n, monkeypatch):
    """predict's one-call pass (CompiledForward, dropout the identity) and its fast path
    for one batch give exactly the outputs of the layer-by-layer loop."""
    m = _predict_model(dtype)
    x = np.random.default_rng(n).standard_normal((n, 13)).astype(dtype)
    fast = m.predict(x)
    on_batch = m.predict_on_batch(x)
    ws = m._inference_workspace(n, with_loss=False)
    assert ws.compiled_forward is not None and ws.compiled_forward is not False
    monkeypatch.setattr(engine, "_layers_compile", lambda model: False)
    slow = _predict_model(dtype)
    slow.set_weights(m.get_weights())
    reference = slow.predict(x.copy(order="F") if n > 1 else x.astype(np.float64))
    assert slow._inference_workspace(n, with_loss=False).compiled_forward is None
    assert np.array_equal(fast, reference) and np.array_equal(on_batch, reference)
    assert fast.dtype == np.dtype(dtype) and fast.shape == (n, 4)


def test_predict_fast_path_leaves_bad_input_to_the_loop_and_its_messages():
    m = _predict_model("float32")
    x = np.ones((2, 13), np.float32)
    x[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"predict: x: contains NaN or infinity"):
        m.predict(x)
    with pytest.raises(ValueError, match="13 features"):
        m.predict(np.ones((2, 12), np.float32))
    # more rows than one batch, a Fortran-ordered copy, another dtype: the loop, with
    # the same batches, so the same bits; other batch sizes change BLAS's blocking, so
    # the last bits (float32 outputs of a softmax: 1e-6 relative)
    big = np.random.default_rng(0).standard_normal((70, 13)).astype(np.float32)
    whole = m.predict(big)
    assert np.array_equal(m.predict(np.asfortranarray(big)), whole)
    assert np.array_equal(m.predict(big.astype(np.float64)), whole)
    np.testing.assert_allclose(m.predict(big, batch_size=16), whole, rtol=1e-6)
    np.testing.assert_allclose(m.predict(big[:5]), whole[:5], rtol=1e-6)


def test_predict_from_two_threads_at_once_each_gets_its_own_outputs():
    """The one-call pass writes the calling thread's workspace; the result is a copy."""
    import threading
    m = _predict_model("float32")
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((1, 13)).astype(np.float32) for _ in range(2)]
    expected = [m.predict(x) for x in xs]
    errors = []

    def work(i):
        for _ in range(300):
            if not np.array_equal(m.predict(xs[i]), expected[i]):
                errors.append(i)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_1_predict_splits_wide_products_in_halves_of_rows(restore_threads,
                                                                monkeypatch, dtype):
    """With 2+ threads a batch-1 predict computes each product of at least 256K
    multiply-adds as the sum of two halves of the weight rows (blas.matvec_in_halves):
    right to rounding against float64 NumPy (sums of 784 products of standard normals:
    1e-5 in float32, 1e-12 in float64, on outputs of at most 1), the same bits for 2
    and 3 threads (the halves are fixed by the shape), and with 1 thread the whole
    product as before."""
    rng = np.random.default_rng(8)
    m = fn.Sequential([fn.layers.Dense(512, activation="relu", input_dim=784),
                       fn.layers.Dense(512, activation="relu"),
                       fn.layers.Dense(10, activation="softmax")], dtype=dtype)
    m.seed = 4
    m.build()
    x = rng.standard_normal((1, 784)).astype(dtype)
    h = x.astype(np.float64)
    for layer in m.layers[:2]:
        h = np.maximum(h @ layer.W.astype(np.float64) + layer.b, 0)
    z = h @ m.layers[2].W.astype(np.float64) + m.layers[2].b
    reference = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    outputs = {}
    for threads in (2, 3, 1):
        fn.set_num_threads(threads)
        outputs[threads] = m.predict(x)
    np.testing.assert_allclose(outputs[2], reference, rtol=0,
                               atol=1e-12 if dtype == "float64" else 1e-5)
    assert np.array_equal(outputs[2], outputs[3])
    # one thread: the whole products, exactly the layer-by-layer forward's
    fn.set_num_threads(1)
    monkeypatch.setattr(engine, "_layers_compile", lambda model: False)
    m._local.cache = None       # this thread's inference workspaces, built anew
    assert np.array_equal(outputs[1], m.predict(x))
    assert m._inference_workspace(1, with_loss=False).compiled_forward is None


# ------------------------------------------------- what may change after the build --
def _twin_models(build, dtype="float32"):
    """Two models with the same weights and seed: the first trains on the compiled path,
    the second (trained inside _python_step) on the Python step."""
    a = build()
    b = build()
    b.set_weights(a.get_weights())
    a.seed = b.seed = 11
    return a, b


class _python_step:
    """Within this block engine.train_step takes the Python step (and predict the
    layer-by-layer forward)."""

    def __enter__(self):
        self.saved = engine._compiles, engine._layers_compile
        engine._compiles = engine._layers_compile = lambda model: False

    def __exit__(self, *exc):
        engine._compiles, engine._layers_compile = self.saved


def _softmax_net(last_activation_layer=False, dropout=0.0, dtype="float32"):
    layers = [fn.layers.Dense(24, activation="leaky_relu", input_dim=17)]
    layers.append(fn.layers.Dropout(dropout))
    if last_activation_layer:
        layers += [fn.layers.Dense(5), fn.layers.Activation("softmax")]
    else:
        layers.append(fn.layers.Dense(5, activation="softmax"))
    m = fn.Sequential(layers, dtype=dtype)
    m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return m


def _xy(n=40, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    x = (scale * rng.standard_normal((n, 17))).astype(np.float32)
    return x, np.eye(5, dtype=np.float32)[rng.integers(0, 5, n)]


@pytest.mark.parametrize("last_activation_layer", [False, True])
def test_evaluate_and_val_loss_are_the_layer_by_layer_ones(last_activation_layer):
    """evaluate (and fit's val_loss) read the logits the layers keep; a last
    Activation("softmax") keeps them only in the layer-by-layer forward."""
    x, y = _xy(scale=40.0)      # large logits: the fused and the clipped loss differ
    a, b = _twin_models(lambda: _softmax_net(last_activation_layer))
    ha = a.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_data=(x, y))
    with _python_step():
        hb = b.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_data=(x, y))
        eb = b.evaluate(x, y, verbose=0)
    assert ha.history == hb.history
    assert a.evaluate(x, y, verbose=0) == eb


def test_a_dropout_rate_set_after_training_started_is_used_on_both_paths():
    """A Dropout built with rate 0 and set to 0.5 later (its buffers exist in training
    whatever the rate): the compiled step uses the new rate, as the Python step does."""
    x, y = _xy()
    a, b = _twin_models(lambda: _softmax_net(dropout=0.0))
    a.train_on_batch(x[:8], y[:8])
    with _python_step():
        b.train_on_batch(x[:8], y[:8])
    a.layers[1].rate = b.layers[1].rate = 0.5
    for i in range(3):
        la = a.train_on_batch(x[8 * i:8 * i + 8], y[8 * i:8 * i + 8])
        with _python_step():
            lb = b.train_on_batch(x[8 * i:8 * i + 8], y[8 * i:8 * i + 8])
        assert la == lb
    assert np.array_equal(a.parameter_store.params, b.parameter_store.params)


def test_label_smoothing_alpha_and_clipnorm_changed_after_the_build_are_honoured():
    """Settings changed between steps: the loss's label_smoothing (read every step), a
    layer's leaky slope (a change rebuilds the compiled passes), and clipnorm set on the
    optimizer (the step then takes the Python path, which applies it)."""
    x, y = _xy()
    a, b = _twin_models(lambda: _softmax_net())
    a.train_on_batch(x[:8], y[:8])
    with _python_step():
        b.train_on_batch(x[:8], y[:8])
    for m in (a, b):
        m.loss.label_smoothing = 0.3
        m.layers[0].alpha = 0.4
    assert a.train_on_batch(x[8:16], y[8:16]) == _python(b.train_on_batch, x[8:16], y[8:16])
    assert np.array_equal(a.predict(x[:1]), _python(b.predict, x[:1]))
    a.optimizer.clipnorm = b.optimizer.clipnorm = 1e-3
    assert a.train_on_batch(x[16:24], y[16:24]) == \
        _python(b.train_on_batch, x[16:24], y[16:24])
    assert engine.compiled_step(a, a._train_cache[8]) is None
    assert np.array_equal(a.parameter_store.params, b.parameter_store.params)
    with pytest.raises(ValueError, match="alpha"):
        a.layers[0].alpha = 1.5


def _python(call, *args):
    with _python_step():
        return call(*args)


def test_many_frozen_ranges_train_on_the_compiled_step_or_the_python_one_alike():
    """11 trainable ranges between 10 frozen ones (chunks merged), and 17 ranges (more
    than the step's chunks: the Python step), both giving the Python step's bits."""
    for pairs in (10, 16):
        def build():
            layers = [fn.layers.Dense(64, activation="relu", input_dim=17)]
            for i in range(2 * pairs):
                layers.append(fn.layers.Dense(8, activation="relu", trainable=i % 2 == 1))
            layers.append(fn.layers.Dense(5, activation="softmax"))
            m = fn.Sequential(layers)
            m.compile(optimizer="adam", loss="categorical_crossentropy")
            return m
        x, y = _xy()
        a, b = _twin_models(build)
        a.fit(x, y, batch_size=8, epochs=1, verbose=0)
        with _python_step():
            b.fit(x, y, batch_size=8, epochs=1, verbose=0)
        compiled = engine.compiled_step(a, a._train_cache[8])
        assert (compiled is not None) == (pairs == 10)
        assert np.array_equal(a.parameter_store.params, b.parameter_store.params)


def test_an_optimizer_subclass_takes_the_python_step():
    """A subclass may change what apply does; only fastnn's own optimizers compile."""
    calls = []

    class Counting(fn.optimizers.Adam):
        def apply(self, params, grads):
            calls.append(1)
            return super().apply(params, grads)
    x, y = _xy()
    m = _softmax_net()
    m.compile(optimizer=Counting(), loss="categorical_crossentropy")
    m.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert len(calls) == 5 and engine.compiled_step(m, m._train_cache[8]) is None


def test_the_chunked_update_of_a_larger_batch_matches_the_python_step(restore_threads,
                                                                      monkeypatch):
    """784-300-10 at batch 100: no bound (the inputs and deltas outnumber half the
    238k gradients), the update and the finiteness check in 7 chunks over 2 threads:
    the Python step's bits."""
    fn.set_num_threads(2)
    states = _big_runs(monkeypatch, [(2, True), (2, False)], batch_size=100)
    _assert_same_bits(states[0], states[1])


@pytest.mark.parametrize("dtype,weight", [("float32", 1e30), ("float64", 1e300)])
@pytest.mark.parametrize("n", [2, 64])
def test_finite_loss_with_infinite_gradients_changes_nothing(dtype, weight, n):
    """Huge sample weights on a network scaled to keep the loss finite make dW overflow
    (at batch 2 past the bound, at 64 past the full check): the step is refused and the
    weights, every slot and the step count stay as they were, as on the Python step."""
    rng = np.random.default_rng(1)

    def build():
        m = fn.Sequential([fn.layers.Dense(256, activation="relu", input_dim=200),
                           fn.layers.Dense(10, activation="softmax")], dtype=dtype)
        m.compile(optimizer="adam", loss="categorical_crossentropy")
        return m
    a, b = _twin_models(build, dtype)
    x = rng.random((n, 200)).astype(dtype)
    y = np.eye(10, dtype=dtype)[rng.integers(0, 10, n)]
    a.train_on_batch(x, y)
    _python(b.train_on_batch, x, y)
    w1, b1, w2, b2 = a.get_weights()
    scaled = [(np.abs(w1) * 1e9).astype(dtype), b1, (w2 / 1e10).astype(dtype), b2]
    for m in (a, b):
        m.set_weights(scaled)
    sw = np.full(n, weight, dtype)

    def state(m):
        return [m.parameter_store.params.copy(), m.optimizer.iterations] + \
            [np.array(v, copy=True) for k, v in m.optimizer.variables().items()
             if k != "iterations"]
    before = state(a)
    with pytest.raises(FloatingPointError):
        a.train_on_batch(x, y, sample_weight=sw)
    with pytest.raises(FloatingPointError):
        _python(b.train_on_batch, x, y, sw)
    after = state(a)
    assert after[1] == before[1]
    for u, v in zip(after[:1] + after[2:], before[:1] + before[2:]):
        assert np.array_equal(u, v)
    assert np.array_equal(a.parameter_store.params, b.parameter_store.params)


def test_pool_threads_round_in_the_callers_fp_mode(restore_threads):
    """The workers take the caller's flush-to-zero setting for each job, whatever mode
    the thread that first started them had: subnormal weights under a zero gradient
    are flushed by the compiled update as by the Python one."""
    from fastnn._core import blas
    fn.set_num_threads(2)
    a = np.ones((256, 256), np.float32)
    blas.matmul_into(a, a, np.empty_like(a))      # a pooled job from a thread without FTZ

    def build():
        m = fn.Sequential([fn.layers.Dense(300, activation="relu", input_dim=784),
                           fn.layers.Dense(10, activation="softmax")])
        m.compile(optimizer=fn.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
        return m
    rng = np.random.default_rng(0)
    x = rng.random((128, 784)).astype(np.float32)
    x[:, 400:] = 0
    y = rng.integers(0, 10, 128)
    m1, m2 = _twin_models(build)
    w1, b1, w2, b2 = m1.get_weights()
    w1[400:] = 1e-39
    for m in (m1, m2):
        m.set_weights([w1, b1, w2, b2])
    m1.train_on_batch(x, y)
    _python(m2.train_on_batch, x, y)
    assert np.count_nonzero(m1.layers[0].W[400:]) == 0
    assert np.array_equal(m1.parameter_store.params, m2.parameter_store.params)


def test_predict_while_another_thread_trains():
    """predict from two threads while a third trains the same model's twin: every
    prediction is the layer-by-layer one of the weights it saw (a frozen copy here)."""
    import threading
    x, y = _xy(n=64)
    server = _softmax_net()
    trainee = _softmax_net()
    expected = _python(server.predict, x[:1])
    errors = []

    def serve():
        for _ in range(200):
            if not np.array_equal(server.predict(x[:1]), expected):
                errors.append(1)
    threads = [threading.Thread(target=serve) for _ in range(2)]
    threads.append(threading.Thread(
        target=lambda: trainee.fit(x, y, batch_size=4, epochs=3, verbose=0)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
