"""Nets of any depth and the three output/loss pairs: shapes, hand-worked
examples, loop against matrix, finite differences, targets, model files."""

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from handprop import MLP, ElasticNet, gradcheck
from handprop.core import activations as act
from handprop.core import outputs as handprop_outputs
from handprop.core.network import Cache
from problems import random_targets

ACTS = sorted(act.ACTIVATIONS)
OUTPUTS = tuple(handprop_outputs.OUTPUTS)  # every entry of the table, a new one included
DATA = Path(__file__).parent / "data"


def _penalty(n_weights: int, kind: str):
    """none, or a different L1 and L2 lambda on every weight matrix."""
    if kind == "none":
        return None
    return ElasticNet.per_matrix([0.01 * k for k in range(1, n_weights + 1)],
                                 [0.03 / k for k in range(1, n_weights + 1)])


def _problem(hidden, output, K, activation="tanh", m=3, seed=0, d=5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(K, d))
    y = random_targets(rng, output, K, m)
    net = MLP(d, hidden, m, activation=activation, output=output, seed=seed)
    for name in net.param_names:  # biases away from zero: no trivially tiny gradients
        if name.startswith("b"):
            net.params[name][:] = rng.uniform(-0.5, 0.5, size=net.params[name].shape)
    return net, X, y


# -- architecture -------------------------------------------------------------------


def test_layers_shapes_and_names():
    net = MLP(784, (512, 256), 10, seed=0)
    assert net.hidden == (512, 256) and net.L == 2 and net.d_h == (512, 256)
    assert net.param_names == ("W1", "b1", "W2", "b2", "W3", "b3")
    assert net.W1.shape == (512, 784) and net.W2.shape == (256, 512)
    assert net.W3.shape == (10, 256) and net.b3.shape == (10,)
    assert net.n_params == 512 * 785 + 256 * 513 + 10 * 257
    assert net.n_params == sum(p.size for p in net.params.values())
    assert repr(net) == "MLP(d=784, d_h=(512, 256), m=10, activation='relu', dtype='float64')"
    one = MLP(784, [512], 10)
    assert one.d_h == 512 and one.L == 1  # a one-element sequence is the seed's net


def test_the_seed_net_draws_as_before():
    # MLP(d, d_h, m) draws W1 then W2 from the seed, as handprop 0.1 did, and a
    # deeper net draws its layers in order from the same stream
    one, deep = MLP(4, 6, 3, seed=7), MLP(4, (6, 5), 3, seed=7)
    rng = np.random.default_rng(7)
    W1 = rng.uniform(-np.sqrt(6 / 4), np.sqrt(6 / 4), size=(6, 4))
    assert np.array_equal(one.W1, W1) and np.array_equal(deep.W1, W1)
    assert np.array_equal(one.W2, rng.uniform(-np.sqrt(6 / 9), np.sqrt(6 / 9), size=(3, 6)))
    rng = np.random.default_rng(7)
    rng.uniform(size=(6, 4))
    # a hidden layer under rect: He's bound, sqrt(6 / fan_in); the output: Glorot's
    assert np.array_equal(deep.W2, rng.uniform(-np.sqrt(6 / 6), np.sqrt(6 / 6), size=(5, 6)))
    assert np.array_equal(deep.W3, rng.uniform(-np.sqrt(6 / 8), np.sqrt(6 / 8), size=(3, 5)))


def test_cache_of_a_deep_net():
    net, X, _ = _problem((6, 5, 4), "softmax", 8)
    cache = net.fprop(X)
    assert [layer.h_a.shape for layer in cache.layers] == [(8, 6), (8, 5), (8, 4)]
    assert_allclose(cache.layers[1].h_a, cache.layers[0].h_s @ net.W2.T + net.b2, rtol=1e-14)
    assert_allclose(cache.o_a, cache.layers[2].h_s @ net.W4.T + net.b4, rtol=1e-14)
    with pytest.raises(AttributeError, match="this net has 3 hidden layers: read cache.layers"):
        _ = cache.h_a
    one = MLP(5, 7, 3, seed=0).fprop(X)
    assert isinstance(one, Cache) and one.h_a is one.layers[0].h_a and one.h_s.shape == (8, 7)


