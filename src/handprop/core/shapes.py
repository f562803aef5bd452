"""The types that the forward pass, the backward pass, the reference loop and
the buffers share: the names and shapes of the parameters, and the arrays a
forward pass keeps (:class:`Hidden`, :class:`Cache`).

They live here, apart from the math, so that every module of the core can
use them without importing the network.

>>> param_names(2)
('W1', 'b1', 'W2', 'b2')
>>> layer_shapes((4, 3, 2))
{'W1': (3, 4), 'b1': (3,), 'W2': (2, 3), 'b2': (2,)}
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

__all__ = ["Hidden", "Cache", "param_names", "layer_shapes"]


@functools.lru_cache(maxsize=64)
def param_names(n_layers: int) -> tuple[str, ...]:
    """("W1", "b1", ..., "W{n}", "b{n}") for n weight layers (L + 1 for L hidden)."""
    return tuple(name for l in range(1, n_layers + 1) for name in (f"W{l}", f"b{l}"))


def layer_shapes(sizes) -> dict[str, tuple[int, ...]]:
    """Each parameter's shape for layer sizes (d, d_1, ..., d_L, m): Wl is
    (d_l, d_{l-1}), bl is (d_l,)."""
    out = {}
    for l in range(1, len(sizes)):
        out[f"W{l}"] = (sizes[l], sizes[l - 1])
        out[f"b{l}"] = (sizes[l],)
    return out


class Hidden(NamedTuple):
    """One hidden layer's arrays in the forward pass, each (K, d_l).

    Attributes
    ----------
    h_a : pre-activations; h_s : outputs g(h_a); h_d : what the next layer
        sees: ``h_s`` itself, or ``h_s * mask`` under dropout
    """

    h_a: np.ndarray
    h_s: np.ndarray
    h_d: np.ndarray


class Cache(NamedTuple):
    """What the forward pass keeps for the backward pass.

    Attributes
    ----------
    layers : one :class:`Hidden` per hidden layer, in order
    o_a : (K, m) output pre-activations
    o_s : (K, m) outputs f(o_a)

    For the seed's one hidden layer, ``h_a``, ``h_s`` and ``h_d`` (each
    (K, d_h)) name that layer's arrays, as in the derivation.
    """

    layers: tuple[Hidden, ...]
    o_a: np.ndarray
    o_s: np.ndarray

    def _only(self) -> Hidden:
        if len(self.layers) != 1:
            raise AttributeError(f"this net has {len(self.layers)} hidden layers: read "
                                 f"cache.layers[l].h_a, .h_s or .h_d for layer l + 1")
        return self.layers[0]

    h_a = property(lambda self: self._only().h_a, doc="(K, d_h), one hidden layer only")
    h_s = property(lambda self: self._only().h_s, doc="(K, d_h), one hidden layer only")
    h_d = property(lambda self: self._only().h_d, doc="(K, d_h), one hidden layer only")
