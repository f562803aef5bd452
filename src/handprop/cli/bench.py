"""``handprop bench-epoch``: one MNIST epoch, the loop against the matrix code."""

from __future__ import annotations

import argparse
import time

from .common import UsageError, path, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("bench-epoch", help="time one MNIST epoch, loop against matrix",
                       description="Time one MNIST training epoch with the matrix "
                       "implementation, and the per-example loop on a slice, extrapolated.")
    p.add_argument("--k", type=positive_int, default=100, help="minibatch size (default 100)")
    p.add_argument("--hidden", type=positive_int, default=512)
    p.add_argument("--slice", type=positive_int, default=2000,
                   help="examples the loop is timed on (default 2000)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--data-dir", type=path, default=None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core.network import MLP
    from ..data.datasets import load_mnist
    from ..train.optimizers import SGD
    from ..train.training import fit

    if args.hidden > 100_000:
        raise UsageError(f"argument --hidden: at most 100000 units for an MNIST epoch, got "
                         f"{args.hidden}")
    train, _, _ = load_mnist(args.data_dir)
    X, y = train
    if args.slice > len(X) or args.slice < args.k:
        raise UsageError(f"--slice must be between --k and {len(X)}")
    print(f"one MNIST epoch: {len(X)} examples, K = {args.k}, d_h = {args.hidden}, "
          f"{args.dtype}, plain SGD")
    plain = dict(epochs=1, batch_size=args.k, lr=0.1, momentum=0.0, progress=False)
    net = MLP(784, args.hidden, 10, dtype=args.dtype, seed=0)
    # warm-up on a slice: BLAS threads start and buffers are first touched
    fit(net, X[:10 * args.k], y[:10 * args.k], **plain)
    net = MLP(784, args.hidden, 10, dtype=args.dtype, seed=0)
    t0 = time.perf_counter()
    fit(net, X, y, **plain)
    matrix = time.perf_counter() - t0

    net = MLP(784, args.hidden, 10, dtype=args.dtype, seed=0)
    sgd = SGD()
    Xs, ys = X[:args.slice], y[:args.slice]
    t0 = time.perf_counter()
    for start in range(0, args.slice, args.k):
        _, grads = net.loss_and_grads(Xs[start:start + args.k], ys[start:start + args.k],
                                      method="loop")
        sgd.step(net.params, grads, 0.1)
    loop = (time.perf_counter() - t0) * len(X) / args.slice
    print(f"matrix: {matrix:8.2f} s per epoch (measured)")
    print(f"loop:   {loop:8.2f} s per epoch (extrapolated from the first {args.slice} "
          f"examples)")
    print(f"the loop takes {loop / matrix:.0f} times as long as the matrix version")
    return 0
