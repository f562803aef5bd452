"""Untrusted files and hostile input: one line, exit 2, bounded time and memory.

Each case builds its files on the fly, runs the command line (or a library
call) in a subprocess, and checks its exit status, the one line it prints,
its wall time and its peak memory (the child's own, from ``wait4``). A
hostile input must never hang, never take memory in proportion to what a
file merely declares, never print a traceback, and never be misread.

    python tests/test_hostile.py             # every case, a line each
    python tests/test_hostile.py --src DIR   # the same against another src/ (a
                                             # checkout of an earlier version)
    python tests/test_hostile.py -k EXPR     # the cases that pytest's -k selects
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
MNIST = Path(os.environ.get("HANDPROP_DATA") or ROOT.parent / "shared" / "data") / "mnist"
#: Address space of each child: a memory blow-up fails there, not on the machine.
AS_LIMIT = 3 << 30


class Outcome(NamedTuple):
    status: int | None  # None: killed after the timeout (a hang)
    stdout: str
    stderr: str
    seconds: float
    peak_mb: float


#: Runs the command and writes its exit status and peak RSS (from wait4) to
#: the file descriptor it is given. A small process in between: a child forked from the test process
#: would count the test process's memory as its own peak (Linux keeps the
#: high-water mark of the process it was forked from, across exec).
LAUNCHER = """
import os, resource, sys
report, limit, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
pid = os.fork()
if pid == 0:
    os.close(report)
    os.execv(argv[0], argv)
_, status, usage = os.wait4(pid, 0)
os.write(report, f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}".encode())
"""


def observe(argv: list[str], *, timeout: float = 60, cwd=None, env=None) -> Outcome:
    """Run ``argv``; its exit status, output, wall time and peak RSS."""
    read, write = os.pipe()
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(write), str(AS_LIMIT), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env,
                            pass_fds=(write,), start_new_session=True)
    os.close(write)
    try:
        out, err = proc.communicate(timeout=timeout)
        report = os.read(read, 100).decode().split()
        status, peak = int(report[0]), int(report[1]) / 1024
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        status, peak = None, 0.0
    finally:
        os.close(read)
    return Outcome(status, out.decode(errors="replace"), err.decode(errors="replace"),
                   time.monotonic() - start, peak)


def _env():
    env = {**os.environ, "COLUMNS": "100"}
    extra = os.environ.get("HANDPROP_HOSTILE_SRC")
    if extra:  # the --src of the script mode
        env["PYTHONPATH"] = extra
    return env


def cli(*args, **kwargs) -> Outcome:
    return observe([sys.executable, "-m", "handprop", *map(str, args)], env=_env(), **kwargs)


def library(code: str, **kwargs) -> Outcome:
    """Run ``code``; a ValueError or TypeError it raises exits 2 with one line."""
    wrapped = ("import sys\ntry:\n" + "".join(f"    {line}\n" for line in code.splitlines())
               + "except (ValueError, TypeError) as exc:\n"
               "    kind = 'ValueError' if isinstance(exc, ValueError) else 'TypeError'\n"
               "    print(f'{kind}: {exc}', file=sys.stderr)\n    sys.exit(2)\n")
    return observe([sys.executable, "-c", wrapped], env=_env(), **kwargs)


def one_line(outcome: Outcome, pattern: str, *, seconds: float = 20, peak_mb: float = 400,
             status: int = 2):
    """The case ended in one line matching ``pattern``, exit ``status`` (2:
    bad input; 1: a result that failed), in bounds."""
    record = os.environ.get("HANDPROP_HOSTILE_RECORD")
    if record:  # the script mode's table
        with open(record, "a") as f:
            f.write(json.dumps({"case": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
                                "status": outcome.status, "seconds": round(outcome.seconds, 2),
                                "peak_mb": round(outcome.peak_mb),
                                "line": (outcome.stderr.strip().splitlines() or [""])[-1]
                                [:160]}) + "\n")
    assert outcome.status is not None, f"hung: killed after {outcome.seconds:.0f} s"
    lines = outcome.stderr.strip().splitlines()
    assert outcome.status == status, f"exit {outcome.status}: {outcome.stderr[-2000:]}"
    assert len(lines) == 1 and "Traceback" not in outcome.stderr, outcome.stderr[-2000:]
    assert re.search(pattern, lines[0]), lines[0]
    assert outcome.seconds < seconds, f"took {outcome.seconds:.1f} s"
    assert outcome.peak_mb < peak_mb, f"peak memory {outcome.peak_mb:.0f} MB"


# -- helpers that craft files ---------------------------------------------------------


def _mnist_copy(folder: Path) -> Path:
    folder.mkdir()
    for f in MNIST.glob("*.gz"):
        shutil.copy(f, folder / f.name)
    return folder


def _model(path: Path) -> Path:
    """A model written by the handprop under test (in a subprocess)."""
    r = library(f"from handprop import MLP\nMLP(2, 4, 2, seed=0).save({str(path)!r})")
    assert r.status == 0, r.stderr
    return path


def _rewrite(path: Path, change, *, rehash: bool = True, text=None) -> None:
    """Rewrite a handprop archive with ``change(arrays, meta)`` applied and,
    as an attacker can, its checksums recomputed; ``text`` edits the JSON
    text itself (for what JSON cannot say: a nesting, a number's digits)."""
    import hashlib

    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("metadata")))
    change(arrays, meta)
    if rehash:
        meta["sha256"] = {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()
                          for k, v in arrays.items()}
    header = json.dumps(meta)
    buffer = io.BytesIO()
    np.savez(buffer, metadata=np.array(text(header) if text else header), **arrays)
    path.write_bytes(buffer.getvalue())


def _finished_run(folder: Path) -> Path:
    r = cli("train", "--hidden", "4", "--epochs", "2", "--no-progress", "--out", folder)
    assert r.status == 0, r.stderr
    return folder


def _csv(path: Path, text: str | bytes) -> Path:
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


def _rows(n: int, label=lambda i: i % 2) -> str:
    return "".join(f"{i % 3}.5,{i % 5}.25,{label(i)}\n" for i in range(n))


# -- 1 to 4: corrupt, special and bomb files --------------------------------------------


