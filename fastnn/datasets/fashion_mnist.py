"""Fashion-MNIST under Keras's name: ``fastnn.datasets.fashion_mnist.load_data()``."""
from fastnn.datasets.loading import load_fashion_mnist


def load_data(path=None, download=True):
    """``(x_train, y_train), (x_test, y_test)`` as Keras returns them: uint8 images
    (60000, 28, 28) and (10000, 28, 28), uint8 labels (60000,) and (10000,).

    path: a directory with the four IDX files (fastnn's loaders; Keras's ``path`` is a
    cache file name instead); None searches and downloads as :func:`load_fashion_mnist`
    documents.
    """
    return load_fashion_mnist(path=path, download=download)
