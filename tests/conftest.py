import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

# Tests read MNIST from ../shared/data (as CI does). The path is made absolute
# so that subprocesses started in other folders find it too.
os.environ["HANDPROP_DATA"] = str(
    Path(os.environ.get("HANDPROP_DATA") or ROOT.parent / "shared" / "data").resolve()
)
MNIST_DIR = Path(os.environ["HANDPROP_DATA"]) / "mnist"


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def mnist():
    """The three MNIST splits, loaded once."""
    from handprop.data.datasets import load_mnist

    return load_mnist()


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server for the sweep tests: the one .ci/run started
    ($HANDPROP_TEST_POSTGRES), else a throwaway one started here."""
    import glob
    import shutil
    import subprocess
    import tempfile

    url = os.environ.get("HANDPROP_TEST_POSTGRES")
    if url:
        yield url
        return
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
    if not found[-1]:
        pytest.skip("no PostgreSQL server (initdb): apt-get install postgresql; .ci/run does")
    bindir = Path(found[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="handprop-pg-"))
    folder.chmod(0o755)
    as_user = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = 54000 + os.getpid() % 900
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(folder / "data"), "-A",
                    "trust", "-U", "postgres"], check=True, capture_output=True)
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-l",
                    str(folder / "log"), "-w", "-o",
                    f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-m",
                        "fast", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)

# A NumPy stand-in for CuPy, imported only by tests/test_gpu_paths.py's
# subprocess: never collected, so that no test here takes it for CuPy.
collect_ignore = ["numpy_cupy", "data"]  # data: files the tests read, not tests
