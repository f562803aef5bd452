"""One hidden layer on MNIST against the published records.

Trains each recipe below from a clean start on the 50,000 training images,
checks the 10,000 validation images after every epoch, and reports the test
error of the final epoch once, next to the published one-hidden-layer
figures. The recipes' hyper-parameters were chosen on the validation set
(docs/accuracy.md tells how); the test set never chose anything.

    HANDPROP_DATA=../shared/data python benchmarks/mnist_records.py [--recipe 1 2 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import handprop
from handprop import MLP
from handprop.data.datasets import load_mnist
from handprop.train.training import evaluate, fit

PUBLISHED = [
    ("LeCun et al. 1998", "300 hidden units", 4.7),
    ("LeCun et al. 1998", "1000 hidden units", 4.5),
    ("Simard et al. 2003", "800 units, cross-entropy, no distortions", 1.6),
    ("Simard et al. 2003", "800 units, affine distortions", 1.1),
    ("Simard et al. 2003", "800 units, elastic distortions", 0.7),
]

RECIPES = {
    1: {
        "name": "one hidden layer, no augmentation",
        "d_h": 2048,
        "fit": dict(epochs=100, batch_size=100, optimizer="adam", lr=1e-3, schedule="cosine",
                    dropout=(0.2, 0.5)),
    },
    2: {
        "name": "one hidden layer, elastic distortions",
        "d_h": 2048,
        "fit": dict(epochs=300, batch_size=100, optimizer="adam", lr=1e-3, schedule="cosine",
                    dropout=(0.0, 0.25), augment="elastic"),
    },
    3: {
        "name": "the fastest run to 98% test accuracy",
        "d_h": 256,
        "fit": dict(epochs=4, batch_size=100, lr=0.2, momentum=0.9, schedule="cosine"),
    },
}


def run(number: int, data) -> dict:
    recipe = RECIPES[number]
    (X, y), valid, test = data
    net = MLP(784, recipe["d_h"], 10, dtype="float32", seed=0)
    t0 = time.perf_counter()
    history = fit(net, X, y, valid=valid, seed=0, progress=False, **recipe["fit"])
    seconds = time.perf_counter() - t0
    test_error, _ = evaluate(net, *test)  # once, after training
    row = {"recipe": number, "name": recipe["name"], "d_h": recipe["d_h"],
           "settings": {k: list(v) if isinstance(v, tuple) else v
                        for k, v in recipe["fit"].items()},
           "epochs": len(history), "valid_error": history[-1].valid_error,
           "best_valid_error": float(np.min(history.column("valid_error"))),
           "test_error": test_error, "seconds": seconds}
    print(f"recipe {number} ({recipe['name']}): test error {100 * test_error:.2f}%, valid "
          f"error {100 * row['valid_error']:.2f}%, {row['epochs']} epochs, "
          f"{_duration(seconds)}", flush=True)
    return row


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=int, nargs="+", choices=sorted(RECIPES),
                        default=sorted(RECIPES))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "mnist_records.json"))
    args = parser.parse_args()
    data = load_mnist()
    rows = [run(n, data) for n in args.recipe]
    # keep the other recipes' last results in the JSON file
    try:
        previous = {r["recipe"]: r for r in json.loads(Path(args.out).read_text())}
    except (OSError, ValueError):
        previous = {}
    previous.update({r["recipe"]: r for r in rows})
    print()
    print("| result | test error | valid error | epochs | wall time |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| handprop recipe {r['recipe']}: {r['name']}, d_h = {r['d_h']} | "
              f"{100 * r['test_error']:.2f}% | {100 * r['valid_error']:.2f}% | {r['epochs']} | "
              f"{_duration(r['seconds'])} |")
    for who, what, error in PUBLISHED:
        print(f"| {who}: {what} | {error:.1f}% | | | |")
    print(f"\nhandprop {handprop.__version__}, numpy {np.__version__}, "
          f"{platform.machine()}, {os.cpu_count()} cores")
    Path(args.out).write_text(json.dumps([previous[k] for k in sorted(previous)], indent=2)
                              + "\n")
    print(f"wrote {os.path.relpath(args.out)}")


if __name__ == "__main__":
    main()
