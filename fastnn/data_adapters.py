"""Data adapters: every kind of data fit / evaluate / predict accept, handed to the loops
as batches of the model's dtype in preallocated buffers.

- arrays in memory of the model's dtype: converted (if need be) once, gathered per batch
  into the workspace (the fast path; unchanged since the first fastnn);
- arrays of another dtype (uint8 images, int64, float64 for a float32 model) and
  memory-mapped arrays (np.memmap, np.load(..., mmap_mode="r")) of any dtype: never
  converted whole; each batch's rows are gathered and converted by a kernel
  (_core/ops.pyx: gather_convert_rows) into a staging buffer (for memmaps one batch
  ahead, in a background thread);
- Python generators and iterators of (x, y[, sample_weight]) batches;
- PyDataset (Keras 3's base class: __len__ / __getitem__), read by `workers` threads (or
  processes), in order.

Streams are validated batch by batch (the error names the batch) and prefetched by one
background thread while the GIL-free training step runs; exceptions in the producer are
re-raised in the caller with their traceback, and no thread outlives the loop.

Keras 3 semantics of the step counts (see fit's docstring): steps_per_epoch=None runs an
epoch until the data ends (arrays, PyDataset: one pass); a generator is single-use, so a
later epoch finds it exhausted: fit warns ("Your input ran out of data") and stops. With
steps_per_epoch=k, each epoch takes the next k batches of a generator (continuing where
the last epoch stopped), or the first k of an array/PyDataset pass; a generator that ends
early ends the epoch, warns and stops training after it.
"""
import collections
import concurrent.futures
import copy
import itertools
import mmap
import queue
import threading
import warnings

import numpy as np

from fastnn import _random
from fastnn import _validation as v
from fastnn._core import ops as _ops

# Batches made ahead of the step: one suffices for arrays (converting a batch is much
# cheaper than training on it); generators' Python code is less regular.
_ARRAY_AHEAD, _STREAM_AHEAD = 1, 2
_CHECK_ROWS_BYTES = 1 << 22   # chunk size of the up-front value check of lazy arrays
RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your "
           "dataset or generator can generate at least `steps_per_epoch * epochs` "
           "batches.")


# ---------------------------------------------------------------------- PyDataset --
class PyDataset:
    """Base class for a data set that makes its batches in Python (Keras 3's PyDataset).

    Subclasses implement ``__len__`` (the number of batches; or the ``num_batches``
    property, None for an infinite data set) and ``__getitem__(index)`` returning one
    complete batch ``(x, y)`` or ``(x, y, sample_weight)`` (``x`` alone for predict);
    optionally ``on_epoch_begin`` / ``on_epoch_end``, which fit calls around each epoch.

    workers: threads (or processes) calling ``__getitem__`` during fit; batches still
    arrive in index order. use_multiprocessing: worker processes instead of threads
    (multiprocessing's default start method; the data set must pickle unless that is
    'fork'); each epoch gets fresh workers, so changes made by on_epoch_end reach them.
    max_queue_size: batches requested ahead of the training step.
    Call ``super().__init__(**kwargs)`` from the subclass's ``__init__``.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self._workers = workers
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = max_queue_size

    def _warn_if_super_not_called(self):
        missing = [k for k in ("_workers", "_use_multiprocessing", "_max_queue_size")
                   if not hasattr(self, k)]
        if missing:
            self._workers, self._use_multiprocessing, self._max_queue_size = \
                getattr(self, "_workers", 1), getattr(self, "_use_multiprocessing", False), \
                getattr(self, "_max_queue_size", 10)
            warnings.warn("Your `PyDataset` class should call `super().__init__(**kwargs)` "
                          "in its constructor. `**kwargs` can include `workers`, "
                          "`use_multiprocessing`, `max_queue_size`.", stacklevel=3)

    @property
    def workers(self):
        self._warn_if_super_not_called()
        return self._workers

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self):
        self._warn_if_super_not_called()
        return self._use_multiprocessing

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = value

    @property
    def max_queue_size(self):
        self._warn_if_super_not_called()
        return self._max_queue_size

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        """The batch at position index."""
        raise NotImplementedError

    @property
    def num_batches(self):
        """The number of batches, or None for an infinite data set."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError("PyDataset: implement __len__ or the num_batches "
                                  "property")

    def __iter__(self):
        n = self.num_batches
        for i in (range(n) if n is not None else itertools.count()):
            yield self[i]

    def on_epoch_begin(self):
        """Called at the beginning of every epoch."""

    def on_epoch_end(self):
        """Called at the end of every epoch."""


