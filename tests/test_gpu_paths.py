"""tests/test_gpu.py's GPU tests, run on a CPU against a NumPy stand-in for
CuPy (tests/numpy_cupy): they check the device plumbing (what is copied to
and from the "GPU", checkpoints and resuming across devices, the estimator's
state) where CI has no GPU. Real numbers come from a real GPU; see
docs/gpu.md."""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def test_the_gpu_tests_pass_on_the_numpy_stand_in():
    path = [str(HERE / "numpy_cupy"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-rs", str(HERE / "test_gpu.py")], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    skipped = [line for line in r.stdout.splitlines() if line.startswith("SKIPPED")]
    # only the tests of a machine without CuPy or without a GPU are skipped
    assert all("CuPy is installed here" in s or "a GPU is present" in s for s in skipped)
    assert " passed" in r.stdout
