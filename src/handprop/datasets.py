"""Data sets: two moons, MNIST, and the user's own files.

Every loader returns inputs X as a 2-D array with one example per row and
labels y as a 1-D int64 array.
"""

from __future__ import annotations

import numpy as np

__all__ = ["make_moons"]


def make_moons(
    n: int = 400, noise: float = 0.1, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half-moons in the plane.

    Parameters
    ----------
    n : int >= 2, the number of points (half in each moon, the odd one in the first)
    noise : float >= 0, the standard deviation of the Gaussian noise added
    seed : int or None, seeds ``numpy.random.default_rng``

    Returns
    -------
    X : (n, 2) float64
    y : (n,) int64, 0 for the upper moon and 1 for the lower one

    >>> X, y = make_moons(6, noise=0.0, seed=0)
    >>> X.shape, y.tolist().count(0)
    ((6, 2), 3)
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if not isinstance(noise, (int, float)) or not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    n0 = (n + 1) // 2
    n1 = n - n0
    t0 = np.linspace(0, np.pi, n0)
    t1 = np.linspace(0, np.pi, n1)
    upper = np.column_stack([np.cos(t0), np.sin(t0)])
    lower = np.column_stack([1 - np.cos(t1), 0.5 - np.sin(t1)])
    X = np.vstack([upper, lower])
    y = np.concatenate([np.zeros(n0, dtype=np.int64), np.ones(n1, dtype=np.int64)])
    if noise:
        X = X + rng.normal(scale=noise, size=X.shape)
    order = rng.permutation(n)
    return X[order], y[order]
