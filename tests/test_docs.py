"""The docs show real commands with their real output: run them.

Every ```console block in docs/*.md and README.md holds lines "$ command"
followed by the command's output. The command is run (in a scratch folder
that has an empty docs/figures/ and a copy of examples/) and its output compared line by line: words
exactly, numbers to a relative 1e-3 or an absolute 1e-6, so that round-off
from another BLAS kernel (the last digits of a 1e-9 relative error, say)
does not fail the docs while any real change does. A block right after an
HTML comment ``<!-- output varies -->`` (timings, training runs) is only run,
and must exit 0; ``<!-- not run -->`` skips a block too long for the tests
(a full MNIST run, which its benchmark script reproduces).
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
BLOCK = re.compile(r"(<!-- (?P<mark>[a-z ]+) -->\s*\n)?```console\n(?P<body>.*?)```", re.S)


def _blocks():
    for path in DOCS:
        if not path.exists():
            continue
        text = path.read_text()
        for match in BLOCK.finditer(text):
            line = text[: match.start("body")].count("\n") + 1
            yield pytest.param(match.group("mark"), match.group("body"),
                               id=f"{path.name}:{line}")


NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?%?[,)]?$")


def _same_line(got: str, want: str) -> bool:
    a, b = got.split(), want.split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        if not (NUMBER.match(x) and NUMBER.match(y)):
            return False
        fx, fy = (float(t.rstrip(",)%")) for t in (x, y))
        if abs(fx - fy) > max(1e-6, 1e-3 * abs(fy)):
            return False
    return True


def _commands(body):
    """(command, expected output lines) pairs of a console block."""
    out = []
    for line in body.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif out:
            out[-1][1].append(line)
    return out


@pytest.mark.parametrize("mark,body", list(_blocks()))
def test_console_block(mark, body, tmp_path):
    if mark == "not run":
        pytest.skip("marked <!-- not run -->")
    env = {**os.environ, "COLUMNS": "100"}
    (tmp_path / "docs" / "figures").mkdir(parents=True)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    for command, expected in _commands(body):
        argv = shlex.split(command)
        if argv[0] == "handprop":
            argv = [sys.executable, "-m", "handprop", *argv[1:]]
        elif argv[0] in ("python", "python3"):  # the interpreter that runs the tests
            argv = [sys.executable, *argv[1:]]
        r = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env,
                           timeout=600)
        assert r.returncode == 0, f"{command}\n{r.stdout}\n{r.stderr}"
        if mark != "output varies":
            got = r.stdout.rstrip("\n").splitlines()
            assert len(got) == len(expected), f"{command}\n{r.stdout}"
            for g, w in zip(got, expected):
                assert _same_line(g, w), f"{command}\n got: {g}\nwant: {w}"
