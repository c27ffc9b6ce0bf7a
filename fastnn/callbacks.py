"""Callbacks: Keras's hooks into training (`on_train_begin/end`, `on_epoch_begin/end`,
`on_train_batch_begin/end`, `on_test_begin/end`, `on_predict_begin/end`), with
``self.model`` and ``self.params``. Setting ``self.model.stop_training = True`` stops
``fit`` after the current batch.

The model calls the per-batch hooks only when some callback overrides them. The progress
bar of ``verbose=1`` (fit's default) does, so by default every batch makes that Python
call and builds its logs (running loss, each metric's result), though the bar redraws at
most 10 times a second; with ``verbose=0`` and no per-batch callback, none of it happens.

The callbacks that watch one logged value (EarlyStopping, ReduceLROnPlateau,
ModelCheckpoint) share :class:`MonitorCallback`, Keras 3's base: ``monitor``, ``mode``,
``min_delta`` and "has the value improved" written once.
"""
import csv
import math
import os
import sys
import time
import warnings

import numpy as np

from fastnn import _validation as v


class Callback:
    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass


def _overrides(cb, hook):
    return hook in vars(cb) or getattr(type(cb), hook) is not getattr(Callback, hook)


class CallbackList:
    """Calls a list of callbacks in order."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks: expected fn.callbacks.Callback objects, got "
                                f"{cb!r}")
            cb.set_model(model)
            cb.set_params(params)
        self.wants_batch_begin = any(_overrides(c, "on_train_batch_begin")
                                     for c in self.callbacks)
        self.wants_batch_end = any(_overrides(c, "on_train_batch_end")
                                   for c in self.callbacks)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args, **kwargs):
            for cb in self.callbacks:
                getattr(cb, hook)(*args, **kwargs)
        return call


class History(Callback):
    """``history.history``: {'loss': [...], 'val_loss': [...], metric: [...]} per epoch,
    Keras's keys only (so pd.DataFrame(history.history).plot() shows the curves);
    ``history.epoch``: the epoch numbers; ``history.samples_per_second``: each epoch's
    training throughput (fastnn's addition, kept out of ``history``). Returned by ``fit``."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []
        self.samples_per_second = []

    def on_train_begin(self, logs=None):
        self.epoch = []
        self.history = {}
        self.samples_per_second = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        self.samples_per_second.append(_epoch_rate(self.model))
        for k, value in (logs or {}).items():
            self.history.setdefault(k, []).append(value)


def _epoch_rate(model):
    """The training samples per second of the epoch ``model.fit`` just ended."""
    return getattr(model, "_epoch_samples_per_second", 0.0)


def _format_logs(logs):
    parts = []
    for k, value in logs.items():
        if k == "time" or k.startswith("grad_") or \
                k.startswith("update_ratio"):
            continue
        if isinstance(value, float):
            parts.append(f"{k}: {value:.4f}" if abs(value) >= 1e-3 or value == 0
                         else f"{k}: {value:.4e}")
    return " - ".join(parts)


def _format_time(seconds):
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"


class ProgbarLogger(Callback):
    """The progress display of ``fit(verbose=...)``.

    verbose=1 on a terminal: a live bar (redrawn at most 10 times a second) with the batch
    count, ETA, running loss and metrics and samples/s. verbose=1 when the output is not a
    terminal, and verbose=2: one line per epoch, so logs stay readable.
    """

    def __init__(self, verbose=1, stream=None):
        super().__init__()
        self.verbose = verbose
        self.stream = stream
        self.live = False

    def set_params(self, params):
        super().set_params(params)
        stream = self.stream or sys.stdout
        self.live = self.verbose == 1 and hasattr(stream, "isatty") and stream.isatty()

    def _out(self):
        return self.stream or sys.stdout

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.done = 0
        if self.live:
            self._out().write(f"Epoch {epoch + 1}/{self.params['epochs']}\n")

    def on_train_batch_end(self, batch, logs=None):
        self.done = batch + 1
        if not self.live:
            return
        now = time.perf_counter()
        steps = self.params["steps"]
        if steps is None:      # a generator of unknown length: count, no bar
            if now - self.last_draw >= 0.1:
                self.last_draw = now
                self._out().write(f"\r{batch + 1}/Unknown - {_format_logs(logs or {})}"
                                  "\033[K")
                self._out().flush()
            return
        if now - self.last_draw < 0.1 and batch + 1 < steps:
            return
        self.last_draw = now
        elapsed = now - self.start
        done = batch + 1
        width = 30
        filled = int(width * done / steps)
        bar = "=" * max(filled - 1, 0) + (">" if filled < width else "=") + \
            "." * (width - filled)
        eta = elapsed / done * (steps - done)
        seen = logs.get("size", 0) if logs else 0
        rate = f" - {seen / elapsed:,.0f} samples/s" if elapsed > 0 and seen else ""
        line = (f"\r{done:>{len(str(steps))}}/{steps} [{bar}] - ETA {_format_time(eta)}"
                f" - {_format_logs(logs or {})}{rate}")
        self._out().write(line + "\033[K")
        self._out().flush()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        elapsed = time.perf_counter() - self.start
        steps = self.params["steps"] or self.done
        rate = _epoch_rate(self.model)
        body = f"{self.done}/{steps} - {_format_time(elapsed)} - {_format_logs(logs)}" \
               f" - {rate:,.0f} samples/s"
        if self.live:
            self._out().write("\r" + body + "\033[K\n")
        else:
            self._out().write(f"Epoch {epoch + 1}/{self.params['epochs']} - {body}\n")
        self._out().flush()


class MonitorCallback(Callback):
    """Base of the callbacks that watch one logged value (Keras 3's ``MonitorCallback``).

    monitor: the key in the epoch's logs, e.g. "val_loss" or "val_accuracy".
    mode: "min", "max", or "auto": "max" for names with "acc" in them or ending in "auc",
        "min" for everything else (losses, errors).
    min_delta: how much better than the reference a value must be to count as an
        improvement (>= 0; 0: any strict improvement).
    """

    def __init__(self, monitor="val_loss", mode="auto", min_delta=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{type(self).__name__}: mode must be 'auto', 'min' or 'max', "
                             f"got {mode!r}")
        if mode == "auto":
            mode = "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
        self.monitor = monitor
        self.mode = mode
        self.min_delta = min_delta

    def _is_improvement(self, value, reference):
        """Whether ``value`` beats ``reference`` by more than min_delta; True when there is
        no reference yet (None). A NaN value never improves on a number."""
        if reference is None:
            return True
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def _monitored_value(self, logs):
        """``logs[monitor]``, or None with a warning that lists what the logs hold."""
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"{type(self).__name__}: metric {self.monitor!r} is not available; "
                          f"available: {sorted(logs)}", stacklevel=3)
        return current


