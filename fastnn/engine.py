"""The training machinery: the per-batch-size workspaces and THE step.

One training step, as in the lecture:
  gather the minibatch -> forward (each layer keeps what its backward needs) ->
  loss and dL/d(output) in one kernel -> backward in reverse (dW, db, dx, regularization
  in the same pass) -> finiteness check -> one fused optimizer update of all parameters.
``train_step`` is that step (the gather is the data adapter's, into the workspace); fit,
train_on_batch, gradients (and so utils.check_gradients), fastnn.sklearn and the
data-parallel strategy all call it. For the common models (dense, dropout, activation
and flatten layers under a softmax cross-entropy, any optimizer without clipnorm) the
whole step is ONE call into fastnn/_core (step.pyx's CompiledStep, built once per batch
size); otherwise every arrow is a handful of calls into fastnn/_core, each doing real
work with the GIL released. Both give the same bits, but for the compiled step's fused
update of small batches, which matches to rounding (tests/test_compiled_step.py). The
arrays a step touches (batch, activations, gradients) are made once per batch size and
reused.

The functions take the model (a built, compiled ``Sequential``) as their first argument
and use its layers, loss, optimizer and ``parameter_store``; this module never imports
fastnn.models (the model imports it).
"""
import collections

import numpy as np

from fastnn import layers as _layers
from fastnn import losses as _losses
from fastnn import optimizers as _optimizers
from fastnn._core import optim as _optim
from fastnn._core import random as _rand
from fastnn._core import step as _compiled

_MAX_CACHED_SIZES = 4   # batch sizes whose buffers are kept (a fit needs at most 2)


class Workspace:
    """The buffers for one batch size n: each layer's, plus the gathered minibatch (x, y,
    sample weights) and the loss gradient when a loss is computed."""

    def __init__(self, model, n, training, with_loss):
        dt = model.dtype
        self.n = n
        self.version = _version(model)
        self.bufs = [layer.make_buffers(n, dt, training, need_grad_x=i > 0)
                     for i, layer in enumerate(model.layers)]
        self.inputs = [None] * len(model.layers)
        if training:
            self.x = np.empty((n, model.input_dim), dt)
            self.sw = np.empty(n, dt)
            if model.loss.target == "sparse":
                self.y = np.empty(n, np.int64)
            else:
                self.y = np.empty((n, model.output_dim), dt)
        if with_loss:
            self.grad = np.empty((n, model.output_dim), dt)
        self.compiled = False        # the CompiledStep, built on first use (see compiled_step)
        self.compiled_route = None
        self.compiled_forward = False     # the CompiledForward (see predict_forward)

    def rows(self, n):
        """A workspace for a batch of n < self.n rows made of views of this one."""
        view = object.__new__(Workspace)
        view.__dict__.update({k: _first_rows(v, self.n, n) for k, v in vars(self).items()})
        view.n = n
        view.compiled = view.compiled_forward = False
        view.inputs = [None] * len(self.inputs)
        view.bufs = []
        for buf in self.bufs:
            copy = object.__new__(type(buf))
            copy.__dict__.update({k: _first_rows(v, self.n, n) for k, v in vars(buf).items()})
            view.bufs.append(copy)
        return view


def _first_rows(value, full, n):
    """value[:n] for batch-sized arrays (first dimension == full), value otherwise."""
    if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == full:
        return value[:n]
    return value


def _version(model):
    """What a workspace (and the compiled passes it holds) was made for: the model's
    structure and compile (model._version) and its layers' kernel settings."""
    return model._version, _layers.config_generation()


def train_workspace(model, n):
    """The training workspace for batches of n rows (cached per batch size)."""
    ws = model._train_cache.get(n)
    version = _version(model)
    if ws is None or ws.version != version:
        larger = [w for k, w in model._train_cache.items()
                  if k > n and w.version == version]
        if larger:
            # The last, smaller batch of an epoch: the first n rows of the full
            # batch's buffers (row slices of C-contiguous arrays are C-contiguous).
            ws = larger[0].rows(n)
        else:
            ws = Workspace(model, n, training=True, with_loss=True)
        model._train_cache[n] = ws
        while len(model._train_cache) > _MAX_CACHED_SIZES:
            model._train_cache.popitem(last=False)
    return ws


