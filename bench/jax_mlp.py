"""The same network in JAX + optax, in JAX's best case: the whole training step
(forward, softmax cross-entropy on integer labels, backward, optimizer update) is one
function under `jax.jit` with the parameters and optimizer state donated
(`donate_argnums`, so XLA updates them in place), and the batches are made into device
arrays before the timed loop. Predictions run a jitted forward (softmax included) on a
device array made beforehand and bring the result back as a NumPy array.

Adam is optax.adam(lr, b1=0.9, b2=0.999, eps=1e-7) (Keras's and fastnn's epsilon, added
to sqrt(v_hat) as they do); SGD with momentum 0.9 is optax.sgd(lr, momentum=0.9), the
same trajectory as Keras's form for a constant learning rate.

Threads: JAX's CPU thread pools are sized when jax is imported; worker.py calls
limit_cpus before the import. JAX and optax are comparisons only, never
dependencies of fastnn: `pip install jax jaxlib optax`.
"""
import time

import numpy as np


def limit_cpus(threads):
    """Run this process (JAX's threads included) on `threads` of the CPUs it may use.
    JAX sizes its CPU thread pools from the affinity mask when it is imported, and it
    has no thread-count setting (XLA_FLAGS' intra_op_parallelism_threads=1 was measured
    here not to limit them: jax-ml/jax#1539 recommends the affinity mask). Must run
    before `import jax`; with all usable CPUs it changes nothing."""
    import os
    cpus = sorted(os.sched_getaffinity(0))
    if threads < len(cpus):
        os.sched_setaffinity(0, cpus[:threads])


class JaxMLP:
    def __init__(self, net, weights, dtype):
        import jax
        import jax.numpy as jnp
        import optax

        if np.dtype(dtype) == np.float64:
            jax.config.update("jax_enable_x64", True)
        self.jax, self.jnp = jax, jnp
        self.net = net
        self.dtype = np.dtype(dtype)
        self.initial = [(np.array(w), np.array(b)) for w, b in weights]
        act = jax.nn.relu if net.activation == "relu" else jax.nn.sigmoid
        if net.optimizer == "adam":
            self.opt = optax.adam(net.lr, b1=0.9, b2=0.999, eps=1e-7)
        else:
            self.opt = optax.sgd(net.lr, momentum=0.9)
        opt = self.opt

        def logits(params, x):
            h = x
            for w, b in params[:-1]:
                h = act(h @ w + b)
            w, b = params[-1]
            return h @ w + b

        def loss(params, x, y):
            return optax.softmax_cross_entropy_with_integer_labels(
                logits(params, x), y).mean()

        def step(params, state, x, y):
            value, grads = jax.value_and_grad(loss)(params, x, y)
            updates, state = opt.update(grads, state, params)
            return optax.apply_updates(params, updates), state, value

        self.step = jax.jit(step, donate_argnums=(0, 1))
        self.forward = jax.jit(lambda params, x: jax.nn.softmax(logits(params, x)))
        self.batches = {}             # (data, batch size) -> [(x, y) device arrays]
        self.reset()

    def reset(self):
        """Fresh device copies of the initial weights (the donated ones are consumed by
        the step) and a zero optimizer state (moments and step count)."""
        jax = self.jax
        self.params = [(jax.device_put(w.copy()), jax.device_put(b.copy()))
                       for w, b in self.initial]
        self.state = self.opt.init(self.params)
        jax.block_until_ready((self.params, self.state))

    def _device_batches(self, x, y, batch, steps):
        """The first `steps` consecutive batches of (x, y) as device arrays (made once,
        extended when more are asked for; never inside the timed loop)."""
        # keyed by the arrays' identity too: the suite passes the same data every time
        have = self.batches.setdefault((id(x), id(y), batch), [])
        put = self.jax.device_put
        for s in range(len(have), steps):
            lo = s * batch
            have.append((put(x[lo:lo + batch]), put(y[lo:lo + batch])))
        self.jax.block_until_ready(have)
        return have

    def train_steps(self, x, y, batch, steps):
        """steps training steps over consecutive batches; returns seconds (until the
        last step's results are ready)."""
        batches = self._device_batches(x, y, batch, steps)
        step, params, state = self.step, self.params, self.state
        start = time.perf_counter()
        for s in range(steps):
            xb, yb = batches[s]
            params, state, _ = step(params, state, xb, yb)
        self.jax.block_until_ready((params, state))
        seconds = time.perf_counter() - start
        self.params, self.state = params, state
        return seconds

    def predictor(self, x):
        """A call predicting x (put on the device beforehand), returning NumPy."""
        xd = self.jax.device_put(x)
        forward, params = self.forward, self.params
        return lambda: np.asarray(forward(params, xd))

    def predict(self, x):
        return self.predictor(x)()
