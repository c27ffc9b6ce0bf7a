"""Training cases for the data-parallel tests. Each runs twice: under ``mpiexec -n 2``
through run_case.py (with a fastnn.distributed.DataParallel) and in one process inside
pytest (distribute=None), and returns plain data (arrays, floats, lists) to compare.

case(distribute, rank, workdir) -> dict. ``rank`` is 0 in the one-process run.
"""
import contextlib
import io
import os

import numpy as np

import fastnn as fn
from fastnn import layers as L


def classification_data(n=251, d=12, classes=3, seed=0, dtype=np.float64):
    """n = 251 rows in batches of 50: the last batch has 1 row, so rank 1 has an empty
    share there (the collective must still be joined)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(dtype)
    y = (np.argmax(x[:, :classes] + 0.5 * x[:, classes:2 * classes], axis=1)).astype(np.int64)
    sw = rng.uniform(0.25, 2.0, n)
    xv = rng.standard_normal((67, d)).astype(dtype)
    yv = np.argmax(xv[:, :classes] + 0.5 * xv[:, classes:2 * classes], axis=1)
    return x, y, sw, xv, yv


def _classifier(dtype="float64", lr=0.02):
    model = fn.Sequential([
        L.Dense(24, activation="relu", input_dim=12,
                kernel_regularizer=fn.regularizers.L2(1e-3)),
        L.Dropout(0.3),
        L.Dense(16, activation="tanh", kernel_regularizer=fn.regularizers.L1L2(1e-4, 1e-3),
                bias_regularizer=fn.regularizers.L2(1e-3)),
        L.Dropout(0.25),
        L.Dense(3, activation="softmax")], dtype=dtype)
    # Mean metrics and confusion-histogram metrics: their per-batch states are summed
    # across the ranks.
    model.compile(optimizer=fn.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", fn.metrics.AUC(num_thresholds=50),
                           fn.metrics.Precision(top_k=2), "top_k_categorical_accuracy"])
    return model


def _result(model, history):
    return {"weights": model.get_weights(),
            "history": {k: list(v) for k, v in history.history.items()},
            "epochs": list(history.epoch),
            "iterations": model.optimizer.iterations,
            "slots": {k: np.array(a) for k, a in model.optimizer.variables().items()
                      if k != "iterations"},
            "epochs_trained": model.epochs_trained,
            "learning_rate": float(model.optimizer.learning_rate),
            "seed": model.seed,
            "threads": fn.get_num_threads()}


def equivalence(distribute=None, rank=0, workdir="."):
    """float64, dropout, Adam, L1/L2, sample weights, validation data, EarlyStopping and
    ReduceLROnPlateau; x read from a memory map. Before the distributed fit every rank
    trains its own model (another seed, other rows, another number of steps and epochs),
    so the ranks start out with different weights, moments, step counts, epoch counters
    and seeds: the fit must start from rank 0's."""
    x, y, sw, xv, yv = classification_data()
    path = os.path.join(workdir, "x.npy")
    if rank == 0 and not os.path.exists(path):
        np.save(path, x)
    if distribute is not None:
        distribute.comm.Barrier()
    x = np.load(path, mmap_mode="r")
    fn.set_seed(11 + rank)
    model = _classifier()
    model.fit(x[rank * 20:rank * 20 + 30 + rank], y[rank * 20:rank * 20 + 30 + rank],
              batch_size=8, epochs=1 + rank, verbose=0)
    stopper = fn.callbacks.EarlyStopping(monitor="val_loss", min_delta=0.01, patience=1)
    plateau = fn.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=0,
                                             min_delta=0.02)
    history = model.fit(x, y, batch_size=50, epochs=14, sample_weight=sw,
                        validation_data=(xv, yv), callbacks=[stopper, plateau], verbose=0,
                        distribute=distribute)
    result = _result(model, history)
    result["stopped_epoch"] = stopper.stopped_epoch
    return result


def validation_split(distribute=None, rank=0, workdir="."):
    """float64 with mse and SGD with Nesterov momentum, a validation_split (chosen from
    the seed, which rank 0's becomes), no shuffle in the last fit, and a batch larger than
    the data (one step per epoch)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((90, 5))
    y = np.stack([x[:, 0] * x[:, 1], np.sin(x[:, 2])], axis=1)
    fn.set_seed(5 + rank)
    model = fn.Sequential([L.Dense(9, activation="sigmoid", input_dim=5), L.Dropout(0.1),
                           L.Dense(2)], dtype="float64")
    model.compile(optimizer=fn.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
                  loss="mse")
    model.fit(x, y, batch_size=7, epochs=3, validation_split=0.2, verbose=0,
              distribute=distribute)
    # validation data of one row: the other ranks' shares of it are empty
    one_row = model.fit(x, y, batch_size=13, epochs=2, validation_data=(x[:1], y[:1]),
                        verbose=0, distribute=distribute)
    history = model.fit(x, y, batch_size=500, epochs=5, shuffle=False, verbose=0,
                        distribute=distribute)
    result = _result(model, history)
    result["one_row_val_loss"] = one_row.history["val_loss"]
    return result


def float32(distribute=None, rank=0, workdir="."):
    """float32: the same training up to float32 summation order."""
    x, y, sw, xv, yv = classification_data(dtype=np.float32)
    fn.set_seed(2)
    model = _classifier("float32")
    history = model.fit(x, y, batch_size=32, epochs=4, validation_split=0.2, verbose=0,
                        distribute=distribute)
    return _result(model, history)


def nan_stop(distribute=None, rank=0, workdir="."):
    """A learning rate that makes the loss overflow after a few steps: on_nan='raise'
    raises on every rank at the same step (the decision is made on reduced values) and
    leaves the last finite weights."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((120, 4))
    y = x @ rng.standard_normal((4, 1)) * 100
    fn.set_seed(4)
    model = fn.Sequential([L.Dense(8, activation="relu", input_dim=4), L.Dense(1)],
                          dtype="float64")
    model.compile(optimizer=fn.optimizers.SGD(0.5), loss="mse")
    try:
        model.fit(x, y, batch_size=16, epochs=50, verbose=0, distribute=distribute)
        error = None
    except FloatingPointError as e:
        error = str(e)
    return {"error": error, "weights": model.get_weights(),
            "iterations": model.optimizer.iterations,
            "history": {k: list(v) for k, v in model.history.history.items()}}


