"""Learning-rate schedules (Keras's names and formulas). A schedule is called with the
number of updates made so far (0 for the first update) and returns the learning rate.
Any callable ``f(step) -> float`` works in their place.
"""
import math

from fastnn import _validation as v


class LearningRateSchedule:
    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        return dict(self.__dict__)


class ExponentialDecay(LearningRateSchedule):
    """lr(step) = initial_learning_rate · decay_rate^(step / decay_steps)
    (the exponent is floored when staircase=True)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = v.real("initial_learning_rate", initial_learning_rate, 0)
        self.decay_steps = v.positive_int("decay_steps", decay_steps)
        self.decay_rate = v.real("decay_rate", decay_rate, 0, low_open=True)
        self.staircase = bool(staircase)

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p


class InverseTimeDecay(LearningRateSchedule):
    """lr(step) = initial_learning_rate / (1 + decay_rate · step / decay_steps)
    (step / decay_steps is floored when staircase=True).

    Keras 2's ``decay=d`` argument of every optimizer is exactly
    ``InverseTimeDecay(learning_rate, decay_steps=1, decay_rate=d)``.
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = v.real("initial_learning_rate", initial_learning_rate, 0)
        self.decay_steps = v.positive_int("decay_steps", decay_steps)
        self.decay_rate = v.real("decay_rate", decay_rate, 0)
        if not isinstance(staircase, bool):
            raise TypeError(f"InverseTimeDecay: staircase must be True or False, got "
                            f"{staircase!r}")
        self.staircase = staircase

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate / (1 + self.decay_rate * p)


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] while step <= boundaries[0], values[1] while step <= boundaries[1], ...,
    values[-1] after the last boundary."""

    def __init__(self, boundaries, values):
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"PiecewiseConstantDecay: values must have one more entry than "
                             f"boundaries, got {len(values)} values and {len(boundaries)} "
                             f"boundaries")
        self.boundaries = [v.real("boundaries", b) for b in boundaries]
        if any(b1 >= b2 for b1, b2 in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"PiecewiseConstantDecay: boundaries must increase, got "
                             f"{boundaries}")
        self.values = [v.real("values", x, 0) for x in values]

    def __call__(self, step):
        for b, value in zip(self.boundaries, self.values):
            if step <= b:
                return value
        return self.values[-1]


class CosineDecay(LearningRateSchedule):
    """Optional linear warmup, then cosine decay.

    With warmup_target set: lr rises linearly from initial_learning_rate to warmup_target
    over warmup_steps. Then, with s = min(step - warmup_steps, decay_steps) (warmup_steps
    count only when warmup_target is set, as in Keras) and
    top = warmup_target or initial_learning_rate:
    lr = top · ((1 - alpha) · ½(1 + cos(π s / decay_steps)) + alpha).
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = v.real("initial_learning_rate", initial_learning_rate, 0)
        self.decay_steps = v.positive_int("decay_steps", decay_steps)
        self.alpha = v.real("alpha", alpha, 0, 1)
        self.warmup_target = None if warmup_target is None else v.real(
            "warmup_target", warmup_target, 0)
        self.warmup_steps = v.positive_int("warmup_steps", warmup_steps, 0)

    def __call__(self, step):
        top = self.initial_learning_rate
        if self.warmup_target is not None:
            top = self.warmup_target
            if step < self.warmup_steps:
                frac = step / self.warmup_steps
                return self.initial_learning_rate + frac * (top - self.initial_learning_rate)
        # Keras: warmup_steps only count when there is a warmup target.
        warmup = self.warmup_steps if self.warmup_target is not None else 0
        s = min(max(step - warmup, 0), self.decay_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * s / self.decay_steps))
        return top * ((1 - self.alpha) * cosine + self.alpha)


SCHEDULES = {c.__name__: c for c in (ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay,
                                     CosineDecay)}
