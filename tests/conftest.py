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
    from handprop.datasets import load_mnist

    return load_mnist()
