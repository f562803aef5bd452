"""``handprop regions``: decision regions on two moons for several capacities."""

from __future__ import annotations

import argparse
import sys

from ..core import activations as act
from .common import UsageError, number_list, path, positive_float, positive_int, real, seed


def add_parser(sub) -> None:
    p = sub.add_parser(
        "regions", help="decision regions on two moons for several capacities",
        description="Train one net per setting on two moons and draw their decision regions "
        "in a grid: hidden units along the rows, weight decay (and stopping epochs) along "
        "the columns.")
    p.add_argument("--hidden", type=number_list(int), default=[2, 5, 100], metavar="LIST",
                   help="d_h values (default 2,5,100)")
    p.add_argument("--l2", type=number_list(float), default=[0.0, 0.001, 0.01],
                   metavar="LIST", help="L2 lambdas on both W1 and W2 (default 0,0.001,0.01)")
    p.add_argument("--epochs", type=number_list(int), default=[1000], metavar="LIST",
                   help="epochs; several values show early stopping (default 1000)")
    p.add_argument("--activation", choices=act.names(), default="relu")
    p.add_argument("--batch-size", type=positive_int, default=20)
    p.add_argument("--lr", type=positive_float, default=0.05)
    p.add_argument("--momentum", type=real, default=0.9)
    p.add_argument("--dataset", type=path, default="moons", help="moons or a moons FILE.txt")
    p.add_argument("--n-train", type=positive_int, default=200,
                   help="training points drawn for moons (default 200; few points make "
                   "overfitting visible)")
    p.add_argument("--noise", type=real, default=0.25, help="moons noise (default 0.25)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--out", type=path, default="regions.png", help="default regions.png")
    p.add_argument("--animate", type=path, default=None, metavar="FILE.gif",
                   help="also write an animation of the regions over the epochs (.gif, or "
                   ".mp4 with ffmpeg), one row per hidden size, one column per lambda")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core.network import MLP
    from ..core.penalty import ElasticNet
    from ..data.datasets import load_moons_txt, moons_splits, split
    from ..plotting import (
        check_animation_path,
        check_figure_path,
        decision_regions,
        regions_animation,
        save_figure,
    )
    from ..train.training import Diverged, evaluate, fit

    if any(h < 1 for h in args.hidden) or any(e < 1 for e in args.epochs):
        raise UsageError("--hidden and --epochs values must be >= 1")
    if not 0 <= args.momentum < 1:
        raise UsageError("argument --momentum: must be in [0, 1)")
    check_figure_path(args.out)  # before training, not after it
    if args.animate:
        check_animation_path(args.animate)
    if args.dataset == "moons":
        train, valid, _ = moons_splits(n_train=args.n_train, noise=args.noise)
    else:
        train, valid, _ = split(*load_moons_txt(args.dataset))
    panels = []
    stops = sorted(set(args.epochs))
    # with --animate, about 40 frames over the training, besides the stops
    every = max(1, max(stops) // 40)
    frame_epochs = sorted(set(range(every, max(stops) + 1, every)) | set(stops)
                          ) if args.animate else stops
    frames = {e: [] for e in frame_epochs}
    for d_h in args.hidden:
        for l2 in args.l2:
            net = MLP(2, d_h, 2, activation=args.activation, seed=args.seed)
            snapshots = {}

            def keep(record, net=net, snapshots=snapshots):
                if record.epoch in frames:
                    snapshots[record.epoch] = net.copy()

            try:
                fit(net, *train, epochs=max(stops), batch_size=args.batch_size, lr=args.lr,
                    momentum=args.momentum, penalty=ElasticNet(l2_W1=l2, l2_W2=l2),
                    seed=args.seed, progress=False, on_epoch=keep)
            except Diverged as exc:  # a result that failed, as in train: one line, exit 1
                print(f"handprop: d_h {d_h}, l2 {l2:g}: {exc}", file=sys.stderr)
                return 1
            for e in stops:
                err = evaluate(snapshots[e], *valid)[0]
                title = f"d_h={d_h}, l2={l2:g}" + (f", {e} epochs" if len(stops) > 1 else "")
                panels.append((snapshots[e], f"{title}\nvalid error {100 * err:.1f}%"))
                print(f"d_h {d_h:>4}  l2 {l2:<8g} epochs {e:>5}  valid error {100 * err:6.2f}%")
            if args.animate:
                for e in frame_epochs:
                    err = evaluate(snapshots[e], *valid)[0]
                    frames[e].append((snapshots[e], f"d_h={d_h}, l2={l2:g}, epoch {e}\n"
                                                    f"valid error {100 * err:.1f}%"))
    ncols = len(args.l2) * len(stops)
    fig = decision_regions(panels, *train, ncols=ncols)
    save_figure(fig, args.out)
    print(f"wrote {args.out}")
    if args.animate:
        n = regions_animation([frames[e] for e in frame_epochs], *train, args.animate,
                              ncols=len(args.l2))
        print(f"wrote {args.animate}: {n} frames, epochs {frame_epochs[0]} to "
              f"{frame_epochs[-1]}")
    return 0
