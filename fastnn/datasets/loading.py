"""Loading Fashion-MNIST and MNIST: find the files (or download them), read them and check
that they fit together; the small Fashion-MNIST subset shipped with the package."""
import os

import numpy as np

from fastnn.datasets import locating
from fastnn.datasets.catalog import DATASETS, FILES
from fastnn.datasets.downloading import DownloadError, download_dataset
from fastnn.datasets.idx import read_idx
from fastnn.datasets.locating import describe, files_in, find_dataset, search_locations

SUBSETS = {"small": "fashion-mnist-small"}  # subset= value -> folder in PACKAGE_DATA_DIR


class DatasetNotFoundError(FileNotFoundError):
    """A data set is neither on disk nor downloadable; the message lists every
    place that was searched and how to get the files."""


def _load_dir(directory, num_classes=10):
    """Read the four files in ``directory`` and check they fit together."""
    paths = files_in(directory)
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
            lines.append(f"  - {d}: {describe(d)}")
        lines.append("  (path= was given, so no other place was searched)")
    else:
        lines.append("  - path= argument: not given")
        env = locating.ENV_VAR
        if not os.environ.get(env):
            lines.append(f"  - ${env}/{name} and ${env}: {env} is not set")
        for d in search_locations(name):
            lines.append(f"  - {d}: {describe(d)}")
    if not download:
        lines.append("Downloading was not tried (download=False).")
    else:
        lines.append(f"Downloading into {download_dir} failed: {failure}")
    files = ", ".join(stem + ".gz" for stem in FILES)
    lines.append("To get the files, any one of:")
    if spec.get("apt"):
        lines.append(f"  - apt-get install {spec['apt']}   (Debian/Ubuntu; installs into "
                     f"{os.path.join(locating.SYSTEM_DATA_DIR, name)})")
    lines.append(f"  - download {files} from {spec['urls'][0]} into a directory, then set "
                 f"{locating.ENV_VAR} to that directory or pass path= to it")
    lines.append("  - connect to the network and call again with download=True")
    if name == "fashion-mnist":
        lines.append('  - or use the small subset shipped with fastnn: load_fashion_mnist(subset="small")')
    return "\n".join(lines)


def _load(name, path, download, base_url):
    directory = find_dataset(name, path)
    if directory is not None:
        return _load_dir(directory)
    target = os.fspath(path) if path is not None else locating.default_download_dir(name)
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
    directory = os.path.join(locating.PACKAGE_DATA_DIR, SUBSETS[subset])
    if not all(files_in(directory).values()):
        raise DatasetNotFoundError(
            f"the {subset!r} Fashion-MNIST subset is missing from the fastnn installation "
            f"({directory}: {describe(directory)}); reinstall fastnn")
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

