"""Finite-difference check of the hand-derived gradients.

Every analytic gradient entry is compared with the central difference

    n = (L(theta + eps e_i) - L(theta - eps e_i)) / (2 eps),

whose error is O(eps^2) from truncation plus about u |L| / eps from
round-off (u = 2.2e-16 in float64). With eps = 1e-6 both are near 1e-10 in
absolute terms, so the relative error |a - n| / max(|a| + |n|, 1e-8) of a
correct gradient entry of size 0.01 to 1 is 1e-8 or smaller, while a wrong
formula gives errors near 1. An entry much smaller than 1e-3 has a larger
relative error from round-off alone; the five-point stencil (``order=4``)
with eps = 1e-3 brings that round-off down a thousandfold. The check always
runs in float64: in float32 u is 6e-8 and the round-off alone would be 1e-2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import validate
from ..errors import InputError, InputTypeError
from .activations import KINKED
from .network import MLP, forward
from .penalty import ElasticNet

__all__ = ["gradcheck", "GradcheckReport", "ParamCheck", "relative_error", "DEFAULT_TOL"]

#: The largest relative error that passes. A correct gradient in float64 with
#: eps = 1e-6 gives about 1e-9 (see the module docstring); wrong formulas give
#: 1e-2 to 1. 1e-6 leaves a thousandfold margin above round-off and is far
#: below any real mistake.
DEFAULT_TOL = 1e-6

_FLOOR = 1e-8


def relative_error(a: np.ndarray, n: np.ndarray) -> np.ndarray:
    """|a - n| / max(|a| + |n|, 1e-8), elementwise.

    The floor keeps two tiny values (both nearly 0) from giving a huge ratio.
    """
    a = np.asarray(a, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    return np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), _FLOOR)


@dataclass
class ParamCheck:
    """The check of one parameter.

    Attributes
    ----------
    name : "W1", "b1", ..., "W{L+1}" or "b{L+1}"
    shape : the parameter's shape
    index : (c,) flat indices of the c entries checked
    analytic : (c,) the hand-derived gradient at those entries
    numerical : (c,) the central differences
    rel_error : (c,) relative_error(analytic, numerical)
    kink : (c,) bool, True where the two evaluations straddled a kink
    """

    name: str
    shape: tuple[int, ...]
    index: np.ndarray
    analytic: np.ndarray
    numerical: np.ndarray
    rel_error: np.ndarray
    kink: np.ndarray

    @property
    def max_rel_error(self) -> float:
        """Largest relative error over the entries not at a kink (0.0 if none)."""
        errs = self.rel_error[~self.kink]
        return float(errs.max()) if errs.size else 0.0

    @property
    def n_checked(self) -> int:
        return int(self.index.size)

    @property
    def n_size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class GradcheckReport:
    """Per-parameter results of :func:`gradcheck`; prints as a table."""

    checks: list[ParamCheck]
    eps: float
    order: int
    tol: float
    loss: float
    K: int
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> ParamCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def max_rel_error(self) -> float:
        """The largest relative error over every parameter (kinks excluded)."""
        return max(c.max_rel_error for c in self.checks)

    @property
    def n_kinks(self) -> int:
        return int(sum(c.kink.sum() for c in self.checks))

    @property
    def passed(self) -> bool:
        """True when every relative error is at most ``tol``."""
        return self.max_rel_error <= self.tol

    def __str__(self) -> str:
        header = ("param", "shape", "checked", "kinks", "max |analytic|", "max |numerical|",
                  "max rel. error")
        rows = []
        for c in self.checks:
            rows.append((
                c.name,
                "x".join(map(str, c.shape)),
                f"{c.n_checked}/{c.n_size}",
                str(int(c.kink.sum())),
                f"{np.abs(c.analytic).max():.3e}",
                f"{np.abs(c.numerical).max():.3e}",
                f"{c.max_rel_error:.3e}",
            ))
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
        lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
        lines += [fmt.format(*r) for r in rows]
        verdict = "passed" if self.passed else "FAILED"
        lines.append(
            f"K = {self.K}, loss = {self.loss:.6f}, eps = {self.eps:g}, order {self.order}: "
            f"largest relative "
            f"error {self.max_rel_error:.3e} (tolerance {self.tol:g}): {verdict}"
        )
        lines += self.notes
        return "\n".join(lines)


def _kink_pattern(net: MLP, X: np.ndarray, masks) -> np.ndarray:
    """Which side of 0 each hidden pre-activation lies on: the signs of every
    layer's h_a (K, d_l), side by side, shape (K, d_1 + ... + d_L)."""
    cache = forward(net.params, X, net.activation, net.output, masks=masks)
    return np.hstack([np.sign(layer.h_a) for layer in cache.layers])


