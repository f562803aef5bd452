"""The playground: the assignment's two-moons experiments, live, in a browser.

``handprop playground`` starts a local web server (Flask, the
``[playground]`` extra) and opens its page. handprop's own code trains on the
server: each run is a net, a data set and a :class:`handprop.step.Step`, the
training step that ``fit`` uses; the page asks for a few minibatch steps at
a time and draws what comes back: the decision regions, shaded by
probability, the train and validation points, each hidden unit's output over
the plane, and the learning curves. Clicking a point shows its forward and
backward pass in the derivation's names, with a finite-difference check run
then and there.

The page is plain HTML, CSS and JavaScript shipped in the package
(``handprop/playground_static``): no build step, no CDN. Its settings live
in its URL, so a link reproduces a run: the same settings and seed give the
same run.

Each tab gets a run of its own; at most :data:`MAX_RUNS` runs are kept (the
least recently used goes first), and every setting is bounded
(:data:`LIMITS`), so memory stays bounded whatever the page asks. Bad
settings get a message, in JSON, which the page shows; the server goes on.

API (JSON): ``POST /api/runs`` (settings) makes a run; ``POST
/api/runs/ID/step`` ({"steps": n}) trains it; ``POST /api/runs/ID/math``
({"x": .., "y": .., "label": 0 or 1}) shows one point's passes;
``GET /api/runs/ID/model.npz``, ``/data.csv`` and ``/command`` export it;
``GET /api/presets`` lists the assignment's experiments.
"""

from __future__ import annotations

import base64
import math
import os
import secrets
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from . import validate
from .datasets import make_moons
from .errors import InputError
from .gradcheck import gradcheck
from .network import MLP, forward
from .optimizers import SGD
from .penalty import ElasticNet
from .step import EpochTotals, Step
from .training import evaluate

__all__ = ["create_app", "Run", "parse_settings", "DATASETS", "PRESETS", "LIMITS", "serve"]

STATIC = Path(__file__).parent / "playground_static"
#: The largest values a page may ask for: they bound each run's memory.
LIMITS = {"points": 2000, "units": 128, "layers": 4, "steps": 500, "epochs": 5000}
#: Runs kept at once; the least recently used is dropped first.
MAX_RUNS = 12
DATASETS = ("moons", "circles", "xor", "spiral", "blobs")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "softplus", "identity", "abs")
GRID = 60  # the regions' resolution
UNIT_GRID = 30  # each hidden unit's picture
MAX_UNITS_SHOWN = 16  # per layer

DEFAULTS = {"dataset": "moons", "points": 300, "noise": 0.25, "valid": 0.3, "hidden": "8",
            "activation": "relu", "l1": "0", "l2": "0", "lr": 0.1, "momentum": 0.9,
            "batch": 20, "patience": 0, "seed": 0}

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
# Data sets: two classes in the plane, seeded
# --------------------------------------------------------------------------


