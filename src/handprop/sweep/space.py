"""A sweep's search space: a TOML file of the parameter table's names, each a
fixed value, choices or a range, checked whole before any study is made."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..train import parameters


class SpaceError(InputError):
    """A search-space file is invalid; the message names the file and line."""


#: Names a space takes besides the parameter table's: the depth and the
#: width of ``hidden`` as two ranges (``depth`` layers of ``width`` units).
SHAPE_NAMES = {"depth": "hidden layers, each of width units (with width)",
               "width": "units of each hidden layer (with depth)"}
_PER_MATRIX = re.compile(r"(l[12])_W([1-9][0-9]*)")
_KEYS = {"value", "choices", "low", "high", "scale", "zero"}


def vocabulary() -> dict[str, str]:
    """Every name a space file takes, with what it is: the parameter table's
    names (``hidden`` takes layer lists as the CLI writes them, "512,256"),
    their parts (``beta1``, ``dropout_hidden``), ``l1_Wk`` and ``l2_Wk`` for a
    lambda on one weight matrix, and ``depth`` and ``width``."""
    out = {}
    for name, p in parameters.PARAMETERS.items():
        out[name] = p.help
        for i, part in enumerate(p.parts):
            out[part] = f"{p.help} ({'first' if i == 0 else 'second'} of {name})"
        if p.per == "matrix":
            out[f"{name}_Wk"] = f"{name.upper()} lambda on weight matrix Wk (k = 1, 2, ...)"
    out.update(SHAPE_NAMES)
    return out


def _known(name: str) -> bool:
    return (name in parameters.sweep_names() or name in SHAPE_NAMES
            or _PER_MATRIX.fullmatch(name) is not None)


def _kind(name: str) -> str:
    """How a name's values are sampled: "int", "float", or "name" (choices
    and fixed values only)."""
    if name in SHAPE_NAMES:
        return "int"
    if _PER_MATRIX.fullmatch(name):
        return "float"
    p = parameters.sweep_names()[name]
    if p.kind in ("int", "layers"):
        return "int"  # a range of hidden sizes is one hidden layer's width
    if p.kind in ("float", "pair", "rates", "lambdas"):
        return "float"
    return "name"


@dataclass(frozen=True)
class Dimension:
    """One hyper-parameter of a space: a fixed value, a list of choices, or a
    range [low, high] on a linear or log scale (``zero``: a log range that
    may also take exactly 0, half of the time)."""

    name: str
    value: object = None
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    scale: str = "linear"
    zero: bool = False

    def suggest(self, trial):
        kind = _kind(self.name)
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.low is None:
            return self.value
        if self.zero and trial.suggest_categorical(f"{self.name}_is_zero", [False, True]):
            return 0 if kind == "int" else 0.0
        log = self.scale == "log"
        if kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=log)

    def extremes(self) -> list:
        """Values the dimension can take that bound all the others: its
        value, each choice, or the ends of its range (and 0 with ``zero``)."""
        if self.choices is not None:
            return list(self.choices)
        if self.low is None:
            return [self.value]
        ends = [self.low, self.high] + ([0] if self.zero else [])
        return [int(v) for v in ends] if _kind(self.name) == "int" else ends


@dataclass
class Space:
    """A search space: a Dimension per hyper-parameter (the others take the
    parameter table's defaults)."""

    dims: dict[str, Dimension] = field(default_factory=dict)
    source: str = "default"
    where: dict = field(default_factory=dict)  # name -> "FILE, line N" for messages

    def suggest(self, trial) -> dict:
        """Concrete values for the hyper-parameters this space sets, sampled
        for ``trial`` (the others are the defaults: see :func:`trial_values`)."""
        return {name: dim.suggest(trial) for name, dim in self.dims.items()}

    def check(self, dataset: str = "") -> None:
        """Every value the space can give, checked by the parameter table
        before any study is made: each dimension at its extremes, with the
        others at their first value; a SpaceError names the line. Each
        dimension is first checked with the others at the table's defaults,
        so that a bad value is named on its own line."""
        context = _context(dataset)
        firsts = {name: dim.extremes()[0] for name, dim in self.dims.items()}
        shape = {name: firsts[name] for name in SHAPE_NAMES if name in firsts}
        for base in ({}, firsts):
            for name, dim in self.dims.items():
                for value in dim.extremes():
                    try:
                        trial_values({**shape, **base, name: value}, context=context)
                    except (TypeError, ValueError) as exc:
                        where = self.where.get(name, self.source)
                        raise SpaceError(f"{where}: {name} = {value!r}: {exc}"[:400]) from None

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> Space:
        """Read and check a space file; a SpaceError names the line of any problem."""
        from ..files import read_text, read_toml

        path = Path(path)
        try:
            text = read_text(path, "space file")
            data = read_toml(text, path)
        except InputError as exc:
            raise SpaceError(str(exc)) from None
        lines = text.splitlines()

        def where(name: str, key: str | None = None) -> str:
            line = _find_line(lines, name, key)
            return f"{path}, line {line}" if line else str(path)

        dims = {}
        for name, spec in data.items():
            if not _known(name):
                raise SpaceError(f"{where(name)}: unknown parameter {name!r}; known: "
                                 f"{', '.join(vocabulary())}")
            if not isinstance(spec, dict):
                spec = {"value": spec}
            dims[name] = _dimension(name, spec, where)
        if ("depth" in dims) != ("width" in dims) or ("depth" in dims and "hidden" in dims):
            raise SpaceError(f"{path}: depth and width go together, instead of hidden")
        space = cls(dims, source=str(path), where={n: where(n) for n in dims})
        space.check()
        return space


def _context(dataset: str) -> str | None:
    """Where the table's defaults differ (two moons: many epochs)."""
    return parameters.dataset_context(dataset)


def trial_values(p: dict, *, context: str | None = None) -> tuple[dict, dict]:
    """The net's and the run's parameters (:func:`handprop.train.parameters.resolve`)
    of a trial's values ``p``: the table's defaults for what ``p`` does not
    set; ``l1`` and ``l2`` on every weight matrix, plus ``l1_Wk`` on Wk (for the
    nets that have a Wk);
    ``depth`` layers of ``width`` units; a layer list as text, "512,256"."""
    values, extra = {}, {}
    names = parameters.sweep_names()
    for name, value in p.items():
        match = _PER_MATRIX.fullmatch(name)
        if match:
            extra.setdefault(match.group(1), {})[int(match.group(2))] = value
        elif name in SHAPE_NAMES:
            continue
        elif name in parameters.PARAMETERS:
            values[name] = value
        else:  # a part: beta1, dropout_hidden, ...
            table = names[name]
            default = values.get(table.name, table.default)
            parts = list(parameters.PARAMETERS[table.name].check(default))
            parts[table.parts.index(name)] = value
            values[table.name] = tuple(parts)
    if "depth" in p:
        values["hidden"] = (p["width"],) * int(p["depth"])
    hidden = parameters.PARAMETERS["hidden"].check(
        values.get("hidden", parameters.PARAMETERS["hidden"].default_for(context)))
    values["hidden"] = hidden
    n_weights = len(hidden) + 1
    for name, per in extra.items():
        # a lambda on Wk applies to the nets that have Wk: a space may search
        # the depth and put a lambda on the deepest matrix
        base = parameters.per_matrix(name, values.get(name, 0.0), n_weights)
        values[name] = tuple(v + per.get(k, 0.0) for k, v in enumerate(base, start=1))
    return parameters.resolve(values, context=context)


DEFAULTS = {name: p.default for name, p in parameters.PARAMETERS.items()}


def _find_line(lines: list[str], name: str, key: str | None) -> int | None:
    """The line (from 1) of ``[name]`` or ``name = ...``, or of ``key`` inside it."""
    header = re.compile(rf"^\s*\[\s*{re.escape(name)}\s*\]")
    inline = re.compile(rf"^\s*{re.escape(name)}\s*=")
    for i, line in enumerate(lines):
        if inline.match(line):
            return i + 1
        if header.match(line):
            if key is None:
                return i + 1
            for j in range(i + 1, len(lines)):
                if lines[j].lstrip().startswith("["):
                    break
                if re.match(rf"^\s*{re.escape(key)}\s*=", lines[j]):
                    return j + 1
            return i + 1
    return None


def _dimension(name: str, spec: dict, where) -> Dimension:
    kind = _kind(name)
    unknown = set(spec) - _KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise SpaceError(f"{where(name, key)}: {name} has an unknown key {key!r}; expected "
                         f"value, choices, or low and high with scale and zero")
    forms = [k for k in ("value", "choices", "low") if k in spec]
    if len(forms) != 1 or ("low" in spec) != ("high" in spec):
        raise SpaceError(f"{where(name)}: {name} needs exactly one of value, choices, or "
                         f"low and high")
    if "value" in spec:
        return Dimension(name, value=_typed(spec["value"], name, where))
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{where(name, 'choices')}: {name}.choices must be a non-empty "
                             f"list")
        return Dimension(name, choices=tuple(_typed(c, name, where) for c in choices))
    if kind == "name":
        raise SpaceError(f"{where(name)}: {name} is a name, not a number: give value or "
                         f"choices")
    low, high = (_number(spec[k], kind, name, where) for k in ("low", "high"))
    scale = spec.get("scale", "linear")
    if scale not in ("linear", "log"):
        raise SpaceError(f"{where(name, 'scale')}: {name}.scale must be 'linear' or 'log', "
                         f"got {scale!r}"[:300])
    if low > high:
        raise SpaceError(f"{where(name, 'low')}: {name} has an inverted range: low {low} > "
                         f"high {high}")
    if scale == "log" and low <= 0:
        raise SpaceError(f"{where(name, 'low')}: {name} is on a log scale, so low must be "
                         f"> 0 (add zero = true to allow 0), got {low}")
    zero = spec.get("zero", False)
    if not isinstance(zero, bool):
        raise SpaceError(f"{where(name, 'zero')}: {name}.zero must be true or false")
    return Dimension(name, low=low, high=high, scale=scale, zero=zero)


