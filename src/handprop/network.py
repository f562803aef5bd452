"""A one-hidden-layer perceptron with softmax outputs, in the derivation's notation.

Examples are rows: a minibatch of K examples is X, shape (K, d).

=========  ==========  ==========================================================
symbol     shape       meaning
=========  ==========  ==========================================================
X          (K, d)      K input examples, one per row
y          (K,)        their classes, integers in [0, m)
W1         (d_h, d)    first-layer weights; row j feeds hidden unit j
b1         (d_h,)      first-layer biases
h_a        (K, d_h)    hidden pre-activations, H_a = X W1^T + b1
h_s        (K, d_h)    hidden outputs ("sortie"), H_s = g(H_a)
W2         (m, d_h)    second-layer weights; row k feeds output k
b2         (m,)        second-layer biases
o_a        (K, m)      output pre-activations (logits), O_a = H_s W2^T + b2
o_s        (K, m)      output probabilities, O_s = softmax(O_a), row by row
=========  ==========  ==========================================================

The loss of a minibatch is the mean cross-entropy plus the penalty P:

    L = (1/K) sum_k [ logsumexp(o_a[k]) - o_a[k, y_k] ] + P(W1, W2)

and its gradients, with Y the (K, m) one-hot matrix of y, are

    G_oa = (O_s - Y) / K                      (K, m)
    dL/dW2 = G_oa^T H_s + dP/dW2              (m, d_h)
    dL/db2 = sum of the rows of G_oa          (m,)
    G_hs = G_oa W2                            (K, d_h)
    G_ha = G_hs * g'(H_a)                     (K, d_h), elementwise
    dL/dW1 = G_ha^T X + dP/dW1                (d_h, d)
    dL/db1 = sum of the rows of G_ha          (d_h,)

The number of scalar parameters is n_params = d_h (d + 1) + m (d_h + 1).
"""

from __future__ import annotations

import copy as _copy
import os
from typing import NamedTuple

import numpy as np

from . import activations as act
from .backend import namespace
from .files import read_archive, write_archive
from .penalty import ElasticNet

__all__ = ["MLP", "Cache", "forward", "backward", "cross_entropy"]

PARAM_NAMES = ("W1", "b1", "W2", "b2")
_FLOAT_DTYPES = {"float32": np.float32, "float64": np.float64}
_METHODS = ("matrix", "loop")


class Cache(NamedTuple):
    """What the forward pass keeps for the backward pass.

    Attributes
    ----------
    h_a : (K, d_h) hidden pre-activations
    h_s : (K, d_h) hidden outputs
    o_a : (K, m) logits
    o_s : (K, m) softmax probabilities
    h_d : (K, d_h) the hidden outputs the output layer saw: ``h_s`` itself,
        or ``h_s * mask_h`` under dropout
    """

    h_a: np.ndarray
    h_s: np.ndarray
    o_a: np.ndarray
    o_s: np.ndarray
    h_d: np.ndarray | None = None


# --------------------------------------------------------------------------
# The two functions that hold the math. MLP, training, the estimator and the
# gradient checker all call these. They take NumPy arrays, or CuPy arrays on a
# GPU (all of one kind), and compute with the module ``xp`` of their input:
# the same lines run on either (see handprop.backend).
# --------------------------------------------------------------------------


