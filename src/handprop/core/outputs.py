"""The output/loss pairs: one entry each, and every part of handprop reads it.

An output layer is an output function f, applied to the pre-activations
O_a (K, m), and a loss of the outputs O_s = f(O_a) against the targets T.
Each pair here is a canonical link: f is chosen for its loss so that the
gradient of the loss at O_a is simply

    dL/dO_a = O_s - T          (per example; the minibatch mean divides by K)

with no Jacobian of f to multiply by. That is why the backward pass starts
the same way for every pair (:func:`handprop.core.network.backward`).

==========  =================  ===============================================
output      f                  loss of one example (t its target row)
==========  =================  ===============================================
softmax     softmax, by rows   -log o_s[y]: cross-entropy (T = onehot(y))
logistic    sigmoid, each      -sum_j t_j log o_j + (1 - t_j) log(1 - o_j)
identity    o_s = o_a          (1/2) sum_j (o_j - t_j)^2
exp         exp, each          sum_j t_j log(t_j / o_j) - t_j + o_j: half the
                               Poisson deviance, for counts t_j >= 0
==========  =================  ===============================================

Each :class:`Output` holds f, the loss, the delta, the measure of a fit (the
error rate for classes, R^2 for regression), the targets' check and dtype,
whether label smoothing applies, and what scikit-learn and ONNX call it. The
network, the training step, the estimators, the CLI, the ONNX export and the
playground ask the entry; no code outside this module compares an output's
name.

**A new pair** is one entry here, added to :data:`OUTPUTS`, and its tests:
the gradient checks, the loop-against-matrix checks and the training-step
pins are parametrized over :data:`OUTPUTS`, and its loss must be written out
independently in the reference loop (:mod:`handprop.core.reference`), which
is there to disagree with a wrong entry.

>>> OUTPUTS["logistic"].loss_name, OUTPUTS["logistic"].classifies
('binary cross-entropy', True)
>>> import numpy as np
>>> OUTPUTS["softmax"].row_losses(np.array([[0.0, 0.0]]), np.array([1]), 0.0)
array([0.69314718])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..backend import namespace
from ..errors import InputError, InputTypeError
from . import activations as act

__all__ = ["Output", "OUTPUTS", "output_pair", "by_sklearn_name", "outputs_for", "real_array",
           "all_finite"]


# --------------------------------------------------------------------------
# Shared checks of arrays (the network's input checks use them too)
# --------------------------------------------------------------------------


def real_array(name: str, value, dtype=None) -> np.ndarray:
    """``value`` as an array of real numbers (bools count), or a TypeError."""
    if isinstance(value, (str, bytes)):
        raise InputTypeError(f"{name} must be an array of numbers, got a string")
    arr = np.asarray(value)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
    ) or np.iscomplexobj(arr):
        raise InputTypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr if dtype is None else arr.astype(dtype, copy=False)


def all_finite(arr: np.ndarray) -> bool:
    """True when no entry is NaN or infinite."""
    # A NaN or inf anywhere makes the sum non-finite, so one fast reduction
    # clears the common case; only a non-finite sum (which finite values can
    # also give, by overflow) needs the elementwise test.
    with np.errstate(over="ignore", invalid="ignore"):
        total = arr.sum()
    return bool(np.isfinite(total) or np.all(np.isfinite(arr)))


# --------------------------------------------------------------------------
# The entry
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """One output/loss pair. Arrays are NumPy or CuPy (``xp`` of the input).

    Attributes
    ----------
    name : what ``MLP(output=...)``, ``--output`` and model files call it
    kind : what it models, in a word or two ("classes", "Poisson counts")
    loss_name : the loss, in words
    f : o_a (K, m) -> o_s (K, m), with an optional ``out`` array
    row_losses : (o_a (K, m), T, eps) -> (K,) each example's loss, from the
        pre-activations (stable for any finite o_a); eps is the label
        smoothing (0 when it does not apply)
    subtract_target : (G (K, m) holding o_s, T, eps) -> G - t, in place
    example : (o_a (m,), t, eps) -> (o_s (m,), target (m,), loss): one
        example's output, target row and loss with vectors, written apart
        from the minibatch code above it, for the reference loop
        (:mod:`handprop.core.reference`), which checks one against the other
    classifies : True when the targets are classes or labels: the measure
        is the error rate and early stopping watches the validation error;
        False for regression: the measure is R^2, early stopping watches the
        validation loss, and there are no probabilities
    tally : (o_a, o_s, T) -> a NumPy vector of sums over the examples, from
        which :attr:`measure` is computed once an epoch's minibatches are
        summed: the misclassified count, or R^2's sums per output
    score : (tally sums, n) -> the measure over n examples
    measure : "error" or "r2", the name of the measure in logs and tables
    min_m : the fewest outputs the pair takes
    targets : what y holds, in words, for messages and ``--help``
    check_targets : (y, K, m, dtype) -> the checked targets: (K,) int64
        classes, or (K, m) in the net's dtype; a ValueError/TypeError says
        what was expected
    sample_targets : (rng, K, m) -> random targets of this pair, for checks
    binary : m -> whether m units of this pair hold exactly two classes
        (whose labels a two-class data set gives as they are)
    smoothing : whether label smoothing applies
    predict : (o_a, o_s) -> predictions: (n,) int64 classes, (n, m) or (n,)
        0/1 labels, or o_s itself
    prediction_table : (o_s, m) -> (header, rows) of ``handprop predict``
    sklearn : scikit-learn's ``out_activation_`` for this pair
    sklearn_kind : "classifier" or "regressor": the estimator that has it
    sklearn_loss_per_output : scikit-learn reports this loss averaged over
        the outputs too (its squared error), not summed
    decision : o_a -> what scikit-learn's label binarizer turns into labels
    onnx : whether skl2onnx's MLP converters can write it
    class_indices : the checked targets are (K,) int64 class indices, not a
        (K, m) matrix
    as_one_unit : for a pair that can give two classes on one logistic
        unit: (W (2, d_L), b (2,)) -> (W (1, d_L), b (1,)), the equivalent
        unit, as scikit-learn and ONNX represent two classes; else None
    """

    name: str
    kind: str
    loss_name: str
    f: Callable
    row_losses: Callable
    subtract_target: Callable
    example: Callable
    classifies: bool
    tally: Callable
    score: Callable
    measure: str
    min_m: int
    targets: str
    check_targets: Callable
    sample_targets: Callable
    binary: Callable
    smoothing: bool
    predict: Callable
    prediction_table: Callable
    sklearn: str
    sklearn_kind: str
    sklearn_loss_per_output: bool
    decision: Callable
    onnx: bool
    as_one_unit: Callable | None = None
    class_indices: bool = False

    def target_dtype(self, dtype) -> np.dtype:
        """The dtype of checked targets for a net of ``dtype``: int64 class
        indices, or the net's own."""
        return np.dtype(np.int64) if self.class_indices else np.dtype(dtype)

    def target_shape(self, K: int, m: int) -> tuple[int, ...]:
        """The shape of K checked targets: (K,) class indices, else (K, m)."""
        return (K,) if self.class_indices else (K, m)

    def __repr__(self) -> str:
        return f"Output({self.name!r}: {self.loss_name})"

    def __reduce__(self):
        # pickled (and copied) by name: the entry is the table's own
        return output_pair, (self.name,)


