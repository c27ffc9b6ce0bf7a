"""Tests for fastnn.optimizers and fastnn.schedules (issue 3).

1. Trajectories: every optimizer and option is driven directly (``opt.build`` once, then
   ``opt.apply`` 200 times) next to a plain-NumPy reference written from the FORMULAS of
   issue 3 (not from the kernels; tests/reference_optimizers.py), in float64 and float32,
   comparing the weights after every step and the optimizer's slots at the end.
2. Behaviour: on ill-conditioned quadratics momentum and Adam need far fewer steps than
   the best plain SGD; Adagrad's effective step η/(√G+ε) shrinks as G grows.
3. State survives across fit calls (bit-identical warm start, moments not reset).
4. compile names, 5. constructor validation, 6. get_config/from_config round trips.

Conventions under test: a learning-rate schedule (or any callable) is called with the number
of updates done so far (0 for the first update); Adam's t counts from 1.
"""
import json
import math

import numpy as np
import pytest

import fastnn as fn
from fastnn import optimizers as O
from fastnn import schedules as S
from reference_optimizers import RefAdagrad, RefAdam, RefRMSprop, RefSGD, constant

STEPS = 200
DTYPES = [np.float64, np.float32]

# Tolerances on the weights after each step, relative to the weight scale (max |w| over
# the reference trajectory, about 1..3 here), so coordinates passing through 0 do not need
# a separate atol.
# float64: eps = 1.1e-16. Each step adds a few ulps of rounding (the kernel's evaluation
#   order differs from the reference's, e.g. sqrt(v)·(1/sqrt(bc2)) vs sqrt(v/bc2)); over
#   200 stable (contracting) steps that stays ~1e-14, so 1e-12 is tight yet safe.
# float32: eps = 6e-8. The kernel rounds w, g, the slots and the hyperparameters (ρ=0.9 is
#   not representable) to float32 at every step and those roundings accumulate over the
#   200 steps (observed: up to ~7e-6 of the weight scale, for Adam); 5e-5 leaves a 7x
#   margin while a wrong formula (an error of the order of a whole step, ~1e-2 of the
#   scale) still fails.
WTOL = {np.float64: 1e-12, np.float32: 5e-5}

# -------------------------------------------------------------------- the test problem --
# 11 parameters in 3 "weight arrays" of uneven sizes (per-array clipnorm needs > 1 segment).
BOUNDS = np.array([0, 4, 9, 11], dtype=np.int64)
N = int(BOUNDS[-1])
_rng = np.random.default_rng(20240603)
W0 = _rng.uniform(-1.5, 1.5, N)
CENTER = _rng.uniform(-1.0, 1.0, N)
CURV = _rng.uniform(0.3, 2.0, N)                    # diagonal curvature of the quadratic
SEG_SCALE = np.repeat([0.2, 1.0, 3.0], np.diff(BOUNDS))   # segments of different size
NOISE = _rng.standard_normal((STEPS, N))
AMP = np.exp(_rng.uniform(-1.5, 1.5, STEPS))       # gradient size varies 20x over steps


def grad_at(w, k):
    """Gradient at step k: a noisy quadratic's, g = s·(a·(w − c) + amp_k·ξ_k)."""
    return SEG_SCALE * (CURV * (w - CENTER) + AMP[k] * NOISE[k])


# ------------------------------------------ Keras's gradient conditioning, from its definition --
# (the update rules' NumPy references: tests/reference_optimizers.py)
class Conditioning:
    """Keras's gradient conditioning, from its definition, counting how often it bit."""

    def __init__(self, kind=None, c=None):
        self.kind, self.c = kind, c
        self.hit = self.miss = 0

    def __call__(self, g):
        g = g.copy()
        if self.kind == "clipnorm":          # each weight array's gradient to norm <= c
            for lo, hi in zip(BOUNDS[:-1], BOUNDS[1:]):
                norm = math.sqrt(float(np.sum(g[lo:hi] ** 2)))
                if norm > self.c:
                    g[lo:hi] *= self.c / norm
                    self.hit += 1
                else:
                    self.miss += 1
        elif self.kind == "global_clipnorm":  # all gradients together to norm <= c
            norm = math.sqrt(float(np.sum(g ** 2)))
            if norm > self.c:
                g *= self.c / norm
                self.hit += 1
            else:
                self.miss += 1
        elif self.kind == "clipvalue":        # each entry to [-c, c]
            out = np.abs(g) > self.c
            self.hit += int(out.sum())
            self.miss += int((~out).sum())
            g = np.clip(g, -self.c, self.c)
        return g


# Schedules, from Keras's formulas (k = number of updates done so far).
def ref_exponential(lr0, decay_steps, rate, staircase=False):
    def f(k):
        p = k / decay_steps
        return lr0 * rate ** (math.floor(p) if staircase else p)
    return f


def ref_piecewise(boundaries, values):
    def f(k):
        for b, val in zip(boundaries, values):
            if k <= b:
                return val
        return values[-1]
    return f


def ref_cosine(lr0, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
    def f(k):
        top = lr0
        if warmup_target is not None:
            top = warmup_target
            if k < warmup_steps:
                return lr0 + (warmup_target - lr0) * k / warmup_steps
        s = min(max(k - warmup_steps, 0), decay_steps)
        return top * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * s / decay_steps)) + alpha)
    return f


