"""Data adapters: memory-mapped and other-dtype arrays read batch by batch (and the
gather-and-convert kernel behind them), generators, iterators and PyDatasets streamed
through a prefetching thread, the Keras steps semantics, validation_data of every kind,
predict_on_batch / test_on_batch, and the Keras namespaces (fn.models, fn.utils,
fn.datasets.mnist / fashion_mnist)."""
import threading
import time
import tracemalloc
import traceback
import warnings

import numpy as np
import pytest

import fastnn as fn
from fastnn import layers as L
from fastnn._core import ops

WIDTH, CLASSES, N = 6, 3, 120


def make_data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.random((n, WIDTH)) * 255).astype(np.uint8)
    y = (x.astype(np.int64).sum(1) // 10 % CLASSES).astype(np.int64)
    return x, y


def make_model(dtype="float32", dropout=False, built=True, metrics=("accuracy",)):
    fn.set_seed(7)
    layers = [L.Dense(8, activation="relu", input_dim=WIDTH if built else None)]
    if dropout:
        layers.append(L.Dropout(0.2))
    layers.append(L.Dense(CLASSES, activation="softmax"))
    model = fn.Sequential(layers, dtype=dtype)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=list(metrics))
    return model


def same_weights(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights()))


def scaled(x, dtype=np.float32):
    return x.astype(dtype)


def batches_of(x, y, batch_size, sw=None, repeat=1):
    for _ in range(repeat):
        for start in range(0, x.shape[0], batch_size):
            stop = start + batch_size
            if sw is None:
                yield x[start:stop], y[start:stop]
            else:
                yield x[start:stop], y[start:stop], sw[start:stop]