def forward(
    params: dict[str, np.ndarray],
    X: np.ndarray,
    activation: str,
    out: Cache | None = None,
    *,
    mask_h: np.ndarray | None = None,
) -> Cache:
    """Forward pass on a minibatch.

    Parameters
    ----------
    params : dict with "W1" (d_h, d), "b1" (d_h,), "W2" (m, d_h), "b2" (m,)
    X : (K, d), the dtype of the parameters
    activation : canonical activation name (a key of ``ACTIVATIONS``)
    out : optional Cache of preallocated arrays of the same shapes to write
        into (see :class:`Workspace`); by default new arrays are allocated
    mask_h : optional (K, d_h) dropout mask of the hidden layer, already
        scaled: 0 for a dropped unit, 1 / (1 - rate) for a kept one
        (inverted dropout, so that evaluation needs no rescaling)

    Returns
    -------
    Cache of h_a (K, d_h), h_s (K, d_h), o_a (K, m), o_s (K, m), h_d (K, d_h)
    """
    xp = namespace(X)
    buf = out if out is not None else Cache(None, None, None, None, None)
    # X W1^T: matmul hands the transposed view to BLAS as a flag, no copy.
    h_a = xp.matmul(X, params["W1"].T, out=buf.h_a)
    h_a += params["b1"]
    h_s = act.ACTIVATIONS[activation](h_a, out=buf.h_s)
    h_d = h_s if mask_h is None else xp.multiply(h_s, mask_h, out=buf.h_d)
    o_a = xp.matmul(h_d, params["W2"].T, out=buf.o_a)
    o_a += params["b2"]
    return Cache(h_a, h_s, o_a, act.softmax(o_a, out=buf.o_s), h_d)


def _row_weights(K: int, sample_weight: np.ndarray | None, dtype) -> np.ndarray | float:
    """What each example's loss is multiplied by in the minibatch loss: 1/K,
    or w_k / sum(w) with sample weights (a weighted mean)."""
    if sample_weight is None:
        return 1.0 / K
    return (sample_weight / sample_weight.sum()).astype(dtype, copy=False)


def cross_entropy(
    o_a: np.ndarray,
    y: np.ndarray,
    *,
    label_smoothing: float = 0.0,
    sample_weight: np.ndarray | None = None,
) -> float:
    """Mean over the rows of -log o_s[y], from the logits by log-sum-exp.

    Parameters
    ----------
    o_a : (K, m) logits
    y : (K,) integer classes
    label_smoothing : eps in [0, 1): the target is (1 - eps) onehot(y) + eps / m
    sample_weight : optional (K,) weights >= 0; the mean is then weighted

    Notes
    -----
    -log softmax(o_a)[y] = logsumexp(o_a) - o_a[y] (reference, 2.4). Taking the
    log of an underflowed probability would give inf; this form stays finite.
    With a smoothed target t, the loss -sum_j t_j log o_s[j] is
    logsumexp(o_a) - sum_j t_j o_a[j], as sum_j t_j = 1.
    """
    xp = namespace(o_a)
    K = o_a.shape[0]
    picked = o_a[xp.arange(K), y]
    if label_smoothing:
        picked = (1 - label_smoothing) * picked + label_smoothing * o_a.mean(axis=1)
    losses = act.logsumexp(o_a) - picked
    if sample_weight is None:
        return float(xp.mean(losses))
    return float(xp.dot(losses, sample_weight) / sample_weight.sum())


