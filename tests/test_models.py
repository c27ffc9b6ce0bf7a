"""Whole-model tests: gradients by finite differences, learning, determinism, the Keras
API's shapes and conventions, and the no-allocation promise of a training step."""
import io
import tracemalloc

import numpy as np
import pytest

import fastnn as fn
from fastnn import layers as L

ACTIVATIONS = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"]


def numeric_gradients(model, loss_fn, h=1e-6):
    """Central differences of loss_fn() w.r.t. every weight (float64 models only).

    Truncation error is O(h²·f''') ≈ 1e-12 and rounding error O(eps·|f|/h) ≈ 1e-10 for
    h = 1e-6 in float64, so agreement to ~1e-7 relative is a tight check.
    """
    grads = []
    for w in model.trainable_weights:
        g = np.zeros_like(w)
        flat, gflat = w.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + h
            up = loss_fn()
            flat[i] = old - h
            down = loss_fn()
            flat[i] = old
            gflat[i] = (up - down) / (2 * h)
        grads.append(g)
    return grads


def training_loss(model, x, y, sample_weight=None):
    # The training-mode loss (dropout masks fixed by the step counter, which does not move).
    return model._batch_pass("test", x, y, sample_weight, None)[0]


def assert_gradients_match(model, x, y, sample_weight=None, rtol=1e-6, atol=1e-8):
    analytic = model.gradients(x, y, sample_weight=sample_weight)
    numeric = numeric_gradients(model, lambda: training_loss(model, x, y, sample_weight))
    assert len(analytic) == len(numeric)
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=rtol, atol=atol)