# --------------------------------------------------------------------------
# What the pairs share
# --------------------------------------------------------------------------


def _targets_matrix(kind: str, bounds: Callable | None = None):
    """A check of (K, m) real targets (or (K,) when m = 1): finite, and in
    range by ``bounds(arr)``, which raises when they are not."""

    def check(y, K: int, m: int, dtype) -> np.ndarray:
        arr = real_array("y", y)
        if arr.ndim == 1 and m == 1:
            arr = arr[:, None]
        expected = f"({K}, {m})" + (f" or ({K},)" if m == 1 else "")
        if arr.ndim != 2 or arr.shape[1] != m:
            raise InputError(f"y must have shape {expected} for {m} {kind} outputs, got "
                             f"shape {np.shape(y)}")
        if arr.shape[0] != K:
            raise InputError(f"len(y) = {arr.shape[0]} but X has {K} examples; they must match")
        arr = np.asarray(arr, dtype=dtype)
        if not all_finite(arr):
            raise InputError("y contains NaN or inf; every target must be finite")
        if bounds is not None and arr.size:
            bounds(arr)
        return arr

    return check


def _count_errors(wrong):
    """A tally of misclassified examples from ``wrong(o_a, T)`` (a count)."""
    return lambda o_a, o_s, T: np.array([float(wrong(o_a, T))])


def _error_rate(sums: np.ndarray, n: int) -> float:
    return float(sums[0]) / n if n else float("nan")


def _r2_sums(o_a, o_s, T) -> np.ndarray:
    """Per output: the residual sum of squares, the sum of the targets and
    the sum of their squares (3 m numbers), on the host."""
    xp = namespace(o_s)
    diff = o_s - T
    sums = xp.concatenate([(diff * diff).sum(axis=0), T.sum(axis=0), (T * T).sum(axis=0)])
    return np.asarray(sums.get() if hasattr(sums, "get") else sums, dtype=np.float64)


