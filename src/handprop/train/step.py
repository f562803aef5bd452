"""The training step: the one place where a minibatch's math is wired.

:class:`Step` takes minibatch b of an epoch through

    gather -> forward (dropout masks) -> loss -> backward (+ penalty)
           -> optimizer update -> max-norm

and :meth:`Step.train_epoch` runs it over an epoch's minibatches. ``fit``
(:mod:`handprop.train.training`) and the scikit-learn estimator's sgd and adam
solvers train through it, and lbfgs minimizes :meth:`Step.objective`, the
same forward, loss, penalty and backward on the whole training set. The
tests in ``tests/test_step.py`` pin it: a few steps of ``fit`` and of the
estimator must move the parameters exactly as an update computed
independently from :meth:`handprop.MLP.loss_and_grads`.

The speed tricks live here and nowhere else:

- the minibatch is gathered with one ``take`` into buffers allocated once
  (a :class:`handprop.core.network.Workspace`), as are every forward and backward
  array and the gradients;
- the backward pass returns ``scale`` times the gradients, where ``scale``
  is what the optimizer asks for (``grad_scale``, the learning rate for
  SGD): multiplying the (K, m) output delta is free, where multiplying each
  gradient afterwards would be a pass over it. The optimizer is told the
  scale and divides it out where it must (:mod:`handprop.train.optimizers`).

Dropout masks are drawn on the CPU from the run's generator, for every
minibatch: the input mask (K, d) first, when the input rate is not 0, then
one mask (K, d_l) per hidden layer, in order, when the hidden rate is not 0.
A GPU run therefore uses the very masks of a CPU run, and a resumed run those
of an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..backend import namespace
from ..core.network import MLP, Workspace, loss_and_gradients
from ..core.penalty import ElasticNet
from ..errors import InputError
from .optimizers import max_norm_

__all__ = ["Step", "StepResult", "EpochTotals", "DropoutMasks", "dropout_mask"]


def dropout_mask(rng: np.random.Generator, out: np.ndarray, rate: float) -> np.ndarray:
    """Fill ``out`` with an inverted-dropout mask: 1 / (1 - rate) with
    probability 1 - rate, else 0 (one ``rng.random`` draw per entry)."""
    rng.random(dtype=out.dtype, out=out)
    np.greater_equal(out, rate, out=out)  # 1.0 where kept, 0.0 where dropped
    out *= 1 / (1 - rate)
    return out


class DropoutMasks:
    """The dropout masks of each minibatch, drawn from ``rng`` into buffers
    allocated once (see the module docstring for the order of the draws).

    Parameters
    ----------
    rng : the run's generator
    K : the largest minibatch
    sizes : the net's (d, d_1, ..., d_L, m)
    rates : (input rate, hidden rate)
    dtype : the net's dtype
    xp : where the masks are used: NumPy, or CuPy (each mask is then copied
        over, k x d_l numbers per minibatch)
    """

    def __init__(self, rng: np.random.Generator, K: int, sizes, rates, dtype, xp=np) -> None:
        self.rng, self.xp = rng, xp
        self.rate_in, self.rate_h = rates
        d, *hidden, _ = sizes
        self.host_in = np.empty((K, d), dtype) if self.rate_in else None
        self.host_h = [np.empty((K, n), dtype) for n in hidden] if self.rate_h else None

    def _draw(self, host: np.ndarray, rate: float):
        mask = dropout_mask(self.rng, host, rate)
        return mask if self.xp is np else self.xp.asarray(mask)

    def draw(self, k: int) -> tuple:
        """(input mask (k, d) or None, tuple of L hidden masks (k, d_l) or None)."""
        mask_in = self._draw(self.host_in[:k], self.rate_in) if self.rate_in else None
        masks = (tuple(self._draw(h[:k], self.rate_h) for h in self.host_h)
                 if self.rate_h else None)
        return mask_in, masks


class _Batches:
    """The minibatches of an epoch, gathered (and distorted) into buffers.

    Without augmentation each minibatch is one ``take`` into the workspace.
    With it, a background thread prepares minibatch b + 1 (gather and
    distortion, which NumPy and SciPy run without holding the GIL) while
    minibatch b trains; each is distorted with a generator seeded by
    (seed, epoch, b), so the result does not depend on the timing.

    X (n, d) and T live where the workspace does (NumPy or CuPy arrays);
    ``host_X`` is X in NumPy, which the distortions read. X may also be a
    SciPy sparse matrix in CSR form, on the CPU: each minibatch's rows are
    then made dense, and only those.
    """

    def __init__(self, X, T, work: Workspace, augment, seed: int, host_X=None):
        self.X, self.T, self.work, self.augment, self.seed = X, T, work, augment, seed
        self.host_X = X if host_X is None else host_X
        self.sparse = _is_sparse(X)
        self.xp = namespace(T) if self.sparse else namespace(X)
        self.pool = None
        self.pending = {}
        self.order = self.order_dev = None

    def open(self) -> None:
        if self.augment is not None and self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="handprop-augment")

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def start(self, epoch: int, order: np.ndarray, batch_size: int, first: int) -> None:
        self.epoch, self.order, self.batch_size = epoch, order, batch_size
        self.order_dev = order if self.xp is np else self.xp.asarray(order)
        self.pending = {}
        if self.pool is not None:
            self._submit(first)

    def _make(self, b: int):
        idx = self.order[b * self.batch_size:(b + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, self.epoch, b])
        X = self.host_X
        Xb = np.asarray(self.augment(X[idx], rng), dtype=X.dtype)
        if Xb.shape != (len(idx), X.shape[1]):
            raise InputError(f"augment returned shape {Xb.shape}, expected "
                             f"{(len(idx), X.shape[1])}")
        return Xb

    def _submit(self, b: int) -> None:
        if b * self.batch_size < len(self.order) and b not in self.pending:
            self.pending[b] = self.pool.submit(self._make, b)

    def get(self, b: int):
        """Minibatch b: X (k, d) and its targets in the workspace's buffers,
        and the (k,) indices of its examples, all where the workspace lives."""
        xp = self.xp
        idx = self.order_dev[b * self.batch_size:(b + 1) * self.batch_size]
        k = len(idx)
        Xb, Tb = self.work.X[:k], self.work.y[:k]
        xp.take(self.T, idx, axis=0, out=Tb)
        if self.sparse:  # only this minibatch's rows become dense
            rows = self.order[b * self.batch_size:(b + 1) * self.batch_size]
            xp.copyto(Xb, xp.asarray(self.X[rows].toarray()))
            return Xb, Tb, idx
        if self.pool is None:
            xp.take(self.X, idx, axis=0, out=Xb)  # one contiguous gather
            return Xb, Tb, idx
        self._submit(b)
        ready = self.pending.pop(b).result()
        self._submit(b + 1)
        xp.copyto(Xb, xp.asarray(ready))
        return Xb, Tb, idx


def _is_sparse(X) -> bool:
    return hasattr(X, "tocsr") and hasattr(X, "nnz")  # a SciPy sparse matrix or array


class StepResult(NamedTuple):
    """What one step measured, before its update.

    Attributes
    ----------
    loss : the minibatch's mean loss, without the penalty (non-finite when
        the step diverged; no update was then made)
    penalty : the penalty's value, when the step was asked to track it, else 0
    tally : the output pair's sums for its measure (``Output.tally``): the
        misclassified count, or R^2's sums; None when the step diverged
    k : the minibatch's size
    """

    loss: float
    penalty: float
    tally: np.ndarray | None
    k: int


@dataclass
class EpochTotals:
    """Sums over the minibatches trained so far in one epoch.

    Attributes
    ----------
    batch : the next minibatch to train (the number trained so far)
    seen : examples trained on
    tally : the sums of the output pair's measure (``Output.tally``) over
        them, or None before the first minibatch
    loss_sum : sum of minibatch loss x minibatch size (without the penalty)
    penalty_sum : the same for the penalty (when tracked)
    diverged : None, or (b, loss, lr) when minibatch b's loss was not finite
        at rate lr and the epoch stopped there, without its update
    """

    batch: int = 0
    seen: int = 0
    tally: np.ndarray | None = None
    loss_sum: float = 0.0
    penalty_sum: float = 0.0
    diverged: tuple | None = None

    def measure(self, pair, n: int | None = None) -> float:
        """The pair's measure (error rate or R^2) over the examples seen."""
        n = self.seen if n is None else n
        return pair.score(self.tally, n) if self.tally is not None else math.nan


