"""Metrics with Keras 3's names, arguments, defaults and stateful protocol:
``reset_state()``, ``update_state(y_true, y_pred, sample_weight=None)``, ``result()``.

The per-batch work is one kernel call (fastnn/_core/metrics.pyx) into state made when the
metric is built (no allocation per batch). State accumulates as Keras's does: the mean
metrics (accuracies, mae, mse) keep a weighted sum of per-sample values and the summed
weights; Precision, Recall and AUC keep weighted confusion counts per threshold (kept as a
histogram over the thresholds, summed when the result is asked for), so an epoch's value
is over all its samples, never a mean of per-batch values.

In ``compile(metrics=[...])`` metrics are unweighted, as Keras's ``metrics=`` are (it has
a separate ``weighted_metrics``; fastnn documents accuracy as unweighted): sample and class
weights change the loss only. ``update_state`` used directly honours ``sample_weight``.

Which accuracy 'accuracy' means follows fastnn's rule (Keras's for these cases): integer
labels -> sparse categorical accuracy; binary cross-entropy or a single output -> binary
accuracy (threshold 0.5); otherwise categorical accuracy (argmax vs argmax). Against integer
labels (loss sparse_categorical_crossentropy) the categorical metrics compare with the
label, and Precision/Recall/AUC read the label as its one-hot row.
"""
import numpy as np

from fastnn import _validation as v
from fastnn._config import Configurable
from fastnn._core import metrics as _k

EPSILON = 1e-7          # Keras's backend epsilon: AUC's end thresholds are -EPS, 1 + EPS
NEG_INF = -1e10         # Keras's threshold when only top_k decides


class Metric(Configurable):
    """Base class. Subclasses give ``update_batch(p, y, sample_weight)`` (the training
    loop's call) on validated arrays (p (n, m) float, y int64 labels (n,) when ``sparse``
    else (n, m) of p's dtype) and ``result()``; state is made in ``_build``."""
    name = None
    fixed_width = True          # whether every batch must have the width it was built for

    def __init__(self, name=None, dtype=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string, got {name!r}")
        if dtype is not None and (not isinstance(dtype, str) or
                                  dtype not in ("float32", "float64")):
            raise ValueError(f"{type(self).__name__}: dtype must be None, 'float32' or "
                             f"'float64', got {dtype!r}")
        self.name = name if name is not None else type(self).name
        self.dtype = dtype
        self.built = False
        self.sparse = False
        self.width = None
        self.reset_state()

    # -- the protocol ---------------------------------------------------------------
    def build(self, target, width):
        """Fix the targets' kind ('sparse' for integer labels, else a matrix) and the
        output width, and make the state. Raises ValueError when they do not fit."""
        self.check(target)
        self.sparse = target == "sparse"
        self.width = width
        self._build(width)
        self.built = True
        self.reset_state()
        return self

    def check(self, target):
        """ValueError if the metric cannot use targets of this kind."""

    def reset_state(self):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add a batch: y_pred (n, m) (or (n,) for one output), y_true of y_pred's shape
        or integer labels (n,); sample_weight (n,) or None."""
        what = f"{type(self).__name__}.update_state"
        p, y = self._prepare(what, y_true, y_pred)
        sw = None
        if sample_weight is not None:
            sw = v.sample_weights(f"{what}: sample_weight", sample_weight, p.shape[0],
                                  p.dtype)
        self.update_batch(p, y, sw)

    def _prepare(self, what, y_true, y_pred):
        """Validated (p (n, m), y) for the kernels; builds the metric on first use."""
        p = v.as_array(f"{what}: y_pred", y_pred)
        if p.ndim == 1:
            p = p.reshape(-1, 1)
        dt = np.float64 if self.dtype is None else np.dtype(self.dtype)
        p = v.as_float_matrix(f"{what}: y_pred", p, dt)
        n, m = p.shape
        y = v.as_array(f"{what}: y_true", y_true)
        sparse = self.sparse if self.built else self._labels_given(y, m)
        if not self.built:
            self.build("sparse" if sparse else "real", m)
        elif m != self.width and self.fixed_width:
            raise ValueError(f"{what}: y_pred has {m} outputs but the metric was built for "
                             f"{self.width}")
        if not sparse and y.ndim == 1 and m == 1:
            y = y.reshape(-1, 1)
        return p, v.targets(f"{what}: y_true", y, "sparse" if sparse else "real", m, n, dt)

    def _labels_given(self, y, width):
        """Whether y (for a (n, width) prediction) holds integer labels."""
        return width > 1 and (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1))

    def update_batch(self, p, y, sample_weight=None):
        raise NotImplementedError

    def _build(self, width):
        pass

    # -- the state as numbers: a data-parallel fit (fastnn/distributed.py) sums the ranks'
    # states of one batch and adds the sum into each rank's metric ------------------
    def state_size(self):
        """How many numbers write_state writes."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its state as "
                                  f"numbers (state_size / write_state / add_state), so it "
                                  f"cannot be summed across the ranks of a data-parallel "
                                  f"fit")

    def write_state(self, out):
        """out[:state_size()] = the state (a float64 vector; sums of states are states)."""
        raise NotImplementedError

    def add_state(self, values):
        """Add a write_state() vector of a metric of the same configuration."""
        raise NotImplementedError

    def copy(self):
        """A fresh metric of the same configuration, built like this one."""
        twin = type(self).from_config(self.get_config())
        if self.built:
            twin.build("sparse" if self.sparse else "real", self.width)
        return twin

    # -- configuration --------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


