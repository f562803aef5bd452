"""A scikit-learn estimator: ``handprop.MLPClassifier``, a drop-in for
``sklearn.neural_network.MLPClassifier``.

Swap the import and existing code runs unchanged: the constructor has
scikit-learn's parameters, name for name and default for default, with
scikit-learn's meaning, and the fitted attributes it documents. On top of
them, keyword-only and off by default: elastic-net lambdas ``l1`` and ``l2``,
``class_weight``, ``dropout`` and ``dtype`` (float32 by default).

The math is handprop's: sgd and adam train through the training step of
:mod:`handprop.step`, the one that ``fit`` uses and that the tests pin to
the proven gradients, and lbfgs minimizes that step's
:meth:`~handprop.step.Step.objective`. scikit-learn's ``alpha`` is an L2
penalty of ``0.5 * alpha * ||W||^2 / n`` on each minibatch of n examples
(the sum of their sample weights), which is handprop's ElasticNet with
``l2 = 0.5 * alpha / n`` on every weight matrix: the step's ``decay``.

This module needs scikit-learn (``pip install 'handprop[sklearn]'``); the
rest of handprop never imports it.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state, compute_class_weight
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("handprop.MLPClassifier needs scikit-learn >= 1.6: "
                      "pip install 'handprop[sklearn]'") from exc

from . import activations as act
from . import validate
from .backend import check_device, resolve_device, to_numpy
from .errors import InputError, InputTypeError
from .network import MLP, cross_entropy, forward
from .optimizers import SGD, Adam
from .penalty import ElasticNet
from .step import Step
from .training import EpochRecord, History

__all__ = ["MLPClassifier"]

_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}


def _one_thread_for_other_blas():
    """Limit every BLAS but NumPy's to one thread (a context manager).

    SciPy's wheels bring their own OpenBLAS, with its own pool of threads; when
    L-BFGS-B's Fortran calls it between NumPy's products, the two pools spin
    against each other on the same cores and the fit takes 2 to 4 times as
    long. L-BFGS-B's own vector work gains nothing from threads.
    """
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    others = [lib for lib in controller.lib_controllers
              if lib.user_api == "blas" and f"{os.sep}numpy" not in lib.filepath]
    if not others:
        return contextlib.nullcontext()
    return controller.select(filepath=[lib.filepath for lib in others]).limit(limits=1)


class InvalidParameterError(InputTypeError):
    """A bad constructor argument: both a ValueError and a TypeError, as
    scikit-learn's own ``InvalidParameterError``."""


