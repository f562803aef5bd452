"""handprop: multilayer perceptrons with hand-derived gradients in NumPy."""

from ._version import __version__
from .gradcheck import GradcheckReport, gradcheck
from .network import MLP
from .penalty import ElasticNet
from .settings import RunSettings
from .training import fit

__all__ = ["MLP", "MLPClassifier", "MLPRegressor", "ElasticNet", "GradcheckReport",
           "RunSettings", "fit", "gradcheck", "__version__"]


def __getattr__(name: str):
    # The scikit-learn estimators are imported on first use only: the core
    # never imports scikit-learn, an optional extra.
    if name in ("MLPClassifier", "MLPRegressor"):
        from . import estimator

        return getattr(estimator, name)
    raise AttributeError(f"module 'handprop' has no attribute {name!r}")