class Step:
    """One minibatch step, and the epochs made of them.

    Parameters
    ----------
    net : MLP, for its architecture (its parameters are not read)
    params : the arrays that the step updates in place: ``net.params``, or
        their copies on a GPU
    X : (n, d) training inputs; T : their targets, as ``net.check_y`` gives
        them; both where ``params`` live
    optimizer : an optimizer of :mod:`handprop.train.optimizers` (None for a step
        used only for :meth:`objective`)
    batch_size : K, the largest minibatch
    penalty : ElasticNet or None
    decay : scikit-learn's alpha / 2: adds ``decay / n_b ||Wl||^2`` to the
        loss of a minibatch of total weight n_b, for every weight matrix
    dropout : (input rate, hidden rate)
    max_norm : None, or the largest L2 norm of a row of W1 ... WL
    label_smoothing : eps in [0, 1)
    sample_weight : None, or (n,) weights >= 0, where ``params`` live
    rng : the generator of the dropout masks (needed with dropout)
    augment, seed, host_X : distortion of each minibatch (see ``fit``):
        a callable, the run's seed, and X in NumPy
    track_penalty : compute the penalty's value at every step (the
        estimator reports it in ``loss_curve_``)
    stop_on_nonfinite : True (``fit``): a minibatch whose loss is not finite
        makes no update, and its epoch stops there; False (the estimator,
        as scikit-learn): the update is made anyway
    """

    def __init__(self, net: MLP, params: dict, X, T, *, optimizer, batch_size: int,
                 penalty: ElasticNet | None = None, decay: float = 0.0,
                 dropout: tuple[float, float] = (0.0, 0.0), max_norm: float | None = None,
                 label_smoothing: float = 0.0, sample_weight=None,
                 rng: np.random.Generator | None = None, augment=None, seed: int = 0,
                 host_X=None, track_penalty: bool = False,
                 stop_on_nonfinite: bool = True) -> None:
        self.params, self.X, self.T, self.weights = params, X, T, sample_weight
        self.optimizer = optimizer
        self.activation, self.pair, self.L = net.activation, net.pair, net.L
        self.penalty = net.check_penalty(penalty)
        self.decay, self.max_norm, self.smoothing = decay, max_norm, label_smoothing
        self.track_penalty = track_penalty
        self.stop_on_nonfinite = stop_on_nonfinite
        self.xp = namespace(T) if _is_sparse(X) else namespace(X)
        self._net, self._rng, self._dropout = net, rng, dropout
        self._augment, self._seed, self._host_X = augment, seed, host_X
        self._penalties: dict[float, ElasticNet | None] = {}
        if optimizer is None:  # only the objective: no minibatch buffers
            self.batch_size = batch_size
            self.n_batches = -(-X.shape[0] // batch_size)
            self.work = self.masks = None
            self.batches = _Batches(X, T, None, None, seed)
            return
        self._buffers(batch_size)

    def _buffers(self, batch_size: int) -> None:
        """The minibatch buffers of minibatches of at most ``batch_size``."""
        net, X = self._net, self.X
        self.batch_size = batch_size
        self.n_batches = -(-X.shape[0] // batch_size)
        K = max(1, min(batch_size, X.shape[0]))
        self.work = Workspace(net.sizes, K, net.dtype, net.pair, self.xp)
        self.masks = (DropoutMasks(self._rng, K, net.sizes, self._dropout, net.dtype, self.xp)
                      if any(self._dropout) else None)
        self.batches = _Batches(X, self.T, self.work, self._augment, self._seed,
                                host_X=self._host_X)

    def retune(self, *, penalty=..., batch_size: int | None = None) -> None:
        """Change the penalty (an ElasticNet or None) or the minibatch size
        K between two minibatches, for a run whose settings change as it
        trains (the playground). A new K takes effect at the next
        :meth:`start_epoch`: call it between epochs. The optimizer's own
        parameters (momentum) are its attributes; the learning rate is the
        caller's, given to every step."""
        if penalty is not ...:
            self.penalty = self._net.check_penalty(penalty)
            self._penalties.clear()
        if batch_size is not None and batch_size != self.batch_size:
            was_open = self.batches.pool is not None
            self.batches.close()
            self._buffers(batch_size)
            if was_open:
                self.batches.open()

    def __enter__(self) -> Step:
        self.batches.open()
        return self

    def __exit__(self, *exc) -> None:
        self.batches.close()

    def _penalty(self, n: float) -> ElasticNet | None:
        """The penalty of a minibatch of total weight n: with a decay, the L2
        lambdas grow by decay / n (cached: n takes few values)."""
        if not self.decay:
            return self.penalty
        pen = self._penalties.get(n)
        if pen is None:
            base = self.penalty or ElasticNet()
            pen = self._penalties[n] = base.with_l2(self.decay / n, self.L + 1)
        return pen

    def start_epoch(self, epoch: int, order: np.ndarray, first: int = 0) -> None:
        """Train the coming minibatches in ``order`` (n,), a NumPy permutation
        of the examples; ``first`` is the first minibatch that will be trained."""
        self.batches.start(epoch, order, self.batch_size, first)

    def __call__(self, b: int, lr: float) -> StepResult:
        """Minibatch b of the current epoch, at learning rate ``lr``.

        When the minibatch's loss is not finite the step returns it and makes
        no update.
        """
        xp, params, work = self.xp, self.params, self.work
        Xb, Tb, idx = self.batches.get(b)  # gather
        k = len(idx)
        wb = None if self.weights is None else self.weights[idx]
        mask_in, masks = self.masks.draw(k) if self.masks is not None else (None, None)
        if mask_in is not None:
            Xb = xp.multiply(Xb, mask_in, out=work.X[:k])
        penalty = self._penalty(k if wb is None else float(wb.sum()))
        scale = self.optimizer.grad_scale(lr)
        result = loss_and_gradients(
            params, Xb, Tb, self.activation, self.pair, penalty, scale=scale, work=work,
            masks=masks, label_smoothing=self.smoothing, sample_weight=wb,
            penalty_value=self.track_penalty, stop_if_not_finite=self.stop_on_nonfinite)
        if result.grads is None:  # the loss is not finite: no update
            return StepResult(result.loss, math.nan, None, k)
        tally = self.pair.tally(result.cache.o_a, result.cache.o_s, Tb)
        self.optimizer.step(params, result.grads, lr, scale=scale)
        if self.max_norm is not None:
            for l in range(1, self.L + 1):
                max_norm_(params[f"W{l}"], self.max_norm)
        return StepResult(result.loss, result.penalty, tally, k)

    def train_epoch(self, rate, *, totals: EpochTotals | None = None,
                    after_batch=None) -> EpochTotals:
        """Train the current epoch's minibatches from ``totals.batch`` on.

        Parameters
        ----------
        rate : callable, b -> the learning rate of minibatch b
        totals : the sums of the minibatches already trained this epoch
            (a resumed epoch), or None for a new epoch
        after_batch : optional callable, b -> True to stop after minibatch b
            (a signal, say); called after every minibatch

        Returns
        -------
        EpochTotals; ``diverged`` is set when a loss was not finite (the
        parameters then hold the update of the minibatch before)
        """
        totals = EpochTotals() if totals is None else totals
        while totals.batch < self.n_batches:
            b = totals.batch
            lr = rate(b)
            result = self(b, lr)
            if not math.isfinite(result.loss) and self.stop_on_nonfinite:
                totals.diverged = (b, result.loss, lr)
                return totals
            totals.batch = b + 1
            totals.seen += result.k
            totals.tally = result.tally if totals.tally is None else totals.tally + result.tally
            totals.loss_sum += result.loss * result.k
            totals.penalty_sum += result.penalty * result.k
            if after_batch is not None and after_batch(b) is True:
                break
        return totals

    def objective(self, X, T, sample_weight=None, *, chunk: int = 4096) -> tuple[float, dict]:
        """The loss of the whole set X (n, d), T, with the penalty (and the
        decay for n examples, or their total weight), and its gradients: what
        lbfgs minimizes. No dropout; new arrays, not the step's buffers.

        A sparse X is made dense ``chunk`` rows at a time: the loss and the
        gradients are then sums over the chunks, each weighted by its share
        of the examples (or of their weight), and the penalty is added once.
        """
        n = X.shape[0] if sample_weight is None else float(sample_weight.sum())
        penalty = self._penalty(n)
        if not _is_sparse(X):
            result = loss_and_gradients(self.params, X, T, self.activation, self.pair, penalty,
                                        label_smoothing=self.smoothing,
                                        sample_weight=sample_weight)
            return result.loss + result.penalty, result.grads
        X = X.tocsr()
        loss, grads = 0.0, None
        for start in range(0, X.shape[0], chunk):
            rows = slice(start, start + chunk)
            Xc = X[rows].toarray().astype(self.params["W1"].dtype, copy=False)
            wc = None if sample_weight is None else sample_weight[rows]
            share = (Xc.shape[0] if wc is None else float(wc.sum())) / n
            if share == 0:
                continue
            part = loss_and_gradients(self.params, Xc, T[rows], self.activation, self.pair,
                                      None, scale=share, label_smoothing=self.smoothing,
                                      sample_weight=wc)
            loss += share * part.loss
            if grads is None:
                grads = part.grads
            else:
                for k in grads:
                    grads[k] += part.grads[k]
        if penalty is not None:
            loss += penalty.value(self.params)
            for k in grads:
                if k.startswith("W"):
                    penalty.add_grad(k, self.params[k], grads[k])
        return loss, grads
