"""The playground's runs: data sets of points in the plane, their settings,
and a run that trains a net on one, a few minibatches at a time.

A run's settings are the parameter table's (:mod:`handprop.train.parameters`:
the same names, checks and defaults as ``handprop train``, with the defaults
the table gives for the playground), and the data's own: the data set, its
points, noise, share of validation points and number of classes. Every
setting is bounded (:data:`LIMITS`), so a run's memory stays small whatever
the page asks.

A run trains through the epoch runner of ``fit`` (:mod:`handprop.train.runner`):
the history, early stopping with the best epoch's parameters, and the
rollback of a diverged step are the runner's.
"""

from __future__ import annotations

import base64
import math
import threading
from dataclasses import dataclass

import numpy as np

from .. import validate
from ..core.gradcheck import gradcheck
from ..core.network import MLP, forward
from ..core.outputs import OUTPUTS, output_pair, outputs_for
from ..data.datasets import make_moons
from ..errors import InputError
from ..train import parameters as table
from ..train.history import Diverged
from ..train.runner import Data, Runner
from ..train.settings import RunSettings
from ..train.training import evaluate

__all__ = ["DATASETS", "LIMITS", "PRESETS", "Run", "make_data", "parse_settings"]

#: The largest values a page may ask for: they bound each run's memory.
LIMITS = {"points": 2000, "units": 128, "layers": 4, "steps": 500, "epochs": 5000,
          "classes": 6}
GRID = 60  # the regions' resolution
UNIT_GRID = 30  # each hidden unit's picture
MAX_UNITS_SHOWN = 16  # per layer


@dataclass(frozen=True)
class DataSet:
    """A data set of the plane: what it models, and its default output."""

    name: str
    regression: bool = False
    k_classes: bool = False  # it takes a number of classes (blobs, spiral)
    help: str = ""


DATASETS = {d.name: d for d in (
    DataSet("moons", help="two interleaved half circles"),
    DataSet("circles", help="a disc inside a ring"),
    DataSet("xor", help="the class is the sign of x1 x2"),
    DataSet("spiral", k_classes=True, help="interleaved spiral arms, one per class"),
    DataSet("blobs", k_classes=True, help="Gaussian clusters, one per class"),
    DataSet("plane", regression=True, help="regression: a tilted plane, (x1 + 2 x2) / 3"),
    DataSet("waves", regression=True, help="regression: sin(pi x1) cos(pi x2)"),
)}

#: The data's own settings: name -> (default, check of the page's text).
DATA_DEFAULTS = {"dataset": "moons", "points": 300, "noise": 0.25, "valid": 0.3, "classes": 2}

#: The assignment's experiments (exercise 5): capacity by weight decay, by
#: hidden units, by early stopping. Each is a list of settings to compare.
PRESETS = {
    "weight decay": [{"hidden": "100", "l2": l2, "noise": 0.3, "points": 200}
                     for l2 in ("0", "0.001", "0.01")],
    "hidden units": [{"hidden": h, "noise": 0.3, "points": 200} for h in ("2", "5", "100")],
    "early stopping": [{"hidden": "100", "noise": 0.3, "points": 200, "patience": p}
                       for p in (0, 20, 5)],
}


# --------------------------------------------------------------------------
# Data sets
# --------------------------------------------------------------------------


