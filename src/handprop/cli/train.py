"""``handprop train``: train a net, log every epoch, save the model and its curves.

Its run options are the parameter table's (:mod:`handprop.train.parameters`),
one ``--option`` per parameter; the rest say where the data comes from and
where the results go.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..core.outputs import OUTPUTS, output_pair, outputs_for
from ..data.datasets import VALID_SEEN
from ..errors import InputError
from ..train import parameters as table
from ..train.settings import RunSettings
from .common import (
    UsageError,
    dataset_name,
    format_record,
    header,
    path,
    show_measure,
    writable_folder,
)

#: Options that are not run parameters: where data is read and results written.
_PLACE = ("dataset", "label", "device", "data_dir", "out", "no_progress", "resume", "force")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train", help="train a network and log every epoch",
        description="Train by minibatch gradient descent. Prints the measure (error rate, or "
        "R2 for regression) and average loss on train, valid and test after each epoch, and "
        "writes OUT/log.csv, OUT/model.npz and OUT/curves.png. With no arguments it trains "
        "on two moons.")
    p.add_argument("--dataset", type=path, default=None,
                   help="moons, moons-small, mnist, mnist-full (MNIST trained on its 10,000 "
                   "validation images too, for a last fit once settings are chosen), or a "
                   "FILE.csv / FILE.npz / moons FILE.txt, split 80/10/10 (an NPZ of X_train, "
                   "y_train, X_valid, y_valid, X_test and y_test is used as it is split; "
                   "default moons)")
    p.add_argument("--label", default=None, metavar="COL[,COL...]",
                   help="the target column of a CSV (a header name or an index), or several "
                   "for several outputs (default: the column named label, else the last); an "
                   "NPZ's y may be 2-D")
    table.add_options(p)
    p.add_argument("--device", default="cpu", metavar="DEVICE",
                   help="cpu (default), or cuda / cuda:N to train on an NVIDIA GPU (needs "
                   "CuPy); a run may be resumed on another device")
    p.add_argument("--data-dir", type=path, default=None, help="folder of the MNIST files")
    p.add_argument("--out", type=path, default=None,
                   help="output folder (default runs/DATASET)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--resume", type=path, default=None, metavar="DIR",
                   help="continue the run whose output folder is DIR from its last checkpoint, "
                   "with its settings")
    p.add_argument("--force", action="store_true",
                   help="with --resume: accept settings that differ from the run's; without: "
                   "start a new run in a folder that holds an unfinished one")
    p.set_defaults(func=run)
    return p


def _labels(text: str | None) -> list | None:
    """--label's columns: names, or integer indices."""
    if text is None:
        return None
    cells = [c.strip() for c in text.split(",")]
    if not all(cells):
        raise UsageError(f"argument --label: expected one or more column names or indices, "
                         f"comma-separated, got {text!r}")
    return [int(c) if c.lstrip("-").isdigit() and c.isascii() else c for c in cells]


class Run(NamedTuple):
    """What run.json records of a ``train`` command."""

    dataset: str
    label: list | None  # the target columns of a CSV
    net: dict  # hidden (a list), activation, output, dtype
    settings: RunSettings

    def to_json(self) -> str:
        return json.dumps({"dataset": self.dataset, "label": self.label, "net": self.net,
                           "settings": self.settings.to_dict()}, indent=2) + "\n"


def _given(args: argparse.Namespace) -> dict:
    """The run parameters given on the command line (None: not given)."""
    return {name: getattr(args, name) for name in table.PARAMETERS
            if getattr(args, name) is not None}


def _run_of(args: argparse.Namespace, given: dict) -> Run:
    """The run that the options describe, validated by the parameter table."""
    dataset = args.dataset or "moons"
    net, settings = table.resolve(given, context=table.dataset_context(dataset))
    net["hidden"] = list(net["hidden"])
    return Run(dataset, _labels(args.label), net, RunSettings(**settings))


def saved_run(folder: Path) -> Run:
    """The run recorded in ``folder``/run.json; a ValueError when there is
    none, or it cannot be read."""
    from ..files import parse_json, read_text

    path = folder / "run.json"
    if not path.exists() and not path.is_symlink():
        raise InputError(f"nothing to resume in {folder}: it has no run.json "
                         f"(was it written by handprop train?)")
    saved = parse_json(read_text(path, "run file"), str(path))
    try:
        net = dict(saved["net"])
        net.setdefault("output", next(iter(OUTPUTS)))  # handprop 0.2 trained classes only
        if set(net) != set(table.NET):
            raise InputError(f"net must hold {', '.join(table.NET)}")
        net = {k: table.PARAMETERS[k].check(v) for k, v in net.items()}
        net["hidden"] = list(net["hidden"])
        dataset = saved["dataset"]
        if not isinstance(dataset, str):
            raise InputError("dataset must be a string")
        label = saved.get("label")
        if label is not None and not (isinstance(label, list) and all(
                isinstance(c, (str, int)) and not isinstance(c, bool) for c in label)):
            raise InputError("label must be a list of column names or indices")
        return Run(dataset, label, net, RunSettings.from_dict(saved["settings"]))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(saved, dict) and isinstance(saved.get("settings"), dict) and \
                "net" not in saved:
            raise InputError(f"{path} was written by handprop 0.1, whose runs this version "
                             f"cannot resume; train again") from None
        raise InputError(f"{path}: not a run handprop can resume ({exc})") from None


