"""Training by minibatch gradient descent, with one record per epoch.

After each epoch :func:`fit` records the six numbers the assignment asks for
(error rate and average loss on train, valid and test), the learning rate and
the epoch's duration.

What the figures mean, here and in the estimator's ``history_``:

- **train loss** is the mean over the epoch's examples of the loss of the
  minibatch each was trained in (its data loss: cross-entropy, binary
  cross-entropy or half squared error, without the penalty), measured by the
  forward pass that the gradient needs anyway, before the minibatch's
  update. It describes the parameters as they moved during the epoch; train
  error is counted in the same passes.
- **valid and test** figures are computed after the epoch, on its final
  parameters, with the same data loss, so that the three sets compare.
- the penalty is never in these figures (the estimator's ``loss_curve_``
  adds scikit-learn's alpha term, as scikit-learn does).
- error is the misclassified fraction; for identity outputs (regression)
  there is none, and it is NaN.

Every minibatch goes through the training step of :mod:`handprop.step`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from . import checkpoint as ckpt
from ._version import __version__
from .backend import resolve_device, to_numpy
from .checkpoint import AppendLog
from .errors import InputError, InputTypeError
from .files import read_text, write_text
from .network import MLP, REGRESSION_OUTPUTS, Workspace, count_errors, data_loss, forward
from .settings import RunSettings
from .step import EpochTotals, Step

__all__ = ["COLUMNS", "EpochRecord", "History", "Diverged", "RunSettings", "evaluate",
           "fit"]


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
            rows = list(csv.reader(read_text(path, "log").splitlines()))
        except csv.Error as exc:
            raise InputError(f"{path}: cannot read the log ({exc})") from None
        if not rows or tuple(rows[0]) != COLUMNS:
            raise InputError(f"{path}: not a handprop log: the header must be "
                             f"{','.join(COLUMNS)}")
        records = []
        for line, row in enumerate(rows[1:], start=2):
            if len(row) != len(COLUMNS):
                raise InputError(f"{path}: line {line} has {len(row)} cells, "
                                 f"expected {len(COLUMNS)}")
            try:
                values = [float(v) for v in row]
            except ValueError:
                raise InputError(f"{path}: line {line} holds a non-numeric cell") from None
            values[0] = int(values[0])
            records.append(EpochRecord(*values))
        return cls(records)

    def to_dicts(self) -> list[dict]:
        """The records as dicts, with NaN as None (for JSON)."""
        return [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                 for k, v in asdict(r).items()} for r in self]

    @classmethod
    def from_dicts(cls, rows: list[dict], **kwargs) -> History:
        """The inverse of :meth:`to_dicts`; a ValueError for anything else."""
        if not isinstance(rows, list):
            raise InputError(f"a history must be a list of records, got {type(rows).__name__}")
        records = []
        for row in rows:
            if not isinstance(row, dict) or tuple(row) != COLUMNS or not all(
                    v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                    for v in row.values()):
                raise InputError(f"a history record must hold the numbers "
                                 f"{', '.join(COLUMNS)}, got {row!r}"[:300])
            records.append(EpochRecord(**{k: (math.nan if v is None else v)
                                          for k, v in row.items()}))
        return cls(records, **kwargs)


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
    """Error rate and mean loss of ``net`` on X (n, d) and its targets y.

    The error rate is NaN for identity outputs. The forward passes run on
    ``chunk`` rows at a time, in buffers allocated once: large enough for
    efficient matrix products, small enough to keep memory bounded (2048 rows
    of 1024 hidden units is 8 MB in float32).
    """
    X = net.check_X(X)
    y = net.check_y(y, X.shape[0])
    work = Workspace(net.sizes, min(chunk, len(X)), net.dtype, net.output)
    return _evaluate(net, net.params, X, y, work)


def _evaluate(net: MLP, params: dict, X, T, work: Workspace) -> tuple[float, float]:
    """:func:`evaluate` on checked arrays (NumPy or CuPy, as ``params``), with
    the given buffers."""
    chunk = work.X.shape[0]
    wrong = 0
    total = 0.0
    for start in range(0, len(X), chunk):
        Xc, Tc = X[start:start + chunk], T[start:start + chunk]
        o_a = forward(params, Xc, net.activation, net.output, out=work.cache(len(Xc))).o_a
        wrong += count_errors(net.output, o_a, Tc)
        total += data_loss(net.output, o_a, Tc) * len(Xc)
    error = wrong / len(X) if net.output not in REGRESSION_OUTPUTS else math.nan
    return error, total / len(X)


def _check_split(net: MLP, split, name: str):
    if split is None:
        return None
    if not (isinstance(split, (tuple, list)) and len(split) == 2):
        raise InputTypeError(f"{name} must be a pair (X, y), got {type(split).__name__}")
    X = net.check_X(split[0])
    return X, net.check_y(split[1], X.shape[0])


@dataclass
class _Data:
    """The checked training data: X (n, d), T (the targets), optional
    sample weights (n,), and the (X, T) pairs of valid and test, or None."""

    X: np.ndarray
    T: np.ndarray
    weights: np.ndarray | None
    valid: tuple | None
    test: tuple | None

    @classmethod
    def check(cls, net: MLP, X, y, valid, test, sample_weight) -> _Data:
        X = net.check_X(X)
        T = net.check_y(y, X.shape[0])
        if sample_weight is not None:
            sample_weight = net.check_options(X.shape[0], sample_weight=sample_weight)[
                "sample_weight"]
        return cls(X, T, sample_weight, _check_split(net, valid, "valid"),
                   _check_split(net, test, "test"))

    def fingerprints(self) -> dict:
        return {"train": ckpt.fingerprint(self.X, self.T),
                "valid": ckpt.fingerprint(*self.valid) if self.valid else None,
                "test": ckpt.fingerprint(*self.test) if self.test else None,
                "sample_weight": None if self.weights is None else ckpt.fingerprint(
                    self.weights[:, None], np.zeros(0))}


def fit(
    net: MLP,
    X,
    y,
    settings: RunSettings | None = None,
    *,
    valid=None,
    test=None,
    sample_weight=None,
    device: str = "cpu",
    progress: bool = True,
    log: str | os.PathLike | None = None,
    on_epoch: Callable[[EpochRecord], bool | None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    force: bool = False,
    **options,
) -> History:
    """Train ``net`` in place by minibatch gradient descent.

    Parameters
    ----------
    net : MLP, trained in place (its arrays are updated, never replaced)
    X : (n, d) training inputs; y : their targets (see ``MLP.check_y``)
    settings : a :class:`handprop.settings.RunSettings`, or None for the
        defaults; ``options`` (any of its fields, by name: ``epochs``,
        ``batch_size``, ``lr``, ``optimizer``, ``momentum``, ``nesterov``,
        ``betas``, ``epsilon``, ``schedule``, ``penalty``, ``patience``,
        ``seed``, ``dropout``, ``max_norm``, ``label_smoothing``,
        ``augment``) override it. They are validated once, before anything
        else happens.
    valid, test : (X, y) pairs or None, evaluated after each epoch
    sample_weight : optional (n,) weights >= 0 of the training examples
    device : "cpu", or "cuda" / "cuda:N" to train on an NVIDIA GPU with CuPy
        (see :mod:`handprop.backend`). The data and the parameters are copied
        to the GPU once; the same step runs there, and the net's NumPy arrays
        receive the parameters after every epoch. The shuffling, the dropout
        masks and the distortions are drawn on the CPU, as they are for
        device="cpu", so a GPU run follows the same path and differs only by
        float round-off.
    progress : show a tqdm bar on a terminal (never when output is not one)
    log : path of a CSV log; one row is appended and fsynced per epoch
    on_epoch : called with each EpochRecord as the epoch ends; if it returns
        True, training stops after that epoch
    checkpoint : a folder; after every epoch (and when interrupted) its
        ``checkpoint.npz`` is replaced atomically by the run's full state
    resume : a folder (or checkpoint file) to continue from. The run must
        have the same settings and data; the result is then identical to a
        run that was never stopped (``seconds`` aside). Checkpoints go on
        being written there unless ``checkpoint`` names another folder.
    force : resume even if settings differ (the new ones apply)

    Returns
    -------
    History, one EpochRecord per epoch (see the module docstring for what
    its figures mean)

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
        when ``resume`` names a run with other settings, listing them.
    handprop.checkpoint.CheckpointError
        when a checkpoint cannot be written (disk full, folder unwritable);
        the previous checkpoint is intact.
    """
    if not isinstance(net, MLP):
        raise InputTypeError(f"net must be a handprop.MLP, got {type(net).__name__}")
    settings = RunSettings.build(settings, **options)
    xp = resolve_device(device)
    data = _Data.check(net, X, y, valid, test, sample_weight)
    if settings.patience is not None and data.valid is None:
        raise InputError("patience (early stopping) needs a validation set: pass valid=(X, y)")
    run = _Run(net, settings, data)
    if resume is not None:
        run.restore(resume, force)
        checkpoint = resume if checkpoint is None else checkpoint
    if checkpoint is not None:
        folder = Path(checkpoint)
        folder = folder.parent if folder.suffix == ".npz" else folder
        if not folder.is_dir():
            raise InputError(f"checkpoint folder {folder} does not exist")
    logger = AppendLog(log, run.history) if log is not None else None
    if run.finished:
        return run.finish()
    with _Trainer(run, data, xp, progress) as trainer:
        for epoch in range(run.epoch + 1, settings.epochs + 1):
            record = trainer.epoch(epoch, checkpoint)
            run.end_epoch(record)
            if run.finished is None and on_epoch is not None and on_epoch(record) is True:
                run.finished = f"stopped by on_epoch after epoch {epoch}"
            if run.finished is None and epoch == settings.epochs:
                run.finished = f"finished {settings.epochs} epochs"
            if logger is not None:
                logger.append(run.history)
            if checkpoint is not None:
                run.save(checkpoint)
            trainer.show(record)
            if run.finished:
                break
            if trainer.guard.signum is not None:
                raise run.interrupted(trainer.guard.signum, epoch + 1, 0, trainer.n_batches,
                                      checkpoint, saved=True)
    return run.finish()


class _Trainer:
    """The machinery of one ``fit``: the parameters where they train (copied
    to the GPU once), the training step, the evaluation buffers, the progress
    bar and the signal guard. A context manager."""

    def __init__(self, run: _Run, data: _Data, xp, progress: bool) -> None:
        self.run, self.data, self.xp = run, data, xp
        net, settings = run.net, run.settings
        self.on_gpu = xp is not np
        if self.on_gpu:  # the data and the parameters, copied to the GPU once
            self.params = {k: xp.asarray(v) for k, v in net.params.items()}
            run.optimizer.map_state(xp.asarray)
            move = xp.asarray
            # the net's own arrays hold the end of the last good epoch
            self.snapshot = net.params
        else:
            self.params = net.params
            move = None
            self.snapshot = {k: v.copy() for k, v in self.params.items()}
        dev = (lambda a: a) if move is None else (lambda a: None if a is None else move(a))
        self.valid = None if data.valid is None else tuple(dev(a) for a in data.valid)
        self.test = None if data.test is None else tuple(dev(a) for a in data.test)
        self.step = Step(net, self.params, dev(data.X), dev(data.T),
                         optimizer=run.optimizer, batch_size=settings.batch_size,
                         penalty=settings.penalty, dropout=settings.dropout,
                         max_norm=settings.max_norm, label_smoothing=settings.label_smoothing,
                         sample_weight=dev(data.weights), rng=run.rng,
                         augment=settings.make_augmenter(net.d), seed=settings.seed,
                         host_X=data.X)
        self.n_batches = self.step.n_batches
        self.eval_work = (Workspace(net.sizes, 2048, net.dtype, net.output, xp)
                          if (data.valid or data.test) else None)
        from tqdm.auto import tqdm

        done = run.epoch * self.n_batches + (run.in_epoch["batch"] if run.in_epoch else 0)
        self.bar = tqdm(total=settings.epochs * self.n_batches, initial=done,
                        disable=None if progress else True, unit="batch", leave=False,
                        dynamic_ncols=True)
        self.guard = ckpt.SignalGuard()
        # Overflow is not warned about: a loss that overflows is caught and
        # reported as divergence, with a message that says what to do.
        self.errstate = np.errstate(over="ignore", invalid="ignore")

    def __enter__(self) -> _Trainer:
        self.errstate.__enter__()
        self.step.__enter__()
        self.guard.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.guard.__exit__(*exc)
        self.step.__exit__(*exc)
        self.bar.close()
        self.errstate.__exit__(*exc)

    def rollback(self) -> None:
        """Return the net to the end of the last good epoch (on a GPU, the
        net's arrays already hold it)."""
        if not self.on_gpu:
            _restore(self.params, self.snapshot)

    def epoch(self, epoch: int, checkpoint) -> EpochRecord:
        """Train epoch ``epoch`` (or the rest of it, when resumed) and
        evaluate; raise Diverged or Interrupted."""
        run, nb = self.run, self.n_batches
        part = run.in_epoch
        if part is None:
            part = {"order": run.rng.permutation(len(self.data.X)), "batch": 0, "wrong": 0,
                    "loss_sum": 0.0, "seconds": 0.0, "first_rate": run.sched.rate(epoch)}
        run.in_epoch = part
        start_time = time.perf_counter() - part["seconds"]
        self.step.start_epoch(epoch, part["order"], part["batch"])
        sched = run.sched
        if sched.per_batch:
            def rate(b):
                return sched.rate(epoch + b / nb)
        else:
            def rate(b):
                return part["first_rate"]

        def after_batch(b):
            self.bar.update()
            return self.guard.signum is not None

        totals = self.step.train_epoch(rate, totals=EpochTotals(
            batch=part["batch"], wrong=part["wrong"], loss_sum=part["loss_sum"]),
            after_batch=after_batch)
        part.update(batch=totals.batch, wrong=totals.wrong, loss_sum=totals.loss_sum)
        if totals.diverged:
            self.rollback()
            b, loss, lr = totals.diverged
            raise run.diverged(f"the loss became {loss} at epoch {epoch}, minibatch {b + 1} of "
                               f"{nb} (lr = {lr:g})")
        if totals.batch < nb:  # stopped by a signal
            part["seconds"] = time.perf_counter() - start_time
            if self.on_gpu:
                _restore(run.net.params, self.params)  # what the checkpoint saves
            raise run.interrupted(self.guard.signum, epoch, totals.batch, nb, checkpoint)
        if not all(bool(self.xp.all(self.xp.isfinite(p))) for p in self.params.values()):
            self.rollback()
            raise run.diverged(f"the parameters became infinite in epoch {epoch} "
                               f"(lr = {part['first_rate']:g})")
        _restore(self.snapshot, self.params)  # on a GPU, the snapshot is the net's own arrays
        nan2 = (math.nan, math.nan)
        net = run.net
        v = _evaluate(net, self.params, *self.valid, self.eval_work) if self.valid else nan2
        t = _evaluate(net, self.params, *self.test, self.eval_work) if self.test else nan2
        n = len(self.data.X)
        train_error = part["wrong"] / n if net.output not in REGRESSION_OUTPUTS else math.nan
        return EpochRecord(epoch, train_error, part["loss_sum"] / n, *v, *t,
                           part["first_rate"], time.perf_counter() - start_time)

    def show(self, record: EpochRecord) -> None:
        def pct(v):
            return "" if math.isnan(v) else f" {v:.2%}"

        self.bar.set_postfix_str(f"epoch {record.epoch} train{pct(record.train_error)}"
                                 + (f" valid{pct(record.valid_error)}" if self.valid else ""))


def _restore(params: dict[str, np.ndarray], source: dict[str, np.ndarray]) -> None:
    """Copy ``source``'s arrays into the NumPy arrays of ``params``, in place;
    a source on the GPU is copied back to the CPU."""
    for k, v in source.items():
        params[k][...] = to_numpy(v)


class _Run:
    """The state of a training run that a checkpoint saves and restores."""

    def __init__(self, net: MLP, settings: RunSettings, data: _Data) -> None:
        net.check_penalty(settings.penalty)
        if settings.label_smoothing:
            net.check_options(1, label_smoothing=settings.label_smoothing)
        settings.make_augmenter(net.d)  # the image size must match d
        self.net = net
        self.settings = settings
        self.n_examples = len(data.X)
        # what a resumed run must match
        self.record = {"net": net.spec(), "run": settings.to_dict(),
                       "data": data.fingerprints()}
        self.optimizer = settings.make_optimizer()
        self.sched = settings.make_schedule()
        self.rng = np.random.default_rng(settings.seed)
        self.epoch = 0  # the last finished epoch
        self.history = History()
        self.best_score = math.inf
        self.best_epoch: int | None = None
        self.best_params: dict[str, np.ndarray] | None = None
        self.in_epoch: dict | None = None  # order, batch, wrong, loss_sum, seconds, first_rate
        self.finished: str | None = None

    def end_epoch(self, record: EpochRecord) -> None:
        self.history.append(record)
        self.epoch = record.epoch
        self.in_epoch = None
        # early stopping watches the validation error; regression has none,
        # and watches the validation loss
        regression = self.net.output in REGRESSION_OUTPUTS
        score = record.valid_loss if regression else record.valid_error
        self.sched.observe(score if not math.isnan(score) else record.train_loss)
        patience = self.settings.patience
        if patience is None:
            return
        if score < self.best_score:
            self.best_score, self.best_epoch = score, record.epoch
            self.best_params = {k: v.copy() for k, v in self.net.params.items()}
        elif record.epoch - self.best_epoch >= patience:
            what = "error" if self.net.output not in REGRESSION_OUTPUTS else "loss"
            self.finished = (f"early stopping: no better validation {what} for {patience} "
                             f"epochs after epoch {self.best_epoch}")

    def finish(self) -> History:
        if self.settings.patience is not None and self.best_params is not None:
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
            "settings": self.record,
            "epoch": self.epoch,
            "history": self.history.to_dicts(),
            "finished": self.finished,
            "rng": self.rng.bit_generator.state,
            "schedule": self.sched.state(),
            "best": {"score": None if math.isinf(self.best_score) else self.best_score,
                     "epoch": self.best_epoch},
            "in_epoch": part,
        }
        return ckpt.save(folder, arrays, meta)

    def restore(self, folder, force: bool) -> None:
        n = self.n_examples
        diffs = []

        def expect(meta: dict):
            """Compare the settings, then say which arrays may be read: all
            before a single array is."""
            saved = meta.get("settings")
            if not isinstance(saved, dict) or not isinstance(saved.get("net"), dict):
                raise InputError(f"{ckpt.path_in(folder)}: a damaged checkpoint: it does not "
                                 f"record its run's settings")
            diffs.extend(ckpt.differences(saved, self.record))
            if diffs and not force:
                raise ckpt.ResumeMismatch(
                    f"cannot resume {ckpt.path_in(folder)}: it was started with other "
                    f"settings: {'; '.join(diffs)} (force=True, or --force, resumes anyway)")
            if saved["net"] != self.record["net"]:
                raise InputError(f"cannot resume {ckpt.path_in(folder)} with another net: its "
                                 f"parameters are those of {saved['net']}; train again")
            return _checkpoint_arrays(self.net, n)

        arrays, meta = ckpt.load(folder, expect)
        try:
            self._restore_state(arrays, meta, force, n)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise InputError(f"{ckpt.path_in(folder)}: a damaged checkpoint ({exc})") from None
        if force and diffs:
            self.finished = None  # new settings may extend a finished run

    def _restore_state(self, arrays: dict, meta: dict, force: bool, n: int) -> None:
        """Every part of the state, checked before it is used (a checkpoint
        can be edited: its checksums only prove it was not damaged by chance)."""
        epoch = meta["epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        history = History.from_dicts(meta["history"])
        if len(history) != epoch:
            raise ValueError(f"{len(history)} epochs of history for epoch {epoch}")
        finished = meta.get("finished")
        if finished is not None and not isinstance(finished, str):
            raise ValueError("finished must be a string or null")
        best = meta["best"]
        score, best_epoch = best["score"], best["epoch"]
        if not (score is None or isinstance(score, (int, float))) or not (
                best_epoch is None or (isinstance(best_epoch, int) and 1 <= best_epoch <= epoch)):
            raise ValueError(f"bad early-stopping record {best!r}")
        part = meta.get("in_epoch")
        if part is not None:
            part = _checked_part(part, arrays.get("order"), n,
                                 -(-n // self.settings.batch_size))
        schedule = meta["schedule"]
        names = {f.name for f in dataclasses.fields(self.sched)}
        if not isinstance(schedule, dict) or not set(schedule) <= names or not all(
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                for v in schedule.values()):
            raise ValueError(f"bad schedule state {schedule!r}")
        self.rng.bit_generator.state = meta["rng"]
        # copied into the net's own arrays, which outside references keep
        self.net.params = {k[len("param_"):]: v for k, v in arrays.items()
                           if k.startswith("param_")}
        self.optimizer.load_state({k[len("opt_"):]: v for k, v in arrays.items()
                                   if k.startswith("opt_")})
        best_params = {k[len("best_"):]: v for k, v in arrays.items() if k.startswith("best_")}
        self.best_params = best_params or None
        for key, value in schedule.items():
            if not force or key not in ("lr", "epochs"):
                setattr(self.sched, key, value)
        self.epoch, self.history, self.finished = epoch, history, finished
        self.best_score = math.inf if score is None else float(score)
        self.best_epoch = best_epoch
        self.in_epoch = part


def _checkpoint_arrays(net: MLP, n: int) -> tuple[dict, dict]:
    """The arrays a checkpoint of ``net`` trained on n examples may hold, with
    their shapes: (required, optional) for :func:`handprop.files.read_archive`."""
    shapes = net.shapes()
    required = {f"param_{k}": (s, net.dtype) for k, s in shapes.items()}
    optional = {"opt_t": ((), np.int64), "order": ((n,), np.int64)}
    for k, s in shapes.items():
        for prefix in ("opt_velocity_", "opt_m_", "opt_v_", "best_"):
            optional[prefix + k] = (s, net.dtype)
    return required, optional


def _checked_part(part, order, n: int, n_batches: int) -> dict:
    """A stopped epoch's record, checked: its figures are numbers, its
    minibatch is in range, and its order is a permutation of the n examples."""
    if not isinstance(part, dict) or set(part) != {"batch", "wrong", "loss_sum", "seconds",
                                                   "first_rate"}:
        raise ValueError(f"bad record of the stopped epoch {part!r}")
    for key in ("batch", "wrong"):
        if isinstance(part[key], bool) or not isinstance(part[key], int) or part[key] < 0:
            raise ValueError(f"{key} must be an integer >= 0, got {part[key]!r}")
    for key in ("loss_sum", "seconds", "first_rate"):
        if isinstance(part[key], bool) or not isinstance(part[key], (int, float)):
            raise ValueError(f"{key} must be a number, got {part[key]!r}")
    if not part["batch"] < n_batches or part["wrong"] > n:
        raise ValueError(f"minibatch {part['batch']} of {n_batches} is out of range")
    if order is None or not np.array_equal(np.sort(order), np.arange(n)):
        raise ValueError(f"the stopped epoch's order is not a permutation of the {n} examples")
    return {**part, "order": order}


def signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
