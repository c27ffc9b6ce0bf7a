"""fastnn on the same network, through its public API only: `fit` (one epoch over the
first steps*batch rows, timed by History's samples_per_second, which covers fit's epoch
loop: shuffle, gather, forward, loss, backward, update) or a `train_on_batch` loop (timed
by the wall clock, so per-call input checks count), and `predict`.
"""
import time

import numpy as np

import fastnn as fn


def build_model(net, weights, dtype):
    """A compiled fastnn Sequential holding the shared initial weights."""
    layers = []
    for i, (k, m) in enumerate(net.layers):
        last = i == len(net.layers) - 1
        act = "softmax" if last else net.activation
        kw = {"input_dim": k} if i == 0 else {}
        layers.append(fn.layers.Dense(m, activation=act, **kw))
    model = fn.Sequential(layers, dtype=dtype)
    if net.optimizer == "adam":
        opt = fn.optimizers.Adam(learning_rate=net.lr)
    else:
        opt = fn.optimizers.SGD(learning_rate=net.lr, momentum=0.9)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=opt)
    model.set_weights([a for wb in weights for a in wb])
    return model


class FastnnMLP:
    """mode 'fit' or 'tob' (train_on_batch loop)."""

    def __init__(self, net, weights, dtype, mode="fit"):
        self.net = net
        self.mode = mode
        self.weights = [a for wb in weights for a in wb]
        self.model = build_model(net, weights, dtype)
        self.zero_state = None

    def reset(self):
        """Weights back to the initial ones, optimizer moments and step count to zero,
        epoch counter to zero (so fit shuffles the same way every repeat). The model's
        buffers stay allocated."""
        model = self.model
        model.set_weights(self.weights)
        opt = model.optimizer
        if self.zero_state is None:
            self.zero_state = {k: (0 if k == "iterations" else np.zeros_like(a))
                               for k, a in opt.variables().items()}
        opt.set_variables(self.zero_state)
        model.epochs_trained = 0

    def train_steps(self, x, y, batch, steps):
        n = steps * batch
        if self.mode == "fit":
            hist = self.model.fit(x[:n], y[:n], batch_size=batch, epochs=1, verbose=0)
            return n / hist.samples_per_second[-1]
        model = self.model
        start = time.perf_counter()
        for s in range(steps):
            lo = s * batch
            model.train_on_batch(x[lo:lo + batch], y[lo:lo + batch])
        return time.perf_counter() - start

    def predict(self, x):
        return self.model.predict(x, batch_size=x.shape[0])
