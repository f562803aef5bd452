"""Migrating from scikit-learn: the same script with handprop's import.

Trains scikit-learn's MLPClassifier and handprop's, with the same arguments,
on four small data sets and four learning strategies, and prints the final
training loss and test accuracy of each. With float64 input and the same
random_state the two are the same fit, so the columns agree to round-off.

    python examples/sklearn_migration.py
"""

import warnings

import numpy as np
from sklearn.datasets import load_digits, load_iris, make_circles, make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SklearnMLP
from sklearn.preprocessing import MinMaxScaler

from handprop import MLPClassifier as HandpropMLP

STRATEGIES = {
    "sgd, constant rate": dict(solver="sgd", learning_rate_init=0.2, momentum=0),
    "sgd, Nesterov": dict(solver="sgd", learning_rate_init=0.2, momentum=0.9),
    "sgd, inv-scaling": dict(solver="sgd", learning_rate="invscaling", momentum=0.9,
                             nesterovs_momentum=False, learning_rate_init=0.2),
    "adam": dict(solver="adam", learning_rate_init=0.01),
}
DATA = {
    "iris": load_iris(return_X_y=True),
    "digits": load_digits(return_X_y=True),
    "circles": make_circles(noise=0.2, factor=0.5, random_state=1),
    "moons": make_moons(noise=0.3, random_state=0),
}

print(f"{'data':<8} {'strategy':<20} {'sklearn loss':>12} {'handprop loss':>13} "
      f"{'sklearn acc':>11} {'handprop acc':>12}")
worst = 0.0
for data, (X, y) in DATA.items():
    X = MinMaxScaler().fit_transform(X)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    for name, params in STRATEGIES.items():
        results = []
        for cls in (SklearnMLP, HandpropMLP):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf = cls(random_state=0, max_iter=60, **params).fit(X_train, y_train)
            results.append((clf.loss_, clf.score(X_test, y_test), clf.coefs_))
        (sk_loss, sk_acc, sk_w), (hp_loss, hp_acc, hp_w) = results
        worst = max(worst, *(np.abs(a - b).max() / np.abs(a).max() for a, b in zip(sk_w, hp_w)))
        print(f"{data:<8} {name:<20} {sk_loss:>12.6f} {hp_loss:>13.6f} {sk_acc:>11.3f} "
              f"{hp_acc:>12.3f}")
print(f"largest relative difference of the weights: {'below 1e-9' if worst < 1e-9 else worst}")
