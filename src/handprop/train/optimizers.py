"""Parameter updates, done in place on the network's arrays.

An optimizer turns the minibatch gradients into an update of each parameter.
It keeps its state (velocities, moments) in arrays of the parameters' shapes,
allocated once, and never reallocates the parameters, so that any outside
reference to ``net.W1`` stays valid during training.

The one convention, stated here once: ``step(params, grads, lr, scale=s)``
receives ``grads`` holding ``s`` times the gradients, for any s > 0 (1 by
default), and divides it out where it must. ``grad_scale(lr)`` is the s
that makes the update cheapest: the training step (:mod:`handprop.train.step`)
asks for it and has the backward pass multiply the small (K, m) output delta
by it. For SGD that is ``lr``, so that ``grads`` already holds ``lr g`` and
the update is one subtraction, with no pass over each (d_l, d_{l-1})
gradient to multiply it; Adam needs the gradient itself and asks for 1.

Each optimizer states its own state: :meth:`SGD.state_spec` names the arrays
(and their shapes) that a checkpoint holds, :meth:`SGD.state` gives them and
:meth:`SGD.load_state` takes them back, refusing a state that does not match
the steps the run has taken. A checkpoint needs no list of names.
"""

from __future__ import annotations

import numpy as np

from .. import validate
from ..backend import namespace
from ..errors import InputError

__all__ = ["SGD", "Adam", "make_optimizer", "max_norm_", "OPTIMIZERS"]


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
        momentum = validate.number("momentum", momentum, low=0, high=1, high_open=True)
        nesterov = validate.flag("nesterov", nesterov)
        if nesterov and momentum == 0:
            raise InputError("nesterov=True needs a momentum > 0")
        self.momentum = momentum
        self.nesterov = nesterov
        self.t = 0  # steps taken
        self.velocity: dict[str, np.ndarray] = {}
        self._scratch: dict[str, np.ndarray] = {}

    @classmethod
    def from_settings(cls, settings) -> SGD:
        """An SGD of a run's settings (:class:`handprop.RunSettings`)."""
        return cls(settings.momentum, settings.nesterov)

    def grad_scale(self, lr: float) -> float:
        """The scale of the gradients that makes :meth:`step` cheapest: ``lr``."""
        return lr

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
             lr: float, *, scale: float = 1.0) -> None:
        """Update every array of ``params`` in place.

        ``grads`` holds ``scale`` times the gradients, the shapes of the
        parameters (see the module docstring). With ``scale == lr`` every
        operation writes into an existing array: no temporary of a
        parameter's size is allocated.
        """
        mu = self.momentum
        self.t += 1
        for name, p in params.items():
            step = grads[name]  # scale g
            if scale != lr:  # make it lr g
                step = step * (lr / scale)
            if mu == 0:
                p -= step
                continue
            xp = namespace(p)
            v = self.velocity.get(name)
            if v is None:
                v = self.velocity[name] = xp.zeros_like(p)
            v *= mu
            v -= step  # v = mu v - lr g
            if self.nesterov:
                scratch = self._scratch.get(name)
                if scratch is None:
                    scratch = self._scratch[name] = xp.empty_like(p)
                xp.multiply(v, mu, out=scratch)
                scratch -= step
                p += scratch  # p += mu v - lr g
            else:
                p += v

    def state_spec(self, shapes: dict[str, tuple]) -> dict[str, tuple | None]:
        """The arrays of :meth:`state`, by name, with their shapes for
        parameters of ``shapes`` (None: the step count, an int64 scalar)."""
        spec = {"t": None}
        if self.momentum:
            spec.update({f"velocity_{k}": s for k, s in shapes.items()})
        return spec

    def state(self) -> dict[str, np.ndarray]:
        """The arrays to checkpoint, by name: the step count, and the
        velocities once there are some."""
        return {"t": np.array(self.t), **{f"velocity_{k}": v for k, v in self.velocity.items()}}

    def load_state(self, arrays: dict[str, np.ndarray], shapes: dict[str, tuple] | None = None,
                   steps: int | None = None) -> None:
        """Take back :meth:`state`. Given the parameters' ``shapes`` and the
        ``steps`` the run has taken, the state is checked against them first:
        a ValueError when an array is missing or the count disagrees."""
        t = _step_count(arrays, steps)
        velocity = {k[len("velocity_"):]: v for k, v in arrays.items()
                    if k.startswith("velocity_")}
        if self.momentum and t and shapes is not None:
            _require_all("velocity", velocity, shapes)
        self.t = t
        self.velocity = {k: v.copy() for k, v in velocity.items()}

    def map_state(self, move) -> None:
        """Replace every state array a by ``move(a)``: moves the state between
        the CPU and a GPU (see :mod:`handprop.backend`)."""
        self.velocity = {k: move(v) for k, v in self.velocity.items()}
        self._scratch = {k: move(v) for k, v in self._scratch.items()}

    def config(self) -> dict:
        return {"optimizer": self.name, "momentum": self.momentum, "nesterov": self.nesterov}


