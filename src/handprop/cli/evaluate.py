"""``handprop evaluate`` and ``handprop predict``: a saved model on data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..errors import InputError
from .common import path, show_measure


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="the measure and average loss of a saved model",
                       description="Print the measure (error rate, or R2 for a regression "
                       "model) and average loss of a model on a dataset's split.")
    p.add_argument("model", type=path, help="a model.npz")
    p.add_argument("--dataset", type=path, default=None,
                   help="moons, moons-small, mnist, mnist-full, or a file (default: the "
                   "model's own, as trained)")
    p.add_argument("--label", default=None, metavar="COL[,COL...]",
                   help="the target columns of a CSV (default: the model's, as trained)")
    p.add_argument("--split", choices=("train", "valid", "test", "all"), default="test")
    p.add_argument("--data-dir", type=path, default=None)
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser("predict", help="predict the rows of a file",
                       description="Write CSV, one row per input row: the predicted class "
                       "and each class's probability; each label and its probability "
                       "(logistic outputs); or the outputs (regression). FILE is a CSV of "
                       "features (a header row allowed; the model's target columns, or a "
                       "'label' column, are dropped) or a .npz with X.")
    p.add_argument("model", type=path, help="a model.npz")
    p.add_argument("file", type=path, help="FILE.csv or FILE.npz")
    p.add_argument("--out", type=path, default=None,
                   help="output CSV (default: standard output)")
    p.set_defaults(func=run_predict)


def run_evaluate(args: argparse.Namespace) -> int:
    from ..core.network import MLP
    from ..data.datasets import VALID_SEEN, load_dataset
    from ..train.training import evaluate
    from .train import _labels

    net = MLP.load(args.model)
    meta = net.meta if isinstance(net.meta, dict) else {}
    dataset = args.dataset or meta.get("dataset") or "moons"
    if not isinstance(dataset, str):
        raise InputError(f"{args.model}: its recorded dataset is not a name; give --dataset")
    label = _labels(args.label) if args.label is not None else meta.get("label")
    splits = dict(zip(("train", "valid", "test"),
                      load_dataset(dataset, data_dir=args.data_dir, label=label,
                                   classes=net.pair.class_indices), strict=True))
    names = ("train", "valid", "test") if args.split == "all" else (args.split,)
    # a model trained on mnist-full has trained on the valid images too
    seen = meta.get("dataset") in VALID_SEEN
    for name in names:
        X, y = splits[name]
        shown_name = f"{name} (trained on)" if seen and name == "valid" else name
        if X.shape[1] != net.d:
            raise InputError(f"{dataset} has {X.shape[1]} features; the model expects "
                             f"{net.d}")
        try:
            y = net.check_y(y, len(y))
        except (TypeError, ValueError) as exc:
            raise InputError(f"{dataset}: its targets do not fit the model's {net.output} "
                             f"outputs: {exc}") from None
        measure, loss = evaluate(net, X, y)
        if net.pair.classifies:
            print(f"{shown_name}: error {show_measure(measure)} ({round(measure * len(y))} "
                  f"of {len(y)}), average loss {loss:.4f}")
        else:
            print(f"{shown_name}: R2 {show_measure(measure, 'r2')}, average loss {loss:.4f} "
                  f"({len(y)} examples)")
    return 0


def read_features(path: str, drop=("label",)) -> np.ndarray:
    """Inputs to predict from: a CSV of numbers (a header row allowed; the
    columns named in ``drop`` are dropped) or a .npz with an array X."""
    from ..data.datasets import read_table
    from ..files import read_npz

    p = Path(path)
    if p.suffix.lower() == ".npz":
        return read_npz(p, ("X",))["X"]
    table, header = read_table(p)
    if header:
        gone = [header.index(c) for c in drop if isinstance(c, str) and c in header]
        if gone:
            table = np.delete(table, gone, axis=1)
    return table


def run_predict(args: argparse.Namespace) -> int:
    import csv
    import io

    from ..core.network import MLP
    from ..files import write_text

    net = MLP.load(args.model)
    label = net.meta.get("label") if isinstance(net.meta, dict) else None
    X = read_features(args.file, drop=("label", *(label or ())))
    cache_o_s = net.predict_proba(X) if net.pair.classifies else net.predict(X)
    header, rows = net.pair.prediction_table(cache_o_s, net.m)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    if args.out:
        write_text(args.out, buffer.getvalue())
        print(f"wrote {len(rows)} predictions to {args.out}")
    else:
        sys.stdout.write(buffer.getvalue())
    return 0
