"""Distortions of image minibatches, drawn afresh for every minibatch.

Every distortion is a resampling of the image at displaced coordinates:
output pixel (r, c) takes the bilinearly interpolated input value at
(r, c) + displacement, and 0 outside the image. The kinds combine into one
displacement field, applied in one pass:

- ``shift``: the whole image moves by whole pixels, up to ``max_shift`` in
  each direction;
- ``affine``: a rotation, a scaling and a shear about the image centre;
- ``elastic``: Simard, Steinkraus and Platt (2003): a random field of
  displacements drawn uniformly in [-1, 1] for each pixel, smoothed by a
  Gaussian of standard deviation ``sigma`` and scaled by ``alpha``.

Bilinear interpolation is a convex combination of input pixels, so every
output pixel stays within the input's range. This module needs SciPy
(``pip install 'handprop[augment]'``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = ["Augmenter", "KINDS", "bilinear"]

KINDS = ("shift", "affine", "elastic")


def _ndimage():
    try:
        from scipy import ndimage
    except ImportError:
        raise ImportError("data augmentation needs SciPy: pip install 'handprop[augment]'"
                          ) from None
    return ndimage


@dataclass(frozen=True)
class Augmenter:
    """Distorts minibatches of flattened images.

    Parameters
    ----------
    kinds : some of "shift", "affine", "elastic" (a tuple, or a comma-separated string)
    shape : (height, width) of the images; the rows of a minibatch are
        height * width pixels
    max_shift : pixels, for "shift"
    rotation : the largest rotation in degrees, for "affine"
    scale : the largest relative change of size, for "affine"
    shear : the largest shear factor, for "affine"
    alpha, sigma : the scale and the smoothing of the elastic field, in pixels

    Examples
    --------
    >>> aug = Augmenter("shift")
    >>> X = np.zeros((2, 784), dtype=np.float32); X[:, 14 * 28 + 14] = 1.0
    >>> out = aug(X, np.random.default_rng(0))
    >>> out.shape, float(out.sum())
    ((2, 784), 2.0)
    """

    kinds: tuple[str, ...] | str = ("elastic",)
    shape: tuple[int, int] = (28, 28)
    max_shift: int = 2
    rotation: float = 12.0
    scale: float = 0.12
    shear: float = 0.25
    alpha: float = 34.0
    sigma: float = 4.0

    def __post_init__(self) -> None:
        kinds = self.kinds.split(",") if isinstance(self.kinds, str) else tuple(self.kinds)
        kinds = tuple(k.strip() for k in kinds if k.strip())
        unknown = [k for k in kinds if k not in KINDS]
        if not kinds or unknown:
            raise InputError(f"unknown augmentation {', '.join(unknown) or '(none)'}; expected "
                             f"one or more of {', '.join(KINDS)}")
        object.__setattr__(self, "kinds", kinds)
        if len(self.shape) != 2 or min(self.shape) < 2:
            raise InputError(f"shape must be (height, width), got {self.shape!r}")
        for name in ("max_shift", "rotation", "scale", "shear", "alpha", "sigma"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InputError(f"{name} must be a number >= 0, got {value!r}")
        _ndimage()  # fail now, not in the middle of training, when SciPy is missing

    def __call__(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Distorted copies of the images in X.

        Parameters
        ----------
        X : (K, height * width)
        rng : the generator the distortions are drawn from

        Returns
        -------
        (K, height * width), the dtype of X
        """
        ndimage = _ndimage()
        h, w = self.shape
        K = X.shape[0]
        if X.ndim != 2 or X.shape[1] != h * w:
            raise InputError(f"augmentation expects rows of {h} x {w} = {h * w} pixels, got "
                             f"X of shape {X.shape}")
        f32 = np.float32
        rows, cols = np.meshgrid(np.arange(h, dtype=f32), np.arange(w, dtype=f32), indexing="ij")
        src_r = np.broadcast_to(rows, (K, h, w))
        src_c = np.broadcast_to(cols, (K, h, w))
        if "affine" in self.kinds:
            # coordinates relative to the centre, mapped by a random 2 x 2 matrix
            cr, cc = (h - 1) / 2, (w - 1) / 2
            theta = np.deg2rad(rng.uniform(-self.rotation, self.rotation, K))
            zoom = 1 + rng.uniform(-self.scale, self.scale, K)
            sh = rng.uniform(-self.shear, self.shear, K)
            cos = (np.cos(theta) / zoom).astype(f32)[:, None, None]
            sin = (np.sin(theta) / zoom).astype(f32)[:, None, None]
            sh = sh.astype(f32)[:, None, None]
            dr, dc = src_r - f32(cr), src_c - f32(cc)
            src_r = f32(cr) + cos * dr + (sh * cos - sin) * dc
            src_c = f32(cc) + sin * dr + (sh * sin + cos) * dc
        if "shift" in self.kinds:
            s = self.max_shift
            src_r = src_r + rng.integers(-s, s + 1, K).astype(f32)[:, None, None]
            src_c = src_c + rng.integers(-s, s + 1, K).astype(f32)[:, None, None]
        if "elastic" in self.kinds:
            field = rng.random((2, K, h, w), dtype=f32)
            field *= 2
            field -= 1  # uniform in [-1, 1)
            # Gaussian smoothing as two small matrix products: the rows of G
            # are scipy's Gaussian filter (zero outside the image) applied to
            # the identity, so G @ f @ G^T filters f along both axes.
            Gr = ndimage.gaussian_filter1d(np.eye(h, dtype=f32), self.sigma, axis=0,
                                           mode="constant")
            Gc = ndimage.gaussian_filter1d(np.eye(w, dtype=f32), self.sigma, axis=0,
                                           mode="constant")
            field = Gr @ field @ Gc.T
            field *= f32(self.alpha)
            src_r = src_r + field[0]
            src_c = src_c + field[1]
        out = bilinear(X.reshape(K, h, w), src_r, src_c)
        return out.reshape(K, h * w).astype(X.dtype, copy=False)


def bilinear(images: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Sample each image at real-valued coordinates, bilinearly, with 0 outside.

    The same as ``scipy.ndimage.map_coordinates(order=1, mode="grid-constant")``
    image by image, but in one vectorized pass over the whole minibatch,
    about twice as fast as one 3-D call.

    Parameters
    ----------
    images : (K, h, w)
    rows, cols : (K, h, w), where output pixel [k, i, j] samples image k

    Returns
    -------
    (K, h, w), float32
    """
    K, h, w = images.shape
    pad = np.zeros((K, h + 4, w + 4), dtype=np.float32)  # two rows and columns of zeros
    pad[:, 2:h + 2, 2:w + 2] = images
    r = np.clip(rows + 2, 0, h + 2, dtype=np.float32)
    c = np.clip(cols + 2, 0, w + 2, dtype=np.float32)
    r0 = r.astype(np.intp)
    c0 = c.astype(np.intp)
    fr = r - r0
    fc = c - c0
    flat = pad.ravel()
    stride = w + 4
    # index of each sample's top-left neighbour in the flattened padded batch
    base = r0 * stride + c0 + (np.arange(K) * (h + 4) * stride)[:, None, None]
    top = np.take(flat, base)
    top *= 1 - fc
    top += np.take(flat, base + 1) * fc
    bottom = np.take(flat, base + stride)
    bottom *= 1 - fc
    bottom += np.take(flat, base + stride + 1) * fc
    return top * (1 - fr) + bottom * fr
