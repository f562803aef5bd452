"""handprop: multilayer perceptrons with hand-derived gradients in NumPy."""

from .gradcheck import GradcheckReport, gradcheck
from .network import MLP
from .penalty import ElasticNet

__version__ = "0.1.0"

__all__ = ["MLP", "ElasticNet", "GradcheckReport", "gradcheck", "__version__"]
