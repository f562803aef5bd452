"""Training by minibatch gradient descent, with one record per epoch.

After each epoch :func:`fit` records the six numbers the assignment asks for
(error rate and average loss on train, valid and test), the learning rate and
the epoch's duration. The train figures are accumulated on the fly from the
minibatch forward passes that the gradient needs anyway, so they describe the
parameters as they moved during the epoch; the valid and test figures are
computed after it, on the epoch's final parameters. The losses recorded are
the mean cross-entropy, without the penalty, so that the three sets compare.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from . import checkpoint as ckpt
from .backend import namespace, resolve_device, to_numpy
from .checkpoint import AppendLog
from .files import write_text
from .network import MLP, Workspace, backward, cross_entropy, forward
from .optimizers import SGD, Adam, max_norm_
from .penalty import ElasticNet
from .schedules import Schedule, make_schedule

__all__ = ["COLUMNS", "EpochRecord", "History", "Diverged", "evaluate", "fit"]


@dataclass
class EpochRecord:
    """The figures of one epoch. Valid and test figures are NaN when that set
    was not given; ``lr`` is the rate at the start of the epoch (a cosine
    schedule lowers it before every minibatch); ``seconds`` is the epoch's
    wall time, its evaluation included."""

    epoch: int
    train_error: float
    train_loss: float
    valid_error: float
    valid_loss: float
    test_error: float
    test_loss: float
    lr: float
    seconds: float


COLUMNS = tuple(f.name for f in fields(EpochRecord))


class History(list):
    """A list of :class:`EpochRecord`, one per epoch, with CSV and JSON I/O.

    Attributes
    ----------
    best_epoch : int or None, the epoch whose parameters the net holds after
        early stopping (None when early stopping was off)
    stop_reason : str, why training stopped
    """

    def __init__(self, records=(), *, best_epoch: int | None = None, stop_reason: str = ""):
        super().__init__(records)
        self.best_epoch = best_epoch
        self.stop_reason = stop_reason

    def column(self, name: str) -> np.ndarray:
        """One column over the epochs, shape (n_epochs,)."""
        if name not in COLUMNS:
            raise KeyError(f"unknown column {name!r}; columns are {', '.join(COLUMNS)}")
        return np.array([getattr(r, name) for r in self], dtype=float)

    def to_csv(self) -> str:
        """The records as CSV text with a header row of :data:`COLUMNS`."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in self:
            writer.writerow([_format(getattr(r, c)) for c in COLUMNS])
        return out.getvalue()

    def save_csv(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_csv` to ``path`` atomically."""
        write_text(path, self.to_csv())

    @classmethod
    def read_csv(cls, path: str | os.PathLike) -> History:
        """Read a log written by :meth:`save_csv`; a ValueError names what is wrong."""
        try:
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the log ({exc})") from None
        if not rows or tuple(rows[0]) != COLUMNS:
            raise ValueError(f"{path}: not a handprop log: the header must be "
                             f"{','.join(COLUMNS)}")
        records = []
        for line, row in enumerate(rows[1:], start=2):
            if len(row) != len(COLUMNS):
                raise ValueError(f"{path}: line {line} has {len(row)} cells, "
                                 f"expected {len(COLUMNS)}")
            try:
                values = [float(v) for v in row]
            except ValueError:
                raise ValueError(f"{path}: line {line} holds a non-numeric cell") from None
            values[0] = int(values[0])
            records.append(EpochRecord(*values))
        return cls(records)

    def to_dicts(self) -> list[dict]:
        """The records as dicts, with NaN as None (for JSON)."""
        return [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                 for k, v in asdict(r).items()} for r in self]

    @classmethod
    def from_dicts(cls, rows: list[dict], **kwargs) -> History:
        return cls([EpochRecord(**{k: (math.nan if v is None else v) for k, v in row.items()})
                    for row in rows], **kwargs)


def _format(value) -> str:
    if isinstance(value, int):
        return str(value)
    return "nan" if math.isnan(value) else repr(float(value))


class Diverged(RuntimeError):
    """The loss became NaN or infinite. ``history`` holds the finished epochs;
    the network holds the last parameters that gave a finite loss at the end
    of an epoch (or its initial ones)."""

    def __init__(self, message: str, history: History):
        super().__init__(message)
        self.history = history


def evaluate(net: MLP, X, y, *, chunk: int = 2048) -> tuple[float, float]:
    """Error rate and mean cross-entropy of ``net`` on X (n, d), y (n,).

    The forward passes run on ``chunk`` rows at a time, in buffers allocated
    once: large enough for efficient matrix products, small enough to keep
    memory bounded (2048 rows of 1024 hidden units is 8 MB in float32).
    """
    X = net.check_X(X)
    y = net.check_y(y, X.shape[0])
    work = Workspace(net.d, net.d_h, net.m, min(chunk, len(X)), net.dtype)
    return _evaluate(net.params, net.activation, X, y, work)


def _evaluate(params: dict, activation: str, X, y, work: Workspace) -> tuple[float, float]:
    """:func:`evaluate` on checked arrays (NumPy or CuPy, as ``params``), with
    the given buffers."""
    xp = namespace(X)
    chunk = work.X.shape[0]
    wrong = 0
    total = 0.0
    for start in range(0, len(X), chunk):
        Xc, yc = X[start:start + chunk], y[start:start + chunk]
        o_a = forward(params, Xc, activation, out=work.cache(len(Xc))).o_a
        wrong += int(xp.count_nonzero(o_a.argmax(axis=1) != yc))
        total += cross_entropy(o_a, yc) * len(Xc)
    return wrong / len(X), total / len(X)


def _check_split(net: MLP, split, name: str):
    if split is None:
        return None
    if not (isinstance(split, (tuple, list)) and len(split) == 2):
        raise TypeError(f"{name} must be a pair (X, y), got {type(split).__name__}")
    X = net.check_X(split[0])
    return X, net.check_y(split[1], X.shape[0])


def _check_number(name: str, value, *, low: float, integer: bool = False,
                  strict: bool = True) -> None:
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(
        value, (int, float, np.integer, np.floating))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value):
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    if value < low or (strict and value == low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {value!r}")


def fit(
    net: MLP,
    X,
    y,
    *,
    valid=None,
    test=None,
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 0.1,
    momentum: float = 0.0,
    nesterov: bool = False,
    schedule: str | Schedule = "constant",
    penalty: ElasticNet | None = None,
    patience: int | None = None,
    seed: int = 0,
    progress: bool = True,
    log: str | os.PathLike | None = None,
    on_epoch: Callable[[EpochRecord], bool | None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    force: bool = False,
    optimizer: str = "sgd",
    betas: tuple[float, float] = (0.9, 0.999),
    epsilon: float = 1e-8,
    dropout: float | tuple[float, float] = 0.0,
    max_norm: float | None = None,
    label_smoothing: float = 0.0,
    augment=None,
    sample_weight=None,
    device: str = "cpu",
) -> History:
    """Train ``net`` in place by minibatch gradient descent.

    Parameters
    ----------
    net : MLP, trained in place (its arrays are updated, never replaced)
    X : (n, d) training inputs; y : (n,) their classes
    valid, test : (X, y) pairs or None, evaluated after each epoch
    epochs : int >= 1
    batch_size : int >= 1, K; the last minibatch of an epoch may be smaller
    lr : float > 0, the learning rate (the schedule's starting point)
    momentum, nesterov : see :class:`handprop.optimizers.SGD`
    schedule : "constant", "step", "cosine", "plateau" or a Schedule
    penalty : ElasticNet or None
    patience : int or None. With a validation set, stop once the validation
        error has not improved for this many epochs, and restore the
        parameters of the best epoch.
    seed : int, seeds the shuffling; the same seed gives the same history
    progress : show a tqdm bar on a terminal (never when output is not one)
    log : path of a CSV log; one row is appended and fsynced per epoch
    on_epoch : called with each EpochRecord as the epoch ends; if it returns
        True, training stops after that epoch
    checkpoint : a folder; after every epoch (and when interrupted) its
        ``checkpoint.npz`` is replaced atomically by the run's full state
    resume : a folder (or checkpoint file) to continue from. The run must
        have the same hyper-parameters and data; the result is then identical
        to a run that was never stopped (``seconds`` aside). Checkpoints go
        on being written there unless ``checkpoint`` names another folder.
    force : resume even if hyper-parameters differ (the new ones apply)
    optimizer : "sgd" (with ``momentum`` and ``nesterov``) or "adam" (with
        ``betas`` and ``epsilon``); see :mod:`handprop.optimizers`
    dropout : the dropout rate of the hidden layer, or (input rate, hidden
        rate); inverted dropout, so evaluation uses the net as it is
    max_norm : if given, after every step each row of W1 whose L2 norm
        exceeds it is scaled back to it
    label_smoothing : eps in [0, 1); the target is (1 - eps) onehot + eps / m
    augment : None, an :class:`handprop.augment.Augmenter`, a string of its
        kinds ("shift", "affine", "elastic", comma-separated), or any
        callable ``(X_batch, rng) -> X_batch``. Each minibatch is distorted
        afresh, in a background thread while the previous one trains, from a
        generator seeded by (seed, epoch, minibatch), so that runs (and
        resumed runs) are reproducible.
    sample_weight : optional (n,) weights >= 0 of the training examples
    device : "cpu", or "cuda" / "cuda:N" to train on an NVIDIA GPU with CuPy
        (see :mod:`handprop.backend`). The data and the parameters are copied
        to the GPU once; the same forward and backward code runs there, and
        the net's NumPy arrays receive the parameters after every epoch. The
        shuffling, the dropout masks and the distortions are drawn on the
        CPU, as they are for device="cpu", so a GPU run follows the same
        path and differs only by float round-off.

    Returns
    -------
    History, one EpochRecord per epoch

    Raises
    ------
    Diverged
        when the loss becomes NaN or infinite; the net is then restored to
        the parameters it had at the end of the last finished epoch.
    handprop.checkpoint.Interrupted
        on SIGINT or SIGTERM, after the current minibatch, and after writing
        a checkpoint when there is a checkpoint folder. A second signal stops
        at once.
    handprop.checkpoint.ResumeMismatch
        when ``resume`` names a run with other hyper-parameters, listing them.
    handprop.checkpoint.CheckpointError
        when a checkpoint cannot be written (disk full, folder unwritable);
        the previous checkpoint is intact.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net must be a handprop.MLP, got {type(net).__name__}")
    xp = resolve_device(device)
    X = net.check_X(X)
    y = net.check_y(y, X.shape[0])
    valid = _check_split(net, valid, "valid")
    test = _check_split(net, test, "test")
    _check_number("epochs", epochs, low=1, integer=True, strict=False)
    _check_number("batch_size", batch_size, low=1, integer=True, strict=False)
    _check_number("lr", lr, low=0)
    if patience is not None:
        _check_number("patience", patience, low=1, integer=True, strict=False)
        if valid is None:
            raise ValueError("patience (early stopping) needs a validation set: pass valid=(X, y)")
    penalty = MLP.check_penalty(penalty)
    if optimizer == "sgd":
        opt = SGD(momentum, nesterov)
    elif optimizer == "adam":
        opt = Adam(*betas, epsilon)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    rate_in, rate_h = (0.0, dropout) if isinstance(dropout, (int, float)) else tuple(dropout)
    for name, rate in (("input dropout", rate_in), ("hidden dropout", rate_h)):
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"{name} rate must be a number in [0, 1), got {rate!r}")
    if max_norm is not None:
        _check_number("max_norm", max_norm, low=0)
    smoothing = net.check_options(1, label_smoothing=label_smoothing)["label_smoothing"]
    if sample_weight is not None:
        sample_weight = net.check_options(X.shape[0], sample_weight=sample_weight)[
            "sample_weight"]
    augmenter = _augmenter(augment, X.shape[1])
    sched = make_schedule(schedule, lr, epochs)
    settings = {
        "net": {"d": net.d, "d_h": net.d_h, "m": net.m, "activation": net.activation,
                "dtype": net.dtype.name},
        "epochs": epochs, "batch_size": batch_size, "lr": float(lr),
        "optimizer": opt.config(),
        "dropout": [float(rate_in), float(rate_h)], "max_norm": max_norm,
        "label_smoothing": smoothing,
        "augment": repr(augmenter) if augmenter is not None else None,
        "sample_weight": None if sample_weight is None else ckpt.fingerprint(
            sample_weight[:, None], np.zeros(0)),
        "schedule": {"kind": type(sched).__name__,
                     **{k: v for k, v in sched.state().items() if k != "lr"}},
        "penalty": (penalty or ElasticNet()).to_dict(), "patience": patience, "seed": seed,
        "data": {"train": ckpt.fingerprint(X, y),
                 "valid": ckpt.fingerprint(*valid) if valid else None,
                 "test": ckpt.fingerprint(*test) if test else None},
    }
    run = _Run(net, opt, sched, np.random.default_rng(seed), settings)
    if resume is not None:
        run.restore(resume, force)
        checkpoint = resume if checkpoint is None else checkpoint
    if checkpoint is not None:
        folder = Path(checkpoint)
        folder = folder.parent if folder.suffix == ".npz" else folder
        if not folder.is_dir():
            raise ValueError(f"checkpoint folder {folder} does not exist")
    logger = AppendLog(log, run.history) if log is not None else None
    if run.finished:
        return run.finish(patience)

    from tqdm.auto import tqdm

    n = X.shape[0]
    n_batches = -(-n // batch_size)
    on_gpu = xp is not np
    if on_gpu:  # the data and the parameters, copied to the GPU once
        params = {k: xp.asarray(v) for k, v in net.params.items()}
        run.optimizer.map_state(xp.asarray)
        X_dev, y_dev = xp.asarray(X), xp.asarray(y)
        valid_dev = tuple(xp.asarray(a) for a in valid) if valid else None
        test_dev = tuple(xp.asarray(a) for a in test) if test else None
        weights = None if sample_weight is None else xp.asarray(sample_weight)
        # the net's own arrays hold the end of the last good epoch
        snapshot = net.params
    else:
        params = net.params
        X_dev, y_dev, valid_dev, test_dev, weights = X, y, valid, test, sample_weight
        snapshot = {k: v.copy() for k, v in params.items()}  # end of the last good epoch

    def rollback():
        """Return the net to the end of the last good epoch (on a GPU, the
        net's arrays already hold it)."""
        if not on_gpu:
            _restore(params, snapshot)

    work = Workspace(net.d, net.d_h, net.m, min(batch_size, n), net.dtype, xp)
    eval_work = Workspace(net.d, net.d_h, net.m, 2048, net.dtype, xp) if (valid or test) else None
    done = run.epoch * n_batches + (run.in_epoch["batch"] if run.in_epoch else 0)
    bar = tqdm(total=epochs * n_batches, initial=done, disable=None if progress else True,
               unit="batch", leave=False, dynamic_ncols=True)
    # Overflow is not warned about: a loss that overflows is caught below and
    # reported as divergence, with a message that says what to do.
    masks = _Masks(run.rng, work.X.shape[0], net, rate_in, rate_h, xp)
    batches = _Batches(X_dev, y_dev, work, augmenter, seed, host_X=X)
    with bar, batches, np.errstate(over="ignore", invalid="ignore"), \
            ckpt.SignalGuard() as guard:
        for epoch in range(run.epoch + 1, epochs + 1):
            part = run.in_epoch
            if part is None:
                part = {"order": run.rng.permutation(n), "batch": 0, "wrong": 0,
                        "loss_sum": 0.0, "seconds": 0.0, "first_rate": sched.rate(epoch)}
            run.in_epoch = part
            start_time = time.perf_counter() - part["seconds"]
            order = part["order"]
            rate = part["first_rate"]
            scale = opt.grad_scale(rate)
            batches.start(epoch, order, batch_size, part["batch"])
            for b in range(part["batch"], n_batches):
                if sched.per_batch:
                    rate = sched.rate(epoch + b / n_batches)
                    scale = opt.grad_scale(rate)
                Xb, yb, idx = batches.get(b)
                k = len(idx)
                if rate_in:
                    Xb = xp.multiply(Xb, masks.inputs(k), out=work.X[:k])
                mask_h = masks.hidden(k) if rate_h else None
                wb = None if weights is None else weights[idx]
                cache = forward(params, Xb, net.activation, out=work.cache(k), mask_h=mask_h)
                batch_loss = cross_entropy(cache.o_a, yb, sample_weight=wb,
                                           label_smoothing=smoothing)
                if not math.isfinite(batch_loss):
                    rollback()
                    raise run.diverged(f"the loss became {batch_loss} at epoch {epoch}, "
                                       f"minibatch {b + 1} of {n_batches} (lr = {rate:g})")
                part["wrong"] += int(xp.count_nonzero(cache.o_a.argmax(axis=1) != yb))
                part["loss_sum"] += batch_loss * k
                grads = backward(params, cache, Xb, yb, net.activation, penalty, scale=scale,
                                 work=work, mask_h=mask_h, sample_weight=wb,
                                 label_smoothing=smoothing)
                opt.step(params, grads, rate)
                if max_norm is not None:
                    max_norm_(params["W1"], max_norm)
                part["batch"] = b + 1
                bar.update()
                if guard.signum is not None and b + 1 < n_batches:
                    part["seconds"] = time.perf_counter() - start_time
                    if on_gpu:
                        _restore(net.params, params)  # what the checkpoint saves
                    raise run.interrupted(guard.signum, epoch, b + 1, n_batches, checkpoint)
            if not all(bool(xp.all(xp.isfinite(p))) for p in params.values()):
                rollback()
                raise run.diverged(f"the parameters became infinite in epoch {epoch} "
                                   f"(lr = {rate:g})")
            _restore(snapshot, params)  # on a GPU, the snapshot is the net's own arrays
            v_err, v_loss = (_evaluate(params, net.activation, *valid_dev, eval_work) if valid
                             else (math.nan, math.nan))
            t_err, t_loss = (_evaluate(params, net.activation, *test_dev, eval_work) if test
                             else (math.nan, math.nan))
            record = EpochRecord(epoch, part["wrong"] / n, part["loss_sum"] / n, v_err, v_loss,
                                 t_err, t_loss, part["first_rate"],
                                 time.perf_counter() - start_time)
            run.end_epoch(record, patience)
            if run.finished is None and on_epoch is not None and on_epoch(record) is True:
                run.finished = f"stopped by on_epoch after epoch {epoch}"
            if run.finished is None and epoch == epochs:
                run.finished = f"finished {epochs} epochs"
            if logger is not None:
                logger.append(run.history)
            if checkpoint is not None:
                run.save(checkpoint)
            bar.set_postfix_str(f"epoch {epoch} train {record.train_error:.2%}"
                                + (f" valid {v_err:.2%}" if valid else ""))
            if run.finished:
                break
            if guard.signum is not None:
                raise run.interrupted(guard.signum, epoch + 1, 0, n_batches, checkpoint,
                                      saved=True)
    return run.finish(patience)


def _dropout_mask(rng: np.random.Generator, out: np.ndarray, rate: float) -> np.ndarray:
    """Fill ``out`` with an inverted-dropout mask: 1 / (1 - rate) with
    probability 1 - rate, else 0."""
    rng.random(dtype=out.dtype, out=out)
    np.greater_equal(out, rate, out=out)  # 1.0 where kept, 0.0 where dropped
    out *= 1 / (1 - rate)
    return out


class _Masks:
    """The dropout masks of each minibatch, drawn from the run's generator.

    They are drawn on the CPU, into buffers allocated once, whatever the
    device: a GPU run then uses the very masks of a CPU run (and a resumed
    run those of an uninterrupted one); on a GPU each mask is then copied
    over, K x d_h numbers per minibatch.
    """

    def __init__(self, rng: np.random.Generator, K: int, net: MLP, rate_in: float,
                 rate_h: float, xp) -> None:
        self.rng, self.rate_in, self.rate_h, self.xp = rng, rate_in, rate_h, xp
        self.host_in = np.empty((K, net.d), net.dtype) if rate_in else None
        self.host_h = np.empty((K, net.d_h), net.dtype) if rate_h else None

    def _draw(self, host: np.ndarray, rate: float):
        mask = _dropout_mask(self.rng, host, rate)
        return mask if self.xp is np else self.xp.asarray(mask)

    def inputs(self, k: int):
        """The (k, d) mask of the inputs."""
        return self._draw(self.host_in[:k], self.rate_in)

    def hidden(self, k: int):
        """The (k, d_h) mask of the hidden units."""
        return self._draw(self.host_h[:k], self.rate_h)


def _augmenter(augment, d: int):
    from .augment import Augmenter

    if isinstance(augment, str):
        augment = Augmenter(augment)
    if isinstance(augment, Augmenter) and augment.shape[0] * augment.shape[1] != d:
        h, w = augment.shape
        raise ValueError(f"augmentation distorts {h} x {w} images, but the examples have "
                         f"{d} features, not {h * w}")
    if augment is None or callable(augment):
        return augment
    raise TypeError(f"augment must be None, a string of kinds, or a callable, got "
                    f"{type(augment).__name__}")


class _Batches:
    """The minibatches of an epoch, gathered (and distorted) into buffers.

    Without augmentation each minibatch is one ``take`` into the workspace.
    With it, a background thread prepares minibatch b + 1 (gather and
    distortion, which NumPy and SciPy run without holding the GIL) while
    minibatch b trains; each is distorted with a generator seeded by
    (seed, epoch, b), so the result does not depend on the timing.

    X (n, d) and y (n,) live where the workspace does (NumPy or CuPy
    arrays); ``host_X`` is X in NumPy, which the distortions read.
    """

    def __init__(self, X, y, work: Workspace, augment, seed: int, host_X=None):
        self.X, self.y, self.work, self.augment, self.seed = X, y, work, augment, seed
        self.host_X = X if host_X is None else host_X
        self.xp = namespace(X)
        self.pool = None
        self.pending = {}

    def __enter__(self):
        if self.augment is not None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="handprop-augment")
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def start(self, epoch: int, order: np.ndarray, batch_size: int, first: int) -> None:
        self.epoch, self.order, self.batch_size = epoch, order, batch_size
        self.order_dev = order if self.xp is np else self.xp.asarray(order)
        self.pending = {}
        if self.pool is not None:
            self._submit(first)

    def _indices(self, b: int) -> np.ndarray:
        return self.order[b * self.batch_size:(b + 1) * self.batch_size]

    def _make(self, b: int):
        idx = self._indices(b)
        rng = np.random.default_rng([self.seed, self.epoch, b])
        X = self.host_X
        Xb = np.asarray(self.augment(X[idx], rng), dtype=X.dtype)
        if Xb.shape != (len(idx), X.shape[1]):
            raise ValueError(f"augment returned shape {Xb.shape}, expected "
                             f"{(len(idx), X.shape[1])}")
        return Xb

    def _submit(self, b: int) -> None:
        if b * self.batch_size < len(self.order) and b not in self.pending:
            self.pending[b] = self.pool.submit(self._make, b)

    def get(self, b: int):
        """Minibatch b: X (k, d) and y (k,) in the workspace's buffers, and
        the (k,) indices of its examples, all where the workspace lives."""
        xp = self.xp
        idx = self.order_dev[b * self.batch_size:(b + 1) * self.batch_size]
        k = len(idx)
        Xb, yb = self.work.X[:k], self.work.y[:k]
        xp.take(self.y, idx, out=yb)
        if self.pool is None:
            xp.take(self.X, idx, axis=0, out=Xb)  # one contiguous gather
            return Xb, yb, idx
        self._submit(b)
        ready = self.pending.pop(b).result()
        self._submit(b + 1)
        xp.copyto(Xb, xp.asarray(ready))
        return Xb, yb, idx


def _restore(params: dict[str, np.ndarray], source: dict[str, np.ndarray]) -> None:
    """Copy ``source``'s arrays into the NumPy arrays of ``params``, in place;
    a source on the GPU is copied back to the CPU."""
    for k, v in source.items():
        params[k][...] = to_numpy(v)


class _Run:
    """The state of a training run that a checkpoint saves and restores."""

    def __init__(self, net: MLP, optimizer: SGD | Adam, sched: Schedule,
                 rng: np.random.Generator,
                 settings: dict):
        self.net = net
        self.settings = settings  # what a resumed run must match
        self.optimizer = optimizer
        self.sched = sched
        self.rng = rng
        self.epoch = 0  # the last finished epoch
        self.history = History()
        self.best_error = math.inf
        self.best_epoch: int | None = None
        self.best_params: dict[str, np.ndarray] | None = None
        self.in_epoch: dict | None = None  # order, batch, wrong, loss_sum, seconds, first_rate
        self.finished: str | None = None

    def end_epoch(self, record: EpochRecord, patience: int | None) -> None:
        self.history.append(record)
        self.epoch = record.epoch
        self.in_epoch = None
        self.sched.observe(record.valid_error if not math.isnan(record.valid_error)
                           else record.train_loss)
        if patience is None:
            return
        if record.valid_error < self.best_error:
            self.best_error, self.best_epoch = record.valid_error, record.epoch
            self.best_params = {k: v.copy() for k, v in self.net.params.items()}
        elif record.epoch - self.best_epoch >= patience:
            self.finished = (f"early stopping: no better validation error for {patience} "
                             f"epochs after epoch {self.best_epoch}")

    def finish(self, patience: int | None) -> History:
        if patience is not None and self.best_params is not None:
            _restore(self.net.params, self.best_params)
            self.history.best_epoch = self.best_epoch
        self.history.stop_reason = self.finished or self.history.stop_reason
        return self.history

    def diverged(self, what: str) -> Diverged:
        message = (f"training diverged: {what}; the parameters are restored to the end of "
                   f"epoch {self.epoch}. Try a smaller learning rate.")
        self.history.stop_reason = message
        return Diverged(message, self.history)

    def interrupted(self, signum: int, epoch: int, batch: int, n_batches: int, checkpoint,
                    saved: bool = False) -> ckpt.Interrupted:
        name = signal_name(signum)
        where = (f"at the start of epoch {epoch}" if batch == 0 else
                 f"in epoch {epoch} after minibatch {batch} of {n_batches}")
        path = None
        if checkpoint is not None:
            path = ckpt.path_in(checkpoint) if saved else self.save(checkpoint)
            message = f"{name}: stopped {where}; checkpoint written to {path}"
        else:
            message = f"{name}: stopped {where}; no checkpoint folder, nothing saved"
        self.history.stop_reason = message
        return ckpt.Interrupted(message, signum, path, self.history)

    # -- checkpoints --------------------------------------------------------

    def save(self, folder):
        from . import __version__

        arrays = {f"param_{k}": v for k, v in self.net.params.items()}
        arrays.update({f"opt_{k}": to_numpy(v) for k, v in self.optimizer.state().items()})
        if self.best_params is not None:
            arrays.update({f"best_{k}": v for k, v in self.best_params.items()})
        part = None
        if self.in_epoch is not None:
            arrays["order"] = self.in_epoch["order"]
            part = {k: v for k, v in self.in_epoch.items() if k != "order"}
        meta = {
            "handprop_version": __version__,
            "settings": self.settings,
            "epoch": self.epoch,
            "history": self.history.to_dicts(),
            "finished": self.finished,
            "rng": self.rng.bit_generator.state,
            "schedule": self.sched.state(),
            "best": {"error": None if math.isinf(self.best_error) else self.best_error,
                     "epoch": self.best_epoch},
            "in_epoch": part,
        }
        return ckpt.save(folder, arrays, meta)

    def restore(self, folder, force: bool) -> None:
        arrays, meta = ckpt.load(folder)
        diffs = ckpt.differences(meta.get("settings", {}), self.settings)
        if diffs and not force:
            raise ckpt.ResumeMismatch(
                f"cannot resume {ckpt.path_in(folder)}: it was started with other settings: "
                f"{'; '.join(diffs)} (force=True, or --force, resumes anyway)")
        try:
            params = {k[len("param_"):]: v for k, v in arrays.items() if k.startswith("param_")}
            self.net.params = params
            self.optimizer.load_state({k[len("opt_"):]: v for k, v in arrays.items()
                                       if k.startswith("opt_")})
            best = {k[len("best_"):]: v for k, v in arrays.items() if k.startswith("best_")}
            self.best_params = best or None
            self.epoch = int(meta["epoch"])
            self.history = History.from_dicts(meta["history"])
            self.finished = meta.get("finished")
            self.rng.bit_generator.state = meta["rng"]
            for key, value in meta["schedule"].items():
                if not force or key not in ("lr", "epochs"):
                    setattr(self.sched, key, value)
            self.best_error = (math.inf if meta["best"]["error"] is None
                               else float(meta["best"]["error"]))
            self.best_epoch = meta["best"]["epoch"]
            if meta.get("in_epoch") is not None:
                self.in_epoch = {**meta["in_epoch"], "order": arrays["order"]}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{ckpt.path_in(folder)}: a damaged checkpoint ({exc})") from None
        if force and diffs:
            self.finished = None  # new settings may extend a finished run


def signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