def test_corrupted_gzip_mnist(tmp_path):
    data = _mnist_copy(tmp_path / "mnist")
    path = data / "train-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    for offset in range(len(raw) // 2, len(raw)):  # one byte flipped, where zlib notices
        raw[offset] ^= 0xFF
        try:
            gzip.decompress(bytes(raw))
        except zlib.error:
            break
        except OSError:  # a CRC error: handprop 0.1 caught those
            pass
        raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))
    one_line(cli("train", "--dataset", "mnist", "--data-dir", data, "--epochs", "1",
                 "--out", tmp_path / "run"),
             r"train-labels-idx1-ubyte.gz: (truncated or corrupt gzip|checksum mismatch)")


def test_a_fifo_as_a_model_does_not_hang(tmp_path):
    fifo = tmp_path / "f.npz"
    os.mkfifo(fifo)
    one_line(cli("evaluate", fifo, timeout=20), r"f.npz: a FIFO \(named pipe\), not a regular "
                                                r"file", seconds=10)
    one_line(library(f"from handprop import MLP\nMLP.load({str(fifo)!r})", timeout=20),
             "ValueError: .*a FIFO", seconds=10)


def test_a_fifo_as_a_checkpoint_does_not_hang(tmp_path):
    run = _finished_run(tmp_path / "run")
    (run / "checkpoint.npz").unlink()
    os.mkfifo(run / "checkpoint.npz")
    one_line(cli("train", "--resume", run, timeout=20), "checkpoint.npz: a FIFO", seconds=10)


@pytest.mark.parametrize("make", ["log", "space", "run.json"])
def test_other_files_that_are_fifos(tmp_path, make):
    fifo = tmp_path / "f"
    if make == "run.json":
        run = _finished_run(tmp_path / "run")
        (run / "run.json").unlink()
        os.mkfifo(run / "run.json")
        args = ("train", "--resume", run)
    else:
        os.mkfifo(fifo)
        args = ("curves", fifo) if make == "log" else ("sweep", "--space", fifo, "--out",
                                                       tmp_path / "sweep")
    one_line(cli(*args, timeout=20), "a FIFO \\(named pipe\\), not a regular file", seconds=10)


@pytest.mark.parametrize("value", [[], "0123", {"W1": 5}])
def test_malformed_model_checksums(tmp_path, value):
    path = _model(tmp_path / "m.npz")
    _rewrite(path, lambda a, m: m.__setitem__("sha256", value), rehash=False)
    one_line(cli("evaluate", path), "bad model metadata: sha256 must map|does not match its "
                                    "recorded sha256")


def test_a_checkpoint_order_out_of_range(tmp_path):
    run = _finished_run(tmp_path / "run")

    def stopped_mid_epoch(arrays, meta):
        meta.update(finished=None, epoch=1, history=meta["history"][:1],
                    in_epoch={"batch": 2, "wrong": 0, "loss_sum": 0.0, "seconds": 0.0,
                              "first_rate": 0.1})
        arrays["order"] = np.arange(600) + 10**9  # rows that do not exist

    _rewrite(run / "checkpoint.npz", stopped_mid_epoch)
    one_line(cli("train", "--resume", run), "a damaged checkpoint .*order is not a "
                                            "permutation of the 600 examples")


def test_a_checkpoint_with_settings_as_a_list(tmp_path):
    run = _finished_run(tmp_path / "run")
    _rewrite(run / "checkpoint.npz", lambda a, m: m.__setitem__("settings", []))
    one_line(cli("train", "--resume", run, "--epochs", "3", "--force"),
             "a damaged checkpoint: it does not record its run's settings")


def test_memory_follows_real_sizes_not_declared_ones(tmp_path):
    path = _model(tmp_path / "m.npz")
    # format 2 declares "hidden", format 1 (handprop 0.1) "d_h": both say 150 million
    _rewrite(path, lambda a, m: m.update(hidden=[150_000_000], d_h=150_000_000))
    assert path.stat().st_size < 4000
    one_line(cli("evaluate", path), r"W1 has shape \(4, 2\); the metadata says "
                                    r"\(150000000, 2\)", peak_mb=300)


def test_a_gzip_bomb_is_not_inflated(tmp_path):
    data = _mnist_copy(tmp_path / "mnist")
    header = b"".join(v.to_bytes(4, "big") for v in (2051, 60000, 28, 28))
    z = zlib.compressobj(1, zlib.DEFLATED, 31)  # a gzip stream
    with open(data / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(z.compress(header))
        block = bytes(16 << 20)
        for _ in range(64):  # 1 GiB of zeros, a few MB on disk
            f.write(z.compress(block))
        f.write(z.flush())
    one_line(cli("train", "--dataset", "mnist", "--data-dir", data, "--epochs", "1",
                 "--out", tmp_path / "run"),
             "train-images-idx3-ubyte.gz: too long: more than the 47040016 bytes that its "
             "header implies", peak_mb=400)


def test_a_zip_bomb_member_is_not_read(tmp_path):
    path = _model(tmp_path / "m.npz")
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("bomb.npy", "w", force_zip64=True) as w:
            buffer = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                buffer, {"descr": "<f8", "fortran_order": False, "shape": (2**27,)})
            w.write(buffer.getvalue())
            block = bytes(16 << 20)
            for _ in range(64):  # 1 GiB
                w.write(block)
    one_line(cli("evaluate", path), "the metadata declares arrays W1, b1, W2, b2; the file "
                                    "holds W1, W2, b1, b2, bomb", peak_mb=300)


# -- 5: CSV ---------------------------------------------------------------------------


def test_a_csv_cell_longer_than_the_csv_limit(tmp_path):
    path = _csv(tmp_path / "d.csv", _rows(10) + "1," + "9" * 200_000 + ",0\n")
    one_line(cli("train", "--dataset", path, "--out", tmp_path / "run"),
             r"d.csv: line 11, column 2: '9{20}'... \(200,000 characters\) is not a finite "
             r"number")


def test_a_huge_label_is_refused_before_allocating(tmp_path):
    path = _csv(tmp_path / "d.csv", _rows(20, lambda i: 1_000_000 if i == 3 else i % 2))
    one_line(cli("train", "--dataset", path, "--out", tmp_path / "run"),
             r"a label of 1000000 for 20 examples: labels are class indices 0 to m - 1",
             peak_mb=300)


