"""The network: shapes, initialization, a hand-worked example, loop against
matrix, and bad input."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

from handprop import MLP, ElasticNet
from handprop.core.activations import ACTIVATIONS

ACTS = sorted(ACTIVATIONS)
PENALTIES = {
    "none": None,
    "l1": ElasticNet(l1_W1=0.01, l1_W2=0.02),
    "l2": ElasticNet(l2_W1=0.03, l2_W2=0.04),
    "all": ElasticNet(0.01, 0.03, 0.02, 0.04),
}


def _data(rng, K, d, m):
    return rng.normal(size=(K, d)), rng.integers(0, m, size=K)


def test_shapes_and_n_params():
    net = MLP(784, 512, 10, seed=0)
    assert net.W1.shape == (512, 784) and net.b1.shape == (512,)
    assert net.W2.shape == (10, 512) and net.b2.shape == (10,)
    # d_h (d + 1) + m (d_h + 1), not the reference's (d_h + 1) d + (m + 1) d_h
    assert net.n_params == 512 * 785 + 10 * 513 == 407050
    assert net.n_params == sum(p.size for p in net.params.values())


def test_fprop_cache_shapes(rng):
    net = MLP(5, 7, 3, seed=1)
    X, _ = _data(rng, 10, 5, 3)
    cache = net.fprop(X)
    assert cache.h_a.shape == cache.h_s.shape == (10, 7)
    assert cache.o_a.shape == cache.o_s.shape == (10, 3)
    assert_allclose(cache.h_a, X @ net.W1.T + net.b1, rtol=1e-14)
    assert_allclose(cache.o_s.sum(axis=1), 1.0, rtol=1e-14)


@pytest.mark.parametrize("activation,bound", [("relu", np.sqrt(6 / 100)),
                                              ("tanh", np.sqrt(6 / 150))])
def test_initialization(activation, bound):
    net = MLP(100, 50, 10, activation=activation, seed=3)
    assert np.abs(net.W1).max() <= bound
    assert np.abs(net.W1).max() > 0.9 * bound  # it fills the range
    assert np.abs(net.W2).max() <= np.sqrt(6 / 60)
    assert not net.b1.any() and not net.b2.any()
    # He for rect keeps Var(W1) = 2 / d
    if activation == "relu":
        assert_allclose(net.W1.var(), 2 / 100, rtol=0.05)


def test_seed_is_reproducible_and_dtype_agrees():
    a = MLP(4, 6, 3, seed=7)
    b = MLP(4, 6, 3, seed=7)
    c = MLP(4, 6, 3, seed=7, dtype="float32")
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name])
        assert c.params[name].dtype == np.float32
        assert_allclose(c.params[name], a.params[name], rtol=1e-7)
    assert not np.array_equal(MLP(4, 6, 3, seed=8).W1, a.W1)


def test_hand_worked_example():
    # A 2-2-2 rect net, one example x = (1, 2) of class y = 1.
    #   h_a = W1 x + b1 = (1 - 2 + 0, 0.5 + 4 - 1) = (-1, 3.5)
    #   h_s = rect(h_a) = (0, 3.5)
    #   o_a = W2 h_s + b2 = (0 - 3.5 + 0.5, 0 + 3.5 - 0.5) = (-3, 3)
    #   o_s = softmax(-3, 3) = (s, 1 - s) with s = sigmoid(-6) = 1 / (1 + e^6)
    #   L = -log(1 - s) = log(1 + e^-6)
    #   grad o_a = o_s - onehot(1) = (s, -s)
    #   grad W2 = outer(grad o_a, h_s) = [[0, 3.5 s], [0, -3.5 s]];  grad b2 = (s, -s)
    #   grad h_s = W2^T grad o_a = (1 s + 2 (-s), -1 s + 1 (-s)) = (-s, -2 s)
    #   grad h_a = grad h_s * 1[h_a > 0] = (0, -2 s)
    #   grad W1 = outer(grad h_a, x) = [[0, 0], [-2 s, -4 s]];  grad b1 = (0, -2 s)
    # With l2_W1 = 0.1 the loss gains 0.1 ||W1||^2 = 0.1 (1 + 1 + 0.25 + 4) = 0.625
    # and grad W1 gains 0.2 W1.
    net = MLP(2, 2, 2, seed=0)
    net.params = {"W1": np.array([[1.0, -1.0], [0.5, 2.0]]), "b1": np.array([0.0, -1.0]),
                  "W2": np.array([[1.0, -1.0], [2.0, 1.0]]), "b2": np.array([0.5, -0.5])}
    X = np.array([[1.0, 2.0]])
    y = np.array([1])
    s = 1 / (1 + np.exp(6.0))
    expected = {
        "W1": np.array([[0.0, 0.0], [-2 * s, -4 * s]]),
        "b1": np.array([0.0, -2 * s]),
        "W2": np.array([[0.0, 3.5 * s], [0.0, -3.5 * s]]),
        "b2": np.array([s, -s]),
    }
    for method in ("matrix", "loop"):
        loss, grads = net.loss_and_grads(X, y, method=method)
        # log(1 + x) for x = e^-6 keeps about 14 digits, not 16
        assert_allclose(loss, np.log1p(np.exp(-6.0)), rtol=1e-12)
        for name in expected:
            assert_allclose(grads[name], expected[name], rtol=1e-13, atol=1e-17)
        loss, grads = net.loss_and_grads(X, y, ElasticNet(l2_W1=0.1), method=method)
        assert_allclose(loss, np.log1p(np.exp(-6.0)) + 0.625, rtol=1e-12)
        assert_allclose(grads["W1"], expected["W1"] + 0.2 * net.W1, rtol=1e-13)
    cache = net.fprop(X)
    assert_allclose(cache.h_a, [[-1.0, 3.5]])
    assert_allclose(cache.o_a, [[-3.0, 3.0]])
    # the same example twice: the mean keeps the gradients the same
    _, twice = net.loss_and_grads(np.vstack([X, X]), np.array([1, 1]))
    assert_allclose(twice["W1"], expected["W1"], rtol=1e-13, atol=1e-17)


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("penalty", PENALTIES)
@pytest.mark.parametrize("K", [1, 10])
def test_loop_and_matrix_agree(activation, penalty, K, rng):
    net = MLP(5, 7, 3, activation=activation, seed=2)
    X, y = _data(rng, K, 5, 3)
    loss_m, g_m = net.loss_and_grads(X, y, PENALTIES[penalty], method="matrix")
    loss_l, g_l = net.loss_and_grads(X, y, PENALTIES[penalty], method="loop")
    assert_allclose(loss_l, loss_m, rtol=1e-12, atol=0)
    for name in g_m:
        assert g_m[name].shape == g_l[name].shape == net.params[name].shape
        assert_allclose(g_l[name], g_m[name], rtol=1e-12, atol=1e-15)


def test_bprop_equals_loss_and_grads(rng):
    net = MLP(3, 4, 3, seed=0)
    X, y = _data(rng, 6, 3, 3)
    pen = ElasticNet(0.1, 0.2, 0.3, 0.4)
    grads = net.bprop(net.fprop(X), X, y, pen)
    _, expected = net.loss_and_grads(X, y, pen)
    for name in grads:
        assert_allclose(grads[name], expected[name], rtol=1e-15)


def test_predict_and_proba(rng):
    net = MLP(3, 4, 5, seed=0)
    X, _ = _data(rng, 20, 3, 5)
    proba = net.predict_proba(X)
    assert proba.shape == (20, 5)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-14)
    pred = net.predict(X)
    assert pred.dtype == np.int64
    assert np.array_equal(pred, proba.argmax(axis=1))


def test_huge_logits_give_finite_loss():
    net = MLP(1, 1, 2, activation="identity", seed=0)
    net.params = {"W1": np.array([[1.0]]), "b1": np.zeros(1),
                  "W2": np.array([[1.0], [-1.0]]), "b2": np.zeros(2)}
    X = np.array([[5e3], [-5e3]])
    loss, grads = net.loss_and_grads(X, np.array([1, 1]))
    # logits (5e3, -5e3): -log o_s[1] = 1e4 for the first, about 0 for the second
    assert_allclose(loss, 1e4 / 2, rtol=1e-12)
    assert all(np.all(np.isfinite(g)) for g in grads.values())


def test_params_can_be_read_and_set(rng):
    net = MLP(2, 3, 2, seed=0)
    new = {k: rng.normal(size=v.shape) for k, v in net.params.items()}
    net.params = new
    for k in new:
        assert_allclose(net.params[k], new[k])
        assert net.params[k] is not new[k]  # copied
    with pytest.raises(ValueError, match=r"params\['W1'\] must have shape \(3, 2\), got \(2, 3\)"):
        net.params = {**new, "W1": np.zeros((2, 3))}
    with pytest.raises(ValueError, match="missing \\['b2'\\]"):
        net.params = {k: v for k, v in new.items() if k != "b2"}
    assert_allclose(net.W1, new["W1"])  # the failed assignments changed nothing


def test_astype_and_copy_are_independent():
    net = MLP(2, 3, 2, seed=0)
    other = net.astype("float32")
    assert other.W1.dtype == np.float32 and net.W1.dtype == np.float64
    c = net.copy()
    c.W1[0, 0] += 1
    assert c.W1[0, 0] != net.W1[0, 0]


# -- bad input ---------------------------------------------------------------


BAD_INPUTS = [
    ("X is 1-D", lambda X, y: (X[0], y[:1]), ValueError, r"X must be 2-D with shape \(K, 3\)"),
    ("X is 3-D", lambda X, y: (X[None], y), ValueError, "X must be 2-D"),
    ("wrong features", lambda X, y: (X[:, :2], y), ValueError, "X has 2 features per example; "
     "this net expects d = 3"),
    ("NaN in X", lambda X, y: (np.where(X > 1, np.nan, X), y), ValueError, "X contains NaN or inf"),
    ("inf in X", lambda X, y: (np.where(X > 1, np.inf, X), y), ValueError, "NaN or inf"),
    ("string X", lambda X, y: (X.astype(str), y), TypeError, "X must hold real numbers"),
    ("empty batch", lambda X, y: (X[:0], y[:0]), ValueError, "X is an empty batch"),
    ("label too big", lambda X, y: (X, np.full_like(y, 4)), ValueError,
     r"y must hold classes in \[0, 4\); got values from 4 to 4"),
    ("negative label", lambda X, y: (X, -np.ones_like(y)), ValueError, r"classes in \[0, 4\)"),
    ("fractional label", lambda X, y: (X, y + 0.5), ValueError, "non-integers"),
    ("string label", lambda X, y: (X, y.astype(str)), TypeError, "integer classes"),
    ("len mismatch", lambda X, y: (X, y[:-1]), ValueError, r"len\(y\) = 7 but X has 8 examples"),
    ("2-D y", lambda X, y: (X, y[:, None]), ValueError, "y must be 1-D"),
]


_CALLS = ["loss_and_grads", "loop", "fprop_bprop", "loss", "predict"]
_LABEL_CASES = {"label too big", "negative label", "fractional label", "string label",
                "len mismatch", "2-D y"}


@pytest.mark.parametrize(
    "case,call",
    [pytest.param(c, call, id=f"{c[0]}-{call}") for c in BAD_INPUTS for call in _CALLS
     if not (call == "predict" and c[0] in _LABEL_CASES)],  # predict takes no labels
)
def test_bad_input_raises_and_changes_nothing(case, call, rng):
    _, make, error, message = case
    net = MLP(3, 5, 4, seed=0)
    before = {k: v.copy() for k, v in net.params.items()}
    X, y = _data(rng, 8, 3, 4)
    X[0, 0] = 2.0  # some entry > 1 for the NaN/inf cases
    bad_X, bad_y = make(X, y)
    pen = ElasticNet(l2_W1=0.1)
    with pytest.raises(error, match=message):
        if call == "loss_and_grads":
            net.loss_and_grads(bad_X, bad_y, pen)
        elif call == "loop":
            net.loss_and_grads(bad_X, bad_y, pen, method="loop")
        elif call == "fprop_bprop":
            cache = net.fprop(X)
            net.bprop(cache, bad_X, bad_y, pen)
        elif call == "loss":
            net.loss(bad_X, bad_y, pen)
        else:
            net.predict(bad_X)
    for k in before:
        assert np.array_equal(net.params[k], before[k])


@pytest.mark.parametrize("kwargs,error,message", [
    ({"activation": "swish"}, ValueError, "unknown activation 'swish'"),
    ({"dtype": "int32"}, ValueError, "dtype must be float32 or float64, got int32"),
    ({"dtype": "float16"}, ValueError, "dtype must be float32 or float64"),
    ({"dtype": "banana"}, TypeError, "dtype must be float32 or float64"),
])
def test_bad_constructor_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        MLP(2, 3, 2, **kwargs)


@pytest.mark.parametrize("args,message", [
    ((0, 3, 2), "d must be an integer >= 1, got 0"),
    ((2, 0, 2), "d_h must be an integer >= 1, got 0"),
    ((2, (4, 0), 2), "d_h must be an integer >= 1, got 0"),
    ((2, (), 2), "d_h must name at least one hidden layer"),
    ((2, 3, 1), "m must be an integer >= 2, got 1"),
    ((2, 10**400, 2), "d_h must be an integer >= 1 that fits in 64 bits"),
])
def test_bad_sizes(args, message):
    with pytest.raises(ValueError, match=message):
        MLP(*args)
    with pytest.raises(TypeError, match="d must be an integer"):
        MLP(2.5, 3, 2)
    with pytest.raises(TypeError, match="d_h must be an integer"):
        MLP(2, (3, 2.5), 2)


def test_bad_method_and_penalty(rng):
    net = MLP(3, 5, 4, seed=0)
    X, y = _data(rng, 8, 3, 4)
    with pytest.raises(ValueError, match="method must be 'matrix' or 'loop', got 'fast'"):
        net.loss_and_grads(X, y, method="fast")
    with pytest.raises(TypeError, match="penalty must be an ElasticNet or None, got float"):
        net.loss_and_grads(X, y, penalty=0.1)


def test_float32_net_runs_in_float32(rng):
    net = MLP(3, 5, 4, seed=0, dtype="float32")
    X, y = _data(rng, 8, 3, 4)
    cache = net.fprop(X)
    assert cache.o_s.dtype == np.float32
    _, grads = net.loss_and_grads(X, y)
    assert all(g.dtype == np.float32 for g in grads.values())


def test_huge_finite_inputs_are_accepted_without_warnings():
    # their sum overflows in float32, which must not be mistaken for an inf
    net = MLP(2, 3, 2, dtype="float32", seed=0)
    X = np.full((4, 2), 3e38, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert net.check_X(X).shape == (4, 2)


def test_loop_stays_in_float32(rng):
    # a float64 factor in the loop once made it silently compute in float64
    net = MLP(5, 7, 3, dtype="float32", seed=0)
    X, y = _data(rng, 4, 5, 3)
    for kwargs in ({}, {"sample_weight": np.arange(1.0, 5.0), "label_smoothing": 0.1}):
        _, grads = net.loss_and_grads(X, y, method="loop", **kwargs)
        assert all(g.dtype == np.float32 for g in grads.values())