class EarlyStopping(MonitorCallback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs (counting from ``start_from_epoch``).

    With restore_best_weights=True the weights of the best epoch are put back however
    training ends: stopped early, out of epochs, or interrupted by an exception. The state
    is reset at every ``on_train_begin``, so one instance can be reused.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        min_delta = abs(v.real("EarlyStopping: min_delta", min_delta))
        patience = v.positive_int("EarlyStopping: patience", patience, minimum=0)
        super().__init__(monitor, mode, min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = v.positive_int("EarlyStopping: start_from_epoch",
                                               start_from_epoch, minimum=0)
        if baseline is not None:
            v.real("EarlyStopping: baseline", baseline)

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = self._monitored_value(logs or {})
        if current is None:
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if not math.isnan(current) and self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
                return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring the weights of epoch {self.best_epoch + 1} "
                      f"({self.monitor} = {self.best:.4f})")
            self.model.set_weights(self.best_weights)


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite (after that batch)."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("batch_loss", (logs or {}).get("loss"))
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: invalid loss {loss}, terminating training")
            self.model.stop_training = True


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for
    ``patience`` epochs; wait ``cooldown`` epochs after a reduction; never below min_lr."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        factor = v.real("ReduceLROnPlateau: factor", factor, 0, 1, low_open=True,
                        high_open=True)
        patience = v.positive_int("ReduceLROnPlateau: patience", patience, minimum=0)
        min_delta = v.real("ReduceLROnPlateau: min_delta", min_delta, 0)
        cooldown = v.positive_int("ReduceLROnPlateau: cooldown", cooldown, minimum=0)
        min_lr = v.real("ReduceLROnPlateau: min_lr", min_lr, 0)
        super().__init__(monitor, mode, min_delta)
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.min_lr = min_lr

    def on_train_begin(self, logs=None):
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        lr = self.model.optimizer.learning_rate
        if callable(lr):
            raise TypeError("ReduceLROnPlateau: the optimizer's learning rate is a schedule; "
                            "it cannot be changed by this callback")
        logs["learning_rate"] = lr
        current = self._monitored_value(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience and lr > self.min_lr:
                new_lr = max(lr * self.factor, self.min_lr)
                self.model.optimizer.learning_rate = new_lr
                if self.verbose:
                    print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                          f"to {new_lr:.4g}.")
                self.cooldown_counter = self.cooldown
                self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to ``schedule(epoch, lr)``."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError("LearningRateScheduler: schedule must be callable(epoch, lr)")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.model.optimizer.learning_rate
        if callable(lr):
            raise TypeError("LearningRateScheduler: the optimizer already has a schedule")
        new_lr = self.schedule(epoch, lr)
        self.model.optimizer.learning_rate = new_lr   # validated by the optimizer
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                  f"{new_lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate


