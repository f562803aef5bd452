"""The docs show real commands with their real output: run them.

Every ```console block in docs/*.md and README.md holds lines "$ command"
followed by the command's output. The command is run and its output compared
line by line. A block right after an HTML comment ``<!-- output varies -->``
(timings, say) is only run, and must exit 0; ``<!-- not run -->`` skips a
block that needs what tests cannot have (a long training run, a network).
"""

import os
import re
import shlex
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
    for command, expected in _commands(body):
        argv = shlex.split(command)
        if argv[0] == "handprop":
            argv = [sys.executable, "-m", "handprop", *argv[1:]]
        r = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env,
                           timeout=600)
        assert r.returncode == 0, f"{command}\n{r.stdout}\n{r.stderr}"
        if mark != "output varies":
            assert r.stdout.rstrip("\n").splitlines() == expected, command
