"""The playground's runs: data sets of points in the plane, their settings,
and a run that trains a net on one, a few minibatches at a time.

A run's settings are the parameter table's (:mod:`handprop.train.parameters`:
the same names, checks and defaults as ``handprop train``, with the defaults
the table gives for the playground), and the data's own: the data set, its
points, noise, share of validation points, number of classes and features. Every
setting is bounded (:data:`LIMITS`), so a run's memory stays small whatever
the page asks.

A run trains through the epoch runner of ``fit`` (:mod:`handprop.train.runner`):
the history, early stopping with the best epoch's parameters, and the
rollback of a diverged step are the runner's, and so are live changes
(``Runner.retune``: the table's ``live`` parameters change without a reset).

What the page draws comes from here: the regions, the network (each unit's
output over the plane, the weights and biases between the units shown), the
minibatch just trained, and the history from the epoch the page has on
(:meth:`Run.state`), so that a reply does not grow with the epochs; one
point's passes with its deltas (:meth:`Run.math`); and exports that
reproduce the run (:meth:`Run.command` with :meth:`Run.split_npz`). The data
sets, features and uploads are in :mod:`handprop.playground.data`.
"""

from __future__ import annotations

import base64
import io
import math
import threading

import numpy as np

from .. import validate
from ..core import activations as act
from ..core.gradcheck import gradcheck
from ..core.network import MLP, forward
from ..core.outputs import output_pair, outputs_for
from ..errors import InputError
from ..train import parameters as table
from ..train.history import Diverged
from ..train.runner import Data, Runner
from ..train.settings import RunSettings
from ..train.training import evaluate
from .data import (
    DATA,
    DATA_DEFAULTS,
    DATASETS,
    FEATURES,
    LIMITS,
    Uploads,
    default_output,
    features,
    make_data,
    parse_features,
)
from .guard import json_safe

__all__ = ["DATASETS", "LIMITS", "PRESETS", "Run", "Uploads", "form", "make_data",
           "parse_settings"]

GRID = 60  # the regions' resolution
UNIT_GRID = 20  # each unit's picture on the drawn network
MAX_UNITS_SHOWN = 16  # per layer, on the drawn network
MATH_ROWS = 8  # rows of each weight matrix that a point's math sends

#: The settings the page shows first; the others are under "more".
SHOWN_FIRST = ("dataset", "points", "noise", "valid", "classes", "features", "hidden",
               "activation", "lr", "optimizer", "momentum", "batch_size", "l1", "l2",
               "dropout", "patience")

#: Comparisons that teach (exercise 5 of the assignment: capacity by weight
#: decay, by hidden units, by early stopping): runs trained side by side on
#: the same data, each with its settings written on it. The figures each
#: shows are measured in docs/playground.md (examples/playground_presets.py).
_COMPARED = {"dataset": "moons", "points": 500, "noise": 0.35, "valid": 0.6, "epochs": 1500}
PRESETS = {
    "weight decay": {
        "claim": "with no weight decay a big net bends round the noise and overfits; L2 = 0.001 "
                 "smooths the regions and has the lowest validation error; L2 = 0.01 is too "
                 "much: the boundary straightens and underfits",
        "data": _COMPARED,
        "runs": [{"hidden": "128,128", "l2": "0"}, {"hidden": "128,128", "l2": "0.001"},
                 {"hidden": "128,128", "l2": "0.01"}]},
    "hidden units": {
        "claim": "one unit underfits (a straight boundary); 8 units fit; two layers of 128 "
                 "overfit noisy data: the lowest training error, the highest validation error",
        "data": _COMPARED,
        "runs": [{"hidden": "1"}, {"hidden": "8"}, {"hidden": "128,128"}]},
    "early stopping": {
        "claim": "early stopping ends 150 epochs after the best validation epoch, and keeps "
                 "that epoch's parameters, before the net overfits",
        "data": _COMPARED,
        "runs": [{"hidden": "128,128"}, {"hidden": "128,128", "patience": "150"}]},
}


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------


