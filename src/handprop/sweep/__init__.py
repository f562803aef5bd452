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

This package needs Optuna (``pip install 'handprop[sweep]'``):
:mod:`~handprop.sweep.space` (the space), :mod:`~handprop.sweep.storage`
(studies, the budget's lock and slots), :mod:`~handprop.sweep.workers` (trials,
workers, signals) and :mod:`~handprop.sweep.summary` (results).
"""

from .space import (
    DEFAULTS,
    Dimension,
    Space,
    SpaceError,
    default_space,
    moons_capacity_space,
    trial_values,
    vocabulary,
)
from .storage import BudgetLock, advisory_key, check_storage, database_url, make_storage
from .summary import summarize
from .workers import (
    SweepConfig,
    SweepInterrupted,
    WorkersLost,
    load_data,
    max_workers,
    run_sweep,
    space_output,
    train_params,
    trial_settings,
    work,
)

__all__ = ["Space", "SpaceError", "Dimension", "DEFAULTS", "vocabulary", "default_space",
           "moons_capacity_space", "trial_values", "trial_settings", "SweepConfig",
           "run_sweep", "work", "SweepInterrupted", "WorkersLost", "summarize",
           "train_params", "load_data", "space_output", "max_workers", "BudgetLock",
           "advisory_key", "check_storage", "database_url", "make_storage"]