# -------------------------------------------------------------- mean metrics --

class _MeanMetric(Metric):
    """mean of per-sample values, weighted: total / count, both accumulated."""
    needs = None            # 'sparse' or 'matrix' when only that kind of target works

    def check(self, target):
        if self.needs == "sparse" and target != "sparse":
            raise ValueError(f"compile: {self.name} needs integer labels, i.e. "
                             f"loss='sparse_categorical_crossentropy'")
        if self.needs == "matrix" and target == "sparse":
            raise ValueError(f"compile: {self.name} needs targets of the outputs' shape, "
                             f"not integer labels")

    def _labels_given(self, y, width):
        if self.needs == "sparse":
            return True
        if self.needs == "matrix":
            return False
        return super()._labels_given(y, width)

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def result(self):
        return self.total / self.count if self.count else 0.0

    def update_batch(self, p, y, sample_weight=None):
        if sample_weight is not None and sample_weight.shape[0] == 0:
            sample_weight = None            # the training loop's "unweighted"
        self.total += self._sum(p, y, sample_weight)
        self.count += p.shape[0] if sample_weight is None else float(np.sum(sample_weight))

    def state_size(self):
        return 2

    def write_state(self, out):
        out[0], out[1] = self.total, self.count

    def add_state(self, values):
        self.total += float(values[0])
        self.count += float(values[1])

    def _sum(self, p, y, sample_weight, per_sample=None):
        """Σᵢ wᵢ·valueᵢ (the kernel), writing valueᵢ into per_sample if given."""
        raise NotImplementedError

    def values(self, y_true, y_pred):
        """The per-sample values (the function forms)."""
        metric = type(self).from_config(self.get_config())
        p, y = metric._prepare(metric.name, y_true, y_pred)
        out = np.empty(p.shape[0])
        metric._sum(p, y, None, out)
        return out


class Accuracy(_MeanMetric):
    """How often y_pred equals y_true exactly (Keras's Accuracy: for classifiers use
    'accuracy', CategoricalAccuracy or SparseCategoricalAccuracy)."""
    name = "accuracy"

    def check(self, target):
        pass

    def _build(self, width):
        if self.sparse and width != 1:
            raise ValueError(f"compile: {self.name} compares y_pred with y_true exactly; "
                             f"against integer labels it needs one output, not {width} "
                             f"(for classifiers use metrics=['accuracy'])")

    def _sum(self, p, y, sample_weight, per_sample=None):
        if self.sparse:
            return _k.count_equal_sparse(p, y, sample_weight, per_sample)
        hits = _k.count_equal(p, y, sample_weight, per_sample) / p.shape[1]
        if per_sample is not None:
            per_sample /= p.shape[1]
        return hits