# ------------------------------------------------------------------------------ cases --
# name: (base learning rate, make optimizer(lr, **clip), make reference(lr function))
BASE = {
    "sgd": (0.05, lambda lr, **c: O.SGD(lr, **c), lambda f: RefSGD(f)),
    "sgd-momentum": (0.02, lambda lr, **c: O.SGD(lr, momentum=0.9, **c),
                     lambda f: RefSGD(f, 0.9)),
    "sgd-nesterov": (0.02, lambda lr, **c: O.SGD(lr, momentum=0.8, nesterov=True, **c),
                     lambda f: RefSGD(f, 0.8, nesterov=True)),
    "adagrad": (0.2, lambda lr, **c: O.Adagrad(lr, **c), lambda f: RefAdagrad(f)),
    "adagrad-initial-acc": (
        0.2, lambda lr, **c: O.Adagrad(lr, initial_accumulator_value=0.5, epsilon=1e-3, **c),
        lambda f: RefAdagrad(f, 0.5, 1e-3)),
    "rmsprop": (0.01, lambda lr, **c: O.RMSprop(lr, **c), lambda f: RefRMSprop(f)),
    "rmsprop-momentum": (0.005, lambda lr, **c: O.RMSprop(lr, rho=0.8, momentum=0.7, **c),
                         lambda f: RefRMSprop(f, 0.8, 0.7)),
    "rmsprop-centered": (0.01, lambda lr, **c: O.RMSprop(lr, rho=0.95, centered=True,
                                                         epsilon=1e-5, **c),
                         lambda f: RefRMSprop(f, 0.95, 0.0, 1e-5, True)),
    "rmsprop-centered-momentum": (
        0.005, lambda lr, **c: O.RMSprop(lr, momentum=0.5, centered=True, **c),
        lambda f: RefRMSprop(f, 0.9, 0.5, 1e-7, True)),
    "adam": (0.05, lambda lr, **c: O.Adam(lr, **c), lambda f: RefAdam(f)),
    # Non-default betas/epsilon so swapped or ignored hyperparameters show.
    "adam-betas": (0.05, lambda lr, **c: O.Adam(lr, beta_1=0.7, beta_2=0.95, epsilon=1e-3,
                                                **c),
                   lambda f: RefAdam(f, 0.7, 0.95, 1e-3)),
    "adam-amsgrad": (0.05, lambda lr, **c: O.Adam(lr, amsgrad=True, **c),
                     lambda f: RefAdam(f, amsgrad=True)),
    "adamw": (0.05, lambda lr, **c: O.AdamW(lr, weight_decay=0.1, **c),
              lambda f: RefAdam(f, weight_decay=0.1)),
    "adamw-amsgrad": (0.05, lambda lr, **c: O.AdamW(lr, weight_decay=0.1, beta_2=0.99,
                                                    amsgrad=True, **c),
                      lambda f: RefAdam(f, beta_2=0.99, amsgrad=True, weight_decay=0.1)),
}

# Thresholds chosen so each clip bites on some steps/arrays/entries and not on others
# (asserted in the test, so a clip that never fires cannot pass vacuously).
CLIPS = {"clipnorm": 1.5, "clipvalue": 0.8, "global_clipnorm": 4.0}


def _schedules():
    """name: (make schedule object or callable from lr, reference lr function from lr)."""
    return {
        "exponential": (lambda lr: S.ExponentialDecay(lr, 30, 0.5),
                        lambda lr: ref_exponential(lr, 30, 0.5)),
        "exponential-staircase": (lambda lr: S.ExponentialDecay(lr, 30, 0.5, staircase=True),
                                  lambda lr: ref_exponential(lr, 30, 0.5, True)),
        # integer boundaries: step 50 still uses values[0], step 51 values[1]
        "piecewise": (lambda lr: S.PiecewiseConstantDecay([50, 120], [lr, lr / 3, lr / 10]),
                      lambda lr: ref_piecewise([50, 120], [lr, lr / 3, lr / 10])),
        # decay_steps < 200 so the clamp at the end of the decay is exercised
        "cosine": (lambda lr: S.CosineDecay(lr, 150, alpha=0.1),
                   lambda lr: ref_cosine(lr, 150, 0.1)),
        "cosine-warmup": (lambda lr: S.CosineDecay(lr / 10, 120, alpha=0.05,
                                                   warmup_target=lr, warmup_steps=40),
                          lambda lr: ref_cosine(lr / 10, 120, 0.05, lr, 40)),
        "callable": (lambda lr: (lambda step: lr / (1.0 + 0.02 * step)),
                     lambda lr: (lambda k: lr / (1.0 + 0.02 * k))),
    }


SCHEDULES = _schedules()


def run_trajectory(opt, ref, dtype, cond=None, steps=STEPS):
    """Drive opt (fastnn, in dtype) and ref (float64 NumPy) side by side; return both
    trajectories (steps, N) as float64."""
    cond = cond or Conditioning()
    w = W0.astype(dtype)
    opt.build(w, BOUNDS)
    w_ref = w.astype(np.float64)
    got = np.empty((steps, N))
    want = np.empty((steps, N))
    for k in range(steps):
        g = grad_at(w.astype(np.float64), k).astype(dtype)
        opt.apply(w, g)
        w_ref = ref.step(w_ref, cond(grad_at(w_ref, k)), k)
        got[k], want[k] = w, w_ref
    return got, want


def assert_trajectory(got, want, dtype):
    scale = max(1.0, float(np.abs(want).max()))
    err = np.abs(got - want).max(axis=1) / scale
    bad = np.flatnonzero(err > WTOL[np.dtype(dtype).type])
    assert bad.size == 0, (f"trajectory leaves the reference at step {bad[0]} (0-based): "
                           f"relative error {err[bad[0]]:.3g} > {WTOL[np.dtype(dtype).type]}"
                           f"; max over the run {err.max():.3g}")
    assert np.isfinite(got).all()