_worker_dataset = None      # the PyDataset of a worker process


def _init_worker(dataset):
    global _worker_dataset
    _worker_dataset = dataset


def _getitem_in_worker(index):
    return _worker_dataset[index]


# ------------------------------------------------------------------ array sources --
def is_memmap(arr):
    """True when arr (or the array it is a view of) is backed by a memory-mapped file."""
    while isinstance(arr, np.ndarray):
        if isinstance(arr, np.memmap):
            return True
        arr = arr.base
    return isinstance(arr, mmap.mmap)


def _kernel_reads(dtype):
    """gather_convert_rows handles native-endian ints/uints and float32/float64."""
    return dtype.isnative and (dtype.kind in "iu" and dtype.itemsize in (1, 2, 4, 8) or
                               dtype.kind == "f" and dtype.itemsize in (4, 8))


def reads_lazily(arr, dtype):
    """Whether the loops read x batch by batch instead of converting it once: memmaps,
    and arrays that are not already C-contiguous in the model's dtype."""
    return is_memmap(arr) or arr.dtype != dtype or not arr.flags.c_contiguous


def input_rows(name, value, dtype, shape):
    """x (n, *shape) for the loops, as (n, prod(shape)) rows: a view of the array itself
    when it is in memory, C-contiguous and of the model's dtype (checked once; the fast
    path), else a LazyRows over it (read batch by batch). Errors as
    v.as_float_samples's."""
    arr = v.as_array(name, value)
    if not reads_lazily(arr, dtype):
        return v.as_float_samples(name, arr, dtype, shape)
    return LazyRows(name, _as_rows(v.check_samples_shape(name, arr, shape)), dtype)


def _as_rows(arr):
    # (n, 28, 28) -> (n, 784): a view for C-contiguous data (memmaps included)
    return arr if arr.ndim == 2 else arr.reshape(arr.shape[0], -1)


class LazyRows:
    """A 2-D array read batch by batch: rows gathered and converted into a buffer of the
    model's dtype, never converted whole.

    In-memory float sources are checked for NaN/inf and range once, chunk by chunk (so
    bad values are refused before training, as for converted arrays); a memory-mapped
    float source is checked batch by batch as it is read (checking it up front would read
    the whole file an extra time).
    """

    def __init__(self, name, arr, dtype, check_upfront=None):
        self.name = name
        self.dtype = np.dtype(dtype)
        if arr.dtype == np.bool_:
            arr = arr.view(np.uint8)
        self.arr = arr
        self.shape = arr.shape
        self.memmap = is_memmap(arr)
        upfront = not self.memmap if check_upfront is None else check_upfront
        self._check_batches = arr.dtype.kind == "f" and not upfront
        self._direct = _kernel_reads(arr.dtype)
        if arr.dtype.kind == "f" and upfront:
            check_values(name, arr, self.dtype)

    def rows(self, index, out):
        """out[:len(index)] = the rows index of the source, converted (the gather)."""
        n = index.shape[0]
        dst = out[:n]
        if self._direct:
            _ops.gather_convert_rows(self.arr, index, dst)
        else:   # float16, byte-swapped, long double: NumPy's cast (rare dtypes)
            np.copyto(dst, np.take(self.arr, index, axis=0), casting="unsafe")
        if self._check_batches:
            _check_batch_values(self.name, dst, lambda: self.arr[index], index)
        return dst

    def span(self, start, stop, out):
        """out[:stop - start] = rows start..stop of the source, converted."""
        dst = out[:stop - start]
        if self._direct:
            _ops.convert_rows(self.arr, start, dst)
        else:
            np.copyto(dst, self.arr[start:stop], casting="unsafe")
        if self._check_batches:
            _check_batch_values(self.name, dst, lambda: self.arr[start:stop],
                                np.arange(start, stop))
        return dst


