"""Activation functions g, their derivatives g', and the softmax output.

Each hidden-layer activation sits in two lookup tables, as in scikit-learn's
``neural_network._base``: ``ACTIVATIONS[name](x)`` gives g(x) and
``DERIVATIVES[name](x, gx)`` gives g'(x), where ``gx = g(x)`` is passed in so
that functions whose derivative is cheapest from the output (sigmoid, tanh)
need not recompute it. Every function takes an array of any shape and returns
an array of the same shape and dtype; ``ACTIVATIONS[name](x, out=buf)``
writes into ``buf`` instead of allocating, for the training loop, and
:func:`backprop_inplace` multiplies a gradient by g' in place. They take
NumPy arrays, or CuPy arrays on a GPU (see :mod:`handprop.backend`).

Every function here is stable for any finite input in float32 and float64:
no overflow, no warning, no nan. The two that naively call ``exp`` on a large
argument are written so that they never do:

- sigmoid uses ``exp(-|x|)``, which is at most 1, in two branches;
- softplus is ``logaddexp(0, x)``;
- log-softmax subtracts the row maximum, and the loss is computed from
  log-sum-exp, never as the log of a probability that may have underflowed.

Examples
--------
>>> import numpy as np
>>> x = np.array([-1e4, -1.0, 0.0, 1.0, 1e4])
>>> sigmoid(x)
array([0.        , 0.26894142, 0.5       , 0.73105858, 1.        ])
>>> softplus(x)
array([0.00000000e+00, 3.13261688e-01, 6.93147181e-01, 1.31326169e+00,
       1.00000000e+04])
>>> DERIVATIVES["relu"](x, relu(x))
array([0., 0., 0., 1., 1.])
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..backend import namespace
from ..errors import InputError, InputTypeError

__all__ = [
    "ACTIVATIONS",
    "DERIVATIVES",
    "KINKED",
    "SKLEARN_NAMES",
    "abs_",
    "backprop_inplace",
    "identity",
    "log_softmax",
    "logsumexp",
    "names",
    "relu",
    "resolve",
    "sigmoid",
    "sign",
    "sklearn_names",
    "softmax",
    "softplus",
    "tanh",
]


def identity(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """g(x) = x."""
    xp = namespace(x)
    if out is None:
        return xp.array(x, copy=True)
    xp.copyto(out, x)
    return out


def relu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """rect(x) = max(0, x), the derivation's rectifier."""
    return namespace(x).maximum(x, 0, out=out)


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """sigmoid(x) = 1 / (1 + exp(-x)), without overflow.

    Notes
    -----
    With e = exp(-|x|) <= 1: sigmoid(x) = 1 / (1 + e) for x >= 0 and
    e / (1 + e) for x < 0. Neither branch can overflow.
    """
    xp = namespace(x)
    x = xp.asarray(x)
    e = xp.exp(-xp.abs(x))
    s = xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
    if out is None:
        return s
    xp.copyto(out, s)
    return out