def assert_slots(opt, ref, dtype):
    state = opt.variables()
    assert state["iterations"] == STEPS
    tol = WTOL[np.dtype(dtype).type]
    for name, want in ref.slots().items():
        have = np.asarray(state[name], dtype=np.float64)
        np.testing.assert_allclose(have, want, rtol=tol * 10, atol=tol * np.abs(want).max(),
                                   err_msg=f"slot {name}")


def _trajectory_params():
    out = []
    for name in BASE:
        out.append(pytest.param(name, None, None, id=name))
    for name in BASE:
        for clip in CLIPS:
            out.append(pytest.param(name, clip, None, id=f"{name}-{clip}"))
    for name in ["sgd", "sgd-momentum", "sgd-nesterov", "adagrad",
                 "rmsprop-centered-momentum", "adam", "adam-amsgrad", "adamw"]:
        for sched in SCHEDULES:
            out.append(pytest.param(name, None, sched, id=f"{name}-{sched}"))
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("name, clip, schedule", _trajectory_params())
def test_trajectory_matches_reference(name, clip, schedule, dtype):
    lr, make_opt, make_ref = BASE[name]
    clip_kw = {clip: CLIPS[clip]} if clip else {}
    cond = Conditioning(clip, CLIPS.get(clip))
    calls = []
    if schedule is None:
        opt_lr, ref_lr = lr, constant(lr)
    else:
        make_sched, make_ref_lr = SCHEDULES[schedule]
        sched = make_sched(lr)
        if schedule == "callable":
            def opt_lr(step, _f=sched):
                calls.append(step)
                return _f(step)
        else:
            opt_lr = sched
        ref_lr = make_ref_lr(lr)
    opt = make_opt(opt_lr, **clip_kw)
    ref = make_ref(ref_lr)
    got, want = run_trajectory(opt, ref, dtype, cond)
    assert_trajectory(got, want, dtype)
    assert_slots(opt, ref, dtype)
    if clip:
        assert cond.hit > 0 and cond.miss > 0, "the clip threshold must bite only sometimes"
    if schedule == "callable":
        # called once per update with the number of updates done so far
        assert calls == list(range(STEPS))
    # the trajectory actually moved (not a vacuous comparison of W0 with W0)
    assert np.abs(got[-1] - W0).max() > 0.05


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_zero_learning_rate_changes_nothing_but_slots(dtype):
    opt = O.Adam(0.0)
    w = W0.astype(dtype)
    opt.build(w, BOUNDS)
    for k in range(5):
        opt.apply(w, grad_at(W0, k).astype(dtype))
    np.testing.assert_array_equal(w, W0.astype(dtype))
    assert np.abs(opt.variables()["m"]).max() > 0


def test_adam_t_counts_from_one():
    # First Adam step: m̂ = g, v̂ = g², so every weight moves by η·g/(|g|+ε) ≈ η·sign(g)
    # (it would be (1−β₁)·η·sign(g)/√(1−β₂) if t started at 0 / bias correction were off).
    opt = O.Adam(0.1)
    w = np.zeros(4)
    opt.build(w, np.array([0, 4], np.int64))
    g = np.array([3.0, -0.5, 1e-2, -200.0])
    opt.apply(w, g.copy())
    np.testing.assert_allclose(w, -0.1 * g / (np.abs(g) + 1e-7), rtol=1e-12)
    assert opt.iterations == 1


def test_schedule_step_for_first_update_is_zero():
    seen = []
    opt = O.SGD(lambda step: seen.append(step) or 0.1)
    w = np.ones(3)
    opt.build(w, np.array([0, 3], np.int64))
    assert opt.current_learning_rate() == 0.1 and seen == [0]
    for _ in range(3):
        opt.apply(w, np.ones(3))
    assert seen == [0, 0, 1, 2]
    np.testing.assert_allclose(w, 1 - 0.3)


def test_bad_schedule_value_is_reported():
    opt = O.SGD(lambda step: -0.1)
    w = np.ones(2)
    opt.build(w, np.array([0, 2], np.int64))
    with pytest.raises(ValueError, match="learning-rate schedule returned"):
        opt.apply(w, np.ones(2))
    np.testing.assert_array_equal(w, 1.0)


def test_global_clipnorm_by_hand():
    # gradient (3, 0 | 0, 4) has global norm 5 -> scaled by 1/5
    opt = O.SGD(1.0, global_clipnorm=1.0)
    w = np.zeros(4)
    opt.build(w, np.array([0, 2, 4], np.int64))
    opt.apply(w, np.array([3.0, 0.0, 0.0, 4.0]))
    np.testing.assert_allclose(w, [-0.6, 0, 0, -0.8], rtol=1e-15)