def make_data(kind: str, n: int, noise: float, seed: int,
              classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """n points in the plane, seeded: X (n, 2) float64, and y: (n,) int64
    classes in [0, classes), or (n,) float64 targets for a regression set."""
    if kind == "moons":
        return make_moons(n, noise=noise, seed=seed)
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    if kind == "circles":  # an inner disc against a ring
        r = np.where(y == 0, rng.uniform(0, 0.5, n), rng.uniform(0.8, 1.2, n))
        t = rng.uniform(0, 2 * np.pi, n)
        X = np.column_stack([r * np.cos(t), r * np.sin(t)])
    elif kind == "xor":  # the class is the sign of x1 x2
        X = rng.uniform(-1, 1, (n, 2))
        y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    elif kind == "spiral":  # interleaved arms, one per class
        t = np.sqrt(rng.uniform(0, 1, n)) * 3 * np.pi
        turn = 2 * np.pi * y / classes if classes > 2 else np.where(y == 0, 0.0, np.pi)
        X = np.column_stack([t * np.cos(t + turn), t * np.sin(t + turn)]) / (3 * np.pi)
    elif kind == "blobs":  # a Gaussian cluster per class
        if classes == 2:
            centers = np.array([[-0.6, -0.4], [0.6, 0.4]])
        else:
            angle = 2 * np.pi * np.arange(classes) / classes
            centers = 0.8 * np.column_stack([np.cos(angle), np.sin(angle)])
        X = centers[y] + 0.35 * rng.normal(size=(n, 2))
    else:  # regression: targets over the uniform square
        X = rng.uniform(-1, 1, (n, 2))
        if kind == "plane":
            t = (X[:, 0] + 2 * X[:, 1]) / 3
        else:
            t = np.sin(np.pi * X[:, 0]) * np.cos(np.pi * X[:, 1])
        return X, t + noise * 0.2 * rng.normal(size=n)
    X = X + noise * rng.normal(size=X.shape) * (0.5 if kind != "moons" else 1.0)
    return X, y.astype(np.int64)


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------


def _number(raw, name: str, cast, **bounds):
    value = raw
    if isinstance(raw, str):
        try:
            value = cast(raw.strip()) if raw.strip().isascii() else None
        except ValueError:
            value = None
        if value is None:
            raise InputError(f"{name} must be a number, got {raw!r}"[:200])
    return validate.number(name, value, integer=cast is int, **bounds)


def parse_settings(raw) -> dict:
    """The settings of a run, from the page's JSON (or its URL's query):
    the data's and the parameter table's, checked and bounded, or an
    InputError that names the setting."""
    if not isinstance(raw, dict):
        raise InputError("the settings must be a JSON object")
    raw = dict(raw)
    if "batch" in raw and "batch_size" not in raw:  # the name of links made before 0.3
        raw["batch_size"] = raw.pop("batch")
    names = table.names_in("playground")
    unknown = sorted(set(raw) - set(DATA_DEFAULTS) - set(names))
    if unknown:
        raise InputError(f"unknown settings {', '.join(map(str, unknown))}"[:300])
    s = {**DATA_DEFAULTS, **{k: v for k, v in raw.items() if k in DATA_DEFAULTS}}
    dataset = s["dataset"]
    if not isinstance(dataset, str) or dataset not in DATASETS:
        raise InputError(f"dataset must be one of {', '.join(DATASETS)}, got "
                         f"{dataset!r}"[:200])
    out = {"dataset": dataset,
           "points": _number(s["points"], "points", int, low=20, high=LIMITS["points"]),
           "noise": _number(s["noise"], "noise", float, low=0, high=2),
           "valid": _number(s["valid"], "valid", float, low=0.05, high=0.8),
           "classes": _number(s["classes"], "classes", int, low=2, high=LIMITS["classes"])}
    if out["classes"] != 2 and not DATASETS[dataset].k_classes:
        raise InputError(f"{dataset} has two classes; more are drawn by "
                         f"{', '.join(d.name for d in DATASETS.values() if d.k_classes)}")
    given = {k: v for k, v in raw.items() if k in names}
    if "output" not in given and DATASETS[dataset].regression:
        given["output"] = next(p.name for p in OUTPUTS.values() if not p.classifies)
    net, run = table.resolve(given, context="playground", text=True)
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


# --------------------------------------------------------------------------
# A run
# --------------------------------------------------------------------------


def _bytes(values: np.ndarray) -> str:
    """Values in [0, 1] as base64 bytes 0..255: a compact picture for the page."""
    q = np.clip(np.round(np.nan_to_num(values, nan=0.5) * 255), 0, 255).astype(np.uint8)
    return base64.b64encode(q.tobytes()).decode("ascii")


class Run:
    """A net training on a data set of the plane, a few minibatches at a
    time, through the epoch runner of ``fit``."""

    def __init__(self, settings: dict) -> None:
        self.settings = s = settings
        X, y = make_data(s["dataset"], s["points"], s["noise"], s["seed"], s["classes"])
        order = np.random.default_rng([s["seed"], 1]).permutation(len(X))
        X, y = X[order], y[order]
        n_valid = max(2, int(round(s["valid"] * len(X))))
        self.X, self.y = X[n_valid:], y[n_valid:]
        self.X_valid, self.y_valid = X[:n_valid], y[:n_valid]
        self.test = make_data(s["dataset"], s["points"], s["noise"], s["seed"] + 1,
                              s["classes"])
        values = {k: v for k, v in s.items() if k in table.PARAMETERS}
        net_values, run_values = table.resolve(values)
        pair = output_pair(net_values["output"])
        m = outputs_for(pair, np.concatenate([y, self.test[1]]), s["dataset"])
        self.net = MLP(2, net_values["hidden"], m, activation=net_values["activation"],
                       output=pair.name, dtype=net_values["dtype"], seed=s["seed"])
        self.run_settings = RunSettings(**run_values)
        self.runner = Runner(self.net, self.run_settings, Data.check(
            self.net, self.X, self.y, (self.X_valid, self.y_valid), self.test))
        self.stopped = ""
        self.initial = self._evaluate(0)  # epoch 0: the untrained net
        lo = np.minimum(X.min(axis=0), self.test[0].min(axis=0))
        hi = np.maximum(X.max(axis=0), self.test[0].max(axis=0))
        pad = 0.15 * (hi - lo)
        self.box = [float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]),
                    float(hi[1] + pad[1])]
        self.lock = threading.Lock()

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
        rows = [self.initial, *self.runner.history.to_dicts()]
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
        with self.lock, runner:
            while steps and not self.stopped:
                before = runner.steps_taken
                try:
                    runner.train(max_batches=steps)
                except Diverged as exc:
                    self.stopped = str(exc)
                    break
                steps -= runner.steps_taken - before
                if runner.finished:
                    runner.finish()
                    self.stopped = (runner.finished if not runner.finished.startswith(
                        "finished") else f"stopped at the playground's limit of "
                        f"{self.run_settings.epochs} epochs")

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
            lo, hi = float(min(p.min(), self.y.min())), float(max(p.max(), self.y.max()))
            return {"kind": "regression", "regions": _bytes((p - lo) / max(hi - lo, 1e-12)),
                    "range": [lo, hi]}
        if pair.binary(self.net.m):
            p1 = cache.o_s[:, -1] if self.net.m == 2 else cache.o_s[:, 0]
            return {"kind": "classes", "classes": 2, "regions": _bytes(p1)}
        k = cache.o_s.shape[1]
        best = cache.o_s.argmax(axis=1)
        return {"kind": "classes", "classes": k, "regions": _bytes(best / (k - 1)),
                "confidence": _bytes(cache.o_s.max(axis=1))}

    def state(self) -> dict:
        with self.lock:
            params = self.net.params
            cache = forward(params, self._grid(GRID), self.net.activation, self.net.pair)
            units = []
            hidden = forward(params, self._grid(UNIT_GRID), self.net.activation, self.net.pair)
            for layer in hidden.layers:
                h = layer.h_s[:, :MAX_UNITS_SHOWN]
                lo, hi = h.min(axis=0), h.max(axis=0)
                scaled = (h - lo) / np.where(hi > lo, hi - lo, 1)
                units.append([_bytes(scaled[:, j]) for j in range(h.shape[1])])
            return {
                "epoch": self.epoch, "batch": self.batch, "stopped": self.stopped,
                "box": self.box, "grid": GRID, "unit_grid": UNIT_GRID,
                **self._regions(cache), "measure": self.net.pair.measure, "units": units,
                "units_per_layer": list(self.net.hidden),
                "train": {"X": np.round(self.X, 4).tolist(), "y": self.y.tolist()},
                "valid": {"X": np.round(self.X_valid, 4).tolist(),
                          "y": self.y_valid.tolist()},
                "history": _json_safe(self.history), "settings": self.settings,
                "command": self.command(),
            }

    def math(self, x: float, y: float, label) -> dict:
        """One point's forward and backward pass, and a finite-difference
        check of its gradient, in the derivation's names. ``label`` is the
        point's class, or its target for a regression set."""
        x = validate.number("x", x)
        y = validate.number("y", y)
        pair = self.net.pair
        if pair.class_indices:
            label = validate.number("label", label, low=0, high=self.net.m - 1, integer=True)
            target = np.array([label])
        elif pair.classifies:  # logistic units: a class 0 or 1 of one unit
            label = validate.number("label", label, low=0, high=1, integer=True)
            target = np.array([[label]] * 1, dtype=float).reshape(1, self.net.m)
        else:
            label = validate.number("label", label)
            target = np.array([[label]])
        with self.lock:
            X = np.array([[x, y]])
            cache = self.net.fprop(X)
            loss, grads = self.net.loss_and_grads(X, target)
            report = gradcheck(self.net, X, target, eps=1e-3, order=4, max_entries=200)
        layers = [{"h_a": np.round(layer.h_a[0], 6).tolist(),
                   "h_s": np.round(layer.h_s[0], 6).tolist()} for layer in cache.layers]
        return _json_safe({
            "x": [x, y], "label": label, "layers": layers,
            "o_a": cache.o_a[0].tolist(), "o_s": cache.o_s[0].tolist(), "loss": loss,
            "grads": {k: v.tolist() for k, v in grads.items()},
            "gradcheck": {"max_rel_error": report.max_rel_error, "passed": report.passed,
                          "kinks": report.n_kinks,
                          "per_param": {c.name: c.max_rel_error for c in report.checks}}})

    # -- export ------------------------------------------------------------------

    def command(self) -> str:
        """The ``handprop train`` command of these settings, on the run's data
        written as data.csv (its own 80/10/10 split)."""
        s = self.settings
        parts = ["handprop train --dataset data.csv"]
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
        parts.append(f"--epochs {max(self.epoch, 1)}")
        return " ".join(parts)

    def data_csv(self) -> str:
        X = np.vstack([self.X, self.X_valid, self.test[0]])
        y = np.concatenate([self.y, self.y_valid, self.test[1]])
        rows = [f"{a!r},{b!r},{c!r}" for (a, b), c in zip(X.tolist(), y.tolist(), strict=True)]
        return "x1,x2,label\n" + "\n".join(rows) + "\n"

    def model_bytes(self) -> bytes:
        import tempfile
        from pathlib import Path

        with self.lock, tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.npz"
            self.net.save(path, settings=self.settings, epoch=self.epoch,
                          history=_json_safe(self.history))
            return path.read_bytes()


def _json_safe(value):
    """NaN and infinities (which JSON does not have) as None, everywhere."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
