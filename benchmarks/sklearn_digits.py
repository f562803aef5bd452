"""handprop.MLPClassifier against scikit-learn's on the digits data set, with
identical constructor arguments, for each solver: test accuracy and fit time,
the two fits taking turns, medians of five.

    python benchmarks/sklearn_digits.py
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

REPEAT = 5


def main() -> None:
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16, y, test_size=0.3,
                                                        random_state=0, stratify=y)
    rows = []
    for solver in ("sgd", "adam", "lbfgs"):
        kwargs = dict(solver=solver, random_state=0, max_iter=200)
        times = {"handprop": [], "sklearn": []}
        scores = {}
        for _ in range(REPEAT):
            for name, cls in (("handprop", MLPClassifier), ("sklearn", SkMLPClassifier)):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    t0 = time.perf_counter()
                    clf = cls(**kwargs).fit(X_train, y_train)
                    times[name].append(time.perf_counter() - t0)
                scores[name] = clf.score(X_test, y_test)
                scores[f"{name} iterations"] = clf.n_iter_
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"solver": solver, "seconds": med, "scores": scores})
    print(f"digits: {len(X_train)} train, {len(X_test)} test; MLPClassifier(solver=..., "
          f"random_state=0, max_iter=200), defaults otherwise; median of {REPEAT} fits")
    print()
    print("| solver | handprop accuracy | sklearn accuracy | handprop fit (s) | sklearn fit (s) "
          "| sklearn / handprop |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        s, t = r["scores"], r["seconds"]
        print(f"| {r['solver']} | {100 * s['handprop']:.2f}% ({s['handprop iterations']} it.) "
              f"| {100 * s['sklearn']:.2f}% ({s['sklearn iterations']} it.) "
              f"| {t['handprop']:.3f} | {t['sklearn']:.3f} | {t['sklearn'] / t['handprop']:.2f} |")
    print(f"\nhandprop {handprop.__version__}, scikit-learn {sklearn.__version__}, "
          f"numpy {np.__version__}")
    out = Path(__file__).parent / "results" / "sklearn_digits.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {os.path.relpath(out)}")


if __name__ == "__main__":
    main()