def _stochastic(estimator) -> bool:
    if estimator.solver not in ("sgd", "adam"):
        raise AttributeError(f"partial_fit is only available for stochastic optimizers; "
                             f"{estimator.solver!r} is not stochastic")
    return True


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier with hand-derived gradients.

    Parameters
    ----------
    hidden_layer_sizes : tuple of ints, or an int, default (100,)
        The size of each hidden layer, in order.
    activation : "identity", "logistic", "tanh", "relu" (default), or one of
        handprop's own: "softplus", "abs", "sign"
    solver : "sgd", "adam" (default) or "lbfgs" (full batch, through
        ``scipy.optimize.minimize`` on the hand-derived gradient, in float64)
    alpha : float >= 0, default 1e-4
        L2 penalty: ``0.5 * alpha * ||W||^2 / n`` per minibatch of n examples.
    batch_size : int or "auto" (min(200, n_samples))
    learning_rate : "constant", "invscaling" or "adaptive" (sgd only)
    learning_rate_init, power_t, max_iter, shuffle, random_state, tol,
    verbose, warm_start, momentum, nesterovs_momentum, early_stopping,
    validation_fraction, beta_1, beta_2, epsilon, n_iter_no_change, max_fun :
        scikit-learn's, with scikit-learn's meaning and defaults. ``verbose``
        also shows a progress bar; ``warm_start`` (and ``partial_fit``) keep
        the optimizer's state, Adam's moments included.
    l1, l2 : a number for every weight matrix, or one per weight matrix
        (W1, ..., W{L+1}: two for one hidden layer), default 0
        handprop's elastic net: ``l1 ||W||_1 + l2 ||W||_2^2`` added once per
        minibatch, on top of alpha's term.
    class_weight : None, "balanced" or {label: weight}
        Multiplies each example's weight (and sample_weight) by its class's.
    dropout : rate of the hidden layers, or (input rate, hidden rate); default 0
    dtype : "float32" (default) or "float64", the precision of training
    device : "cpu" (default), or "cuda" / "cuda:N" to train on an NVIDIA GPU
        with CuPy (sgd and adam; see :mod:`handprop.backend`). The fitted
        estimator holds NumPy arrays only, whatever the device: it predicts
        on the CPU and pickles anywhere.

    Attributes
    ----------
    classes_, loss_, best_loss_, loss_curve_, validation_scores_,
    best_validation_score_, t_, coefs_, intercepts_, n_features_in_,
    feature_names_in_, n_iter_, n_layers_, n_outputs_, out_activation_ :
        scikit-learn's. ``coefs_`` is [W1.T, ..., W{L+1}.T] and
        ``intercepts_`` [b1, ..., b{L+1}], in scikit-learn's layout (inputs
        along the rows). ``loss_`` and ``loss_curve_`` hold scikit-learn's
        loss: the mean cross-entropy plus alpha's term. Two
        classes use two softmax outputs, as in the derivation, so
        ``out_activation_`` is "softmax" and ``n_outputs_`` is 2 where
        scikit-learn has one logistic output.
    validation_loss_curve_ : list of float or None
        The validation loss after each epoch, when ``early_stopping``.
    W1_, b1_, W2_, b2_ : the first two layers' parameters in the derivation's
        layout; ``net_`` is the whole :class:`handprop.MLP`
    history_ : handprop.training.History, one record per epoch; its
        ``train_loss`` is handprop's: the data loss alone, as in ``fit``

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(max_iter=30, random_state=0).fit(X / 16, y)
    >>> clf.predict_proba(X[:2] / 16).shape, clf.coefs_[0].shape
    ((2, 10), (64, 100))
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        l1=0.0,
        l2=0.0,
        class_weight=None,
        dropout=(0.0, 0.0),
        dtype="float32",
        device="cpu",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
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
        self.l1 = l1
        self.l2 = l2
        self.class_weight = class_weight
        self.dropout = dropout
        self.dtype = dtype
        self.device = device

    # -- parameters -----------------------------------------------------------

    def _check_params(self) -> None:
        """Refuse bad constructor arguments with the name and what is expected:
        an InvalidParameterError, both a ValueError and a TypeError, as
        scikit-learn's own parameter validation raises."""
        try:
            self._check_each_param()
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(str(exc)) from None

    def _check_each_param(self) -> None:
        def number(name, low, high=None, *, integer=False, low_open=False, high_open=False):
            validate.number(name, getattr(self, name), low=low, high=high, integer=integer,
                            low_open=low_open, high_open=high_open)

        sizes = self._sizes()
        known = sorted(set(_ACTIVATIONS) | {"softplus", "abs", "sign"})
        validate.choice("activation", self.activation, known)
        validate.choice("solver", self.solver, ("sgd", "adam", "lbfgs"))
        validate.choice("learning_rate", self.learning_rate,
                        ("constant", "invscaling", "adaptive"))
        if self.batch_size != "auto":
            try:
                number("batch_size", 1, integer=True)
            except (TypeError, ValueError):
                raise InputError(f"batch_size must be 'auto' or a positive integer, got "
                                 f"{self.batch_size!r}") from None
        number("alpha", 0)
        number("learning_rate_init", 0, low_open=True)
        number("power_t", 0)
        number("max_iter", 1, integer=True)
        number("tol", 0)
        number("momentum", 0, 1)
        number("validation_fraction", 0, 1, low_open=True, high_open=True)
        number("beta_1", 0, 1, high_open=True)
        number("beta_2", 0, 1, high_open=True)
        number("epsilon", 0, low_open=True)
        number("n_iter_no_change", 1, integer=True)
        number("max_fun", 1, integer=True)
        for name in ("shuffle", "verbose", "warm_start", "nesterovs_momentum", "early_stopping"):
            validate.flag(name, getattr(self, name))
        self._elastic_net(len(sizes) + 1)
        rates = validate.dropout_rates(self.dropout)
        if self.dtype not in ("float32", "float64", np.float32, np.float64):
            raise InputError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.solver == "lbfgs" and any(rates):
            raise InputError("dropout needs a stochastic solver (sgd or adam): lbfgs minimizes "
                             "one deterministic loss")
        if self.device != "cpu" and self.solver == "lbfgs":
            raise InputError(f"device={self.device!r} needs a stochastic solver (sgd or adam): "
                             f"lbfgs runs SciPy's L-BFGS-B, on the CPU")
        check_device(self.device)  # checks only: validation selects no GPU

    def _sizes(self) -> tuple[int, ...]:
        return validate.hidden_sizes(self.hidden_layer_sizes, "hidden_layer_sizes")

    def _elastic_net(self, n_weights: int) -> ElasticNet:
        """handprop's own lambdas, l1 and l2, as a penalty on n_weights matrices."""
        lambdas = {}
        for name in ("l1", "l2"):
            value = getattr(self, name)
            values = [value] * n_weights if not isinstance(value, (tuple, list)) else value
            if len(values) != n_weights:
                raise InputError(f"{name} must be a number, or one lambda per weight matrix "
                                 f"({n_weights} for hidden_layer_sizes="
                                 f"{self.hidden_layer_sizes!r}), got {value!r}")
            lambdas[name] = [validate.number(name, v, low=0) for v in values]
        return ElasticNet.per_matrix(lambdas["l1"], lambdas["l2"])

    @property
    def _dtype(self):
        return np.dtype(self.dtype)

    # -- fitted parameters, in both layouts -----------------------------------

    @property
    def coefs_(self) -> list[np.ndarray]:
        """[W1.T (d, d_1), ..., W{L+1}.T (d_L, m)]: scikit-learn's layout;
        assigning copies in."""
        net = self._fitted_net()
        return [net.params[f"W{l}"].T for l in range(1, net.L + 2)]

    @coefs_.setter
    def coefs_(self, value) -> None:
        net = self._fitted_net()
        net.params = {**net.params, **{f"W{l}": np.asarray(v).T
                                       for l, v in enumerate(value, start=1)}}

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """[b1 (d_1,), ..., b{L+1} (m,)]; assigning copies in."""
        net = self._fitted_net()
        return [net.params[f"b{l}"] for l in range(1, net.L + 2)]

    @intercepts_.setter
    def intercepts_(self, value) -> None:
        net = self._fitted_net()
        net.params = {**net.params, **{f"b{l}": v for l, v in enumerate(value, start=1)}}

    W1_ = property(lambda self: self._fitted_net().W1, doc="W1, (d_1, d)")
    b1_ = property(lambda self: self._fitted_net().b1, doc="b1, (d_1,)")
    W2_ = property(lambda self: self._fitted_net().W2, doc="W2, (d_2, d_1); (m, d_h) for one "
                   "hidden layer")
    b2_ = property(lambda self: self._fitted_net().b2, doc="b2, (d_2,)")
    net_ = property(lambda self: self._fitted_net(), doc="the fitted handprop.MLP")

    def _fitted_net(self) -> MLP:
        check_is_fitted(self, "_net")
        return self._net

    # -- fitting ----------------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X (n, d) and y (n,), with optional sample weights.

        Returns
        -------
        self
        """
        self._check_params()
        incremental = self.warm_start and hasattr(self, "_net")
        return self._fit(X, y, sample_weight, classes=None, incremental=incremental,
                         one_epoch=False)

    @available_if(_stochastic)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over X (n, d), y (n,), continuing from the current state.

        ``classes`` (all the labels there will ever be) is required on the
        first call. The optimizer's state (momentum, Adam's moments) carries
        over from call to call.

        Returns
        -------
        self
        """
        self._check_params()
        if self.early_stopping:
            raise InputError("partial_fit does not support early_stopping=True")
        first = not hasattr(self, "_net")
        if first and classes is None:
            raise InputError("classes must be passed on the first call to partial_fit")
        if not first and classes is not None and not np.array_equal(
                np.unique(classes), self.classes_):
            raise InputError(f"classes={classes!r} is not the same as on the first call to "
                             f"partial_fit ({self.classes_!r})")
        return self._fit(X, y, sample_weight, classes=classes, incremental=not first,
                         one_epoch=True)

    def _fit(self, X, y, sample_weight, *, classes, incremental: bool, one_epoch: bool):
        X, y = validate_data(self, X, y, reset=not incremental, dtype=[self._dtype, np.float64,
                                                                       np.float32])
        X = np.asarray(X, dtype=self._dtype)
        check_classification_targets(y)
        if not incremental:
            self.classes_ = np.unique(classes if classes is not None else y)
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise InputError(f"y holds labels {unknown.tolist()} that are not in classes_ "
                             f"{self.classes_.tolist()}")
        if len(self.classes_) < 2:
            raise InputError(f"a classifier needs at least two classes; y has only one class, "
                             f"{self.classes_[0]!r}")
        yi = np.searchsorted(self.classes_, y).astype(np.int64)
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64)
        if self.class_weight is not None:
            weights = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
            sw = sw * weights[yi]
        if sample_weight is None and self.class_weight is None:
            sw = None
        if not incremental:
            self._initialize(X.shape[1])
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, yi, sw)
        else:
            self._fit_stochastic(X, yi, sw, one_epoch=one_epoch)
        return self

    def _initialize(self, d: int) -> None:
        sizes = self._sizes()
        self._random_state = check_random_state(self.random_state)
        seed = int(self._random_state.randint(np.iinfo(np.int32).max))
        activation = _ACTIVATIONS.get(self.activation, self.activation)
        self._net = MLP(d, sizes, len(self.classes_), activation=activation,
                        dtype=self._dtype, seed=seed)
        self._rng = np.random.default_rng(seed + 1)  # dropout masks
        self.n_layers_ = len(sizes) + 2
        self.n_outputs_ = len(self.classes_)
        self.out_activation_ = "softmax"
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self.history_ = History()
        self._no_improvement_count = 0
        self._best_params = None
        self._lr = float(self.learning_rate_init)
        if self.early_stopping:
            self.validation_scores_ = []
            self.validation_loss_curve_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.validation_loss_curve_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf
        if self.solver == "sgd":
            self._optimizer = SGD(self.momentum, self.nesterovs_momentum and self.momentum > 0)
        elif self.solver == "adam":
            self._optimizer = Adam(self.beta_1, self.beta_2, self.epsilon)
        else:
            self._optimizer = None

    def _step(self, params, X, yi, sw, K: int) -> Step:
        """The training step of this estimator's settings, on ``params``."""
        net = self._net
        return Step(net, params, X, yi, optimizer=self._optimizer, batch_size=K,
                    penalty=self._elastic_net(net.L + 1), decay=0.5 * self.alpha,
                    dropout=validate.dropout_rates(self.dropout), sample_weight=sw,
                    rng=self._rng, track_penalty=True)

    def _fit_stochastic(self, X, yi, sw, *, one_epoch: bool) -> None:
        from tqdm.auto import tqdm

        net = self._net
        rng = self._random_state
        X_val = y_val = sw_val = None
        if self.early_stopping:
            split = train_test_split(
                X, yi, *(() if sw is None else (sw,)), random_state=rng,
                test_size=self.validation_fraction, stratify=yi)
            X, X_val, yi, y_val = split[:4]
            if sw is not None:
                sw, sw_val = split[4], split[5]
            if len(X_val) < 2:
                raise InputError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
        n = X.shape[0]
        K = min(200, n) if self.batch_size == "auto" else int(self.batch_size)
        if K > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                          "going to be clipped", stacklevel=3)
            K = n
        xp = resolve_device(self.device)
        sw = None if sw is None else sw.astype(net.dtype)
        if xp is np:
            params = net.params
        else:  # copied to the GPU once; the net's arrays receive the parameters after each epoch
            params = {k: xp.asarray(v) for k, v in net.params.items()}
            X, yi = xp.asarray(X), xp.asarray(yi)
            sw = None if sw is None else xp.asarray(sw)
            self._optimizer.map_state(xp.asarray)
        step = self._step(params, X, yi, sw, K)
        epochs = 1 if one_epoch else self.max_iter
        bar = tqdm(total=epochs * step.n_batches, disable=None if self.verbose else True,
                   unit="batch", leave=False)
        try:
            with bar, np.errstate(over="ignore", invalid="ignore"):
                self._epochs(step, epochs, X_val, y_val, sw_val, bar, one_epoch)
        finally:  # the fitted estimator holds NumPy arrays only
            self._optimizer.map_state(to_numpy)
        if self.early_stopping and self._best_params is not None:
            net.params = self._best_params

    def _epochs(self, step: Step, epochs: int, X_val, y_val, sw_val, bar, one_epoch) -> None:
        """The epochs of a stochastic fit, each through the training step; the
        step's arrays live on the fit's device, the rest on the CPU."""
        from tqdm.auto import tqdm

        net = self._net
        rng = self._random_state
        n = step.X.shape[0]
        on_gpu = step.xp is not np
        # the end of the last good epoch: on a GPU, the net's own arrays
        last_good = None if on_gpu else {k: v.copy() for k, v in net.params.items()}
        for _ in range(epochs):
            start = time.perf_counter()
            step.start_epoch(self.n_iter_ + 1, rng.permutation(n) if self.shuffle
                             else np.arange(n))
            totals = step.train_epoch(lambda b: self._lr, after_batch=lambda b: bar.update())
            finite = totals.diverged is None and all(
                bool(step.xp.all(step.xp.isfinite(p))) for p in step.params.values())
            if not finite:
                if last_good is not None:
                    net.params = last_good
                loss = totals.diverged[1] if totals.diverged else "inf"
                raise InputError(f"the training loss became {loss} in iteration "
                                 f"{self.n_iter_ + 1}: lower learning_rate_init; the "
                                 f"parameters are those of iteration {self.n_iter_}")
            if on_gpu:
                for k, v in step.params.items():  # back from the GPU
                    net.params[k][...] = to_numpy(v)
            else:
                for k, v in net.params.items():
                    last_good[k][...] = v
            self.n_iter_ += 1
            self.t_ += n
            self.loss_ = (totals.loss_sum + totals.penalty_sum) / n
            self.loss_curve_.append(self.loss_)
            valid_error = valid_loss = math.nan
            if self.verbose:
                tqdm.write(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
            stop = self._update_no_improvement(X_val, y_val, sw_val)
            if self.early_stopping:
                valid_error = 1 - self.validation_scores_[-1]
                valid_loss = self.validation_loss_curve_[-1]
            self.history_.append(EpochRecord(
                self.n_iter_, totals.wrong / n, totals.loss_sum / n, valid_error, valid_loss,
                math.nan, math.nan, self._lr, time.perf_counter() - start))
            if self.solver == "sgd" and self.learning_rate == "invscaling":
                self._lr = self.learning_rate_init / (self.t_ + 1) ** self.power_t
            if stop or one_epoch:
                break
            if self.n_iter_ == self.max_iter and not one_epoch:
                warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter})"
                              f" reached and the optimization hasn't converged yet.",
                              ConvergenceWarning, stacklevel=5)

    def _update_no_improvement(self, X_val, y_val, sw_val) -> bool:
        """scikit-learn's stopping rule; True when training should stop."""
        if self.early_stopping:
            o_a = self._logits(X_val)
            score = accuracy_score(y_val, o_a.argmax(axis=1), sample_weight=sw_val)
            self.validation_scores_.append(score)
            self.validation_loss_curve_.append(cross_entropy(o_a, y_val, sample_weight=sw_val))
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = {k: v.copy() for k, v in self._net.params.items()}
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, self.loss_curve_[-1])
        if self._no_improvement_count <= self.n_iter_no_change:
            return False
        what = "Validation score" if self.early_stopping else "Training loss"
        msg = (f"{what} did not improve more than tol={self.tol:f} for "
               f"{self.n_iter_no_change} consecutive epochs.")
        if self.solver == "sgd" and self.learning_rate == "adaptive" and self._lr > 1e-6:
            self._lr /= 5.0
            self._no_improvement_count = 0
            if self.verbose:
                print(f"{msg} Setting learning rate to {self._lr:f}")
            return False
        if self.verbose:
            print(f"{msg} Stopping.")
        return True

    def _fit_lbfgs(self, X, yi, sw) -> None:
        from scipy.optimize import minimize

        # L-BFGS needs an accurate loss for its line search: it works in float64.
        net64 = self._net.astype("float64")
        X64 = X.astype(np.float64)
        shapes = net64.shapes()
        w64 = None if sw is None else sw.astype(np.float64)
        names = list(shapes)
        params = net64.params
        step = Step(net64, params, X64, yi, optimizer=None, batch_size=X64.shape[0],
                    penalty=self._elastic_net(net64.L + 1), decay=0.5 * self.alpha)

        def fun(theta):
            start = 0
            for name in names:
                size = int(np.prod(shapes[name]))
                params[name][...] = theta[start:start + size].reshape(shapes[name])
                start += size
            loss, grads = step.objective(X64, yi, w64)
            last["loss"] = loss
            return loss, np.concatenate([grads[k].ravel() for k in names])

        last = {}
        losses = []
        theta0 = np.concatenate([net64.params[k].ravel() for k in names])
        def iteration_ends(xk):
            # the last evaluation of an iteration is at the point it accepts
            losses.append(last["loss"])
            if self.verbose:
                print(f"Iteration {len(losses)}, loss = {losses[-1]:.8f}")

        with _one_thread_for_other_blas():
            result = minimize(fun, theta0, jac=True, method="L-BFGS-B", callback=iteration_ends,
                              options={"maxfun": self.max_fun, "maxiter": self.max_iter,
                                       "gtol": self.tol})
        fun(result.x)
        if result.status != 0:
            warnings.warn(f"lbfgs failed to converge after {result.nit} iterations: "
                          f"{result.message}. Increase max_iter or scale the data.",
                          ConvergenceWarning, stacklevel=4)
        self._net.params = {k: v.astype(self._dtype) for k, v in net64.params.items()}
        self.n_iter_ = int(result.nit)
        self.loss_ = float(result.fun)
        self.loss_curve_ = losses
        self.best_loss_ = min(losses) if losses else self.loss_
        self.history_ = History()

    # -- predicting -------------------------------------------------------------

    def _logits(self, X: np.ndarray) -> np.ndarray:
        """o_a for checked X (n, d), computed in chunks, as float64 (n, m)."""
        net = self._net
        out = np.empty((X.shape[0], net.m))
        for start in range(0, X.shape[0], 4096):
            chunk = np.asarray(X[start:start + 4096], dtype=net.dtype)
            out[start:start + 4096] = forward(net.params, chunk, net.activation, net.output).o_a
        return out

    def _checked(self, X) -> np.ndarray:
        check_is_fitted(self, "_net")
        return validate_data(self, X, reset=False, dtype=[self._dtype, np.float64, np.float32])

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, (n, n_classes), columns in the order of ``classes_``."""
        return act.softmax(self._logits(self._checked(X)))

    def predict_log_proba(self, X) -> np.ndarray:
        """Log-probabilities, (n, n_classes), from the logits by log-sum-exp
        (never the log of a probability that underflowed)."""
        return act.log_softmax(self._logits(self._checked(X)))

    def predict(self, X) -> np.ndarray:
        """The most probable label of each row of X (n, d), shape (n,)."""
        best = self._logits(self._checked(X)).argmax(axis=1)
        return self.classes_[best]