def backward(
    params: dict[str, np.ndarray],
    cache: Cache,
    X: np.ndarray,
    y: np.ndarray,
    activation: str,
    penalty: ElasticNet | None = None,
    *,
    scale: float = 1.0,
    work: Workspace | None = None,
    mask_h: np.ndarray | None = None,
    label_smoothing: float = 0.0,
    sample_weight: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Gradients of the minibatch loss (mean cross-entropy + penalty).

    Parameters
    ----------
    params : dict with "W1" (d_h, d), "b1" (d_h,), "W2" (m, d_h), "b2" (m,)
    cache : the :class:`Cache` that :func:`forward` returned for ``X``
    X : (K, d)
    y : (K,) integer classes in [0, m)
    activation : canonical activation name
    penalty : ElasticNet or None
    scale : the gradients returned are ``scale`` times the true ones. The
        training loop passes the learning rate here: multiplying the (K, m)
        output delta costs nothing, where multiplying each (d_h, d) gradient
        afterwards would cost a pass over it.
    work : optional :class:`Workspace` whose arrays receive the results
    mask_h : the (K, d_h) hidden dropout mask given to :func:`forward`, or None
    label_smoothing, sample_weight : as in :func:`cross_entropy`

    Returns
    -------
    dict with "W1" (d_h, d), "b1" (d_h,), "W2" (m, d_h), "b2" (m,); the
    arrays of ``work.grads`` when ``work`` is given
    """
    xp = namespace(X)
    K = X.shape[0]
    rows = xp.arange(K)
    # Softmax with cross-entropy is a canonical link: the log-sum-exp's
    # gradient is o_s, and -o_a[y]'s is -onehot(y), so the output delta is
    # simply o_s - onehot(y) (o_s - t for a smoothed target t), with no
    # softmax Jacobian to multiply by.
    if work is None:
        G_oa = cache.o_s.copy()
    else:
        G_oa = work.G_oa[:K]
        xp.copyto(G_oa, cache.o_s)
    if label_smoothing:
        G_oa -= label_smoothing / G_oa.shape[1]
        G_oa[rows, y] -= 1 - label_smoothing
    else:
        G_oa[rows, y] -= 1
    weights = _row_weights(K, sample_weight, G_oa.dtype)
    if sample_weight is None:
        G_oa *= scale * weights
    else:
        G_oa *= (scale * weights)[:, None]
    h_d = cache.h_d if cache.h_d is not None else cache.h_s
    grads = work.grads if work is not None else {}
    # G_hs = G_oa W2 (through the dropout mask), then G_ha = G_hs * g'(H_a),
    # all in the same array
    G_ha = xp.matmul(G_oa, params["W2"], out=None if work is None else work.G_hs[:K])
    if mask_h is not None:
        G_ha *= mask_h
    act.backprop_inplace(activation, cache.h_a, cache.h_s, G_ha)
    grads["W1"] = xp.matmul(G_ha.T, X, out=grads.get("W1"))
    grads["b1"] = xp.sum(G_ha, axis=0, out=grads.get("b1"))
    grads["W2"] = xp.matmul(G_oa.T, h_d, out=grads.get("W2"))
    grads["b2"] = xp.sum(G_oa, axis=0, out=grads.get("b2"))
    if penalty is not None and not penalty.is_zero:
        for weight in ("W1", "W2"):
            penalty.add_grad(weight, params[weight], grads[weight], scale=scale,
                             scratch=None if work is None else work.scratch[weight])
    return grads


class Workspace:
    """The arrays one minibatch needs, allocated once and reused.

    Parameters
    ----------
    d, d_h, m : the net's sizes
    K : the largest minibatch; smaller ones use leading slices
    dtype : the net's dtype
    xp : the array module that allocates them: NumPy, or CuPy for a GPU

    Attributes
    ----------
    X : (K, d) the gathered minibatch; y : (K,) its classes
    h_a, h_s, h_d, G_hs : (K, d_h); o_a, o_s, G_oa : (K, m)
    grads : "W1" (d_h, d), "b1" (d_h,), "W2" (m, d_h), "b2" (m,)
    scratch : "W1" (d_h, d), "W2" (m, d_h), for the penalty's gradient
    """

    def __init__(self, d: int, d_h: int, m: int, K: int, dtype, xp=np) -> None:
        e = xp.empty
        self.X = e((K, d), dtype)
        self.y = e(K, np.int64)
        self.h_a, self.h_s, self.G_hs = e((K, d_h), dtype), e((K, d_h), dtype), e((K, d_h), dtype)
        self.h_d = e((K, d_h), dtype)  # the hidden layer after dropout
        self.o_a, self.o_s, self.G_oa = e((K, m), dtype), e((K, m), dtype), e((K, m), dtype)
        self.grads = {"W1": e((d_h, d), dtype), "b1": e(d_h, dtype),
                      "W2": e((m, d_h), dtype), "b2": e(m, dtype)}
        self._scratch: dict[str, np.ndarray] | None = None
        self._shapes = {"W1": (d_h, d), "W2": (m, d_h)}
        self._dtype = dtype
        self._xp = xp

    @property
    def scratch(self) -> dict[str, np.ndarray]:
        if self._scratch is None:  # only a penalized fit needs it
            self._scratch = {k: self._xp.empty(v, self._dtype) for k, v in self._shapes.items()}
        return self._scratch

    def cache(self, k: int) -> Cache:
        """Views of the forward buffers for a minibatch of k <= K examples."""
        return Cache(self.h_a[:k], self.h_s[:k], self.o_a[:k], self.o_s[:k], self.h_d[:k])


# --------------------------------------------------------------------------
# Input checks. They run before anything is computed, so a call that fails
# leaves the network as it was.
# --------------------------------------------------------------------------


def _check_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if dt.name not in _FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dt.name}")
    return dt


def _check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


class MLP:
    """One hidden layer of d_h units with activation g, and m softmax outputs.

    Parameters
    ----------
    d : int >= 1
        Number of inputs.
    d_h : int >= 1
        Number of hidden units.
    m : int >= 2
        Number of classes.
    activation : str
        One of ``relu`` (alias ``rect``), ``sigmoid`` (alias ``logistic``),
        ``tanh``, ``softplus``, ``abs``, ``sign``, ``identity``.
    dtype : "float64" or "float32"
    seed : int, numpy.random.Generator or None
        Seeds the initialization.

    Attributes
    ----------
    W1 : (d_h, d), b1 : (d_h,), W2 : (m, d_h), b2 : (m,)

    Notes
    -----
    Weights are drawn uniformly in [-a, a]: a = sqrt(6 / d) for W1 under rect
    (He: keeps the variance of h_a steady although rect zeroes half of it),
    a = sqrt(6 / (d + d_h)) otherwise (Glorot), and a = sqrt(6 / (d_h + m))
    for W2. Biases start at zero. The draws are made in float64 and then
    cast, so a float32 and a float64 net with the same seed agree.

    Examples
    --------
    >>> net = MLP(2, 3, 2, seed=0)
    >>> net.n_params
    17
    >>> float(net.predict_proba(np.array([[0.5, -1.0]])).sum())
    1.0
    """

    def __init__(
        self,
        d: int,
        d_h: int,
        m: int,
        *,
        activation: str = "relu",
        dtype: str = "float64",
        seed: int | np.random.Generator | None = None,
    ) -> None:
        self.d = _check_positive_int("d", d)
        self.d_h = _check_positive_int("d_h", d_h)
        self.m = _check_positive_int("m", m, minimum=2)
        self.activation = act.resolve(activation)
        self.dtype = _check_dtype(dtype)
        rng = np.random.default_rng(seed)
        fan1 = self.d if self.activation == "relu" else self.d + self.d_h
        a1 = np.sqrt(6.0 / fan1)
        a2 = np.sqrt(6.0 / (self.d_h + self.m))
        self.W1 = rng.uniform(-a1, a1, size=(self.d_h, self.d)).astype(self.dtype)
        self.b1 = np.zeros(self.d_h, dtype=self.dtype)
        self.W2 = rng.uniform(-a2, a2, size=(self.m, self.d_h)).astype(self.dtype)
        self.b2 = np.zeros(self.m, dtype=self.dtype)
        #: What a model file carries besides the arrays (history, settings).
        self.meta: dict = {}

    # -- parameters ---------------------------------------------------------

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of each parameter by name."""
        return {
            "W1": (self.d_h, self.d),
            "b1": (self.d_h,),
            "W2": (self.m, self.d_h),
            "b2": (self.m,),
        }

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The four parameter arrays by name (the arrays themselves, not copies).

        Assigning a dict replaces them, after checking every name, shape and
        value; a failed assignment changes nothing.
        """
        return {"W1": self.W1, "b1": self.b1, "W2": self.W2, "b2": self.b2}

    @params.setter
    def params(self, new: dict[str, np.ndarray]) -> None:
        if not isinstance(new, dict):
            raise TypeError(f"params must be a dict of arrays, got {type(new).__name__}")
        missing = [k for k in PARAM_NAMES if k not in new]
        extra = [k for k in new if k not in PARAM_NAMES]
        if missing or extra:
            raise ValueError(
                f"params must have exactly the keys W1, b1, W2, b2; "
                f"missing {missing or 'none'}, unexpected {extra or 'none'}"
            )
        checked = {}
        for name, shape in self.shapes().items():
            arr = np.asarray(new[name])
            if arr.shape != shape:
                raise ValueError(f"params[{name!r}] must have shape {shape}, got {arr.shape}")
            if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
                raise TypeError(f"params[{name!r}] must be real numbers, got dtype {arr.dtype}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"params[{name!r}] holds NaN or inf")
            checked[name] = np.array(arr, dtype=self.dtype, copy=True)
        self.W1, self.b1, self.W2, self.b2 = (checked[k] for k in PARAM_NAMES)

    @property
    def n_params(self) -> int:
        """d_h (d + 1) + m (d_h + 1): the weights plus one bias per unit."""
        return self.d_h * (self.d + 1) + self.m * (self.d_h + 1)

    def copy(self) -> MLP:
        """A deep copy: changing it leaves this net alone."""
        return _copy.deepcopy(self)

    def astype(self, dtype) -> MLP:
        """A copy whose parameters are cast to ``dtype`` (float32 or float64)."""
        dt = _check_dtype(dtype)
        new = self.copy()
        new.dtype = dt
        new.W1, new.b1, new.W2, new.b2 = (p.astype(dt) for p in self.params.values())
        return new

    def __repr__(self) -> str:
        return (
            f"MLP(d={self.d}, d_h={self.d_h}, m={self.m}, "
            f"activation={self.activation!r}, dtype={self.dtype.name!r})"
        )

    # -- input checks -------------------------------------------------------

    def check_X(self, X) -> np.ndarray:
        """X as a (K, d) array of this net's dtype, or a ValueError/TypeError."""
        if isinstance(X, (str, bytes)):
            raise TypeError("X must be an array of numbers, got a string")
        arr = np.asarray(X)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
        ) or np.iscomplexobj(arr):
            raise TypeError(f"X must hold real numbers, got dtype {arr.dtype}")
        if arr.ndim != 2:
            raise ValueError(
                f"X must be 2-D with shape (K, {self.d}), one example per row; "
                f"got {arr.ndim}-D array of shape {arr.shape}"
            )
        if arr.shape[0] == 0:
            raise ValueError(f"X is an empty batch: expected shape (K, {self.d}) with K >= 1")
        if arr.shape[1] != self.d:
            raise ValueError(
                f"X has {arr.shape[1]} features per example; this net expects d = {self.d}"
            )
        arr = np.asarray(arr, dtype=self.dtype)
        # A NaN or inf anywhere makes the sum non-finite, so one fast reduction
        # clears the common case; only a non-finite sum (which finite values
        # can also give, by overflow) needs the elementwise test.
        with np.errstate(over="ignore", invalid="ignore"):
            total = arr.sum()
        if not np.isfinite(total) and not np.all(np.isfinite(arr)):
            raise ValueError("X contains NaN or inf; every input must be finite")
        return arr

    def check_y(self, y, K: int) -> np.ndarray:
        """y as a (K,) int64 array of classes in [0, m), or a ValueError/TypeError."""
        arr = np.asarray(y)
        if arr.ndim != 1:
            raise ValueError(f"y must be 1-D with shape ({K},), got shape {arr.shape}")
        if arr.shape[0] != K:
            raise ValueError(f"len(y) = {arr.shape[0]} but X has {K} examples; they must match")
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
            raise TypeError(f"y must hold integer classes in [0, {self.m}), got dtype {arr.dtype}")
        if not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                raise ValueError(f"y must hold integer classes in [0, {self.m}); got non-integers")
        out = arr.astype(np.int64)
        if out.size and (out.min() < 0 or out.max() >= self.m):
            raise ValueError(
                f"y must hold classes in [0, {self.m}); got values from {out.min()} to {out.max()}"
            )
        return out

    @staticmethod
    def check_penalty(penalty) -> ElasticNet | None:
        if penalty is None or isinstance(penalty, ElasticNet):
            return penalty
        raise TypeError(f"penalty must be an ElasticNet or None, got {type(penalty).__name__}")

    # -- the math -----------------------------------------------------------

    def check_options(self, K: int, *, mask_in=None, mask_h=None, label_smoothing=0.0,
                      sample_weight=None) -> dict:
        """The loss options as checked arrays and numbers, or a ValueError.

        Parameters
        ----------
        K : the minibatch size
        mask_in : (K, d) input dropout mask (0 or 1 / (1 - rate)), or None
        mask_h : (K, d_h) hidden dropout mask, or None
        label_smoothing : float in [0, 1)
        sample_weight : (K,) weights >= 0 with a positive sum, or None
        """
        out = {}
        for name, mask, shape in (("mask_in", mask_in, (K, self.d)),
                                  ("mask_h", mask_h, (K, self.d_h))):
            if mask is None:
                out[name] = None
                continue
            arr = np.asarray(mask, dtype=self.dtype)
            if arr.shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
            if not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise ValueError(f"{name} must hold finite values >= 0")
            out[name] = arr
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
                or not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be a number in [0, 1), got {label_smoothing!r}")
        out["label_smoothing"] = float(label_smoothing)
        if sample_weight is None:
            out["sample_weight"] = None
        else:
            w = np.asarray(sample_weight, dtype=np.float64)
            if w.shape != (K,):
                raise ValueError(f"sample_weight must have shape ({K},), got {w.shape}")
            if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise ValueError("sample_weight must hold finite weights >= 0 with a "
                                 "positive sum")
            out["sample_weight"] = w.astype(self.dtype)
        return out

    def fprop(self, X, *, mask_h=None) -> Cache:
        """Forward pass on a minibatch X, shape (K, d).

        ``mask_h`` is an optional (K, d_h) hidden dropout mask (see
        :func:`forward`).

        Returns
        -------
        Cache of h_a (K, d_h), h_s (K, d_h), o_a (K, m), o_s (K, m), h_d (K, d_h)
        """
        X = self.check_X(X)
        opts = self.check_options(X.shape[0], mask_h=mask_h)
        return forward(self.params, X, self.activation, mask_h=opts["mask_h"])

    def bprop(self, cache: Cache, X, y, penalty: ElasticNet | None = None, *, mask_h=None,
              label_smoothing: float = 0.0, sample_weight=None) -> dict[str, np.ndarray]:
        """Gradients of the minibatch loss, given the cache from :meth:`fprop`.

        Parameters
        ----------
        cache : Cache from ``fprop(X, mask_h=mask_h)``
        X : (K, d)
        y : (K,) integer classes in [0, m)
        penalty : ElasticNet or None
        mask_h, label_smoothing, sample_weight : see :meth:`loss_and_grads`

        Returns
        -------
        dict with "W1" (d_h, d), "b1" (d_h,), "W2" (m, d_h), "b2" (m,)
        """
        X = self.check_X(X)
        y = self.check_y(y, X.shape[0])
        penalty = self.check_penalty(penalty)
        opts = self.check_options(X.shape[0], mask_h=mask_h, label_smoothing=label_smoothing,
                                  sample_weight=sample_weight)
        opts.pop("mask_in")
        if not isinstance(cache, Cache) or cache.h_a.shape != (X.shape[0], self.d_h):
            raise ValueError("cache must be the Cache that fprop returned for this X")
        return backward(self.params, cache, X, y, self.activation, penalty, **opts)

    def _inputs(self, X, y, penalty, options: dict):
        X = self.check_X(X)
        y = self.check_y(y, X.shape[0])
        penalty = self.check_penalty(penalty)
        opts = self.check_options(X.shape[0], **options)
        mask_in = opts.pop("mask_in")
        if mask_in is not None:  # input dropout: the net sees X * mask_in
            X = X * mask_in
        return X, y, penalty, opts

    def loss(self, X, y, penalty: ElasticNet | None = None, **options) -> float:
        """The minibatch loss: mean cross-entropy over the K examples of X
        (K, d) plus the penalty. ``options`` are those of :meth:`loss_and_grads`."""
        X, y, penalty, opts = self._inputs(X, y, penalty, options)
        o_a = forward(self.params, X, self.activation, mask_h=opts["mask_h"]).o_a
        value = cross_entropy(o_a, y, label_smoothing=opts["label_smoothing"],
                              sample_weight=opts["sample_weight"])
        return value + (penalty.value(self.params) if penalty is not None else 0.0)

    def loss_and_grads(
        self, X, y, penalty: ElasticNet | None = None, method: str = "matrix", *,
        mask_in=None, mask_h=None, label_smoothing: float = 0.0, sample_weight=None,
    ) -> tuple[float, dict[str, np.ndarray]]:
        """The minibatch loss and its gradient with respect to each parameter.

        Parameters
        ----------
        X : (K, d)
        y : (K,) integer classes in [0, m)
        penalty : ElasticNet or None
        method : "matrix" (the fast path) or "loop" (the reference: one
            example at a time, as in the derivation, then averaged)
        mask_in : optional (K, d) input dropout mask, already scaled (0 or
            1 / (1 - rate)); the net sees X * mask_in
        mask_h : optional (K, d_h) hidden dropout mask, already scaled
        label_smoothing : eps in [0, 1); the target is (1 - eps) onehot + eps / m
        sample_weight : optional (K,) weights; the loss is then the weighted mean

        Returns
        -------
        loss : float, the mean cross-entropy plus the penalty
        grads : dict with "W1" (d_h, d), "b1" (d_h,), "W2" (m, d_h), "b2" (m,)
        """
        if method not in _METHODS:
            raise ValueError(f"method must be 'matrix' or 'loop', got {method!r}")
        X, y, penalty, opts = self._inputs(X, y, penalty, dict(
            mask_in=mask_in, mask_h=mask_h, label_smoothing=label_smoothing,
            sample_weight=sample_weight))
        if method == "loop":
            return _loss_and_grads_loop(self, X, y, penalty, **opts)
        cache = forward(self.params, X, self.activation, mask_h=opts["mask_h"])
        value = cross_entropy(cache.o_a, y, label_smoothing=opts["label_smoothing"],
                              sample_weight=opts["sample_weight"])
        if penalty is not None:
            value += penalty.value(self.params)
        return value, backward(self.params, cache, X, y, self.activation, penalty, **opts)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities o_s, shape (n, m), for X of shape (n, d)."""
        return forward(self.params, self.check_X(X), self.activation).o_s

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row of X (n, d), shape (n,), int64."""
        o_a = forward(self.params, self.check_X(X), self.activation).o_a
        return o_a.argmax(axis=1).astype(np.int64)

    # -- model files --------------------------------------------------------

    def save(self, path: str | os.PathLike, **meta) -> None:
        """Write the net to ``path`` as ``.npz``, atomically.

        The archive holds W1, b1, W2 and b2 and one more array, ``metadata``:
        a JSON text with the sizes, activation, dtype, handprop's version, the
        sha256 of each array, and ``self.meta`` updated with ``meta`` (for
        instance ``history=...``, ``settings=...``; values must be JSON).
        """
        from . import __version__

        header = {
            "handprop_version": __version__,
            "d": self.d, "d_h": self.d_h, "m": self.m,
            "activation": self.activation,
            "dtype": self.dtype.name,
            "meta": {**self.meta, **meta},
        }
        write_archive(path, self.params, header, kind=MODEL_FORMAT,
                      version=MODEL_FORMAT_VERSION)

    @classmethod
    def load(cls, path: str | os.PathLike) -> MLP:
        """Read a net written by :meth:`save`.

        The file is opened with ``allow_pickle=False``, so loading never runs
        code. A truncated file, a file that is not a handprop model, or one
        whose arrays do not match their recorded shapes and checksums raises
        a ValueError that says which.
        """
        arrays, header = read_archive(path, kind=MODEL_FORMAT, version=MODEL_FORMAT_VERSION,
                                      names=set(PARAM_NAMES))
        try:
            net = cls(header["d"], header["d_h"], header["m"], activation=header["activation"],
                      dtype=header["dtype"], seed=0)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: bad model metadata ({exc})") from None
        for name, shape in net.shapes().items():
            arr = arrays[name]
            if arr.shape != shape or arr.dtype != net.dtype:
                raise ValueError(f"{path}: {name} has shape {arr.shape} and dtype {arr.dtype}; "
                                 f"the metadata says {shape} and {net.dtype}")
        net.params = arrays
        net.meta = header.get("meta", {})
        return net


