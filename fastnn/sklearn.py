"""scikit-learn drop-ins: MLPClassifier and MLPRegressor, trained by fastnn.

    from fastnn.sklearn import MLPClassifier     # was: from sklearn.neural_network import

The same constructor parameters and defaults, fitted attributes, methods, warnings and
errors as scikit-learn 1.9's classes, and the same numbers: the same initialization from
random_state, the same batches and shuffles, the same losses and scaling of alpha
(0.5·alpha·Σ‖W‖² / Σ batch sample weights, weights only), the same update rules (its SGD
momentum; its Adam, epsilon outside the bias correction), learning-rate schedules,
early stopping and stopping rules. What differs is where the work runs: each minibatch
step is fastnn's compiled forward, backward and fused update on ``model_`` (a
fastnn.Sequential), and solver='lbfgs' runs scipy's L-BFGS-B on the full-batch loss and
gradient computed by the same compiled passes. Sparse input (CSR/CSC) is densified one
minibatch at a time (fastnn/_core/sparse.pyx), never as a whole (L-BFGS's full batch and
predict: about _CHUNK_BYTES of rows at a time); after fit the estimator keeps no training
buffers (after predict, its last chunk of rows at most). Warnings are issued under
scikit-learn's module name, so filters written for scikit-learn's (module="sklearn")
apply.

Extras, keyword parameters whose defaults change nothing: ``dropout`` (rate of a Dropout
layer after each hidden layer; stochastic solvers only), ``dtype`` (None: the data's,
float32 or float64, as scikit-learn does) and solvers 'rmsprop', 'adagrad', 'nadam' and
'adamax' (fastnn's rules, with learning_rate_init and epsilon, and beta_1, beta_2 for the
last two; like 'adam', they ignore learning_rate schedules).

scikit-learn is needed for this module only (pip install scikit-learn); fastnn itself does
not depend on it.
"""
import types
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.optimize
import scipy.sparse

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
except ImportError as e:      # pragma: no cover - depends on the environment
    raise ImportError("fastnn.sklearn needs scikit-learn (>= 1.6), which fastnn does not "
                      "install by itself: pip install scikit-learn") from e
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d, gen_batches, shuffle
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (_check_partial_fit_first_call, type_of_target,
                                      unique_labels)
from sklearn.utils.fixes import _get_additional_lbfgs_options_dict
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from fastnn import layers as L
from fastnn import engine, losses, optimizers, regularizers
from fastnn._core import ops as _ops
from fastnn._core import optim as _optim
from fastnn._core import poisson as _poisson
from fastnn._core import sparse as _sparse
from fastnn.models import Sequential

__all__ = ["MLPClassifier", "MLPRegressor"]

_STOCHASTIC_SOLVERS = ["sgd", "adam", "rmsprop", "adagrad", "nadam", "adamax"]
_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
# The last layer's activation for each out_activation_; 'exp' (loss='poisson') keeps a
# linear last layer z: the loss takes z (a log link) and predict returns exp(z).
_OUTPUT = {"identity": "linear", "logistic": "sigmoid", "softmax": "softmax", "exp": "linear"}
_LBFGS_CHUNK = 4096        # rows per forward/backward in the full-batch L-BFGS gradient
_PREDICT_CHUNK = 1024      # rows per predict call (sparse rows are densified per chunk)
# ... and at most about this many bytes of dense rows per chunk (the L-BFGS workspace's
# x, a predict chunk of densified sparse rows), so that wide data (TF-IDF: 10⁴-10⁶
# columns) is never densified beyond a few MB, whatever its number of rows. 4 MB of rows
# is still a GEMM of millions of multiply-adds per layer unit, far above the chunk's
# Python overhead. (For L-BFGS, smaller chunks only change the order in which the
# chunks' losses and gradients are summed: results move by rounding.)
_CHUNK_BYTES = 4 << 20
_NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain "
               "large values and need to be preprocessed.")