def test_parameters_are_set_in_place():
    net = MLP(3, (4, 2), 2, seed=0)
    W2 = net.W2
    net.params = {k: np.ones_like(v) for k, v in net.params.items()}
    assert net.W2 is W2 and np.all(W2 == 1)  # outside references stay valid
    net.W3 = np.zeros((2, 2))
    assert not net.W3.any() and not net.params["W3"].any()
    with pytest.raises(ValueError, match=r"params\['W3'\] must have shape \(2, 2\)"):
        net.W3 = np.zeros((2, 3))


@pytest.mark.parametrize("kwargs,error,message", [
    ({"output": "softmax", "m": 1}, ValueError, "m must be an integer >= 2, got 1"),
    ({"output": "sigmoid"}, ValueError, "output must be one of 'softmax', 'logistic', "
                                        "'identity', 'exp', got 'sigmoid'"),
    ({"d_h": (4, "5")}, TypeError, "d_h must be an integer >= 1, got str"),
    ({"d_h": 4.0}, TypeError, "d_h must be a positive integer or a sequence of them"),
])
def test_bad_architecture(kwargs, error, message):
    args = {"d": 3, "d_h": 4, "m": 2, **kwargs}
    with pytest.raises(error, match=message):
        MLP(args.pop("d"), args.pop("d_h"), args.pop("m"), **args)


def test_a_penalty_must_fit_the_net():
    net, X, y = _problem(4, "softmax", 5)
    with pytest.raises(ValueError, match="lambdas for W3, but the net has weight matrices W1 "
                                         "to W2 only"):
        net.loss_and_grads(X, y, ElasticNet(l2_W3=0.1))
    with pytest.raises(TypeError, match="ElasticNet got an unexpected argument 'l3_W1'"):
        ElasticNet(l3_W1=0.1)
    pen = ElasticNet(l1_W3=0.1, l2_W4=0.2)
    assert pen.to_dict() == {"l1_W1": 0.0, "l2_W1": 0.0, "l1_W2": 0.0, "l2_W2": 0.0,
                             "l1_W3": 0.1, "l2_W3": 0.0, "l1_W4": 0.0, "l2_W4": 0.2}
    assert ElasticNet.from_dict(pen.to_dict()) == pen and hash(pen) == hash(
        ElasticNet.from_dict(pen.to_dict()))
    with pytest.raises(AttributeError, match="immutable"):
        pen.l1_W1 = 1.0


# -- the three output/loss pairs, by hand ------------------------------------------


def _tiny(output, m):
    """A 2-2-m identity-activation net with simple weights: h_s = h_a = W1 x."""
    net = MLP(2, 2, m, activation="identity", output=output, seed=0)
    net.params = {"W1": np.array([[1.0, -1.0], [0.5, 2.0]]), "b1": np.zeros(2),
                  "W2": np.array([[1.0, -1.0], [2.0, 1.0]])[:m], "b2": np.zeros(m)}
    return net


def test_logistic_by_hand():
    # x = (1, 2): h = (-1, 4.5); o_a = (1 * -1 - 4.5, 2 * -1 + 4.5) = (-5.5, 2.5)
    net = _tiny("logistic", 2)
    X, t = np.array([[1.0, 2.0]]), np.array([[1.0, 0.0]])
    o_a = np.array([-5.5, 2.5])
    sig = 1 / (1 + np.exp(-o_a))
    loss = -(np.log(sig[0]) + np.log(1 - sig[1]))  # t = (1, 0)
    G = sig - t[0]  # the canonical link: o_s - t
    h = np.array([-1.0, 4.5])
    for method in ("matrix", "loop"):
        value, grads = net.loss_and_grads(X, t, method=method)
        assert_allclose(value, loss, rtol=1e-13)
        assert_allclose(grads["W2"], np.outer(G, h), rtol=1e-13)
        assert_allclose(grads["b2"], G, rtol=1e-13)
        assert_allclose(grads["W1"], np.outer(net.W2.T @ G, X[0]), rtol=1e-13)
    assert_allclose(net.predict_proba(X), sig[None], rtol=1e-14)
    assert np.array_equal(net.predict(X), [[0, 1]])


