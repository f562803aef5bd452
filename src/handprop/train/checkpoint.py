"""What lets a run survive being stopped: checkpoints, an append-only log,
and signal handling.

A checkpoint (``DIR/checkpoint.npz``) holds everything that determines the
rest of a run, so that resuming it gives bit for bit the parameters and
history of a run that was never stopped: the parameters, the optimizer's
arrays, the schedule's state, the random generator's state, the epoch, the
best-so-far parameters and score of early stopping, the history, and, when
the run was stopped between two minibatches, the epoch's shuffled order and
the figures accumulated so far. It is written like every handprop file: to a
temporary file, fsynced, then renamed over the previous one.

The log (``log.csv``) gets one row per epoch, appended and fsynced as the
epoch ends; on resume it is rewritten from the checkpoint's history, so that
it never holds a row for an epoch that will be trained again.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import read_archive, write_archive, write_text

__all__ = ["CHECKPOINT_NAME", "CheckpointError", "Interrupted", "ResumeMismatch",
           "AppendLog", "SignalGuard", "fingerprint", "load", "save", "differences"]

CHECKPOINT_NAME = "checkpoint.npz"
FORMAT = "handprop-checkpoint"
#: 1: handprop 0.1; 2: the run's record is RunSettings and the net's spec
#: (a 0.1 checkpoint cannot be resumed: train again); 3: a stopped epoch
#: records the output pair's tally, not a count of errors, and SGD its step
#: count (2 is resumed too).
VERSION = 3
READS = (2, 3)


class CheckpointError(OSError):
    """A checkpoint could not be written; the previous one is intact."""


class ResumeMismatch(InputError):
    """The run to resume was started with other hyper-parameters."""


class Interrupted(KeyboardInterrupt):
    """Training stopped on SIGINT or SIGTERM after a whole minibatch.

    Attributes
    ----------
    signum : the signal's number
    checkpoint : the checkpoint written, or None when the run had none
    history : the finished epochs
    """

    def __init__(self, message: str, signum: int, checkpoint, history):
        super().__init__(message)
        self.signum = signum
        self.checkpoint = checkpoint
        self.history = history

    @property
    def exit_status(self) -> int:
        """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


def path_in(folder: str | os.PathLike) -> Path:
    """The checkpoint file of a run folder (or the file itself, if given: a
    path ending in .npz that is not a folder)."""
    folder = Path(folder)
    if folder.suffix == ".npz" and not folder.is_dir():
        return folder
    return folder / CHECKPOINT_NAME


def save(folder, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write the checkpoint of a run folder atomically; raise CheckpointError
    with the cause in one line when the disk is full or the folder unwritable."""
    path = path_in(folder)
    try:
        write_archive(path, arrays, meta, kind=FORMAT, version=VERSION)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CheckpointError(f"cannot write the checkpoint {path}: {reason}; the previous "
                              f"checkpoint is intact, and training stopped rather than go on "
                              f"without one") from None
    return path


def load(folder, expect=None, *, meta_only: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, meta) of a run folder's checkpoint; an InputError if it is
    missing or unreadable. ``expect`` is :func:`handprop.files.read_archive`'s:
    it sees the metadata, and says which arrays of which shapes may be read,
    before any is."""
    path = path_in(folder)
    if not path.exists():
        raise InputError(f"nothing to resume: {path} does not exist")
    return read_archive(path, kind=FORMAT, version=READS, expect=expect, meta_only=meta_only)


def fingerprint(X: np.ndarray, y: np.ndarray) -> str:
    """A cheap identity of a data set: its shapes, every label, and a thousand
    evenly spaced rows of X. Resuming on other data is refused."""
    h = hashlib.sha256()
    h.update(repr((X.shape, str(X.dtype))).encode())
    h.update(np.ascontiguousarray(y).tobytes())
    h.update(np.ascontiguousarray(X[:: max(1, len(X) // 1000)]).tobytes())
    return h.hexdigest()[:16]


def differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """The settings that differ, as "name (checkpoint A, now B)" strings."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} (checkpoint {a!r}, now {b!r})")
    return out


class AppendLog:
    """``log.csv``, one row appended and fsynced per finished epoch.

    Parameters
    ----------
    path : the CSV file
    history : the epochs already finished (a resumed run's); the file is
        first rewritten, atomically, to hold exactly these rows
    """

    def __init__(self, path: str | os.PathLike, history) -> None:
        self.path = Path(path)
        write_text(self.path, history.to_csv())

    def append(self, history) -> None:
        """Append the last record of ``history`` as one row, in one write."""
        line = history.to_csv().splitlines()[-1] + "\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:  # a full disk names no file: say which
            error = OSError(f"cannot append epoch {history[-1].epoch} to the log "
                            f"{self.path}: {exc.strerror or exc}")
            error.errno = exc.errno
            raise error from None


class SignalGuard:
    """While active, the first SIGINT, SIGTERM or SIGHUP (the terminal was
    closed) only sets ``signum``, so that training can finish its minibatch
    and write a checkpoint; a second one stops the process at once
    (KeyboardInterrupt for SIGINT, exit status 128 + the signal's number for
    the others: 143 for SIGTERM, 129 for SIGHUP). Outside the main thread,
    where handlers cannot be set, it does nothing.

    Guards nest (a sweep's worker holds one, and each trial's ``fit`` its
    own): an inner guard starts with the signal its outer guard has already
    caught, and a signal it catches is the outer guard's too, so that none is
    lost between the two, whenever it comes.
    """

    #: Ctrl-C, kill, and the terminal closed (SIGHUP: where it exists).
    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                    if hasattr(signal, name))

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        self._outer: SignalGuard | None = None

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
            if self._outer is not None and self._outer.signum is None:
                self._outer.signum = signum
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
                outer = getattr(self._previous[s], "__self__", None)
                if isinstance(outer, SignalGuard) and outer is not self:
                    self._outer = outer
            if self._outer is not None and self.signum is None:
                self.signum = self._outer.signum  # caught before this guard began
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
        self._outer = None
