"""Keras's model-building idioms: fn.Input, input_shape=, Flatten (samples of any shape,
seen through a view), the Softmax layer, nested models sharing weights, get_layer, pop,
per-layer weights, trainable, get_config/from_config, and saving all of it."""
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

import fastnn as fn
from fastnn import layers as L

from test_models import assert_gradients_match, make_data


def images(n, seed=0, shape=(28, 28), classes=10):
    rng = np.random.default_rng(seed)
    return rng.random((n, *shape)).astype(np.float32), rng.integers(0, classes, n)


def tutorial_model():
    """TensorFlow's "Basic classification" (Fashion-MNIST) model, as written there."""
    return fn.Sequential([L.Flatten(input_shape=(28, 28)), L.Dense(128, activation="relu"),
                          L.Dense(10)])


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------- Input --

def test_input_first_element_builds_the_model():
    model = fn.Sequential([fn.Input(shape=(784,)), fn.layers.Dense(10, activation="softmax")])
    assert fn.layers.Input is fn.Input
    assert [type(layer) for layer in model.layers] == [L.Dense]   # as Keras: no InputLayer
    assert model.input_shape == (None, 784) and model.input_dim == 784
    assert model.count_params() == 7850        # built without data
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    x, y = make_data(20, 784, 10, "sparse")
    model.fit(x, y, epochs=1, verbose=0)
    assert model.output_shape == (None, 10)


def test_input_through_add_and_batch_shape():
    model = fn.Sequential()
    model.add(fn.Input(batch_shape=(None, 5), name="pixels"))
    model.add(L.Dense(3))
    assert model.input_shape == (None, 5) and model.get_weights()[0].shape == (5, 3)
    inp = fn.Input(shape=5, batch_size=32)
    assert inp.shape == (5,) and inp.batch_shape == (32, 5)
    assert fn.Input(shape=(2, 3)).get_config()["batch_shape"] == [None, 2, 3]


def test_input_dtype_chooses_the_model_dtype_unless_given():
    assert fn.Sequential([fn.Input((3,), dtype="float64"), L.Dense(1)]).dtype == np.float64
    assert fn.Sequential([fn.Input((3,), dtype="uint8"), L.Dense(1)]).dtype == np.float32
    assert fn.Sequential([fn.Input((3,), dtype="float64"), L.Dense(1)],
                         dtype="float32").dtype == np.float32


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({}, ValueError, r"Input: shape is required"),
    ({"shape": (None, 3)}, ValueError, r"Input: shape \(None, 3\) has an unknown \(None\)"),
    ({"shape": (0,)}, ValueError, r"Input: shape entries must be >= 1"),
    ({"shape": "784"}, TypeError, r"Input: shape must be a tuple of positive integers"),
    ({"shape": (3,), "batch_shape": (None, 3)}, ValueError, r"give shape or batch_shape"),
    ({"batch_shape": (3,)}, ValueError, r"batch_shape must be \(batch_size or None"),
    ({"shape": (3,), "sparse": True}, ValueError, r"sparse=True is not supported"),
    ({"shape": (3,), "batch_size": 0}, ValueError, r"Input: batch_size must be >= 1"),
    ({"shape": (3,), "dtype": "str"}, ValueError, r"Input: dtype must be a numeric dtype"),
    ({"shape": (3,), "dtype": "bogus"}, TypeError, r"Input: dtype must be a numeric dtype"),
])
def test_input_bad_arguments(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fn.Input(**kwargs)


def test_input_must_come_first():
    with pytest.raises(ValueError, match=r"an Input must be the first element"):
        fn.Sequential([L.Dense(3, input_dim=2), fn.Input((2,))])
    with pytest.raises(ValueError, match=r"already has an Input"):
        fn.Sequential([fn.Input((2,)), fn.Input((2,))])


# ----------------------------------------------------------------------- input_shape --

def test_input_shape_is_input_dim_keras2_style():
    a = fn.Sequential([L.Dense(10, input_shape=(784,))])
    assert a.input_dim == 784 and a.input_shape == (None, 784)
    assert L.Dense(3, input_shape=[4], input_dim=4).input_dim == 4
    with pytest.raises(ValueError, match=r"Dense: input_shape must be a 1-tuple .* put "
                                         r"fn.layers.Flatten\(input_shape=...\) first"):
        L.Dense(3, input_shape=(28, 28))
    with pytest.raises(ValueError, match=r"Dense: input_dim=5 contradicts input_shape=\(4,\)"):
        L.Dense(3, input_shape=(4,), input_dim=5)
    with pytest.raises(ValueError, match=r"Dropout: input_shape must be a 1-tuple"):
        L.Dropout(0.5, input_shape=(2, 2))


# --------------------------------------------------------------------------- Flatten --

def test_tutorial_model_trains_on_images_like_the_flat_model():
    """The image model and the same model on x.reshape(n, 784) are one computation: every
    step is bit-identical (the images are only looked at through a reshape)."""
    x, y = images(300)
    results = []
    for flat in (False, True):
        fn.set_seed(3)
        model = (fn.Sequential([L.Dense(128, activation="relu", input_dim=784), L.Dense(10)])
                 if flat else tutorial_model())
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        data = x.reshape(len(x), -1) if flat else x
        history = model.fit(data, y, epochs=2, batch_size=32, validation_split=0.1,
                            verbose=0)
        results.append((history.history, model.get_weights(), model.evaluate(data, y),
                        model.predict(data[:7]), model.train_on_batch(data[:5], y[:5])))
    (h1, w1, e1, p1, t1), (h2, w2, e2, p2, t2) = results
    assert h1["loss"] == h2["loss"] and h1["val_loss"] == h2["val_loss"]
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2))
    assert e1 == e2 and np.array_equal(p1, p2) and t1 == t2


