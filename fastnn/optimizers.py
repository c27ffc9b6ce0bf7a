"""Optimizers: step 3 of the lecture, "pick the best function".

All parameters of a model live in one flat array (and their gradients in another), so
the update of every optimizer is one fused kernel that reads g, updates the slots and w in
place, in one pass over memory, with the GIL released (fastnn/_core/optim.pyx, generated
from optim.pyx.tp): one call, or one per thread's chunk on large models
(fastnn/_parallel.py). ``clipvalue`` is applied inside that pass; ``clipnorm`` and
``global_clipnorm`` add passes over g before it (the per-array sums of squares, and for
clipnorm the rescaling of g in place, with a few small per-array arrays made each step).
Slots are allocated once, when the optimizer is first attached to a model, and survive
across `fit` calls (a second `fit` continues; it does not reset the moments).

Notation in the docstrings: g is the gradient of the mean batch loss (regularization
included, then clipped), η the learning rate, t the step counting from 1.

Gradient conditioning (Keras's meanings; at most one may be set):
- ``clipnorm``: each weight array's gradient is rescaled to norm ≤ clipnorm;
- ``global_clipnorm``: all gradients together are rescaled to global norm ≤ it;
- ``clipvalue``: each entry is clipped to [-clipvalue, clipvalue].

``learning_rate`` is a float, a schedule from ``fn.optimizers.schedules`` or any callable
of the step (called with the number of updates done so far, 0 for the first update).

Keras 2's names work on every optimizer, with a DeprecationWarning naming the new one:
``lr=`` is ``learning_rate=``, and ``decay=d`` (Keras 2's time-based decay,
η / (1 + d·iterations)) is ``learning_rate=schedules.InverseTimeDecay(η, 1, d)``, which is
what it becomes (so get_config and saved models hold the schedule); ``epsilon=None`` is
the backend epsilon 1e-7; Nadam's ``schedule_decay`` is an error (Keras 3 dropped it).
Keras 3's base-class arguments: ``weight_decay`` (decoupled, w ← w − η·λ·w before the
step) in Adam, AdamW and Lion; elsewhere, and for ``use_ema``, ``ema_momentum``,
``ema_overwrite_frequency``, ``loss_scale_factor``, ``gradient_accumulation_steps`` and
``name``, only the neutral default is accepted (anything else is a clear error).
"""
import functools
import warnings

import numpy as np

from fastnn import _parallel, _threads
from fastnn import _validation as v
from fastnn import schedules
from fastnn._core import optim as _k
from fastnn._core import ops as _ops

_INF = float("inf")


# Keras 3's base-optimizer arguments fastnn has no use for, with their neutral defaults.
_NEUTRAL = {"use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
            "loss_scale_factor": None, "gradient_accumulation_steps": None}


def _keras_base_arguments(owner, init, kwargs):
    """Read (and remove from kwargs) the arguments of Keras's optimizers that fastnn's
    __init__s do not list: Keras 2's epsilon=None (the backend epsilon, 1e-7) and Nadam's
    schedule_decay, and Keras 3's base-class arguments at their neutral values; anything
    fastnn cannot do is a clear error naming the argument."""
    params = init.__code__.co_varnames[:init.__code__.co_argcount]
    if "epsilon" in params and "epsilon" in kwargs and kwargs["epsilon"] is None:
        warnings.warn(f"{owner}: epsilon=None is deprecated (Keras 2's spelling of the "
                      f"backend epsilon); use epsilon=1e-7, the default", DeprecationWarning,
                      stacklevel=3)
        kwargs["epsilon"] = 1e-7
    if "schedule_decay" in kwargs:
        raise ValueError(f"{owner}: schedule_decay (Keras 2's Nadam) was removed in Keras 3, "
                         f"whose momentum schedule u_t = beta_1*(1 - 0.5*0.96**t) fastnn's "
                         f"Nadam follows (Keras 2's rule with schedule_decay=1); remove the "
                         f"argument")
    for key, neutral in _NEUTRAL.items():
        if key in kwargs:
            value = kwargs.pop(key)
            if value is not neutral and value != neutral:
                raise ValueError(f"{owner}: {key}={value!r} is not supported by fastnn "
                                 f"(only Keras 3's default, {key}={neutral!r})")
    if "name" in kwargs and "name" not in params:
        name = kwargs.pop("name")
        if name is not None and name != owner.lower():
            raise ValueError(f"{owner}: name={name!r} is not supported (fastnn optimizers "
                             f"are named by their class, {owner.lower()!r})")
    if "weight_decay" in kwargs and "weight_decay" not in params:
        wd = kwargs.pop("weight_decay")
        if wd is not None and wd != 0:
            raise ValueError(f"{owner}: weight_decay={wd!r} is not supported by fastnn's "
                             f"{owner} (decoupled weight decay is in Adam, AdamW and Lion); use "
                             f"fn.optimizers.AdamW or a kernel_regularizer")


