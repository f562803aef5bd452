"""ONNX export: handprop's estimators and model files as ONNX graphs.

``register()`` tells skl2onnx that :class:`handprop.MLPClassifier` and
:class:`handprop.MLPRegressor` convert as scikit-learn's MLPs do: they expose
the same fitted attributes (``coefs_``, ``intercepts_``, ``n_layers_``,
``activation``, ``out_activation_``, ``classes_`` and the label binarizer),
so skl2onnx's own MLP converters build the graph. After it,
``skl2onnx.to_onnx(estimator, X)`` works as for scikit-learn's.

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

__all__ = ["register", "to_onnx", "export"]

_SKLEARN_ACTIVATION = {"relu": "relu", "sigmoid": "logistic", "tanh": "tanh",
                       "identity": "identity"}
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
    if activation not in ("relu", "logistic", "tanh", "identity"):
        raise InputError(f"ONNX export supports the activations relu, logistic, tanh and "
                         f"identity (those of scikit-learn's MLPs), not {activation!r}")
    if out_activation == "exp":
        raise InputError("ONNX export does not support exp (Poisson) outputs: skl2onnx's MLP "
                         "converter has none")


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

    from .estimator import MLPClassifier, MLPRegressor
    from .network import MLP

    activation = _SKLEARN_ACTIVATION.get(net.activation, net.activation)
    if net.output == "softmax" and net.m == 2:
        # skl2onnx's converter gives two classes one logistic unit, as
        # scikit-learn does: softmax(a0, a1)[1] = sigmoid(a1 - a0), so the
        # unit's weights are the difference of the two outputs' rows
        last = net.L + 1
        one = MLP(net.d, net.hidden, 1, activation=net.activation, output="logistic",
                  dtype=net.dtype, seed=0)
        W, b = net.params[f"W{last}"], net.params[f"b{last}"]
        one.params = {**net.params, f"W{last}": W[1:] - W[:1], f"b{last}": b[1:] - b[:1]}
        net = one
    out = {"softmax": "softmax", "logistic": "logistic", "identity": "identity",
           "exp": "exp"}[net.output]
    _check_convertible(activation, out)
    if net.output == "identity":
        est = MLPRegressor(hidden_layer_sizes=net.hidden, activation=activation)
    else:
        est = MLPClassifier(hidden_layer_sizes=net.hidden, activation=activation)
        labels = np.arange(2 if net.output == "logistic" and net.m == 1 else net.m)
        binarizer = LabelBinarizer()
        if net.output == "logistic" and net.m > 1:  # multilabel
            binarizer.fit(np.eye(net.m, dtype=int))
        else:
            binarizer.fit(labels)
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
    from .files import write_bytes
    from .network import MLP

    net = MLP.load(model_path)
    est = _estimator_of(net)
    graph = to_onnx(est, np.zeros((1, net.d), dtype=net.dtype))
    write_bytes(onnx_path, graph.SerializeToString())
    return (f"{net} -> {onnx_path}: input X (n, {net.d}) {net.dtype.name}; outputs "
            f"{', '.join(o.name for o in graph.graph.output)}")