def test_images_are_flattened_by_a_view_never_a_copy():
    model = tutorial_model()
    model.build()
    x, _ = images(2000)
    matrix = model._input_matrix("fit", x)
    assert matrix.shape == (2000, 784) and np.shares_memory(matrix, x)
    # Not C-contiguous, or another dtype: converted once (into a C-contiguous array).
    strided = np.asfortranarray(x)
    assert model._input_matrix("fit", strided).flags.c_contiguous
    np.testing.assert_array_equal(model._input_matrix("fit", x.astype(np.float64)), matrix)
    model.predict(x[:64])     # make the workspaces
    tracemalloc.start()
    model.predict(x)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # x is 6.3 MB; predict's output (2000, 10) float32 is 80 KB.
    assert peak < 400_000, peak


def test_flatten_first_model_builds_from_image_data():
    fn.set_seed(0)
    model = fn.Sequential([L.Flatten(), L.Dense(4), L.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    x, y = images(40, shape=(2, 3, 5), classes=3)
    model.fit(x, y, epochs=1, verbose=0)
    assert model.input_shape == (None, 2, 3, 5) and model.get_weights()[0].shape == (30, 4)
    assert model.predict(x).shape == (40, 3)
    # Flatten in the middle of a flat model is the identity.
    inner = fn.Sequential([L.Dense(3, input_dim=4), L.Flatten(), L.Dense(2)])
    assert inner.predict(np.ones((2, 4))).shape == (2, 2)


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict", "train_on_batch"])
def test_image_model_bad_x_names_the_expected_shape(method):
    model = tutorial_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    for bad, pattern in [(np.ones((4, 784)), r"expected an array of shape \(samples, 28, 28\)"
                                             r" \(the model's input shape\), got shape "
                                             r"\(4, 784\)"),
                         (np.ones((4, 28, 27)), r"got shape \(4, 28, 27\)"),
                         (np.ones((0, 28, 28)), r"has no samples"),
                         (np.full((4, 28, 28), np.nan), r"contains NaN or infinity")]:
        args = (bad,) if method == "predict" else (bad, np.zeros(len(bad), int))
        kwargs = {"verbose": 0} if method == "fit" else {}
        with pytest.raises(ValueError, match=rf"{method}: x: .*{pattern}"):
            getattr(model, method)(*args, **kwargs)


def test_image_samples_need_flatten_first():
    model = fn.Sequential([fn.Input((28, 28)), L.Dense(3)])
    with pytest.raises(ValueError, match=r"samples of shape \(28, 28\) need "
                                         r"fn.layers.Flatten\(\) as the first layer"):
        model.build()
    with pytest.raises(ValueError, match=r"Flatten: data_format must be None or "
                                         r"'channels_last'"):
        L.Flatten(data_format="channels_first")


# --------------------------------------------------------------------------- Softmax --

def test_softmax_layer_fuses_with_cross_entropy():
    fn.set_seed(1)
    model = fn.Sequential([L.Dense(4, input_dim=3), L.Softmax()], dtype="float64")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    assert model._fused
    x, y = make_data(9, 3, 4, "sparse")
    w, b = model.get_weights()
    np.testing.assert_allclose(model.predict(x), softmax(x @ w + b), rtol=1e-12)
    assert_gradients_match(model, x, y)
    model.compile(loss="mse", optimizer="sgd")       # not fused: the softmax Jacobian
    assert not model._fused
    assert_gradients_match(model, x, np.eye(4)[y])
    with pytest.raises(ValueError, match=r"Softmax: axis must be -1"):
        L.Softmax(axis=0)


# ------------------------------------------------------------------- nested models --

def test_probability_model_shares_the_trained_weights():
    """The tutorial's last step: Sequential([model, Softmax()]) gives probabilities from
    the same weights, and training either model moves both identically."""
    fn.set_seed(2)
    x, y = images(200)
    model = tutorial_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    logits = model.predict(x[:10])
    probability_model = fn.Sequential([model, L.Softmax()])
    np.testing.assert_allclose(probability_model.predict(x[:10]), softmax(logits),
                               rtol=1e-5, atol=1e-7)
    assert probability_model.input_shape == (None, 28, 28)
    assert np.shares_memory(model._params, probability_model._params)
    assert probability_model.get_layer(model.name) is model
    # Train the outer model: the inner one predicts with the new weights.
    probability_model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert probability_model._fused          # Softmax + cross-entropy, from the logits
    before = model.get_weights()
    probability_model.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(before[0], model.get_weights()[0])
    np.testing.assert_allclose(probability_model.predict(x[:10]),
                               softmax(model.predict(x[:10])), rtol=1e-5, atol=1e-7)
    # Train the inner one (its Adam state survived the move): the outer one follows.
    iterations = model.optimizer.iterations
    model.fit(x, y, epochs=1, verbose=0)
    assert model.optimizer.iterations == iterations + 7
    np.testing.assert_allclose(probability_model.predict(x[:10]),
                               softmax(model.predict(x[:10])), rtol=1e-5, atol=1e-7)
    path = str(__import__("tempfile").mkdtemp()) + "/inner.fnn"
    model.save(path)
    np.testing.assert_array_equal(fn.load_model(path).predict(x[:5]), model.predict(x[:5]))


def test_nesting_an_unbuilt_model_and_nesting_twice_deep():
    fn.set_seed(4)
    base = fn.Sequential([L.Dense(5, activation="tanh"), L.Dense(3)], name="base")
    middle = fn.Sequential([base, L.Activation("relu")], name="middle")
    outer = fn.Sequential([fn.Input((4,)), middle, L.Dense(2)], name="outer")
    assert [layer.name for layer in outer.layers][-2:] == [middle.layers[-1].name,
                                                          outer.layers[-1].name]
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    outer.compile(loss="mse", optimizer="sgd")
    outer.fit(x, np.ones((6, 2)), epochs=3, verbose=0)
    assert base.built and middle.built
    w = outer.get_weights()
    h = np.maximum(np.tanh(x @ w[0] + w[1]) @ w[2] + w[3], 0)
    np.testing.assert_allclose(middle.predict(x), h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(base.predict(x), np.tanh(x @ w[0] + w[1]) @ w[2] + w[3],
                               rtol=1e-5, atol=1e-6)
    assert outer.get_layer("base") is base


def test_nesting_errors():
    inner = fn.Sequential([L.Dense(2, input_dim=3)])
    outer = fn.Sequential([inner])
    with pytest.raises(ValueError, match=r"already nested in model"):
        fn.Sequential([inner])
    with pytest.raises(ValueError, match=r"is nested in model .*; change that model"):
        inner.add(L.Dense(1))
    with pytest.raises(ValueError, match=r"is nested in model"):
        inner.pop()
    with pytest.raises(ValueError, match=r"cannot contain itself"):
        outer.add(outer)
    with pytest.raises(ValueError, match=r"is float64 but this model is float32"):
        outer.add(fn.Sequential([L.Dense(1)], dtype="float64"))
    with pytest.raises(ValueError, match=r"has no layers"):
        outer.add(fn.Sequential())


# ---------------------------------------------------------------- get_layer / pop --

def test_get_layer_keras_errors():
    model = fn.Sequential([L.Dense(3, input_dim=2, name="a"), L.Dense(1, name="b")])
    assert model.get_layer("b") is model.layers[1] and model.get_layer(index=0).name == "a"
    assert model.get_layer(index=-1).name == "b"
    with pytest.raises(ValueError, match=r"No such layer: c. Existing layers are: "
                                         r"\['a', 'b'\]"):
        model.get_layer("c")
    with pytest.raises(ValueError, match=r"retrieve layer at index 2 but model only has 2"):
        model.get_layer(index=2)
    with pytest.raises(ValueError, match=r"Provide only a layer name or a layer index"):
        model.get_layer("a", 0)
    with pytest.raises(ValueError, match=r"Provide either a layer name or layer index"):
        model.get_layer()
    with pytest.raises(TypeError, match=r"get_layer: index must be an integer"):
        model.get_layer(index=1.0)


def test_pop_keeps_the_other_weights_and_stays_compiled():
    fn.set_seed(5)
    model = fn.Sequential([L.Dense(4, input_dim=3), L.Dense(2), L.Dense(5)])
    model.compile(loss="mse", optimizer="adam")
    x = np.random.default_rng(1).standard_normal((8, 3))
    model.fit(x, np.zeros((8, 5)), epochs=2, verbose=0)
    kept = model.get_weights()[:4]
    last = model.layers[-1]
    assert model.pop() is last
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), kept))
    assert model.output_dim == 2 and model.optimizer.iterations == 2
    model.fit(x, np.zeros((8, 2)), epochs=1, verbose=0)      # compiled, trains
    assert not np.array_equal(model.get_weights()[2], kept[2])
    model.pop()
    model.pop()
    with pytest.raises(TypeError, match=r"There are no layers in the model"):
        model.pop()