def _keras2_names(init):
    """Wrap an optimizer's __init__ so that Keras 2's ``lr=`` and ``decay=`` are accepted
    (each with a DeprecationWarning naming what replaces it)."""
    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        owner = type(self).__name__
        if "lr" in kwargs:
            # learning_rate is the first parameter of every optimizer.
            if args or "learning_rate" in kwargs:
                raise ValueError(f"{owner}: got both lr and learning_rate; lr is Keras 2's "
                                 f"name for learning_rate, pass only learning_rate")
            warnings.warn(f"{owner}: lr is deprecated (Keras 2's name); use learning_rate",
                          DeprecationWarning, stacklevel=2)
            kwargs["learning_rate"] = kwargs.pop("lr")
        decay = kwargs.pop("decay", None)
        _keras_base_arguments(owner, init, kwargs)
        init(self, *args, **kwargs)
        if decay is not None:
            decay = v.real(f"{owner}: decay", decay, 0)
            lr = self._learning_rate
            if callable(lr):
                raise ValueError(f"{owner}: decay (Keras 2's time-based decay) cannot be "
                                 f"combined with a learning-rate schedule; use one schedule, "
                                 f"e.g. fn.optimizers.schedules.InverseTimeDecay(lr, "
                                 f"decay_steps=1, decay_rate={decay})")
            warnings.warn(f"{owner}: decay is deprecated (Keras 2); use learning_rate="
                          f"fn.optimizers.schedules.InverseTimeDecay({lr}, decay_steps=1, "
                          f"decay_rate={decay}), which is the same rule",
                          DeprecationWarning, stacklevel=2)
            if decay > 0:
                self.learning_rate = schedules.InverseTimeDecay(lr, 1, decay)
    return __init__