# Central stencils as (offset in units of eps, weight) pairs: the derivative is
# sum weight * (L(+offset eps) - L(-offset eps)) / eps. Differencing each pair
# first keeps a loss that does not move (a dead rect unit, say) at exactly 0.
_STENCILS = {
    2: ((1, 1 / 2),),
    4: ((1, 8 / 12), (2, -1 / 12)),
}


def _differences(flat: np.ndarray, index: np.ndarray, stencil, eps: float, loss_at):
    """The central differences of the loss at the entries ``index`` of a
    parameter (``flat``, a view), each entry restored after its own; and
    which of them moved a kink. ``loss_at(flat, i, value)`` gives the loss
    with entry i set to value."""
    numerical = np.empty(index.size)
    kink = np.zeros(index.size, dtype=bool)
    for j, i in enumerate(index):
        orig = flat[i]
        total = 0.0
        try:
            for offset, weight in stencil:
                (plus, moved_up), (minus, moved_down) = (
                    loss_at(flat, i, orig + offset * eps), loss_at(flat, i, orig - offset * eps))
                kink[j] |= moved_up or moved_down
                total += weight * (plus - minus)
        finally:
            flat[i] = orig
        numerical[j] = total / eps
    return numerical, kink


def _notes(checks, loss: float, eps: float, reach: float, order: int, tol: float) -> list[str]:
    """What the report says besides the table: the entries left out for a
    kink, and whether every failure is within round-off."""
    notes = []
    n_kinks = sum(int(c.kink.sum()) for c in checks)
    if n_kinks:
        notes.append(
            f"{n_kinks} entries straddled a kink (a pre-activation or an L1-penalized weight "
            f"within {reach:g} of 0) and are left out of the maximum."
        )
    # What round-off alone can do to a difference quotient: about u |L| / eps.
    roundoff = np.finfo(np.float64).eps * max(abs(loss), 1.0) / eps
    failing = [c for c in checks if np.any((c.rel_error > tol) & ~c.kink)]
    if failing and all(
        np.all(np.abs(c.analytic - c.numerical)[(c.rel_error > tol) & ~c.kink] <= 10 * roundoff)
        for c in failing
    ):
        advice = (
            "rerun with order=4 and eps=1e-3 (CLI: --order 4 --eps 1e-3) to tell round-off "
            "from a wrong formula." if order == 2 else "float64 can do no better for them."
        )
        notes.append(
            f"Every failing entry is a tiny gradient whose absolute error (at most "
            f"{10 * roundoff:.1e}) is within the round-off of the difference quotient; {advice}"
        )
    return notes


