"""Training by minibatch gradient descent: :func:`fit`, and :func:`evaluate`.

``fit`` runs a :class:`handprop.train.runner.Runner` an epoch at a time, and
adds what a run from the command line needs around it: the progress bar, the
CSV log, a checkpoint after every epoch, and signals (Ctrl-C, SIGTERM) that
stop after the current minibatch with a checkpoint written. Every minibatch
goes through the training step of :mod:`handprop.train.step`; what the
per-epoch figures mean is in :mod:`handprop.train.history`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

from ..core.network import MLP, Workspace
from ..errors import InputError, InputTypeError
from . import checkpoint as ckpt
from .checkpoint import AppendLog
from .history import COLUMNS, Diverged, EpochRecord, History
from .runner import Data, Runner, evaluate_arrays
from .settings import RunSettings

__all__ = ["COLUMNS", "EpochRecord", "History", "Diverged", "RunSettings", "evaluate",
           "fit"]


def evaluate(net: MLP, X, y, *, chunk: int = 2048) -> tuple[float, float]:
    """The measure and mean loss of ``net`` on X (n, d) and its targets y:
    (error rate, loss) for classes, (R^2, loss) for a regression pair.

    The forward passes run on ``chunk`` rows at a time, in buffers allocated
    once: large enough for efficient matrix products, small enough to keep
    memory bounded (2048 rows of 1024 hidden units is 8 MB in float32).
    """
    X = net.check_X(X)
    y = net.check_y(y, X.shape[0])
    work = Workspace(net.sizes, min(chunk, len(X)), net.dtype, net.pair)
    return evaluate_arrays(net, net.params, X, y, work)


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
    settings : a :class:`handprop.train.settings.RunSettings`, or None for the
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
    History, one EpochRecord per epoch (see :mod:`handprop.train.history`
    for what its figures mean)

    Raises
    ------
    Diverged
        when the loss becomes NaN or infinite; the net is then restored to
        the parameters it had at the end of the last finished epoch.
    handprop.train.checkpoint.Interrupted
        on SIGINT or SIGTERM, after the current minibatch, and after writing
        a checkpoint when there is a checkpoint folder. A second signal stops
        at once.
    handprop.train.checkpoint.ResumeMismatch
        when ``resume`` names a run with other settings, listing them.
    handprop.train.checkpoint.CheckpointError
        when a checkpoint cannot be written (disk full, folder unwritable);
        the previous checkpoint is intact.
    """
    if not isinstance(net, MLP):
        raise InputTypeError(f"net must be a handprop.MLP, got {type(net).__name__}")
    settings = RunSettings.build(settings, **options)
    data = Data.check(net, X, y, valid, test, sample_weight)
    runner = Runner(net, settings, data, device=device)
    if resume is not None:
        runner.restore(resume, force)
        checkpoint = resume if checkpoint is None else checkpoint
    if checkpoint is not None:
        folder = Path(checkpoint)
        folder = ckpt.path_in(folder).parent
        if not folder.is_dir():
            raise InputError(f"checkpoint folder {folder} does not exist")
    logger = AppendLog(log, runner.history) if log is not None else None
    if runner.finished:
        return runner.finish()
    from tqdm.auto import tqdm

    bar = tqdm(total=settings.epochs * runner.n_batches, initial=runner.steps_taken,
               disable=None if progress else True, unit="batch", leave=False,
               dynamic_ncols=True)
    guard = ckpt.SignalGuard()

    def after_batch(b):
        bar.update()
        return guard.signum is not None

    with runner, guard, bar:
        while not runner.finished:
            record = runner.train(after_batch=after_batch)
            if record is None:  # stopped by a signal within the epoch
                raise _interrupted(runner, guard.signum, checkpoint)
            if on_epoch is not None and on_epoch(record) is True and not runner.finished:
                runner.finished = f"stopped by on_epoch after epoch {record.epoch}"
            if logger is not None:
                logger.append(runner.history)
            if checkpoint is not None:
                runner.save(checkpoint)
            bar.set_postfix_str(_postfix(record, runner))
            if guard.signum is not None and not runner.finished:
                raise _interrupted(runner, guard.signum, checkpoint, saved=True)
    return runner.finish()


def _postfix(record: EpochRecord, runner: Runner) -> str:
    def show(v):
        if math.isnan(v):
            return ""
        return f" {v:.2%}" if runner.pair.classifies else f" R2 {v:.4f}"

    return (f"epoch {record.epoch} train{show(record.train_error)}"
            + (f" valid{show(record.valid_error)}" if runner.valid else ""))


def _interrupted(runner: Runner, signum: int, checkpoint, saved: bool = False):
    """The Interrupted exception of a run stopped by ``signum``, after
    writing its checkpoint (unless ``saved`` already)."""
    name = signal_name(signum)
    part = runner.in_epoch
    epoch = runner.epoch + 1
    where = (f"at the start of epoch {epoch}" if part is None or part["batch"] == 0 else
             f"in epoch {epoch} after minibatch {part['batch']} of {runner.n_batches}")
    path = None
    if checkpoint is not None:
        path = ckpt.path_in(checkpoint) if saved else runner.save(checkpoint)
        message = f"{name}: stopped {where}; checkpoint written to {path}"
    else:
        message = f"{name}: stopped {where}; no checkpoint folder, nothing saved"
    runner.history.stop_reason = message
    return ckpt.Interrupted(message, signum, path, runner.history)


def signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
