"""Random targets of each output/loss pair, shared by the tests: the entry's
own ``sample_targets`` (handprop.core.outputs), so that a new pair needs no
edit here."""

import numpy as np

from handprop.core.outputs import output_pair


def random_targets(rng: np.random.Generator, output: str, K: int, m: int) -> np.ndarray:
    """Targets for K examples and m output units: (K,) classes in [0, m) for
    softmax; (K,) 0/1 (m = 1) or a (K, m) 0/1 matrix for logistic; (K, m)
    standard normal values for identity; (K, m) Poisson counts for exp."""
    return output_pair(output).sample_targets(rng, K, m)
