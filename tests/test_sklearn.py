"""fastnn.sklearn: drop-in MLPClassifier / MLPRegressor.

scikit-learn's estimator checks with no expected failures; the same trajectories as
scikit-learn's own classes (same initialization, batches, losses, updates and stopping
rules: in float64 the weights agree to rounding); sparse = dense; the same errors,
warnings and printed lines; pickling, Pipeline + GridSearchCV(n_jobs=2); the extras.
"""
import contextlib
import io
import pickle
import re
import tracemalloc
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
import scipy.sparse  # noqa: E402
from sklearn import neural_network as sk  # noqa: E402
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastnn as fn  # noqa: E402
from fastnn import sklearn as fsk  # noqa: E402

# Same operations in a different order (BLAS blocking, fused kernels): float64 results
# agree to ~1e-14 after tens of epochs; 1e-9 leaves room for the growth of rounding
# differences through training while still catching any difference in the rules
# (a wrong scaling or schedule shows at 1e-3 or more after one epoch).
RTOL, ATOL = 1e-9, 1e-10


@parametrize_with_checks([fsk.MLPClassifier(max_iter=100), fsk.MLPRegressor(max_iter=100)])
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def classification(n=150, classes=3, seed=0):
    return make_classification(n, 8, n_informative=5, n_classes=classes, random_state=seed)


def regression(n=150, targets=1, seed=0):
    x, y = make_regression(n, 6, n_targets=targets, noise=5.0, random_state=seed)
    return x, y / 100


def fit_both(name, x, y, sample_weight=None, **kw):
    """(scikit-learn's fitted estimator, fastnn's), warnings recorded separately."""
    out = []
    for module in (sk, fsk):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = getattr(module, name)(**kw).fit(x, y, sample_weight=sample_weight)
        est.caught_ = [(w.category, str(w.message)) for w in caught]
        out.append(est)
    return out


def assert_same_fit(a, b):
    assert b.n_iter_ == a.n_iter_ and b.t_ == a.t_ and b.n_layers_ == a.n_layers_
    assert b.n_outputs_ == a.n_outputs_ and b.out_activation_ == a.out_activation_
    assert len(b.coefs_) == len(a.coefs_)
    assert b.caught_ == a.caught_
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert p.shape == q.shape and p.dtype == q.dtype
        np.testing.assert_allclose(q, p, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(b.loss_, a.loss_, rtol=RTOL)
    for attr in ("loss_curve_", "validation_scores_"):
        if getattr(a, attr, None) is not None:
            np.testing.assert_allclose(getattr(b, attr), getattr(a, attr), rtol=RTOL)
    for attr in ("best_loss_", "best_validation_score_"):
        assert (getattr(a, attr, None) is None) == (getattr(b, attr, None) is None)
    # The same types too (np.float64 losses, Python float scores), entries of lists
    # included: code written for scikit-learn may rely on them (np.float64's methods).
    for attr in ("loss_", "best_loss_", "loss_curve_", "validation_scores_",
                 "best_validation_score_", "n_iter_", "t_"):
        p, q = getattr(a, attr, "absent"), getattr(b, attr, "absent")
        assert type(q) is type(p), (attr, type(q), type(p))
        if isinstance(p, list):
            assert [type(v) for v in q] == [type(v) for v in p], attr


CLASSIFIER_SETTINGS = [
    dict(solver="adam"),
    dict(solver="adam", alpha=0.1, batch_size=37, shuffle=False),
    dict(solver="sgd", learning_rate_init=0.05),
    dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.2, power_t=0.3),
    dict(solver="sgd", learning_rate="adaptive", tol=0.05, n_iter_no_change=2),
    dict(solver="sgd", nesterovs_momentum=False, momentum=0.5),
    dict(solver="sgd", momentum=0.0),
    dict(solver="adam", early_stopping=True, validation_fraction=0.2, n_iter_no_change=3),
    dict(solver="sgd", early_stopping=True, learning_rate="adaptive", tol=0.05,
         n_iter_no_change=2),
    dict(solver="lbfgs", alpha=1e-3),
    dict(solver="lbfgs", activation="logistic", max_iter=15),
    dict(solver="adam", activation="tanh", hidden_layer_sizes=(12, 7)),
    dict(solver="adam", activation="identity", batch_size=1000),   # clipped, warns
]


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("settings", CLASSIFIER_SETTINGS, ids=str)
def test_classifier_follows_sklearn(settings, classes):
    x, y = classification(classes=classes)
    kw = {"hidden_layer_sizes": (16,), "max_iter": 25, "random_state": 3, **settings}
    a, b = fit_both("MLPClassifier", x, y, **kw)
    assert_same_fit(a, b)
    np.testing.assert_allclose(b.predict_proba(x), a.predict_proba(x), rtol=1e-8,
                               atol=1e-12)
    np.testing.assert_array_equal(b.predict(x), a.predict(x))
    np.testing.assert_array_equal(b.classes_, a.classes_)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_sample_weight_multilabel_and_string_labels_follow_sklearn(solver):
    x, y = classification(classes=3)
    w = np.random.default_rng(0).uniform(0.1, 3.0, len(y))
    labels = np.array(["cat", "dog", "emu"])[y]
    kw = dict(hidden_layer_sizes=(10,), max_iter=15, random_state=0, solver=solver)
    a, b = fit_both("MLPClassifier", x, labels, sample_weight=w, **kw)
    assert_same_fit(a, b)
    assert list(b.predict(x[:5])) == list(a.predict(x[:5]))
    multilabel = np.stack([y == 0, y == 1, x[:, 0] > 0], axis=1).astype(int)
    a, b = fit_both("MLPClassifier", x, multilabel, **kw)
    assert_same_fit(a, b)
    assert b.predict(x).shape == (len(x), 3) and b.out_activation_ == "logistic"
    np.testing.assert_array_equal(b.predict(x), a.predict(x))