@pytest.mark.parametrize("clip", ["clipnorm", "global_clipnorm", "clipvalue"])
def test_clipping_through_model_uses_keras_meaning(clip):
    # Through the model, "each weight array" means each kernel W and each bias b separately.
    rng = np.random.default_rng(2)
    x = 3 * rng.standard_normal((16, 4))
    y = rng.standard_normal((16, 3))
    fn.set_seed(4)
    model = fn.Sequential([fn.layers.Dense(5, activation="tanh", input_dim=4),
                           fn.layers.Dense(3)], dtype="float64")
    model.compile(loss="mse", optimizer="sgd")
    grads = model.gradients(x, y)
    norms = [np.linalg.norm(g) for g in grads]
    c = float(np.median(norms))              # some arrays are clipped, others are not
    if clip == "global_clipnorm":
        c = 0.5 * math.sqrt(sum(n * n for n in norms))
        expected = [g * c / math.sqrt(sum(n * n for n in norms)) for g in grads]
    elif clip == "clipnorm":
        assert min(norms) < c < max(norms)
        expected = [g * min(1.0, c / n) for g, n in zip(grads, norms)]
    else:
        c = 0.5 * float(np.median(np.abs(np.concatenate([g.ravel() for g in grads]))))
        expected = [np.clip(g, -c, c) for g in grads]
    model.compile(loss="mse", optimizer=O.SGD(0.1, **{clip: c}))
    before = model.get_weights()
    model.train_on_batch(x, y)
    for w0, w1, g in zip(before, model.get_weights(), expected):
        np.testing.assert_allclose(w1, w0 - 0.1 * g, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------- schedules directly --
@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_decay_values(staircase):
    sched = S.ExponentialDecay(0.3, 25, 0.4, staircase=staircase)
    ref = ref_exponential(0.3, 25, 0.4, staircase)
    for k in [0, 1, 7, 24, 25, 26, 49, 50, 199, 1000]:
        assert sched(k) == pytest.approx(ref(k), rel=1e-14)
    assert sched(0) == 0.3
    assert sched(50) == pytest.approx(0.3 * 0.16, rel=1e-14)
    assert sched(25 + 12) == pytest.approx(0.3 * 0.4 ** (1 if staircase else 37 / 25),
                                           rel=1e-14)


def test_piecewise_constant_values():
    sched = S.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [sched(k) for k in [0, 9, 10, 11, 19, 20, 21, 500]] == \
        [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.1, 0.1]


def test_cosine_decay_values():
    sched = S.CosineDecay(2.0, 100, alpha=0.1)
    ref = ref_cosine(2.0, 100, 0.1)
    for k in [0, 1, 25, 50, 99, 100, 101, 1000]:
        assert sched(k) == pytest.approx(ref(k), rel=1e-14, abs=1e-15)
    assert sched(0) == pytest.approx(2.0)
    assert sched(50) == pytest.approx(2.0 * (0.9 * 0.5 + 0.1))
    assert sched(100) == pytest.approx(0.2)
    assert sched(5000) == pytest.approx(0.2)        # clamped after decay_steps
    plain = S.CosineDecay(1.0, 100)
    assert plain(100) == pytest.approx(0.0, abs=1e-15)


def test_cosine_decay_with_warmup_values():
    sched = S.CosineDecay(0.0, 100, warmup_target=1.0, warmup_steps=10)
    ref = ref_cosine(0.0, 100, 0.0, 1.0, 10)
    for k in [0, 1, 5, 9, 10, 11, 60, 109, 110, 111, 1000]:
        assert sched(k) == pytest.approx(ref(k), rel=1e-14, abs=1e-15)
    assert sched(0) == 0.0
    assert sched(5) == pytest.approx(0.5)            # linear warmup
    assert sched(10) == pytest.approx(1.0)           # reaches the target, decay starts
    assert sched(60) == pytest.approx(0.5)           # half-way through the decay
    assert sched(110) == pytest.approx(0.0, abs=1e-15)
    up = [sched(k) for k in range(11)]
    assert all(a < b for a, b in zip(up, up[1:]))
    down = [sched(k) for k in range(10, 111)]
    assert all(a >= b for a, b in zip(down, down[1:]))


def test_cosine_decay_warmup_steps_without_target_is_ignored_like_keras():
    # Keras 3: "If warmup_target is None we skip warmup and our decay will take our
    # learning rate from initial_learning_rate to initial_learning_rate * alpha".
    sched = S.CosineDecay(1.0, 100, warmup_steps=10)
    ref = ref_cosine(1.0, 100)
    assert [sched(k) for k in [0, 10, 50, 100]] == pytest.approx(
        [ref(k) for k in [0, 10, 50, 100]], abs=1e-15)


def test_schedule_validation():
    with pytest.raises(ValueError, match="values must have one more entry"):
        S.PiecewiseConstantDecay([1, 2], [1.0, 2.0])
    with pytest.raises(ValueError, match="boundaries must increase"):
        S.PiecewiseConstantDecay([5, 2], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="decay_steps"):
        S.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="decay_rate"):
        S.ExponentialDecay(0.1, 10, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        S.CosineDecay(0.1, 10, alpha=1.5)
    with pytest.raises(ValueError, match="initial_learning_rate"):
        S.CosineDecay(-0.1, 10)


# ------------------------------------------------------------------------------ behaviour --
def steps_to_target(opt, A, w0, target, max_steps):
    """Updates until f(w) = ½wᵀAw <= target·f(w0); None if not within max_steps."""
    w = np.array(w0, dtype=np.float64)
    opt.build(w, np.array([0, w.size], np.int64))
    f0 = 0.5 * w @ A @ w
    for k in range(max_steps + 1):
        if 0.5 * w @ A @ w <= target * f0:
            return k
        opt.apply(w, A @ w)
    return None


def test_momentum_and_adam_beat_sgd_on_ill_conditioned_quadratic():
    # f(w) = ½wᵀAw, A = diag(1, 100): condition number κ = 100 (L = 100, μ = 1).
    A = np.diag([1.0, 100.0])
    w0 = [1.0, 1.0]
    L, mu = 100.0, 1.0
    # Heavy-ball with its textbook tuning: η = 4/(√L+√μ)², β = ((√κ−1)/(√κ+1))².
    eta = 4 / (math.sqrt(L) + math.sqrt(mu)) ** 2
    beta = ((math.sqrt(L / mu) - 1) / (math.sqrt(L / mu) + 1)) ** 2
    fast = {
        "momentum": steps_to_target(O.SGD(eta, momentum=beta), A, w0, 1e-6, 2000),
        "momentum-0.8": steps_to_target(O.SGD(0.02, momentum=0.8), A, w0, 1e-6, 2000),
        "nesterov": steps_to_target(O.SGD(0.01, momentum=0.9, nesterov=True), A, w0, 1e-6,
                                    2000),
        "adam": steps_to_target(O.Adam(0.05), A, w0, 1e-6, 2000),
    }
    assert all(s is not None for s in fast.values()), fast
    # plain SGD with the best of several stable rates (η < 2/L; the largest is fastest)
    sgd = {lr: steps_to_target(O.SGD(lr), A, w0, 1e-6, 3000)
           for lr in [0.5 / L, 1.0 / L, 1.5 / L, 1.9 / L]}
    assert all(s is not None for s in sgd.values()), sgd   # it does get there, slowly
    best_sgd = min(sgd.values())
    for name, s in fast.items():
        assert 3 * s <= best_sgd, (name, s, best_sgd)


def _linreg_model(optimizer):
    fn.set_seed(0)
    model = fn.Sequential([fn.layers.Dense(1, activation="linear", input_dim=2)],
                          dtype="float64")
    model.compile(loss="mse", optimizer=optimizer)
    return model


def _batches_to_loss(model, x, y, target, max_steps):
    for k in range(max_steps):
        if model.train_on_batch(x, y) < target:
            return k
    return None


def test_momentum_and_adam_beat_sgd_through_model_api():
    # Linear regression with features scaled 1 and 30: the MSE Hessian 2/n·XᵀX (with
    # the bias column) has eigenvalues ≈ 2, 2 and 1800 -> condition number ≈ 900.
    rng = np.random.default_rng(0)
    n = 64
    x = rng.standard_normal((n, 2))
    x = (x - x.mean(0)) / x.std(0)
    x[:, 1] *= 30
    y = x @ np.array([1.0, 1 / 30]) + 0.5
    L = 2 * 900.0
    target = 1e-4
    fast = {
        "momentum": _batches_to_loss(_linreg_model(O.SGD(1.0 / L, momentum=0.9)), x, y,
                                     target, 1500),
        "adam": _batches_to_loss(_linreg_model(O.Adam(0.05)), x, y, target, 1500),
    }
    assert all(s is not None for s in fast.values()), fast
    budget = 3 * max(fast.values())
    for lr in [1.0 / L, 1.9 / L]:      # stable rates (η < 2/L); 1.9/L is SGD's fastest
        s = _batches_to_loss(_linreg_model(O.SGD(lr)), x, y, target, budget)
        assert s is None, f"SGD(lr={lr}) needed only {s} steps vs {fast}"


def test_adagrad_effective_step_shrinks_as_accumulator_grows():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.standard_normal((32, 1))
    eta, eps = 0.1, 1e-7
    model = fn.Sequential([fn.layers.Dense(1, input_dim=3)], dtype="float64")
    model.compile(loss="mse", optimizer=O.Adagrad(eta, epsilon=eps))
    G = model.optimizer.variables()["accumulator"]
    prev_eff = np.full(G.shape, eta / eps)
    for k in range(30):
        before = np.concatenate([w.ravel() for w in model.get_weights()])
        g = np.concatenate([gi.ravel() for gi in model.gradients(x, y)])
        G_before = G.copy()
        model.train_on_batch(x, y)
        after = np.concatenate([w.ravel() for w in model.get_weights()])
        np.testing.assert_allclose(G, G_before + g * g, rtol=1e-12)
        eff = eta / (np.sqrt(G) + eps)
        # the step actually taken is the effective step times the gradient
        np.testing.assert_allclose(after - before, -eff * g, rtol=1e-10, atol=1e-15)
        assert np.all(eff <= prev_eff)
        assert np.all(eff[np.abs(g) > 1e-12] < prev_eff[np.abs(g) > 1e-12])
        prev_eff = eff
    # constant gradient: G = t·g², so the step decays like η/√t (the lecture's 1/√t)
    opt = O.Adagrad(1.0, epsilon=1e-12)
    w = np.zeros(1)
    opt.build(w, np.array([0, 1], np.int64))
    steps = []
    for t in range(1, 101):
        old = w.copy()
        opt.apply(w, np.array([2.0]))
        steps.append(float(old[0] - w[0]))
    np.testing.assert_allclose(steps, 1 / np.sqrt(np.arange(1, 101)), rtol=1e-9)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop",
                                  "adam", "adamw"])
