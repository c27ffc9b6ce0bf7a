"""Synchronous data-parallel training over MPI (mpi4py): ``fit(..., distribute=strategy)``.

    strategy = fn.distributed.DataParallel()         # MPI.COMM_WORLD under mpiexec
    model.fit(x, y, batch_size=512, epochs=10, distribute=strategy)
    # started as: mpiexec -n 4 python train.py

Every rank runs the same script on the same data (an array or a memory map). batch_size is
the global batch: rank r trains on rows [lo_r, hi_r) of each global batch (``share``), so a
step costs each rank 1/K of the forward and backward work. Each step then makes the K local
gradients into the global one with ONE in-place ``Allreduce`` (sum) of the model's flat
gradient buffer, and every rank applies the same optimizer update to the same weights, so
the weights stay identical without ever being sent again. What makes the sum right:
- every rank scales its loss gradient by 1 / n_global (not 1 / its share), so the sum is
  the global-batch mean, sample weights included;
- the regularization gradient is added by the chief only (the other ranks run backward
  with it off: ``Layer._backward_penalty``), so it counts once;
- shuffles come from (seed, epoch) and dropout masks from (seed, epoch, step, layer, global
  row): the seed and epoch counter are broadcast from rank 0 at the start, and each rank's
  dropout key is advanced to its first row (``Sequential._forward``'s row_offset). K ranks
  thus compute the training one process does with the same global batch, up to the order
  of floating-point summation.

The step's other numbers (the batch's loss sum, the penalty and the metrics' states of the
batch, float64; see Metric.write_state) go through a second, non-blocking Allreduce
started just before the gradient's and finished after it: it rides in the shadow of the
large one instead of adding a round trip (bench/data_parallel.py, 2 ranks on idle cores,
the 2.7 MB gradient of 784-512-512-10: Allreduce alone 702 µs, with the Iallreduce beside
it 704 µs, medians of 100: no measurable extra cost). Each rank then adds the summed batch state into
its metrics, so their values are the global batch's on every rank.
Everything the loop decides on is reduced before it decides: the NaN/inf check reads the
reduced sums (a non-finite value on any rank makes them non-finite on every rank), the
epoch's loss and metrics are global, and the validation set is split across the ranks and
its sums reduced. History, EarlyStopping, ReduceLROnPlateau and a NaN stop therefore decide
the same on every rank. Only the chief (rank 0) prints progress and writes files: the other
ranks run without ProgbarLogger, CSVLogger and ModelCheckpoint, and ``model.save`` /
``save_weights`` write nothing there (Horovod's convention: the chief writes).

An exception on one rank would leave the others waiting in a collective forever: inside
``fit`` such an exception, and any exception that reaches the top of a script that made a
strategy with more than one rank, prints its traceback and aborts the whole job
(``MPI_Abort``). A NaN stop raised with on_nan='raise' is decided on reduced values, is
raised on every rank at the same step, and propagates normally.

Without mpiexec (or with a one-rank communicator) the strategy has size 1 and fit runs
exactly as without it. mpi4py is imported only when a strategy is made, so fastnn imports
without it; started by an MPI launcher with more than one process but without mpi4py, the
strategy refuses to run (each process would otherwise train alone, silently).
Install: ``pip install 'fastnn[mpi]'`` (mpi4py with the MPICH wheels; a site's own MPI
works too: build mpi4py against it).
"""
import contextlib
import os
import sys
import time
import traceback

import numpy as np

from fastnn import _threads
from fastnn import callbacks as callbacks_module
from fastnn import metrics as metrics_module

# Environment variables MPI launchers set to the number of processes started:
# MPICH/Intel MPI (Hydra) and Slurm's PMI2, Open MPI, MVAPICH2, PMIx.
_LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE",
                            "PMIX_SIZE")

# Callbacks that print or write files: on the chief only.
_CHIEF_ONLY = (callbacks_module.ProgbarLogger, callbacks_module.CSVLogger,
               callbacks_module.ModelCheckpoint)
# fastnn's callbacks with batch hooks that never stop training.
_NEVER_STOP = (callbacks_module.ProgbarLogger, callbacks_module.History,
               callbacks_module.GradientMonitor)


class RanksDiverged(RuntimeError):
    """The ranks' weights differ after an epoch: something changed the model on some
    ranks only. Raised on every rank at the same point."""