def gradcheck(
    net: MLP,
    X,
    y,
    penalty: ElasticNet | None = None,
    eps: float = 1e-6,
    *,
    order: int = 2,
    tol: float = DEFAULT_TOL,
    max_entries: int = 200,
    seed: int = 0,
    method: str = "matrix",
    mask_in=None,
    mask_h=None,
    label_smoothing: float = 0.0,
    sample_weight=None,
) -> GradcheckReport:
    """Compare the analytic gradients of ``net`` with central differences.

    Parameters
    ----------
    net : MLP
        It is copied into float64 and never modified.
    X : (K, d) inputs; y : the targets (see :meth:`MLP.check_y`)
    penalty : ElasticNet or None
    eps : float > 0, the step of the central difference
    order : 2 or 4
        2 is the classic (L(+eps) - L(-eps)) / (2 eps), with error
        O(eps^2) + O(u |L| / eps). 4 is the five-point central stencil
        (-L(+2eps) + 8 L(+eps) - 8 L(-eps) + L(-2eps)) / (12 eps), with error
        O(eps^4) + O(u |L| / eps): with eps = 1e-3 its round-off is a thousand
        times smaller than the classic one's at 1e-6, which matters for
        gradient entries much smaller than 1e-3, whose relative error the
        classic stencil's round-off (about 1e-10 absolute) dominates.
    tol : float, the largest relative error that passes
    max_entries : int
        At most this many entries per parameter are checked; a parameter with
        more is checked on a random subset drawn with ``seed``.
    method : "matrix" or "loop", the analytic implementation to check
    mask_in, mask_h, label_smoothing, sample_weight : the loss's options (see
        :meth:`MLP.loss_and_grads`); the dropout masks stay fixed while the
        parameters are perturbed, which is what makes the loss a function of
        the parameters alone

    Returns
    -------
    GradcheckReport

    Notes
    -----
    **Kinks.** rect, abs and sign are not differentiable at 0, and |w| (the L1
    penalty) is not differentiable at w = 0. If the perturbed evaluations put
    some pre-activation h_a, or a penalized weight, on opposite sides of its
    kink, the finite difference mixes the two one-sided slopes and disagrees
    with the analytic (sub)gradient even when the formula is right. Each
    entry moves by at most ``eps`` (``2 eps`` for order 4), so this happens
    only when a value lies that close to its kink. The check detects it: for
    an activation with a kink it compares the sign of every h_a at each
    perturbed point with the unperturbed one, and for an L1-penalized weight
    it tests whether |w| is within the largest step. Such entries are flagged
    in ``kink``, counted in the table, and left out of the maximum error,
    instead of being reported as false failures. A test that wants every
    entry checked keeps its inputs and weights away from the kinks.
    """
    if not isinstance(net, MLP):
        raise InputTypeError(f"net must be a handprop.MLP, got {type(net).__name__}")
    eps = validate.number("eps", eps, low=0, high=1, low_open=True, high_open=True)
    if order not in _STENCILS:
        raise InputError(f"order must be 2 or 4, got {order!r}")
    max_entries = validate.number("max_entries", max_entries, low=1, integer=True)
    tol = validate.number("tol", tol, low=0, low_open=True)
    net64 = net.astype("float64")
    X = net64.check_X(X)
    y = net64.check_y(y, X.shape[0])
    penalty = net64.check_penalty(penalty)
    options = dict(mask_in=mask_in, mask_h=mask_h, label_smoothing=label_smoothing,
                   sample_weight=sample_weight)
    masks = net64.check_options(X.shape[0], **options)["masks"]
    loss, grads = net64.loss_and_grads(X, y, penalty, method=method, **options)
    X_seen = X if mask_in is None else X * np.asarray(mask_in, dtype=np.float64)

    stencil = _STENCILS[order]
    reach = stencil[-1][0] * eps
    rng = np.random.default_rng(seed)
    kinked = net64.activation in KINKED
    base_pattern = _kink_pattern(net64, X_seen, masks) if kinked else None

    def loss_at(flat, i, value) -> tuple[float, bool]:
        """The loss with entry i set to ``value``, and whether a kink moved."""
        flat[i] = value
        moved = kinked and not np.array_equal(_kink_pattern(net64, X_seen, masks), base_pattern)
        return net64.loss(X, y, penalty, **options), moved

    checks = []
    for name in net64.param_names:
        p = net64.params[name]
        flat = p.reshape(-1)  # a view: writing to it perturbs the parameter
        if flat.size > max_entries:
            index = np.sort(rng.choice(flat.size, size=max_entries, replace=False))
        else:
            index = np.arange(flat.size)
        l1 = penalty.lambdas(name)[0] if (penalty is not None and name[0] == "W") else 0.0
        numerical, kink = _differences(flat, index, stencil, eps, loss_at)
        kink |= (np.abs(flat[index]) <= reach) & bool(l1)
        analytic = grads[name].reshape(-1)[index]
        checks.append(ParamCheck(name=name, shape=p.shape, index=index, analytic=analytic,
                                 numerical=numerical,
                                 rel_error=relative_error(analytic, numerical), kink=kink))
    notes = _notes(checks, loss, eps, reach, order, tol)
    return GradcheckReport(checks=checks, eps=float(eps), order=order, tol=float(tol), loss=loss,
                           K=int(X.shape[0]), notes=notes)