def test_network_trains_with_each_optimizer(name):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((120, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 > 0.5).astype(np.int64)
    fn.set_seed(11)
    model = fn.Sequential([fn.layers.Dense(16, activation="tanh", input_dim=4),
                           fn.layers.Dense(2, activation="softmax")], dtype="float64")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=name)
    if name in ("adagrad", "rmsprop", "adam", "adamw"):   # Keras's defaults: lr = 1e-3
        model.optimizer.learning_rate = 0.02
    else:
        model.optimizer.learning_rate = 0.1
    hist = model.fit(x, y, batch_size=16, epochs=15, verbose=0)
    loss = hist.history["loss"]
    assert loss[-1] < 0.7 * loss[0], (name, loss)


# ----------------------------------------------------------------- state across fit calls --
def _warm_data():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, 3))
    y = np.c_[np.sin(x[:, 0]) + x[:, 1] * x[:, 2], x[:, 0] - x[:, 2]]
    return x, y


def _warm_model(opt_name, seed=123):
    fn.set_seed(seed)
    model = fn.Sequential([fn.layers.Dense(6, activation="tanh", input_dim=3),
                           fn.layers.Dense(2, activation="linear")], dtype="float64")
    model.compile(loss="mse", optimizer=opt_name)
    return model


@pytest.mark.parametrize("opt_name", ["adam", "momentum"])
def test_warm_start_resumed_fit_is_bit_identical(opt_name):
    x, y = _warm_data()
    one = _warm_model(opt_name)
    one.fit(x, y, batch_size=8, epochs=4, verbose=0)           # shuffled, 5 steps/epoch
    two = _warm_model(opt_name)
    two.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert two.optimizer.iterations == 10
    two.fit(x, y, batch_size=8, epochs=4, initial_epoch=2, verbose=0)
    assert one.optimizer.iterations == two.optimizer.iterations == 20
    for a, b in zip(one.get_weights(), two.get_weights()):
        assert np.array_equal(a, b)
    for k, val in one.optimizer.variables().items():
        assert np.array_equal(val, two.optimizer.variables()[k]), k


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("opt_name", ["adam", "momentum"])
def test_warm_start_plain_fit_twice_equals_once(opt_name, shuffle):
    # Two plain fit(epochs=2) calls reproduce fit(epochs=4) exactly -- only possible if the
    # optimizer state is not reset. Unshuffled, the epoch number cannot matter; shuffled,
    # the model counts the epochs it has trained over all fit calls (models.py,
    # epochs_trained), so the second call continues the shuffle sequence too.
    x, y = _warm_data()
    one = _warm_model(opt_name)
    one.fit(x, y, batch_size=8, epochs=4, verbose=0, shuffle=shuffle)
    two = _warm_model(opt_name)
    two.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=shuffle)
    two.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=shuffle)
    assert one.optimizer.iterations == two.optimizer.iterations == 20
    for a, b in zip(one.get_weights(), two.get_weights()):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("opt_name, slot, decay", [("adam", "m", 0.9),
                                                    ("momentum", "velocity", 0.9)])
