"""A multilayer perceptron in the derivation's notation, of any depth.

Examples are rows: a minibatch of K examples is X, shape (K, d). The seed's
net has one hidden layer of d_h units and m softmax outputs:

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

A net of L hidden layers of sizes d_1, ..., d_L continues the same way,
layer by layer (d_0 = d, d_{L+1} = m, H_s^(0) = X):

    H_a^(l) = H_s^(l-1) Wl^T + bl,   H_s^(l) = g(H_a^(l))      (K, d_l), l = 1..L
    O_a = H_s^(L) W{L+1}^T + b{L+1},  O_s = f(O_a)               (K, m)

with Wl of shape (d_l, d_{l-1}) and bl of shape (d_l,). All hidden layers
share one activation g. The output layer is one of three pairs of output
function f and loss, each the canonical link of its loss, so that the
gradient of the loss at O_a is O_s - T for the (K, m) target T:

==========  =================  ===============================================
output      f                  loss of one example (t its target row)
==========  =================  ===============================================
softmax     softmax, by rows   -log o_s[y]: cross-entropy (T = onehot(y))
logistic    sigmoid, each      -sum_j t_j log o_j + (1 - t_j) log(1 - o_j)
identity    o_s = o_a          (1/2) sum_j (o_j - t_j)^2
exp         exp, each          sum_j t_j log(t_j / o_j) - t_j + o_j: half the
                               Poisson deviance, for counts t_j >= 0
==========  =================  ===============================================

The loss of a minibatch is the mean over its K examples plus the penalty P;
its gradients, with G^(L+1) = (O_s - T) / K, are for l = L+1 down to 1

    dL/dWl = G^(l)^T H_s^(l-1) + dP/dWl       (d_l, d_{l-1})
    dL/dbl = sum of the rows of G^(l)         (d_l,)
    G^(l-1) = (G^(l) Wl) * g'(H_a^(l-1))      (K, d_{l-1}), elementwise, for l >= 2

The number of scalar parameters is n_params = sum_l d_l (d_{l-1} + 1): for
one hidden layer, d_h (d + 1) + m (d_h + 1).
"""

from __future__ import annotations

import copy as _copy
import functools
import os
import re
from typing import NamedTuple

import numpy as np

from . import activations as act
from . import validate
from ._version import __version__
from .backend import namespace
from .errors import InputError, InputTypeError
from .files import read_archive, write_archive
from .penalty import ElasticNet

__all__ = ["MLP", "Cache", "Hidden", "OUTPUTS", "forward", "backward", "data_loss",
           "cross_entropy", "count_errors", "param_names"]

#: The output/loss pairs; see the module docstring.
OUTPUTS = ("softmax", "logistic", "identity", "exp")
#: The outputs that regress (no classes, no error rate).
REGRESSION_OUTPUTS = ("identity", "exp")
_FLOAT_DTYPES = {"float32": np.float32, "float64": np.float64}
_METHODS = ("matrix", "loop")


@functools.lru_cache(maxsize=64)
def param_names(n_layers: int) -> tuple[str, ...]:
    """("W1", "b1", ..., "W{n}", "b{n}") for n weight layers (L + 1 for L hidden)."""
    return tuple(name for l in range(1, n_layers + 1) for name in (f"W{l}", f"b{l}"))


class Hidden(NamedTuple):
    """One hidden layer's arrays in the forward pass, each (K, d_l).

    Attributes
    ----------
    h_a : pre-activations; h_s : outputs g(h_a); h_d : what the next layer
        sees: ``h_s`` itself, or ``h_s * mask`` under dropout
    """

    h_a: np.ndarray
    h_s: np.ndarray
    h_d: np.ndarray


class Cache(NamedTuple):
    """What the forward pass keeps for the backward pass.

    Attributes
    ----------
    layers : one :class:`Hidden` per hidden layer, in order
    o_a : (K, m) output pre-activations
    o_s : (K, m) outputs f(o_a)

    For the seed's one hidden layer, ``h_a``, ``h_s`` and ``h_d`` (each
    (K, d_h)) name that layer's arrays, as in the derivation.
    """

    layers: tuple[Hidden, ...]
    o_a: np.ndarray
    o_s: np.ndarray

    def _only(self) -> Hidden:
        if len(self.layers) != 1:
            raise AttributeError(f"this net has {len(self.layers)} hidden layers: read "
                                 f"cache.layers[l].h_a, .h_s or .h_d for layer l + 1")
        return self.layers[0]

    h_a = property(lambda self: self._only().h_a, doc="(K, d_h), one hidden layer only")
    h_s = property(lambda self: self._only().h_s, doc="(K, d_h), one hidden layer only")
    h_d = property(lambda self: self._only().h_d, doc="(K, d_h), one hidden layer only")


# --------------------------------------------------------------------------
# The functions that hold the math. MLP, the training step, the estimator and
# the gradient checker all call these. They take NumPy arrays, or CuPy arrays
# on a GPU (all of one kind), and compute with the module ``xp`` of their
# input: the same lines run on either (see handprop.backend).
# --------------------------------------------------------------------------


def _identity_out(o_a, out=None):
    return o_a  # o_s is o_a itself: no copy


def _exp_out(o_a, out=None):
    return namespace(o_a).exp(o_a, out=out)


_OUTPUT_FN = {"softmax": act.softmax, "logistic": act.sigmoid, "identity": _identity_out,
              "exp": _exp_out}