class BinaryAccuracy(_MeanMetric):
    """Per sample, the fraction of outputs where (y_pred > threshold) equals
    (y_true > threshold)."""
    name = "binary_accuracy"
    needs = "matrix"

    def __init__(self, name=None, dtype=None, threshold=0.5):
        super().__init__(name, dtype)
        self.threshold = v.real(f"{type(self).__name__}: threshold", threshold)

    def _sum(self, p, y, sample_weight, per_sample=None):
        hits = _k.count_correct_binary(p, y, self.threshold, sample_weight, per_sample)
        if per_sample is not None:
            per_sample /= p.shape[1]
        return hits / p.shape[1]

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


class CategoricalAccuracy(_MeanMetric):
    """Whether argmax(y_pred) equals argmax(y_true) (or the integer label)."""
    name = "categorical_accuracy"

    def _sum(self, p, y, sample_weight, per_sample=None):
        if self.sparse:
            return _k.count_correct_sparse(p, y, sample_weight, per_sample)
        return _k.count_correct_onehot(p, y, sample_weight, per_sample)


class SparseCategoricalAccuracy(CategoricalAccuracy):
    """Whether argmax(y_pred) equals the integer label."""
    name = "sparse_categorical_accuracy"
    needs = "sparse"


class TopKCategoricalAccuracy(_MeanMetric):
    """Whether the target class (argmax of y_true, or the label) is among the k largest
    outputs (ties at the boundary count as in, like TensorFlow's in_top_k)."""
    name = "top_k_categorical_accuracy"

    def __init__(self, k=5, name=None, dtype=None):
        super().__init__(name, dtype)
        self.k = v.positive_int(f"{type(self).__name__}: k", k)

    def _sum(self, p, y, sample_weight, per_sample=None):
        if self.sparse:
            return _k.count_in_top_k_sparse(p, y, self.k, sample_weight, per_sample)
        return _k.count_in_top_k_onehot(p, y, self.k, sample_weight, per_sample)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    """Whether the integer label is among the k largest outputs; with from_sorted_ids,
    y_pred already holds class ids sorted by score and the first k are looked at."""
    name = "sparse_top_k_categorical_accuracy"
    needs = "sparse"

    def __init__(self, k=5, name=None, dtype=None, from_sorted_ids=False):
        super().__init__(k, name, dtype)
        if not isinstance(from_sorted_ids, (bool, np.bool_)):
            raise TypeError(f"{type(self).__name__}: from_sorted_ids must be True or "
                            f"False, got {from_sorted_ids!r}")
        self.from_sorted_ids = bool(from_sorted_ids)

    def _sum(self, p, y, sample_weight, per_sample=None):
        if self.from_sorted_ids:
            return _k.count_in_sorted_ids(p, y, self.k, sample_weight, per_sample)
        return super()._sum(p, y, sample_weight, per_sample)

    def get_config(self):
        return {**super().get_config(), "from_sorted_ids": self.from_sorted_ids}


class MeanAbsoluteError(_MeanMetric):
    """The mean over samples of mean_j |y_true - y_pred|."""
    name = "mean_absolute_error"
    needs = "matrix"

    def _sum(self, p, y, sample_weight, per_sample=None):
        return _k.sum_absolute_error(p, y, sample_weight, per_sample)


class MeanSquaredError(_MeanMetric):
    """The mean over samples of mean_j (y_true - y_pred)²."""
    name = "mean_squared_error"
    needs = "matrix"

    def _sum(self, p, y, sample_weight, per_sample=None):
        return _k.sum_squared_error(p, y, sample_weight, per_sample)


# --------------------------------------------------------- confusion metrics --

