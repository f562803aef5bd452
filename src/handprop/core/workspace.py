"""The arrays one minibatch needs, allocated once and reused: the training
step and the evaluation write every forward and backward array, and the
gradients, into a :class:`Workspace` instead of allocating them anew."""

from __future__ import annotations

import numpy as np

from .outputs import Output, output_pair
from .shapes import Cache, Hidden, layer_shapes

__all__ = ["Workspace"]


class Workspace:
    """The arrays one minibatch needs, allocated once and reused.

    Parameters
    ----------
    sizes : (d, d_1, ..., d_L, m), the net's layer sizes
    K : the largest minibatch; smaller ones use leading slices
    dtype : the net's dtype
    output : the net's output/loss pair (or its name); it decides the
        targets' buffer
    xp : the array module that allocates them: NumPy, or CuPy for a GPU

    Attributes
    ----------
    X : (K, d) the gathered minibatch; y : its targets, (K,) int64 classes
        or (K, m) in the net's dtype, as the pair checks them
    layers : per hidden layer l, h_a, h_s, h_d (K, d_l); G_h : the deltas (K, d_l)
    o_a, o_s, G_oa : (K, m)
    grads : each parameter's shape
    scratch : each weight matrix's shape, for the penalty's gradient
    """

    def __init__(self, sizes, K: int, dtype, output: str | Output = "softmax",
                 xp=np) -> None:
        e = xp.empty
        d, *hidden, m = sizes
        pair = output_pair(output)
        self.X = e((K, d), dtype)
        self.y = e(pair.target_shape(K, m), pair.target_dtype(dtype))
        self.layers = [Hidden(e((K, n), dtype), e((K, n), dtype), e((K, n), dtype))
                       for n in hidden]
        self.G_h = [e((K, n), dtype) for n in hidden]
        self.o_a, self.o_s, self.G_oa = e((K, m), dtype), e((K, m), dtype), e((K, m), dtype)
        shapes = layer_shapes(sizes)
        self.grads = {k: e(v, dtype) for k, v in shapes.items()}
        self._weight_shapes = {k: v for k, v in shapes.items() if k.startswith("W")}
        self._scratch: dict[str, np.ndarray] | None = None
        self._caches: dict[int, Cache] = {}
        self._dtype = dtype
        self._xp = xp

    @property
    def scratch(self) -> dict[str, np.ndarray]:
        if self._scratch is None:  # only a penalized fit needs it
            self._scratch = {k: self._xp.empty(v, self._dtype)
                             for k, v in self._weight_shapes.items()}
        return self._scratch

    def cache(self, k: int) -> Cache:
        """Views of the forward buffers for a minibatch of k <= K examples."""
        cache = self._caches.get(k)
        if cache is None:
            cache = self._caches[k] = Cache(
                tuple(Hidden(h.h_a[:k], h.h_s[:k], h.h_d[:k]) for h in self.layers),
                self.o_a[:k], self.o_s[:k])
        return cache
