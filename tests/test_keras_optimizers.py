"""Tests for the Keras 3 optimizers Nadam, Adamax, Adadelta and Lion (issue 12, item 6).

1. Trajectories on tests/test_optimizers.py's problem (11 parameters in 3 arrays, a noisy
   quadratic, 200 steps, float64 and float32, every clip and several schedules) next to a
   plain-NumPy reference written from Keras 3's formulas (not from the kernels), with that
   module's tolerances and their reasons (WTOL).
2. Against torch.optim where torch has the same rule (skipped without torch):
   NAdam(momentum_decay=1.0) is Keras 3's Nadam (Keras 3's schedule is 0.96^t, torch's is
   0.96^(t·momentum_decay)); Adadelta is the same rule; Adamax differs only in where ε
   goes (torch: max(β₂u, |g| + ε), Keras: u + ε in the denominator), so it is compared
   with ε = 1e-16, where the two agree to rounding. torch has no Lion.
3. Per-thread chunks give the bit-identical update; state saves, loads and resumes
   bit-identically (Nadam's running product Π u_t included); compile names, defaults,
   configs, validation.
"""
import copy
import json
import pickle

import numpy as np
import pytest

import fastnn as fn
from fastnn import optimizers as O
from fastnn import schedules as S
from fastnn._core import optim as K
from test_kernels import (CONDITIONING, OPT_SIZES, _cond_kwargs, _condition_ref, assert_close,
                          ro, rng_for)
from reference_optimizers import RefAdadelta, RefAdamax, RefLion, RefNadam, constant
from test_optimizers import (BOUNDS, CLIPS, DTYPES, N, SCHEDULES, STEPS, W0,
                             Conditioning, assert_slots, assert_trajectory, grad_at,
                             run_trajectory)


# name: (base learning rate, make optimizer(lr, **clip), make reference(lr function))
BASE = {
    "nadam": (0.05, lambda lr, **c: O.Nadam(lr, **c), lambda f: RefNadam(f)),
    # Non-default hyper-parameters so swapped or ignored ones show.
    "nadam-betas": (0.05, lambda lr, **c: O.Nadam(lr, beta_1=0.7, beta_2=0.95, epsilon=1e-3,
                                                  **c),
                    lambda f: RefNadam(f, 0.7, 0.95, 1e-3)),
    "adamax": (0.05, lambda lr, **c: O.Adamax(lr, **c), lambda f: RefAdamax(f)),
    "adamax-betas": (0.05, lambda lr, **c: O.Adamax(lr, beta_1=0.8, beta_2=0.9,
                                                    epsilon=1e-3, **c),
                     lambda f: RefAdamax(f, 0.8, 0.9, 1e-3)),
    # lr = 1 is the paper's Adadelta; a larger epsilon makes the first steps visible.
    "adadelta": (1.0, lambda lr, **c: O.Adadelta(lr, epsilon=1e-3, **c),
                 lambda f: RefAdadelta(f, 0.95, 1e-3)),
    "adadelta-rho": (0.5, lambda lr, **c: O.Adadelta(lr, rho=0.8, epsilon=1e-2, **c),
                     lambda f: RefAdadelta(f, 0.8, 1e-2)),
    "lion": (0.01, lambda lr, **c: O.Lion(lr, **c), lambda f: RefLion(f)),
    "lion-betas": (0.01, lambda lr, **c: O.Lion(lr, beta_1=0.6, beta_2=0.9, **c),
                   lambda f: RefLion(f, 0.6, 0.9)),
    "lion-weight-decay": (0.01, lambda lr, **c: O.Lion(lr, weight_decay=0.5, **c),
                          lambda f: RefLion(f, weight_decay=0.5)),
}


def _trajectory_params():
    out = [pytest.param(name, None, None, id=name) for name in BASE]
    out += [pytest.param(name, clip, None, id=f"{name}-{clip}")
            for name in BASE for clip in CLIPS]
    out += [pytest.param(name, None, sched, id=f"{name}-{sched}")
            for name in ["nadam", "adamax", "adadelta", "lion"] for sched in SCHEDULES]
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("name, clip, schedule", _trajectory_params())
def test_trajectory_matches_reference(name, clip, schedule, dtype):
    lr, make_opt, make_ref = BASE[name]
    cond = Conditioning(clip, CLIPS.get(clip))
    if schedule is None:
        opt_lr, ref_lr = lr, constant(lr)
    else:
        make_sched, make_ref_lr = SCHEDULES[schedule]
        opt_lr, ref_lr = make_sched(lr), make_ref_lr(lr)
    opt = make_opt(opt_lr, **({clip: CLIPS[clip]} if clip else {}))
    ref = make_ref(ref_lr)
    got, want = run_trajectory(opt, ref, dtype, cond)
    assert_trajectory(got, want, dtype)
    assert_slots(opt, ref, dtype)
    if clip:
        assert cond.hit > 0 and cond.miss > 0, "the clip threshold must bite only sometimes"
    # the trajectory actually moved (not a vacuous comparison of W0 with W0)
    assert np.abs(got[-1] - W0).max() > 0.05


