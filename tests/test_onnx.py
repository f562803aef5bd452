"""ONNX export: skl2onnx converts handprop's estimators (through its own MLP
converters) and handprop's model files, and onnxruntime predicts as handprop
does, to 1e-5."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")
from sklearn.datasets import (  # noqa: E402
    load_digits,
    make_multilabel_classification,
    make_regression,
)

from handprop import MLP, MLPClassifier, MLPRegressor  # noqa: E402
from handprop.onnx import to_onnx  # noqa: E402

X_DIGITS, Y_DIGITS = load_digits(return_X_y=True)
X_DIGITS = X_DIGITS / 16


def _run(graph, X):
    sess = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: X})


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


@pytest.mark.parametrize("case", ["multiclass", "binary", "two layers", "float32", "multilabel"])
def test_classifiers_convert(case):
    X, y = X_DIGITS, Y_DIGITS
    kwargs = dict(hidden_layer_sizes=(16,), max_iter=20, random_state=0)
    if case == "binary":
        y, kwargs["activation"] = y % 2, "logistic"
    elif case == "two layers":
        kwargs.update(hidden_layer_sizes=(16, 8), activation="tanh")
    elif case == "float32":
        X = X.astype(np.float32)
    elif case == "multilabel":  # onnxruntime binarizes labels in float32 only
        X, y = make_multilabel_classification(100, random_state=0)
        X = X.astype(np.float32)
    clf = _fit(MLPClassifier(**kwargs), X, y)
    labels, proba = _run(to_onnx(clf, X[:1]), X)
    assert_allclose(proba, clf.predict_proba(X), rtol=1e-5, atol=1e-6)
    assert (labels == clf.predict(X)).all()


@pytest.mark.parametrize("n_targets", [1, 3])
def test_regressors_convert(n_targets):
    X, y = make_regression(150, 6, n_targets=n_targets, random_state=0)
    reg = _fit(MLPRegressor(hidden_layer_sizes=(16, 8), max_iter=50, random_state=0), X, y)
    (pred,) = _run(to_onnx(reg, X[:1]), X)
    # skl2onnx's MLP converter lays several targets out as one column, (n k, 1),
    # for scikit-learn's MLPRegressor too
    assert_allclose(pred.reshape(len(X), -1).squeeze(), reg.predict(X), rtol=1e-5, atol=1e-6)


def test_unconvertible_nets_are_refused():
    from handprop.errors import InputError

    clf = _fit(MLPClassifier(hidden_layer_sizes=(4,), activation="softplus", max_iter=5),
               X_DIGITS, Y_DIGITS)
    with pytest.raises(InputError, match="ONNX export supports the activations relu"):
        to_onnx(clf)
    reg = _fit(MLPRegressor(hidden_layer_sizes=(4,), loss="poisson", max_iter=5),
               X_DIGITS, Y_DIGITS)
    with pytest.raises(InputError, match="exp \\(Poisson\\) outputs"):
        to_onnx(reg)


def test_handprop_export_writes_a_model_file_as_onnx(tmp_path):
    run = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "handprop", "train", "--hidden", "16,8",
                        "--epochs", "3", "--no-progress", "--out", str(run)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "handprop", "export", str(run / "model.npz"),
                        str(tmp_path / "model.onnx")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "wrote MLP(d=2, d_h=(16, 8), m=2" in r.stdout
    net = MLP.load(run / "model.npz")
    X = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    import onnx

    labels, proba = _run(onnx.load(tmp_path / "model.onnx"), X)
    assert_allclose(proba, net.predict_proba(X), rtol=1e-5, atol=1e-6)
    assert (labels == net.predict(X)).all()
    r = subprocess.run([sys.executable, "-m", "handprop", "export", str(tmp_path / "none.npz"),
                        str(tmp_path / "x.onnx")], capture_output=True, text=True)
    assert r.returncode == 2 and "no such model file" in r.stderr


_ONLY_THE_IMPORT_CHANGED = """
import warnings
import numpy as np
{first}
from sklearn.datasets import load_iris
X, y = load_iris(return_X_y=True)
X = X.astype(np.float32)
warnings.simplefilter("ignore")
clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0).fit(X, y)
reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=30, random_state=0).fit(X, X[:, 0])
import onnxruntime as rt
for est, name in ((clf, "probabilities"), (reg, "variable")):
    options = {{"zipmap": False}} if name == "probabilities" else None
    graph = to_onnx(est, X[:1], options=options)
    sess = rt.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {{"X": X}})))
    got = out["probabilities"] if name == "probabilities" else out["variable"].ravel()
    want = est.predict_proba(X) if name == "probabilities" else est.predict(X)
    assert np.allclose(got, want, atol=1e-5), name
print("converted")
"""


@pytest.mark.parametrize("first", [
    "from handprop import MLPClassifier, MLPRegressor\nfrom skl2onnx import to_onnx",
    "from skl2onnx import to_onnx\nfrom handprop import MLPClassifier, MLPRegressor",
], ids=["handprop first", "skl2onnx first"])
def test_skl2onnx_converts_with_only_the_import_changed(first):
    # scikit-learn's own code path: skl2onnx.to_onnx, with no call to
    # handprop.onnx.register, whichever is imported first (a fresh process,
    # so that no earlier test has registered anything)
    r = subprocess.run([sys.executable, "-c", _ONLY_THE_IMPORT_CHANGED.format(first=first)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "converted", r.stderr[-2000:]


def test_importing_handprop_imports_nothing_of_skl2onnx_or_sklearn():
    r = subprocess.run([sys.executable, "-c", "import sys, handprop; from handprop import MLP, "
                        "fit; print(sorted(m for m in sys.modules if m.split('.')[0] in "
                        "('skl2onnx', 'sklearn', 'onnx')))"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