def inference_workspace(model, n, with_loss):
    """This thread's inference workspace for batches of n rows (with the loss
    gradient's buffer when with_loss: evaluate)."""
    # One cache per thread: predict/evaluate may run in several threads at once.
    cache = getattr(model._local, "cache", None)
    if cache is None:
        cache = model._local.cache = collections.OrderedDict()
    key = (n, with_loss)
    ws = cache.get(key)
    if ws is None or ws.version != _version(model):
        ws = Workspace(model, n, training=False, with_loss=with_loss)
        cache[key] = ws
        while len(cache) > _MAX_CACHED_SIZES:
            cache.popitem(last=False)
    return ws


def forward(model, x, ws, training, epoch=0, step=0, row_offset=0):
    """The network's output for x (n, input_dim), each layer's buffers in ws.
    epoch and step key the dropout masks (training mode). row_offset: the position of x's first row in its batch (a data-parallel rank's
    share starts inside the batch). Dropout's mask entry (i, j) of a batch is keyed by
    key + i·width + j, so starting the key at row_offset·width gives a share the very
    masks its rows have in the whole batch (mod 2^64, as the kernel's counter)."""
    h = x
    keys = {}
    if training:
        for i, layer in model._dropout_layers:
            seed = model.seed if layer.seed is None else layer.seed
            keys[i] = (_rand.mix_key(seed, epoch, step, i) +
                       row_offset * layer.units) % 2**64
    for i, layer in enumerate(model.layers):
        ws.inputs[i] = h
        h = layer.forward(h, ws.bufs[i], training, keys.get(i, 0))
    return h


def batch_loss(model, ws, p, y, sw, n):
    """Σ wᵢ lossᵢ of the batch; writes dL/d(output) (or dL/dz, fused) into ws.grad."""
    z = model.layers[-1].logits(ws.inputs[-1], ws.bufs[-1]) if model._fused else None
    return model.loss.compute(p, z, y, sw, ws.grad, 1.0 / n)


def backward(model, ws):
    """Backward pass in reverse; fills the flat gradient. Returns the penalty."""
    g = ws.grad
    penalty = 0.0
    last = len(model.layers) - 1
    for i in range(last, -1, -1):
        layer = model.layers[i]
        g = layer.backward(ws.inputs[i], ws.bufs[i], g, i > 0,
                           grad_is_dz=(i == last and model._fused))
        penalty += ws.bufs[i].penalty
    model.parameter_store.zero_frozen_gradients()
    model._step_ws = ws
    return penalty


def apply_update(model):
    """The optimizer step of fit and train_on_batch, non-trainable parameters held
    fixed, then the step's state updates (batch normalization's moving statistics, from
    the statistics of the batch just trained on). Returns the optimizer's count of
    non-finite weights."""
    bad = model.parameter_store.apply(model.optimizer)
    for i, layer in model._stateful:
        layer.update_state(model._step_ws.bufs[i])
    return bad



# -------------------------------------------------------------- the compiled step --
_COMPILED_KINDS = {_layers.Dense: _compiled.LayerKind.DENSE, _layers.Dropout: _compiled.LayerKind.DROPOUT,
                   _layers.Activation: _compiled.LayerKind.ACTIVATION,
                   _layers.Softmax: _compiled.LayerKind.ACTIVATION, _layers.Flatten: _compiled.LayerKind.PASS}
_COMPILED_LOSSES = (_losses.CategoricalCrossentropy, _losses.SparseCategoricalCrossentropy)


_COMPILED_OPTIMIZERS = (_optimizers.SGD, _optimizers.Adagrad, _optimizers.RMSprop,
                        _optimizers.Adam, _optimizers.AdamW, _optimizers.Nadam,
                        _optimizers.Adamax, _optimizers.Adadelta, _optimizers.Lion)


def compiled_step(model, ws):
    """The training workspace ws's CompiledStep (fastnn/_core/step.pyx: the whole step
    in one call), built on first use; None when the model, its loss or its optimizer
    has a part only the Python step below runs. The settings that decide it and may
    change without a recompile (from_logits, clipnorm) are looked at every step."""
    key = _route(model)
    if ws.compiled is False or ws.compiled_route != key:
        ws.compiled = _build_compiled_step(model, ws)
        ws.compiled_route = key
    return ws.compiled