def test_nadam_first_step_by_hand():
    # t = 1 (Keras's defaults β₁ = 0.9, β₂ = 0.999): Π₁ = u₁, Π₂ = u₁u₂; m = (1−β₁)g,
    # v = (1−β₂)g², so v̂ = g² and √v̂ = |g|.
    b1, lr, eps = 0.9, 0.1, 1e-7
    u1, u2 = b1 * (1 - 0.5 * 0.96), b1 * (1 - 0.5 * 0.96 ** 2)
    g = np.array([2.0, -0.25, 1e-3])
    m_hat = u2 * (1 - b1) * g / (1 - u1 * u2) + (1 - u1) * g / (1 - u1)
    opt = O.Nadam(lr)
    w = np.zeros(3)
    opt.build(w, np.array([0, 3], np.int64))
    opt.apply(w, g.copy())
    np.testing.assert_allclose(w, -lr * m_hat / (np.abs(g) + eps), rtol=1e-14)


def test_lion_step_is_the_sign_and_zero_stays():
    opt = O.Lion(0.125)
    w = np.zeros(4)
    opt.build(w, np.array([0, 4], np.int64))
    opt.apply(w, np.array([3.0, -1e-30, 0.0, -7.0]))
    np.testing.assert_array_equal(w, [-0.125, 0.125, 0.0, 0.125])


# --------------------------------------------------------------------------- torch --
def _torch_trajectory(make_torch_opt, dtype, steps=STEPS):
    torch = pytest.importorskip("torch")
    tdtype = {np.float64: torch.float64, np.float32: torch.float32}[dtype]
    # torch keeps its step scalars (NAdam's running product Π u_t) in the default dtype:
    # float64 for the float64 run, as fastnn keeps them in double.
    default = torch.get_default_dtype()
    torch.set_default_dtype(tdtype)
    try:
        p = torch.nn.Parameter(torch.tensor(W0.astype(dtype), dtype=tdtype))
        opt = make_torch_opt([p])
        out = np.empty((steps, N))
        for k in range(steps):
            g = grad_at(p.detach().numpy().astype(np.float64), k).astype(dtype)
            p.grad = torch.tensor(g, dtype=tdtype)
            opt.step()
            out[k] = p.detach().numpy()
    finally:
        torch.set_default_dtype(default)
    return out


TORCH_CASES = {
    # torch's 0.96^(t·momentum_decay) is Keras 3's 0.96^t when momentum_decay = 1.
    "nadam": (lambda: O.Nadam(0.05),
              lambda t, ps: t.optim.NAdam(ps, lr=0.05, betas=(0.9, 0.999), eps=1e-7,
                                          momentum_decay=1.0)),
    "nadam-betas": (lambda: O.Nadam(0.02, beta_1=0.7, beta_2=0.95, epsilon=1e-4),
                    lambda t, ps: t.optim.NAdam(ps, lr=0.02, betas=(0.7, 0.95), eps=1e-4,
                                                momentum_decay=1.0)),
    "adadelta": (lambda: O.Adadelta(1.0, rho=0.9, epsilon=1e-6),
                 lambda t, ps: t.optim.Adadelta(ps, lr=1.0, rho=0.9, eps=1e-6)),
    # ε is placed differently (see the module docstring); 1e-16 makes that invisible.
    "adamax": (lambda: O.Adamax(0.05, beta_1=0.8, beta_2=0.99, epsilon=1e-16),
               lambda t, ps: t.optim.Adamax(ps, lr=0.05, betas=(0.8, 0.99), eps=1e-16)),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("case", list(TORCH_CASES))
def test_trajectory_matches_torch(case, dtype):
    torch = pytest.importorskip("torch")
    make_opt, make_torch = TORCH_CASES[case]
    want = _torch_trajectory(lambda ps: make_torch(torch, ps), dtype)
    opt = make_opt()
    w = W0.astype(dtype)
    opt.build(w, BOUNDS)
    got = np.empty((STEPS, N))
    for k in range(STEPS):
        opt.apply(w, grad_at(w.astype(np.float64), k).astype(dtype))
        got[k] = w
    # Both sides run in `dtype` with different evaluation orders (torch: lerp, addcdiv;
    # here b1*m + (1-b1)*g, one division): WTOL's per-step-rounding argument holds.
    assert_trajectory(got, want, dtype)
    assert np.abs(got[-1] - W0).max() > 0.05


# --------------------------------------------------------- threads, state, resume --
NEW = {"nadam": lambda: O.Nadam(0.01), "adamax": lambda: O.Adamax(0.01),
       "adadelta": lambda: O.Adadelta(1.0), "lion": lambda: O.Lion(0.001, weight_decay=0.1)}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(NEW))
