"""Where the arrays live: NumPy on the CPU, or CuPy on an NVIDIA GPU.

The math of handprop (``network.forward``, ``network.backward``, the
activations, the optimizers, the penalty) is written once, against an array
module ``xp`` that is NumPy for NumPy arrays and CuPy for CuPy arrays: the
same lines of code run on either, and CuPy mirrors NumPy's functions name for
name (``xp.matmul(X, W1.T, out=h_a)`` is one cuBLAS call on a GPU).

A network (:class:`handprop.MLP`) always keeps its parameters in NumPy
arrays. ``fit(..., device="cuda")`` and ``MLPClassifier(device="cuda")``
copy them to the GPU with the training data, train there, and copy the
parameters back after every epoch, so that checkpoints, early stopping,
model files and pickles never hold a GPU array.

CuPy is an optional extra, ``pip install 'handprop[cuda12]'`` (or
``[cuda13]``, for the CUDA major version of the driver); nothing in handprop
imports it unless a device other than "cpu" is asked for.

>>> import numpy as np
>>> namespace(np.zeros(3)) is np
True
>>> resolve_device("cpu") is np
True
"""

from __future__ import annotations

import re
import sys
from types import ModuleType

import numpy as np

from .errors import InputError, InputTypeError

__all__ = ["namespace", "check_device", "resolve_device", "to_numpy", "DeviceCopy", "DEVICES"]

DEVICES = ('"cpu"', '"cuda"', '"cuda:N"')
_CUDA = re.compile(r"cuda(?::(\d+))?")


def namespace(*arrays) -> ModuleType:
    """The array module of ``arrays``: CuPy if one of them is a CuPy array, else NumPy."""
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            return sys.modules["cupy"]
    return np


def check_device(device: str) -> tuple[ModuleType, int | None]:
    """Check that ``device`` can be used, changing nothing: (the array module,
    the GPU's number or None). The errors are :func:`resolve_device`'s."""
    if not isinstance(device, str):
        raise InputTypeError(f"device must be a string ({', '.join(DEVICES)}), got "
                             f"{type(device).__name__}")
    if device == "cpu":
        return np, None
    match = _CUDA.fullmatch(device)
    if match is None:
        raise InputError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    try:
        import cupy
    except ImportError:
        raise InputError(f"device={device!r} needs CuPy, which is not installed: pip install "
                         f"'handprop[cuda12]' (or [cuda13], for the CUDA version of the "
                         f"driver that nvidia-smi shows)") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CuPy's CUDARuntimeError, or a missing libcuda
        raise InputError(f"device={device!r}: CuPy finds no usable NVIDIA GPU ({exc})") \
            from None
    number = int(match.group(1) or cupy.cuda.runtime.getDevice())
    if not 0 <= number < count:
        raise InputError(f"device={device!r}: there is no GPU number {number}; "
                         f"{count} visible (cuda:0 to cuda:{count - 1})")
    return cupy, number


def resolve_device(device: str) -> ModuleType:
    """The array module for ``device``, after checking that it can be used;
    "cuda:N" makes GPU N the current one (:func:`check_device` only checks).

    Parameters
    ----------
    device : "cpu" (NumPy), "cuda" (CuPy on the current GPU) or "cuda:N"
        (CuPy on GPU number N, which becomes the current one)

    Raises
    ------
    ValueError
        for any other string, when CuPy is not installed, or when no such
        GPU is visible; the message says what to do.
    TypeError
        when ``device`` is not a string.
    """
    xp, number = check_device(device)
    if number is not None:
        xp.cuda.Device(number).use()
    return xp


def to_numpy(a) -> np.ndarray:
    """``a`` as a NumPy array: copied from the GPU if it is a CuPy array."""
    return a.get() if namespace(a) is not np else np.asarray(a)


class DeviceCopy:
    """A net's parameters where they train, and the copies to and from there.

    On the CPU, ``params`` are the net's own NumPy arrays and every copy is a
    no-op; on a GPU they are CuPy copies, made once. The epoch runner of
    ``fit`` and the scikit-learn estimators both train through one.

    Parameters
    ----------
    host : the net's parameter arrays (NumPy), by name
    xp : NumPy, or CuPy for a GPU
    """

    def __init__(self, host: dict[str, np.ndarray], xp=np) -> None:
        self.host, self.xp = host, xp
        self.on_gpu = xp is not np
        self.params = {k: xp.asarray(v) for k, v in host.items()} if self.on_gpu else host

    def put(self, a):
        """``a`` (an array, or None) where the parameters are."""
        return a if (a is None or not self.on_gpu) else self.xp.asarray(a)

    def to_host(self) -> None:
        """Copy the parameters back into the host arrays (a GPU run)."""
        if self.on_gpu:
            for k, v in self.params.items():
                self.host[k][...] = to_numpy(v)

    def load(self, source: dict) -> None:
        """Copy ``source``'s arrays into the parameters, and the host's."""
        for k, v in source.items():
            self.params[k][...] = self.put(v) if self.on_gpu else v
        self.to_host()

    def adopt(self, optimizer) -> None:
        """Move an optimizer's state to where the parameters are."""
        if self.on_gpu:
            optimizer.map_state(self.xp.asarray)

    def release(self, optimizer) -> None:
        """Move an optimizer's state back to the CPU."""
        if self.on_gpu:
            optimizer.map_state(to_numpy)
