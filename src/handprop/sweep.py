"""Hyper-parameter sweeps on Optuna, from one process to many machines.

A sweep is an Optuna study: trials sample hyper-parameters from a *space*
(a TOML file), train with :func:`handprop.fit`, report the validation error
after every epoch (so that a median pruner can stop hopeless trials early),
and return their best validation error. The study lives in a database that
any number of workers share: a SQLite file by default, a PostgreSQL server
(``--storage postgresql://...``) for several machines, or an Optuna journal
file on a shared disk (``--storage journal:PATH``).

The total number of trials is honoured across all workers: before training,
a trial claims one of the N slots under a lock (a lock file next to a SQLite
or journal file, a PostgreSQL advisory lock on a server), so that exactly N
trials run to completion or pruning. With a database storage, every running
trial sends a heartbeat; a worker that dies (SIGKILL, a lost machine) stops
sending it, and after a grace period its trial is marked failed, gives its
slot back, and is retried once with the same parameters.

This module needs Optuna (``pip install 'handprop[sweep]'``).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .train import parameters

__all__ = ["Space", "SpaceError", "vocabulary", "default_space", "run_sweep", "summarize",
           "trial_values", "trial_settings"]


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
        others at their first value; a SpaceError names the line."""
        base = {name: dim.extremes()[0] for name, dim in self.dims.items()}
        for name, dim in self.dims.items():
            for value in dim.extremes():
                try:
                    trial_values({**base, name: value}, context=_context(dataset))
                except (TypeError, ValueError) as exc:
                    where = self.where.get(name, self.source)
                    raise SpaceError(f"{where}: {name} = {value!r}: {exc}"[:400]) from None

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> Space:
        """Read and check a space file; a SpaceError names the line of any problem."""
        from .files import read_text, read_toml

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


# --------------------------------------------------------------------------
# Storage, and the lock that shares out the trial budget
# --------------------------------------------------------------------------


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ImportError("handprop sweep needs Optuna: pip install 'handprop[sweep]'"
                          ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def database_url(url: str) -> str:
    """``postgresql://...`` with the psycopg (3) driver named, which the
    ``[sweep]`` extra installs; SQLAlchemy's default driver varies by version."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_storage(url: str, *, heartbeat: int = 10):
    """An Optuna storage from a URL: ``sqlite:///...``, ``postgresql://...``
    (or any SQLAlchemy URL), or ``journal:PATH``. Database storages get a
    heartbeat, and retry once a trial whose worker died."""
    optuna = _optuna()
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url[len("journal:"):]))
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    with _stable():
        # Optuna >= 4.9 names the callback of a trial found dead by its heartbeat
        # heartbeat_stale_trial_callback; the older ones failed_trial_callback
        name = ("heartbeat_stale_trial_callback"
                if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback")
                else "failed_trial_callback")
        return _while_schema_is_made(lambda: optuna.storages.RDBStorage(
            database_url(url), engine_kwargs=kwargs, heartbeat_interval=heartbeat,
            grace_period=3 * heartbeat, **{name: _retry_dead}))


def _while_schema_is_made(make, attempts: int = 8):
    """``make()``, tried again while another process creates the same new
    database's tables.

    Optuna creates its tables and stamps their version the first time a
    storage opens a database; two workers (or machines) that open a new
    database at the same moment both try, and the slower one fails with
    "table ... already exists" or a duplicate version row (Optuna issues 1092
    and 4621). Once the faster one is done, opening the database again works.
    """
    import time

    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(attempts):
        try:
            return make()
        except (IntegrityError, OperationalError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 * 2 ** min(attempt, 4))


@contextlib.contextmanager
def _stable():
    """Silence Optuna's ExperimentalWarning: heartbeats have been "experimental"
    since Optuna 2.8, and a sweep should not print it in every worker."""
    optuna = _optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def advisory_key(study_name: str) -> int:
    """The PostgreSQL advisory-lock key of a study: 64 bits of the sha256 of
    its whole name, so that studies whose names share a prefix (every default
    one begins with "handprop-") never share a lock.

    >>> advisory_key("handprop-moons") != advisory_key("handprop-mnist")
    True
    """
    import hashlib

    return int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big",
                          signed=True)


class BudgetLock:
    """Mutual exclusion around claiming a trial slot, for every worker of a
    study: a lock file beside a SQLite or journal file (it works across
    processes, and across machines on a shared disk), or a PostgreSQL
    advisory lock."""

    def __init__(self, url: str, study_name: str) -> None:
        self.url, self.study_name = database_url(url), study_name
        self._release = None
        if not self.url.startswith(("postgresql", "sqlite:///", "journal:")):
            raise InputError(f"storage {url!r}: handprop sweep shares a study through SQLite "
                             f"(sqlite:///FILE), PostgreSQL (postgresql://...) or an Optuna "
                             f"journal file (journal:FILE)")

    def __enter__(self):
        if self.url.startswith("postgresql"):
            import sqlalchemy

            engine = sqlalchemy.create_engine(database_url(self.url))
            conn = engine.connect()
            key = advisory_key(self.study_name)
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})

            def release():
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.close()
                engine.dispose()
        else:
            path = (self.url[len("journal:"):] if self.url.startswith("journal:")
                    else self.url[len("sqlite:///"):])
            release = _file_lock(f"{path}.{_file_safe(self.study_name)}.budget-lock")
        self._release = release
        return self

    def __exit__(self, *exc):
        self._release()


def _file_safe(name: str) -> str:
    """A study name as part of a file name: itself when it is plain, else a
    digest of it (a name may hold "/" or anything else)."""
    if re.fullmatch(r"[A-Za-z0-9._-]{1,100}", name):
        return name
    import hashlib

    return "study-" + hashlib.sha256(name.encode()).hexdigest()[:16]


def _file_lock(path: str):
    """Take an exclusive lock on the file ``path`` (made if missing), waiting
    for it; return the function that releases it. A POSIX record lock: the
    system releases it when its process dies, so a worker killed while it
    claims a slot leaves no stale lock behind; it works across machines on
    NFS. Without fcntl (Windows), Optuna's lock file, which is broken into
    after 30 seconds."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        from optuna.storages.journal import JournalFileOpenLock

        lock = JournalFileOpenLock(path)
        lock.acquire()
        return lock.release
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise

    def release():
        try:
            fcntl.lockf(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    return release


def _holds_slot(trial) -> bool:
    """Whether a trial holds one of the study's N slots: it claimed one, and
    is running or finished by itself (completed, pruned, or failed by its own
    hyper-parameters, diverging say, with its "error" recorded). A trial failed
    because its worker died or was stopped gives its slot back; its retry
    claims one like any trial."""
    state = _optuna().trial.TrialState
    if not trial.user_attrs.get("slot"):
        return False
    return (trial.state in (state.RUNNING, state.COMPLETE, state.PRUNED)
            or (trial.state == state.FAIL and "error" in trial.user_attrs))


def _claimed(study) -> int:
    """The number of trials holding a slot (see :func:`_holds_slot`)."""
    return sum(map(_holds_slot, study.get_trials(deepcopy=False)))


def _retry_dead(study, trial) -> None:
    """Optuna's callback for a trial found dead (its heartbeat stopped): queue
    its parameters again, once. A trial that had recorded its own failure
    before its worker died keeps its slot and is not retried."""
    if "error" not in trial.user_attrs:
        _requeue(study, trial, died=True)


def _requeue(study, trial, *, died: bool, max_deaths: int = 1) -> bool:
    """Queue a failed trial's parameters as a new waiting trial, which the
    next claim takes first. Only the parameters go over: the new trial has no
    slot until it claims one. A trial stopped by a signal is always queued
    again; one whose worker died at most ``max_deaths`` times (its parameters
    may be what kills workers)."""
    optuna = _optuna()
    deaths = trial.system_attrs.get("handprop_deaths", 0) + int(died)
    if deaths > max_deaths:
        return False
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING, params=trial.params,
        distributions=trial.distributions,
        # the sampler's own (a grid point's id), and Optuna's names: the
        # original trial, and every one retried since
        system_attrs={**trial.system_attrs, "failed_trial": history[0],
                      "retry_history": history, "handprop_deaths": deaths}))
    return True


# --------------------------------------------------------------------------
# Trials and workers
# --------------------------------------------------------------------------


@dataclass
class SweepConfig:
    dataset: str
    trials: int
    storage: str
    study: str
    out: str
    space: Space
    seed: int = 0
    data_dir: str | None = None
    heartbeat: int = 10
    grid: dict | None = None
    device: str = "cpu"
    label: list | None = None


def trial_settings(p: dict, seed: int, *, context: str | None = None):
    """The RunSettings of a trial's values ``p`` (see :func:`trial_values`),
    with the trial's seed."""
    from .train.settings import RunSettings

    _, run = trial_values({**p, "seed": seed}, context=context)
    return RunSettings(**run)


def space_output(space: Space):
    """The output/loss pair a space trains: fixed, since it decides how the
    data's targets are read."""
    from .core.outputs import output_pair

    dim = space.dims.get("output")
    if dim is None:
        return output_pair(parameters.PARAMETERS["output"].default)
    if dim.choices is not None and len({output_pair(c).class_indices
                                        for c in dim.choices}) > 1:
        raise SpaceError(f"{space.where.get('output', space.source)}: output must not mix "
                         f"class outputs with others: the targets are read once, for all "
                         f"trials")
    return output_pair(dim.value if dim.choices is None else dim.choices[0])


def load_data(config: SweepConfig):
    """The sweep's (train, valid, test), its targets read for the space's output."""
    from .data.datasets import load_dataset

    return load_dataset(config.dataset, data_dir=config.data_dir, label=config.label,
                        classes=space_output(config.space).class_indices)


def train_params(p: dict, data, seed: int, on_epoch=None, device: str = "cpu",
                 context: str | None = None):
    """Train a net with the trial values ``p`` on ``data`` = (train, valid,
    test), validating on valid, on ``device`` ("cpu", "cuda", "cuda:N");
    returns (net, history)."""
    from .core.network import MLP
    from .core.outputs import outputs_for
    from .train.settings import RunSettings
    from .train.training import fit

    (X, y), valid, _ = data
    net_values, run = trial_values({**p, "seed": seed}, context=context)
    m = outputs_for(net_values["output"], np.concatenate([y, valid[1]]))
    net = MLP(X.shape[1], net_values["hidden"], m, activation=net_values["activation"],
              output=net_values["output"], dtype=net_values["dtype"], seed=seed)
    history = fit(net, X, y, RunSettings(**run), valid=valid, progress=False,
                  on_epoch=on_epoch, device=device)
    return net, history