def test_per_thread_chunks_are_bit_identical(name, dtype):
    size = 300_001                      # > 2 chunks of fastnn._parallel.MIN_ELEMENTS
    rng = np.random.default_rng(4)
    w0 = rng.standard_normal(size).astype(dtype)
    bounds = np.array([0, 1000, size], np.int64)
    grads = [rng.standard_normal(size).astype(dtype) for _ in range(6)]
    results = []
    before = fn.get_num_threads()
    try:
        for threads in (1, 3):
            fn.set_num_threads(threads)
            opt, w = NEW[name](), w0.copy()
            opt.build(w, bounds)
            assert len(opt._chunk_views(w, grads[0])) == (1 if threads == 1 else 3)
            for g in grads:
                assert opt.apply(w, g.copy()) == 0
            results.append((w, {k: np.array(a) for k, a in opt.variables().items()
                                if k != "iterations"}))
    finally:
        fn.set_num_threads(before)
    (w1, s1), (w3, s3) = results
    assert np.array_equal(w1, w3)
    for k in s1:
        assert np.array_equal(s1[k], s3[k]), k


@pytest.mark.parametrize("name", list(NEW))
def test_non_finite_updates_are_counted(name):
    opt = NEW[name]()
    w = np.array([1.0, 2.0, 3.0, 4.0])
    opt.build(w, np.array([0, 4], np.int64))
    assert opt.apply(w, np.array([0.5, np.nan, -0.5, 1.0])) >= 1
    assert not np.isfinite(w[1])


def _model(opt_name, seed=5):
    fn.set_seed(seed)
    m = fn.Sequential([fn.layers.Dense(6, activation="tanh", input_dim=3),
                       fn.layers.Dense(2)], dtype="float64")
    m.compile(loss="mse", optimizer=opt_name)
    return m


def _data():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((40, 3))
    return x, np.c_[x[:, 0] * x[:, 1], x[:, 2]]


@pytest.mark.parametrize("opt_name", ["nadam", "adamax", "adadelta", "lion"])
def test_save_load_resume_is_bit_identical(opt_name, tmp_path):
    x, y = _data()
    one = _model(opt_name)
    one.fit(x, y, batch_size=8, epochs=4, verbose=0)
    two = _model(opt_name)
    two.fit(x, y, batch_size=8, epochs=2, verbose=0)
    two.save(tmp_path / "m.fnn")
    three = fn.load_model(tmp_path / "m.fnn")
    assert type(three.optimizer) is type(one.optimizer)
    assert three.optimizer.iterations == 10
    three.fit(x, y, batch_size=8, epochs=4, initial_epoch=2, verbose=0)
    assert three.optimizer.iterations == one.optimizer.iterations == 20
    for a, b in zip(one.get_weights(), three.get_weights()):
        assert np.array_equal(a, b)
    for k, val in one.optimizer.variables().items():
        assert np.array_equal(val, three.optimizer.variables()[k]), k


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_nadam_copy_continues_bit_identically(how):
    x, y = _data()
    one = _model("nadam")
    one.fit(x, y, batch_size=8, epochs=2, verbose=0)
    two = pickle.loads(pickle.dumps(one)) if how == "pickle" else copy.deepcopy(one)
    for m in (one, two):
        m.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for a, b in zip(one.get_weights(), two.get_weights()):
        assert np.array_equal(a, b)


