"""Random targets of each output/loss pair, shared by the tests."""

import numpy as np


def random_targets(rng: np.random.Generator, output: str, K: int, m: int,
                   counts_mean: float = 2.0) -> np.ndarray:
    """Targets for K examples and m output units: (K,) classes in [0, m) for
    softmax; (K,) 0/1 (m = 1) or a (K, m) 0/1 matrix for logistic; (K, m)
    standard normal values for identity; (K, m) Poisson counts for exp."""
    if output == "softmax":
        return rng.integers(0, m, size=K)
    if output == "logistic":
        return rng.integers(0, 2, size=(K, m)) if m > 1 else rng.integers(0, 2, size=K)
    if output == "identity":
        return rng.normal(size=(K, m))
    return rng.poisson(counts_mean, size=(K, m)).astype(float)