def _thresholds(what, thresholds, default):
    """Keras's parse_init_thresholds: None -> [default]; a number or a list, in [0, 1]."""
    if thresholds is None:
        return [default]
    values = list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) \
        else [thresholds]
    if not values:
        raise ValueError(f"{what}: thresholds must not be empty")
    return [v.real(f"{what}: thresholds", t, 0, 1) for t in values]


def _evenly_distributed(thresholds):
    """Keras's is_evenly_distributed_thresholds: 0, 1/(t-1), ..., 1 (within EPSILON)."""
    t = len(thresholds)
    return t >= 3 and bool(np.allclose(thresholds, np.arange(t) / (t - 1), atol=EPSILON))


def _divide_no_nan(a, b):
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    out = np.zeros(a.shape)
    np.divide(a, b, out=out, where=b != 0)
    return out


class _ConfusionMetric(Metric):
    """State: weighted histograms of positive and negative entries over the sorted
    thresholds (see _core/metrics.confusion_histogram)."""
    top_k = None
    class_id = None
    multi_label = False
    from_logits = False
    label_weights = None

    @property
    def fixed_width(self):
        return self.multi_label

    def _prepare(self, what, y_true, y_pred):
        if self.top_k is not None and np.ndim(y_pred) == 1:
            # Keras keeps the top k along the last axis: a 1-D y_pred is one row.
            y_pred, y_true = np.reshape(y_pred, (1, -1)), np.reshape(y_true, (1, -1))
        return super()._prepare(what, y_true, y_pred)

    def _set_thresholds(self, thresholds, evenly, with_eps):
        self._sorted = np.array(sorted(thresholds), np.float64)
        self._evenly, self._with_eps = evenly, with_eps

    def _build(self, width):
        what = type(self).__name__
        if self.class_id is not None and self.class_id >= width:
            raise ValueError(f"{what}: class_id {self.class_id} is out of range for "
                             f"{width} outputs")
        if self.label_weights is not None and self.label_weights.shape[0] != width:
            raise ValueError(f"{what}: label_weights has {self.label_weights.shape[0]} "
                             f"weights for {width} outputs")
        columns = width if self.multi_label else 1
        self._pos = np.zeros((self._sorted.shape[0] + 1, columns))
        self._neg = np.zeros_like(self._pos)

    def reset_state(self):
        if self.built:
            self._pos[...] = 0
            self._neg[...] = 0

    def state_size(self):
        return self._pos.size + self._neg.size

    def write_state(self, out):
        k = self._pos.size
        out[:k] = self._pos.reshape(-1)
        out[k:2 * k] = self._neg.reshape(-1)

    def add_state(self, values):
        k = self._pos.size
        self._pos += values[:k].reshape(self._pos.shape)
        self._neg += values[k:2 * k].reshape(self._neg.shape)

    def update_batch(self, p, y, sample_weight=None):
        if sample_weight is not None and sample_weight.shape[0] == 0:
            sample_weight = None
        _k.confusion_histogram(
            p, y, sample_weight, self._sorted, self._evenly, self._with_eps,
            -1 if self.class_id is None else self.class_id,
            0 if self.top_k is None else self.top_k, self.from_logits, self.multi_label,
            None if self.multi_label else self.label_weights, self._pos, self._neg)

    def confusion(self):
        """(tp, fp, tn, fn), each (thresholds,) — or (thresholds, labels) for a
        multi-label AUC — in the order of the sorted thresholds."""
        if not self.built:
            zeros = np.zeros((self._sorted.shape[0], 1))
            return (zeros[:, 0],) * 4
        at_or_above_pos = np.cumsum(self._pos[::-1], axis=0)[::-1]
        at_or_above_neg = np.cumsum(self._neg[::-1], axis=0)[::-1]
        tp, fp = at_or_above_pos[1:], at_or_above_neg[1:]
        fn, tn = at_or_above_pos[0] - tp, at_or_above_neg[0] - fp
        if not self.multi_label:
            tp, fp, tn, fn = tp[:, 0], fp[:, 0], tn[:, 0], fn[:, 0]
        return tp, fp, tn, fn