def make_data(n, d, out, kind, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    if kind == "sparse":
        y = rng.integers(0, out, n)
    elif kind == "onehot":
        y = np.eye(out)[rng.integers(0, out, n)]
    elif kind == "binary":
        y = (rng.random((n, out)) > 0.5).astype(float)
    else:
        y = rng.standard_normal((n, out))
    return x, y


# ------------------------------------------------------------------ gradient checks --

@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_gradient_each_activation(activation):
    fn.set_seed(1)
    model = fn.Sequential([L.Dense(5, activation=activation, input_dim=4)], dtype="float64")
    model.compile(loss="mse", optimizer="sgd")
    x, y = make_data(7, 4, 5, "real")
    assert_gradients_match(model, x, y)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_layer_gradient(activation):
    fn.set_seed(2)
    model = fn.Sequential([L.Dense(6, input_dim=3), L.Activation(activation),
                           L.Dense(2)], dtype="float64")
    model.compile(loss="mse", optimizer="sgd")
    x, y = make_data(5, 3, 2, "real")
    assert_gradients_match(model, x, y)


@pytest.mark.parametrize("loss,last,kind", [
    ("mse", "linear", "real"),
    ("mse", "sigmoid", "real"),
    ("categorical_crossentropy", "softmax", "onehot"),          # fused
    ("categorical_crossentropy", "sigmoid", "onehot"),          # not fused, normalized
    ("sparse_categorical_crossentropy", "softmax", "sparse"),   # fused
    ("sparse_categorical_crossentropy", "sigmoid", "sparse"),   # not fused, labels
    ("binary_crossentropy", "sigmoid", "binary"),               # fused
    ("binary_crossentropy", "softmax", "binary"),               # not fused, clipped path
])
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_gradients_through_model(loss, last, kind, weighted):
    fn.set_seed(3)
    model = fn.Sequential([L.Dense(6, activation="tanh", input_dim=4),
                           L.Dense(3, activation=last)], dtype="float64")
    model.compile(loss=loss, optimizer="sgd")
    x, y = make_data(9, 4, 3, kind)
    sw = np.random.default_rng(4).random(9) * 2 if weighted else None
    assert_gradients_match(model, x, y, sample_weight=sw)


def test_fused_loss_is_used_and_stable_for_huge_logits():
    fn.set_seed(4)
    model = fn.Sequential([L.Dense(3, activation="softmax", input_dim=2)], dtype="float64")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    assert model._fused
    model.set_weights([np.array([[1000.0, -1000, 0], [0, 0, 0]]), np.zeros(3)])
    loss = model.evaluate(np.array([[1.0, 0]]), np.array([1]))
    # log-sum-exp from the logits: exactly 2000, not inf from log(0).
    assert loss == pytest.approx(2000.0)


def test_whole_deep_model_with_regularizers_gradient():
    fn.set_seed(5)
    model = fn.Sequential([
        L.Dense(7, activation="sigmoid", input_dim=5,
                kernel_regularizer=fn.regularizers.l2(0.01)),
        L.Dense(6, activation="relu", kernel_regularizer=fn.regularizers.l1(0.001),
                bias_regularizer=fn.regularizers.l1_l2(0.001, 0.002)),
        L.Dense(5, activation="leaky_relu"),
        L.Dense(4, activation="tanh"),
        L.Dense(3, activation="softmax")], dtype="float64")
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    x, y = make_data(11, 5, 3, "onehot")
    assert_gradients_match(model, x, y)


def test_dropout_gradient_with_fixed_mask():
    fn.set_seed(6)
    model = fn.Sequential([L.Dense(8, activation="tanh", input_dim=3), L.Dropout(0.4),
                           L.Dense(2)], dtype="float64")
    model.compile(loss="mse", optimizer="sgd")
    x, y = make_data(6, 3, 2, "real")
    assert_gradients_match(model, x, y)
    # and the mask really drops something in training but not at inference
    ws = model._train_workspace(6)
    model._forward(x, ws, True)
    mask = ws.bufs[1].mask
    assert set(np.unique(mask)) <= {0.0, 1 / 0.6}
    assert (mask == 0).any()


def test_no_bias_layer_gradient_and_weights():
    fn.set_seed(7)
    model = fn.Sequential([L.Dense(4, input_dim=3, use_bias=False, activation="tanh"),
                           L.Dense(2)], dtype="float64")
    model.compile(loss="mse", optimizer="sgd")
    assert [w.shape for w in model.get_weights()] == [(3, 4), (4, 2), (2,)]
    x, y = make_data(5, 3, 2, "real")
    assert_gradients_match(model, x, y)
    model.fit(x, y, epochs=3, verbose=0)
    assert np.all(model.layers[0].b == 0)


# ------------------------------------------------------------------------ learning --

def test_xor():
    fn.set_seed(0)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    y = np.array([0, 1, 1, 0])
    model = fn.Sequential([L.Dense(8, activation="tanh", input_dim=2),
                           L.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer=fn.optimizers.Adam(0.05),
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=4, epochs=300, verbose=0)
    loss, acc = model.evaluate(x, y)
    assert acc >= 0.99
    assert np.array_equal(model.predict(x)[:, 0] > 0.5, y == 1)


def two_spirals(n_per_class=200, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.random(n_per_class)) * 3 * np.pi
    a = np.stack([t * np.cos(t), t * np.sin(t)], 1) / np.pi   # radius up to 3
    x = np.concatenate([a, -a]) + noise * rng.standard_normal((2 * n_per_class, 2))
    y = np.repeat([0, 1], n_per_class)
    return x, y


def test_two_spirals():
    fn.set_seed(0)
    x, y = two_spirals()
    model = fn.Sequential([L.Dense(64, activation="relu", input_dim=2),
                           L.Dense(64, activation="relu"),
                           L.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=fn.optimizers.Adam(0.005), metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=600, verbose=0)
    assert model.evaluate(x, y)[1] >= 0.99


def test_regression_smooth_function():
    fn.set_seed(0)
    x = np.linspace(-3, 3, 256).reshape(-1, 1)
    y = np.sin(x) + 0.3 * x
    model = fn.Sequential([L.Dense(32, activation="tanh", input_dim=1),
                           L.Dense(32, activation="tanh"), L.Dense(1)])
    model.compile(loss="mse", optimizer=fn.optimizers.Adam(0.01))
    model.fit(x, y, batch_size=32, epochs=300, verbose=0)
    assert model.evaluate(x, y) < 1e-3
    # a 1-D target against a single output is unambiguous and accepted
    assert model.evaluate(x, y[:, 0]) == pytest.approx(model.evaluate(x, y))


# ----------------------------------------------------------------- determinism/API --

def train_once(seed, dtype="float32", dropout=0.2, epochs=3):
    fn.set_seed(seed)
    x, y = make_data(300, 10, 4, "sparse", seed=1)
    model = fn.Sequential([L.Dense(16, activation="relu", input_dim=10), L.Dropout(dropout),
                           L.Dense(4, activation="softmax")], dtype=dtype)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, validation_split=0.2)
    return model, history


def test_set_seed_gives_bit_identical_training():
    a, ha = train_once(123)
    b, hb = train_once(123)
    c, _ = train_once(124)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(wa, wb)
    assert ha.history["loss"] == hb.history["loss"]
    assert not all(np.array_equal(wa, wc) for wa, wc in zip(a.get_weights(), c.get_weights()))


@pytest.mark.parametrize("second_call", ["plain", "initial_epoch"])
def test_warm_start_equals_one_long_fit(second_call):
    a, _ = train_once(9, epochs=4)
    fn.set_seed(9)
    x, y = make_data(300, 10, 4, "sparse", seed=1)
    b = fn.Sequential([L.Dense(16, activation="relu", input_dim=10), L.Dropout(0.2),
                       L.Dense(4, activation="softmax")])
    b.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    b.fit(x, y, batch_size=32, epochs=2, verbose=0, validation_split=0.2)
    if second_call == "plain":
        b.fit(x, y, batch_size=32, epochs=2, verbose=0, validation_split=0.2)
    else:
        b.fit(x, y, batch_size=32, epochs=4, initial_epoch=2, verbose=0,
              validation_split=0.2)
    assert b.epochs_trained == 4
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(wa, wb)


def test_history_and_return_conventions():
    model, history = train_once(0)
    assert set(history.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 3 and history.epoch == [0, 1, 2]
    x, y = make_data(50, 10, 4, "sparse", seed=2)
    loss, acc = model.evaluate(x, y)
    assert 0 <= acc <= 1 and loss > 0
    assert model.evaluate(x, y, return_dict=True) == {"loss": loss, "accuracy": acc}
    probs = model.predict(x)
    assert probs.shape == (50, 4) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    out = model.train_on_batch(x, y)
    assert isinstance(out, list) and len(out) == 2
    model2 = fn.Sequential([L.Dense(1, input_dim=10)])
    model2.compile(loss="mse", optimizer="sgd")
    assert isinstance(model2.train_on_batch(x, x[:, :1]), float)


def test_evaluate_matches_numpy_reference_and_batches():
    model, _ = train_once(1, dtype="float64")
    x, y = make_data(77, 10, 4, "sparse", seed=3)
    w0, b0, w1, b1 = model.get_weights()
    h = np.maximum(x @ w0 + b0, 0)
    z = h @ w1 + b1
    z -= z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    expected = -logp[np.arange(77), y].mean()
    for bs in (1, 7, 32, 77, 1000):    # last batch smaller; batch larger than the data
        loss, acc = model.evaluate(x, y, batch_size=bs)
        assert loss == pytest.approx(expected, rel=1e-12)
        assert acc == pytest.approx(np.mean(logp.argmax(1) == y))
        np.testing.assert_allclose(model.predict(x, batch_size=bs), np.exp(logp),
                                   rtol=1e-12, atol=1e-15)


def test_batch_larger_than_data_is_one_batch_and_last_batch_smaller():
    fn.set_seed(0)
    x, y = make_data(10, 3, 1, "real")
    model = fn.Sequential([L.Dense(1, input_dim=3)], dtype="float64")
    model.compile(loss="mse", optimizer=fn.optimizers.SGD(0.1))
    w_before = model.get_weights()
    grads = model.gradients(x, y)
    model.fit(x, y, batch_size=1000, epochs=1, verbose=0, shuffle=False)
    for w, g, after in zip(w_before, grads, model.get_weights()):
        np.testing.assert_allclose(after, w - 0.1 * g, rtol=1e-12)
    # batch 4 on 10 rows: 3 steps (4, 4, 2)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert model.optimizer.iterations == 4


def test_validation_split_is_stratified_and_random():
    fn.set_seed(0)
    y = np.repeat(np.arange(3), [60, 30, 10])
    x = np.random.default_rng(0).standard_normal((100, 2))
    model = fn.Sequential([L.Dense(3, activation="softmax", input_dim=2)])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    train, val = model._split(0.2, x, y, np.empty(0))
    assert np.bincount(y[val], minlength=3).tolist() == [12, 6, 2]
    assert len(train) == 80 and not set(train) & set(val)
    assert not np.array_equal(val, np.arange(80, 100))   # not the last rows


def test_validation_data_and_float64_option():
    fn.set_seed(0)
    x, y = make_data(64, 3, 2, "onehot")
    model = fn.Sequential([L.Dense(2, activation="softmax", input_dim=3)], dtype="float64")
    model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    h = model.fit(x, y, validation_data=(x[:10], y[:10]), epochs=2, verbose=0)
    assert len(h.history["val_loss"]) == 2
    assert model.get_weights()[0].dtype == np.float64


def test_verbose_output_has_one_line_per_epoch(capsys):
    fn.set_seed(0)
    x, y = make_data(64, 3, 2, "sparse")
    model = fn.Sequential([L.Dense(2, activation="softmax", input_dim=3)])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=3, verbose=1)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(lines) == 3
    for i, line in enumerate(lines):
        assert line.startswith(f"Epoch {i + 1}/3")
        assert "loss:" in line and "accuracy:" in line and "samples/s" in line


def test_add_summary_and_weights_roundtrip():
    model = fn.Sequential()
    model.add(L.Dense(5, input_dim=3))
    model.add(L.Activation("relu"))
    model.add(L.Dense(2))
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Total params: 32" in text and "activation" in text
    ws = [np.full(w.shape, 0.5) for w in model.get_weights()]
    model.set_weights(ws)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), ws))
    assert [w.shape for w in ws] == [(3, 5), (5,), (5, 2), (2,)]