def test_second_fit_continues_the_moments(opt_name, slot, decay):
    x, y = _warm_data()
    model = _warm_model(opt_name)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert model.optimizer.iterations == 10
    state = model.optimizer.variables()[slot].copy()
    assert np.abs(state).max() > 0
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert model.optimizer.iterations == 20
    state2 = model.optimizer.variables()[slot].copy()
    assert np.abs(state2).max() > 0 and not np.array_equal(state, state2)
    # the next update starts from the stored moment, not from zero
    g = np.concatenate([gi.ravel() for gi in model.gradients(x[:8], y[:8])])
    model.train_on_batch(x[:8], y[:8])
    assert model.optimizer.iterations == 21
    new = model.optimizer.variables()[slot]
    if opt_name == "adam":
        expected = decay * state2 + (1 - decay) * g
    else:
        expected = decay * state2 - 0.01 * g          # v ← μv − ηg, η = 0.01 (default)
    np.testing.assert_allclose(new, expected, rtol=1e-12, atol=1e-15)
    # ... which differs from what a reset (zero) moment would give
    assert np.abs(new - (expected - decay * state2)).max() > 1e-6


def test_reset_moments_would_differ():
    # sanity check that the warm-start tests are sensitive: zeroing the moments between
    # the two fits changes the final weights.
    x, y = _warm_data()
    a = _warm_model("adam")
    a.fit(x, y, batch_size=8, epochs=4, verbose=0, shuffle=False)
    b = _warm_model("adam")
    b.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    state = b.optimizer.variables()
    b.optimizer.set_variables({k: (0 if k == "iterations" else np.zeros_like(val))
                               for k, val in state.items()})
    b.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    assert not all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights()))


# ------------------------------------------------------------------------ compile names --
@pytest.mark.parametrize("name, cls, hyper", [
    ("sgd", O.SGD, dict(learning_rate=0.01, momentum=0.0, nesterov=False)),
    ("momentum", O.SGD, dict(learning_rate=0.01, momentum=0.9, nesterov=False)),
    ("nesterov", O.SGD, dict(learning_rate=0.01, momentum=0.9, nesterov=True)),
    # issue 3 fixes initial_accumulator_value=0.0 (the lecture's formula; Keras uses 0.1)
    ("adagrad", O.Adagrad, dict(learning_rate=0.001, initial_accumulator_value=0.0,
                                epsilon=1e-7)),
    ("rmsprop", O.RMSprop, dict(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                                centered=False)),
    ("adam", O.Adam, dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                          amsgrad=False)),
    ("adamw", O.AdamW, dict(learning_rate=0.001, weight_decay=0.004, beta_1=0.9,
                            beta_2=0.999, epsilon=1e-7, amsgrad=False)),
])
def test_compile_names(name, cls, hyper):
    model = fn.Sequential([fn.layers.Dense(2, input_dim=3)], dtype="float64")
    model.compile(loss="mse", optimizer=name)
    opt = model.optimizer
    assert type(opt) is cls
    for k, val in hyper.items():
        assert getattr(opt, k) == val, k
    assert opt.clipnorm is None and opt.clipvalue is None and opt.global_clipnorm is None
    # each compile makes a fresh optimizer (no state shared between models)
    other = fn.Sequential([fn.layers.Dense(2, input_dim=3)], dtype="float64")
    other.compile(loss="mse", optimizer=name)
    assert other.optimizer is not opt


