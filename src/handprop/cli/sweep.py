"""``handprop sweep``: a hyper-parameter search on Optuna, on one machine or many."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ..sweep import max_workers
from .common import UsageError, dataset_name, path, positive_int, seed, writable_folder


def _vocabulary_help() -> str:
    from ..sweep import vocabulary

    names = ", ".join(vocabulary())
    return (f"A space file (TOML) gives each hyper-parameter a value, a list of choices, or a "
            f"range; the others take their defaults (handprop train --help). Its names: "
            f"{names}. hidden takes layer lists as the CLI writes them (\"512,256\", or "
            f"choices = [\"64\", \"64,32\"]); depth and width search the depth and the width "
            f"as two ranges. See docs/sweep.md.")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sweep", help="a hyper-parameter search on Optuna, on one machine or many",
        description="Search hyper-parameters with Optuna: each trial trains on train and "
        "scores on valid; the best is retrained and its test measure reported once. Several "
        "workers, on this machine (--workers) or on others (the same command with the same "
        "--storage and --study), share one study. Needs the [sweep] extra.",
        epilog=_vocabulary_help())
    p.add_argument("--dataset", type=path, default="moons")
    p.add_argument("--label", default=None, metavar="COL[,COL...]",
                   help="the target columns of a CSV, as for handprop train")
    p.add_argument("--space", type=path, default=None, metavar="SPACE.toml",
                   help="the search space (default: the dataset's default space, see "
                   "docs/sweep.md)")
    p.add_argument("--preset", choices=("moons-capacity",), default=None,
                   help="moons-capacity: the assignment's weight decay x hidden units x early "
                   "stopping grid, on moons-small")
    p.add_argument("--trials", type=positive_int, default=None,
                   help="trials in all, across all workers (default 20, or the whole grid)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help=f"local worker processes (default 1; at most two per CPU core, 64 at "
                   f"most: {max_workers()} here). SIGINT or SIGTERM stops them all after "
                   f"their minibatch; --resume then runs the interrupted trials first")
    p.add_argument("--storage", default=None,
                   help="sqlite:///FILE, postgresql://USER@HOST/DB or journal:FILE "
                   "(default: sqlite in --out)")
    p.add_argument("--study", default=None, help="study name (default handprop-DATASET)")
    p.add_argument("--out", type=path, default=None,
                   help="output folder (default runs/sweep-DATASET)")
    p.add_argument("--resume", action="store_true", help="continue an existing study")
    p.add_argument("--heartbeat", type=positive_int, default=10,
                   help="seconds between a running trial's heartbeats; a trial silent for 3 "
                   "heartbeats is failed and retried (default 10)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--data-dir", type=path, default=None)
    p.add_argument("--device", default="cpu", metavar="DEVICE",
                   help="cpu (default), or cuda / cuda:N: every trial trains on that GPU")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..backend import check_device
    from ..sweep import (
        Space,
        SweepConfig,
        SweepInterrupted,
        WorkersLost,
        check_storage,
        default_space,
        load_data,
        moons_capacity_space,
        run_sweep,
        space_output,
        summarize,
        train_params,
    )
    from .train import _labels

    if args.workers > max_workers():
        raise UsageError(f"argument --workers: at most {max_workers()} here (two per CPU "
                         f"core, 64 at most), got {args.workers}")
    check_device(args.device)  # before any study is created
    grid = None
    dataset = args.dataset
    if args.preset == "moons-capacity":
        if args.space:
            raise UsageError("--preset and --space exclude each other")
        space, grid = moons_capacity_space()
        dataset = "moons-small"
    elif args.space:
        space = Space.from_toml(args.space)  # checked whole, before any study exists
    else:
        space = default_space(dataset)
    space.check(dataset)
    space_output(space)
    trials = args.trials or (int(np.prod([len(v) for v in grid.values()])) if grid else 20)
    if args.storage:
        check_storage(args.storage)  # before anything is made
    study = args.study or f"handprop-{args.preset or dataset_name(dataset)}"
    config = SweepConfig(dataset=dataset, trials=trials, storage=args.storage or "", study=study,
                         out="", space=space, seed=args.seed, data_dir=args.data_dir,
                         heartbeat=args.heartbeat, grid=grid, device=args.device,
                         label=_labels(args.label))
    load_data(config)  # the data, read once before any study exists: a bad file is one line
    out = writable_folder(args.out or f"runs/sweep-{args.preset or dataset_name(dataset)}")
    config.out = str(out)
    if not args.storage:
        config.storage = f"sqlite:///{out.resolve() / 'study.db'}"
        check_storage(config.storage)
    what = "continuing" if args.resume else "starting"
    print(f"{what} study {study!r}: {trials} trials of {space.source} on {dataset}, "
          f"{args.workers} worker(s), storage {config.storage}", flush=True)
    try:
        run_sweep(config, workers=args.workers, resume=args.resume)
    except SweepInterrupted as exc:
        print(f"handprop: {exc}", file=sys.stderr)
        return exc.exit_status
    except WorkersLost as exc:
        print(f"handprop: {exc}", file=sys.stderr)
        return 1
    result = summarize(config, top=trials if grid is not None else 10)
    if grid is not None:
        from ..plotting import decision_regions, save_figure

        panels = []
        for label, trial in (("best", result["best"]), ("worst", result["worst"])):
            p = trial.user_attrs["params"]
            net, _ = train_params(p, result["data"], seed=args.seed + trial.number,
                                  device=args.device, context="moons")
            panels.append((net, f"{label}: trial {trial.number}, d_h={p['hidden']}, "
                                f"l2={p['l2']:g},\npatience {p['patience']}: valid error "
                                f"{100 * trial.value:.1f}%"))
        path = out / "regions_best_worst.png"
        save_figure(decision_regions(panels, *result["data"][0], ncols=2), path)
        print(f"wrote {path}")
    return 0
