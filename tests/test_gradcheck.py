"""The gradient checker, and through it every gradient of the network."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from handprop import MLP, ElasticNet, gradcheck
from handprop.core import activations as act
from handprop.data.datasets import make_moons

ACTS = sorted(act.ACTIVATIONS)
PENALTIES = {
    "none": None,
    "l1": ElasticNet(l1_W1=0.01, l1_W2=0.02),
    "l2": ElasticNet(l2_W1=0.03, l2_W2=0.04),
    "all": ElasticNet(0.01, 0.03, 0.02, 0.04),
}
SIZES = [(2, 2, 2), (5, 7, 3)]


def _problem(d, d_h, m, K, activation, seed=0):
    """Two-moons points padded with noise features, kept off the kinks."""
    X2, y = make_moons(max(K, 2), noise=0.2, seed=seed)
    rng = np.random.default_rng(seed)
    X = np.hstack([X2[:K], rng.normal(size=(K, d - 2))]) if d > 2 else X2[:K, :d]
    y = y[:K] if m == 2 else rng.integers(0, m, size=K)
    net = MLP(d, d_h, m, activation=activation, seed=seed)
    # biases away from zero, so that no gradient entry is trivially tiny
    net.b1[:] = rng.uniform(-0.5, 0.5, size=d_h)
    net.b2[:] = rng.uniform(-0.5, 0.5, size=m)
    return net, X, y


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("penalty", PENALTIES)
@pytest.mark.parametrize("K", [1, 10])
@pytest.mark.parametrize("size", SIZES, ids=["2-2-2", "5-7-3"])
def test_every_gradient_passes(activation, penalty, K, size):
    net, X, y = _problem(*size, K, activation)
    before = {k: v.copy() for k, v in net.params.items()}
    report = gradcheck(net, X, y, PENALTIES[penalty], eps=1e-3, order=4)
    assert report.n_kinks == 0, "the test data must keep off the kinks"
    assert report.max_rel_error <= 1e-7, str(report)
    assert report.passed
    for name, p in net.params.items():  # restored after every perturbation
        assert np.array_equal(p, before[name])
    # the loop implementation passes the same check
    assert gradcheck(net, X, y, PENALTIES[penalty], eps=1e-3, order=4,
                     method="loop").max_rel_error <= 1e-7


@pytest.mark.parametrize("activation", ["relu", "tanh", "softplus"])
@pytest.mark.parametrize("K", [1, 10])
def test_classic_stencil_at_default_eps(activation, K):
    net, X, y = _problem(2, 2, 2, K, activation)
    report = gradcheck(net, X, y, PENALTIES["all"])
    assert report.eps == 1e-6 and report.order == 2
    assert report.n_kinks == 0
    assert report.max_rel_error <= 1e-6, str(report)


def test_report_fields_and_table():
    net, X, y = _problem(5, 7, 3, 10, "tanh")
    report = gradcheck(net, X, y, PENALTIES["l2"])
    assert [c.name for c in report.checks] == ["W1", "b1", "W2", "b2"]
    w1 = report["W1"]
    assert w1.shape == (7, 5) and w1.n_checked == 35
    assert w1.analytic.shape == w1.numerical.shape == w1.rel_error.shape == (35,)
    _, grads = net.loss_and_grads(X, y, PENALTIES["l2"])
    assert_allclose(w1.analytic, grads["W1"].ravel(), rtol=1e-15)
    assert_allclose(w1.numerical, w1.analytic, rtol=1e-5, atol=1e-9)
    text = str(report)
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["param", "shape", "checked", "kinks"]
    assert lines[2].split()[:3] == ["W1", "7x5", "35/35"]
    assert "passed" in lines[-1] and "K = 10" in lines[-1]


def test_a_wrong_gradient_fails(monkeypatch):
    # rect' written as the reference's 2.13 has it (h_a instead of 1[h_a > 0])
    net, X, y = _problem(5, 7, 3, 10, "relu")

    def wrong(name, h_a, h_s, G):
        G *= np.maximum(h_a, 0)

    monkeypatch.setattr(act, "backprop_inplace", wrong)
    report = gradcheck(net, X, y)
    assert not report.passed
    assert report["W1"].max_rel_error > 1e-2
    assert report["W2"].max_rel_error < 1e-6  # the layer above is untouched
    assert "FAILED" in str(report)
    # the loop implementation, which uses the derivative table, still passes
    assert gradcheck(net, X, y, method="loop").passed


def test_l1_sign_error_of_the_reference_fails(monkeypatch):
    # reference 2.18: "+ 2 W - sign(W)"; the right sign is +lambda1 sign(W)
    net, X, y = _problem(5, 7, 3, 10, "tanh")
    pen = ElasticNet(l1_W1=0.05)

    def wrong(self, weight, W, out, scale=1.0, scratch=None):
        l1, l2 = self.lambdas(weight)
        out += scale * (-l1 * np.sign(W) + 2 * l2 * W)

    monkeypatch.setattr(ElasticNet, "add_grad", wrong)
    assert gradcheck(net, X, y, pen)["W1"].max_rel_error > 1e-2


def test_kinks_are_detected_not_failed():
    # a pre-activation exactly at 0: perturbing W1[0, :] or b1[0] crosses the kink
    net = MLP(2, 2, 2, activation="relu", seed=0)
    X = np.array([[1.0, 1.0], [0.5, -1.0]])
    y = np.array([0, 1])
    net.b1[0] = -(X[0] @ net.W1[0])  # h_a[0, 0] = 0
    report = gradcheck(net, X, y)
    assert report["b1"].kink[0] and not report["b1"].kink[1]
    assert report.n_kinks >= 1
    assert "straddled a kink" in str(report)
    assert report.passed  # the kinked entries are reported, not counted as failures


def test_l1_kink_at_zero_weight():
    net, X, y = _problem(2, 2, 2, 10, "tanh")
    net.W2[0, 1] = 0.0
    report = gradcheck(net, X, y, ElasticNet(l1_W2=0.1))
    flat = 0 * 2 + 1
    assert report["W2"].kink[flat] and report["W2"].kink.sum() == 1
    assert report.passed


def test_big_nets_are_checked_on_a_seeded_subset():
    rng = np.random.default_rng(0)
    net = MLP(30, 20, 4, activation="tanh", seed=0)
    X, y = rng.normal(size=(5, 30)), rng.integers(0, 4, size=5)
    a = gradcheck(net, X, y, max_entries=50, seed=3)
    b = gradcheck(net, X, y, max_entries=50, seed=3)
    assert a["W1"].n_checked == 50 and a["W1"].n_size == 600
    assert a["b1"].n_checked == 20  # small parameters are checked whole
    assert np.array_equal(a["W1"].index, b["W1"].index)
    assert len(np.unique(a["W1"].index)) == 50
    assert a.passed


def test_float32_net_is_checked_in_float64():
    net, X, y = _problem(5, 7, 3, 10, "tanh")
    net32 = net.astype("float32")
    report = gradcheck(net32, X, y)
    assert report.passed
    assert net32.W1.dtype == np.float32  # unchanged


def test_tiny_entries_get_a_round_off_note():
    net, X, y = _problem(5, 7, 3, 10, "sigmoid")
    net.W2 *= 0.1  # makes the W1 gradients small (about 1e-3 and below)
    report = gradcheck(net, X, y, tol=1e-7)
    assert not report.passed
    assert "within the round-off" in str(report) and "order=4" in str(report)
    assert gradcheck(net, X, y, eps=1e-3, order=4, tol=1e-7).passed


@pytest.mark.parametrize("kwargs,error,message", [
    ({"eps": 0.0}, ValueError, "eps must be a number in \\(0, 1\\)"),
    ({"eps": 2.0}, ValueError, "eps must be"),
    ({"order": 3}, ValueError, "order must be 2 or 4, got 3"),
    ({"max_entries": 0}, ValueError, "max_entries must be an integer >= 1"),
    ({"method": "quick"}, ValueError, "method must be 'matrix' or 'loop'"),
])
def test_bad_arguments(kwargs, error, message):
    net, X, y = _problem(2, 2, 2, 3, "tanh")
    with pytest.raises(error, match=message):
        gradcheck(net, X, y, **kwargs)
    with pytest.raises(TypeError, match="net must be a handprop.MLP"):
        gradcheck("net", X, y)


def _masks(rng, K, d, d_h, rate_in=0.2, rate_h=0.5):
    """Inverted-dropout masks: 0 for a dropped unit, 1 / (1 - rate) for a kept one."""
    mask_in = (rng.random((K, d)) >= rate_in) / (1 - rate_in)
    mask_h = (rng.random((K, d_h)) >= rate_h) / (1 - rate_h)
    return mask_in, mask_h


OPTIONS = {
    "dropout": lambda rng, K: dict(zip(("mask_in", "mask_h"), _masks(rng, K, 5, 7))),
    "label smoothing": lambda rng, K: {"label_smoothing": 0.1},
    "sample weights": lambda rng, K: {"sample_weight": rng.uniform(0.1, 3.0, size=K)},
    "all three": lambda rng, K: {**dict(zip(("mask_in", "mask_h"), _masks(rng, K, 5, 7))),
                                 "label_smoothing": 0.2,
                                 "sample_weight": rng.uniform(0.1, 3.0, size=K)},
}


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("K", [1, 10])
def test_gradients_with_dropout_smoothing_and_weights(activation, option, K):
    net, X, y = _problem(5, 7, 3, K, activation)
    options = OPTIONS[option](np.random.default_rng(K), K)
    report = gradcheck(net, X, y, PENALTIES["all"], eps=1e-3, order=4, **options)
    assert report.n_kinks == 0
    assert report.max_rel_error <= 1e-7, str(report)
    _, matrix = net.loss_and_grads(X, y, PENALTIES["all"], **options)
    _, loop = net.loss_and_grads(X, y, PENALTIES["all"], method="loop", **options)
    for name in matrix:
        assert_allclose(loop[name], matrix[name], rtol=1e-12, atol=1e-15)


def test_dropout_masks_change_the_gradient_as_expected():
    net, X, y = _problem(5, 7, 3, 10, "tanh")
    mask_in, mask_h = _masks(np.random.default_rng(0), 10, 5, 7)
    _, plain = net.loss_and_grads(X * mask_in, y)
    _, with_mask = net.loss_and_grads(X, y, mask_in=mask_in)
    assert_allclose(with_mask["W1"], plain["W1"], rtol=1e-14)  # input dropout is data
    _, dropped = net.loss_and_grads(X, y, mask_h=np.zeros((10, 7)))
    assert not dropped["W1"].any() and not dropped["W2"].any()  # no unit reaches the output
    ones = net.loss_and_grads(X, y, mask_h=np.ones((10, 7)))[1]
    _, none = net.loss_and_grads(X, y)
    assert_allclose(ones["W1"], none["W1"], rtol=1e-15)


def test_sample_weights_are_a_weighted_mean():
    net, X, y = _problem(5, 7, 3, 10, "tanh")
    w = np.arange(1.0, 11.0)
    loss_w, g_w = net.loss_and_grads(X, y, sample_weight=w)
    # integer weights are the same as repeating the examples
    reps = np.repeat(np.arange(10), w.astype(int))
    loss_r, g_r = net.loss_and_grads(X[reps], y[reps])
    assert_allclose(loss_w, loss_r, rtol=1e-13)
    for name in g_w:
        assert_allclose(g_w[name], g_r[name], rtol=1e-12, atol=1e-16)
    assert_allclose(net.loss(X, y, sample_weight=np.ones(10)), net.loss(X, y), rtol=1e-15)


def test_label_smoothing_loss_by_hand():
    net, X, y = _problem(5, 7, 3, 4, "tanh")
    eps = 0.3
    o_a = net.fprop(X).o_a
    log_o_s = act.log_softmax(o_a)
    target = np.full((4, 3), eps / 3)
    target[np.arange(4), y] += 1 - eps
    assert_allclose(net.loss(X, y, label_smoothing=eps), -(target * log_o_s).sum(1).mean(),
                    rtol=1e-13)


@pytest.mark.parametrize("kwargs,message", [
    ({"mask_h": np.ones((3, 2))}, r"mask_h must have shape \(4, 7\)"),
    ({"mask_in": -np.ones((4, 5))}, "mask_in must hold finite values >= 0"),
    ({"label_smoothing": 1.0}, r"label_smoothing must be a number in \[0, 1\)"),
    ({"sample_weight": np.ones(3)}, r"sample_weight must have shape \(4,\)"),
    ({"sample_weight": np.zeros(4)}, "positive sum"),
    ({"sample_weight": np.array([1, np.nan, 1, 1])}, "finite weights"),
])
def test_bad_options(kwargs, message):
    net, X, y = _problem(5, 7, 3, 4, "tanh")
    with pytest.raises(ValueError, match=message):
        net.loss_and_grads(X, y, **kwargs)
    with pytest.raises(ValueError, match=message):
        gradcheck(net, X, y, **kwargs)