class Batches(fn.utils.PyDataset):
    """x, y in batches; optional random delays make worker threads finish out of order."""

    def __init__(self, x, y, batch_size, delays=False, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size
        self.delays = np.random.default_rng(1).random(len(self)) * 0.004 if delays else None
        self.begun = self.ended = 0

    def __len__(self):
        return -(-self.x.shape[0] // self.batch_size)

    def __getitem__(self, i):
        if self.delays is not None:
            time.sleep(self.delays[i])
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[s], self.y[s]

    def on_epoch_begin(self):
        self.begun += 1

    def on_epoch_end(self):
        self.ended += 1


def prefetch_threads():
    """The data adapters' threads still alive. fastnn's persistent update workers
    (fastnn/_parallel.py, "fastnn-worker") live for the process by design; whether they
    exist depends on which tests ran before, so they are not counted."""
    return [t for t in threading.enumerate()
            if t.name.startswith("fastnn-") and t.name != "fastnn-worker"]


@pytest.fixture(autouse=True)
def no_thread_left():
    yield
    assert prefetch_threads() == []


# ------------------------------------------------------------------- kernels ----
SOURCE_DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64,
                 np.int64, np.float32, np.float64]


@pytest.mark.parametrize("out_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("src_dtype", SOURCE_DTYPES)
@pytest.mark.parametrize("rows,cols", [(1, 1), (7, 33), (1000, 7)])
def test_gather_convert_matches_numpy(src_dtype, out_dtype, rows, cols):
    rng = np.random.default_rng(rows * cols)
    info = np.iinfo(src_dtype) if np.dtype(src_dtype).kind in "iu" else None
    if info is not None:
        src = rng.integers(info.min, info.max, (rows, cols), dtype=src_dtype,
                           endpoint=True)
    else:
        src = (rng.standard_normal((rows, cols)) * 1e3).astype(src_dtype)
    index = rng.integers(0, rows, 2 * rows + 1).astype(np.int64)
    out = np.full((index.shape[0], cols), np.nan, out_dtype)
    ops.gather_convert_rows(src, index, out)
    # The reference: NumPy's own cast (round to nearest, as C's conversion) of the rows.
    np.testing.assert_array_equal(out, src[index].astype(out_dtype))
    start = rows // 3
    out2 = np.full((rows - start, cols), np.nan, out_dtype)
    ops.convert_rows(src, start, out2)
    np.testing.assert_array_equal(out2, src[start:].astype(out_dtype))


@pytest.mark.parametrize("out_dtype", [np.float32, np.float64])
def test_gather_convert_layouts_and_memmap(tmp_path, out_dtype):
    base = np.arange(7 * 33, dtype=np.uint8).reshape(7, 33)
    mm = np.memmap(tmp_path / "m.dat", np.uint8, "w+", shape=base.shape)
    mm[:] = base
    mm.flush()
    ro = np.memmap(tmp_path / "m.dat", np.uint8, "r", shape=base.shape)
    index = np.array([6, 0, 3, 3], np.int64)
    for src in (base[:, ::2], base[::-1], np.asfortranarray(base), ro, ro[:, 1::3]):
        out = np.empty((4, src.shape[1]), out_dtype)
        ops.gather_convert_rows(src, index, out)
        np.testing.assert_array_equal(out, np.asarray(src)[index].astype(out_dtype))


def test_gather_convert_refuses_bad_shapes_and_indices():
    src = np.zeros((5, 3), np.uint8)
    with pytest.raises(ValueError, match=r"index\[1\] = 5 is out of range for 5 rows"):
        ops.gather_convert_rows(src, np.array([0, 5], np.int64), np.empty((2, 3),
                                                                           np.float32))
    with pytest.raises(ValueError, match=r"index\[0\] = -1"):
        ops.gather_convert_rows(src, np.array([-1], np.int64), np.empty((1, 3), np.float32))
    with pytest.raises(ValueError, match=r"out has shape \(2, 4\), need at least \(2, 3\)"):
        ops.gather_convert_rows(src, np.array([0, 1], np.int64), np.empty((2, 4),
                                                                           np.float32))
    with pytest.raises(ValueError, match=r"rows \[4, 6\) out of range for 5 rows"):
        ops.convert_rows(src, 4, np.empty((2, 3), np.float64))


# ---------------------------------------------------- memmaps and other dtypes ----
@pytest.fixture
def uint8_file(tmp_path):
    x, y = make_data()
    np.save(tmp_path / "x.npy", x)
    return np.load(tmp_path / "x.npy", mmap_mode="r"), x, y


def test_memmap_uint8_trains_like_in_memory_float32(uint8_file):
    mm, x, y = uint8_file
    sw = np.linspace(0.5, 2, N)
    kwargs = dict(batch_size=16, epochs=3, verbose=0, validation_split=0.2,
                  sample_weight=sw, class_weight={0: 1.0, 1: 2.0, 2: 0.5})
    a, b = make_model(dropout=True), make_model(dropout=True)
    ha = a.fit(mm, y, **kwargs)
    hb = b.fit(scaled(x), y, **kwargs)
    assert ha.history == hb.history
    assert same_weights(a, b)
    assert a.evaluate(mm, y, batch_size=7) == b.evaluate(scaled(x), y, batch_size=7)
    np.testing.assert_array_equal(a.predict(mm, batch_size=9), b.predict(scaled(x)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float64_memmap_and_other_layouts_like_converted(tmp_path, dtype):
    x, y = make_data()
    xf = x / 255.0
    np.save(tmp_path / "x.npy", xf)
    sources = {"memmap float64": np.load(tmp_path / "x.npy", mmap_mode="r"),
               "fortran": np.asfortranarray(xf.astype(dtype)),
               "strided": np.repeat(xf.astype(dtype), 2, axis=1)[:, ::2],
               "float16": xf.astype(np.float16), "big-endian": xf.astype(">f8")}
    for name, src in sources.items():
        ref = np.ascontiguousarray(src, dtype=dtype)
        a, b = make_model(dtype), make_model(dtype)
        ha = a.fit(src, y, batch_size=32, epochs=2, verbose=0)
        hb = b.fit(ref, y, batch_size=32, epochs=2, verbose=0)
        assert ha.history["loss"] == hb.history["loss"], name
        assert same_weights(a, b), name
        np.testing.assert_array_equal(a.predict(src), b.predict(ref), err_msg=name)


def _fit_peak(model, x, y, **kwargs):
    model.fit(x[:64], y[:64], batch_size=64, epochs=1, verbose=0)  # buffers made
    tracemalloc.start()
    model.fit(x, y, verbose=0, **kwargs)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def test_memmap_epoch_peak_memory_is_a_small_fraction_of_the_data(tmp_path):
    """One epoch over a 47 MB uint8 memmap (60000 x 784) allocates no copy of x (not even
    in its own dtype): only per-row index arrays (the rows, the permutation, the
    shuffled order: 8 bytes each per row) and batch-sized buffers (the staging ring of 3
    and the workspace). A float32 copy would be 188 MB. The 2 GB case is measured by
    bench/memmap_epoch.py (a 2 GB file is too slow for the test suite)."""
    n, width, batch = 60000, 784, 256
    mm = np.lib.format.open_memmap(tmp_path / "big.npy", "w+", np.uint8, (n, width))
    rng = np.random.default_rng(0)
    for start in range(0, n, 10000):
        mm[start:start + 10000] = rng.integers(0, 256, (10000, width), np.uint8)
    mm.flush()
    del mm
    x = np.load(tmp_path / "big.npy", mmap_mode="r")
    y = np.arange(n) % 10
    fn.set_seed(0)
    model = fn.Sequential([L.Dense(32, activation="relu", input_dim=width),
                           L.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    peak = _fit_peak(model, x, y, batch_size=batch, epochs=1, validation_split=0.1)
    bound = 4 * 8 * n + 6 * batch * width * 4        # 1.9 MB + 4.8 MB
    assert peak < bound < 0.15 * x.nbytes, (peak, bound)


def test_in_memory_uint8_is_not_converted_whole():
    """A uint8 array in memory is read batch by batch too: fit's peak allocation stays far
    below the float32 copy (4x the data) it used to make."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20000, 256), np.uint8)     # 5 MB; float32 copy: 20 MB
    y = np.arange(20000) % 3
    model = fn.Sequential([L.Dense(16, activation="relu", input_dim=256),
                           L.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    peak = _fit_peak(model, x, y, batch_size=128, epochs=1)
    assert peak < 0.5 * x.nbytes, peak


def test_nan_in_a_float_memmap_is_refused_at_its_batch(tmp_path):
    x, y = make_data()
    xf = x / 255.0
    xf[50, 2] = np.nan
    np.save(tmp_path / "x.npy", xf)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    model = make_model()
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"fit: x: contains NaN or infinity \(first at "
                                         r"index \(50, 2\)\)"):
        model.fit(mm, y, batch_size=128, epochs=1, verbose=0)     # one batch: no update
    assert all(np.array_equal(p, q) for p, q in zip(before, model.get_weights()))
    with pytest.raises(ValueError, match=r"predict: x: contains NaN .* \(50, 2\)"):
        model.predict(mm)
    big = x / 255.0
    big[3, 1] = 1e39
    np.save(tmp_path / "big.npy", big)
    with pytest.raises(ValueError, match=r"evaluate: x: values up to 1e\+39 overflow the "
                                         r"model dtype float32"):
        model.evaluate(np.load(tmp_path / "big.npy", mmap_mode="r"), y)


def test_in_memory_float64_nan_is_refused_before_training():
    x, y = make_data(2000)
    xf = x / 255.0
    xf[1999, 5] = np.inf
    model = make_model()
    seen = []
    cb = fn.callbacks.LambdaCallback(on_train_begin=lambda logs: seen.append(1))
    with pytest.raises(ValueError, match=r"fit: x: contains NaN or infinity \(first at "
                                         r"index \(1999, 5\)\)"):
        model.fit(xf, y, verbose=0, callbacks=[cb])
    assert seen == []


# -------------------------------------------------------------- generators ----
def test_generator_with_steps_trains_like_arrays_in_order():
    x, y = make_data()
    sw = np.linspace(0.1, 3, N)
    a, b = make_model(dropout=True), make_model(dropout=True)
    ha = a.fit(scaled(x), y, sample_weight=sw, batch_size=20, epochs=3, shuffle=False,
               verbose=0)
    hb = b.fit(batches_of(x, y, 20, sw, repeat=3), steps_per_epoch=6, epochs=3, verbose=0)
    assert ha.history["loss"] == hb.history["loss"]
    assert ha.history["accuracy"] == hb.history["accuracy"]
    assert same_weights(a, b)


def test_iterator_without_steps_runs_until_it_ends_then_stops_with_keras_warning():
    x, y = make_data()
    model = make_model()
    it = iter(list(batches_of(x, y, 25)))           # a plain iterator, 5 batches
    with pytest.warns(UserWarning, match=r"Your input ran out of data; interrupting "
                                         r"training"):
        history = model.fit(it, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 1        # epoch 2 found it empty
    ref = make_model()
    ref.fit(scaled(x), y, batch_size=25, shuffle=False, epochs=1, verbose=0)
    assert same_weights(model, ref)


def test_generator_shorter_than_steps_ends_the_epoch_and_training():
    x, y = make_data()
    model = make_model()
    with pytest.warns(UserWarning, match=r"ran out of data"):
        history = model.fit(batches_of(x, y, 20, repeat=1), steps_per_epoch=4, epochs=3,
                            verbose=0)
    # 6 batches: epoch 1 takes 4, epoch 2 gets 2 and ends; training stops after it.
    assert len(history.history["loss"]) == 2
    assert model.optimizer.iterations == 6


def test_generator_with_exactly_enough_batches_does_not_warn():
    x, y = make_data()
    model = make_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(batches_of(x, y, 40, repeat=2), steps_per_epoch=3, epochs=2,
                            verbose=0)
    assert len(history.history["loss"]) == 2


def test_unbuilt_model_is_built_from_the_first_batch():
    x, y = make_data()
    model = make_model(built=False)
    model.fit(batches_of(x, y, 30), verbose=0)
    assert model.built and model.input_dim == WIDTH
    assert model.optimizer.iterations == 4          # the peeked batch was trained on


def test_generator_batches_of_varying_size_and_dtype():
    x, y = make_data()

    def gen():
        yield x[:7], y[:7]                            # uint8
        yield x[7:40].astype(np.float64) / 1, y[7:40].astype(np.float64)
        yield x[40:41].tolist(), y[40:41].tolist()    # lists
        yield np.asfortranarray(x[41:]), y[41:]
    model, ref = make_model(), make_model()
    model.fit(gen(), verbose=0)
    for s in (slice(0, 7), slice(7, 40), slice(40, 41), slice(41, None)):
        ref.train_on_batch(scaled(x[s]), y[s])
    assert same_weights(model, ref)


def test_generator_that_reuses_its_array_is_copied_per_batch():
    """Prefetching must not see the next batch written into the array being trained on."""
    x, y = make_data()

    def reusing():
        buf = np.empty((20, WIDTH), np.float32)
        for start in range(0, N, 20):
            buf[:] = x[start:start + 20]
            yield buf, y[start:start + 20]
    a, b = make_model(), make_model()
    a.fit(reusing(), verbose=0)
    b.fit(scaled(x), y, batch_size=20, shuffle=False, verbose=0)
    assert same_weights(a, b)


def test_evaluate_and_predict_on_generators_with_steps():
    x, y = make_data()
    model = make_model()
    model.fit(scaled(x), y, epochs=2, verbose=0)
    ref = model.evaluate(scaled(x), y, batch_size=30)
    assert model.evaluate(batches_of(x, y, 30)) == ref
    assert model.evaluate(batches_of(x, y, 30, repeat=5), steps=4) == ref
    part = model.evaluate(batches_of(x, y, 30), steps=2, return_dict=True)
    assert part == model.evaluate(scaled(x[:60]), y[:60], batch_size=30, return_dict=True)
    # (equal batch sizes: a batch of 1 row may round differently from a larger one)
    np.testing.assert_array_equal(model.predict((b for b, _ in batches_of(x, y, 17))),
                                  model.predict(scaled(x), batch_size=17))
    np.testing.assert_array_equal(model.predict(batches_of(x, y, 10), steps=3),
                                  model.predict(scaled(x[:30]), batch_size=10))
    np.testing.assert_array_equal(model.predict(x, batch_size=50, steps=2),
                                  model.predict(scaled(x[:100]), batch_size=50))


# --------------------------------------------------------------- PyDataset ----
@pytest.mark.parametrize("workers", [1, 4])
def test_pydataset_trains_like_arrays(workers):
    x, y = make_data()
    a, b = make_model(), make_model()
    ds = Batches(x, y, 16, delays=workers > 1, workers=workers, max_queue_size=3)
    ha = a.fit(ds, epochs=3, shuffle=False, verbose=0)
    hb = b.fit(scaled(x), y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    assert ha.history["loss"] == hb.history["loss"]
    assert same_weights(a, b)
    assert ds.begun == ds.ended == 3


def test_pydataset_shuffled_batch_order_is_seeded_and_the_same_for_any_workers():
    x, y = make_data()
    runs = []
    for workers in (1, 3):
        model = make_model()
        model.fit(Batches(x, y, 10, delays=True, workers=workers), epochs=2, verbose=0)
        runs.append(model)
    assert same_weights(*runs)
    ordered = make_model()
    ordered.fit(Batches(x, y, 10), epochs=2, shuffle=False, verbose=0)
    assert not same_weights(runs[0], ordered)
    # Resuming repeats the uninterrupted run: the order comes from (seed, epoch).
    resumed = make_model()
    resumed.fit(Batches(x, y, 10), epochs=1, verbose=0)
    resumed.fit(Batches(x, y, 10), epochs=2, initial_epoch=1, verbose=0)
    assert same_weights(runs[0], resumed)


def test_pydataset_steps_per_epoch():
    x, y = make_data()
    model = make_model()
    history = model.fit(Batches(x, y, 10), steps_per_epoch=4, epochs=3, shuffle=False,
                        verbose=0)
    assert len(history.history["loss"]) == 3 and model.optimizer.iterations == 12
    with pytest.warns(UserWarning, match=r"steps_per_epoch=20 is more than the "
                                         r"PyDataset's 12 batches"):
        model.fit(Batches(x, y, 10), steps_per_epoch=20, epochs=2, verbose=0)
    assert model.optimizer.iterations == 12 + 24


def test_pydataset_defaults_and_keras_attributes():
    ds = fn.utils.PyDataset()
    assert (ds.workers, ds.use_multiprocessing, ds.max_queue_size) == (1, False, 10)

    class NoSuper(fn.utils.PyDataset):
        def __init__(self):
            pass

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return np.ones((2, WIDTH)), np.zeros(2)
    with pytest.warns(UserWarning, match=r"should call `super\(\).__init__"):
        assert NoSuper().workers == 1
    assert NoSuper().num_batches == 2
    assert len(list(NoSuper())) == 2


def test_pydataset_errors():
    x, y = make_data()
    model = make_model()

    class Empty(Batches):
        def __len__(self):
            return 0

    class Infinite(Batches):
        @property
        def num_batches(self):
            return None

        def __getitem__(self, i):
            return super().__getitem__(i % 12)
    with pytest.raises(ValueError, match=r"fit: len\(PyDataset\): must be >= 1, got 0"):
        model.fit(Empty(x, y, 10), verbose=0)
    with pytest.raises(ValueError, match=r"fit: the PyDataset is infinite .* give "
                                         r"steps_per_epoch"):
        model.fit(Infinite(x, y, 10), verbose=0)
    model.fit(Infinite(x, y, 10), steps_per_epoch=30, verbose=0)
    assert model.optimizer.iterations == 30
    with pytest.raises(ValueError, match=r"fit: y must not be given when x is a "
                                         r"PyDataset"):
        model.fit(Batches(x, y, 10), y, verbose=0)


# ---------------------------------------------------------- validation_data ----
def test_validation_data_of_every_kind_gives_the_same_val_logs(tmp_path):
    x, y = make_data()
    xv, yv = make_data(50, seed=3)
    np.save(tmp_path / "xv.npy", xv)
    kinds = {
        "arrays": (scaled(xv), yv),
        "memmap": (np.load(tmp_path / "xv.npy", mmap_mode="r"), yv),
        "generator": batches_of(xv, yv, 16, repeat=3),
        "pydataset": Batches(xv, yv, 16, workers=2),
    }
    logs = {}
    for name, val in kinds.items():
        model = make_model()
        steps = 4 if name == "generator" else None
        h = model.fit(scaled(x), y, batch_size=16, epochs=3, validation_data=val,
                      validation_batch_size=16, validation_steps=steps, verbose=0)
        logs[name] = (h.history["val_loss"], h.history["val_accuracy"])
    assert logs["arrays"] == logs["memmap"] == logs["generator"] == logs["pydataset"]


def test_validation_generator_without_steps_serves_one_epoch():
    x, y = make_data()
    model = make_model()
    with pytest.warns(UserWarning, match=r"validation_data yielded no batches in epoch 2"):
        h = model.fit(scaled(x), y, epochs=2, validation_data=batches_of(x, y, 40),
                      verbose=0)
    assert len(h.history["val_loss"]) == 1 and len(h.history["loss"]) == 2


def test_validation_split_refused_for_streams():
    x, y = make_data()
    with pytest.raises(ValueError, match=r"fit: validation_split needs arrays"):
        make_model().fit(batches_of(x, y, 10), validation_split=0.2, verbose=0)


# ------------------------------------------------ producer errors and threads ----
def test_producer_exception_surfaces_with_its_traceback():
    x, y = make_data()

    def broken_generator():
        yield from batches_of(x[:40], y[:40], 20)
        raise RuntimeError("disk on fire")

    model = make_model()
    with pytest.raises(RuntimeError, match="disk on fire") as info:
        model.fit(broken_generator(), verbose=0)
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "broken_generator" in frames
    assert model.optimizer.iterations == 2          # the batches before it were trained


def test_pydataset_worker_exception_surfaces():
    x, y = make_data()

    class Broken(Batches):
        def __getitem__(self, i):
            if i == 5:
                raise KeyError("missing image 5")
            return super().__getitem__(i)

    with pytest.raises(KeyError, match="missing image 5") as info:
        make_model().fit(Broken(x, y, 10, workers=3), shuffle=False, verbose=0)
    assert "__getitem__" in [f.name for f in traceback.extract_tb(info.value.__traceback__)]


def test_threads_end_when_training_stops_early_or_fails(uint8_file):
    mm, x, y = uint8_file

    class StopAt(fn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True
    model = make_model()
    model.fit(Batches(x, y, 10, workers=3, delays=True), callbacks=[StopAt()], verbose=0)
    assert prefetch_threads() == []
    model.fit(batches_of(x, y, 10, repeat=50), steps_per_epoch=3, callbacks=[StopAt()],
              verbose=0)
    assert prefetch_threads() == []

    class Boom(fn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise ArithmeticError("callback failed")
    started = []
    real_start = threading.Thread.start

    def start(thread):
        started.append(thread.name)
        real_start(thread)
    threading.Thread.start = start
    try:
        with pytest.raises(ArithmeticError):
            model.fit(mm, y, batch_size=8, callbacks=[Boom()], verbose=0)
    finally:
        threading.Thread.start = real_start
    assert "fastnn-prefetch" in started         # the memmap was read by the prefetcher
    assert prefetch_threads() == []


# --------------------------------------------------------------- bad input ----
@pytest.mark.parametrize("batches,exc,pattern", [
    ([(np.ones((4, WIDTH)), np.zeros(4)), (np.ones((4, WIDTH + 1)), np.zeros(4))],
     ValueError, r"fit: batch 1: x: expected 6 features per sample .* got shape \(4, 7\)"),
    ([(np.ones((4, WIDTH)), np.zeros(4)), (np.ones((4, WIDTH)), np.full(4, 9))],
     ValueError, r"fit: batch 1: y: labels must be in \[0, 3\)"),
    ([(np.ones((4, WIDTH)), np.zeros(3))], ValueError,
     r"fit: batch 0: y: has 3 samples but x has 4"),
    ([(np.ones((4, WIDTH)),)], ValueError, r"fit: batch 0: has no targets"),
    ([{"x": 1}], TypeError, r"fit: batch 0: expected a tuple \(x,\), \(x, y\) or "
                            r"\(x, y, sample_weight\), got dict"),
    ([(np.ones((4, WIDTH)), np.zeros(4), np.ones(4), 1)], TypeError,
     r"fit: batch 0: expected a tuple .* got tuple of length 4"),
    ([(np.full((4, WIDTH), np.nan), np.zeros(4))], ValueError,
     r"fit: batch 0: x: contains NaN or infinity \(first at index \(0, 0\)\)"),
    ([(np.ones((4, WIDTH)), np.zeros(4), -np.ones(4))], ValueError,
     r"fit: batch 0: sample_weight: weights must be >= 0"),
    ([(np.ones((4, WIDTH), complex), np.zeros(4))], TypeError,
     r"fit: batch 0: x: expected a numeric array"),
    ([], ValueError, r"fit: the generator yielded no batches"),
])
def test_bad_streamed_batches_name_the_batch(batches, exc, pattern):
    model = make_model()
    with pytest.raises(exc, match=pattern):
        model.fit(iter(batches), verbose=0)


def test_stream_arguments_that_do_not_apply():
    x, y = make_data()
    model = make_model()
    with pytest.raises(ValueError, match=r"fit: y must not be given when x is a generator"):
        model.fit(batches_of(x, y, 10), y, verbose=0)
    with pytest.raises(ValueError, match=r"evaluate: sample_weight must not be given"):
        model.evaluate(batches_of(x, y, 10), sample_weight=np.ones(N))
    with pytest.raises(ValueError, match=r"fit: steps_per_epoch: must be >= 1"):
        model.fit(batches_of(x, y, 10), steps_per_epoch=0, verbose=0)
    with pytest.raises(TypeError, match=r"fit: validation_steps: expected an integer"):
        model.fit(scaled(x), y, validation_data=(scaled(x), y), validation_steps=1.5,
                  verbose=0)
    with pytest.raises(ValueError, match=r"evaluate: the generator yielded no batches"):
        gen = batches_of(x, y, 60)
        model.evaluate(gen)
        model.evaluate(gen)


def test_array_steps_per_epoch_takes_the_first_batches_of_each_pass():
    x, y = make_data()
    model = make_model()
    model.fit(scaled(x), y, batch_size=10, steps_per_epoch=5, epochs=2, verbose=0)
    assert model.optimizer.iterations == 10
    with pytest.warns(UserWarning, match=r"steps \(99\) is more than one pass"):
        model.fit(scaled(x), y, batch_size=10, steps_per_epoch=99, verbose=0)
    assert model.optimizer.iterations == 22


def test_progress_bar_of_a_generator_of_unknown_length(capsys):
    x, y = make_data()
    make_model().fit(batches_of(x, y, 30), verbose=2)
    assert "Epoch 1/1 - 4/4 - " in capsys.readouterr().out


# ------------------------------------------------------------ single batches ----
def test_predict_on_batch_and_test_on_batch():
    x, y = make_data()
    model = make_model(dropout=True)
    model.fit(scaled(x), y, epochs=2, verbose=0)
    before = model.get_weights()
    np.testing.assert_array_equal(model.predict_on_batch(x[:9]), model.predict(x[:9]))
    assert model.test_on_batch(x[:9], y[:9]) == model.evaluate(x[:9], y[:9],
                                                               batch_size=9)
    sw = np.arange(9.0)
    assert model.test_on_batch(x[:9], y[:9], sample_weight=sw, return_dict=True) == \
        model.evaluate(x[:9], y[:9], sample_weight=sw, batch_size=9, return_dict=True)
    assert all(np.array_equal(p, q) for p, q in zip(before, model.get_weights()))
    no_metrics = make_model(metrics=())
    assert isinstance(no_metrics.test_on_batch(x[:5], y[:5]), float)
    with pytest.raises(ValueError, match=r"test_on_batch: x and y are required"):
        model.test_on_batch(x[:5])
    with pytest.raises(ValueError, match=r"predict_on_batch: x: expected 6 features"):
        model.predict_on_batch(np.ones((2, 5)))


# ---------------------------------------------------------------- namespaces ----
def test_keras_namespaces(tmp_path):
    assert fn.models.Sequential is fn.Sequential
    model = make_model()
    model.save(tmp_path / "m.fastnn")
    loaded = fn.models.load_model(tmp_path / "m.fastnn")
    assert same_weights(model, loaded)
    np.testing.assert_array_equal(fn.utils.to_categorical([0, 2, 1], 3),
                                  np.eye(3, dtype=np.float32)[[0, 2, 1]])
    fn.utils.set_random_seed(5)
    a = fn.Sequential([L.Dense(3, input_dim=2)]).get_weights()
    fn.set_seed(5)
    b = fn.Sequential([L.Dense(3, input_dim=2)]).get_weights()
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert fn.utils.PyDataset is fn.data_adapters.PyDataset is fn.utils.Sequence


@pytest.mark.parametrize("axis,order", [(-1, 2), (0, 2), (1, 1), (-1, np.inf), (None, 2)])
def test_normalize_matches_keras_reference(axis, order):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 33))
    x[3] = 0                                    # a zero row stays zero (norm taken as 1)
    norm = np.atleast_1d(np.linalg.norm(x, order, axis))
    norm[norm == 0] = 1
    expected = x / np.expand_dims(norm, -1 if axis is None else axis)
    np.testing.assert_array_equal(fn.utils.normalize(x, axis=axis, order=order), expected)
    assert fn.utils.normalize(x.astype(np.float32)).dtype == np.float32
    assert fn.utils.normalize(np.array([[3, 4]])).tolist() == [[0.6, 0.8]]
    with pytest.raises(TypeError, match=r"normalize: x: expected a numeric array"):
        fn.utils.normalize(np.array(["a"]))


@pytest.mark.parametrize("name,stem", [("mnist", "mnist"), ("fashion_mnist",
                                                            "fashion-mnist")])
def test_keras_dataset_loaders_shapes_and_dtypes(tmp_path, name, stem):
    rng = np.random.default_rng(0)
    d = tmp_path / stem
    d.mkdir()
    files = {"train-images-idx3-ubyte": rng.integers(0, 256, (60, 28, 28), np.uint8),
             "train-labels-idx1-ubyte": rng.integers(0, 10, 60, np.uint8),
             "t10k-images-idx3-ubyte": rng.integers(0, 256, (10, 28, 28), np.uint8),
             "t10k-labels-idx1-ubyte": rng.integers(0, 10, 10, np.uint8)}
    for stem_name, arr in files.items():
        fn.datasets.write_idx(str(d / stem_name), arr)
    (xtr, ytr), (xte, yte) = getattr(fn.datasets, name).load_data(path=str(d),
                                                                   download=False)
    assert (xtr.dtype, xtr.shape, ytr.dtype, ytr.shape) == (np.uint8, (60, 28, 28),
                                                            np.uint8, (60,))
    assert (xte.shape, yte.shape) == ((10, 28, 28), (10,))
    np.testing.assert_array_equal(xtr, files["train-images-idx3-ubyte"])


# ------------------------------------------------------------ image-shaped x ----
def test_flatten_model_reads_image_memmaps_and_image_batches(tmp_path):
    """(n, 4, 3) uint8 images: a memmap, a generator of image batches and a PyDataset all
    train like the in-memory float32 images (samples of the model's input shape)."""
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (60, 4, 3), np.uint8)
    y = np.arange(60) % CLASSES
    np.save(tmp_path / "img.npy", x)
    mm = np.load(tmp_path / "img.npy", mmap_mode="r")

    def model(built=True):
        fn.set_seed(3)
        m = fn.Sequential([L.Flatten(input_shape=(4, 3) if built else None),
                           L.Dense(5, activation="relu"),
                           L.Dense(CLASSES, activation="softmax")])
        m.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        return m
    ref = model()
    ref.fit(x.astype(np.float32), y, batch_size=10, epochs=2, shuffle=False, verbose=0)
    runs = {"memmap": lambda m: m.fit(mm, y, batch_size=10, epochs=2, shuffle=False,
                                      verbose=0),
            "generator": lambda m: m.fit(batches_of(x, y, 10, repeat=2), steps_per_epoch=6,
                                         epochs=2, verbose=0),
            "pydataset": lambda m: m.fit(Batches(x, y, 10, workers=2), epochs=2,
                                         shuffle=False, verbose=0)}
    for name, run in runs.items():
        for built in (True, False):
            m = model(built)
            run(m)
            assert same_weights(m, ref), (name, built)
    np.testing.assert_array_equal(ref.predict(mm), ref.predict(x.astype(np.float32)))
    with pytest.raises(ValueError, match=r"fit: batch 1: x: expected an array of shape "
                                         r"\(samples, 4, 3\)"):
        ref.fit(iter([(x[:5], y[:5]), (x[:5, :3], y[:5])]), verbose=0)


# ------------------------------------------------------------ worker processes ----
class FailingAt(Batches):
    def __getitem__(self, i):
        if i == 4:
            raise LookupError(f"no batch {i} here")
        return super().__getitem__(i)


def test_pydataset_in_worker_processes_trains_like_threads():
    x, y = make_data()
    a, b = make_model(), make_model()
    a.fit(Batches(x, y, 16, workers=2, use_multiprocessing=True), epochs=2, verbose=0)
    b.fit(Batches(x, y, 16, workers=3), epochs=2, verbose=0)
    assert same_weights(a, b)
    with pytest.raises(LookupError, match="no batch 4 here") as info:
        make_model().fit(FailingAt(x, y, 10, workers=2, use_multiprocessing=True),
                         shuffle=False, verbose=0)
    # The worker's traceback comes along (concurrent.futures chains it as the cause).
    assert "__getitem__" in str(info.value.__cause__)


def test_class_weight_and_gradient_monitor_with_a_generator():
    x, y = make_data()
    cw = {0: 0.5, 1: 2.0, 2: 1.0}
    a, b = make_model(), make_model()
    ha = a.fit(batches_of(x, y, 20), class_weight=cw, monitor_gradients=True, verbose=0)
    b.fit(scaled(x), y, batch_size=20, shuffle=False, class_weight=cw, verbose=0)
    assert same_weights(a, b)
    assert any(k.startswith("grad_") for k in ha.history)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_streams_in_both_model_dtypes(dtype):
    x, y = make_data()
    xf = x / 255.0                                  # float64 batches
    ref = make_model(dtype)
    ref.fit(xf.astype(dtype), y, batch_size=24, epochs=2, shuffle=False, verbose=0)
    for data in (lambda: batches_of(xf, y, 24, repeat=2), lambda: Batches(xf, y, 24)):
        model = make_model(dtype)
        model.fit(data(), steps_per_epoch=5, epochs=2, shuffle=False, verbose=0)
        assert same_weights(model, ref)
        out = model.predict(Batches(xf, y, 24))
        assert out.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(out, ref.predict(xf.astype(dtype), batch_size=24))


def test_steps_alone_set_the_batch_size_for_arrays():
    # Keras: with arrays, steps_per_epoch=k and no batch_size make one pass in k batches.
    x, y = make_data()
    a, b = make_model(), make_model()
    ha = a.fit(scaled(x), y, steps_per_epoch=7, epochs=2, validation_data=(x, y),
               validation_steps=3, verbose=0)
    hb = b.fit(scaled(x), y, batch_size=18, epochs=2, validation_data=(x, y),
               validation_batch_size=40, verbose=0)
    assert ha.history["loss"] == hb.history["loss"]
    assert ha.history["val_loss"] == hb.history["val_loss"]
    assert a.evaluate(x, y, steps=4) == a.evaluate(x, y, batch_size=30)


def test_evaluate_warns_when_a_generator_ends_before_steps():
    x, y = make_data()
    model = make_model()
    with pytest.warns(UserWarning, match=r"ran out of data"):
        short = model.evaluate(batches_of(x, y, 30), steps=10)
    assert short == model.evaluate(scaled(x), y, batch_size=30)


def test_live_progress_bar_counts_batches_of_unknown_total():
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    x, y = make_data()
    out = Terminal()
    bar = fn.callbacks.ProgbarLogger(verbose=1, stream=out)
    make_model().fit(batches_of(x, y, 30), callbacks=[bar], verbose=0)
    text = out.getvalue()
    assert "1/Unknown" in text and "4/4 - " in text


def test_concurrent_predict_and_evaluate_on_a_memmap(uint8_file):
    mm, x, y = uint8_file
    model = make_model()
    model.fit(mm, y, epochs=1, verbose=0)
    expected_p, expected_e = model.predict(mm, batch_size=7), model.evaluate(mm, y)
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append((model.predict(mm, batch_size=7), model.evaluate(mm, y)))
        except Exception as e:       # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 20
    for p, e in results:
        np.testing.assert_array_equal(p, expected_p)
        assert e == expected_e


@pytest.mark.parametrize("source", ["uint8 in memory", "uint8 memmap"])
def test_lazy_training_holds_no_more_memory_per_epoch(tmp_path, source):
    """As tests/test_models.py's no-allocation test, for x read batch by batch: after
    the first fit made the workspaces, what fit holds at its peak is the epoch's
    shuffled order (3 x 32 KiB here) and the staging ring (at most 3 batch buffers of
    16 KiB), the same for 3 epochs as for 9: nothing accumulates per step or epoch."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (4096, 64), np.uint8)
    y = np.arange(4096) % 10
    if source == "uint8 memmap":
        np.save(tmp_path / "x.npy", x)
        x = np.load(tmp_path / "x.npy", mmap_mode="r")
    fn.set_seed(0)
    model = fn.Sequential([L.Dense(32, activation="relu", input_dim=64),
                           L.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    peaks = []
    for epochs in (3, 9):
        tracemalloc.start()
        model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[0] < 250_000 and peaks[1] < peaks[0] + 20_000, peaks
