"""Metrics: each kernel against a NumPy reference in float32 and float64 on odd shapes
(weighted, unweighted, per-sample values), the Keras classes' protocol, arguments and
documented values, accumulation over batches (never a mean of batch values), AUC against
scikit-learn, metrics in compile/fit/evaluate/train_on_batch, saving, threads and bad
arguments."""
import json
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest

import fastnn as fn
from fastnn import layers as L
from fastnn._core import metrics as K
from test_kernels import SHAPES_2D, rng_for, ro

DTYPES = [np.float32, np.float64]
M = fn.metrics
# The kernels sum weights (or 0/1 hits) in double; the references sum the same float64
# values in another order: n <= 1000 terms give at most ~1e-13 relative difference.
SUM_RTOL = 1e-12


def _weights(rng, n, weighted, dtype):
    if not weighted:
        return None, np.ones(n)
    w = rng.uniform(0, 3, n).astype(dtype)
    return ro(w), w.astype(np.float64)


def _argmax_ties(rng, n, m, dtype):
    # small integers: ties are common, so "the first maximum wins" is exercised
    return rng.integers(0, 3, (n, m)).astype(dtype)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("n,m", SHAPES_2D)
@pytest.mark.parametrize("dtype", DTYPES)
def test_counting_kernels(dtype, n, m, weighted):
    rng = rng_for("metric-count", dtype, n, m, weighted)
    sw, w = _weights(rng, n, weighted, dtype)
    p = _argmax_ties(rng, n, m, dtype)
    y = _argmax_ties(rng, n, m, dtype)
    labels = rng.integers(0, m, n).astype(np.int64)
    per = np.full(n, np.nan)

    def check(got, per_ref):
        np.testing.assert_allclose(got, np.sum(w * per_ref), rtol=SUM_RTOL)
        np.testing.assert_array_equal(per, per_ref)

    check(K.count_correct_onehot(ro(p), ro(y), sw, per), np.argmax(p, 1) == np.argmax(y, 1))
    check(K.count_correct_sparse(ro(p), ro(labels), sw, per), np.argmax(p, 1) == labels)
    pb = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], (n, m)).astype(dtype)
    yb = rng.choice([0.0, 0.5, 1.0], (n, m)).astype(dtype)
    check(K.count_correct_binary(ro(pb), ro(yb), 0.5, sw, per),
          np.sum((pb > 0.5) == (yb > 0.5), 1))
    check(K.count_correct_binary(ro(pb), ro(yb), 0.25, sw, per),
          np.sum((pb > 0.25) == (yb > 0.25), 1))
    check(K.count_equal(ro(p), ro(y), sw, per), np.sum(p == y, 1))
    p1 = rng.integers(0, 3, (n, 1)).astype(dtype)
    l1 = rng.integers(0, 3, n).astype(np.int64)
    check(K.count_equal_sparse(ro(p1), ro(l1), sw, per), p1[:, 0] == l1)
    for k in (1, 2, 5):
        target = np.argmax(y, 1)
        larger = np.sum(p > p[np.arange(n), target][:, None], 1)
        check(K.count_in_top_k_onehot(ro(p), ro(y), k, sw, per), larger < k)
        larger = np.sum(p > p[np.arange(n), labels][:, None], 1)
        check(K.count_in_top_k_sparse(ro(p), ro(labels), k, sw, per), larger < k)
        ids = np.argsort(-rng.random((n, m)), 1).astype(dtype)
        check(K.count_in_sorted_ids(ro(ids), ro(labels), k, sw, per),
              np.any(ids[:, :k] == labels[:, None], 1))


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("n,m", SHAPES_2D)
@pytest.mark.parametrize("dtype", DTYPES)
def test_error_sum_kernels(dtype, n, m, weighted):
    rng = rng_for("metric-errors", dtype, n, m, weighted)
    sw, w = _weights(rng, n, weighted, dtype)
    p = rng.standard_normal((n, m)).astype(dtype)
    y = rng.standard_normal((n, m)).astype(dtype)
    e = p.astype(np.float64) - y.astype(np.float64)
    # differences and squares in double from the rounded inputs: only the summation
    # order differs from the reference
    np.testing.assert_allclose(K.sum_absolute_error(ro(p), ro(y), sw),
                               np.sum(w * np.mean(np.abs(e), 1)), rtol=SUM_RTOL)
    np.testing.assert_allclose(K.sum_squared_error(ro(p), ro(y), sw),
                               np.sum(w * np.mean(e ** 2, 1)), rtol=SUM_RTOL)


