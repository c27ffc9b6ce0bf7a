"""Downloading a data set's files: mirrors tried in order, sizes bounded, every file checked
against its sums before it is renamed into place, a progress bar on stderr."""
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

from fastnn import _atomic
from fastnn.datasets import locating
from fastnn.datasets import catalog
from fastnn.datasets.catalog import FILE_MODE, FILES

# Limits that keep a hostile server from exhausting memory, disk or patience.
MAX_DOWNLOAD_BYTES = 128 << 20   # largest file download_dataset accepts
DOWNLOAD_TIMEOUT = 15.0          # seconds, per connect/read on the socket


class DownloadError(OSError):
    """Downloading a data set file failed (network error, HTTP error, size
    limit or checksum mismatch). Nothing is left behind in the target
    directory for the failed file."""


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
    spec = catalog.spec(name)
    directory = os.fspath(directory) if directory is not None else locating.default_download_dir(name)
    urls = _base_urls(spec, base_url)
    if not urls:
        raise ValueError("base_url: no URL to download from")
    created = _make_dirs(directory)
    try:
        present = locating.files_in(directory)
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
    with _atomic.atomic_write(dest, mode=FILE_MODE) as out:
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

