"""handprop: multilayer perceptrons with hand-derived gradients in NumPy."""

from ._version import __version__
from .core.gradcheck import GradcheckReport, gradcheck
from .core.network import MLP
from .core.penalty import ElasticNet
from .train.settings import RunSettings
from .train.training import fit

__all__ = ["MLP", "MLPClassifier", "MLPRegressor", "ElasticNet", "GradcheckReport",
           "RunSettings", "fit", "gradcheck", "__version__"]


def __getattr__(name: str):
    # The scikit-learn estimators are imported on first use only: the core
    # never imports scikit-learn, an optional extra.
    if name in ("MLPClassifier", "MLPRegressor"):
        from . import estimator

        return getattr(estimator, name)
    raise AttributeError(f"module 'handprop' has no attribute {name!r}")
