"""NumPy references of every optimizer update rule, written from the formulas (Keras 3's),
not from the kernels: the one place tests take an update rule from. Used by
tests/test_kernels.py and tests/test_keras_optimizers.py (a few steps of each kernel on
odd sizes) and by tests/test_optimizers.py and tests/test_keras_optimizers.py (200-step
trajectories of the optimizers).

Each reference is built with ``lr``, a function of k (the number of updates done so far),
and the rule's hyper-parameters; ``step(w, g, k)`` returns the new weights from the
already conditioned gradient g (float64 arrays; the step count t = k + 1), and ``slots()``
the state under the optimizer's slot names. The state takes w's shape at the first step
(``start(w)`` does it earlier, to read the initial state).
"""
import numpy as np


class Reference:
    """The state's names and initial values: {attribute: initial value}."""

    initial = {}

    def start(self, w):
        for name, value in self.initial.items():
            setattr(self, name, np.full(np.shape(w), value, dtype=np.float64))
        self.started = True

    def step(self, w, g, k):
        if not getattr(self, "started", False):
            self.start(w)
        return self.update(w, g, k)


class RefSGD(Reference):
    """v ← μ·v − η·g; w ← w + v.  Nesterov: w ← w + μ·v − η·g (new v).  Plain: w ← w − η·g."""

    initial = {"v": 0.0}

    def __init__(self, lr, momentum=0.0, nesterov=False):
        self.lr, self.mu, self.nesterov = lr, momentum, nesterov

    def update(self, w, g, k):
        eta = self.lr(k)
        if self.mu == 0:
            return w - eta * g
        self.v = self.mu * self.v - eta * g
        return w + (self.mu * self.v - eta * g if self.nesterov else self.v)

    def slots(self):
        return {"velocity": self.v} if self.mu else {}


class RefAdagrad(Reference):
    """G ← G + g²; w ← w − η·g / (√G + ε), G starting at initial_accumulator_value."""

    def __init__(self, lr, initial=0.0, eps=1e-7):
        self.lr, self.eps = lr, eps
        self.initial = {"G": initial}

    def update(self, w, g, k):
        self.G = self.G + g * g
        return w - self.lr(k) * g / (np.sqrt(self.G) + self.eps)

    def slots(self):
        return {"accumulator": self.G}


class RefRMSprop(Reference):
    """s ← ρs + (1−ρ)g²; step = η·g / (√s + ε) (centered: √(s − ḡ²) with ḡ ← ρḡ + (1−ρ)g,
    s − ḡ² ≥ 0 in exact arithmetic, so rounding below 0 counts as 0);
    momentum μ > 0: v ← μ·v + step; w ← w − v, else w ← w − step."""

    initial = {"s": 0.0, "gbar": 0.0, "v": 0.0}

    def __init__(self, lr, rho=0.9, momentum=0.0, eps=1e-7, centered=False):
        self.lr, self.rho, self.mu, self.eps, self.centered = lr, rho, momentum, eps, centered

    def update(self, w, g, k):
        self.s = self.rho * self.s + (1 - self.rho) * g * g
        if self.centered:
            self.gbar = self.rho * self.gbar + (1 - self.rho) * g
            denom = np.sqrt(np.maximum(self.s - self.gbar ** 2, 0.0))
        else:
            denom = np.sqrt(self.s)
        step = self.lr(k) * g / (denom + self.eps)
        if self.mu > 0:
            self.v = self.mu * self.v + step
            step = self.v
        return w - step

    def slots(self):
        out = {"mean_square": self.s}
        if self.centered:
            out["mean_grad"] = self.gbar
        if self.mu > 0:
            out["velocity"] = self.v
        return out


class RefAdam(Reference):
    """(AdamW: w ← w − η·λ·w first.) m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
    w ← w − η·m̂/(√v̂ + ε), m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ), t from 1; amsgrad uses the
    running maximum of v in place of v."""

    initial = {"m": 0.0, "v": 0.0, "vmax": 0.0}

    def __init__(self, lr, beta_1=0.9, beta_2=0.999, eps=1e-7, amsgrad=False,
                 weight_decay=0.0):
        self.lr, self.b1, self.b2, self.eps = lr, beta_1, beta_2, eps
        self.amsgrad, self.wd = amsgrad, weight_decay

    def update(self, w, g, k):
        eta, t = self.lr(k), k + 1
        if self.wd:
            w = w - eta * self.wd * w
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        v = self.v
        if self.amsgrad:
            self.vmax = np.maximum(self.vmax, self.v)
            v = self.vmax
        m_hat = self.m / (1 - self.b1 ** t)
        v_hat = v / (1 - self.b2 ** t)
        return w - eta * m_hat / (np.sqrt(v_hat) + self.eps)

    def slots(self):
        out = {"m": self.m, "v": self.v}
        if self.amsgrad:
            out["v_max"] = self.vmax
        return out