def _launched_size():
    """The process count an MPI launcher announced in the environment (1 if none)."""
    for name in _LAUNCHER_SIZE_VARIABLES:
        try:
            return max(1, int(os.environ[name]))
        except (KeyError, ValueError):
            continue
    return 1


def _world():
    """mpi4py's COMM_WORLD, or None when mpi4py is not installed and no launcher started
    more than one process."""
    try:
        from mpi4py import MPI
    except ImportError:
        launched = _launched_size()
        if launched > 1:
            raise RuntimeError(
                f"DataParallel: this process is one of {launched} started by an MPI "
                f"launcher, but mpi4py is not installed, so the processes cannot talk to "
                f"each other and each would train alone. Install it: pip install "
                f"'fastnn[mpi]'") from None
        return None
    return MPI.COMM_WORLD


def _mpi():
    from mpi4py import MPI
    return MPI


def share(n, rank, size):
    """(lo, hi): the contiguous rows of n that rank ``rank`` of ``size`` takes. Sizes
    differ by at most one, the larger shares first, so rank 0's is never empty; the last
    ranks' are when n < size."""
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


class DataParallel:
    """Synchronous data parallelism over an MPI communicator (see the module docstring).

    comm: an mpi4py communicator; None means ``MPI.COMM_WORLD`` (size 1 when the script
    was not started by mpiexec, or when mpi4py is not installed). Every rank must make the
    strategy (it is a collective call when size > 1) and call fit with the same data and
    arguments.

    Attributes: ``rank``, ``size``, ``is_chief`` (rank 0: prints and writes files),
    ``local_size`` (ranks on this node), ``allreduce_seconds`` / ``allreduce_calls`` (the
    time from entering to leaving each step's reduction, summed over fits: communication
    plus waiting for the slowest rank).

    With more than one rank, fastnn's default thread count becomes this process's share
    of the node's CPUs (available CPUs // ranks on the node) unless the user chose one,
    and an unhandled exception aborts the job (see the module docstring).
    """

    def __init__(self, comm=None):
        if comm is None:
            comm = _world()
        elif not all(hasattr(comm, m) for m in ("Get_rank", "Get_size", "Allreduce")):
            raise TypeError(f"DataParallel: comm must be an mpi4py communicator (such as "
                            f"MPI.COMM_WORLD), got {type(comm).__name__}")
        self.comm = comm
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1
        self.is_chief = self.rank == 0
        self.local_size = 1
        self.allreduce_seconds = 0.0
        self.allreduce_calls = 0
        self._scalars = np.zeros(0, np.float64)
        self._metrics = []
        self._flag = np.zeros(1, np.int32)
        self._agree_per_batch = False
        if self.size > 1:
            node = comm.Split_type(_mpi().COMM_TYPE_SHARED)
            self.local_size = node.Get_size()
            node.Free()
            _threads.share_node(self.local_size)
            _install_excepthook(comm)

    def __repr__(self):
        return f"DataParallel(rank={self.rank}, size={self.size})"

    def share(self, n):
        """(lo, hi): the rows of a global batch of n this rank trains on."""
        return share(n, self.rank, self.size)

    # ------------------------------------------------------------ fit's hooks --
    # Sequential.fit calls these, in this order: _begin (after the data is checked, before
    # the validation split), _shard, then within _guard: _callbacks; per step
    # _batch_rows, _step_metrics, _reduce_step and _after_batch; per epoch _evaluate and
    # _after_epoch.

    def _begin(self, model, settings):
        """Check that every rank has the same model, data and arguments (``settings``: the
        data's shapes and fit's arguments), then give every rank rank 0's model: seed,
        epoch counter, weights and optimizer state. Raises the same ValueError on every
        rank if the ranks disagree."""
        if model._stateful:
            names = [layer.name for _, layer in model._stateful]
            raise ValueError(f"fit(distribute=...): layers {names} update statistics of "
                             f"each batch (batch normalization); each rank would see only "
                             f"its share of the batch and the ranks' states would drift "
                             f"apart. Synchronized batch statistics are not supported")
        for metric in model.metrics:
            metric.state_size()          # NotImplementedError for a metric without one
        signature = (model.dtype.name, model.parameter_store.params.shape[0], model.loss.name,
                     [m.name for m in model.metrics], type(model.optimizer).__name__,
                     model.optimizer.get_config(), settings)
        theirs = self.comm.allgather(signature)
        if any(s != theirs[0] for s in theirs):
            rows = "; ".join(f"rank {r}: {s}" for r, s in enumerate(theirs))
            raise ValueError(f"fit(distribute=...): the ranks' data or arguments differ "
                             f"({rows}); every rank must call fit with the same data "
                             f"(an array or a memory map of the same rows) and the same "
                             f"arguments")
        model.seed, model.epochs_trained = self.comm.bcast(
            (model.seed, model.epochs_trained), root=0)
        self.comm.Bcast(model.parameter_store.params, root=0)
        optimizer = model.optimizer
        state = optimizer.variables()
        for name, slot in state.items():
            if name != "iterations" and slot.shape[0]:
                self.comm.Bcast(slot, root=0)
        state["iterations"] = self.comm.bcast(optimizer.iterations, root=0)
        optimizer.set_variables(state)   # re-derives what depends on the step count

    def _shard(self, train, val):
        """This rank's part of fit's training and validation data (array adapters)."""
        from fastnn import data_adapters
        for what, data in (("x", train), ("validation_data", val)):
            if data is not None and not isinstance(data, data_adapters.ArrayAdapter):
                raise ValueError(f"fit(distribute=...): {what} must be an array or a memory "
                                 f"map, which every rank reads its rows of each batch from; "
                                 f"generators and PyDatasets are not supported")
        self._batch_size, self._samples = train.batch_size, train.num_samples
        # (an empty validation share still takes part in each epoch's reduction)
        return train.shard(self.share), None if val is None else val.shard(self.share)

    def _batch_rows(self, step):
        """(n, lo): the global batch size of training step ``step`` and the first row of
        this rank's share in it."""
        n = min(self._batch_size, self._samples - step * self._batch_size)
        return n, self.share(n)[0]

    def _callbacks(self, callbacks):
        """The callbacks this rank runs: all of them on the chief; elsewhere, all but
        those that print progress or write files."""
        mine = callbacks if self.is_chief else \
            [c for c in callbacks if not isinstance(c, _CHIEF_ONLY)]
        # Whether any rank runs a batch hook that may set stop_training: then the ranks
        # agree on it after every batch (see _after_batch); one reduction per fit.
        self._flag[0] = any(callbacks_module._overrides(c, hook) for c in mine
                            if not isinstance(c, _NEVER_STOP)
                            for hook in ("on_train_batch_begin", "on_train_batch_end"))
        self.comm.Allreduce(_mpi().IN_PLACE, self._flag, op=_mpi().MAX)
        self._agree_per_batch = bool(self._flag[0])
        return mine

    def _step_metrics(self):
        """Metrics for this rank's share of one batch (copies of the model's, reset):
        _reduce_step sums their states into the model's."""
        for metric in self._metrics:
            metric.reset_state()
        return self._metrics

    def _reduce_step(self, model, loss_sum, penalty):
        """Sum the step over the ranks, in place: the flat gradient (one Allreduce) and,
        riding beside it, the loss sum, the penalty (the chief's) and the states of the
        _step_metrics, which are then added into the model's metrics. Returns the global
        (loss sum, penalty)."""
        MPI = _mpi()
        s = self._scalars
        s[0], s[1] = loss_sum, penalty
        _write_states(self._metrics, s[2:])
        start = time.perf_counter()
        request = self.comm.Iallreduce(MPI.IN_PLACE, s, op=MPI.SUM)
        self.comm.Allreduce(MPI.IN_PLACE, model.parameter_store.grads, op=MPI.SUM)
        request.Wait()
        self.allreduce_seconds += time.perf_counter() - start
        self.allreduce_calls += 1
        _add_states(model.metrics, s[2:])
        return float(s[0]), float(s[1])

    def _after_batch(self, model):
        """A callback that stops training on some ranks only (a wall-clock limit, a rank-0
        callback) would leave the others in the next Allreduce: when any rank has such a
        hook, the ranks agree after each batch (a 4-byte Allreduce); a stop anywhere stops
        every rank."""
        if self._agree_per_batch:
            self._flag[0] = model.stop_training
            self.comm.Allreduce(_mpi().IN_PLACE, self._flag, op=_mpi().MAX)
            model.stop_training = bool(self._flag[0])

    def _after_epoch(self, model, epoch):
        """At each epoch's end the ranks agree on stop_training (a stop anywhere stops
        every rank) and check that their weights are still bit-identical (an exact
        checksum: the parameters' bit patterns summed as integers); if not, every rank
        raises RanksDiverged."""
        params = model.parameter_store.params
        bits = params.view(np.uint32 if params.dtype.itemsize == 4 else np.uint64)
        checksum = int(np.add.reduce(bits, dtype=np.uint64))
        theirs = self.comm.allgather((bool(model.stop_training), checksum))
        model.stop_training = any(stop for stop, _ in theirs)
        if any(c != theirs[0][1] for _, c in theirs):
            raise RanksDiverged(
                f"fit(distribute=...): after epoch {epoch + 1} the ranks' weights differ "
                f"(checksums by rank: {[c for _, c in theirs]}): something changed the "
                f"model on some ranks only, e.g. a callback that sets weights or the "
                f"learning rate differently on different ranks")

    def _evaluate(self, model, val):
        """fit's validation: each rank evaluates its share of the rows (val, from _shard;
        it may have none), the sums are reduced; [mean loss + penalty, metrics...] on
        every rank."""
        MPI = _mpi()
        loss_sum, n, metrics = model._evaluate_sums(val)
        sums = np.zeros(2 + sum(m.state_size() for m in metrics), np.float64)
        sums[0], sums[1] = loss_sum, n
        _write_states(metrics, sums[2:])
        self.comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
        for metric in metrics:
            metric.reset_state()
        _add_states(metrics, sums[2:])
        return model._evaluation_means(float(sums[0]), int(sums[1]), metrics)

    @contextlib.contextmanager
    def _guard(self, model):
        """fit's loop runs inside: the chief alone adds the regularization gradient, and
        an exception that not every rank raises aborts the job (the other ranks would wait
        in a collective forever). A NaN stop (FloatingPointError with model.stop_training
        set) is decided on reduced values, so every rank raises it at the same step: it
        propagates."""
        self._metrics = metrics_module.copies(model.metrics)
        self._scalars = np.zeros(2 + sum(m.state_size() for m in self._metrics),
                                 np.float64)
        for layer in model.layers:
            layer._backward_penalty = self.is_chief
        try:
            yield
        except RanksDiverged:
            raise                        # decided on allgathered values: every rank raises
        except FloatingPointError:
            if not model.stop_training:
                _abort(self.comm, sys.exc_info())
            raise
        except BaseException:
            _abort(self.comm, sys.exc_info())
            raise
        finally:
            for layer in model.layers:
                layer._backward_penalty = True


