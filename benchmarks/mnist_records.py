"""Multilayer perceptrons on MNIST against the published records.

Trains each recipe below from a clean start, checks the 10,000 validation
images after every epoch, and reports the test error of the final epoch
once, next to the published figures for nets of the same family (fully
connected, no convolutions). The recipes' hyper-parameters were chosen on the
validation set (docs/accuracy.md and mnist_records_search.py tell how); the
test set never chose anything. Recipes 1 to 4 train on the 50,000 training
images. Recipe 5 is a last fit: the settings that its validation run chose
(candidate V of the search), trained on all 60,000 training images, the
validation ones included, for the same number of updates (250 epochs of 600
minibatches, as V's 300 of 500); its validation error is then not held out.

Each recipe's per-epoch log (train and valid figures, seconds) goes to
results/mnist_records_recipe<N>.csv as it trains, and its row, with a SHA-256
digest of the trained parameters and the process's peak resident memory so
far, to mnist_records.json. The same seed gives the same digest: --epochs N
shortens the recipes to check that (two runs, one digest) and then writes no
results. Recipes 1 to 3 run by default; recipes 4 and 5 take up to two hours
each on 2 cores.

    HANDPROP_DATA=../shared/data python benchmarks/mnist_records.py [--recipe 1 2 3 4 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

import handprop
from handprop import MLP
from handprop.data.datasets import VALID_SEEN, load_dataset
from handprop.files import write_text
from handprop.train.training import evaluate, fit

PUBLISHED = [
    ("LeCun et al. 1998", "300 hidden units", 4.7),
    ("LeCun et al. 1998", "1000 hidden units", 4.5),
    ("Simard et al. 2003", "800 units, cross-entropy, no distortions", 1.6),
    ("Simard et al. 2003", "800 units, affine distortions", 1.1),
    ("Simard et al. 2003", "800 units, elastic distortions", 0.7),
    ("Srivastava et al. 2014", "3 x 1024 ReLU units, dropout, max-norm", 1.06),
    ("Srivastava et al. 2014", "2 x 8192 ReLU units, dropout, max-norm", 0.95),
    ("Srivastava et al. 2014", "maxout, dropout", 0.94),
    ("Ciresan et al. 2010", "2500-2000-1500-1000-500, elastic and affine distortions", 0.35),
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
    4: {
        "name": "deep, no augmentation",
        "d_h": (2048, 2048),
        "fit": dict(epochs=300, batch_size=100, optimizer="adam", lr=1e-3, schedule="cosine",
                    dropout=(0.2, 0.5)),
    },
    5: {
        "name": "deep, elastic distortions, last fit on all 60,000",
        "d_h": (1024, 1024, 1024),
        "data": "mnist-full",  # the validation images train too: see the module's docstring
        "fit": dict(epochs=250, batch_size=100, optimizer="adam", lr=1e-3, schedule="cosine",
                    dropout=(0.0, 0.25), augment="elastic"),
    },
}


def run(number: int, epochs: int | None = None, log_dir: Path | None = None) -> dict:
    """Train recipe ``number`` from a clean start; its row of results.

    The recipe's "data" names its data set (mnist by default; mnist-full
    trains on the validation images too, as ``handprop train --dataset
    mnist-full``). ``epochs`` shortens the recipe (for the bit-for-bit
    check); ``log_dir`` receives the per-epoch log,
    mnist_records_recipe<number>.csv."""
    recipe = RECIPES[number]
    settings = dict(recipe["fit"], **({"epochs": epochs} if epochs else {}))
    dataset = recipe.get("data", "mnist")
    seen = dataset in VALID_SEEN  # the validation images train
    (X, y), valid, test = load_dataset(dataset)  # read for each recipe: none holds two
    net = MLP(784, recipe["d_h"], 10, dtype="float32", seed=0)
    log = None if log_dir is None else log_dir / f"mnist_records_recipe{number}.csv"
    t0 = time.perf_counter()
    history = fit(net, X, y, valid=valid, seed=0, progress=False, log=log, **settings)
    seconds = time.perf_counter() - t0
    test_error, _ = evaluate(net, *test)  # once, after training
    digest = hashlib.sha256()
    for name, array in sorted(net.params.items()):
        digest.update(name.encode() + np.ascontiguousarray(array).tobytes())
    epoch_seconds = history.column("seconds")
    row = {"recipe": number, "name": recipe["name"], "d_h": recipe["d_h"],
           "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
           "data": dataset, "valid_seen_in_training": seen,
           "epochs": len(history), "valid_error": history[-1].valid_error,
           # nothing is chosen on a validation set that trained
           "best_valid_error": None if seen else float(np.min(history.column("valid_error"))),
           "test_error": test_error, "seconds": seconds,
           "median_epoch_seconds": float(np.median(epoch_seconds)),
           # ru_maxrss is in KiB on Linux: the whole process so far, data and any
           # recipe run before this one included (run one recipe for its own)
           "process_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "sha256": digest.hexdigest()}
    print(f"recipe {number} ({recipe['name']}): test error {100 * test_error:.2f}%, valid "
          f"error {100 * row['valid_error']:.2f}%{' (trained on)' * seen}, "
          f"{row['epochs']} epoch{'s' * (row['epochs'] != 1)}, "
          f"{_duration(seconds)} ({row['median_epoch_seconds']:.1f} s per epoch), process "
          f"peak memory {row['process_peak_rss_mib']:.0f} MiB, parameters sha256 "
          f"{row['sha256'][:16]}",
          flush=True)
    return row


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=int, nargs="+", choices=sorted(RECIPES),
                        default=[1, 2, 3], help="the recipes to run (default 1 2 3)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "mnist_records.json"))
    parser.add_argument("--epochs", type=int, default=None,
                        help="shorten every recipe to this many epochs and write no results "
                             "(to check that two runs give one digest)")
    args = parser.parse_args()
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    log_dir = None if args.epochs else Path(args.out).parent
    rows = [run(n, args.epochs, log_dir) for n in args.recipe]
    if args.epochs:
        return
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
        sizes = " x ".join(map(str, r["d_h"])) if isinstance(r["d_h"], list | tuple) else r["d_h"]
        valid = f"{100 * r['valid_error']:.2f}%" + " (trained on)" * r["valid_seen_in_training"]
        print(f"| handprop recipe {r['recipe']}: {r['name']}, d_h = {sizes} | "
              f"{100 * r['test_error']:.2f}% | {valid} | {r['epochs']} | "
              f"{_duration(r['seconds'])} |")
    for who, what, error in PUBLISHED:
        print(f"| {who}: {what} | {error:.2f}% | | | |")
    print(f"\nhandprop {handprop.__version__}, numpy {np.__version__}, "
          f"{platform.machine()}, {os.cpu_count()} cores")
    write_text(args.out, json.dumps([previous[k] for k in sorted(previous)], indent=2) + "\n")
    print(f"wrote {os.path.relpath(args.out)}")


if __name__ == "__main__":
    main()