class Optimizer:
    """Base class: learning rate, clipping, slots, step counting."""
    name = None

    def __init_subclass__(cls, **kwargs):
        # Every optimizer, present and future, accepts Keras 2's names.
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _keras2_names(cls.__dict__["__init__"])

    def __init__(self, learning_rate, clipnorm=None, clipvalue=None, global_clipnorm=None):
        self.learning_rate = learning_rate
        set_clips = [k for k, c in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                                    ("global_clipnorm", global_clipnorm)) if c is not None]
        if len(set_clips) > 1:
            raise ValueError(f"{type(self).__name__}: set at most one of clipnorm, clipvalue "
                             f"and global_clipnorm, got {set_clips}")
        self.clipnorm = None if clipnorm is None else v.real(
            "clipnorm", clipnorm, 0, low_open=True)
        self.clipvalue = None if clipvalue is None else v.real(
            "clipvalue", clipvalue, 0, low_open=True)
        self.global_clipnorm = None if global_clipnorm is None else v.real(
            "global_clipnorm", global_clipnorm, 0, low_open=True)
        self.iterations = 0
        self._slots = None
        self._params = None
        self._bounds = None
        self._size = None

    # -- learning rate -----------------------------------------------------------------
    @property
    def learning_rate(self):
        """The learning rate: a float, or the schedule/callable given."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if callable(value):
            self._learning_rate = value
        else:
            self._learning_rate = v.real(f"{type(self).__name__}: learning_rate", value, 0)

    def current_learning_rate(self):
        """The learning rate the next update will use."""
        lr = self._learning_rate
        if callable(lr):
            lr = float(lr(self.iterations))
            if not lr >= 0 or lr == _INF:
                raise ValueError(f"{type(self).__name__}: the learning-rate schedule returned "
                                 f"{lr!r} at step {self.iterations}; expected a finite "
                                 f"number >= 0")
        return lr

    # -- slots ---------------------------------------------------------------------------
    def build(self, params, bounds):
        """Allocate the slots for a flat parameter array (once). bounds: int64 offsets of
        each weight array in it (for clipnorm)."""
        if self._slots is not None:
            # The same model re-compiling keeps its state; another model may not share it
            # (it would silently share the moments and the step count).
            if params is not self._params:
                raise ValueError(f"{type(self).__name__}: this optimizer is already used by "
                                 f"another model; make a new optimizer for this model")
            return
        self._params = params
        self._size = params.shape[0]
        self._dtype = params.dtype
        self._bounds = np.ascontiguousarray(bounds, dtype=np.int64)
        self._norms = np.empty(len(bounds) - 1, np.float64)
        self._slots = {k: (np.full(self._size, init, params.dtype) if used
                           else np.empty(0, params.dtype))
                       for k, (used, init) in self._slot_specs().items()}

    def _slot_specs(self):
        """{slot name: (used, initial value)}."""
        return {}

    def variables(self):
        """The optimizer's state: {'iterations': int, slot name: flat array} (live views)."""
        state = {"iterations": self.iterations}
        if self._slots:
            state.update(self._slots)
        return state

    def set_variables(self, state):
        """Restore state saved from ``variables()`` (after ``build``)."""
        if self._slots is None:
            raise ValueError(f"{type(self).__name__}.set_variables: the optimizer is not "
                             f"built; compile a model with it first")
        self.iterations = int(state["iterations"])
        for k, arr in self._slots.items():
            if k in state:
                src = np.asarray(state[k])
                if src.shape != arr.shape:
                    raise ValueError(f"optimizer slot {k!r}: expected shape {arr.shape}, got "
                                     f"{src.shape}")
                arr[...] = src

    # -- the step --------------------------------------------------------------------------
    def _conditioning(self, grads):
        """Apply clipnorm in place; return (grad_scale, clipvalue) for the kernel."""
        if self.clipnorm is not None:
            _ops.segment_sum_squares(grads, self._bounds, self._norms)
            norms = np.sqrt(self._norms)
            scales = np.where(norms > self.clipnorm, self.clipnorm / np.maximum(norms, 1e-300),
                              1.0)
            _ops.scale_segments(grads, self._bounds, scales)
        scale = 1.0
        if self.global_clipnorm is not None:
            _ops.segment_sum_squares(grads, self._bounds, self._norms)
            norm = float(np.sqrt(self._norms.sum()))
            if norm > self.global_clipnorm:
                scale = self.global_clipnorm / norm
        return scale, (_INF if self.clipvalue is None else self.clipvalue)

    def apply(self, params, grads):
        """One update of the flat params from the flat grads (in place). Returns the
        number of weights whose new value is not finite (0 normally).

        Large models are updated in one contiguous chunk per thread at the same time
        (fastnn/_parallel.py); the result is identical to one pass.
        """
        lr, scale, clip = self._begin_step("apply", grads)
        parts = self._chunk_views(params, grads)
        if len(parts) == 1:
            return self._update(params, grads, self._slots, lr, scale, clip)
        return sum(_parallel.run([
            (lambda w=w, g=g, s=s: self._update(w, g, s, lr, scale, clip))
            for w, g, s in parts]))

    def prepare(self, update, params, grads):
        """Fill the optim.Update ``update`` with the next step's update of the flat params
        from the flat grads, exactly as apply would run it, but run nothing and change
        nothing: a compiled step (fastnn/_core/step.pyx) runs it once it has seen the
        gradients are finite, and then ``commit()`` counts the step. No clipnorm or
        global_clipnorm (they rescale the gradients first: apply does that)."""
        if self.clipnorm is not None or self.global_clipnorm is not None:
            raise ValueError(f"{type(self).__name__}.prepare: clipnorm and global_clipnorm "
                             f"need apply")
        saved = self._step_state()
        try:
            lr, scale, clip = self._begin_step("prepare", grads)
            self._update(params, grads, self._slots, lr, scale, clip, into=update)
        finally:
            self._restore_step_state(saved)

    def commit(self):
        """Count the step a prepared update ran (what apply does besides the kernels)."""
        self.iterations += 1
        self._advance()

    def _begin_step(self, what, grads):
        """The start of a step: its learning rate and gradient conditioning (clipnorm
        applied to grads in place), then the step counted. Returns (lr, grad_scale,
        clipvalue) for the kernels."""
        if self._slots is None:
            raise ValueError(f"{type(self).__name__}.{what}: the optimizer is not built; "
                             f"compile a model with it (or call build(params, bounds))")
        lr = self.current_learning_rate()
        scale, clip = self._conditioning(grads)
        self.commit()
        return lr, scale, clip

    def _step_state(self):
        """What a step changes besides the arrays (prepare undoes it)."""
        return self.iterations

    def _restore_step_state(self, saved):
        self.iterations = saved

    def _chunk_views(self, params, grads):
        """Per-thread views (w, g, slots) of the flat arrays, made once and cached."""
        key = (id(params), id(grads), _threads.get_num_threads())
        if getattr(self, "_chunk_key", None) != key:
            self._chunks = [(params[lo:hi], grads[lo:hi],
                             {k: (a[lo:hi] if a.shape[0] else a)
                              for k, a in self._slots.items()})
                            for lo, hi in _parallel.chunks(params.shape[0])]
            self._chunk_key = key
        return self._chunks

    def _update(self, w, g, s, lr, scale, clip, into=None):
        """One kernel call on (views of) the flat arrays; s holds the slots' views.
        into: an optim.Update to fill instead of running (see prepare)."""
        raise NotImplementedError

    def _advance(self):
        """Update the per-step state beyond ``iterations`` (once per step, before the
        kernel calls of that step; none by default)."""

    def get_config(self):
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            lr = {"class_name": type(lr).__name__, "config": lr.get_config()}
        elif callable(lr):
            lr = None   # an arbitrary callable cannot be described as data
        cfg = {"name": self.name, "learning_rate": lr, "clipnorm": self.clipnorm,
               "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm}
        cfg.update(self._hyper())
        return cfg

    def _hyper(self):
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={val!r}" for k, val in self.get_config().items()
                         if k != "name" and val is not None)
        return f"{type(self).__name__}({args})"