def test_identity_by_hand():
    net = _tiny("identity", 2)
    X, t = np.array([[1.0, 2.0], [0.0, 1.0]]), np.array([[0.0, 1.0], [1.0, 1.0]])
    h = X @ net.W1.T
    o = h @ net.W2.T
    loss = 0.5 * ((o - t) ** 2).sum(axis=1).mean()
    G = (o - t) / 2
    for method in ("matrix", "loop"):
        value, grads = net.loss_and_grads(X, t, method=method)
        assert_allclose(value, loss, rtol=1e-14)
        assert_allclose(grads["W2"], G.T @ h, rtol=1e-14)
        assert_allclose(grads["W1"], (G @ net.W2).T @ X, rtol=1e-14)
    assert_allclose(net.predict(X), o, rtol=1e-14)
    with pytest.raises(ValueError, match="no probabilities"):
        net.predict_proba(X)


def test_one_logistic_unit_for_two_classes():
    net = _tiny("logistic", 1)
    X = np.array([[1.0, 2.0], [2.0, -1.0], [0.5, 0.5]])
    y = np.array([1, 0, 1])
    loss, grads = net.loss_and_grads(X, y)
    loss2, grads2 = net.loss_and_grads(X, y[:, None])  # (K,) or (K, 1): the same targets
    assert loss == loss2 and all(np.array_equal(grads[k], grads2[k]) for k in grads)
    # one logistic unit is a two-class softmax with logits (0, o_a)
    two = _tiny("softmax", 2)
    two.params = {**two.params, "W2": np.vstack([np.zeros(2), net.W2]), "b2": np.zeros(2)}
    assert_allclose(loss, two.loss(X, y), rtol=1e-13)
    assert net.predict(X).shape == (3,)
    assert np.array_equal(net.predict(X), two.predict(X))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_huge_logits_give_finite_losses(dtype):
    for output, y in (("logistic", np.array([[1.0], [0.0]])), ("softmax", np.array([1, 1]))):
        m = 1 if output == "logistic" else 2
        net = MLP(1, 1, m, activation="identity", output=output, dtype=dtype, seed=0)
        net.params = {"W1": np.ones((1, 1)), "b1": np.zeros(1), "W2": np.full((m, 1), -1.0),
                      "b2": np.zeros(m)}
        X = np.array([[5e3], [-5e3]])
        loss, grads = net.loss_and_grads(X, y)
        # logistic, o_a = (-5e3, 5e3): softplus(-5e3) - 1 * (-5e3) = 5e3 for the first,
        # softplus(5e3) - 0 = 5e3 for the second: both confidently wrong
        if output == "logistic":
            assert_allclose(loss, 5e3, rtol=1e-6)
        assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads.values())


@pytest.mark.parametrize("output,y,message", [
    ("logistic", np.full((6, 3), 2.0), r"targets in \[0, 1\] .* from 2 to 2"),
    ("logistic", np.zeros(6), r"y must have shape \(6, 3\) for 3 logistic outputs"),
    ("identity", np.zeros((6, 2)), r"y must have shape \(6, 3\)"),
    ("identity", np.full((6, 3), np.nan), "y contains NaN or inf"),
    ("identity", np.zeros((5, 3)), r"len\(y\) = 5 but X has 6 examples"),
    ("softmax", np.zeros((6, 3)), "y must be 1-D"),
])
def test_bad_targets(output, y, message):
    net, X, _ = _problem((4, 3), output, 6)
    with pytest.raises(ValueError, match=message):
        net.loss_and_grads(X, y)


def test_identity_refuses_label_smoothing():
    net, X, y = _problem(4, "identity", 6)
    with pytest.raises(ValueError, match="label_smoothing applies to class targets"):
        net.loss(X, y, label_smoothing=0.1)


