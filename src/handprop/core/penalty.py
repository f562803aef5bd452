"""Elastic-net regularization of the weight matrices.

The penalty is added once to each minibatch's loss (it is not averaged over
the K examples). For the seed's net, with its two weight matrices, it is the
assignment's four lambdas:

    P(theta) = l1_W1 ||W1||_1 + l2_W1 ||W1||_2^2 + l1_W2 ||W2||_1 + l2_W2 ||W2||_2^2

and a deeper net, with weight matrices W1, ..., W{L+1}, takes an L1 and an
L2 lambda for each: P = sum_k l1_Wk ||Wk||_1 + l2_Wk ||Wk||_2^2, where
||W||_1 = sum |W_ij| and ||W||_2^2 = sum W_ij^2. The gradient on each weight
matrix is

    dP/dW = lambda1 sign(W) + 2 lambda2 W,        with sign(0) = 0,

and it is zero on the biases, which are never penalized: a bias only shifts a
unit's threshold, and shrinking it towards zero buys no smoothness.

The reference's 2.18 writes ``+ 2 W - sign(W)``: the L1 term enters with a
plus sign (it pushes weights towards zero), and both terms carry their lambda.
"""

from __future__ import annotations

import re

import numpy as np

from .. import validate
from ..backend import namespace
from ..errors import InputError, InputTypeError

__all__ = ["ElasticNet"]

_NAME = re.compile(r"l([12])_W([1-9][0-9]*)")


def _weight_index(name: str) -> int:
    """k for a weight matrix named "Wk", else a ValueError."""
    match = re.fullmatch(r"W([1-9][0-9]*)", name) if isinstance(name, str) else None
    if match is None:
        raise InputError(f"only weight matrices W1, W2, ... are penalized, got {name!r}")
    return int(match.group(1))


