"""The per-batch work of the metrics: counts and sums over a batch, weighted or not.

Every kernel returns (or adds into its state arrays) a sum over samples of
weight_i * value_i; sample_weight is None (all ones) or a (n,) array of the outputs'
dtype. The counting kernels also take per_sample: None, or a float64 (n,) array that
receives each row's value (1/0 for a correct row; the row's count of matching entries
for the element-wise ones), for the function forms. Python divides by the summed weights when the epoch (or evaluate) is done.
Shapes: p (n, m) predictions, y (n, m) targets or (n,) int64 labels (checked in Python).
Ties: argmax takes the first maximum (as NumPy); "in the top k" counts a class whose
score has fewer than k strictly larger scores in its row (TensorFlow's in_top_k).
"""
import numpy as np

from libc.math cimport ceil, exp
from libc.stdint cimport int64_t
from cython cimport floating

from fastnn._core.rows cimport _rows_out


cdef inline double _w(const floating* sw, Py_ssize_t i) noexcept nogil:
    return sw[i] if sw != NULL else 1.0


cdef inline Py_ssize_t _argmax(const floating* row, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t j, best = 0
    for j in range(1, m):
        if row[j] > row[best]:
            best = j
    return best


cdef inline bint _in_top_k(const floating* row, Py_ssize_t m, Py_ssize_t target,
                           Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t j, larger = 0
    for j in range(m):
        if row[j] > row[target]:
            larger += 1
            if larger >= k:
                return False
    return True


cdef inline bint _kept_by_top_k(const floating* row, Py_ssize_t m, Py_ssize_t c,
                                Py_ssize_t k) noexcept nogil:
    """Whether entry c is among the k entries top_k picks (ties: the lower index first),
    i.e. fewer than k entries are larger, or equal and before it."""
    cdef Py_ssize_t j, ahead = 0
    for j in range(m):
        if row[j] > row[c] or (row[j] == row[c] and j < c):
            ahead += 1
            if ahead >= k:
                return False
    return True


cdef const floating[::1] _weight_view(const floating[:, ::1] like, object sample_weight):
    # A view of sample_weight in like's dtype (a TypeError names a wrong dtype), or None.
    cdef const floating[::1] view = None
    if sample_weight is not None:
        view = sample_weight
    return view


cdef const floating* _weights(object sample_weight, const floating[::1] keep,
                              Py_ssize_t n) except? NULL:
    # keep: the caller's memoryview slot that holds the buffer during the call.
    if sample_weight is None:
        return NULL
    if keep.shape[0] != n:
        raise ValueError(f"sample_weight: expected shape ({n},), got ({keep.shape[0]},)")
    return &keep[0] if n > 0 else NULL


def count_correct_onehot(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
                         sample_weight=None, per_sample=None):
    """Sum of weights of the rows whose argmax of p equals the argmax of y."""
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i
    cdef const floating[::1] sw_view = _weight_view(p, sample_weight)
    cdef const floating* sw = _weights(sample_weight, sw_view, n)
    cdef double hits = 0
    cdef bint hit
    cdef double* out = _rows_out(per_sample, n)
    with nogil:
        for i in range(n):
            hit = _argmax(&p[i, 0], m) == _argmax(&y[i, 0], m)
            hits += hit * _w(sw, i)
            if out != NULL:
                out[i] = hit
    return hits


def count_correct_sparse(const floating[:, ::1] p not None, const int64_t[::1] labels not None,
                         sample_weight=None, per_sample=None):
    """Sum of weights of the rows whose argmax of p equals the integer label."""
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i
    cdef const floating[::1] sw_view = _weight_view(p, sample_weight)
    cdef const floating* sw = _weights(sample_weight, sw_view, n)
    cdef double hits = 0
    cdef bint hit
    cdef double* out = _rows_out(per_sample, n)
    with nogil:
        for i in range(n):
            hit = _argmax(&p[i, 0], m) == labels[i]
            hits += hit * _w(sw, i)
            if out != NULL:
                out[i] = hit
    return hits


def count_correct_binary(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
                         double threshold=0.5, sample_weight=None, per_sample=None):
    """Sum over rows of weight_i * (entries where (p > threshold) equals
    (y > threshold)): binary accuracy is this over m * sum of weights."""
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i, j, row
    cdef const floating[::1] sw_view = _weight_view(p, sample_weight)
    cdef const floating* sw = _weights(sample_weight, sw_view, n)
    cdef double hits = 0
    cdef double* out = _rows_out(per_sample, n)
    with nogil:
        for i in range(n):
            row = 0
            for j in range(m):
                row += (p[i, j] > threshold) == (y[i, j] > threshold)
            hits += _w(sw, i) * row
            if out != NULL:
                out[i] = row
    return hits


def count_equal(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
                sample_weight=None, per_sample=None):
    """Sum over rows of weight_i * (entries where p == y exactly): Keras's Accuracy."""
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i, j, row
    cdef const floating[::1] sw_view = _weight_view(p, sample_weight)
    cdef const floating* sw = _weights(sample_weight, sw_view, n)
    cdef double hits = 0
    cdef double* out = _rows_out(per_sample, n)
    with nogil:
        for i in range(n):
            row = 0
            for j in range(m):
                row += p[i, j] == y[i, j]
            hits += _w(sw, i) * row
            if out != NULL:
                out[i] = row
    return hits


def count_equal_sparse(const floating[:, ::1] p not None, const int64_t[::1] labels not None,
                       sample_weight=None, per_sample=None):
    """count_equal of a one-column p against integer labels."""
    cdef Py_ssize_t n = p.shape[0], i
    cdef const floating[::1] sw_view = _weight_view(p, sample_weight)
    cdef const floating* sw = _weights(sample_weight, sw_view, n)
    cdef double hits = 0
    cdef bint hit
    cdef double* out = _rows_out(per_sample, n)
    if p.shape[1] != 1:
        raise ValueError(f"count_equal_sparse: p must have one column, got {p.shape[1]}")
    with nogil:
        for i in range(n):
            hit = p[i, 0] == labels[i]
            hits += hit * _w(sw, i)
            if out != NULL:
                out[i] = hit
    return hits


def count_in_top_k_onehot(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
                          Py_ssize_t k, sample_weight=None, per_sample=None):
    """Sum of weights of the rows whose target class (argmax of y) is in p's top k."""
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i
    cdef const floating[::1] sw_view = _weight_view(p, sample_weight)
    cdef const floating* sw = _weights(sample_weight, sw_view, n)
    cdef double hits = 0
    cdef bint hit
    cdef double* out = _rows_out(per_sample, n)
    with nogil:
        for i in range(n):
            hit = _in_top_k(&p[i, 0], m, _argmax(&y[i, 0], m), k)
            hits += hit * _w(sw, i)
            if out != NULL:
                out[i] = hit
    return hits


def count_in_top_k_sparse(const floating[:, ::1] p not None, const int64_t[::1] labels not None,
                          Py_ssize_t k, sample_weight=None, per_sample=None):
    """Sum of weights of the rows whose integer label is in p's top k."""
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i
    cdef const floating[::1] sw_view = _weight_view(p, sample_weight)
    cdef const floating* sw = _weights(sample_weight, sw_view, n)
    cdef double hits = 0
    cdef bint hit
    cdef double* out = _rows_out(per_sample, n)
    with nogil:
        for i in range(n):
            hit = _in_top_k(&p[i, 0], m, labels[i], k)
            hits += hit * _w(sw, i)
            if out != NULL:
                out[i] = hit
    return hits


def count_in_sorted_ids(const floating[:, ::1] p not None, const int64_t[::1] labels not None,
                        Py_ssize_t k, sample_weight=None, per_sample=None):
    """Sum of weights of the rows whose label is among the first k entries of p (p holds
    class ids sorted by score: Keras's from_sorted_ids=True)."""
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i, j
    cdef const floating[::1] sw_view = _weight_view(p, sample_weight)
    cdef const floating* sw = _weights(sample_weight, sw_view, n)
    cdef double hits = 0
    cdef bint hit
    cdef double* out = _rows_out(per_sample, n)
    if k > m:
        k = m
    with nogil:
        for i in range(n):
            hit = False
            for j in range(k):
                if p[i, j] == labels[i]:
                    hit = True
                    break
            hits += hit * _w(sw, i)
            if out != NULL:
                out[i] = hit
    return hits


cdef double _sum_row_errors(const floating[:, ::1] p, const floating[:, ::1] y,
                            object sample_weight, object per_sample, bint squared) except? -1:
    """sum_i w_i mean_j e(p_ij - y_ij), e = |d| or d^2; per_sample gets each row's mean."""
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], i, j
    cdef const floating[::1] sw_view = _weight_view(p, sample_weight)
    cdef const floating* sw = _weights(sample_weight, sw_view, n)
    cdef double* out = _rows_out(per_sample, n)
    cdef double total = 0, row, d
    with nogil:
        for i in range(n):
            row = 0
            for j in range(m):
                d = <double>p[i, j] - <double>y[i, j]
                row += d * d if squared else (d if d >= 0 else -d)
            total += _w(sw, i) * row / m
            if out != NULL:
                out[i] = row / m
    return total


def sum_absolute_error(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
                       sample_weight=None, per_sample=None):
    """sum_i w_i mean_j |p_ij - y_ij|."""
    return _sum_row_errors(p, y, sample_weight, per_sample, False)


def sum_squared_error(const floating[:, ::1] p not None, const floating[:, ::1] y not None,
                      sample_weight=None, per_sample=None):
    """sum_i w_i mean_j (p_ij - y_ij)^2."""
    return _sum_row_errors(p, y, sample_weight, per_sample, True)


cdef inline Py_ssize_t _bucket(double v, const double* thresholds, Py_ssize_t t,
                               bint evenly, bint with_eps) noexcept nogil:
    """How many thresholds v is strictly above (v counts as positive at thresholds
    0 .. bucket - 1). Evenly spaced thresholds 0 .. 1 use Keras's optimized rule on v
    clipped to [0, 1]: ceil(v (t - 1)), at least 1 when the end points are -EPS, 1+EPS."""
    cdef Py_ssize_t lo = 0, hi = t, mid
    if evenly:
        v = 0.0 if v < 0 else (1.0 if v > 1 else v)
        lo = <Py_ssize_t>ceil(v * (t - 1))
        if with_eps and lo < 1:
            lo = 1
        return lo
    while lo < hi:                      # first threshold >= v
        mid = (lo + hi) // 2
        if thresholds[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


def confusion_histogram(const floating[:, ::1] p not None, y, sample_weight,
                        const double[::1] thresholds not None, bint evenly, bint with_eps,
                        Py_ssize_t class_id, Py_ssize_t top_k, bint from_logits,
                        bint multi_label, label_weights,
                        double[:, ::1] positives not None, double[:, ::1] negatives not None):
    """Adds the batch to the confusion histograms of a thresholded metric.

    For every entry (row i, column j; only column class_id when class_id >= 0): its
    weight w_i (times label_weights[j] when given) goes to positives[b, c] if its label
    is true (y != 0, or j == label) else to negatives[b, c], b = _bucket(prediction),
    c = j if multi_label else 0. Then true positives at threshold k are the sum of
    positives[b] over b > k (and so on), computed when the result is asked for.
    top_k > 0 keeps only each row's top_k entries (the others are never positive);
    from_logits applies the sigmoid first. thresholds: sorted ascending.
    """
    cdef Py_ssize_t n = p.shape[0], m = p.shape[1], t = thresholds.shape[0], i, j, b, c
    cdef Py_ssize_t j0 = 0, j1 = m
    cdef const floating[::1] sw_view = _weight_view(p, sample_weight)
    cdef const floating* sw = _weights(sample_weight, sw_view, n)
    cdef const floating[:, ::1] y_matrix
    cdef const int64_t[::1] y_labels
    cdef const double[::1] lw_view
    cdef const double* lw = NULL
    cdef bint sparse = isinstance(y, np.ndarray) and y.ndim == 1
    cdef bint positive
    cdef double v, w
    if sparse:
        y_labels = y
        if y_labels.shape[0] != n:
            raise ValueError(f"y: expected {n} labels, got {y_labels.shape[0]}")
    else:
        y_matrix = y
        if y_matrix.shape[0] != n or y_matrix.shape[1] != m:
            raise ValueError(f"y: expected shape ({n}, {m}), got "
                             f"({y_matrix.shape[0]}, {y_matrix.shape[1]})")
    if label_weights is not None:
        lw_view = label_weights
        if lw_view.shape[0] != m:
            raise ValueError(f"label_weights: expected {m} weights, got {lw_view.shape[0]}")
        lw = &lw_view[0]
    if class_id >= 0:
        if class_id >= m:
            raise ValueError(f"class_id {class_id} is out of range for {m} outputs")
        j0, j1 = class_id, class_id + 1
    if positives.shape[0] != t + 1 or negatives.shape[0] != t + 1 or \
            positives.shape[1] != (m if multi_label else 1) or \
            negatives.shape[1] != positives.shape[1]:
        raise ValueError("confusion_histogram: state arrays of the wrong shape")
    with nogil:
        for i in range(n):
            w = _w(sw, i)
            for j in range(j0, j1):
                if top_k > 0 and not _kept_by_top_k(&p[i, 0], m, j, top_k):
                    b = 0
                else:
                    v = p[i, j]
                    if from_logits:
                        v = 1.0 / (1.0 + exp(-v)) if v >= 0 else exp(v) / (1.0 + exp(v))
                    b = _bucket(v, &thresholds[0], t, evenly, with_eps)
                positive = (y_labels[i] == j) if sparse else (y_matrix[i, j] != 0)
                c = j if multi_label else 0
                if positive:
                    positives[b, c] += w * (lw[j] if lw != NULL else 1.0)
                else:
                    negatives[b, c] += w * (lw[j] if lw != NULL else 1.0)
    return None
