"""``handprop gradcheck`` and ``handprop compare-grads``: the hand-derived
gradients of a small net against finite differences, and the per-example
loop against the matrix code."""

from __future__ import annotations

import argparse

import numpy as np

from ..core import activations as act
from ..core.outputs import OUTPUTS, output_pair
from ..train.parameters import PARAMETERS, per_matrix
from .common import UsageError, hidden, integer, positive_float, positive_int, seed


def _small_net_options(p: argparse.ArgumentParser, d_h: int = 2) -> None:
    p.add_argument("--d", type=positive_int, default=2, help="inputs (default 2)")
    p.add_argument("--d-h", type=hidden, default=d_h, metavar="D_H[,D_H...]",
                   help=f"hidden units, or one size per hidden layer, e.g. 4,3 (default {d_h})")
    p.add_argument("--m", type=positive_int, default=2,
                   help="outputs: classes for softmax, >= 2 (default 2)")
    p.add_argument("--activation", choices=act.names(), default="relu")
    p.add_argument("--output", choices=tuple(OUTPUTS), default=next(iter(OUTPUTS)),
                   help=PARAMETERS["output"].help_text())
    for name in ("l1", "l2"):
        p.add_argument(f"--{name}", type=_lambdas(name), default=(0.0,), metavar="W1,W2,...",
                       help=PARAMETERS[name].help_text())
    p.add_argument("--seed", type=seed, default=0)


def _lambdas(name: str):
    def parse(text: str):
        try:
            return per_matrix(name, text, None)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def add_parser(sub) -> None:
    from ..core.gradcheck import DEFAULT_TOL

    p = sub.add_parser(
        "gradcheck", help="check the hand-derived gradients by finite differences",
        description="Check every gradient of a small net by central finite differences in "
        "float64. Exits 0 when every relative error is under the tolerance, 1 otherwise.")
    _small_net_options(p)
    p.add_argument("--k", type=positive_int, default=10, help="minibatch size K (default 10)")
    p.add_argument("--eps", type=positive_float, default=1e-6,
                   help="finite-difference step (default 1e-6)")
    p.add_argument("--order", type=integer, choices=(2, 4), default=2,
                   help="2: classic central difference; 4: five-point stencil, for which "
                   "--eps 1e-3 suits (default 2)")
    p.add_argument("--tol", type=positive_float, default=DEFAULT_TOL,
                   help=f"largest relative error that passes (default {DEFAULT_TOL:g})")
    p.add_argument("--method", choices=("matrix", "loop"), default="matrix",
                   help="which implementation to check (default matrix)")
    p.set_defaults(func=run_gradcheck)

    p = sub.add_parser("compare-grads", help="loop and matrix gradients side by side",
                       description="Compute the gradients by the per-example loop and by "
                       "matrix products, print them side by side with their largest "
                       "difference, and exit 1 if it exceeds the tolerance.")
    _small_net_options(p)
    p.add_argument("--k", type=positive_int, action="append",
                   help="minibatch size; repeat for several (default 1 and 10)")
    p.add_argument("--tol", type=positive_float, default=1e-12)
    p.set_defaults(func=run_compare_grads)


#: The largest problem these commands build: they are checks on small nets.
MAX_ENTRIES = 10_000_000


def moons_like(K: int, d: int, m: int, seed: int,
               output: str = "softmax") -> tuple[np.ndarray, np.ndarray]:
    """K two-moons points in d dimensions: the moons in the first two
    coordinates, standard normal noise in the others. Their targets: the moon,
    where m units of the output pair hold two classes; otherwise random
    targets of the pair (``Output.sample_targets``)."""
    from ..data.datasets import make_moons

    X2, y = make_moons(max(K, 2), noise=0.1, seed=seed)
    X2, y = X2[:K], y[:K]
    rng = np.random.default_rng(seed + 1)
    if d <= 2:
        X = X2[:, :d]
    else:
        X = np.hstack([X2, rng.normal(size=(K, d - 2))])
    pair = output_pair(output)
    if pair.binary(m):
        return X, y
    return X, pair.sample_targets(rng, K, m)


def small_net(args: argparse.Namespace):
    """The net of gradcheck and compare-grads, and its penalty."""
    from ..core.network import MLP
    from ..core.penalty import ElasticNet

    pair = output_pair(args.output)
    if args.m < pair.min_m:
        raise UsageError(f"argument --m: {pair.name} outputs need m >= {pair.min_m}")
    sizes = (args.d, *np.atleast_1d(args.d_h).tolist(), args.m)
    entries = sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) + sum(sizes[1:])
    k = max(args.k) if isinstance(args.k, list) else (args.k or 10)
    if entries > MAX_ENTRIES or k * max(sizes) > MAX_ENTRIES or len(sizes) > 1000:
        raise UsageError(f"this check builds a net of {entries:,} parameters on {k:,} examples; "
                         f"it is for small nets (at most {MAX_ENTRIES:,} parameters, examples "
                         f"times the widest layer, and 1000 layers): try a smaller --d-h, "
                         f"--d, --m or --k")
    net = MLP(args.d, args.d_h, args.m, activation=args.activation, output=pair.name,
              seed=args.seed)
    n_weights = net.L + 1
    l1 = per_matrix("l1", args.l1, n_weights)
    l2 = per_matrix("l2", args.l2, n_weights)
    return net, ElasticNet.per_matrix(l1, l2)


def run_gradcheck(args: argparse.Namespace) -> int:
    from ..core.gradcheck import gradcheck

    net, penalty = small_net(args)
    X, y = moons_like(args.k, args.d, args.m, args.seed, net.output)
    print(f"{net}, {args.k} two-moons-like examples, penalty {penalty.to_dict()}")
    report = gradcheck(net, X, y, penalty, eps=args.eps, order=args.order, tol=args.tol,
                       method=args.method)
    print(report)
    return 0 if report.passed else 1


def run_compare_grads(args: argparse.Namespace) -> int:
    worst = 0.0
    for K in args.k or [1, 10]:
        net, penalty = small_net(args)
        X, y = moons_like(K, args.d, args.m, args.seed, net.output)
        loss_l, loop = net.loss_and_grads(X, y, penalty, method="loop")
        loss_m, matrix = net.loss_and_grads(X, y, penalty, method="matrix")
        print(f"K = {K}: loss {loss_l:.12f} (loop), {loss_m:.12f} (matrix)")
        print(f"{'entry':<10} {'loop':>22} {'matrix':>22} {'|difference|':>13}")
        for name in loop:
            for index in np.ndindex(loop[name].shape):
                a, b = loop[name][index], matrix[name][index]
                label = f"{name}[{','.join(map(str, index))}]"
                print(f"{label:<10} {a:>22.15e} {b:>22.15e} {abs(a - b):>13.3e}")
        diff = max(float(np.abs(loop[k] - matrix[k]).max()) for k in loop)
        diff = max(diff, abs(loss_l - loss_m))
        print(f"K = {K}: largest difference {diff:.3e}\n")
        worst = max(worst, diff)
    print(f"largest difference over all K: {worst:.3e} (tolerance {args.tol:g})")
    return 0 if worst <= args.tol else 1