def test_pop_removes_a_nested_model_whole():
    inner = fn.Sequential([L.Dense(3, input_dim=2), L.Dense(2)])
    outer = fn.Sequential([L.Dense(2, input_dim=2), inner])
    outer.build()
    assert outer.pop() is inner and len(outer.layers) == 1
    before = inner.predict(np.ones((1, 2)))
    inner.pop()                  # free again (and rebuilt in a buffer of its own)
    assert outer.predict(np.ones((1, 2))).shape == (1, 2)
    assert inner.predict(np.ones((1, 2))).shape == (1, 3) and before.shape == (1, 2)


# -------------------------------------------------------------------- layer weights --

def test_layer_get_and_set_weights():
    model = fn.Sequential([L.Dense(3, input_dim=2), L.Dense(1, use_bias=False)])
    dense = model.layers[0]
    # Keras 3: the input shape is declared, so the layer has weights at once (the model
    # builds when they are asked for); without a declared input it has none yet.
    w, b = dense.get_weights()
    assert model.built
    assert fn.Sequential([L.Dense(3)]).layers[0].get_weights() == []
    assert w.shape == (2, 3) and b.shape == (3,)
    dense.set_weights([np.ones((2, 3)), np.arange(3.0)])
    np.testing.assert_array_equal(model.get_weights()[1], np.arange(3.0))
    assert model.get_weights()[1].dtype == np.float32
    assert len(model.layers[1].get_weights()) == 1 and L.Dense(2).get_weights() == []
    with pytest.raises(ValueError, match=r"dense_\d+.set_weights: expected 2 arrays, got 1"):
        dense.set_weights([np.ones((2, 3))])
    with pytest.raises(ValueError, match=r"weights\[0\] must have shape \(2, 3\), got "
                                         r"\(3, 2\)"):
        dense.set_weights([np.ones((3, 2)), np.zeros(3)])
    with pytest.raises(ValueError, match=r"weights\[1\]: contains NaN"):
        dense.set_weights([np.ones((2, 3)), np.full(3, np.nan)])
    with pytest.raises(TypeError, match=r"weights must be a list of arrays"):
        dense.set_weights(np.ones((2, 3)))
    assert model.layers[0].weight_names == ["kernel", "bias"]


