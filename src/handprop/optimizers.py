"""Parameter updates, done in place on the network's arrays.

An optimizer turns the minibatch gradients into an update of each parameter.
It keeps its state (velocities, moments) in arrays of the parameters' shapes,
allocated once, and never reallocates the parameters, so that any outside
reference to ``net.W1`` stays valid during training.

The training loop asks the optimizer for ``grad_scale(lr)`` and has the
backward pass return the gradients multiplied by it: SGD takes ``lr`` there,
which folds the learning rate into the small (K, m) output delta and spares a
pass over every (d_h, d) gradient; an optimizer that needs the raw gradient
(Adam) returns 1.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SGD", "make_optimizer", "OPTIMIZERS"]


class SGD:
    """Minibatch gradient descent, optionally with (Nesterov) momentum.

    Parameters
    ----------
    momentum : float in [0, 1)
    nesterov : bool, use Nesterov's look-ahead form

    Notes
    -----
    With gradient g and rate lr, the velocity v (zero at the start) is

        v <- momentum v - lr g

    and the update is theta <- theta + v, or for Nesterov
    theta <- theta + momentum v - lr g (Sutskever et al. 2013, as in
    scikit-learn). With momentum = 0 both are theta <- theta - lr g.
    """

    name = "sgd"

    def __init__(self, momentum: float = 0.0, nesterov: bool = False) -> None:
        if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
            raise ValueError(f"momentum must be a number in [0, 1), got {momentum!r}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs a momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.velocity: dict[str, np.ndarray] = {}
        self._scratch: dict[str, np.ndarray] = {}

    def grad_scale(self, lr: float) -> float:
        """What the gradients passed to :meth:`step` are multiplied by: ``lr``."""
        return lr

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
             lr: float) -> None:
        """Update every array of ``params`` in place.

        ``grads`` holds ``lr`` times the gradients (see :meth:`grad_scale`),
        the shapes of the parameters. Every operation writes into an existing
        array: no temporary of a parameter's size is allocated.
        """
        mu = self.momentum
        for name, p in params.items():
            step = grads[name]  # lr g
            if mu == 0:
                p -= step
                continue
            v = self.velocity.get(name)
            if v is None:
                v = self.velocity[name] = np.zeros_like(p)
            v *= mu
            v -= step  # v = mu v - lr g
            if self.nesterov:
                scratch = self._scratch.get(name)
                if scratch is None:
                    scratch = self._scratch[name] = np.empty_like(p)
                np.multiply(v, mu, out=scratch)
                scratch -= step
                p += scratch  # p += mu v - lr g
            else:
                p += v

    def state(self) -> dict[str, np.ndarray]:
        """The arrays to checkpoint, by name."""
        return {f"velocity_{k}": v for k, v in self.velocity.items()}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.velocity = {k[len("velocity_"):]: v.copy() for k, v in arrays.items()
                         if k.startswith("velocity_")}

    def config(self) -> dict:
        return {"optimizer": self.name, "momentum": self.momentum, "nesterov": self.nesterov}


OPTIMIZERS = ("sgd",)


def make_optimizer(name: str = "sgd", **kwargs) -> SGD:
    """An optimizer by name."""
    if name == "sgd":
        return SGD(**kwargs)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
