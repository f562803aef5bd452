"""Runs that survive being stopped: kills, signals, resume, full disks."""

import contextlib
import errno
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from handprop import MLP
from handprop.data.datasets import moons_splits
from handprop.train import checkpoint
from handprop.train.training import History, fit

# A run slow enough to be caught mid-epoch (1,600 minibatches of 10 per epoch,
# about 0.15 s), with Nesterov momentum, a cosine schedule and early
# stopping, so that every piece of state a checkpoint holds matters.
ARGS = ["train", "--hidden", "64", "--epochs", "6", "--batch-size", "10", "--lr", "0.05",
        "--momentum", "0.9", "--nesterov", "--schedule", "cosine", "--patience", "20",
        "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from handprop.data.datasets import make_moons

    path = tmp_path_factory.mktemp("data") / "moons.npz"
    X, y = make_moons(20000, noise=0.2, seed=0)
    np.savez(path, X=X, y=y)
    return str(path)


def start(data, out, *extra, env=None):
    return subprocess.Popen([sys.executable, "-m", "handprop", *ARGS, "--dataset", data,
                             "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def run(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "handprop", *args], capture_output=True,
                          text=True, timeout=300, **kwargs)


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def log_rows(folder):
    path = folder / "log.csv"
    return path.read_text().count("\n") - 1 if path.exists() else 0


def result(folder):
    """The final parameters and the history without timings."""
    net = MLP.load(folder / "model.npz")
    history = [{k: v for k, v in row.items() if k != "seconds"} for row in net.meta["history"]]
    return net.params, history


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data):
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("ref") / "run"
    r = run(*ARGS, "--dataset", data, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return result(out)


def assert_same(folder, reference):
    params, history = result(folder)
    ref_params, ref_history = reference
    for name in ref_params:
        assert np.array_equal(params[name], ref_params[name]), name
    assert history == ref_history
    rows = History.read_csv(folder / "log.csv")
    assert [r.epoch for r in rows] == [h["epoch"] for h in ref_history]


def assert_consistent(folder):
    """What a kill leaves: a loadable checkpoint and a log of whole rows."""
    arrays, meta = checkpoint.load(folder)
    assert "param_W1" in arrays
    rows = History.read_csv(folder / "log.csv")  # refuses a partial row
    assert (folder / "log.csv").read_text().endswith("\n")
    assert len(rows) >= meta["epoch"]


@pytest.mark.slow
def test_sigkill_during_an_epoch_then_resume(tmp_path, data, reference):
    out = tmp_path / "run"
    p = start(data, out)
    wait_for(lambda: log_rows(out) >= 2 and (out / "checkpoint.npz").exists())
    time.sleep(0.05)  # into the next epoch
    p.kill()
    p.wait()
    assert_consistent(out)
    assert not (out / "model.npz").exists()  # killed before the end
    r = run("train", "--resume", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "resuming the run" in r.stdout
    assert_same(out, reference)


@pytest.mark.slow
def test_sigkill_while_a_checkpoint_is_written(tmp_path, data, reference):
    out = tmp_path / "run"
    p = start(data, out, env={"HANDPROP_TEST_STALL_WRITE": "handprop-checkpoint:3"})
    # the first checkpoint is in place, and the second one is being written
    wait_for(lambda: (out / "checkpoint.npz").exists()
             and any(out.glob(".checkpoint.npz.*.tmp")))
    p.kill()
    p.wait()
    assert_consistent(out)
    assert checkpoint.load(out)[1]["epoch"] == 1
    r = run("train", "--resume", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert not list(out.glob(".*.tmp"))  # the half-written file was cleaned up
    assert_same(out, reference)


@pytest.mark.slow
@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_writes_a_checkpoint_and_says_how_to_resume(tmp_path, data, reference, signum,
                                                          status):
    out = tmp_path / "run"
    p = start(data, out)
    wait_for(lambda: log_rows(out) >= 1)
    time.sleep(0.05)
    p.send_signal(signum)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == status, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert f"resume with: handprop train --resume {out}" in lines[0]
    assert signal.Signals(signum).name in lines[0]
    assert "after minibatch" in lines[0]  # it stopped inside an epoch
    assert_consistent(out)
    assert checkpoint.load(out)[1]["in_epoch"] is not None
    r = run("train", "--resume", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert_same(out, reference)


def _signal_self(signum, guard):
    """Send ``signum`` to this process and wait until ``guard`` has it."""
    os.kill(os.getpid(), signum)
    deadline = time.monotonic() + 10
    while guard.signum is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert guard.signum == signum


def test_a_signal_caught_before_fit_began_stops_fit(tmp_path):
    # A sweep's worker holds a guard, and fit its own: a SIGTERM between the
    # worker's last look and fit's start was lost, and the trial trained to
    # its end (a sweep's test saw a worker train on for a minute, under load).
    net = MLP(2, 8, 2, seed=0)
    (X, y), valid, _ = moons_splits()
    with checkpoint.SignalGuard() as outer:
        _signal_self(signal.SIGTERM, outer)
        with pytest.raises(checkpoint.Interrupted) as caught:
            fit(net, X, y, valid=valid, epochs=50, batch_size=10, progress=False,
                checkpoint=tmp_path)
        assert caught.value.signum == signal.SIGTERM
        assert checkpoint.load(tmp_path)[1]["epoch"] == 0  # after its first minibatch


def test_a_signal_fit_catches_in_its_last_epoch_is_the_callers_too():
    # fit ends its last epoch as usual, and the caller's guard has the signal
    # (the worker then stops instead of starting another trial)
    net = MLP(2, 8, 2, seed=0)
    (X, y), valid, _ = moons_splits()
    with checkpoint.SignalGuard() as outer:
        def on_epoch(record):
            if record.epoch == 3:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the handler runs in this thread, at once

        history = fit(net, X, y, valid=valid, epochs=3, batch_size=50, progress=False,
                      on_epoch=on_epoch)
        assert len(history) == 3
        assert outer.signum == signal.SIGTERM


@pytest.mark.slow
def test_a_second_sigint_exits_at_once_and_keeps_the_checkpoint(tmp_path, data):
    out = tmp_path / "run"
    p = start(data, out, env={"HANDPROP_TEST_STALL_WRITE": "handprop-checkpoint:30"})
    wait_for(lambda: any(out.glob(".checkpoint.npz.*.tmp")))  # stalled in the first write
    p.send_signal(signal.SIGINT)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=20)  # well before the 30 s stall ends
    assert p.returncode == 130
    assert not (out / "checkpoint.npz").exists()  # never a half-written one
    assert not list(out.glob(".checkpoint.npz.*.tmp"))


def test_resume_refuses_other_settings(tmp_path):
    out = tmp_path / "run"
    r = run("train", "--epochs", "2", "--hidden", "8", "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    r = run("train", "--resume", str(out), "--lr", "0.5", "--hidden", "9")
    assert r.returncode == 2
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "--hidden (run 8, now 9)" in line and "--lr (run 0.1, now 0.5)" in line
    assert "--force" in line
    r = run("train", "--resume", str(out), "--epochs", "3", "--force", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert len(History.read_csv(out / "log.csv")) == 3
    r = run("train", "--resume", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "nothing to resume" in r.stderr


def test_library_resume_names_the_differences(tmp_path):
    train, valid, _ = moons_splits(n_train=200)
    fit(MLP(2, 8, 2, seed=0), *train, valid=valid, epochs=2, checkpoint=tmp_path, progress=False)
    with pytest.raises(checkpoint.ResumeMismatch, match=r"batch_size \(checkpoint 100, now 50\)"
                       ) as info:
        fit(MLP(2, 8, 2, seed=0), *train, valid=valid, epochs=2, batch_size=50,
            resume=tmp_path, progress=False)
    assert "lr" not in str(info.value)
    with pytest.raises(checkpoint.ResumeMismatch, match=r"data.train"):
        fit(MLP(2, 8, 2, seed=0), train[0][:100], train[1][:100], valid=valid, epochs=2,
            resume=tmp_path, progress=False)


def _interrupt_after(epoch):
    def callback(record):
        if record.epoch == epoch:
            os.kill(os.getpid(), signal.SIGINT)
    return callback


def test_early_stopping_state_survives_a_resume(tmp_path):
    train, valid, _ = moons_splits(n_train=300)
    kwargs = dict(valid=valid, epochs=60, lr=0.5, momentum=0.9, patience=4, progress=False)
    whole = MLP(2, 32, 2, seed=0)
    h_whole = fit(whole, *train, **kwargs)
    assert h_whole.best_epoch < len(h_whole)  # early stopping did stop it
    part = MLP(2, 32, 2, seed=0)
    with pytest.raises(checkpoint.Interrupted) as info:
        fit(part, *train, checkpoint=tmp_path, on_epoch=_interrupt_after(h_whole.best_epoch + 1),
            **kwargs)
    assert info.value.exit_status == 130
    _, meta = checkpoint.load(tmp_path)
    assert meta["best"]["epoch"] == h_whole.best_epoch
    resumed = MLP(2, 32, 2, seed=1)
    h_resumed = fit(resumed, *train, resume=tmp_path, **kwargs)
    assert h_resumed.best_epoch == h_whole.best_epoch
    assert len(h_resumed) == len(h_whole)
    for name in whole.params:
        assert np.array_equal(resumed.params[name], whole.params[name])


def test_a_full_disk_stops_training_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import handprop.files as files

    real = files.write_archive
    calls = []

    def full_disk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "write_archive", full_disk)
    train, valid, _ = moons_splits(n_train=200)
    net = MLP(2, 8, 2, seed=0)
    with pytest.raises(checkpoint.CheckpointError) as info:
        fit(net, *train, valid=valid, epochs=10, checkpoint=tmp_path, log=tmp_path / "log.csv",
            progress=False)
    message = str(info.value)
    assert "No space left on device" in message and "previous checkpoint is intact" in message
    assert "\n" not in message
    assert checkpoint.load(tmp_path)[1]["epoch"] == 2  # the last good one
    assert len(History.read_csv(tmp_path / "log.csv")) == 3  # stopped at once


@contextlib.contextmanager
def read_only(folder):
    """Make ``folder`` unwritable, even for root (who ignores permissions):
    chmod for a user, the immutable attribute (chattr +i) for root."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i: no way to make "
                    "a folder read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_a_read_only_output_folder_gives_one_line(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder):
        for out in (folder, folder / "run"):  # the folder itself, and one to create in it
            r = run("train", "--epochs", "1", "--out", str(out), "--no-progress")
            assert r.returncode == 2, r.stdout + r.stderr
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1, r.stderr
            assert lines[0].startswith(f"handprop: error: cannot write to output folder {out}")
            assert "Traceback" not in r.stderr
        assert list(folder.iterdir()) == []


def test_a_checkpoint_written_by_handprop_0_2_resumes_as_a_straight_run(tmp_path):
    # tests/data/checkpoint-0.2 (its README says how it was made): a run
    # stopped by SIGINT in its second epoch, minibatch 11,284 of 20,000, by
    # handprop 0.2: its format counts the epoch's errors where
    # 0.3 records a tally, and its SGD state has no step count.
    # On the machine that wrote it the resumed run equals the straight one
    # bit for bit; on another CPU, BLAS's kernels round the straight run's
    # first 1.56 epochs differently (an AMD EPYC: 1e-14 on W1 after three
    # epochs), so the parameters and losses are compared to round-off
    # (1e-9, relative), and the counts of errors exactly. A misread state
    # (the momentum, the stopped epoch's count) moves them by far more.
    import shutil

    from handprop.data.datasets import make_moons

    folder = tmp_path / "run"
    shutil.copytree(Path(__file__).parent / "data" / "checkpoint-0.2", folder)
    X, y = make_moons(20000, noise=0.2, seed=1)
    valid = make_moons(200, noise=0.2, seed=2)
    settings = dict(epochs=3, batch_size=1, lr=0.02, momentum=0.9, patience=2, seed=3,
                    progress=False)
    stored_seconds = checkpoint.load(folder, meta_only=True)[1]["history"][0]["seconds"]
    resumed = MLP(2, 8, 2, dtype="float64", seed=0)
    history = fit(resumed, X, y, valid=valid, resume=folder, **settings)
    straight = MLP(2, 8, 2, dtype="float64", seed=0)
    expected = fit(straight, X, y, valid=valid, **settings)
    for k in straight.params:
        np.testing.assert_allclose(resumed.params[k], straight.params[k], rtol=1e-9,
                                   atol=1e-9 * np.abs(straight.params[k]).max(), err_msg=k)
    assert len(history) == len(expected) == 3
    # epoch 1 is the checkpoint's own record, read back, not trained again
    assert history[0].seconds == stored_seconds != expected[0].seconds
    for got, want in zip(history, expected, strict=True):
        # the errors count examples (of 20,000 and 200): equal, as the epochs and rates
        assert (got.epoch, got.lr, got.train_error, got.valid_error) == (
            want.epoch, want.lr, want.train_error, want.valid_error)
        np.testing.assert_allclose([got.train_loss, got.valid_loss],
                                   [want.train_loss, want.valid_loss], rtol=1e-9)
        assert math.isnan(got.test_error) and math.isnan(got.test_loss)  # no test set given
    assert history.best_epoch == expected.best_epoch
