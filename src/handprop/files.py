"""Writing files so that a failure never leaves half of one behind.

Every file handprop writes (models, logs, figures, downloads) goes through
:func:`atomic_write`: the bytes go to a temporary file in the destination's
folder, are flushed and fsynced, and the temporary file is then renamed over
the destination. A rename within one file system is atomic, so a reader sees
either the old file or the new one, never a mixture; if anything fails, the
temporary file is removed and the destination is untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "write_bytes", "write_text"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` when the block succeeds.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_write(target, "w") as f:
    ...     _ = f.write("hello")
    >>> target.read_text()
    'hello'
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OSError(f"cannot write {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    text_args = {"encoding": "utf-8", "newline": ""} if mode == "w" else {}
    try:
        with os.fdopen(fd, mode, **text_args) as f:
            os.chmod(tmp, _mode_for(path))
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def remove_stale_temporaries(folder: str | os.PathLike,
                             names=("checkpoint.npz", "log.csv", "model.npz", "curves.png")
                             ) -> list[Path]:
    """Delete what a killed :func:`atomic_write` of one of ``names`` left in
    ``folder`` (``.NAME.*.tmp``); the files themselves were never touched."""
    removed = []
    for name in names:
        for tmp in Path(folder).glob(f".{name}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def _mode_for(path: Path) -> int:
    """mkstemp makes files private (0600); give the new file the mode a plain
    open() would: the old file's, or 0666 less the umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (UTF-8)."""
    with atomic_write(path, "w") as f:
        f.write(text)


def digest(arr) -> str:
    """sha256 of an array's bytes in C order."""
    import hashlib

    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def write_archive(path: str | os.PathLike, arrays: dict, meta: dict, *, kind: str,
                  version: int) -> None:
    """Atomically write ``arrays`` and a JSON ``meta`` into one ``.npz`` file.

    The JSON is stored as the array ``metadata`` and records ``kind``,
    ``version`` and the sha256 of every array, so that :func:`read_archive`
    can refuse a file that was truncated, tampered with or is of another kind.
    """
    import json

    import numpy as np

    header = {"format": kind, "format_version": version,
              "sha256": {k: digest(v) for k, v in arrays.items()}, **meta}
    try:
        text = json.dumps(header, allow_nan=False)
    except (TypeError, ValueError) as exc:
        what = kind.removeprefix("handprop-")
        raise ValueError(f"{what} metadata must be plain JSON: {exc}") from None
    with atomic_write(path) as f:
        np.savez(f, metadata=np.array(text), **arrays)
        _stall_for_tests(kind)


def _stall_for_tests(kind: str) -> None:
    """Test hook: with HANDPROP_TEST_STALL_WRITE=KIND:SECONDS, sleep after the
    bytes of a KIND archive are written and before the rename, so that a test
    can kill the process mid-write."""
    hook = os.environ.get("HANDPROP_TEST_STALL_WRITE", "")
    if hook.startswith(f"{kind}:"):
        import time

        time.sleep(float(hook.split(":", 1)[1]))


def read_archive(path: str | os.PathLike, *, kind: str, version: int | tuple[int, ...],
                 names: set[str] | None = None) -> tuple[dict, dict]:
    """Read a file written by :func:`write_archive`, with ``allow_pickle=False``.

    Returns (arrays, meta). ``version`` is the format version this handprop
    reads, or a tuple of those it reads. Raises ValueError, naming the file
    and the problem, when it is missing, truncated, of another kind or
    version, when
    its arrays are not ``names`` (if given), or when an array does not match
    its recorded checksum.
    """
    import json
    import zipfile

    import numpy as np

    what = kind.removeprefix("handprop-")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise ValueError(f"{path}: no such {what} file") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: not a readable {what} file; truncated or corrupt? "
                         f"({exc})") from None
    if not all(isinstance(a, np.ndarray) for a in arrays.values()):
        raise ValueError(f"{path}: not a readable {what} file: a member is not a NumPy array")
    if "metadata" not in arrays:
        raise ValueError(f"{path}: not a handprop {what} file: it has no metadata")
    try:
        meta = json.loads(str(arrays.pop("metadata")))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: bad {what} metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != kind:
        raise ValueError(f"{path}: not a handprop {what} file")
    versions = version if isinstance(version, tuple) else (version,)
    if meta.get("format_version") not in versions:
        raise ValueError(f"{path}: {what} format version {meta.get('format_version')!r} is not "
                         f"{' or '.join(map(str, versions))}, which this handprop reads")
    if names is not None and set(arrays) != names:
        raise ValueError(f"{path}: not a handprop {what} file: expected arrays "
                         f"{', '.join(sorted(names))}; found {', '.join(sorted(arrays))}")
    digests = meta.get("sha256", {})
    for name, arr in arrays.items():
        if digest(arr) != digests.get(name):
            raise ValueError(f"{path}: {name} does not match its recorded sha256; "
                             f"the file was modified or damaged")
    return arrays, meta
