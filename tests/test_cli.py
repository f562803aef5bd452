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
    (["gradcheck", "--l1", "0.1,x"], "argument --l1: expected W1,W2"),
    (["gradcheck", "--l2=-1,0"], "argument --l2: lambdas must be finite and >= 0"),
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


def test_help_and_version():
    r = run("--help")
    assert r.returncode == 0 and "gradcheck" in r.stdout
    r = run("gradcheck", "--help")
    assert r.returncode == 0 and "--d-h" in r.stdout
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("handprop ")
