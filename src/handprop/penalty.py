"""Elastic-net regularization of the two weight matrices.

The penalty is added once to each minibatch's loss (it is not averaged over
the K examples):

    P(theta) = l1_W1 ||W1||_1 + l2_W1 ||W1||_2^2 + l1_W2 ||W2||_1 + l2_W2 ||W2||_2^2

where ||W||_1 = sum |W_ij| and ||W||_2^2 = sum W_ij^2. Its gradient on each
weight matrix is

    dP/dW = lambda1 sign(W) + 2 lambda2 W,        with sign(0) = 0,

and it is zero on the biases, which are never penalized: a bias only shifts a
unit's threshold, and shrinking it towards zero buys no smoothness.

The reference's 2.18 writes ``+ 2 W - sign(W)``: the L1 term enters with a
plus sign (it pushes weights towards zero), and both terms carry their lambda.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .backend import namespace

__all__ = ["ElasticNet"]

_WEIGHTS = ("W1", "W2")


@dataclass(frozen=True)
class ElasticNet:
    """The four lambdas of the assignment: L1 and L2 on W1 and on W2.

    Parameters
    ----------
    l1_W1, l2_W1, l1_W2, l2_W2 : float, >= 0
        Weights of ||W1||_1, ||W1||_2^2, ||W2||_1 and ||W2||_2^2.

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
    """

    l1_W1: float = 0.0
    l2_W1: float = 0.0
    l1_W2: float = 0.0
    l2_W2: float = 0.0

    def __post_init__(self) -> None:
        for name in ("l1_W1", "l2_W1", "l1_W2", "l2_W2"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
            object.__setattr__(self, name, float(value))

    def lambdas(self, weight: str) -> tuple[float, float]:
        """(lambda1, lambda2) for ``weight``, which is "W1" or "W2"."""
        if weight not in _WEIGHTS:
            raise ValueError(f"only W1 and W2 are penalized, got {weight!r}")
        return getattr(self, f"l1_{weight}"), getattr(self, f"l2_{weight}")

    @property
    def is_zero(self) -> bool:
        """True when all four lambdas are 0."""
        return not (self.l1_W1 or self.l2_W1 or self.l1_W2 or self.l2_W2)

    def value(self, params: dict[str, np.ndarray]) -> float:
        """P(theta), a scalar, from ``params["W1"]`` (d_h, d) and ``params["W2"]`` (m, d_h)."""
        total = 0.0
        for weight in _WEIGHTS:
            l1, l2 = self.lambdas(weight)
            W = params[weight]
            xp = namespace(W)
            if l1:
                total += l1 * float(xp.abs(W).sum())
            if l2:
                total += l2 * float(xp.vdot(W, W))
        return total

    def grad(self, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """dP/dW for "W1" (d_h, d) and "W2" (m, d_h); the biases get none."""
        return {weight: self.grad_of(weight, params[weight]) for weight in _WEIGHTS}

    def grad_of(self, weight: str, W: np.ndarray) -> np.ndarray:
        """lambda1 sign(W) + 2 lambda2 W for one weight matrix, the shape of ``W``."""
        g = np.zeros_like(W)
        self.add_grad(weight, W, g)
        return g

    def add_grad(self, weight: str, W: np.ndarray, out: np.ndarray, *, scale: float = 1.0,
                 scratch: np.ndarray | None = None) -> None:
        """out += scale (lambda1 sign(W) + 2 lambda2 W), in place.

        ``scratch``, an array of W's shape, spares the temporaries.
        """
        l1, l2 = self.lambdas(weight)
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

    def to_dict(self) -> dict[str, float]:
        """The four lambdas by name, for JSON."""
        return {"l1_W1": self.l1_W1, "l2_W1": self.l2_W1, "l1_W2": self.l1_W2, "l2_W2": self.l2_W2}