def forward(params: dict[str, np.ndarray], X: np.ndarray, activation: str,
            output: str = "softmax", out: Cache | None = None, *,
            masks: tuple | None = None) -> Cache:
    """Forward pass on a minibatch, through every layer.

    Parameters
    ----------
    params : "W1" (d_1, d), "b1" (d_1,), ..., "W{L+1}" (m, d_L), "b{L+1}" (m,)
    X : (K, d), the dtype of the parameters
    activation : canonical activation name (a key of ``ACTIVATIONS``)
    output : "softmax", "logistic", "identity" or "exp"
    out : optional Cache of preallocated arrays of the same shapes to write
        into (see :class:`Workspace`); by default new arrays are allocated
    masks : optional tuple of L dropout masks, one per hidden layer, each
        (K, d_l) or None, already scaled: 0 for a dropped unit, 1 / (1 - rate)
        for a kept one (inverted dropout: evaluation needs no rescaling)

    Returns
    -------
    Cache of the L hidden layers' h_a, h_s, h_d, and o_a (K, m), o_s (K, m)
    """
    xp = namespace(X)
    n_layers = len(params) // 2
    layers = []
    h = X
    for l in range(1, n_layers):
        buf = out.layers[l - 1] if out is not None else Hidden(None, None, None)
        # H W^T: matmul hands the transposed view to BLAS as a flag, no copy.
        h_a = xp.matmul(h, params[f"W{l}"].T, out=buf.h_a)
        h_a += params[f"b{l}"]
        h_s = act.ACTIVATIONS[activation](h_a, out=buf.h_s)
        mask = masks[l - 1] if masks is not None else None
        h_d = h_s if mask is None else xp.multiply(h_s, mask, out=buf.h_d)
        layers.append(Hidden(h_a, h_s, h_d))
        h = h_d
    o_a = xp.matmul(h, params[f"W{n_layers}"].T, out=None if out is None else out.o_a)
    o_a += params[f"b{n_layers}"]
    o_s = _OUTPUT_FN[output](o_a, out=None if out is None else out.o_s)
    return Cache(tuple(layers), o_a, o_s)


def _smoothed_logistic(T, label_smoothing: float):
    """A logistic target pulled towards 1/2: (1 - eps) t + eps / 2."""
    return T * (1 - label_smoothing) + label_smoothing / 2 if label_smoothing else T


def row_losses(output: str, o_a: np.ndarray, T: np.ndarray, *,
               label_smoothing: float = 0.0) -> np.ndarray:
    """The loss of each example, shape (K,), from the output pre-activations.

    Parameters
    ----------
    output : "softmax", "logistic", "identity" or "exp"
    o_a : (K, m)
    T : (K,) integer classes for softmax; (K, m) targets otherwise
    label_smoothing : eps in [0, 1) (softmax and logistic): the softmax
        target is (1 - eps) onehot(y) + eps / m, the logistic one
        (1 - eps) t + eps / 2

    Notes
    -----
    softmax: -log o_s[y] = logsumexp(o_a) - o_a[y] (reference, 2.4). Taking
    the log of an underflowed probability would give inf; this form stays
    finite. With a smoothed target t, -sum_j t_j log o_s[j] is
    logsumexp(o_a) - sum_j t_j o_a[j], as sum_j t_j = 1.

    logistic: -t log sigmoid(a) - (1 - t) log(1 - sigmoid(a)) is
    softplus(a) - t a, as log sigmoid(a) = -softplus(-a) and
    softplus(-a) = softplus(a) - a; softplus is log(1 + e^a) computed as
    logaddexp(0, a), which never overflows.

    identity: (1/2) sum_j (o_a[j] - t_j)^2.

    exp: sum_j exp(a_j) - t_j a_j + (t_j log t_j - t_j), half the Poisson
    deviance of the counts t at the rates exp(a) (0 log 0 = 0); the last
    term does not depend on the parameters, and makes a perfect fit cost 0.
    """
    xp = namespace(o_a)
    if output == "softmax":
        picked = o_a[xp.arange(o_a.shape[0]), T]
        if label_smoothing:
            picked = (1 - label_smoothing) * picked + label_smoothing * o_a.mean(axis=1)
        return act.logsumexp(o_a) - picked
    if output == "logistic":
        t = _smoothed_logistic(T, label_smoothing)
        return (act.softplus(o_a) - t * o_a).sum(axis=1)
    if output == "exp":
        tlogt = xp.where(T > 0, T * xp.log(xp.where(T > 0, T, 1)), 0)
        return (xp.exp(o_a) - T * o_a + tlogt - T).sum(axis=1)
    diff = o_a - T
    return 0.5 * xp.einsum("ij,ij->i", diff, diff)


def data_loss(output: str, o_a: np.ndarray, T: np.ndarray, *, label_smoothing: float = 0.0,
              sample_weight: np.ndarray | None = None) -> float:
    """The mean of :func:`row_losses` over the K rows, or their weighted mean
    with ``sample_weight`` (K,): the minibatch loss without the penalty."""
    losses = row_losses(output, o_a, T, label_smoothing=label_smoothing)
    if sample_weight is None:
        return float(losses.mean())
    return float(namespace(o_a).dot(losses, sample_weight) / sample_weight.sum())


def cross_entropy(o_a: np.ndarray, y: np.ndarray, *, label_smoothing: float = 0.0,
                  sample_weight: np.ndarray | None = None) -> float:
    """Mean over the rows of -log o_s[y] for softmax outputs, from the logits
    o_a (K, m) and the classes y (K,) by log-sum-exp: ``data_loss("softmax", ...)``."""
    return data_loss("softmax", o_a, y, label_smoothing=label_smoothing,
                     sample_weight=sample_weight)


def count_errors(output: str, o_a: np.ndarray, T: np.ndarray) -> int:
    """How many of the K examples are misclassified.

    softmax: argmax of o_a differs from y. logistic: some output is on the
    wrong side of 1/2 (o_a > 0 against t >= 1/2): an example counts as right
    only when all its labels are. identity and exp (regression): 0, as there
    is no error rate.
    """
    xp = namespace(o_a)
    if output == "softmax":
        return int(xp.count_nonzero(o_a.argmax(axis=1) != T))
    if output == "logistic":
        return int(xp.count_nonzero(((o_a > 0) != (T >= 0.5)).any(axis=1)))
    return 0


def _row_weights(K: int, sample_weight: np.ndarray | None, dtype) -> np.ndarray | float:
    """What each example's loss is multiplied by in the minibatch loss: 1/K,
    or w_k / sum(w) with sample weights (a weighted mean)."""
    if sample_weight is None:
        return 1.0 / K
    return (sample_weight / sample_weight.sum()).astype(dtype, copy=False)


