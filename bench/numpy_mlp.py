"""The same network written in plain NumPy, as a textbook would: forward, softmax
cross-entropy against integer labels, backward, and Adam (or SGD with momentum), each a
handful of NumPy expressions that allocate their temporaries. No tricks: this is the
baseline a user gets without a library.
"""
import time

import numpy as np


def relu(z):
    return np.maximum(z, 0)


def relu_grad(h):
    return (h > 0).astype(h.dtype)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def sigmoid_grad(h):
    return h * (1 - h)


ACTIVATIONS = {"relu": (relu, relu_grad), "sigmoid": (sigmoid, sigmoid_grad)}


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class NumpyMLP:
    """Dense layers with one hidden activation, a softmax output, sparse cross-entropy."""

    def __init__(self, net, weights, dtype):
        self.net = net
        self.dtype = np.dtype(dtype)
        self.act, self.act_grad = ACTIVATIONS[net.activation]
        self.initial = [(w.copy(), b.copy()) for w, b in weights]
        self.reset()

    def reset(self):
        """Weights back to the initial ones, optimizer state to zero."""
        self.W = [w.copy() for w, _ in self.initial]
        self.b = [b.copy() for _, b in self.initial]
        params = self.W + self.b
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def forward(self, x):
        """Activations of every layer; the last is the softmax probabilities."""
        hs = [x]
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            z = hs[-1] @ W + b
            hs.append(softmax(z) if i == len(self.W) - 1 else self.act(z))
        return hs

    def predict(self, x):
        return self.forward(x)[-1]

    def step(self, x, y):
        """One training step on a batch; returns the mean loss."""
        n = x.shape[0]
        hs = self.forward(x)
        p = hs[-1]
        rows = np.arange(n)
        loss = -np.log(p[rows, y]).mean()
        dz = p.copy()                       # d(loss)/d(logits) = (p - onehot(y)) / n
        dz[rows, y] -= 1
        dz /= n
        dW = [None] * len(self.W)
        db = [None] * len(self.W)
        for i in range(len(self.W) - 1, -1, -1):
            dW[i] = hs[i].T @ dz
            db[i] = dz.sum(axis=0)
            if i > 0:
                dz = (dz @ self.W[i].T) * self.act_grad(hs[i])
        self.update(self.W + self.b, dW + db)
        return loss

    def update(self, params, grads):
        net = self.net
        lr = net.lr
        if net.optimizer == "adam":
            b1, b2, eps = 0.9, 0.999, 1e-7
            self.t += 1
            for p, g, m, v in zip(params, grads, self.m, self.v):
                m[...] = b1 * m + (1 - b1) * g
                v[...] = b2 * v + (1 - b2) * g * g
                m_hat = m / (1 - b1 ** self.t)
                v_hat = v / (1 - b2 ** self.t)
                p -= lr * m_hat / (np.sqrt(v_hat) + eps)
        else:                               # SGD with momentum 0.9 (Keras's form)
            for p, g, vel in zip(params, grads, self.m):
                vel[...] = 0.9 * vel - lr * g
                p += vel

    def train_steps(self, x, y, batch, steps):
        """steps training steps over consecutive batches of (x, y); returns seconds."""
        start = time.perf_counter()
        for s in range(steps):
            lo = s * batch
            self.step(x[lo:lo + batch], y[lo:lo + batch])
        return time.perf_counter() - start
