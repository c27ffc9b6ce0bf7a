"""The same network as scikit-learn's MLPClassifier, one partial_fit call per batch
(solver 'adam', or 'sgd' with momentum 0.9 for the sigmoid network; no L2 penalty, no
shuffling inside a call). Its dtype follows the data (float32 stays float32).

scikit-learn cannot be given initial weights, so a reset makes a new classifier with a
fixed random_state and runs one untimed partial_fit (that first call allocates the
weights and the optimizer state); every repeat then starts from the same state.
"""
import time
import warnings

import numpy as np
from sklearn.neural_network import MLPClassifier


class SklearnMLP:
    def __init__(self, net, dtype, batch, first_x, first_y, seed=0):
        self.net = net
        self.batch = batch
        self.first = (first_x, first_y)
        kw = dict(hidden_layer_sizes=net.hidden, alpha=0.0, batch_size=batch,
                  learning_rate_init=net.lr, shuffle=False, random_state=seed,
                  activation="relu" if net.activation == "relu" else "logistic")
        if net.optimizer == "adam":
            kw.update(solver="adam", epsilon=1e-7)
        else:
            kw.update(solver="sgd", momentum=0.9, nesterovs_momentum=False,
                      learning_rate="constant")
        self.kwargs = kw
        self.classes = np.arange(net.outputs)
        self.reset()

    def reset(self):
        self.clf = MLPClassifier(**self.kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.clf.partial_fit(*self.first, classes=self.classes)

    def train_steps(self, x, y, batch, steps):
        clf = self.clf
        start = time.perf_counter()
        for s in range(steps):
            lo = s * batch
            clf.partial_fit(x[lo:lo + batch], y[lo:lo + batch])
        return time.perf_counter() - start

    def predict(self, x):
        return self.clf.predict_proba(x)
