"""The recipe of deep learning, automated: read a History and say which step of the recipe
you are on, with the numbers that show it.

The lecture's recipe: first make the network good on the training data — if it is not,
change the network (ReLU or maxout instead of sigmoid), the optimizer (an adaptive one),
or the learning rate. Only then look at held-out data — if training is good but validation
is not, that is overfitting: early stopping, regularization, dropout, more data. And deeper
is not automatically better: with sigmoid units the gradient vanishes towards the input.

    report = fn.recipe.diagnose(history)
    print(report)                 # human-readable
    report.cases                  # [Finding(case=..., evidence=..., suggestions=...)]
    report.primary                # the case to act on first

Thresholds (all arguments of ``diagnose``) are rules of thumb, stated in the evidence.
"""
import math
from dataclasses import dataclass, field

import numpy as np

# The order in which the recipe says to act: instability first, then training, then
# gradients, then held-out data.
CASES = ["learning_rate_too_high", "not_good_on_training", "vanishing_gradients",
         "exploding_gradients", "learning_rate_too_low", "overfitting", "good",
         "good_on_training"]

SUGGESTIONS = {
    "learning_rate_too_high": ["lower the learning rate (e.g. by 10x)",
                               "use an adaptive optimizer (Adam, RMSprop)",
                               "clip gradients (clipnorm / global_clipnorm)"],
    "not_good_on_training": ["use ReLU or Maxout instead of sigmoid/tanh",
                             "use an adaptive optimizer (Adam, RMSprop, Adagrad)",
                             "tune the learning rate", "train longer or use a wider network"],
    "vanishing_gradients": ["use ReLU or Maxout instead of sigmoid",
                            "use fewer layers or He initialization",
                            "use an adaptive optimizer, which rescales per weight"],
    "exploding_gradients": ["lower the learning rate", "clip gradients (clipnorm)",
                            "use a smaller initialization"],
    "learning_rate_too_low": ["raise the learning rate (e.g. by 10x)",
                              "use an adaptive optimizer (Adam)"],
    "overfitting": ["early stopping (fn.callbacks.EarlyStopping(restore_best_weights=True))",
                    "L2 regularization (kernel_regularizer=fn.regularizers.l2(...))",
                    "dropout (fn.layers.Dropout)", "more training data"],
    "good": ["nothing to fix: the network is good on training and held-out data"],
    "good_on_training": ["good on training data; hold out data (validation_split or "
                         "validation_data) to check for overfitting"],
}


@dataclass
class Finding:
    case: str
    evidence: str
    suggestions: list = field(default_factory=list)
    numbers: dict = field(default_factory=dict)


@dataclass
class Report:
    cases: list

    @property
    def primary(self):
        """The finding to act on first (the recipe's order)."""
        return self.cases[0]

    def case_names(self):
        return [f.case for f in self.cases]

    def as_dict(self):
        return {"primary": self.primary.case,
                "cases": [{"case": f.case, "evidence": f.evidence,
                           "suggestions": list(f.suggestions), "numbers": dict(f.numbers)}
                          for f in self.cases]}

    def __str__(self):
        lines = ["Training diagnosis (the recipe of deep learning):"]
        for i, f in enumerate(self.cases, 1):
            lines.append(f"{i}. {f.case.replace('_', ' ')}: {f.evidence}")
            for s in f.suggestions:
                lines.append(f"     - {s}")
        return "\n".join(lines)


def _series(history, key):
    h = getattr(history, "history", history)
    values = h.get(key)
    return None if values is None else list(values)


