"""Tests for fastnn.datasets: IDX reading/writing, hostile files, the search
order, downloading (against a local HTTP server), the shipped subset, the
real Fashion-MNIST files (when installed) and the preprocessing helpers.

Only fastnn.datasets is used, never the compiled engine.
"""
import ast
import functools
import gzip
import hashlib
import http.server
import os
import stat
import sys
import threading
import time
import tracemalloc
import zlib

import numpy as np
import pytest

from fastnn import _atomic
from fastnn import datasets as ds

SYSTEM_FASHION = "/usr/share/datasets/fashion-mnist"


# ---------------------------------------------------------------------------
# helpers and fixtures
# ---------------------------------------------------------------------------

def idx_bytes(code, dims, payload=b"", magic=b"\x00\x00"):
    """Hand-built IDX content, for files a well-behaved writer never makes."""
    return magic + bytes([code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + payload


def write_bytes(path, content, gz=False):
    with open(path, "wb") as f:
        f.write(gzip.compress(content, mtime=0) if gz else content)
    return str(path)


def make_dataset_dir(directory, marker, n_train=20, n_test=10, gz=True):
    """Write the four standard files; every pixel equals ``marker`` so a test
    can tell which directory a loader picked."""
    os.makedirs(directory, exist_ok=True)
    suffix = ".gz" if gz else ""
    ytr = (np.arange(n_train) % 10).astype(np.uint8)
    yte = (np.arange(n_test) % 10).astype(np.uint8)
    ds.write_idx(os.path.join(directory, "train-images-idx3-ubyte" + suffix),
                 np.full((n_train, 28, 28), marker, np.uint8))
    ds.write_idx(os.path.join(directory, "train-labels-idx1-ubyte" + suffix), ytr)
    ds.write_idx(os.path.join(directory, "t10k-images-idx3-ubyte" + suffix),
                 np.full((n_test, 28, 28), marker, np.uint8))
    ds.write_idx(os.path.join(directory, "t10k-labels-idx1-ubyte" + suffix), yte)
    return str(directory)


def checksums(directory):
    sha, md5 = {}, {}
    for stem in ds.FILES:
        with open(os.path.join(directory, stem + ".gz"), "rb") as f:
            data = f.read()
        sha[stem + ".gz"] = hashlib.sha256(data).hexdigest()
        md5[stem + ".gz"] = hashlib.md5(data).hexdigest()
    return sha, md5


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Point every search location at empty temporary directories."""
    home = tmp_path / "home"
    system = tmp_path / "system"
    home.mkdir()
    system.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    monkeypatch.setattr(ds, "SYSTEM_DATA_DIR", str(system))
    return {
        "tmp": tmp_path,
        "home": home,
        "user": home / ".fastnn" / "datasets" / "fashion-mnist",
        "system": system / "fashion-mnist",
    }


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests = None  # set per server

    def do_GET(self):
        self.requests.append(self.path)
        if self.path.startswith("/truncated/"):
            # Promise 1000 bytes, send 10, hang up: a broken connection.
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    requests = []
    handler = type("Handler", (_Handler,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield {"root": root, "url": f"http://127.0.0.1:{httpd.server_address[1]}/",
               "requests": requests}
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def served(server, monkeypatch):
    """Generated Fashion-MNIST-like files on the server, with DATASETS
    pointing at them and carrying their real checksums."""
    src = make_dataset_dir(server["root"] / "fmnist", marker=7)
    sha, md5 = checksums(src)
    spec = dict(ds.DATASETS["fashion-mnist"], urls=(server["url"] + "fmnist/",), sha256=sha, md5=md5)
    monkeypatch.setitem(ds.DATASETS, "fashion-mnist", spec)
    return dict(server, src=src, sha=sha, md5=md5)


def leftovers(directory):
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


# ---------------------------------------------------------------------------
# IDX round trip
# ---------------------------------------------------------------------------

DTYPES = ["uint8", "int8", "int16", "int32", "float32", "float64"]
SHAPES = [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 2)]


def sample(dtype, shape):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "ui" else None
    if info is not None:
        a = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
        a.flat[0], a.flat[-1] = info.min, info.max
    else:
        a = rng.standard_normal(shape).astype(dtype)
        a.flat[0] = np.inf
        a.flat[-1] = -0.0
    return a


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}d")
@pytest.mark.parametrize("dtype", DTYPES)
def test_idx_round_trip(tmp_path, dtype, shape, gz):
    a = sample(dtype, shape)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    ds.write_idx(path, a)
    with open(path, "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == gz
    b = ds.read_idx(path)
    assert b.dtype == a.dtype and b.dtype.isnative
    assert b.shape == shape
    assert b.tobytes() == a.tobytes()


def test_idx_on_disk_is_big_endian(tmp_path):
    ds.write_idx(tmp_path / "a.idx", np.array([1, 256], dtype=np.int32))
    assert (tmp_path / "a.idx").read_bytes() == idx_bytes(0x0C, (2,), b"\0\0\0\x01\0\0\x01\0")


def test_gzip_detected_by_content_not_name(tmp_path):
    a = np.arange(12, dtype=np.int16).reshape(3, 4)
    ds.write_idx(tmp_path / "a.gz", a)
    os.rename(tmp_path / "a.gz", tmp_path / "plain-name")
    ds.write_idx(tmp_path / "b", a)
    os.rename(tmp_path / "b", tmp_path / "looks-like.gz")
    np.testing.assert_array_equal(ds.read_idx(tmp_path / "plain-name"), a)
    np.testing.assert_array_equal(ds.read_idx(tmp_path / "looks-like.gz"), a)


def test_empty_dimension_is_fine(tmp_path):
    ds.write_idx(tmp_path / "e.idx", np.zeros((0, 28, 28), np.uint8))
    assert ds.read_idx(tmp_path / "e.idx").shape == (0, 28, 28)


@pytest.mark.parametrize("array, match", [
    (np.zeros(3, np.int64), "dtype int64"),
    (np.zeros(3, np.uint16), "dtype uint16"),
    (np.array(5, np.uint8), "0 dimensions"),
    (np.zeros((1,) * 5, np.uint8), "5 dimensions"),
])
def test_write_idx_rejects(tmp_path, array, match):
    with pytest.raises(ValueError, match=match):
        ds.write_idx(tmp_path / "x.idx", array)
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------
# hostile IDX files
# ---------------------------------------------------------------------------

GOOD = idx_bytes(0x08, (2, 3), bytes(range(6)))


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("content, match", [
    (idx_bytes(0x08, (2, 3), bytes(6), magic=b"\x00\x01"), "not an IDX file"),
    (b"PK\x03\x04 some zip file", "not an IDX file"),
    (idx_bytes(0x0A, (2, 3), bytes(6)), "unknown IDX data type code 0x0a"),
    (idx_bytes(0x08, (), b""), "0 dimensions"),
    (idx_bytes(0x08, (1,) * 5, b"\0"), "5 dimensions"),
    (b"\x00\x00\x08", "truncated IDX header"),
    (idx_bytes(0x08, (2, 3))[:10], "truncated IDX header"),
    (GOOD[:-1], "truncated IDX file"),
    (idx_bytes(0x0C, (2,), bytes(7)), "truncated IDX file"),
    (GOOD + b"\0", "trailing"),
    (GOOD + b"garbage" * 100, "trailing"),
], ids=["magic", "zip", "dtype", "0dims", "5dims", "short-header", "short-dims",
        "short-payload", "short-int32", "trailing-byte", "trailing-garbage"])
def test_hostile_idx(tmp_path, content, match, gz):
    path = write_bytes(tmp_path / "bad", content, gz)
    with pytest.raises(ValueError, match=match) as info:
        ds.read_idx(path)
    assert path in str(info.value)  # the message names the file


def test_empty_file(tmp_path):
    path = write_bytes(tmp_path / "empty.gz", b"")
    with pytest.raises(ValueError, match="empty") as info:
        ds.read_idx(path)
    assert path in str(info.value)


def test_missing_file_is_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        ds.read_idx(tmp_path / "nope")


def _assert_fast_and_small(fn, seconds=1.0, max_bytes=16 << 20):
    """fn must raise ValueError quickly and without allocating much."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError) as info:
            fn()
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    assert peak < max_bytes, f"allocated {peak} bytes"
    return info.value


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_header_claiming_1e12_elements_fails_fast(tmp_path, gz):
    path = write_bytes(tmp_path / "huge", idx_bytes(0x08, (10 ** 6, 10 ** 6), bytes(100)), gz)
    err = _assert_fast_and_small(lambda: ds.read_idx(path))
    assert "limit" in str(err) and path in str(err)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("dims", [(2 ** 24, 0, 2 ** 27, 2 ** 32 - 1), (0, 2 ** 31)])
def test_empty_shape_with_huge_dimensions_is_refused(tmp_path, dims, gz):
    # No data at all, but NumPy cannot even represent such a shape (found by
    # tests/fuzz_atheris.py: NumPy's ValueError did not name the file).
    path = write_bytes(tmp_path / "empty-huge", idx_bytes(0x0C, dims), gz)
    with pytest.raises(ValueError, match="empty shape.*limit") as info:
        ds.read_idx(path)
    assert path in str(info.value)


@pytest.mark.parametrize("code", [0x0E, 0x0C])
def test_header_overflowing_64_bits_fails_fast(tmp_path, code):
    dims = (2 ** 32 - 1,) * 4  # product * itemsize overflows any fixed-width integer
    path = write_bytes(tmp_path / "huge", idx_bytes(code, dims, bytes(8)))
    assert "limit" in str(_assert_fast_and_small(lambda: ds.read_idx(path)))


def test_gzip_header_lying_big_allocates_only_real_data(tmp_path):
    # Under the size limit (500 MB claimed) but only 1 KB of real data:
    # memory must follow the data, not the claim.
    path = write_bytes(tmp_path / "liar.gz", idx_bytes(0x08, (500_000_000,), bytes(1024)), gz=True)
    assert "truncated" in str(_assert_fast_and_small(lambda: ds.read_idx(path)))


def test_gzip_bomb_with_small_header_is_not_inflated(tmp_path):
    # Header says 100 bytes; the stream inflates to 64 MiB more.
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip container
    parts = [comp.compress(idx_bytes(0x08, (100,), bytes(100)))]
    zeros = bytes(1 << 20)
    parts += [comp.compress(zeros) for _ in range(64)]
    parts.append(comp.flush())
    path = write_bytes(tmp_path / "bomb.gz", b"".join(parts))
    assert os.path.getsize(path) < 200_000
    assert "trailing" in str(_assert_fast_and_small(lambda: ds.read_idx(path), max_bytes=4 << 20))


def test_corrupt_gzip(tmp_path):
    content = gzip.compress(idx_bytes(0x08, (50, 50), os.urandom(2500)), mtime=0)
    flipped = bytearray(content)
    flipped[len(flipped) // 2] ^= 0xFF
    bad_crc = content[:-8] + bytes(4) + content[-4:]
    cut = content[: len(content) - 20]
    for name, data in [("flipped", bytes(flipped)), ("crc", bad_crc), ("cut", cut),
                       ("magic-only", b"\x1f\x8b"), ("header-only", content[:10])]:
        path = write_bytes(tmp_path / name, data)
        with pytest.raises(ValueError) as info:
            ds.read_idx(path)
        assert path in str(info.value), name


def test_gzip_with_trailing_garbage_after_stream(tmp_path):
    path = write_bytes(tmp_path / "t.gz", gzip.compress(GOOD, mtime=0) + b"not gzip")
    with pytest.raises(ValueError):
        ds.read_idx(path)


# ---------------------------------------------------------------------------
# search order
# ---------------------------------------------------------------------------

def loaded_marker(result):
    (x_train, _), _ = result
    return int(x_train[0, 0, 0])


def test_search_order(places, monkeypatch):
    explicit = make_dataset_dir(places["tmp"] / "explicit", marker=1)
    env = places["tmp"] / "env"
    make_dataset_dir(env / "fashion-mnist", marker=2)
    make_dataset_dir(places["user"], marker=3)
    make_dataset_dir(places["system"], marker=4)
    monkeypatch.setenv("FASTNN_DATA", str(env))

    load = functools.partial(ds.load_fashion_mnist, download=False)
    assert loaded_marker(load(path=explicit)) == 1
    assert loaded_marker(load()) == 2
    assert ds.find_dataset("fashion-mnist") == str(env / "fashion-mnist")
    monkeypatch.delenv("FASTNN_DATA")
    assert loaded_marker(load()) == 3
    monkeypatch.setattr(ds, "USER_DATA_DIR", str(places["tmp"] / "nowhere"))
    assert loaded_marker(load()) == 4
    assert ds.find_dataset("fashion-mnist") == str(places["system"])


def test_fastnn_data_itself_and_raw_names(places, monkeypatch):
    env = make_dataset_dir(places["tmp"] / "env", marker=5, gz=False)  # files directly in it
    monkeypatch.setenv("FASTNN_DATA", env)
    make_dataset_dir(places["system"], marker=4)
    assert loaded_marker(ds.load_fashion_mnist(download=False)) == 5


def test_path_may_hold_a_named_subfolder(places):
    make_dataset_dir(places["tmp"] / "root" / "mnist", marker=6)
    assert loaded_marker(ds.load_mnist(path=places["tmp"] / "root", download=False)) == 6


def test_incomplete_directory_is_skipped(places):
    user = make_dataset_dir(places["user"], marker=3)
    os.remove(os.path.join(user, "t10k-labels-idx1-ubyte.gz"))
    make_dataset_dir(places["system"], marker=4)
    assert loaded_marker(ds.load_fashion_mnist(download=False)) == 4
    os.remove(places["system"] / "train-images-idx3-ubyte.gz")
    with pytest.raises(ds.DatasetNotFoundError, match="missing t10k-labels-idx1-ubyte"):
        ds.load_fashion_mnist(download=False)


def test_explicit_path_is_the_only_place(places):
    make_dataset_dir(places["system"], marker=4)
    missing = places["tmp"] / "typo"
    with pytest.raises(ds.DatasetNotFoundError) as info:
        ds.load_fashion_mnist(path=missing, download=False)
    looked = str(info.value).split("To get the files")[0]
    assert str(missing) in looked and "no other place was searched" in looked
    assert str(places["system"]) not in looked


def test_not_found_lists_every_place(places):
    with pytest.raises(ds.DatasetNotFoundError) as info:
        ds.load_fashion_mnist(download=False)
    msg = str(info.value)
    for expected in ["FASTNN_DATA is not set", str(places["user"]), str(places["system"]),
                     "download=False", "apt-get install dataset-fashion-mnist",
                     "path=", 'subset="small"']:
        assert expected in msg, expected
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, OSError)
    assert ds.find_dataset("fashion-mnist") is None


def test_mnist_not_found_has_no_apt_hint(places):
    with pytest.raises(ds.DatasetNotFoundError) as info:
        ds.load_mnist(download=False)
    assert "MNIST" in str(info.value) and "apt-get" not in str(info.value)


def test_unknown_name(places):
    with pytest.raises(ValueError, match="name: unknown data set"):
        ds.find_dataset("cifar10")


def test_inconsistent_files_are_reported(places):
    d = make_dataset_dir(places["system"], marker=4)
    ds.write_idx(os.path.join(d, "train-labels-idx1-ubyte.gz"), np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="3 labels for the 20 images"):
        ds.load_fashion_mnist(download=False)
    ds.write_idx(os.path.join(d, "train-images-idx3-ubyte.gz"), np.zeros((3, 28, 27), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(n, 28, 28\)"):
        ds.load_fashion_mnist(download=False)


# ---------------------------------------------------------------------------
# downloading from a local server
# ---------------------------------------------------------------------------

def test_download_removes_temporaries_of_killed_downloads(places, served):
    # A download killed mid-way (SIGKILL, power loss) leaves its temporary; the next
    # download of the same file removes it, unless its writer is alive (locked).
    target = places["user"]
    target.mkdir(parents=True)
    stale = [target / f".{f}.gz.tmp-{n}-0badc0de" for n, f in enumerate(ds.FILES, 1)]
    for p in stale:
        p.write_bytes(b"half a download")
    live, live_name = _atomic._create_locked(str(target / (ds.FILES[0] + ".gz")))
    try:
        ds.load_fashion_mnist()
        assert leftovers(target) == sorted([os.path.basename(live_name)] +
                                           [f + ".gz" for f in ds.FILES])
    finally:
        live.close()
    ds.write_idx(target / "extra.idx", np.zeros(3, np.uint8))   # another target: kept
    assert os.path.exists(live_name)
    ds.write_idx(target / (ds.FILES[0] + ".gz"), np.zeros(3, np.uint8))
    assert leftovers(target) == sorted(["extra.idx"] + [f + ".gz" for f in ds.FILES])


def test_download_success(places, served, capsys):
    (x_train, y_train), (x_test, y_test) = ds.load_fashion_mnist()
    assert x_train.shape == (20, 28, 28) and int(x_train[0, 0, 0]) == 7
    assert y_test.shape == (10,)
    target = places["user"]
    assert leftovers(target) == sorted(f + ".gz" for f in ds.FILES)  # no temp files
    assert checksums(target) == (served["sha"], served["md5"])
    for name in os.listdir(target):
        assert stat.S_IMODE(os.stat(target / name).st_mode) == 0o644
    err = capsys.readouterr().err
    assert "Downloading train-images-idx3-ubyte.gz" in err and "100%" in err
    # Second call: found on disk, no new request.
    count = len(served["requests"])
    ds.load_fashion_mnist()
    assert len(served["requests"]) == count


def test_download_goes_to_fastnn_data_or_path(places, served, monkeypatch):
    env = places["tmp"] / "env"
    monkeypatch.setenv("FASTNN_DATA", str(env))
    ds.load_fashion_mnist()
    assert len(leftovers(env / "fashion-mnist")) == 4
    explicit = places["tmp"] / "explicit"
    ds.load_fashion_mnist(path=explicit)
    assert len(leftovers(explicit)) == 4


def test_download_only_missing_files(places, served):
    target = make_dataset_dir(places["user"], marker=7)
    os.remove(os.path.join(target, "t10k-images-idx3-ubyte.gz"))
    ds.load_fashion_mnist()
    assert served["requests"] == ["/fmnist/t10k-images-idx3-ubyte.gz"]


def test_mirror_fallback(places, served):
    ds.load_fashion_mnist(base_url=[served["url"] + "missing/", served["url"] + "fmnist/"])
    assert len(leftovers(places["user"])) == 4


def test_checksum_mismatch_leaves_nothing(places, served, monkeypatch):
    bad = dict(served["sha"], **{"train-images-idx3-ubyte.gz": "0" * 64})
    monkeypatch.setitem(ds.DATASETS["fashion-mnist"], "sha256", bad)
    with pytest.raises(ds.DatasetNotFoundError, match="SHA256 mismatch"):
        ds.load_fashion_mnist()
    assert leftovers(places["user"]) == []
    assert not os.path.exists(places["home"] / ".fastnn")  # no empty folders either


def test_md5_is_checked_too(places, served, monkeypatch):
    bad = dict(served["md5"], **{"train-images-idx3-ubyte.gz": "0" * 32})
    monkeypatch.setitem(ds.DATASETS["fashion-mnist"], "md5", bad)
    with pytest.raises(ds.DatasetNotFoundError, match="MD5 mismatch"):
        ds.load_fashion_mnist()
    assert leftovers(places["user"]) == []


def test_broken_connection_leaves_nothing(places, served):
    places["user"].mkdir(parents=True)  # an existing folder is kept, and stays empty
    with pytest.raises(ds.DatasetNotFoundError, match="train-images"):
        ds.load_fashion_mnist(base_url=served["url"] + "truncated/")
    assert leftovers(places["user"]) == []


def test_download_404_lists_places(places, served):
    with pytest.raises(ds.DatasetNotFoundError) as info:
        ds.load_fashion_mnist(base_url=served["url"] + "missing/")
    msg = str(info.value)
    for expected in ["404", served["url"] + "missing/train-images-idx3-ubyte.gz",
                     str(places["user"]), str(places["system"]), "FASTNN_DATA",
                     "apt-get install dataset-fashion-mnist"]:
        assert expected in msg, expected
    assert leftovers(places["user"]) == []


def test_download_false_makes_no_request(places, served):
    with pytest.raises(ds.DatasetNotFoundError, match="download=False"):
        ds.load_fashion_mnist(download=False)
    assert served["requests"] == []
    assert not os.path.exists(places["user"])


def test_unreachable_server_fails_quickly(places, served):
    # A port nobody listens on: refused at once, well within the timeout.
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(ds.DatasetNotFoundError, match="train-images"):
        ds.load_fashion_mnist(base_url=f"http://127.0.0.1:{port}/")
    assert time.perf_counter() - start < 5


def test_download_refuses_other_schemes_and_missing_checksums(places, served, monkeypatch):
    with pytest.raises(ds.DatasetNotFoundError, match="only http"):
        ds.load_fashion_mnist(base_url="file:///etc/")
    monkeypatch.setitem(ds.DATASETS["fashion-mnist"], "sha256", {})
    monkeypatch.setitem(ds.DATASETS["fashion-mnist"], "md5", {})
    with pytest.raises(ds.DatasetNotFoundError, match="no checksum known"):
        ds.load_fashion_mnist()
    assert served["requests"] == []


def test_download_dataset_directly(tmp_path, served):
    target = ds.download_dataset("fashion-mnist", tmp_path / "dl", progress=False)
    assert len(leftovers(target)) == 4
    with pytest.raises(ds.DownloadError, match="404"):
        ds.download_dataset("fashion-mnist", tmp_path / "dl2",
                            base_url=served["url"] + "missing/", progress=False)


def test_hard_coded_checksums_look_right():
    for name in ("fashion-mnist", "mnist"):
        spec = ds.DATASETS[name]
        assert sorted(spec["sha256"]) == sorted(spec["md5"]) == sorted(f + ".gz" for f in ds.FILES)
        assert all(len(v) == 64 and int(v, 16) >= 0 for v in spec["sha256"].values())
        assert all(len(v) == 32 and int(v, 16) >= 0 for v in spec["md5"].values())
    assert ds.DATASETS["fashion-mnist"]["md5"]["train-images-idx3-ubyte.gz"] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"


# ---------------------------------------------------------------------------
# the shipped subset
# ---------------------------------------------------------------------------

def test_small_subset(places):
    (x_train, y_train), (x_test, y_test) = ds.load_fashion_mnist(subset="small")
    assert x_train.shape == (6000, 28, 28) and y_train.shape == (6000,)
    assert x_test.shape == (1000, 28, 28) and y_test.shape == (1000,)
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.uint8
    assert np.bincount(y_train, minlength=10).tolist() == [600] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [100] * 10
    assert x_train.max() == 255 and x_train.min() == 0
    # Not just copies of one image per class.
    assert len({x.tobytes() for x in x_train[:200]}) == 200


def test_subset_files_and_size():
    total = 0
    for folder, _, files in os.walk(ds.PACKAGE_DATA_DIR):
        total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    assert total <= 5 * 1024 * 1024
    with open(os.path.join(ds.PACKAGE_DATA_DIR, "LICENSE-fashion-mnist.txt"), encoding="utf-8") as f:
        licence = f.read()
    assert "Zalando SE" in licence and "MIT" in licence and "1708.07747" in licence
    with open(os.path.join(ds.PACKAGE_DATA_DIR, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert "Han Xiao" in readme and "20170825" in readme


def test_subset_argument_errors():
    with pytest.raises(ValueError, match="subset:"):
        ds.load_fashion_mnist(subset="tiny")
    with pytest.raises(ValueError, match="path:"):
        ds.load_fashion_mnist(path="/tmp", subset="small")


def test_full_set_never_falls_back_to_subset(places):
    with pytest.raises(ds.DatasetNotFoundError):
        ds.load_fashion_mnist(download=False)


def test_class_names():
    assert ds.FASHION_MNIST_CLASSES == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


# ---------------------------------------------------------------------------
# the real Fashion-MNIST files (Debian's dataset-fashion-mnist)
# ---------------------------------------------------------------------------

realdata = pytest.mark.skipif(
    not os.path.isdir(SYSTEM_FASHION),
    reason=f"{SYSTEM_FASHION} not found (apt-get install dataset-fashion-mnist)")

# sha256 of the arrays' bytes (independent of the gzip headers).
REAL_ARRAY_SHA256 = {
    "x_train": "2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012",
    "y_train": "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7",
    "x_test": "c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a",
    "y_test": "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9",
}


@pytest.fixture(scope="module")
def real():
    return ds.load_fashion_mnist(path=SYSTEM_FASHION, download=False)


@pytest.mark.realdata
@realdata
def test_real_fashion_mnist(real):
    (x_train, y_train), (x_test, y_test) = real
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    for name, a in arrays.items():
        assert a.dtype == np.uint8
        assert hashlib.sha256(a.tobytes()).hexdigest() == REAL_ARRAY_SHA256[name], name


@pytest.mark.realdata
@realdata
def test_subset_is_taken_from_real_data(real):
    (x_train, y_train), (x_test, y_test) = real
    (sx_train, sy_train), (sx_test, sy_test) = ds.load_fashion_mnist(subset="small")
    folder = os.path.join(ds.PACKAGE_DATA_DIR, "fashion-mnist-small")
    i_train = ds.read_idx(os.path.join(folder, "train-indices-idx1-int32.gz"))
    i_test = ds.read_idx(os.path.join(folder, "t10k-indices-idx1-int32.gz"))
    assert np.all(np.diff(i_train) > 0) and np.all(np.diff(i_test) > 0)
    np.testing.assert_array_equal(x_train[i_train], sx_train)
    np.testing.assert_array_equal(y_train[i_train], sy_train)
    np.testing.assert_array_equal(x_test[i_test], sx_test)
    np.testing.assert_array_equal(y_test[i_test], sy_test)


@pytest.mark.realdata
@realdata
def test_real_data_found_in_system_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    assert ds.find_dataset("fashion-mnist") == SYSTEM_FASHION


# ---------------------------------------------------------------------------
# prepare_images / to_categorical
# ---------------------------------------------------------------------------

def test_prepare_images():
    x = np.array([[[0, 255], [51, 102]]] * 3, dtype=np.uint8)  # (3, 2, 2)
    out = ds.prepare_images(x)
    assert out.shape == (3, 4) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out[0], [0, 1, 0.2, 0.4], rtol=1e-6)
    kept = ds.prepare_images(x, dtype="float64", flatten=False)
    assert kept.shape == (3, 2, 2) and kept.dtype == np.float64
    assert x[0, 0, 1] == 255  # input untouched
    assert ds.prepare_images(np.zeros((5, 28, 28), np.uint8)).shape == (5, 784)
    assert ds.prepare_images(np.array([[0, 255]], dtype=np.int64)).tolist() == [[0.0, 1.0]]


@pytest.mark.parametrize("kwargs, match", [
    (dict(x=np.zeros((2, 4), np.float32)), "x: expected integer"),
    (dict(x=np.array([[-1, 3]])), r"x: pixel values must be in 0\.\.255"),
    (dict(x=np.array([[0, 256]], np.int16)), r"x: pixel values must be in 0\.\.255"),
    (dict(x=np.zeros(4, np.uint8)), "x: expected shape"),
    (dict(x=np.zeros((2, 4), np.uint8), dtype="int32"), "dtype: expected a floating"),
    (dict(x=np.zeros((2, 4), np.uint8), dtype="nonsense"), "dtype: expected a floating"),
])
def test_prepare_images_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ds.prepare_images(**kwargs)


def test_to_categorical():
    out = ds.to_categorical([0, 2, 1])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.eye(3, dtype=np.float32)[[0, 2, 1]])
    assert ds.to_categorical(np.array([1, 3], np.uint8), num_classes=5).shape == (2, 5)
    assert ds.to_categorical(np.array([[1], [0]]), 2).tolist() == [[0, 1], [1, 0]]  # (n, 1) like Keras
    assert ds.to_categorical(np.array([[1, 0]]), 2).shape == (1, 2, 2)
    assert ds.to_categorical([1.0, 0.0]).tolist() == [[0, 1], [1, 0]]
    assert ds.to_categorical([], num_classes=4).shape == (0, 4)
    assert ds.to_categorical([2], num_classes=np.int64(3), dtype="int32").dtype == np.int32
    assert ds.to_categorical(np.array([True, False])).tolist() == [[0, 1], [1, 0]]


@pytest.mark.parametrize("args, match", [
    (([0.5, 1],), "y: expected integer"),
    (([np.nan],), "y: expected integer"),
    (([1e300],), "y: expected integer"),
    ((["a", "b"],), "y: expected integer"),
    (([-1, 2],), "y: class labels must be non-negative"),
    (([0, 3], 3), "y: label 3 is out of range for num_classes=3"),
    (([0], 0), "num_classes: expected a positive integer"),
    (([0], 2.5), "num_classes: expected a positive integer"),
    (([0], True), "num_classes: expected a positive integer"),
    (([],), "num_classes: must be given"),
])
def test_to_categorical_errors(args, match):
    with pytest.raises(ValueError, match=match):
        ds.to_categorical(*args)


# ---------------------------------------------------------------------------
# the module itself
# ---------------------------------------------------------------------------

def _imports(filename):
    with open(filename, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{filename}: no relative imports"
            names.update(f"{node.module}.{a.name}" if node.module == "fastnn" else node.module
                         for a in node.names)
    return names


@pytest.mark.skipif(not hasattr(sys, "stdlib_module_names"), reason="needs Python 3.10+")
def test_module_imports_only_numpy_and_stdlib():
    # The fastnn modules allowed outside the package are the shared atomic writer and
    # the opener of regular files, both stdlib-only.
    from fastnn import _atomic, _files
    folder = os.path.dirname(ds.__file__)
    files = [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".py")]
    names = {n.split(".")[0] if not n.startswith("fastnn.") else n
             for f in files for n in _imports(f)}
    outside = {n for n in names if not n.startswith("fastnn.datasets")}
    assert outside - set(sys.stdlib_module_names) == {"numpy", "fastnn._atomic",
                                                      "fastnn._files"}
    for module in (_atomic, _files):
        assert {n.split(".")[0] for n in _imports(module.__file__)} <= \
            set(sys.stdlib_module_names)


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"),
                    reason="POSIX FIFOs and /dev/zero")
def test_read_idx_refuses_fifos_and_devices_without_reading(tmp_path):
    # Before: a FIFO blocked read_idx in open() forever. A ValueError naming the file, as
    # for any other file that is not an IDX file; a directory stays an OSError.
    import signal

    def expire(signum, frame):
        raise TimeoutError("read_idx still blocked after 10 s")
    fifo = tmp_path / "fifo-idx"
    os.mkfifo(fifo)
    link = tmp_path / "zero-idx"
    os.symlink("/dev/zero", link)
    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(10)
    try:
        for path, kind in ((fifo, "FIFO"), (link, "character device"),
                           ("/dev/zero", "character device")):
            with pytest.raises(ValueError, match=kind) as e:
                ds.read_idx(path)
            assert str(path) in str(e.value)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    with pytest.raises(IsADirectoryError):
        ds.read_idx(tmp_path)
    ds.write_idx(tmp_path / "real", np.arange(3, dtype=np.uint8))
    os.symlink(tmp_path / "real", tmp_path / "to-real")
    assert ds.read_idx(tmp_path / "to-real").tolist() == [0, 1, 2]
