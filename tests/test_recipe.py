"""Issue 4, "the training recipe": callbacks (early stopping on every exit path,
TerminateOnNaN, ReduceLROnPlateau, LearningRateScheduler, CSVLogger, the progress bar,
custom callbacks), class and sample weights, dropout statistics, the gradient monitor,
fn.recipe.diagnose on constructed and real runs, plots, fn.utils.check_gradients and the
regularization penalty in the reported loss.

The finite-difference checks of Dense/Activation/Dropout/Maxout/regularizer gradients live
in test_models.py and are not repeated here.
"""
import builtins
import csv
import io
import math
import sys

import numpy as np
import pytest

import fastnn as fn
from fastnn import callbacks as C
from fastnn import layers as L

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------- helpers --

def regression_data(n=64, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = x @ rng.standard_normal((d, 1)) + 0.1 * rng.standard_normal((n, 1))
    return x, y


def classification_data(n=60, d=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = rng.integers(0, classes, n)
    return x, y


def small_model(seed=0, lr=0.05, dtype="float64", d=5, out=1):
    fn.set_seed(seed)
    model = fn.Sequential([L.Dense(8, activation="tanh", input_dim=d, name="h"),
                           L.Dense(out, name="o")], dtype=dtype)
    model.compile(loss="mse", optimizer=fn.optimizers.SGD(lr))
    return model


class Scripted(C.Callback):
    """Puts a scripted value of `key` into the epoch logs (must come before the callback
    that reads it), so which epoch is 'best' is under the test's control."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = float(self.values[epoch])


class WeightRecorder(C.LambdaCallback):
    """Copies of the weights at the end of each epoch (LambdaCallback on_epoch_end)."""

    def __init__(self):
        self.per_epoch = {}
        super().__init__(on_epoch_end=lambda epoch, logs: self.per_epoch.__setitem__(
            epoch, self.model.get_weights()))


def same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(u, w) for u, w in zip(a, b))


class TTY(io.StringIO):
    def isatty(self):
        return True


# ------------------------------------------------------------------ EarlyStopping --

def fit_with_script(model, values, es, epochs=None, extra=()):
    x, y = regression_data()
    rec = WeightRecorder()
    h = model.fit(x, y, epochs=epochs or len(values), batch_size=16, verbose=0,
                  callbacks=[Scripted("score", values), es, rec, *extra])
    return h, rec


def test_early_stopping_patience_restores_best_epoch():
    model = small_model()
    es = C.EarlyStopping(monitor="score", patience=2, restore_best_weights=True)
    h, rec = fit_with_script(model, [5, 3, 4, 4, 4, 0, 0, 0], es)
    # best at epoch 1; epochs 2 and 3 do not improve -> stops after epoch 3
    assert h.epoch == [0, 1, 2, 3]
    assert es.stopped_epoch == 3 and es.best_epoch == 1 and es.best == 3
    assert not same_weights(rec.per_epoch[1], rec.per_epoch[3])
    assert same_weights(model.get_weights(), rec.per_epoch[1])


def test_early_stopping_without_restore_keeps_last_weights():
    model = small_model()
    es = C.EarlyStopping(monitor="score", patience=1)
    h, rec = fit_with_script(model, [5, 3, 4, 4, 4], es)
    assert h.epoch == [0, 1, 2]
    assert same_weights(model.get_weights(), rec.per_epoch[2])


def test_early_stopping_restores_when_running_out_of_epochs():
    model = small_model()
    es = C.EarlyStopping(monitor="score", patience=10, restore_best_weights=True)
    h, rec = fit_with_script(model, [5, 1, 3, 4, 2], es)
    assert h.epoch == [0, 1, 2, 3, 4] and es.stopped_epoch == 0
    assert same_weights(model.get_weights(), rec.per_epoch[1])
    assert not same_weights(rec.per_epoch[1], rec.per_epoch[4])


def test_early_stopping_restores_when_another_callback_raises():
    class Boom(Exception):
        pass

    def explode(epoch, logs):
        if epoch == 4:
            raise Boom("a callback failed")

    model = small_model()
    es = C.EarlyStopping(monitor="score", patience=10, restore_best_weights=True)
    x, y = regression_data()
    rec = WeightRecorder()
    with pytest.raises(Boom):
        model.fit(x, y, epochs=8, batch_size=16, verbose=0,
                  callbacks=[Scripted("score", [5, 4, 2, 3, 6, 0, 0, 0]), es, rec,
                             C.LambdaCallback(on_epoch_end=explode)])
    assert sorted(rec.per_epoch) == [0, 1, 2, 3, 4]
    assert model.epochs_trained == 5
    assert same_weights(model.get_weights(), rec.per_epoch[2])


@pytest.mark.parametrize("terminate", [False, True])
def test_early_stopping_restores_when_the_loss_becomes_non_finite(terminate):
    # Diverging training ended by fit's FloatingPointError or by TerminateOnNaN.
    x, y = regression_data()
    fn.set_seed(0)
    model = fn.Sequential([L.Dense(1, input_dim=5)], dtype="float64")
    model.compile(loss="mse", optimizer=fn.optimizers.SGD(10.0))
    es = C.EarlyStopping(monitor="score", patience=100, restore_best_weights=True)
    rec = WeightRecorder()
    scores = [3, 2, 1] + [5] * 200
    cbs = [Scripted("score", scores), es, rec] + ([C.TerminateOnNaN()] if terminate else [])
    if terminate:
        model.fit(x, y, epochs=200, batch_size=16, verbose=0, callbacks=cbs)
    else:
        with pytest.raises(FloatingPointError):
            model.fit(x, y, epochs=200, batch_size=16, verbose=0, callbacks=cbs)
    assert len(rec.per_epoch) > 5
    assert same_weights(model.get_weights(), rec.per_epoch[2])


def test_early_stopping_resets_when_reused():
    es = C.EarlyStopping(monitor="score", patience=1, restore_best_weights=True)
    model = small_model()
    _, rec1 = fit_with_script(model, [0.1, 0.2, 0.3], es)
    assert es.best == 0.1
    # Second fit: every value is worse than the first fit's best. A stale state would
    # stop at once and put back the first fit's weights.
    h, rec2 = fit_with_script(model, [9, 7, 8, 8, 8], es)
    assert h.epoch == [0, 1, 2]
    assert es.best == 7 and es.best_epoch == 1
    assert same_weights(model.get_weights(), rec2.per_epoch[1])
    assert not same_weights(model.get_weights(), rec1.per_epoch[0])


def test_early_stopping_start_from_epoch():
    model = small_model()
    es = C.EarlyStopping(monitor="score", patience=1, restore_best_weights=True,
                         start_from_epoch=2)
    # epochs 0 and 1 are warm-up: their (excellent) values are ignored
    h, rec = fit_with_script(model, [0, 0, 4, 3, 5, 6, 7], es)
    assert es.best_epoch == 3 and es.best == 3
    assert h.epoch == [0, 1, 2, 3, 4]
    assert same_weights(model.get_weights(), rec.per_epoch[3])


def test_early_stopping_mode_auto_accuracy_is_max():
    assert C.EarlyStopping(monitor="val_accuracy").mode == "max"
    assert C.EarlyStopping(monitor="accuracy").mode == "max"
    assert C.EarlyStopping(monitor="val_loss").mode == "min"
    assert C.EarlyStopping(monitor="val_loss", mode="max").mode == "max"
    with pytest.raises(ValueError):
        C.EarlyStopping(mode="sideways")
    es = C.EarlyStopping(monitor="val_accuracy", patience=2, restore_best_weights=True)
    x, y = regression_data()
    model = small_model()
    rec = WeightRecorder()
    h = model.fit(x, y, epochs=6, batch_size=16, verbose=0,
                  callbacks=[Scripted("val_accuracy", [0.5, 0.9, 0.8, 0.7, 0.95, 0.99]),
                             es, rec])
    assert h.epoch == [0, 1, 2, 3]
    assert es.best == 0.9
    assert same_weights(model.get_weights(), rec.per_epoch[1])


def test_early_stopping_baseline():
    # Improving, but never better than the baseline: stops after `patience` epochs.
    model = small_model()
    es = C.EarlyStopping(monitor="score", patience=2, baseline=0.5)
    h, _ = fit_with_script(model, [1.0, 0.9, 0.8, 0.7, 0.6], es)
    assert h.epoch == [0, 1]
    # Beating the baseline resets the patience as usual.
    model = small_model()
    es = C.EarlyStopping(monitor="score", patience=2, baseline=0.5)
    h, _ = fit_with_script(model, [1.0, 0.4, 0.3, 0.35, 0.36, 0.1], es)
    assert h.epoch == [0, 1, 2, 3, 4]


def test_early_stopping_min_delta_and_real_val_loss():
    model = small_model()
    es = C.EarlyStopping(monitor="score", patience=1, min_delta=0.5)
    h, _ = fit_with_script(model, [5, 4.8, 4.7, 1], es)   # 4.8 is not better by > 0.5
    assert h.epoch == [0, 1]
    # end to end on a real val_loss: a network memorizing noise
    fn.set_seed(3)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((80, 10))
    y = rng.integers(0, 2, 80)
    model = fn.Sequential([L.Dense(128, activation="relu", input_dim=10),
                           L.Dense(2, activation="softmax")], dtype="float64")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=fn.optimizers.Adam(0.01))
    es = C.EarlyStopping(patience=3, restore_best_weights=True)
    h = model.fit(x[:60], y[:60], validation_data=(x[60:], y[60:]), epochs=60,
                  batch_size=60, verbose=0, callbacks=[es])
    val = h.history["val_loss"]
    assert len(val) < 60 and es.best_epoch == int(np.argmin(val))
    assert model.evaluate(x[60:], y[60:], batch_size=20) == pytest.approx(min(val),
                                                                          rel=1e-12)


def test_early_stopping_validation():
    with pytest.raises(ValueError):
        C.EarlyStopping(patience=-1)
    model = small_model()
    x, y = regression_data()
    with pytest.warns(UserWarning, match="not available"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[C.EarlyStopping(monitor="nope")])


# ------------------------------------------------------------------ TerminateOnNaN --

def diverging_setup(dtype="float64", lr=10.0):
    x, y = regression_data()
    fn.set_seed(0)
    model = fn.Sequential([L.Dense(1, input_dim=5)], dtype=dtype)
    model.compile(loss="mse", optimizer=fn.optimizers.SGD(lr))
    return model, x, y


def test_terminate_on_nan_stops_after_the_bad_batch(capsys):
    model, x, y = diverging_setup()
    seen = []
    h = model.fit(x, y, epochs=200, batch_size=16, verbose=0,
                  callbacks=[C.TerminateOnNaN(),
                             C.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(
                                 logs["batch_loss"]))])
    assert len(h.epoch) < 200
    assert model.stop_training
    # the last batch the callbacks saw is the bad one, and nothing ran after it
    assert not math.isfinite(seen[-1]) and all(math.isfinite(v) for v in seen[:-1])
    assert "invalid loss" in capsys.readouterr().out
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert "learning_rate_too_high" in fn.recipe.diagnose(h).case_names()


def test_without_terminate_on_nan_fit_raises_naming_epoch_and_batch():
    model, x, y = diverging_setup()
    batches = []
    with pytest.raises(FloatingPointError, match=r"epoch (\d+), batch (\d+)") as info:
        model.fit(x, y, epochs=200, batch_size=16, verbose=0,
                  callbacks=[C.LambdaCallback(
                      on_train_batch_begin=lambda b, logs=None: batches.append(
                          (model.epochs_trained, b)))])
    epoch, batch = batches[-1]
    assert f"epoch {epoch + 1}, batch {batch}" in str(info.value)
    assert all(np.isfinite(w).all() for w in model.get_weights())


@pytest.mark.parametrize("on_nan", ["stop", "warn"])
def test_fit_on_nan_stop_and_warn(on_nan, recwarn, capsys):
    model, x, y = diverging_setup()
    h = model.fit(x, y, epochs=200, batch_size=16, verbose=0, on_nan=on_nan)
    assert len(h.epoch) < 200 and model.stop_training
    assert all(np.isfinite(w).all() for w in model.get_weights())
    warned = [w for w in recwarn if issubclass(w.category, RuntimeWarning)
              and "non-finite" in str(w.message)]
    assert len(warned) == (1 if on_nan == "warn" else 0)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError):
        model.fit(x, y, epochs=1, verbose=0, on_nan="ignore")


def test_float32_overflowing_update_is_detected_and_named():
    # Finite gradients, but w - lr*g overflows float32: the optimizer kernel counts
    # non-finite results in its pass and fit stops with an error saying so. (The weights
    # cannot be kept finite here without a copy per step; the error says to reload.)
    model, x, y = diverging_setup("float32", lr=100.0)
    with pytest.raises(FloatingPointError, match="overflowed|non-finite"):
        model.fit(x, y, epochs=200, batch_size=16, verbose=0)


def test_nan_epoch_is_visible_in_history_and_diagnosis():
    # Blows up within the first epoch, after several good batches.
    model, x, y = diverging_setup(lr=1e30)
    h = model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[C.TerminateOnNaN()])
    assert len(h.epoch) == 1
    assert "learning_rate_too_high" in fn.recipe.diagnose(h).case_names()
    assert not math.isfinite(h.history["loss"][-1])


# ---------------------------------------------------------- learning-rate callbacks --

def test_reduce_lr_on_plateau_factor_and_patience():
    model = small_model(lr=0.1)
    cb = C.ReduceLROnPlateau(monitor="score", factor=0.5, patience=2)
    h, _ = fit_with_script(model, [1.0] * 7, cb)
    # the learning rate used in each epoch; reductions after epochs 2 and 4 and 6
    assert h.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025,
                                                        0.025])
    assert model.optimizer.learning_rate == pytest.approx(0.0125)


def test_reduce_lr_on_plateau_real_plateau_of_the_loss():
    # A learning rate so small the loss cannot move by min_delta: a real plateau.
    x, y = regression_data()
    model = small_model(lr=1e-9)
    h = model.fit(x, y, epochs=4, batch_size=64, verbose=0,
                  callbacks=[C.ReduceLROnPlateau(monitor="loss", factor=0.1, patience=1)])
    # logs hold the rate each epoch used; the reduction comes after the epoch
    assert h.history["learning_rate"] == pytest.approx([1e-9, 1e-9, 1e-10, 1e-11],
                                                       rel=1e-12)
    assert model.optimizer.learning_rate == pytest.approx(1e-12, rel=1e-12)


def test_reduce_lr_on_plateau_improvement_resets_and_min_lr():
    model = small_model(lr=0.1)
    cb = C.ReduceLROnPlateau(monitor="score", factor=0.1, patience=1, min_lr=0.003)
    h, _ = fit_with_script(model, [5, 4, 4, 3, 3, 3, 3], cb)
    assert h.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.003,
                                                        0.003])
    assert model.optimizer.learning_rate == pytest.approx(0.003)


def test_reduce_lr_on_plateau_cooldown():
    # Keras's semantics: with cooldown=2, the epoch after a reduction is skipped and the
    # counter runs out in the next one, so with patience 1 a reduction every 2nd epoch.
    model = small_model(lr=1.0)
    cb = C.ReduceLROnPlateau(monitor="score", factor=0.5, patience=1, cooldown=2)
    h, _ = fit_with_script(model, [1.0] * 7, cb)
    assert h.history["learning_rate"] == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25, 0.125])
    model = small_model(lr=1.0)
    cb = C.ReduceLROnPlateau(monitor="score", factor=0.5, patience=1)
    h, _ = fit_with_script(model, [1.0] * 5, cb)
    assert h.history["learning_rate"] == pytest.approx([1, 1, 0.5, 0.25, 0.125])


def test_reduce_lr_on_plateau_validation():
    with pytest.raises(ValueError):
        C.ReduceLROnPlateau(factor=1.0)
    with pytest.raises(ValueError):
        C.ReduceLROnPlateau(mode="bad")
    assert C.ReduceLROnPlateau(monitor="val_accuracy").mode == "max"


def test_learning_rate_scheduler_sets_and_uses_the_rate():
    x, y = regression_data()
    model = small_model(lr=123.0)
    rec = WeightRecorder()
    w0 = model.get_weights()
    lrs = [0.1 * 0.5 ** e for e in range(4)]
    h = model.fit(x, y, epochs=4, batch_size=64, shuffle=False, verbose=0,
                  callbacks=[C.LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5 ** epoch),
                             rec])
    assert h.history["learning_rate"] == pytest.approx(lrs)
    assert model.optimizer.learning_rate == pytest.approx(lrs[-1])
    # each epoch's single SGD step used that epoch's rate: w_e = w_{e-1} - lr_e * g
    twin = small_model(lr=0.0)
    before = w0
    for e in range(4):
        twin.set_weights(before)
        g = twin.gradients(x, y)
        for got, w, gw in zip(rec.per_epoch[e], before, g):
            np.testing.assert_allclose(got, w - lrs[e] * gw, rtol=1e-10, atol=1e-13)
        before = rec.per_epoch[e]


def test_learning_rate_scheduler_receives_current_rate():
    x, y = regression_data()
    model = small_model(lr=0.2)
    got = []

    def schedule(epoch, lr):
        got.append((epoch, lr))
        return lr * 0.5

    model.fit(x, y, epochs=3, verbose=0, callbacks=[C.LearningRateScheduler(schedule)])
    assert got == [(0, pytest.approx(0.2)), (1, pytest.approx(0.1)), (2, pytest.approx(0.05))]
    with pytest.raises(TypeError):
        C.LearningRateScheduler(0.1)


# ------------------------------------------------------------------------ CSVLogger --

def test_csv_logger_rows_and_append(tmp_path):
    path = tmp_path / "log.csv"
    x, y = classification_data()
    fn.set_seed(0)
    model = fn.Sequential([L.Dense(3, activation="softmax", input_dim=4)])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd",
                  metrics=["accuracy"])
    h = model.fit(x, y, epochs=3, verbose=0, validation_split=0.2,
                  callbacks=[C.CSVLogger(path)], monitor_gradients=True)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    assert header[0] == "epoch"
    assert header[1:] == sorted(header[1:])
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(header)
    assert "grad_norm" not in header   # dicts are not CSV values
    assert len(rows) == 4
    for e, row in enumerate(rows[1:]):
        record = dict(zip(header, row))
        assert int(record["epoch"]) == e
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert float(record[key]) == h.history[key][e]
    # append: no second header, three more rows, numbered from the model's epoch 0 again
    model.fit(x, y, epochs=2, verbose=0, validation_split=0.2,
              callbacks=[C.CSVLogger(path, append=True)])
    with open(path, newline="") as f:
        rows2 = list(csv.reader(f))
    assert rows2[:4] == rows and len(rows2) == 6
    assert sum(r[0] == "epoch" for r in rows2) == 1
    # not appending: the file is rewritten
    model.fit(x, y, epochs=1, verbose=0, callbacks=[C.CSVLogger(path, separator=";")])
    with open(path) as f:
        lines = f.read().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch;")


# ---------------------------------------------------------------------- progress bar --

def progbar_fit(verbose, callbacks=(), epochs=3):
    x, y = classification_data(n=64)
    fn.set_seed(0)
    model = fn.Sequential([L.Dense(3, activation="softmax", input_dim=4)])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=verbose, callbacks=list(callbacks))


def test_progress_bar_not_a_terminal_one_line_per_epoch():
    stream = io.StringIO()
    progbar_fit(0, [C.ProgbarLogger(1, stream=stream)])
    out = stream.getvalue()
    assert "\r" not in out
    lines = out.splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines):
        assert line.startswith(f"Epoch {i + 1}/3 - 4/4")
        assert "loss:" in line and "accuracy:" in line and "samples/s" in line


def test_progress_bar_live_on_a_terminal():
    stream = TTY()
    progbar_fit(0, [C.ProgbarLogger(1, stream=stream)], epochs=2)
    out = stream.getvalue()
    assert out.count("\n") == 4              # "Epoch i/2" and the final line, per epoch
    assert out.startswith("Epoch 1/2\n")
    live = [seg for seg in out.split("\r") if "ETA" in seg]
    assert live, out
    assert all("samples/s" in seg and "loss:" in seg for seg in live)
    assert "4/4 [==============================]" in out


def test_progress_bar_verbose_1_on_patched_tty_stdout(monkeypatch):
    stream = TTY()
    monkeypatch.setattr(sys, "stdout", stream)
    progbar_fit(1, epochs=2)
    out = stream.getvalue()
    assert "\r" in out and "ETA" in out and "samples/s" in out


def test_progress_bar_verbose_2_is_one_line_per_epoch_even_on_a_tty(monkeypatch):
    stream = TTY()
    monkeypatch.setattr(sys, "stdout", stream)
    progbar_fit(2)
    out = stream.getvalue()
    assert "\r" not in out and "ETA" not in out
    assert [ln[:9] for ln in out.splitlines()] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]


def test_verbose_0_is_silent(capsys):
    progbar_fit(0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# ------------------------------------------------------------------ custom callbacks --

class Recorder(C.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []
        self.models = set()

    def _log(self, name):
        self.calls.append(name)
        self.models.add(id(self.model))

    def on_train_begin(self, logs=None): self._log("train_begin")
    def on_train_end(self, logs=None): self._log("train_end")
    def on_epoch_begin(self, epoch, logs=None): self._log(f"epoch_begin {epoch}")
    def on_epoch_end(self, epoch, logs=None): self._log(f"epoch_end {epoch}")
    def on_train_batch_begin(self, batch, logs=None): self._log(f"batch_begin {batch}")
    def on_train_batch_end(self, batch, logs=None): self._log(f"batch_end {batch}")


def test_custom_callback_hooks_in_keras_order():
    x, y = regression_data(n=48)
    model = small_model()
    rec = Recorder()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[rec])
    expected = ["train_begin"]
    for e in range(2):
        expected.append(f"epoch_begin {e}")
        for b in range(3):
            expected += [f"batch_begin {b}", f"batch_end {b}"]
        expected.append(f"epoch_end {e}")
    expected.append("train_end")
    assert rec.calls == expected
    assert rec.models == {id(model)}
    assert rec.params["epochs"] == 2 and rec.params["steps"] == 3


def test_stop_training_in_batch_end_stops_within_the_epoch():
    class StopAt(C.Callback):
        def __init__(self):
            super().__init__()
            self.batches = []

        def on_train_batch_end(self, batch, logs=None):
            self.batches.append((self.model.epochs_trained, batch))
            if self.model.epochs_trained == 1 and batch == 1:
                self.model.stop_training = True

    x, y = regression_data(n=80)
    model = small_model()
    cb = StopAt()
    h = model.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=[cb])
    assert cb.batches == [(0, b) for b in range(5)] + [(1, 0), (1, 1)]
    assert h.epoch == [0, 1] and model.epochs_trained == 2


def test_lambda_callback_keras_signatures_for_every_hook():
    x, y = regression_data(n=32)
    model = small_model()
    calls = []
    cb = C.LambdaCallback(
        on_train_begin=lambda logs: calls.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: calls.append("epoch_begin"),
        on_train_batch_begin=lambda batch, logs: calls.append("batch_begin"),
        on_train_batch_end=lambda batch, logs: calls.append("batch_end"),
        on_epoch_end=lambda epoch, logs: calls.append("epoch_end"),
        on_train_end=lambda logs: calls.append("train_end"))
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[cb])
    assert calls == ["train_begin", "epoch_begin", "batch_begin", "batch_end", "epoch_end",
                     "train_end"]


def test_callbacks_must_be_callback_objects():
    x, y = regression_data()
    model = small_model()
    with pytest.raises(TypeError, match="Callback"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[lambda: None])
    with pytest.raises(ValueError):
        C.LambdaCallback(on_something=print)


# -------------------------------------------------------- class and sample weights --

def weighted_model(loss="sparse_categorical_crossentropy", out=3, seed=0):
    fn.set_seed(seed)
    last = "sigmoid" if loss == "binary_crossentropy" else "softmax"
    model = fn.Sequential([L.Dense(6, activation="tanh", input_dim=4, name="h"),
                           L.Dense(out, activation=last, name="o")], dtype="float64")
    model.compile(loss=loss, optimizer=fn.optimizers.SGD(0.1))
    return model


def test_zero_sample_weight_equals_removing_the_sample():
    x, y = classification_data(n=20)
    model = weighted_model()
    w = np.ones(20)
    gone = np.array([2, 5, 11, 17])
    w[gone] = 0
    keep = np.setdiff1d(np.arange(20), gone)
    g_w = model.gradients(x, y, sample_weight=w)
    g_removed = model.gradients(x[keep], y[keep])
    # Keras's convention: the weighted sum is divided by the batch size n (not by the
    # sum of the weights), so the zero-weighted batch gives (n - k)/n of the gradient.
    for a, b in zip(g_w, g_removed):
        np.testing.assert_allclose(a * 20 / 16, b, rtol=1e-12, atol=1e-15)
    loss_w = model.evaluate(x, y, sample_weight=w, batch_size=7)
    assert loss_w * 20 / 16 == pytest.approx(model.evaluate(x[keep], y[keep]), rel=1e-12)
    # and the zero-weighted samples have no influence at all: changing them changes nothing
    x2, y2 = x.copy(), y.copy()
    x2[gone] = 100.0
    y2[gone] = (y2[gone] + 1) % 3
    for a, b in zip(g_w, model.gradients(x2, y2, sample_weight=w)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("loss,out", [("sparse_categorical_crossentropy", 3),
                                      ("categorical_crossentropy", 3),
                                      ("binary_crossentropy", 1)])
def test_class_weight_equals_sample_weight_and_both_multiply(loss, out):
    x, labels = classification_data(n=40, classes=max(out, 2))
    y = {"sparse_categorical_crossentropy": labels,
         "categorical_crossentropy": np.eye(3)[labels],
         "binary_crossentropy": labels[:, None].astype(float)}[loss]
    cw = {0: 2.0, 1: 0.5} if out == 1 else {0: 2.0, 2: 0.25}
    table = np.ones(3)
    for c, v in cw.items():
        table[c] = v
    sw = np.random.default_rng(1).random(40) + 0.5

    def trained(**kw):
        model = weighted_model(loss, out)
        h = model.fit(x, y, epochs=3, batch_size=16, verbose=0, **kw)
        return model.get_weights(), h.history["loss"]

    w_cw, l_cw = trained(class_weight=cw)
    w_sw, l_sw = trained(sample_weight=table[labels])
    assert same_weights(w_cw, w_sw) and l_cw == l_sw
    w_both, l_both = trained(class_weight=cw, sample_weight=sw)
    w_prod, l_prod = trained(sample_weight=sw * table[labels])
    assert same_weights(w_both, w_prod) and l_both == l_prod
    w_plain, _ = trained()
    assert not same_weights(w_cw, w_plain)
    # train_on_batch's class_weight: the loss before the step equals the weighted evaluate
    model = weighted_model(loss, out)
    expected = model.evaluate(x, y, sample_weight=table[labels], batch_size=40)
    assert model.train_on_batch(x, y, class_weight=cw) == pytest.approx(expected, rel=1e-12)


# ----------------------------------------------------------------------------- dropout --

def dropout_output(rate, x, key, dtype=np.float64):
    layer = L.Dropout(rate)
    layer.build(x.shape[1])
    buf = layer.make_buffers(x.shape[0], dtype, True, False)
    out = layer.forward(np.ascontiguousarray(x, dtype), buf, True, key)
    return out.copy(), buf.mask.copy()


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_kept_fraction_and_scaling(rate):
    n, m = 400, 250                              # 100,000 units
    x = np.random.default_rng(0).standard_normal((n, m)) + 3.0   # no exact zeros
    out, mask = dropout_output(rate, x, key=12345)
    kept = out != 0
    N, p = kept.size, 1 - rate
    # 6 standard deviations of a binomial: a false alarm has probability ~2e-9
    assert abs(kept.mean() - p) < 6 * math.sqrt(p * (1 - p) / N)
    np.testing.assert_allclose(out[kept], x[kept] / (1 - rate), rtol=1e-15)
    assert set(np.unique(mask)) == {0.0, 1 / (1 - rate)}
    # no structure: every column and every row keeps about the same fraction
    col = kept.mean(axis=0)
    assert np.all(np.abs(col - p) < 6 * math.sqrt(p * (1 - p) / n))
    row = kept.mean(axis=1)
    assert np.all(np.abs(row - p) < 6 * math.sqrt(p * (1 - p) / m))
    # neighbours are independent: P(both kept) ~ p^2
    both = (kept[:, 1:] & kept[:, :-1]).mean()
    assert abs(both - p * p) < 6 * math.sqrt(p * p * (1 - p * p) / (n * (m - 1)))
    # float32 masks give the same statistics
    out32, _ = dropout_output(rate, x, key=12345, dtype=np.float32)
    assert abs((out32 != 0).mean() - p) < 6 * math.sqrt(p * (1 - p) / N)


def test_dropout_masks_depend_on_key_only():
    x = np.ones((50, 40))
    a, _ = dropout_output(0.5, x, key=7)
    b, _ = dropout_output(0.5, x, key=7)
    c, _ = dropout_output(0.5, x, key=8)
    assert np.array_equal(a, b)
    agree = ((a != 0) == (c != 0)).mean()        # independent masks agree half the time
    assert abs(agree - 0.5) < 6 * math.sqrt(0.25 / x.size)


def dropout_net(rate, seed, dropout_seed=None, with_dropout=True):
    fn.set_seed(seed)
    layers = [L.Dense(16, activation="tanh", input_dim=4, name="a")]
    if with_dropout:
        layers.append(L.Dropout(rate, seed=dropout_seed, name="drop"))
    layers.append(L.Dense(2, name="b"))
    model = fn.Sequential(layers, dtype="float64")
    model.compile(loss="mse", optimizer=fn.optimizers.SGD(0.05))
    return model


def test_dropout_inference_is_identity_and_deterministic():
    x, y = regression_data(n=30, d=4)
    y = np.hstack([y, -y])
    with_d = dropout_net(0.5, 1)
    without = dropout_net(0.5, 1, with_dropout=False)
    without.set_weights(with_d.get_weights())
    p1 = with_d.predict(x)
    np.testing.assert_array_equal(p1, with_d.predict(x))
    np.testing.assert_array_equal(p1, without.predict(x))
    assert with_d.evaluate(x, y) == without.evaluate(x, y)
    # while training-mode gradients do see the masks
    g_d, g_n = with_d.gradients(x, y), without.gradients(x, y)
    assert not np.allclose(g_d[0], g_n[0])


def test_dropout_same_seed_same_masks():
    x, y = regression_data(n=30, d=4)
    y = np.hstack([y, -y])
    a, b = dropout_net(0.5, 1), dropout_net(0.5, 1)
    for u, v in zip(a.gradients(x, y), b.gradients(x, y)):
        np.testing.assert_array_equal(u, v)
    a.fit(x, y, epochs=3, batch_size=8, verbose=0)
    b.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert same_weights(a.get_weights(), b.get_weights())
    # another model seed: other masks
    c = dropout_net(0.5, 2)
    c.set_weights(dropout_net(0.5, 1).get_weights())
    g1 = dropout_net(0.5, 1).gradients(x, y)
    assert not np.array_equal(c.gradients(x, y)[0], g1[0])
    # a layer seed overrides the model seed
    d = dropout_net(0.5, 1, dropout_seed=99)
    e = dropout_net(0.5, 2, dropout_seed=99)
    e.set_weights(d.get_weights())
    for u, v in zip(d.gradients(x, y), e.gradients(x, y)):
        np.testing.assert_array_equal(u, v)


def test_dropout_rate_zero_passes_through():
    x = np.random.default_rng(0).standard_normal((5, 3))
    layer = L.Dropout(0.0)
    layer.build(3)
    buf = layer.make_buffers(5, np.float64, True, False)
    assert layer.forward(x, buf, True, 1) is x
    assert buf.mask.size == 0
    xr, y = regression_data(n=30, d=4)
    y = np.hstack([y, -y])
    with_d = dropout_net(0.0, 1)
    without = dropout_net(0.0, 1, with_dropout=False)
    for u, v in zip(with_d.gradients(xr, y), without.gradients(xr, y)):
        np.testing.assert_array_equal(u, v)
    with_d.fit(xr, y, epochs=2, batch_size=8, verbose=0)
    without.fit(xr, y, epochs=2, batch_size=8, verbose=0)
    assert same_weights(with_d.get_weights(), without.get_weights())
    for bad in (-0.1, 1.0, True, "0.5"):
        with pytest.raises(ValueError):
            L.Dropout(bad)


# ------------------------------------------------------------------ gradient monitor --

def monitored_model(lr=0.5):
    fn.set_seed(4)
    model = fn.Sequential([L.Dense(8, activation="tanh", input_dim=5, name="first"),
                           L.Dropout(0.0, name="nothing"),
                           L.Dense(6, activation="tanh", name="middle"),
                           L.Dense(1, name="last", use_bias=False)], dtype="float64")
    model.compile(loss="mse", optimizer=fn.optimizers.SGD(lr))
    return model


def test_monitor_gradients_history_layout():
    x, y = regression_data()
    model = monitored_model()
    h = model.fit(x, y, epochs=3, batch_size=16, verbose=0, monitor_gradients=True)
    for key in ("grad_norm", "update_ratio"):
        assert len(h.history[key]) == 3
        for entry in h.history[key]:
            assert list(entry) == ["first", "middle", "last"]
            assert all(v > 0 and math.isfinite(v) for v in entry.values())
    # the callback form gives the same numbers
    model2 = monitored_model()
    h2 = model2.fit(x, y, epochs=3, batch_size=16, verbose=0,
                    callbacks=[C.GradientMonitor()])
    assert h2.history["grad_norm"] == h.history["grad_norm"]
    assert h2.history["update_ratio"] == h.history["update_ratio"]
    with pytest.raises(ValueError):
        C.GradientMonitor(samples_per_epoch=0)


def layer_norms(arrays, model):
    out, i = {}, 0
    for layer in model.layers:
        k = len(layer.weights)
        if k:
            out[layer.name] = math.sqrt(sum(float(np.sum(a ** 2)) for a in arrays[i:i + k]))
        i += k
    return out


def monitored_steps(lr, steps=3):
    """One SGD step per epoch, one fit per epoch: (gradient, weights before, weights
    after, history) of each step, the gradient from model.gradients before the step."""
    x, y = regression_data()
    model = monitored_model(lr)
    out = []
    for _ in range(steps):
        g = model.gradients(x, y)
        w = model.get_weights()
        h = model.fit(x, y, epochs=1, batch_size=64, verbose=0, monitor_gradients=True)
        out.append((layer_norms(g, model), layer_norms(w, model),
                    layer_norms(model.get_weights(), model), h.history))
        # the step really was w - lr * g
        for got, w0, g0 in zip(model.get_weights(), w, g):
            np.testing.assert_allclose(got, w0 - lr * g0, rtol=1e-10, atol=1e-14)
    return out


def test_update_ratio_is_lr_times_grad_norm_over_weight_norm():
    lr = 0.5
    for gn, wn_before, wn_after, history in monitored_steps(lr):
        assert history["grad_norm"][0] == pytest.approx(gn, rel=1e-10)
        ratio = history["update_ratio"][0]
        # η‖g‖/‖w‖, with ‖w‖ the weight norm before or after the step (they differ by
        # a few % here); see the strict test below for which one
        for k in gn:
            lo = lr * gn[k] / max(wn_before[k], wn_after[k])
            hi = lr * gn[k] / min(wn_before[k], wn_after[k])
            assert lo * (1 - 1e-9) <= ratio[k] <= hi * (1 + 1e-9)


def test_update_ratio_uses_the_weights_before_the_step():
    lr = 0.5
    for gn, wn_before, _, history in monitored_steps(lr):
        expected = {k: lr * gn[k] / wn_before[k] for k in gn}
        assert history["update_ratio"][0] == pytest.approx(expected, rel=1e-9)


def test_gradient_monitor_averages_sampled_steps():
    # 4 steps, 2 samples per epoch: steps 0 and 2 are sampled and averaged.
    x, y = regression_data()
    model = monitored_model(lr=0.1)
    norms = []

    def record(batch, logs):
        if batch % 2 == 0:
            norms.append(layer_norms([g.copy() for layer in model.layers
                                      for g in layer.gradients], model))

    h = model.fit(x, y, epochs=1, batch_size=16, verbose=0,
                  callbacks=[C.GradientMonitor(samples_per_epoch=2),
                             C.LambdaCallback(on_train_batch_end=record)])
    expected = {k: (norms[0][k] + norms[1][k]) / 2 for k in norms[0]}
    assert h.history["grad_norm"][0] == pytest.approx(expected, rel=1e-10)


# ---------------------------------------------------------------- diagnose: built --

def grads(first, last, middle=None):
    d = {"dense_1": first}
    if middle is not None:
        d["dense_2"] = middle
    d["dense_3"] = last
    return d


HEALTHY = {"grad_norm": [grads(0.1, 0.2)] * 5, "update_ratio": [grads(1e-3, 1e-3)] * 5}

CASES = {
    "nan": ({"loss": [1.0, 0.8, float("nan")], **HEALTHY}, "learning_rate_too_high"),
    "inf": ({"loss": [1.0, float("inf")]}, "learning_rate_too_high"),
    "diverging": ({"loss": [1.0, 0.9, 2.0, 5.0, 40.0], "accuracy": [0.5] * 5, **HEALTHY},
                  "learning_rate_too_high"),
    "not_good": ({"loss": [1.0, 0.99, 0.98, 0.975, 0.97],
                  "accuracy": [0.4, 0.41, 0.42, 0.42, 0.43], **HEALTHY},
                 "not_good_on_training"),
    "low_accuracy": ({"loss": [2.0, 1.0, 0.7], "accuracy": [0.3, 0.6, 0.7]},
                     "not_good_on_training"),
    "vanishing": ({"loss": [1.0, 0.5, 0.2], "accuracy": [0.6, 0.9, 0.95],
                   "grad_norm": [grads(1e-6, 1e-1, 1e-3)] * 3,
                   "update_ratio": [grads(1e-3, 1e-3, 1e-3)] * 3}, "vanishing_gradients"),
    "exploding": ({"loss": [1.0, 0.5, 0.2], "accuracy": [0.6, 0.9, 0.95],
                   "grad_norm": [grads(1e3, 1e-1)] * 3,
                   "update_ratio": [grads(1e-3, 1e-3)] * 3}, "exploding_gradients"),
    "too_low": ({"loss": [1.0, 0.5, 0.2], "accuracy": [0.6, 0.9, 0.95],
                 "grad_norm": [grads(0.1, 0.2)] * 3,
                 "update_ratio": [grads(1e-8, 1e-7)] * 3}, "learning_rate_too_low"),
    "overfitting": ({"loss": [1.0, 0.5, 0.2, 0.1, 0.05],
                     "accuracy": [0.6, 0.8, 0.95, 0.99, 1.0],
                     "val_loss": [1.0, 0.7, 0.8, 1.0, 1.4],
                     "val_accuracy": [0.6, 0.7, 0.7, 0.68, 0.66], **HEALTHY}, "overfitting"),
    "overfitting_loss_only": ({"loss": [1.0, 0.5, 0.2, 0.1, 0.05],
                               "val_loss": [1.0, 0.6, 0.5, 0.7, 0.9]}, "overfitting"),
    "good": ({"loss": [1.0, 0.5, 0.2, 0.1], "accuracy": [0.6, 0.9, 0.96, 0.98],
              "val_loss": [1.0, 0.55, 0.25, 0.12], "val_accuracy": [0.6, 0.9, 0.95, 0.97],
              **HEALTHY}, "good"),
    "good_on_training": ({"loss": [1.0, 0.5, 0.2, 0.1], "accuracy": [0.6, 0.9, 0.96, 0.98],
                          **HEALTHY}, "good_on_training"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_diagnose_constructed_histories(name):
    history, case = CASES[name]
    report = fn.recipe.diagnose(history)
    assert report.case_names() == [case], str(report)
    assert report.primary.case == case
    assert report.primary.suggestions == fn.recipe.SUGGESTIONS[case]
    assert report.primary.evidence


def test_diagnose_several_cases_in_recipe_order():
    history = {"loss": [1.0, 0.99, 0.985], "accuracy": [0.5, 0.5, 0.52],
               "grad_norm": [grads(1e-7, 1e-1)] * 3, "update_ratio": [grads(1e-9, 1e-8)] * 3}
    report = fn.recipe.diagnose(history)
    assert report.case_names() == ["not_good_on_training", "vanishing_gradients",
                                   "learning_rate_too_low"]
    assert report.primary.case == "not_good_on_training"
    assert report.cases[1].numbers["first_to_last"] == pytest.approx(1e-6)
    # instability suppresses the training and held-out findings
    history = {"loss": [1.0, float("nan")], "accuracy": [0.1, 0.1], "val_loss": [1.0, 9.0],
               "val_accuracy": [0.5, 0.1], "grad_norm": [grads(1e-7, 1e-1)] * 2,
               "update_ratio": [grads(1e-9, 1e-9)] * 2}
    report = fn.recipe.diagnose(history)
    assert report.case_names() == ["learning_rate_too_high", "vanishing_gradients"]
    assert report.primary.numbers == {"nan_epoch": 2}


def test_diagnose_report_prints_and_as_dict(capsys):
    history, _ = CASES["overfitting"]
    report = fn.recipe.diagnose(history)
    print(report)
    text = capsys.readouterr().out
    assert text.startswith("Training diagnosis")
    assert "1. overfitting: training accuracy 1.000 vs validation 0.660" in text
    assert "early stopping" in text
    d = report.as_dict()
    assert d["primary"] == "overfitting"
    assert d["cases"][0]["case"] == "overfitting"
    assert d["cases"][0]["numbers"]["accuracy_gap"] == pytest.approx(0.34)
    assert d["cases"][0]["numbers"]["best_val_epoch"] == 2
    assert d["cases"][0]["suggestions"] == fn.recipe.SUGGESTIONS["overfitting"]
    import json
    json.dumps(d)      # plain data
    # a History object works like its dict; no loss is an error
    hist = C.History()
    hist.history = history
    assert fn.recipe.diagnose(hist).case_names() == ["overfitting"]
    with pytest.raises(ValueError, match="loss"):
        fn.recipe.diagnose({"accuracy": [0.5]})


# ----------------------------------------------------------------- diagnose: real --

def test_diagnose_real_deep_sigmoid_network_vanishing_gradients():
    fn.set_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 10))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    model = fn.Sequential([L.Dense(32, activation="sigmoid", input_dim=10)] +
                          [L.Dense(32, activation="sigmoid") for _ in range(7)] +
                          [L.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=fn.optimizers.SGD(0.1),
                  metrics=["accuracy"])
    h = model.fit(x, y, epochs=3, batch_size=64, verbose=0, monitor_gradients=True)
    report = fn.recipe.diagnose(h)
    assert "vanishing_gradients" in report.case_names(), str(report)
    names = [layer.name for layer in model.layers]
    norms = h.history["grad_norm"][-1]
    assert list(norms) == names
    assert norms[names[0]] < 1e-2 * norms[names[-1]]


def test_diagnose_real_memorizing_noise_is_overfitting():
    fn.set_seed(0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((100, 20))
    y = rng.integers(0, 2, 100)                  # random labels: nothing to generalize
    model = fn.Sequential([L.Dense(256, activation="relu", input_dim=20),
                           L.Dense(256, activation="relu"),
                           L.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=fn.optimizers.Adam(0.01),
                  metrics=["accuracy"])
    h = model.fit(x, y, epochs=40, batch_size=100, verbose=0, validation_split=0.3,
                  monitor_gradients=True)
    report = fn.recipe.diagnose(h)
    assert report.primary.case == "overfitting", str(report)
    assert h.history["accuracy"][-1] > 0.95


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # monitor of the bad step
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_diagnose_real_learning_rate_too_high(dtype, capsys):
    model, x, y = diverging_setup(dtype, lr=10.0)
    h = model.fit(x, y, epochs=100, batch_size=16, verbose=0, monitor_gradients=True,
                  callbacks=[C.TerminateOnNaN()])
    assert len(h.epoch) < 100
    report = fn.recipe.diagnose(h)
    assert report.primary.case == "learning_rate_too_high", str(report)


def test_diagnose_real_good_run():
    fn.set_seed(0)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 2))
    y = (x[:, 0] > x[:, 1]).astype(np.int64)
    model = fn.Sequential([L.Dense(16, activation="relu", input_dim=2),
                           L.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=fn.optimizers.Adam(0.02),
                  metrics=["accuracy"])
    h = model.fit(x, y, epochs=20, batch_size=32, verbose=0, validation_split=0.25,
                  monitor_gradients=True)
    assert fn.recipe.diagnose(h).case_names() == ["good"], str(fn.recipe.diagnose(h))


# -------------------------------------------------------------------------- plots --

@pytest.fixture(scope="module")
def trained_history():
    x, y = classification_data(n=80)
    fn.set_seed(0)
    model = fn.Sequential([L.Dense(8, activation="relu", input_dim=4),
                           L.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy"])
    return model.fit(x, y, epochs=3, verbose=0, validation_split=0.25,
                     monitor_gradients=True)


def test_plot_history_and_gradients_write_png(tmp_path, trained_history):
    pytest.importorskip("matplotlib")
    p = fn.plot.history(trained_history, tmp_path / "h.png")
    assert p == tmp_path / "h.png"
    data = (tmp_path / "h.png").read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    fn.plot.gradients(trained_history.history, str(tmp_path / "g.png"))
    data = (tmp_path / "g.png").read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000


def test_plot_gradients_needs_monitor(tmp_path):
    with pytest.raises(ValueError, match="monitor_gradients"):
        fn.plot.gradients({"loss": [1.0]}, tmp_path / "g.png")
    with pytest.raises(ValueError):
        fn.plot.history({"accuracy": [1.0]}, tmp_path / "h.png")


@pytest.mark.parametrize("how", ["sys_modules", "import_hook"])
def test_plot_without_matplotlib_says_pip_install(tmp_path, monkeypatch, trained_history,
                                                  how):
    if how == "sys_modules":
        monkeypatch.setitem(sys.modules, "matplotlib", None)
    else:
        real_import = builtins.__import__

        def fake_import(name, *args, **kwargs):
            if name == "matplotlib" or name.startswith("matplotlib."):
                raise ImportError("No module named 'matplotlib'")
            return real_import(name, *args, **kwargs)
        monkeypatch.setattr(builtins, "__import__", fake_import)
    for plot in (fn.plot.history, fn.plot.gradients):
        with pytest.raises(ImportError, match="pip install"):
            plot(trained_history, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# ------------------------------------------------------------------ check_gradients --

def checkable_model():
    fn.set_seed(8)
    model = fn.Sequential([
        L.Dense(6, activation="tanh", input_dim=4, name="d1",
                kernel_regularizer=fn.regularizers.l1_l2(l1=0.01, l2=0.02),
                bias_regularizer=fn.regularizers.l2(0.05)),
        L.Maxout(5, pieces=3, name="mx", kernel_regularizer=fn.regularizers.l2(0.01),
                 bias_regularizer=fn.regularizers.l1(0.01)),
        L.Dense(3, activation="softmax", name="d2")])          # float32
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    rng = np.random.default_rng(8)
    model.set_weights([w + 0.1 * rng.standard_normal(w.shape) for w in model.get_weights()])
    x, y = classification_data(n=12, d=4)
    return model, x, y


def test_check_gradients_small_for_a_correct_model():
    model, x, y = checkable_model()
    before = model.get_weights()
    report = fn.utils.check_gradients(model, x, y)
    assert sorted(report) == sorted(["d1/kernel", "d1/bias", "mx/kernel", "mx/bias",
                                     "d2/kernel", "d2/bias"])
    assert max(report.values()) < 1e-5, report
    assert same_weights(before, model.get_weights())          # the original is untouched
    assert model.dtype == np.float32
    sw = np.random.default_rng(0).random(12)
    assert max(fn.utils.check_gradients(model, x, y, sample_weight=sw).values()) < 1e-5


def test_check_gradients_catches_a_broken_backward(monkeypatch):
    model, x, y = checkable_model()
    original = L.Dense.backward

    def broken(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        self.dW *= 1.1
        return out

    monkeypatch.setattr(L.Dense, "backward", broken)
    report = fn.utils.check_gradients(model, x, y)
    assert report["d1/kernel"] > 1e-2 and report["d2/kernel"] > 1e-2, report
    # Maxout has its own backward: still right
    assert report["mx/kernel"] < 1e-5 and report["mx/bias"] < 1e-5


def test_check_gradients_needs_a_compiled_model():
    model = fn.Sequential([L.Dense(2, input_dim=3)])
    model.build()
    with pytest.raises(ValueError, match="compile"):
        fn.utils.check_gradients(model, np.ones((2, 3)), np.ones((2, 2)))


# ------------------------------------------------------------------- regularizers --

def penalized_model(dtype):
    fn.set_seed(9)
    model = fn.Sequential([
        L.Dense(5, activation="tanh", input_dim=4, name="p1",
                kernel_regularizer=fn.regularizers.l1_l2(l1=0.01, l2=0.02),
                bias_regularizer=fn.regularizers.l1(0.03)),
        L.Maxout(3, pieces=2, name="p2", kernel_regularizer=fn.regularizers.l2(0.05),
                 bias_regularizer=fn.regularizers.l1_l2(l1=0.002, l2=0.004)),
        L.Dense(2, name="p3")], dtype=dtype)
    model.compile(loss="mse", optimizer=fn.optimizers.SGD(0.0))
    rng = np.random.default_rng(9)
    model.set_weights([w + 0.3 * rng.standard_normal(w.shape) for w in model.get_weights()])
    return model


def numpy_forward(weights, x):
    W1, b1, W2, b2, W3, b3 = weights
    h = np.tanh(x @ W1 + b1)
    z = h @ W2 + b2
    h2 = z.reshape(len(x), 3, 2).max(axis=2)
    return h2 @ W3 + b3


def numpy_penalty(weights):
    W1, b1, W2, b2, W3, b3 = weights
    return (0.01 * np.abs(W1).sum() + 0.02 * (W1 ** 2).sum() + 0.03 * np.abs(b1).sum()
            + 0.05 * (W2 ** 2).sum() + 0.002 * np.abs(b2).sum() + 0.004 * (b2 ** 2).sum())


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 1e-5)])
def test_reported_loss_includes_the_penalty_exactly(dtype, rtol):
    model = penalized_model(dtype)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((40, 4))
    y = rng.standard_normal((40, 2))
    weights = [w.astype(np.float64) for w in model.get_weights()]
    mse = np.mean((numpy_forward(weights, x) - y) ** 2)
    penalty = numpy_penalty(weights)
    assert penalty > 0.1 * mse                    # a penalty big enough to matter
    assert model.evaluate(x, y, batch_size=16) == pytest.approx(mse + penalty, rel=rtol)
    # no division by n: the same penalty is added for 3 samples as for 40
    mse3 = np.mean((numpy_forward(weights, x[:3]) - y[:3]) ** 2)
    assert model.evaluate(x[:3], y[:3]) == pytest.approx(mse3 + penalty, rel=rtol)
    # the training loss reports it too (lr = 0: the weights do not move)
    h = model.fit(x, y, epochs=2, batch_size=40, verbose=0)
    assert h.history["loss"] == pytest.approx([mse + penalty] * 2, rel=rtol)
    assert model.train_on_batch(x, y) == pytest.approx(mse + penalty, rel=rtol)
    layer_pen = sum(layer.penalty() for layer in model.layers)
    assert layer_pen == pytest.approx(penalty, rel=rtol)


def test_regularizer_constructors():
    r = fn.regularizers.l1_l2(l1=0.1, l2=0.2)
    assert (r.l1, r.l2) == (0.1, 0.2)
    assert (fn.regularizers.l1().l1, fn.regularizers.l1().l2) == (0.01, 0.0)
    assert (fn.regularizers.l2().l1, fn.regularizers.l2().l2) == (0.0, 0.01)
    assert fn.regularizers.get({"l1": 0.5, "l2": 0.0}).l1 == 0.5
    assert fn.regularizers.get("l2").l2 == 0.01
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError):
            fn.regularizers.l2(bad)
    with pytest.raises(TypeError):
        fn.regularizers.l1("0.1")
    with pytest.raises(ValueError):
        fn.regularizers.get("l3")