def test_nadam_product_is_restored_from_iterations():
    # Π_t is not a slot: set_variables recomputes it, bit-identically, from iterations,
    # and a restored optimizer continues exactly (a reset product would not).
    w = W0.copy()
    opt = O.Nadam(0.05)
    opt.build(w, BOUNDS)
    for k in range(30):
        opt.apply(w, grad_at(w, k))
    saved = {k: (np.array(val) if k != "iterations" else val)
             for k, val in opt.variables().items()}
    w_saved = w.copy()
    fresh = O.Nadam(0.05)
    w2 = w_saved.copy()
    fresh.build(w2, BOUNDS)
    fresh.set_variables(saved)
    assert fresh._u_product == opt._u_product
    for k in range(30, 40):
        opt.apply(w, grad_at(w, k))
        fresh.apply(w2, grad_at(w2, k))
    assert np.array_equal(w, w2)
    stale = O.Nadam(0.05)                           # same slots, product left at 1
    w3 = w_saved.copy()
    stale.build(w3, BOUNDS)
    for key, val in saved.items():
        if key != "iterations":
            stale.variables()[key][...] = val
    stale.iterations = 30
    stale.apply(w3, grad_at(w3, 30))
    # the stale product makes the m̂ correction wrong by a visible amount
    fresh2 = O.Nadam(0.05)
    w4 = w_saved.copy()
    fresh2.build(w4, BOUNDS)
    fresh2.set_variables(saved)
    fresh2.apply(w4, grad_at(w4, 30))
    assert np.abs(w3 - w4).max() > 1e-4


def test_nadam_product_underflow_is_handled():
    opt = O.Nadam(0.01)
    w = np.zeros(2)
    opt.build(w, np.array([0, 2], np.int64))
    # Π_t falls into the subnormals and there stops changing (x·β₁ rounds back to x);
    # restoring a long run must neither take 10⁵ Python steps nor differ from the product
    # the run itself kept.
    t = 100_000
    opt.set_variables({"iterations": t, "m": np.zeros(2), "v": np.ones(2)})
    product = 1.0
    for i in range(1, t + 1):
        product *= 0.9 * (1 - 0.5 * 0.96 ** i)
    assert opt._u_product == product < 1e-300
    assert opt.apply(w, np.array([1.0, -1.0])) == 0 and np.isfinite(w).all()


@pytest.mark.parametrize("opt_name", ["nadam", "adamax", "adadelta", "lion"])
def test_network_trains(opt_name):
    x, y = _data()
    lr = {"nadam": 0.01, "adamax": 0.02, "adadelta": 1.0, "lion": 0.003}[opt_name]
    model = _model(getattr(O, {"nadam": "Nadam", "adamax": "Adamax", "adadelta": "Adadelta",
                               "lion": "Lion"}[opt_name])(lr))
    before = model.evaluate(x, y)
    model.fit(x, y, batch_size=8, epochs=60, verbose=0)
    # Adadelta's steps start at √ε·g/|g| and grow slowly (observed: 0.62 of the initial
    # loss after 60 epochs, against 0.16-0.4 for the others).
    assert model.evaluate(x, y) < (0.7 if opt_name == "adadelta" else 0.5) * before


# --------------------------------------------------------------- names and defaults --
@pytest.mark.parametrize("name, cls, hyper", [
    ("nadam", O.Nadam, dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)),
    ("adamax", O.Adamax, dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)),
    ("adadelta", O.Adadelta, dict(learning_rate=0.001, rho=0.95, epsilon=1e-7)),
    ("lion", O.Lion, dict(learning_rate=0.001, beta_1=0.9, beta_2=0.99, weight_decay=None)),
])
def test_compile_names_and_keras3_defaults(name, cls, hyper):
    model = fn.Sequential([fn.layers.Dense(2, input_dim=3)], dtype="float64")
    model.compile(loss="mse", optimizer=name.upper() if name == "nadam" else name)
    opt = model.optimizer
    assert type(opt) is cls
    for k, val in hyper.items():
        assert getattr(opt, k) == val, k
    assert cls().get_config() == {"name": name, "clipnorm": None, "clipvalue": None,
                                  "global_clipnorm": None, **hyper}