def make_data(kind: str, n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n points of two classes in the plane: X (n, 2) float64, y (n,) int64."""
    if kind == "moons":
        return make_moons(n, noise=noise, seed=seed)
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    if kind == "circles":  # an inner disc against a ring
        r = np.where(y == 0, rng.uniform(0, 0.5, n), rng.uniform(0.8, 1.2, n))
        t = rng.uniform(0, 2 * np.pi, n)
        X = np.column_stack([r * np.cos(t), r * np.sin(t)])
    elif kind == "xor":  # the class is the sign of x1 x2
        X = rng.uniform(-1, 1, (n, 2))
        y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    elif kind == "spiral":  # two interleaved arms
        t = np.sqrt(rng.uniform(0, 1, n)) * 3 * np.pi
        sign = np.where(y == 0, 1.0, -1.0)
        X = np.column_stack([sign * t * np.cos(t), sign * t * np.sin(t)]) / (3 * np.pi)
    else:  # blobs: two Gaussian clusters
        centers = np.array([[-0.6, -0.4], [0.6, 0.4]])
        X = centers[y] + 0.35 * rng.normal(size=(n, 2))
    X = X + noise * rng.normal(size=X.shape) * (0.5 if kind != "moons" else 1.0)
    return X, y.astype(np.int64)


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------


def _numbers(name: str, text, count: int) -> list[float]:
    """Lambdas: one for every weight matrix, or one per matrix."""
    values = text if isinstance(text, (list, tuple)) else str(text).split(",")
    try:
        out = [validate.number(name, float(v), low=0) for v in values]
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: {exc}" if name not in str(exc) else str(exc)) from None
    if len(out) == 1:
        out *= count
    if len(out) != count:
        raise InputError(f"{name} must be one lambda, or one per weight matrix ({count}), got "
                         f"{len(out)}")
    return out


def parse_settings(raw) -> dict:
    """The settings of a run, from the page's JSON (or its URL's query):
    checked and bounded, or an InputError that names the setting."""
    if not isinstance(raw, dict):
        raise InputError("the settings must be a JSON object")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise InputError(f"unknown settings {', '.join(unknown)}")
    s = {**DEFAULTS, **raw}
    out = {"dataset": validate.choice("dataset", s["dataset"], DATASETS),
           "activation": validate.choice("activation", s["activation"], ACTIVATIONS)}

    def num(name, cast=float, **bounds):
        try:
            value = cast(s[name]) if isinstance(s[name], str) else s[name]
        except (TypeError, ValueError):
            raise InputError(f"{name} must be a number, got {s[name]!r}") from None
        return validate.number(name, value, integer=cast is int, **bounds)

    out["points"] = num("points", int, low=20, high=LIMITS["points"])
    out["noise"] = num("noise", low=0, high=2)
    out["valid"] = num("valid", low=0.05, high=0.8)
    out["lr"] = num("lr", low=0, high=10, low_open=True)
    out["momentum"] = num("momentum", low=0, high=1, high_open=True)
    out["batch"] = num("batch", int, low=1, high=LIMITS["points"])
    out["patience"] = num("patience", int, low=0, high=LIMITS["epochs"])
    out["seed"] = num("seed", int, low=0, high=2**31 - 1)
    hidden = validate.hidden_sizes(str(s["hidden"]) if not isinstance(s["hidden"], list)
                                   else s["hidden"], "hidden")
    if len(hidden) > LIMITS["layers"] or max(hidden) > LIMITS["units"]:
        raise InputError(f"hidden: at most {LIMITS['layers']} layers of at most "
                         f"{LIMITS['units']} units each, got {','.join(map(str, hidden))}")
    out["hidden"] = list(hidden)
    out["l1"] = _numbers("l1", s["l1"], len(hidden) + 1)
    out["l2"] = _numbers("l2", s["l2"], len(hidden) + 1)
    return out


# --------------------------------------------------------------------------
# A run
# --------------------------------------------------------------------------


def _bytes(values: np.ndarray) -> str:
    """Values in [0, 1] as base64 bytes 0..255: a compact picture for the page."""
    q = np.clip(np.round(np.nan_to_num(values, nan=0.5) * 255), 0, 255).astype(np.uint8)
    return base64.b64encode(q.tobytes()).decode("ascii")


class Run:
    """A net training on a two-class plane data set, one minibatch step at a
    time, through handprop's training step."""

    def __init__(self, settings: dict) -> None:
        self.settings = s = settings
        X, y = make_data(s["dataset"], s["points"], s["noise"], s["seed"])
        order = np.random.default_rng([s["seed"], 1]).permutation(len(X))
        X, y = X[order], y[order]
        n_valid = max(2, int(round(s["valid"] * len(X))))
        self.X, self.y = X[n_valid:], y[n_valid:]
        self.X_valid, self.y_valid = X[:n_valid], y[:n_valid]
        self.test = make_data(s["dataset"], s["points"], s["noise"], s["seed"] + 1)
        self.net = MLP(2, tuple(s["hidden"]), 2, activation=s["activation"], seed=s["seed"])
        self.penalty = ElasticNet.per_matrix(s["l1"], s["l2"])
        self.step = Step(self.net, self.net.params, self.X, self.y,
                         optimizer=SGD(s["momentum"]), batch_size=min(s["batch"], len(self.X)),
                         penalty=self.penalty)
        self.rng = np.random.default_rng(s["seed"])
        self.epoch = 0
        self.totals: EpochTotals | None = None  # the epoch under way, None between epochs
        self.history: list[dict] = []
        self.best = (math.inf, None, 0)  # (valid error, parameters, epoch)
        self.stopped = ""
        lo = np.minimum(X.min(axis=0), self.test[0].min(axis=0))
        hi = np.maximum(X.max(axis=0), self.test[0].max(axis=0))
        pad = 0.15 * (hi - lo)
        self.box = [float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]),
                    float(hi[1] + pad[1])]
        self.lock = threading.Lock()
        self._record()  # epoch 0: the untrained net

    def _record(self) -> None:
        train = evaluate(self.net, self.X, self.y)
        valid = evaluate(self.net, self.X_valid, self.y_valid)
        test = evaluate(self.net, *self.test)
        self.history.append({"epoch": self.epoch, "train_error": train[0],
                             "train_loss": train[1], "valid_error": valid[0],
                             "valid_loss": valid[1], "test_error": test[0],
                             "test_loss": test[1]})
        patience = self.settings["patience"]
        if valid[0] < self.best[0]:
            self.best = (valid[0], {k: v.copy() for k, v in self.net.params.items()},
                         self.epoch)
        elif patience and self.epoch - self.best[2] >= patience:
            self.net.params = self.best[1]  # early stopping keeps the best epoch
            self.stopped = (f"early stopping: no better validation error for {patience} "
                            f"epochs; the net is that of epoch {self.best[2]}")
        if not self.stopped and self.epoch >= LIMITS["epochs"]:
            self.stopped = f"stopped at the playground's limit of {LIMITS['epochs']} epochs"

    def advance(self, steps: int) -> None:
        """Train ``steps`` minibatches (fewer if the run stops)."""
        steps = validate.number("steps", steps, low=1, high=LIMITS["steps"], integer=True)
        lr = self.settings["lr"]

        def spend(b: int) -> bool:  # after each minibatch: True stops the epoch
            nonlocal steps
            steps -= 1
            return steps == 0

        with self.lock, np.errstate(over="ignore", invalid="ignore"):
            while steps and not self.stopped:
                if self.totals is None:
                    self.step.start_epoch(self.epoch + 1, self.rng.permutation(len(self.X)))
                    self.totals = EpochTotals()
                self.step.train_epoch(lambda b: lr, totals=self.totals, after_batch=spend)
                if self.totals.diverged:
                    self.stopped = ("training diverged (the loss is no longer finite): lower "
                                    "the learning rate")
                elif self.totals.batch == self.step.n_batches:
                    self.totals = None
                    self.epoch += 1
                    self._record()

    @property
    def batch(self) -> int:
        """Minibatches trained in the epoch under way."""
        return 0 if self.totals is None else self.totals.batch

    # -- what the page draws --------------------------------------------------

    def _grid(self, size: int) -> np.ndarray:
        x0, x1, y0, y1 = self.box
        gx, gy = np.meshgrid(np.linspace(x0, x1, size), np.linspace(y1, y0, size))
        return np.column_stack([gx.ravel(), gy.ravel()])

    def state(self) -> dict:
        with self.lock:
            cache = forward(self.net.params, self._grid(GRID), self.net.activation)
            units = []
            hidden = forward(self.net.params, self._grid(UNIT_GRID), self.net.activation)
            for layer in hidden.layers:
                h = layer.h_s[:, :MAX_UNITS_SHOWN]
                lo, hi = h.min(axis=0), h.max(axis=0)
                scaled = (h - lo) / np.where(hi > lo, hi - lo, 1)
                units.append([_bytes(scaled[:, j]) for j in range(h.shape[1])])
            return {
                "epoch": self.epoch, "batch": self.batch, "stopped": self.stopped,
                "box": self.box, "grid": GRID, "unit_grid": UNIT_GRID,
                "regions": _bytes(cache.o_s[:, 1]), "units": units,
                "units_per_layer": list(self.net.hidden),
                "train": {"X": np.round(self.X, 4).tolist(), "y": self.y.tolist()},
                "valid": {"X": np.round(self.X_valid, 4).tolist(),
                          "y": self.y_valid.tolist()},
                "history": self.history, "settings": self.settings,
                "command": self.command(),
            }

    def math(self, x: float, y: float, label: int) -> dict:
        """One point's forward and backward pass, and a finite-difference
        check of its gradient, in the derivation's names."""
        x = validate.number("x", x)
        y = validate.number("y", y)
        label = validate.number("label", label, low=0, high=1, integer=True)
        with self.lock:
            X, t = np.array([[x, y]]), np.array([label])
            cache = self.net.fprop(X)
            loss, grads = self.net.loss_and_grads(X, t)
            report = gradcheck(self.net, X, t, eps=1e-3, order=4, max_entries=200)
        layers = [{"h_a": np.round(layer.h_a[0], 6).tolist(),
                   "h_s": np.round(layer.h_s[0], 6).tolist()} for layer in cache.layers]
        return {"x": [x, y], "label": label, "layers": layers,
                "o_a": cache.o_a[0].tolist(), "o_s": cache.o_s[0].tolist(), "loss": loss,
                "grads": {k: v.tolist() for k, v in grads.items()},
                "gradcheck": {"max_rel_error": report.max_rel_error, "passed": report.passed,
                              "kinks": report.n_kinks,
                              "per_param": {c.name: c.max_rel_error for c in report.checks}}}

    # -- export ------------------------------------------------------------------

    def command(self) -> str:
        """The ``handprop train`` command of these settings, on the run's data
        written as data.csv (its own 80/10/10 split)."""
        s = self.settings
        parts = ["handprop train --dataset data.csv", f"--hidden {','.join(map(str, s['hidden']))}",
                 f"--activation {s['activation']}", f"--lr {s['lr']:g}",
                 f"--momentum {s['momentum']:g}", f"--batch-size {s['batch']}",
                 f"--seed {s['seed']}", "--dtype float64"]
        if any(s["l1"]):
            parts.append("--l1 " + ",".join(f"{v:g}" for v in s["l1"]))
        if any(s["l2"]):
            parts.append("--l2 " + ",".join(f"{v:g}" for v in s["l2"]))
        if s["patience"]:
            parts.append(f"--patience {s['patience']}")
        parts.append(f"--epochs {max(self.epoch, 1)}")
        return " ".join(parts)

    def data_csv(self) -> str:
        X = np.vstack([self.X, self.X_valid, self.test[0]])
        y = np.concatenate([self.y, self.y_valid, self.test[1]])
        rows = [f"{a!r},{b!r},{c}" for (a, b), c in zip(X.tolist(), y.tolist(), strict=True)]
        return "x1,x2,label\n" + "\n".join(rows) + "\n"

    def model_bytes(self) -> bytes:
        import tempfile

        with self.lock, tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.npz"
            self.net.save(path, settings=self.settings, epoch=self.epoch,
                          history=self.history)
            return path.read_bytes()


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------