def chief_writes(distribute=None, rank=0, workdir="."):
    """Progress, CSVLogger, ModelCheckpoint and save: only rank 0 prints and writes."""
    x, y, sw, xv, yv = classification_data()
    fn.set_seed(8)
    model = _classifier()
    out = io.StringIO()
    callbacks = [fn.callbacks.CSVLogger(os.path.join(workdir, f"log-rank{rank}.csv")),
                 fn.callbacks.ModelCheckpoint(os.path.join(workdir,
                                                           f"ckpt-rank{rank}-{{epoch}}.fnn"),
                                              save_best_only=False)]
    with contextlib.redirect_stdout(out):
        model.fit(x, y, batch_size=64, epochs=2, verbose=2, callbacks=callbacks,
                  distribute=distribute)
        model.save(os.path.join(workdir, f"model-rank{rank}.fnn"))
        model.save_weights(os.path.join(workdir, f"weights-rank{rank}.fnn"))
    return {"stdout": out.getvalue(), "files": sorted(os.listdir(workdir))}


def mismatch(distribute=None, rank=0, workdir="."):
    """Rank 1 passes one row less: every rank raises the same ValueError, nobody hangs."""
    x, y, sw, xv, yv = classification_data()
    model = _classifier()
    try:
        model.fit(x[:len(x) - rank], y[:len(y) - rank], epochs=1, verbose=0,
                  distribute=distribute)
        return {"error": None}
    except ValueError as e:
        return {"error": str(e)}


def batch_norm(distribute=None, rank=0, workdir="."):
    """Batch normalization would see each rank's share only: refused on every rank."""
    x, y, sw, xv, yv = classification_data()
    model = fn.Sequential([L.Dense(8, input_dim=12), L.BatchNormalization(),
                           L.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    try:
        model.fit(x, y, epochs=1, verbose=0, distribute=distribute)
        return {"error": None}
    except ValueError as e:
        return {"error": str(e)}


def uneven_callbacks(distribute=None, rank=0, workdir="."):
    """Callbacks that act on one rank only: a stop at batch level on rank 1 and one at
    epoch level on rank 0 stop every rank at the same point; weights changed on rank 1
    only make every rank raise RanksDiverged at the epoch's end."""
    x, y, sw, xv, yv = classification_data()
    fn.set_seed(9)
    model = _classifier()

    def stop_batch(batch, logs):
        if rank == 1 and batch == 2:
            model.stop_training = True

    def stop_epoch(epoch, logs):
        if rank == 0 and epoch == 1:
            model.stop_training = True
    first = model.fit(x, y, batch_size=50, epochs=3, verbose=0, distribute=distribute,
                      callbacks=[fn.callbacks.LambdaCallback(on_train_batch_end=stop_batch)])
    after_first = model.optimizer.iterations
    second = model.fit(x, y, batch_size=50, epochs=5, verbose=0, distribute=distribute,
                       callbacks=[fn.callbacks.LambdaCallback(on_epoch_end=stop_epoch)])

    def nudge(epoch, logs):
        if rank == 1:
            model.layers[0].W[0, 0] += 1.0
    try:
        model.fit(x, y, batch_size=50, epochs=2, verbose=0, distribute=distribute,
                  callbacks=[fn.callbacks.LambdaCallback(on_epoch_end=nudge)])
        error = None
    except RuntimeError as e:
        error = f"{type(e).__name__}: {e}"
    return {"first_epochs": first.epoch, "iterations_after_first": after_first,
            "second_epochs": second.epoch, "error": error}


def fail_on_rank1(distribute=None, rank=0, workdir="."):
    """A callback that fails on rank 1 only, in the second epoch: the job must abort
    (the chief would otherwise wait in the next Allreduce forever)."""
    x, y, sw, xv, yv = classification_data()
    model = _classifier()

    def fail(epoch, logs):
        if rank == 1 and epoch == 1:
            raise RuntimeError("deliberate failure on rank 1")

    model.fit(x, y, batch_size=50, epochs=1000, verbose=0, distribute=distribute,
              callbacks=[fn.callbacks.LambdaCallback(on_epoch_end=fail)])
    return {"finished": True}


CASES = {f.__name__: f for f in (equivalence, validation_split, float32, nan_stop,
                                  chief_writes, mismatch, batch_norm, uneven_callbacks,
                                  fail_on_rank1)}


def relative_difference(a, b):
    """max |a - b| / max |b| over arrays or nested lists of numbers."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    diff = float(np.max(np.abs(a - b))) if b.size else 0.0
    return diff / scale if scale > 0 else diff