def _output_delta(output: str, cache: Cache, T, K: int, work, label_smoothing: float):
    """O_s - T into a (K, m) array (the Workspace's, or a new one)."""
    xp = namespace(cache.o_s)
    if work is None:
        G = cache.o_s.copy()
    else:
        G = work.G_oa[:K]
        xp.copyto(G, cache.o_s)
    # Each output function is the canonical link of its loss: the gradient of
    # the loss at o_a is o_s - t, with no Jacobian of f to multiply by. For
    # softmax, the log-sum-exp's gradient is o_s and -o_a[y]'s is -onehot(y);
    # for logistic, softplus(a) - t a has gradient sigmoid(a) - t; for
    # identity, (1/2)(a - t)^2 has gradient a - t; for exp, e^a - t a has
    # gradient e^a - t.
    if output == "softmax":
        rows = xp.arange(K)
        if label_smoothing:
            G -= label_smoothing / G.shape[1]
            G[rows, T] -= 1 - label_smoothing
        else:
            G[rows, T] -= 1
    else:
        G -= _smoothed_logistic(T, label_smoothing) if output == "logistic" else T
    return G


def backward(
    params: dict[str, np.ndarray],
    cache: Cache,
    X: np.ndarray,
    T: np.ndarray,
    activation: str,
    output: str = "softmax",
    penalty: ElasticNet | None = None,
    *,
    scale: float = 1.0,
    work: Workspace | None = None,
    masks: tuple | None = None,
    label_smoothing: float = 0.0,
    sample_weight: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Gradients of the minibatch loss (mean loss + penalty), through every layer.

    Parameters
    ----------
    params : "W1" (d_1, d), "b1" (d_1,), ..., "W{L+1}" (m, d_L), "b{L+1}" (m,)
    cache : the :class:`Cache` that :func:`forward` returned for ``X``
    X : (K, d), what the first layer saw (after input dropout)
    T : (K,) integer classes for softmax; (K, m) targets otherwise
    activation : canonical activation name
    output : "softmax", "logistic", "identity" or "exp"
    penalty : ElasticNet or None
    scale : the gradients returned are ``scale`` times the true ones.
        Multiplying the (K, m) output delta costs nothing, where multiplying
        each (d_l, d_{l-1}) gradient afterwards would cost a pass over it;
        the training step (:mod:`handprop.step`) uses it to fold in the
        learning rate.
    work : optional :class:`Workspace` whose arrays receive the results
    masks : the hidden dropout masks given to :func:`forward`, or None
    label_smoothing, sample_weight : as in :func:`data_loss`

    Returns
    -------
    dict with "W1" (d_1, d), "b1" (d_1,), ..., "W{L+1}" (m, d_L),
    "b{L+1}" (m,); the arrays of ``work.grads`` when ``work`` is given
    """
    xp = namespace(X)
    K = X.shape[0]
    G = _output_delta(output, cache, T, K, work, label_smoothing)
    weights = _row_weights(K, sample_weight, G.dtype)
    if sample_weight is None:
        G *= scale * weights
    else:
        G *= (scale * weights)[:, None]
    grads = work.grads if work is not None else {}
    n_layers = len(cache.layers) + 1
    for l in range(n_layers, 0, -1):
        below = X if l == 1 else cache.layers[l - 2].h_d  # what layer l saw
        grads[f"W{l}"] = xp.matmul(G.T, below, out=grads.get(f"W{l}"))
        grads[f"b{l}"] = xp.sum(G, axis=0, out=grads.get(f"b{l}"))
        if l == 1:
            break
        # G^(l-1) = (G^(l) Wl) * mask * g'(H_a^(l-1)), all in one array
        layer = cache.layers[l - 2]
        G = xp.matmul(G, params[f"W{l}"], out=None if work is None else work.G_h[l - 2][:K])
        if masks is not None and masks[l - 2] is not None:
            G *= masks[l - 2]
        act.backprop_inplace(activation, layer.h_a, layer.h_s, G)
    if penalty is not None and not penalty.is_zero:
        for l in range(1, n_layers + 1):
            name = f"W{l}"
            penalty.add_grad(name, params[name], grads[name], scale=scale,
                             scratch=None if work is None else work.scratch[name])
    return grads


class Workspace:
    """The arrays one minibatch needs, allocated once and reused.

    Parameters
    ----------
    sizes : (d, d_1, ..., d_L, m), the net's layer sizes
    K : the largest minibatch; smaller ones use leading slices
    dtype : the net's dtype
    output : the net's output; it decides the targets' buffer
    xp : the array module that allocates them: NumPy, or CuPy for a GPU

    Attributes
    ----------
    X : (K, d) the gathered minibatch; y : its targets, (K,) int64 classes
        for softmax, else (K, m)
    layers : per hidden layer l, h_a, h_s, h_d (K, d_l); G_h : the deltas (K, d_l)
    o_a, o_s, G_oa : (K, m)
    grads : each parameter's shape
    scratch : each weight matrix's shape, for the penalty's gradient
    """

    def __init__(self, sizes, K: int, dtype, output: str = "softmax", xp=np) -> None:
        e = xp.empty
        d, *hidden, m = sizes
        self.X = e((K, d), dtype)
        self.y = e(K, np.int64) if output == "softmax" else e((K, m), dtype)
        self.layers = [Hidden(e((K, n), dtype), e((K, n), dtype), e((K, n), dtype))
                       for n in hidden]
        self.G_h = [e((K, n), dtype) for n in hidden]
        self.o_a, self.o_s, self.G_oa = e((K, m), dtype), e((K, m), dtype), e((K, m), dtype)
        shapes = _shapes(sizes)
        self.grads = {k: e(v, dtype) for k, v in shapes.items()}
        self._weight_shapes = {k: v for k, v in shapes.items() if k.startswith("W")}
        self._scratch: dict[str, np.ndarray] | None = None
        self._caches: dict[int, Cache] = {}
        self._dtype = dtype
        self._xp = xp

    @property
    def scratch(self) -> dict[str, np.ndarray]:
        if self._scratch is None:  # only a penalized fit needs it
            self._scratch = {k: self._xp.empty(v, self._dtype)
                             for k, v in self._weight_shapes.items()}
        return self._scratch

    def cache(self, k: int) -> Cache:
        """Views of the forward buffers for a minibatch of k <= K examples."""
        cache = self._caches.get(k)
        if cache is None:
            cache = self._caches[k] = Cache(
                tuple(Hidden(h.h_a[:k], h.h_s[:k], h.h_d[:k]) for h in self.layers),
                self.o_a[:k], self.o_s[:k])
        return cache


def _shapes(sizes) -> dict[str, tuple[int, ...]]:
    """Each parameter's shape for layer sizes (d, d_1, ..., d_L, m)."""
    out = {}
    for l in range(1, len(sizes)):
        out[f"W{l}"] = (sizes[l], sizes[l - 1])
        out[f"b{l}"] = (sizes[l],)
    return out


# --------------------------------------------------------------------------
# Input checks. They run before anything is computed, so a call that fails
# leaves the network as it was.
# --------------------------------------------------------------------------


def _check_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise InputTypeError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if dt.name not in _FLOAT_DTYPES:
        raise InputError(f"dtype must be float32 or float64, got {dt.name}")
    return dt


def _check_positive_int(name: str, value, minimum: int = 1) -> int:
    return validate.number(name, value, low=minimum, integer=True)


def _real_array(name: str, value, dtype=None) -> np.ndarray:
    """``value`` as an array of real numbers (bools count), or a TypeError."""
    if isinstance(value, (str, bytes)):
        raise InputTypeError(f"{name} must be an array of numbers, got a string")
    arr = np.asarray(value)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
    ) or np.iscomplexobj(arr):
        raise InputTypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr if dtype is None else arr.astype(dtype, copy=False)


