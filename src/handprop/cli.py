"""The ``handprop`` command line.

Every subcommand prints one line and exits 2 on a bad argument or bad data,
with no traceback (set HANDPROP_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import validate
from ._version import __version__
from .backend import check_device
from .errors import InputError
from .settings import RunSettings

EXIT_USAGE = 2


class UsageError(Exception):
    """A bad argument: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints the usage too; we want one line
        raise UsageError(message)


def _argument(check):
    """An argparse type from a check of :mod:`handprop.validate`: its
    ValueError or TypeError becomes argparse's one-line message."""
    def parse(text: str):
        try:
            return check(text)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def _lambdas(text: str) -> tuple[float, ...]:
    """Parse "a" (one lambda for every weight matrix) or "a,b,..." (one per
    weight matrix, W1 first) into lambdas >= 0."""
    try:
        values = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected one lambda, or one per weight matrix (W1,W2,...), got {text!r}") from None
    if any(not np.isfinite(v) or v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"lambdas must be finite and >= 0, got {text!r}")
    return values


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:30]) + f"... ({len(text)} characters)"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got "
                                         f"{_shown(text)}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {_shown(text)}")
    if value > validate.INT_MAX:
        raise argparse.ArgumentTypeError(f"expected a positive integer of at most 64 bits, got "
                                         f"{_shown(text)}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


_rates = _argument(validate.dropout_rates)
_hidden = _argument(lambda text: validate.hidden_sizes(text, "hidden sizes"))


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if not 0 <= value <= validate.INT_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _penalty(l1: tuple[float, ...], l2: tuple[float, ...], n_weights: int):
    """The ElasticNet of --l1 and --l2 for a net of n_weights weight matrices:
    each option gives one lambda for all of them, or one per matrix."""
    from .penalty import ElasticNet

    per = {}
    for name, values in (("l1", l1), ("l2", l2)):
        if len(values) == 1:
            values = values * n_weights
        if len(values) != n_weights:
            raise UsageError(f"argument --{name}: expected one lambda, or one per weight "
                             f"matrix ({n_weights} for this net), got {len(values)}")
        per[name] = values
    return ElasticNet.per_matrix(per["l1"], per["l2"])


# --------------------------------------------------------------------------
# gradcheck
# --------------------------------------------------------------------------


def _moons_like(K: int, d: int, m: int, seed: int,
                output: str = "softmax") -> tuple[np.ndarray, np.ndarray]:
    """K two-moons points in d dimensions: the moons in the first two
    coordinates, standard normal noise in the others. Their targets: the moon
    (m = 2 softmax classes, or one logistic unit); for more classes, classes
    drawn at random; for several logistic units, a random 0/1 matrix (K, m);
    for identity outputs, standard normal targets (K, m)."""
    from .datasets import make_moons

    X2, y = make_moons(max(K, 2), noise=0.1, seed=seed)
    X2, y = X2[:K], y[:K]
    rng = np.random.default_rng(seed + 1)
    if d <= 2:
        X = X2[:, :d]
    else:
        X = np.hstack([X2, rng.normal(size=(K, d - 2))])
    if output == "identity":
        return X, rng.normal(size=(K, m))
    if output == "exp":  # counts
        return X, rng.poisson(2.0, size=(K, m)).astype(float)
    if output == "logistic":
        return X, (y if m == 1 else rng.integers(0, 2, size=(K, m)))
    if m > 2:
        y = rng.integers(0, m, size=K)
    return X, y


def _small_net(args: argparse.Namespace):
    """The net of gradcheck and compare-grads, and its penalty."""
    from .network import MLP

    net = MLP(args.d, args.d_h, args.m, activation=args.activation, output=args.output,
              seed=args.seed)
    return net, _penalty(args.l1, args.l2, net.L + 1)


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from .gradcheck import gradcheck

    net, penalty = _small_net(args)
    X, y = _moons_like(args.k, args.d, args.m, args.seed, net.output)
    print(f"{net}, {args.k} two-moons-like examples, penalty {penalty.to_dict()}")
    report = gradcheck(net, X, y, penalty, eps=args.eps, order=args.order, tol=args.tol,
                       method=args.method)
    print(report)
    return 0 if report.passed else 1


# --------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------

#: Epochs when --epochs is not given: two moons are small and need many.
DEFAULT_EPOCHS = {"moons": 100, "mnist": 20}

_HEADER = ("epoch", "train err", "train loss", "valid err", "valid loss", "test err",
           "test loss", "lr", "seconds")
_WIDTHS = (5, 9, 10, 9, 10, 8, 9, 8, 7)


def _row(cells) -> str:
    return "  ".join(f"{c:>{w}}" for c, w in zip(cells, _WIDTHS, strict=True))


def format_record(r) -> str:
    """One epoch's line: the six numbers, the rate and the time."""
    def pct(v):
        return "-" if np.isnan(v) else f"{100 * v:.2f}%"

    def num(v):
        return "-" if np.isnan(v) else f"{v:.4f}"

    return _row((r.epoch, pct(r.train_error), num(r.train_loss), pct(r.valid_error),
                 num(r.valid_loss), pct(r.test_error), num(r.test_loss), f"{r.lr:.3g}",
                 f"{r.seconds:.2f}"))


def _writable_folder(path: str) -> Path:
    """Create ``path`` if needed and prove that files can be written in it."""
    import tempfile

    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OSError(f"cannot write to output folder {folder}: {exc.strerror or exc}") from None
    return folder


def _dataset_name(dataset: str) -> str:
    return dataset if dataset in ("moons", "mnist") else Path(dataset).stem


#: The net's part of a run, as ``train`` options; the rest of its options
#: (but where data is read and output written, the bar and the device) set
#: the run's RunSettings, each the field of its name, except --l1 and --l2,
#: which set its penalty.
_NET_OPTIONS = ("hidden", "activation", "dtype")
_PENALTY_OPTIONS = ("l1", "l2")


class _Run(NamedTuple):
    """What run.json records of a ``train`` command."""

    dataset: str
    net: dict  # hidden (a list), activation, dtype
    settings: RunSettings

    def to_json(self) -> str:
        import json

        return json.dumps({"dataset": self.dataset, "net": self.net,
                           "settings": self.settings.to_dict()}, indent=2) + "\n"


def _run_of(args: argparse.Namespace) -> _Run:
    """The run that the options of ``train`` describe, validated."""
    given = vars(args)  # train has no option for Adam's betas and epsilon: their defaults
    settings = RunSettings(
        penalty=_penalty(args.l1, args.l2, len(args.hidden) + 1),
        **{f.name: given[f.name] for f in dataclasses.fields(RunSettings)
           if f.name != "penalty" and f.name in given})
    return _Run(args.dataset, {"hidden": list(args.hidden), "activation": args.activation,
                               "dtype": args.dtype}, settings)


def _saved_run(folder: Path) -> _Run:
    """The run recorded in ``folder``/run.json; a ValueError when there is
    none, or it cannot be read."""
    import json

    from .files import read_text

    path = folder / "run.json"
    if not path.exists() and not path.is_symlink():
        raise InputError(f"nothing to resume in {folder}: it has no run.json "
                         f"(was it written by handprop train?)")
    try:
        saved = json.loads(read_text(path, "run file"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: unreadable ({exc})") from None
    try:
        net = saved["net"]
        if not (isinstance(net, dict) and set(net) == set(_NET_OPTIONS)):
            raise InputError(f"net must hold {', '.join(_NET_OPTIONS)}")
        net = {"hidden": list(validate.hidden_sizes(net["hidden"], "hidden")),
               "activation": validate.choice("activation", net["activation"],
                                             _activation_names()),
               "dtype": validate.choice("dtype", net["dtype"], ("float32", "float64"))}
        dataset = saved["dataset"]
        if not isinstance(dataset, str):
            raise InputError("dataset must be a string")
        return _Run(dataset, net, RunSettings.from_dict(saved["settings"]))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(saved, dict) and isinstance(saved.get("settings"), dict) and \
                "net" not in saved:
            raise InputError(f"{path} was written by handprop 0.1, whose runs this version "
                             f"cannot resume; train again") from None
        raise InputError(f"{path}: not a run handprop can resume ({exc})") from None


def _resume_run(args: argparse.Namespace, explicit: set[str]) -> _Run:
    """The run saved in ``args.resume``, with the explicitly given options
    checked against it (and applied, with --force)."""
    folder = Path(args.resume)
    saved = _saved_run(folder)
    if args.epochs is None:
        args.epochs = saved.settings.epochs
    now = _run_of(args)
    diffs, changes, net = [], {}, dict(saved.net)
    if "dataset" in explicit and now.dataset != saved.dataset:
        diffs.append(f"--dataset (run {saved.dataset!r}, now {now.dataset!r})")
    for k in _NET_OPTIONS:
        if k in explicit and now.net[k] != saved.net[k]:
            a, b = saved.net[k], now.net[k]
            if k == "hidden":
                a, b = ",".join(map(str, a)), ",".join(map(str, b))
            diffs.append(f"--{k} (run {a}, now {b})" if k == "hidden" else
                         f"--{k} (run {a!r}, now {b!r})")
            net[k] = now.net[k]
    for f in dataclasses.fields(RunSettings):
        options = _PENALTY_OPTIONS if f.name == "penalty" else (f.name,)
        a, b = getattr(saved.settings, f.name), getattr(now.settings, f.name)
        if any(o in explicit for o in options) and a != b:
            diffs.append(f"{'/'.join('--' + o.replace('_', '-') for o in options)} "
                         f"(run {a!r}, now {b!r})")
            changes[f.name] = b
    if diffs and not args.force:
        raise InputError(f"cannot resume {folder}: it was started with other settings: "
                         f"{'; '.join(diffs)}; add --force to resume with the new ones")
    dataset = now.dataset if "dataset" in explicit else saved.dataset
    return _Run(dataset, net, saved.settings.replace(**changes))


def _classes(dataset: str, labels: np.ndarray) -> int:
    """m, the number of classes of a dataset's labels 0 .. m - 1; a clear
    error for labels that cannot train a classifier."""
    classes = np.unique(labels)
    if len(classes) < 2:
        raise InputError(f"{dataset}: every example has label {classes[0]}: a classifier needs "
                         f"at least two classes")
    m = int(classes[-1]) + 1
    if m > len(labels):
        raise InputError(f"{dataset}: a label of {classes[-1]} for {len(labels)} examples: "
                         f"labels are class indices 0 to m - 1, with m at most the number of "
                         f"examples; number the classes 0, 1, 2, ...")
    return m


def cmd_train(args: argparse.Namespace, explicit: set[str] = frozenset()) -> int:
    from .files import lock_folder, remove_stale_temporaries

    if args.resume:
        out = Path(args.resume)
        if out.exists() and not out.is_dir():
            raise UsageError(f"argument --resume: {out} is a file; give the run's folder (the "
                             f"--out of the run to continue), not a file in it")
        if not (out / "run.json").exists():
            _saved_run(out)  # says what is missing before anything is written
    else:
        if args.epochs is None:
            args.epochs = DEFAULT_EPOCHS.get(args.dataset, 50)
        run = _run_of(args)  # every setting is checked before anything is read or written
        out = Path(args.out or f"runs/{_dataset_name(args.dataset)}")
    check_device(args.device)  # so is a GPU that cannot be used
    out = _writable_folder(str(out))
    with lock_folder(out):  # one process at a time writes a run folder
        remove_stale_temporaries(out)
        if args.resume:
            run = _resume_run(args, explicit)
        else:
            _refuse_to_replace_an_unfinished_run(out, args.force)
        return _train(args, run, out)


def _refuse_to_replace_an_unfinished_run(out: Path, force: bool) -> None:
    """A new run in ``out`` replaces the run there. An unfinished one (a
    checkpoint that has not finished) is only replaced with --force."""
    from . import checkpoint as ckpt

    path = ckpt.path_in(out)
    if not path.exists():
        return
    if not force:
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
    path.unlink()  # the new run's checkpoints replace the old run's


def _train(args: argparse.Namespace, run: _Run, out: Path) -> int:
    """Train ``run`` in the (locked) folder ``out`` and write its results."""
    from tqdm.auto import tqdm

    from .checkpoint import Interrupted
    from .datasets import load_dataset
    from .files import write_text
    from .network import MLP
    from .plotting import learning_curves, save_figure
    from .training import Diverged, fit

    train, valid, test = load_dataset(run.dataset, data_dir=args.data_dir)
    m = _classes(run.dataset, np.concatenate([train[1], valid[1], test[1]]))
    net = MLP(train[0].shape[1], tuple(run.net["hidden"]), m, activation=run.net["activation"],
              dtype=run.net["dtype"], seed=run.settings.seed)
    if not args.resume:
        write_text(out / "run.json", run.to_json())
    print(f"{run.dataset}: {len(train[0])} train, {len(valid[0])} valid, {len(test[0])} test "
          f"examples; {net}, {net.n_params:,} parameters")
    if args.resume:
        print(f"resuming the run in {out} from its checkpoint")
    print(_row(_HEADER))
    log_path = out / "log.csv"
    try:
        history = fit(
            net, *train, run.settings, valid=valid, test=test,
            progress=not args.no_progress, log=log_path,
            on_epoch=lambda r: tqdm.write(format_record(r)),
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
            write_text(out / "run.json", run.to_json())
        net.save(out / "model.npz", history=history.to_dicts(), dataset=run.dataset,
                 settings=run.settings.to_dict(), stop_reason=history.stop_reason,
                 best_epoch=history.best_epoch)
        hidden = ",".join(map(str, run.net["hidden"]))
        save_figure(learning_curves(history, title=f"{run.dataset}, d_h = {hidden}"),
                    out / "curves.png")
    except KeyboardInterrupt:
        print(f"handprop: interrupted while writing the results; the finished run is in its "
              f"checkpoint, and handprop train --resume {out} writes them", file=sys.stderr)
        return 130
    last = history[history.best_epoch - 1] if history.best_epoch else history[-1]
    print(f"{history.stop_reason}; epoch {last.epoch} kept: test error {100 * last.test_error:.2f}%"
          f", valid error {100 * last.valid_error:.2f}%")
    print(f"wrote {out / 'model.npz'}, {log_path}, {out / 'curves.png'}, "
          f"{out / 'checkpoint.npz'}")
    return 0


# --------------------------------------------------------------------------
# regions, curves
# --------------------------------------------------------------------------


def _number_list(kind):
    def parse(text: str):
        try:
            values = [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of numbers, got {text!r}") from None
        if not values or any(v < 0 for v in values):
            raise argparse.ArgumentTypeError(f"expected numbers >= 0, got {text!r}")
        return values
    return parse


def cmd_regions(args: argparse.Namespace) -> int:
    from .datasets import load_moons_txt, moons_splits, split
    from .network import MLP
    from .penalty import ElasticNet
    from .plotting import check_animation_path, decision_regions, regions_animation, save_figure
    from .training import evaluate, fit

    if any(h < 1 for h in args.hidden) or any(e < 1 for e in args.epochs):
        raise UsageError("--hidden and --epochs values must be >= 1")
    if args.animate:  # before training, not after it
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

            fit(net, *train, epochs=max(stops), batch_size=args.batch_size, lr=args.lr,
                momentum=args.momentum, penalty=ElasticNet(l2_W1=l2, l2_W2=l2),
                seed=args.seed, progress=False, on_epoch=keep)
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


def cmd_curves(args: argparse.Namespace) -> int:
    from .plotting import learning_curves, save_figure
    from .training import History

    history = History.read_csv(args.log)
    if not history:
        raise InputError(f"{args.log}: the log has no epochs")
    save_figure(learning_curves(history, title=args.title), args.out)
    print(f"wrote {args.out} ({len(history)} epochs)")
    return 0


# --------------------------------------------------------------------------
# evaluate, predict
# --------------------------------------------------------------------------


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .datasets import load_dataset
    from .network import MLP
    from .training import evaluate

    net = MLP.load(args.model)
    splits = dict(zip(("train", "valid", "test"),
                      load_dataset(args.dataset, data_dir=args.data_dir), strict=True))
    names = ("train", "valid", "test") if args.split == "all" else (args.split,)
    for name in names:
        X, y = splits[name]
        if X.shape[1] != net.d:
            raise InputError(f"{args.dataset} has {X.shape[1]} features; the model expects "
                             f"{net.d}")
        if net.output == "softmax" and y.max() >= net.m:
            raise InputError(f"{args.dataset} has class {y.max()}; the model knows "
                             f"{net.m} classes")
        error, loss = evaluate(net, X, y)
        if np.isnan(error):  # identity outputs: no error rate
            print(f"{name}: average loss {loss:.4f} ({len(y)} examples)")
            continue
        print(f"{name}: error {100 * error:.2f}% ({round(error * len(y))} of {len(y)}), "
              f"average loss {loss:.4f}")
    return 0


def _read_features(path: str) -> np.ndarray:
    """Inputs to predict from: a CSV of numbers (a header row allowed; a
    column named "label" is dropped) or a .npz with an array X."""
    from .datasets import read_table
    from .files import read_npz

    p = Path(path)
    if p.suffix.lower() == ".npz":
        return read_npz(p, ("X",))["X"]
    table, header = read_table(p)
    if header and "label" in header:
        table = np.delete(table, header.index("label"), axis=1)
    return table


def cmd_predict(args: argparse.Namespace) -> int:
    import csv
    import io

    from .files import write_text
    from .network import MLP

    net = MLP.load(args.model)
    X = _read_features(args.file)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if net.output in ("identity", "exp"):  # regression: the outputs themselves
        proba = net.predict(X)
        writer.writerow([f"output{k}" for k in range(net.m)])
        writer.writerows([[f"{v:.6g}" for v in row] for row in proba])
    elif net.output == "logistic":  # each label's probability, and 0/1 for it
        proba = net.predict_proba(X)
        writer.writerow([*(f"label{k}" for k in range(net.m)), *(f"p{k}" for k in range(net.m))])
        writer.writerows([[*(int(p > 0.5) for p in row), *(f"{p:.6g}" for p in row)]
                          for row in proba])
    else:
        proba = net.predict_proba(X)
        writer.writerow(["prediction", *(f"p{k}" for k in range(net.m))])
        for row in proba:
            writer.writerow([int(row.argmax()), *(f"{p:.6g}" for p in row)])
    if args.out:
        write_text(args.out, buffer.getvalue())
        print(f"wrote {len(proba)} predictions to {args.out}")
    else:
        sys.stdout.write(buffer.getvalue())
    return 0


def cmd_playground(args: argparse.Namespace) -> int:
    from .playground import serve

    try:
        serve(args.host, args.port, open_browser=not args.no_browser)
    except KeyboardInterrupt:
        print("handprop playground: stopped", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .onnx import export

    print(f"wrote {export(args.model, args.onnx)}")
    return 0


def cmd_distortions(args: argparse.Namespace) -> int:
    from .datasets import load_mnist
    from .plotting import distortions, save_figure

    kinds = args.augment or ["shift", "affine", "elastic"]
    (X, _), _, _ = load_mnist(args.data_dir)
    save_figure(distortions(X, kinds, n=args.n, seed=args.seed), args.out)
    print(f"wrote {args.out}: {args.n} training digits and their distortions by "
          f"{', '.join(kinds)}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import (
        Space,
        SweepConfig,
        default_space,
        moons_capacity_space,
        run_sweep,
        summarize,
        train_params,
    )

    if args.workers < 1:
        raise UsageError("argument --workers: expected a positive integer")
    check_device(args.device)  # before any study is created
    grid = None
    dataset = args.dataset
    if args.preset == "moons-capacity":
        if args.space:
            raise UsageError("--preset and --space exclude each other")
        space, grid = moons_capacity_space()
        dataset = "moons-small"
    elif args.space:
        space = Space.from_toml(args.space)
    else:
        space = default_space(dataset)
    trials = args.trials or (int(np.prod([len(v) for v in grid.values()])) if grid else 20)
    out = _writable_folder(args.out or f"runs/sweep-{args.preset or _dataset_name(dataset)}")
    storage = args.storage or f"sqlite:///{out.resolve() / 'study.db'}"
    study = args.study or f"handprop-{args.preset or _dataset_name(dataset)}"
    config = SweepConfig(dataset=dataset, trials=trials, storage=storage, study=study,
                         out=str(out), space=space, seed=args.seed, data_dir=args.data_dir,
                         heartbeat=args.heartbeat, grid=grid, device=args.device)
    what = "continuing" if args.resume else "starting"
    print(f"{what} study {study!r}: {trials} trials of {space.source} on {dataset}, "
          f"{args.workers} worker(s), storage {storage}", flush=True)
    run_sweep(config, workers=args.workers, resume=args.resume)
    result = summarize(config, top=trials if grid is not None else 10)
    if grid is not None:
        from .plotting import decision_regions, save_figure

        panels = []
        for label, trial in (("best", result["best"]), ("worst", result["worst"])):
            p = trial.user_attrs["params"]
            net, _ = train_params(p, result["data"], seed=args.seed + trial.number,
                                  device=args.device)
            panels.append((net, f"{label}: trial {trial.number}, d_h={p['hidden']}, "
                                f"l2={p['l2']:g},\npatience {p['patience']}: valid error "
                                f"{100 * trial.value:.1f}%"))
        path = out / "regions_best_worst.png"
        save_figure(decision_regions(panels, *result["data"][0], ncols=2), path)
        print(f"wrote {path}")
    return 0


# --------------------------------------------------------------------------
# compare-grads, bench-epoch
# --------------------------------------------------------------------------


def cmd_compare_grads(args: argparse.Namespace) -> int:
    worst = 0.0
    for K in args.k or [1, 10]:
        net, penalty = _small_net(args)
        X, y = _moons_like(K, args.d, args.m, args.seed, net.output)
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


def cmd_bench_epoch(args: argparse.Namespace) -> int:
    import time

    from .datasets import load_mnist
    from .network import MLP
    from .optimizers import SGD
    from .training import fit

    train, _, _ = load_mnist(args.data_dir)
    X, y = train
    if args.slice > len(X) or args.slice < args.k:
        raise UsageError(f"--slice must be between --k and {len(X)}")
    print(f"one MNIST epoch: {len(X)} examples, K = {args.k}, d_h = {args.hidden}, "
          f"{args.dtype}, plain SGD")
    net = MLP(784, args.hidden, 10, dtype=args.dtype, seed=0)
    # warm-up on a slice: BLAS threads start and buffers are first touched
    fit(net, X[:10 * args.k], y[:10 * args.k], epochs=1, batch_size=args.k, progress=False)
    net = MLP(784, args.hidden, 10, dtype=args.dtype, seed=0)
    t0 = time.perf_counter()
    fit(net, X, y, epochs=1, batch_size=args.k, lr=0.1, progress=False)
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


# --------------------------------------------------------------------------


def _activation_names() -> list[str]:
    from .activations import ACTIVATIONS, ALIASES

    return sorted(set(ACTIVATIONS) | set(ALIASES))


def build_parser() -> argparse.ArgumentParser:
    from .activations import ACTIVATIONS, ALIASES
    from .gradcheck import DEFAULT_TOL
    from .network import OUTPUTS
    from .schedules import SCHEDULES

    activations = sorted(set(ACTIVATIONS) | set(ALIASES))
    parser = _Parser(
        prog="handprop",
        description="Multilayer perceptrons with hand-derived gradients in NumPy.",
    )
    parser.add_argument("--version", action="version", version=f"handprop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def small_net(p, d_h=2):
        p.add_argument("--d", type=_positive_int, default=2, help="inputs (default 2)")
        p.add_argument("--d-h", type=_hidden, default=d_h, metavar="D_H[,D_H...]",
                       help=f"hidden units, or one size per hidden layer, e.g. 4,3 "
                       f"(default {d_h})")
        p.add_argument("--m", type=_positive_int, default=2,
                       help="outputs: classes for softmax, >= 2 (default 2)")
        p.add_argument("--activation", choices=activations, default="relu")
        p.add_argument("--output", choices=OUTPUTS, default="softmax",
                       help="the output/loss pair: softmax + cross-entropy (default), logistic "
                       "+ binary cross-entropy, identity + half squared error")
        lambdas(p)
        p.add_argument("--seed", type=_seed, default=0)

    def lambdas(p):
        for name in ("l1", "l2"):
            p.add_argument(f"--{name}", type=_lambdas, default=(0.0,), metavar="W1,W2,...",
                           help=f"{name.upper()} lambdas: one for every weight matrix, or one "
                           f"per matrix (default 0)")

    p = sub.add_parser(
        "gradcheck",
        help="check the hand-derived gradients by finite differences",
        description="Check every gradient of a small net by central finite differences in "
        "float64. Exits 0 when every relative error is under the tolerance, 1 otherwise.",
    )
    small_net(p)
    p.add_argument("--k", type=_positive_int, default=10, help="minibatch size K (default 10)")
    p.add_argument("--eps", type=_positive_float, default=1e-6,
                   help="finite-difference step (default 1e-6)")
    p.add_argument("--order", type=int, choices=(2, 4), default=2,
                   help="2: classic central difference; 4: five-point stencil, for which "
                   "--eps 1e-3 suits (default 2)")
    p.add_argument("--tol", type=_positive_float, default=DEFAULT_TOL,
                   help=f"largest relative error that passes (default {DEFAULT_TOL:g})")
    p.add_argument("--method", choices=("matrix", "loop"), default="matrix",
                   help="which implementation to check (default matrix)")
    p.set_defaults(func=cmd_gradcheck)

    p = sub.add_parser(
        "train", help="train a network and log every epoch",
        description="Train by minibatch gradient descent. Prints the error rate and average "
        "loss on train, valid and test after each epoch, and writes OUT/log.csv, "
        "OUT/model.npz and OUT/curves.png. With no arguments it trains on two moons.")
    p.add_argument("--dataset", default="moons",
                   help="moons, moons-small, mnist, or a FILE.csv / FILE.npz / moons FILE.txt, "
                   "split 80/10/10 (default moons)")
    p.add_argument("--hidden", type=_hidden, default=(512,), metavar="D_H[,D_H...]",
                   help="hidden units, or one size per hidden layer, e.g. 512,256 (default 512)")
    p.add_argument("--activation", choices=activations, default="relu")
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help="default 100 for moons, 20 for mnist, 50 for files")
    p.add_argument("--batch-size", type=_positive_int, default=100, help="K (default 100)")
    p.add_argument("--lr", type=_positive_float, default=0.1,
                   help="default 0.1 (for adam, 0.001 suits)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="default sgd")
    p.add_argument("--momentum", type=float, default=0.9, help="sgd's momentum (default 0.9)")
    p.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    p.add_argument("--schedule", choices=SCHEDULES, default="constant")
    lambdas(p)
    p.add_argument("--dropout", type=_rates, default=(0.0, 0.0), metavar="IN,HIDDEN",
                   help="dropout rates of the input and the hidden layers (default 0,0; one "
                   "number is the hidden rate)")
    p.add_argument("--max-norm", type=_positive_float, default=None, metavar="C",
                   help="keep every row of the hidden layers' weights within L2 norm C")
    p.add_argument("--label-smoothing", type=float, default=0.0, metavar="EPS",
                   help="target (1 - EPS) onehot + EPS / m (default 0)")
    p.add_argument("--augment", default=None, metavar="KINDS",
                   help="distort each training minibatch of images: shift, affine, elastic, "
                   "or several, comma-separated (needs SciPy)")
    p.add_argument("--patience", type=_positive_int, default=None,
                   help="stop after this many epochs without a better validation error, "
                   "keeping the best epoch")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--device", default="cpu", metavar="DEVICE",
                   help="cpu (default), or cuda / cuda:N to train on an NVIDIA GPU (needs "
                   "CuPy); a run may be resumed on another device")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--data-dir", default=None, help="folder of the MNIST files")
    p.add_argument("--out", default=None, help="output folder (default runs/DATASET)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the run whose output folder is DIR from its last checkpoint, "
                   "with its settings")
    p.add_argument("--force", action="store_true",
                   help="with --resume: accept settings that differ from the run's; without: "
                   "start a new run in a folder that holds an unfinished one")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "regions", help="decision regions on two moons for several capacities",
        description="Train one net per setting on two moons and draw their decision regions "
        "in a grid: hidden units along the rows, weight decay (and stopping epochs) along "
        "the columns.")
    p.add_argument("--hidden", type=_number_list(int), default=[2, 5, 100], metavar="LIST",
                   help="d_h values (default 2,5,100)")
    p.add_argument("--l2", type=_number_list(float), default=[0.0, 0.001, 0.01],
                   metavar="LIST", help="L2 lambdas on both W1 and W2 (default 0,0.001,0.01)")
    p.add_argument("--epochs", type=_number_list(int), default=[1000], metavar="LIST",
                   help="epochs; several values show early stopping (default 1000)")
    p.add_argument("--activation", choices=activations, default="relu")
    p.add_argument("--batch-size", type=_positive_int, default=20)
    p.add_argument("--lr", type=_positive_float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--dataset", default="moons", help="moons or a moons FILE.txt")
    p.add_argument("--n-train", type=_positive_int, default=200,
                   help="training points drawn for moons (default 200; few points make "
                   "overfitting visible)")
    p.add_argument("--noise", type=float, default=0.25, help="moons noise (default 0.25)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--out", default="regions.png", help="default regions.png")
    p.add_argument("--animate", default=None, metavar="FILE.gif",
                   help="also write an animation of the regions over the epochs (.gif, or "
                   ".mp4 with ffmpeg), one row per hidden size, one column per lambda")
    p.set_defaults(func=cmd_regions)

    p = sub.add_parser("curves", help="plot learning curves from a log.csv",
                       description="Plot error rate and average loss per epoch from a log "
                       "written by handprop train.")
    p.add_argument("log", help="a log.csv")
    p.add_argument("--out", default="curves.png", help="default curves.png")
    p.add_argument("--title", default=None)
    p.set_defaults(func=cmd_curves)

    p = sub.add_parser("evaluate", help="error and average loss of a saved model",
                       description="Print the error rate and average loss of a model on a "
                       "dataset's split.")
    p.add_argument("model", help="a model.npz")
    p.add_argument("--dataset", default="moons")
    p.add_argument("--split", choices=("train", "valid", "test", "all"), default="test")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="predict the classes of a file's rows",
                       description="Write CSV: the predicted class and each class's "
                       "probability, one row per input row. FILE is a CSV of features (a "
                       "header row allowed; a 'label' column is dropped) or a .npz with X.")
    p.add_argument("model", help="a model.npz")
    p.add_argument("file", help="FILE.csv or FILE.npz")
    p.add_argument("--out", default=None, help="output CSV (default: standard output)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("playground", help="train live in a browser: the two-moons experiments",
                       description="Start a local web server whose page trains nets on "
                       "two-class plane data with handprop's own code, live: decision regions, "
                       "hidden units, learning curves, and any point's forward and backward "
                       "pass. Needs the [playground] extra.")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    p.add_argument("--port", type=int, default=8050, help="default 8050; 0 picks a free one")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.set_defaults(func=cmd_playground)

    p = sub.add_parser("export", help="write a model file as ONNX",
                       description="Write the net of a model file (from handprop train) as an "
                       "ONNX graph, for onnxruntime and other ONNX runtimes, through "
                       "skl2onnx's MLP converters. Needs the [onnx] extra.")
    p.add_argument("model", help="a model.npz")
    p.add_argument("onnx", help="the ONNX file to write")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("distortions", help="a figure of MNIST digits and their distortions",
                       description="Draw the first training digits and, below them, a row of "
                       "distorted versions for each augmentation.")
    p.add_argument("--augment", action="append", metavar="KINDS",
                   help="one row per use: shift, affine, elastic, or several comma-separated "
                   "(default: one row each for shift, affine, elastic)")
    p.add_argument("--n", type=_positive_int, default=8, help="digits (default 8)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="distortions.png", help="default distortions.png")
    p.set_defaults(func=cmd_distortions)

    p = sub.add_parser(
        "sweep", help="a hyper-parameter search on Optuna, on one machine or many",
        description="Search hyper-parameters with Optuna: each trial trains on train and "
        "scores on valid; the best is retrained and its test error reported once. Several "
        "workers, on this machine (--workers) or on others (the same command with the same "
        "--storage and --study), share one study. Needs the [sweep] extra.")
    p.add_argument("--dataset", default="moons")
    p.add_argument("--space", default=None, metavar="SPACE.toml",
                   help="the search space (default: the dataset's default space, see "
                   "docs/sweep.md)")
    p.add_argument("--preset", choices=("moons-capacity",), default=None,
                   help="moons-capacity: the assignment's weight decay x hidden units x early "
                   "stopping grid, on moons-small")
    p.add_argument("--trials", type=_positive_int, default=None,
                   help="trials in all, across all workers (default 20, or the whole grid)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--storage", default=None,
                   help="sqlite:///FILE, postgresql://USER@HOST/DB or journal:FILE "
                   "(default: sqlite in --out)")
    p.add_argument("--study", default=None, help="study name (default handprop-DATASET)")
    p.add_argument("--out", default=None, help="output folder (default runs/sweep-DATASET)")
    p.add_argument("--resume", action="store_true", help="continue an existing study")
    p.add_argument("--heartbeat", type=_positive_int, default=10,
                   help="seconds between a running trial's heartbeats; a trial silent for 3 "
                   "heartbeats is failed and retried (default 10)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="cpu", metavar="DEVICE",
                   help="cpu (default), or cuda / cuda:N: every trial trains on that GPU")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("compare-grads", help="loop and matrix gradients side by side",
                       description="Compute the gradients by the per-example loop and by "
                       "matrix products, print them side by side with their largest "
                       "difference, and exit 1 if it exceeds the tolerance.")
    small_net(p, d_h=2)
    p.add_argument("--k", type=_positive_int, action="append",
                   help="minibatch size; repeat for several (default 1 and 10)")
    p.add_argument("--tol", type=_positive_float, default=1e-12)
    p.set_defaults(func=cmd_compare_grads)

    p = sub.add_parser("bench-epoch", help="time one MNIST epoch, loop against matrix",
                       description="Time one MNIST training epoch with the matrix "
                       "implementation, and the per-example loop on a slice, extrapolated.")
    p.add_argument("--k", type=_positive_int, default=100, help="minibatch size (default 100)")
    p.add_argument("--hidden", type=_positive_int, default=512)
    p.add_argument("--slice", type=_positive_int, default=2000,
                   help="examples the loop is timed on (default 2000)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_bench_epoch)
    return parser


def _explicit(parser: argparse.ArgumentParser, argv, command: str) -> set[str]:
    """The options of ``command`` given on the command line (not defaulted)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    quiet = sub.choices[command]
    saved = {a.dest: a.default for a in quiet._actions}
    try:
        for a in quiet._actions:
            a.default = argparse.SUPPRESS
        given = parser.parse_args(argv)
    finally:
        for a in quiet._actions:
            a.default = saved[a.dest]
    return set(vars(given)) - {"command", "func"}


#: What to try when a command runs out of memory, by command.
_MEMORY_HINTS = {
    "train": "try a smaller --hidden or --batch-size",
    "regions": "try a smaller --hidden",
    "bench-epoch": "try a smaller --hidden or --k",
    "gradcheck": "try a smaller --d-h or --k",
    "compare-grads": "try a smaller --d-h or --k",
    "sweep": "try a smaller search space",
}


def main(argv: list[str] | None = None) -> int:
    """Run a command. Exit status: 0 done; 1 a result that failed (a gradient
    check, a diverged run) or a bug in handprop; 2 bad input, in one line;
    130 or 143 interrupted."""
    parser = build_parser()
    command = None
    try:
        args = parser.parse_args(argv)
        command = args.command
        if args.command is None:
            parser.print_help()
            return 0
        if getattr(args, "m", 2) < 2 and getattr(args, "output", "softmax") == "softmax":
            raise UsageError("argument --m: softmax outputs need m >= 2 classes")
        if not 0 <= getattr(args, "momentum", 0.0) < 1:
            raise UsageError("argument --momentum: must be in [0, 1)")
        if args.func is cmd_train:
            return cmd_train(args, _explicit(parser, argv, "train"))
        return args.func(args)
    except (UsageError, InputError, ImportError, OSError) as exc:
        # bad input: a wrong option or file, a missing optional package, a
        # file that cannot be read or written (a full disk, say)
        if os.environ.get("HANDPROP_DEBUG"):
            raise
        print(f"handprop: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError as exc:  # NumPy's, or CuPy's OutOfMemoryError on a GPU
        if os.environ.get("HANDPROP_DEBUG"):
            raise
        hint = _MEMORY_HINTS.get(command, "the data or the model is too large for this machine")
        print(f"handprop: error: out of memory ({exc or 'no detail'}); {hint}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("handprop: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # anything else is handprop's own bug
        if os.environ.get("HANDPROP_DEBUG"):
            raise
        return _report_bug(exc, argv)


def _report_bug(exc: BaseException, argv) -> int:
    """Say that ``exc`` is a bug, write its traceback to a file, exit 1."""
    import datetime
    import tempfile
    import traceback

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(tempfile.gettempdir()) / f"handprop-bug-{stamp}-{os.getpid()}.txt"
    text = (f"handprop {__version__}, Python {sys.version.split()[0]}\n"
            f"arguments: {sys.argv[1:] if argv is None else argv}\n\n"
            + "".join(traceback.format_exception(exc)))
    try:
        path.write_text(text)
        where = f"the traceback is in {path}"
    except OSError:
        where = "the traceback could not be written; rerun with HANDPROP_DEBUG=1 to see it"
    first = str(exc).splitlines()[0] if str(exc) else ""
    print(f"handprop: internal error, a bug in handprop rather than in your input: "
          f"{type(exc).__name__}: {first}; {where}; please report it", file=sys.stderr)
    return 1