class Adam:
    """Adam (Kingma and Ba, 2015), in scikit-learn's form.

    Parameters
    ----------
    beta1, beta2 : floats in [0, 1), the decay rates of the two moments
    epsilon : float > 0

    Notes
    -----
    With gradient g, step count t and rate lr:

        m <- beta1 m + (1 - beta1) g
        v <- beta2 v + (1 - beta2) g^2
        theta <- theta - lr_t m / (sqrt(v) + epsilon),
        lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t)

    which is the bias-corrected update with epsilon added to sqrt(v) rather
    than to sqrt(v / (1 - beta2^t)) (scikit-learn's MLPClassifier does the
    same; PyTorch adds it after the correction).
    """

    name = "adam"

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8) -> None:
        self.beta1 = validate.number("beta1", beta1, low=0, high=1, high_open=True)
        self.beta2 = validate.number("beta2", beta2, low=0, high=1, high_open=True)
        self.epsilon = validate.number("epsilon", epsilon, low=0, low_open=True)
        self.t = 0
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}
        self._scratch: dict[str, np.ndarray] = {}

    @classmethod
    def from_settings(cls, settings) -> Adam:
        """An Adam of a run's settings (:class:`handprop.RunSettings`)."""
        return cls(settings.betas[0], settings.betas[1], settings.epsilon)

    def grad_scale(self, lr: float) -> float:
        """Adam needs the gradients themselves: 1."""
        return 1.0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
             lr: float, *, scale: float = 1.0) -> None:
        """Update every array of ``params`` in place, without temporaries
        (with ``scale == 1``); ``grads`` holds ``scale`` times the gradients."""
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        lr_t = lr * np.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        for name, p in params.items():
            g = grads[name] if scale == 1 else grads[name] / scale
            xp = namespace(p)
            if name not in self.m:
                self.m[name] = xp.zeros_like(p)
                self.v[name] = xp.zeros_like(p)
                self._scratch[name] = xp.empty_like(p)
            m, v, s = self.m[name], self.v[name], self._scratch[name]
            for blocks in _blocks(xp, p, g, m, v, s):
                _adam_update(xp, *blocks, b1, b2, self.epsilon, lr_t)

    def state_spec(self, shapes: dict[str, tuple]) -> dict[str, tuple | None]:
        """The arrays of :meth:`state`, by name, with their shapes for
        parameters of ``shapes`` (None: the step count, an int64 scalar)."""
        return {"t": None, **{f"m_{k}": s for k, s in shapes.items()},
                **{f"v_{k}": s for k, s in shapes.items()}}

    def state(self) -> dict[str, np.ndarray]:
        """The arrays to checkpoint: both moments and the step count."""
        out = {f"m_{k}": v for k, v in self.m.items()}
        out.update({f"v_{k}": v for k, v in self.v.items()})
        out["t"] = np.array(self.t)
        return out

    def load_state(self, arrays: dict[str, np.ndarray], shapes: dict[str, tuple] | None = None,
                   steps: int | None = None) -> None:
        """Take back :meth:`state`. Given the parameters' ``shapes`` and the
        ``steps`` the run has taken, the state is checked against them first:
        a ValueError when a moment is missing or the count disagrees."""
        t = _step_count(arrays, steps, required=True)
        m = {k[2:]: a for k, a in arrays.items() if k.startswith("m_")}
        v = {k[2:]: a for k, a in arrays.items() if k.startswith("v_")}
        if t and shapes is not None:
            _require_all("first moment", m, shapes)
            _require_all("second moment", v, shapes)
        self.t = t
        self.m = {k: a.copy() for k, a in m.items()}
        self.v = {k: a.copy() for k, a in v.items()}
        self._scratch = {k: np.empty_like(a) for k, a in self.m.items()}

    def map_state(self, move) -> None:
        """Replace every state array a by ``move(a)``: moves the state between
        the CPU and a GPU (see :mod:`handprop.backend`)."""
        for moments in (self.m, self.v, self._scratch):
            for k, a in moments.items():
                moments[k] = move(a)

    def config(self) -> dict:
        return {"optimizer": self.name, "beta1": self.beta1, "beta2": self.beta2,
                "epsilon": self.epsilon}


