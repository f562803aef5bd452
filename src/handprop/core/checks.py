"""The network's input checks. They run before anything is computed, so a
call that fails leaves the network as it was, and each raises an InputError
(a ValueError) or InputTypeError (a TypeError) that names the argument and
what was expected (see :mod:`handprop.errors`).

The targets are the output/loss pair's to check
(:attr:`handprop.core.outputs.Output.check_targets`); the rest is here.
"""

from __future__ import annotations

import numpy as np

from .. import validate
from ..errors import InputError, InputTypeError
from .outputs import OUTPUTS, all_finite, real_array
from .penalty import ElasticNet

__all__ = ["check_dtype", "check_X", "check_params", "check_penalty", "check_masks",
           "check_options", "check_sample_weight"]

_FLOAT_DTYPES = ("float32", "float64")


def check_dtype(dtype) -> np.dtype:
    """float32 or float64 as a NumPy dtype, or an error."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise InputTypeError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if dt.name not in _FLOAT_DTYPES:
        raise InputError(f"dtype must be float32 or float64, got {dt.name}")
    return dt


def check_X(net, X) -> np.ndarray:
    """X as a (K, d) array of the net's dtype: finite, and within float32's
    range for a float32 net."""
    arr = real_array("X", X)
    if arr.ndim != 2:
        raise InputError(f"X must be 2-D with shape (K, {net.d}), one example per row; "
                         f"got {arr.ndim}-D array of shape {arr.shape}")
    if arr.shape[0] == 0:
        raise InputError(f"X is an empty batch: expected shape (K, {net.d}) with K >= 1")
    if arr.shape[1] != net.d:
        raise InputError(f"X has {arr.shape[1]} features per example; this net expects "
                         f"d = {net.d}")
    if not all_finite(arr):
        raise InputError("X contains NaN or inf; every input must be finite")
    if net.dtype == np.float32 and arr.dtype.itemsize > 4 and arr.size:
        top = float(np.abs(arr).max())
        if top > float(np.finfo(np.float32).max):
            raise InputError(f"X holds values up to {top:.3g}, beyond float32's range "
                             f"(3.4e38): scale the data, or use a float64 net")
    return np.asarray(arr, dtype=net.dtype)


def check_params(net, new) -> dict[str, np.ndarray]:
    """Every name, shape and value of a dict of parameters for ``net``, as
    copies in its dtype: nothing is assigned until all have passed."""
    if not isinstance(new, dict):
        raise InputTypeError(f"params must be a dict of arrays, got {type(new).__name__}")
    names = net.param_names
    missing = [k for k in names if k not in new]
    extra = [k for k in new if k not in names]
    if missing or extra:
        raise InputError(f"params must have exactly the keys {', '.join(names)}; "
                         f"missing {missing or 'none'}, unexpected {extra or 'none'}")
    checked = {}
    for name, shape in net.shapes().items():
        arr = real_array(f"params[{name!r}]", new[name])
        if arr.shape != shape:
            raise InputError(f"params[{name!r}] must have shape {shape}, got {arr.shape}")
        if not all_finite(arr):
            raise InputError(f"params[{name!r}] holds NaN or inf")
        checked[name] = np.array(arr, dtype=net.dtype, copy=True)
    return checked


def check_penalty(net, penalty) -> ElasticNet | None:
    """``penalty`` if it is None or an ElasticNet for the net's weight
    matrices (a lambda for a matrix it does not have is an error)."""
    if penalty is None:
        return None
    if not isinstance(penalty, ElasticNet):
        raise InputTypeError(f"penalty must be an ElasticNet or None, got "
                             f"{type(penalty).__name__}")
    return penalty.check_depth(net.L + 1)


def check_masks(net, mask_h, K: int) -> tuple | None:
    """The hidden dropout masks as a tuple of L arrays (K, d_l) (or None
    entries): ``mask_h`` is one array for one hidden layer, or a sequence of
    L arrays (or None) for L layers."""
    if mask_h is None:
        return None
    masks = (mask_h,) if (net.L == 1 and not isinstance(mask_h, (list, tuple))) else mask_h
    if not isinstance(masks, (list, tuple)) or len(masks) != net.L:
        raise InputError(f"mask_h must be a sequence of {net.L} masks, one per hidden "
                         f"layer, got {type(mask_h).__name__}")
    out = []
    for l, mask in enumerate(masks, start=1):
        name = "mask_h" if net.L == 1 else f"mask_h[{l - 1}]"
        out.append(None if mask is None else _mask(net, name, mask, (K, net.hidden[l - 1])))
    return tuple(out)


def _mask(net, name: str, mask, shape) -> np.ndarray:
    arr = real_array(name, mask, net.dtype)
    if arr.shape != shape:
        raise InputError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InputError(f"{name} must hold finite values >= 0")
    return arr


def check_options(net, K: int, *, mask_in=None, mask_h=None, label_smoothing=0.0,
                  sample_weight=None) -> dict:
    """The loss options as checked arrays and numbers.

    Parameters
    ----------
    K : the minibatch size
    mask_in : (K, d) input dropout mask (0 or 1 / (1 - rate)), or None
    mask_h : the hidden dropout masks (see :func:`check_masks`), or None
    label_smoothing : float in [0, 1); only for pairs that smooth
    sample_weight : (K,) weights >= 0 with a positive sum, or None

    Returns
    -------
    dict of mask_in, masks (tuple or None), label_smoothing, sample_weight
    """
    out = {"mask_in": None if mask_in is None else _mask(net, "mask_in", mask_in, (K, net.d)),
           "masks": check_masks(net, mask_h, K)}
    out["label_smoothing"] = validate.rate("label_smoothing", label_smoothing)
    if out["label_smoothing"] and not net.pair.smoothing:
        smoothed = [n for n, p in OUTPUTS.items() if p.smoothing]
        smoothed = " and ".join([", ".join(smoothed[:-1]), smoothed[-1]] if len(smoothed) > 1
                                else smoothed)
        raise InputError(f"label_smoothing applies to class targets ({smoothed} outputs), "
                         f"not to {net.output} outputs")
    if sample_weight is None:
        out["sample_weight"] = None
    else:
        out["sample_weight"] = check_sample_weight(sample_weight, K).astype(net.dtype)
    return out


def check_sample_weight(sample_weight, K: int) -> np.ndarray:
    """(K,) float64 weights: finite, >= 0, with a positive sum."""
    w = real_array("sample_weight", sample_weight, np.float64)
    if w.shape != (K,):
        raise InputError(f"sample_weight must have shape ({K},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise InputError("sample_weight must hold finite weights >= 0 with a positive sum")
    return w
