"""The ``handprop`` command line.

Every subcommand prints one line and exits 2 on a bad argument or bad data,
with no traceback (set HANDPROP_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from . import __version__

EXIT_USAGE = 2


class UsageError(Exception):
    """A bad argument: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints the usage too; we want one line
        raise UsageError(message)


def _pair(text: str) -> tuple[float, float]:
    """Parse "a,b" (or "a" for both) into two lambdas for W1 and W2."""
    parts = text.split(",")
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected W1,W2 (two numbers), got {text!r}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected W1,W2 (two numbers), got {text!r}") from None
    if len(values) == 1:
        values *= 2
    if any(not np.isfinite(v) or v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"lambdas must be finite and >= 0, got {text!r}")
    return values[0], values[1]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _penalty(l1: tuple[float, float], l2: tuple[float, float]):
    from .penalty import ElasticNet

    return ElasticNet(l1_W1=l1[0], l2_W1=l2[0], l1_W2=l1[1], l2_W2=l2[1])


# --------------------------------------------------------------------------
# gradcheck
# --------------------------------------------------------------------------


def _moons_like(K: int, d: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """K two-moons points in d dimensions: the moons in the first two
    coordinates, standard normal noise in the others; m > 2 classes are drawn
    at random."""
    from .datasets import make_moons

    X2, y = make_moons(max(K, 2), noise=0.1, seed=seed)
    X2, y = X2[:K], y[:K]
    rng = np.random.default_rng(seed + 1)
    if d <= 2:
        X = X2[:, :d]
    else:
        X = np.hstack([X2, rng.normal(size=(K, d - 2))])
    if m > 2:
        y = rng.integers(0, m, size=K)
    return X, y


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from .gradcheck import gradcheck
    from .network import MLP

    penalty = _penalty(args.l1, args.l2)
    net = MLP(args.d, args.d_h, args.m, activation=args.activation, seed=args.seed)
    X, y = _moons_like(args.k, args.d, args.m, args.seed)
    print(f"{net}, {args.k} two-moons-like examples, penalty {penalty.to_dict()}")
    report = gradcheck(net, X, y, penalty, eps=args.eps, order=args.order, tol=args.tol,
                       method=args.method)
    print(report)
    return 0 if report.passed else 1


# --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from .activations import ACTIVATIONS, ALIASES
    from .gradcheck import DEFAULT_TOL

    activations = sorted(set(ACTIVATIONS) | set(ALIASES))
    parser = _Parser(
        prog="handprop",
        description="Multilayer perceptrons with hand-derived gradients in NumPy.",
    )
    parser.add_argument("--version", action="version", version=f"handprop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "gradcheck",
        help="check the hand-derived gradients by finite differences",
        description="Check every gradient of a small net by central finite differences in "
        "float64. Exits 0 when every relative error is under the tolerance, 1 otherwise.",
    )
    p.add_argument("--d", type=_positive_int, default=2, help="inputs (default 2)")
    p.add_argument("--d-h", type=_positive_int, default=2, help="hidden units (default 2)")
    p.add_argument("--m", type=_positive_int, default=2, help="classes, >= 2 (default 2)")
    p.add_argument("--k", type=_positive_int, default=10, help="minibatch size K (default 10)")
    p.add_argument("--activation", choices=activations, default="relu")
    p.add_argument("--l1", type=_pair, default=(0.0, 0.0), metavar="W1,W2",
                   help="L1 lambdas for W1 and W2 (default 0,0)")
    p.add_argument("--l2", type=_pair, default=(0.0, 0.0), metavar="W1,W2",
                   help="L2 lambdas for W1 and W2 (default 0,0)")
    p.add_argument("--eps", type=_positive_float, default=1e-6,
                   help="finite-difference step (default 1e-6)")
    p.add_argument("--order", type=int, choices=(2, 4), default=2,
                   help="2: classic central difference; 4: five-point stencil, for which "
                   "--eps 1e-3 suits (default 2)")
    p.add_argument("--tol", type=_positive_float, default=DEFAULT_TOL,
                   help=f"largest relative error that passes (default {DEFAULT_TOL:g})")
    p.add_argument("--method", choices=("matrix", "loop"), default="matrix",
                   help="which implementation to check (default matrix)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_gradcheck)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        if args.command == "gradcheck" and args.m < 2:
            raise UsageError("argument --m: a classifier needs m >= 2 classes")
        return args.func(args)
    except UsageError as exc:
        print(f"handprop: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError, OSError) as exc:
        if os.environ.get("HANDPROP_DEBUG"):
            raise
        print(f"handprop: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("handprop: interrupted", file=sys.stderr)
        return 130
