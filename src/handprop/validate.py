"""The checks of every number and option a user gives handprop, in one place.

``fit``, the network, the penalty, the optimizers, the estimator and the CLI
all call these, so that one bad value gets one message wherever it comes
from: an InputTypeError (a TypeError) when the value is not of the expected
kind, an InputError (a ValueError) when it is out of range, each naming the
argument and what was expected (see :mod:`handprop.errors`).

Python integers have no size limit, and ``float(10**400)`` overflows: these
checks turn that into the same InputError as any other out-of-range value.

>>> number("lr", 0.1, low=0, low_open=True)
0.1
>>> try:
...     number("epochs", 10**400, low=1, integer=True)
... except ValueError as exc:
...     print(str(exc)[:60])
epochs must be an integer >= 1 that fits in 64 bits, got 100
>>> dropout_rates(0.5), dropout_rates((0.2, 0.5)), dropout_rates("0.2,0.5")
((0.0, 0.5), (0.2, 0.5), (0.2, 0.5))
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import InputError, InputTypeError

__all__ = ["number", "rate", "dropout_rates", "hidden_sizes", "choice", "flag"]

#: The largest integer setting accepted: anything larger cannot index an
#: array, count epochs or size a layer on any machine.
INT_MAX = 2**63 - 1
#: The most hidden layers a net may have: a deeper one is a mistake (its
#: gradients vanish long before), and each layer costs Python time per step.
MAX_LAYERS = 1000


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:30] + "..."


def _bound(v) -> str:
    """A bound as people write it: 2147483647, not 2.14748e+09."""
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e16 else f"{v:g}"


def _bounds(low, high, low_open, high_open) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {_bound(low)}" if low is not None else ""
    if low is None:
        return f"{'<' if high_open else '<='} {_bound(high)}"
    return (f"in {'(' if low_open else '['}{_bound(low)}, {_bound(high)}"
            f"{')' if high_open else ']'}")


def number(name: str, value, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, integer: bool = False):
    """``value`` as a Python int (``integer``) or float, or an error.

    Parameters
    ----------
    name : the argument's name, for the message
    value : a real number: Python's or NumPy's, not a bool or a string
    low, high : bounds, inclusive unless ``low_open`` / ``high_open``
    integer : require an integer (NumPy integers included)

    Raises
    ------
    TypeError
        when ``value`` is not a (real, integer) number
    ValueError
        when it is NaN, infinite, too large for a float (or 64 bits), or
        out of bounds
    """
    kind = "an integer" if integer else "a number"
    where = _bounds(low, high, low_open, high_open)
    wanted = f"{name} must be {kind}" + (f" {where}" if where else "")
    types = (numbers.Integral,) if integer else (numbers.Real,)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, types):
        raise InputTypeError(f"{wanted}, got {type(value).__name__} {_short(value)}")
    if integer:
        out = int(value)
        if abs(out) > INT_MAX:
            raise InputError(f"{wanted} that fits in 64 bits, got {_short(out)}")
    else:
        try:
            out = float(value)
        except OverflowError:
            raise InputError(f"{wanted}, got {_short(value)}, too large for a float") from None
        if not math.isfinite(out):
            raise InputError(f"{wanted}, got {out!r}")
    if low is not None and (out < low or (low_open and out == low)):
        raise InputError(f"{wanted}, got {_short(value)}")
    if high is not None and (out > high or (high_open and out == high)):
        raise InputError(f"{wanted}, got {_short(value)}")
    return out


def rate(name: str, value) -> float:
    """A probability of dropping or smoothing: a number in [0, 1)."""
    return number(name, value, low=0, high=1, high_open=True)


_DROPOUT_MESSAGE = ("dropout must be a rate in [0, 1) (the hidden layers') or a pair (input "
                    "rate, hidden rate), got {}")


def dropout_rates(value) -> tuple[float, float]:
    """The dropout rates (input, hidden) from one number (the hidden rate), a
    pair, or the CLI's text "HIDDEN" or "IN,HIDDEN"; a ValueError otherwise.

    The hidden rate applies to every hidden layer.
    """
    given = value
    if isinstance(value, str):
        try:
            value = tuple(float(p) for p in value.split(","))
        except ValueError:
            raise InputError(_DROPOUT_MESSAGE.format(_short(given))) from None
        value = value[0] if len(value) == 1 else value
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        value = (0.0, value)
    if isinstance(value, np.ndarray):
        value = tuple(value.tolist())
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise InputError(_DROPOUT_MESSAGE.format(_short(given)))
    try:
        return rate("input dropout rate", value[0]), rate("hidden dropout rate", value[1])
    except (TypeError, ValueError):
        raise InputError(_DROPOUT_MESSAGE.format(_short(given))) from None


def hidden_sizes(value, name: str = "d_h") -> tuple[int, ...]:
    """The sizes of the hidden layers: one positive integer, a sequence of
    them, or the CLI's text "512" or "512,256"."""
    given = value
    if isinstance(value, str):
        try:
            if not value.isascii():  # int() takes other scripts' digits, which no one means
                raise ValueError(value)
            value = tuple(int(p) for p in value.split(","))
        except ValueError:
            raise InputError(f"{name} must be one or more positive integers, comma-separated, "
                             f"got {_short(given)}") from None
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        value = (value,)
    try:
        sizes = tuple(value)
    except TypeError:
        raise InputTypeError(f"{name} must be a positive integer or a sequence of them, got "
                        f"{type(given).__name__} {_short(given)}") from None
    if not sizes:
        raise InputError(f"{name} must name at least one hidden layer, got {_short(given)}")
    if len(sizes) > MAX_LAYERS:
        raise InputError(f"{name} must name at most {MAX_LAYERS} hidden layers, got "
                         f"{len(sizes):,}")
    return tuple(number(name, s, low=1, integer=True) for s in sizes)


def choice(name: str, value, options) -> str:
    """``value`` if it is one of the strings ``options``, else a ValueError
    that lists them."""
    if not isinstance(value, str) or value not in options:
        raise InputError(f"{name} must be one of {', '.join(map(repr, options))}, "
                         f"got {_short(value)}")
    return value


def flag(name: str, value) -> bool:
    """A bool (Python's or NumPy's), else a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputTypeError(f"{name} must be True or False, got {_short(value)}")
    return bool(value)
