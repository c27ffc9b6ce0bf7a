"""The loops around the step: fit / evaluate / predict (and their single-batch forms),
the validation of their inputs, the NaN policy, and the callbacks between steps.

``Trainer`` is a base class (Keras's ``Model(Trainer)`` shape): it uses only the model's
own attributes and methods (layers, loss, optimizer, metrics, build), and
fastnn.models.Sequential inherits it, so models imports training and nothing here imports
models. Each training step is fastnn.engine.train_step.
"""
import contextlib
import time
import warnings

import numpy as np

from fastnn import _random
from fastnn import _validation as v
from fastnn import callbacks as callbacks_module
from fastnn import data_adapters, engine
from fastnn import metrics as metrics_module
from fastnn._core import ops as _ops


class Trainer:
    """fit, evaluate, predict, train_on_batch, test_on_batch, predict_on_batch and
    gradients for a model class that provides the structure (see fastnn.models)."""

    # ------------------------------------------------- workspaces, forward/back --
    # fastnn/engine.py's functions, as methods (the step itself: engine.train_step).
    _train_workspace = engine.train_workspace
    _inference_workspace = engine.inference_workspace
    _forward = engine.forward
    _loss = engine.batch_loss
    _backward = engine.backward
    _apply_update = engine.apply_update

    def _input_matrix(self, what, x):
        """x of the model's input shape, (n, *input_shape), as the (n, input_dim) matrix the
        layers compute on: a reshape view of x when it is C-contiguous in the model's dtype,
        else of the one converted copy (validated: see fastnn/_validation.py)."""
        return v.as_float_samples(f"{what}: x", x, self.dtype, self._input_shape)

    # -------------------------------------------------------------------- input --
    def _build_for(self, what, x):
        """Build an unbuilt model for samples like those of x (also a streamed batch)."""
        arr = v.as_array(f"{what}: x", x)
        nd_ok = bool(self.layers) and self.layers[0]._takes_nd_input
        if arr.ndim >= 2 and min(arr.shape[1:]) > 0 and (arr.ndim == 2 or nd_ok):
            self._build(arr.shape[1:])
        else:
            v.as_float_matrix(f"{what}: x", arr, self.dtype)   # raises the right error

    def _prepare(self, what, x, y=None, sample_weight=None, class_weight=None, lazy=False):
        """Validate and convert (once) x, y and the per-sample weights.

        lazy=True (the fit/evaluate/predict loops): x that is memory-mapped, or not
        C-contiguous in the model's dtype, is checked but not converted: it comes back as
        a data_adapters.LazyRows, read and converted batch by batch.
        """
        if not self.built:
            self._build_for(what, x)
        if lazy:
            x = data_adapters.input_rows(f"{what}: x", x, self.dtype, self._input_shape)
        else:
            x = self._input_matrix(what, x)
        if y is None:
            return x, None, None
        y = v.targets(f"{what}: y", y, self.loss.target, self.output_dim, x.shape[0],
                      self.dtype)
        sw = v.sample_weights(f"{what}: sample_weight", sample_weight, x.shape[0],
                              self.dtype)
        if class_weight is not None:
            cw = self._class_weights(what, class_weight, y)
            sw = cw if sw.shape[0] == 0 else np.ascontiguousarray(sw * cw)
        return x, y, sw

    def _class_of(self, y):
        """Each sample's class, for class weights and the stratified split (or None)."""
        if self.loss.target == "sparse":
            return y
        if self.loss.target == "onehot":
            return np.argmax(y, axis=1)
        if self.loss.target == "binary" and y.shape[1] == 1:
            return (y[:, 0] > 0.5).astype(np.int64)
        return None

    def _class_weights(self, what, class_weight, y):
        if not isinstance(class_weight, dict):
            raise TypeError(f"{what}: class_weight must be a dict {{class: weight}}, got "
                            f"{type(class_weight).__name__}")
        classes = self._class_of(y)
        if classes is None:
            raise ValueError(f"{what}: class_weight needs class targets (categorical or "
                             f"single-column binary), not loss {self.loss.name!r}")
        n_classes = max(self.output_dim, 2)
        table = np.ones(n_classes, self.dtype)
        for c, w in class_weight.items():
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or \
                    not 0 <= c < n_classes:
                raise ValueError(f"{what}: class_weight keys must be class indices in "
                                 f"[0, {n_classes}), got {c!r}")
            table[c] = v.real(f"{what}: class_weight[{c}]", w, 0)
        return np.ascontiguousarray(table[classes])

    def _split(self, validation_split, x, y, sw):
        """Hold out a random, class-stratified fraction (see fit). Returns index arrays."""
        n = x.shape[0]
        rng = _random.generator(self.seed, _random.SPLIT, n)
        classes = self._class_of(y)
        if classes is None:
            order = rng.permutation(n)
            n_val = int(round(validation_split * n))
            val = order[:n_val]
        else:
            val = []
            for c in np.unique(classes):
                members = np.flatnonzero(classes == c)
                rng.shuffle(members)
                val.append(members[:int(round(validation_split * len(members)))])
            val = np.concatenate(val)
        if len(val) == 0 or len(val) == n:
            raise ValueError(f"fit: validation_split={validation_split} leaves "
                             f"{n - len(val)} training and {len(val)} validation samples "
                             f"out of {n}; both must be at least 1")
        mask = np.ones(n, bool)
        mask[val] = False
        return np.flatnonzero(mask).astype(np.int64), np.sort(val).astype(np.int64)

    # ---------------------------------------------------------------------- fit --
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, monitor_gradients=False, on_nan="raise",
            distribute=None):
        """Train for epochs - initial_epoch epochs of minibatch gradient descent.

        x (n, features), y: targets for the loss (see compile). batch_size defaults to 32
        (with steps_per_epoch=k and arrays: ceil(n / k), one pass in k steps, as Keras);
        a batch_size larger than the data trains on one batch per epoch. The data is
        shuffled every epoch (seeded: the order is a function of the model's seed and the
        epoch, so resuming with initial_epoch repeats what an uninterrupted run does).

        validation_split (0 <= f < 1): holds out a random fraction f of the samples,
        stratified by class for classification losses (each class contributes its share),
        chosen once from the model's seed. Unlike Keras, it does NOT take the last rows.
        validation_data=(x_val, y_val[, sample_weight_val]), a generator or a PyDataset
        overrides it.

        x may also be a memory-mapped array (np.memmap, np.load(..., mmap_mode="r")) or
        an array of any numeric dtype (e.g. uint8 images): it is read and converted batch
        by batch, never whole. x may be a generator / iterator of (x, y[, sample_weight])
        batches, or a fn.utils.PyDataset (then y and sample_weight are not given), read
        ahead in a background thread. shuffle=True shuffles a PyDataset's batch order
        (seeded, per epoch); a generator's order is its own.
        steps_per_epoch: batches per epoch. None: one pass over arrays or a PyDataset,
        or until a generator ends (a single-use generator then has nothing left for a
        later epoch: fit warns "Your input ran out of data" and stops). k: the next k
        batches of a generator (continuing across epochs; if it ends early, the epoch
        ends, fit warns and stops), or the first k batches of each pass over arrays / a
        PyDataset. validation_steps: batches per validation (None: all of it; a
        generator then serves only the first epoch's validation).

        class_weight {class: weight} and sample_weight (n,) weight each sample's loss
        (multiplied when both are given); accuracy stays unweighted.

        on_nan: what to do when a batch's loss or gradients are NaN/inf (checked every
        batch, before the update, so the model keeps its last finite weights): 'raise'
        (FloatingPointError naming the epoch, batch and first layer with non-finite
        values), 'warn' (a RuntimeWarning, then stop), or 'stop' (stop quietly).
        TerminateOnNaN in callbacks also stops quietly.

        verbose: 0 silent, 1 progress bar (one line per epoch when not on a terminal),
        2 one line per epoch; 'auto' is 1. Returns a History whose .history has 'loss',
        each metric, and their 'val_' versions per epoch (as Keras's), and whose
        .samples_per_second lists each epoch's training throughput.

        distribute: a fastnn.distributed.DataParallel, in a script started by
        ``mpiexec -n K``: every rank passes the same data (arrays or memory maps);
        batch_size is the global batch, of which each rank trains on its share, with one
        Allreduce of the gradient per step. The result is the one-process training with
        that batch size (up to summation order); only rank 0 prints and writes files. See
        fastnn/distributed.py.
        """
        self._require_compiled("fit")
        batch_size = None if batch_size is None else v.positive_int("fit: batch_size",
                                                                    batch_size)
        epochs = v.positive_int("fit: epochs", epochs, minimum=0)
        initial_epoch = v.positive_int("fit: initial_epoch", initial_epoch, minimum=0)
        validation_split = v.real("fit: validation_split", validation_split, 0, 1,
                                  high_open=True)
        if verbose == "auto":
            verbose = 1
        if verbose not in (0, 1, 2) or isinstance(verbose, bool):
            raise ValueError(f"fit: verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
        if not isinstance(monitor_gradients, bool):
            raise TypeError(f"fit: monitor_gradients must be True or False, got "
                            f"{monitor_gradients!r}")
        if on_nan not in ("raise", "warn", "stop"):
            raise ValueError(f"fit: on_nan must be 'raise', 'warn' or 'stop', got {on_nan!r}")
        if not isinstance(shuffle, bool):
            raise TypeError(f"fit: shuffle must be True or False, got {shuffle!r}")
        if steps_per_epoch is not None:
            steps_per_epoch = v.positive_int("fit: steps_per_epoch", steps_per_epoch)
        if validation_steps is not None:
            validation_steps = v.positive_int("fit: validation_steps", validation_steps)
        val_batch = batch_size if validation_batch_size is None else v.positive_int(
            "fit: validation_batch_size", validation_batch_size)
        strategy = self._data_parallel(distribute)
        val = None
        if data_adapters.is_stream(x):
            if validation_split > 0:
                raise ValueError("fit: validation_split needs arrays; with a generator or "
                                 "PyDataset pass validation_data=...")
            train = data_adapters.adapter(self, "fit", x, y, sample_weight, batch_size,
                                          steps_per_epoch, True, class_weight,
                                          "steps_per_epoch", training=True)
        else:
            if x is None or y is None:
                raise ValueError("fit: x and y are required")
            x, y, sw = self._prepare("fit", x, y, sample_weight, class_weight, lazy=True)
            if strategy is not None:
                # Before the validation split and the first shuffle: they follow rank 0's
                # seed.
                strategy._begin(self, (x.shape, y.shape, sw.shape, batch_size, epochs,
                                       initial_epoch, shuffle, validation_split,
                                       validation_batch_size, steps_per_epoch,
                                       validation_steps, on_nan,
                                       None if validation_data is None or
                                       data_adapters.is_stream(validation_data) else
                                       [np.shape(a) for a in validation_data]))
            train_idx = None
            if validation_data is None and validation_split > 0:
                train_idx, val_idx = self._split(validation_split, x, y, sw)
                val = data_adapters.ArrayAdapter(self, x, y, sw, val_batch, index=val_idx,
                                                 steps=validation_steps)
            train = data_adapters.ArrayAdapter(self, x, y, sw, batch_size, index=train_idx,
                                               steps=steps_per_epoch, training=True)
        if validation_data is not None:
            val = self._validation_adapter(validation_data, val_batch, validation_steps)
        if strategy is not None:
            train, val = strategy._shard(train, val)

        if not self._train_lock.acquire(blocking=False):
            raise RuntimeError("fit: this model is already being trained in another thread; "
                               "training one model from two threads would corrupt it")
        try:
            with strategy._guard(self) if strategy is not None else contextlib.nullcontext():
                return self._fit_loop(train, val, epochs, initial_epoch, shuffle, verbose,
                                      callbacks, monitor_gradients, on_nan, strategy)
        finally:
            self._train_lock.release()

    def _data_parallel(self, distribute):
        """fit's distribute=: the strategy the loop calls, or None (no strategy, or one of
        a single rank, which changes nothing). The model remembers it, so that save
        writes on the chief only."""
        if distribute is not None:
            # Imported here: fastnn.distributed uses the model, never the reverse.
            from fastnn import distributed
            if not isinstance(distribute, distributed.DataParallel):
                raise TypeError(f"fit: distribute must be a fastnn.distributed.DataParallel "
                                f"or None, got {type(distribute).__name__}")
        self._distribute = distribute
        return distribute if distribute is not None and distribute.size > 1 else None

    def _validation_adapter(self, validation_data, batch_size, steps):
        """fit's validation_data: (x_val, y_val[, sample_weight_val]), a generator or a
        PyDataset, as an evaluation adapter."""
        what = "fit: validation_data"
        if data_adapters.is_stream(validation_data):
            return data_adapters.adapter(self, what, validation_data, None, None,
                                         batch_size, steps, True, None, "validation_steps")
        if not isinstance(validation_data, (tuple, list)) or \
                len(validation_data) not in (2, 3):
            raise ValueError("fit: validation_data must be a tuple (x_val, y_val) or "
                             "(x_val, y_val, sample_weight_val), a generator or a "
                             "PyDataset")
        if validation_data[0] is None or validation_data[1] is None:
            raise ValueError("fit: validation_data needs both x_val and y_val")
        x, y, sw = self._prepare(what, *validation_data, lazy=True)
        return data_adapters.ArrayAdapter(self, x, y, sw, batch_size, steps=steps)

    def _fit_loop(self, train, val, epochs, initial_epoch, shuffle, verbose, callbacks,
                  monitor_gradients, on_nan, strategy=None):
        steps = train.num_batches
        history = callbacks_module.History()
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, callbacks_module.Callback):
            callbacks = [callbacks]
        elif not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"fit: callbacks must be a list of fn.callbacks.Callback, got "
                            f"{type(callbacks).__name__}")
        cbs = list(callbacks)
        if monitor_gradients and not any(isinstance(c, callbacks_module.GradientMonitor)
                                         for c in cbs):
            cbs.append(callbacks_module.GradientMonitor())
        if verbose:
            cbs.append(callbacks_module.ProgbarLogger(verbose))
        cbs.append(history)
        if strategy is not None:
            cbs = strategy._callbacks(cbs)
        params = {"epochs": epochs, "steps": steps, "batch_size": train.batch_size,
                  "samples": train.num_samples, "verbose": verbose}
        cbl = callbacks_module.CallbackList(cbs, self, params)
        self.history = history
        self.stop_training = False
        logs = {}
        batches = None
        cbl.on_train_begin({})
        try:
            for epoch in range(initial_epoch, epochs):
                if train.exhausted:    # a single-use generator ended in the last epoch
                    warnings.warn(data_adapters.RAN_OUT, UserWarning, stacklevel=3)
                    break
                cbl.on_epoch_begin(epoch, {})
                start = time.perf_counter()
                counter = self.epochs_trained
                loss_sum = 0.0
                seen = 0
                bad_loss = None
                for metric in self.metrics:
                    metric.reset_state()
                batches = train.epoch(self._train_workspace, self.seed, counter, shuffle)
                for step, (ws, xb, yb, swb) in enumerate(batches):
                    if cbl.wants_batch_begin:
                        cbl.on_train_batch_begin(step, {})
                    n, batch_loss, status = self._train_step(ws, xb, yb, swb, counter, step,
                                                             strategy)
                    if status == "non-finite":
                        bad_loss = batch_loss if batch_loss - batch_loss != 0 else float("nan")
                        self._non_finite(epoch, step, ws, batch_loss, cbl, on_nan)
                        break
                    if status == "overflow":
                        self._overflow(epoch, step, on_nan, cbl)
                    loss_sum += batch_loss * n
                    seen += n
                    if cbl.wants_batch_end:
                        blogs = {"loss": loss_sum / seen, "batch_loss": batch_loss,
                                 "size": seen}
                        for metric in self.metrics:
                            blogs[metric.name] = metric.result()
                        cbl.on_train_batch_end(step, blogs)
                    if strategy is not None:
                        strategy._after_batch(self)   # a stop on one rank stops all
                    if self.stop_training:
                        break
                batches.close()    # the prefetching thread, if any, ends here
                elapsed = time.perf_counter() - start
                self.epochs_trained += 1
                # A non-finite batch makes the epoch's loss non-finite, as a running mean
                # would: History, callbacks and diagnose must see the divergence.
                logs = {"loss": bad_loss if bad_loss is not None
                        else (loss_sum / seen if seen else float("nan"))}
                for metric in self.metrics:
                    logs[metric.name] = metric.result()
                if val is not None and seen and bad_loss is None:
                    cbl.on_test_begin({})
                    values = (self._evaluate(val) if strategy is None
                              else strategy._evaluate(self, val))
                    if values is None:    # a validation generator used up earlier
                        warnings.warn("fit: validation_data yielded no batches in epoch "
                                      f"{epoch + 1} (a generator serves one validation "
                                      "unless validation_steps limits each); no val_ "
                                      "logs", UserWarning, stacklevel=3)
                        values = []
                    if values:
                        logs["val_loss"] = values[0]
                    for metric, value in zip(self.metrics, values[1:]):
                        logs["val_" + metric.name] = value
                    cbl.on_test_end({k: v for k, v in logs.items() if k.startswith("val_")})
                # Throughput is not a log (Keras's logs hold only the loss, the metrics
                # and val_*, which CSVLogger and pd.DataFrame(history.history) take
                # whole): History and the progress bar read it from here.
                self._epoch_samples_per_second = seen / elapsed if elapsed > 0 else \
                    float("inf")
                cbl.on_epoch_end(epoch, logs)
                if strategy is not None:
                    strategy._after_epoch(self, epoch)
                if train.ran_out:        # a generator ended before steps_per_epoch
                    warnings.warn(data_adapters.RAN_OUT, UserWarning, stacklevel=3)
                    self.stop_training = True
                if self.stop_training:
                    break
        finally:
            if batches is not None:      # an exception left an epoch's thread running
                batches.close()
            cbl.on_train_end(logs)
        return history

    def _train_step(self, ws, x, y, sw, epoch, step, strategy=None):
        """fit's step on one batch (x, y, sw in the workspace ws): engine.train_step with
        the model's metrics. Returns (the batch's rows, its loss with the penalty, the
        step's status). With a data-parallel strategy the batch is this rank's share of
        the global one (ws is None when the share is empty), and the strategy sums the
        ranks' parts into the gradient, the loss and the metrics: what comes back is the
        global batch's."""
        if strategy is None:
            data, penalty, status = engine.train_step(self, ws, x, y, sw, epoch, step,
                                                      metrics=self.metrics)
            return x.shape[0], data + penalty, status
        (n, lo), metrics = strategy._batch_rows(step), strategy._step_metrics()
        data, penalty, status = engine.train_step(self, ws, x, y, sw, epoch, step, n, lo,
                                                  metrics, strategy._reduce_step)
        return n, data + penalty, status

    def _non_finite(self, epoch, step, ws, loss, cbl, on_nan):
        """A batch produced NaN/inf: the update is skipped, so the weights are the last
        finite ones. Stop, and raise / warn / stay quiet as on_nan says."""
        self.stop_training = True
        where = None
        for layer, buf in zip(self.layers, ws.bufs if ws is not None else ()):
            out = getattr(buf, "out", None)
            if out is not None and out.size and not _ops.all_finite(out.reshape(-1)):
                where = f"the output of layer {layer.name!r}"
                break
        if where is None:
            for layer in self.layers:
                if any(not _ops.all_finite(g.reshape(-1)) for g in layer.gradients):
                    where = f"the gradient of layer {layer.name!r}"
                    break
        message = (f"fit: non-finite values in epoch {epoch + 1}, batch {step} (batch loss "
                   f"{loss}); first in {where or 'the loss'}. Training stopped; the weights "
                   f"are the last finite ones (this batch's update was not applied). "
                   f"Typical causes: a learning rate too high, or extreme input values.")
        self._stop(message, on_nan, cbl, step, {"loss": loss, "batch_loss": loss})

    def _overflow(self, epoch, step, on_nan, cbl):
        """Finite gradients, but the update itself overflowed (e.g. float32 weights past
        3.4e38 under a huge learning rate). Rare; the weights are then not all finite."""
        where = next((layer.name for layer in self.layers
                      if any(not _ops.all_finite(w.reshape(-1)) for w in layer.weights)),
                     "?")
        message = (f"fit: the update in epoch {epoch + 1}, batch {step} overflowed: weights "
                   f"of layer {where!r} became infinite although the gradients were finite. "
                   f"The weights are no longer usable; reload them (a checkpoint or "
                   f"set_weights) and lower the learning rate.")
        self._stop(message, on_nan, cbl, step, None)

    def _stop(self, message, on_nan, cbl, step, batch_logs):
        """Stop training after non-finite values: TerminateOnNaN (if present) gets the
        batch's logs and stops quietly; otherwise raise or warn as on_nan says."""
        self.stop_training = True
        if any(isinstance(c, callbacks_module.TerminateOnNaN) for c in cbl.callbacks):
            if batch_logs is not None:
                cbl.on_train_batch_end(step, batch_logs)
        elif on_nan == "raise":
            raise FloatingPointError(message)
        elif on_nan == "warn":
            warnings.warn(message, RuntimeWarning, stacklevel=4)

    # ------------------------------------------------------------- evaluation --
    def _thread_metrics(self):
        """This thread's copies of the compiled metrics (evaluate may run in several
        threads at once; fit's own metrics keep the training epoch's state)."""
        cached = getattr(self._local, "metrics", None)
        if cached is None or cached[0] != self._version:
            cached = self._local.metrics = (self._version,
                                            metrics_module.copies(self.metrics))
        return cached[1]

    def _evaluate(self, data):
        """[mean loss (+ penalty), metrics...] over an adapter's batches (None when it
        yields none)."""
        sums = self._evaluate_sums(data)
        return self._evaluation_means(*sums) if sums[1] else None

    def _evaluate_sums(self, data):
        """(Σ wᵢ lossᵢ, n, this thread's metrics holding the pass's state) over an
        adapter's batches; no allocation per batch (array rows are views or gathered
        into buffers made once)."""
        n_total = 0
        loss_sum = 0.0
        metrics = self._thread_metrics()
        for metric in metrics:
            metric.reset_state()
        with data.epoch(lambda n: self._inference_workspace(n, with_loss=True)) as batches:
            for ws, xb, yb, swb in batches:
                n = xb.shape[0]
                # layer by layer: the loss reads what the layers keep (ws.inputs: the
                # logits of a last Activation("softmax"))
                p = self._forward(xb, ws, False)
                loss_sum += self._loss(ws, p, yb, swb, n)
                for metric in metrics:
                    metric.update_batch(p, yb)
                n_total += n
        if data.ran_out:     # a generator ended before `steps` batches
            warnings.warn(data_adapters.RAN_OUT, UserWarning, stacklevel=4)
        return loss_sum, n_total, metrics

    def _evaluation_means(self, loss_sum, n_total, metrics):
        """[mean loss + the weights' penalty, metrics...] from _evaluate_sums."""
        penalty = sum(layer.penalty() for layer in self.layers)
        return [loss_sum / n_total + penalty] + [m.result() for m in metrics]

    def _results(self, values, return_dict):
        """evaluate's return value: the loss alone without metrics, else [loss, metric...],
        or a dict."""
        names = ["loss"] + [m.name for m in self.metrics]
        if return_dict:
            return dict(zip(names, values))
        return values[0] if len(values) == 1 else values

    def evaluate(self, x=None, y=None, batch_size=None, verbose=0, sample_weight=None,
                 steps=None, return_dict=False):
        """The mean loss (regularization penalty included, as Keras) and the metrics.

        x, y: arrays (memory-mapped or of any dtype: read batch by batch), or x a
        generator / iterator of (x, y[, sample_weight]) batches or a PyDataset (y not
        given). steps: batches to evaluate (None: all; a generator until it ends).
        Returns the loss alone when there are no metrics, else [loss, metric...], or a
        dict with return_dict=True. Safe to call from several threads at once.
        """
        self._require_compiled("evaluate")
        self._require_built("evaluate")
        batch_size = None if batch_size is None else v.positive_int("evaluate: batch_size",
                                                                    batch_size)
        if steps is not None:
            steps = v.positive_int("evaluate: steps", steps)
        data = data_adapters.adapter(self, "evaluate", x, y, sample_weight, batch_size,
                                     steps, True)
        values = self._evaluate(data)
        if values is None:
            raise ValueError("evaluate: the data yielded no batches")
        if verbose:
            names = ["loss"] + [m.name for m in self.metrics]
            print(" - ".join(f"{k}: {val:.4f}" for k, val in zip(names, values)))
        return self._results(values, return_dict)

    def predict(self, x, batch_size=None, verbose=0, steps=None):
        """The network's outputs for x (n, features): an (n, units) array of the model's
        dtype. x may be memory-mapped or of any dtype (read batch by batch), or a
        generator / iterator / PyDataset of batches (x alone or (x, y[, sw]) tuples, whose
        x is used); steps: batches to predict (None: all). Safe to call from several
        threads at once."""
        self._require_built("predict")
        batch_size = None if batch_size is None else v.positive_int("predict: batch_size",
                                                                    batch_size)
        if steps is not None:
            steps = v.positive_int("predict: steps", steps)
        if steps is None:
            out = self._predict_in_one_pass(x, 32 if batch_size is None else batch_size)
            if out is not None:
                return out
        return self._predict(data_adapters.adapter(self, "predict", x, None, None,
                                                   batch_size, steps, False))

    def _predict_in_one_pass(self, x, batch_size):
        """predict's fast path (what a server calling predict on one sample runs): x an
        in-memory, C-contiguous, finite (n, input_dim) array of the model's dtype with
        n <= batch_size is a single batch, so the loop would make one pass over it; make
        that pass directly: one workspace lookup and one call, which checks x itself
        (engine.forward_in_one_call). None for anything else, which takes the loop (and its
        checks and messages)."""
        if not (type(x) is np.ndarray and x.ndim == 2 and 0 < x.shape[0] <= batch_size
                and len(self._input_shape) == 1):
            return None
        out = engine.forward_in_one_call(
            self, x, self._inference_workspace(x.shape[0], with_loss=False))
        return out.copy() if out is not None else None

    def _predict(self, data):
        """The outputs over an adapter's batches: written into one (n, units) array when
        n is known (arrays), else concatenated."""
        known = isinstance(data, data_adapters.ArrayAdapter)
        if known:
            n_rows = min(data.num_samples, data.num_batches * data.batch_size)
            out = np.empty((n_rows, self.output_dim), self.dtype)
        parts = []
        start = 0
        with data.epoch(lambda n: self._inference_workspace(n, with_loss=False)) as batches:
            for ws, xb, _, _ in batches:
                p = engine.predict_forward(self, xb, ws)
                if known:
                    out[start:start + p.shape[0]] = p
                else:
                    parts.append(p.copy())
                start += p.shape[0]
        if known:
            return out
        if not parts:
            raise ValueError("predict: the data yielded no batches")
        return np.concatenate(parts)

    def predict_on_batch(self, x):
        """The outputs for one batch x (n, features), in one pass (Keras's
        predict_on_batch)."""
        self._require_built("predict_on_batch")
        out = self._predict_in_one_pass(x, np.inf)
        if out is not None:
            return out
        x = self._prepare("predict_on_batch", x)[0]
        return self._predict(data_adapters.ArrayAdapter(self, x, None, None, x.shape[0]))

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """The loss (penalty included) and metrics on one batch, in inference mode,
        without updating the weights; returned as evaluate returns them."""
        self._require_compiled("test_on_batch")
        self._require_built("test_on_batch")
        if x is None or y is None:
            raise ValueError("test_on_batch: x and y are required")
        x, y, sw = self._prepare("test_on_batch", x, y, sample_weight)
        data = data_adapters.ArrayAdapter(self, x, y, sw, x.shape[0])
        return self._results(self._evaluate(data), return_dict)

    def __call__(self, x):
        """model(x) is model.predict(x)."""
        return self.predict(x)

    # ------------------------------------------------------------ single batch --
    def _batch_pass(self, what, x, y, sample_weight, class_weight, update=False):
        """engine.train_step on one batch given by the caller (train_on_batch, gradients,
        utils.check_gradients). Returns (the loss with the penalty, the metrics' values on
        the batch, the step's status)."""
        if x is None or y is None:
            raise ValueError(f"{what}: x and y are required")
        x, y, sw = self._prepare(what, x, y, sample_weight, class_weight)
        ws = self._train_workspace(x.shape[0])
        for metric in self.metrics:      # the batch's own values
            metric.reset_state()
        # Dropout masks for single batches: from the step counter, in a stream of their own.
        data, penalty, status = engine.train_step(self, ws, x, y, sw, 2**62,
                                                  self.optimizer.iterations,
                                                  metrics=self.metrics, update=update)
        return data + penalty, [metric.result() for metric in self.metrics], status

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One gradient step on (x, y). Returns the batch loss (before the step, penalty
        included), or [loss, metric...] when metrics were compiled (Keras's convention),
        or a dict with return_dict=True."""
        self._require_compiled("train_on_batch")
        if not self._train_lock.acquire(blocking=False):
            raise RuntimeError("train_on_batch: this model is being trained in another "
                               "thread")
        try:
            loss, values, status = self._batch_pass("train_on_batch", x, y, sample_weight,
                                                    class_weight, update=True)
            if status == "non-finite":
                raise FloatingPointError(f"train_on_batch: non-finite loss or gradients "
                                         f"(loss {loss}); the update was skipped, the "
                                         f"weights are unchanged")
            if status == "overflow":
                raise FloatingPointError("train_on_batch: the update overflowed; some "
                                         "weights are now infinite (lower the learning "
                                         "rate and restore the weights)")
        finally:
            self._train_lock.release()
        names = ["loss"] + [m.name for m in self.metrics]
        if return_dict:
            return dict(zip(names, [loss] + values))
        return loss if not values else [loss] + values

    def gradients(self, x, y, sample_weight=None):
        """Gradients of the mean batch loss on (x, y) — regularization penalty included —
        with respect to each of ``trainable_weights`` (get_weights() order without the
        non-trainable ones). Dropout is active (training mode); the weights are not
        changed."""
        self._require_compiled("gradients")
        if not self._train_lock.acquire(blocking=False):
            raise RuntimeError("gradients: this model is being trained in another thread")
        try:
            self._batch_pass("gradients", x, y, sample_weight, None)
            return [g.copy() for layer in self.layers for g in layer.trainable_gradients]
        finally:
            self._train_lock.release()