class _PrecisionRecall(_ConfusionMetric):
    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name, dtype)
        what = type(self).__name__
        self.init_thresholds = thresholds
        self.top_k = None if top_k is None else v.positive_int(f"{what}: top_k", top_k)
        self.class_id = None if class_id is None else \
            v.positive_int(f"{what}: class_id", class_id, minimum=0)
        self.thresholds = _thresholds(what, thresholds,
                                      0.5 if self.top_k is None else NEG_INF)
        self._set_thresholds(self.thresholds, _evenly_distributed(self.thresholds), False)
        # result() in the user's order of thresholds
        self._order = np.searchsorted(self._sorted, self.thresholds)

    def result(self):
        tp, fp, tn, fn = self.confusion()
        value = self._ratio(tp, fp, fn)[self._order]
        return float(value[0]) if len(self.thresholds) == 1 else value

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds,
                "top_k": self.top_k, "class_id": self.class_id}


class Precision(_PrecisionRecall):
    """tp / (tp + fp): entries with y_pred > threshold that are true (y_true != 0), over
    all entries (or column class_id; or each row's top_k entries)."""
    name = "precision"

    def _ratio(self, tp, fp, fn):
        return _divide_no_nan(tp, tp + fp)


class Recall(_PrecisionRecall):
    """tp / (tp + fn): true entries (y_true != 0) with y_pred > threshold."""
    name = "recall"

    def _ratio(self, tp, fp, fn):
        return _divide_no_nan(tp, tp + fn)


CURVES = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}
SUMMATIONS = ("interpolation", "minoring", "majoring")