def tanh(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """tanh(x); numpy's is already stable for any finite x."""
    return namespace(x).tanh(x, out=out)


def softplus(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """softplus(x) = log(1 + exp(x)), computed as ``logaddexp(0, x)``."""
    xp = namespace(x)
    x = xp.asarray(x)
    return xp.logaddexp(xp.zeros((), dtype=x.dtype), x, out=out)


def abs_(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """abs(x) = |x|."""
    return namespace(x).abs(x, out=out)


def sign(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """sign(x) = 1[x > 0] - 1[x < 0], so sign(0) = 0.

    Notes
    -----
    The reference writes sgn as 1_{R+} - 1_{R-}; with R+ and R- both holding
    0 that is 0 at 0 too, but the strict indicators say it unambiguously.
    """
    return namespace(x).sign(x, out=out)


def _identity_prime(x: np.ndarray, gx: np.ndarray | None = None) -> np.ndarray:
    return namespace(x).ones_like(x)


def _relu_prime(x: np.ndarray, gx: np.ndarray | None = None) -> np.ndarray:
    # rect'(x) = 1[x > 0]: an indicator, not h_a itself (the reference's 2.13
    # writes h_a; its final formula uses the indicator correctly).
    x = namespace(x).asarray(x)
    return (x > 0).astype(x.dtype)


def _sigmoid_prime(x: np.ndarray, gx: np.ndarray | None = None) -> np.ndarray:
    s = sigmoid(x) if gx is None else gx
    return s * (1 - s)


def _tanh_prime(x: np.ndarray, gx: np.ndarray | None = None) -> np.ndarray:
    t = namespace(x).tanh(x) if gx is None else gx
    return 1 - t * t


def _softplus_prime(x: np.ndarray, gx: np.ndarray | None = None) -> np.ndarray:
    # softplus' = sigmoid, which needs x, not softplus(x).
    return sigmoid(x)


def _abs_prime(x: np.ndarray, gx: np.ndarray | None = None) -> np.ndarray:
    # abs'(0) is undefined; 0 is the subgradient that sign(0) = 0 gives.
    return namespace(x).sign(x)


def _sign_prime(x: np.ndarray, gx: np.ndarray | None = None) -> np.ndarray:
    return namespace(x).zeros_like(x)


ActivationFn = Callable[[np.ndarray], np.ndarray]
DerivativeFn = Callable[..., np.ndarray]

#: name -> g. Keys are the canonical names; see :data:`ALIASES`.
ACTIVATIONS: dict[str, ActivationFn] = {
    "relu": relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "softplus": softplus,
    "abs": abs_,
    "sign": sign,
    "identity": identity,
}

#: name -> g', called as ``DERIVATIVES[name](x, gx)`` with ``gx = g(x)`` or None.
DERIVATIVES: dict[str, DerivativeFn] = {
    "relu": _relu_prime,
    "sigmoid": _sigmoid_prime,
    "tanh": _tanh_prime,
    "softplus": _softplus_prime,
    "abs": _abs_prime,
    "sign": _sign_prime,
    "identity": _identity_prime,
}

#: Other names users know them by: the derivation's ``rect``, scikit-learn's ``logistic``.
ALIASES: dict[str, str] = {"rect": "relu", "logistic": "sigmoid"}

#: scikit-learn's names of the activations its MLPs (and skl2onnx's
#: converters) have, by handprop's name.
SKLEARN_NAMES: dict[str, str] = {"relu": "relu", "sigmoid": "logistic", "tanh": "tanh",
                                 "identity": "identity"}


def sklearn_names() -> list[str]:
    """The activation names handprop's estimators take: scikit-learn's, and
    handprop's own for the activations scikit-learn does not have.

    >>> sklearn_names()
    ['abs', 'identity', 'logistic', 'relu', 'sign', 'softplus', 'tanh']
    """
    return sorted(set(SKLEARN_NAMES.values()) | (set(ACTIVATIONS) - set(SKLEARN_NAMES)))


def names() -> list[str]:
    """Every name an activation is known by: the canonical ones and the aliases."""
    return sorted(set(ACTIVATIONS) | set(ALIASES))


#: Activations that are not differentiable at 0. A finite difference whose
#: two evaluations put some pre-activation on both sides of 0 is meaningless
#: there; :func:`handprop.gradcheck` detects and reports such entries.
KINKED: frozenset[str] = frozenset({"relu", "abs", "sign"})


def backprop_inplace(name: str, h_a: np.ndarray, h_s: np.ndarray, G: np.ndarray) -> None:
    """G *= g'(h_a), in place: from the gradient at h_s to the gradient at h_a.

    Parameters
    ----------
    name : canonical activation name
    h_a, h_s, G : arrays of one shape, (K, d_h); ``h_s = g(h_a)``
    """
    if name == "relu":
        namespace(G).multiply(G, h_a > 0, out=G)  # one pass, no float mask
    elif name != "identity":
        G *= DERIVATIVES[name](h_a, h_s)


def resolve(name: str) -> str:
    """Return the canonical name of an activation, or raise ValueError.

    >>> resolve("rect"), resolve("logistic"), resolve("tanh")
    ('relu', 'sigmoid', 'tanh')
    """
    if not isinstance(name, str):
        raise InputTypeError(f"activation must be a string, got {type(name).__name__}")
    key = ALIASES.get(name, name)
    if key not in ACTIVATIONS:
        known = ", ".join(sorted(set(ACTIVATIONS) | set(ALIASES)))
        raise InputError(f"unknown activation {name!r}; expected one of: {known}")
    return key


def logsumexp(o_a: np.ndarray) -> np.ndarray:
    """log(sum_j exp(o_a[..., j])) along the last axis, shifted by the max.

    Parameters
    ----------
    o_a : array, shape (K, m) or (m,)

    Returns
    -------
    array, shape (K,) or ()
    """
    xp = namespace(o_a)
    o_a = xp.asarray(o_a)
    top = o_a.max(axis=-1, keepdims=True)
    out = xp.log(xp.exp(o_a - top).sum(axis=-1, keepdims=True)) + top
    return out[..., 0]


def log_softmax(o_a: np.ndarray) -> np.ndarray:
    """log o_s = o_a - logsumexp(o_a), row by row.

    Parameters
    ----------
    o_a : array, shape (K, m) or (m,)

    Returns
    -------
    array, the shape of ``o_a``
    """
    o_a = namespace(o_a).asarray(o_a)
    return o_a - logsumexp(o_a)[..., None]


def softmax(o_a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """o_s = exp(o_a - max) / sum(exp(o_a - max)), row by row.

    The reference's ``exp(oa) / sum(exp(oa))`` overflows to inf / inf = nan
    once a logit passes about 710 (float64) or 89 (float32); subtracting the
    row maximum leaves the ratio unchanged and keeps every exponent <= 0.

    Parameters
    ----------
    o_a : array, shape (K, m) or (m,)

    Returns
    -------
    array, the shape of ``o_a``; each row sums to 1, each entry in [0, 1]. In
    exact arithmetic every entry is positive; in floating point, an entry
    whose logit is more than about 745 (float64) or 104 (float32) below its
    row's maximum underflows to 0, as here (the loss never takes its log: see
    :func:`logsumexp`):

    >>> softmax(np.array([1e4, 0.0, -1e4]))
    array([1., 0., 0.])
    """
    xp = namespace(o_a)
    o_a = xp.asarray(o_a)
    e = xp.subtract(o_a, o_a.max(axis=-1, keepdims=True), out=out)
    xp.exp(e, out=e)
    e /= e.sum(axis=-1, keepdims=True)
    return e