MODEL_FORMAT = "handprop-model"
MODEL_FORMAT_VERSION = 1


def _loss_and_grads_loop(
    net: MLP, X: np.ndarray, y: np.ndarray, penalty: ElasticNet | None, *,
    mask_h: np.ndarray | None = None, label_smoothing: float = 0.0,
    sample_weight: np.ndarray | None = None,
) -> tuple[float, dict[str, np.ndarray]]:
    """The reference implementation: one example at a time, with vectors.

    Each step is the derivation's single-example formula, written out here on
    its own (it shares no code with :func:`forward` and :func:`backward` but
    the activation functions), so that agreement between the two paths is
    evidence that both are right. Input dropout has already been applied to X
    by the caller; the hidden mask, label smoothing and sample weights are
    applied here, example by example.
    """
    W1, b1, W2, b2 = net.W1, net.b1, net.W2, net.b2
    g = act.ACTIVATIONS[net.activation]
    g_prime = act.DERIVATIVES[net.activation]
    K = X.shape[0]
    # each example's share of the mean, in the dtype of X (a float64 factor
    # would silently turn a float32 loop into a float64 one)
    if sample_weight is None:
        weight = np.full(K, 1.0 / K, dtype=X.dtype)
    else:
        weight = (sample_weight / sample_weight.sum()).astype(X.dtype)
    total = 0.0
    grads = {name: np.zeros_like(p) for name, p in net.params.items()}
    for k in range(K):
        x = X[k]  # (d,)
        h_a = W1 @ x + b1  # (d_h,)
        h_s = g(h_a)  # (d_h,)
        h_d = h_s if mask_h is None else h_s * mask_h[k]  # (d_h,), after dropout
        o_a = W2 @ h_d + b2  # (m,)
        shifted = o_a - o_a.max()
        o_s = np.exp(shifted) / np.exp(shifted).sum()  # (m,)
        target = np.zeros(net.m, dtype=X.dtype)  # (m,): onehot, or smoothed
        target[y[k]] = 1
        target = (1 - label_smoothing) * target + label_smoothing / net.m
        # -sum_j t_j log o_s[j] = log sum exp(shifted) - sum_j t_j shifted[j]
        total += weight[k] * (np.log(np.exp(shifted).sum()) - target @ shifted)
        grad_oa = weight[k] * (o_s - target)  # (m,)
        grads["W2"] += np.outer(grad_oa, h_d)  # (m, d_h)
        grads["b2"] += grad_oa  # (m,)
        grad_hs = W2.T @ grad_oa  # (d_h,)
        if mask_h is not None:
            grad_hs = grad_hs * mask_h[k]
        grad_ha = grad_hs * g_prime(h_a, h_s)  # (d_h,)
        grads["W1"] += np.outer(grad_ha, x)  # (d_h, d)
        grads["b1"] += grad_ha  # (d_h,)
    loss = total
    if penalty is not None:
        for name, W in (("W1", W1), ("W2", W2)):
            l1 = getattr(penalty, f"l1_{name}")
            l2 = getattr(penalty, f"l2_{name}")
            loss += l1 * np.sum(np.abs(W)) + l2 * np.sum(W * W)
            grads[name] = grads[name] + l1 * np.sign(W) + 2 * l2 * W
    return float(loss), grads
