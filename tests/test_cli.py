"""The command line, run as a user runs it: a subprocess."""

import subprocess
import sys

import pytest


def run(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "handprop", *args], capture_output=True,
                          text=True, timeout=120, **kwargs)


def test_gradcheck_defaults_pass():
    r = run("gradcheck")
    assert r.returncode == 0, r.stderr
    assert "param" in r.stdout and "passed" in r.stdout
    for name in ("W1", "b1", "W2", "b2"):
        assert f"\n{name} " in r.stdout


def test_gradcheck_options():
    r = run("gradcheck", "--d", "5", "--d-h", "7", "--m", "3", "--k", "1", "--activation",
            "softplus", "--l1", "0.01,0.02", "--l2", "0.03,0.04", "--seed", "3",
            "--order", "4", "--eps", "1e-3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "7x5" in r.stdout and "K = 1" in r.stdout and "order 4" in r.stdout


def test_gradcheck_exits_1_when_a_tolerance_is_missed():
    r = run("gradcheck", "--tol", "1e-300")
    assert r.returncode == 1
    assert "FAILED" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["gradcheck", "--k", "0"], "argument --k: expected a positive integer, got '0'"),
    (["gradcheck", "--activation", "swish"], "argument --activation: invalid choice"),
    (["gradcheck", "--l1", "0.1,x"], "argument --l1: l1 must be one lambda, or one per weight"),
    (["gradcheck", "--l2=-1,0"], "argument --l2: l2 must be a number >= 0, got -1"),
    (["gradcheck", "--m", "1"], "m >= 2"),
    (["gradcheck", "--bogus"], "unrecognized arguments: --bogus"),
    (["nosuch"], "invalid choice: 'nosuch'"),
])
def test_bad_arguments_print_one_line_and_exit_2(args, message):
    r = run(*args)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("handprop: error: ")
    assert message in lines[0]
    assert "Traceback" not in r.stderr


