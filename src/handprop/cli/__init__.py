"""The ``handprop`` command line: one module per command, each with its
options beside the function that runs it.

Every command prints one line and exits 2 on a bad argument or bad data,
with no traceback (set HANDPROP_DEBUG=1 to see one); a bug in handprop says
so, writes its traceback to a file and exits 1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .._version import __version__
from ..errors import InputError
from . import bench, curves, evaluate, gradcheck, misc, regions, sweep, train
from .common import EXIT_USAGE, Parser, UsageError, format_record

__all__ = ["main", "build_parser", "UsageError", "format_record", "EXIT_USAGE"]

#: The commands, in the order ``--help`` lists them.
COMMANDS = (gradcheck, train, regions, curves, evaluate, misc, sweep, bench)


def build_parser() -> Parser:
    parser = Parser(prog="handprop",
                    description="Multilayer perceptrons with hand-derived gradients in NumPy.")
    parser.add_argument("--version", action="version", version=f"handprop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


#: What to try when a command runs out of memory, by command.
_MEMORY_HINTS = {
    "train": "try a smaller --hidden or --batch-size",
    "regions": "try a smaller --hidden",
    "bench-epoch": "try a smaller --hidden or --k",
    "gradcheck": "try a smaller --d-h or --k",
    "compare-grads": "try a smaller --d-h or --k",
    "sweep": "try a smaller search space",
}


def main(argv: list[str] | None = None) -> int:
    """Run a command. Exit status: 0 done; 1 a result that failed (a gradient
    check, a diverged run) or a bug in handprop; 2 bad input, in one line;
    130 or 143 interrupted."""
    parser = build_parser()
    command = None
    try:
        args = parser.parse_args(argv)
        command = args.command
        if args.command is None:
            parser.print_help()
            return 0
        return args.func(args)
    except (UsageError, InputError, ImportError, OSError) as exc:
        # bad input: a wrong option or file, a missing optional package, a
        # file that cannot be read or written (a full disk, say)
        if os.environ.get("HANDPROP_DEBUG"):
            raise
        print(f"handprop: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError as exc:  # NumPy's, or CuPy's OutOfMemoryError on a GPU
        if os.environ.get("HANDPROP_DEBUG"):
            raise
        hint = _MEMORY_HINTS.get(command, "the data or the model is too large for this machine")
        print(f"handprop: error: out of memory ({exc or 'no detail'}); {hint}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("handprop: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # anything else is handprop's own bug
        if os.environ.get("HANDPROP_DEBUG"):
            raise
        return _report_bug(exc, argv)


def _one_line(exc: BaseException) -> str:
    """An error's message on one line, of a readable length."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 500 else text[:480] + " ..."


def _report_bug(exc: BaseException, argv) -> int:
    """Say that ``exc`` is a bug, write its traceback to a file, exit 1."""
    import datetime
    import tempfile
    import traceback

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(tempfile.gettempdir()) / f"handprop-bug-{stamp}-{os.getpid()}.txt"
    text = (f"handprop {__version__}, Python {sys.version.split()[0]}\n"
            f"arguments: {sys.argv[1:] if argv is None else argv}\n\n"
            + "".join(traceback.format_exception(exc)))
    try:
        path.write_text(text)
        where = f"the traceback is in {path}"
    except OSError:
        where = "the traceback could not be written; rerun with HANDPROP_DEBUG=1 to see it"
    first = str(exc).splitlines()[0] if str(exc) else ""
    print(f"handprop: internal error, a bug in handprop rather than in your input: "
          f"{type(exc).__name__}: {first}; {where}; please report it", file=sys.stderr)
    return 1