def _all_finite(arr: np.ndarray) -> bool:
    # A NaN or inf anywhere makes the sum non-finite, so one fast reduction
    # clears the common case; only a non-finite sum (which finite values can
    # also give, by overflow) needs the elementwise test.
    with np.errstate(over="ignore", invalid="ignore"):
        total = arr.sum()
    return bool(np.isfinite(total) or np.all(np.isfinite(arr)))


_PARAM = re.compile(r"[Wb][1-9][0-9]*")


class MLP:
    """L hidden layers with one activation g, and m outputs of one of three kinds.

    Parameters
    ----------
    d : int >= 1
        Number of inputs.
    d_h : int >= 1, or a sequence of them
        The size of the hidden layer, or of each hidden layer in order:
        ``MLP(784, 512, 10)`` is the seed's net, ``MLP(784, (512, 256), 10)``
        has two hidden layers.
    m : int
        Number of outputs: classes for softmax (>= 2), independent labels
        for logistic (1 for a two-class problem), targets for identity and
        exp.
    activation : str
        The hidden layers' activation: ``relu`` (alias ``rect``), ``sigmoid``
        (alias ``logistic``), ``tanh``, ``softplus``, ``abs``, ``sign``,
        ``identity``.
    output : "softmax" (default), "logistic", "identity" or "exp"
        The output/loss pair: softmax with cross-entropy (classes),
        logistic with binary cross-entropy (two classes on one unit, or
        multilabel), identity with half squared error (regression), exp with
        half the Poisson deviance (counts).
    dtype : "float64" or "float32"
    seed : int, numpy.random.Generator or None
        Seeds the initialization.

    Attributes
    ----------
    hidden : tuple of the hidden layers' sizes (d_1, ..., d_L)
    L : the number of hidden layers
    W1 : (d_1, d), b1 : (d_1,), ..., W{L+1} : (m, d_L), b{L+1} : (m,)
    d_h : the hidden size for one hidden layer (an int), else ``hidden``

    Notes
    -----
    Weights are drawn uniformly in [-a, a], layer after layer from one
    generator: a = sqrt(6 / fan_in) for a hidden layer under rect (He: keeps
    the variance of h_a steady although rect zeroes half of it), and
    a = sqrt(6 / (fan_in + fan_out)) otherwise (Glorot) and for the output
    layer. Biases start at zero. The draws are made in float64 and then cast,
    so a float32 and a float64 net with the same seed agree.

    Examples
    --------
    >>> net = MLP(2, 3, 2, seed=0)
    >>> net.n_params
    17
    >>> float(net.predict_proba(np.array([[0.5, -1.0]])).sum())
    1.0
    >>> deep = MLP(4, (8, 6), 3, seed=0)
    >>> deep.param_names, deep.W2.shape, deep.n_params
    (('W1', 'b1', 'W2', 'b2', 'W3', 'b3'), (6, 8), 115)
    """

    def __init__(
        self,
        d: int,
        d_h: int | tuple[int, ...],
        m: int,
        *,
        activation: str = "relu",
        output: str = "softmax",
        dtype: str = "float64",
        seed: int | np.random.Generator | None = None,
    ) -> None:
        self._setup(d, d_h, m, activation, output, dtype)
        if seed is not None and not isinstance(seed, np.random.Generator):
            seed = validate.number("seed", seed, low=0, integer=True)
        rng = np.random.default_rng(seed)
        params = {}
        for l in range(1, self.L + 2):
            n_out, n_in = self.sizes[l], self.sizes[l - 1]
            he = self.activation == "relu" and l <= self.L
            a = np.sqrt(6.0 / (n_in if he else n_in + n_out))
            params[f"W{l}"] = rng.uniform(-a, a, size=(n_out, n_in)).astype(self.dtype)
            params[f"b{l}"] = np.zeros(n_out, dtype=self.dtype)
        object.__setattr__(self, "_params", {k: params[k] for k in self.param_names})
        #: What a model file carries besides the arrays (history, settings).
        self.meta: dict = {}

    def _setup(self, d, d_h, m, activation, output, dtype) -> None:
        """Check and set the architecture (everything but the parameters)."""
        self.d = _check_positive_int("d", d)
        self.hidden = validate.hidden_sizes(d_h)
        self.output = validate.choice("output", output, OUTPUTS)
        self.m = _check_positive_int("m", m, minimum=2 if self.output == "softmax" else 1)
        self.activation = act.resolve(activation)
        self.dtype = _check_dtype(dtype)

    # -- architecture -------------------------------------------------------

    @property
    def L(self) -> int:
        """The number of hidden layers."""
        return len(self.hidden)

    @property
    def d_h(self) -> int | tuple[int, ...]:
        """The hidden layer's size (an int) for one hidden layer, else the
        tuple of sizes."""
        return self.hidden[0] if self.L == 1 else self.hidden

    @property
    def sizes(self) -> tuple[int, ...]:
        """(d, d_1, ..., d_L, m)."""
        return (self.d, *self.hidden, self.m)

    @property
    def param_names(self) -> tuple[str, ...]:
        """("W1", "b1", ..., "W{L+1}", "b{L+1}")."""
        return param_names(self.L + 1)

    def spec(self) -> dict:
        """The architecture as plain JSON: sizes, activation, output, dtype."""
        return {"d": self.d, "hidden": list(self.hidden), "m": self.m,
                "activation": self.activation, "output": self.output,
                "dtype": self.dtype.name}

    # -- parameters ---------------------------------------------------------

    def __getattr__(self, name: str):
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"'MLP' object has no attribute {name!r}")

    def __setattr__(self, name: str, value) -> None:
        if _PARAM.fullmatch(name) and name in self.__dict__.get("_params", {}):
            self.params = {**self.params, name: value}
        else:
            object.__setattr__(self, name, value)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of each parameter by name."""
        return _shapes(self.sizes)

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The parameter arrays by name (the arrays themselves, not copies).

        Assigning a dict copies its values into these arrays, after checking
        every name, shape and value: a failed assignment changes nothing, and
        any outside reference to ``net.W1`` stays valid.
        """
        return dict(self._params)

    @params.setter
    def params(self, new: dict[str, np.ndarray]) -> None:
        if not isinstance(new, dict):
            raise InputTypeError(f"params must be a dict of arrays, got {type(new).__name__}")
        names = self.param_names
        missing = [k for k in names if k not in new]
        extra = [k for k in new if k not in names]
        if missing or extra:
            raise InputError(
                f"params must have exactly the keys {', '.join(names)}; "
                f"missing {missing or 'none'}, unexpected {extra or 'none'}"
            )
        checked = {}
        for name, shape in self.shapes().items():
            arr = _real_array(f"params[{name!r}]", new[name])
            if arr.shape != shape:
                raise InputError(f"params[{name!r}] must have shape {shape}, got {arr.shape}")
            if not _all_finite(arr):
                raise InputError(f"params[{name!r}] holds NaN or inf")
            checked[name] = np.array(arr, dtype=self.dtype, copy=True)
        for name, arr in checked.items():
            self._params[name][...] = arr

    @property
    def n_params(self) -> int:
        """sum_l d_l (d_{l-1} + 1): the weights plus one bias per unit."""
        sizes = self.sizes
        return sum(sizes[l] * (sizes[l - 1] + 1) for l in range(1, len(sizes)))

    def copy(self) -> MLP:
        """A deep copy: changing it leaves this net alone."""
        return _copy.deepcopy(self)

    def astype(self, dtype) -> MLP:
        """A copy whose parameters are cast to ``dtype`` (float32 or float64)."""
        dt = _check_dtype(dtype)
        new = self.copy()
        new.dtype = dt
        object.__setattr__(new, "_params", {k: p.astype(dt) for k, p in self._params.items()})
        return new

    def __repr__(self) -> str:
        d_h = self.d_h if self.L == 1 else self.hidden
        out = "" if self.output == "softmax" else f", output={self.output!r}"
        return (f"MLP(d={self.d}, d_h={d_h}, m={self.m}, activation={self.activation!r}"
                f"{out}, dtype={self.dtype.name!r})")

    # -- input checks -------------------------------------------------------

    def check_X(self, X) -> np.ndarray:
        """X as a (K, d) array of this net's dtype, or a ValueError/TypeError."""
        arr = _real_array("X", X)
        if arr.ndim != 2:
            raise InputError(
                f"X must be 2-D with shape (K, {self.d}), one example per row; "
                f"got {arr.ndim}-D array of shape {arr.shape}"
            )
        if arr.shape[0] == 0:
            raise InputError(f"X is an empty batch: expected shape (K, {self.d}) with K >= 1")
        if arr.shape[1] != self.d:
            raise InputError(
                f"X has {arr.shape[1]} features per example; this net expects d = {self.d}"
            )
        if not _all_finite(arr):
            raise InputError("X contains NaN or inf; every input must be finite")
        if self.dtype == np.float32 and arr.dtype.itemsize > 4 and arr.size:
            top = float(np.abs(arr).max())
            if top > float(np.finfo(np.float32).max):
                raise InputError(f"X holds values up to {top:.3g}, beyond float32's range "
                                 f"(3.4e38): scale the data, or use a float64 net")
        return np.asarray(arr, dtype=self.dtype)

    def check_y(self, y, K: int) -> np.ndarray:
        """The targets of K examples, checked for this net's output.

        Returns
        -------
        softmax : (K,) int64 classes in [0, m)
        logistic : (K, m) targets in [0, 1], in the net's dtype; y may be
            (K,) when m = 1
        identity : (K, m) finite targets, in the net's dtype; y may be (K,)
            when m = 1
        exp : the same, each >= 0

        Raises a ValueError/TypeError that says what was expected.
        """
        if self.output == "softmax":
            return self._check_classes(y, K)
        arr = _real_array("y", y)
        if arr.ndim == 1 and self.m == 1:
            arr = arr[:, None]
        expected = f"({K}, {self.m})" + (f" or ({K},)" if self.m == 1 else "")
        if arr.ndim != 2 or arr.shape[1] != self.m:
            raise InputError(f"y must have shape {expected} for {self.m} {self.output} "
                             f"outputs, got shape {np.shape(y)}")
        if arr.shape[0] != K:
            raise InputError(f"len(y) = {arr.shape[0]} but X has {K} examples; they must match")
        arr = np.asarray(arr, dtype=self.dtype)
        if not _all_finite(arr):
            raise InputError("y contains NaN or inf; every target must be finite")
        if self.output == "logistic" and arr.size and (arr.min() < 0 or arr.max() > 1):
            raise InputError(f"y must hold targets in [0, 1] (0/1 labels) for logistic "
                             f"outputs; got values from {arr.min():g} to {arr.max():g}")
        if self.output == "exp" and arr.size and arr.min() < 0:
            raise InputError(f"y must hold counts >= 0 for exp (Poisson) outputs; got "
                             f"{arr.min():g}")
        return arr

    def _check_classes(self, y, K: int) -> np.ndarray:
        arr = np.asarray(y)
        if arr.ndim != 1:
            raise InputError(f"y must be 1-D with shape ({K},), got shape {arr.shape}")
        if arr.shape[0] != K:
            raise InputError(f"len(y) = {arr.shape[0]} but X has {K} examples; they must match")
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
            raise InputTypeError(f"y must hold integer classes in [0, {self.m}), got dtype "
                                 f"{arr.dtype}")
        if not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                raise InputError(f"y must hold integer classes in [0, {self.m}); got non-integers")
        out = arr.astype(np.int64)
        if out.size and (out.min() < 0 or out.max() >= self.m):
            raise InputError(
                f"y must hold classes in [0, {self.m}); got values from {out.min()} to {out.max()}"
            )
        return out

    def check_penalty(self, penalty) -> ElasticNet | None:
        """``penalty`` if it is None or an ElasticNet for this net's weight
        matrices; a TypeError/ValueError otherwise."""
        if penalty is None:
            return None
        if not isinstance(penalty, ElasticNet):
            raise InputTypeError(f"penalty must be an ElasticNet or None, got "
                            f"{type(penalty).__name__}")
        return penalty.check_depth(self.L + 1)

    def check_masks(self, mask_h, K: int) -> tuple | None:
        """The hidden dropout masks as a tuple of L arrays (K, d_l) (or None
        entries): ``mask_h`` is one array for one hidden layer, or a sequence
        of L arrays (or None) for L layers."""
        if mask_h is None:
            return None
        masks = (mask_h,) if (self.L == 1 and not isinstance(mask_h, (list, tuple))) else mask_h
        if not isinstance(masks, (list, tuple)) or len(masks) != self.L:
            raise InputError(f"mask_h must be a sequence of {self.L} masks, one per hidden "
                             f"layer, got {type(mask_h).__name__}")
        out = []
        for l, mask in enumerate(masks, start=1):
            out.append(None if mask is None else self._check_mask(
                "mask_h" if self.L == 1 else f"mask_h[{l - 1}]", mask, (K, self.hidden[l - 1])))
        return tuple(out)

    def _check_mask(self, name: str, mask, shape) -> np.ndarray:
        arr = _real_array(name, mask, self.dtype)
        if arr.shape != shape:
            raise InputError(f"{name} must have shape {shape}, got {arr.shape}")
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise InputError(f"{name} must hold finite values >= 0")
        return arr

    def check_options(self, K: int, *, mask_in=None, mask_h=None, label_smoothing=0.0,
                      sample_weight=None) -> dict:
        """The loss options as checked arrays and numbers, or a ValueError.

        Parameters
        ----------
        K : the minibatch size
        mask_in : (K, d) input dropout mask (0 or 1 / (1 - rate)), or None
        mask_h : the hidden dropout masks (see :meth:`check_masks`), or None
        label_smoothing : float in [0, 1); softmax and logistic outputs only
        sample_weight : (K,) weights >= 0 with a positive sum, or None

        Returns
        -------
        dict of mask_in, masks (tuple or None), label_smoothing, sample_weight
        """
        out = {"mask_in": None if mask_in is None else
               self._check_mask("mask_in", mask_in, (K, self.d)),
               "masks": self.check_masks(mask_h, K)}
        out["label_smoothing"] = validate.rate("label_smoothing", label_smoothing)
        if out["label_smoothing"] and self.output in REGRESSION_OUTPUTS:
            raise InputError(f"label_smoothing applies to class targets (softmax and logistic "
                             f"outputs), not to {self.output} outputs")
        if sample_weight is None:
            out["sample_weight"] = None
        else:
            w = _real_array("sample_weight", sample_weight, np.float64)
            if w.shape != (K,):
                raise InputError(f"sample_weight must have shape ({K},), got {w.shape}")
            if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise InputError("sample_weight must hold finite weights >= 0 with a "
                                 "positive sum")
            out["sample_weight"] = w.astype(self.dtype)
        return out

    # -- the math -----------------------------------------------------------

    def fprop(self, X, *, mask_h=None) -> Cache:
        """Forward pass on a minibatch X, shape (K, d).

        ``mask_h`` is an optional hidden dropout mask (see :meth:`check_masks`).

        Returns
        -------
        Cache of each hidden layer's h_a, h_s, h_d (K, d_l), o_a (K, m), o_s (K, m)
        """
        X = self.check_X(X)
        masks = self.check_masks(mask_h, X.shape[0])
        return forward(self._params, X, self.activation, self.output, masks=masks)

    def bprop(self, cache: Cache, X, y, penalty: ElasticNet | None = None, *, mask_h=None,
              label_smoothing: float = 0.0, sample_weight=None) -> dict[str, np.ndarray]:
        """Gradients of the minibatch loss, given the cache from :meth:`fprop`.

        Parameters
        ----------
        cache : Cache from ``fprop(X, mask_h=mask_h)``
        X : (K, d)
        y : the targets (see :meth:`check_y`)
        penalty : ElasticNet or None
        mask_h, label_smoothing, sample_weight : see :meth:`loss_and_grads`

        Returns
        -------
        dict of each parameter's gradient, the shape of the parameter
        """
        X = self.check_X(X)
        y = self.check_y(y, X.shape[0])
        penalty = self.check_penalty(penalty)
        opts = self.check_options(X.shape[0], mask_h=mask_h, label_smoothing=label_smoothing,
                                  sample_weight=sample_weight)
        opts.pop("mask_in")
        if (not isinstance(cache, Cache) or len(cache.layers) != self.L
                or cache.o_a.shape != (X.shape[0], self.m)):
            raise InputError("cache must be the Cache that fprop returned for this X")
        return backward(self._params, cache, X, y, self.activation, self.output, penalty,
                        **opts)

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
        """The minibatch loss: the mean loss over the K examples of X (K, d)
        plus the penalty. ``options`` are those of :meth:`loss_and_grads`."""
        X, y, penalty, opts = self._inputs(X, y, penalty, options)
        o_a = forward(self._params, X, self.activation, self.output, masks=opts["masks"]).o_a
        value = data_loss(self.output, o_a, y, label_smoothing=opts["label_smoothing"],
                          sample_weight=opts["sample_weight"])
        return value + (penalty.value(self._params) if penalty is not None else 0.0)

    def loss_and_grads(
        self, X, y, penalty: ElasticNet | None = None, method: str = "matrix", *,
        mask_in=None, mask_h=None, label_smoothing: float = 0.0, sample_weight=None,
    ) -> tuple[float, dict[str, np.ndarray]]:
        """The minibatch loss and its gradient with respect to each parameter.

        Parameters
        ----------
        X : (K, d)
        y : (K,) integer classes in [0, m) for softmax outputs; (K,) 0/1 (one
            unit) or a (K, m) 0/1 matrix for logistic; a (K, m) float matrix
            for identity (see :meth:`check_y`)
        penalty : ElasticNet or None
        method : "matrix" (the fast path) or "loop" (the reference: one
            example at a time, as in the derivation, then averaged)
        mask_in : optional (K, d) input dropout mask, already scaled (0 or
            1 / (1 - rate)); the net sees X * mask_in
        mask_h : optional hidden dropout masks, already scaled: one (K, d_h)
            array for one hidden layer, or a sequence of L arrays (K, d_l)
        label_smoothing : eps in [0, 1): the softmax target is
            (1 - eps) onehot + eps / m, the logistic one (1 - eps) t + eps / 2
        sample_weight : optional (K,) weights; the loss is then the weighted mean

        Returns
        -------
        loss : float, the mean loss plus the penalty
        grads : dict of each parameter's gradient, the shape of the parameter
        """
        if method not in _METHODS:
            raise InputError(f"method must be 'matrix' or 'loop', got {method!r}")
        X, y, penalty, opts = self._inputs(X, y, penalty, dict(
            mask_in=mask_in, mask_h=mask_h, label_smoothing=label_smoothing,
            sample_weight=sample_weight))
        if method == "loop":
            return _loss_and_grads_loop(self, X, y, penalty, **opts)
        cache = forward(self._params, X, self.activation, self.output, masks=opts["masks"])
        value = data_loss(self.output, cache.o_a, y, label_smoothing=opts["label_smoothing"],
                          sample_weight=opts["sample_weight"])
        if penalty is not None:
            value += penalty.value(self._params)
        return value, backward(self._params, cache, X, y, self.activation, self.output,
                               penalty, **opts)

    def predict_proba(self, X) -> np.ndarray:
        """o_s, shape (n, m), for X of shape (n, d): class probabilities for
        softmax, each label's probability for logistic. Identity outputs
        have none (a ValueError): use :meth:`predict`."""
        if self.output in REGRESSION_OUTPUTS:
            raise InputError(f"an {self.output}-output (regression) net has no "
                             f"probabilities; predict gives its outputs")
        return forward(self._params, self.check_X(X), self.activation, self.output).o_s

    def predict(self, X) -> np.ndarray:
        """Predictions for the rows of X (n, d).

        softmax: the most probable class, (n,) int64. logistic: 0/1 for each
        unit with o_s > 1/2, (n,) int64 for one unit, else (n, m). identity
        and exp: the outputs o_s, (n, m) in the net's dtype.
        """
        cache = forward(self._params, self.check_X(X), self.activation, self.output)
        if self.output == "softmax":
            return cache.o_a.argmax(axis=1).astype(np.int64)
        if self.output == "logistic":
            labels = (cache.o_a > 0).astype(np.int64)
            return labels[:, 0] if self.m == 1 else labels
        return cache.o_s

    # -- model files --------------------------------------------------------

    def save(self, path: str | os.PathLike, **meta) -> None:
        """Write the net to ``path`` as ``.npz``, atomically.

        The archive holds every parameter array and one more, ``metadata``: a
        JSON text with the layer sizes, activation, output, dtype, handprop's
        version, the sha256 of each array, and ``self.meta`` updated with
        ``meta`` (for instance ``history=...``, ``settings=...``; values must
        be JSON).
        """
        header = {"handprop_version": __version__, **self.spec(),
                  "meta": {**self.meta, **meta}}
        write_archive(path, self._params, header, kind=MODEL_FORMAT,
                      version=MODEL_FORMAT_VERSION)

    @classmethod
    def load(cls, path: str | os.PathLike) -> MLP:
        """Read a net written by :meth:`save`, by this version or an earlier one.

        The file is opened with ``allow_pickle=False``, so loading never runs
        code. A truncated file, a file that is not a handprop model (or not a
        regular file), or one whose arrays do not match their recorded shapes
        and checksums raises an InputError (a ValueError) that says which. The
        sizes the metadata declares are checked against each stored array's
        header and size before anything is allocated.
        """
        net = cls.__new__(cls)

        def expect(header: dict):
            """The arrays the metadata declares, checked before any is read."""
            try:
                if header["format_version"] == 1:  # one hidden layer, softmax outputs
                    hidden, output = header["d_h"], "softmax"
                else:
                    hidden, output = header["hidden"], header["output"]
                net._setup(header["d"], hidden, header["m"], header["activation"], output,
                           header["dtype"])
                if not isinstance(header.get("meta", {}), dict):
                    raise InputTypeError(f"meta must be a JSON object, got "
                                         f"{type(header['meta']).__name__}")
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{path}: bad model metadata ({exc})") from None
            return {name: (shape, net.dtype) for name, shape in net.shapes().items()}, {}

        arrays, header = read_archive(path, kind=MODEL_FORMAT,
                                      version=(1, MODEL_FORMAT_VERSION), expect=expect)
        for name, arr in arrays.items():
            if not _all_finite(arr):
                raise InputError(f"{path}: {name} holds NaN or inf")
        meta = header.get("meta", {})
        object.__setattr__(net, "_params", {k: np.array(arrays[k]) for k in net.param_names})
        net.meta = meta
        return net


