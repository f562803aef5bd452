"""scikit-learn's estimators, on handprop's math: ``handprop.MLPClassifier``
and ``handprop.MLPRegressor``, drop-ins for ``sklearn.neural_network``'s.

Swap the import and existing code runs unchanged: the constructors have
scikit-learn 1.9's parameters, name for name and default for default, and
the estimators follow scikit-learn's semantics step for step: the same
initialization (Glorot uniform, scikit-learn's factor for logistic units),
drawn from the same random state in the same order as the shuffles and the
early-stopping split; one logistic unit for two classes, logistic units for
multilabel targets, softmax for several classes, identity (or exp, for the
Poisson loss) outputs for regression; the same losses, stopping rules,
learning-rate schedules, warm starts and partial fits, errors and warnings.
With the same ``random_state``, a float64 fit ends on scikit-learn's
parameters to round-off (``tests/test_sklearn_parity.py``), and
scikit-learn's own test file passes against these classes
(``tests/test_sklearn_suite.py``).

The math is handprop's: sgd and adam train through the training step of
:mod:`handprop.train.step`, the one that ``fit`` uses and that the tests pin to
the proven gradients, and lbfgs minimizes that step's
:meth:`~handprop.train.step.Step.objective`. scikit-learn's ``alpha`` is an L2
penalty of ``0.5 * alpha * ||W||^2 / n`` on each minibatch of n examples
(the sum of their sample weights): the step's ``decay``.

On top, keyword-only and off by default: elastic-net lambdas ``l1`` and
``l2``, ``class_weight``, ``dropout``, ``dtype`` and ``device``.

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
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state, compute_class_weight, shuffle
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import (
        _check_partial_fit_first_call,
        type_of_target,
        unique_labels,
    )
    from sklearn.utils.optimize import _check_optimize_result
    from sklearn.utils.validation import (
        _check_sample_weight,
        check_is_fitted,
        column_or_1d,
        validate_data,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("handprop.MLPClassifier and MLPRegressor need scikit-learn >= 1.6: "
                      "pip install 'handprop[sklearn]'") from exc

from . import validate
from .backend import DeviceCopy, check_device, resolve_device
from .core import activations as act
from .core.network import MLP, data_loss, forward
from .core.outputs import by_sklearn_name
from .core.penalty import ElasticNet
from .errors import InputError, InputTypeError
from .train.history import EpochRecord, History
from .train.optimizers import SGD, Adam
from .train.parameters import PARAMETERS
from .train.step import Step, _is_sparse

__all__ = ["MLPClassifier", "MLPRegressor"]



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
        raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                             f"{estimator.solver} is not stochastic.")
    return True


class _Optimizer:
    """scikit-learn's optimizer semantics around handprop's SGD or Adam: the
    learning rate as an attribute, its schedule at each epoch's end
    (``iteration_ends``), and what to do when the loss stops improving
    (``trigger_stopping``: the adaptive schedule divides the rate by 5)."""

    def __init__(self, est) -> None:
        self.solver, self.schedule = est.solver, est.learning_rate
        self.learning_rate_init = self.learning_rate = float(est.learning_rate_init)
        self.power_t = est.power_t
        if est.solver == "sgd":
            self.update = SGD(est.momentum, bool(est.nesterovs_momentum and est.momentum > 0))
        else:
            self.update = Adam(est.beta_1, est.beta_2, est.epsilon)

    def iteration_ends(self, time_step: int) -> None:
        if self.solver == "sgd" and self.schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg: str, verbose) -> bool:
        if self.solver != "sgd" or self.schedule != "adaptive" or self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + f" Setting learning rate to {self.learning_rate:f}")
        return False


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share; see their docstrings."""

    # -- parameters -------------------------------------------------------------

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
        validate.choice("activation", self.activation, act.sklearn_names())
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
        number("validation_fraction", 0, 1, high_open=True)
        number("beta_1", 0, 1, high_open=True)
        number("beta_2", 0, 1, high_open=True)
        number("epsilon", 0, low_open=True)
        if not (isinstance(self.n_iter_no_change, float) and self.n_iter_no_change == np.inf):
            number("n_iter_no_change", 1, integer=True)
        number("max_fun", 1, integer=True)
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            validate.flag(name, getattr(self, name))
        if not isinstance(self.verbose, (bool, np.bool_)):
            number("verbose", 0, integer=True)
        self._elastic_net(len(sizes) + 1)
        rates = PARAMETERS["dropout"].check(self.dropout)
        if self.dtype not in (None, "float32", "float64", np.float32, np.float64):
            raise InputError(f"dtype must be None (that of X), 'float32' or 'float64', got "
                             f"{self.dtype!r}")
        if self.solver == "lbfgs" and any(rates):
            raise InputError("dropout needs a stochastic solver (sgd or adam): lbfgs "
                             "minimizes one deterministic loss")
        if self.device != "cpu" and self.solver == "lbfgs":
            raise InputError(f"device={self.device!r} needs a stochastic solver (sgd or adam): "
                             f"lbfgs runs SciPy's L-BFGS-B, on the CPU")
        check_device(self.device)  # checks only: validation selects no GPU

    def _sizes(self) -> tuple[int, ...]:
        return validate.hidden_sizes(self.hidden_layer_sizes, "hidden_layer_sizes")

    def _elastic_net(self, n_weights: int) -> ElasticNet:
        """handprop's own lambdas, l1 and l2, as a penalty on n_weights
        matrices: checked by the parameter table, as every face's."""
        return ElasticNet.per_matrix(PARAMETERS["l1"].check(self.l1, n_weights=n_weights),
                                     PARAMETERS["l2"].check(self.l2, n_weights=n_weights))

    def _input_dtype(self, X) -> np.dtype:
        """float32 stays float32, anything else becomes float64, unless ``dtype``
        says otherwise; a warm fit keeps the net's."""
        if hasattr(self, "_net") and getattr(self, "_keep_net", False):
            return self._net.dtype
        if self.dtype is not None:
            return np.dtype(self.dtype)
        return np.dtype(np.float32) if getattr(X, "dtype", None) == np.float32 else \
            np.dtype(np.float64)

    # -- fitted parameters, in both layouts ------------------------------------------

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
    W2_ = property(lambda self: self._fitted_net().W2, doc="W2, (d_2, d_1)")
    b2_ = property(lambda self: self._fitted_net().b2, doc="b2, (d_2,)")
    net_ = property(lambda self: self._fitted_net(), doc="the fitted handprop.MLP")

    def _fitted_net(self) -> MLP:
        check_is_fitted(self, "_net")
        return self._net

    # -- fitting ---------------------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X (n, d), sparse or dense, and y, with optional
        sample weights (n,).

        Returns
        -------
        self
        """
        self._check_params()
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, *, incremental: bool):
        first_pass = not hasattr(self, "_net") or (not self.warm_start and not incremental)
        self._keep_net = not first_pass
        X, Y = self._validate_input(X, y, incremental, reset=first_pass)
        dtype = self._input_dtype(X)
        X = X.astype(dtype, copy=False)
        if _is_sparse(X):
            X = X.tocsr()
        sw = None
        if sample_weight is not None:
            sw = _check_sample_weight(sample_weight, X, dtype=np.float64)
            if sw.size and sw.min() < 0:
                raise InputError(f"sample_weight must hold weights >= 0, one per example; "
                                 f"got {sw.min():g} (example {int(np.argmin(sw))})")
        sw = self._class_weights(Y, sw)
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(Y, X.shape[1], dtype)
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, Y, sw)
        else:
            self._fit_stochastic(X, Y, sw, incremental)
        if not all(np.all(np.isfinite(p)) for p in self._net.params.values()):
            if getattr(self, "_last_good", None) is not None:
                self._net.params = self._last_good  # the last epoch that was finite
            raise InputError("Solver produced non-finite parameter weights. The input data "
                             "may contain large values and need to be preprocessed.")
        return self

    def _class_weights(self, Y, sw):
        return sw

    def _initialize(self, Y, d: int, dtype) -> None:
        """scikit-learn's initialization, draw for draw: per layer, the weights
        (fan_in, fan_out) then the biases, uniform in +-sqrt(factor / (fan_in +
        fan_out)), factor 2 for logistic units and 6 otherwise."""
        sizes = (d, *self._sizes(), Y.shape[1])
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = Y.shape[1]
        self.n_layers_ = len(sizes)
        self.out_activation_ = self._out_activation()
        net = MLP(d, sizes[1:-1], sizes[-1], activation=act.resolve(self.activation),
                  output=by_sklearn_name(self.out_activation_).name, dtype=dtype, seed=0)
        factor = 2.0 if self.activation == "logistic" else 6.0
        params = {}
        for l in range(1, len(sizes)):
            fan_in, fan_out = sizes[l - 1], sizes[l]
            bound = np.sqrt(factor / (fan_in + fan_out))
            params[f"W{l}"] = self._random_state.uniform(-bound, bound, (fan_in, fan_out)).T
            params[f"b{l}"] = self._random_state.uniform(-bound, bound, fan_out)
        net.params = params
        self._net = net
        # dropout masks: a generator of their own, seeded from the random
        # state without drawing from it (the draws above and below stay
        # scikit-learn's)
        state = self._random_state.get_state()[1]
        self._rng = np.random.default_rng([int(v) for v in state[:4]] + [int(state[-1])])
        self.loss_curve_ = []
        self.history_ = History()
        self._no_improvement_count = 0
        self._best_params = {k: v.copy() for k, v in net.params.items()}
        if self.early_stopping:
            self.validation_scores_ = []
            self.validation_loss_curve_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.validation_loss_curve_ = None
            self.best_validation_score_ = None

    def _targets(self, Y):
        """What the net trains on: class indices (softmax), Y itself otherwise."""
        if self._net.pair.class_indices:
            return np.asarray(Y).argmax(axis=1).astype(np.int64)
        return np.asarray(Y, dtype=self._net.dtype)

    def _reported(self, data_loss_: float) -> float:
        """The data loss as scikit-learn reports it (its squared error is
        averaged over the outputs as well)."""
        if self._net.pair.sklearn_loss_per_output:
            return data_loss_ / self.n_outputs_
        return data_loss_

    def _step(self, params, X, T, sw, K: int) -> Step:
        """The training step of this estimator's settings, on ``params``."""
        net = self._net
        return Step(net, params, X, T, optimizer=self._optimizer.update, batch_size=K,
                    penalty=self._elastic_net(net.L + 1), decay=0.5 * self.alpha,
                    dropout=PARAMETERS["dropout"].check(self.dropout), sample_weight=sw,
                    rng=self._rng, track_penalty=True, stop_on_nonfinite=False)

    def _fit_stochastic(self, X, Y, sw, incremental: bool) -> None:
        from tqdm.auto import tqdm

        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = _Optimizer(self)
        if self.early_stopping and incremental:
            raise InputError("partial_fit does not support early_stopping=True")
        X_val = y_val = sw_val = None
        if self.early_stopping:
            stratify = Y if (is_classifier(self) and self.n_outputs_ == 1) else None
            split = train_test_split(X, Y, *(() if sw is None else (sw,)),
                                     random_state=self._random_state,
                                     test_size=self.validation_fraction, stratify=stratify)
            X, X_val, Y, Y_val = split[:4]
            if sw is not None:
                sw, sw_val = split[4], split[5]
            if X_val.shape[0] < 2:
                raise InputError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            y_val = self._val_targets(Y_val)
        n = X.shape[0]
        if self.batch_size == "auto":
            K = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped", stacklevel=4)
            K = int(np.clip(self.batch_size, 1, n))
        net = self._net
        device = DeviceCopy(net.params, resolve_device(self.device))
        T = device.put(self._targets(Y))
        sw = device.put(None if sw is None else sw.astype(net.dtype))
        X = X if _is_sparse(X) else device.put(X)
        device.adopt(self._optimizer.update)
        step = self._step(device.params, X, T, sw, K)
        bar = tqdm(total=(1 if incremental else self.max_iter) * step.n_batches,
                   disable=None if self.verbose else True, unit="batch", leave=False)
        try:
            with bar, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                self._epochs(step, device, X_val, y_val, sw_val, bar, incremental)
        finally:  # the fitted estimator holds NumPy arrays only
            device.release(self._optimizer.update)
        if self.early_stopping:
            net.params = self._best_params

    def _epochs(self, step: Step, device: DeviceCopy, X_val, y_val, sw_val, bar,
                incremental: bool) -> None:
        """scikit-learn's epochs (``_fit_stochastic``), each through the step."""
        net = self._net
        n = step.X.shape[0]
        sample_idx = np.arange(n, dtype=int)
        self._last_good = {k: v.copy() for k, v in net.params.items()}
        self.n_iter_ = 0
        for _ in range(self.max_iter):
            start = time.perf_counter()
            if self.shuffle:
                sample_idx = shuffle(sample_idx, random_state=self._random_state)
            step.start_epoch(self.n_iter_ + 1, sample_idx)
            totals = step.train_epoch(lambda b: self._optimizer.learning_rate,
                                      after_batch=lambda b: bar.update())
            device.to_host()
            self.n_iter_ += 1
            self.loss_ = (self._reported(totals.loss_sum) + totals.penalty_sum) / n
            if math.isfinite(self.loss_) and all(np.all(np.isfinite(p))
                                                 for p in net.params.values()):
                for k, v in net.params.items():  # the last good epoch, for a diverged fit
                    self._last_good[k][...] = v
            self.t_ += n
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
            valid_error, valid_loss = self._update_no_improvement_count(X_val, y_val, sw_val)
            self.history_.append(EpochRecord(
                self.n_iter_, totals.measure(net.pair, n), totals.loss_sum / n, valid_error,
                valid_loss, math.nan, math.nan, self._optimizer.learning_rate,
                time.perf_counter() - start))
            self._optimizer.iteration_ends(self.t_)
            if self._no_improvement_count > self.n_iter_no_change:
                what = "Validation score" if self.early_stopping else "Training loss"
                msg = (f"{what} did not improve more than tol={self.tol:f} for "
                       f"{self.n_iter_no_change} consecutive epochs.")
                if self._optimizer.trigger_stopping(msg, self.verbose):
                    break
                self._no_improvement_count = 0
            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter})"
                              f" reached and the optimization hasn't converged yet.",
                              ConvergenceWarning, stacklevel=6)

    def _update_no_improvement_count(self, X_val, y_val, sw_val) -> tuple[float, float]:
        """scikit-learn's stopping rule; returns the validation (error, loss),
        NaN without early stopping."""
        if not self.early_stopping:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]
            return math.nan, math.nan
        o_a = self._logits(X_val)
        score = self._score_logits(o_a, y_val, sw_val)
        self.validation_scores_.append(score)
        loss = self._val_loss(o_a, sw_val)
        self.validation_loss_curve_.append(loss)
        if self.verbose:
            print(f"Validation score: {score:f}")
        if score < self.best_validation_score_ + self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if score > self.best_validation_score_:
            self.best_validation_score_ = score
            self._best_params = {k: v.copy() for k, v in self._net.params.items()}
        error = 1 - score if is_classifier(self) else math.nan
        return error, loss

    def _val_loss(self, o_a, sw_val) -> float:
        T = self._targets(self._val_T)
        with np.errstate(all="ignore"):
            return self._reported(data_loss(self._net.output, o_a.astype(self._net.dtype), T,
                                            sample_weight=sw_val))

    def _fit_lbfgs(self, X, Y, sw) -> None:
        from scipy.optimize import minimize

        # As scikit-learn: the loss and gradients in the fitted dtype (float32
        # for float32 input), L-BFGS-B's own state in float64.
        net = self._net
        T = self._targets(Y)
        shapes = net.shapes()
        w = None if sw is None else sw.astype(net.dtype)
        names = list(shapes)
        params = net.params
        step = Step(net, params, X, T, optimizer=None, batch_size=X.shape[0],
                    penalty=self._elastic_net(net.L + 1), decay=0.5 * self.alpha)
        penalty = step._penalty(X.shape[0] if w is None else float(w.sum()))
        last = {}

        def fun(theta):
            start = 0
            for name in names:
                size = int(np.prod(shapes[name]))
                params[name][...] = theta[start:start + size].reshape(shapes[name])
                start += size
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                loss, grads = step.objective(X, T, w)
            pen = penalty.value(params) if penalty is not None else 0.0
            last["loss"] = self._reported(loss - pen) + pen
            return loss, np.concatenate([grads[k].ravel() for k in names]).astype(np.float64)

        losses = []
        theta0 = np.concatenate([params[k].ravel() for k in names])

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
        self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
        self.loss_ = float(last["loss"])
        self.loss_curve_ = losses
        self.best_loss_ = min(losses) if losses else self.loss_
        self.history_ = History()

    # -- predicting ------------------------------------------------------------------

    def _logits(self, X) -> np.ndarray:
        """o_a for checked X (n, d), dense or sparse, in chunks, as float64 (n, m)."""
        net = self._net
        out = np.empty((X.shape[0], net.m))
        sparse = _is_sparse(X)
        if sparse:
            X = X.tocsr()
        for start in range(0, X.shape[0], 4096):
            chunk = X[start:start + 4096]
            chunk = chunk.toarray() if sparse else chunk
            chunk = np.asarray(chunk, dtype=net.dtype)
            out[start:start + 4096] = forward(net.params, chunk, net.activation,
                                              net.output).o_a
        return out

    def _outputs(self, X, check_input: bool = True) -> np.ndarray:
        """o_s (n, m) in the net's dtype: what scikit-learn's forward pass gives."""
        check_is_fitted(self, "_net")
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                              dtype=(np.float64, np.float32))
        o_a = self._logits(X)
        with np.errstate(over="ignore"):
            o_s = self._net.pair.f(o_a)
        return o_s.astype(self._net.dtype, copy=False)

    def _score_logits(self, o_a, y, sample_weight) -> float:
        raise NotImplementedError

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


