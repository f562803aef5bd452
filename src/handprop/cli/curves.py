"""``handprop curves``: learning curves from a log.csv."""

from __future__ import annotations

import argparse

from ..errors import InputError
from .common import path


def add_parser(sub) -> None:
    p = sub.add_parser("curves", help="plot learning curves from a log.csv",
                       description="Plot the measure (error rate, or R2) and average loss per "
                       "epoch from a log written by handprop train.")
    p.add_argument("log", type=path, help="a log.csv")
    p.add_argument("--out", type=path, default="curves.png", help="default curves.png")
    p.add_argument("--title", default=None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..plotting import check_figure_path, learning_curves, save_figure
    from ..train.history import History

    check_figure_path(args.out)  # before reading the log
    history = History.read_csv(args.log)
    if not history:
        raise InputError(f"{args.log}: the log has no epochs")
    save_figure(learning_curves(history, title=args.title), args.out)
    print(f"wrote {args.out} ({len(history)} epochs)")
    return 0
