"""handprop sweep: shared studies, exact trial budgets, killed workers, space files."""

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
    """n trials hold a slot and finished; trial numbers are unique."""
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    held = [t for t in trials if t.user_attrs.get("slot")]
    finished = [t for t in held if t.state in (optuna.trial.TrialState.COMPLETE,
                                               optuna.trial.TrialState.PRUNED)]
    assert len(finished) == n, [(t.number, t.state) for t in trials]
    for t in trials:  # the others: killed (failed), or not run because the budget was spent
        if t not in finished:
            assert t.state == optuna.trial.TrialState.FAIL or t.user_attrs.get("over_budget")
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
    args = ["--space", str(space_file(tmp_path, epochs=400)), "--trials", "3", "--out",
            str(out), "--heartbeat", "1"]
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
    time.sleep(3.5)  # the grace period: three missed heartbeats
    r = sweep(*args, "--resume")
    assert r.returncode == 0, r.stderr
    study = load(storage, "handprop-moons")
    finished = assert_exactly(study, 3)
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