def _number(value, kind: str, name: str, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpaceError(f"{where(name)}: {name} takes numbers, got {value!r}"[:300])
    if kind == "int" and value != int(value):
        raise SpaceError(f"{where(name)}: {name} takes integers, got {value!r}"[:300])
    return int(value) if kind == "int" else float(value)


def _typed(value, name: str, where):
    """A fixed value or a choice: a number or a name as TOML gives it (the
    table checks it later), a layer list written "512,256", or a bool."""
    if isinstance(value, (str, bool)):
        return value
    if isinstance(value, (int, float)) and math.isfinite(value):
        return value
    if isinstance(value, list) and value and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)  # a layer list, as the CLI writes it
    raise SpaceError(f"{where(name)}: {name} takes numbers or names, got {value!r}"[:300])


def default_space(dataset: str) -> Space:
    """The space used when no file is given (documented in docs/sweep.md)."""
    if dataset == "moons":
        dims = {
            "lr": Dimension("lr", low=0.005, high=0.5, scale="log"),
            "hidden": Dimension("hidden", low=2, high=256, scale="log"),
            "l2_W1": Dimension("l2_W1", low=1e-5, high=1e-1, scale="log", zero=True),
            "l2_W2": Dimension("l2_W2", low=1e-5, high=1e-1, scale="log", zero=True),
            "batch_size": Dimension("batch_size", choices=(10, 20, 50)),
            "momentum": Dimension("momentum", low=0.0, high=0.95),
            "epochs": Dimension("epochs", value=100),
            "patience": Dimension("patience", value=20),
        }
    else:
        dims = {
            "lr": Dimension("lr", low=0.01, high=0.3, scale="log"),
            "hidden": Dimension("hidden", choices=(256, 512, 1024)),
            "l2_W1": Dimension("l2_W1", low=1e-6, high=1e-3, scale="log", zero=True),
            "l2_W2": Dimension("l2_W2", low=1e-6, high=1e-3, scale="log", zero=True),
            "batch_size": Dimension("batch_size", choices=(50, 100, 200)),
            "momentum": Dimension("momentum", low=0.5, high=0.95),
            "dropout_hidden": Dimension("dropout_hidden", low=0.0, high=0.5),
            "epochs": Dimension("epochs", value=20),
            "patience": Dimension("patience", value=5),
            "schedule": Dimension("schedule", value="cosine"),
        }
    return Space(dims, source=f"the default space for {dataset}")


def moons_capacity_space() -> tuple[Space, dict]:
    """The assignment's capacity study as a grid: weight decay x hidden units x
    early stopping (patience, or none)."""
    grid = {"hidden": [2, 5, 20, 100], "l2": [0.0, 0.001, 0.01], "patience": [10, 1000]}
    dims = {
        "hidden": Dimension("hidden", choices=tuple(grid["hidden"])),
        "l2": Dimension("l2", choices=tuple(grid["l2"])),
        "patience": Dimension("patience", choices=tuple(grid["patience"])),
        "lr": Dimension("lr", value=0.05),
        "batch_size": Dimension("batch_size", value=20),
        "epochs": Dimension("epochs", value=500),
    }
    return Space(dims, source="the moons-capacity preset"), grid