def _check_unit(owner, name, value, high_open=True):
    return v.real(f"{owner}: {name}", value, 0, 1, high_open=high_open)


def _check_eps(owner, value):
    return v.real(f"{owner}: epsilon", value, 0, low_open=True)


class SGD(Optimizer):
    """Gradient descent, with optional (Nesterov) momentum.

    plain:     w ← w − η·g
    momentum:  v ← μ·v − η·g;  w ← w + v
    Nesterov:  v ← μ·v − η·g;  w ← w + μ·v − η·g   (with the new v)
    """
    name = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **clip):
        super().__init__(learning_rate, **clip)
        self.momentum = _check_unit("SGD", "momentum", momentum, high_open=False)
        if not isinstance(nesterov, bool):
            raise TypeError(f"SGD: nesterov must be True or False, got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        self.nesterov = nesterov

    def _slot_specs(self):
        return {"velocity": (self.momentum > 0, 0.0)}

    def _update(self, w, g, s, lr, scale, clip, into=None):
        if self.momentum > 0:
            return _k.sgd_momentum(w, g, s["velocity"], lr, self.momentum, self.nesterov,
                                   scale, clip, into=into)
        else:
            return _k.sgd(w, g, lr, scale, clip, into=into)

    def _hyper(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adagrad(Optimizer):
    """G ← G + g²;  w ← w − η·g / (√G + ε)   (the lecture's formula; G starts at
    initial_accumulator_value)."""
    name = "adagrad"

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.0, epsilon=1e-7,
                 **clip):
        super().__init__(learning_rate, **clip)
        self.initial_accumulator_value = v.real(
            "Adagrad: initial_accumulator_value", initial_accumulator_value, 0)
        self.epsilon = _check_eps("Adagrad", epsilon)

    def _slot_specs(self):
        return {"accumulator": (True, self.initial_accumulator_value)}

    def _update(self, w, g, s, lr, scale, clip, into=None):
        return _k.adagrad(w, g, s["accumulator"], lr, self.epsilon, scale, clip, into=into)

    def _hyper(self):
        return {"initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class RMSprop(Optimizer):
    """s ← ρ·s + (1−ρ)·g²;  step = η·g / (√s + ε);  w ← w − step.

    centered: also m ← ρ·m + (1−ρ)·g and √(s − m²) replaces √s.
    momentum μ > 0: v ← μ·v + step;  w ← w − v.
    """
    name = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, **clip):
        super().__init__(learning_rate, **clip)
        self.rho = _check_unit("RMSprop", "rho", rho)
        self.momentum = _check_unit("RMSprop", "momentum", momentum, high_open=False)
        self.epsilon = _check_eps("RMSprop", epsilon)
        if not isinstance(centered, bool):
            raise TypeError(f"RMSprop: centered must be True or False, got {centered!r}")
        self.centered = centered

    def _slot_specs(self):
        return {"mean_square": (True, 0.0), "mean_grad": (self.centered, 0.0),
                "velocity": (self.momentum > 0, 0.0)}

    def _update(self, w, g, s, lr, scale, clip, into=None):
        return _k.rmsprop(w, g, s["mean_square"], s["mean_grad"], s["velocity"], lr, self.rho,
                   self.momentum, self.epsilon, self.centered, scale, clip, into=into)

    def _hyper(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class Adam(Optimizer):
    """m ← β₁·m + (1−β₁)·g;  v ← β₂·v + (1−β₂)·g²;
    w ← w − η·m̂ / (√v̂ + ε),  m̂ = m / (1−β₁ᵗ),  v̂ = v / (1−β₂ᵗ).

    amsgrad: v̂ uses the running maximum of v (as PyTorch and Keras do).
    """
    name = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, weight_decay=None, **clip):
        super().__init__(learning_rate, **clip)
        owner = type(self).__name__
        self.beta_1 = _check_unit(owner, "beta_1", beta_1)
        self.beta_2 = _check_unit(owner, "beta_2", beta_2)
        self.epsilon = _check_eps(owner, epsilon)
        if not isinstance(amsgrad, bool):
            raise TypeError(f"{owner}: amsgrad must be True or False, got {amsgrad!r}")
        self.amsgrad = amsgrad
        # Keras 3's base-class weight_decay: decoupled, w ← w − η·λ·w before the step
        # (the kernel path AdamW uses).
        self.weight_decay = 0.0 if weight_decay is None else \
            v.real(f"{owner}: weight_decay", weight_decay, 0)

    def _slot_specs(self):
        return {"m": (True, 0.0), "v": (True, 0.0), "v_max": (self.amsgrad, 0.0)}

    def _update(self, w, g, s, lr, scale, clip, into=None):
        t = self.iterations
        return _k.adam(w, g, s["m"], s["v"], s["v_max"], lr, self.beta_1, self.beta_2,
                self.epsilon, 1.0 - self.beta_1 ** t, 1.0 - self.beta_2 ** t, self.amsgrad,
                self.weight_decay, scale, clip, into=into)

    def _hyper(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad, "weight_decay": self.weight_decay or None}


class AdamW(Adam):
    """Adam with decoupled weight decay: first w ← w − η·λ·w, then the Adam step."""
    name = "adamw"

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, **clip):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, **clip)
        self.weight_decay = v.real("AdamW: weight_decay", weight_decay, 0)

    def _hyper(self):
        h = super()._hyper()
        h["weight_decay"] = self.weight_decay
        return h


