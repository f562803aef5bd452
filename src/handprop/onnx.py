"""ONNX export: handprop's estimators and model files as ONNX graphs.

``register()`` tells skl2onnx that :class:`handprop.MLPClassifier` and
:class:`handprop.MLPRegressor` convert as scikit-learn's MLPs do: they expose
the same fitted attributes (``coefs_``, ``intercepts_``, ``n_layers_``,
``activation``, ``out_activation_``, ``classes_`` and the label binarizer),
so skl2onnx's own MLP converters build the graph. It is called for you:
once handprop's estimators are imported, importing skl2onnx registers them
(:func:`register_on_import`), so ``skl2onnx.to_onnx(estimator, X)`` works
as for scikit-learn's, with only the import changed.

:func:`export` writes a model file of ``handprop train`` (a
:class:`handprop.MLP`) as ONNX, through the same converters: ``handprop
export MODEL.npz MODEL.onnx``.

This module needs the ``[onnx]`` extra (skl2onnx, onnx; onnxruntime to run
the graphs): ``pip install 'handprop[onnx]'``.

ONNX has the activations of scikit-learn's MLPs: relu, logistic (handprop's
sigmoid), tanh and identity. A net with handprop's softplus, abs or sign
units, or Poisson (exp) outputs, is refused with a message that says so.
"""

from __future__ import annotations

import os

import numpy as np

from .errors import InputError

__all__ = ["register", "register_on_import", "to_onnx", "export"]

_registered = False


def _skl2onnx():
    try:
        import skl2onnx
    except ImportError:
        raise ImportError("ONNX export needs skl2onnx: pip install 'handprop[onnx]'") from None
    return skl2onnx


def register() -> None:
    """Register handprop's estimators with skl2onnx's MLP converters (once)."""
    global _registered
    if _registered:
        return
    skl2onnx = _skl2onnx()
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from skl2onnx.operator_converters.multilayer_perceptron import (
        convert_sklearn_mlp_classifier,
        convert_sklearn_mlp_regressor,
    )

    from .estimator import MLPClassifier, MLPRegressor

    skl2onnx.update_registered_converter(
        MLPClassifier, "HandpropMLPClassifier", calculate_linear_classifier_output_shapes,
        convert_sklearn_mlp_classifier,
        options={"zipmap": [True, False, "columns"], "nocl": [True, False],
                 "output_class_labels": [False, True]})
    skl2onnx.update_registered_converter(
        MLPRegressor, "HandpropMLPRegressor", calculate_linear_regressor_output_shapes,
        convert_sklearn_mlp_regressor)
    _registered = True


def _check_convertible(activation: str, out_activation: str) -> None:
    from .core.activations import SKLEARN_NAMES
    from .core.outputs import OUTPUTS, by_sklearn_name

    if activation not in SKLEARN_NAMES.values():
        raise InputError(f"ONNX export supports the activations "
                         f"{', '.join(SKLEARN_NAMES.values())} (those of scikit-learn's MLPs), "
                         f"not {activation!r}")
    pair = by_sklearn_name(out_activation)
    if not pair.onnx:
        can = [p.name for p in OUTPUTS.values() if p.onnx]
        raise InputError(f"ONNX export does not support {pair.name} ({pair.kind}) outputs: "
                         f"skl2onnx's MLP converter has none; it writes "
                         f"{', '.join(can)} outputs")


def to_onnx(estimator, X=None, **kwargs):
    """``skl2onnx.to_onnx`` of a fitted handprop estimator (registered first).

    ``X`` is a sample of the inputs (its dtype and width type the graph's
    input); by default one row of zeros of the fitted dtype. Classifiers
    give plain arrays of probabilities (``zipmap=False``) unless
    ``options`` says otherwise.
    """
    register()
    skl2onnx = _skl2onnx()
    from sklearn.base import is_classifier

    _check_convertible(estimator.activation, estimator.out_activation_)
    if X is None:
        X = np.zeros((1, estimator.n_features_in_), dtype=estimator.coefs_[0].dtype)
    if is_classifier(estimator):
        kwargs.setdefault("options", {"zipmap": False})
    return skl2onnx.to_onnx(estimator, X, **kwargs)