def _histogram_ref(p, y, sparse, w, thresholds, evenly, with_eps, class_id, top_k,
                   from_logits, multi_label, label_weights):
    """tp and fp per threshold (and per column when multi_label), straight from the
    definitions: a prediction is positive at a threshold it is strictly above."""
    p = p.astype(np.float64)
    n, m = p.shape
    truth = (np.arange(m)[None, :] == y[:, None]) if sparse else (y != 0)
    if top_k:
        order = np.argsort(-p, axis=1, kind="stable")       # ties: lower index first
        kept = np.zeros((n, m), bool)
        np.put_along_axis(kept, order[:, :top_k], True, axis=1)
        p = np.where(kept, p, -np.inf)
    if from_logits:
        p = 1 / (1 + np.exp(-p))
    if evenly:
        p = np.clip(p, 0, 1)
    weight = np.broadcast_to(w[:, None], (n, m)).copy()
    if label_weights is not None:
        weight = weight * label_weights[None, :]
    cols = [class_id] if class_id >= 0 else list(range(m))
    above = p[:, cols][None, :, :] > np.asarray(thresholds)[:, None, None]   # (t, n, c)
    t_pos = np.where(truth[:, cols][None], weight[:, cols][None], 0.0)
    t_neg = np.where(~truth[:, cols][None], weight[:, cols][None], 0.0)
    tp, fp = np.sum(above * t_pos, 1), np.sum(above * t_neg, 1)
    if not multi_label:
        tp, fp = tp.sum(1, keepdims=True), fp.sum(1, keepdims=True)
    return tp, fp


HISTOGRAM_CASES = [
    # (thresholds, evenly, with_eps, class_id, top_k, from_logits, multi_label, label_w)
    ([0.5], False, False, -1, 0, False, False, False),
    ([0.1, 0.35, 0.8], False, False, -1, 0, False, False, True),
    (list(np.linspace(0, 1, 5)), True, False, -1, 0, False, False, False),
    ([-1e-7] + list(np.arange(1, 9) / 9) + [1 + 1e-7], True, True, -1, 0, False, True, False),
    ([-1e-7, 0.3, 0.6, 1 + 1e-7], False, True, -1, 0, True, False, False),
    ([0.5], False, False, 0, 0, False, False, False),
    ([-1e10], False, False, -1, 2, False, False, False),
    ([0.2, 0.7], False, False, -1, 3, False, False, False),
]