# -- loop against matrix, and finite differences, for every combination -----------


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("hidden", [7, (6, 5, 4)], ids=["depth1", "depth3"])
@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("penalty", ["none", "all"])
@pytest.mark.parametrize("K", [1, 10])
def test_loop_matrix_and_finite_differences_agree(output, hidden, activation, penalty, K):
    net, X, y = _problem(hidden, output, K, activation)
    pen = _penalty(net.L + 1, penalty)
    loss_m, g_m = net.loss_and_grads(X, y, pen)
    loss_l, g_l = net.loss_and_grads(X, y, pen, method="loop")
    assert_allclose(loss_l, loss_m, rtol=1e-12)
    for name in net.param_names:
        assert g_m[name].shape == net.params[name].shape
        assert_allclose(g_l[name], g_m[name], rtol=1e-12, atol=1e-15, err_msg=name)
    report = gradcheck(net, X, y, pen, eps=1e-3, order=4)
    assert report.max_rel_error <= 1e-7, str(report)
    checked = sum(c.n_checked for c in report.checks)
    assert report.n_kinks <= checked // 10, "too few entries away from the kinks"


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_deep_gradients_with_masks_smoothing_and_weights(output, activation):
    K = 10
    net, X, y = _problem((6, 5, 4), output, K, activation)
    rng = np.random.default_rng(3)
    options = {
        "mask_in": (rng.random((K, 5)) >= 0.2) / 0.8,
        "mask_h": [(rng.random((K, h)) >= 0.3) / 0.7 for h in net.hidden],
        "sample_weight": rng.uniform(0.1, 3.0, size=K),
        "label_smoothing": 0.15 if handprop_outputs.OUTPUTS[output].smoothing else 0.0,
    }
    pen = _penalty(net.L + 1, "all")
    _, g_m = net.loss_and_grads(X, y, pen, **options)
    _, g_l = net.loss_and_grads(X, y, pen, method="loop", **options)
    for name in g_m:
        assert_allclose(g_l[name], g_m[name], rtol=1e-12, atol=1e-15, err_msg=name)
    report = gradcheck(net, X, y, pen, eps=1e-3, order=4, **options)
    assert report.max_rel_error <= 1e-7, str(report)
    # a mask that drops the whole second layer cuts W1 and W2 off the loss
    dropped = [options["mask_h"][0], np.zeros((K, 5)), options["mask_h"][2]]
    _, g = net.loss_and_grads(X, y, mask_h=dropped)
    assert not g["W1"].any() and not g["W2"].any() and not g["b2"].any() and g["W4"].any()


def test_bad_masks_for_a_deep_net():
    net, X, y = _problem((6, 5), "softmax", 4)
    with pytest.raises(ValueError, match="mask_h must be a sequence of 2 masks"):
        net.loss(X, y, mask_h=np.ones((4, 6)))
    with pytest.raises(ValueError, match=r"mask_h\[1\] must have shape \(4, 5\)"):
        net.loss(X, y, mask_h=[np.ones((4, 6)), np.ones((4, 6))])


# -- model files ------------------------------------------------------------------


@pytest.mark.parametrize("output", OUTPUTS)
def test_deep_models_round_trip(tmp_path, output):
    net, X, _ = _problem((6, 5, 4), output, 5, "softplus", m=2)
    net.save(tmp_path / "m.npz", note="deep")
    back = MLP.load(tmp_path / "m.npz")
    assert back.spec() == net.spec() and back.meta == {"note": "deep"}
    assert np.array_equal(back.predict(X), net.predict(X))
    with np.load(tmp_path / "m.npz") as f:
        header = json.loads(str(f["metadata"]))
    assert header["hidden"] == [6, 5, 4] and header["output"] == output
    assert header["format_version"] == 2


def test_a_model_file_of_handprop_0_1_still_loads():
    # written by handprop 0.1.0 (model format 1: one hidden layer, softmax)
    net = MLP.load(DATA / "model-0.1.0-v1.npz")
    assert net.spec() == {"d": 3, "hidden": [4], "m": 3, "activation": "tanh",
                          "output": "softmax", "dtype": "float32"}
    assert net.meta["settings"] == {"hidden": 4}
    X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], dtype=np.float32)
    # the probabilities handprop 0.1.0 printed for these rows when it wrote the file
    assert_allclose(net.predict_proba(X),
                    [[0.2645128071308136, 0.29666271805763245, 0.43882450461387634],
                     [0.4696246385574341, 0.23334689438343048, 0.29702848196029663]],
                    rtol=1e-6)


def test_declared_sizes_are_checked_before_anything_is_allocated(tmp_path):
    # a small file that declares a huge hidden layer is refused by comparing
    # the declaration with the arrays really stored, not by building the net
    from handprop.files import write_archive

    net = MLP(3, 4, 2, seed=0)
    header = {**net.spec(), "hidden": [150_000_000]}
    write_archive(tmp_path / "m.npz", net.params, header, kind="handprop-model", version=2)
    with pytest.raises(ValueError, match=r"W1 has shape \(4, 3\); the metadata says "
                                         r"\(150000000, 3\)"):
        MLP.load(tmp_path / "m.npz")
