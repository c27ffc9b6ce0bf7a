"""fastnn: fast CPU training of fully-connected neural networks, Keras-style.

    import fastnn as fn
    model = fn.Sequential([fn.layers.Dense(128, activation="relu", input_dim=784),
                           fn.layers.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=128, epochs=10, validation_split=0.1)
"""
import os as _os

# Idle OpenBLAS threads busy-wait for ~0.1 s after every BLAS call by default, competing
# for the cores with fastnn's own threads, which run the optimizer update right after the
# backward pass. Letting them sleep at once (2^4 cycles) made a 784-512-512-10 Adam step
# 28% faster at batch 1, 15% at 8, 8% at 32, and changed nothing at 128-512 or for
# predict. Only a default: a value the user set wins, and it only takes effect if SciPy's
# OpenBLAS is not loaded yet (see fastnn/_threads.py).
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from fastnn import (activations, callbacks, datasets, initializers, layers, losses, metrics,
                    optimizers, plot, recipe, regularizers, schedules, utils)
from fastnn import distributed   # data-parallel fit over MPI (mpi4py imported on use)
from fastnn._random import set_seed
from fastnn._threads import get_num_threads, set_num_threads
from fastnn.layers import Input
from fastnn.models import Sequential
from fastnn.saving import ModelFileError, load_model

optimizers.schedules = schedules

__version__ = "0.1.0"

__all__ = ["Sequential", "Input", "load_model", "ModelFileError", "activations", "callbacks", "datasets", "initializers", "layers",
           "losses", "metrics", "optimizers", "plot", "recipe", "regularizers", "schedules",
           "utils", "distributed", "set_seed",
           "set_num_threads", "get_num_threads", "__version__"]