def test_a_net_too_big_for_memory_is_one_line_and_exit_2(tmp_path):
    # 10**15 hidden units of 2 inputs: 16 PB, refused by the memory estimate
    # before anything is allocated
    r = run("train", "--hidden", str(10**15), "--epochs", "1", "--out", str(tmp_path / "run"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"handprop: error: training a net of hidden sizes {10**15} on 2 "
                               f"inputs would take about ")
    assert "try smaller hidden sizes or a smaller batch size" in lines[0]
    assert not (tmp_path / "run").exists()


def test_help_and_version():
    r = run("--help")
    assert r.returncode == 0 and "gradcheck" in r.stdout
    r = run("gradcheck", "--help")
    assert r.returncode == 0 and "--d-h" in r.stdout
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("handprop ")


# -- train, regions, curves, evaluate, predict ------------------------------


def _csv_rows(path):
    import csv

    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_train_on_moons_end_to_end(tmp_path):
    r = run("train", "--epochs", "40", "--hidden", "50", "--lr", "0.05", "--out",
            str(tmp_path / "run"), "--no-progress")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1].split()[:3] == ["epoch", "train", "err"]
    epoch_lines = [line for line in lines if line.strip() and line.split()[0].isdigit()]
    assert len(epoch_lines) == 40
    assert len(epoch_lines[0].split()) == 9  # epoch, six numbers, lr, seconds
    assert "\r" not in r.stdout and "\r" not in r.stderr  # no progress bar off a terminal
    run_dir = tmp_path / "run"
    rows = _csv_rows(run_dir / "log.csv")
    assert rows[0] == ["epoch", "train_error", "train_loss", "valid_error", "valid_loss",
                       "test_error", "test_loss", "lr", "seconds"]
    assert len(rows) == 41 and all(len(row) == 9 for row in rows)
    assert float(rows[-1][3]) < 0.05  # valid error
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from handprop import MLP

    net = MLP.load(run_dir / "model.npz")
    assert net.d_h == 50 and len(net.meta["history"]) == 40
    assert net.meta["settings"]["lr"] == 0.05

    r = run("evaluate", str(run_dir / "model.npz"), "--split", "all")
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert [line.split(":")[0] for line in out] == ["train", "valid", "test"]
    assert f"{100 * float(rows[-1][3]):.2f}%" in out[1]

    features = tmp_path / "points.csv"
    features.write_text("x1,x2\n0.0,1.0\n1.0,-0.5\n")
    r = run("predict", str(run_dir / "model.npz"), str(features))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "prediction,p0,p1"
    assert [line.split(",")[0] for line in r.stdout.splitlines()[1:]] == ["0", "1"]
    r = run("predict", str(run_dir / "model.npz"), str(features), "--out",
            str(tmp_path / "pred.csv"))
    assert r.returncode == 0 and len(_csv_rows(tmp_path / "pred.csv")) == 3

    r = run("curves", str(run_dir / "log.csv"), "--out", str(tmp_path / "c.png"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_on_a_csv_file(tmp_path):
    from handprop.data.datasets import make_moons

    X, y = make_moons(300, noise=0.1, seed=1)
    path = tmp_path / "mine.csv"
    path.write_text("a,b,label\n" + "".join(f"{a},{b},{c}\n" for (a, b), c in zip(X, y)))
    r = run("train", "--dataset", str(path), "--epochs", "3", "--hidden", "8", "--out",
            str(tmp_path / "out"), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "240 train, 30 valid, 30 test" in r.stdout


def test_regions_writes_the_grid(tmp_path):
    out = tmp_path / "regions.png"
    r = run("regions", "--hidden", "2,10", "--l2", "0,0.01", "--epochs", "5,20", "--out",
            str(out))
    assert r.returncode == 0, r.stderr
    assert len([line for line in r.stdout.splitlines() if "valid error" in line]) == 8
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_grads():
    r = run("compare-grads", "--k", "1", "--k", "10", "--d-h", "3")
    assert r.returncode == 0, r.stderr
    assert "K = 1: largest difference" in r.stdout and "K = 10: largest difference" in r.stdout
    assert "W1[2,1]" in r.stdout
    worst = float(r.stdout.splitlines()[-1].split()[5])
    assert worst <= 1e-12


def test_bench_epoch_says_the_loop_is_extrapolated():
    r = run("bench-epoch", "--hidden", "16", "--slice", "300")
    assert r.returncode == 0, r.stderr
    assert "extrapolated from the first 300 examples" in r.stdout
    assert "matrix:" in r.stdout


def test_divergence_exits_1_with_one_line(tmp_path):
    r = run("train", "--lr", "1e30", "--epochs", "3", "--out", str(tmp_path / "d"),
            "--no-progress")
    assert r.returncode == 1
    assert r.stderr.strip().startswith("handprop: training diverged")
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d" / "model.npz").exists()


@pytest.mark.parametrize("make_args,message", [
    (lambda t: ["train", "--dataset", str(t / "missing.csv")],
     "missing.csv: no such data file"),
    (lambda t: ["train", "--dataset", str(t / "bad.csv")], "line 2, column 1: 'oops'"),
    (lambda t: ["train", "--dataset", "iris"], "unknown dataset 'iris'"),
    (lambda t: ["train", "--out", str(t / "file.txt")], "cannot write to output folder"),
    (lambda t: ["train", "--momentum", "1.5"], "--momentum: momentum must be a number in "
                                               "[0, 1), got 1.5"),
    (lambda t: ["curves", str(t / "bad.csv")], "not a handprop log"),
    (lambda t: ["evaluate", str(t / "file.txt")], "not a readable model file"),
    (lambda t: ["predict", str(t / "nope.npz"), str(t / "bad.csv")], "no such model file"),
    (lambda t: ["regions", "--hidden", "0,2"], "--hidden and --epochs values must be >= 1"),
    (lambda t: ["regions", "--l2", "a,b"], "comma-separated list of numbers"),
])
def test_bad_data_prints_one_line_and_exits_2(tmp_path, make_args, message):
    (tmp_path / "bad.csv").write_text("1,2,0\noops,2,1\n")
    (tmp_path / "file.txt").write_text("not a folder")
    r = run(*make_args(tmp_path), cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("handprop: error: "), r.stderr
    assert message in lines[0]
    assert "Traceback" not in r.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_a_progress_bar_on_a_terminal(tmp_path):
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    p = subprocess.Popen([sys.executable, "-m", "handprop", "train", "--epochs", "3",
                          "--batch-size", "1", "--hidden", "16", "--out", str(tmp_path / "run")],
                         stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            out += data
        elif p.poll() is not None:
            break
    os.close(master)
    assert p.wait(timeout=60) == 0
    text = out.decode("utf-8", "replace")
    assert "batch/s" in text and "%|" in text  # tqdm's bar
    assert "finished 3 epochs" in text


@pytest.mark.parametrize("output,m", [("softmax", "3"), ("logistic", "1"), ("logistic", "3"),
                                      ("identity", "2")])
def test_gradcheck_of_a_deep_net_of_each_output(output, m):
    r = run("gradcheck", "--d", "4", "--d-h", "5,4,3", "--m", m, "--output", output,
            "--activation", "tanh", "--l1", "0.01", "--l2", "0.01,0.02,0.03,0.04",
            "--order", "4", "--eps", "1e-3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "\nW4 " in r.stdout and f"{m}x3" in r.stdout and "passed" in r.stdout
    r = run("compare-grads", "--d-h", "3,2", "--output", output, "--m", m, "--k", "3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "W3[0,0]" in r.stdout


def test_lambdas_must_match_the_weight_matrices():
    r = run("gradcheck", "--d-h", "3,2", "--l1", "0.1,0.2")
    assert r.returncode == 2
    assert ("l1 must be one lambda, or one per weight matrix (3 for this net), "
            "got 2") in r.stderr
    r = run("gradcheck", "--d-h", "3,0")
    assert r.returncode == 2 and "argument --d-h: hidden sizes must be an integer >= 1, got 0" \
        in r.stderr


def test_train_a_deep_net_and_resume_it(tmp_path):
    import json

    from handprop import MLP

    out = tmp_path / "run"
    r = run("train", "--hidden", "16,8", "--epochs", "3", "--l2", "0.001", "--out", str(out),
            "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "MLP(d=2, d_h=(16, 8), m=2" in r.stdout
    net = MLP.load(out / "model.npz")
    assert net.hidden == (16, 8) and net.output == "softmax"
    assert net.meta["settings"]["penalty"]["l2_W3"] == 0.001 and net.meta["dataset"] == "moons"
    saved = json.loads((out / "run.json").read_text())
    assert saved["net"] == {"hidden": [16, 8], "activation": "relu", "output": "softmax",
                            "dtype": "float32"}
    assert saved["settings"]["epochs"] == 3 and saved["dataset"] == "moons"
    r = run("train", "--resume", str(out), "--hidden", "16")
    assert r.returncode == 2 and "--hidden (run 16,8, now 16)" in r.stderr
    r = run("train", "--resume", str(out), "--epochs", "4", "--force", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert MLP.load(out / "model.npz").hidden == (16, 8)
    assert len(MLP.load(out / "model.npz").meta["history"]) == 4


def test_a_rejected_command_writes_nothing(tmp_path):
    out = tmp_path / "run"
    r = run("train", "--epochs", "2", "--hidden", "8", "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    before = (out / "run.json").read_text()
    r = run("train", "--out", str(out), "--label-smoothing", "1.5")
    assert r.returncode == 2 and "label_smoothing must be a number in [0, 1)" in r.stderr
    assert (out / "run.json").read_text() == before


def test_a_bug_is_reported_as_a_bug(monkeypatch, capsys, tmp_path):
    # handprop's own errors are bad input (exit 2, one line); anything else
    # is a bug: exit 1, said so, with the traceback in a file
    from handprop import cli

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("HANDPROP_DEBUG", raising=False)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)

    def broken(args):
        return {}["missing"]  # a KeyError inside handprop

    monkeypatch.setattr(cli.curves, "run", broken)  # each command is a module of cli
    assert cli.main(["curves", "log.csv"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "internal error, a bug in handprop rather than in your input: KeyError" in err
    report = next(tmp_path.glob("handprop-bug-*.txt"))
    assert report.name in err and "Traceback" in report.read_text()

    def bad_input(args):
        from handprop.errors import InputError

        raise InputError("log.csv: not a handprop log")

    monkeypatch.setattr(cli.curves, "run", bad_input)
    assert cli.main(["curves", "log.csv"]) == 2
    assert capsys.readouterr().err == "handprop: error: log.csv: not a handprop log\n"


@pytest.mark.parametrize("command,hint", [
    (["train"], "try a smaller --hidden or --batch-size"),
    (["evaluate", "m.npz"], "the data or the model is too large for this machine"),
    (["predict", "m.npz", "x.csv"], "the data or the model is too large for this machine"),
])
def test_out_of_memory_hints_name_the_commands_options(monkeypatch, capsys, command, hint):
    from handprop import cli

    def exhausted(*args):
        raise MemoryError("Unable to allocate 9.00 GiB")

    module, name = {"train": (cli.train, "run"), "evaluate": (cli.evaluate, "run_evaluate"),
                    "predict": (cli.evaluate, "run_predict")}[command[0]]
    monkeypatch.setattr(module, name, exhausted)
    monkeypatch.delenv("HANDPROP_DEBUG", raising=False)
    assert cli.main(command) == 2
    assert capsys.readouterr().err == (f"handprop: error: out of memory (Unable to allocate "
                                       f"9.00 GiB); {hint}\n")


def test_train_on_mnist_full_trains_on_60000_images(tmp_path):
    r = run("train", "--dataset", "mnist-full", "--hidden", "4", "--epochs", "1", "--no-progress",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("mnist-full: 60000 train, 10000 valid (also trained on), 10000 "
                               "test examples"), r.stdout
    assert "valid error" in r.stdout and r.stdout.count("(also trained on)") == 2, r.stdout
    run_folder = tmp_path / "runs" / "mnist-full"  # the default --out names the data set
    assert (run_folder / "model.npz").exists()
    r = run("evaluate", str(run_folder / "model.npz"), "--split", "all", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()  # the model's own data set, read back by name
    assert lines[0].startswith("train: error") and "of 60000)" in lines[0], r.stdout
    assert lines[1].startswith("valid (trained on): error") and "of 10000)" in lines[1]
    assert lines[2].startswith("test: error"), r.stdout
    # its validation images cannot choose an epoch when it goes on, on any data set
    r = run("train", "--resume", str(run_folder), "--dataset", "mnist", "--force", "--patience",
            "5", "--epochs", "2", cwd=tmp_path)
    assert r.returncode == 2 and "cannot resume" in r.stderr and "early stopping" in r.stderr, \
        r.stderr
    assert r.stderr.count("\n") == 1, r.stderr


@pytest.mark.parametrize("command", [
    ["train", "--dataset", "mnist-full", "--patience", "3", "--hidden", "4", "--epochs", "1",
     "--out", "run"],
    ["sweep", "--dataset", "mnist-full", "--trials", "1", "--out", "sweep"],
])
def test_nothing_is_chosen_on_mnist_fulls_validation_images(tmp_path, command):
    r = run(*command, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "trains on its validation images" in r.stderr, r.stderr
    assert not any(tmp_path.iterdir())  # nothing written