def parse_settings(raw, uploads: Uploads | None = None) -> dict:
    """The settings of a run, from the page's JSON (or its URL's query):
    the data's (:data:`handprop.playground.data.DATA`) and the parameter
    table's, checked and bounded, or an InputError that names the setting.
    A data set uploaded to the server is named ``upload-...``, found in
    ``uploads``."""
    if not isinstance(raw, dict):
        raise InputError("the settings must be a JSON object")
    raw = dict(raw)
    if "batch" in raw and "batch_size" not in raw:  # the name of links made before 0.3
        raw["batch_size"] = raw.pop("batch")
    names = table.names_in("playground")
    unknown = sorted(set(map(str, raw)) - set(DATA) - set(names))
    if unknown:
        raise InputError(f"unknown settings {', '.join(unknown)}"[:300])
    given = {k: raw.get(k, p.default) for k, p in DATA.items()}
    dataset = given["dataset"]
    upload = None
    if isinstance(dataset, str) and dataset.startswith("upload-"):
        if uploads is None:
            raise InputError("this server takes no uploaded data sets")
        upload = uploads.get(dataset)
    else:
        if not isinstance(dataset, str) or dataset not in DATASETS:
            raise InputError(f"dataset must be one of {', '.join(DATASETS)}, or an uploaded "
                             f"one, got {dataset!r}"[:200])
    out = {"dataset": dataset}
    for name in ("points", "noise", "valid", "classes"):
        out[name] = DATA[name].check(given[name], text=True)
    out["features"] = parse_features(given["features"])
    regression = upload.regression if upload else DATASETS[dataset].regression
    if upload is not None:
        out["points"], out["classes"] = len(upload.X), upload.classes
    elif out["classes"] != 2 and not DATASETS[dataset].k_classes:
        raise InputError(f"{dataset} has two classes; more are drawn by "
                         f"{', '.join(d.name for d in DATASETS.values() if d.k_classes)}")
    values = {k: v for k, v in raw.items() if k in names}
    if "output" not in values:
        values["output"] = default_output(regression)
    net, run = table.resolve(values, context="playground", text=True)
    hidden = net["hidden"]
    if len(hidden) > LIMITS["layers"] or max(hidden) > LIMITS["units"]:
        raise InputError(f"hidden: at most {LIMITS['layers']} layers of at most "
                         f"{LIMITS['units']} units each, got {','.join(map(str, hidden))}")
    if run["epochs"] > LIMITS["epochs"]:
        raise InputError(f"epochs must be at most the playground's {LIMITS['epochs']}")
    if run["batch_size"] > LIMITS["points"]:
        raise InputError(f"batch_size must be at most {LIMITS['points']}, the most points")
    if run["seed"] > 2**31 - 1:
        raise InputError(f"seed must be an integer in [0, {2**31 - 1}], got {run['seed']}")
    n_weights = len(hidden) + 1
    for name in names:
        if name in ("l1", "l2"):
            i = 0 if name == "l1" else 1
            out[name] = [run["penalty"].lambdas(f"W{k}")[i] for k in range(1, n_weights + 1)]
        elif name in net:
            out[name] = list(net[name]) if isinstance(net[name], tuple) else net[name]
        else:
            value = run[name]
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def form() -> dict:
    """What the page builds its form from: the data's settings and the
    parameter table's (with the playground's defaults), which to show first,
    the data sets, the features and the limits."""
    data = []
    for p in DATA.values():
        entry = {"name": p.name, "kind": p.kind, "help": p.help, "choices": list(p.choices),
                 "default": p.default, "text": p.text(p.default), "low": p.low, "high": p.high,
                 "low_open": p.low_open, "high_open": p.high_open, "optional": False,
                 "per": None, "part": "data", "parts": [], "off": None, "live": False,
                 "describe": p.describe()}
        if p.name == "features":
            entry["labels"] = {k: v[0] for k, v in FEATURES.items()}
        data.append(entry)
    return {"data_parameters": data, "parameters": table.to_json("playground"),
            "data": DATA_DEFAULTS, "shown_first": list(SHOWN_FIRST),
            "datasets": {d.name: {"regression": d.regression, "k_classes": d.k_classes,
                                  "help": d.help, "output": default_output(d.regression)}
                         for d in DATASETS.values()},
            "limits": LIMITS}


