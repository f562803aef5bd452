"""Activations: the identities of the reference's section 1, derivatives
against finite differences, and stability for any finite input."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

from handprop.core import activations as act

NAMES = sorted(act.ACTIVATIONS)
WIDE = np.linspace(-30, 30, 2001)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_for_huge_inputs(name, dtype):
    x = np.array([-1e4, -1e3, -100, -50, -1, -1e-30, 0, 1e-30, 1, 50, 100, 1e3, 1e4], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            gx = act.ACTIVATIONS[name](x)
            dgx = act.DERIVATIVES[name](x, gx)
            dgx_alone = act.DERIVATIVES[name](x)
    for out in (gx, dgx, dgx_alone):
        assert out.dtype == dtype
        assert out.shape == x.shape
        assert np.all(np.isfinite(out))
    assert_allclose(dgx, dgx_alone)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in act.KINKED])
def test_derivative_matches_central_difference(name):
    x = np.linspace(-8, 8, 161)
    h = 1e-6
    g = act.ACTIVATIONS[name]
    numerical = (g(x + h) - g(x - h)) / (2 * h)
    assert_allclose(act.DERIVATIVES[name](x, g(x)), numerical, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", sorted(act.KINKED))
def test_kinked_derivative_off_the_kink(name):
    x = np.concatenate([np.linspace(-8, -0.01, 80), np.linspace(0.01, 8, 80)])
    h = 1e-6
    g = act.ACTIVATIONS[name]
    numerical = (g(x + h) - g(x - h)) / (2 * h)
    assert_allclose(act.DERIVATIVES[name](x, g(x)), numerical, rtol=1e-7, atol=1e-9)


def test_derivatives_at_zero_use_the_subgradient_zero_or_indicator():
    zero = np.zeros(1)
    assert act.DERIVATIVES["relu"](zero)[0] == 0.0  # 1[x > 0]
    assert act.DERIVATIVES["abs"](zero)[0] == 0.0
    assert act.DERIVATIVES["sign"](zero)[0] == 0.0
    assert act.sign(zero)[0] == 0.0


def test_relu_derivative_is_indicator_not_value():
    # reference 2.13 writes rect'(z) = h_a; the derivative is 1[z > 0].
    x = np.array([-2.0, 0.5, 3.0, 7.0])
    assert_allclose(act.DERIVATIVES["relu"](x), [0.0, 1.0, 1.0, 1.0])


def test_identity_1_1_sigmoid_from_tanh():
    assert_allclose(act.sigmoid(WIDE), 0.5 * (np.tanh(WIDE / 2) + 1), rtol=1e-12, atol=1e-15)
    assert_allclose(np.tanh(WIDE), 2 * act.sigmoid(2 * WIDE) - 1, rtol=1e-12, atol=1e-15)


def test_identity_1_2_log_sigmoid_is_minus_softplus_of_minus_x():
    x = np.linspace(-30, 700, 3001)
    assert_allclose(np.log(act.sigmoid(x)), -act.softplus(-x), rtol=1e-10, atol=1e-15)


def test_identity_1_3_sigmoid_derivative():
    # against the quotient rule's e^{-x} / (1 + e^{-x})^2, written with |x| so
    # that it is exact on a wide range, and against a central difference
    x = np.linspace(-700, 700, 14001)
    s = act.sigmoid(x)
    e = np.exp(-np.abs(x))
    # 1 - s loses the digits below 1e-16 when s is near 1: an absolute floor
    assert_allclose(s * (1 - s), e / (1 + e) ** 2, rtol=1e-9, atol=2e-16)
    h = 1e-6
    numerical = (act.sigmoid(WIDE + h) - act.sigmoid(WIDE - h)) / (2 * h)
    assert_allclose(act.DERIVATIVES["sigmoid"](WIDE), numerical, rtol=1e-6, atol=1e-9)


def test_identity_1_4_tanh_derivative():
    # against the quotient rule's 4 / (e^x + e^{-x})^2 = 1 / cosh(x)^2, and a
    # central difference
    x = np.linspace(-300, 300, 6001)
    t = np.tanh(x)
    assert_allclose(1 - t**2, 1 / np.cosh(x) ** 2, rtol=1e-9, atol=1e-15)
    h = 1e-6
    numerical = (np.tanh(WIDE + h) - np.tanh(WIDE - h)) / (2 * h)
    assert_allclose(act.DERIVATIVES["tanh"](WIDE), numerical, rtol=1e-6, atol=1e-9)


def test_identity_1_5_sign_from_indicators():
    x = np.concatenate([np.linspace(-1e6, 1e6, 1001), [0.0, -0.0, 1e-300, -1e-300]])
    assert_allclose(act.sign(x), (x > 0).astype(float) - (x < 0).astype(float))


def test_identity_1_6_1_7_abs_and_rect():
    x = np.linspace(-1e3, 1e3, 2001)
    assert_allclose(act.abs_(x), np.where(x > 0, x, -x))
    assert_allclose(act.relu(x), (x > 0) * x)
    off = x[x != 0]
    assert_allclose(act.DERIVATIVES["abs"](off), np.sign(off))
    assert_allclose(act.DERIVATIVES["relu"](off), (off > 0).astype(float))


def test_identity_1_8_1_9_norm_gradients(rng):
    w = rng.normal(size=50)
    h = 1e-6
    eye = np.eye(50) * h
    l2 = np.array([(np.sum((w + e) ** 2) - np.sum((w - e) ** 2)) / (2 * h) for e in eye])
    l1 = np.array([(np.sum(np.abs(w + e)) - np.sum(np.abs(w - e))) / (2 * h) for e in eye])
    assert_allclose(l2, 2 * w, rtol=1e-7)
    assert_allclose(l1, act.DERIVATIVES["abs"](w), rtol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1.0, 1e2, 1e3, 1e4])
def test_softmax_rows_sum_to_one_for_huge_logits(dtype, scale, rng):
    o_a = (rng.uniform(-1, 1, size=(50, 7)) * scale).astype(dtype)
    o_a[0] = [scale, -scale, 0, scale, -scale, 0.5 * scale, -0.5 * scale]
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        o_s = act.softmax(o_a)
        log_o_s = act.log_softmax(o_a)
        lse = act.logsumexp(o_a)
    assert o_s.dtype == dtype
    assert np.all(o_s >= 0) and np.all(np.isfinite(o_s))
    assert np.all(o_s.max(axis=1) > 0)
    assert_allclose(o_s.sum(axis=1), 1.0, rtol=1e-6 if dtype == np.float32 else 1e-12)
    assert np.all(np.isfinite(log_o_s)) and np.all(log_o_s <= 0)
    assert np.all(np.isfinite(lse))
    assert_allclose(lse, o_a.max(axis=1) + np.log(np.exp(o_a - o_a.max(axis=1, keepdims=True))
                                                   .sum(axis=1)), rtol=1e-6)


def test_naive_softmax_would_overflow_but_ours_does_not():
    o_a = np.array([1000.0, 0.0])
    with np.errstate(over="ignore", invalid="ignore"):
        naive = np.exp(o_a) / np.exp(o_a).sum()
    assert np.isnan(naive[0])
    assert_allclose(act.softmax(o_a), [1.0, 0.0])


def test_softmax_positive_on_moderate_logits(rng):
    o_a = rng.normal(scale=20, size=(100, 10))
    assert np.all(act.softmax(o_a) > 0)


def test_resolve_aliases_and_rejects_unknown():
    assert act.resolve("rect") == "relu"
    assert act.resolve("logistic") == "sigmoid"
    with pytest.raises(ValueError, match="unknown activation 'swish'.*expected one of"):
        act.resolve("swish")
    with pytest.raises(TypeError, match="activation must be a string"):
        act.resolve(3)