def _estimator_of(net):
    """A fitted estimator that holds ``net``: a classifier over the classes
    0 .. m - 1 for softmax and logistic outputs, a regressor for identity."""
    from sklearn.preprocessing import LabelBinarizer

    from .core.activations import SKLEARN_NAMES
    from .core.network import MLP
    from .core.outputs import by_sklearn_name
    from .estimator import MLPClassifier, MLPRegressor

    pair = net.pair
    if pair.as_one_unit is not None and pair.binary(net.m):
        # skl2onnx's converter gives two classes one logistic unit, as
        # scikit-learn does; the pair says which unit is the same function
        last = net.L + 1
        W, b = pair.as_one_unit(net.params[f"W{last}"], net.params[f"b{last}"])
        one = MLP(net.d, net.hidden, 1, activation=net.activation,
                  output=by_sklearn_name("logistic").name, dtype=net.dtype, seed=0)
        one.params = {**net.params, f"W{last}": W, f"b{last}": b}
        net = one
    activation = SKLEARN_NAMES.get(net.activation, net.activation)
    out = net.pair.sklearn
    _check_convertible(activation, out)
    if net.pair.sklearn_kind == "regressor":
        est = MLPRegressor(hidden_layer_sizes=net.hidden, activation=activation)
    else:
        est = MLPClassifier(hidden_layer_sizes=net.hidden, activation=activation)
        binarizer = LabelBinarizer()
        if net.pair.binary(net.m):  # one unit, two classes
            binarizer.fit(np.arange(2))
        elif net.pair.class_indices:
            binarizer.fit(np.arange(net.m))
        else:  # independent labels: multilabel
            binarizer.fit(np.eye(net.m, dtype=int))
        est._label_binarizer = binarizer
        est.classes_ = binarizer.classes_
    est._net = net
    est.n_layers_ = net.L + 2
    est.n_outputs_ = net.m
    est.out_activation_ = out
    est.n_features_in_ = net.d
    return est


def export(model_path: str | os.PathLike, onnx_path: str | os.PathLike) -> str:
    """Write the net of a model file as an ONNX graph, atomically; returns a
    one-line description."""
    from .core.network import MLP
    from .files import write_bytes

    net = MLP.load(model_path)
    est = _estimator_of(net)
    graph = to_onnx(est, np.zeros((1, net.d), dtype=net.dtype))
    write_bytes(onnx_path, graph.SerializeToString())
    return (f"{net} -> {onnx_path}: input X (n, {net.d}) {net.dtype.name}; outputs "
            f"{', '.join(o.name for o in graph.graph.output)}")


# --------------------------------------------------------------------------
# skl2onnx.to_onnx(estimator, X) with only the import changed
# --------------------------------------------------------------------------


class _RegisterOnImport:
    """A one-shot import hook: when skl2onnx is imported (after handprop's
    estimators were), handprop's converters are registered as soon as its
    import is done, so that ``skl2onnx.to_onnx(handprop.MLPClassifier(...),
    X)`` works as it does for scikit-learn's MLPs, with no call to
    :func:`register`. Nothing of skl2onnx is imported until then: ``import
    handprop`` stays as fast as before."""

    def find_spec(self, name, path=None, target=None):
        if name != "skl2onnx":
            return None
        import importlib.util

        _remove_hook()
        spec = importlib.util.find_spec(name)  # the other finders, this one gone
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            try:
                register()
            except Exception as exc:  # never break skl2onnx's own import
                import warnings

                warnings.warn(f"handprop could not register its estimators with skl2onnx "
                              f"({exc}); call handprop.onnx.register()", stacklevel=2)

        spec.loader.exec_module = exec_module
        return spec


def _remove_hook() -> None:
    import sys

    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _RegisterOnImport)]


def register_on_import() -> None:
    """Register handprop's estimators with skl2onnx now if skl2onnx is
    imported, else as soon as it is (see :class:`_RegisterOnImport`)."""
    import sys

    if "skl2onnx" in sys.modules:
        try:
            register()
        except ImportError:
            pass
        return
    if not any(isinstance(f, _RegisterOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterOnImport())
