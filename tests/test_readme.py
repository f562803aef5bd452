"""The README's two set-up commands stay true: .ci/run runs the test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setup_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_the_readme_gives_exactly_two_commands():
    main_job, tests = _setup_commands()
    assert main_job.endswith("handprop train")
    assert "pytest" in tests


def test_ci_runs_the_readmes_test_command():
    _, tests = _setup_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci
