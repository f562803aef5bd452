"""Model files: a net's arrays and its JSON metadata in one ``.npz``.

The archive holds every parameter array and one more, ``metadata``: a JSON
text with the layer sizes, activation, output, dtype, handprop's version,
the sha256 of each array, and whatever the caller records (the history, the
settings). It is written atomically and read with ``allow_pickle=False``
(:mod:`handprop.files`): loading a file never runs code.

Format 1 is handprop 0.1's (one hidden layer, softmax); format 2 has any
depth and output. Both load.
"""

from __future__ import annotations

import os

import numpy as np

from .._version import __version__
from ..errors import InputError, InputTypeError
from ..files import read_archive, write_archive
from .outputs import all_finite

__all__ = ["MODEL_FORMAT", "MODEL_FORMAT_VERSION", "save", "load"]

MODEL_FORMAT = "handprop-model"
#: 1: one hidden layer, softmax (handprop 0.1); 2: any depth and output.
MODEL_FORMAT_VERSION = 2


def save(net, path: str | os.PathLike, meta: dict) -> None:
    """Write ``net`` to ``path`` atomically, with ``net.meta`` updated by ``meta``."""
    header = {"handprop_version": __version__, **net.spec(), "meta": {**net.meta, **meta}}
    write_archive(path, net.params, header, kind=MODEL_FORMAT, version=MODEL_FORMAT_VERSION)


def load(cls, path: str | os.PathLike):
    """Read a net of class ``cls`` (an MLP) written by :func:`save`.

    A truncated file, a file that is not a handprop model (or not a regular
    file), or one whose arrays do not match their recorded shapes and
    checksums raises an InputError (a ValueError) that says which. The sizes
    the metadata declares are checked against each stored array's header and
    size before anything is allocated.
    """
    net = cls.__new__(cls)

    def expect(header: dict):
        """The arrays the metadata declares, checked before any is read."""
        try:
            if header["format_version"] == 1:  # one hidden layer, softmax outputs
                hidden, output = header["d_h"], "softmax"
            else:
                hidden, output = header["hidden"], header["output"]
            net._setup(header["d"], hidden, header["m"], header["activation"], output,
                       header["dtype"])
            if not isinstance(header.get("meta", {}), dict):
                raise InputTypeError(f"meta must be a JSON object, got "
                                     f"{type(header['meta']).__name__}")
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}: bad model metadata ({exc})") from None
        return {name: (shape, net.dtype) for name, shape in net.shapes().items()}, {}

    arrays, header = read_archive(path, kind=MODEL_FORMAT, version=(1, MODEL_FORMAT_VERSION),
                                  expect=expect)
    for name, arr in arrays.items():
        if not all_finite(arr):
            raise InputError(f"{path}: {name} holds NaN or inf")
    # the arrays as read (C order, each allocated once): no second copy
    object.__setattr__(net, "_params", {k: np.ascontiguousarray(arrays.pop(k))
                                        for k in net.param_names})
    net.meta = header.get("meta", {})
    return net