@pytest.mark.parametrize("init", ["glorot_uniform", "glorot_normal", "he_uniform",
                                  "he_normal", "zeros"])
def test_initializers_scale(init):
    fn.set_seed(0)
    model = fn.Sequential([L.Dense(400, input_dim=300, kernel_initializer=init)])
    w = model.get_weights()[0]
    expected = {"glorot_uniform": np.sqrt(2 / 700), "glorot_normal": np.sqrt(2 / 700),
                "he_uniform": np.sqrt(2 / 300), "he_normal": np.sqrt(2 / 300),
                "zeros": 0.0}[init]
    assert w.std() == pytest.approx(expected, rel=0.03, abs=1e-12)


def test_training_step_allocates_no_arrays():
    """After the first epoch has made the buffers, further epochs allocate only small
    Python objects (floats, slices, the epoch's permutation), never batch-sized arrays."""
    fn.set_seed(0)
    x, y = make_data(4096, 64, 10, "sparse")
    x = x.astype(np.float32)
    model = fn.Sequential([L.Dense(256, activation="relu", input_dim=64), L.Dropout(0.1),
                           L.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    tracemalloc.start()
    model.fit(x, y, batch_size=64, epochs=3, verbose=0)
    snapshot = tracemalloc.take_snapshot()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # One batch's activations are 64*256*4 = 64 KiB; 3 epochs x 64 steps of allocating
    # them would peak far above this. The fit call itself makes a permutation (32 KiB)
    # and the int64 index of the rows (32 KiB) per epoch.
    assert peak < 200_000, snapshot.statistics("lineno")[:5]


def test_threads_setting():
    previous = fn.get_num_threads()
    fn.set_num_threads(1)
    assert fn.get_num_threads() == 1
    fn.set_num_threads(previous)


@pytest.mark.parametrize("pieces", [1, 2, 3])
def test_maxout_gradient_and_forward(pieces):
    fn.set_seed(8)
    model = fn.Sequential([L.Maxout(4, pieces=pieces, input_dim=3,
                                    kernel_regularizer=fn.regularizers.l2(0.01)),
                           L.Maxout(3, pieces=pieces), L.Dense(2, activation="softmax")],
                          dtype="float64")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    x, y = make_data(6, 3, 2, "sparse")
    assert_gradients_match(model, x, y)
    w0, b0 = model.get_weights()[:2]
    z = (x @ w0 + b0).reshape(6, 4, pieces)
    ws = model._inference_workspace(6, False)
    model._forward(np.ascontiguousarray(x), ws, False)
    np.testing.assert_allclose(ws.bufs[0].out, z.max(axis=2), rtol=1e-12)
    assert model.layers[0].count_params() == 3 * 4 * pieces + 4 * pieces


def test_maxout_learns_xor():
    fn.set_seed(1)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    y = np.array([0, 1, 1, 0])
    model = fn.Sequential([L.Maxout(4, pieces=3, input_dim=2),
                           L.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=fn.optimizers.Adam(0.05),
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=4, epochs=300, verbose=0)
    assert model.evaluate(x, y)[1] == 1.0
