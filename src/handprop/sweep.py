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
        if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):  # Optuna >= 4.9
            retry = {"heartbeat_stale_trial_callback":
                     optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)}
        else:
            retry = {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(
                max_retry=1)}
        return _while_schema_is_made(lambda: optuna.storages.RDBStorage(
            database_url(url), engine_kwargs=kwargs, heartbeat_interval=heartbeat,
            grace_period=3 * heartbeat, **retry))


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
            from optuna.storages.journal import JournalFileOpenLock

            path = (self.url[len("journal:"):] if self.url.startswith("journal:")
                    else self.url[len("sqlite:///"):])
            lock = JournalFileOpenLock(f"{path}.{self.study_name}.budget-lock")
            lock.acquire()
            release = lock.release
        self._release = release
        return self

    def __exit__(self, *exc):
        self._release()


def _claimed(study, exclude: int | None = None) -> int:
    """Trials holding a slot: claimed, and not failed by a dead worker (a
    trial that failed by its own hyper-parameters, diverging say, holds its
    slot). ``exclude`` is a trial not to count: the one claiming."""
    optuna = _optuna()
    state = optuna.trial.TrialState
    held = (state.RUNNING, state.COMPLETE, state.PRUNED)
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.number != exclude and t.user_attrs.get("slot")
               and (t.state in held or (t.state == state.FAIL and "error" in t.user_attrs)))


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


def _objective(config: SweepConfig, data, lock: BudgetLock):
    optuna = _optuna()
    from .train.history import Diverged

    classifies = space_output(config.space).classifies
    context = _context(config.dataset)

    def objective(trial):
        params = config.space.suggest(trial)
        with lock:
            if _claimed(trial.study, exclude=trial.number) >= config.trials:
                # Two workers asked for a trial at once, and the last slot went to the
                # other: this one ends unrun, marked, and counts for nothing.
                trial.study.stop()
                trial.set_user_attr("over_budget", True)
                raise optuna.TrialPruned("not run: the study's trials were all taken")
            # a retried trial (its worker died) takes the slot of the one it retries
            trial.set_user_attr("slot", True)
        trial.set_user_attr("params", params)
        pruned = []

        def report(record):
            trial.report(record.valid_error if classifies else record.valid_loss,
                         record.epoch)
            if trial.should_prune():
                pruned.append(record.epoch)
                return True
            return None

        try:
            _, history = train_params(params, data, config.seed + trial.number,
                                      on_epoch=report, device=config.device, context=context)
        except (Diverged, InputError) as exc:
            # the trial's own hyper-parameters failed it: recorded, and counted
            message = str(exc).splitlines()[0][:500]
            trial.set_user_attr("error", message)
            print(f"trial {trial.number} failed: {message}", file=sys.stderr, flush=True)
            return math.nan  # Optuna records the trial as failed; the sweep goes on
        trial.set_user_attr("epochs_run", len(history))
        if pruned:
            raise optuna.TrialPruned(f"pruned after epoch {pruned[0]}")
        scores = history.column("valid_error" if classifies else "valid_loss")
        return float(np.nanmin(scores))

    return objective


def _stop_when_full(trials: int):
    def callback(study, trial):
        if _claimed(study) >= trials:
            study.stop()
    return callback


def work(config: SweepConfig) -> None:
    """One worker: run trials until the study's N slots are all taken."""
    optuna = _optuna()
    data = load_data(config)
    storage = make_storage(config.storage, heartbeat=config.heartbeat)
    study = optuna.load_study(study_name=config.study, storage=storage,
                              sampler=_sampler(config, seed=os.getpid()), pruner=_pruner(config))
    if _claimed(study) >= config.trials:
        return
    lock = BudgetLock(config.storage, config.study)
    study.optimize(_objective(config, data, lock), callbacks=[_stop_when_full(config.trials)])


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
        return optuna.samplers.GridSampler(config.grid, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _work_entry(config: SweepConfig) -> None:  # a subprocess's main
    work(config)


def check_storage(url: str) -> None:
    """Refuse, in one line, a storage that cannot be opened: an unknown kind,
    a SQLite or journal file in a folder that does not exist, a database
    server that does not answer."""
    BudgetLock(url, "check")  # an unknown kind of storage
    for prefix in ("sqlite:///", "journal:"):
        if url.startswith(prefix):
            folder = Path(url[len(prefix):]).parent
            if not folder.is_dir():
                raise InputError(f"storage {url}: folder {folder} does not exist")
            if not os.access(folder, os.W_OK):
                raise InputError(f"storage {url}: folder {folder} is not writable")
            return
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(database_url(url), connect_args={"connect_timeout": 10})
        with engine.connect():
            pass
        engine.dispose()
    except ImportError:
        raise
    except Exception as exc:  # SQLAlchemy's errors, or the driver's
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"storage {url}: cannot connect ({first})"[:400]) from None


def run_sweep(config: SweepConfig, *, workers: int = 1, resume: bool = False) -> None:
    """Create (or, with ``resume``, continue) the study and run ``workers``
    local worker processes until it holds ``config.trials`` finished trials."""
    optuna = _optuna()
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
    else:
        # trials whose worker died, silent for longer than the grace period,
        # are failed now (and retried), so that their slots are free again
        with _stable():
            optuna.storages.fail_stale_trials(optuna.load_study(study_name=config.study,
                                                                storage=storage))
    if workers == 1:
        work(config)
        return
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_work_entry, args=(config,), name=f"handprop-sweep-{i}")
             for i in range(workers)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        raise
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise RuntimeError(f"{len(failed)} of {workers} workers failed (exit codes "
                           f"{failed}); the study is intact: continue it with --resume")


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
    counts = {s.name.lower(): sum(t.state == s and not t.user_attrs.get("over_budget")
                                  for t in trials) for s in state}
    counts["not run (over the budget)"] = sum(bool(t.user_attrs.get("over_budget"))
                                              for t in trials)
    print(f"study {config.study!r} in {config.storage}: " + ", ".join(
        f"{n} {k}" for k, n in counts.items() if n), file=out)
    if not complete:
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


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
