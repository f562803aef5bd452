"""A stand-in for CuPy made of NumPy, to run handprop's GPU code paths on a CPU.

Not a GPU test: it computes nothing on a GPU. Its arrays are NumPy arrays of
a subclass whose module is named "cupy", so that handprop.backend takes them
for CuPy's; ``asarray`` of a NumPy array copies it, as a transfer to a GPU
does, and ``.get()`` copies back. tests/test_gpu.py run with this folder on
PYTHONPATH (tests/test_gpu_paths.py does it) checks what moves between the
"devices" and when: copies, restores, checkpoints, optimizer state, resuming
on the other device. Real CuPy on a real GPU is the measure of the rest.
"""
import types

import numpy as _np


class ndarray(_np.ndarray):
    def get(self):
        return _np.array(self.view(_np.ndarray))


ndarray.__module__ = "cupy"


def _wrap(x):
    if isinstance(x, _np.ndarray) and not isinstance(x, ndarray):
        return x.view(ndarray)
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    return x


def _unwrap(x):
    if isinstance(x, ndarray):
        return x.view(_np.ndarray)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    return x


def asarray(a, dtype=None):
    if isinstance(a, _np.ndarray) and not isinstance(a, ndarray):
        return _np.array(a, dtype=dtype).view(ndarray)  # a copy, as a transfer is
    return _np.asarray(a, dtype=dtype).view(ndarray)


def __getattr__(name):
    f = getattr(_np, name)
    if not callable(f) or isinstance(f, type):
        return f

    def call(*args, **kwargs):
        args = [_unwrap(a) for a in args]
        kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
        return _wrap(f(*args, **kwargs))
    return call


class _Device:
    def __init__(self, n):
        self.n = n

    def use(self):
        pass


cuda = types.SimpleNamespace(
    runtime=types.SimpleNamespace(getDeviceCount=lambda: 1, getDevice=lambda: 0),
    Device=_Device)
