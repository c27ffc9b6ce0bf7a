"""fastnn: fast CPU training of fully-connected neural networks, Keras-style.

    import fastnn as fn
    model = fn.Sequential([fn.layers.Dense(128, activation="relu", input_dim=784),
                           fn.layers.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=128, epochs=10, validation_split=0.1)
"""
from fastnn import (activations, callbacks, datasets, initializers, layers, losses, metrics,
                    optimizers, plot, recipe, regularizers, schedules, utils)
from fastnn._random import set_seed
from fastnn._threads import get_num_threads, set_num_threads
from fastnn.models import Sequential
from fastnn.saving import ModelFileError, load_model

optimizers.schedules = schedules

__version__ = "0.1.0"

__all__ = ["Sequential", "load_model", "ModelFileError", "activations", "callbacks", "datasets", "initializers", "layers",
           "losses", "metrics", "optimizers", "plot", "recipe", "regularizers", "schedules",
           "utils", "set_seed",
           "set_num_threads", "get_num_threads", "__version__"]