@pytest.mark.parametrize("sparse", [False, True], ids=["matrix", "labels"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("n,m", [(1, 1), (7, 5), (33, 7), (1000, 7)])
@pytest.mark.parametrize("case", range(len(HISTOGRAM_CASES)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_confusion_histogram(dtype, case, n, m, weighted, sparse):
    thresholds, evenly, with_eps, class_id, top_k, logits, multi, lw = HISTOGRAM_CASES[case]
    rng = rng_for("confusion", dtype, case, n, m, weighted, sparse)
    sw, w = _weights(rng, n, weighted, dtype)
    # predictions on a grid that puts many exactly at thresholds (0.5, 0.25, ...) and
    # outside [0, 1], plus continuous ones
    p = np.where(rng.random((n, m)) < 0.5, rng.choice([-0.5, 0, 0.25, 0.5, 0.75, 1, 1.5],
                                                       (n, m)), rng.uniform(-0.2, 1.2, (n, m)))
    p = p.astype(dtype)
    y = rng.integers(0, m, n).astype(np.int64) if sparse else \
        rng.choice([0.0, 1.0, 2.0], (n, m)).astype(dtype)
    label_weights = rng.uniform(0, 2, m) if lw else None
    t = len(thresholds)
    cols = m if multi else 1
    pos, neg = np.zeros((t + 1, cols)), np.zeros((t + 1, cols))
    K.confusion_histogram(ro(p), ro(y), sw, ro(np.array(thresholds)), evenly, with_eps,
                          class_id if class_id < m else -1, top_k, logits, multi,
                          None if label_weights is None else ro(label_weights), pos, neg)
    tp = np.cumsum(pos[::-1], 0)[::-1][1:]
    fp = np.cumsum(neg[::-1], 0)[::-1][1:]
    tp_ref, fp_ref = _histogram_ref(p, y, sparse, w, thresholds, evenly, with_eps,
                                    class_id if class_id < m else -1, top_k, logits, multi,
                                    label_weights)
    # Keras's evenly-spaced rule, ceil(p (t-1)), equals "p > threshold" except for
    # predictions within rounding of a threshold; the grid values above are exactly
    # representable and k/(t-1) * (t-1) rounds back to k, so the two agree here.
    np.testing.assert_allclose(tp, tp_ref, rtol=SUM_RTOL, atol=1e-12)
    np.testing.assert_allclose(fp, fp_ref, rtol=SUM_RTOL, atol=1e-12)


# ------------------------------------------------------- the Keras classes --

def test_keras_documented_values():
    """The examples in Keras 3's docstrings (keras/src/metrics/*.py)."""
    def run(metric, *batches):
        for args in batches:
            metric.update_state(*args)
        value = metric.result()
        metric.reset_state()
        return value

    assert run(M.Precision(), ([0, 1, 1, 1], [1, 0, 1, 1])) == pytest.approx(2 / 3)
    assert run(M.Precision(), ([0, 1, 1, 1], [1, 0, 1, 1], [0, 0, 1, 0])) == 1.0
    assert run(M.Precision(top_k=2), ([0, 0, 1, 1], [1, 1, 1, 1])) == 0.0
    assert run(M.Precision(top_k=4), ([0, 0, 1, 1], [1, 1, 1, 1])) == 0.5
    assert run(M.Recall(), ([0, 1, 1, 1], [1, 0, 1, 1])) == pytest.approx(2 / 3)
    assert run(M.Recall(), ([0, 1, 1, 1], [1, 0, 1, 1], [0, 0, 1, 0])) == 1.0
    assert run(M.AUC(num_thresholds=3), ([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])) == 0.75
    assert run(M.AUC(num_thresholds=3), ([0, 0, 1, 1], [0, 0.5, 0.3, 0.9], [1, 0, 0, 1])) == 1.0
    assert run(M.BinaryAccuracy(), ([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]])) == 0.75
    assert run(M.BinaryAccuracy(), ([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]],
                                    [1, 0, 0, 1])) == 0.5
    y3, p3 = [[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]]
    assert run(M.CategoricalAccuracy(), (y3, p3)) == 0.5
    assert run(M.CategoricalAccuracy(), (y3, p3, [0.7, 0.3])) == pytest.approx(0.3)
    assert run(M.SparseCategoricalAccuracy(), ([[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]])) \
        == 0.5
    assert run(M.SparseCategoricalAccuracy(), ([[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]],
                                               [0.7, 0.3])) == pytest.approx(0.3)
    assert run(M.TopKCategoricalAccuracy(k=1), (y3, p3)) == 0.5
    assert run(M.TopKCategoricalAccuracy(k=1), (y3, p3, [0.7, 0.3])) == pytest.approx(0.3)
    assert run(M.SparseTopKCategoricalAccuracy(k=1), ([2, 1], p3)) == 0.5
    assert run(M.SparseTopKCategoricalAccuracy(k=1), ([2, 1], p3, [0.7, 0.3])) == \
        pytest.approx(0.3)
    assert run(M.Accuracy(), ([[1], [2], [3], [4]], [[0], [2], [3], [4]])) == 0.75
    assert run(M.Accuracy(), ([[1], [2], [3], [4]], [[0], [2], [3], [4]], [1, 1, 0, 0])) == 0.5
    assert run(M.MeanAbsoluteError(), ([[0, 1], [0, 0]], [[1, 1], [0, 0]])) == 0.25
    assert run(M.MeanAbsoluteError(), ([[0, 1], [0, 0]], [[1, 1], [0, 0]], [1, 0])) == 0.5
    assert run(M.MeanSquaredError(), ([[0, 1], [0, 0]], [[1, 1], [0, 0]])) == 0.25
    assert run(M.MeanSquaredError(), ([[0, 1], [0, 0]], [[1, 1], [0, 0]], [1, 0])) == 0.5
    # a fresh metric's result is 0, as Keras's divide_no_nan gives
    assert M.Precision().result() == 0.0 and M.BinaryAccuracy().result() == 0.0


def test_defaults_names_and_configs():
    assert M.AUC().num_thresholds == 200 and M.AUC().curve == "ROC"
    assert M.AUC().summation_method == "interpolation"
    assert len(M.AUC().thresholds) == 200
    assert M.AUC().thresholds[0] == -1e-7 and M.AUC().thresholds[-1] == 1 + 1e-7
    assert M.TopKCategoricalAccuracy().k == 5 and M.SparseTopKCategoricalAccuracy().k == 5
    assert M.BinaryAccuracy().threshold == 0.5
    assert M.Precision().thresholds == [0.5] and M.Precision(top_k=3).thresholds == [-1e10]
    names = {M.Accuracy: "accuracy", M.BinaryAccuracy: "binary_accuracy",
             M.CategoricalAccuracy: "categorical_accuracy",
             M.SparseCategoricalAccuracy: "sparse_categorical_accuracy",
             M.TopKCategoricalAccuracy: "top_k_categorical_accuracy",
             M.SparseTopKCategoricalAccuracy: "sparse_top_k_categorical_accuracy",
             M.MeanAbsoluteError: "mean_absolute_error",
             M.MeanSquaredError: "mean_squared_error", M.Precision: "precision",
             M.Recall: "recall", M.AUC: "auc"}
    for cls, name in names.items():
        metric = cls()
        assert metric.name == name
        twin = cls.from_config(json.loads(json.dumps(metric.get_config())))
        assert twin.get_config() == metric.get_config()
    auc = M.AUC(thresholds=[0.3, 0.1, 0.7], curve="pr", label_weights=[1, 2],
                multi_label=True, from_logits=True)
    twin = M.AUC.from_config(json.loads(json.dumps(auc.get_config())))
    assert twin.get_config() == auc.get_config() and twin.thresholds == auc.thresholds
    assert auc.thresholds == [-1e-7, 0.1, 0.3, 0.7, 1 + 1e-7]


def test_multiple_thresholds_in_the_users_order():
    y, p = [0, 1, 1, 0, 1], [0.2, 0.9, 0.4, 0.6, 0.7]
    m = M.Precision(thresholds=[0.65, 0.3, 0.5])
    m.update_state(y, p)
    expected = []
    for t in [0.65, 0.3, 0.5]:
        pred = np.array(p) > t
        expected.append(np.sum(pred & (np.array(y) == 1)) / np.sum(pred))
    np.testing.assert_allclose(m.result(), expected, rtol=1e-15)
    r = M.Recall(thresholds=[0.65, 0.3])
    r.update_state(y, p)
    np.testing.assert_allclose(r.result(), [2 / 3, 1.0], rtol=1e-15)


def test_class_id_and_top_k_on_matrices():
    y = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    p = np.array([[0.7, 0.2, 0.4], [0.6, 0.3, 0.1], [0.2, 0.1, 0.9], [0.8, 0.5, 0.55]])
    m = M.Precision(class_id=2)
    m.update_state(y, p)
    col = p[:, 2] > 0.5
    assert m.result() == np.sum(col & (y[:, 2] == 1)) / np.sum(col)
    m = M.Recall(top_k=1)
    m.update_state(y, p)
    top = np.zeros_like(p, bool)
    top[np.arange(4), np.argmax(p, 1)] = True
    assert m.result() == pytest.approx(np.sum(top & (y == 1)) / np.sum(y == 1))


def test_auc_matches_scikit_learn_and_orders_the_sums():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = (rng.random(5000) < 0.3).astype(float)
    p = np.clip(0.35 * y + rng.uniform(0, 0.65, 5000), 0, 1)
    m = M.AUC(num_thresholds=2000)
    m.update_state(y, p)
    # 2000 thresholds: the trapezoids under the thresholded curve differ from the exact
    # ROC AUC by at most the few samples falling into each of the 2000 buckets
    assert m.result() == pytest.approx(sklearn_metrics.roc_auc_score(y, p), abs=2e-3)
    pr = M.AUC(num_thresholds=2000, curve="PR")
    pr.update_state(y, p)
    assert pr.result() == pytest.approx(sklearn_metrics.average_precision_score(y, p),
                                        abs=1e-2)
    sums = {}
    for method in ("minoring", "interpolation", "majoring"):
        a = M.AUC(num_thresholds=50, summation_method=method)
        a.update_state(y, p)
        sums[method] = a.result()
    assert sums["minoring"] <= sums["interpolation"] <= sums["majoring"]
    gain = M.AUC(curve="PRGAIN")
    gain.update_state(y, p)
    assert 0 < gain.result() <= 1


def test_multi_label_auc_averages_the_labels():
    rng = np.random.default_rng(1)
    y = (rng.random((300, 3)) < [0.2, 0.5, 0.7]).astype(float)
    p = np.clip(0.4 * y + rng.uniform(0, 0.6, (300, 3)), 0, 1)
    per = []
    for j in range(3):
        a = M.AUC()
        a.update_state(y[:, j], p[:, j])
        per.append(a.result())
    multi = M.AUC(multi_label=True)
    multi.update_state(y, p)
    assert multi.result() == pytest.approx(np.mean(per), rel=1e-12)
    weighted = M.AUC(multi_label=True, label_weights=[1, 0, 3])
    weighted.update_state(y, p)
    assert weighted.result() == pytest.approx((per[0] + 3 * per[2]) / 4, rel=1e-12)
    logits = M.AUC(multi_label=True, from_logits=True, num_labels=3)
    logits.update_state(y, np.log(p + 1e-3) - np.log1p(1e-3 - p + 1))
    assert 0.5 < logits.result() <= 1


def test_state_accumulates_over_batches_exactly():
    """Keras accumulates counts, not batch means: any batching gives the same result."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 101)
    p = rng.random((101, 4))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(4)[y]
    for make, target in [(M.AUC, onehot), (M.Precision, onehot), (M.Recall, onehot),
                         (M.SparseTopKCategoricalAccuracy, y),
                         (lambda: M.TopKCategoricalAccuracy(k=2), onehot),
                         (M.CategoricalAccuracy, onehot), (M.MeanSquaredError, onehot)]:
        whole, parts = make(), make()
        whole.update_state(target, p)
        for lo in range(0, 101, 17):
            parts.update_state(target[lo:lo + 17], p[lo:lo + 17])
        assert parts.result() == pytest.approx(whole.result(), rel=1e-14)
    # AUC on a batch of 1 and of 100 is not the mean of the two batch AUCs
    a, b, both = M.AUC(), M.AUC(), M.AUC()
    a.update_state(onehot[:50], p[:50])
    b.update_state(onehot[50:], p[50:])
    both.update_state(onehot[:50], p[:50])
    both.update_state(onehot[50:], p[50:])
    assert both.result() != pytest.approx((a.result() + b.result()) / 2, abs=1e-9)


def test_function_forms():
    y3, p3 = [[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]]
    np.testing.assert_array_equal(M.categorical_accuracy(y3, p3), [0, 1])
    np.testing.assert_array_equal(M.sparse_categorical_accuracy([2, 1], p3), [0, 1])
    np.testing.assert_array_equal(M.top_k_categorical_accuracy(y3, p3, k=2), [1, 1])
    np.testing.assert_array_equal(M.sparse_top_k_categorical_accuracy([2, 1], p3, k=1), [0, 1])
    np.testing.assert_array_equal(M.binary_accuracy([[1, 0], [1, 1]], [[0.7, 0.2], [0.4, 0.9]]),
                                  [1.0, 0.5])
    np.testing.assert_allclose(M.mae([[0, 1], [0, 0]], [[1, 1], [0, 0]]), [0.5, 0.0])
    np.testing.assert_allclose(M.mse([[0, 2], [0, 0]], [[1, 1], [0, 0]]), [1.0, 0.0])


# --------------------------------------------------- in compile / fit / evaluate --

def _classifier(metrics, loss="sparse_categorical_crossentropy", out=3, dtype="float32"):
    fn.set_seed(0)
    model = fn.Sequential([L.Dense(8, activation="relu", input_dim=4),
                           L.Dense(out, activation="softmax")], dtype=dtype)
    model.compile(loss=loss, optimizer="adam", metrics=metrics)
    return model


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
    return x, y


def test_compiled_metrics_match_the_metric_on_the_predictions():
    x, y = _data()
    metrics = ["accuracy", "sparse_top_k_categorical_accuracy", M.AUC(name="auc_roc"),
               M.Precision(class_id=1, name="precision_1"), M.Recall(thresholds=0.3),
               M.SparseTopKCategoricalAccuracy(k=2, name="top2"), "auc", "precision"]
    model = _classifier(metrics)
    history = model.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0)
    for name in ["loss", "accuracy", "sparse_top_k_categorical_accuracy", "auc_roc",
                 "precision_1", "precision", "recall", "top2", "auc"]:
        assert name in history.history and "val_" + name in history.history
    values = model.evaluate(x, y, batch_size=7, return_dict=True)
    pred = model.predict(x)
    for metric in model.metrics:
        fresh = metric.copy()
        fresh.update_state(y, pred)      # built for integer labels, as compiled
        # one update over everything vs 18 batches of 7: the same counts (in float32
        # predictions either way)
        assert values[metric.name] == pytest.approx(fresh.result(), rel=1e-12), metric.name
    # evaluate's batches do not change the result
    again = model.evaluate(x, y, batch_size=120, return_dict=True)
    for name, value in values.items():
        assert again[name] == pytest.approx(value, rel=1e-6 if name == "loss" else 1e-12)


def test_compile_by_name_for_each_kind_of_target():
    x, y = _data()
    onehot = np.eye(3)[y].astype(np.float32)
    model = _classifier(["categorical_accuracy", "top_k_categorical_accuracy", "mae", "mse",
                         "precision", "recall", "auc", "MeanAbsoluteError"],
                        loss="categorical_crossentropy")
    history = model.fit(x, onehot, epochs=1, verbose=0)
    assert set(history.history) >= {"categorical_accuracy", "top_k_categorical_accuracy",
                                    "mae", "mse", "precision", "recall", "auc",
                                    "mean_absolute_error"}
    assert history.history["mae"] == history.history["mean_absolute_error"]
    values = model.evaluate(x, onehot, return_dict=True)
    pred = model.predict(x)
    assert values["mae"] == pytest.approx(np.mean(np.abs(pred - onehot)), rel=1e-6)
    assert values["top_k_categorical_accuracy"] == 1.0      # k=5 > 3 classes
    # binary: 'accuracy' is binary accuracy, AUC on a sigmoid output
    fn.set_seed(0)
    model = fn.Sequential([L.Dense(1, activation="sigmoid", input_dim=4)])
    model.compile(loss="binary_crossentropy", metrics=["accuracy", M.AUC(), "precision"])
    yb = (x[:, 0] > 0).astype(np.float32)
    model.fit(x, yb, epochs=2, verbose=0)
    _, acc, auc, precision = model.evaluate(x, yb)
    pred = model.predict(x)[:, 0]
    assert acc == pytest.approx(np.mean((pred > 0.5) == (yb > 0.5)))
    assert precision == pytest.approx(np.sum((pred > 0.5) & (yb == 1)) / np.sum(pred > 0.5))
    assert 0 <= auc <= 1


def test_train_on_batch_reports_the_batch_values():
    x, y = _data()
    model = _classifier(["accuracy", M.AUC()])
    loss, acc, auc = model.train_on_batch(x[:20], y[:20])
    model2 = _classifier(["accuracy", M.AUC()])
    pred = model2.predict(x[:20])
    reference = M.AUC()
    reference.update_state(np.eye(3)[y[:20]], pred)
    assert auc == pytest.approx(reference.result(), rel=1e-12)
    assert acc == pytest.approx(np.mean(np.argmax(pred, 1) == y[:20]))


def test_metric_objects_survive_save_and_load(tmp_path):
    x, y = _data()
    metrics = ["accuracy", M.AUC(num_thresholds=50, curve="PR", name="pr"),
               M.Precision(thresholds=[0.4, 0.6], class_id=2),
               M.SparseTopKCategoricalAccuracy(k=2)]
    model = _classifier(metrics)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.fnn")
    loaded = fn.load_model(tmp_path / "m.fnn")
    assert [m.get_config() for m in loaded.metrics] == [m.get_config() for m in model.metrics]
    a, b = model.evaluate(x, y), loaded.evaluate(x, y)
    for va, vb in zip(a, b):
        np.testing.assert_array_equal(va, vb)
    with zipfile.ZipFile(tmp_path / "m.fnn") as z:
        entries = {name: z.read(name) for name in z.namelist()}
    for bad in [{"class": "Exec", "config": {}}, {"class": "AUC", "config": {"curve": "XY"}},
                {"class": "AUC", "config": {"bogus": 1}}, 5]:
        doc = json.loads(entries["fastnn.json"])
        doc["compile"]["metrics"] = [bad]
        entries["fastnn.json"] = json.dumps(doc).encode()
        with zipfile.ZipFile(tmp_path / "bad.fnn", "w") as z:
            for name, data in entries.items():
                z.writestr(name, data)
        with pytest.raises(fn.ModelFileError):
            fn.load_model(tmp_path / "bad.fnn")


def test_evaluate_in_threads_keeps_metric_state_apart():
    x, y = _data(600)
    model = _classifier(["accuracy", M.AUC()])
    model.fit(x, y, epochs=1, verbose=0)
    expected = model.evaluate(x, y)
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append(model.evaluate(x, y, batch_size=13))
        except Exception as e:       # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for r in results:
        assert r[1] == expected[1] and r[2] == pytest.approx(expected[2], rel=1e-12)


def test_training_with_metric_objects_allocates_no_batch_arrays():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4096, 64)).astype(np.float32)
    y = rng.integers(0, 10, 4096)
    fn.set_seed(0)
    model = fn.Sequential([L.Dense(64, activation="relu", input_dim=64),
                           L.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy", M.AUC(), M.Precision(top_k=2), "top_k_categorical_accuracy"])
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    tracemalloc.start()
    model.fit(x, y, batch_size=64, epochs=3, verbose=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # as in test_models: the epoch's permutation and index (64 KiB) are the only arrays
    # of data size; AUC's state is 2 x 201 doubles, made at compile
    assert peak < 200_000


# ------------------------------------------------------------------ bad input --

@pytest.mark.parametrize("make,error,match", [
    (lambda: M.Precision(thresholds=1.5), ValueError, r"Precision: thresholds: must be in"),
    (lambda: M.Recall(thresholds=[]), ValueError, r"Recall: thresholds must not be empty"),
    (lambda: M.Precision(top_k=0), ValueError, r"Precision: top_k: must be >= 1"),
    (lambda: M.AUC(curve="XY"), ValueError, r"AUC: curve must be one of"),
    (lambda: M.AUC(summation_method="simpson"), ValueError, r"summation_method must be one"),
    (lambda: M.AUC(num_thresholds=1), ValueError, r"AUC: num_thresholds: must be >= 2"),
    (lambda: M.AUC(num_labels=3), ValueError, r"num_labels is needed only when multi_label"),
    (lambda: M.AUC(label_weights=[1, -1]), ValueError, r"label_weights must be >= 0"),
    (lambda: M.AUC(multi_label=1), TypeError, r"multi_label must be True or False"),
    (lambda: M.TopKCategoricalAccuracy(k=0), ValueError, r"k: must be >= 1"),
    (lambda: M.BinaryAccuracy(threshold="a"), TypeError, r"threshold: expected a number"),
    (lambda: M.Accuracy(dtype="int"), ValueError, r"dtype must be None"),
])
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("loss,metric,match", [
    ("mse", "sparse_categorical_accuracy", r"compile: sparse_categorical_accuracy needs "
                                           r"integer labels"),
    ("categorical_crossentropy", "sparse_top_k_categorical_accuracy",
     r"sparse_top_k_categorical_accuracy needs integer labels"),
    ("sparse_categorical_crossentropy", "mae", r"mae needs targets of the outputs' shape"),
    ("sparse_categorical_crossentropy", M.Accuracy(), r"accuracy compares y_pred with y_true"),
    ("mse", M.Precision(class_id=3), r"class_id 3 is out of range for 3 outputs"),
    ("mse", M.AUC(multi_label=True, num_labels=2), r"num_labels=2 but the model has 3"),
    ("mse", "precison", r"unknown metric 'precison'; supported: .*'precision'"),
    ("mse", M.AUC(label_weights=[1, 2]), r"label_weights has 2 weights for 3 outputs"),
])
def test_incompatible_metrics_are_refused_at_compile(loss, metric, match):
    model = fn.Sequential([L.Dense(3, input_dim=2)])
    with pytest.raises(ValueError, match=match):
        model.compile(loss=loss, metrics=[metric])
    assert not model.compiled


def test_update_state_validates():
    m = M.AUC()
    with pytest.raises(ValueError, match=r"AUC.update_state: y_true: has 2 samples but x "
                                         r"has 3"):
        m.update_state([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"NaN"):
        m.update_state([0, 1], [0.1, np.nan])
    c = M.CategoricalAccuracy()
    c.update_state([[0, 1]], [[0.2, 0.8]])
    with pytest.raises(ValueError, match=r"y_pred has 3 outputs but the metric was built for 2"):
        c.update_state([[0, 1, 0]], [[0.2, 0.7, 0.1]])


def test_metric_classes_are_accepted_like_instances():
    x, y = _data()
    model = _classifier([M.AUC, M.SparseTopKCategoricalAccuracy])
    history = model.fit(x, y, epochs=1, verbose=0)
    assert {"auc", "sparse_top_k_categorical_accuracy"} <= set(history.history)


def test_two_metrics_with_one_name_are_refused():
    model = fn.Sequential([L.Dense(3, input_dim=2)])
    with pytest.raises(ValueError, match=r"have the same name 'precision'"):
        model.compile(loss="mse", metrics=["precision", M.Precision(class_id=1)])
    with pytest.raises(ValueError, match=r"have the same name 'accuracy'"):
        model.compile(loss="mse", metrics=["acc", "accuracy"])


class _MeanPrediction(M.Metric):
    """A user's metric (NumPy inside): the mean of the predictions."""
    name = "mean_prediction"

    def reset_state(self):
        self.total = self.count = 0.0

    def update_batch(self, p, y, sample_weight=None):
        self.total += float(p.sum())
        self.count += p.size

    def result(self):
        return self.total / self.count if self.count else 0.0


def test_custom_metric_trains_pickles_and_cannot_be_saved(tmp_path):
    import pickle
    x, y = _data()
    model = _classifier(["accuracy", _MeanPrediction()])
    history = model.fit(x, y, epochs=1, verbose=0)
    # a softmax's outputs average 1/3 per entry
    assert history.history["mean_prediction"][0] == pytest.approx(1 / 3, rel=1e-5)
    twin = pickle.loads(pickle.dumps(model))
    assert isinstance(twin.metrics[1], _MeanPrediction)
    assert twin.evaluate(x, y) == model.evaluate(x, y)
    with pytest.raises(ValueError, match=r"save: custom metric"):
        model.save(tmp_path / "m.fnn")


def test_fit_logs_the_epoch_metric_not_a_mean_of_batch_values():
    """With a learning rate of 0 the predictions stay fixed, so each training epoch's
    metric must equal the metric over all samples at once: a mean of the batch values
    (batches of 32 and a last one of 4) would differ for AUC and accuracy alike."""
    x, y = _data(100, seed=3)
    fn.set_seed(0)
    # float64: the training and predict passes (other batch sizes, so other BLAS
    # blockings) differ by ~1e-16, far from moving a prediction across a threshold
    model = fn.Sequential([L.Dense(8, activation="relu", input_dim=4),
                           L.Dense(3, activation="softmax")], dtype="float64")
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=fn.optimizers.SGD(learning_rate=0.0),
                  metrics=["accuracy", M.AUC(), M.Precision(top_k=1)])
    history = model.fit(x, y, epochs=2, batch_size=32, shuffle=True, verbose=0)
    pred = model.predict(x)
    for metric in model.metrics:
        whole = metric.copy()
        whole.update_state(y, pred)
        assert history.history[metric.name] == [pytest.approx(whole.result(), rel=1e-12)] * 2
    batch_means = []
    for lo in range(0, 100, 32):
        part = model.metrics[1].copy()
        part.update_state(y[lo:lo + 32], pred[lo:lo + 32])
        batch_means.append(part.result())
    assert np.mean(batch_means) != pytest.approx(history.history["auc"][0], abs=1e-6)


def test_update_batch_takes_the_training_loops_empty_weights():
    p = np.array([[0.2, 0.8], [0.6, 0.4]])
    for metric in (M.CategoricalAccuracy(), M.AUC(), M.MeanSquaredError()):
        metric.build("real", 2)
        metric.update_batch(p, np.eye(2), np.empty(0))
        twin = metric.copy()
        twin.update_state(np.eye(2), p)
        assert metric.result() == twin.result()
