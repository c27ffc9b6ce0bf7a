"""Keras 3's build timing: layers have weights as soon as the model's input shape is known,
and Sequential.add on a built model rebuilds it keeping the existing weights."""
import pickle

import numpy as np
import pytest

import fastnn as fn
from fastnn import layers as L


@pytest.mark.parametrize("make", [
    lambda: fn.Sequential([fn.Input(shape=(784,)), L.Dense(10)]),
    lambda: fn.Sequential([L.Dense(10, input_shape=(784,))]),
    lambda: fn.Sequential([L.Dense(10, input_dim=784)]),
])
def test_layer_weights_exist_once_the_input_shape_is_known(make):
    dense = make().layers[0]
    kernel, bias = dense.get_weights()
    assert kernel.shape == (784, 10) and bias.shape == (10,)
    assert dense.kernel.shape == (784, 10) and dense.bias.shape == (10,)
    dense.set_weights([np.ones((784, 10)), np.arange(10.0)])
    np.testing.assert_array_equal(dense.bias, np.arange(10.0))


def test_model_added_layer_by_layer_builds_when_asked():
    model = fn.Sequential()
    model.add(L.Dense(5, input_shape=(4,)))
    model.add(L.Activation("sigmoid"))
    model.add(L.Dense(2, use_bias=False))
    assert model.layers[2].kernel.shape == (5, 2) and model.layers[2].bias is None
    assert len(model.layers[2].get_weights()) == 1


def test_without_an_input_no_weights_until_the_first_call():
    # Keras's docstring: such a model "doesn't have any weights until the first call".
    model = fn.Sequential([L.Dense(3)])
    dense = model.layers[0]
    assert dense.get_weights() == [] and not model.built
    with pytest.raises(AttributeError, match="build the layer before accessing `kernel`"):
        dense.kernel
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.ones((2, 7)), np.ones((2, 3)), verbose=0)
    assert dense.kernel.shape == (7, 3)


def test_normalization_layers_name_their_weights_as_keras():
    bn, ln = L.BatchNormalization(center=False), L.LayerNormalization()
    fn.Sequential([fn.Input((6,)), bn, ln])
    np.testing.assert_array_equal(bn.gamma, np.ones(6))
    assert bn.beta is None
    np.testing.assert_array_equal(bn.moving_mean, np.zeros(6))
    np.testing.assert_array_equal(bn.moving_variance, np.ones(6))
    np.testing.assert_array_equal(ln.beta, np.zeros(6))
    assert bn.moving_mean is bn.weights[1]          # live views, not copies


def test_asking_a_layer_for_weights_initializes_as_build_does():
    # The seed is drawn when the model builds: asking a layer first gives the weights an
    # explicit build() after the same set_seed gives.
    def weights(ask_layer):
        fn.set_seed(3)
        model = fn.Sequential([fn.Input((4,)), L.Dense(3), L.Dense(2)])
        if ask_layer:
            model.layers[1].get_weights()
        else:
            model.build()
        return model.get_weights()
    for a, b in zip(weights(True), weights(False)):
        np.testing.assert_array_equal(a, b)


def test_layers_of_a_model_pickle_without_their_model():
    model = fn.Sequential([fn.Input((4,)), L.Dense(3)])
    copy = pickle.loads(pickle.dumps(model.layers[0]))
    assert copy._model is None and copy.kernel.shape == (4, 3)


# ---------------------------------------------------------------- add on a built model --

def test_add_after_summary_rebuilds_keeping_weights():
    model = fn.Sequential([fn.Input((8,)), L.Dense(4, activation="relu")])
    model.summary(print_fn=lambda *a, **k: None)
    before = model.get_weights()
    model.add(L.Dense(2))
    assert model.built and model.output_shape == (None, 2) and model.count_params() == 46
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.predict(np.ones((3, 8))).shape == (3, 2)


def test_pop_then_add_on_a_compiled_trained_model():
    rng = np.random.default_rng(0)
    model = fn.Sequential([fn.Input((8,)), L.Dense(4), L.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(rng.random((20, 8)), rng.random((20, 2)), verbose=0)
    first = model.layers[0].get_weights()
    steps = model.optimizer.iterations
    model.pop()
    model.add(L.Dense(3))
    for a, b in zip(first, model.layers[0].get_weights()):
        np.testing.assert_array_equal(a, b)
    # Still compiled: the optimizer follows the new buffer with its step count.
    assert model.compiled and model.optimizer.iterations == steps
    history = model.fit(rng.random((20, 8)), rng.random((20, 3)), verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.array_equal(first[0], model.layers[0].get_weights()[0])


def test_add_rebuild_false_leaves_the_model_unbuilt():
    model = fn.Sequential([fn.Input((8,)), L.Dense(4)])
    model.build()
    kernel = model.layers[0].get_weights()[0]
    model.add(L.Dense(2), rebuild=False)
    assert not model.built
    model.build()
    np.testing.assert_array_equal(model.layers[0].get_weights()[0], kernel)
    with pytest.raises(TypeError, match="rebuild must be True or False"):
        model.add(L.Dense(2), rebuild="yes")


def test_add_a_model_to_a_built_model():
    head = fn.Sequential([L.Dense(2, input_dim=4)])
    model = fn.Sequential([fn.Input((8,)), L.Dense(4)])
    model.build()
    model.add(head)
    assert model.built and model.count_params() == 36 + 10
    np.testing.assert_allclose(model.predict(np.ones((1, 8)))[0].shape, (2,))


# ------------------------------------------------------------------------- History --

def test_history_holds_only_keras_keys_and_throughput_apart(tmp_path):
    rng = np.random.default_rng(1)
    model = fn.Sequential([fn.Input((4,)), L.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    csv = tmp_path / "log.csv"
    history = model.fit(rng.random((40, 4)), rng.integers(0, 3, 40), epochs=2, verbose=0,
                        validation_split=0.25, callbacks=[fn.callbacks.CSVLogger(str(csv))])
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.samples_per_second) == 2
    assert all(rate > 0 for rate in history.samples_per_second)
    assert csv.read_text().splitlines()[0].split(",") == \
        ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]


# ------------------------------------------------------------- Dense's Keras 3 args --

def test_dense_accepts_keras3_defaults():
    dense = L.Dense(4, activity_regularizer=None, kernel_constraint=None,
                    bias_constraint=None, dtype=None, lora_rank=None, lora_alpha=None)
    assert dense.units == 4


@pytest.mark.parametrize("arg, value", [
    ("activity_regularizer", "l2"), ("kernel_constraint", "max_norm"),
    ("bias_constraint", "non_neg"), ("dtype", "float64"), ("lora_rank", 4),
    ("lora_alpha", 8)])
def test_dense_names_the_keras3_argument_it_cannot_do(arg, value):
    with pytest.raises(ValueError, match=f"Dense: {arg}={value!r} is not supported"):
        L.Dense(4, **{arg: value})
