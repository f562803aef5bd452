"""Writing files so that a failure never leaves half of one behind.

Every file handprop writes (models, logs, figures, downloads) goes through
:func:`atomic_write`: the bytes go to a temporary file in the destination's
folder, are flushed and fsynced, and the temporary file is then renamed over
the destination. A rename within one file system is atomic, so a reader sees
either the old file or the new one, never a mixture; if anything fails, the
temporary file is removed and the destination is untouched. A symbolic link
is followed (the file it points to is replaced, the link stays), and a
destination that exists but is not a regular file (a FIFO, a device) is
refused rather than replaced.

Every file handprop reads from a path it was given goes through
:func:`open_regular`, which refuses anything but a regular file before
reading a byte: a FIFO would block the reader forever, a device would never
end. Archives (models, checkpoints) are read by :func:`read_archive`, which
checks each array's declared size and shape against what the metadata
expects before allocating anything.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, BinaryIO

from .errors import InputError

__all__ = ["atomic_write", "write_bytes", "write_text", "open_regular", "read_text",
           "read_archive", "write_archive", "lock_folder", "remove_stale_temporaries",
           "parse_json", "read_toml", "check_structure", "shown"]


def shown(path) -> str:
    """A path as a message shows it: as it is, or quoted with escapes when
    it holds a newline or another character that is not printable (a
    message is one line, and the name must be the file's)."""
    text = os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else str(path)
    return text if text.isprintable() else repr(text)


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path: str | os.PathLike, what: str = "file") -> BinaryIO:
    """Open ``path`` for reading (binary), or raise InputError when it is
    missing, unreadable, or not a regular file.

    The file is opened without blocking and checked with ``fstat`` before a
    byte is read, so that a FIFO (whose open or read would wait forever for a
    writer) or a device is refused at once, and no file can be swapped in
    between the check and the read. Symbolic links are followed.
    """
    name = shown(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if os.path.islink(path):
            raise InputError(f"{name}: a symbolic link to {shown(os.readlink(path))}, which "
                             f"does not exist; no {what} there") from None
        raise InputError(f"{name}: no such {what}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{name}: a loop of symbolic links, which never reaches a "
                             f"{what}") from None
        raise InputError(f"{name}: cannot open the {what} ({exc.strerror or exc})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        link = " (through a symbolic link)" if os.path.islink(path) else ""
        raise InputError(f"{name}: {_kind_of(mode)}{link}, not a regular file; handprop "
                         f"reads a {what} from a regular file only")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_text(path: str | os.PathLike, what: str = "text file") -> str:
    """The UTF-8 text of a regular file (a byte-order mark is dropped), or an
    InputError that names the file."""
    with open_regular(path, what) as f:
        data = f.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{shown(path)}: not UTF-8 text (byte {exc.start} is "
                         f"0x{data[exc.start]:02x}); save the {what} as UTF-8") from None


def _destination(path: Path) -> Path:
    """Where writing ``path`` really goes: a symbolic link is followed, and
    anything that exists but is not a regular file is refused."""
    real = Path(os.path.realpath(path))
    try:
        mode = real.stat().st_mode
    except FileNotFoundError:
        return real
    except OSError as exc:
        raise _os_error(exc.errno, f"cannot write {shown(path)}: {exc.strerror or exc}") \
            from None
    if not stat.S_ISREG(mode):
        raise InputError(f"cannot write {shown(path)}: it is {_kind_of(mode)}; handprop "
                         f"replaces files atomically and will not replace one that is not a "
                         f"regular file: write to a regular file's path instead")
    return real


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` when the block succeeds.

    A symbolic link is followed: the file it points to is replaced and the
    link stays. A ``path`` that exists and is not a regular file (a FIFO, a
    device, a folder) is refused with an InputError, before anything is
    written. The temporary file, ``.NAME.PID-XXXX.tmp`` beside the
    destination, carries the writer's process id, so that
    :func:`remove_stale_temporaries` leaves a live writer's alone.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_write(target, "w") as f:
    ...     _ = f.write("hello")
    >>> target.read_text()
    'hello'
    """
    if mode not in ("wb", "w"):
        raise InputError(f"mode must be 'wb' or 'w', got {mode!r}")
    given = Path(path)
    path = _destination(given)
    folder = path.parent
    if not folder.is_dir():
        raise _os_error(errno.ENOENT, f"cannot write {shown(given)}: folder "
                                      f"{shown(given.parent)} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp",
                                   dir=folder)
    except OSError as exc:  # a read-only or full disk: name the file, not the temporary
        raise _write_error(exc, given, tmp=None) from None
    text_args = {"encoding": "utf-8", "newline": ""} if mode == "w" else {}
    try:
        with os.fdopen(fd, mode, **text_args) as f:
            os.chmod(tmp, _mode_for(path))
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and _unnamed(exc, tmp):
            raise _write_error(exc, given, tmp) from None
        raise
    _fsync_folder(folder)


def _os_error(number: int | None, message: str) -> OSError:
    """An OSError whose text is ``message`` alone (no "[Errno N]"), with its
    errno kept."""
    error = OSError(message)
    error.errno = number
    return error


def _unnamed(exc: OSError, tmp) -> bool:
    """An error of the system in writing that names no file (ENOSPC from a
    write names none) or names the temporary file, not the destination."""
    return exc.errno is not None and exc.filename in (None, tmp)


def _write_error(exc: OSError, given: Path, tmp) -> OSError:
    """The OSError of a failed write, saying which file could not be written
    (the destination; the temporary file is an implementation detail)."""
    reason = exc.strerror or str(exc)
    return _os_error(exc.errno, f"cannot write {shown(given)}: {reason}; nothing was replaced")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike,
                             names=("checkpoint.npz", "log.csv", "model.npz", "curves.png",
                                    "run.json")) -> list[Path]:
    """Delete what a killed :func:`atomic_write` of one of ``names`` left in
    ``folder`` (``.NAME.PID-*.tmp``): only the temporaries of processes that
    are gone; a live writer's are left alone. The files themselves were
    never touched."""
    removed = []
    for name in names:
        for tmp in Path(folder).glob(f".{name}.*.tmp"):
            pid = tmp.name[len(name) + 2:].split("-", 1)[0]
            if pid.isdigit() and _alive(int(pid)):
                continue
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


@contextlib.contextmanager
def lock_folder(folder: str | os.PathLike, what: str = "run folder") -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (its ``.handprop.lock``) for the
    block, so that two processes never write one run folder at once; a
    second one gets an InputError that names the holder's process id.

    The lock is the operating system's (``flock``): it goes with the process
    that holds it, so a killed run leaves no stale lock behind.
    """
    import fcntl

    path = Path(folder) / ".handprop.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise InputError(f"{folder} is in use: another handprop process (pid {holder}) "
                             f"is writing this {what}; wait for it to end, or choose "
                             f"another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield Path(folder)
    finally:
        os.close(fd)  # releases the lock


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
    """sha256 of an array's bytes in C order, hashed where they lie: no copy
    of the array is made (a Fortran-ordered or strided one is hashed a few
    rows at a time)."""
    import hashlib

    import numpy as np

    arr = np.asarray(arr)
    h = hashlib.sha256()
    if arr.flags.c_contiguous:
        h.update(memoryview(arr.reshape(-1).view(np.uint8)))
    else:
        rows = max(1, (16 << 20) // max(1, arr[0].nbytes))
        for start in range(0, len(arr), rows):
            h.update(memoryview(np.ascontiguousarray(arr[start:start + rows]).reshape(-1)
                                .view(np.uint8)))
    return h.hexdigest()


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
        raise InputError(f"{what} metadata must be plain JSON: {exc}") from None
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


#: The largest metadata JSON read from an archive (a long history is a few MB).
META_LIMIT = 64 << 20
#: The longest .npy header read (a header is a short dict: its dtype and shape).
MAX_NPY_HEADER = 10_000

#: (shape, dtype) that an array of an archive must have; None in the shape
#: (or for the dtype) accepts any size (or real dtype).
Expected = tuple[tuple[int | None, ...], "object"]


def memory_limit() -> tuple[int, str]:
    """(bytes, what they are): the most memory that one array read from a
    file, or one net and its training, may take: half this machine's
    memory, or this process's address-space limit (``ulimit -v``) when that
    is lower. Anything bigger could not be used anyway."""
    try:
        limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
        what = "half this machine's memory"
    except (ValueError, OSError, AttributeError):
        limit, what = 8 << 30, "8 GiB"
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY and soft < limit:
            limit, what = soft, "this process's memory limit (ulimit -v)"
    except (ImportError, ValueError, OSError):
        pass
    return limit, f"{what}, {limit / 2**30:.1f} GiB"


def _read_member(zf, info, path, name: str, expected: Expected | None):
    """One .npy member of a zip, checked before it is read: its header's
    dtype and shape against ``expected``, and the size they imply against
    the size the zip declares (a bomb is refused before it is inflated)."""
    import numpy as np

    fmt = np.lib.format
    import struct

    with zf.open(info) as stream:
        try:
            major, _ = fmt.read_magic(stream)
            width = 2 if major == 1 else 4  # the header's length, then the header
            length_bytes = stream.read(width)
            if len(length_bytes) < width:
                raise EOFError("the file ends in the header")
            length = struct.unpack("<H" if width == 2 else "<I", length_bytes)[0]
            if length > MAX_NPY_HEADER:
                raise InputError(f"{shown(path)}: array {name} has a .npy header of "
                                 f"{length:,} bytes, more than the {MAX_NPY_HEADER:,} of any "
                                 f"array handprop reads: not an array of numbers")
            read_header = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
            text = length_bytes + stream.read(length)
            shape, fortran, dtype = read_header(io.BytesIO(text),
                                                max_header_size=MAX_NPY_HEADER)
        except (ValueError, OSError, EOFError, struct.error) as exc:
            if isinstance(exc, InputError):
                raise
            reason = " ".join(str(exc).split())[:200]
            raise InputError(f"{shown(path)}: array {name} has no readable .npy header "
                             f"({reason})") from None
        if dtype.hasobject or not (np.issubdtype(dtype, np.number) or dtype.kind in "bU"):
            raise InputError(f"{path}: array {name} has dtype {dtype}, not numbers")
        if expected is not None:
            want_shape, want_dtype = expected
            if len(shape) != len(want_shape) or any(
                    w is not None and w != g for g, w in zip(shape, want_shape)):
                wanted = tuple("n" if w is None else w for w in want_shape)
                raise InputError(f"{shown(path)}: {name} has shape {shape}; the metadata says "
                                 f"{wanted}")
            if want_dtype is not None and dtype != np.dtype(want_dtype):
                raise InputError(f"{path}: {name} has dtype {dtype}; the metadata says "
                                 f"{np.dtype(want_dtype)}")
        size = int(np.prod(shape, dtype=object)) * dtype.itemsize
        limit, what = memory_limit()
        if size > limit:
            raise InputError(f"{shown(path)}: array {name} of shape {shape} would take "
                             f"{size:,} bytes, more than {what}")
        if info.file_size != stream.tell() + size:
            raise InputError(f"{path}: array {name} declares {info.file_size:,} bytes where "
                             f"its shape implies {stream.tell() + size:,}")
        out = np.empty(shape[::-1] if fortran else shape, dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        done = 0
        while done < size:  # a block at a time: a zip stream's readinto reads a copy first
            got = stream.readinto(view[done:done + (16 << 20)])
            if not got:
                raise InputError(f"{path}: array {name} is truncated")
            done += got
    return out.T if fortran else out


def read_npz(path: str | os.PathLike, names, what: str = "data file") -> dict:
    """The arrays ``names`` of any ``.npz`` file (others are not read), each
    checked (numbers only, its declared size consistent with its header, at
    most half this machine's memory) before it is read; an InputError that
    names the file and the problem otherwise."""
    import zipfile

    with open_regular(path, what) as f:
        if f.read(6) == b"\x93NUMPY":
            raise InputError(f"{path}: a single NumPy array (.npy), not an .npz archive of "
                             f"{' and '.join(names)}")
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as zf:
                infos = {i.filename[:-4]: i for i in zf.infolist()
                         if i.filename.endswith(".npy")}
                missing = [n for n in names if n not in infos]
                if missing:
                    raise InputError(f"{path}: expected arrays named {' and '.join(names)}, "
                                     f"found {', '.join(sorted(infos)) or 'none'}")
                return {n: _read_member(zf, infos[n], path, n, None) for n in names}
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"{path}: not a readable .npz file ({exc})") from None


def read_archive(path: str | os.PathLike, *, kind: str, version: int | tuple[int, ...],
                 expect: Callable[[dict], tuple[dict, dict]] | None = None,
                 meta_only: bool = False) -> tuple[dict, dict]:
    """Read a file written by :func:`write_archive`, never running code.

    Parameters
    ----------
    kind, version : the format (and the format versions this handprop reads)
    expect : called with the metadata, returns (required, optional): dicts
        of array name -> (shape, dtype) that the file must and may hold (see
        :data:`Expected`); it raises InputError for malformed metadata. By
        default any arrays are read, each checked against its declared size.
    meta_only : read and check the metadata only; the arrays are {}

    Returns (arrays, meta). Raises InputError, naming the file and the
    problem, when it is missing, not a regular file, truncated, of another
    kind or version, when its metadata is malformed, when its arrays are not
    the expected ones (checked before any is read), or when an array does
    not match its recorded checksum. Only ``allow_pickle=False`` data is
    read: object arrays are refused.
    """
    import json
    import zipfile

    what = kind.removeprefix("handprop-")
    with open_regular(path, f"{what} file") as f:
        magic = f.read(6)
        f.seek(0)
        if magic == b"\x93NUMPY":
            raise InputError(f"{path}: a single NumPy array (.npy), not a handprop {what} "
                             f"file (an .npz archive)")
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise InputError(f"{path}: not a readable {what} file; truncated or corrupt? "
                             f"({exc})") from None
        with zf:
            try:
                return _read_zip(zf, path, what, kind, version, expect, json, meta_only)
            except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
                raise InputError(f"{path}: not a readable {what} file; truncated or corrupt? "
                                 f"({exc})") from None


def _read_zip(zf, path, what, kind, version, expect, json, meta_only):
    infos = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            raise InputError(f"{path}: not a handprop {what} file: it holds "
                             f"{info.filename!r}, which is not an array")
        infos[info.filename[:-4]] = info
    if "metadata" not in infos:
        raise InputError(f"{path}: not a handprop {what} file: it has no metadata")
    info = infos.pop("metadata")
    if info.file_size > META_LIMIT:
        raise InputError(f"{path}: its metadata declares {info.file_size:,} bytes, more than "
                         f"the {META_LIMIT:,} a handprop {what} file holds")
    text = _read_member(zf, info, path, "metadata", None)
    if text.dtype.kind != "U" or text.shape != ():
        raise InputError(f"{path}: bad {what} metadata: not a JSON text")
    try:
        meta = parse_json(str(text), f"{path}: its metadata")
    except InputError as exc:
        raise InputError(f"{path}: bad {what} metadata ({str(exc).split(': ', 2)[-1]})") \
            from None
    if not isinstance(meta, dict) or meta.get("format") != kind:
        raise InputError(f"{path}: not a handprop {what} file")
    versions = version if isinstance(version, tuple) else (version,)
    if meta.get("format_version") not in versions or isinstance(meta.get("format_version"),
                                                                bool):
        raise InputError(f"{path}: {what} format version {meta.get('format_version')!r} is "
                         f"not {' or '.join(map(str, versions))}, which this handprop reads")
    digests = meta.get("sha256")
    if not (isinstance(digests, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in digests.items())):
        raise InputError(f"{path}: bad {what} metadata: sha256 must map each array's name to "
                         f"its checksum, got {type(digests).__name__}")
    if meta_only:
        return {}, meta
    if expect is None:
        required, optional = {}, {name: None for name in infos}
    else:
        required, optional = expect(meta)
    missing = sorted(set(required) - set(infos))
    extra = sorted(set(infos) - set(required) - set(optional))
    if missing or extra:
        raise InputError(f"{path}: the metadata declares arrays {', '.join(required)}; the "
                         f"file holds {', '.join(sorted(infos)) or 'none'}")
    arrays = {}
    for name, info in infos.items():
        arrays[name] = _read_member(zf, info, path, name, {**optional, **required}[name])
        if digest(arrays[name]) != digests.get(name):
            raise InputError(f"{path}: {name} does not match its recorded sha256; the file was "
                             f"modified or damaged")
    return arrays, meta


# --------------------------------------------------------------------------
# JSON and TOML with limits
# --------------------------------------------------------------------------

#: The deepest nesting of arrays and objects a handprop JSON or TOML file has
#: any use for; Python's parsers recurse, and a deeper text would exhaust the
#: stack (a RecursionError) instead of being refused.
MAX_NESTING = 64
#: The most digits of an integer: Python refuses to convert more than 4,300
#: (a ValueError deep in the parser); no setting needs more than a few.
MAX_DIGITS = 100


def check_structure(text: str, where: str, *, toml: bool = False,
                    kind: str = "a file handprop writes") -> None:
    """Refuse a JSON or TOML text nested deeper than :data:`MAX_NESTING` or
    holding a number of more than :data:`MAX_DIGITS` digits, before it is
    parsed (an InputError that says where, and that the text is not ``kind``).
    Strings are skipped: what they hold is text."""
    depth = top = digits = 0
    quote = None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if quote is not None:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if c == quote:
                quote = None
            i += 1
            continue
        if c in "\"'" and (c == '"' or toml):
            quote = c
        elif c in "[{":
            depth += 1
            top = max(top, depth)
            if top > MAX_NESTING:
                raise InputError(f"{where}: nested more than {MAX_NESTING} deep: not {kind}")
        elif c in "]}":
            depth -= 1
        elif toml and c == "#":  # a comment runs to the end of the line
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if c.isdigit():
            digits += 1
            if digits > MAX_DIGITS:
                raise InputError(f"{where}: a number of more than {MAX_DIGITS} digits: not a "
                                 f"value handprop takes")
        elif c not in "_":
            digits = 0
        i += 1


def parse_json(text: str, where: str, *, kind: str = "a file handprop writes"):
    """``json.loads`` of a text checked by :func:`check_structure` first; an
    InputError names ``where`` and the problem. NaN and infinities (which
    JSON does not have) are refused too."""
    import json

    check_structure(text, where, kind=kind)

    def constant(name):
        raise InputError(f"{where}: {name} is not a JSON number")

    try:
        return json.loads(text, parse_constant=constant)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{where}: not valid JSON ({exc})"[:300]) from None


def read_toml(text: str, where) -> dict:
    """A TOML text as a dict, checked by :func:`check_structure` first; an
    InputError names ``where`` and the problem."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    check_structure(text, str(where), toml=True)
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError, ValueError) as exc:
        raise InputError(f"{where}: not valid TOML: {exc}"[:300]) from None