MODEL_FORMAT = "handprop-model"
#: 1: one hidden layer, softmax (handprop 0.1); 2: any depth and output.
MODEL_FORMAT_VERSION = 2


def _loss_and_grads_loop(
    net: MLP, X: np.ndarray, T: np.ndarray, penalty: ElasticNet | None, *,
    masks: tuple | None = None, label_smoothing: float = 0.0,
    sample_weight: np.ndarray | None = None,
) -> tuple[float, dict[str, np.ndarray]]:
    """The reference implementation: one example at a time, with vectors.

    Each step is the derivation's single-example formula, written out here on
    its own (it shares no code with :func:`forward` and :func:`backward` but
    the activation functions), so that agreement between the two paths is
    evidence that both are right. Input dropout has already been applied to X
    by the caller; the hidden masks, label smoothing and sample weights are
    applied here, example by example.
    """
    n_layers = net.L + 1
    W = {l: net._params[f"W{l}"] for l in range(1, n_layers + 1)}
    b = {l: net._params[f"b{l}"] for l in range(1, n_layers + 1)}
    g = act.ACTIVATIONS[net.activation]
    g_prime = act.DERIVATIVES[net.activation]
    K, m, eps = X.shape[0], net.m, label_smoothing
    # each example's share of the mean, in the dtype of X (a float64 factor
    # would silently turn a float32 loop into a float64 one)
    if sample_weight is None:
        weight = np.full(K, 1.0 / K, dtype=X.dtype)
    else:
        weight = (sample_weight / sample_weight.sum()).astype(X.dtype)
    total = 0.0
    grads = {name: np.zeros_like(p) for name, p in net._params.items()}
    for k in range(K):
        # forward: h_s^(0) = x; h_a^(l) = W_l h^(l-1) + b_l, h_s^(l) = g(h_a^(l))
        seen = [X[k]]  # (d,), then what each layer passes on, (d_l,)
        h_as, h_ss = [None], [None]
        for l in range(1, n_layers):
            h_a = W[l] @ seen[-1] + b[l]  # (d_l,)
            h_s = g(h_a)  # (d_l,)
            mask = None if masks is None else masks[l - 1]
            h_as.append(h_a)
            h_ss.append(h_s)
            seen.append(h_s if mask is None else h_s * mask[k])
        o_a = W[n_layers] @ seen[-1] + b[n_layers]  # (m,)
        if net.output == "softmax":
            shifted = o_a - o_a.max()
            o_s = np.exp(shifted) / np.exp(shifted).sum()  # (m,)
            target = np.zeros(m, dtype=X.dtype)  # (m,): onehot, or smoothed
            target[T[k]] = 1
            target = (1 - eps) * target + eps / m
            # -sum_j t_j log o_s[j] = log sum exp(shifted) - sum_j t_j shifted[j]
            loss = np.log(np.exp(shifted).sum()) - target @ shifted
        elif net.output == "logistic":
            target = (1 - eps) * T[k] + eps / 2  # (m,)
            e = np.exp(-np.abs(o_a))  # <= 1: never overflows
            o_s = np.where(o_a >= 0, 1 / (1 + e), e / (1 + e))  # sigmoid, (m,)
            # -t log o - (1 - t) log(1 - o) = max(a, 0) + log(1 + e^-|a|) - t a
            loss = np.sum(np.maximum(o_a, 0) + np.log1p(e) - target * o_a)
        elif net.output == "identity":
            target = T[k]  # (m,)
            o_s = o_a
            loss = 0.5 * np.sum((o_a - target) ** 2)
        else:  # exp: Poisson rates exp(o_a) for the counts T[k]
            target = T[k]  # (m,)
            o_s = np.exp(o_a)
            t_log_t = np.array([t * np.log(t) if t > 0 else 0.0 for t in target], X.dtype)
            loss = np.sum(o_s - target * o_a + t_log_t - target)
        total += weight[k] * loss
        # backward: grad o_a = o_s - t, then layer by layer
        grad = weight[k] * (o_s - target)  # (d_l,) for the layer at hand
        for l in range(n_layers, 0, -1):
            grads[f"W{l}"] += np.outer(grad, seen[l - 1])  # (d_l, d_{l-1})
            grads[f"b{l}"] += grad  # (d_l,)
            if l > 1:
                grad_hs = W[l].T @ grad  # (d_{l-1},)
                mask = None if masks is None else masks[l - 2]
                if mask is not None:
                    grad_hs = grad_hs * mask[k]
                grad = grad_hs * g_prime(h_as[l - 1], h_ss[l - 1])  # (d_{l-1},)
    loss = total
    if penalty is not None:
        for l in range(1, n_layers + 1):
            l1, l2 = penalty.lambdas(f"W{l}")
            loss += l1 * np.sum(np.abs(W[l])) + l2 * np.sum(W[l] * W[l])
            grads[f"W{l}"] = grads[f"W{l}"] + l1 * np.sign(W[l]) + 2 * l2 * W[l]
    return float(loss), grads