def check_values(name, arr, dtype):
    """as_float_matrix's value checks (finite; within dtype's range) on a float array of
    any dtype and layout, chunk by chunk: never a whole converted copy.

    Each chunk is cast into one reused buffer (a value beyond float32's range becomes
    inf) and checked by the vectorized all_finite; only a failing chunk is looked at
    closely, to raise as_float_matrix's own error (overflow first, then NaN/inf)."""
    step = max(1, _CHECK_ROWS_BYTES // max(1, arr.shape[1] * 8))
    buf = np.empty((min(step, arr.shape[0]), arr.shape[1]), dtype)
    for start in range(0, arr.shape[0], step):
        chunk = arr[start:start + step]
        out = buf[:chunk.shape[0]]
        with np.errstate(over="ignore", invalid="ignore"):
            np.copyto(out, chunk, casting="unsafe")
        if _ops.all_finite(out.reshape(-1)):
            continue
        v._convert(name, chunk, dtype)             # raises if it is an overflow
        bad = np.argwhere(~np.isfinite(chunk))[0]
        first = (int(bad[0]) + start,) + tuple(int(i) for i in bad[1:])
        raise ValueError(f"{name}: contains NaN or infinity (first at index {first})")


def _check_batch_values(name, converted, source_rows, index):
    """After a float batch is converted: refuse NaN/inf (and float32 overflow, which the
    conversion turned into inf), naming the source row."""
    if _ops.all_finite(converted.reshape(-1)):
        return
    src = np.asarray(source_rows())
    bad = np.argwhere(~np.isfinite(src))
    if bad.size == 0:
        big = np.abs(src).max()
        raise ValueError(f"{name}: values up to {big:g} overflow the model dtype "
                         f"{converted.dtype.name}")
    row, col = int(index[bad[0][0]]), int(bad[0][1])
    raise ValueError(f"{name}: contains NaN or infinity (first at index ({row}, {col}))")


# -------------------------------------------------------------------- prefetching --
class _Staging:
    """A ring of batch buffers the producer converts into: `size` buffers, so one being
    filled, the queued ones and the one the step is using never coincide."""

    def __init__(self, size, width, dtype):
        self.bufs = [None] * size
        self.width, self.dtype = width, dtype
        self.next = 0

    def take(self, n):
        i = self.next
        self.next = (i + 1) % len(self.bufs)
        buf = self.bufs[i]
        if buf is None or buf.shape[0] < n:
            buf = self.bufs[i] = np.empty((n, self.width), self.dtype)
        return buf


_ITEM, _END, _ERROR = 0, 1, 2
_EMPTY_SHARE = (None, None, None, None)   # a data-parallel rank's empty share of a batch


class Prefetcher:
    """Runs the generator `produce` in a background thread, at most `depth` items ahead.

    Iterating yields its items in order; an exception in the producer is raised here (its
    traceback shows where it happened). close() (or leaving a `with` block) stops the
    thread and waits for it: no thread outlives the loop that used it.
    """

    def __init__(self, produce, depth):
        self._queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._run, args=(produce,),
                                        name="fastnn-prefetch", daemon=True)
        self._thread.start()

    def _run(self, produce):
        try:
            for item in produce:
                if not self._put((_ITEM, item)):
                    return
            self._put((_END, None))
        except BaseException as e:       # noqa: B902 - handed to the consumer
            self._put((_ERROR, e))
        finally:
            produce.close()

    def _put(self, message):
        while not self._stop.is_set():
            try:
                self._queue.put(message, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def __iter__(self):
        return self

    def __next__(self):
        if self._finished:
            raise StopIteration
        kind, payload = self._queue.get()
        if kind == _ITEM:
            return payload
        self._finished = True
        self._thread.join()
        if kind == _END:
            raise StopIteration
        raise payload

    def close(self):
        self._finished = True
        self._stop.set()
        while self._thread.is_alive():
            try:                          # unblock a producer waiting to put
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Epoch:
    """One epoch's batches: an iterator of (workspace, x, y, sample_weight). close() (or
    leaving a `with` block) stops its prefetching thread, if any, and runs `on_close`
    (PyDataset.on_epoch_end) once."""

    def __init__(self, batches, prefetcher=None, on_close=None):
        self._batches = batches
        self._prefetcher = prefetcher
        self._on_close = on_close

    def __iter__(self):
        return iter(self._batches)

    def close(self):
        prefetcher, on_close = self._prefetcher, self._on_close
        self._prefetcher = self._on_close = None
        try:
            if prefetcher is not None:
                prefetcher.close()
        finally:
            if on_close is not None:
                on_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------------- arrays --
class ArrayAdapter:
    """Batches of arrays: x (a C-contiguous array of the model's dtype, or LazyRows),
    y and sample weights (converted, in memory).

    training=True: epochs gather a permutation of the rows `index` (all when None), from
    the model's seed and epoch counter; y and sw are indexed by source row.
    training=False (evaluate, predict, validation): the rows `index` in order.
    """

    def __init__(self, model, x, y, sw, batch_size, index=None, steps=None, training=False):
        self.model = model
        self.lazy = isinstance(x, LazyRows)
        self.training = training
        if index is not None and not training:
            y = y[index] if y is not None else None
            sw = sw[index] if sw is not None and sw.shape[0] else sw
            if not self.lazy:
                x, index = x[index], None  # in memory already: a copy of these rows
        self.x, self.y, self.sw, self.index = x, y, sw, index
        self.num_samples = index.shape[0] if index is not None else x.shape[0]
        if batch_size is None:   # Keras: steps alone set the batch size (one pass)
            batch_size = -(-self.num_samples // steps) if steps else 32
        self.batch_size = min(batch_size, self.num_samples)
        full = -(-self.num_samples // self.batch_size)
        if steps is not None and steps > full:
            warnings.warn(f"steps ({steps}) is more than one pass over the "
                          f"{self.num_samples} samples in batches of {self.batch_size} "
                          f"({full} batches); each epoch is one pass. " + RAN_OUT,
                          UserWarning, stacklevel=4)
        self.num_batches = full if steps is None else min(steps, full)
        self.exhausted = False
        self.ran_out = False
        self._share = None

    def shard(self, share):
        """This rank's part of the data in a data-parallel fit (fastnn/distributed.py);
        share(n) -> (lo, hi) gives the rows of n that this rank takes.

        Training: every epoch has the same global batches, of which this rank gets rows
        [lo, hi); an empty share comes as (None, None, None, None), a step the rank must
        still take part in. Evaluation: the rows of the pass are split once (a rank's part
        may have no rows, and then no batches)."""
        part = copy.copy(self)
        if self.training:
            part._share = share
            return part
        lo, hi = share(min(self.num_samples, self.num_batches * self.batch_size))
        if self.lazy:
            part.index = self.index[lo:hi] if self.index is not None else \
                np.arange(lo, hi, dtype=np.int64)
        else:
            part.x = self.x[lo:hi]
        part.y = self.y[lo:hi]
        part.sw = self.sw[lo:hi] if self.sw.shape[0] else self.sw
        part.num_samples = hi - lo
        part.batch_size = max(1, min(self.batch_size, hi - lo))
        part.num_batches = -(-part.num_samples // part.batch_size)
        return part

    def _rows_of(self, idx):
        """A global batch's rows idx, or this rank's share of them (see shard)."""
        if self._share is None:
            return idx
        lo, hi = self._share(idx.shape[0])
        return idx[lo:hi]

    def _lazy_epoch(self, produce, finish):
        """An epoch of LazyRows batches: produce(staging) yields the converted batches,
        finish(*item) makes each the loop's (workspace, x, y, sw). For a memmap, produce
        runs in a prefetching thread (reading the file overlaps the step); from memory,
        in this thread (converting a batch costs less than a hand-off between threads)."""
        if not self.x.memmap:
            staging = _Staging(1, self.x.shape[1], self.model.dtype)
            return _Epoch(finish(*item) for item in produce(staging))
        staging = _Staging(_ARRAY_AHEAD + 2, self.x.shape[1], self.model.dtype)
        prefetch = Prefetcher(produce(staging), _ARRAY_AHEAD)
        return _Epoch((finish(*item) for item in prefetch), prefetch)

    def epoch(self, workspace, seed=None, counter=0, shuffle=False):
        """An epoch of (workspace, x, y, sample_weight) batches; workspace(n) gives the
        buffers for a batch of n rows."""
        if self.training:
            return self._train_epoch(workspace, seed, counter, shuffle)
        return self._eval_epoch(workspace)

    def _train_epoch(self, workspace, seed, counter, shuffle):
        bs = self.batch_size
        base = np.arange(self.num_samples, dtype=np.int64) if self.index is None \
            else self.index
        if shuffle:
            order = base[_random.generator(seed, _random.SHUFFLE, counter)
                         .permutation(self.num_samples)]
        else:
            order = base
        sparse = self.model.loss.target == "sparse"
        weighted = self.sw.shape[0] > 0

        def targets(idx, ws):
            if sparse:
                _ops.gather_values(self.y, idx, ws.y)
            else:
                _ops.gather_rows(self.y, idx, ws.y)
            if weighted:
                _ops.gather_weights(self.sw, idx, ws.sw)
            return ws.y, ws.sw if weighted else self.sw

        if not self.lazy:
            def batches():
                for step in range(self.num_batches):
                    idx = self._rows_of(order[step * bs:(step + 1) * bs])
                    if not idx.shape[0]:
                        yield _EMPTY_SHARE
                        continue
                    ws = workspace(idx.shape[0])
                    _ops.gather_rows(self.x, idx, ws.x)
                    yield (ws, ws.x) + targets(idx, ws)
            return _Epoch(batches())

        def produce(staging):
            for step in range(self.num_batches):
                idx = self._rows_of(order[step * bs:(step + 1) * bs])
                yield idx, (self.x.rows(idx, staging.take(idx.shape[0])) if idx.shape[0]
                            else None)

        def finish(idx, xb):
            if xb is None:
                return _EMPTY_SHARE
            ws = workspace(idx.shape[0])
            return (ws, xb) + targets(idx, ws)
        return self._lazy_epoch(produce, finish)

    def _eval_epoch(self, workspace):
        bs, total = self.batch_size, self.num_samples
        weighted = self.sw is not None and self.sw.shape[0] > 0
        spans = [(start, min(start + bs, total)) for start in range(0, bs * self.num_batches,
                                                                    bs)]

        def labels(start, stop):
            if self.y is None:
                return None, None
            return self.y[start:stop], (self.sw[start:stop] if weighted else self.sw)

        if not self.lazy:
            def batches():
                for start, stop in spans:
                    yield (workspace(stop - start), self.x[start:stop]) + \
                        labels(start, stop)
            return _Epoch(batches())

        def produce(staging):
            for start, stop in spans:
                buf = staging.take(stop - start)
                if self.index is None:
                    yield start, stop, self.x.span(start, stop, buf)
                else:
                    yield start, stop, self.x.rows(self.index[start:stop], buf)

        def finish(start, stop, xb):
            return (workspace(stop - start), xb) + labels(start, stop)
        return self._lazy_epoch(produce, finish)


# ------------------------------------------------------------------------ streams --
def is_stream(x):
    """Generators, iterators and PyDatasets (not arrays, lists or tuples)."""
    if isinstance(x, PyDataset):
        return True
    return hasattr(x, "__next__") and hasattr(x, "__iter__") and \
        not isinstance(x, (np.ndarray, list, tuple, str, bytes))


def _unpack(what, i, batch):
    """(x, y, sample_weight) of one yielded batch (y, sample_weight may be None)."""
    if isinstance(batch, np.ndarray):
        return batch, None, None
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple) or len(batch) not in (1, 2, 3):
        raise TypeError(f"{what}: batch {i}: expected a tuple (x,), (x, y) or "
                        f"(x, y, sample_weight), got {type(batch).__name__}"
                        + (f" of length {len(batch)}" if isinstance(batch, tuple) else ""))
    return tuple(batch) + (None,) * (3 - len(batch))


class StreamAdapter:
    """Batches from a generator / iterator, or from a PyDataset, validated and converted
    one by one (into a staging ring) in a background thread.

    with_targets: training and evaluation need y in every batch; predict uses x only.
    """

    def __init__(self, model, what, data, steps, with_targets, class_weight=None,
                 steps_name="steps_per_epoch"):
        self.model = model
        self.what = what
        self.data = data
        self.with_targets = with_targets
        self.class_weight = class_weight
        self.batch_size = None
        self.num_samples = None
        self.ran_out = False          # the last epoch's data ended before `steps` batches
        self.exhausted = False        # a single-use source that has ended
        self.pydataset = isinstance(data, PyDataset)
        if self.pydataset:
            self.processes = bool(data.use_multiprocessing)
            self.workers = v.positive_int(f"{what}: PyDataset workers", data.workers)
            self.depth = v.positive_int(f"{what}: PyDataset max_queue_size",
                                        data.max_queue_size)
            length = data.num_batches
            if length is None and steps is None:
                raise ValueError(f"{what}: the PyDataset is infinite (num_batches is "
                                 f"None); give {steps_name}=...")
            if length is not None:
                length = v.positive_int(f"{what}: len(PyDataset)", length)
            self.length = length
            self.num_batches = length if steps is None else \
                (steps if length is None else min(steps, length))
            if steps is not None and length is not None and steps > length:
                warnings.warn(f"{what}: {steps_name}={steps} is more than the PyDataset's "
                              f"{length} batches; each epoch is one pass. " + RAN_OUT,
                              UserWarning, stacklevel=4)
        else:
            self.iterator = iter(data)
            self.depth = _STREAM_AHEAD
            self.num_batches = steps
            self._pending = collections.deque()   # batches peeked to build the model
        self._produced = 0            # batches taken from a generator so far
        if not self.pydataset:
            # As Keras: peek at the first batch (an empty generator is an error, and an
            # unbuilt model learns its input width); it is trained on first all the same.
            try:
                self._pending.append(next(self.iterator))
            except StopIteration:
                raise ValueError(f"{what}: the generator yielded no batches") from None
        if not model.built:
            self._build_from_first_batch()

    def _build_from_first_batch(self):
        first = self.data[0] if self.pydataset else self._pending[0]
        self.model._build_for(f"{self.what}: batch 0", _unpack(self.what, 0, first)[0])

    def _convert(self, i, batch, staging):
        m = self.model
        x, y, sw = _unpack(self.what, i, batch)
        name = f"{self.what}: batch {i}"
        x = _as_rows(v.check_samples_shape(f"{name}: x", v.as_array(f"{name}: x", x),
                                           m._input_shape))
        n = x.shape[0]
        if self.with_targets:
            if y is None:
                raise ValueError(f"{name}: has no targets; yield (x, y) or "
                                 f"(x, y, sample_weight)")
            y = v.targets(f"{name}: y", y, m.loss.target, m.output_dim, n, m.dtype)
            sw = v.sample_weights(f"{name}: sample_weight", sw, n, m.dtype)
            if self.class_weight is not None:
                cw = m._class_weights(name, self.class_weight, y)
                sw = cw if sw.shape[0] == 0 else np.ascontiguousarray(sw * cw)
        # Always copied into the staging ring: a generator may reuse its array for the
        # next batch while this one is still being trained on.
        xb = LazyRows(f"{name}: x", x, m.dtype, check_upfront=False).span(
            0, n, staging.take(n))
        return xb, y, sw

    def _order(self, seed, counter, shuffle):
        """The PyDataset's batch indices for one epoch."""
        if self.length is None:
            return itertools.count()
        if shuffle and seed is not None:
            return iter(_random.generator(seed, _random.SHUFFLE, counter)
                        .permutation(self.length).tolist())
        return iter(range(self.length))

    def _items(self, seed, counter, shuffle):
        """The epoch's raw batches, in order, each with the number errors name it by:
        its index in the PyDataset, or its position in the generator's output."""
        limit = self.num_batches
        if self.pydataset:
            order = self._order(seed, counter, shuffle)
            if limit is not None:
                order = (i for _, i in zip(range(limit), order))
            if self.workers == 1 and not self.processes:
                for i in order:
                    yield i, self.data[i]
                return
            if self.processes:
                pool = concurrent.futures.ProcessPoolExecutor(
                    self.workers, initializer=_init_worker, initargs=(self.data,))
                getitem = _getitem_in_worker
            else:
                pool = concurrent.futures.ThreadPoolExecutor(
                    self.workers, thread_name_prefix="fastnn-pydataset")
                getitem = self.data.__getitem__
            try:
                # `depth` batches in flight, taken in index order: the order of the
                # batches is the order of the indices, whatever thread finishes first.
                pending = collections.deque()
                for i in order:
                    pending.append((i, pool.submit(getitem, i)))
                    if len(pending) >= self.depth:
                        break
                while pending:
                    i, future = pending.popleft()
                    batch = future.result()
                    nxt = next(order, None)
                    if nxt is not None:
                        pending.append((nxt, pool.submit(getitem, nxt)))
                    yield i, batch
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            return
        step = 0
        while limit is None or step < limit:
            label = self._produced
            if self._pending:
                batch = self._pending.popleft()
            else:
                try:
                    batch = next(self.iterator)
                except StopIteration:
                    self.exhausted = True
                    if limit is not None:
                        self.ran_out = True
                    return
            self._produced += 1
            yield label, batch
            step += 1

    def epoch(self, workspace, seed=None, counter=0, shuffle=False):
        self.ran_out = False
        if self.pydataset:
            self.data.on_epoch_begin()
        staging = _Staging(self.depth + 2, self.model.input_dim, self.model.dtype)

        def produce():
            items = self._items(seed, counter, shuffle)
            try:
                for label, batch in items:
                    yield self._convert(label, batch, staging)
            finally:
                items.close()    # shuts down the PyDataset's worker threads

        prefetch = Prefetcher(produce(), self.depth)

        def batches():
            for xb, y, sw in prefetch:
                yield workspace(xb.shape[0]), xb, y, sw

        return _Epoch(batches(), prefetch,
                      self.data.on_epoch_end if self.pydataset else None)


def adapter(model, what, x, y, sample_weight, batch_size, steps, with_targets,
            class_weight=None, steps_name="steps", training=False):
    """The adapter for whatever x is (see the module docstring)."""
    if is_stream(x):
        kind = "a PyDataset" if isinstance(x, PyDataset) else "a generator or iterator"
        for name, value in (("y", y), ("sample_weight", sample_weight)):
            if value is not None:
                raise ValueError(f"{what}: {name} must not be given when x is {kind} "
                                 f"(its batches carry their own {name})")
        return StreamAdapter(model, what, x, steps, with_targets, class_weight, steps_name)
    if with_targets and (x is None or y is None):
        raise ValueError(f"{what}: x and y are required")
    if x is None:
        raise ValueError(f"{what}: x is required")
    x, y, sw = model._prepare(what, x, y if with_targets else None,
                              sample_weight if with_targets else None,
                              class_weight, lazy=True)
    return ArrayAdapter(model, x, y, sw, batch_size, steps=steps, training=training)