class AUC(_ConfusionMetric):
    """Area under the ROC or precision-recall curve, from confusion counts at
    num_thresholds thresholds (Keras's: -1e-7, evenly spaced in (0, 1), 1 + 1e-7), by
    Keras's summation_method ('interpolation': trapezoids for ROC, Davis & Goadrich's
    interpolation for PR; 'minoring'/'majoring': lower/upper Riemann sums).
    multi_label: one AUC per output, averaged (weighted by label_weights); otherwise all
    outputs are flattened into one set (label_weights weight the outputs)."""
    name = "auc"

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        super().__init__(name, dtype)
        what = type(self).__name__
        if not isinstance(curve, str) or curve.lower() not in CURVES:
            raise ValueError(f"{what}: curve must be one of {sorted(CURVES.values())}, got "
                             f"{curve!r}")
        if not isinstance(summation_method, str) or \
                summation_method.lower() not in SUMMATIONS:
            raise ValueError(f"{what}: summation_method must be one of {list(SUMMATIONS)}, "
                             f"got {summation_method!r}")
        self.curve = CURVES[curve.lower()]
        self.summation_method = summation_method.lower()
        for flag, value in (("multi_label", multi_label), ("from_logits", from_logits)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{what}: {flag} must be True or False, got {value!r}")
        self.multi_label, self.from_logits = bool(multi_label), bool(from_logits)
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(_thresholds(what, thresholds, None))
            self.num_thresholds = len(inner) + 2
            evenly = _evenly_distributed([0.0] + inner + [1.0])
        else:
            self.num_thresholds = v.positive_int(f"{what}: num_thresholds", num_thresholds,
                                                 minimum=2)
            inner = [(i + 1) / (self.num_thresholds - 1)
                     for i in range(self.num_thresholds - 2)]
            evenly = True
        self._set_thresholds([-EPSILON] + inner + [1.0 + EPSILON], evenly, True)
        if num_labels is not None and not self.multi_label:
            raise ValueError(f"{what}: num_labels is needed only when multi_label is True")
        self.num_labels = None if num_labels is None else \
            v.positive_int(f"{what}: num_labels", num_labels)
        if label_weights is not None:
            lw = v.as_array(f"{what}: label_weights", label_weights)
            if lw.ndim != 1 or lw.shape[0] == 0:
                raise ValueError(f"{what}: label_weights must be a list of weights, one per "
                                 f"output, got shape {lw.shape}")
            lw = np.ascontiguousarray(lw, np.float64)
            v.check_finite(f"{what}: label_weights", lw)
            if lw.min() < 0:
                raise ValueError(f"{what}: label_weights must be >= 0")
            self.label_weights = lw
        if self.num_labels is not None:
            self.build("real", self.num_labels)

    def _build(self, width):
        if self.multi_label and self.num_labels is not None and width != self.num_labels:
            raise ValueError(f"AUC: num_labels={self.num_labels} but the model has {width} "
                             f"outputs")
        super()._build(width)

    @property
    def thresholds(self):
        return list(self._sorted)

    def result(self):
        tp, fp, tn, fn = self.confusion()
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._average(self._interpolated_pr_auc(tp, fp, fn))
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, _divide_no_nan(tp, tp + fp)
        else:                                   # PRGAIN, as Keras computes it
            scaling = _divide_no_nan(tp + fn, tn + fp)
            recall_gain = 1.0 - scaling * _divide_no_nan(fn, tp)
            precision_gain = 1.0 - scaling * _divide_no_nan(fp, tp)
            recall_gain = np.maximum(np.where(tp == 0, 0.0, recall_gain), 0.0)
            precision_gain = np.where(tp == 0, 1.0, precision_gain)
            x, y = recall_gain, precision_gain
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return self._average(np.sum((x[:-1] - x[1:]) * heights, axis=0))

    def _interpolated_pr_auc(self, tp, fp, fn):
        """Keras's closed form of Davis & Goadrich's interpolation (see Keras's AUC)."""
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        ratio = np.where((p[:-1] > 0) & (p[1:] > 0),
                         _divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        increments = _divide_no_nan(slope * (dtp + intercept * np.log(ratio)),
                                    np.maximum(tp[1:] + fn[1:], 0))
        return np.sum(increments, axis=0)

    def _average(self, by_label):
        if not self.multi_label:
            return float(by_label)
        if self.label_weights is None:
            return float(np.mean(by_label))
        return float(_divide_no_nan(np.sum(by_label * self.label_weights),
                                    np.sum(self.label_weights)))

    def get_config(self):
        config = {**super().get_config(), "num_thresholds": self.num_thresholds,
                  "curve": self.curve, "summation_method": self.summation_method,
                  "multi_label": self.multi_label, "num_labels": self.num_labels,
                  "label_weights": None if self.label_weights is None
                  else self.label_weights.tolist(),
                  "from_logits": self.from_logits}
        if self._init_from_thresholds:
            config["thresholds"] = [float(t) for t in self._sorted[1:-1]]
        return config


# ------------------------------------------------------------- function forms --

def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Per-sample fraction of outputs where (y_pred > threshold) == (y_true > threshold)."""
    return BinaryAccuracy(threshold=threshold).values(y_true, y_pred)


def categorical_accuracy(y_true, y_pred):
    """Per-sample 1.0 where argmax(y_pred) == argmax(y_true), else 0.0."""
    return CategoricalAccuracy().values(y_true, y_pred)


def sparse_categorical_accuracy(y_true, y_pred):
    """Per-sample 1.0 where argmax(y_pred) == the integer label."""
    return SparseCategoricalAccuracy().values(y_true, y_pred)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """Per-sample 1.0 where the target class is among the k largest outputs."""
    return TopKCategoricalAccuracy(k=k).values(y_true, y_pred)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """Per-sample 1.0 where the integer label is among the k largest outputs."""
    return SparseTopKCategoricalAccuracy(k=k, from_sorted_ids=from_sorted_ids).values(
        y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    """Per-sample mean_j |y_true - y_pred| (the loss function of the same name)."""
    from fastnn import losses
    return losses.mean_absolute_error(y_true, y_pred)


def mean_squared_error(y_true, y_pred):
    """Per-sample mean_j (y_true - y_pred)²."""
    from fastnn import losses
    return losses.mean_squared_error(y_true, y_pred)


mae = MAE = mean_absolute_error
mse = MSE = mean_squared_error

CLASSES = {cls.__name__: cls for cls in (
    Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanAbsoluteError,
    MeanSquaredError, Precision, Recall, AUC)}

# The accuracy names whose meaning depends on the loss (see the module docstring).
ACCURACIES = {"accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy",
              "binary_accuracy"}
# The other names compile(metrics=[...]) accepts: Keras's snake-case and class names and
# its short names, each to its class with default arguments.
NAMED = {
    **CLASSES,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError, "MSE": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "precision": Precision, "recall": Recall, "auc": AUC,
}
NAMES = ACCURACIES | set(NAMED)


def _named(name):
    """The metric a name of NAMED stands for; it keeps the name (logs['mae'])."""
    cls = NAMED[name]
    return cls() if name in CLASSES else cls(name=name)


def _from_name(name, loss, output_width):
    if name in NAMED:
        return _named(name)
    if loss.target == "sparse":
        cls = SparseCategoricalAccuracy
    elif name == "binary_accuracy" or (name in ("accuracy", "acc") and
                                       (loss.target == "binary" or output_width == 1)):
        cls = BinaryAccuracy
    else:
        cls = CategoricalAccuracy
    return cls(name="accuracy" if name == "acc" else name)


def check(identifier, loss):
    """ValueError for an unknown metric or one the loss's targets cannot give."""
    if isinstance(identifier, Metric):
        identifier.check(loss.target)
        return
    if not isinstance(identifier, str) or identifier not in NAMES:
        raise ValueError(f"compile: unknown metric {identifier!r}; supported: "
                         f"{sorted(NAMES)} or a fn.metrics.Metric")
    if identifier == "sparse_categorical_accuracy" and loss.target != "sparse":
        raise ValueError("compile: sparse_categorical_accuracy needs integer labels, i.e. "
                         "loss='sparse_categorical_crossentropy'")
    if identifier in NAMED:
        _named(identifier).check(loss.target)


def check_all(identifiers, loss):
    """The compile() entries, a Metric class made an instance (as Keras does), each
    check()ed; two with the same name are refused (their logs would overwrite each
    other)."""
    identifiers = [m() if isinstance(m, type) and issubclass(m, Metric) else m
                   for m in identifiers]
    names = {}
    for identifier in identifiers:
        check(identifier, loss)
        name = identifier.name if isinstance(identifier, Metric) else \
            ("accuracy" if identifier == "acc" else identifier)
        if name in names:
            raise ValueError(f"compile: metrics {names[name]!r} and {identifier!r} have the "
                             f"same name {name!r}; give one another name=")
        names[name] = identifier
    return identifiers


def get(identifier, loss, output_width):
    """The built metric for a compile() entry (already check()ed): a new one for a name,
    the object itself for a Metric (as Keras uses it)."""
    metric = identifier if isinstance(identifier, Metric) else \
        _from_name(identifier, loss, output_width)
    return metric.build(loss.target, output_width)


def copies(metrics):
    """Fresh, built metrics of the same configurations (evaluate's per-thread state)."""
    return [m.copy() for m in metrics]


def serialize(metric):
    """What a model file stores for a compile() entry: a name, or {'class', 'config'}."""
    if isinstance(metric, str):
        return metric
    if CLASSES.get(type(metric).__name__) is not type(metric):
        raise ValueError(f"save: custom metric {metric!r} cannot be stored (only fastnn's "
                         f"built-in metrics can)")
    return {"class": type(metric).__name__, "config": metric.get_config()}


def deserialize(doc):
    """The compile() entry a serialize() result stands for."""
    if isinstance(doc, str):
        return doc
    if not isinstance(doc, dict) or not isinstance(doc.get("class"), str) or \
            not isinstance(doc.get("config"), dict):
        raise ValueError(f"metric: expected a name or {{'class', 'config'}}, got {doc!r}")
    if doc["class"] not in CLASSES:
        raise ValueError(f"metric: unknown metric class {doc['class']!r} (known: "
                         f"{sorted(CLASSES)})")
    return CLASSES[doc["class"]].from_config(doc["config"])