CONFIG_CASES = {
    "nadam": lambda: O.Nadam(0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-6, clipnorm=1.0),
    "adamax": lambda: O.Adamax(S.CosineDecay(0.01, 9, alpha=0.2), beta_2=0.95),
    "adadelta": lambda: O.Adadelta(1.0, rho=0.9, epsilon=1e-6, global_clipnorm=3.0),
    "lion": lambda: O.Lion(S.ExponentialDecay(0.01, 5, 0.5), beta_1=0.95, weight_decay=0.1,
                           clipvalue=0.5),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_config_round_trip(case):
    opt = CONFIG_CASES[case]()
    cfg = opt.get_config()
    for source in (cfg, json.loads(json.dumps(cfg))):
        new = fn.optimizers.from_config(source)
        assert type(new) is type(opt) and new.get_config() == cfg
        w1, w2 = W0.copy(), W0.copy()
        opt1 = CONFIG_CASES[case]()
        opt1.build(w1, BOUNDS)
        new.build(w2, BOUNDS)
        for k in range(12):
            opt1.apply(w1, grad_at(w1, k))
            new.apply(w2, grad_at(w2, k))
        assert np.array_equal(w1, w2)


@pytest.mark.parametrize("cls", [O.Nadam, O.Adamax, O.Adadelta, O.Lion])
def test_keras2_lr_and_decay_work_on_the_new_optimizers(cls):
    with pytest.warns(DeprecationWarning):
        opt = cls(lr=0.3, decay=0.1)
    assert opt.current_learning_rate() == 0.3
    assert type(opt.learning_rate) is S.InverseTimeDecay
    assert opt.learning_rate(10) == pytest.approx(0.3 / 2, rel=1e-15)


@pytest.mark.parametrize("make, exc, match", [
    (lambda: O.Nadam(-0.1), ValueError, "learning_rate"),
    (lambda: O.Nadam(beta_1=1.0), ValueError, "Nadam: beta_1"),
    (lambda: O.Nadam(beta_2=-0.1), ValueError, "Nadam: beta_2"),
    (lambda: O.Nadam(epsilon=0.0), ValueError, "Nadam: epsilon"),
    (lambda: O.Nadam(beta_1="0.9"), TypeError, "Nadam: beta_1"),
    (lambda: O.Nadam(clipnorm=1.0, clipvalue=1.0), ValueError, "at most one of"),
    (lambda: O.Adamax(beta_1=1.5), ValueError, "Adamax: beta_1"),
    (lambda: O.Adamax(beta_2=1.0), ValueError, "Adamax: beta_2"),
    (lambda: O.Adamax(epsilon=-1e-7), ValueError, "Adamax: epsilon"),
    (lambda: O.Adamax(epsilon="small"), TypeError, "Adamax: epsilon"),
    (lambda: O.Adadelta(rho=1.0), ValueError, "Adadelta: rho"),
    (lambda: O.Adadelta(rho=float("nan")), ValueError, "Adadelta: rho"),
    (lambda: O.Adadelta(epsilon=0), ValueError, "Adadelta: epsilon"),
    (lambda: O.Adadelta(rho=[0.9]), TypeError, "Adadelta: rho"),
    (lambda: O.Lion(beta_1=0.0), ValueError, "Lion: beta_1"),
    (lambda: O.Lion(beta_1=1.01), ValueError, "Lion: beta_1"),
    (lambda: O.Lion(beta_2=-0.5), ValueError, "Lion: beta_2"),
    (lambda: O.Lion(weight_decay=-0.1), ValueError, "Lion: weight_decay"),
    (lambda: O.Lion(weight_decay="0.1"), TypeError, "Lion: weight_decay"),
    (lambda: O.Lion(clipvalue=0.0), ValueError, "clipvalue"),
    (lambda: O.Lion(momentum=0.9), TypeError, "momentum"),
])
def test_constructor_validation(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("make", [
    lambda: O.Nadam(beta_1=0.0), lambda: O.Adamax(beta_1=0.0, beta_2=0.0),
    lambda: O.Adadelta(rho=0.0), lambda: O.Lion(beta_1=1.0, beta_2=1.0),
    lambda: O.Lion(weight_decay=0.0), lambda: O.Adamax(np.float32(0.01)),
])
def test_constructor_accepts_edge_values(make):
    opt = make()
    w = W0.copy()
    opt.build(w, BOUNDS)
    for k in range(5):
        assert opt.apply(w, grad_at(w, k)) == 0
    assert np.isfinite(w).all()


# ------------------------------------------------------- the kernels, one call at a time --
# As tests/test_kernels.py does for the other update kernels: a few calls on odd sizes in
# both dtypes, read-only gradients, every conditioning, against float64 NumPy from the same
# dtype-rounded inputs, with its assert_close (RTOL relative to |value| + 1).
KERNELS = ["nadam", "adamax", "adadelta", "lion", "lion_wd"]


def _kernel_steps(name, dtype, size, cond, rng, steps=4):
    w = rng.standard_normal(size).astype(dtype)
    grads = [(rng.standard_normal(size) * 2.0 ** -s).astype(dtype) for s in range(steps)]
    w64 = w.astype(np.float64)
    # exactly representable hyper-parameters, so both dtypes use the same values
    lr, b1, b2, rho, eps, wd = 0.125, 0.875, 0.96875, 0.875, 2.0 ** -20, 0.25
    kw = _cond_kwargs(cond)
    rate = constant(lr)
    decay = wd if name == "lion_wd" else 0.0
    ref = {"nadam": lambda: RefNadam(rate, b1, b2, eps),
           "adamax": lambda: RefAdamax(rate, b1, b2, eps),
           "adadelta": lambda: RefAdadelta(rate, rho, eps)}.get(
               name, lambda: RefLion(rate, b1, b2, decay))()
    ref.start(w64)
    slots = [np.zeros(size, dtype) for _ in ref.slots()]
    prod = 1.0
    ambiguous = np.zeros(size, bool)
    for t, g in enumerate(grads, start=1):
        gc = _condition_ref(g.astype(np.float64), cond)
        if name == "nadam":
            u_t, u_next = b1 * (1 - 0.5 * 0.96 ** t), b1 * (1 - 0.5 * 0.96 ** (t + 1))
            prod *= u_t
            bad = K.nadam(w, ro(g), slots[0], slots[1], lr, b1, b2, eps, u_t, u_next, prod,
                          prod * u_next, 1 - b2 ** t, **kw)
        elif name == "adamax":
            bad = K.adamax(w, ro(g), slots[0], slots[1], lr, b1, b2, eps, 1 - b1 ** t, **kw)
        elif name == "adadelta":
            bad = K.adadelta(w, ro(g), slots[0], slots[1], lr, rho, eps, **kw)
        else:
            bad = K.lion(w, ro(g), slots[0], lr, b1, b2, decay, **kw)
            # sign() is discontinuous: where c is within rounding of 0 the dtype's sign may
            # differ from float64's; such entries are excluded (and must be rare).
            ambiguous |= np.abs(ref.direction(gc)) <= 1e-5 * (np.abs(ref.m) + np.abs(gc))
        w64 = ref.step(w64, gc, t - 1)
        assert bad == 0
    assert ambiguous.sum() <= max(1, size // 100)
    keep = ~ambiguous
    return [("w", w[keep], w64[keep])] + [(f"slot {slot}", s, r) for s, (slot, r)
                                          in zip(slots, ref.slots().items())]


@pytest.mark.parametrize("cond", list(CONDITIONING))
@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_update_kernels(dtype, name, cond):
    for size in OPT_SIZES:
        rng = rng_for("keras-opt", dtype, name, cond, size)
        for what, got, expected in _kernel_steps(name, dtype, size, CONDITIONING[cond], rng):
            # A few element-wise steps: each adds a few roundings of the magnitudes
            # involved, so the error is a small multiple of eps * (|value| + 1).
            assert_close(got, expected, np.abs(expected) + 1.0, dtype,
                         f"{name} {cond} size={size} {what}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_update_kernels_accept_empty_arrays(dtype):
    e = np.empty(0, dtype)
    assert K.nadam(e, ro(e), e, e, 0.1, 0.9, 0.999, 1e-7, 0.5, 0.5, 0.5, 0.25, 0.1) == 0
    assert K.adamax(e, ro(e), e, e, 0.1, 0.9, 0.999, 1e-7, 0.1) == 0
    assert K.adadelta(e, ro(e), e, e, 0.1, 0.9, 1e-7) == 0
    assert K.lion(e, ro(e), e, 0.1, 0.9, 0.99) == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_update_kernels_refuse_mixed_dtypes_and_strides(dtype):
    other = np.float64 if dtype == np.float32 else np.float32
    w, g = np.zeros(6, dtype), np.ones(6, other)
    with pytest.raises((TypeError, ValueError)):
        K.lion(w, g, np.zeros(6, dtype), 0.1, 0.9, 0.99)
    with pytest.raises(ValueError):
        K.adamax(w, np.ones(12, dtype)[::2], np.zeros(6, dtype), np.zeros(6, dtype), 0.1,
                 0.9, 0.999, 1e-7, 0.1)
