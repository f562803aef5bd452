"""Each optimizer step against its closed form; the max-norm constraint."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from handprop.train.optimizers import SGD, Adam, make_optimizer, max_norm_


def test_adam_matches_its_closed_form(rng):
    p0 = rng.normal(size=(4, 3))
    grads = [rng.normal(size=(4, 3)) for _ in range(5)]
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    adam = Adam(b1, b2, eps)
    p = {"W": p0.copy()}
    m = np.zeros_like(p0)
    v = np.zeros_like(p0)
    expected = p0.copy()
    for t, g in enumerate(grads, start=1):
        assert adam.grad_scale(lr) == 1.0
        adam.step(p, {"W": g}, lr)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        expected = expected - lr_t * m / (np.sqrt(v) + eps)
        assert_allclose(p["W"], expected, rtol=1e-13)
    assert adam.t == 5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_in_blocks_is_the_whole_array_update_to_the_bit(rng, dtype):
    # The CPU update runs block by block (to stay in cache): arrays larger
    # than a few blocks, of a size no multiple of the block, one of them in
    # Fortran order (updated whole), give exactly the whole-array update.
    from handprop.train import optimizers
    shapes = {"W1": (301, 517), "W2": (3 * optimizers._BLOCK + 7,), "b": (5,)}
    params = {k: rng.normal(size=s).astype(dtype) for k, s in shapes.items()}
    params["WF"] = np.asfortranarray(rng.normal(size=(400, 300)).astype(dtype))
    blocks = {k: len(list(optimizers._blocks(np, p, p))) for k, p in params.items()}
    assert blocks == {"W1": 5, "W2": 4, "b": 1, "WF": 1}
    expected = {k: p.copy() for k, p in params.items()}
    m = {k: np.zeros_like(p) for k, p in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
    adam = Adam(b1, b2, eps)
    for t in range(1, 4):
        grads = {k: rng.normal(size=p.shape).astype(dtype) for k, p in params.items()}
        adam.step(params, grads, lr)
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        for k, g in grads.items():
            # the same operations, each rounded to the dtype as the step does
            m[k] *= b1
            m[k] += g * (1 - b1)
            v[k] *= b2
            v[k] += np.square(g) * (1 - b2)
            update = m[k] / (np.sqrt(v[k]) + eps)
            update *= lr_t  # a float64 scalar: multiplied in float64, rounded once
            expected[k] -= update
        for k in params:
            assert np.array_equal(params[k], expected[k]), k


def test_adam_first_step_moves_each_weight_by_about_lr(rng):
    # with bias correction the first step is lr * g / |g| = lr * sign(g)
    p = {"W": np.zeros((3, 3))}
    g = rng.normal(size=(3, 3))
    Adam().step(p, {"W": g}, 0.01)
    assert_allclose(p["W"], -0.01 * np.sign(g), rtol=1e-5)  # epsilon / |g| aside


def test_adam_state_round_trips(rng):
    a = Adam()
    p = {"W": rng.normal(size=(2, 2))}
    for _ in range(3):
        a.step(p, {"W": rng.normal(size=(2, 2))}, 0.1)
    b = Adam()
    b.load_state(a.state())
    g = rng.normal(size=(2, 2))
    pa, pb = {"W": p["W"].copy()}, {"W": p["W"].copy()}
    a.step(pa, {"W": g}, 0.1)
    b.step(pb, {"W": g}, 0.1)
    assert np.array_equal(pa["W"], pb["W"])


def test_updates_are_in_place(rng):
    for opt in (SGD(0.9, True), Adam()):
        W = rng.normal(size=(3, 2))
        params = {"W": W}
        opt.step(params, {"W": rng.normal(size=(3, 2))}, 0.1)
        assert params["W"] is W


def test_max_norm_rescales_only_long_rows():
    W = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    max_norm_(W, 1.0)
    assert_allclose(W, [[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]])


@pytest.mark.parametrize("name,kwargs,message", [
    ("rmsprop", {}, "unknown optimizer 'rmsprop'"),
    ("adam", {"beta1": 1.0}, r"beta1 must be a number in \[0, 1\)"),
    ("adam", {"epsilon": 0}, "epsilon must be a number > 0"),
    ("sgd", {"momentum": -0.1}, "momentum must be a number"),
])
def test_bad_settings(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_optimizer(name, **kwargs)