def _r2(sums: np.ndarray, n: int) -> float:
    """R^2 averaged over the outputs, as scikit-learn's ``r2_score``: 1 -
    SS_res / SS_tot per output; an output whose targets are constant scores
    1 when it is fitted exactly, else 0."""
    if not n:
        return float("nan")
    m = len(sums) // 3
    ss_res, total, squares = sums[:m], sums[m:2 * m], sums[2 * m:]
    ss_tot = np.maximum(squares - total * total / n, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1),
                      np.where(ss_res == 0, 1.0, 0.0))
    return float(r2.mean())


def _values_table(o_s, m: int):
    return [f"output{k}" for k in range(m)], [[f"{v:.6g}" for v in row] for row in o_s]


# --------------------------------------------------------------------------
# softmax + cross-entropy
# --------------------------------------------------------------------------


def _softmax_losses(o_a, T, eps: float):
    # -log o_s[y] = logsumexp(o_a) - o_a[y] (reference, 2.4). Taking the log
    # of an underflowed probability would give inf; this form stays finite.
    # With a smoothed target t, -sum_j t_j log o_s[j] is
    # logsumexp(o_a) - sum_j t_j o_a[j], as sum_j t_j = 1.
    xp = namespace(o_a)
    picked = o_a[xp.arange(o_a.shape[0]), T]
    if eps:
        picked = (1 - eps) * picked + eps * o_a.mean(axis=1)
    return act.logsumexp(o_a) - picked


def _softmax_delta(G, T, eps: float):
    # the log-sum-exp's gradient is o_s, and -o_a[y]'s is -onehot(y); the
    # smoothed target is (1 - eps) onehot(y) + eps / m
    rows = namespace(G).arange(G.shape[0])
    if eps:
        G -= eps / G.shape[1]
        G[rows, T] -= 1 - eps
    else:
        G[rows, T] -= 1
    return G


def _softmax_example(o_a, y, eps: float):
    shifted = o_a - o_a.max()
    o_s = np.exp(shifted) / np.exp(shifted).sum()
    target = np.zeros(o_a.shape[0], dtype=o_a.dtype)  # onehot(y), then smoothed
    target[y] = 1
    target = (1 - eps) * target + eps / o_a.shape[0]
    # -sum_j t_j log o_s[j] = log sum exp(shifted) - sum_j t_j shifted[j]
    return o_s, target, np.log(np.exp(shifted).sum()) - target @ shifted