@pytest.mark.parametrize("settings", [
    dict(solver="adam"), dict(solver="sgd", learning_rate_init=0.01),
    dict(solver="lbfgs"), dict(solver="adam", early_stopping=True, n_iter_no_change=2),
    dict(solver="sgd", learning_rate="adaptive", tol=1e-2, n_iter_no_change=1),
], ids=str)
@pytest.mark.parametrize("targets", [1, 3])
def test_regressor_follows_sklearn(settings, targets):
    x, y = regression(targets=targets)
    kw = {"hidden_layer_sizes": (12,), "max_iter": 20, "random_state": 1, "alpha": 0.01,
          **settings}
    a, b = fit_both("MLPRegressor", x, y, **kw)
    assert_same_fit(a, b)
    np.testing.assert_allclose(b.predict(x), a.predict(x), rtol=1e-8, atol=1e-10)
    w = np.random.default_rng(1).uniform(0, 2, len(y))
    assert_same_fit(*fit_both("MLPRegressor", x, y, sample_weight=w, **kw))


def test_partial_fit_and_warm_start_follow_sklearn():
    x, y = classification()
    ests = []
    for module in (sk, fsk):
        est = module.MLPClassifier(hidden_layer_sizes=(9,), random_state=0,
                                   solver="sgd", learning_rate_init=0.05)
        est.partial_fit(x[:70], y[:70], classes=[0, 1, 2])
        for _ in range(3):
            est.partial_fit(x[70:], y[70:])
        est.set_params(warm_start=True, max_iter=4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(x, y)
        est.caught_ = []
        ests.append(est)
    assert_same_fit(*ests)


def test_float32_accuracy_and_r2_within_noise():
    x, y = make_classification(1200, 20, n_informative=12, n_classes=4, random_state=5)
    x = x.astype(np.float32)
    for solver in ("adam", "sgd", "lbfgs"):
        scores = []
        for module in (sk, fsk):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                est = module.MLPClassifier((32,), solver=solver, max_iter=60,
                                           random_state=0).fit(x[:900], y[:900])
            # (scikit-learn's lbfgs returns float64 weights, scipy's dtype; fastnn's
            # model stays float32)
            assert est.coefs_[0].dtype == np.float32 or module is sk
            scores.append(est.score(x[900:], y[900:]))
        # 300 test samples: one standard error of an accuracy near 0.8 is ~0.023.
        assert abs(scores[0] - scores[1]) < 0.05, (solver, scores)
    xr, yr = regression(600)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r2 = [module.MLPRegressor(hidden_layer_sizes=(32,), solver="lbfgs", max_iter=200,
                                  random_state=0)
              .fit(xr[:450].astype(np.float32), yr[:450]).score(xr[450:], yr[450:])
              for module in (sk, fsk)]
    assert abs(r2[0] - r2[1]) < 0.02, r2


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_sparse_input_matches_dense(fmt, solver):
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((300, 40)) * (rng.random((300, 40)) < 0.1)
    y = (dense[:, :5].sum(axis=1) > 0).astype(int)
    x = scipy.sparse.csr_matrix(dense) if fmt == "csr" else scipy.sparse.csc_matrix(dense)
    kw = dict(hidden_layer_sizes=(10,), max_iter=10, random_state=0, solver=solver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = fsk.MLPClassifier(**kw).fit(dense, y)
        b = fsk.MLPClassifier(**kw).fit(x, y)
        c = sk.MLPClassifier(**kw).fit(x, y)
    for p, q, r in zip(a.coefs_, b.coefs_, c.coefs_):
        np.testing.assert_array_equal(p, q)          # the same rows, bit for bit
        np.testing.assert_allclose(q, r, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(b.predict_proba(x), a.predict_proba(dense))


@pytest.mark.parametrize("rows, features", [
    (fsk._LBFGS_CHUNK + 700, 6),        # more rows than _LBFGS_CHUNK
    (400, 3000)])                       # rows wider than _CHUNK_BYTES / 4096: 3 chunks
def test_lbfgs_in_chunks_matches_sklearn(rows, features):
    # More rows than one forward/backward chunk: the gradient is summed over chunks.
    x, y = make_regression(rows, features, n_informative=6, noise=5.0, random_state=0)
    y /= 100
    assert fsk._chunk_rows(features, np.float64, fsk._LBFGS_CHUNK) < rows
    a, b = fit_both("MLPRegressor", x, y, hidden_layer_sizes=(6,), solver="lbfgs",
                    max_iter=8, random_state=0)
    assert_same_fit(a, b)
    xs = scipy.sparse.csr_matrix(x)
    c = fsk.MLPRegressor(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=8,
                         random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        c.fit(xs, y)
    for p, q in zip(b.coefs_, c.coefs_):
        np.testing.assert_array_equal(p, q)      # the same chunks, dense or sparse
    # predict's chunks of sparse rows differ from the dense path's batches: rounding.
    np.testing.assert_allclose(c.predict(xs), b.predict(x), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("settings", [
    dict(solver="lbfgs"),
    dict(solver="adam", batch_size=10, early_stopping=True, validation_fraction=0.2)])
def test_wide_sparse_input_is_never_densified_whole(settings):
    # TF-IDF-like: 1,000 x 20,000 with 0.1% non-zeros is 0.24 MB sparse, 160 MB dense.
    # fit's peak also holds scipy's L-BFGS history (2·10 vectors of the 40,018 weights,
    # 6.4 MB) and one chunk of dense rows (_CHUNK_BYTES); afterwards the estimator keeps
    # weights, gradients, optimizer state (Adam: 2 more) and best weights (< 10 copies)
    # and predict's last chunk of rows (its inference workspace refers to it).
    x = scipy.sparse.random(1000, 20000, density=0.001, format="csr", random_state=0)
    y = np.arange(1000) % 2
    dense_bytes = x.shape[0] * x.shape[1] * 8
    est = fsk.MLPClassifier(hidden_layer_sizes=(2,), max_iter=2, random_state=0,
                            **settings)
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(x, y)
        fit_held, fit_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        p = est.predict_proba(x)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    weights = sum(w.nbytes for w in est.coefs_ + est.intercepts_)
    assert fit_peak < dense_bytes / 5, fit_peak
    assert fit_held < 10 * weights + 1.25 * fsk._CHUNK_BYTES, (fit_held, weights)
    assert peak - fit_held < 1.25 * fsk._CHUNK_BYTES + p.nbytes, peak - fit_held
    assert held - fit_held < 1.25 * fsk._CHUNK_BYTES + p.nbytes, held - fit_held


def test_pipeline_in_grid_search_with_two_jobs():
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    x, y = classification(240)
    pipe = make_pipeline(StandardScaler(), fsk.MLPClassifier(max_iter=100, random_state=0,
                                                             learning_rate_init=0.01))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(8,), (16,)],
                               "mlpclassifier__alpha": [1e-4, 1e-1]}, cv=2, n_jobs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(x, y)
    assert len(grid.cv_results_["mean_test_score"]) == 4
    assert grid.best_score_ > 0.6
    assert isinstance(grid.best_estimator_[-1].model_, fn.Sequential)
    assert grid.score(x, y) > 0.7


def test_pickled_estimator_predicts_and_continues_identically():
    x, y = classification()
    est = fsk.MLPClassifier((10,), max_iter=5, random_state=0, dropout=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(x, y)
    clone = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(clone.predict_proba(x), est.predict_proba(x))
    assert isinstance(clone.model_.optimizer, fsk.SklearnAdam)
    for e in (est, clone):
        e.partial_fit(x, y)
    for p, q in zip(est.coefs_, clone.coefs_):
        np.testing.assert_array_equal(p, q)


def test_pandas_feature_names():
    pd = pytest.importorskip("pandas")
    x, y = regression()
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    est = fsk.MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(frame, pd.Series(y))
    assert list(est.feature_names_in_) == list(frame.columns) and est.n_features_in_ == 6
    np.testing.assert_array_equal(est.predict(frame), est.predict(x))


def test_model_is_a_fastnn_sequential_with_live_weights():
    x, y = classification()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = fsk.MLPClassifier((7, 5), max_iter=3, random_state=0).fit(x, y)
    model = est.model_
    assert isinstance(model, fn.Sequential) and model.output_dim == 3
    assert [c.shape for c in est.coefs_] == [(8, 7), (7, 5), (5, 3)]
    np.testing.assert_allclose(model.predict(x), est.predict_proba(x))
    est.coefs_[0][...] = 0.0                   # the attributes are views of model_
    assert not model.get_weights()[0].any()
    est.intercepts_ = [np.ones_like(b) for b in est.intercepts_]
    assert all((b == 1).all() for b in model.get_weights()[1::2])
    est.coefs_ = [np.full_like(w, 2.0) for w in est.coefs_]
    assert all((w == 2).all() for w in model.get_weights()[0::2])
    for name, values in (("coefs_", est.coefs_), ("intercepts_", est.intercepts_)):
        with pytest.raises(ValueError, match=rf"{name}: expected 3 arrays, got 2"):
            setattr(est, name, values[:2])
        wrong = [values[0][..., :1]] + values[1:]      # would broadcast: refused
        with pytest.raises(ValueError, match=re.escape(
                f"{name}[0]: expected shape {values[0].shape}, got {wrong[0].shape}")):
            setattr(est, name, wrong)
    assert all((w == 2).all() for w in model.get_weights()[0::2])   # nothing half-set


def test_params_are_sklearns_plus_neutral_extras():
    for name in ("MLPClassifier", "MLPRegressor"):
        ours = getattr(fsk, name)().get_params()
        theirs = getattr(sk, name)().get_params()
        assert set(ours) - set(theirs) == {"dropout", "dtype"}
        assert {k: ours[k] for k in theirs} == theirs
        assert ours["dropout"] == 0.0 and ours["dtype"] is None
    tags = fsk.MLPClassifier().__sklearn_tags__()
    assert tags.input_tags.sparse and tags.classifier_tags.multi_label
    assert fsk.MLPRegressor().__sklearn_tags__().input_tags.sparse


def test_extras():
    x, y = classification(300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        kw = {"max_iter": 60, "random_state": 0, "learning_rate_init": 0.01}
        plain = fsk.MLPClassifier((16,), **kw).fit(x, y)
        dropped = fsk.MLPClassifier((16,), dropout=0.3, **kw).fit(x, y)
        assert [type(layer).__name__ for layer in dropped.model_.layers] == \
            ["Dense", "Dropout", "Dense"]
        assert not np.array_equal(plain.coefs_[0], dropped.coefs_[0])
        assert dropped.score(x, y) > 0.7
        single = fsk.MLPClassifier((16,), dtype="float32", **kw).fit(x, y)
        assert single.model_.dtype == np.float32 and single.coefs_[0].dtype == np.float32
        assert abs(single.score(x, y) - plain.score(x, y)) < 0.05
        for solver in ("rmsprop", "adagrad", "nadam", "adamax"):
            est = fsk.MLPClassifier((16,), solver=solver, **kw).fit(x, y)
            assert est.score(x, y) > 0.8 and len(est.loss_curve_) == est.n_iter_
            assert type(est.model_.optimizer).__name__.lower() == solver
    with pytest.raises(ValueError, match="dropout=0.5 needs a stochastic solver"):
        fsk.MLPClassifier(solver="lbfgs", dropout=0.5).fit(x, y)


def test_convergence_warnings_and_verbose_output_are_sklearns():
    x, y = classification()
    for solver in ("adam", "sgd", "lbfgs"):
        outputs = []
        for module in (sk, fsk):
            out = io.StringIO()
            with contextlib.redirect_stdout(out), warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                module.MLPClassifier((8,), solver=solver, max_iter=3, random_state=0,
                                     verbose=solver != "lbfgs").fit(x, y)
            outputs.append((out.getvalue(), [(c.category, str(c.message)) for c in w]))
        assert outputs[0] == outputs[1]
        assert outputs[1][1][0][0] is ConvergenceWarning


def test_sklearns_convergence_warning_filter_silences_fastnns():
    # scikit-learn's way (its example plot_mlp_training_curves.py): the filter matches the
    # module name "sklearn..." a warning is issued under.
    x, y = classification()
    for solver in ("adam", "sgd", "lbfgs"):
        fit = lambda: fsk.MLPClassifier((8,), solver=solver, max_iter=3,  # noqa: E731
                                        random_state=0).fit(x, y)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.filterwarnings("ignore", category=ConvergenceWarning, module="sklearn")
            fit()
        assert caught == []
        with pytest.warns(ConvergenceWarning, match="iteration"):     # still issued
            fit()
    # The "default", "once" and "module" actions show the warning as often as
    # scikit-learn's own (its registry is kept as a module's).
    for action in ("default", "once", "module"):
        counts = []
        for module in (sk, fsk):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter(action)
                for _ in range(3):
                    for solver in ("adam", "lbfgs"):
                        module.MLPClassifier((8,), solver=solver, max_iter=3,
                                             random_state=0).fit(x, y)
            counts.append([str(c.message)[:20] for c in caught])
        assert counts[1] == counts[0], action


def _error(make):
    try:
        make()
    except Exception as e:        # noqa: BLE001 - the point is to compare any error
        # A set of options prints in the order of its hash table (it varies): sorted.
        return type(e), re.sub(r"\{([^{}]*)\}", lambda m: "{%s}" % ", ".join(
            sorted(m.group(1).split(", "))), str(e))
    return None


X3, Y3 = classification(60)
XR, YR = regression(60)


@pytest.mark.parametrize("case", [
    lambda m: m.MLPClassifier().fit(np.where(X3 > 2, np.nan, X3), Y3),
    lambda m: m.MLPClassifier().fit(np.where(X3 > 2, np.inf, X3), Y3),
    lambda m: m.MLPClassifier().fit(X3[:, 0], Y3),
    lambda m: m.MLPClassifier().fit(X3, Y3[:-1]),
    lambda m: m.MLPClassifier().fit(X3 + 1j, Y3),
    lambda m: m.MLPClassifier().fit(X3, X3[:, 0]),
    lambda m: m.MLPClassifier().fit(X3[:0], Y3[:0]),
    lambda m: m.MLPClassifier(hidden_layer_sizes=-3).fit(X3, Y3),
    lambda m: m.MLPClassifier(hidden_layer_sizes=[4, 0]).fit(X3, Y3),
    lambda m: m.MLPClassifier(activation="softplus").fit(X3, Y3),
    lambda m: m.MLPClassifier(alpha=-1.0).fit(X3, Y3),
    lambda m: m.MLPClassifier(batch_size=0).fit(X3, Y3),
    lambda m: m.MLPClassifier(learning_rate_init=0).fit(X3, Y3),
    lambda m: m.MLPClassifier(momentum=1.5).fit(X3, Y3),
    lambda m: m.MLPClassifier(beta_2=1.0).fit(X3, Y3),
    lambda m: m.MLPClassifier(max_iter=0).fit(X3, Y3),
    lambda m: m.MLPClassifier(early_stopping=True, validation_fraction=0.01).fit(X3, Y3),
    lambda m: m.MLPClassifier().fit(X3, Y3, sample_weight=np.ones(5)),
    lambda m: m.MLPClassifier().fit(X3, Y3, sample_weight=np.zeros(len(Y3))),
    lambda m: m.MLPClassifier(batch_size=10).fit(X3, Y3, sample_weight=np.arange(60) < 5),
    lambda m: m.MLPClassifier().predict(X3),
    lambda m: m.MLPClassifier(max_iter=2).fit(X3, Y3).predict(X3[:, :3]),
    lambda m: m.MLPClassifier().partial_fit(X3, Y3),
    lambda m: m.MLPClassifier(solver="lbfgs").partial_fit(X3, Y3, classes=[0, 1, 2]),
    lambda m: m.MLPClassifier(early_stopping=True).partial_fit(X3, Y3, classes=[0, 1, 2]),
    lambda m: m.MLPClassifier().partial_fit(X3, Y3, classes=[0, 1]),
    lambda m: m.MLPClassifier(max_iter=2, warm_start=True).fit(X3, Y3).fit(X3, Y3 % 2),
    lambda m: m.MLPRegressor(loss="hinge").fit(XR, YR),
    lambda m: m.MLPRegressor().predict(XR),
], ids=lambda f: f"line{f.__code__.co_firstlineno}")
def test_bad_input_raises_as_sklearn(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = _error(lambda: case(sk))
        ours = _error(lambda: case(fsk))
    assert theirs is not None and ours == theirs


def test_unknown_solver_is_an_invalid_parameter():
    from sklearn.utils._param_validation import InvalidParameterError
    with pytest.raises(InvalidParameterError, match="'solver' parameter of MLPClassifier"):
        fsk.MLPClassifier(solver="newton").fit(X3, Y3)
    with pytest.raises(NotFittedError):
        fsk.MLPRegressor().predict(XR)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_poisson_regressor_follows_sklearn(solver):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5))
    y = rng.poisson(np.exp(0.5 * x[:, 0] - 0.3 * x[:, 1]))
    kw = dict(loss="poisson", hidden_layer_sizes=(8,), max_iter=15, random_state=0,
              solver=solver, learning_rate_init=0.01)
    a, b = fit_both("MLPRegressor", x, y, **kw)
    assert b.out_activation_ == "exp"
    assert_same_fit(a, b)
    np.testing.assert_allclose(b.predict(x), a.predict(x), rtol=1e-8)
    w = rng.uniform(0.5, 2.0, len(y))
    assert_same_fit(*fit_both("MLPRegressor", x, y, sample_weight=w, **kw))


def test_import_fastnn_does_not_import_sklearn():
    import subprocess
    import sys
    import os
    import tempfile
    code = "import sys, fastnn; assert 'sklearn' not in sys.modules, 'sklearn imported'"
    # The fastnn under test, from a temporary directory: run from the source tree,
    # `import fastnn` would find the uncompiled package there instead.
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fn.__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, env=env,
                   cwd=tempfile.gettempdir())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 7, 1000])
def test_sklearn_adam_follows_sklearns_adam_optimizer(dtype, size):
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer
    rng = np.random.default_rng(size)
    w = rng.standard_normal(size).astype(dtype)
    ref = [w.astype(np.float64)]
    theirs = AdamOptimizer(ref, learning_rate_init=0.01, beta_1=0.8, beta_2=0.99,
                           epsilon=1e-6)
    ours = fsk.SklearnAdam(0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-6)
    ours.build(w, np.array([0, size]))
    for _ in range(20):
        g = rng.standard_normal(size) * 10.0 ** rng.integers(-4, 2)
        theirs.update_params(ref, [g])
        ours.apply(w, g.astype(dtype))
    # float64: the same formula in the same order (1e-12 allows the fused kernel's
    # rounding); float32: 20 steps of float32 rounding on O(0.1) updates.
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(w, ref[0], rtol=tol, atol=tol)
