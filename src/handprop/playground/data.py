"""The playground's data: data sets of points in the plane, the features a
net reads from a point, and data sets uploaded as CSV.

A point is (x1, x2). The net reads its *features*, chosen on the page as in
TensorFlow Playground: x1, x2, x1², x2², x1·x2, sin x1 and sin x2
(:data:`FEATURES`), so that feature engineering can be set against depth.

The data's own settings (the data set, its points, noise, share of
validation points, classes and features) are described once, as the
parameter table describes a run's (:data:`DATA`, of
:class:`handprop.train.parameters.Parameter`): the page builds its form
from both, and checks with the same words.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..core.outputs import OUTPUTS
from ..data.datasets import make_moons
from ..errors import InputError
from ..train.parameters import PARAMETERS, Parameter

__all__ = ["DATASETS", "DATA", "DATA_DEFAULTS", "FEATURES", "LIMITS", "Uploads", "Uploaded",
           "make_data", "features", "parse_features", "parse_csv"]

#: The largest values a page may ask for: they bound each run's memory.
LIMITS = {"points": 2000, "units": 128, "layers": 4, "steps": 500, "epochs": 5000,
          "classes": 6, "upload_bytes": 200_000}


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

#: The features a net may read from a point (x1, x2): name -> (how the page
#: writes it, the function of the (n, 2) points).
FEATURES = {
    "x1": ("x₁", lambda P: P[:, 0]),
    "x2": ("x₂", lambda P: P[:, 1]),
    "x1sq": ("x₁²", lambda P: P[:, 0] ** 2),
    "x2sq": ("x₂²", lambda P: P[:, 1] ** 2),
    "x1x2": ("x₁x₂", lambda P: P[:, 0] * P[:, 1]),
    "sinx1": ("sin x₁", lambda P: np.sin(P[:, 0])),
    "sinx2": ("sin x₂", lambda P: np.sin(P[:, 1])),
}

_P = Parameter
#: The data's own settings, described as the parameter table describes a run's.
DATA: dict[str, Parameter] = {p.name: p for p in (
    _P("dataset", "choice", "moons", "the data set (or one uploaded as CSV)",
       choices=tuple(DATASETS)),
    _P("points", "int", 300, "points, train and validation (as many again are the test "
       "set); an upload has its own", low=20, high=LIMITS["points"]),
    _P("noise", "float", 0.25, "the noise of the points (of the targets, for regression)",
       low=0, high=2),
    _P("valid", "float", 0.3, "the share of the points kept for validation", low=0.05,
       high=0.8),
    _P("classes", "int", 2, "classes, for spiral and blobs", low=2, high=LIMITS["classes"]),
    _P("features", "kinds", "x1,x2", "the net's inputs, computed from each point (x1, x2)",
       choices=tuple(FEATURES)),
)}

#: The data settings' defaults.
DATA_DEFAULTS = {name: p.default for name, p in DATA.items()}


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


def default_output(regression: bool) -> str:
    """The output/loss pair of a data set when none is chosen: the table's
    default, or for regression targets the first pair that does not classify."""
    if not regression:
        return PARAMETERS["output"].default_for("playground")
    return next(p.name for p in OUTPUTS.values() if not p.classifies)


def parse_features(value) -> list[str]:
    """The feature names of a setting ("x1,x2,x1x2", or a list), checked:
    at least one, each known, none twice; in :data:`FEATURES`' order."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise InputError(f"features must be names separated by commas, got {value!r}"[:200])
    names = [str(v).strip() for v in items if str(v).strip()]
    unknown = [n for n in names if n not in FEATURES]
    if unknown or not names or len(set(names)) != len(names):
        raise InputError(f"features must be one or more of {', '.join(FEATURES)}, each once, "
                         f"got {value!r}"[:200])
    return [n for n in FEATURES if n in names]


def features(names, P: np.ndarray) -> np.ndarray:
    """The (n, len(names)) features of the (n, 2) points P."""
    return np.column_stack([FEATURES[n][1](P) for n in names]).astype(np.float64)


# --------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Uploaded:
    """A data set uploaded as CSV: points X (n, 2), y (n,) class indices
    (int64) or targets (float64)."""

    name: str
    X: np.ndarray
    y: np.ndarray
    regression: bool

    @property
    def classes(self) -> int:
        return 1 if self.regression else int(self.y.max()) + 1

    def describe(self) -> dict:
        """What the page is told of it; ``output`` is its default pair."""
        return {"name": self.name, "points": len(self.X), "regression": self.regression,
                "classes": None if self.regression else self.classes,
                "output": default_output(self.regression)}


def parse_csv(text: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """Points of a CSV text: three columns x1, x2 and the label (a header
    row is optional), 20 to ``LIMITS["points"]`` rows. Labels that are all
    integers 0 .. k - 1 (k from 2 to 6) are classes; other numbers are
    regression targets. Returns (X (n, 2), y (n,), regression); an
    InputError names the first bad row."""
    if not isinstance(text, str):
        raise InputError("the upload must be the CSV file's text")
    if len(text) > LIMITS["upload_bytes"]:
        raise InputError(f"the CSV file is {len(text):,} characters; the playground takes at "
                         f"most {LIMITS['upload_bytes']:,}")
    rows = [line.strip() for line in text.splitlines() if line.strip()]
    if rows and not _numbers(rows[0].split(",")):
        rows = rows[1:]  # a header
    values = []
    for i, line in enumerate(rows, start=1):
        cells = _numbers(line.split(","))
        if cells is None or len(cells) != 3:
            raise InputError(f"CSV row {i}: expected three numbers x1,x2,label, got "
                             f"{line!r}"[:200])
        values.append(cells)
    if not 20 <= len(values) <= LIMITS["points"]:
        raise InputError(f"the CSV file has {len(values)} rows of points; the playground "
                         f"takes 20 to {LIMITS['points']}")
    data = np.array(values, dtype=np.float64)
    X, y = data[:, :2], data[:, 2]
    integers = np.all(y == np.round(y)) and y.min() >= 0
    k = int(y.max()) + 1 if integers else 0
    if integers and 2 <= k <= LIMITS["classes"] and len(np.unique(y)) >= 2:
        return X, y.astype(np.int64), False
    if integers and k > LIMITS["classes"] and len(np.unique(y)) <= LIMITS["classes"]:
        raise InputError(f"the labels go up to {k - 1}: classes are numbered 0 to k - 1, "
                         f"with k at most {LIMITS['classes']}")
    return X, y, True


def _numbers(cells):
    try:
        out = [float(c) for c in cells]
    except ValueError:
        return None
    return out if all(np.isfinite(out)) else None


class Uploads:
    """The data sets uploaded to one server, by name; the ``limit`` most
    recent are kept (their memory is bounded: at most 2,000 points each)."""

    def __init__(self, limit: int = 12) -> None:
        self.limit = limit
        self.sets: OrderedDict[str, Uploaded] = OrderedDict()
        self.lock = threading.Lock()

    def add(self, text: str) -> Uploaded:
        X, y, regression = parse_csv(text)
        up = Uploaded(f"upload-{secrets.token_hex(4)}", X, y, regression)
        with self.lock:
            self.sets[up.name] = up
            while len(self.sets) > self.limit:
                self.sets.popitem(last=False)
        return up

    def get(self, name: str) -> Uploaded:
        with self.lock:
            up = self.sets.get(name)
        if up is None:
            raise InputError(f"the uploaded data set {name} is gone (the server restarted, or "
                             f"{self.limit} others were uploaded since): upload it again"[:300])
        return up