def _check_classes(y, K: int, m: int, dtype) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise InputError(f"y must be 1-D with shape ({K},), got shape {arr.shape}")
    if arr.shape[0] != K:
        raise InputError(f"len(y) = {arr.shape[0]} but X has {K} examples; they must match")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputTypeError(f"y must hold integer classes in [0, {m}), got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise InputError(f"y must hold integer classes in [0, {m}); got non-integers")
    out = arr.astype(np.int64)
    if out.size and (out.min() < 0 or out.max() >= m):
        raise InputError(f"y must hold classes in [0, {m}); got values from {out.min()} to "
                         f"{out.max()}")
    return out


def _softmax_table(o_s, m: int):
    rows = [[int(row.argmax()), *(f"{p:.6g}" for p in row)] for row in o_s]
    return ["prediction", *(f"p{k}" for k in range(m))], rows


def _difference_unit(W, b):
    # softmax(a0, a1)[1] = sigmoid(a1 - a0): the unit's weights are the
    # difference of the two outputs' rows
    return W[1:] - W[:1], b[1:] - b[:1]


SOFTMAX = Output(
    name="softmax", kind="classes", loss_name="cross-entropy",
    f=act.softmax, row_losses=_softmax_losses, subtract_target=_softmax_delta,
    example=_softmax_example,
    classifies=True,
    tally=_count_errors(lambda o_a, T: namespace(o_a).count_nonzero(o_a.argmax(axis=1) != T)),
    score=_error_rate, measure="error", min_m=2,
    targets="integer classes in [0, m)", check_targets=_check_classes,
    sample_targets=lambda rng, K, m: rng.integers(0, m, size=K),
    binary=lambda m: m == 2, smoothing=True,
    predict=lambda o_a, o_s: o_a.argmax(axis=1).astype(np.int64),
    prediction_table=_softmax_table,
    sklearn="softmax", sklearn_kind="classifier", sklearn_loss_per_output=False,
    decision=lambda o_a: o_a, onnx=True, as_one_unit=_difference_unit, class_indices=True,
)


# --------------------------------------------------------------------------
# logistic + binary cross-entropy
# --------------------------------------------------------------------------


def _smoothed(T, eps: float):
    """A logistic target pulled towards 1/2: (1 - eps) t + eps / 2."""
    return T * (1 - eps) + eps / 2 if eps else T


def _logistic_losses(o_a, T, eps: float):
    # -t log sigmoid(a) - (1 - t) log(1 - sigmoid(a)) is softplus(a) - t a,
    # as log sigmoid(a) = -softplus(-a) and softplus(-a) = softplus(a) - a;
    # softplus is logaddexp(0, a), which never overflows.
    return (act.softplus(o_a) - _smoothed(T, eps) * o_a).sum(axis=1)


def _logistic_delta(G, T, eps: float):
    # softplus(a) - t a has gradient sigmoid(a) - t
    G -= _smoothed(T, eps)
    return G


def _logistic_example(o_a, t, eps: float):
    target = (1 - eps) * t + eps / 2
    e = np.exp(-np.abs(o_a))  # <= 1: never overflows
    o_s = np.where(o_a >= 0, 1 / (1 + e), e / (1 + e))  # sigmoid
    # -t log o - (1 - t) log(1 - o) = max(a, 0) + log(1 + e^-|a|) - t a
    return o_s, target, np.sum(np.maximum(o_a, 0) + np.log1p(e) - target * o_a)


def _in_unit_interval(arr):
    if arr.min() < 0 or arr.max() > 1:
        raise InputError(f"y must hold targets in [0, 1] (0/1 labels) for logistic outputs; "
                         f"got values from {arr.min():g} to {arr.max():g}")


def _labels(o_a, o_s):
    labels = (o_a > 0).astype(np.int64)  # o_s > 1/2
    return labels[:, 0] if labels.shape[1] == 1 else labels


def _logistic_table(o_s, m: int):
    rows = [[*(int(p > 0.5) for p in row), *(f"{p:.6g}" for p in row)] for row in o_s]
    return [*(f"label{k}" for k in range(m)), *(f"p{k}" for k in range(m))], rows


LOGISTIC = Output(
    name="logistic", kind="labels", loss_name="binary cross-entropy",
    f=act.sigmoid, row_losses=_logistic_losses, subtract_target=_logistic_delta,
    example=_logistic_example,
    classifies=True,
    # an example counts as right only when every one of its labels is
    tally=_count_errors(lambda o_a, T: namespace(o_a).count_nonzero(
        ((o_a > 0) != (T >= 0.5)).any(axis=1))),
    score=_error_rate, measure="error", min_m=1,
    targets="0/1 labels (or targets in [0, 1]), (K,) for one unit or (K, m)",
    check_targets=_targets_matrix("logistic", _in_unit_interval),
    sample_targets=lambda rng, K, m: (rng.integers(0, 2, size=(K, m)) if m > 1
                                      else rng.integers(0, 2, size=K)),
    binary=lambda m: m == 1, smoothing=True,
    predict=_labels, prediction_table=_logistic_table,
    sklearn="logistic", sklearn_kind="classifier", sklearn_loss_per_output=False,
    decision=lambda o_a: (o_a > 0).astype(float), onnx=True,
)


# --------------------------------------------------------------------------
# identity + half squared error
# --------------------------------------------------------------------------


def _identity_out(o_a, out=None):
    return o_a  # o_s is o_a itself: no copy


def _squared_losses(o_a, T, eps: float):
    diff = o_a - T
    return 0.5 * namespace(o_a).einsum("ij,ij->i", diff, diff)


def _minus_target(G, T, eps: float):
    # (1/2)(a - t)^2 has gradient a - t; e^a - t a has gradient e^a - t
    G -= T
    return G


def _squared_example(o_a, t, eps: float):
    return o_a, t, 0.5 * np.sum((o_a - t) ** 2)


IDENTITY = Output(
    name="identity", kind="regression", loss_name="half squared error",
    f=_identity_out, row_losses=_squared_losses, subtract_target=_minus_target,
    example=_squared_example,
    classifies=False, tally=_r2_sums, score=_r2, measure="r2", min_m=1,
    targets="real targets, (K,) for one output or (K, m)",
    check_targets=_targets_matrix("identity"),
    sample_targets=lambda rng, K, m: rng.normal(size=(K, m)),
    binary=lambda m: False, smoothing=False,
    predict=lambda o_a, o_s: o_s, prediction_table=_values_table,
    sklearn="identity", sklearn_kind="regressor", sklearn_loss_per_output=True,
    decision=lambda o_a: o_a, onnx=True,
)


# --------------------------------------------------------------------------
# exp + half the Poisson deviance
# --------------------------------------------------------------------------


def _exp_out(o_a, out=None):
    return namespace(o_a).exp(o_a, out=out)


def _poisson_losses(o_a, T, eps: float):
    # sum_j exp(a_j) - t_j a_j + (t_j log t_j - t_j), half the Poisson
    # deviance of the counts t at the rates exp(a) (0 log 0 = 0); the last
    # term does not depend on the parameters, and makes a perfect fit cost 0.
    xp = namespace(o_a)
    tlogt = xp.where(T > 0, T * xp.log(xp.where(T > 0, T, 1)), 0)
    return (xp.exp(o_a) - T * o_a + tlogt - T).sum(axis=1)


def _poisson_example(o_a, t, eps: float):
    o_s = np.exp(o_a)  # the Poisson rates
    t_log_t = np.array([v * np.log(v) if v > 0 else 0.0 for v in t], o_a.dtype)
    return o_s, t, np.sum(o_s - t * o_a + t_log_t - t)


def _counts(arr):
    if arr.min() < 0:
        raise InputError(f"y must hold counts >= 0 for exp (Poisson) outputs; got {arr.min():g}")


EXP = Output(
    name="exp", kind="Poisson", loss_name="half Poisson deviance",
    f=_exp_out, row_losses=_poisson_losses, subtract_target=_minus_target,
    example=_poisson_example,
    classifies=False, tally=_r2_sums, score=_r2, measure="r2", min_m=1,
    targets="counts >= 0, (K,) for one output or (K, m)",
    check_targets=_targets_matrix("exp", _counts),
    sample_targets=lambda rng, K, m: rng.poisson(2.0, size=(K, m)).astype(float),
    binary=lambda m: False, smoothing=False,
    predict=lambda o_a, o_s: o_s, prediction_table=_values_table,
    sklearn="exp", sklearn_kind="regressor", sklearn_loss_per_output=False,
    decision=lambda o_a: o_a, onnx=False,
)


#: The output/loss pairs, by name; the first is the default.
OUTPUTS: dict[str, Output] = {p.name: p for p in (SOFTMAX, LOGISTIC, IDENTITY, EXP)}


def output_pair(name) -> Output:
    """The entry of an output's name, or a ValueError that lists them."""
    if isinstance(name, Output):
        return name
    pair = OUTPUTS.get(name) if isinstance(name, str) else None
    if pair is None:
        raise InputError(f"output must be one of {', '.join(map(repr, OUTPUTS))}, got "
                         f"{name!r}"[:200])
    return pair


def by_sklearn_name(out_activation: str) -> Output:
    """The pair of scikit-learn's ``out_activation_``."""
    for pair in OUTPUTS.values():
        if pair.sklearn == out_activation:
            return pair
    raise InputError(f"no output/loss pair for scikit-learn's {out_activation!r}")


def outputs_for(pair, targets: np.ndarray, where: str = "the data") -> int:
    """m, the outputs a net of ``pair`` (an entry or a name) needs for these
    targets: the classes 0 .. m - 1 of class indices, else the target
    columns. An InputError says why the targets do not fit the pair."""
    pair = output_pair(pair)
    targets = np.asarray(targets)
    if not pair.class_indices:
        return 1 if targets.ndim == 1 else targets.shape[1]
    if targets.ndim != 1:
        others = " or ".join(p.name for p in OUTPUTS.values() if p.min_m == 1)
        raise InputError(f"{where}: {targets.shape[1]} target columns, but {pair.name} "
                         f"outputs take one column of classes; for several targets choose the "
                         f"output {others}")
    if targets.size and (not np.all(np.isfinite(targets)) or np.any(targets != np.round(targets))
                         or targets.min() < 0):
        others = " or ".join(p.name for p in OUTPUTS.values() if not p.classifies)
        raise InputError(f"{where}: labels must be integers >= 0 (class indices) for "
                         f"{pair.name} outputs; for real targets choose the output {others}")
    classes = np.unique(targets)
    if len(classes) < 2:
        raise InputError(f"{where}: every example has label {int(classes[0])}: a classifier "
                         f"needs at least two classes")
    m = int(classes[-1]) + 1
    if m > len(targets):
        raise InputError(f"{where}: a label of {int(classes[-1])} for {len(targets)} examples: "
                         f"labels are class indices 0 to m - 1, with m at most the number of "
                         f"examples; number the classes 0, 1, 2, ...")
    return m