# --------------------------------------------------------------------------
# A run
# --------------------------------------------------------------------------


def _bytes(values: np.ndarray) -> str:
    """Values in [0, 1] as base64 bytes 0..255: a compact picture for the page."""
    q = np.clip(np.round(np.nan_to_num(values, nan=0.5) * 255), 0, 255).astype(np.uint8)
    return base64.b64encode(q.tobytes()).decode("ascii")


def _signed(values: np.ndarray) -> tuple[list[str], float]:
    """Columns of (n, k) values on one diverging scale: each as bytes, 0 at
    the middle (127.5), and the scale s (the largest |value|: 0 is -s, 255 is s)."""
    s = float(np.max(np.abs(values))) if values.size else 0.0
    s = s if math.isfinite(s) and s > 0 else 1.0
    return [_bytes((values[:, j] / s + 1) / 2) for j in range(values.shape[1])], s


class Run:
    """A net training on a data set of the plane, a few minibatches at a
    time, through the epoch runner of ``fit``.

    Attributes
    ----------
    P, P_valid, P_test : (n, 2) points of the train, validation and test sets
    y, y_valid, y_test : their classes (int64) or targets (float64)
    X, X_valid : the net's inputs, the features of the points (n, d)
    """

    def __init__(self, settings: dict, uploads: Uploads | None = None) -> None:
        self.settings = s = dict(settings)
        self.names = s["features"]
        if s["dataset"].startswith("upload-"):
            up = (uploads or Uploads()).get(s["dataset"])
            order = np.random.default_rng([s["seed"], 2]).permutation(len(up.X))
            n_test = max(2, len(up.X) // 5)
            P, y = up.X[order[n_test:]], up.y[order[n_test:]]
            self.P_test, self.y_test = up.X[order[:n_test]], up.y[order[:n_test]]
        else:
            P, y = make_data(s["dataset"], s["points"], s["noise"], s["seed"], s["classes"])
            self.P_test, self.y_test = make_data(s["dataset"], s["points"], s["noise"],
                                                 s["seed"] + 1, s["classes"])
        order = np.random.default_rng([s["seed"], 1]).permutation(len(P))
        P, y = P[order], y[order]
        n_valid = max(2, int(round(s["valid"] * len(P))))
        self.P, self.y = P[n_valid:], y[n_valid:]
        self.P_valid, self.y_valid = P[:n_valid], y[:n_valid]
        self.X, self.X_valid = self.inputs(self.P), self.inputs(self.P_valid)
        self.X_test = self.inputs(self.P_test)
        values = {k: v for k, v in s.items() if k in table.PARAMETERS}
        net_values, run_values = table.resolve(values)
        pair = output_pair(net_values["output"])
        m = outputs_for(pair, np.concatenate([y, self.y_test]), s["dataset"])
        self.net = MLP(len(self.names), net_values["hidden"], m,
                       activation=net_values["activation"], output=pair.name,
                       dtype=net_values["dtype"], seed=s["seed"])
        self.runner = Runner(self.net, RunSettings(**run_values), Data.check(
            self.net, self.X, self.y, (self.X_valid, self.y_valid),
            (self.X_test, self.y_test)))
        self.stopped = ""
        self.changes: list[dict] = []  # the live changes: epoch, minibatch, name, value
        self.last_batch: dict | None = None
        self.initial = self._evaluate(0)  # epoch 0: the untrained net
        every = np.vstack([P, self.P_test])
        lo, hi = every.min(axis=0), every.max(axis=0)
        pad = 0.15 * (hi - lo)
        self.box = [float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]),
                    float(hi[1] + pad[1])]
        self.lock = threading.Lock()

    def inputs(self, P: np.ndarray) -> np.ndarray:
        """The net's inputs (n, d): the run's features of the points P (n, 2)."""
        return features(self.names, P)

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        return self.X_test, self.y_test

    @property
    def run_settings(self) -> RunSettings:
        return self.runner.settings

    @property
    def step(self):
        """The run's training step (its minibatches: ``step.n_batches``)."""
        return self.runner.step

    @property
    def epoch(self) -> int:
        return self.runner.epoch

    @property
    def batch(self) -> int:
        """Minibatches trained in the epoch under way."""
        return self.runner.in_epoch["batch"] if self.runner.in_epoch else 0

    @property
    def history(self) -> list[dict]:
        """One record per epoch, epoch 0 (the untrained net) first; without
        the epochs' wall times, so that a run's record is the same each time."""
        return self.history_since(0)

    def history_since(self, epoch: int) -> list[dict]:
        """The records of the epochs from ``epoch`` on: the work of a step's
        reply does not grow with the epochs before."""
        records = self.runner.history
        rows = ([self.initial] if epoch == 0 else []) + type(records)(
            records[max(epoch - 1, 0):]).to_dicts()
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    def _evaluate(self, epoch: int) -> dict:
        train = evaluate(self.net, self.X, self.y)
        valid = evaluate(self.net, self.X_valid, self.y_valid)
        test = evaluate(self.net, *self.test)
        return {"epoch": epoch, "train_error": train[0], "train_loss": train[1],
                "valid_error": valid[0], "valid_loss": valid[1], "test_error": test[0],
                "test_loss": test[1], "lr": self.run_settings.lr}

    def advance(self, steps: int) -> None:
        """Train ``steps`` minibatches (fewer if the run stops)."""
        steps = validate.number("steps", steps, low=1, high=LIMITS["steps"], integer=True)
        runner = self.runner

        def seen(b):  # the last minibatch trained, for the page to show
            self.last_batch = {"epoch": runner.epoch + 1, "batch": b,
                               "n_batches": runner.n_batches,
                               "order": runner.in_epoch["order"],
                               "size": runner.step.batch_size}

        with self.lock, runner:
            while steps and not self.stopped:
                before = runner.steps_taken
                try:
                    runner.train(max_batches=steps, after_batch=seen)
                except Diverged as exc:
                    self.stopped = str(exc)
                    break
                steps -= runner.steps_taken - before
                if runner.finished:
                    runner.finish()
                    self.stopped = (runner.finished if not runner.finished.startswith(
                        "finished") else f"stopped at the playground's limit of "
                        f"{self.run_settings.epochs} epochs")

    def retune(self, changes: dict) -> dict:
        """Change live settings (the table's ``live`` parameters: the
        learning rate, momentum, the lambdas, the minibatch size), given as
        the page writes them, without a reset. An InputError names a setting
        that cannot change so, or a bad value; then nothing changes.
        Returns the run's settings."""
        if not isinstance(changes, dict) or not changes:
            raise InputError("the changes must be a JSON object of settings")
        n_weights = self.net.L + 1
        parsed = {}
        for name, value in changes.items():
            p = table.PARAMETERS.get(name) if isinstance(name, str) else None
            if p is None or not p.live or name not in table.names_in("playground"):
                raise InputError(f"{name} cannot change while the run trains: it resets the "
                                 f"run"[:200])
            parsed[name] = p.check(value, n_weights=n_weights, text=True)
        with self.lock:
            applied = self.runner.retune(**parsed)
            for name, value in applied.items():
                self.settings[name] = list(value) if isinstance(value, tuple) else value
                self.changes.append({"epoch": self.epoch, "batch": self.batch, "name": name,
                                     "value": table.PARAMETERS[name].text(value)})
            if self.stopped.startswith("training diverged"):
                self.runner.go_on_after_divergence()  # at the new values
                self.stopped = ""
        return self.settings

    # -- what the page draws --------------------------------------------------

    def _grid(self, size: int) -> np.ndarray:
        x0, x1, y0, y1 = self.box
        gx, gy = np.meshgrid(np.linspace(x0, x1, size), np.linspace(y1, y0, size))
        return np.column_stack([gx.ravel(), gy.ravel()])

    def _regions(self, cache) -> dict:
        """The net's output over the grid, for the page: the probability of
        class 1 (two classes), the class and its probability (k classes), or
        the prediction scaled to [0, 1] with its range (regression)."""
        pair = self.net.pair
        if not pair.classifies:
            p = cache.o_s[:, 0]
            targets = np.concatenate([self.y, self.y_valid, self.y_test])
            lo, hi = float(min(p.min(), targets.min())), float(max(p.max(), targets.max()))
            return {"kind": "regression", "regions": _bytes((p - lo) / max(hi - lo, 1e-12)),
                    "range": [lo, hi]}
        if pair.binary(self.net.m):
            p1 = cache.o_s[:, -1] if self.net.m == 2 else cache.o_s[:, 0]
            return {"kind": "classes", "classes": 2, "regions": _bytes(p1)}
        k = cache.o_s.shape[1]
        best = cache.o_s.argmax(axis=1)
        return {"kind": "classes", "classes": k, "regions": _bytes(best / (k - 1)),
                "confidence": _bytes(cache.o_s.max(axis=1))}

    def _network(self) -> dict:
        """The drawn network: each layer's units (the inputs, the hidden
        layers, the outputs) as pictures of their output over the plane, on
        one diverging scale per layer, and the weights and biases between
        the units shown (the first :data:`MAX_UNITS_SHOWN` of a layer)."""
        params = self.net.params
        grid = self._grid(UNIT_GRID)
        F = self.inputs(grid)
        cache = forward(params, F, self.net.activation, self.net.pair)
        values = [F, *(layer.h_s for layer in cache.layers), cache.o_s]
        layers = []
        for l, v in enumerate(values):
            shown = v[:, :MAX_UNITS_SHOWN] if 0 < l < len(values) - 1 else v
            if l == len(values) - 1 and self.net.pair.classifies:  # probabilities
                images, scale = [_bytes(shown[:, j]) for j in range(shown.shape[1])], 1.0
                signed = False
            else:
                (images, scale), signed = _signed(shown), True
            layers.append({"units": int(v.shape[1]), "shown": int(shown.shape[1]),
                           "images": images, "scale": scale, "signed": signed})
        weights = {}
        for l in range(1, self.net.L + 2):
            n_out, n_in = layers[l]["shown"], layers[l - 1]["shown"]
            weights[f"W{l}"] = params[f"W{l}"][:n_out, :n_in].tolist()
            weights[f"b{l}"] = params[f"b{l}"][:n_out].tolist()
        names = [FEATURES[n][0] for n in self.names]
        return {"layers": layers, "weights": weights, "inputs": names, "grid": UNIT_GRID}

    def points(self) -> dict:
        """The data's points, which do not change during a run (sent once)."""
        def part(P, y):
            return {"X": np.round(P, 4).tolist(), "y": np.asarray(y).tolist()}

        return {"train": part(self.P, self.y), "valid": part(self.P_valid, self.y_valid),
                "test": part(self.P_test, self.y_test)}

    def state(self, since: int = 0) -> dict:
        """What the page draws after a step: the regions, the drawn network,
        the minibatch just trained, and the history from epoch ``since`` on
        (the page keeps the rest), so that a reply's size does not grow with
        the epochs. With ``since`` 0 (a new run), the points too."""
        since = validate.number("since", since, low=0, integer=True)
        with self.lock:
            cache = forward(self.net.params, self.inputs(self._grid(GRID)),
                            self.net.activation, self.net.pair)
            batch = None
            if self.last_batch is not None:
                b, K = self.last_batch["batch"], self.last_batch["size"]
                batch = {k: v for k, v in self.last_batch.items() if k not in ("order", "size")}
                batch["indices"] = self.last_batch["order"][b * K:(b + 1) * K].tolist()
            out = {
                "epoch": self.epoch, "batch": self.batch, "n_batches": self.runner.n_batches,
                "steps": self.runner.steps_taken, "stopped": self.stopped, "box": self.box,
                "grid": GRID, **self._regions(cache), "measure": self.net.pair.measure,
                "network": self._network(), "last_batch": batch,
                "history": json_safe(self.history_since(since)), "history_from": since,
                "settings": self.settings, "changes": self.changes, "command": self.command(),
                "best_epoch": self.runner.best_epoch,
            }
            if since == 0:
                out["points"] = self.points()
            return out

    def math(self, x: float, y: float, label=None) -> dict:
        """One point's forward and backward pass, in the derivation's names,
        and a finite-difference check of its gradient.

        ``label`` is the point's class, or its target for a regression set;
        None takes the label of the nearest point of the data (train,
        validation or test). The backward pass is written out: the output
        delta o_s - t, then each hidden layer's delta
        (W_{l+1}^T delta_{l+1}) * g'(h_a), which are also the gradients of
        the biases of this one point (the math has no penalty and no
        dropout)."""
        x = validate.number("x", x, low=-1e6, high=1e6)
        y = validate.number("y", y, low=-1e6, high=1e6)
        pair, net = self.net.pair, self.net
        nearest = None
        if label is None:
            P = np.vstack([self.P, self.P_valid, self.P_test])
            labels = np.concatenate([self.y, self.y_valid, self.y_test])
            i = int(np.argmin(((P - [x, y]) ** 2).sum(axis=1)))
            label, nearest = labels[i].item(), [float(P[i, 0]), float(P[i, 1])]
        if pair.class_indices:
            label = validate.number("label", label, low=0, high=net.m - 1, integer=True)
            target = np.array([label])
        elif pair.classifies:  # logistic units: a class 0 or 1 of one unit
            label = validate.number("label", label, low=0, high=1, integer=True)
            target = np.full((1, net.m), float(label))
        else:
            label = validate.number("label", label, low=-1e6, high=1e6)
            target = np.array([[label]])
        with self.lock:
            X = self.inputs(np.array([[x, y]]))
            params = {k: v.copy() for k, v in net.params.items()}
            cache = net.fprop(X)
            loss, grads = net.loss_and_grads(X, target)
            report = gradcheck(net, X, target, eps=1e-3, order=4, max_entries=200)
        o_s, t_row, _ = pair.example(cache.o_a[0], target[0], 0.0)
        deltas = [o_s - t_row]  # the output delta, then down the hidden layers
        g_prime = act.DERIVATIVES[act.resolve(net.activation)]
        for l in range(net.L, 0, -1):
            layer = cache.layers[l - 1]
            back = params[f"W{l + 1}"].T @ deltas[0]
            deltas.insert(0, back * g_prime(layer.h_a[0], layer.h_s[0]))
        layers = [{"h_a": layer.h_a[0].tolist(), "h_s": layer.h_s[0].tolist(),
                   "delta": deltas[l].tolist()} for l, layer in enumerate(cache.layers)]
        shapes = {k: list(v.shape) for k, v in params.items()}
        return json_safe({
            "x": [x, y], "input": X[0].tolist(), "features": [FEATURES[n][0] for n in self.names],
            "label": label, "nearest": nearest, "target": t_row.tolist(), "layers": layers,
            "o_a": cache.o_a[0].tolist(), "o_s": cache.o_s[0].tolist(),
            "delta_o": deltas[-1].tolist(), "loss": loss, "loss_name": pair.loss_name,
            "output": pair.name, "activation": net.activation, "epoch": self.epoch,
            "batch": self.batch, "shapes": shapes,
            "params": {k: (v[:MATH_ROWS].tolist()) for k, v in params.items()},
            "grads": {k: v.tolist() for k, v in grads.items()},
            "gradcheck": _checked(report)})

    # -- export ------------------------------------------------------------------

    def command(self) -> str:
        """The ``handprop train`` command that reproduces this run's finished
        epochs on its own split (``split.npz``, :meth:`split_npz`), bit for
        bit when no setting changed during the run; with a note when one did,
        or when an epoch is under way."""
        if self.epoch == 0:
            return ("# no epoch trained yet: train one, and the command that reproduces the "
                    "run appears here")
        s = self.settings
        parts = ["handprop train --dataset split.npz"]
        for name in table.names_in("playground"):
            p = table.PARAMETERS[name]
            value = s.get(name)
            if name == "epochs":
                continue
            if name in ("l1", "l2") and not any(value):
                continue
            if value == p.default or (isinstance(value, list) and tuple(value) == p.default):
                continue
            parts.append(f"--{name.replace('_', '-')} {p.text(value)}")
        best = self.runner.best_epoch if self.runner.finished else None
        parts.append(f"--epochs {self.epoch}")
        notes = []
        if self.changes:
            notes.append(f"the run's settings changed as it trained ({len(self.changes)} "
                         f"change{'s' if len(self.changes) > 1 else ''}, the last of "
                         f"{self.changes[-1]['name']} at epoch {self.changes[-1]['epoch']}): "
                         f"this command trains with today's values from the start")
        if self.batch:
            notes.append(f"the page is {self.batch} minibatches into epoch {self.epoch + 1}, "
                         f"which the command does not train")
        if best is not None and best != self.epoch:
            notes.append(f"early stopping keeps epoch {best}")
        return " ".join(parts) + "".join(f"  # {n}" for n in notes)

    def split_npz(self) -> bytes:
        """The run's data as the net reads it (its features), in its split:
        an .npz of X_train, y_train, X_valid, y_valid, X_test and y_test,
        which ``handprop train --dataset`` uses as it is split."""
        buffer = io.BytesIO()
        np.savez(buffer, X_train=self.X, y_train=self.y, X_valid=self.X_valid,
                 y_valid=self.y_valid, X_test=self.X_test, y_test=self.y_test)
        return buffer.getvalue()

    def data_csv(self) -> str:
        """The points (x1, x2 and the label) of train, validation and test, in order."""
        P = np.vstack([self.P, self.P_valid, self.P_test])
        y = np.concatenate([self.y, self.y_valid, self.y_test])
        rows = [f"{a!r},{b!r},{c!r}" for (a, b), c in zip(P.tolist(), y.tolist(), strict=True)]
        return "x1,x2,label\n" + "\n".join(rows) + "\n"

    def model_bytes(self) -> bytes:
        import tempfile
        from pathlib import Path

        with self.lock, tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.npz"
            self.net.save(path, settings=self.settings, epoch=self.epoch,
                          history=json_safe(self.history))
            return path.read_bytes()


#: An entry of a point's gradient check passes with a relative error below
#: the check's tolerance, or an absolute one below this: an entry near 0
#: (a saturated tanh gives 1e-8) has a relative error that the finite
#: difference's own error (about 1e-12 with eps = 1e-3) dominates.
ABS_TOL = 1e-10


def _checked(report) -> dict:
    """A gradient check as the page shows it: per parameter, the largest
    relative and absolute errors (kinks left out), and whether each entry
    passes (see :data:`ABS_TOL`)."""
    per_param, abs_errors, passed = {}, {}, True
    for c in report.checks:
        ok = ~c.kink
        rel = c.rel_error[ok]
        err = np.abs(c.analytic - c.numerical)[ok]
        per_param[c.name] = float(rel.max()) if rel.size else 0.0
        abs_errors[c.name] = float(err.max()) if err.size else 0.0
        passed &= bool(np.all((rel <= report.tol) | (err <= ABS_TOL)))
    return {"max_rel_error": report.max_rel_error, "passed": passed, "tol": report.tol,
            "abs_tol": ABS_TOL, "kinks": report.n_kinks, "per_param": per_param,
            "abs_error": abs_errors}
