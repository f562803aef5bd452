"""One record per epoch: the six numbers the assignment asks for, and their log.

After each epoch a run records its measure (the error rate, for classes; R^2
for regression) and its average loss on train, valid and test, the learning
rate and the epoch's duration.

What the figures mean, here and in the estimator's ``history_``:

- **train loss** is the mean over the epoch's examples of the loss of the
  minibatch each was trained in (its data loss: cross-entropy, binary
  cross-entropy, half squared error or half Poisson deviance, without the
  penalty), measured by the forward pass that the gradient needs anyway,
  before the minibatch's update. It describes the parameters as they moved
  during the epoch; the train measure is summed over the same passes.
- **valid and test** figures are computed after the epoch, on its final
  parameters, with the same data loss, so that the three sets compare.
- the penalty is never in these figures (the estimator's ``loss_curve_``
  adds scikit-learn's alpha term, as scikit-learn does).
- the **measure** is the output/loss pair's (:mod:`handprop.core.outputs`):
  the misclassified fraction for classes and labels, or R^2 (averaged over
  the outputs) for regression. :attr:`History.measure` says which; the log's
  header names it (``train_error`` or ``train_r2``).
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..errors import InputError
from ..files import write_text

__all__ = ["COLUMNS", "EpochRecord", "History", "Diverged", "columns"]

#: The measures a history can hold: the error rate, or R^2.
MEASURES = ("error", "r2")


@dataclass(slots=True)
class EpochRecord:
    """The figures of one epoch.

    ``train_error``, ``valid_error`` and ``test_error`` hold the output
    pair's measure: the error rate for classes, R^2 for regression (the
    :class:`History` that holds the record says which, in ``measure``).
    Valid and test figures are NaN when that set was not given; ``lr`` is
    the rate at the start of the epoch (a cosine schedule lowers it before
    every minibatch); ``seconds`` is the epoch's wall time, its evaluation
    included."""

    epoch: int
    train_error: float
    train_loss: float
    valid_error: float
    valid_loss: float
    test_error: float
    test_loss: float
    lr: float
    seconds: float


#: The fields of a record, in order (the log's header for the error rate).
COLUMNS = tuple(f.name for f in fields(EpochRecord))


def columns(measure: str = "error") -> tuple[str, ...]:
    """The log's header for a measure: ``train_error`` ... or ``train_r2`` ...

    >>> columns("r2")[:3]
    ('epoch', 'train_r2', 'train_loss')
    """
    return tuple(c.replace("_error", f"_{measure}") for c in COLUMNS)


def _bad_log_line(path) -> InputError:
    """The InputError naming the first line of a log that is not a row of
    numbers, found by reading it again line by line."""
    from ..files import open_regular, shown

    with open_regular(path, "log") as f:
        for number, line in enumerate(io.TextIOWrapper(f, encoding="utf-8-sig"), start=1):
            if number == 1 or not line.strip():
                continue
            try:
                row = next(csv.reader([line]))
            except csv.Error as exc:
                return InputError(f"{shown(path)}: line {number}: {exc}")
            if len(row) != len(COLUMNS):
                return InputError(f"{shown(path)}: line {number} has {len(row)} cells, "
                                  f"expected {len(COLUMNS)}")
            for cell in row:
                try:
                    float(cell)
                except ValueError:
                    text = cell if len(cell) <= 40 else cell[:30] + "..."
                    return InputError(f"{shown(path)}: line {number} holds a non-numeric "
                                      f"cell {text!r}")
    return InputError(f"{shown(path)}: not a handprop log: a line is not a row of numbers")


class History(list):
    """A list of :class:`EpochRecord`, one per epoch, with CSV and JSON I/O.

    Attributes
    ----------
    measure : "error" (the error rate) or "r2" (R^2): what the records'
        ``*_error`` fields hold
    best_epoch : int or None, the epoch whose parameters the net holds after
        early stopping (None when early stopping was off)
    stop_reason : str, why training stopped
    """

    def __init__(self, records=(), *, best_epoch: int | None = None, stop_reason: str = "",
                 measure: str = "error"):
        super().__init__(records)
        if measure not in MEASURES:
            raise InputError(f"measure must be one of {', '.join(MEASURES)}, got {measure!r}")
        self.measure = measure
        self.best_epoch = best_epoch
        self.stop_reason = stop_reason

    @property
    def columns(self) -> tuple[str, ...]:
        """The log's header: :func:`columns` of this history's measure."""
        return columns(self.measure)

    def column(self, name: str) -> np.ndarray:
        """One column over the epochs, shape (n_epochs,), by its field name
        or its name in the log (``valid_r2`` for ``valid_error``, say)."""
        names = dict(zip(self.columns, COLUMNS, strict=True))
        field = names.get(name, name if name in COLUMNS else None)
        if field is None:
            raise KeyError(f"unknown column {name!r}; columns are {', '.join(self.columns)}")
        return np.array([getattr(r, field) for r in self], dtype=float)

    def to_csv(self) -> str:
        """The records as CSV text with a header row of :attr:`columns`."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        for r in self:
            writer.writerow([_format(getattr(r, c)) for c in COLUMNS])
        return out.getvalue()

    def save_csv(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_csv` to ``path`` atomically."""
        write_text(path, self.to_csv())

    @classmethod
    def read_csv(cls, path: str | os.PathLike) -> History:
        """Read a log written by :meth:`save_csv`; a ValueError names what is wrong.

        The rows are read by NumPy's reader as a stream, into one array of
        numbers, so that a long (or hostile) log takes little more memory
        than its records do; every epoch must be a whole number from 1 up,
        every figure a number."""
        from ..files import open_regular, shown
        from ..validate import INT_MAX

        name = shown(path)
        with open_regular(path, "log") as f:
            text = io.TextIOWrapper(f, encoding="utf-8-sig")
            try:
                first = text.readline(1 << 16)
                header = tuple(next(csv.reader([first]), []))
                measure = next((m for m in MEASURES if header == columns(m)), None)
                if measure is None:
                    raise InputError(f"{name}: not a handprop log: the header must be "
                                     f"{','.join(COLUMNS)} (or {','.join(columns('r2'))})")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # a log with no epochs
                    table = np.loadtxt(text, delimiter=",", ndmin=2, dtype=np.float64,
                                       comments=None)
            except UnicodeDecodeError:
                raise InputError(f"{name}: not a handprop log: not UTF-8 text") from None
            except InputError:
                raise
            except ValueError:
                raise _bad_log_line(path) from None
        if table.size and table.shape[1] != len(COLUMNS):
            raise InputError(f"{name}: its rows have {table.shape[1]} cells, expected "
                             f"{len(COLUMNS)}")
        epochs = table[:, 0] if table.size else table.reshape(0)
        bad = ~((epochs >= 1) & (epochs <= INT_MAX) & (epochs == np.floor(epochs)))
        if bad.any():
            row = int(np.argmax(bad))
            raise InputError(f"{name}: line {row + 2}: the epoch must be a whole number "
                             f">= 1, got {epochs[row]:g}")
        records = [EpochRecord(int(row[0]), *row[1:].tolist()) for row in table]
        return cls(records, measure=measure)

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