class Nadam(Optimizer):
    """Adam with Nesterov momentum, Keras 3's rule exactly (Dozat 2015, with Keras's
    momentum schedule). With t counting from 1:

    u_t = β₁·(1 − ½·0.96ᵗ)  (Keras 3 uses 0.96ᵗ; Keras 2 and torch's default use
    0.96^(0.004·t)), Π_t = u₁·u₂·…·u_t;
    m ← β₁·m + (1−β₁)·g;  v ← β₂·v + (1−β₂)·g²;
    m̂ = u_{t+1}·m / (1 − Π_{t+1}) + (1 − u_t)·g / (1 − Π_t);  v̂ = v / (1−β₂ᵗ);
    w ← w − η·m̂ / (√v̂ + ε).

    Π_t is a running product of doubles, recomputed from ``iterations`` by the same
    multiplications when state is restored (set_variables, load_model), so a resumed run
    is bit-identical; it is not a slot.
    """
    name = "nadam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 **clip):
        super().__init__(learning_rate, **clip)
        self.beta_1 = _check_unit("Nadam", "beta_1", beta_1)
        self.beta_2 = _check_unit("Nadam", "beta_2", beta_2)
        self.epsilon = _check_eps("Nadam", epsilon)
        self._u_product = 1.0

    def _u(self, t):
        return self.beta_1 * (1.0 - 0.5 * 0.96 ** t)

    def _advance(self):
        self._u_product *= self._u(self.iterations)

    def _step_state(self):
        return self.iterations, self._u_product

    def _restore_step_state(self, saved):
        self.iterations, self._u_product = saved

    def set_variables(self, state):
        super().set_variables(state)
        product = 1.0
        for t in range(1, self.iterations + 1):
            u = self._u(t)
            new = product * u
            # Once u_t is exactly β₁ (t > ~900) and the product stops changing (it reached
            # 0 or a subnormal that rounds back to itself, after ~7000 steps at β₁ = 0.9),
            # it stays there: stop instead of looping over every step.
            if new == product and u == self.beta_1:
                break
            product = new
        self._u_product = product

    def _slot_specs(self):
        return {"m": (True, 0.0), "v": (True, 0.0)}

    def _update(self, w, g, s, lr, scale, clip, into=None):
        t = self.iterations
        u_next = self._u(t + 1)
        return _k.nadam(w, g, s["m"], s["v"], lr, self.beta_1, self.beta_2, self.epsilon,
                        self._u(t), u_next, self._u_product, self._u_product * u_next,
                        1.0 - self.beta_2 ** t, scale, clip, into=into)

    def _hyper(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Adamax(Optimizer):
    """Adam with the infinity norm (Kingma & Ba 2014, §7.1), Keras's rule:
    m ← β₁·m + (1−β₁)·g;  u ← max(β₂·u, |g|);  w ← w − η/(1−β₁ᵗ) · m / (u + ε).
    """
    name = "adamax"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 **clip):
        super().__init__(learning_rate, **clip)
        self.beta_1 = _check_unit("Adamax", "beta_1", beta_1)
        self.beta_2 = _check_unit("Adamax", "beta_2", beta_2)
        self.epsilon = _check_eps("Adamax", epsilon)

    def _slot_specs(self):
        return {"m": (True, 0.0), "u": (True, 0.0)}

    def _update(self, w, g, s, lr, scale, clip, into=None):
        return _k.adamax(w, g, s["m"], s["u"], lr, self.beta_1, self.beta_2, self.epsilon,
                         1.0 - self.beta_1 ** self.iterations, scale, clip, into=into)

    def _hyper(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012), Keras's rule (η = 1 is the paper's form):
    a ← ρ·a + (1−ρ)·g²;  Δ = √(d + ε) · g / √(a + ε);  d ← ρ·d + (1−ρ)·Δ²;  w ← w − η·Δ.
    """
    name = "adadelta"

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **clip):
        super().__init__(learning_rate, **clip)
        self.rho = _check_unit("Adadelta", "rho", rho)
        self.epsilon = _check_eps("Adadelta", epsilon)

    def _slot_specs(self):
        return {"accumulated_grad": (True, 0.0), "accumulated_delta_var": (True, 0.0)}

    def _update(self, w, g, s, lr, scale, clip, into=None):
        return _k.adadelta(w, g, s["accumulated_grad"], s["accumulated_delta_var"], lr,
                           self.rho, self.epsilon, scale, clip, into=into)

    def _hyper(self):
        return {"rho": self.rho, "epsilon": self.epsilon}


class Lion(Optimizer):
    """Lion (Chen et al. 2023), Keras's rule: the update is the sign of an interpolation,
    the momentum decays with its own rate:
    w ← w − η·λ·w (decoupled weight decay λ, when set);
    w ← w − η·sign(β₁·m + (1−β₁)·g);  m ← β₂·m + (1−β₂)·g   (sign(0) = 0).

    Its steps have size η in every coordinate: use a learning rate 3-10x smaller than
    for AdamW (and a weight decay 3-10x larger), as the paper and Keras advise.
    """
    name = "lion"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, weight_decay=None,
                 **clip):
        super().__init__(learning_rate, **clip)
        # beta_1 = 0 would make the update sign(g), signSGD (Keras refuses it too).
        self.beta_1 = v.real("Lion: beta_1", beta_1, 0, 1, low_open=True)
        self.beta_2 = _check_unit("Lion", "beta_2", beta_2, high_open=False)
        self.weight_decay = None if weight_decay is None else v.real(
            "Lion: weight_decay", weight_decay, 0)

    def _slot_specs(self):
        return {"m": (True, 0.0)}

    def _update(self, w, g, s, lr, scale, clip, into=None):
        return _k.lion(w, g, s["m"], lr, self.beta_1, self.beta_2, self.weight_decay or 0.0,
                       scale, clip, into=into)

    def _hyper(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2,
                "weight_decay": self.weight_decay}


OPTIMIZERS = {
    "sgd": lambda: SGD(),
    "momentum": lambda: SGD(momentum=0.9),
    "nesterov": lambda: SGD(momentum=0.9, nesterov=True),
    "adagrad": lambda: Adagrad(),
    "rmsprop": lambda: RMSprop(),
    "adam": lambda: Adam(),
    "adamw": lambda: AdamW(),
    "nadam": lambda: Nadam(),
    "adamax": lambda: Adamax(),
    "adadelta": lambda: Adadelta(),
    "lion": lambda: Lion(),
}
CLASSES = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW,
           "nadam": Nadam, "adamax": Adamax, "adadelta": Adadelta, "lion": Lion}


def get(optimizer):
    """An Optimizer from a name ('sgd', 'adam', ...) or an Optimizer instance."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        return OPTIMIZERS[optimizer.lower()]()
    raise ValueError(f"compile: unknown optimizer {optimizer!r}; expected one of "
                     f"{sorted(OPTIMIZERS)} or a fn.optimizers.Optimizer")


def from_config(config):
    """Rebuild an optimizer from ``get_config()`` output."""
    config = dict(config)
    name = config.pop("name")
    if name not in CLASSES:
        raise ValueError(f"unknown optimizer {name!r} in config")
    lr = config.get("learning_rate")
    if isinstance(lr, dict):
        cls = schedules.SCHEDULES.get(lr.get("class_name"))
        if cls is None:
            raise ValueError(f"unknown learning-rate schedule {lr.get('class_name')!r}")
        config["learning_rate"] = cls(**lr["config"])
    elif lr is None:
        raise ValueError("this optimizer's learning rate was an arbitrary callable; pass it "
                         "again when loading")
    if name == "sgd" and not config.get("nesterov"):
        config.pop("nesterov", None)
    return CLASSES[name](**config)