def _state_slices(metrics):
    """(metric, its slice) of the float64 vector holding the metrics' states one after
    the other."""
    at = 0
    for metric in metrics:
        size = metric.state_size()
        yield metric, slice(at, at + size)
        at += size


def _write_states(metrics, out):
    """The metrics' states, one after the other, into the float64 vector out."""
    for metric, part in _state_slices(metrics):
        metric.write_state(out[part])


def _add_states(metrics, values):
    """Add a _write_states vector into the metrics."""
    for metric, part in _state_slices(metrics):
        metric.add_state(values[part])


def _abort(comm, exc_info):
    """Print the traceback with the rank, then end every process of the job. (MPICH's
    MPI_Abort may return to the caller once it has told the launcher; the process then
    exits at once, so the exception does not go on to print and abort a second time.)"""
    rank = comm.Get_rank()
    text = "".join(traceback.format_exception(*exc_info))
    sys.stderr.write(f"fastnn.distributed: rank {rank} of {comm.Get_size()} failed; "
                     f"aborting the job so no rank waits forever:\n{text}")
    sys.stderr.flush()
    # The launcher forwards a rank's output asynchronously; tearing the job down at once
    # lost the traceback about 1 time in 30 (measured with MPICH's Hydra).
    time.sleep(0.25)
    comm.Abort(1)
    os._exit(1)


_hooked = []


def _install_excepthook(comm):
    """An exception reaching the top of the script on one rank (Ctrl-C included) prints
    its traceback and aborts the job (installed once per process)."""
    if _hooked:
        return

    def hook(kind, value, tb):
        _abort(comm, (kind, value, tb))

    sys.excepthook = hook
    _hooked.append(hook)