# Elements per block of an update on the CPU: the five arrays of one block
# (640 KiB in float32) stay in the core's L2 cache while the update's passes
# run over them, instead of streaming each whole array from memory for each
# pass. The passes are the same elementwise operations in the same order, so
# the result is the same to the bit.
_BLOCK = 32768


def _blocks(xp, *arrays):
    """Tuples of views of ``arrays``, a block of ``_BLOCK`` elements of each
    at a time, where all are C-contiguous NumPy arrays of one shape with more
    than 2 ``_BLOCK`` elements; else the arrays whole, in one tuple (a GPU
    runs a pass over a whole array faster than many small ones, and arrays of
    other shapes keep NumPy's broadcasting and its errors)."""
    size = arrays[0].size
    if (xp is not np or size <= 2 * _BLOCK
            or any(a.shape != arrays[0].shape or not a.flags.c_contiguous for a in arrays)):
        yield arrays
        return
    flat = [a.reshape(-1) for a in arrays]
    for start in range(0, size, _BLOCK):
        yield tuple(f[start:start + _BLOCK] for f in flat)


def _adam_update(xp, p, g, m, v, s, b1, b2, epsilon, lr_t):
    """One Adam update of ``p`` in place, without temporaries; ``s`` is
    scratch. All arrays of one shape."""
    m *= b1
    xp.multiply(g, 1 - b1, out=s)
    m += s
    v *= b2
    xp.square(g, out=s)
    s *= 1 - b2
    v += s
    xp.sqrt(v, out=s)
    s += epsilon
    xp.divide(m, s, out=s)
    s *= lr_t
    p -= s


def _step_count(arrays: dict, steps: int | None, *, required: bool = False) -> int:
    """The state's step count, which must be the run's (when ``steps`` is
    known); a state without one (handprop 0.2's SGD) takes the run's."""
    if "t" not in arrays:
        if required and steps:
            raise ValueError("the optimizer's state has no step count")
        return steps or 0
    t = np.asarray(arrays["t"])
    if t.shape != () or not np.issubdtype(t.dtype, np.integer) or (
            steps is not None and int(t) != steps) or int(t) < 0:
        raise ValueError(f"the optimizer's state counts {t.tolist()!r} steps, but the run has "
                         f"taken {steps}")
    return int(t)


def _require_all(what: str, arrays: dict, shapes: dict) -> None:
    missing = [k for k in shapes if k not in arrays]
    if missing:
        raise ValueError(f"the optimizer's state lacks the {what} of {', '.join(missing)}")


def max_norm_(W: np.ndarray, c: float) -> None:
    """Rescale, in place, every row of W (d_h, d) whose L2 norm exceeds c to norm c.

    The max-norm constraint of Srivastava et al. (2014) on the weights coming
    into each hidden unit (the rows of W1): it bounds them without shrinking
    the others, which lets dropout nets use large learning rates.
    """
    xp = namespace(W)
    norms = xp.sqrt(xp.einsum("ij,ij->i", W, W))
    over = norms > c
    if over.any():
        W[over] *= (c / norms[over])[:, None].astype(W.dtype)


#: The optimizers by name: the parameter table's choices for ``optimizer``.
OPTIMIZERS: dict[str, type] = {cls.name: cls for cls in (SGD, Adam)}


def make_optimizer(name: str = "sgd", **kwargs) -> SGD | Adam:
    """An optimizer by name: "sgd" (momentum, nesterov) or "adam" (beta1, beta2, epsilon)."""
    if name not in OPTIMIZERS:
        raise InputError(f"unknown optimizer {name!r}; expected one of "
                         f"{', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](**kwargs)
