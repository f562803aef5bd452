"""A multilayer perceptron in the derivation's notation, of any depth: the
forward pass, the backward pass, and the one place where they are wired to
the loss.

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
share one activation g (:mod:`handprop.core.activations`). The output layer
is one of the output/loss pairs of :mod:`handprop.core.outputs` (softmax +
cross-entropy, logistic + binary cross-entropy, identity + half squared
error, exp + half Poisson deviance), each the canonical link of its loss, so
that the gradient of the loss at O_a is O_s - T for the (K, m) target T.

The loss of a minibatch is the mean over its K examples plus the penalty P;
its gradients, with G^(L+1) = (O_s - T) / K, are for l = L+1 down to 1

    dL/dWl = G^(l)^T H_s^(l-1) + dP/dWl       (d_l, d_{l-1})
    dL/dbl = sum of the rows of G^(l)         (d_l,)
    G^(l-1) = (G^(l) Wl) * g'(H_a^(l-1))      (K, d_{l-1}), elementwise, for l >= 2

The number of scalar parameters is n_params = sum_l d_l (d_{l-1} + 1): for
one hidden layer, d_h (d + 1) + m (d_h + 1).

What is not the math lives beside it: the input checks in
:mod:`~handprop.core.checks`, the reused buffers in
:mod:`~handprop.core.workspace`, model files in
:mod:`~handprop.core.modelfile`, and the per-example reference loop that
checks all of this in :mod:`~handprop.core.reference`.
"""

from __future__ import annotations

import copy as _copy
import math
import os
import re
from typing import NamedTuple

import numpy as np

from .. import validate
from ..backend import namespace
from ..errors import InputError
from . import activations as act
from . import checks, modelfile
from .outputs import OUTPUTS, Output, output_pair
from .penalty import ElasticNet
from .shapes import Cache, Hidden, layer_shapes, param_names
from .workspace import Workspace

__all__ = ["MLP", "Cache", "Hidden", "OUTPUTS", "Pass", "Workspace", "forward", "backward",
           "loss_and_gradients", "data_loss", "cross_entropy", "param_names"]

_METHODS = ("matrix", "loop")


# --------------------------------------------------------------------------
# The functions that hold the math. MLP, the training step, the estimator and
# the gradient checker all call these. They take NumPy arrays, or CuPy arrays
# on a GPU (all of one kind), and compute with the module ``xp`` of their
# input: the same lines run on either (see handprop.backend).
# --------------------------------------------------------------------------


