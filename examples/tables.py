"""Write three small CSV tables for the examples of docs/outputs.md: a
regression with two targets (regression.csv), three labels per example
(labels.csv), and counts (counts.csv), each with features x1, x2, x3.

    python examples/tables.py [FOLDER]
"""

import sys
from pathlib import Path

import numpy as np


def write(path: Path, columns: dict) -> None:
    names = list(columns)
    rows = np.column_stack([columns[n] for n in names])
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for row in rows:
            f.write(",".join(f"{v:.6g}" for v in row) + "\n")


def main(folder: str = ".") -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (500, 3))
    features = {"x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2]}
    out = Path(folder)
    write(out / "regression.csv", {**features, "y1": np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2],
                                   "y2": X[:, 0] ** 2 - X[:, 2]})
    write(out / "labels.csv", {**features, "positive": X[:, 0] > 0,
                               "large": X.sum(axis=1) > 0.5, "corner": X[:, 1] * X[:, 2] > 0})
    write(out / "counts.csv", {**features,
                               "visits": rng.poisson(np.exp(1 + X[:, 0] - 0.5 * X[:, 1]))})
    print(f"wrote {out / 'regression.csv'}, {out / 'labels.csv'}, {out / 'counts.csv'}: "
          f"500 rows each")


if __name__ == "__main__":
    main(*sys.argv[1:])
