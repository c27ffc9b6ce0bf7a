"""Coverage-guided fuzzing of the file readers with atheris (libFuzzer), for long runs.

Not collected by pytest (the name does not start with ``test_``); tests/test_fuzz.py is the
seeded, bounded version that runs in CI. Same contract as there: ``fn.load_model`` and
``load_weights`` raise only ``fn.ModelFileError`` naming the file, ``read_idx`` only
``ValueError`` naming the file, and a file that loads is valid (``check_loaded``,
``check_array``). Anything else is a crash that atheris reports, with the input saved as
``crash-<sha1>`` to replay (pass the file instead of a corpus directory).

    pip install atheris
    python tests/fuzz_atheris.py model corpus-model/ -max_total_time=3600
    python tests/fuzz_atheris.py weights corpus-weights/ -runs=100000
    python tests/fuzz_atheris.py idx corpus-idx/ -max_total_time=600

The corpus directory is seeded with tests/test_fuzz.py's valid files when it is empty;
everything after the target name goes to libFuzzer (e.g. ``-help=1``).
"""
import os
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["fastnn", "zipfile", "json", "gzip", "zlib"]):
    import fastnn as fn
    from fastnn import datasets as ds

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_fuzz as tf  # noqa: E402 -- after the instrumented imports

WORK = Path(tempfile.mkdtemp(prefix="fastnn-atheris-"))
FILE = WORK / "input"
WEIGHTS_NET = ("all-kinds-sgd", "float32")


def seed_corpus(target, corpus):
    """Write the valid base files of tests/test_fuzz.py into an empty corpus directory."""
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    if target == "idx":
        for i, (dtype, shape, gz) in enumerate(tf.IDX_BASES):
            (corpus / f"seed-{i}").write_bytes(tf._idx_base(dtype, shape, gz, WORK))
        return
    for net, dtype, kind in tf.BASES:
        if target == "weights" and (net, dtype) != WEIGHTS_NET:
            continue
        model = tf.build(net, dtype)
        if model.compiled:
            tf._train_briefly(model)
        path = corpus / f"seed-{net}-{dtype}-{kind}"
        (model.save if kind == "model" else model.save_weights)(str(path) + ".fnn")
        os.replace(str(path) + ".fnn", path)


def expect(error, allowed):
    if not isinstance(error, allowed) or str(FILE) not in str(error):
        raise error


def model_file(data):
    FILE.write_bytes(data)
    try:
        model = fn.load_model(FILE)
    except fn.ModelFileError as e:
        return expect(e, fn.ModelFileError)
    tf.check_loaded(model, FILE)


def weights_file(data):
    FILE.write_bytes(data)
    model = tf.build(*WEIGHTS_NET, seed=5)
    try:
        model.load_weights(FILE)
    except fn.ModelFileError as e:
        return expect(e, fn.ModelFileError)
    tf.check_loaded(model, FILE)


def idx_file(data):
    FILE.write_bytes(data)
    try:
        array = ds.read_idx(FILE)
    except ValueError as e:
        return expect(e, ValueError)
    tf.check_array(array, FILE)


TARGETS = {"model": model_file, "weights": weights_file, "idx": idx_file}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [corpus dir] [libFuzzer "
                 f"options]")
    target = sys.argv.pop(1)
    corpus = [a for a in sys.argv[1:] if not a.startswith("-")]
    if corpus and not Path(corpus[0]).is_file():
        seed_corpus(target, Path(corpus[0]))
    atheris.Setup(sys.argv, TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
