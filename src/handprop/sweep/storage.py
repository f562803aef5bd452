"""Where a study lives (SQLite, PostgreSQL, an Optuna journal), the lock that
shares out the trial budget, and the slots the trials hold."""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from pathlib import Path

from ..errors import InputError

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