def _route(model):
    opt = model.optimizer
    return (getattr(model.loss, "from_logits", None), opt.clipnorm is None,
            opt.global_clipnorm is None)


def _compiles(model):
    """Can the compiled step run this model's step: dense, dropout, activation and
    flatten layers ending in a dense or activation layer, a softmax cross-entropy (fused
    with the last softmax, or from logits), an optimizer whose rule can be prepared
    (fastnn's own: a subclass may change what apply does) and no gradient clipping by
    norm."""
    loss, opt = model.loss, model.optimizer
    return (type(loss) in _COMPILED_LOSSES and (model._fused or loss.from_logits)
            and _layers_compile(model) and not model._stateful
            and opt.clipnorm is None and opt.global_clipnorm is None
            and type(opt) in _COMPILED_OPTIMIZERS)


def _layers_compile(model):
    """Are the model's layers all of the kinds step.pyx runs, the last one dense or an
    activation (whose buffer is then the output)?"""
    return (all(type(layer) in _COMPILED_KINDS for layer in model.layers)
            and _COMPILED_KINDS[type(model.layers[-1])] in (_compiled.LayerKind.DENSE,
                                                            _compiled.LayerKind.ACTIVATION))


def _layer_specs(model, ws, training):
    """step.pyx's description of each layer: (kind, input width, output width,
    activation code, alpha, W, b, dW, db, out, z, grad_x, dropout mask, use_bias), the
    arrays of the model's store and of ws (the gradients only in training)."""
    specs = []
    for layer, buf in zip(model.layers, ws.bufs):
        kind = _COMPILED_KINDS[type(layer)]
        if kind == _compiled.LayerKind.DENSE:
            specs.append((kind, layer.input_dim, layer.units, layer._code, layer.alpha,
                          layer.W, layer.b, layer.dW if training else None,
                          layer.db if training else None, buf.out, buf.z,
                          buf.grad_x if training else None, None, layer.use_bias))
        elif kind == _compiled.LayerKind.DROPOUT:
            specs.append((kind, layer.units, layer.units, 0, 0.0, None, None, None, None,
                          buf.out if training else None, None, None,
                          buf.mask if training else None, False))
        elif kind == _compiled.LayerKind.ACTIVATION:
            specs.append((kind, layer.units, layer.units, layer._code, layer.alpha, None,
                          None, None, None, buf.out, None, None, None, False))
        else:
            specs.append((kind, layer.units, layer.units, 0, 0.0) + (None,) * 8 + (False,))
    return specs


def compiled_forward(model, ws):
    """The inference workspace ws's CompiledForward (step.pyx: predict's forward pass in
    one call), built on first use; None when a layer is of a kind only the layer-by-layer
    forward runs."""
    if ws.compiled_forward is False:
        ws.compiled_forward = (
            _compiled.CompiledForward(_layer_specs(model, ws, False), ws.n,
                                      model.input_dim, model.output_dim, model.dtype,
                                      ws.bufs[-1].out)
            if _layers_compile(model) else None)
    return ws.compiled_forward


def forward_in_one_call(model, x, ws):
    """The inference outputs for x in one call into _core (the output buffer, (n,
    output_dim)), or None: the layers do not compile, or x is not a C-contiguous,
    finite array of the model's dtype and ws's shape (CompiledForward.run checks)."""
    compiled = compiled_forward(model, ws)
    return compiled.run(x) if compiled is not None else None


def predict_forward(model, x, ws):
    """forward(model, x, ws, training=False) for predict's loop (x checked and converted):
    one call into _core when the layers compile, else layer by layer. Returns the output
    buffer (n, output_dim)."""
    out = forward_in_one_call(model, x, ws)
    return out if out is not None else forward(model, x, ws, False)