def test_a_byte_order_mark_is_not_misread(tmp_path):
    from handprop.data.datasets import load_csv

    with_header = _csv(tmp_path / "h.csv", "\ufefflabel,x1,x2\n" + "".join(
        f"{i % 2},{i}.5,{i % 3}\n" for i in range(20)))
    _, y = load_csv(with_header)
    assert y.tolist() == [i % 2 for i in range(20)]
    r = cli("train", "--dataset", with_header, "--epochs", "1", "--no-progress", "--out",
            tmp_path / "run")
    assert r.status == 0 and "MLP(d=2, d_h=512, m=2," in r.stdout, r.stderr
    no_header = _csv(tmp_path / "n.csv", "\ufeff" + _rows(20))
    X, _ = load_csv(no_header)
    assert len(X) == 20  # the first row is data, not a header


def test_a_one_class_file_is_refused(tmp_path):
    path = _csv(tmp_path / "d.csv", _rows(20, lambda i: 0))
    one_line(cli("train", "--dataset", path, "--out", tmp_path / "run"),
             "every example has label 0: a classifier needs at least two classes")


def test_a_csv_that_is_not_utf8(tmp_path):
    path = _csv(tmp_path / "d.csv", "caf\xe9,x,label\n".encode("latin-1") + _rows(20).encode())
    one_line(cli("train", "--dataset", path, "--out", tmp_path / "run"),
             r"d.csv: not UTF-8 text \(byte 3 is 0xe9\)")


def test_values_beyond_float32(tmp_path):
    path = _csv(tmp_path / "d.csv", _rows(20).replace("0.5,", "1e308,", 1))
    r = cli("train", "--dataset", path, "--out", tmp_path / "run")
    one_line(r, r"X holds values up to 1e\+308, beyond float32's range")
    assert "RuntimeWarning" not in r.stderr


# -- 6, 7: huge numbers, rejected commands ----------------------------------------------


@pytest.mark.parametrize("option", ["--epochs", "--hidden", "--batch-size"])
def test_huge_integers(tmp_path, option):
    one_line(cli("train", option, str(10**400), "--out", tmp_path / "run"),
             f"argument {option}: .*must be an integer >= 1 that fits in 64 bits")
    assert not (tmp_path / "run").exists()


def test_a_huge_epochs_in_run_json(tmp_path):
    run = _finished_run(tmp_path / "run")
    saved = json.loads((run / "run.json").read_text())
    saved["settings"]["epochs"] = 10**40  # under the digit limit of the JSON reader
    (run / "run.json").write_text(json.dumps(saved))
    one_line(cli("train", "--resume", run), "not a run handprop can resume .*epochs must be an "
                                            "integer >= 1 that fits in 64 bits")


@pytest.mark.parametrize("code,message", [
    ("from handprop import fit, MLP\nfit(MLP(2, 3, 2), [[0.0, 1.0]], [1], lr=10**400)",
     "lr must be a number > 0, got 1000.*too large for a float"),
    ("from handprop import ElasticNet\nElasticNet(l1_W1=10**400)", "l1_W1 must be a number"),
    ("from handprop import MLPClassifier\nMLPClassifier(alpha=10**400).fit([[0.0], [1.0]], "
     "[0, 1])", "alpha must be a number >= 0"),
])
def test_huge_numbers_in_the_library(code, message):
    one_line(library(code), f"ValueError: {message}")


def test_a_rejected_command_does_not_touch_run_json(tmp_path):
    run = _finished_run(tmp_path / "run")
    before = (run / "run.json").read_bytes()
    one_line(cli("train", "--out", run, "--label-smoothing", "1.5"), "label_smoothing")
    assert (run / "run.json").read_bytes() == before


# -- 8 to 10: what is written, and where ---------------------------------------------------


def test_output_onto_a_fifo_is_refused(tmp_path):
    model = _model(tmp_path / "m.npz")
    points = _csv(tmp_path / "p.csv", "0.5,1.0\n")
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    one_line(cli("predict", model, points, "--out", fifo, timeout=20),
             "cannot write .*out.csv: it is a FIFO .*will not replace one that is not a "
             "regular file", seconds=10)
    assert fifo.is_fifo()


def test_output_through_a_symlink_replaces_its_target(tmp_path):
    model = _model(tmp_path / "m.npz")
    points = _csv(tmp_path / "p.csv", "0.5,1.0\n")
    target = tmp_path / "real.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    r = cli("predict", model, points, "--out", link)
    assert r.status == 0, r.stderr
    assert link.is_symlink() and target.read_text().startswith("prediction,p0,p1")


