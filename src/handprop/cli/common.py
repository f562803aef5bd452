"""What the commands share: the one-line usage error, argument types, the
output folder, and how an epoch's figures are printed."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .. import validate

EXIT_USAGE = 2


class UsageError(Exception):
    """A bad argument: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, with one-line errors and no abbreviated options: a new option
    can never change what an old command means (``--label`` is not
    ``--label-smoothing``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # argparse prints the usage too; we want one line
        raise UsageError(message)


def argument(check):
    """An argparse type from a check of :mod:`handprop.validate`: its
    ValueError or TypeError becomes argparse's one-line message."""
    def parse(text: str):
        try:
            return check(text)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:30]) + f"... ({len(text)} characters)"


def _ascii_int(text: str) -> int:
    if not text.strip().isascii():  # int() takes other scripts' digits, which no one means
        raise ValueError(text)
    return int(text)


def positive_int(text: str) -> int:
    try:
        value = _ascii_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got "
                                         f"{shown(text)}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {shown(text)}")
    if value > validate.INT_MAX:
        raise argparse.ArgumentTypeError(f"expected a positive integer of at most 64 bits, got "
                                         f"{shown(text)}")
    return value


def _ascii_float(text: str) -> float:
    if not text.strip().isascii():  # float() takes other scripts' digits too
        raise ValueError(text)
    return float(text)


def path(text: str) -> str:
    """A path argument: an empty or blank one is refused (it would mean the
    current folder, or a default, which no one means by typing "")."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a path, got an empty one ({text!r})")
    return text


def integer(text: str) -> int:
    """Any integer, in ASCII digits."""
    try:
        return _ascii_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {shown(text)}") from None


def real(text: str) -> float:
    """Any number, in ASCII digits (bounds are checked where it is used)."""
    try:
        return _ascii_float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {shown(text)}") from None


def positive_float(text: str) -> float:
    try:
        value = _ascii_float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got "
                                         f"{shown(text)}") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {shown(text)}")
    return value


def seed(text: str) -> int:
    try:
        value = _ascii_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got "
                                         f"{shown(text)}") from None
    if not 0 <= value <= validate.INT_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {shown(text)}")
    return value


def number_list(kind):
    """An argparse type: comma-separated numbers >= 0."""
    def parse(text: str):
        try:
            if not text.isascii():  # int() and float() take other scripts' digits
                raise ValueError(text)
            values = [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of numbers, got {shown(text)}") from None
        if not values or any(v < 0 for v in values):
            raise argparse.ArgumentTypeError(f"expected numbers >= 0, got {shown(text)}")
        return values
    return parse


hidden = argument(lambda text: validate.hidden_sizes(text, "hidden sizes"))


def writable_folder(path: str) -> Path:
    """Create ``path`` if needed and prove that files can be written in it."""
    import tempfile

    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OSError(f"cannot write to output folder {folder}: {exc.strerror or exc}") from None
    return folder


def dataset_name(dataset: str) -> str:
    """A data set's name in folder and study names: a built-in one's own, a
    file's stem."""
    from ..data.datasets import BUILT_IN

    return dataset if dataset in BUILT_IN else Path(dataset).stem


# -- an epoch's line ----------------------------------------------------------

_WIDTHS = (5, 9, 10, 9, 10, 8, 9, 8, 7)


def row(cells) -> str:
    return "  ".join(f"{c:>{w}}" for c, w in zip(cells, _WIDTHS, strict=True))


def header(measure: str = "error") -> str:
    """The table's header: "err" columns for an error rate, "R2" for R^2."""
    m = "err" if measure == "error" else "R2"
    return row(("epoch", f"train {m}", "train loss", f"valid {m}", "valid loss", f"test {m}",
                "test loss", "lr", "seconds"))


def show_measure(value: float, measure: str = "error") -> str:
    """An error rate as a percentage, R^2 as a number; "-" when there is none."""
    if np.isnan(value):
        return "-"
    return f"{100 * value:.2f}%" if measure == "error" else f"{value:.4f}"


def format_record(r, measure: str = "error") -> str:
    """One epoch's line: the six numbers, the rate and the time."""
    def num(v):
        return "-" if np.isnan(v) else f"{v:.4f}"

    return row((r.epoch, show_measure(r.train_error, measure), num(r.train_loss),
                show_measure(r.valid_error, measure), num(r.valid_loss),
                show_measure(r.test_error, measure), num(r.test_loss), f"{r.lr:.3g}",
                f"{r.seconds:.2f}"))