def _build_compiled_step(model, ws):
    if not _compiles(model):
        return None
    specs = _layer_specs(model, ws, True)
    store = model.parameter_store
    last = model.layers[-1]
    step = _compiled.CompiledStep(
        specs, ws.n, model.input_dim, model.output_dim, model.dtype, model._fused,
        model._fused and _COMPILED_KINDS[type(last)] == _compiled.LayerKind.ACTIVATION,
        model.loss.target == "sparse", getattr(model.loss, "label_smoothing", 0.0),
        ws.grad, store.grads, ws.bufs[-1].out, store.frozen_ranges)
    if not step.chunked:        # more trainable ranges than the threads' chunks
        return None
    step.update = _optim.Update()
    # what a step reads from Python because it may change between steps
    step.dense = [(i, layer) for i, layer in enumerate(model.layers)
                  if type(layer) is _layers.Dense]
    step.loss = model.loss
    step.dropout = [(i, layer) for i, layer in enumerate(model.layers)
                    if type(layer) is _layers.Dropout]
    return step


def _compiled_train_step(model, step, x, y, sw, epoch, batch, metrics):
    """train_step through the CompiledStep ``step``: the same bits as the Python path."""
    for i, layer in step.dense:
        step.set_layer(i, 0.0, 0, *layer._backward_l1_l2())
    step.set_label_smoothing(getattr(step.loss, "label_smoothing", 0.0))
    for i, layer in step.dropout:
        step.set_layer(i, layer.rate, model.seed if layer.seed is None else layer.seed,
                       0.0, 0.0, 0.0, 0.0)
    store, optimizer = model.parameter_store, model.optimizer
    optimizer.prepare(step.update, store.params, store.grads)
    loss_sum, penalty, status, _ = step.run(x, y, sw, epoch, batch, 1.0 / x.shape[0],
                                            step.update)
    for metric in metrics:
        metric.update_batch(step.output, y)
    if status != "non-finite":
        optimizer.commit()
    return loss_sum / x.shape[0], penalty, status


def train_step(model, ws, x, y, sw, epoch, step, n=None, row_offset=0, metrics=(),
               reduce=None, update=True):
    """THE training step on one batch: forward (training mode) -> loss -> the metrics'
    update -> backward (+ regularization) -> [reduce] -> finiteness -> optimizer update.

    x (rows, input_dim), y and sw (rows,) or empty: C-contiguous, of the model's dtype,
    already checked (x is usually ws.x, gathered by the data adapter); ws from
    train_workspace(rows), or None for a data-parallel rank with no rows of this batch
    (its gradient is zero). epoch and step key the dropout masks. n: the rows the loss
    is the mean over (default: x's; a data-parallel rank's share is scaled by the global
    batch's, so that the ranks' gradients sum to its mean). row_offset: the position of
    x's first row in the batch (see forward). metrics: updated with the batch's outputs.
    reduce(model, loss_sum, penalty) -> (loss_sum, penalty): a data-parallel strategy's
    sum over the ranks, after the backward pass (in place on the flat gradient).
    update=False stops after the gradient (gradients(), scikit-learn's L-BFGS).

    Returns (Σ swᵢ lossᵢ / n, the regularization penalty, status); status is None with
    update=False, else 'ok', 'non-finite' (the loss or a gradient is NaN/inf: nothing was
    updated) or 'overflow' (finite gradients, but the update made weights infinite).
    """
    if ws is not None and reduce is None and update and row_offset == 0 and \
            (n is None or n == x.shape[0]):
        compiled = compiled_step(model, ws)
        if compiled is not None:
            return _compiled_train_step(model, compiled, x, y, sw, epoch, step, metrics)
    if n is None:
        n = x.shape[0]
    loss_sum = penalty = 0.0
    if ws is not None:
        p = forward(model, x, ws, True, epoch, step, row_offset)
        loss_sum = batch_loss(model, ws, p, y, sw, n)
        for metric in metrics:
            metric.update_batch(p, y)
        penalty = backward(model, ws)
    else:
        model.parameter_store.grads.fill(0)
    if reduce is not None:
        loss_sum, penalty = reduce(model, loss_sum, penalty)
    data = loss_sum / n
    if not update:
        return data, penalty, None
    # NaN/inf check before the update, so the weights stay finite: the loss (free) and
    # the gradients (one vectorized pass over the flat buffer).
    total = data + penalty
    if not (total - total == 0 and model.parameter_store.grads_finite()):
        return data, penalty, "non-finite"
    return data, penalty, "overflow" if apply_update(model) else "ok"
