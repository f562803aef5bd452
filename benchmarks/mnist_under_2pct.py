"""The assignment's last exercise: MNIST test error under 2%, with the
hyper-parameters chosen on the validation set only.

Trains every setting of a small grid for a fixed number of epochs, picks the
one with the lowest validation error at the last epoch, and only then reports
the test error of that one setting. Prints a markdown table and writes JSON.

    HANDPROP_DATA=../shared/data python benchmarks/mnist_under_2pct.py
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import handprop
from handprop import MLP, ElasticNet
from handprop.data.datasets import load_mnist
from handprop.train.training import evaluate, fit

GRID = {"d_h": [512, 1024], "lr": [0.05, 0.1], "l2": [0.0, 1e-5]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "mnist_under_2pct.json"))
    args = parser.parse_args()
    (X, y), valid, test = load_mnist()
    rows = []
    for d_h, lr, l2 in itertools.product(*GRID.values()):
        net = MLP(784, d_h, 10, dtype="float32", seed=0)
        t0 = time.perf_counter()
        history = fit(net, X, y, valid=valid, epochs=args.epochs, lr=lr, momentum=0.9,
                      schedule="cosine", penalty=ElasticNet(l2_W1=l2, l2_W2=l2), seed=0,
                      progress=False)
        seconds = time.perf_counter() - t0
        rows.append({"d_h": d_h, "lr": lr, "l2": l2, "valid_error": history[-1].valid_error,
                     "seconds": seconds, "net": net})
        print(f"d_h {d_h:5d}  lr {lr:<5g} l2 {l2:<6g} valid error "
              f"{100 * history[-1].valid_error:.2f}%  ({seconds:.1f} s)", flush=True)
    best = min(rows, key=lambda r: r["valid_error"])
    test_error, test_loss = evaluate(best.pop("net"), *test)  # the test set, used once
    for r in rows:
        r.pop("net", None)
    print()
    print("| d_h | lr | l2 | valid error | seconds |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        mark = " **(chosen)**" if r is best else ""
        print(f"| {r['d_h']} | {r['lr']:g} | {r['l2']:g} | {100 * r['valid_error']:.2f}%{mark} "
              f"| {r['seconds']:.1f} |")
    print()
    print(f"chosen on validation: d_h = {best['d_h']}, lr = {best['lr']:g}, l2 = {best['l2']:g}, "
          f"{args.epochs} epochs, momentum 0.9, cosine schedule, K = 100")
    print(f"test error {100 * test_error:.2f}% (average loss {test_loss:.4f}), "
          f"training time {best['seconds']:.1f} s")
    result = {
        "grid": GRID, "epochs": args.epochs, "rows": rows, "chosen": best,
        "test_error": test_error, "test_loss": test_loss,
        "machine": platform.processor() or platform.machine(),
        "numpy": np.__version__, "handprop": handprop.__version__,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {os.path.relpath(args.out)}")


if __name__ == "__main__":
    main()