class NoSuchRun(LookupError):
    """A run that was dropped (too many tabs) or never existed."""


class Runs:
    """The runs of every tab, the least recently used dropped beyond ``limit``."""

    def __init__(self, limit: int = MAX_RUNS) -> None:
        self.limit = limit
        self.runs: OrderedDict[str, Run] = OrderedDict()
        self.lock = threading.Lock()

    def add(self, run: Run) -> str:
        key = secrets.token_hex(8)
        with self.lock:
            self.runs[key] = run
            while len(self.runs) > self.limit:
                self.runs.popitem(last=False)
        return key

    def get(self, key: str) -> Run:
        with self.lock:
            run = self.runs.get(key)
            if run is None:
                raise NoSuchRun(key)
            self.runs.move_to_end(key)
            return run


def create_app(limit: int = MAX_RUNS):
    """The Flask application: the page, its assets and the JSON API."""
    try:
        from flask import Flask, Response, jsonify, request, send_from_directory
    except ImportError:
        raise ImportError("handprop playground needs Flask: pip install "
                          "'handprop[playground]'") from None

    app = Flask(__name__, static_folder=None)
    runs = Runs(limit)
    app.config["RUNS"] = runs

    def body() -> dict:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise InputError("the request must be a JSON object")
        return data

    @app.errorhandler(InputError)
    def bad_input(exc):
        return jsonify(error=str(exc)), 400

    @app.errorhandler(NoSuchRun)
    def no_run(exc):
        return jsonify(error="no such run: it was dropped (too many tabs) or the server "
                             "restarted; reset to start a new one"), 404

    @app.errorhandler(MemoryError)
    def out_of_memory(exc):
        return jsonify(error="out of memory: ask for a smaller net or fewer points"), 400

    @app.get("/")
    def index():
        return send_from_directory(STATIC, "index.html")

    @app.get("/favicon.ico")
    def favicon():
        return "", 204

    @app.get("/static/<path:name>")
    def static(name):
        return send_from_directory(STATIC, name)

    @app.get("/api/presets")
    def presets():
        return jsonify(presets=PRESETS, defaults=DEFAULTS, limits=LIMITS)

    @app.post("/api/runs")
    def new_run():
        run = Run(parse_settings(body()))
        return jsonify(id=runs.add(run), state=run.state())

    @app.post("/api/runs/<key>/step")
    def step(key):
        run = runs.get(key)
        run.advance(body().get("steps", 10))
        return jsonify(state=run.state())

    @app.post("/api/runs/<key>/math")
    def math_(key):
        data = body()
        return jsonify(runs.get(key).math(data.get("x"), data.get("y"), data.get("label", 1)))

    @app.get("/api/runs/<key>/command")
    def command(key):
        return jsonify(command=runs.get(key).command())

    @app.get("/api/runs/<key>/data.csv")
    def data(key):
        return Response(runs.get(key).data_csv(), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=data.csv"})

    @app.get("/api/runs/<key>/model.npz")
    def model(key):
        return Response(runs.get(key).model_bytes(), mimetype="application/octet-stream",
                        headers={"Content-Disposition": "attachment; filename=model.npz"})

    return app


def serve(host: str = "127.0.0.1", port: int = 8050, open_browser: bool = True) -> None:
    """Serve the playground until interrupted, printing its address."""
    import logging
    import socket

    port = validate.number("port", port, low=0, high=65535, integer=True)
    app = create_app()  # first: it says when Flask is missing

    from werkzeug.serving import make_server

    # The socket is bound here, not by werkzeug, which prints a failure and
    # exits: a host that does not resolve or a port in use is an OSError
    # that names them (the CLI's one line).
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listener = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise OSError(f"cannot serve the playground on {host}:{port}: "
                      f"{exc.strerror or exc}") from None
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per step
    with listener:
        server = make_server(host, port, app, threaded=True, fd=listener.fileno())
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    url = f"http://{f'[{shown}]' if ':' in shown else shown}:{server.port}/"
    print(f"handprop playground: {url} (Ctrl-C stops it)", flush=True)
    if open_browser and not os.environ.get("HANDPROP_NO_BROWSER"):
        import webbrowser

        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    try:
        server.serve_forever()
    finally:
        server.server_close()