def _resume_run(args: argparse.Namespace, folder: Path) -> Run:
    """The run saved in ``folder``, with the options given now checked
    against it (and applied, with --force)."""
    saved = saved_run(folder)
    given = _given(args)
    merged = {**{k: saved.net[k] for k in table.NET}, **saved.settings.to_dict(), **given}
    merged.pop("penalty")
    penalty = saved.settings.penalty
    n_weights = len(merged["hidden"] if "hidden" not in given else
                    table.PARAMETERS["hidden"].check(given["hidden"])) + 1
    for i, name in enumerate(("l1", "l2")):
        merged.setdefault(name, [penalty.lambdas(f"W{k}")[i] for k in range(1, n_weights + 1)])
    if isinstance(merged.get("schedule"), dict):  # a recorded Schedule: its kind
        merged["schedule"] = str(merged["schedule"].get("kind", "")).lower()
    now_net, now_settings = table.resolve(merged)
    now_net["hidden"] = list(now_net["hidden"])
    now = RunSettings(**now_settings)
    diffs = []
    if args.dataset is not None and args.dataset != saved.dataset:
        diffs.append(f"--dataset (run {saved.dataset!r}, now {args.dataset!r})")
    if args.label is not None and _labels(args.label) != saved.label:
        diffs.append(f"--label (run {saved.label}, now {_labels(args.label)})")
    for k in table.NET:
        if now_net[k] != saved.net[k]:
            a, b = saved.net[k], now_net[k]
            text = table.PARAMETERS[k].text
            diffs.append(f"--{k} (run {text(a)}, now {text(b)})")
    for f in dataclasses.fields(RunSettings):  # every setting, a new one included
        f = f.name
        a, b = getattr(saved.settings, f), getattr(now, f)
        if a != b:
            option = "--l1/--l2" if f == "penalty" else "--" + f.replace("_", "-")
            diffs.append(f"{option} (run {a!r}, now {b!r})")
    if now.patience and saved.dataset in VALID_SEEN:
        raise InputError(f"cannot resume {folder} with early stopping: it trained on "
                         f"{saved.dataset}, whose validation images it has seen, so they "
                         f"cannot choose its epoch")
    if diffs and not args.force:
        raise InputError(f"cannot resume {folder}: it was started with other settings: "
                         f"{'; '.join(diffs)}; add --force to resume with the new ones")
    return Run(args.dataset or saved.dataset, _labels(args.label) or saved.label, now_net, now)


def run(args: argparse.Namespace) -> int:
    from .. import backend
    from ..files import lock_folder, remove_stale_temporaries

    if args.resume:
        out = Path(args.resume)
        if out.exists() and not out.is_dir():
            raise UsageError(f"argument --resume: {out} is a file; give the run's folder (the "
                             f"--out of the run to continue), not a file in it")
        saved_run(out)  # says what is missing before anything is written
        plan = None
    else:
        plan = _run_of(args, _given(args))  # every setting is checked before anything else
        out = Path(args.out or f"runs/{dataset_name(plan.dataset)}")
        if out.suffix.lower() in (".npz", ".csv", ".json", ".png") and not out.is_dir():
            raise UsageError(f"argument --out: {out} names a file, but --out is the run's "
                             f"folder (model.npz, log.csv and curves.png go in it): give a "
                             f"folder name, such as {out.with_suffix('')}")
    backend.check_device(args.device)  # so is a GPU that cannot be used
    made = _missing_folders(out)  # what this command creates, and removes if it never starts
    had_lock = (out / ".handprop.lock").exists()
    out = writable_folder(str(out))
    started = []
    try:
        with lock_folder(out):  # one process at a time writes a run folder
            try:
                remove_stale_temporaries(out)
                if args.resume:
                    plan = _resume_run(args, out)
                else:
                    _refuse_to_replace_an_unfinished_run(out, args.force)
                return _train(args, plan, out, started=started)
            finally:
                if not started and not had_lock:  # removed while still held
                    with contextlib.suppress(OSError):
                        (out / ".handprop.lock").unlink()
    finally:
        if not started:
            _remove_folders(made)


def _missing_folders(out: Path) -> list[Path]:
    """The folders that creating ``out`` makes: it and its missing parents,
    deepest first."""
    made = []
    folder = out
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        made.append(folder)
        folder = folder.parent
    return made


def _remove_folders(made: list[Path]) -> None:
    """The folders made for a run that never started go again (those still
    empty), so that a rejected command leaves nothing behind."""
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            break


