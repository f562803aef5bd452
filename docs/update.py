"""Re-run the commands of the docs' console blocks and paste their new output.

Run from the repository root after a change that alters what a command
prints:

    HANDPROP_DATA=../shared/data .venv/bin/python docs/update.py docs/assignment.md

Blocks marked ``<!-- not run -->`` are left alone (their commands take
minutes; rerun them by hand). An output shown with a ``...`` line keeps as
many lines before and after it as it had. Commands run from the repository
root, so figures written under ``docs/figures/`` are regenerated too.
``tests/test_docs.py`` checks the result.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

BLOCK = re.compile(r"(<!-- (?P<mark>[a-z ]+) -->\s*\n)?```console\n(?P<body>.*?)```", re.S)


def run(command: str) -> list[str]:
    argv = shlex.split(command)
    if argv[0] == "handprop":
        argv = [sys.executable, "-m", "handprop", *argv[1:]]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{command} failed:\n{r.stderr}")
    return r.stdout.rstrip("\n").splitlines()


def shorten(new: list[str], old: list[str]) -> list[str]:
    if "..." not in old:
        return new
    cut = old.index("...")
    head, tail = cut, len(old) - cut - 1
    if len(new) <= head + tail:
        return new
    return new[:head] + ["..."] + (new[-tail:] if tail else [])


def update_body(body: str) -> str:
    lines = body.rstrip("\n").splitlines()
    out = []
    i = 0
    while i < len(lines):
        command = lines[i][2:]
        j = i + 1
        while j < len(lines) and not lines[j].startswith("$ "):
            j += 1
        out += [lines[i], *shorten(run(command), lines[i + 1:j])]
        i = j
    return "\n".join(out) + "\n"


def main() -> None:
    for name in sys.argv[1:]:
        path = Path(name)
        text = path.read_text()
        pieces = []
        last = 0
        for match in BLOCK.finditer(text):
            pieces.append(text[last:match.start("body")])
            body = match.group("body")
            pieces.append(body if match.group("mark") == "not run" else update_body(body))
            last = match.end("body")
        pieces.append(text[last:])
        path.write_text("".join(pieces))
        print(f"updated {path}")


if __name__ == "__main__":
    main()