# The warnings scikit-learn's MLP module issues, fastnn's issue under that module's name:
# warnings filters match a warning's module by name, and users silence scikit-learn's
# with warnings.filterwarnings("ignore", category=ConvergenceWarning, module="sklearn")
# (its own example plot_mlp_training_curves.py does), which must keep working after the
# one-line switch. (A filter on module="fastnn" does not match them, as it would not
# match scikit-learn's.)
_SKLEARN_MLP_NAMESPACE = {"__name__": "sklearn.neural_network._multilayer_perceptron",
                          "__builtins__": __builtins__, "warnings": warnings,
                          "_check_optimize_result": _check_optimize_result}


def _issued_as_sklearns(function):
    """function with _SKLEARN_MLP_NAMESPACE as its globals. warnings.warn takes a
    warning's module name, and the __warningregistry__ of the "default" and "module"
    actions, from the globals of the frame it attributes the warning to: function's frame
    for a warn() in function, and for the stacklevel=2 warn() of a function it calls
    (_check_optimize_result). So the warning is filtered, and shown once per location, as
    a warning from scikit-learn's module is; its file and line stay this file's."""
    return types.FunctionType(function.__code__, _SKLEARN_MLP_NAMESPACE,
                              function.__name__, function.__defaults__)


@_issued_as_sklearns
def _warn(message, category=UserWarning):
    """warnings.warn(message, category), as scikit-learn's MLP module issues it."""
    warnings.warn(message, category)


@_issued_as_sklearns
def _check_lbfgs_result(result, max_iter):
    """scikit-learn's check of scipy's result (its ConvergenceWarning); the iterations."""
    return _check_optimize_result("lbfgs", result, max_iter)


class SklearnAdam(optimizers.Adam):
    """scikit-learn's Adam (and Kingma & Ba's Algorithm 1, and Keras 3's): epsilon is
    added outside the bias correction,
    w ← w − η·√(1−β₂ᵗ)/(1−β₁ᵗ) · m / (√v + ε),
    where fn.optimizers.Adam divides by √v̂ + ε with v̂ = v/(1−β₂ᵗ). The same fused
    kernel: the step size carries √(1−β₂ᵗ) and v is not rescaled."""
    name = "sklearn_adam"

    def _update(self, w, g, s, lr, scale, clip):
        t = self.iterations
        return _optim.adam(w, g, s["m"], s["v"], s["v_max"],
                           lr * np.sqrt(1.0 - self.beta_2 ** t), self.beta_1, self.beta_2,
                           self.epsilon, 1.0 - self.beta_1 ** t, 1.0, self.amsgrad,
                           self.weight_decay, scale, clip)


# Registered so that models using it save, load and unpickle by name.
optimizers.CLASSES[SklearnAdam.name] = SklearnAdam


class PoissonLogLink(losses.Loss):
    """scikit-learn's Poisson loss for MLPRegressor(loss='poisson'): half the Poisson
    deviance of mu = exp(z), from the linear output z (fastnn/_core/poisson.pyx):
    lossᵢ = Σⱼ xlogy(y, y) − y·z − y + eᶻ, summed (not averaged) over the outputs."""
    name = "sklearn_poisson"
    target = "real"

    def _values(self, p, y, sample_weight, grad, scale, per_sample):
        return _poisson.poisson_log_link(p, y, sample_weight, grad, scale, per_sample)


def _as_model_input(X, dtype):
    """X as the training loop reads it: C-contiguous dense, or CSR with sorted-or-not
    indices, both of the model's dtype (a sparse matrix stays sparse)."""
    if scipy.sparse.issparse(X):
        X = X.tocsr()
        if X.dtype != dtype:
            X = X.astype(dtype)
        return X
    return np.ascontiguousarray(X, dtype=dtype)


