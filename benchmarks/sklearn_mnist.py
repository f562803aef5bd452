"""handprop.MLPClassifier against scikit-learn's on MNIST, identical
arguments, each solver, float64 and float32: test accuracy, iterations and fit
time, the fits taking turns, medians of three. 50,000 training images, a
hidden layer of 100 units; sgd and adam for 5 epochs (batch 200), lbfgs for 30
iterations, so that the whole comparison takes minutes.

    HANDPROP_DATA=../shared/data python benchmarks/sklearn_mnist.py
"""

from __future__ import annotations

from pathlib import Path

from sklearn_digits import compare, report  # benchmarks/sklearn_digits.py, beside this file

from handprop.data.datasets import load_mnist


def main() -> None:
    (X_train, y_train), _, test = load_mnist()
    rows = compare(((X_train, y_train), test), repeat=3,
                   solvers={"sgd": {"max_iter": 5}, "adam": {"max_iter": 5},
                            "lbfgs": {"max_iter": 30}})
    report(f"MNIST: {len(X_train)} train, {len(test[0])} test; MLPClassifier(solver=..., "
           f"random_state=0; 5 epochs, lbfgs 30 iterations), defaults otherwise, X in each "
           f"dtype; median of 3 fits", rows,
           Path(__file__).parent / "results" / "sklearn_mnist.json")


if __name__ == "__main__":
    main()
