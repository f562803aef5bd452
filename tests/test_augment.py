"""Image distortions: shapes, determinism, range and mass, exactness."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import ndimage

from handprop.data.augment import Augmenter, bilinear

KINDS = ["shift", "affine", "elastic", "affine,elastic", "shift,affine,elastic"]


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist[0][0][:64]


@pytest.mark.parametrize("kinds", KINDS)
def test_shapes_range_mass_and_determinism(digits, kinds):
    aug = Augmenter(kinds)
    out = aug(digits, np.random.default_rng(3))
    assert out.shape == digits.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0  # bilinear mixes stay in range
    assert not np.array_equal(out, digits)
    # the ink is kept on average: a distortion moves ink, it neither creates
    # nor removes it, except where it stretches (scaling by up to 12% changes
    # the area by up to 25%; the elastic field compresses and stretches locally)
    ratio = out.sum(axis=1) / digits.sum(axis=1)
    assert abs(ratio.mean() - 1) < 0.05
    assert np.all((ratio > 0.5) & (ratio < 2.0)), (ratio.min(), ratio.max())
    again = aug(digits, np.random.default_rng(3))
    assert np.array_equal(out, again)
    other = aug(digits, np.random.default_rng(4))
    assert not np.array_equal(out, other)


def test_shifts_move_whole_pixels_and_keep_the_mass(digits):
    images = digits.reshape(-1, 28, 28)
    # digits whose two outer rows and columns are blank lose nothing to a shift
    blank = ~np.any(images[:, [0, 1, -2, -1], :], axis=(1, 2)) & \
        ~np.any(images[:, :, [0, 1, -2, -1]], axis=(1, 2))
    assert blank.sum() > 30
    out = Augmenter("shift", max_shift=2)(digits[blank], np.random.default_rng(0))
    assert_allclose(out.sum(axis=1), digits[blank].sum(axis=1), rtol=1e-5)
    for before, after in zip(images[blank], out.reshape(-1, 28, 28)):
        found = [(dr, dc) for dr in range(-2, 3) for dc in range(-2, 3)
                 if np.array_equal(np.roll(after, (dr, dc), axis=(0, 1)), before)]
        assert found  # some shift of the output gives back the input exactly


def test_bilinear_equals_scipy_map_coordinates(rng):
    images = rng.random((5, 28, 28)).astype(np.float32)
    rows = rng.uniform(-4, 32, size=(5, 28, 28))
    cols = rng.uniform(-4, 32, size=(5, 28, 28))
    ours = bilinear(images, rows, cols)
    ref = np.stack([ndimage.map_coordinates(images[i], [rows[i], cols[i]], order=1,
                                            mode="grid-constant", prefilter=False)
                    for i in range(5)])
    assert_allclose(ours, ref, atol=1e-5)


def test_elastic_field_is_smooth(digits):
    # a smoothed field moves neighbouring pixels together: the distorted image
    # stays close to the original, unlike the same amount of white noise
    aug = Augmenter("elastic", alpha=8.0, sigma=4.0)
    out = aug(digits, np.random.default_rng(0))
    assert np.abs(out - digits).mean() < 0.1


@pytest.mark.parametrize("kwargs,message", [
    ({"kinds": "blur"}, "unknown augmentation blur"),
    ({"kinds": ""}, "unknown augmentation"),
    ({"kinds": "shift", "sigma": -1.0}, "sigma must be a number >= 0"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Augmenter(**kwargs)


def test_wrong_image_size_is_refused():
    with pytest.raises(ValueError, match="rows of 28 x 28 = 784 pixels"):
        Augmenter("shift")(np.zeros((2, 100), np.float32), np.random.default_rng(0))