class ElasticNet:
    """L1 and L2 lambdas for each weight matrix; immutable.

    Parameters
    ----------
    l1_W1, l2_W1, l1_W2, l2_W2 : float >= 0
        The assignment's four lambdas: weights of ||W1||_1, ||W1||_2^2,
        ||W2||_1 and ||W2||_2^2 (positional, in this order, or by name).
    **more : l1_Wk and l2_Wk for k >= 3, the lambdas of a deeper net's other
        weight matrices. A lambda that is not given is 0.

    Examples
    --------
    >>> import numpy as np
    >>> pen = ElasticNet(l1_W1=0.1, l2_W2=0.5)
    >>> params = {"W1": np.array([[1.0, -2.0]]), "b1": np.zeros(1),
    ...           "W2": np.array([[3.0], [0.0]]), "b2": np.zeros(2)}
    >>> float(pen.value(params))  # 0.1 * 3 + 0.5 * 9
    4.8
    >>> pen.grad(params)["W1"]
    array([[ 0.1, -0.1]])
    >>> ElasticNet(l2_W3=1e-4).lambdas("W3")
    (0.0, 0.0001)
    """

    __slots__ = ("_lambdas",)

    def __init__(self, l1_W1: float = 0.0, l2_W1: float = 0.0, l1_W2: float = 0.0,
                 l2_W2: float = 0.0, **more: float) -> None:
        given = {"l1_W1": l1_W1, "l2_W1": l2_W1, "l1_W2": l1_W2, "l2_W2": l2_W2, **more}
        lambdas: dict[int, list[float]] = {}
        for name, value in given.items():
            match = _NAME.fullmatch(name)
            if match is None:
                raise InputTypeError(f"ElasticNet got an unexpected argument {name!r}; lambdas are "
                                f"named l1_Wk and l2_Wk for weight matrix Wk (k = 1, 2, ...)")
            v = validate.number(name, value, low=0)
            pair = lambdas.setdefault(int(match.group(2)), [0.0, 0.0])
            pair[int(match.group(1)) - 1] = v
        object.__setattr__(self, "_lambdas",
                           {k: (l1, l2) for k, (l1, l2) in sorted(lambdas.items())})

    # -- an immutable value ---------------------------------------------------

    def __setattr__(self, name, value):
        raise AttributeError("an ElasticNet is immutable; make a new one")

    def __getattr__(self, name: str) -> float:
        match = _NAME.fullmatch(name)
        if match is None:
            raise AttributeError(f"'ElasticNet' object has no attribute {name!r}")
        pair = object.__getattribute__(self, "_lambdas").get(int(match.group(2)), (0.0, 0.0))
        return pair[int(match.group(1)) - 1]

    def __eq__(self, other) -> bool:
        if not isinstance(other, ElasticNet):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.to_dict().items())))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if v)
        return f"ElasticNet({args})"

    def __reduce__(self):
        return (_from_dict, (self.to_dict(),))

    # -- lambdas ------------------------------------------------------------------

    def lambdas(self, weight: str) -> tuple[float, float]:
        """(lambda1, lambda2) for the weight matrix named ``weight`` ("W1", "W2", ...)."""
        return self._lambdas.get(_weight_index(weight), (0.0, 0.0))

    @property
    def is_zero(self) -> bool:
        """True when every lambda is 0."""
        return not any(l1 or l2 for l1, l2 in self._lambdas.values())

    @property
    def highest(self) -> int:
        """The largest k with a nonzero lambda for Wk (0 when there is none)."""
        return max((k for k, (l1, l2) in self._lambdas.items() if l1 or l2), default=0)

    def check_depth(self, n_weights: int) -> ElasticNet:
        """This penalty, after checking that it names no weight matrix beyond
        W{n_weights}; a ValueError otherwise."""
        if self.highest > n_weights:
            raise InputError(f"the penalty has lambdas for W{self.highest}, but the net has "
                             f"weight matrices W1 to W{n_weights} only")
        return self

    def with_l2(self, extra: float, n_weights: int) -> ElasticNet:
        """A penalty with ``extra`` added to the L2 lambda of W1 ... W{n_weights}."""
        values = self.to_dict()
        for k in range(1, n_weights + 1):
            values[f"l2_W{k}"] = values.get(f"l2_W{k}", 0.0) + extra
        return _from_dict(values)

    @classmethod
    def per_matrix(cls, l1=(), l2=()) -> ElasticNet:
        """One L1 and one L2 lambda per weight matrix, in order: ``l1[k - 1]``
        is l1_Wk. A sequence shorter than the other is padded with zeros."""
        values = {f"l1_W{k}": v for k, v in enumerate(l1, start=1)}
        values.update({f"l2_W{k}": v for k, v in enumerate(l2, start=1)})
        return cls(**values)

    def to_dict(self) -> dict[str, float]:
        """The lambdas by name, for JSON: always the four of W1 and W2, and
        those of the other weight matrices that were given."""
        out = {}
        for k in sorted({1, 2} | set(self._lambdas)):
            l1, l2 = self._lambdas.get(k, (0.0, 0.0))
            out[f"l1_W{k}"], out[f"l2_W{k}"] = l1, l2
        return out

    @classmethod
    def from_dict(cls, values: dict) -> ElasticNet:
        """The inverse of :meth:`to_dict`; a ValueError for anything else."""
        if not isinstance(values, dict):
            raise InputError(f"a penalty must be a dict of lambdas, got "
                             f"{type(values).__name__}")
        try:
            return cls(**values)
        except TypeError as exc:
            raise InputError(str(exc)) from None

    # -- the math -----------------------------------------------------------------

    def _weights(self, params: dict[str, np.ndarray]):
        for k, (l1, l2) in self._lambdas.items():
            if l1 or l2:
                yield f"W{k}", l1, l2, params[f"W{k}"]

    def value(self, params: dict[str, np.ndarray]) -> float:
        """P(theta), a scalar, from the weight matrices of ``params`` (each Wk
        of shape (n_k, n_{k-1}))."""
        total = 0.0
        for _, l1, l2, W in self._weights(params):
            xp = namespace(W)
            if l1:
                total += l1 * float(xp.abs(W).sum())
            if l2:
                total += l2 * float(xp.vdot(W, W))
        return total

    def grad(self, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """dP/dWk for every weight matrix of ``params``, each the shape of its
        matrix; the biases get none."""
        return {name: self.grad_of(name, W) for name, W in params.items()
                if name.startswith("W")}

    def grad_of(self, weight: str, W: np.ndarray) -> np.ndarray:
        """lambda1 sign(W) + 2 lambda2 W for one weight matrix, the shape of ``W``."""
        g = namespace(W).zeros_like(W)
        self.add_grad(weight, W, g)
        return g

    def add_grad(self, weight: str, W: np.ndarray, out: np.ndarray, *, scale: float = 1.0,
                 scratch: np.ndarray | None = None) -> None:
        """out += scale (lambda1 sign(W) + 2 lambda2 W), in place.

        ``scratch``, an array of W's shape, spares the temporaries.
        """
        l1, l2 = self.lambdas(weight)
        if not (l1 or l2):
            return
        xp = namespace(W)
        if scratch is None:
            scratch = xp.empty_like(W)
        if l2:
            xp.multiply(W, 2 * l2 * scale, out=scratch)
            out += scratch
        if l1:
            xp.sign(W, out=scratch)
            scratch *= l1 * scale
            out += scratch


def _from_dict(values: dict) -> ElasticNet:
    return ElasticNet(**values)