def _long_run_under_way(out: Path) -> subprocess.Popen:
    """A ``train`` of 100,000 epochs into ``out``, once its first epoch is logged."""
    proc = subprocess.Popen([sys.executable, "-m", "handprop", "train", "--epochs", "100000",
                             "--no-progress", "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 60
    while not (out / "log.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def test_two_runs_into_one_folder(tmp_path):
    out = tmp_path / "run"
    first = _long_run_under_way(out)
    second = cli("train", "--epochs", "30", "--out", out)
    assert first.poll() is None  # the first was training all along
    first.send_signal(signal.SIGINT)
    stdout, stderr = first.communicate(timeout=120)
    one_line(second, rf"{out} is in use: another handprop process \(pid {first.pid}\) is "
                     r"writing this run folder")
    assert first.returncode == 130, stderr
    from handprop.train.training import History

    epochs = [r.epoch for r in History.read_csv(out / "log.csv")]
    assert epochs == list(range(1, len(epochs) + 1))  # one run's rows, none interleaved


def test_stale_temporaries_of_a_live_writer_are_kept(tmp_path):
    from handprop.files import remove_stale_temporaries

    live = tmp_path / f".log.csv.{os.getpid()}-abc.tmp"
    dead = tmp_path / ".log.csv.999999999-abc.tmp"
    old_style = tmp_path / ".log.csv.x7y8z9.tmp"  # handprop 0.1's, from a killed run
    for p in (live, dead, old_style):
        p.write_text("partial")
    removed = remove_stale_temporaries(tmp_path)
    assert live.exists() and not dead.exists() and not old_style.exists()
    assert sorted(removed) == sorted([dead, old_style])


def test_a_new_run_does_not_replace_an_unfinished_one(tmp_path):
    run = _finished_run(tmp_path / "run")
    _rewrite(run / "checkpoint.npz", lambda a, m: m.update(finished=None))
    one_line(cli("train", "--out", run), "holds an unfinished run \\(stopped after epoch 2\\): "
                                         "continue it with handprop train --resume")
    r = cli("train", "--out", run, "--epochs", "1", "--force", "--no-progress")
    assert r.status == 0, r.stderr
    r = cli("train", "--out", run, "--epochs", "1", "--no-progress")
    assert r.status == 0, r.stderr  # a finished run is replaced without --force


# -- errors that say what is wrong -----------------------------------------------------------


def test_a_npy_file_named_npz(tmp_path):
    path = tmp_path / "m.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    one_line(cli("evaluate", path), r"m.npz: a single NumPy array \(.npy\), not a handprop "
                                    r"model file")
    one_line(cli("train", "--dataset", path, "--out", tmp_path / "run"),
             r"m.npz: a single NumPy array \(.npy\), not an .npz archive of X and y")


def test_data_dir_pointing_at_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    one_line(cli("train", "--dataset", "mnist", "--data-dir", path, "--out", tmp_path / "run"),
             "the MNIST folder .*file is a file, not a folder")


def test_a_mistyped_data_dir_is_not_created(tmp_path):
    missing = tmp_path / "mnsit" / "deep"
    one_line(cli("train", "--dataset", "mnist", "--data-dir", missing, "--out",
                 tmp_path / "run"), "the MNIST folder .*deep does not exist")
    assert not (tmp_path / "mnsit").exists()


@pytest.mark.parametrize("args,message", [
    (["train", "--seed", "-1"], r"argument --seed: seed must be an integer >= 0, got -1"),
    (["gradcheck", "--seed", "-1"], r"argument --seed: expected an integer >= 0"),
    (["train", "--hidden", "1e20"], r"argument --hidden: hidden must be one or more "
                                    r"positive integers"),
])
def test_options_that_name_themselves(tmp_path, args, message):
    one_line(cli(*args, "--out" if args[0] == "train" else "--k", tmp_path / "run"
                 if args[0] == "train" else "3"), message)


def test_resume_given_the_checkpoint_file(tmp_path):
    run = _finished_run(tmp_path / "run")
    one_line(cli("train", "--resume", run / "checkpoint.npz"),
             "argument --resume: .*checkpoint.npz is a file; give the run's folder")


# -- issue 21: nothing lost, nothing crashed --------------------------------------------


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.is_file() and p.name != ".handprop.lock"}  # the lock holds its pid


def test_a_rejected_train_keeps_a_finished_run(tmp_path):  # 1
    run = _finished_run(tmp_path / "fin")
    before = _files(run)
    one_line(cli("train", "--out", run, "--dataset", tmp_path / "nosuch.csv"),
             r"nosuch.csv: no such data file", seconds=10)
    assert _files(run) == before  # the checkpoint above all: the run is still whole


@pytest.mark.parametrize("bad", ["one class", "missing"])
def test_force_over_an_unfinished_run_with_bad_data_keeps_it(tmp_path, bad):  # 1
    run = _finished_run(tmp_path / "run")
    _rewrite(run / "checkpoint.npz", lambda a, m: m.update(finished=None))
    before = _files(run)
    data = _csv(tmp_path / "d.csv", _rows(20, lambda i: 0)) if bad == "one class" else \
        tmp_path / "nosuch.csv"
    one_line(cli("train", "--out", run, "--dataset", data, "--force"),
             "every example has label 0" if bad == "one class" else "no such data file",
             seconds=10)
    assert _files(run) == before  # still resumable: nothing removed or replaced


def test_an_unfinished_run_replaced_with_force_once_started(tmp_path):  # 1: the fix's other half
    run = _finished_run(tmp_path / "run")
    _rewrite(run / "checkpoint.npz", lambda a, m: m.update(finished=None))
    r = cli("train", "--out", run, "--epochs", "1", "--hidden", "3", "--force", "--no-progress")
    assert r.status == 0, r.stderr
    assert json.loads((run / "run.json").read_text())["net"]["hidden"] == [3]


@pytest.mark.parametrize("args", [
    ["train", "--resume", ""], ["train", "--resume", "  "], ["train", "--out", ""],
    ["train", "--dataset", ""], ["train", "--dataset", "mnist", "--data-dir", ""],
    ["evaluate", ""], ["evaluate", "m.npz", "--dataset", " "],
    ["evaluate", "m.npz", "--dataset", "mnist", "--data-dir", ""],
    ["predict", "m.npz", ""], ["predict", "", "p.csv"], ["predict", "m.npz", "p.csv", "--out", ""],
    ["curves", ""], ["curves", "log.csv", "--out", ""],
    ["regions", "--out", ""], ["regions", "--animate", ""], ["regions", "--dataset", ""],
    ["distortions", "--data-dir", ""], ["distortions", "--out", "\t"],
    ["export", "", "m.onnx"], ["export", "m.npz", ""], ["bench-epoch", "--data-dir", ""],
])
def test_empty_paths_are_refused(tmp_path, args):  # 2
    runs = _finished_run(tmp_path / "runs" / "moons")  # the default a blank --resume meant
    before = _files(runs)
    blank = next(i for i, a in enumerate(args) if i and not a.strip())
    named = args[blank - 1] if args[blank - 1].startswith("--") else "(model|file|log|onnx)"
    one_line(cli(*args, cwd=tmp_path), rf"argument {named}: expected a path, got an empty one",
             seconds=10)
    assert _files(runs) == before and sorted(os.listdir(tmp_path)) == ["runs"]


def test_a_checkpoint_missing_an_optimizer_array(tmp_path):  # 3
    run = _finished_run(tmp_path / "run")
    _rewrite(run / "checkpoint.npz", lambda a, m: a.pop("opt_velocity_b2"))
    one_line(cli("train", "--resume", run, "--epochs", "3", "--force"),
             r"a damaged checkpoint \(the optimizer's state lacks the velocity of b2\)")


def test_a_checkpoint_whose_step_count_is_not_the_runs(tmp_path):  # 3
    run = _finished_run(tmp_path / "run")
    _rewrite(run / "checkpoint.npz", lambda a, m: a.__setitem__("opt_t", np.array(5)))
    one_line(cli("train", "--resume", run, "--epochs", "3", "--force"),
             r"the optimizer's state counts 5 steps, but the run has taken 12")


def _stopped_in_epoch(arrays, meta, **part):
    """A checkpoint of a run stopped in epoch 2 after two minibatches."""
    meta.update(finished=None, epoch=1, history=meta["history"][:1],
                in_epoch={"batch": 2, "tally": [7], "loss_sum": 50.0, "seconds": 0.1,
                          "first_rate": 0.1, **part})
    arrays["order"] = np.random.default_rng(0).permutation(600)


def _set(key_path: str, value):
    """A change to the checkpoint's metadata at ``key_path`` ("a.b.0")."""
    def change(arrays, meta):
        if key_path.startswith("in_epoch."):
            _stopped_in_epoch(arrays, meta)
        *parents, last = key_path.split(".")
        node = meta
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value
    return change


@pytest.mark.parametrize("key,value,message", [
    ("schedule.current", -1, r"the schedule's current is out of range: -1"),
    ("schedule.current", "INF", r"the schedule's current must be a finite number, got inf"),
    ("schedule.best", "INF", r"the schedule's best must be a finite number, got inf"),
    ("schedule.bad_epochs", -3, r"the schedule's bad_epochs is out of range"),
    ("schedule.lr", 0, r"the schedule's lr is out of range: 0"),
    ("in_epoch.first_rate", 0, r"the stopped epoch's time, rate or loss is out of range"),
    ("in_epoch.loss_sum", "INF", r"loss_sum must be a finite number, got inf"),
    ("in_epoch.seconds", -100, r"the stopped epoch's time, rate or loss is out of range"),
    ("history.0.seconds", -100, r"epoch 1's record holds a loss, rate or time that is not a "
                                r"finite number in range"),
    ("history.0.train_loss", None, r"epoch 1's record holds a loss"),
    ("rng.state.state", -5, r"bad random generator state"),
    ("rng.state.state", 2**200, r"bad random generator state"),
])
def test_every_field_of_a_checkpoint_is_checked(tmp_path, key, value, message):  # 13
    run = tmp_path / "run"
    r = cli("train", "--hidden", "4", "--epochs", "2", "--schedule", "plateau", "--no-progress",
            "--out", run)
    assert r.status == 0, r.stderr
    big = 1e300  # a stand-in, written as 1e999 (inf to Python's JSON reader)
    _rewrite(run / "checkpoint.npz", _set(key, big if value == "INF" else value),
             text=lambda t: t.replace("1e+300", "1e999"))
    one_line(cli("train", "--resume", run, "--epochs", "3", "--force"),
             rf"checkpoint.npz: a damaged checkpoint \(.*{message}")


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("what", ["deep", "digits"])
@pytest.mark.parametrize("where", ["model", "checkpoint", "run.json", "space", "log"])
def test_nesting_and_digits_are_bounded_in_every_file(tmp_path, where, what):  # 14
    hostile = _deep(100_000) if what == "deep" else "1" * 5000
    if where == "model":
        path = _model(tmp_path / "m.npz")
        _rewrite(path, lambda a, m: m["meta"].update(x="HOSTILE"),
                 text=lambda t: t.replace('"HOSTILE"', hostile))
        args = ("evaluate", path)
    elif where in ("checkpoint", "run.json"):
        run = _finished_run(tmp_path / "run")
        if where == "checkpoint":
            _rewrite(run / "checkpoint.npz", lambda a, m: m.update(x="HOSTILE"),
                     text=lambda t: t.replace('"HOSTILE"', hostile))
        else:
            saved = json.loads((run / "run.json").read_text())
            saved["x"] = "HOSTILE"
            (run / "run.json").write_text(json.dumps(saved).replace('"HOSTILE"', hostile))
        args = ("train", "--resume", run, "--epochs", "3", "--force")
    elif where == "space":
        space = tmp_path / "space.toml"
        space.write_text(f"lr = {hostile}\n")
        args = ("sweep", "--space", space, "--out", tmp_path / "sweep")
    else:
        log = tmp_path / "log.csv"
        epoch = "1" if what == "deep" else hostile
        cell = hostile[:1000] if what == "deep" else "0.5"  # a row of brackets: not numbers
        log.write_text("epoch,train_error,train_loss,valid_error,valid_loss,test_error,"
                       f"test_loss,lr,seconds\n{epoch},{cell},0.3,0.1,0.3,0.1,0.3,0.1,1.0\n")
        args = ("curves", log, "--out", tmp_path / "c.png")
    messages = {"deep": "nested more than 64 deep|line 2 holds a non-numeric cell",
                "digits": "a number of more than 100 digits|line 2: the epoch must be a whole "
                          "number >= 1, got inf"}
    one_line(cli(*args), messages[what], seconds=15)


def _big_declared_model(path: Path, d: int, d_h: int) -> int:
    """A model file declaring (d_h, d) weights, all zeros, deflated to a few
    hundred KB: written a block at a time, as a small file can be."""
    import hashlib

    small = _model(tmp := path.with_name("small.npz"))
    with np.load(small, allow_pickle=False) as data:
        meta = json.loads(str(data["metadata"]))
    tmp.unlink()
    meta.update(d=d, hidden=[d_h], m=2, dtype="float32")
    shapes = {"W1": (d_h, d), "b1": (d_h,), "W2": (2, d_h), "b2": (2,)}
    meta["sha256"] = {}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, shape in shapes.items():
            h = hashlib.sha256()
            with zf.open(f"{name}.npy", "w", force_zip64=True) as w:
                buffer = io.BytesIO()
                np.lib.format.write_array_header_1_0(
                    buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
                w.write(buffer.getvalue())
                left = int(np.prod(shape)) * 4
                block = bytes(min(left, 16 << 20))
                while left:
                    chunk = block[:min(left, len(block))]
                    w.write(chunk)
                    h.update(chunk)
                    left -= len(chunk)
            meta["sha256"][name] = h.hexdigest()
        buffer = io.BytesIO()
        np.save(buffer, np.array(json.dumps(meta)))
        zf.writestr("metadata.npy", buffer.getvalue())
    return d_h * d * 4


def test_a_big_model_is_loaded_once(tmp_path):  # 15
    path = tmp_path / "big.npz"
    nbytes = _big_declared_model(path, 20_000, 5_000)  # 400 MB of float32 weights
    assert path.stat().st_size < 2_000_000
    r = cli("evaluate", path, timeout=120)
    # one copy of the weights and the interpreter; a second copy is 800 MB
    one_line(r, "moons has 2 features; the model expects 20000", seconds=30,
             peak_mb=nbytes / 2**20 * 1.25 + 150)


def test_a_csv_is_read_in_bounded_memory(tmp_path):  # 16
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300_000, 10))
    path = tmp_path / "big.csv"
    np.savetxt(path, np.column_stack([X, rng.integers(0, 2, len(X))]), delimiter=",",
               fmt="%.8g")
    model = tmp_path / "m.npz"
    assert library(f"from handprop import MLP\nMLP(10, 4, 2, seed=0).save({str(model)!r})"
                   ).status == 0
    table_mb = X.nbytes * 11 / 10 / 2**20  # the float64 table the file becomes: 25 MB
    r = cli("evaluate", model, "--dataset", path, "--split", "all", timeout=120)
    assert r.status == 0, r.stderr
    # the table, the features without the label, the split's copies and float32
    # copies for the net, and the interpreter (90 MB in all, measured); handprop
    # 0.2 held the text, its lines and every cell besides: about 20 times the file
    assert r.peak_mb < 3 * table_mb + 60, f"peak memory {r.peak_mb:.0f} MB"
    one_line(r._replace(status=2, stderr="a line"), "a line", seconds=30)  # time, recorded


