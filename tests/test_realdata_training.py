"""Training on real Fashion-MNIST (Debian's dataset-fashion-mnist, which .ci/run installs).

A short run on a subset must reach a stated accuracy: 784-256-10 ReLU, Adam, 3 epochs on
the first 12,000 training images, tested on the first 2,000 test images. Published MLPs
reach 0.87-0.88 on the full set; this short run measured 0.84-0.85 here, so 0.82 leaves
room for seeds and BLAS rounding while still failing on any real regression.
"""
import os

import numpy as np
import pytest

import fastnn as fn
from fastnn import datasets

SYSTEM_FASHION = "/usr/share/datasets/fashion-mnist"
pytestmark = [pytest.mark.realdata, pytest.mark.skipif(
    not os.path.isdir(SYSTEM_FASHION),
    reason=f"{SYSTEM_FASHION} not found (apt-get install dataset-fashion-mnist)")]


def test_short_training_on_real_fashion_mnist_reaches_stated_accuracy():
    (xtr, ytr), (xte, yte) = datasets.load_fashion_mnist(path=SYSTEM_FASHION,
                                                         download=False)
    xtr, xte = datasets.prepare_images(xtr[:12000]), datasets.prepare_images(xte[:2000])
    ytr, yte = ytr[:12000].astype(np.int64), yte[:2000].astype(np.int64)
    fn.set_seed(0)
    model = fn.Sequential([
        fn.layers.Dense(256, activation="relu", kernel_initializer="he_uniform",
                        input_dim=784),
        fn.layers.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy"])
    history = model.fit(xtr, ytr, batch_size=64, epochs=3, verbose=0,
                        validation_split=0.1)
    loss, acc = model.evaluate(xte, yte)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert acc >= 0.82, acc


def test_hello_world_main_job_runs_on_the_real_set(capsys):
    from fastnn.examples import hello_world
    acc = hello_world.main(["--epochs", "1", "--hidden", "128", "--verbose", "0"])
    out = capsys.readouterr().out
    assert "the full set" in out and "test accuracy" in out and "samples/s" in out
    assert acc > 0.8
