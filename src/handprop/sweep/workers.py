"""The trials and the workers: a worker claims a slot under the lock, trains
its trial with a heartbeat, records how it ended; the parent starts the
workers and stops them all on a signal."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..train import parameters
from .space import Space, SpaceError, _context, trial_values
from .storage import BudgetLock, _holds_slot, _optuna, _requeue, _stable, make_storage

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

    def __post_init__(self) -> None:
        from ..data.datasets import VALID_SEEN

        if self.dataset in VALID_SEEN:  # before any study is made
            raise InputError(f"a sweep chooses on the validation set, but {self.dataset} "
                             f"trains on its validation images: sweep on mnist, then train "
                             f"the chosen settings with handprop train --dataset "
                             f"{self.dataset}")


def trial_settings(p: dict, seed: int, *, context: str | None = None):
    """The RunSettings of a trial's values ``p`` (see :func:`trial_values`),
    with the trial's seed."""
    from ..train.settings import RunSettings

    _, run = trial_values({**p, "seed": seed}, context=context)
    return RunSettings(**run)


def space_output(space: Space):
    """The output/loss pair a space trains: fixed, since it decides how the
    data's targets are read."""
    from ..core.outputs import output_pair

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
    from ..data.datasets import load_dataset

    return load_dataset(config.dataset, data_dir=config.data_dir, label=config.label,
                        classes=space_output(config.space).class_indices)


def train_params(p: dict, data, seed: int, on_epoch=None, device: str = "cpu",
                 context: str | None = None):
    """Train a net with the trial values ``p`` on ``data`` = (train, valid,
    test), validating on valid, on ``device`` ("cpu", "cuda", "cuda:N");
    returns (net, history)."""
    from ..core.network import MLP
    from ..core.outputs import outputs_for
    from ..train.settings import RunSettings
    from ..train.training import fit

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
    from ..train.checkpoint import Interrupted
    from ..train.history import Diverged
    from ..train.training import signal_name

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
    from ..train.checkpoint import SignalGuard

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

    from ..train.training import signal_name

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
    from ..train.training import signal_name

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
