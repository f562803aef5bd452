"""The sweep under hostile use (issue 21's cases 7, 8, 9, 11 and 12), for a
before-and-after table: each command's exit status, lines of stderr,
seconds and last line, run from a fresh folder with the handprop found in
SRC (a checkout's src/, say of an earlier version). Optional case numbers
run only those.

    python benchmarks/sweep_hostile.py SRC [7 8 9 11 12]

Case 11 (--workers 100000) is sampled for 15 s, then killed: an old version
would take the machine's memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# each process's address space is capped (not their sum: case 11 is also
# sampled for 15 s only, then its whole session killed)
MEMORY = 16 << 30


def session_memory(pid: int) -> tuple[int, float]:
    """The processes of ``pid``'s session and their resident memory summed, in MB."""
    pids = subprocess.run(["pgrep", "-s", str(pid)], capture_output=True, text=True).stdout.split()
    total, page = 0, os.sysconf("SC_PAGESIZE")
    for q in pids:
        try:
            total += int(Path(f"/proc/{q}/statm").read_text().split()[1]) * page
        except OSError:
            pass
    return len(pids), total / 2**20


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def _running(pid: int) -> int:
    """How many processes of ``pid``'s session are running (zombies left out)."""
    lines = subprocess.run(["ps", "-o", "pid=,stat=", "-s", str(pid)], capture_output=True,
                           text=True).stdout.splitlines()
    return sum(1 for line in lines if line.strip() and "Z" not in line.split()[1])


def run(args: list[str], cwd: str, env: dict, timeout: float = 120, sig_after=None,
        sample: int | None = None):
    """Run ``handprop sweep ARGS`` in ``cwd``: (exit, stderr lines, seconds, last line, notes).

    ``sig_after`` = (signal, seconds) sends the signal to the parent, then
    counts what still runs 8 s later; ``sample`` = seconds samples the
    session's memory once a second."""
    t0 = time.monotonic()
    # stderr to a file: workers that outlive their parent hold no pipe open,
    # and a chatty command cannot block on a full pipe while we sleep
    with tempfile.TemporaryFile() as err_file:
        p = subprocess.Popen([sys.executable, "-m", "handprop", "sweep", *args], cwd=cwd,
                             env=env, stdout=subprocess.DEVNULL, stderr=err_file,
                             start_new_session=True, preexec_fn=_limit_memory)
        extra = ""
        try:
            if sig_after:
                time.sleep(sig_after[1])
                os.kill(p.pid, sig_after[0])
                time.sleep(8)
                alive = p.poll() is None
                workers = _running(p.pid) - alive
                extra = (f"; 8 s after the signal: parent {'alive' if alive else 'gone'}, "
                         f"{workers} worker processes running")
            if sample:
                peak = (0.0, 0)
                for _ in range(sample):
                    time.sleep(1)
                    n, mb = session_memory(p.pid)
                    peak = max(peak, (mb, n))
                    if p.poll() is not None:
                        break
                extra = (f"; largest RSS summed over its processes in {sample} s: "
                         f"{peak[0]:.0f} MB in {peak[1]} processes")
            status = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            status = "killed at timeout"
        finally:
            subprocess.run(["pkill", "-9", "-s", str(p.pid)], check=False)
        err_file.seek(0)
        err = err_file.read()
    lines = [line for line in err.decode(errors="replace").splitlines() if line.strip()]
    return status, len(lines), time.monotonic() - t0, (lines[-1][:150] if lines else ""), extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="the folder that holds the handprop package to run")
    parser.add_argument("cases", nargs="*", help="the cases to run: 7, 8, 9, 11, 12 (default all)")
    args = parser.parse_args()
    unknown = set(args.cases) - {"7", "8", "9", "11", "12"}
    if unknown:
        parser.error(f"unknown case {', '.join(sorted(unknown))}; cases are 7, 8, 9, 11, 12")
    env = {**os.environ, "PYTHONPATH": os.path.abspath(args.src), "COLUMNS": "100"}

    def case(number: str, name: str, space: str, sweep_args: list[str], again=False,
             **kw) -> None:
        if args.cases and number not in args.cases:
            return
        folder = tempfile.mkdtemp()
        Path(folder, "s.toml").write_text(space)
        for label in [name, "the same again"][: 1 + again]:
            status, n, sec, last, extra = run(["--space", "s.toml", *sweep_args], folder, env,
                                              **kw)
            print(f"| {number}: {label} | {status} | {n} | {sec:.1f} | "
                  f"{last.replace('|', '/')}{extra} |", flush=True)

    out = ["--out", "o"]
    long = "epochs = 3000\n"
    print("| case | exit | stderr lines | seconds | last line |\n|---|---|---:|---:|---|")
    case("7", "one diverging trial (lr = 1e30)", "epochs = 3\nlr = 1e30\n",
         ["--trials", "3", "--workers", "2", *out])
    case("8", "a bad space (lr = -1)", "epochs = 3\nlr = -1\n", ["--trials", "2", *out],
         again=True)
    case("9", "SIGTERM to the parent of --workers 2", long,
         ["--trials", "4", "--workers", "2", *out], sig_after=(signal.SIGTERM, 12))
    case("9", "SIGINT to the parent of --workers 2", long,
         ["--trials", "4", "--workers", "2", *out], sig_after=(signal.SIGINT, 12))
    case("11", "--workers 100000", "epochs = 3\n",
         ["--trials", "2", "--workers", "100000", *out], timeout=1, sample=15)
    case("12", "--storage sqlite:////nonexistent/dir/x.db", "epochs = 3\n",
         ["--trials", "2", "--storage", "sqlite:////nonexistent/dir/x.db"])


if __name__ == "__main__":
    main()
