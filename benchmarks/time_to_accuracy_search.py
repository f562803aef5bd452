"""A validation search for a shorter recipe to 98%: 2 or 3 epochs.

benchmarks/time_to_accuracy.py times a 4-epoch recipe (d_h = 256, SGD with
momentum 0.9, lr 0.2, per-minibatch cosine). A 3-epoch recipe would take a
quarter less time; this grid trains each candidate once (seed 0, K = 100)
and prints its validation accuracy after every epoch. The test set is not
read.

    HANDPROP_DATA=../shared/data python benchmarks/time_to_accuracy_search.py
"""

from __future__ import annotations

import itertools

from handprop import MLP
from handprop.data.datasets import load_mnist
from handprop.train.training import fit


def main() -> None:
    (X, y), valid, _ = load_mnist()
    print("d_h epochs lr: validation accuracy after each epoch")
    for d_h, epochs, lr in itertools.product([256, 512], [2, 3], [0.1, 0.2, 0.3]):
        net = MLP(784, d_h, 10, dtype="float32", seed=0)
        history = fit(net, X, y, valid=valid, epochs=epochs, batch_size=100, lr=lr,
                      momentum=0.9, schedule="cosine", seed=0, progress=False)
        accuracy = " ".join(f"{100 * (1 - r.valid_error):.2f}%" for r in history)
        print(f"{d_h} {epochs} {lr}: {accuracy}", flush=True)


if __name__ == "__main__":
    main()