def diagnose(history, good_accuracy=0.9, min_improvement=0.1, overfit_gap=0.05,
             overfit_loss_ratio=1.3, vanishing_ratio=1e-2, exploding_ratio=1e2,
             low_update_ratio=1e-5):
    """Which case of the recipe applies to a training run, with the evidence in numbers.

    history: a History from fit (or its .history dict). Uses 'loss', 'accuracy' (when
    present), 'val_loss'/'val_accuracy' (when present), and 'grad_norm'/'update_ratio'
    from fn.callbacks.GradientMonitor or fit(monitor_gradients=True).

    good_accuracy: training accuracy below this is "not yet good on training data".
    min_improvement: a training loss that fell by less than this fraction is "not falling".
    overfit_gap / overfit_loss_ratio: training accuracy above validation accuracy by more
    than overfit_gap, or validation loss above overfit_loss_ratio x training loss and
    rising from its minimum, is overfitting.
    vanishing_ratio / exploding_ratio: first layer's gradient norm over the last layer's.
    low_update_ratio: median update-to-weight ratio below this means the steps are tiny.
    """
    loss = _series(history, "loss")
    if not loss:
        raise ValueError("diagnose: the history has no 'loss' values; pass the History "
                         "returned by fit()")
    findings = []
    acc = _series(history, "accuracy")
    val_loss = _series(history, "val_loss")
    val_acc = _series(history, "val_accuracy")
    grad = _series(history, "grad_norm")
    ratio = _series(history, "update_ratio")
    finite = [x for x in loss if math.isfinite(x)]

    # 1. unstable: NaN or a loss that grows
    if len(finite) < len(loss):
        first_bad = next(i for i, x in enumerate(loss) if not math.isfinite(x))
        findings.append(Finding("learning_rate_too_high",
                                f"the training loss became {loss[first_bad]} in epoch "
                                f"{first_bad + 1}", numbers={"nan_epoch": first_bad + 1}))
    elif len(loss) >= 2 and loss[-1] > 1.5 * min(loss) and loss[-1] > loss[0]:
        findings.append(Finding("learning_rate_too_high",
                                f"the training loss diverged: {loss[0]:.4g} -> "
                                f"{max(loss):.4g} (last {loss[-1]:.4g})",
                                numbers={"first_loss": loss[0], "last_loss": loss[-1]}))

    # 2. good on training data?
    unstable = bool(findings)
    if not unstable and finite:
        reasons, numbers = [], {}
        improvement = (loss[0] - loss[-1]) / abs(loss[0]) if loss[0] else 0.0
        numbers["loss_improvement"] = improvement
        if len(loss) >= 3 and improvement < min_improvement:
            reasons.append(f"the training loss fell only {improvement:.1%} "
                           f"({loss[0]:.4g} -> {loss[-1]:.4g}) over {len(loss)} epochs")
        if acc:
            numbers["train_accuracy"] = acc[-1]
            if acc[-1] < good_accuracy:
                reasons.append(f"training accuracy is {acc[-1]:.3f} (< {good_accuracy})")
        if reasons:
            findings.append(Finding("not_good_on_training", "; ".join(reasons),
                                    numbers=numbers))

    # 3. gradients, layer by layer
    if grad:
        last = {k: v for k, v in grad[-1].items()}
        names = list(last)
        if len(names) >= 2:
            first_norm, last_norm = last[names[0]], last[names[-1]]
            r = first_norm / last_norm if last_norm > 0 else float("inf")
            per_layer = ", ".join(f"{k} {v:.2e}" for k, v in last.items())
            if r < vanishing_ratio:
                findings.append(Finding(
                    "vanishing_gradients",
                    f"the first layer's gradient norm is {r:.1e} x the last layer's "
                    f"({per_layer})", numbers={"first_to_last": r, "grad_norm": last}))
            elif r > exploding_ratio:
                findings.append(Finding(
                    "exploding_gradients",
                    f"the first layer's gradient norm is {r:.1e} x the last layer's "
                    f"({per_layer})", numbers={"first_to_last": r, "grad_norm": last}))
    if ratio and not unstable:
        med = float(np.median(list(ratio[-1].values())))
        if med < low_update_ratio:
            findings.append(Finding(
                "learning_rate_too_low",
                f"the median update-to-weight ratio is {med:.1e} per step (a healthy range is "
                f"around 1e-4 to 1e-2)", numbers={"median_update_ratio": med}))

    # 4. held-out data: only meaningful once training is good
    if val_loss and not unstable:
        reasons, numbers = [], {}
        if acc and val_acc:
            gap = acc[-1] - val_acc[-1]
            numbers["accuracy_gap"] = gap
            if gap > overfit_gap:
                reasons.append(f"training accuracy {acc[-1]:.3f} vs validation "
                               f"{val_acc[-1]:.3f} (gap {gap:.3f} > {overfit_gap})")
        best = int(np.nanargmin(val_loss))
        numbers["best_val_epoch"] = best + 1
        if math.isfinite(val_loss[-1]) and val_loss[-1] > overfit_loss_ratio * loss[-1] and \
                val_loss[-1] > val_loss[best] * 1.05 and best < len(val_loss) - 1:
            reasons.append(f"validation loss {val_loss[-1]:.4g} is {val_loss[-1] / loss[-1]:.1f}"
                           f" x the training loss and has risen since epoch {best + 1} "
                           f"({val_loss[best]:.4g})")
        if reasons:
            findings.append(Finding("overfitting", "; ".join(reasons), numbers=numbers))

    if not findings:
        evidence = f"training loss {loss[0]:.4g} -> {loss[-1]:.4g}"
        if acc:
            evidence += f", training accuracy {acc[-1]:.3f}"
        if val_acc:
            evidence += f", validation accuracy {val_acc[-1]:.3f}"
        findings.append(Finding("good" if val_loss else "good_on_training", evidence))
    findings.sort(key=lambda f: CASES.index(f.case))
    for f in findings:
        f.suggestions = list(SUGGESTIONS[f.case])
    return Report(findings)
