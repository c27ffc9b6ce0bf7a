"""Where a data set is on disk, or goes when downloaded: the search order of the package
docstring. The locations are module constants read at call time, never cached, so tests
(and unusual systems) can point them elsewhere (``fastnn.datasets.SYSTEM_DATA_DIR = ...``
sets them here)."""
import os

from fastnn.datasets.catalog import FILES, spec

ENV_VAR = "FASTNN_DATA"
SYSTEM_DATA_DIR = "/usr/share/datasets"
USER_DATA_DIR = os.path.join("~", ".fastnn", "datasets")  # expanded at call time
# The files shipped inside the package: fastnn/data, beside this package.
PACKAGE_DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "data")


def files_in(directory):
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


def describe(directory):
    """Why ``directory`` does not hold a data set (for error messages)."""
    if not os.path.isdir(directory):
        return "does not exist"
    missing = [stem for stem, p in files_in(directory).items() if p is None]
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
    spec(name)
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
        if os.path.isdir(directory) and all(files_in(directory).values()):
            return directory
    return None



def default_download_dir(name):
    """Where ``name`` is downloaded when no directory is given."""
    env = os.environ.get(ENV_VAR)
    if env:
        return os.path.join(env, name)
    return os.path.join(os.path.expanduser(USER_DATA_DIR), name)
