"""Datasets: Fashion-MNIST and MNIST loaders, an IDX file reader/writer and
small preprocessing helpers (``prepare_images``, ``to_categorical``).

Only numpy, the standard library and fastnn._atomic (the shared atomic file
writer, standard library only) are used here, so this package can be imported
(and tested) without the compiled engine. One module per job:

- ``catalog``: the data sets, their files, mirrors and checksums;
- ``idx``: the IDX file codec (``read_idx``, ``write_idx``);
- ``locating``: where data sets are looked for (``search_locations``, ``find_dataset``);
- ``downloading``: fetching and checking files (``download_dataset``);
- ``loading``: ``load_fashion_mnist``, ``load_mnist``;
- ``preprocessing``: ``prepare_images``, ``to_categorical``;
- ``mnist``, ``fashion_mnist``: Keras's names (``fastnn.datasets.mnist.load_data()``).

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
import sys
import types

from fastnn.datasets import catalog, downloading, idx, loading, locating
from fastnn.datasets import fashion_mnist, mnist  # noqa: F401  (Keras's namespaces)
from fastnn.datasets.catalog import DATASETS, FASHION_MNIST_CLASSES, FILES  # noqa: F401
from fastnn.datasets.downloading import (DOWNLOAD_TIMEOUT, MAX_DOWNLOAD_BYTES,  # noqa: F401
                                         DownloadError, download_dataset)
from fastnn.datasets.idx import MAX_IDX_BYTES, read_idx, write_idx  # noqa: F401
from fastnn.datasets.loading import (SUBSETS, DatasetNotFoundError,  # noqa: F401
                                     load_fashion_mnist, load_mnist)
from fastnn.datasets.locating import (ENV_VAR, PACKAGE_DATA_DIR,  # noqa: F401
                                      SYSTEM_DATA_DIR, USER_DATA_DIR, find_dataset,
                                      search_locations)
from fastnn.datasets.preprocessing import prepare_images, to_categorical  # noqa: F401

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

# The settings, by the module that reads them (at call time). Assigning one here
# (``fastnn.datasets.SYSTEM_DATA_DIR = ...``, or a test's monkeypatch.setattr) assigns it
# there too, as when this package was one module.
_SETTINGS = {name: module for module, names in (
    (catalog, ("DATASETS", "FILES", "FASHION_MNIST_CLASSES")),
    (idx, ("MAX_IDX_BYTES",)),
    (locating, ("ENV_VAR", "SYSTEM_DATA_DIR", "USER_DATA_DIR", "PACKAGE_DATA_DIR")),
    (downloading, ("MAX_DOWNLOAD_BYTES", "DOWNLOAD_TIMEOUT")),
    (loading, ("SUBSETS",)),
) for name in names}


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        if name in _SETTINGS:
            setattr(_SETTINGS[name], name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