class RefNadam(Reference):
    """Keras 3: u_t = β₁(1 − ½·0.96ᵗ), Π_t = Π_{i≤t} u_i; m ← β₁m + (1−β₁)g;
    v ← β₂v + (1−β₂)g²; m̂ = u_{t+1}m/(1 − Π_{t+1}) + (1 − u_t)g/(1 − Π_t);
    v̂ = v/(1 − β₂ᵗ); w ← w − η·m̂/(√v̂ + ε)."""

    initial = {"m": 0.0, "v": 0.0}

    def __init__(self, lr, beta_1=0.9, beta_2=0.999, eps=1e-7):
        self.lr, self.b1, self.b2, self.eps = lr, beta_1, beta_2, eps
        self.prod = 1.0

    def update(self, w, g, k):
        t = k + 1
        u_t = self.b1 * (1 - 0.5 * 0.96 ** t)
        u_next = self.b1 * (1 - 0.5 * 0.96 ** (t + 1))
        self.prod *= u_t
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        m_hat = u_next * self.m / (1 - self.prod * u_next) + (1 - u_t) * g / (1 - self.prod)
        v_hat = self.v / (1 - self.b2 ** t)
        return w - self.lr(k) * m_hat / (np.sqrt(v_hat) + self.eps)

    def slots(self):
        return {"m": self.m, "v": self.v}


class RefAdamax(Reference):
    """m ← β₁m + (1−β₁)g; u ← max(β₂u, |g|); w ← w − η/(1−β₁ᵗ)·m/(u + ε)."""

    initial = {"m": 0.0, "u": 0.0}

    def __init__(self, lr, beta_1=0.9, beta_2=0.999, eps=1e-7):
        self.lr, self.b1, self.b2, self.eps = lr, beta_1, beta_2, eps

    def update(self, w, g, k):
        t = k + 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.u = np.maximum(self.b2 * self.u, np.abs(g))
        return w - self.lr(k) / (1 - self.b1 ** t) * self.m / (self.u + self.eps)

    def slots(self):
        return {"m": self.m, "u": self.u}


class RefAdadelta(Reference):
    """a ← ρa + (1−ρ)g²; Δ = √(d + ε)·g/√(a + ε); d ← ρd + (1−ρ)Δ²; w ← w − ηΔ."""

    initial = {"a": 0.0, "d": 0.0}

    def __init__(self, lr, rho=0.95, eps=1e-7):
        self.lr, self.rho, self.eps = lr, rho, eps

    def update(self, w, g, k):
        self.a = self.rho * self.a + (1 - self.rho) * g * g
        delta = np.sqrt(self.d + self.eps) * g / np.sqrt(self.a + self.eps)
        self.d = self.rho * self.d + (1 - self.rho) * delta ** 2
        return w - self.lr(k) * delta

    def slots(self):
        return {"accumulated_grad": self.a, "accumulated_delta_var": self.d}


class RefLion(Reference):
    """(w ← w − ηλw first, when λ is set;) w ← w − η·sign(c), c = β₁m + (1−β₁)g;
    m ← β₂m + (1−β₂)g."""

    initial = {"m": 0.0}

    def __init__(self, lr, beta_1=0.9, beta_2=0.99, weight_decay=0.0):
        self.lr, self.b1, self.b2, self.wd = lr, beta_1, beta_2, weight_decay

    def direction(self, g):
        """c, whose sign the next step takes (before m moves)."""
        return self.b1 * self.m + (1 - self.b1) * g

    def update(self, w, g, k):
        eta = self.lr(k)
        w = w - eta * self.wd * w
        w = w - eta * np.sign(self.direction(g))
        self.m = self.b2 * self.m + (1 - self.b2) * g
        return w

    def slots(self):
        return {"m": self.m}


def constant(lr):
    """The learning-rate function of a constant rate."""
    return lambda k: lr
