"""How the recipes of mnist_records.py were chosen: on the validation set.

Trains each candidate below and prints its final and best validation error
(the test set is not touched). docs/accuracy.md lists the results. The
one-hidden-layer search (A to J) takes about an hour on 2 cores, the deep one
(K onwards) several; --only runs some candidates.

    HANDPROP_DATA=../shared/data python benchmarks/mnist_records_search.py [--only A C]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from handprop import MLP
from handprop.data.datasets import load_mnist
from handprop.train.training import fit

NESTEROV = dict(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True, schedule="cosine",
                dropout=(0.2, 0.5), max_norm=3.5)
ADAM = dict(optimizer="adam", lr=1e-3, schedule="cosine", dropout=(0.2, 0.5))

# Recipe 1, no augmentation: dropout nets, which SGD or Adam, how wide, how long.
# Recipe 2, with augmentation: which distortions (30 epochs each).
CANDIDATES = {
    "A": (1024, dict(NESTEROV, epochs=50)),
    "B": (2048, dict(NESTEROV, epochs=50)),
    "C": (1024, dict(ADAM, epochs=50)),
    "D": (1024, dict(NESTEROV, epochs=50, label_smoothing=0.1)),
    "E": (2048, dict(ADAM, epochs=100)),
    "F": (1024, dict(ADAM, epochs=150)),
    "G": (1024, dict(ADAM, epochs=30, dropout=(0.0, 0.25), augment="elastic")),
    "H": (1024, dict(ADAM, epochs=30, dropout=(0.0, 0.25), augment="affine,elastic")),
    # recipe 2 at full length: 1,024 units for 200 epochs (the recipe as first run),
    # against 2,048 units for 300
    "I": (1024, dict(ADAM, epochs=200, dropout=(0.0, 0.25), augment="elastic")),
    "J": (2048, dict(ADAM, epochs=300, dropout=(0.0, 0.25), augment="elastic")),
    # Recipe 4, deep, no augmentation: depth and width at one budget (60 epochs),
    # then regularizers on the best shape.
    "K": ((1024, 1024, 1024), dict(ADAM, epochs=60)),
    "L": ((2048, 2048), dict(ADAM, epochs=60)),
    "M": ((1024, 1024, 1024), dict(ADAM, epochs=60, label_smoothing=0.1)),
    "N": ((1024, 1024, 1024), dict(ADAM, epochs=60, max_norm=3.5)),
    "O": ((1024, 1024, 1024), dict(NESTEROV, epochs=60)),
    # Recipe 5, deep, with distortions: as for recipe 2, light dropout
    "P": ((1024, 1024, 1024), dict(ADAM, epochs=60, dropout=(0.0, 0.25), augment="elastic")),
    "Q": ((2048, 2048), dict(ADAM, epochs=60, dropout=(0.0, 0.25), augment="elastic")),
    "R": ((1024, 1024, 1024), dict(ADAM, epochs=60, dropout=(0.0, 0.25),
                                   augment="affine,elastic")),
    # P (the best of recipe 5's first round) four times as long
    "S": ((1024, 1024, 1024), dict(ADAM, epochs=240, dropout=(0.0, 0.25), augment="elastic")),
    # L (the best of recipe 4's first round) five times as long: 300 epochs, the
    # most that fit in two hours on 2 cores at its 20 s an epoch
    "T": ((2048, 2048), dict(ADAM, epochs=300)),
    # recipe 5 (S at 300 epochs) made half as wide again: wider layers had gained on
    # validation for one layer (J against I, which J also outran) and without
    # distortions (L against K, one layer fewer); 280 epochs, the most that fit in two
    # hours at the 23 s an epoch of a two-epoch probe (the run's median was 26 s)
    "U": ((1536, 1536, 1536), dict(ADAM, epochs=280, dropout=(0.0, 0.25), augment="elastic")),
    # S at 300 epochs, the most that fit in two hours: it chose recipe 5's settings
    # (U, wider, tied it on validation and ran slower), which mnist_records.py then
    # trains on all 60,000 images for as many updates
    "V": ((1024, 1024, 1024), dict(ADAM, epochs=300, dropout=(0.0, 0.25), augment="elastic")),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(CANDIDATES),
                        default=sorted(CANDIDATES))
    args = parser.parse_args()
    (X, y), valid, _ = load_mnist()
    print("| candidate | d_h | settings | final valid error | best valid error | minutes |",
          flush=True)
    print("|---|---:|---|---:|---:|---:|", flush=True)
    for name in args.only:
        d_h, settings = CANDIDATES[name]
        net = MLP(784, d_h, 10, dtype="float32", seed=0)
        t0 = time.perf_counter()
        history = fit(net, X, y, valid=valid, seed=0, progress=False, **settings)
        errors = history.column("valid_error")
        shown = ", ".join(f"{k}={v}" for k, v in settings.items())
        sizes = ",".join(map(str, d_h)) if isinstance(d_h, tuple) else d_h
        print(f"| {name} | {sizes} | {shown} | {100 * errors[-1]:.2f}% | "
              f"{100 * np.min(errors):.2f}% | {(time.perf_counter() - t0) / 60:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