def _chunk_rows(n_features, dtype, most):
    """Rows per chunk: at most ``most``, and about _CHUNK_BYTES of dense rows (at least
    one row)."""
    return max(1, min(most, _CHUNK_BYTES // (n_features * np.dtype(dtype).itemsize)))


def _release_workspaces(model):
    """Drop model's training workspaces (rebuilt by the next fit): their dense rows
    (batch × n_features) and the references they keep to the last batch's input would
    otherwise stay with the fitted estimator, as scikit-learn's own keeps none."""
    model._train_cache.clear()
    model._step_ws = None


def _gather_rows(X, rows, out):
    """out[i] = X[rows[i]] (rows: int64): a memcpy per row for dense X, the sparse kernel
    for CSR."""
    if scipy.sparse.issparse(X):
        _sparse.csr_gather_rows(X.data, X.indices, X.indptr, rows, out)
    else:
        _ops.gather_rows(X, rows, out)


class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share (scikit-learn's BaseMultilayerPerceptron)."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", *_STOCHASTIC_SOLVERS})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"),
                             Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "dtype": [None, StrOptions({"float32", "float64"}), type],
    }

    def __init__(self, hidden_layer_sizes, activation, solver, alpha, batch_size,
                 learning_rate, learning_rate_init, power_t, max_iter, loss, shuffle,
                 random_state, tol, verbose, warm_start, momentum, nesterovs_momentum,
                 early_stopping, validation_fraction, beta_1, beta_2, epsilon,
                 n_iter_no_change, max_fun, dropout, dtype):
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.dtype = dtype

    # ------------------------------------------------------ weights, as scikit-learn --
    def _dense_layers(self):
        return [layer for layer in self.model_.layers if isinstance(layer, L.Dense)]

    @property
    def coefs_(self):
        """[W of each layer], W (fan_in, fan_out): live views of model_'s weights."""
        return [layer.W for layer in self._dense_layers()]

    @coefs_.setter
    def coefs_(self, values):
        self._assign_each("coefs_", "W", values)

    @property
    def intercepts_(self):
        """[b of each layer], b (fan_out,): live views of model_'s biases."""
        return [layer.b for layer in self._dense_layers()]

    @intercepts_.setter
    def intercepts_(self, values):
        self._assign_each("intercepts_", "b", values)

    def _assign_each(self, name, weight, values):
        """Copy values[i] into the weight ('W' or 'b') of the i-th Dense layer, in place
        (model_'s flat buffer and its optimizer stay as they are); each of its shape (no
        broadcasting: a wrong shape is an error, not a silently repeated value)."""
        layers = self._dense_layers()
        if len(values) != len(layers):
            raise ValueError(f"{name}: expected {len(layers)} arrays, got {len(values)}")
        targets = [getattr(layer, weight) for layer in layers]
        for i, (target, value) in enumerate(zip(targets, values)):
            if np.shape(value) != target.shape:
                raise ValueError(f"{name}[{i}]: expected shape {target.shape}, got "
                                 f"{np.shape(value)}")
        for target, value in zip(targets, values):
            target[...] = value

    # ------------------------------------------------------------------ the model --
    def _loss_scaling(self):
        """(weight, divisor): scikit-learn's loss of a batch is Σ wᵢ·weight·fastnn_lossᵢ /
        Σ wᵢ / divisor, and its gradient that of Σ wᵢ·weight·fastnn_lossᵢ / Σ wᵢ.
        fastnn's binary cross-entropy and mse average over the outputs; scikit-learn sums
        the binary log-loss over them, and uses half the squared error summed over the
        outputs for the gradient but averaged over them for the reported loss."""
        m = self.n_outputs_
        if self.out_activation_ == "softmax":
            return 1.0, 1.0
        if self.out_activation_ == "logistic":
            return float(m), 1.0
        if self.out_activation_ == "exp":
            return 1.0, 1.0
        return m / 2.0, float(m)

    def _initialize(self, y, layer_units, dtype):
        """Fitted attributes and a new model_, initialized as scikit-learn does (the same
        draws from the same random state)."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()
        if self.dropout and self.solver not in _STOCHASTIC_SOLVERS:
            raise ValueError(f"dropout={self.dropout} needs a stochastic solver "
                             f"({_STOCHASTIC_SOLVERS}); solver='lbfgs' minimizes a fixed "
                             f"function")
        if self.dtype is not None:
            dtype = np.dtype(self.dtype)
            if dtype not in (np.float32, np.float64):
                raise ValueError(f"dtype must be None, 'float32' or 'float64', got "
                                 f"{self.dtype!r}")
        model = Sequential(dtype=dtype)
        for units in layer_units[1:-1]:
            model.add(L.Dense(units, activation=_ACTIVATIONS[self.activation],
                              kernel_regularizer=regularizers.L2(0.0)))
            if self.dropout:
                model.add(L.Dropout(self.dropout))
        model.add(L.Dense(layer_units[-1], activation=_OUTPUT[self.out_activation_],
                          kernel_regularizer=regularizers.L2(0.0)))
        model.seed = 0       # fastnn's own initialization is replaced just below
        model.build(layer_units[0])
        weights = []
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
            weights += self._init_coef(fan_in, fan_out)
        model.set_weights(weights)
        if self.dropout:
            model.seed = int(self._random_state.randint(np.iinfo(np.int32).max))
        self.model_ = model
        self._compile(optimizers.SGD(0.0))       # (the loss; the solver's comes in fit)
        self.__dict__.pop("_optimizer_name", None)
        self._best_params = model.parameter_store.params.copy()
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _init_coef(self, fan_in, fan_out):
        # Glorot et al.'s uniform bound, as scikit-learn (factor 2 for logistic units).
        factor = 2.0 if self.activation == "logistic" else 6.0
        init_bound = np.sqrt(factor / (fan_in + fan_out))
        coef = self._random_state.uniform(-init_bound, init_bound, (fan_in, fan_out))
        intercept = self._random_state.uniform(-init_bound, init_bound, fan_out)
        return [coef, intercept]

    def _compile(self, optimizer):
        loss = {"softmax": "categorical_crossentropy", "logistic": "binary_crossentropy",
                "identity": "mse", "exp": PoissonLogLink()}[self.out_activation_]
        self.model_.compile(loss=loss, optimizer=optimizer)

    def _new_optimizer(self):
        if self.solver == "sgd":
            self._learning_rate = float(self.learning_rate_init)
            return optimizers.SGD(self._learning_rate, momentum=self.momentum,
                                  nesterov=bool(self.nesterovs_momentum and self.momentum))
        if self.solver == "adam":
            return SklearnAdam(self.learning_rate_init, beta_1=self.beta_1,
                               beta_2=self.beta_2, epsilon=self.epsilon)
        if self.solver == "rmsprop":
            return optimizers.RMSprop(self.learning_rate_init, epsilon=self.epsilon)
        if self.solver == "adagrad":
            return optimizers.Adagrad(self.learning_rate_init, epsilon=self.epsilon)
        rule = optimizers.Nadam if self.solver == "nadam" else optimizers.Adamax
        return rule(self.learning_rate_init, beta_1=self.beta_1, beta_2=self.beta_2,
                    epsilon=self.epsilon)

    # ---------------------------------------------------------------------- fitting --
    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        if np.any(np.array(hidden_layer_sizes) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden_layer_sizes)
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        layer_units = [n_features] + hidden_layer_sizes + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        if self.solver in _STOCHASTIC_SOLVERS:
            self._fit_stochastic(X, y, sample_weight, incremental)
        else:
            self._fit_lbfgs(X, y, sample_weight)
        if not np.isfinite(self.model_.parameter_store.params).all():
            raise ValueError(_NON_FINITE)
        _release_workspaces(self.model_)
        return self

    def _prepared(self, X, y, sample_weight):
        """X, y (n, outputs) and the weights in the model's dtype, ready to gather."""
        dtype = self.model_.dtype
        sw = None if sample_weight is None else np.ascontiguousarray(sample_weight, dtype)
        return _as_model_input(X, dtype), np.ascontiguousarray(y, dtype), sw

    def _fit_lbfgs(self, X, y, sample_weight):
        model = self.model_
        X, y, sw = self._prepared(X, y, sample_weight)
        weight, divisor = self._loss_scaling()
        n = X.shape[0]
        total = float(n) if sw is None else float(sw.sum(dtype=np.float64))
        # Each chunk's fastnn loss is Σ swᵢ lossᵢ / rows: weights weight·wᵢ·rows/Σw make
        # the chunks add up to the full-batch loss and gradient.
        base = None if sw is None else np.ascontiguousarray(sw * (weight / total), sw.dtype)
        chunk = _chunk_rows(X.shape[1], model.dtype, _LBFGS_CHUNK)
        chunks = [(s.start, s.stop) for s in gen_batches(n, chunk)]
        rows = [np.arange(a, b, dtype=np.int64) for a, b in chunks] \
            if scipy.sparse.issparse(X) else None
        regs = [layer.kernel_regularizer for layer in self._dense_layers()]
        grad = np.empty(model.parameter_store.params.shape[0], np.float64)
        no_weights = np.empty(0, model.dtype)

        def loss_and_gradient(params):
            np.copyto(model.parameter_store.params, params, casting="unsafe")
            loss = 0.0
            for k, (a, b) in enumerate(chunks):
                ws = engine.train_workspace(model, b - a)
                if rows is None:
                    xc = X[a:b]
                else:
                    _gather_rows(X, rows[k], ws.x)
                    xc = ws.x
                if base is not None:
                    np.multiply(base[a:b], b - a, out=ws.sw)
                    swc = ws.sw
                elif weight != 1 or len(chunks) > 1:
                    ws.sw.fill(weight * (b - a) / n)
                    swc = ws.sw
                else:
                    swc = no_weights
                for reg in regs:       # the penalty once, in the first chunk
                    reg.l2 = 0.5 * self.alpha / total if k == 0 else 0.0
                data, penalty, _ = engine.train_step(model, ws, xc, y[a:b], swc, 0, k,
                                                     update=False)
                loss += data / divisor + penalty
                if k == 0:
                    np.copyto(grad, model.parameter_store.grads)
                else:
                    np.add(grad, model.parameter_store.grads, out=grad)
            return loss, grad.copy()      # (scipy keeps the previous gradient)

        iprint = 1 if self.verbose is True or self.verbose >= 1 else -1
        options = {"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol,
                   **_get_additional_lbfgs_options_dict("iprint", iprint)}
        x0 = model.parameter_store.params.astype(np.float64)
        opt_res = scipy.optimize.minimize(loss_and_gradient, x0, method="L-BFGS-B",
                                          jac=True, options=options)
        self.n_iter_ = _check_lbfgs_result(opt_res, self.max_iter)
        self.loss_ = np.float64(opt_res.fun)      # scikit-learn's type (scipy keeps ours)
        np.copyto(model.parameter_store.params, opt_res.x, casting="unsafe")

    def _fit_stochastic(self, X, y, sample_weight, incremental):
        if not incremental or not hasattr(self, "_optimizer_name") or \
                self._optimizer_name != self.solver:
            self._compile(self._new_optimizer())
            self._optimizer_name = self.solver
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            # don't stratify in multilabel classification (as scikit-learn)
            should_stratify = self._is_classifier() and self.n_outputs_ == 1
            stratify = y if should_stratify else None
            if sample_weight is None:
                X_train, X_val, y_train, y_val = train_test_split(
                    X, y, random_state=self._random_state,
                    test_size=self.validation_fraction, stratify=stratify)
                sample_weight_train = sample_weight_val = None
            else:
                (X_train, X_val, y_train, y_val, sample_weight_train,
                 sample_weight_val) = train_test_split(
                    X, y, sample_weight, random_state=self._random_state,
                    test_size=self.validation_fraction, stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            if self._is_classifier():
                y_val = self._label_binarizer.inverse_transform(y_val)
        else:
            X_train, y_train, sample_weight_train = X, y, sample_weight
            X_val = y_val = sample_weight_val = None
        X_train, y_train, sample_weight_train = self._prepared(X_train, y_train,
                                                               sample_weight_train)
        n_samples = X_train.shape[0]
        sample_idx = np.arange(n_samples, dtype=np.int64)
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                _warn("Got `batch_size` less than 1 or larger than sample size. It is "
                      "going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        try:
            self.n_iter_ = 0
            for it in range(self.max_iter):
                if self.shuffle:
                    sample_idx = shuffle(sample_idx, random_state=self._random_state)
                accumulated_loss = self._epoch(X_train, y_train, sample_weight_train,
                                               sample_idx, batch_size)
                self.n_iter_ += 1
                # np.float64 as scikit-learn's (its losses are NumPy scalars), so too
                # loss_curve_'s entries and best_loss_.
                self.loss_ = np.float64(accumulated_loss / X_train.shape[0])
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                self._update_no_improvement_count(early_stopping, X_val, y_val,
                                                  sample_weight_val)
                self._iteration_ends(self.t_)
                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = ("Validation score did not improve more than tol=%f for %d "
                               "consecutive epochs." % (self.tol, self.n_iter_no_change))
                    else:
                        msg = ("Training loss did not improve more than tol=%f for %d "
                               "consecutive epochs." % (self.tol, self.n_iter_no_change))
                    if self._trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    _warn("Stochastic Optimizer: Maximum iterations (%d) reached and the "
                          "optimization hasn't converged yet." % self.max_iter,
                          ConvergenceWarning)
        except KeyboardInterrupt:
            _warn("Training interrupted by user.")
        if early_stopping:
            np.copyto(self.model_.parameter_store.params, self._best_params)

    def _epoch(self, X, y, sample_weight, order, batch_size):
        """One pass over the batches of order; returns Σ batch loss · batch size.

        Each batch is gathered into the workspace's buffers and its per-sample loss
        weights set so that fastnn's mean loss is scikit-learn's batch loss (see
        _loss_scaling; with sample weights, divided by their sum in the batch)."""
        model = self.model_
        weight, divisor = self._loss_scaling()
        regs = [layer.kernel_regularizer for layer in self._dense_layers()]
        no_weights = np.empty(0, model.dtype)
        epoch = model.epochs_trained
        if self.solver == "sgd":      # its schedules change the rate between epochs
            model.optimizer.learning_rate = self._learning_rate
        accumulated = 0.0
        for step, batch in enumerate(gen_batches(order.shape[0], batch_size)):
            idx = order[batch]
            n = idx.shape[0]
            ws = engine.train_workspace(model, n)
            _gather_rows(X, idx, ws.x)
            _ops.gather_rows(y, idx, ws.y)
            if sample_weight is None:
                sw_sum = n
                if weight == 1:
                    sw = no_weights
                else:
                    ws.sw.fill(weight)
                    sw = ws.sw
            else:
                _ops.gather_weights(sample_weight, idx, ws.sw)
                sw_sum = float(ws.sw.sum(dtype=np.float64))
                if sw_sum == 0:      # as np.average in scikit-learn's loss functions
                    raise ZeroDivisionError("Weights sum to zero, can't be normalized")
                ws.sw *= weight * n / sw_sum
                sw = ws.sw
            for reg in regs:
                reg.l2 = 0.5 * self.alpha / sw_sum
            data, penalty, status = engine.train_step(model, ws, ws.x, ws.y, sw, epoch, step)
            if status != "ok":
                raise ValueError(_NON_FINITE)
            accumulated += (data / divisor + penalty) * n
        model.epochs_trained += 1
        return accumulated

    def _update_no_improvement_count(self, early_stopping, X, y, sample_weight):
        if early_stopping:
            val_score = self._score(X, y, sample_weight=sample_weight)
            self.validation_scores_.append(val_score)
            if self.verbose:
                print("Validation score: %f" % self.validation_scores_[-1])
            last_valid_score = self.validation_scores_[-1]
            if last_valid_score < (self.best_validation_score_ + self.tol):
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if last_valid_score > self.best_validation_score_:
                self.best_validation_score_ = last_valid_score
                np.copyto(self._best_params, self.model_.parameter_store.params)
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _iteration_ends(self, time_step):
        # scikit-learn's SGDOptimizer.iteration_ends; its other optimizers do nothing.
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            self._learning_rate = float(self.learning_rate_init) / \
                (time_step + 1) ** self.power_t

    def _trigger_stopping(self, msg, verbose):
        # scikit-learn's SGDOptimizer.trigger_stopping ('adaptive' divides the rate by 5)
        # and BaseOptimizer.trigger_stopping (stop) for the others.
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self._learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self._learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self._learning_rate)
        return False

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None
        Returns self.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError("partial_fit is only available for stochastic optimizers. "
                                 "%s is not stochastic." % self.solver)
        return True

    # ------------------------------------------------------------------- predicting --
    def _forward_pass_fast(self, X, check_input=True):
        """model_'s outputs (n_samples, n_outputs) for X, in the model's dtype."""
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        model = self.model_
        if not scipy.sparse.issparse(X):
            X = np.ascontiguousarray(X, dtype=model.dtype)
            out = model.predict(X, batch_size=min(X.shape[0], _PREDICT_CHUNK))
        else:
            X = _as_model_input(X, model.dtype)
            n = X.shape[0]
            chunk = _chunk_rows(X.shape[1], model.dtype, _PREDICT_CHUNK)
            out = np.empty((n, model.output_dim), model.dtype)
            buf = np.empty((min(n, chunk), X.shape[1]), model.dtype)
            for batch in gen_batches(n, chunk):
                rows = np.arange(batch.start, batch.stop, dtype=np.int64)
                dense = buf[:rows.shape[0]]
                _gather_rows(X, rows, dense)
                out[batch] = model.predict(dense, batch_size=rows.shape[0])
        if self.out_activation_ == "exp":
            np.exp(out, out=out)
        return out

    def _score_with_function(self, X, y, sample_weight, score_function):
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # ------------------------------------------------------------------------ export --
    def export(self, path, format="onnx", **kwargs):
        """Write the fitted estimator as ONNX with the inputs and outputs skl2onnx gives
        scikit-learn's own MLPs, so code serving those serves this one unchanged: input
        "X" (float32 by default); a classifier's "output_label" and "output_probability"
        (zipmap=False: "label" and "probabilities"), a regressor's "variable".
        kwargs: zipmap, dtype, input_name, opset_version, verbose, see
        fastnn.export.onnx.export_estimator. Needs `pip install 'fastnn[onnx]'`."""
        if format != "onnx":
            raise ValueError(f"export: format must be 'onnx' (the only format fastnn "
                             f"writes), got {format!r}")
        from fastnn.export.onnx import export_estimator   # onnx is optional
        export_estimator(self, path, **kwargs)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer Perceptron classifier: scikit-learn's MLPClassifier, trained by fastnn.

    Parameters, attributes and methods are scikit-learn's (see
    sklearn.neural_network.MLPClassifier); the log-loss is minimized with LBFGS,
    SGD or Adam exactly as there. The fitted network is ``model_``, a fastnn.Sequential;
    ``coefs_`` and ``intercepts_`` are live views of its weights.

    Extras: dropout (0.0), dtype (None = the data's), solver 'rmsprop', 'adagrad',
    'nadam', 'adamax'.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, dropout=0.0, dtype=None):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            loss="log_loss", shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            dropout=dropout, dtype=dtype)

    def _is_classifier(self):
        return True

    def _output_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        # incremental / warm_start / classes_ defined: as scikit-learn's table.
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in "
                        f"the previous call to fit. Previously got {self.classes_}, `y` "
                        f"has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError("`y` has classes not in `self.classes_`. `self.classes_` "
                                 f"has {self.classes_}. 'y' has {classes}.")
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    def predict(self, X):
        """Predicted classes, (n_samples,) or (n_samples, n_classes) for multi-label."""
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, accuracy_score)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One pass (epoch) over (X, y) with a stochastic solver; classes (all labels)
        is required on the first call."""
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_log_proba(self, X):
        """log(predict_proba(X))."""
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), classes ordered as classes_."""
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer Perceptron regressor: scikit-learn's MLPRegressor, trained by fastnn.

    Parameters, attributes and methods are scikit-learn's (see
    sklearn.neural_network.MLPRegressor); half the squared error (or, with
    loss='poisson', half the Poisson deviance of exp(output)) is minimized with LBFGS, SGD
    or Adam exactly as there. The fitted network is ``model_``, a fastnn.Sequential (with
    loss='poisson' its output is log of the prediction).

    Extras: dropout (0.0), dtype (None = the data's), solver 'rmsprop', 'adagrad',
    'nadam', 'adamax'.
    """

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu",
                 *, solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, dropout=0.0, dtype=None):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            loss=loss, shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            dropout=dropout, dtype=dtype)

    def _is_classifier(self):
        return False

    def _output_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def predict(self, X):
        """Predicted values, (n_samples,) or (n_samples, n_outputs)."""
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, r2_score)

    # scikit-learn's regressor makes partial_fit available for every solver (its
    # condition is the method itself, always true); so does this one.
    @available_if(lambda est: est._check_solver)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One pass (epoch) over (X, y)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
