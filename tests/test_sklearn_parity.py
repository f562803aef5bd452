"""Parity with scikit-learn: the same random_state, float64, and the fitted
parameters are scikit-learn's to 1e-6 relative (in practice 1e-13) after 20
iterations, for every schedule, momentum and Nesterov, alpha and batch size,
early stopping, on scaled iris and digits; for lbfgs, the loss at
convergence. It takes the same random draws in the same order:
initialization, the early-stopping split, the shuffles."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

pytest.importorskip("sklearn")
from sklearn.datasets import load_digits, load_iris, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkRegressor  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from handprop import MLPClassifier, MLPRegressor  # noqa: E402

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = StandardScaler().fit_transform(X_IRIS)
X_DIGITS, Y_DIGITS = load_digits(return_X_y=True)
X_DIGITS = X_DIGITS / 16
DATA = {"iris": (X_IRIS, Y_IRIS), "digits": (X_DIGITS, Y_DIGITS),
        "digits-binary": (X_DIGITS, Y_DIGITS % 2)}

SETTINGS = {
    "sgd constant": dict(solver="sgd", learning_rate="constant"),
    "sgd invscaling": dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.2),
    "sgd adaptive": dict(solver="sgd", learning_rate="adaptive", tol=1e-2, n_iter_no_change=2),
    "momentum": dict(solver="sgd", momentum=0.5, nesterovs_momentum=False),
    "nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True),
    "no momentum": dict(solver="sgd", momentum=0.0),
    "alpha": dict(solver="sgd", alpha=0.3),
    "batch size": dict(solver="sgd", batch_size=37),
    "adam": dict(solver="adam"),
    "adam alpha batch": dict(solver="adam", alpha=0.05, batch_size=64),
    "early stopping sgd": dict(solver="sgd", early_stopping=True, validation_fraction=0.2),
    "early stopping adam": dict(solver="adam", early_stopping=True),
    "two hidden layers": dict(solver="sgd", hidden_layer_sizes=(12, 8), activation="tanh"),
    "logistic units": dict(solver="adam", activation="logistic"),
}


def _both(cls_ours, cls_theirs, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cls_ours(**kwargs).fit(X, y), cls_theirs(**kwargs).fit(X, y)


def _assert_same(ours, theirs, rtol=1e-6):
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_,
                    strict=True):
        assert a.dtype == b.dtype == np.float64 and a.shape == b.shape
        assert np.abs(a - b).max() <= rtol * np.abs(b).max()
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=rtol)
    if theirs.validation_scores_ is not None:
        assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=rtol)


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("setting", SETTINGS)
def test_classifier_parity(data, setting):
    X, y = DATA[data]
    kwargs = dict(dict(hidden_layer_sizes=(10,), max_iter=20, random_state=0,
                       learning_rate_init=0.05), **SETTINGS[setting])
    ours, theirs = _both(MLPClassifier, SkClassifier, X, y, **kwargs)
    _assert_same(ours, theirs)
    assert (ours.predict(X) == theirs.predict(X)).all()


@pytest.mark.parametrize("setting", ["sgd constant", "nesterov", "adam", "early stopping adam",
                                     "two hidden layers", "alpha"])
@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
def test_regressor_parity(setting, loss):
    X, y = make_regression(n_samples=200, n_features=6, n_targets=2, noise=5.0,
                           random_state=0)
    y = y / y.std()
    if loss == "poisson":
        y = np.random.default_rng(0).poisson(np.exp(np.clip(y, -2, 2)))
    kwargs = dict(dict(hidden_layer_sizes=(10,), max_iter=20, random_state=0,
                       learning_rate_init=0.01, loss=loss), **SETTINGS[setting])
    ours, theirs = _both(MLPRegressor, SkRegressor, X, y, **kwargs)
    _assert_same(ours, theirs)
    assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("alpha", [1e-2, 0.1])
def test_lbfgs_loss_at_convergence(alpha):
    # on iris L-BFGS converges (in 31 and 39 iterations) to the same loss
    X, y = DATA["iris"]
    kwargs = dict(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=3000, random_state=0,
                  alpha=alpha, tol=1e-9)
    ours, theirs = _both(MLPClassifier, SkClassifier, X, y, **kwargs)
    assert ours.n_iter_ == theirs.n_iter_ < 3000
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-6)


@pytest.mark.parametrize("data", DATA)
def test_lbfgs_follows_the_same_path(data):
    # On digits, 650 parameters and many local minima: both runs follow one
    # path to round-off for 50 iterations (1e-12 relative), after which
    # round-off, amplified, sends them to different minima (docs/sklearn.md)
    X, y = DATA[data]
    kwargs = dict(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=50, random_state=0,
                  alpha=1e-2, tol=1e-9)
    ours, theirs = _both(MLPClassifier, SkClassifier, X, y, **kwargs)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-6)
    for a, b in zip(ours.coefs_, theirs.coefs_, strict=True):
        assert np.abs(a - b).max() <= 1e-6 * np.abs(b).max()
    X, y = make_regression(n_samples=200, n_features=6, noise=5.0, random_state=0)
    ours, theirs = _both(MLPRegressor, SkRegressor, X, y / y.std(), **kwargs)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-6)


def test_float32_input_stays_float32():
    X, y = DATA["iris"]
    ours, theirs = _both(MLPClassifier, SkClassifier, X.astype(np.float32), y,
                         hidden_layer_sizes=(10,), max_iter=20, random_state=0,
                         solver="sgd", learning_rate_init=0.05)
    assert all(c.dtype == np.float32 for c in ours.coefs_ + ours.intercepts_)
    # float32 round-off (handprop's and scikit-learn's products differ in the last bits)
    _assert_same_shape_and_close = [np.abs(a - b).max() <= 1e-3 * np.abs(b).max()
                                    for a, b in zip(ours.coefs_, theirs.coefs_, strict=True)]
    assert all(_assert_same_shape_and_close)
    forced = MLPClassifier(hidden_layer_sizes=(10,), max_iter=5, random_state=0,
                           dtype="float64").fit(X.astype(np.float32), y)
    assert forced.coefs_[0].dtype == np.float64