def test_a_long_log_is_read_in_bounded_memory(tmp_path):  # 16
    path = tmp_path / "log.csv"
    n = 200_000
    with open(path, "w") as f:
        f.write("epoch,train_error,train_loss,valid_error,valid_loss,test_error,test_loss,lr,"
                "seconds\n")
        for i in range(1, n + 1):
            f.write(f"{i},0.0{i % 97:02d}31,0.2378123456,0.0354,0.1155234,0.0348,0.11221234,"
                    f"0.1,0.7512345\n")
    code = ("try:\n    from handprop.train.history import History\nexcept ImportError:\n"
            "    from handprop.training import History\n"
            f"h = History.read_csv({str(path)!r})\nassert len(h) == {n}\n"
            "raise ValueError('read')")
    # 200,000 records of nine numbers (14 MB as an array, 15 MB on disk): 127 MB
    # measured, the records' Python objects most of it; handprop 0.2 held the
    # text, its lines and every cell besides
    one_line(library(code), "ValueError: read", seconds=30, peak_mb=160)


@pytest.mark.parametrize("command", ["curves", "distortions", "regions"])
def test_a_figure_format_is_checked_before_the_work(tmp_path, command):  # 17
    # the work would fail otherwise (a missing log, a missing MNIST folder) or
    # take long (regions trains nine nets): the format's message must come first
    args = {"curves": ("curves", tmp_path / "nosuch.csv"),
            "distortions": ("distortions", "--data-dir", tmp_path / "nosuch"),
            "regions": ("regions", "--epochs", "2000")}[command]
    one_line(cli(*args, "--out", tmp_path / "x.txt"),
             r"cannot write a figure as x.txt: the formats are .*png", seconds=10)
    assert not (tmp_path / "x.txt").exists()


