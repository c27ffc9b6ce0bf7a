"""What the data sets are: their files, where they are published and what each file must
hash to, and the class names of Fashion-MNIST. Data only; the jobs live beside it (idx,
locating, downloading, loading)."""

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

# Data files (shipped with the package, or downloaded into a shared FASTNN_DATA)
# must be world-readable, whatever the umask.
FILE_MODE = 0o644

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


def spec(name):
    """``DATASETS[name]``; ValueError naming the known data sets for any other name."""
    if name not in DATASETS:
        raise ValueError(f"name: unknown data set {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[name]
