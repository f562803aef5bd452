"""Untrusted files and hostile input: one line, exit 2, bounded time and memory.

Each case builds its files on the fly, runs the command line (or a library
call) in a subprocess, and checks its exit status, the one line it prints,
its wall time and its peak memory (the child's own, from ``wait4``). A
hostile input must never hang, never take memory in proportion to what a
file merely declares, never print a traceback, and never be misread.

    python tests/test_hostile.py             # every case, a line each
    python tests/test_hostile.py --src DIR   # the same against another src/ (a
                                             # checkout of an earlier version)
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


def one_line(outcome: Outcome, pattern: str, *, seconds: float = 20, peak_mb: float = 400):
    """The case ended in one line matching ``pattern``, exit 2, in bounds."""
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
    assert outcome.status == 2, f"exit {outcome.status}: {outcome.stderr[-2000:]}"
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


def _rewrite(path: Path, change, *, rehash: bool = True) -> None:
    """Rewrite a handprop archive with ``change(arrays, meta)`` applied and,
    as an attacker can, its checksums recomputed."""
    from handprop.files import digest

    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("metadata")))
    change(arrays, meta)
    if rehash:
        meta["sha256"] = {k: digest(v) for k, v in arrays.items()}
    buffer = io.BytesIO()
    np.savez(buffer, metadata=np.array(json.dumps(meta)), **arrays)
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


def test_two_runs_into_one_folder(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "handprop", "train", "--epochs", "100000",
                              "--no-progress", "--out", str(out)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 60
    while not (out / "log.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
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


# -- the script mode: every case's outcome, for a before-and-after table ------------------


def main(argv: list[str]) -> int:
    import tempfile

    if "--src" in argv:
        os.environ["HANDPROP_HOSTILE_SRC"] = str(Path(argv[argv.index("--src") + 1]).resolve())
    record = Path(tempfile.mkdtemp()) / "outcomes.jsonl"
    os.environ["HANDPROP_HOSTILE_RECORD"] = str(record)
    status = pytest.main([__file__, "-q", "-p", "no:cacheprovider", "--tb=no"])
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