def test_an_mp4_without_ffmpeg_is_refused_before_training(tmp_path):  # 18
    png = tmp_path / "regions.png"
    png.write_bytes(b"the old figure")
    r = observe([sys.executable, "-m", "handprop", "regions", "--epochs", "2000", "--out",
                 str(png), "--animate", str(tmp_path / "x.mp4")],
                env={**_env(), "PATH": str(tmp_path / "no-ffmpeg-here")})
    one_line(r, r"cannot write x.mp4: an .mp4 needs ffmpeg, which is not installed",
             seconds=8)
    assert png.read_bytes() == b"the old figure"


def test_divergence_in_regions_is_reported_as_in_train(tmp_path):  # 19
    one_line(cli("regions", "--lr", "1e300", "--hidden", "2", "--l2", "0", "--epochs", "2",
                 "--out", tmp_path / "r.png"),
             r"^handprop: d_h 2, l2 0: training diverged: the loss became nan", status=1)
    assert not (tmp_path / "r.png").exists()


def test_distortions_has_a_bounded_n(tmp_path):  # 20
    one_line(cli("distortions", "--n", "100000", "--out", tmp_path / "d.png"),
             r"argument --n: at most 64 digits, got 100000", seconds=5)


@pytest.mark.parametrize("args,message", [
    (["gradcheck", "--k", "100000000"], "it is for small nets"),
    (["gradcheck", "--d-h", "200000000"], "it is for small nets"),
    (["gradcheck", "--d-h", ",".join(["1"] * 50_000)],
     "argument --d-h: hidden sizes must name at most 1000 hidden layers, got 50,000"),
    (["compare-grads", "--k", "100000000"], "it is for small nets"),
    (["train", "--hidden", "200000000"], r"training a net of hidden sizes 200000000 on 2 inputs "
                                         r"would take about \d+\.\d GiB, more than"),
    (["train", "--hidden", "1000000,1000000"], r"hidden sizes 1000000,1000000 on 2 inputs "
                                                r"would take about \d+\.\d GiB, more than"),
    (["train", "--hidden", ",".join(["1"] * 50_000)],
     "argument --hidden: hidden must name at most 1000 hidden layers, got 50,000"),
], ids=lambda v: " ".join(v)[:40] if isinstance(v, list) else "")
def test_sizes_are_bounded_before_allocating(tmp_path, args, message):  # 21
    one_line(cli(*args, *(["--out", tmp_path / "run"] if args[0] == "train" else [])),
             message, seconds=8, peak_mb=200)
    assert not (tmp_path / "run").exists()


def test_a_library_net_too_big_for_memory():  # 21
    one_line(library("from handprop import MLP\nMLP(2, 10**12, 2)"),
             r"ValueError: a net of 5,000,000,000,002 parameters .* would take \d+.* GiB, more "
             r"than", seconds=8, peak_mb=200)


@pytest.mark.parametrize("force", [False, True])
def test_out_naming_a_file(tmp_path, force):  # 22
    one_line(cli("train", "--out", tmp_path / "myrun.npz", *(["--force"] if force else [])),
             r"argument --out: .*myrun.npz names a file, but --out is the run's folder .*such "
             r"as .*myrun", seconds=8)
    assert not (tmp_path / "myrun.npz").exists()