# ------------------------------------------------------------------------ trainable --

@pytest.mark.parametrize("optimizer", [fn.optimizers.AdamW(0.01, weight_decay=0.1),
                                       fn.optimizers.SGD(0.1, momentum=0.9)])
def test_frozen_layer_does_not_change_in_fit(optimizer):
    fn.set_seed(6)
    model = fn.Sequential([L.Dense(6, activation="relu", input_dim=4),
                           L.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer)
    x, y = make_data(64, 4, 3, "sparse")
    model.fit(x, y, epochs=1, verbose=0)     # momentum / moments for every weight
    model.layers[0].trainable = False
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer)
    frozen = model.layers[0].get_weights()
    trained = model.layers[1].get_weights()
    model.fit(x, y, epochs=2, verbose=0)
    model.train_on_batch(x[:8], y[:8])
    assert all(np.array_equal(a, b) for a, b in zip(frozen, model.layers[0].get_weights()))
    assert not np.array_equal(trained[0], model.layers[1].get_weights()[0])
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2
    assert [g.shape for g in model.gradients(x, y)] == [(6, 3), (3,)]
    lines = []
    model.summary(print_fn=lines.append)
    assert "Trainable params: 21" in lines[0] and "Non-trainable params: 30" in lines[0]


def test_trainable_takes_effect_at_compile_as_in_keras():
    fn.set_seed(7)
    model = fn.Sequential([L.Dense(3, input_dim=2), L.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    x, y = np.ones((4, 2)), np.ones((4, 1))
    model.trainable = False            # not compiled again: still trains everything
    before = model.get_weights()
    model.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(before[0], model.get_weights()[0])
    model.compile(loss="mse", optimizer="sgd")
    before = model.get_weights()
    model.fit(x, y, epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert model.trainable_weights == [] and not model.layers[1].trainable
    frozen = fn.Sequential([L.Dense(3, input_dim=2)], trainable=False)
    assert not frozen.trainable and not frozen.layers[0].trainable
    assert fn.Sequential.from_config(frozen.get_config()).trainable is False
    with pytest.raises(TypeError, match=r"trainable must be True or False"):
        model.layers[0].trainable = "no"


def test_transfer_learning_idiom_frozen_base_inside_a_new_model(tmp_path):
    fn.set_seed(8)
    base = fn.Sequential([L.Dense(8, activation="relu", input_dim=5)], name="base")
    base.build()
    base.trainable = False
    model = fn.Sequential([base, L.Dense(2, activation="softmax", trainable=True)])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    x, y = make_data(32, 5, 2, "sparse")
    frozen = base.get_weights()
    model.fit(x, y, epochs=2, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(frozen, base.get_weights()))
    model.save(tmp_path / "m.fnn")
    loaded = fn.load_model(tmp_path / "m.fnn")
    assert [layer.trainable for layer in loaded.layers] == [False, True]
    loaded.fit(x, y, epochs=1, verbose=0)
    assert np.array_equal(loaded.get_weights()[0], frozen[0])


# ------------------------------------------------------------------- config / saving --

def test_get_config_from_config_round_trip():
    fn.set_seed(9)
    model = fn.Sequential([fn.Input((3, 4)), L.Flatten(), L.Dense(5, activation="tanh"),
                           L.Dropout(0.5), L.Dense(2), L.Softmax()], name="clf")
    model.build()
    config = model.get_config()
    assert config["build_input_shape"] == [None, 3, 4]
    assert [e["class_name"] for e in config["layers"]] == [
        "InputLayer", "Flatten", "Dense", "Dropout", "Dense", "Softmax"]
    json.dumps(config)                  # plain data
    copy = fn.Sequential.from_config(config)
    assert copy.get_config() == config and copy.built and copy.name == "clf"
    copy.set_weights(model.get_weights())
    x = np.random.default_rng(2).random((5, 3, 4))
    np.testing.assert_array_equal(copy.predict(x), model.predict(x))
    assert L.Dense.from_config(model.layers[1].get_config()).units == 5
    with pytest.raises(TypeError, match=r"Sequential.from_config: expected a dict"):
        fn.Sequential.from_config([1])
    with pytest.raises(TypeError, match=r"layers\[0\] must be a dict"):
        fn.Sequential.from_config({"layers": [1]})
    with pytest.raises(ValueError, match=r"unknown layer type 'Conv2D'"):
        fn.Sequential.from_config({"layers": [{"class_name": "Conv2D", "config": {}}]})


def test_save_and_load_image_model_with_softmax(tmp_path):
    fn.set_seed(10)
    x, y = images(64)
    model = fn.Sequential([fn.Input((28, 28)), L.Flatten(), L.Dense(16), L.Softmax()])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "img.fnn"
    model.save(path)
    loaded = fn.load_model(path)
    assert loaded.input_shape == (None, 28, 28)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    loaded.fit(x, y, epochs=1, verbose=0)
    model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])


@pytest.mark.parametrize("shape", [[28, 27], [0, 784], "28x28", [784, True]])
def test_load_rejects_a_bad_input_shape(tmp_path, shape):
    model = fn.Sequential([L.Flatten(input_shape=(28, 28)), L.Dense(2)])
    path = tmp_path / "m.fnn"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        entries = {name: z.read(name) for name in z.namelist()}
    doc = json.loads(entries["fastnn.json"])
    doc["input_shape"] = shape
    entries["fastnn.json"] = json.dumps(doc).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    with pytest.raises(fn.ModelFileError, match=r"input_shape must be a list of up to 32"):
        fn.load_model(path)


def test_course_hello_world_with_input():
    fn.set_seed(11)
    x, y = make_data(256, 784, 10, "onehot")
    model = fn.Sequential([fn.Input(shape=(784,)),
                           fn.layers.Dense(500, activation="sigmoid"),
                           fn.layers.Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer=fn.optimizers.SGD(0.1),
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=100, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.evaluate(x, y)[1] > 0.1


def test_pickle_keeps_the_input_shape_built_or_not():
    import pickle
    unbuilt = fn.Sequential([fn.Input((28, 28)), L.Flatten(), L.Dense(3)])
    unbuilt.seed = 5
    copy = pickle.loads(pickle.dumps(unbuilt))
    assert copy.input_shape == (None, 28, 28)
    x, _ = images(4)
    np.testing.assert_array_equal(copy.predict(x), unbuilt.predict(x))
    built = pickle.loads(pickle.dumps(unbuilt))
    assert built.input_shape == (None, 28, 28)
    np.testing.assert_array_equal(built.predict(x), unbuilt.predict(x))


def test_tensorflow_basic_classification_tutorial_as_written():
    """TensorFlow's "Basic classification" tutorial with only `tf.keras` changed to `fn`
    (synthetic 28x28 images whose class is a bright 7x7 block: no download)."""
    rng = np.random.default_rng(12)

    def load(n):
        labels = rng.integers(0, 10, n)
        imgs = rng.integers(0, 80, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            r, col = divmod(int(c), 4)
            imgs[i, 7 * r:7 * r + 7, 7 * col:7 * col + 7] += 150
        return imgs, labels

    (train_images, train_labels), (test_images, test_labels) = load(600), load(200)
    train_images = train_images / 255.0
    test_images = test_images / 255.0
    fn.set_seed(13)
    model = fn.Sequential([
        fn.layers.Flatten(input_shape=(28, 28)),
        fn.layers.Dense(128, activation='relu'),
        fn.layers.Dense(10)
    ])
    model.compile(optimizer='adam',
                  loss=fn.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    model.fit(train_images, train_labels, epochs=10, verbose=0)
    test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=0)
    assert test_acc > 0.9
    probability_model = fn.Sequential([model, fn.layers.Softmax()])
    predictions = probability_model.predict(test_images)
    np.testing.assert_allclose(predictions.sum(axis=1), 1, rtol=1e-5)
    assert np.mean(np.argmax(predictions, axis=1) == test_labels) == pytest.approx(test_acc)
    np.testing.assert_allclose(predictions, softmax(model.predict(test_images)), rtol=1e-5,
                               atol=1e-7)
