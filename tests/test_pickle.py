"""pickle, copy.copy and copy.deepcopy of Sequential: the state is the model file's
description and arrays; a round trip predicts identically and continues training
bit-identically (exact equality: the same seed, epoch counter and optimizer state make
the same shuffles, dropout masks and updates)."""
import copy
import pickle
import threading

import numpy as np
import pytest

import fastnn as fn
from fastnn import layers as L

COPIES = {"pickle": lambda m: pickle.loads(pickle.dumps(m)),
          "deepcopy": copy.deepcopy, "copy": copy.copy}


def data(n=120, d=7, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.8)
    return x, np.minimum(y, classes - 1)


def layers(input_dim=7):
    return [L.Dense(16, activation="relu", input_dim=input_dim,
                    kernel_regularizer=fn.regularizers.l2(1e-3)),
            L.Dropout(0.25), L.Maxout(5, pieces=2), L.Dense(3, activation="softmax")]


def compiled(dtype="float32", optimizer=None, input_dim=7):
    model = fn.Sequential(layers(input_dim), dtype=dtype)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  optimizer=optimizer or fn.optimizers.Adam(0.01))
    return model


def same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(np.array_equal(p, q) for p, q in zip(wa, wb))


def fit(model, x, y, epochs=2):
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)


@pytest.mark.parametrize("how", sorted(COPIES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_trained_model_continues_bit_identically(how, dtype):
    x, y = data()
    model = compiled(dtype)
    fit(model, x, y)
    clone = COPIES[how](model)
    assert clone is not model and clone._params is not model._params
    assert clone.epochs_trained == model.epochs_trained == 2
    assert clone.optimizer.iterations == model.optimizer.iterations
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))
    fit(model, x, y)
    fit(clone, x, y)
    assert same_weights(model, clone)
    for k, val in model.optimizer.variables().items():
        np.testing.assert_array_equal(val, clone.optimizer.variables()[k])


def test_copies_are_independent():
    x, y = data()
    model = compiled()
    fit(model, x, y, 1)
    for how, make in COPIES.items():
        clone = make(model)
        before = model.get_weights()
        fit(clone, x, y, 1)
        assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights())), how


@pytest.mark.parametrize("optimizer", [
    lambda: fn.optimizers.SGD(fn.optimizers.schedules.ExponentialDecay(0.1, 3, 0.5),
                              momentum=0.9, nesterov=True),
    lambda: fn.optimizers.RMSprop(0.01, centered=True, momentum=0.5),
    lambda: fn.optimizers.Adagrad(0.05),
    lambda: fn.optimizers.Adam(fn.optimizers.schedules.CosineDecay(0.01, 40), amsgrad=True),
    lambda: fn.optimizers.AdamW(0.01, clipnorm=1.0),
])
def test_every_optimizer_and_schedule(optimizer):
    x, y = data()
    model = compiled("float64", optimizer())
    fit(model, x, y)
    clone = pickle.loads(pickle.dumps(model))
    assert type(clone.optimizer) is type(model.optimizer)
    assert repr(clone.optimizer) == repr(model.optimizer)
    fit(model, x, y)
    fit(clone, x, y)
    assert same_weights(model, clone)


def test_train_on_batch_continues_identically():
    x, y = data()
    model = compiled()
    model.train_on_batch(x[:32], y[:32])
    clone = copy.deepcopy(model)
    for _ in range(3):      # dropout masks follow the optimizer's step counter
        model.train_on_batch(x[:32], y[:32])
        clone.train_on_batch(x[:32], y[:32])
    assert same_weights(model, clone)


@pytest.mark.parametrize("how", sorted(COPIES))
def test_unbuilt_uncompiled(how):
    x, y = data()
    model = fn.Sequential([L.Dense(8, activation="tanh"), L.Dense(3, activation="softmax")],
                          dtype="float64", name="tiny")
    clone = COPIES[how](model)
    assert not clone.built and not clone.compiled and clone.name == "tiny"
    assert clone.dtype == np.float64 and clone.seed == model.seed is not None
    for m in (model, clone):
        m.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        fit(m, x, y)
    assert same_weights(model, clone)


def test_compiled_but_unbuilt():
    x, y = data()
    model = fn.Sequential([L.Dense(8, activation="relu"), L.Dropout(0.3),
                           L.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=fn.optimizers.SGD(
        0.05, momentum=0.9), metrics=["accuracy"])
    clone = pickle.loads(pickle.dumps(model))
    assert clone.compiled and not clone.built and clone._metric_names == ["accuracy"]
    fit(model, x, y)
    fit(clone, x, y)
    assert same_weights(model, clone)


def test_built_but_uncompiled():
    x, y = data()
    model = fn.Sequential(layers())
    model.build()
    clone = copy.deepcopy(model)
    assert clone.built and not clone.compiled and same_weights(model, clone)
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))
    for m in (model, clone):
        m.compile(loss="sparse_categorical_crossentropy", optimizer="rmsprop")
        fit(m, x, y)
    assert same_weights(model, clone)


def test_state_has_no_live_objects_and_workspaces_are_rebuilt():
    x, y = data()
    model = compiled()
    fit(model, x, y, 1)
    model.predict(x)
    state = model.__getstate__()
    assert set(state) == {"doc", "arrays", "objects", "optimizer_class"}
    assert state["objects"] == {}
    assert sorted(state["arrays"]) == ["optimizer/m", "optimizer/v", "parameters"]
    clone = pickle.loads(pickle.dumps(model))
    assert len(clone._train_cache) == 0 and not hasattr(clone._local, "cache")
    assert isinstance(clone._train_lock, type(threading.Lock()))
    # The clone's optimizer updates the clone's own flat buffer.
    assert clone.optimizer._params is clone._params


def test_same_description_as_the_model_file(tmp_path):
    x, y = data()
    model = compiled("float64")
    fit(model, x, y, 1)
    model.save(tmp_path / "m.fnn")
    loaded = fn.load_model(tmp_path / "m.fnn")
    assert fn.saving.describe(loaded)[0] == model.__getstate__()["doc"]


def _half_lr(step):
    return 0.005


def test_callable_learning_rate_and_custom_loss_travel_as_objects():
    class HalfMSE(fn.losses.MeanSquaredError):
        def compute(self, p, z, y, sw, grad, scale):
            return super().compute(p, z, y, sw, grad, 0.5 * scale) * 0.5

    x, y = data()
    y2 = np.eye(3)[y]
    model = fn.Sequential([L.Dense(4, activation="tanh", input_dim=7), L.Dense(3)])
    model.compile(loss=HalfMSE(), optimizer=fn.optimizers.SGD(lambda step: 0.01))
    fit(model, x, y2, 1)
    with pytest.raises(ValueError, match="arbitrary callable"):
        model.save("never-written.fnn")
    clone = copy.deepcopy(model)       # lambdas deep-copy (pickle would refuse them)
    assert isinstance(clone.loss, HalfMSE)
    fit(model, x, y2, 1)
    fit(clone, x, y2, 1)
    assert same_weights(model, clone)
    model.optimizer.learning_rate = _half_lr
    model.loss = fn.losses.MeanSquaredError()
    clone = pickle.loads(pickle.dumps(model))
    assert clone.optimizer.learning_rate is _half_lr


def test_a_model_in_another_process():
    import multiprocessing
    x, y = data()
    model = compiled()
    fit(model, x, y, 1)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        remote = pool.apply(_predict, (model, x))
    np.testing.assert_array_equal(remote, model.predict(x))


def _predict(model, x):
    return model.predict(x)
