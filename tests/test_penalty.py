import numpy as np
import pytest
from numpy.testing import assert_allclose

from handprop import ElasticNet


def _params(rng):
    return {"W1": rng.normal(size=(4, 3)), "b1": rng.normal(size=4),
            "W2": rng.normal(size=(2, 4)), "b2": rng.normal(size=2)}


def test_value_is_the_four_weighted_norms(rng):
    p = _params(rng)
    pen = ElasticNet(l1_W1=0.1, l2_W1=0.2, l1_W2=0.3, l2_W2=0.4)
    expected = (0.1 * np.abs(p["W1"]).sum() + 0.2 * (p["W1"] ** 2).sum()
                + 0.3 * np.abs(p["W2"]).sum() + 0.4 * (p["W2"] ** 2).sum())
    assert_allclose(pen.value(p), expected, rtol=1e-14)


def test_gradient_is_lambda1_sign_plus_two_lambda2_w(rng):
    p = _params(rng)
    p["W1"][0, 0] = 0.0
    pen = ElasticNet(l1_W1=0.1, l2_W1=0.2, l1_W2=0.3, l2_W2=0.4)
    g = pen.grad(p)
    assert set(g) == {"W1", "W2"}  # biases are never penalized
    assert_allclose(g["W1"], 0.1 * np.sign(p["W1"]) + 0.4 * p["W1"], rtol=1e-15)
    assert_allclose(g["W2"], 0.3 * np.sign(p["W2"]) + 0.8 * p["W2"], rtol=1e-15)
    assert g["W1"][0, 0] == 0.0  # sign(0) = 0


def test_gradient_matches_finite_differences(rng):
    p = _params(rng)
    pen = ElasticNet(l1_W1=0.1, l2_W1=0.2, l1_W2=0.3, l2_W2=0.4)
    g = pen.grad(p)
    h = 1e-6
    for name in ("W1", "W2"):
        flat = p[name].reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + h
            up = pen.value(p)
            flat[i] = orig - h
            down = pen.value(p)
            flat[i] = orig
            assert_allclose(g[name].reshape(-1)[i], (up - down) / (2 * h), rtol=1e-6)


def test_biases_do_not_change_the_value(rng):
    p = _params(rng)
    pen = ElasticNet(1.0, 1.0, 1.0, 1.0)
    before = pen.value(p)
    p["b1"] += 100.0
    p["b2"] -= 100.0
    assert pen.value(p) == before


@pytest.mark.parametrize("field", ["l1_W1", "l2_W1", "l1_W2", "l2_W2"])
def test_negative_or_nonfinite_lambda_is_rejected(field):
    with pytest.raises(ValueError, match=f"{field} must be a number >= 0, got -0.5"):
        ElasticNet(**{field: -0.5})
    with pytest.raises(ValueError, match=field):
        ElasticNet(**{field: float("nan")})
    with pytest.raises(ValueError, match=f"{field} must be a number >= 0, got 1000.*too large"):
        ElasticNet(**{field: 10**400})
    with pytest.raises(TypeError, match=f"{field} must be a number >= 0, got str"):
        ElasticNet(**{field: "0.1"})


def test_zero_penalty():
    assert ElasticNet().is_zero
    assert not ElasticNet(l2_W2=1e-9).is_zero
