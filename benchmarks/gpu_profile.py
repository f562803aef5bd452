"""Where a minibatch's time goes on a GPU: handprop's CuPy calls, one by one.

Needs CuPy and a GPU. At d_h = 512 and K = 100 (float32), it times each step
of a minibatch of handprop's GPU path (and two alternatives to the fancy
indexing of the one-hot rows) in a loop of its own, as the mean wall time per
call after a warm-up, the GPU synchronized before and after; then whole
epochs of ``fit(device="cuda")`` run on their own, after a warm-up.

    HANDPROP_DATA=../shared/data python benchmarks/gpu_profile.py
"""

from __future__ import annotations

import time

import cupy as cp
import numpy as np

from handprop import MLP
from handprop.core import activations as act
from handprop.core.network import Workspace, backward, cross_entropy, forward
from handprop.data.datasets import load_mnist
from handprop.train.optimizers import SGD
from handprop.train.training import fit

D_H, K = 512, 100


def per_call(name, f, n=300):
    for _ in range(20):
        f()
    cp.cuda.Device().synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    cp.cuda.Device().synchronize()
    print(f"{name:40s} {(time.perf_counter() - t0) / n * 1e6:8.1f} us", flush=True)


def main() -> None:
    (X, y), _, _ = load_mnist()
    net = MLP(784, D_H, 10, dtype="float32", seed=0)
    params = {k: cp.asarray(v) for k, v in net.params.items()}
    Xd, yd = cp.asarray(X), cp.asarray(y)
    work = Workspace((784, D_H, 10), K, np.float32, "softmax", cp)
    layer = work.layers[0]
    idx = cp.asarray(np.random.default_rng(0).permutation(len(X)))[:K]
    Xb, yb = work.X[:K], work.y[:K]
    cp.take(Xd, idx, axis=0, out=Xb)
    cp.take(yd, idx, out=yb)
    cache = forward(params, Xb, "relu", "softmax", out=work.cache(K))
    grads = backward(params, cache, Xb, yb, "relu", "softmax", None, scale=0.1, work=work)
    G, rows, eye = work.G_oa, cp.arange(K), cp.eye(10, dtype=cp.float32)
    sgd = SGD()
    print(f"per call, d_h = {D_H}, K = {K}:")
    per_call("take X + take y", lambda: (cp.take(Xd, idx, axis=0, out=Xb),
                                         cp.take(yd, idx, out=yb)))
    per_call("forward", lambda: forward(params, Xb, "relu", "softmax", out=work.cache(K)))
    per_call("  matmul X W1^T out", lambda: cp.matmul(Xb, params["W1"].T, out=layer.h_a))
    per_call("  h_a += b1", lambda: layer.h_a.__iadd__(params["b1"]))
    per_call("  relu out", lambda: cp.maximum(layer.h_a, 0, out=layer.h_s))
    per_call("  softmax", lambda: act.softmax(work.o_a, out=work.o_s))
    per_call("cross_entropy (float)", lambda: cross_entropy(cache.o_a, yb))
    per_call("  o_a[arange, y]", lambda: cache.o_a[cp.arange(K), yb])
    per_call("  take_along_axis", lambda: cp.take_along_axis(cache.o_a, yb[:, None], axis=1))
    per_call("  logsumexp", lambda: act.logsumexp(cache.o_a))
    per_call("wrong count (int)",
             lambda: int(cp.count_nonzero(cache.o_a.argmax(axis=1) != yb)))
    per_call("backward", lambda: backward(params, cache, Xb, yb, "relu", "softmax", None,
                                          scale=0.1, work=work))
    per_call("  G[rows, y] -= 1", lambda: G.__setitem__((rows, yb), G[rows, yb] - 1))
    per_call("  G -= eye[y] (take)", lambda: G.__isub__(cp.take(eye, yb, axis=0)))
    per_call("  scatter_add", lambda: cp.add.at(G, (rows, yb), -1))
    G_hs = work.G_h[0]
    per_call("  matmul G_oa W2", lambda: cp.matmul(G, params["W2"], out=G_hs))
    per_call("  relu backprop",
             lambda: act.backprop_inplace("relu", layer.h_a, layer.h_s, G_hs))
    per_call("  matmul G_ha^T X", lambda: cp.matmul(G_hs.T, Xb, out=work.grads["W1"]))
    per_call("  sum axis 0", lambda: cp.sum(G_hs, axis=0, out=work.grads["b1"]))
    per_call("sgd step", lambda: sgd.step(params, grads, 0.1, scale=0.1))
    per_call("float(scalar)", lambda: float(cp.mean(cache.o_a)))

    times = []
    for _ in range(4):  # the first compiles CuPy's kernels
        run = MLP(784, D_H, 10, dtype="float32", seed=0)
        t0 = time.perf_counter()
        fit(run, X, y, epochs=1, batch_size=K, lr=0.1, momentum=0.0, progress=False,
            device="cuda")
        times.append(time.perf_counter() - t0)
    print("\nfit(device='cuda'), one epoch on its own: "
          + ", ".join(f"{t:.2f} s" for t in times) + " (the first compiles the kernels)")


if __name__ == "__main__":
    main()
