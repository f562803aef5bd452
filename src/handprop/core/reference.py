"""The reference implementation: one example at a time, with vectors.

Each step is the derivation's single-example formula, written out here on
its own: it shares no code with :func:`handprop.core.network.forward` and
:func:`~handprop.core.network.backward` but the activation functions and
each output/loss pair's one-example formula (``Output.example``, written
apart from the pair's minibatch code), so that agreement between the two
paths is evidence that both are right. ``MLP.loss_and_grads(method="loop")``
runs it; the gradient checks and ``handprop compare-grads`` compare it with
the matrix path.
"""

from __future__ import annotations

import numpy as np

from . import activations as act
from .penalty import ElasticNet

__all__ = ["loss_and_grads_loop"]


def loss_and_grads_loop(
    net, X: np.ndarray, T: np.ndarray, penalty: ElasticNet | None, *,
    masks: tuple | None = None, label_smoothing: float = 0.0,
    sample_weight: np.ndarray | None = None,
) -> tuple[float, dict[str, np.ndarray]]:
    """The loss and gradients of ``net`` (an MLP) on checked X (K, d) and
    targets T, example by example.

    Input dropout has already been applied to X by the caller; the hidden
    masks (each (K, d_l)), label smoothing and sample weights (K,) are
    applied here, example by example.
    """
    n_layers = net.L + 1
    W = {l: net.params[f"W{l}"] for l in range(1, n_layers + 1)}
    b = {l: net.params[f"b{l}"] for l in range(1, n_layers + 1)}
    g = act.ACTIVATIONS[net.activation]
    g_prime = act.DERIVATIVES[net.activation]
    K = X.shape[0]
    # each example's share of the mean, in the dtype of X (a float64 factor
    # would silently turn a float32 loop into a float64 one)
    if sample_weight is None:
        weight = np.full(K, 1.0 / K, dtype=X.dtype)
    else:
        weight = (sample_weight / sample_weight.sum()).astype(X.dtype)
    total = 0.0
    grads = {name: np.zeros_like(p) for name, p in net.params.items()}
    for k in range(K):
        # forward: h_s^(0) = x; h_a^(l) = W_l h^(l-1) + b_l, h_s^(l) = g(h_a^(l))
        seen = [X[k]]  # (d,), then what each layer passes on, (d_l,)
        h_as, h_ss = [None], [None]
        for l in range(1, n_layers):
            h_a = W[l] @ seen[-1] + b[l]  # (d_l,)
            h_s = g(h_a)  # (d_l,)
            mask = None if masks is None else masks[l - 1]
            h_as.append(h_a)
            h_ss.append(h_s)
            seen.append(h_s if mask is None else h_s * mask[k])
        o_a = W[n_layers] @ seen[-1] + b[n_layers]  # (m,)
        o_s, target, loss = net.pair.example(o_a, T[k], label_smoothing)  # (m,), (m,), scalar
        total += weight[k] * loss
        # backward: grad o_a = o_s - t (the canonical link), then layer by layer
        grad = weight[k] * (o_s - target)  # (d_l,) for the layer at hand
        for l in range(n_layers, 0, -1):
            grads[f"W{l}"] += np.outer(grad, seen[l - 1])  # (d_l, d_{l-1})
            grads[f"b{l}"] += grad  # (d_l,)
            if l > 1:
                grad_hs = W[l].T @ grad  # (d_{l-1},)
                mask = None if masks is None else masks[l - 2]
                if mask is not None:
                    grad_hs = grad_hs * mask[k]
                grad = grad_hs * g_prime(h_as[l - 1], h_ss[l - 1])  # (d_{l-1},)
    loss = total
    if penalty is not None:
        for l in range(1, n_layers + 1):
            l1, l2 = penalty.lambdas(f"W{l}")
            loss += l1 * np.sum(np.abs(W[l])) + l2 * np.sum(W[l] * W[l])
            grads[f"W{l}"] = grads[f"W{l}"] + l1 * np.sign(W[l]) + 2 * l2 * W[l]
    return float(loss), grads
