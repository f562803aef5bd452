"""handprop.MLPClassifier against scikit-learn's on the digits data set, with
identical constructor arguments, for each solver and for float64 and float32
input (each estimator computes in the dtype of X): test accuracy, iterations
and fit time, the two fits taking turns, medians of five.

With the same random_state and float64 input the two fits are the same fit
(tests/test_sklearn_parity.py), so the accuracies and iteration counts agree
and the times compare the same work; in float32 round-off makes the runs
drift apart after a while.

    python benchmarks/sklearn_digits.py
    HANDPROP_DATA=../shared/data python benchmarks/sklearn_mnist.py
"""

from __future__ import annotations

import json
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

import handprop
from handprop import MLPClassifier

SOLVERS = {"sgd": {}, "adam": {}, "lbfgs": {}}


def compare(data, *, solvers=SOLVERS, repeat: int = 5, **common) -> list[dict]:
    """For each solver and dtype: both estimators fit ``repeat`` times in turns."""
    (X_train, y_train), (X_test, y_test) = data
    rows = []
    for dtype in (np.float64, np.float32):
        Xtr, Xte = X_train.astype(dtype), X_test.astype(dtype)
        for solver, extra in solvers.items():
            kwargs = dict(solver=solver, random_state=0, **common, **extra)
            times = {"handprop": [], "sklearn": []}
            result = {}
            for _ in range(repeat):
                for name, cls in (("handprop", MLPClassifier), ("sklearn", SkMLPClassifier)):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ConvergenceWarning)
                        t0 = time.perf_counter()
                        clf = cls(**kwargs).fit(Xtr, y_train)
                        times[name].append(time.perf_counter() - t0)
                    result[name] = (clf.score(Xte, y_test), clf.n_iter_)
            rows.append({"dtype": np.dtype(dtype).name, "solver": solver, "kwargs":
                         {k: v for k, v in kwargs.items() if k != "solver"},
                         "seconds": {k: statistics.median(v) for k, v in times.items()},
                         "all_seconds": times, "scores": result})
    return rows


def report(title: str, rows: list[dict], out: Path) -> None:
    print(title)
    print()
    print("| dtype | solver | handprop accuracy | sklearn accuracy | handprop fit (s) "
          "| sklearn fit (s) | sklearn / handprop |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        (ha, hi), (sa, si) = r["scores"]["handprop"], r["scores"]["sklearn"]
        t = r["seconds"]
        print(f"| {r['dtype']} | {r['solver']} | {100 * ha:.2f}% ({hi} it.) | "
              f"{100 * sa:.2f}% ({si} it.) | {t['handprop']:.3f} | {t['sklearn']:.3f} | "
              f"{t['sklearn'] / t['handprop']:.2f} |")
    print(f"\nhandprop {handprop.__version__}, scikit-learn {sklearn.__version__}, "
          f"numpy {np.__version__}, {os.cpu_count()} cores")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {os.path.relpath(out)}")


def main() -> None:
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16, y, test_size=0.3,
                                                        random_state=0, stratify=y)
    rows = compare(((X_train, y_train), (X_test, y_test)), max_iter=200)
    report(f"digits: {len(X_train)} train, {len(X_test)} test; MLPClassifier(solver=..., "
           f"random_state=0, max_iter=200), defaults otherwise, X in each dtype; median of 5 "
           f"fits", rows, Path(__file__).parent / "results" / "sklearn_digits.json")


if __name__ == "__main__":
    main()
