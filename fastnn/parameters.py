"""The parameter store: every parameter of a model in one flat array, every gradient in
another, and each layer's W and b (and other weights) views into them.

That makes the optimizer one kernel call per step, the finiteness check one pass, and
get/set_weights, saving and the gradient monitor plain slices. The optimizer, saving,
the gradient monitor, the exporters and the data-parallel strategy use a store's public
attributes (``model.parameter_store``), never the model's private fields.

Layout: segment k (one weight array, in ``get_weights()`` order) is
``params[bounds[k]:bounds[k + 1]]``, named ``names[k]`` ("<layer>/<weight>", Keras's
weight paths).
"""
import collections

import numpy as np

from fastnn import _parallel, _random, initializers


class ParameterStore:
    """The flat parameter and gradient buffers of one model (or a nested model's part of
    its enclosing model's buffers).

    params, grads: (size,) arrays of the model's dtype. bounds: (segments + 1,) int64
    offsets of the weight arrays. names: one "<layer>/<weight>" per segment.
    grads_finite(): are all gradients finite (one chunked, multi-threaded pass).
    frozen / frozen_grads: the parameters fit must not change (see ``freeze``).
    """

    def __init__(self, params, grads, bounds, names):
        self.params, self.grads = params, grads
        self.bounds = np.ascontiguousarray(bounds, dtype=np.int64)
        self.names = list(names)
        self.grads_finite = _parallel.ChunkedCheck(self.grads)
        self.frozen = []             # (non-trainable parameters, a place to keep them)
        self.frozen_ranges = []      # their (lo, hi) offsets
        self.frozen_grads = []

    @property
    def size(self):
        """The number of parameters."""
        return int(self.params.shape[0])

    @classmethod
    def allocate(cls, layers, dtype, seed):
        """A store for ``layers`` (built), each layer bound to its views: its weights are
        initialized from ``seed``, except that layers which already have weights of the
        right shapes (a nested model's, or after pop()) keep them."""
        specs = [(layer, name, shape, init) for layer in layers
                 for name, shape, init in layer.param_specs()]
        sizes = [int(np.prod(shape)) for _, _, shape, _ in specs]
        bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        total = int(bounds[-1])
        store = cls(np.zeros(total, dtype), np.zeros(total, dtype), bounds,
                    [f"{layer.name}/{name}" for layer, name, _, _ in specs])
        rng = _random.generator(seed, _random.INIT)
        kept = {id(layer): layer._bound_params for layer in layers
                if layer._bound_params is not None and
                [p.shape for p in layer._bound_params] ==
                [tuple(s) for _, s, _ in layer.param_specs()]}
        views = collections.defaultdict(lambda: ([], []))
        for (layer, name, shape, init), lo, hi in zip(specs, bounds[:-1], bounds[1:]):
            p = store.params[lo:hi].reshape(shape)
            g = store.grads[lo:hi].reshape(shape)
            mine = views[id(layer)]
            if id(layer) in kept:
                p[...] = kept[id(layer)][len(mine[0])]
            else:
                p[...] = initializers.get(init)(rng, shape)
            mine[0].append(p)
            mine[1].append(g)
        for layer in layers:
            if id(layer) in views:
                layer.bind(*views[id(layer)])
                layer._bound_params = views[id(layer)][0]
        return store

    def part(self, first, end):
        """A store of views of segments first..end-1 (a nested model's contiguous part)."""
        lo, hi = int(self.bounds[first]), int(self.bounds[end])
        return ParameterStore(self.params[lo:hi], self.grads[lo:hi],
                              self.bounds[first:end + 1] - lo, self.names[first:end])

    def freeze(self, flags):
        """Hold the segments whose flag is False fixed during training (read at compile,
        as in Keras): frozen layers' weights and moving statistics. Their gradients are
        zeroed in each backward pass and their values and optimizer slots put back after
        each update (so that no optimizer, weight decay and old momentum included, moves
        them, and their slots are as Keras leaves a non-trainable variable's)."""
        ranges = []
        for flag, lo, hi in zip(flags, self.bounds[:-1], self.bounds[1:]):
            if not flag and hi > lo:
                if ranges and ranges[-1][1] == lo:
                    ranges[-1][1] = hi
                else:
                    ranges.append([lo, hi])
        self.frozen_ranges = [(lo, hi) for lo, hi in ranges]
        self.frozen = [(self.params[lo:hi], np.empty(hi - lo, self.params.dtype))
                       for lo, hi in ranges]
        self.frozen_grads = [self.grads[lo:hi] for lo, hi in ranges]
        self._kept = None

    def zero_frozen_gradients(self):
        for g in self.frozen_grads:
            g.fill(0)

    def apply(self, optimizer):
        """optimizer's update of params from grads, frozen parameters and their optimizer
        slots held fixed (as if the optimizer skipped them, which the compiled step in
        fastnn/_core/step.pyx does). Returns the optimizer's count of non-finite weights."""
        if not self.frozen:
            return optimizer.apply(self.params, self.grads)
        kept = self._kept_for(optimizer)
        for view, copy in kept:
            np.copyto(copy, view)
        bad = optimizer.apply(self.params, self.grads)
        for view, copy in kept:
            np.copyto(view, copy)
        return bad

    def _kept_for(self, optimizer):
        """(view, buffer) pairs for the frozen ranges of params and of optimizer's slots,
        the buffers made once per optimizer."""
        cached = getattr(self, "_kept", None)
        if cached is None or cached[0] is not optimizer:
            slots = [a for k, a in optimizer.variables().items()
                     if k != "iterations" and a.shape[0] == self.params.shape[0]]
            pairs = list(self.frozen)
            pairs += [(a[lo:hi], np.empty(hi - lo, a.dtype))
                      for a in slots for lo, hi in self.frozen_ranges]
            cached = self._kept = (optimizer, pairs)
        return cached[1]
