"""handprop's own exception family: bad input, told apart from bugs.

Every check of an argument, a setting or a file that handprop makes raises
an :class:`InputError` (a ValueError) or an :class:`InputTypeError` (a
TypeError, and an InputError too): a library caller catches them as the
built-in exceptions they are, and the command line prints them as one line
and exits 2. Any other exception that reaches the command line is a bug in
handprop, and is reported as one (exit status 1, with the traceback written
to a file); see :mod:`handprop.cli`.

>>> issubclass(InputTypeError, TypeError) and issubclass(InputTypeError, InputError)
True
"""

from __future__ import annotations

__all__ = ["InputError", "InputTypeError"]


class InputError(ValueError):
    """A bad argument, setting or file: the message says what and what was expected."""


class InputTypeError(InputError, TypeError):
    """An argument of the wrong kind (a string for a number, say)."""