def _refuse_to_replace_an_unfinished_run(out: Path, force: bool) -> None:
    """A new run in ``out`` replaces the run there, once it has started. An
    unfinished one (a checkpoint that has not finished) is only replaced
    with --force."""
    from ..train import checkpoint as ckpt

    path = ckpt.path_in(out)
    if not path.exists() or force:
        return
    try:
        meta = ckpt.load(out, meta_only=True)[1]
        unfinished = not meta.get("finished")
        epoch = meta.get("epoch")
        where = f"stopped after epoch {epoch}" if isinstance(epoch, int) else "stopped"
    except InputError as exc:
        unfinished, where = True, f"its checkpoint cannot be read: {exc}"
    if unfinished:
        raise InputError(f"{out} holds an unfinished run ({where}): continue it with "
                         f"handprop train --resume {out}, or add --force to start a new "
                         f"run there in its place")


def _train(args: argparse.Namespace, plan: Run, out: Path, started: list) -> int:
    """Train ``plan`` in the (locked) folder ``out`` and write its results.
    Nothing in ``out`` is replaced until the data has loaded and fits the
    net; then ``started`` is marked."""
    from tqdm.auto import tqdm

    from ..core.network import MLP
    from ..data.datasets import load_dataset
    from ..files import write_text
    from ..plotting import learning_curves, save_figure
    from ..train import checkpoint as ckpt
    from ..train.checkpoint import Interrupted
    from ..train.training import Diverged, fit

    if plan.settings.patience and plan.dataset in VALID_SEEN:
        raise InputError(f"early stopping chooses the epoch on the validation set, but "
                         f"{plan.dataset} trains on its validation images: leave --patience "
                         f"out (choose the epochs on mnist, then train on {plan.dataset})")
    pair = output_pair(plan.net["output"])
    train, valid, test = load_dataset(plan.dataset, data_dir=args.data_dir, label=plan.label,
                                      classes=pair.class_indices)
    m = outputs_for(pair, np.concatenate([train[1], valid[1], test[1]]), plan.dataset)
    # the memory training takes, checked before the net is allocated
    plan.settings.check_memory((train[0].shape[1], *plan.net["hidden"], m),
                               plan.net["dtype"], len(train[0]))
    net = MLP(train[0].shape[1], tuple(plan.net["hidden"]), m,
              activation=plan.net["activation"], output=pair.name, dtype=plan.net["dtype"],
              seed=plan.settings.seed)
    for split in (train, valid, test):  # the targets, checked before anything is replaced
        net.check_y(split[1], len(split[1]))
    plan.settings.check_net(net)
    started.append(True)
    if not args.resume:  # the new run starts now: the old one's checkpoint goes
        ckpt.path_in(out).unlink(missing_ok=True)
        write_text(out / "run.json", plan.to_json())
    seen = " (also trained on)" if plan.dataset in VALID_SEEN else ""
    print(f"{plan.dataset}: {len(train[0])} train, {len(valid[0])} valid{seen}, "
          f"{len(test[0])} test examples; {net}, {net.n_params:,} parameters")
    if args.resume:
        print(f"resuming the run in {out} from its checkpoint")
    print(header(pair.measure))
    log_path = out / "log.csv"
    try:
        history = fit(
            net, *train, plan.settings, valid=valid, test=test,
            progress=not args.no_progress, log=log_path,
            on_epoch=lambda r: tqdm.write(format_record(r, pair.measure)),
            checkpoint=out, resume=out if args.resume else None, force=args.force,
            device=args.device,
        )
    except Diverged as exc:
        print(f"handprop: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        how = (f"; resume with: handprop train --resume {out}" if exc.checkpoint else "")
        print(f"handprop: {exc}{how}", file=sys.stderr)
        return exc.exit_status
    try:
        if args.resume and args.force:
            write_text(out / "run.json", plan.to_json())
        net.save(out / "model.npz", history=history.to_dicts(), dataset=plan.dataset,
                 label=plan.label, settings=plan.settings.to_dict(),
                 stop_reason=history.stop_reason, best_epoch=history.best_epoch)
        hidden = ",".join(map(str, plan.net["hidden"]))
        name = f"{plan.dataset} (valid also trained on)" if seen else plan.dataset
        save_figure(learning_curves(history, title=f"{name}, d_h = {hidden}"),
                    out / "curves.png")
    except KeyboardInterrupt:
        print(f"handprop: interrupted while writing the results; the finished run is in its "
              f"checkpoint, and handprop train --resume {out} writes them", file=sys.stderr)
        return 130
    last = history[history.best_epoch - 1] if history.best_epoch else history[-1]
    what = "error" if pair.measure == "error" else "R2"
    print(f"{history.stop_reason}; epoch {last.epoch} kept: test {what} "
          f"{show_measure(last.test_error, pair.measure)}, valid {what} "
          f"{show_measure(last.valid_error, pair.measure)}{seen}")
    print(f"wrote {out / 'model.npz'}, {log_path}, {out / 'curves.png'}, "
          f"{out / 'checkpoint.npz'}")
    return 0