class CSVLogger(Callback):
    """Write one CSV row per epoch (epoch, then the logs in sorted order) to filename."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = append
        self.file = None

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename) and \
            os.path.getsize(self.filename) > 0
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.writer = None
        self.keys = None
        self.header_written = exists

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(k for k, v in logs.items() if np.isscalar(v))
            self.writer = csv.DictWriter(self.file, fieldnames=["epoch"] + self.keys,
                                         delimiter=self.separator)
            if not self.header_written:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update({k: logs.get(k, "NA") for k in self.keys})
        self.writer.writerow(row)
        self.file.flush()

    def on_train_end(self, logs=None):
        if self.file is not None:
            self.file.close()
            self.file = None


class LambdaCallback(Callback):
    """A callback from plain functions: LambdaCallback(on_epoch_end=lambda e, logs: ...)."""

    def __init__(self, **hooks):
        super().__init__()
        for name, fn in hooks.items():
            if not hasattr(Callback, name) or not name.startswith("on_"):
                raise ValueError(f"LambdaCallback: unknown hook {name!r}")
            setattr(self, name, fn)


class GradientMonitor(Callback):
    """Record, per layer and epoch, the gradient norm ‖∂L/∂W‖ and the update-to-weight
    ratio ‖Δw‖ / ‖w‖ (the layer's kernel and bias together) into the History, under
    logs['grad_norm'] and logs['update_ratio'] ({layer name: value}, in layer order).

    Cheap: it samples about ``samples_per_epoch`` evenly spaced steps per epoch and averages
    them. On a sampled step it copies the flat parameter buffer before the update (one
    memcpy into a buffer made once); after it, four passes over the flat buffers: the
    per-layer sums of squares of the gradient (which exists anyway), of the old weights and
    of the update, and the subtraction that gives the update (into the same buffer).
    Unsampled steps cost one Python call per batch hook. Use
    ``fit(..., monitor_gradients=True)`` as a shortcut.
    """

    def __init__(self, samples_per_epoch=10):
        super().__init__()
        if isinstance(samples_per_epoch, bool) or not isinstance(samples_per_epoch, int) \
                or samples_per_epoch < 1:
            raise ValueError(f"GradientMonitor: samples_per_epoch must be an integer >= 1, "
                             f"got {samples_per_epoch!r}")
        self.samples_per_epoch = samples_per_epoch

    def on_train_begin(self, logs=None):
        from fastnn._core import ops
        self._ops = ops
        m = self.model
        self.layer_names = []
        self._layer_segments = []      # per layer: the indices of its weight segments
        seg = 0
        for layer in m.layers:
            count = len(layer.param_specs())
            if count:
                self.layer_names.append(layer.name)
                self._layer_segments.append(list(range(seg, seg + count)))
            seg += count
        self._before = np.empty_like(m.parameter_store.params)
        self._sq = np.empty(len(m.parameter_store.bounds) - 1, np.float64)
        self._sq_w = np.empty(len(m.parameter_store.bounds) - 1, np.float64)
        # (a generator of unknown length: every step is sampled)
        self._stride = max(1, (self.params["steps"] or 1) // self.samples_per_epoch)

    def _per_layer(self, sq):
        return np.array([np.sqrt(sum(sq[s] for s in segs)) for segs in self._layer_segments])

    def on_epoch_begin(self, epoch, logs=None):
        self._grad = np.zeros(len(self.layer_names))
        self._ratio = np.zeros(len(self.layer_names))
        self._count = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._sampled = batch % self._stride == 0
        if self._sampled:
            np.copyto(self._before, self.model.parameter_store.params)

    def on_train_batch_end(self, batch, logs=None):
        if not self._sampled:
            return
        m = self.model
        self._ops.segment_sum_squares(m.parameter_store.grads, m.parameter_store.bounds, self._sq)
        grad = self._per_layer(self._sq)
        # ratio = ||w_after - w_before|| / ||w_before||
        self._ops.segment_sum_squares(self._before, m.parameter_store.bounds, self._sq_w)
        weight = self._per_layer(self._sq_w)
        np.subtract(m.parameter_store.params, self._before, out=self._before)
        self._ops.segment_sum_squares(self._before, m.parameter_store.bounds, self._sq)
        update = self._per_layer(self._sq)
        self._grad += grad
        self._ratio += update / np.maximum(weight, 1e-30)
        self._count += 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not self._count:
            return
        logs["grad_norm"] = dict(zip(self.layer_names, (self._grad / self._count).tolist()))
        logs["update_ratio"] = dict(zip(self.layer_names,
                                        (self._ratio / self._count).tolist()))


class ModelCheckpoint(MonitorCallback):
    """Save the model (or only its weights) after each epoch, through the same atomic save
    as ``model.save``. ``filepath`` may contain ``{epoch}`` and any log key, e.g.
    "ckpt-{epoch:02d}-{val_loss:.3f}.fnn". With save_best_only=True a file is written only
    when ``monitor`` improves."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto"):
        filepath = os.fspath(filepath)
        super().__init__(monitor, mode)
        self.filepath = filepath
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.best = None

    def on_train_begin(self, logs=None):
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            current = self._monitored_value(logs)
            if current is None or math.isnan(current) or \
                    not self._is_improvement(current, self.best):
                return
            self.best = current
        scalars = {k: v for k, v in logs.items() if np.isscalar(v)}
        path = self.filepath.format(epoch=epoch + 1, **scalars)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved the model to {path}")