def test_a_run_folder_whose_name_ends_in_npz(tmp_path):  # 22: a folder is a folder
    run = tmp_path / "myrun.npz"
    run.mkdir()
    r = cli("train", "--out", run, "--epochs", "1", "--hidden", "3", "--no-progress")
    assert r.status == 0 and (run / "checkpoint.npz").is_file(), r.stderr
    r = cli("train", "--resume", run, "--epochs", "2", "--force", "--no-progress")
    assert r.status == 0 and "resuming the run" in r.stdout, r.stderr


@pytest.mark.parametrize("weights,message", [
    ("-np.ones(60)", r"sample_weight must hold weights >= 0, one per example; got -1"),
    ("np.r_[np.ones(59), -0.5]", r"sample_weight must hold weights >= 0.*got -0.5 "
                                 r"\(example 59\)"),
])
@pytest.mark.parametrize("estimator", ["MLPClassifier", "MLPRegressor"])
def test_a_negative_sample_weight_is_named(estimator, weights, message):  # 23
    one_line(library(f"import numpy as np\nfrom handprop import {estimator}\n"
                     f"X = np.random.default_rng(0).normal(size=(60, 2))\n"
                     f"{estimator}(max_iter=5).fit(X, np.arange(60) % 2, sample_weight="
                     f"{weights})"), f"ValueError: {message}", seconds=15)


# -- weak messages, each naming what is wrong in one line ----------------------------------


@pytest.mark.parametrize("kind,message", [
    ("device", r"d.csv: a device \(through a symbolic link\), not a regular file"),
    ("folder", r"d.csv: a folder, not a regular file"),
    ("loop", r"d.csv: a loop of symbolic links, which never reaches a data file"),
    ("dangling", r"d.csv: a symbolic link to gone.csv, which does not exist"),
])
def test_special_data_files_are_named(tmp_path, kind, message):
    path = tmp_path / "d.csv"
    if kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "folder":
        path.mkdir()
    elif kind == "loop":
        (tmp_path / "e.csv").symlink_to(path)
        path.symlink_to(tmp_path / "e.csv")
    else:
        path.symlink_to("gone.csv")
    one_line(cli("train", "--dataset", path, "--out", tmp_path / "run", timeout=20), message,
             seconds=10)
    assert not (tmp_path / "run").exists()


def test_an_infinite_option_is_shown_as_given(tmp_path):
    one_line(cli("train", "--label-smoothing", "1e309", "--out", tmp_path / "run"),
             r"argument --label-smoothing: label_smoothing must be a number in \[0, 1\), got "
             r"'1e309' \(too large for a number, or not finite\)", seconds=8)


def test_a_newline_in_a_path_is_shown_escaped(tmp_path):
    path = tmp_path / "a\nb.npz"
    one_line(cli("evaluate", path), r"'.*a\\nb.npz': no such model file", seconds=8)
    one_line(library(f"from handprop import MLP\nMLP.load({str(path)!r})"),
             r"ValueError: '.*a\\nb.npz': no such model file", seconds=8)


def test_a_huge_npy_header_is_named(tmp_path):
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), 'x': '" + "a" * 200_000
    header += "'}" + " " * (64 - (12 + len(header) + 3) % 64) + "\n"
    member = b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little") + header.encode()
    path = tmp_path / "d.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("X.npy", member + bytes(24))
        zf.writestr("y.npy", member + bytes(24))
    one_line(cli("train", "--dataset", path, "--out", tmp_path / "run"),
             r"d.npz: array X has a .npy header of 200,\d{3} bytes, more than the 10,000 of any "
             r"array handprop reads", seconds=8)


@pytest.mark.parametrize("cell", ["1_000", "\u0661", "0x10"])
def test_csv_errors_count_lines_from_one(tmp_path, cell):
    path = _csv(tmp_path / "d.csv", "x1,x2,label\n" + _rows(49) + f"1.5,{cell},1\n")
    one_line(cli("train", "--dataset", path, "--out", tmp_path / "run"),
             rf"d.csv: line 51, column 2: '{cell}' is not a number", seconds=10)


@pytest.mark.parametrize("where", ["new", "deep", "existing"])
def test_a_rejected_train_leaves_no_folder_or_lock(tmp_path, where):
    out = {"new": tmp_path / "run", "deep": tmp_path / "a" / "b" / "run",
           "existing": tmp_path / "empty"}[where]
    if where == "existing":
        out.mkdir()
    one_line(cli("train", "--out", out, "--dataset", tmp_path / "nosuch.csv"),
             "no such data file", seconds=10)
    assert sorted(os.listdir(tmp_path)) == (["empty"] if where == "existing" else [])
    assert where != "existing" or os.listdir(out) == []


def test_a_default_run_folder_is_not_left_behind(tmp_path):
    one_line(cli("train", "--dataset", tmp_path / "nosuch.csv", cwd=tmp_path),
             "no such data file", seconds=10)
    assert os.listdir(tmp_path) == []  # neither runs/nosuch nor runs/


@pytest.mark.parametrize("args", [
    ["train", "--epochs"], ["train", "--batch-size"], ["train", "--seed"],
    ["train", "--patience"], ["train", "--hidden"], ["train", "--lr"], ["train", "--momentum"],
    ["gradcheck", "--k"], ["gradcheck", "--d"], ["gradcheck", "--m"], ["gradcheck", "--seed"],
    ["gradcheck", "--order"], ["gradcheck", "--d-h"], ["gradcheck", "--eps"],
    ["gradcheck", "--tol"], ["compare-grads", "--k"],
    ["regions", "--hidden"], ["regions", "--epochs"], ["regions", "--batch-size"],
    ["regions", "--n-train"], ["regions", "--seed"], ["regions", "--lr"],
    ["regions", "--momentum"], ["regions", "--noise"], ["regions", "--l2"],
    ["distortions", "--n"], ["distortions", "--seed"], ["bench-epoch", "--k"],
    ["playground", "--port"],
], ids="-".join)
def test_digits_of_other_scripts_are_refused(tmp_path, args):
    # Arabic-Indic 2 (and 0.2): int() and float() take them, which no one means
    value = "\u0662" if args[1] not in ("--lr", "--momentum", "--noise", "--eps", "--tol",
                                        "--l2") else "\u0660.\u0662"
    one_line(cli(*args, value, cwd=tmp_path), rf"argument {args[1]}: .*{value}", seconds=8)
    assert os.listdir(tmp_path) == []


