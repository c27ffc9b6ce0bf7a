"""Datasets: Fashion-MNIST and MNIST loaders, an IDX file reader/writer and
small preprocessing helpers (``prepare_images``, ``to_categorical``).

Only numpy, the standard library and fastnn._atomic (the shared atomic file
writer, standard library only) are used here, so this module can be imported
(and tested) without the compiled engine.

Quick start::

    from fastnn import datasets

    # The small subset shipped inside the package (6,000 train + 1,000 test
    # images, equal numbers per class): works offline, everywhere.
    (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist(subset="small")

    # The full data set (60,000 + 10,000 images), found on disk or downloaded.
    (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist()

    x = datasets.prepare_images(x_train)    # (n, 784) float32 in [0, 1]
    y = datasets.to_categorical(y_train)    # (n, 10) one-hot float32

Where the full data sets are looked for, in this order (``<name>`` is
``fashion-mnist`` or ``mnist``):

1. the ``path=`` argument, if given (the directory itself or ``path/<name>``);
   when it is given, no other place is searched;
2. ``$FASTNN_DATA/<name>/``, then ``$FASTNN_DATA`` itself (files placed
   directly there are taken for whichever data set is asked for, so keep
   each data set in its own ``<name>/`` folder if you use more than one);
3. ``~/.fastnn/datasets/<name>/``;
4. the system data directory ``/usr/share/datasets/<name>/`` (Debian's
   package ``dataset-fashion-mnist`` installs Fashion-MNIST there).

A directory counts only if it holds all four standard files
(``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each either gzipped
with a ``.gz`` suffix or raw). If none has them and ``download=True``, the
files are downloaded from the data set's public address into ``path`` (if
given), else ``$FASTNN_DATA/<name>/`` (if set), else
``~/.fastnn/datasets/<name>/``, and checked against hard-coded SHA-256/MD5
sums. Otherwise :class:`DatasetNotFoundError` says everywhere it looked and
how to get the files.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import zlib

import numpy as np

from fastnn import _atomic

__all__ = [
    "FASHION_MNIST_CLASSES",
    "DATASETS",
    "DatasetNotFoundError",
    "DownloadError",
    "read_idx",
    "write_idx",
    "search_locations",
    "find_dataset",
    "download_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "prepare_images",
    "to_categorical",
]

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

# The four files of both data sets, without the ".gz" suffix, in the order
# x_train, y_train, x_test, y_test.
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# Search locations. Module constants so that tests (and unusual systems) can
# point them elsewhere; they are read at call time, never cached.
ENV_VAR = "FASTNN_DATA"
SYSTEM_DATA_DIR = "/usr/share/datasets"
USER_DATA_DIR = os.path.join("~", ".fastnn", "datasets")  # expanded at call time
PACKAGE_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
SUBSETS = {"small": "fashion-mnist-small"}  # subset= value -> folder in PACKAGE_DATA_DIR

# Limits that keep hostile input from exhausting memory, disk or patience.
MAX_IDX_BYTES = 1 << 30          # largest IDX payload read_idx accepts (1 GiB)
MAX_DOWNLOAD_BYTES = 128 << 20   # largest file download_dataset accepts
DOWNLOAD_TIMEOUT = 15.0          # seconds, per connect/read on the socket
_CHUNK = 1 << 20
# Data files (shipped with the package, or downloaded into a shared FASTNN_DATA)
# must be world-readable, whatever the umask.
_FILE_MODE = 0o644

# Where to download from and what the files must hash to. Tests replace
# entries (e.g. with monkeypatch.setitem) to use a local server.
#
# Fashion-MNIST: the SHA-256 sums are those of the files as published by
# Zalando (they match the MD5s in the project's README). Debian's
# dataset-fashion-mnist ships the same compressed streams, but its gzip
# headers were normalised at package build time (stored file name dropped,
# mtime reset), so the .gz files in /usr/share/datasets/fashion-mnist hash
# differently; with the original header restored (name + mtime
# 2017-08-31T10:50:06Z/10:50:27Z) they match these MD5s byte for byte.
# Local files are never checksummed, only downloads.
#
# The S3 *website* endpoint Zalando documents serves plain HTTP only (S3
# website endpoints have no TLS); integrity comes from the SHA-256 check.
# The project's GitHub copy is tried next, over HTTPS.
#
# MNIST: the SHA-256 sums are the widely published ones for the classic files
# (the same ones torchvision and others pin); they could not be computed here
# (no network when this was written), so the MD5s from the brief are checked
# as well; a file must match both.
DATASETS = {
    "fashion-mnist": {
        "title": "Fashion-MNIST",
        "urls": (
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        "sha256": {
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        "md5": {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        "apt": "dataset-fashion-mnist",
    },
    "mnist": {
        "title": "MNIST",
        "urls": (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        "sha256": {
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        "md5": {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        "apt": None,  # Debian has no MNIST package
    },
}


class DatasetNotFoundError(FileNotFoundError):
    """A data set is neither on disk nor downloadable; the message lists every
    place that was searched and how to get the files."""


class DownloadError(OSError):
    """Downloading a data set file failed (network error, HTTP error, size
    limit or checksum mismatch). Nothing is left behind in the target
    directory for the failed file."""


# ---------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------

# IDX type code -> big-endian numpy dtype, as in the MNIST format description.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_MAX_DIMS = 4
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path):
    """Read an IDX file (the MNIST format), raw or gzip-compressed.

    Gzip is recognised by its magic bytes (1f 8b), not by the file name. The
    header is validated (magic, type code, 1 to 4 dimensions) and the payload
    size it implies, ``prod(dims) * itemsize``, must be at most
    ``MAX_IDX_BYTES`` and match the data exactly, with no trailing bytes.
    Gzip data is decompressed in bounded steps, never past the size the
    header promises (+1 byte to detect trailing data), so a lying header or a
    gzip bomb cannot make this allocate much more than the real data.

    Args:
        path: file name (str or os.PathLike).

    Returns:
        numpy array of shape ``dims`` in native byte order, of dtype uint8,
        int8, int16, int32, float32 or float64 (from the header's type code).
        For example MNIST training images give a (60000, 28, 28) uint8 array.

    Raises:
        ValueError: the file is empty, truncated, corrupt, has trailing data
            or is not an IDX file; the message names the file and the problem.
        OSError: the file cannot be opened or read.
    """
    name = os.fspath(path)
    with open(name, "rb") as f:
        start = f.read(2)
        f.seek(0)
        if not start:
            raise ValueError(f"{name}: file is empty, expected an IDX file")
        if start == _GZIP_MAGIC:
            return _read_idx_gzip(f, name)
        return _read_idx_raw(f, name)


def _parse_idx_header(read, name):
    """Read and check the IDX header through ``read(n)``.

    Returns ``(dtype, dims, payload_bytes)``; raises ValueError on any
    problem, before anything big is allocated.
    """
    head = read(4)
    if len(head) < 4:
        raise ValueError(f"{name}: truncated IDX header ({len(head)} of 4 bytes)")
    if head[0] != 0 or head[1] != 0:
        raise ValueError(
            f"{name}: not an IDX file (magic bytes {head[0]:#04x} {head[1]:#04x}, "
            "expected 0x00 0x00)")
    code, ndim = head[2], head[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"{c:#04x}" for c in _IDX_DTYPES)
        raise ValueError(f"{name}: unknown IDX data type code {code:#04x} (expected one of {known})")
    if not 1 <= ndim <= _IDX_MAX_DIMS:
        raise ValueError(
            f"{name}: IDX header has {ndim} dimensions, expected 1 to {_IDX_MAX_DIMS}")
    raw_dims = read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise ValueError(
            f"{name}: truncated IDX header ({4 + len(raw_dims)} of {4 + 4 * ndim} bytes)")
    dims = tuple(int.from_bytes(raw_dims[4 * i:4 * i + 4], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[code]
    # Python ints: the product cannot overflow, however large the header claims.
    payload = dtype.itemsize
    for d in dims:
        payload *= d
    if payload > MAX_IDX_BYTES:
        raise ValueError(
            f"{name}: IDX header claims shape {dims} ({payload} bytes of data), more than "
            f"the {MAX_IDX_BYTES}-byte limit (datasets.MAX_IDX_BYTES)")
    # An empty dimension makes the payload 0 whatever the others say, but NumPy refuses
    # shapes whose other dimensions multiply past its index range: bound them as well.
    extent = dtype.itemsize
    for d in dims:
        extent *= max(d, 1)
    if extent > MAX_IDX_BYTES:
        raise ValueError(
            f"{name}: IDX header claims the empty shape {dims}, whose non-empty dimensions "
            f"alone span more than the {MAX_IDX_BYTES}-byte limit (datasets.MAX_IDX_BYTES)")
    return dtype, dims, payload


def _to_array(buf, dtype, dims):
    arr = np.frombuffer(buf, dtype=dtype).reshape(dims)
    if dtype.itemsize > 1:
        arr = arr.astype(dtype.newbyteorder("="))  # big-endian on disk -> native
    else:
        arr = arr.view(dtype.newbyteorder("="))
    return arr


def _read_idx_raw(f, name):
    dtype, dims, payload = _parse_idx_header(f.read, name)
    header = f.tell()
    size = os.fstat(f.fileno()).st_size
    # Compare with the file size before allocating the payload buffer.
    if size - header < payload:
        raise ValueError(
            f"{name}: truncated IDX file: header claims shape {dims} ({payload} bytes of "
            f"data) but only {size - header} bytes follow the header")
    if size - header > payload:
        raise ValueError(
            f"{name}: {size - header - payload} unexpected trailing bytes after the "
            f"{payload} bytes of data for shape {dims}")
    buf = bytearray(payload)
    got = f.readinto(buf)
    if got != payload:  # the file shrank while we read it
        raise ValueError(f"{name}: truncated IDX file ({got} of {payload} data bytes)")
    return _to_array(buf, dtype, dims)


def _read_idx_gzip(f, name):
    try:
        with gzip.GzipFile(fileobj=f, mode="rb") as gz:
            dtype, dims, payload = _parse_idx_header(gz.read, name)
            # The decompressed size is unknown until decompressed, so grow the
            # buffer chunk by chunk: memory follows the data actually present,
            # never the header's claim.
            buf = bytearray()
            while len(buf) < payload:
                chunk = gz.read(min(_CHUNK, payload - len(buf)))
                if not chunk:
                    break
                buf += chunk
            # One more byte: detects trailing data, and reaching the end of the
            # stream makes gzip check the CRC and the length in the trailer.
            extra = gz.read(1)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{name}: corrupt or truncated gzip data ({e})") from None
    if len(buf) < payload:
        raise ValueError(
            f"{name}: truncated IDX file: header claims shape {dims} ({payload} bytes of "
            f"data) but the gzip stream holds only {len(buf)}")
    if extra:
        raise ValueError(
            f"{name}: unexpected trailing data after the {payload} bytes of data for shape {dims}")
    return _to_array(buf, dtype, dims)


def write_idx(path, array):
    """Write ``array`` as an IDX file; gzip-compressed if ``path`` ends in ".gz".

    The file is written to a temporary name and then renamed, so a reader
    never sees half a file. Gzip output is deterministic (no name, mtime 0).

    Args:
        path: destination file name.
        array: array-like with 1 to 4 dimensions and dtype uint8, int8,
            int16, int32, float32 or float64 (stored big-endian, as IDX wants).

    Raises:
        ValueError: unsupported dtype, number of dimensions or dimension size.
    """
    name = os.fspath(path)
    arr = np.asarray(array)
    code = _idx_code(arr.dtype)
    if code is None:
        raise ValueError(
            f"array: dtype {arr.dtype} cannot be stored in IDX; expected uint8, int8, "
            "int16, int32, float32 or float64")
    if not 1 <= arr.ndim <= _IDX_MAX_DIMS:
        raise ValueError(f"array: has {arr.ndim} dimensions, IDX files here take 1 to {_IDX_MAX_DIMS}")
    if any(d >= 2 ** 32 for d in arr.shape):
        raise ValueError(f"array: shape {arr.shape} has a dimension too large for IDX (>= 2**32)")
    header = bytes([0, 0, code, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    data = np.ascontiguousarray(arr, dtype=_IDX_DTYPES[code]).tobytes()
    if name.endswith(".gz"):
        out = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
            gz.write(header)
            gz.write(data)
        content = out.getvalue()
    else:
        content = header + data
    _write_atomically(name, content)


def _idx_code(dtype):
    for code, idx_dtype in _IDX_DTYPES.items():
        if dtype.kind == idx_dtype.kind and dtype.itemsize == idx_dtype.itemsize:
            return code
    return None


def _write_atomically(name, content):
    with _atomic.atomic_write(name, mode=_FILE_MODE) as out:
        out.write(content)


# ---------------------------------------------------------------------------
# Finding data sets on disk
# ---------------------------------------------------------------------------

def _spec(name):
    if name not in DATASETS:
        raise ValueError(f"name: unknown data set {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[name]


def _files_in(directory):
    """Map each of FILES to its path in ``directory`` (``.gz`` preferred over
    raw), or to None where neither exists."""
    found = {}
    for stem in FILES:
        found[stem] = None
        for candidate in (stem + ".gz", stem):
            full = os.path.join(directory, candidate)
            if os.path.isfile(full):
                found[stem] = full
                break
    return found


def _describe(directory):
    """Why ``directory`` does not hold a data set (for error messages)."""
    if not os.path.isdir(directory):
        return "does not exist"
    missing = [stem for stem, p in _files_in(directory).items() if p is None]
    if len(missing) == len(FILES):
        return "has none of the files"
    return "incomplete, missing " + ", ".join(s + "[.gz]" for s in missing)


def search_locations(name, path=None):
    """The directories searched for data set ``name``, in order.

    Args:
        name: "fashion-mnist" or "mnist".
        path: explicit directory; when given it is the only place searched
            (as ``path`` itself, then ``path/<name>``).

    Returns:
        list of directory names (they need not exist).
    """
    _spec(name)
    if path is not None:
        path = os.fspath(path)
        return [path, os.path.join(path, name)]
    places = []
    env = os.environ.get(ENV_VAR)
    if env:
        places += [os.path.join(env, name), env]
    places.append(os.path.join(os.path.expanduser(USER_DATA_DIR), name))
    places.append(os.path.join(SYSTEM_DATA_DIR, name))
    return places


def find_dataset(name, path=None):
    """Return the first directory that holds all four files of ``name``, or None.

    The order is the one described in the module docstring (see
    :func:`search_locations`). Nothing is downloaded; callers can use this to
    decide between the full data set and ``load_fashion_mnist(subset="small")``.
    """
    for directory in search_locations(name, path):
        if os.path.isdir(directory) and all(_files_in(directory).values()):
            return directory
    return None


# ---------------------------------------------------------------------------
# Downloading
# ---------------------------------------------------------------------------

def _default_download_dir(name):
    env = os.environ.get(ENV_VAR)
    if env:
        return os.path.join(env, name)
    return os.path.join(os.path.expanduser(USER_DATA_DIR), name)


def _base_urls(spec, base_url):
    if base_url is None:
        return tuple(spec["urls"])
    if isinstance(base_url, (str, bytes, os.PathLike)):
        return (os.fsdecode(base_url),)
    return tuple(base_url)


def download_dataset(name, directory=None, base_url=None, progress=True):
    """Download the files of data set ``name`` that ``directory`` lacks.

    Each file is fetched into a temporary file in ``directory``, checked
    against the SHA-256 (and MD5, where known) in ``DATASETS[name]``, and
    only then renamed into place; on any failure the temporary file is
    deleted. Mirrors are tried in order. Files already present are kept and
    not re-checked.

    Args:
        name: "fashion-mnist" or "mnist".
        directory: where to put the files; default ``$FASTNN_DATA/<name>`` if
            FASTNN_DATA is set, else ``~/.fastnn/datasets/<name>``.
        base_url: a base URL or a sequence of them (mirrors) to use instead of
            ``DATASETS[name]["urls"]``; file names are appended to it.
        progress: show a progress bar on stderr.

    Returns:
        the directory, now holding all four files.

    Raises:
        DownloadError: a file could not be fetched or failed its checksum
            from every mirror; the message lists each attempt.
    """
    spec = _spec(name)
    directory = os.fspath(directory) if directory is not None else _default_download_dir(name)
    urls = _base_urls(spec, base_url)
    if not urls:
        raise ValueError("base_url: no URL to download from")
    created = _make_dirs(directory)
    try:
        present = _files_in(directory)
        for stem in FILES:
            if present[stem] is None:
                _download_one(spec, stem + ".gz", directory, urls, progress)
    except BaseException:
        _remove_empty_dirs(created)  # a failed first download leaves no empty folders
        raise
    return directory


def _make_dirs(directory):
    """Create ``directory`` and missing parents; return those created, deepest first."""
    created = []
    d = os.path.abspath(directory)
    while not os.path.isdir(d) and os.path.dirname(d) != d:
        created.append(d)
        d = os.path.dirname(d)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create download directory {directory}: {e}") from None
    return created


def _remove_empty_dirs(created):
    for d in created:
        try:
            os.rmdir(d)  # only succeeds while empty
        except OSError:
            return


def _download_one(spec, fname, directory, urls, progress):
    sha256 = spec.get("sha256", {}).get(fname)
    md5 = (spec.get("md5") or {}).get(fname)
    if not sha256 and not md5:
        raise DownloadError(f"{fname}: no checksum known in DATASETS, refusing to download it")
    failures = []
    for base in urls:
        url = base.rstrip("/") + "/" + fname
        try:
            _fetch_verified(url, os.path.join(directory, fname), sha256, md5, progress)
            return
        except (OSError, http.client.HTTPException, ValueError) as e:
            failures.append(f"{url}: {_reason(e)}")
    raise DownloadError(f"could not download {fname}:\n    " + "\n    ".join(failures))


def _reason(error):
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP error {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"{error.reason}"
    return str(error) or type(error).__name__


def _fetch_verified(url, dest, sha256, md5, progress):
    """Fetch ``url`` to ``dest`` atomically; raise unless the sums match."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"only http:// and https:// URLs are downloaded, not {url!r}")
    # Nothing half-done stays behind, whatever happens (the block raising removes the
    # temporary; a killed download's temporary is removed by the next write to dest).
    with _atomic.atomic_write(dest, mode=_FILE_MODE) as out:
        digests = _stream(url, out, os.path.basename(dest), progress)
        for algo, want in (("sha256", sha256), ("md5", md5)):
            if want and digests[algo] != want.lower():
                raise DownloadError(
                    f"{algo.upper()} mismatch: got {digests[algo]}, expected {want}")


def _stream(url, out, fname, progress):
    """Copy the body of ``url`` into ``out``, hashing it; returns the hex digests."""
    request = urllib.request.Request(url, headers={"User-Agent": "fastnn-datasets"})
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response:
        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        if total is not None and total > MAX_DOWNLOAD_BYTES:
            raise DownloadError(f"file is {total} bytes, over the {MAX_DOWNLOAD_BYTES}-byte limit")
        bar = _ProgressBar(fname, total) if progress else None
        done = 0
        try:
            while True:
                chunk = response.read(64 * 1024)
                if not chunk:
                    break
                done += len(chunk)
                if done > MAX_DOWNLOAD_BYTES:
                    raise DownloadError(f"download exceeded the {MAX_DOWNLOAD_BYTES}-byte limit")
                out.write(chunk)
                sha256.update(chunk)
                md5.update(chunk)
                if bar:
                    bar.update(done)
        finally:
            if bar:
                bar.close(done)  # end the line even on failure, so messages start clean
    if total is not None and done != total:
        raise DownloadError(f"incomplete download: {done} of {total} bytes")
    return {"sha256": sha256.hexdigest(), "md5": md5.hexdigest()}


def _size(n):
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


class _ProgressBar:
    """A one-line progress bar on stderr, redrawn only when it changes."""

    def __init__(self, label, total, stream=None):
        self.label, self.total = label, total
        self.stream = stream if stream is not None else sys.stderr
        self.last = None

    def update(self, done):
        if self.total:
            key = min(done * 100 // self.total, 100)
            filled = min(30 * done // self.total, 30)
            text = (f"\rDownloading {self.label} [{'#' * filled}{'.' * (30 - filled)}] "
                    f"{key:3d}% {_size(done)}/{_size(self.total)}")
        else:
            key = done >> 20
            text = f"\rDownloading {self.label}: {_size(done)}"
        if key != self.last:
            self.last = key
            self.stream.write(text)
            self.stream.flush()

    def close(self, done):
        self.update(done)
        self.stream.write("\n")
        self.stream.flush()


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------

def _load_dir(directory, num_classes=10):
    """Read the four files in ``directory`` and check they fit together."""
    paths = _files_in(directory)
    x_train, y_train, x_test, y_test = (read_idx(paths[stem]) for stem in FILES)
    for x_name, x, y_name, y in ((FILES[0], x_train, FILES[1], y_train),
                                 (FILES[2], x_test, FILES[3], y_test)):
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
            raise ValueError(
                f"{paths[x_name]}: expected uint8 images of shape (n, 28, 28), "
                f"got {x.dtype} {x.shape}")
        if y.dtype != np.uint8 or y.ndim != 1:
            raise ValueError(f"{paths[y_name]}: expected uint8 labels of shape (n,), got {y.dtype} {y.shape}")
        if len(y) != len(x):
            raise ValueError(
                f"{paths[y_name]}: {len(y)} labels for the {len(x)} images in {paths[x_name]}")
        if len(y) and int(y.max()) >= num_classes:
            raise ValueError(f"{paths[y_name]}: label {int(y.max())} out of range 0..{num_classes - 1}")
    return (x_train, y_train), (x_test, y_test)


def _not_found_message(name, path, download, download_dir, failure):
    spec = DATASETS[name]
    lines = [f"{spec['title']} ({name!r}) was not found. Looked in, in order:"]
    if path is not None:
        for d in search_locations(name, path):
            lines.append(f"  - {d}: {_describe(d)}")
        lines.append("  (path= was given, so no other place was searched)")
    else:
        lines.append("  - path= argument: not given")
        if not os.environ.get(ENV_VAR):
            lines.append(f"  - ${ENV_VAR}/{name} and ${ENV_VAR}: {ENV_VAR} is not set")
        for d in search_locations(name):
            lines.append(f"  - {d}: {_describe(d)}")
    if not download:
        lines.append("Downloading was not tried (download=False).")
    else:
        lines.append(f"Downloading into {download_dir} failed: {failure}")
    files = ", ".join(stem + ".gz" for stem in FILES)
    lines.append("To get the files, any one of:")
    if spec.get("apt"):
        lines.append(f"  - apt-get install {spec['apt']}   (Debian/Ubuntu; installs into "
                     f"{os.path.join(SYSTEM_DATA_DIR, name)})")
    lines.append(f"  - download {files} from {spec['urls'][0]} into a directory, then set "
                 f"{ENV_VAR} to that directory or pass path= to it")
    lines.append("  - connect to the network and call again with download=True")
    if name == "fashion-mnist":
        lines.append('  - or use the small subset shipped with fastnn: load_fashion_mnist(subset="small")')
    return "\n".join(lines)


def _load(name, path, download, base_url):
    directory = find_dataset(name, path)
    if directory is not None:
        return _load_dir(directory)
    target = os.fspath(path) if path is not None else _default_download_dir(name)
    failure = None
    if download:
        try:
            return _load_dir(download_dataset(name, target, base_url=base_url))
        except DownloadError as e:
            failure = str(e)
    raise DatasetNotFoundError(_not_found_message(name, path, download, target, failure))


def load_fashion_mnist(path=None, subset=None, download=True, base_url=None):
    """Load Fashion-MNIST (Xiao, Rasul & Vollgraf 2017; MIT licence, Zalando SE).

    Args:
        path: directory holding the four files (or a ``fashion-mnist/``
            folder with them). When given, it is the only place searched and
            the download target. Default: search as in the module docstring.
        subset: None for the full data set, or "small" for the stratified
            subset shipped inside fastnn (6,000 train / 1,000 test images,
            600 / 100 per class); "small" never touches the disk elsewhere or
            the network. The full data set never silently falls back to it.
        download: if the files are not found, download them (default True).
        base_url: base URL, or sequence of mirror URLs, to download from
            instead of ``DATASETS["fashion-mnist"]["urls"]``.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``, all uint8: x_train
        (60000, 28, 28), y_train (60000,), x_test (10000, 28, 28), y_test
        (10000,), labels 0..9 indexing :data:`FASHION_MNIST_CLASSES`.
        With subset="small": (6000, 28, 28), (6000,), (1000, 28, 28), (1000,).

    Raises:
        DatasetNotFoundError: no files found and none downloaded; the message
            lists the places searched and how to get the files.
        ValueError: bad argument, or a file is corrupt.
    """
    if subset is None:
        return _load("fashion-mnist", path, download, base_url)
    if subset not in SUBSETS:
        raise ValueError(f"subset: expected None or one of {sorted(SUBSETS)}, got {subset!r}")
    if path is not None:
        raise ValueError("path: must be None when subset= is given (the subset ships with fastnn)")
    directory = os.path.join(PACKAGE_DATA_DIR, SUBSETS[subset])
    if not all(_files_in(directory).values()):
        raise DatasetNotFoundError(
            f"the {subset!r} Fashion-MNIST subset is missing from the fastnn installation "
            f"({directory}: {_describe(directory)}); reinstall fastnn")
    return _load_dir(directory)


def load_mnist(path=None, download=True, base_url=None):
    """Load MNIST handwritten digits (LeCun, Cortes & Burges).

    Arguments, search order and errors as for :func:`load_fashion_mnist`
    (without ``subset``; Debian has no MNIST package).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``, all uint8: (60000, 28, 28),
        (60000,), (10000, 28, 28), (10000,); labels are the digits 0..9.
    """
    return _load("mnist", path, download, base_url)


# ---------------------------------------------------------------------------
# Preprocessing
# ---------------------------------------------------------------------------

def prepare_images(x, dtype="float32", flatten=True):
    """Scale raw pixels to [0, 1] and (by default) flatten each image.

    Args:
        x: integer array of pixel values 0..255, shape (n, 28, 28) or any
            (n, ...). Floating input is refused, so images cannot be scaled
            twice by mistake.
        dtype: floating dtype of the result, "float32" (default) or "float64".
        flatten: reshape (n, h, w, ...) to (n, h*w*...), e.g. (n, 28, 28) to
            (n, 784), the input a Dense layer wants.

    Returns:
        new C-contiguous array ``x / 255`` of ``dtype``, shape (n, 784) for
        (n, 28, 28) input when flatten is true, else x's shape.

    Raises:
        ValueError: x is not integer, has values outside 0..255, or has fewer
            than 2 dimensions when flatten is true; dtype is not floating.
    """
    x = np.asarray(x)
    try:
        out_dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype: expected a floating dtype such as 'float32', got {dtype!r}") from None
    if out_dtype.kind != "f":
        raise ValueError(f"dtype: expected a floating dtype such as 'float32', got {out_dtype}")
    if x.dtype.kind not in "ui":
        raise ValueError(
            f"x: expected integer pixel values 0..255 (e.g. uint8), got dtype {x.dtype}; "
            "already-scaled float images need no prepare_images")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError(f"x: pixel values must be in 0..255, got {x.min()}..{x.max()}")
    if flatten:
        if x.ndim < 2:
            raise ValueError(f"x: expected shape (n, ...) with at least 2 dimensions to flatten, got {x.shape}")
        x = x.reshape(x.shape[0], -1)
    out = x.astype(out_dtype)
    out /= out_dtype.type(255)
    return out


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode integer class labels (same semantics as Keras).

    Args:
        y: array-like of class indices, integer-valued (integer or whole
            floats), shape (n,) or (n, 1); any shape works, a trailing axis
            of size 1 is dropped as in Keras.
        num_classes: number of classes; default ``max(y) + 1``.
        dtype: dtype of the result (default "float32").

    Returns:
        array of shape ``y.shape + (num_classes,)`` (after dropping a trailing
        1), with a 1 at each label's index and 0 elsewhere. (n,) -> (n, C).

    Raises:
        ValueError: y is not integer-valued, is negative or >= num_classes,
            or num_classes is not a positive integer.
    """
    y = np.asarray(y)
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    if y.dtype.kind == "f":
        # Whole numbers only, and small enough to convert to int64 exactly.
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)) or np.any(np.abs(y) > 2 ** 53):
            raise ValueError("y: expected integer class labels, got non-integer values")
    elif y.dtype.kind not in "ui":
        raise ValueError(f"y: expected integer class labels, got dtype {y.dtype}")
    shape = y.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    labels = y.reshape(-1)
    if labels.size and labels.min() < 0:
        raise ValueError(f"y: class labels must be non-negative, got {labels.min()}")
    labels = labels.astype(np.int64)
    if num_classes is None:
        if labels.size == 0:
            raise ValueError("num_classes: must be given when y is empty")
        num_classes = int(labels.max()) + 1
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes: expected a positive integer, got {num_classes!r}")
    num_classes = int(num_classes)
    if labels.size and labels.max() >= num_classes:
        raise ValueError(f"y: label {labels.max()} is out of range for num_classes={num_classes}")
    out = np.zeros((labels.size, num_classes), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out.reshape(shape + (num_classes,))


# ---------------------------------------------------------------------------
# Keras's names: fn.datasets.mnist.load_data(), fn.datasets.fashion_mnist.load_data()
# ---------------------------------------------------------------------------

class _KerasDataset:
    """A data set under Keras's name, with Keras's ``load_data()``."""

    def __init__(self, name, loader):
        self.__name__ = f"fastnn.datasets.{name}"
        self._loader = loader

    def load_data(self, path=None, download=True):
        """``(x_train, y_train), (x_test, y_test)`` as Keras returns them: uint8 images
        (60000, 28, 28) and (10000, 28, 28), uint8 labels (60000,) and (10000,).

        path: a directory with the four IDX files (fastnn's loaders; Keras's ``path`` is a
        cache file name instead); None searches and downloads as the loader documents.
        """
        return self._loader(path=path, download=download)

    def __repr__(self):
        return f"<{self.__name__}: load_data()>"


mnist = _KerasDataset("mnist", load_mnist)
fashion_mnist = _KerasDataset("fashion_mnist", load_fashion_mnist)
