"""The small commands: ``playground``, ``export`` and ``distortions``."""

from __future__ import annotations

import argparse
import sys

from .common import integer, path, positive_int, seed


def add_parser(sub) -> None:
    p = sub.add_parser("playground", help="train live in a browser: the two-moons experiments",
                       description="Start a local web server whose page trains nets on "
                       "plane data sets with handprop's own code, live: decision regions, "
                       "hidden units, learning curves, and any point's forward and backward "
                       "pass. Needs the [playground] extra.")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    p.add_argument("--port", type=integer, default=8050, help="default 8050; 0 picks a free one")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.set_defaults(func=run_playground)

    p = sub.add_parser("export", help="write a model file as ONNX",
                       description="Write the net of a model file (from handprop train) as an "
                       "ONNX graph, for onnxruntime and other ONNX runtimes, through "
                       "skl2onnx's MLP converters. Needs the [onnx] extra.")
    p.add_argument("model", type=path, help="a model.npz")
    p.add_argument("onnx", type=path, help="the ONNX file to write")
    p.set_defaults(func=run_export)

    p = sub.add_parser("distortions", help="a figure of MNIST digits and their distortions",
                       description="Draw the first training digits and, below them, a row of "
                       "distorted versions for each augmentation.")
    p.add_argument("--augment", action="append", metavar="KINDS",
                   help="one row per use: shift, affine, elastic, or several comma-separated "
                   "(default: one row each for shift, affine, elastic)")
    p.add_argument("--n", type=positive_int, default=8, help="digits (default 8, at most "
                   f"{MAX_DIGITS})")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--data-dir", type=path, default=None)
    p.add_argument("--out", type=path, default="distortions.png",
                   help="default distortions.png")
    p.set_defaults(func=run_distortions)


#: The most digits a distortions figure draws: a row of 64 is already unreadable.
MAX_DIGITS = 64


def run_playground(args: argparse.Namespace) -> int:
    from ..playground import serve

    try:
        serve(args.host, args.port, open_browser=not args.no_browser)  # until Ctrl-C
    except KeyboardInterrupt:
        pass
    print("handprop playground: stopped", file=sys.stderr)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..onnx import export

    print(f"wrote {export(args.model, args.onnx)}")
    return 0


def run_distortions(args: argparse.Namespace) -> int:
    from ..data.augment import Augmenter
    from ..data.datasets import load_mnist
    from ..plotting import check_figure_path, distortions, save_figure
    from .common import UsageError

    if args.n > MAX_DIGITS:
        raise UsageError(f"argument --n: at most {MAX_DIGITS} digits, got {args.n}")
    check_figure_path(args.out)
    kinds = args.augment or ["shift", "affine", "elastic"]
    for k in kinds:
        Augmenter(k)  # a bad kind, or no SciPy, before MNIST is read
    (X, _), _, _ = load_mnist(args.data_dir)
    save_figure(distortions(X, kinds, n=args.n, seed=args.seed), args.out)
    print(f"wrote {args.out}: {args.n} training digits and their distortions by "
          f"{', '.join(kinds)}")
    return 0
