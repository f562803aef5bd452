"""handprop sweep: shared studies, exact trial budgets, killed workers, space files."""

import contextlib
import datetime
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from handprop.sweep import Space, SpaceError

SPACE = """\
# a quick space on two moons
l2 = { low = 1e-5, high = 1e-2, scale = "log", zero = true }
epochs = EPOCHS
batch_size = { choices = [20, 50] }

[lr]
low = 0.01
high = 0.3
scale = "log"

[hidden]
low = 4
high = 32
scale = "log"
"""


def space_file(tmp_path, epochs=15):
    path = tmp_path / "space.toml"
    path.write_text(SPACE.replace("EPOCHS", str(epochs)))
    return path


def sweep(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "handprop", "sweep", *args],
                          capture_output=True, text=True, timeout=600, **kwargs)


def load(storage, name):
    return optuna.load_study(study_name=name, storage=storage)


def assert_exactly(study, n):
    """n trials hold a slot and finished (completed, pruned, or failed by their
    own hyper-parameters); trial numbers are unique; no trial is left running
    or waiting."""
    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    held = [t for t in trials if t.user_attrs.get("slot")]
    finished = [t for t in held if t.state in (state.COMPLETE, state.PRUNED)
                or (t.state == state.FAIL and "error" in t.user_attrs)]
    assert len(finished) == n, [(t.number, t.state, t.user_attrs) for t in trials]
    for t in trials:  # the others: killed or stopped (failed), or not run (handprop 0.2)
        if t not in finished:
            assert t.state == state.FAIL or t.user_attrs.get("over_budget"), (t.number, t.state)
            assert "error" not in t.user_attrs
    return finished


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study(tmp_path):
    out = tmp_path / "run"
    r = sweep("--space", str(space_file(tmp_path)), "--trials", "8", "--workers", "2",
              "--out", str(out))
    assert r.returncode == 0, r.stderr
    finished = assert_exactly(load(f"sqlite:///{out / 'study.db'}", "handprop-moons"), 8)
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 8
    assert "| trial | valid error |" in r.stdout
    assert "test error of the best trial" in r.stdout
    for name in ("best_model.npz", "optimization_history.png", "param_importances.png"):
        assert (out / name).exists(), name


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study(tmp_path, postgres_url):
    name = f"pg-{os.getpid()}-{time.time_ns()}"
    r = sweep("--space", str(space_file(tmp_path)), "--trials", "6", "--workers", "2",
              "--storage", postgres_url, "--study", name, "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert_exactly(load(postgres_url, name), 6)
    # a third worker, started later on the same study (as on another machine), finds
    # the budget spent and adds nothing
    r = sweep("--space", str(space_file(tmp_path)), "--trials", "6", "--storage", postgres_url,
              "--study", name, "--out", str(tmp_path / "run2"), "--resume")
    assert r.returncode == 0, r.stderr
    assert_exactly(load(postgres_url, name), 6)


def _open_storage(url, barrier, results):
    from handprop.sweep import make_storage

    barrier.wait()  # all at once, on a database none has opened yet
    try:
        make_storage(url)
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the test
        results.put(f"{type(exc).__name__}: {exc}")


def _open_at_once(url, n=6):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_open_storage, args=(url, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    return outcomes


def test_workers_opening_a_new_sqlite_database_at_once(tmp_path):
    # Without the retry, one of six workers failed ("table ... already exists",
    # or a duplicate alembic version row) in each of five tries.
    for attempt in range(3):
        url = f"sqlite:///{tmp_path / f'study{attempt}.db'}"
        assert _open_at_once(url) == ["ok"] * 6


def test_workers_opening_a_new_postgresql_database_at_once(postgres_url):
    import psycopg

    name = f"race_{os.getpid()}_{time.time_ns()}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = postgres_url.rsplit("/", 1)[0] + "/" + name
    assert _open_at_once(url) == ["ok"] * 6


@pytest.mark.slow
def test_a_killed_worker_leaves_a_usable_study(tmp_path):
    out = tmp_path / "run"
    storage = f"sqlite:///{out / 'study.db'}"
    # one slot, held by the trial killed: the resumed sweep finds it running
    # (three heartbeats, 6 s, are longer than it takes to start), and waits
    args = ["--space", str(space_file(tmp_path, epochs=400)), "--trials", "1", "--out",
            str(out), "--heartbeat", "2"]
    p = subprocess.Popen([sys.executable, "-m", "handprop", "sweep", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def running():
        if not (out / "study.db").exists():
            return False
        try:
            trials = load(storage, "handprop-moons").get_trials(deepcopy=False)
        except Exception:  # noqa: BLE001 - the study may not exist yet
            return False
        return any(t.state == optuna.trial.TrialState.RUNNING and t.user_attrs.get("slot")
                   for t in trials)

    deadline = time.monotonic() + 120
    while not running():
        assert time.monotonic() < deadline and p.poll() is None, p.stderr and p.stderr.read()
        time.sleep(0.1)
    time.sleep(0.5)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    killed = [t for t in load(storage, "handprop-moons").get_trials()
              if t.state == optuna.trial.TrialState.RUNNING]
    assert len(killed) == 1
    # at once: the resumed sweep waits for the dead trial to miss three
    # heartbeats (handprop 0.2 needed them missed first, or ended one trial short)
    r = sweep(*args, "--resume")
    assert r.returncode == 0, r.stderr
    study = load(storage, "handprop-moons")
    finished = assert_exactly(study, 1)
    dead = study.trials[killed[0].number]
    assert dead.state == optuna.trial.TrialState.FAIL  # not counted as complete
    retried = [t for t in finished if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retried) == 1 and retried[0].params == dead.params  # retried once


def test_an_existing_study_needs_resume(tmp_path):
    out = tmp_path / "run"
    r = sweep("--space", str(space_file(tmp_path, epochs=2)), "--trials", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    r = sweep("--space", str(space_file(tmp_path, epochs=2)), "--trials", "1", "--out", str(out))
    assert r.returncode == 2 and "already exists" in r.stderr and "--resume" in r.stderr
    r = sweep("--trials", "1", "--out", str(tmp_path / "other"), "--resume")
    assert r.returncode == 2 and "nothing to resume" in r.stderr


@pytest.mark.slow
def test_moons_capacity_preset(tmp_path):
    out = tmp_path / "cap"
    r = sweep("--preset", "moons-capacity", "--trials", "4", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "regions_best_worst.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    study = load(f"sqlite:///{out / 'study.db'}", "handprop-moons-capacity")
    for t in study.trials:
        assert set(t.params) == {"hidden", "l2", "patience"}


def test_without_optuna_it_says_how_to_install(tmp_path):
    fake = tmp_path / "no-optuna" / "optuna"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named optuna')\n")
    env = {**os.environ, "PYTHONPATH": str(fake.parent)}
    r = sweep("--trials", "1", "--out", str(tmp_path / "run"), env=env)
    assert r.returncode == 2
    assert r.stderr.strip() == ("handprop: error: handprop sweep needs Optuna: "
                                "pip install 'handprop[sweep]'")


# -- the space file ------------------------------------------------------------


def test_a_space_file_is_read(tmp_path):
    space = Space.from_toml(space_file(tmp_path))
    assert set(space.dims) == {"l2", "epochs", "batch_size", "lr", "hidden"}
    assert space.dims["lr"].scale == "log" and space.dims["l2"].zero
    assert space.dims["epochs"].value == 15
    assert space.dims["batch_size"].choices == (20, 50)


@pytest.mark.parametrize("text,message", [
    ("lr = 0.1\ncolour = 3\n", r"space.toml, line 2: unknown parameter 'colour'"),
    ("[lr]\nlow = 0.5\nhigh = 0.1\n", r"line 2: lr has an inverted range: low 0.5 > high 0.1"),
    ("[lr]\nlow = 0.01\nhigh = 0.1\nscale = \"cubic\"\n",
     r"line 4: lr.scale must be 'linear' or 'log', got 'cubic'"),
    ("[l2]\nlow = 0\nhigh = 0.1\nscale = \"log\"\n", r"line 2: l2 is on a log scale"),
    ("[hidden]\nlow = 4.5\nhigh = 10\n", r"line 1: hidden takes integers"),
    ("[lr]\nlow = 0.1\nhigh = 0.2\nstep = 0.01\n", r"line 4: lr has an unknown key 'step'"),
    ("[lr]\nvalue = 0.1\nchoices = [0.1]\n", "lr needs exactly one of value, choices"),
    ("epochs = \"ten\"\n", r"line 1: epochs = .ten.: epochs must be an integer >= 1"),
    # the bad value's own line, not the line of the first parameter checked
    ("epochs = 3\nlr = -1\n", r"line 2: lr = -1: lr must be a number > 0"),
    ("epochs = 3\nhidden = { choices = [\"8\", \"0\"] }\n", r"line 2: hidden = .0.:"),
    ("lr = [\n", "not valid TOML"),
])
def test_bad_space_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "space.toml"
    path.write_text(text)
    with pytest.raises(SpaceError, match=message):
        Space.from_toml(path)
    r = sweep("--space", str(path), "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and r.stderr.startswith("handprop: error: ")
    assert len(r.stderr.strip().splitlines()) == 1


def test_studies_sharing_a_prefix_do_not_share_the_budget_lock(tmp_path, postgres_url):
    # handprop 0.1 keyed the PostgreSQL advisory lock on the first 8 bytes of
    # the study name, so "handprop-a" and "handprop-b" waited on each other
    import threading

    from handprop.sweep import BudgetLock, advisory_key

    a, b = "handprop-moons-first", "handprop-moons-second"
    assert advisory_key(a) != advisory_key(b)
    taken = threading.Event()

    def take_b():
        with BudgetLock(postgres_url, b):
            taken.set()

    with BudgetLock(postgres_url, a):
        thread = threading.Thread(target=take_b, daemon=True)
        thread.start()
        assert taken.wait(10), "the second study waited on the first one's lock"
    thread.join(10)
    # and two such studies run at once, each keeping its exact budget
    procs = [subprocess.Popen([sys.executable, "-m", "handprop", "sweep", "--space",
                               str(space_file(tmp_path, epochs=5)), "--trials", "3",
                               "--storage", postgres_url, "--study", name, "--out",
                               str(tmp_path / name)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for name in (a, b)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    for name in (a, b):
        assert_exactly(load(postgres_url, name), 3)


DEEP = """\
epochs = 8
batch_size = 20
hidden = { choices = ["8", "8,8", "16,8,4"] }
nesterov = { choices = [false, true] }
l2_W3 = { low = 1e-5, high = 1e-3, scale = "log", zero = true }
beta1 = 0.85
"""


def test_a_sweep_searches_depth_per_matrix_lambdas_and_nesterov(tmp_path):
    # the space's vocabulary is the parameter table's: layer lists, any
    # matrix's lambda, nesterov, an optimizer's own parameters
    path = tmp_path / "deep.toml"
    path.write_text(DEEP)
    out = tmp_path / "run"
    r = sweep("--space", str(path), "--trials", "5", "--out", str(out))
    assert r.returncode == 0, r.stderr
    trials = load(f"sqlite:///{out / 'study.db'}", "handprop-moons").get_trials()
    assert {t.params["hidden"] for t in trials} <= {"8", "8,8", "16,8,4"}
    assert "| trial | valid error | epochs | hidden |" in r.stdout.replace(
        " batch_size |", "").replace(" l2_W3 |", "").replace(" nesterov |", "")


def test_depth_and_width_as_two_ranges():
    from handprop.sweep import trial_values

    space = Space.from_toml  # the names are checked by the table
    net, _ = trial_values({"depth": 3, "width": 64})
    assert net["hidden"] == (64, 64, 64) and space


@pytest.mark.parametrize("text,message", [
    ("lr = -1", r"lr = -1: lr must be a number > 0, got -1"),
    ("hidden = 0", "hidden = 0: hidden must be an integer >= 1"),
    ("momentum = 1.5", r"momentum must be a number in \[0, 1\)"),
    ('activation = "nope"', "activation must be one of"),
    ('hidden = { choices = ["8", "8,x"] }', "hidden must be one or more positive integers"),
    ("depth = 2", "depth and width go together"),
    ("a = [[[[" * 30, "nested more than 64 deep"),
    ("lr = 1" + "0" * 5000, "more than 100 digits"),
])
def test_a_bad_space_is_refused_before_any_study_is_made(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    out = tmp_path / "run"
    r = sweep("--space", str(path), "--out", str(out))
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    import re

    assert re.search(message, r.stderr), r.stderr
    assert not (out / "study.db").exists()  # no study was made: a rerun is not "exists"


# -- trials that fail, signals, kills, and bad options ---------------------------------


def test_a_diverging_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    # handprop 0.2 ended the sweep at the first diverging trial as an internal
    # error, with 105 lines of Optuna's tracebacks (2 workers)
    path = tmp_path / "diverge.toml"
    path.write_text("lr = 1e30\nepochs = 5\nhidden = 4\n")
    out = tmp_path / "run"
    r = sweep("--space", str(path), "--trials", "3", "--workers", "2", "--out", str(out))
    lines = r.stderr.splitlines()
    # one line per trial, and the sweep's own: no traceback, no Optuna warning
    assert r.returncode == 2 and len(lines) == 4, r.stderr
    assert sorted(lines[:3]) == [f"trial {n} failed: training diverged: the loss became nan at "
                                 f"epoch 1, minibatch 2 of 6 (lr = 1e+30); the parameters are "
                                 f"restored to the end of epoch 0. Try a smaller learning rate."
                                 for n in range(3)]
    assert lines[3].startswith("handprop: error: no trial completed: 3 failed by their "
                               "hyper-parameters (trial 0: training diverged")
    study = load(f"sqlite:///{out / 'study.db'}", "handprop-moons")
    # each failed trial holds its slot: a space that always diverges ends
    failed = assert_exactly(study, 3)
    assert all(t.state == optuna.trial.TrialState.FAIL for t in failed)
    assert all(t.user_attrs["error"].startswith("training diverged") for t in failed)


def _config(tmp_path, dims, trials, grid=None, **kw):
    from handprop.sweep import Dimension, SweepConfig

    space = Space({n: Dimension(n, **d) for n, d in dims.items()}, source="test")
    return SweepConfig(dataset="moons", trials=trials, storage=f"sqlite:///{tmp_path / 's.db'}",
                       study="s", out=str(tmp_path), space=space, grid=grid, **kw)


def test_a_sweep_on_mnist_full_is_refused_before_its_study_exists(tmp_path):
    from handprop.errors import InputError
    from handprop.sweep import Dimension, SweepConfig

    space = Space({"lr": Dimension("lr", low=0.01, high=0.1)}, source="test")
    with pytest.raises(InputError, match="mnist-full trains on its validation images"):
        SweepConfig(dataset="mnist-full", trials=1, storage=f"sqlite:///{tmp_path / 's.db'}",
                    study="s", out=str(tmp_path), space=space)
    assert not any(tmp_path.iterdir())


def test_the_other_trials_complete_beside_a_diverging_one(tmp_path):
    from handprop.sweep import run_sweep, summarize

    # a grid, so that one trial diverges and the other does not, surely
    config = _config(tmp_path, {"lr": {"choices": (1e30, 0.05)}, "epochs": {"value": 5},
                                "hidden": {"value": 4}}, trials=2, grid={"lr": [1e30, 0.05]})
    run_sweep(config)
    study = load(config.storage, "s")
    done = {t.params["lr"]: t for t in assert_exactly(study, 2)}
    assert done[1e30].state == optuna.trial.TrialState.FAIL and "error" in done[1e30].user_attrs
    assert done[0.05].state == optuna.trial.TrialState.COMPLETE
    import io

    text = io.StringIO()
    summarize(config, out=text)
    assert "1 complete, 1 failed" in text.getvalue()


def test_a_bug_in_a_trial_still_surfaces_as_one(tmp_path, monkeypatch):
    import handprop.sweep as sweep_module
    from handprop.sweep import storage, workers  # the package's parts (sweep/)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(workers, "train_params", broken)
    config = _config(tmp_path, {"epochs": {"value": 2}}, trials=2)
    with pytest.raises(ZeroDivisionError, match="a bug"):
        sweep_module.run_sweep(config)
    (trial,) = load(config.storage, "s").trials
    # failed, not taken for the trial's own failure: its slot is free again
    assert trial.state == optuna.trial.TrialState.FAIL and "error" not in trial.user_attrs
    assert storage._claimed(load(config.storage, "s")) == 0


def test_a_signal_just_before_a_trial_trains_interrupts_it(tmp_path, monkeypatch):
    # SIGTERM after the worker's last look and before the trial's fit began
    # was lost: the trial trained to its end (a minute and more under load,
    # where the test above timed out), then the worker stopped
    from handprop.sweep import SweepInterrupted, run_sweep, workers

    real = workers.train_params

    def signalled_first(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the worker's handler runs in this thread, at once
        return real(*args, **kwargs)

    monkeypatch.setattr(workers, "train_params", signalled_first)
    config = _config(tmp_path, {"epochs": {"value": 500}, "hidden": {"value": 4}}, trials=2)
    with pytest.raises(SweepInterrupted):
        run_sweep(config)
    trials = load(config.storage, "s").trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL,
                                         optuna.trial.TrialState.WAITING]
    assert trials[0].user_attrs["interrupted"] == "SIGTERM"


def _claim_all(url, name, barrier, results):
    import types

    from handprop.sweep import BudgetLock, SweepConfig, make_storage
    from handprop.sweep.workers import _claim

    config = SweepConfig(dataset="moons", trials=12, storage=url, study=name, out=".",
                         space=Space())
    storage = make_storage(url)
    study = optuna.load_study(study_name=name, storage=storage)
    lock, guard = BudgetLock(url, name), types.SimpleNamespace(signum=None)
    barrier.wait()  # all at once
    taken = []
    try:
        while True:
            trial, _ = _claim(config, study, storage, lock, guard)
            if trial is None:
                break
            taken.append(trial.number)
    except Exception as exc:  # noqa: BLE001 - reported to the test
        taken.append(f"{type(exc).__name__}: {exc}")
    results.put(taken)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_workers_claiming_at_once_take_each_trial_and_slot_once(tmp_path, kind, request):
    # handprop 0.2 took the trial before the lock: two workers could take the
    # same queued retry (then "Cannot tell a COMPLETE trial"), or one more slot
    import multiprocessing

    from handprop.sweep import make_storage

    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 's.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    name = f"claim-{os.getpid()}-{time.time_ns()}"
    study = optuna.create_study(study_name=name, storage=make_storage(url))
    for x in range(6):  # six queued trials, as retries are
        study.enqueue_trial({"x": float(x)})
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(url, name, barrier, results))
             for _ in range(6)]
    for p in procs:
        p.start()
    taken = [n for _ in procs for n in results.get(timeout=120)]
    for p in procs:
        p.join()
    assert sorted(map(str, taken)) == sorted(map(str, range(12)))  # each once, 12 in all
    assert sum(t.user_attrs.get("slot", False) for t in load(url, name).trials) == 12


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_a_trial_left_without_its_slot_is_failed_and_the_budget_kept(tmp_path):
    # a worker killed between taking a trial and giving it its slot leaves a
    # running trial that may have no heartbeat: it would stay running forever
    from handprop.sweep import make_storage, run_sweep

    config = _config(tmp_path, {"epochs": {"value": 2}, "lr": {"low": 0.01, "high": 0.1}},
                     trials=2)
    study = optuna.create_study(study_name="s", storage=make_storage(config.storage))
    orphan = study.ask()
    orphan.suggest_float("lr", 0.01, 0.1)
    run_sweep(config, resume=True)
    study = load(config.storage, "s")
    finished = assert_exactly(study, 2)
    assert study.trials[orphan.number].state == optuna.trial.TrialState.FAIL
    # its parameters ran again, in a slot of their own
    assert [t.params for t in finished if t.system_attrs.get("failed_trial") == orphan.number
            ] == [study.trials[orphan.number].params]


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_a_running_trial_sends_heartbeats(tmp_path):
    # handprop runs its own loop, not Optuna's optimize: it sends them itself
    from handprop.sweep import make_storage
    from handprop.sweep.workers import _Heartbeat

    storage = make_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat=1)
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    storage.record_heartbeat(trial._trial_id)
    with _Heartbeat(storage, trial._trial_id, 1):
        time.sleep(4.5)  # past the grace period of three heartbeats
        optuna.storages.fail_stale_trials(study)
        assert study.trials[0].state == optuna.trial.TrialState.RUNNING
    time.sleep(4.5)  # and once it stops, the trial goes stale
    optuna.storages.fail_stale_trials(study)
    assert study.trials[0].state == optuna.trial.TrialState.FAIL


def _children(pid):
    """The processes whose parent is ``pid`` (Linux's /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid):
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start(*args):
    # SIGINT as a terminal delivers it (a test runner in the background may ignore it)
    return subprocess.Popen([sys.executable, "-m", "handprop", "sweep", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _running(storage, name):
    """The numbers of the running trials that hold a slot (none before the study exists)."""
    if not _study_exists(storage, name):
        return []
    try:
        trials = load(storage, name).get_trials(deepcopy=False)
    except Exception:  # noqa: BLE001 - no database or no study yet
        return []
    return [t.number for t in trials
            if t.state == optuna.trial.TrialState.RUNNING and t.user_attrs.get("slot")]


def _wait_for(condition, p, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline and p.poll() is None, p.poll() and p.stderr.read()
        time.sleep(0.1)


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_a_signal_to_the_sweep_stops_every_worker_and_resume_continues(tmp_path, sig):
    # handprop 0.2: SIGTERM left the two workers training on as orphans, and
    # SIGINT printed 105 lines of tracebacks. A SIGKILL'd parent cannot pass
    # the signal on: its workers see it die and stop as on SIGTERM.
    long = tmp_path / "long.toml"
    long.write_text("epochs = 5000\nhidden = 16\nlr = { low = 0.01, high = 0.1 }\n")
    out = tmp_path / "run"
    storage = f"sqlite:///{out / 'study.db'}"
    args = ["--trials", "2", "--workers", "2", "--out", str(out)]
    p = _start("--space", str(long), *args)
    _wait_for(lambda: len(_running(storage, "handprop-moons")) == 2, p)
    workers = _children(p.pid)
    assert len(workers) >= 2
    start = time.monotonic()
    p.send_signal(getattr(signal, sig))
    _, err = p.communicate(timeout=60)
    deadline = time.monotonic() + 20
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(_alive, workers)), "workers left running"
    assert time.monotonic() - start < 30
    number = getattr(signal, sig)
    assert p.returncode == (-number if sig == "SIGKILL" else 128 + number)
    if sig != "SIGKILL":
        assert err.splitlines() == [f"handprop: {sig}: the sweep stopped with 0 of 2 trials "
                                    f"done; 2 interrupted trials will run first; the study is "
                                    f"intact: continue it with --resume"], err
    state = optuna.trial.TrialState
    trials = load(storage, "handprop-moons").trials
    stopped = [t for t in trials if t.state == state.FAIL]
    assert [t.user_attrs.get("interrupted") for t in stopped] == ["SIGTERM"] * 2
    waiting = [t for t in trials if t.state == state.WAITING]
    assert len(waiting) == 2 and len(trials) == 4
    # the queued copies hold no slot: each claims one when it runs
    assert [t.user_attrs for t in waiting] == [{}, {}]
    if sig == "SIGKILL":
        return  # resuming is the same as after SIGTERM
    # resume (with fewer epochs): the two stopped trials run first, with their parameters
    short = tmp_path / "short.toml"
    short.write_text(long.read_text().replace("5000", "3"))
    r = sweep("--space", str(short), *args, "--resume")
    assert r.returncode == 0, r.stderr
    finished = assert_exactly(load(storage, "handprop-moons"), 2)
    assert sorted(t.system_attrs["failed_trial"] for t in finished) == sorted(
        t.number for t in stopped)
    assert sorted(t.params["lr"] for t in finished) == sorted(t.params["lr"] for t in stopped)


def _kill_all(pid, rng):
    """SIGKILL a sweep: its workers and then the parent, or (one time in four)
    the parent alone, whose workers must then stop by themselves."""
    targets = [pid] if rng.random() < 0.25 else [*_children(pid), pid]
    for target in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)
    return targets


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")
def test_a_sweep_killed_at_random_moments_resumes_with_an_exact_budget(tmp_path):
    # handprop 0.2: after a SIGKILL, --resume --heartbeat 1 failed in 3 of ~19
    # runs with "Cannot tell a COMPLETE trial" (two workers took the same
    # retried trial), and a retried trial once kept the slot of the one it
    # retried: 9 of --trials 10 ran.
    import random

    rng = random.Random(21)
    space = tmp_path / "space.toml"
    space.write_text("epochs = 20\nbatch_size = 20\nhidden = { low = 4, high = 32 }\n"
                     "lr = { low = 0.01, high = 0.3, scale = \"log\" }\n")
    out = tmp_path / "run"
    storage = f"sqlite:///{out / 'study.db'}"
    args = ["--space", str(space), "--trials", "30", "--workers", "2", "--heartbeat", "1",
            "--out", str(out)]
    leftover, rounds = [], []
    for _ in range(10):
        # the first round may be killed before it made the study
        began = datetime.datetime.now()
        p = _start(*args, *(["--resume"] if _study_exists(storage) else []))
        if rng.random() < 0.2:  # while it starts: makes the study, spawns its workers
            time.sleep(rng.uniform(0.5, 3.0))
        else:  # once this round runs trials: while it trains, claims, or records them
            _wait_for(lambda p=p, began=began: _started_since(storage, began)
                      or p.poll() is not None, p)
            time.sleep(rng.uniform(0.0, 4.0))
        leftover += _children(p.pid)
        rounds.append((p.poll(), _kill_all(p.pid, rng)))
        _, err = p.communicate(timeout=60)
        assert "Traceback" not in err and "internal error" not in err, (err, rounds)
        rounds[-1] += (_states(storage),)  # for the messages below
    deadline = time.monotonic() + 20  # workers whose parent alone was killed stop
    while any(map(_alive, leftover)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(_alive, leftover)), ("workers left running", rounds)
    r = sweep(*args, "--resume")
    assert r.returncode == 0, (r.stderr, rounds)
    study = load(storage, "handprop-moons")
    assert_exactly(study, 30)
    state = optuna.trial.TrialState
    lost = [t for t in study.trials if t.state == state.FAIL and "error" not in t.user_attrs]
    assert lost, ("no round killed a trial: the test proved nothing", rounds)


def _states(storage, name="handprop-moons"):
    """Each trial's number, state, and how it failed, in short."""
    if not _study_exists(storage, name):
        return None
    return [(t.number, t.state.name, t.user_attrs.get("interrupted", "error" in t.user_attrs))
            for t in load(storage, name).get_trials(deepcopy=False)]


def _started_since(storage, began, name="handprop-moons"):
    """Whether a trial of the study started after ``began``."""
    if not _study_exists(storage, name):
        return False
    return any(t.datetime_start and t.datetime_start > began
               for t in load(storage, name).get_trials(deepcopy=False))


def _study_exists(storage, name="handprop-moons"):
    if not os.path.exists(storage[len("sqlite:///"):]):
        return False  # (Optuna would make the file)
    try:
        load(storage, name)
    except Exception:  # noqa: BLE001 - no database or no study yet
        return False
    return True


def test_workers_are_bounded(tmp_path):
    # handprop 0.2 started 100000 workers, and reached 15 GB in 60 s
    from handprop.sweep import max_workers, run_sweep

    out = tmp_path / "run"
    start = time.monotonic()
    r = sweep("--workers", "100000", "--trials", "1", "--out", str(out))
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert f"at most {max_workers()} here" in r.stderr
    assert time.monotonic() - start < 30 and not out.exists()
    assert "at most two per CPU core, 64 at most" in " ".join(sweep("--help").stdout.split())
    config = _config(tmp_path, {"epochs": {"value": 2}}, trials=1)
    with pytest.raises(ValueError, match="workers must be 1 to"):
        run_sweep(config, workers=max_workers() + 1)
    assert not (tmp_path / "s.db").exists()  # refused before the study was made


@pytest.mark.parametrize("kind", ["no-folder", "a-folder", "not-sqlite", "bad-journal",
                                  "no-server", "unknown"])
def test_a_storage_that_cannot_be_opened_is_one_line(tmp_path, kind):
    # handprop 0.2: sqlite:////nonexistent/dir/x.db was an internal error after 6.8 s
    (tmp_path / "notes.db").write_text("not a database\n")
    (tmp_path / "study.log").write_text("{not json\n")
    url, message = {
        "no-folder": ("sqlite:////nonexistent/dir/x.db", "folder /nonexistent/dir does not exist"),
        "a-folder": (f"sqlite:///{tmp_path}", "expected a file, got a folder"),
        "not-sqlite": (f"sqlite:///{tmp_path / 'notes.db'}", "not a SQLite database"),
        "bad-journal": (f"journal:{tmp_path / 'study.log'}", "line 1 is not a record"),
        "no-server": ("postgresql://postgres@127.0.0.1:1/x", "cannot connect"),
        "unknown": ("mysql://root@localhost/x", "handprop sweep shares a study through"),
    }[kind]
    out = tmp_path / "run"
    start = time.monotonic()
    r = sweep("--storage", url, "--trials", "1", "--out", str(out))
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith("handprop: error: storage ") and url in r.stderr
    assert message in r.stderr
    assert time.monotonic() - start < 20 and not out.exists()
    assert (tmp_path / "notes.db").read_text() == "not a database\n"  # left as it was
