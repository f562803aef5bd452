"""Every output/loss pair from the command line: regression and multilabel
from CSV and NPZ files, trained, logged, evaluated and predicted."""

import csv
import subprocess
import sys

import numpy as np
import pytest

from handprop import MLP
from handprop.train.history import History


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "handprop", *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=cwd)


def _table(path, X, Y, names):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        w.writerows(np.column_stack([X, Y]).tolist())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (400, 3))
    Y = np.column_stack([np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2], X[:, 0] ** 2 - X[:, 2]])
    L = np.column_stack([X[:, 0] > 0, X[:, 1] * X[:, 2] > 0, X.sum(1) > 0.5]).astype(int)
    counts = rng.poisson(np.exp(X[:, 0] + 0.5 * X[:, 1]))
    _table(folder / "reg.csv", X, Y, ["x1", "x2", "x3", "y1", "y2"])
    _table(folder / "tags.csv", X, L, ["x1", "x2", "x3", "pos", "same", "big"])
    _table(folder / "counts.csv", X, counts, ["x1", "x2", "x3", "n"])
    np.savez(folder / "reg.npz", X=X, y=Y)
    return folder


def _train(files, dataset, *options, out):
    r = run("train", "--dataset", files / dataset, "--out", out, "--no-progress",
            "--epochs", "30", "--hidden", "32,16", "--batch-size", "20", *options)
    assert r.returncode == 0, r.stderr
    return r


def test_regression_from_a_csv(files, tmp_path):
    r = _train(files, "reg.csv", "--label", "y1,y2", "--output", "identity", "--activation",
               "tanh", "--lr", "0.05", out=tmp_path / "reg")
    lines = r.stdout.splitlines()
    assert "output='identity'" in lines[0] and "m=2" in lines[0]
    assert lines[1].split()[:4] == ["epoch", "train", "R2", "train"]  # the header says R2
    assert "test R2 0.9" in lines[-2]
    history = History.read_csv(tmp_path / "reg" / "log.csv")
    assert history.measure == "r2" and history.column("valid_r2")[-1] > 0.95
    net = MLP.load(tmp_path / "reg" / "model.npz")
    assert net.meta["label"] == ["y1", "y2"]
    ev = run("evaluate", tmp_path / "reg" / "model.npz", "--dataset", files / "reg.csv",
             "--split", "all")
    assert ev.returncode == 0, ev.stderr
    assert [line.split()[:2] for line in ev.stdout.splitlines()] == [
        ["train:", "R2"], ["valid:", "R2"], ["test:", "R2"]]
    test_r2 = float(ev.stdout.splitlines()[2].split()[2].rstrip(","))
    assert test_r2 == pytest.approx(history[-1].test_error, abs=1e-4)
    pred = run("predict", tmp_path / "reg" / "model.npz", files / "reg.csv")
    rows = pred.stdout.splitlines()
    assert rows[0] == "output0,output1" and len(rows) == 401  # y1, y2 dropped by name
    X = np.loadtxt(files / "reg.csv", delimiter=",", skiprows=1)[:, :3]
    assert np.allclose(np.array(rows[1].split(","), float), net.predict(X[:1])[0], rtol=1e-5)


def test_regression_from_an_npz_with_a_2d_y(files, tmp_path):
    r = _train(files, "reg.npz", "--output", "identity", "--activation", "tanh",
               "--lr", "0.05", out=tmp_path / "npz")
    assert "m=2" in r.stdout.splitlines()[0]


def test_multilabel_from_a_csv(files, tmp_path):
    r = _train(files, "tags.csv", "--label", "pos,same,big", "--output", "logistic",
               "--lr", "0.03", out=tmp_path / "tags")
    assert "output='logistic'" in r.stdout and "m=3" in r.stdout
    history = History.read_csv(tmp_path / "tags" / "log.csv")
    assert history.measure == "error" and history[-1].valid_error < 0.3
    assert history[-1].train_error < 0.1 < history[0].train_error
    ev = run("evaluate", tmp_path / "tags" / "model.npz")  # its own data and labels
    assert ev.returncode == 0 and ev.stdout.startswith("test: error "), ev.stderr
    pred = run("predict", tmp_path / "tags" / "model.npz", files / "tags.csv")
    assert pred.stdout.splitlines()[0] == "label0,label1,label2,p0,p1,p2"


def test_poisson_counts_from_a_csv(files, tmp_path):
    r = _train(files, "counts.csv", "--label", "n", "--output", "exp", "--lr", "0.01",
               out=tmp_path / "counts")
    assert "output='exp'" in r.stdout and "m=1" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["--dataset", "reg.csv", "--label", "y1"], "labels must be integers >= 0 .*regression"),
    (["--dataset", "tags.csv", "--label", "pos,same"], "2 target columns, but classes are "
                                                       "one column"),
    (["--dataset", "reg.csv", "--label", "y9"], "no column named 'y9'"),
    (["--dataset", "moons", "--label", "y1"], "a label column is chosen in a CSV file"),
    (["--dataset", "tags.csv", "--label", "pos", "--output", "exp", "--label-smoothing", "0.1"],
     "label_smoothing applies to class targets"),
])
def test_targets_that_do_not_fit_the_output_are_one_line(files, tmp_path, args, message):
    import re

    args = [str(files / a) if a.endswith(".csv") else a for a in args]
    r = run("train", "--out", tmp_path / "run", "--epochs", "1", *args)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    assert re.search(message, r.stderr), r.stderr
    assert not (tmp_path / "run").exists()  # a run that never started leaves no folder


def test_abbreviated_options_are_refused(tmp_path):
    # --label is not --label-smoothing, and never will be
    r = run("train", "--out", tmp_path / "r", "--label-smooth", "0.1")
    assert r.returncode == 2 and "unrecognized arguments: --label-smooth" in r.stderr
    r = run("gradcheck", "--ord", "4")
    assert r.returncode == 2