def test_compile_default_optimizer_is_rmsprop():
    model = fn.Sequential([fn.layers.Dense(2, input_dim=3)], dtype="float64")
    model.compile(loss="mse")
    assert type(model.optimizer) is O.RMSprop


def test_compile_accepts_an_instance_and_keeps_it():
    opt = O.Adam(0.01)
    model = fn.Sequential([fn.layers.Dense(2, input_dim=3)], dtype="float64")
    model.compile(loss="mse", optimizer=opt)
    assert model.optimizer is opt


# 'ftrl': a Keras optimizer fastnn does not have (issue 12 added 'adamax', once here).
@pytest.mark.parametrize("bad", ["ftrl", "SGDD", ""])
def test_compile_unknown_name(bad):
    model = fn.Sequential([fn.layers.Dense(2, input_dim=3)], dtype="float64")
    with pytest.raises(ValueError, match=f"unknown optimizer '{bad}'"):
        model.compile(loss="mse", optimizer=bad)


def test_compile_non_optimizer_object():
    model = fn.Sequential([fn.layers.Dense(2, input_dim=3)], dtype="float64")
    with pytest.raises(ValueError, match="unknown optimizer 3"):
        model.compile(loss="mse", optimizer=3)


# ------------------------------------------------------------------ constructor validation --
@pytest.mark.parametrize("make, exc, match", [
    (lambda: O.SGD(-0.1), ValueError, "learning_rate"),
    (lambda: O.Adam(learning_rate=-1e-3), ValueError, "learning_rate"),
    (lambda: O.Adagrad(float("nan")), ValueError, "learning_rate"),
    (lambda: O.RMSprop(float("inf")), ValueError, "learning_rate"),
    (lambda: O.Adam(beta_1=1.0), ValueError, "beta_1"),
    (lambda: O.Adam(beta_1=-0.1), ValueError, "beta_1"),
    (lambda: O.Adam(beta_2=1.0), ValueError, "beta_2"),
    (lambda: O.AdamW(beta_2=1.5), ValueError, "beta_2"),
    (lambda: O.Adam(epsilon=0.0), ValueError, "epsilon"),
    (lambda: O.Adagrad(epsilon=-1e-7), ValueError, "epsilon"),
    (lambda: O.RMSprop(epsilon=0), ValueError, "epsilon"),
    (lambda: O.RMSprop(rho=1.0), ValueError, "rho"),
    (lambda: O.RMSprop(rho=-0.5), ValueError, "rho"),
    (lambda: O.SGD(momentum=1.5), ValueError, "momentum"),
    (lambda: O.SGD(momentum=-0.1), ValueError, "momentum"),
    (lambda: O.RMSprop(momentum=2.0), ValueError, "momentum"),
    (lambda: O.Adagrad(initial_accumulator_value=-1.0), ValueError,
     "initial_accumulator_value"),
    (lambda: O.AdamW(weight_decay=-0.1), ValueError, "weight_decay"),
    (lambda: O.SGD(clipnorm=1.0, clipvalue=1.0), ValueError, "at most one of"),
    (lambda: O.Adam(clipnorm=1.0, global_clipnorm=1.0), ValueError, "at most one of"),
    (lambda: O.RMSprop(clipvalue=0.5, global_clipnorm=1.0), ValueError, "at most one of"),
    (lambda: O.SGD(clipnorm=0.0), ValueError, "clipnorm"),
    (lambda: O.SGD(clipvalue=-1.0), ValueError, "clipvalue"),
    (lambda: O.SGD(global_clipnorm=0.0), ValueError, "global_clipnorm"),
    (lambda: O.SGD(nesterov=True), ValueError, "nesterov"),
    (lambda: O.SGD(0.1, momentum=0.0, nesterov=True), ValueError, "nesterov"),
    (lambda: O.SGD("0.1"), TypeError, "learning_rate"),
    (lambda: O.SGD(None), TypeError, "learning_rate"),
    (lambda: O.Adam(beta_1="0.9"), TypeError, "beta_1"),
    (lambda: O.RMSprop(rho=[0.9]), TypeError, "rho"),
    (lambda: O.SGD(momentum=True), TypeError, "momentum"),
    (lambda: O.Adam(epsilon="tiny"), TypeError, "epsilon"),
    (lambda: O.SGD(clipnorm="1"), TypeError, "clipnorm"),
    (lambda: O.SGD(momentum=0.9, nesterov=1), TypeError, "nesterov"),
    (lambda: O.RMSprop(centered="yes"), TypeError, "centered"),
    (lambda: O.Adam(amsgrad=None), TypeError, "amsgrad"),
])
def test_constructor_validation(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("make", [
    lambda: O.SGD(0.0), lambda: O.SGD(momentum=1.0), lambda: O.Adam(beta_1=0.0),
    lambda: O.RMSprop(rho=0.0), lambda: O.SGD(0.1, momentum=0.5, nesterov=True),
    lambda: O.Adagrad(initial_accumulator_value=0.0), lambda: O.AdamW(weight_decay=0.0),
    lambda: O.Adam(np.float32(0.01)), lambda: O.SGD(1),
])
def test_constructor_accepts_edge_values(make):
    make()


def test_learning_rate_setter_validates():
    opt = O.Adam()
    opt.learning_rate = 0.5
    assert opt.learning_rate == 0.5
    with pytest.raises(ValueError, match="learning_rate"):
        opt.learning_rate = -1.0


def test_build_rejects_a_different_model():
    opt = O.Adam()
    params = np.zeros(5)
    opt.build(params, np.array([0, 5], np.int64))
    opt.build(params, np.array([0, 5], np.int64))     # same model (same buffer) again: fine
    with pytest.raises(ValueError, match="already used"):
        opt.build(np.zeros(6), np.array([0, 6], np.int64))
    with pytest.raises(ValueError, match="already used"):
        opt.build(np.zeros(5, np.float32), np.array([0, 5], np.int64))


def test_one_optimizer_cannot_silently_serve_two_models():
    opt = O.Adam(0.01)
    x = np.random.default_rng(0).standard_normal((8, 3))
    y = np.ones((8, 2))
    a = fn.Sequential([fn.layers.Dense(2, input_dim=3)], dtype="float64")
    a.compile(loss="mse", optimizer=opt)
    a.fit(x, y, epochs=1, verbose=0)
    a.compile(loss="mse", optimizer=opt)   # re-compiling the same model is fine
    b = fn.Sequential([fn.layers.Dense(2, input_dim=3)], dtype="float64")
    # The message of build() ("this optimizer is already used by a model ...; make a new
    # optimizer for this model") and Keras both say: one optimizer, one set of weights.
    with pytest.raises(ValueError, match="already used"):
        b.compile(loss="mse", optimizer=opt)
        b.fit(x, y, epochs=1, verbose=0)  # b's first Adam step would use a's m, v and t=2


# --------------------------------------------------------------------- config round trip --
CONFIG_CASES = {
    "sgd": lambda: O.SGD(0.05),
    "sgd-momentum-clipnorm": lambda: O.SGD(0.05, momentum=0.7, clipnorm=2.0),
    "sgd-nesterov": lambda: O.SGD(0.05, momentum=0.6, nesterov=True, clipvalue=0.3),
    "adagrad": lambda: O.Adagrad(0.2, initial_accumulator_value=0.1, epsilon=1e-5,
                                 global_clipnorm=3.0),
    "rmsprop": lambda: O.RMSprop(0.003, rho=0.8, momentum=0.4, epsilon=1e-6,
                                 centered=True),
    "adam": lambda: O.Adam(0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-6, amsgrad=True),
    "adamw": lambda: O.AdamW(0.02, weight_decay=0.03, beta_1=0.85, amsgrad=True,
                             clipnorm=1.0),
    "sgd-exponential": lambda: O.SGD(S.ExponentialDecay(0.1, 7, 0.9, staircase=True),
                                     momentum=0.9),
    "adam-piecewise": lambda: O.Adam(S.PiecewiseConstantDecay([3, 8], [0.1, 0.05, 0.01])),
    "rmsprop-cosine": lambda: O.RMSprop(S.CosineDecay(0.01, 9, alpha=0.2)),
    "adamw-cosine-warmup": lambda: O.AdamW(S.CosineDecay(0.0, 20, warmup_target=0.05,
                                                         warmup_steps=4),
                                           weight_decay=0.01),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_config_round_trip(case):
    opt = CONFIG_CASES[case]()
    cfg = opt.get_config()
    # configs are plain data: they survive JSON
    cfg_json = json.loads(json.dumps(cfg))
    for source in (cfg, cfg_json):
        new = fn.optimizers.from_config(source)
        assert type(new) is type(opt)
        assert new.get_config() == cfg
        if isinstance(opt.learning_rate, S.LearningRateSchedule):
            assert type(new.learning_rate) is type(opt.learning_rate)
            for k in [0, 1, 3, 4, 8, 9, 15, 50]:
                assert new.learning_rate(k) == opt.learning_rate(k)
        # the rebuilt optimizer takes exactly the same steps
        w1, w2 = W0.copy(), W0.copy()
        opt1, opt2 = CONFIG_CASES[case](), new
        opt1.build(w1, BOUNDS)
        opt2.build(w2, BOUNDS)
        for k in range(12):
            opt1.apply(w1, grad_at(w1, k))
            opt2.apply(w2, grad_at(w2, k))
        assert np.array_equal(w1, w2)
    # from_config does not consume the caller's dict
    assert cfg == opt.get_config()


def test_config_of_callable_learning_rate():
    opt = O.Adam(lambda step: 0.01)
    cfg = opt.get_config()
    assert cfg["learning_rate"] is None
    with pytest.raises(ValueError, match="callable"):
        fn.optimizers.from_config(cfg)


def test_from_config_unknown_names():
    with pytest.raises(ValueError, match="unknown optimizer 'ftrl'"):
        fn.optimizers.from_config({"name": "ftrl", "learning_rate": 0.1})
    cfg = O.SGD(S.ExponentialDecay(0.1, 5, 0.5)).get_config()
    cfg["learning_rate"]["class_name"] = "PolynomialDecay"
    with pytest.raises(ValueError, match="PolynomialDecay"):
        fn.optimizers.from_config(cfg)


def test_variables_are_live_and_restorable():
    opt = O.Adam(0.05)
    w = W0.copy()
    opt.build(w, BOUNDS)
    for k in range(10):
        opt.apply(w, grad_at(w, k))
    saved = {k: (np.array(val) if k != "iterations" else val)
             for k, val in opt.variables().items()}
    w_saved = w.copy()
    for k in range(10, 20):
        opt.apply(w, grad_at(w, k))
    # restore into a fresh optimizer and replay: identical
    fresh = O.Adam(0.05)
    w2 = w_saved.copy()
    fresh.build(w2, BOUNDS)
    fresh.set_variables(saved)
    assert fresh.iterations == 10
    for k in range(10, 20):
        fresh.apply(w2, grad_at(w2, k))
    assert np.array_equal(w, w2)