class SweepInterrupted(KeyboardInterrupt):
    """The sweep stopped on SIGINT or SIGTERM: each worker finished its
    minibatch, marked its trial interrupted, queued the trial's parameters
    again and exited. The study is intact; resuming it runs the interrupted
    trials first. ``signum``: the signal; ``exit_status``: 128 + signum."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class WorkersLost(RuntimeError):
    """Every worker died (killed, out of memory) before the study's budget was
    spent; the study is intact, and resuming it finishes the budget."""


def max_workers() -> int:
    """The most local workers a sweep starts: two per CPU core, at most 64.
    Each loads the data and trains on its own; more only share the cores."""
    return min(64, 2 * (os.cpu_count() or 1))


def _beats(url: str) -> bool:
    """Whether trials send heartbeats: with a database, not with a journal file."""
    return not url.startswith("journal:")


class _Heartbeat:
    """While active, a thread records a trial's heartbeat every ``interval``
    seconds (none when ``interval`` is None), as Optuna's own optimize loop
    does; handprop runs its own loop, to claim a slot and take a trial under
    one lock."""

    def __init__(self, storage, trial_id: int, interval: int | None) -> None:
        import threading

        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self) -> _Heartbeat:
        if self.interval:
            import threading

            self._thread = threading.Thread(target=self._beat, daemon=True,
                                            name="handprop-heartbeat")
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            # A beat that fails (a database busy for a moment) is not the
            # trial's failure: the next one tries again, and a database that
            # is gone fails the trial's own writes, loudly.
            with contextlib.suppress(Exception):
                self.storage.record_heartbeat(self.trial_id)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _claim(config: SweepConfig, study, storage, lock: BudgetLock, guard):
    """Under the study's lock: fail the trials found dead (their parameters
    are queued again), then, if a slot is free, take a trial (a queued one
    first) and give it the slot. Returns (trial, False); or (None, wait) when
    every slot is held, where wait says that some of them are held by running
    trials, which may yet die and free their slot."""
    optuna = _optuna()
    beats = _beats(config.storage)
    with lock:
        if guard.signum is not None:  # stopped while waiting for the lock
            return None, False
        if beats:
            with _stable():
                optuna.storages.fail_stale_trials(study)
        _fail_unclaimed(study)
        trials = study.get_trials(deepcopy=False)
        if sum(map(_holds_slot, trials)) >= config.trials:
            running = optuna.trial.TrialState.RUNNING
            return None, beats and any(t.state == running and _holds_slot(t) for t in trials)
        with warnings.catch_warnings():
            # Optuna warns that heartbeats are for its own optimize loop: this
            # loop sends them itself (_Heartbeat)
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = study.ask()
        if beats:  # at once: a worker killed from now on leaves a trial that goes stale
            storage.record_heartbeat(trial._trial_id)
        trial.set_user_attr("slot", True)
        return trial, False


def _fail_unclaimed(study) -> None:
    """Fail the running trials without a slot, under the study's lock: a
    trial is taken and given its slot under the lock, so these are left by a
    worker killed in between. They hold no slot, and may have no heartbeat to
    go stale by; a queued retry among them is queued again."""
    optuna = _optuna()
    state = optuna.trial.TrialState
    for t in study.get_trials(deepcopy=False, states=(state.RUNNING,)):
        if not t.user_attrs.get("slot"):
            frozen = study.tell(t.number, state=state.FAIL, skip_if_finished=True)
            if frozen.params:
                _requeue(study, frozen, died=True)


def _run_trial(config: SweepConfig, data, study, trial, storage, guard) -> None:
    """Train a claimed trial and record how it ended: completed, pruned,
    failed by its own hyper-parameters (diverged, or refused by handprop: its
    "error", and one line on stderr), or interrupted by a signal (failed, and
    its parameters queued again). Any other exception is a bug: the trial is
    failed and the exception raised."""
    import signal

    optuna = _optuna()
    from .train.checkpoint import Interrupted
    from .train.history import Diverged
    from .train.training import signal_name

    state = optuna.trial.TrialState
    classifies = space_output(config.space).classifies
    pruned = []

    def report(record):
        trial.report(record.valid_error if classifies else record.valid_loss, record.epoch)
        if trial.should_prune():
            pruned.append(record.epoch)
            return True
        return None

    def interrupted(signum: int) -> None:
        guard.signum = guard.signum or signum
        trial.set_user_attr("interrupted", signal_name(signum))
        frozen = study.tell(trial, state=state.FAIL, skip_if_finished=True)
        _requeue(study, frozen, died=False)

    beat = config.heartbeat if _beats(config.storage) else None
    with _Heartbeat(storage, trial._trial_id, beat):
        try:
            params = config.space.suggest(trial)
            trial.set_user_attr("params", params)
            if guard.signum is not None:  # the signal came while the slot was claimed
                interrupted(guard.signum)
                return
            try:
                _, history = train_params(params, data, config.seed + trial.number,
                                          on_epoch=report, device=config.device,
                                          context=_context(config.dataset))
            except Interrupted as exc:  # fit stopped on SIGINT or SIGTERM
                interrupted(exc.signum)
                return
            except (Diverged, InputError, MemoryError) as exc:
                # the trial's own hyper-parameters failed it: recorded, and it
                # keeps its slot (a space that always diverges ends)
                message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]
                trial.set_user_attr("error", message)
                study.tell(trial, state=state.FAIL, skip_if_finished=True)
                print(f"trial {trial.number} failed: {message}", file=sys.stderr, flush=True)
                return
            trial.set_user_attr("epochs_run", len(history))
            if pruned:
                study.tell(trial, state=state.PRUNED, skip_if_finished=True)
            else:
                scores = history.column("valid_error" if classifies else "valid_loss")
                study.tell(trial, float(np.nanmin(scores)), skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker found this trial silent for three heartbeats (a
            # machine too busy to send them) and failed it; its parameters are
            # queued again, and run as a new trial.
            print(f"trial {trial.number}: taken for dead by another worker (no heartbeat "
                  f"for {3 * config.heartbeat} s); it runs again as a new trial",
                  file=sys.stderr, flush=True)
        except BaseException as exc:
            # a bug (failed, not retried), or a second signal, which stops at
            # once (failed, and queued again)
            with contextlib.suppress(Exception):
                if isinstance(exc, KeyboardInterrupt):
                    interrupted(guard.signum or signal.SIGINT)
                elif isinstance(exc, SystemExit) and isinstance(exc.code, int) and (
                        exc.code > 128):  # SignalGuard's exit on a second SIGTERM
                    interrupted(exc.code - 128)
                else:
                    study.tell(trial, state=state.FAIL, skip_if_finished=True)
            raise


def _sleep(seconds: float, guard) -> None:
    """Sleep, waking early on a signal."""
    import time

    end = time.monotonic() + seconds
    while guard.signum is None and time.monotonic() < end:
        time.sleep(0.1)


def work(config: SweepConfig) -> int | None:
    """One worker: claim a slot and run a trial, again and again, until every
    slot of the study is held by a finished trial. Returns None then, or the
    signal (SIGINT, SIGTERM) that stopped it: a signal stops it after the
    current minibatch, with its trial marked interrupted and queued again (a
    second signal stops it at once)."""
    from .train.checkpoint import SignalGuard

    with SignalGuard() as guard:
        optuna = _optuna()
        data = load_data(config)
        storage = make_storage(config.storage, heartbeat=config.heartbeat)
        study = optuna.load_study(study_name=config.study, storage=storage,
                                  sampler=_sampler(config, seed=os.getpid()),
                                  pruner=_pruner(config))
        lock = BudgetLock(config.storage, config.study)
        while guard.signum is None:
            trial, wait = _claim(config, study, storage, lock, guard)
            if trial is not None:
                _run_trial(config, data, study, trial, storage, guard)
            elif wait:  # the last slots are held by running trials: one may die
                _sleep(config.heartbeat, guard)
            else:
                break
        return guard.signum


def _pruner(config: SweepConfig):
    """A grid is there to be seen whole: no pruning. Otherwise a trial whose
    validation error is worse than the median of the earlier trials at the
    same epoch stops (after 5 trials and 5 epochs). Optuna does not store the
    pruner with the study: every worker sets it."""
    optuna = _optuna()
    if config.grid is not None:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5)


def _sampler(config: SweepConfig, seed: int):
    optuna = _optuna()
    if config.grid is not None:
        class Grid(optuna.samplers.GridSampler):
            def after_trial(self, study, trial, state, values) -> None:
                # Optuna's stops the optimize loop once the grid is spent: a
                # sweep's loop is handprop's, and its budget ends it
                pass

        return Grid(config.grid, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _work_entry(config: SweepConfig, parent: int) -> None:  # a worker process's main
    if hasattr(os, "setsid"):
        # out of the terminal's process group: Ctrl-C reaches the parent
        # only, which stops every worker once, with SIGTERM
        os.setsid()
    _stop_with_parent(parent)
    try:
        signum = work(config)
    except InputError as exc:
        print(f"handprop: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    sys.exit(128 + signum if signum else 0)


def _stop_with_parent(parent: int) -> None:
    """A worker whose parent dies (SIGKILL, say), even before the worker
    started, stops as on SIGTERM, instead of training on as an orphan."""
    import signal
    import threading
    import time

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="handprop-parent-watch").start()


def _run_workers(config: SweepConfig, workers: int) -> int | None:
    """Start ``workers`` worker processes and wait for them. The first SIGINT
    or SIGTERM is passed on to every worker as SIGTERM (each finishes its
    minibatch, marks its trial interrupted and exits); a second one kills them
    at once (their trials are retried once they are found dead). Returns the
    signal that stopped the sweep, or None when the study is done."""
    import multiprocessing
    import signal
    import threading

    from .train.training import signal_name

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_work_entry, args=(config, os.getpid()),
                         name=f"handprop-sweep-{i}") for i in range(workers)]
    stop: list[int] = []
    told: set[int] = set()

    def tell_workers():
        for p in procs:
            if p.pid is not None and p.pid not in told:
                told.add(p.pid)
                with contextlib.suppress(ProcessLookupError):  # not reaped: no reuse
                    os.kill(p.pid, signal.SIGTERM)

    def on_signal(signum, frame):
        if stop:
            for p in procs:
                if p.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p.pid, signal.SIGKILL)
            raise SweepInterrupted(
                f"{signal_name(signum)} again: the workers were killed at once; their trials "
                f"are retried once found dead ({3 * config.heartbeat} s without a heartbeat); "
                f"the study is intact: continue it with --resume", signum)
        stop.append(signum)
        tell_workers()

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = ({s: signal.signal(s, on_signal) for s in handled}
                if threading.current_thread() is threading.main_thread() else {})
    try:
        for p in procs:
            if stop:
                break
            p.start()
            if stop:  # the signal came while this one started
                tell_workers()
        for p in procs:
            if p.pid is not None:
                p.join()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stop:
        return stop[0]
    codes = [p.exitcode for p in procs]
    if 1 in codes:
        raise RuntimeError(f"{codes.count(1)} of {workers} workers stopped on a bug in handprop "
                           f"(the traceback is above); the study is intact: continue it with "
                           f"--resume")

    def how(code: int) -> str:
        if code < 0:
            return f"killed by {signal_name(-code)}"
        if code > 128:
            return f"stopped by {signal_name(code - 128)}"
        return f"exited with status {code}"

    lost = [f"worker {i} {how(c)}" for i, c in enumerate(codes) if c != 0]
    if lost and 0 not in codes:
        raise WorkersLost(f"every worker stopped before the study was done ({', '.join(lost)}); "
                          f"the study is intact: continue it with --resume")
    if lost:
        print(f"handprop: warning: {', '.join(lost)}; the other workers finished the study",
              file=sys.stderr, flush=True)
    return None


def check_storage(url: str) -> None:
    """Refuse, in one line, a storage that cannot be opened: an unknown kind,
    a SQLite or journal file in a folder that does not exist or that cannot
    be written, a path that is a folder, a file that is not a database or a
    journal, a database server that does not answer, a database that Optuna
    cannot read."""
    BudgetLock(url, "check")  # an unknown kind of storage
    for prefix in ("sqlite:///", "journal:"):
        if url.startswith(prefix):
            path = Path(url[len(prefix):])
            if not str(path) or path.is_dir():
                raise InputError(f"storage {url}: expected a file, got "
                                 f"{'a folder' if str(path) else 'no path'}")
            if not path.parent.is_dir():
                raise InputError(f"storage {url}: folder {path.parent} does not exist")
            if not os.access(path.parent, os.W_OK):
                raise InputError(f"storage {url}: folder {path.parent} is not writable")
            if not path.exists():
                return  # made by the sweep
            if not path.is_file():
                raise InputError(f"storage {url}: not a regular file")
            if prefix == "sqlite:///":
                _check_sqlite_file(url, path)
            else:
                _check_journal_file(url, path)
            break
    else:
        try:
            import sqlalchemy

            engine = sqlalchemy.create_engine(database_url(url),
                                              connect_args={"connect_timeout": 10})
            with engine.connect():
                pass
            engine.dispose()
        except ImportError:
            raise
        except Exception as exc:  # SQLAlchemy's errors, or the driver's
            raise InputError(f"storage {url}: cannot connect ({_first_line(exc)})"[:400]
                             ) from None
    try:  # an existing file, or a server: Optuna reads it (its schema, its journal)
        make_storage(url)
    except ImportError:
        raise
    except Exception as exc:  # SQLAlchemy's, Optuna's (an old schema), JSON's
        raise InputError(f"storage {url}: Optuna cannot open it ({type(exc).__name__}: "
                         f"{_first_line(exc)})"[:400]) from None


def _check_sqlite_file(url: str, path: Path) -> None:
    import sqlite3

    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise InputError(f"storage {url}: not a SQLite database ({exc})"[:400]) from None


def _check_journal_file(url: str, path: Path) -> None:
    """Every whole line of an Optuna journal file is a JSON record (Optuna
    passes over a bad last line, a write in progress, until a record follows)."""
    import json

    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                break  # a record being written
            try:
                json.loads(line)
            except ValueError:
                raise InputError(f"storage {url}: line {number} is not a record of an Optuna "
                                 f"journal file") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run_sweep(config: SweepConfig, *, workers: int = 1, resume: bool = False) -> None:
    """Create (or, with ``resume``, continue) the study and run ``workers``
    worker processes (in this process when 1) until every one of its
    ``config.trials`` slots is held by a finished trial.

    Raises SweepInterrupted on SIGINT or SIGTERM, WorkersLost when every
    worker died; the study is intact either way, and ``resume`` continues it.
    """
    optuna = _optuna()
    if isinstance(workers, bool) or not isinstance(workers, int) or not (
            1 <= workers <= max_workers()):
        raise InputError(f"workers must be 1 to {max_workers()} here (two per CPU core, at "
                         f"most 64), got {workers!r}"[:300])
    BudgetLock(config.storage, config.study)  # refuses a storage it cannot lock
    storage = make_storage(config.storage, heartbeat=config.heartbeat)
    names = [s.study_name for s in optuna.study.get_all_study_summaries(storage)]
    if config.study in names and not resume:
        raise InputError(f"study {config.study!r} already exists in {config.storage}; "
                         f"continue it with --resume, or name a new one with --study")
    if resume and config.study not in names:
        raise InputError(f"nothing to resume: no study {config.study!r} in {config.storage}")
    if not resume:
        optuna.create_study(study_name=config.study, storage=storage, direction="minimize",
                            pruner=_pruner(config))
    signum = work(config) if workers == 1 else _run_workers(config, workers)
    if signum is not None:
        raise SweepInterrupted(_stopped(config, signum), signum)


def _stopped(config: SweepConfig, signum: int) -> str:
    """What a signal left: the trials finished, and those queued to run again."""
    from .train.training import signal_name

    optuna = _optuna()
    state = optuna.trial.TrialState
    study = optuna.load_study(study_name=config.study,
                              storage=make_storage(config.storage, heartbeat=config.heartbeat))
    trials = study.get_trials(deepcopy=False)
    done = sum(_holds_slot(t) and t.state != state.RUNNING for t in trials)
    queued = sum(t.state == state.WAITING for t in trials)
    again = (f"; {queued} interrupted trial{'s' * (queued != 1)} will run first"
             if queued else "")
    return (f"{signal_name(signum)}: the sweep stopped with {done} of {config.trials} trials "
            f"done{again}; the study is intact: continue it with --resume")


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


def summarize(config: SweepConfig, *, top: int = 10, out=sys.stdout) -> dict:
    """Print the best trials, draw Optuna's plots, retrain the best trial on
    train, save it, and report its test error (the only use of the test set)."""
    optuna = _optuna()
    from .plotting import save_figure
    from .train.training import evaluate

    pair = space_output(config.space)
    score = "valid error" if pair.classifies else "valid loss"

    def shown(v: float) -> str:
        return f"{100 * v:.2f}%" if pair.classifies else f"{v:.4g}"

    storage = make_storage(config.storage, heartbeat=config.heartbeat)
    study = optuna.load_study(study_name=config.study, storage=storage)
    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == state.COMPLETE]
    counts = dict.fromkeys(("complete", "pruned", "failed", "interrupted (run again)",
                            "lost (their worker died)", "running", "waiting",
                            "not run (over the budget)"), 0)
    for t in trials:
        counts[_outcome(t)] += 1
    print(f"study {config.study!r} in {config.storage}: " + ", ".join(
        f"{n} {k}" for k, n in counts.items() if n), file=out)
    if not complete:
        failed = [t for t in trials if t.state == state.FAIL and "error" in t.user_attrs]
        if failed:
            raise InputError(f"no trial completed: {len(failed)} failed by their "
                             f"hyper-parameters (trial {failed[0].number}: "
                             f"{failed[0].user_attrs['error']})"[:500])
        raise InputError("no trial has completed yet: nothing to summarize")
    ranked = sorted(complete, key=lambda t: t.value)
    names = sorted({k for t in complete for k in t.params if not k.endswith("_is_zero")})
    print(file=out)
    print(f"| trial | {score} | epochs | " + " | ".join(names) + " |", file=out)
    print("|---:|---:|---:|" + "---|" * len(names), file=out)
    for t in ranked[:top]:
        values = [_fmt(t.user_attrs.get("params", {}).get(k, t.params.get(k))) for k in names]
        print(f"| {t.number} | {shown(t.value)} | {t.user_attrs.get('epochs_run', '')} | "
              + " | ".join(values) + " |", file=out)
    folder = Path(config.out)
    figures = []
    import matplotlib

    matplotlib.use("Agg")  # Optuna draws with pyplot; never open a window
    from optuna.visualization import matplotlib as ovm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's plots are "experimental" too
        for name, plot in (("optimization_history", ovm.plot_optimization_history),
                           ("param_importances", ovm.plot_param_importances)):
            try:
                ax = plot(study)
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:
                print(f"({name} not drawn: {exc})", file=out)
                continue
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).get_figure()
            save_figure(fig, folder / f"{name}.png")
            figures.append(str(folder / f"{name}.png"))
    best = ranked[0]
    params = best.user_attrs["params"]
    data = load_data(config)
    net, history = train_params(params, data, seed=config.seed + best.number,
                                device=config.device, context=_context(config.dataset))
    test_measure, test_loss = evaluate(net, *data[2])
    net.save(folder / "best_model.npz", history=history.to_dicts(), settings=params,
             study=config.study, trial=best.number, dataset=config.dataset,
             label=config.label)
    print(file=out)
    again = float(np.nanmin(history.column("valid_error" if pair.classifies else
                                           "valid_loss")))
    print(f"best trial {best.number}: {score} {shown(best.value)}; retrained on train "
          f"with its seed ({score} {shown(again)} again) and saved to "
          f"{folder / 'best_model.npz'}", file=out)
    test = (f"test error of the best trial: {100 * test_measure:.2f}%" if pair.classifies
            else f"test R2 of the best trial: {test_measure:.4f}")
    print(f"{test} (average loss {test_loss:.4f}); the test set was used for this number "
          f"only", file=out)
    if figures:
        print(f"wrote {', '.join(figures)}", file=out)
    return {"best": best, "worst": ranked[-1], "data": data, "test_error": test_measure}


def _outcome(trial) -> str:
    """How a trial ended, in the words of the summary."""
    state = _optuna().trial.TrialState
    if trial.user_attrs.get("over_budget"):  # handprop 0.2's studies
        return "not run (over the budget)"
    if trial.state == state.FAIL:
        if "error" in trial.user_attrs:
            return "failed"
        if "interrupted" in trial.user_attrs:
            return "interrupted (run again)"
        return "lost (their worker died)"
    return trial.state.name.lower()


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