def _in_a_small_file_system(tmp_path: Path, script: str, *, read_only: bool) -> Outcome:
    """Run ``script`` (sh) with a 64 KB tmpfs mounted at ``tmp_path``/fs,
    read-only or not, in a mount namespace of its own (unshare(1): root
    only, here and in CI)."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs unshare(1) and root to mount a small file system")
    fs = tmp_path / "fs"
    fs.mkdir()
    remount = f"mount -o remount,ro {fs} && " if read_only else ""
    r = observe([unshare, "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {fs} && "
                 f"mkdir -p {fs}/runs && {remount}exec {script}"], env=_env(), timeout=60)
    if r.status != 0 and "mount" in r.stderr and "handprop" not in r.stderr:
        pytest.skip(f"cannot mount here: {r.stderr.strip()}")
    return r


@pytest.mark.parametrize("read_only", [True, False])
def test_a_full_or_read_only_disk_names_the_file(tmp_path, read_only):
    model = _model(tmp_path / "m.npz")
    points = _csv(tmp_path / "p.csv", "".join(f"{i}.5,{i}.25\n" for i in range(5000)))
    out = tmp_path / "fs" / "runs" / "predictions.csv"
    r = _in_a_small_file_system(tmp_path, f"{sys.executable} -m handprop predict {model} "
                                           f"{points} --out {out}", read_only=read_only)
    reason = "Read-only file system" if read_only else "No space left on device"
    one_line(r, rf"^handprop: error: cannot write {out}: {reason}; nothing was replaced$",
             seconds=10)


def test_a_full_disk_during_training_names_the_file(tmp_path):
    out = tmp_path / "fs" / "runs" / "run"
    r = _in_a_small_file_system(tmp_path, f"{sys.executable} -m handprop train --hidden 64 "
                                           f"--epochs 3 --no-progress --out {out}",
                                read_only=False)
    one_line(r, rf"cannot write (the checkpoint )?{out}/\S+: No space left on device",
             seconds=20)


def test_sighup_stops_after_a_minibatch_with_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    proc = _long_run_under_way(out)
    time.sleep(0.3)
    proc.send_signal(signal.SIGHUP)  # the terminal closed
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 129, stderr
    assert re.search(r"SIGHUP: stopped .*checkpoint written to .*resume with: handprop train "
                     r"--resume", stderr), stderr
    from handprop.train import checkpoint

    assert checkpoint.load(out, meta_only=True)[1]["epoch"] >= 1


# -- the MNIST download ----------------------------------------------------------------------


def _download(tmp_path: Path, mirror_url: str, *, archives=None) -> Outcome:
    """load_mnist in a child, the train labels missing, from one mirror."""
    data = _mnist_copy(tmp_path / "mnist")
    (data / "train-labels-idx1-ubyte.gz").unlink()
    code = ("from handprop.data import datasets\n"
            f"datasets.MNIST_MIRRORS = ({mirror_url!r},)\ndatasets.DOWNLOAD_RETRIES = 0\n"
            + (f"datasets.MNIST_ARCHIVES = {archives!r}\n" if archives else "")
            + f"datasets.load_mnist({str(data)!r}, timeout=5, progress=False)")
    r = library(code, timeout=60)
    assert sorted(p.name for p in data.iterdir()) == sorted(
        f.name for f in MNIST.glob("*.gz") if "train-labels" not in f.name)  # nothing left
    return r._replace(stderr="\n".join(line for line in r.stderr.splitlines()
                                       if not line.startswith("handprop: downloading")))


def test_a_download_that_never_ends_is_cut_off(tmp_path):
    import mirror

    with mirror.serve(routes={"/train-labels-idx1-ubyte.gz": mirror.flood}) as local:
        r = _download(tmp_path, local.url)
    one_line(r, r"train-labels-idx1-ubyte.gz: more than the 28,881 bytes of the file",
             seconds=20, peak_mb=300)


def test_a_downloaded_bomb_is_checked_before_it_is_decompressed(tmp_path):
    import mirror

    served = tmp_path / "served"
    served.mkdir()
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    with open(served / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(z.compress((2049).to_bytes(4, "big") + (60000).to_bytes(4, "big")))
        block = bytes(16 << 20)
        for _ in range(64):  # 1 GiB of zeros, about 1 MB on disk
            f.write(z.compress(block))
        f.write(z.flush())
    size = (served / "train-labels-idx1-ubyte.gz").stat().st_size
    real = {"train-labels-idx1-ubyte": (size, "0" * 64)}  # its size, another checksum
    with mirror.serve(served) as local:
        r = _download(tmp_path, local.url, archives=real)
    one_line(r, r"train-labels-idx1-ubyte.gz: checksum mismatch", seconds=20, peak_mb=300)


@pytest.mark.parametrize("how", ["plain http", "redirected to http"])
def test_a_download_over_plain_http_is_refused(tmp_path, how):
    import mirror

    if how == "plain http":
        r = _download(tmp_path, "http://mnist.example.org/")
    else:
        route = mirror.redirect("http://mnist.example.org/train-labels-idx1-ubyte.gz")
        with mirror.serve(routes={"/train-labels-idx1-ubyte.gz": route}) as local:
            r = _download(tmp_path, local.url)
    one_line(r, r"http://mnist.example.org/train-labels-idx1-ubyte.gz: not HTTPS", seconds=20)


# -- the script mode: every case's outcome, for a before-and-after table ------------------


def main(argv: list[str]) -> int:
    import tempfile

    if "--src" in argv:
        os.environ["HANDPROP_HOSTILE_SRC"] = str(Path(argv[argv.index("--src") + 1]).resolve())
    record = Path(tempfile.mkdtemp()) / "outcomes.jsonl"
    os.environ["HANDPROP_HOSTILE_RECORD"] = str(record)
    chosen = ["-k", argv[argv.index("-k") + 1]] if "-k" in argv else []
    status = pytest.main([__file__, "-q", "-p", "no:cacheprovider", "--tb=no", *chosen])
    print("\n| case | exit | seconds | peak MB | last line of stderr |\n|---|---:|---:|---:|---|")
    for line in record.read_text().splitlines() if record.exists() else []:
        r = json.loads(line)
        text = re.sub(r"/tmp/\S*/", "", r["line"]).replace("|", "/")
        print(f"| {r['case'].split('::')[-1]} | {r['status']} | {r['seconds']} | "
              f"{r['peak_mb']} | {text} |")
    return status


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main(sys.argv[1:]))
