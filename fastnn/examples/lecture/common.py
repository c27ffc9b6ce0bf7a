"""What every lecture experiment shares: the result it returns (numbers, tables, figures,
the slide's claim and the sentence measured from the numbers), the data, the networks,
and turning a matplotlib figure into PNG bytes.

matplotlib is optional (fastnn[plot]): it is imported only when a figure is drawn, through
fastnn.plot's lazy import (Agg backend, nothing on screen).
"""
import io
import math
import time
from dataclasses import dataclass

import numpy as np

import fastnn as fn
from fastnn.examples import hello_world


@dataclass
class Table:
    """A table of numbers: ``rows`` are lists of str/int/float, one per line."""
    caption: str
    columns: list
    rows: list


@dataclass
class Figure:
    """One figure: its file stem, everything it draws (JSON-able) and its PNG bytes
    (None when matplotlib is missing)."""
    name: str
    title: str
    data: dict
    png: bytes = None


@dataclass
class Result:
    """What an experiment returns.

    claim: what the slide says; measured: what this run found, written from ``numbers``;
    numbers: the measurements (JSON-able); settings: the sizes and hyper-parameters used;
    plot_note: why there are no figures, when there are none.
    """
    name: str
    title: str
    claim: str
    measured: str
    numbers: dict
    tables: list
    figures: list
    settings: dict
    seconds: float = 0.0
    plot_note: str = None


@dataclass
class Data:
    """Fashion-MNIST as (n, 784) float32 images in [0, 1] and int64 labels."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    label: str

    def train(self, n=None, offset=0):
        """The training images [offset, offset + n) (all from offset when n is None)."""
        stop = None if n is None else offset + n
        if stop is not None and stop > len(self.x_train):
            raise ValueError(f"the training set has {len(self.x_train)} images; asked for "
                             f"{offset} + {n}")
        return self.x_train[offset:stop], self.y_train[offset:stop]

    def test(self, n=None):
        return self.x_test[:n], self.y_test[:n]


_loaded = {}


def load_data(which="small"):
    """Fashion-MNIST: 'small' (the subset shipped inside fastnn: 6,000 + 1,000 images),
    'full' (the installed full set; an error if it is not installed) or 'auto' (full when
    installed). Loaded once per process."""
    if which not in ("small", "full", "auto"):
        raise ValueError(f"load_data: which must be 'small', 'full' or 'auto', got {which!r}")
    if which not in _loaded:
        xtr, ytr, xte, yte, label = hello_world.load(which, None, False)
        _loaded[which] = Data(xtr, ytr, xte, yte, label)
    return _loaded[which]


def data_or_default(data):
    return load_data("small") if data is None else data


def hidden_layer(kind, width, first, regularizer=None):
    """One hidden layer: kind is an activation name or 'maxout' (2 pieces)."""
    kw = {"input_dim": 784} if first else {}
    kw["kernel_regularizer"] = regularizer
    if kind == "maxout":
        return fn.layers.Maxout(width, pieces=2, **kw)
    init = "he_uniform" if kind == "relu" else "glorot_uniform"
    return fn.layers.Dense(width, activation=kind, kernel_initializer=init, **kw)


def classifier(kind, widths, dropout=0.0, regularizer=None):
    """784 -> widths... -> 10 softmax, with Dropout(dropout) after each hidden layer."""
    layers = []
    for i, width in enumerate(widths):
        layers.append(hidden_layer(kind, width, first=i == 0, regularizer=regularizer))
        if dropout > 0:
            layers.append(fn.layers.Dropout(dropout))
    layers.append(fn.layers.Dense(10, activation="softmax"))
    return fn.Sequential(layers)


def compiled(model, optimizer):
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer,
                  metrics=["accuracy"])
    return model


def first_to_last(grad_norm):
    """The first layer's gradient norm over the last layer's ({layer: norm}, in order)."""
    norms = list(grad_norm.values())
    return norms[0] / norms[-1] if norms[-1] != 0 else math.inf


def pyplot():
    """matplotlib.pyplot (Agg) or None with the reason: (plt, None) or (None, why)."""
    try:
        return fn.plot._pyplot(), None
    except ImportError as e:
        return None, str(e)


def png_bytes(fig):
    """The figure as PNG bytes; the figure is closed."""
    plt = fn.plot._pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def draw(figures, plot, drawers):
    """Render each Figure with its drawer(plt, data) -> matplotlib figure, if plot and
    matplotlib allow. Returns the reason there are no images, or None."""
    if not plot:
        return "plots were switched off"
    plt, why = pyplot()
    if plt is None:
        return why
    for figure, drawer in zip(figures, drawers):
        figure.png = png_bytes(drawer(plt, figure.data))
    return None


class Timer:
    """with Timer() as t: ...; t.seconds"""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def percent(x):
    return f"{100 * x:.1f}%"


def than(a, b, less="smaller", more="larger"):
    """'smaller' / 'larger' / 'the same' for a compared with b (for measured sentences)."""
    return less if a < b else more if a > b else "the same"