_SHARED_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : tuple of ints, or an int, default (100,)
        The size of each hidden layer, in order.
    activation : "identity", "logistic", "tanh", "relu" (default), or one of
        handprop's own: "softplus", "abs", "sign"
    solver : "sgd", "adam" (default) or "lbfgs" (full batch, through
        ``scipy.optimize.minimize`` on the hand-derived gradient)
    alpha : float >= 0, default 1e-4
        L2 penalty: ``0.5 * alpha * ||W||^2 / n`` per minibatch of n examples.
    batch_size : int or "auto" (min(200, n_samples))
    learning_rate : "constant", "invscaling" or "adaptive" (sgd only)
    learning_rate_init, power_t, max_iter, shuffle, random_state, tol,
    verbose, warm_start, momentum, nesterovs_momentum, early_stopping,
    validation_fraction, beta_1, beta_2, epsilon, n_iter_no_change, max_fun :
        scikit-learn's, with scikit-learn's meaning and defaults (``verbose``
        also shows a progress bar).
    l1, l2 : a number for every weight matrix, or one per weight matrix
        (W1, ..., W{L+1}: two for one hidden layer), default 0
        handprop's elastic net: ``l1 ||W||_1 + l2 ||W||_2^2`` added once per
        minibatch, on top of alpha's term.
    dropout : rate of the hidden layers, or (input rate, hidden rate); default 0
    dtype : None (default: that of X, float32 staying float32 and anything
        else becoming float64, as scikit-learn), "float32" or "float64"
    device : "cpu" (default), or "cuda" / "cuda:N" to train on an NVIDIA GPU
        with CuPy (sgd and adam; see :mod:`handprop.backend`). The fitted
        estimator holds NumPy arrays only, whatever the device: it predicts
        on the CPU and pickles anywhere.
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = """Multi-layer perceptron classifier with hand-derived gradients.

    scikit-learn's, on handprop's math: two classes get one logistic output
    unit, a multilabel indicator y one logistic unit per label, more classes
    softmax outputs; X may be sparse (each minibatch is made dense, and only
    it). See :mod:`handprop.estimator`.
""" + _SHARED_DOC + """    class_weight : None, "balanced" or {label: weight}
        Multiplies each example's weight (and sample_weight) by its class's.

    Attributes
    ----------
    classes_, loss_, best_loss_, loss_curve_, validation_scores_,
    best_validation_score_, t_, coefs_, intercepts_, n_features_in_,
    feature_names_in_, n_iter_, n_layers_, n_outputs_, out_activation_ :
        scikit-learn's. ``coefs_`` is [W1.T, ..., W{L+1}.T] and
        ``intercepts_`` [b1, ..., b{L+1}], in scikit-learn's layout. ``loss_``
        and ``loss_curve_`` hold scikit-learn's loss: the mean data loss plus
        alpha's term.
    validation_loss_curve_ : list of float or None
        The validation loss after each epoch, when ``early_stopping``.
    W1_, b1_, W2_, b2_ : the first two layers in the derivation's layout;
        ``net_`` is the whole :class:`handprop.MLP`
    history_ : handprop.train.training.History, one record per epoch; its
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
        dtype=None,
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

    def _out_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental: bool, reset: bool):
        """scikit-learn's checks and label binarizing: (X, Y) with Y (n, k) bool."""
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise InputError(
                        f"warm_start can only be used where `y` has the same classes as in "
                        f"the previous call to fit. Previously got {self.classes_}, `y` has "
                        f"{classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise InputError(f"`y` has classes not in `self.classes_`. `self.classes_` "
                                 f"has {self.classes_}. 'y' has {classes}.")
        Y = self._label_binarizer.transform(y).astype(bool)
        return X, Y

    def _class_weights(self, Y, sw):
        if self.class_weight is None:
            return sw
        if Y.shape[1] > 1 and self._label_binarizer.y_type_ != "multiclass":
            raise InputError("class_weight applies to one label per example, not to "
                             "multilabel targets")
        yi = Y.argmax(axis=1) if Y.shape[1] > 1 else Y[:, 0].astype(np.int64)
        weights = compute_class_weight(self.class_weight, classes=np.arange(len(self.classes_)),
                                       y=yi)
        base = np.ones(len(Y)) if sw is None else sw
        return base * weights[yi]

    def _val_targets(self, Y_val):
        self._val_T = Y_val
        return self._label_binarizer.inverse_transform(Y_val)

    def _score_logits(self, o_a, y, sample_weight) -> float:
        return accuracy_score(y, self._labels(o_a), sample_weight=sample_weight)

    def _labels(self, o_a) -> np.ndarray:
        """The labels for logits o_a (n, m), by scikit-learn's label binarizer."""
        scores = self._net.pair.decision(o_a)  # logistic: 1 where o_s > 1/2
        if self.n_outputs_ == 1:
            scores = scores.ravel()
        return self._label_binarizer.inverse_transform(scores)

    @available_if(_stochastic)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over X (n, d) and y, continuing from the current state.

        ``classes`` (all the labels there will ever be) is required on the
        first call. The optimizer's state (momentum, Adam's moments) carries
        over from call to call.

        Returns
        -------
        self
        """
        self._check_params()
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X) -> np.ndarray:
        """The predicted labels of the rows of X (n, d): (n,), or (n, k) for
        multilabel targets."""
        check_is_fitted(self, "_net")
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                          dtype=(np.float64, np.float32))
        return self._labels(self._logits(X))

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities, (n, n_classes), columns in the order of ``classes_``
        (for two classes: 1 - p and p of the one logistic unit)."""
        o_s = self._outputs(X)
        if self.n_outputs_ == 1:
            p = o_s.ravel()
            return np.vstack([1 - p, p]).T
        return o_s

    def predict_log_proba(self, X) -> np.ndarray:
        """``log(predict_proba(X))``, as scikit-learn defines it: a probability
        that rounded to 0 gives -inf, and two that rounded to 1 stay tied (the
        net's own loss never takes such a log: see :mod:`handprop.core.outputs`)."""
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = """Multi-layer perceptron regressor with hand-derived gradients.

    scikit-learn's, on handprop's math: identity outputs and half the squared
    error (``loss="squared_error"``), or exp outputs and half the Poisson
    deviance (``loss="poisson"``), one output per target. See
    :mod:`handprop.estimator`.
""" + _SHARED_DOC + """    loss : "squared_error" (default) or "poisson"

    Attributes
    ----------
    loss_, best_loss_, loss_curve_, validation_scores_, best_validation_score_,
    t_, coefs_, intercepts_, n_features_in_, feature_names_in_, n_iter_,
    n_layers_, n_outputs_, out_activation_ : scikit-learn's; see
        :class:`MLPClassifier`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> reg = MLPRegressor(hidden_layer_sizes=(16,), max_iter=300, random_state=0)
    >>> reg = reg.fit(X, X.sum(axis=1))
    >>> bool(reg.score(X, X.sum(axis=1)) > 0.9)
    True
    """

    def __init__(
        self,
        loss="squared_error",
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
        dropout=(0.0, 0.0),
        dtype=None,
        device="cpu",
    ):
        self.loss = loss
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
        self.dropout = dropout
        self.dtype = dtype
        self.device = device

    def _check_each_param(self) -> None:
        validate.choice("loss", self.loss, ("squared_error", "poisson"))
        super()._check_each_param()

    def _out_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_input(self, X, y, incremental: bool, reset: bool):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(np.asarray(y) < 0):
            raise InputError("loss='poisson' needs targets y >= 0 (counts)")
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        return X, Y

    def _val_targets(self, Y_val):
        self._val_T = Y_val
        return Y_val

    def _score_logits(self, o_a, y, sample_weight) -> float:
        with np.errstate(over="ignore", invalid="ignore"):
            y_pred = self._net.pair.f(o_a)
        if not np.all(np.isfinite(y_pred)):
            return np.nan
        if y_pred.shape[1] == 1:
            y_pred = y_pred.ravel()
        return r2_score(y, y_pred, sample_weight=sample_weight)

    @available_if(_stochastic)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over X (n, d) and y, continuing from the current state.

        Returns
        -------
        self
        """
        self._check_params()
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X) -> np.ndarray:
        """The predictions for the rows of X (n, d): (n,) for one target, else
        (n, n_outputs), in the net's dtype."""
        y_pred = self._outputs(X)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred


# skl2onnx converts handprop's estimators as scikit-learn's, with only the
# import changed: they are registered when skl2onnx is imported, or now if
# it already is (handprop.onnx; this imports nothing of skl2onnx).
from . import onnx as _onnx  # noqa: E402

_onnx.register_on_import()