def forward(params: dict[str, np.ndarray], X: np.ndarray, activation: str,
            output: str | Output = "softmax", out: Cache | None = None, *,
            masks: tuple | None = None) -> Cache:
    """Forward pass on a minibatch, through every layer.

    Parameters
    ----------
    params : "W1" (d_1, d), "b1" (d_1,), ..., "W{L+1}" (m, d_L), "b{L+1}" (m,)
    X : (K, d), the dtype of the parameters
    activation : canonical activation name (a key of ``ACTIVATIONS``)
    output : an output/loss pair or its name (see :mod:`handprop.core.outputs`)
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
    o_s = output_pair(output).f(o_a, out=None if out is None else out.o_s)
    return Cache(tuple(layers), o_a, o_s)


def _row_weights(K: int, sample_weight: np.ndarray | None, dtype) -> np.ndarray | float:
    """What each example's loss is multiplied by in the minibatch loss: 1/K,
    or w_k / sum(w) with sample weights (a weighted mean)."""
    if sample_weight is None:
        return 1.0 / K
    return (sample_weight / sample_weight.sum()).astype(dtype, copy=False)


def backward(
    params: dict[str, np.ndarray],
    cache: Cache,
    X: np.ndarray,
    T: np.ndarray,
    activation: str,
    output: str | Output = "softmax",
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
    T : the targets: (K,) integer classes for softmax; (K, m) otherwise
    activation : canonical activation name
    output : an output/loss pair or its name
    penalty : ElasticNet or None
    scale : the gradients returned are ``scale`` times the true ones.
        Multiplying the (K, m) output delta costs nothing, where multiplying
        each (d_l, d_{l-1}) gradient afterwards would cost a pass over it;
        the training step (:mod:`handprop.train.step`) uses it to fold in the
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
    # O_s - T into a (K, m) array: every pair is the canonical link of its
    # loss, so this is the gradient of the loss at O_a (outputs.py)
    if work is None:
        G = cache.o_s.copy()
    else:
        G = work.G_oa[:K]
        xp.copyto(G, cache.o_s)
    output_pair(output).subtract_target(G, T, label_smoothing)
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


def data_loss(output: str | Output, o_a: np.ndarray, T: np.ndarray, *,
              label_smoothing: float = 0.0, sample_weight: np.ndarray | None = None) -> float:
    """The mean of the pair's per-example losses over the K rows of o_a
    (K, m), or their weighted mean with ``sample_weight`` (K,): the minibatch
    loss without the penalty. ``label_smoothing`` eps in [0, 1) pulls class
    targets towards uniform (see :mod:`handprop.core.outputs`)."""
    losses = output_pair(output).row_losses(o_a, T, label_smoothing)
    if sample_weight is None:
        return float(losses.mean())
    return float(namespace(o_a).dot(losses, sample_weight) / sample_weight.sum())


def cross_entropy(o_a: np.ndarray, y: np.ndarray, *, label_smoothing: float = 0.0,
                  sample_weight: np.ndarray | None = None) -> float:
    """Mean over the rows of -log o_s[y] for softmax outputs, from the logits
    o_a (K, m) and the classes y (K,) by log-sum-exp: ``data_loss("softmax", ...)``."""
    return data_loss("softmax", o_a, y, label_smoothing=label_smoothing,
                     sample_weight=sample_weight)


class Pass(NamedTuple):
    """One minibatch through the net: what :func:`loss_and_gradients` gives.

    Attributes
    ----------
    loss : the data loss (the mean, or weighted mean), without the penalty
    penalty : the penalty's value, when it was asked for, else 0
    cache : the forward pass (o_a, o_s and each hidden layer)
    grads : ``scale`` times each parameter's gradient, or None when the
        pass stopped at a loss that is not finite
    """

    loss: float
    penalty: float
    cache: Cache
    grads: dict[str, np.ndarray] | None


def loss_and_gradients(params: dict[str, np.ndarray], X: np.ndarray, T: np.ndarray,
                       activation: str, output: str | Output = "softmax",
                       penalty: ElasticNet | None = None, *, scale: float = 1.0,
                       work: Workspace | None = None, masks: tuple | None = None,
                       label_smoothing: float = 0.0, sample_weight: np.ndarray | None = None,
                       penalty_value: bool = True, stop_if_not_finite: bool = False) -> Pass:
    """Forward, loss, penalty and backward on one minibatch: the one place
    where they are wired, which :meth:`MLP.loss_and_grads`, the training step
    and lbfgs's objective all call.

    Parameters are those of :func:`forward` and :func:`backward`; ``work``
    provides the buffers of both. ``penalty_value`` computes the penalty's
    value (a pass over each weight matrix); ``stop_if_not_finite`` returns
    before the backward pass (``grads`` None) when the loss is NaN or
    infinite, as training does.
    """
    k = X.shape[0]
    cache = forward(params, X, activation, output, out=None if work is None else work.cache(k),
                    masks=masks)
    loss = data_loss(output, cache.o_a, T, label_smoothing=label_smoothing,
                     sample_weight=sample_weight)
    if stop_if_not_finite and not math.isfinite(loss):
        return Pass(loss, math.nan, cache, None)
    pen = penalty.value(params) if (penalty_value and penalty is not None) else 0.0
    grads = backward(params, cache, X, T, activation, output, penalty, scale=scale, work=work,
                     masks=masks, label_smoothing=label_smoothing, sample_weight=sample_weight)
    return Pass(loss, pen, cache, grads)


_PARAM = re.compile(r"[Wb][1-9][0-9]*")


class MLP:
    """L hidden layers with one activation g, and m outputs of one output/loss pair.

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
    output : str, a key of :data:`handprop.core.outputs.OUTPUTS`
        The output/loss pair: "softmax" (default) with cross-entropy
        (classes), "logistic" with binary cross-entropy (two classes on one
        unit, or multilabel), "identity" with half squared error
        (regression), "exp" with half the Poisson deviance (counts).
    dtype : "float64" or "float32"
    seed : int, numpy.random.Generator or None
        Seeds the initialization.

    Attributes
    ----------
    hidden : tuple of the hidden layers' sizes (d_1, ..., d_L)
    L : the number of hidden layers
    W1 : (d_1, d), b1 : (d_1,), ..., W{L+1} : (m, d_L), b{L+1} : (m,)
    d_h : the hidden size for one hidden layer (an int), else ``hidden``
    pair : the output/loss pair, an :class:`handprop.core.outputs.Output`

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
        self._check_size()
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
        self.d = validate.number("d", d, low=1, integer=True)
        self.hidden = validate.hidden_sizes(d_h)
        self.pair = output_pair(validate.choice("output", output, tuple(OUTPUTS)))
        self.output = self.pair.name
        self.m = validate.number("m", m, low=self.pair.min_m, integer=True)
        self.activation = act.resolve(activation)
        self.dtype = checks.check_dtype(dtype)

    def _check_size(self) -> None:
        """Refuse, before allocating them, parameters that would not fit in
        the memory this process may use (with the float64 draw of the widest
        matrix at initialization)."""
        from ..files import memory_limit

        sizes = self.sizes
        need = self.n_params * self.dtype.itemsize + 8 * max(
            a * b for a, b in zip(sizes[:-1], sizes[1:]))
        limit, what = memory_limit()
        if need > limit:
            raise InputError(f"a net of {self.n_params:,} parameters (sizes "
                             f"{', '.join(map(str, sizes))}) would take {need / 2**30:.1f} GiB, "
                             f"more than {what}: give smaller sizes")

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
        return layer_shapes(self.sizes)

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
        checked = checks.check_params(self, new)
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
        dt = checks.check_dtype(dtype)
        new = self.copy()
        new.dtype = dt
        object.__setattr__(new, "_params", {k: p.astype(dt) for k, p in self._params.items()})
        return new

    def __repr__(self) -> str:
        d_h = self.d_h if self.L == 1 else self.hidden
        out = "" if self.output == next(iter(OUTPUTS)) else f", output={self.output!r}"
        return (f"MLP(d={self.d}, d_h={d_h}, m={self.m}, activation={self.activation!r}"
                f"{out}, dtype={self.dtype.name!r})")

    # -- input checks (handprop.core.checks) --------------------------------

    def check_X(self, X) -> np.ndarray:
        """X as a (K, d) array of this net's dtype, or a ValueError/TypeError."""
        return checks.check_X(self, X)

    def check_y(self, y, K: int) -> np.ndarray:
        """The targets of K examples, checked for this net's output pair:
        (K,) int64 classes in [0, m) for softmax; (K, m) in the net's dtype
        otherwise (y may be (K,) when m = 1): 0/1 labels or targets in
        [0, 1] for logistic, finite values for identity, counts >= 0 for
        exp. A ValueError/TypeError says what was expected."""
        return self.pair.check_targets(y, K, self.m, self.dtype)

    def check_penalty(self, penalty) -> ElasticNet | None:
        """``penalty`` if it is None or an ElasticNet for this net's weight
        matrices; a TypeError/ValueError otherwise."""
        return checks.check_penalty(self, penalty)

    def check_masks(self, mask_h, K: int) -> tuple | None:
        """The hidden dropout masks as a tuple of L arrays (K, d_l) (or None
        entries): ``mask_h`` is one array for one hidden layer, or a sequence
        of L arrays (or None) for L layers."""
        return checks.check_masks(self, mask_h, K)

    def check_options(self, K: int, *, mask_in=None, mask_h=None, label_smoothing=0.0,
                      sample_weight=None) -> dict:
        """The loss options as checked arrays and numbers, or a ValueError:
        a dict of mask_in ((K, d) or None), masks (a tuple or None),
        label_smoothing (in [0, 1), for pairs that smooth) and sample_weight
        ((K,) weights >= 0 with a positive sum, or None)."""
        return checks.check_options(self, K, mask_in=mask_in, mask_h=mask_h,
                                    label_smoothing=label_smoothing,
                                    sample_weight=sample_weight)

    def _inputs(self, X, y, penalty, options: dict):
        X = self.check_X(X)
        y = self.check_y(y, X.shape[0])
        penalty = self.check_penalty(penalty)
        opts = self.check_options(X.shape[0], **options)
        mask_in = opts.pop("mask_in")
        if mask_in is not None:  # input dropout: the net sees X * mask_in
            X = X * mask_in
        return X, y, penalty, opts

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
        return forward(self._params, X, self.activation, self.pair, masks=masks)

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
        X, y, penalty, opts = self._inputs(X, y, penalty, dict(
            mask_h=mask_h, label_smoothing=label_smoothing, sample_weight=sample_weight))
        if (not isinstance(cache, Cache) or len(cache.layers) != self.L
                or cache.o_a.shape != (X.shape[0], self.m)):
            raise InputError("cache must be the Cache that fprop returned for this X")
        return backward(self._params, cache, X, y, self.activation, self.pair, penalty,
                        **opts)

    def loss(self, X, y, penalty: ElasticNet | None = None, **options) -> float:
        """The minibatch loss: the mean loss over the K examples of X (K, d)
        plus the penalty. ``options`` are those of :meth:`loss_and_grads`."""
        X, y, penalty, opts = self._inputs(X, y, penalty, options)
        o_a = forward(self._params, X, self.activation, self.pair, masks=opts["masks"]).o_a
        value = data_loss(self.pair, o_a, y, label_smoothing=opts["label_smoothing"],
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
            for identity and exp (see :meth:`check_y`)
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
            from .reference import loss_and_grads_loop

            return loss_and_grads_loop(self, X, y, penalty, **opts)
        result = loss_and_gradients(self._params, X, y, self.activation, self.pair, penalty,
                                    **opts)
        return result.loss + result.penalty, result.grads

    def predict_proba(self, X) -> np.ndarray:
        """o_s, shape (n, m), for X of shape (n, d): class probabilities for
        softmax, each label's probability for logistic. A regression pair
        has none (a ValueError): use :meth:`predict`."""
        if not self.pair.classifies:
            raise InputError(f"an {self.output}-output (regression) net has no "
                             f"probabilities; predict gives its outputs")
        return forward(self._params, self.check_X(X), self.activation, self.pair).o_s

    def predict(self, X) -> np.ndarray:
        """Predictions for the rows of X (n, d).

        softmax: the most probable class, (n,) int64. logistic: 0/1 for each
        unit with o_s > 1/2, (n,) int64 for one unit, else (n, m). identity
        and exp: the outputs o_s, (n, m) in the net's dtype.
        """
        cache = forward(self._params, self.check_X(X), self.activation, self.pair)
        return self.pair.predict(cache.o_a, cache.o_s)

    # -- model files (handprop.core.modelfile) ------------------------------

    def save(self, path: str | os.PathLike, **meta) -> None:
        """Write the net to ``path`` as ``.npz``, atomically.

        The archive holds every parameter array and one more, ``metadata``: a
        JSON text with the layer sizes, activation, output, dtype, handprop's
        version, the sha256 of each array, and ``self.meta`` updated with
        ``meta`` (for instance ``history=...``, ``settings=...``; values must
        be JSON).
        """
        modelfile.save(self, path, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> MLP:
        """Read a net written by :meth:`save`, by this version or an earlier
        one; loading never runs code (see :func:`handprop.core.modelfile.load`)."""
        return modelfile.load(cls, path)

