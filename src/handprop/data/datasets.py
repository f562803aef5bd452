"""Data sets: two moons, MNIST, and the user's own files.

Every loader returns inputs X as a 2-D array with one example per row and
labels y as a 1-D int64 array, and rejects a bad file with a
:class:`DataError` (a ValueError) that names the file and the problem.

MNIST is read from the folder given by argument, else from ``mnist/`` under
the data root: ``$HANDPROP_DATA`` when set, otherwise the user's cache
(``$XDG_CACHE_HOME/handprop``, by default ``~/.cache/handprop``). When the
files are absent there, they are downloaded from public mirrors.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import re
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import open_regular, read_npz, shown

__all__ = [
    "BUILT_IN",
    "DataError",
    "VALID_SEEN",
    "data_home",
    "load_csv",
    "load_dataset",
    "load_mnist",
    "load_split_npz",
    "load_moons_txt",
    "load_npz",
    "make_moons",
    "moons_splits",
    "split",
]


class DataError(InputError):
    """A data file is missing, malformed, truncated or fails its checksum."""


# --------------------------------------------------------------------------
# Two moons
# --------------------------------------------------------------------------


def make_moons(
    n: int = 400, noise: float = 0.1, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half-moons in the plane.

    Parameters
    ----------
    n : int >= 2, the number of points (half in each moon, the odd one in the first)
    noise : float >= 0, the standard deviation of the Gaussian noise added
    seed : int or None, seeds ``numpy.random.default_rng``

    Returns
    -------
    X : (n, 2) float64
    y : (n,) int64, 0 for the upper moon and 1 for the lower one

    >>> X, y = make_moons(6, noise=0.0, seed=0)
    >>> X.shape, y.tolist().count(0)
    ((6, 2), 3)
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise InputError(f"n must be an integer >= 2, got {n!r}")
    if not isinstance(noise, (int, float)) or not np.isfinite(noise) or noise < 0:
        raise InputError(f"noise must be a finite number >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    n0 = (n + 1) // 2
    n1 = n - n0
    t0 = np.linspace(0, np.pi, n0)
    t1 = np.linspace(0, np.pi, n1)
    upper = np.column_stack([np.cos(t0), np.sin(t0)])
    lower = np.column_stack([1 - np.cos(t1), 0.5 - np.sin(t1)])
    X = np.vstack([upper, lower])
    y = np.concatenate([np.zeros(n0, dtype=np.int64), np.ones(n1, dtype=np.int64)])
    if noise:
        X = X + rng.normal(scale=noise, size=X.shape)
    order = rng.permutation(n)
    return X[order], y[order]


def moons_splits(n_train: int = 600, n_valid: int = 200, n_test: int = 200,
                 noise: float = 0.2, seed: int = 0):
    """Train, valid and test sets of two moons, drawn together and split.

    Returns
    -------
    ((X_train, y_train), (X_valid, y_valid), (X_test, y_test)), X of shape (n, 2)
    """
    X, y = make_moons(n_train + n_valid + n_test, noise=noise, seed=seed)
    a, b = n_train, n_train + n_valid
    return (X[:a], y[:a]), (X[a:b], y[a:b]), (X[b:], y[b:])


# --------------------------------------------------------------------------
# Text, CSV and NPZ files
# --------------------------------------------------------------------------


def _check_labels(path, y: np.ndarray) -> np.ndarray:
    if y.size and (not np.all(np.isfinite(y)) or np.any(y != np.round(y)) or y.min() < 0):
        raise DataError(f"{path}: labels must be integers >= 0 (class indices); for real "
                        f"targets, train a regression output (identity or exp)")
    if y.size and y.max() >= 2**62:
        raise DataError(f"{path}: a label of {y.max():.3g} is not a class index")
    return y.astype(np.int64)


def _check_features(path, X: np.ndarray) -> np.ndarray:
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{path}: expected a table of examples with at least one feature, "
                        f"got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise DataError(f"{path}: features contain NaN or inf")
    return X


def load_moons_txt(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read the classic two-moons text format: three columns ``x1 x2 label``.

    Returns
    -------
    X : (n, 2) float64, y : (n,) int64
    """
    path = Path(path)
    table, header = read_table(path, delimiter=None)
    if header:
        raise DataError(f"{path}: line 1: expected three numbers (x1 x2 label)")
    if table.shape[1] != 3:
        raise DataError(f"{path}: expected 3 columns (x1 x2 label), got {table.shape[1]}")
    return _check_features(path, table[:, :2]), _check_labels(path, table[:, 2])


#: A cell that is a number as NumPy's reader takes it (ASCII digits, no
#: underscores): what decides whether a first row is a header, and which
#: cell of a refused file is named.
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*(e[+-]?\d+)?|\.\d+(e[+-]?\d+)?|inf(inity)?|nan)\s*",
                     re.IGNORECASE | re.ASCII)


def _cells(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:  # an unclosed quote, a cell beyond the csv module's limit
        return line.split(delimiter)


def _shown_cell(cell: str) -> str:
    cell = cell.strip()
    return repr(cell) if len(cell) <= 40 else f"{cell[:20]!r}... ({len(cell):,} characters)"


def read_table(path: Path, delimiter: str | None = ",") -> tuple[np.ndarray,
                                                                 list[str] | None]:
    """A file of numbers as a 2-D float64 array, and its header row if it has one.

    A first row that is not all numbers is a header. The file must be UTF-8
    (a byte-order mark is dropped). It is read by NumPy's reader
    (``numpy.loadtxt``) as a stream, so that reading takes little more
    memory than the array it fills; a bad cell, a row of the wrong length or
    a value that is not finite raises DataError naming the file, the line
    (counted from 1) and the column.
    """
    name = shown(path)
    try:
        with open_regular(path, "data file") as f:
            text = io.TextIOWrapper(f, encoding="utf-8-sig")
            header, header_line = None, 0
            for number, line in enumerate(text, start=1):
                if line.strip():
                    cells = _cells(line, delimiter)
                    if not all(_NUMBER.fullmatch(c) for c in cells):
                        header, header_line = [c.strip() for c in cells], number
                    break
            else:
                raise DataError(f"{name}: the file is empty")
            text.seek(0)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "input contained no data": below
                    table = np.loadtxt(text, delimiter=delimiter, skiprows=header_line,
                                       ndmin=2, dtype=np.float64, comments=None,
                                       quotechar='"' if delimiter else None)
            except UnicodeDecodeError:
                raise
            except ValueError:
                raise _first_bad_line(path, delimiter, header_line) from None
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except InputError as exc:
        raise DataError(str(exc)) from None
    if table.size == 0:
        raise DataError(f"{name}: no rows of data")
    finite = np.isfinite(table).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise _bad_value(path, delimiter, header_line, row, table[row])
    return table, header


def _data_lines(path, delimiter, header_line):
    """(line number, cells) of each row of data, streamed."""
    with open_regular(path, "data file") as f:
        for number, line in enumerate(io.TextIOWrapper(f, encoding="utf-8-sig"), start=1):
            if number > header_line and line.strip():
                yield number, _cells(line, delimiter)


def _first_bad_line(path, delimiter, header_line) -> DataError:
    """The DataError that names the first line NumPy's reader refused."""
    name = shown(path)
    width = None
    for number, cells in _data_lines(path, delimiter, header_line):
        width = len(cells) if width is None else width
        if len(cells) != width:
            return DataError(f"{name}: line {number} has {len(cells)} cells, expected "
                             f"{width}")
        for column, cell in enumerate(cells, start=1):
            if not _NUMBER.fullmatch(cell):
                return DataError(f"{name}: line {number}, column {column}: "
                                 f"{_shown_cell(cell)} is not a number")
    return DataError(f"{name}: not a table of numbers")


def _bad_value(path, delimiter, header_line, row: int, values: np.ndarray) -> DataError:
    """The DataError for the ``row``-th row of data, which holds NaN, an
    infinity, or a number beyond a float's range."""
    column = int(np.argmin(np.isfinite(values)))
    for i, (number, cells) in enumerate(_data_lines(path, delimiter, header_line)):
        if i == row:
            return DataError(f"{shown(path)}: line {number}, column {column + 1}: "
                             f"{_shown_cell(cells[column])} is not a finite number (or is "
                             f"beyond a float's range)")
    return DataError(f"{shown(path)}: features contain NaN or inf")


def _not_utf8(path) -> DataError:
    """The DataError of a file that is not UTF-8, naming its first bad byte."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open_regular(path, "data file") as f:
        while True:
            chunk = f.read(1 << 20)
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                at = offset - len(pending) + exc.start
                byte = (pending + chunk)[exc.start]
                return DataError(f"{shown(path)}: not UTF-8 text (byte {at} is 0x{byte:02x}); "
                                 f"save the data file as UTF-8")
            if not chunk:
                return DataError(f"{shown(path)}: not UTF-8 text")
            offset += len(chunk)


def _column(path, header, label, n_cols: int) -> int:
    """The index of a column given by its header name or its (possibly
    negative) index."""
    if isinstance(label, str):
        if not header or label not in header:
            raise DataError(f"{path}: no column named {label!r} "
                            f"(header: {', '.join(header) if header else 'none'})")
        return header.index(label)
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool) and \
            -n_cols <= label < n_cols:
        return int(label) % n_cols
    raise DataError(f"{path}: label column {label!r} is out of range for {n_cols} columns")


def load_csv(
    path: str | os.PathLike, label=None, *, classes: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Read a comma-separated table of numbers, one example per row.

    Parameters
    ----------
    path : the CSV file; a first row that is not all numbers is a header
    label : which column holds the target (an integer index, negative
        counting from the end, or a header name), or a list of them for
        several targets. By default the column named "label" if the header
        has one, else the last column.
    classes : the targets are class indices (checked, int64); False reads
        them as numbers (regression, multilabel)

    Returns
    -------
    X : (n, d) float64, the other columns; y : (n,) int64 classes >= 0, or
    with ``classes=False`` float64 targets, (n,) for one column or (n, k)
    """
    path = Path(path)
    table, header = read_table(path)
    n_cols = table.shape[1]
    if n_cols < 2:
        raise DataError(f"{path}: need at least two columns (features and a label)")
    if label is None:
        columns = [header.index("label") if header and "label" in header else n_cols - 1]
    else:
        labels = list(label) if isinstance(label, (list, tuple)) else [label]
        columns = [_column(path, header, c, n_cols) for c in labels]
        if len(set(columns)) != len(columns):
            raise DataError(f"{path}: a target column is named twice in {labels}")
        if len(columns) >= n_cols:
            raise DataError(f"{path}: {len(columns)} target columns leave no feature")
    X = np.delete(table, columns, axis=1)
    y = table[:, columns[0]].copy() if len(columns) == 1 else table[:, columns]
    del table  # y is a copy: the whole table is not kept alive through it
    if classes:
        if y.ndim != 1:
            raise DataError(f"{path}: {len(columns)} target columns, but classes are one "
                            f"column; for several targets, train logistic (labels), "
                            f"identity or exp outputs")
        y = _check_labels(path, y)
    elif not np.all(np.isfinite(y)):
        raise DataError(f"{path}: the targets contain NaN or inf")
    return _check_features(path, X), y


def load_npz(path: str | os.PathLike, *, classes: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read arrays ``X`` (n, d) and ``y`` from a ``.npz`` file: y (n,) class
    indices, or with ``classes=False`` numbers, (n,) or (n, k).

    Only these two arrays are read, each checked before it is (see
    :func:`handprop.files.read_npz`); object arrays are refused, so loading
    never runs code.
    """
    path = Path(path)
    try:
        arrays = read_npz(path, ("X", "y"))
    except InputError as exc:
        raise DataError(str(exc)) from None
    return _checked_arrays(path, arrays["X"], arrays["y"], classes)


#: The arrays of a split .npz file: its train, valid and test sets, used as
#: they are (the playground exports its runs' splits so).
SPLIT_ARRAYS = ("X_train", "y_train", "X_valid", "y_valid", "X_test", "y_test")


def is_split_npz(path) -> bool:
    """True when ``path`` is an .npz archive holding :data:`SPLIT_ARRAYS`'s X_train."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return "X_train.npy" in zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False  # load_npz says what is wrong with it


def load_split_npz(path: str | os.PathLike, *, classes: bool = True):
    """The train, valid and test sets of a split ``.npz`` file (arrays
    X_train, y_train, X_valid, y_valid, X_test, y_test), as they are: no
    shuffle, no new split. Each pair is checked as :func:`load_npz` checks
    X and y, and the three must have as many features.

    Returns ((X_train, y_train), (X_valid, y_valid), (X_test, y_test))."""
    path = Path(path)
    try:
        arrays = read_npz(path, SPLIT_ARRAYS)
    except InputError as exc:
        raise DataError(str(exc)) from None
    out = tuple(_checked_arrays(path, arrays[f"X_{s}"], arrays[f"y_{s}"], classes)
                for s in ("train", "valid", "test"))
    if len({X.shape[1] for X, _ in out}) != 1:
        raise DataError(f"{path}: X_train, X_valid and X_test must have as many features, got "
                        f"{', '.join(str(X.shape[1]) for X, _ in out)}")
    return out


def _checked_arrays(path: Path, X: np.ndarray, y: np.ndarray, classes: bool):
    if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise DataError(f"{path}: X must hold real numbers, got dtype {X.dtype}")
    if classes and (not np.issubdtype(y.dtype, np.number) or y.ndim != 1):
        raise DataError(f"{path}: y must be a 1-D array of class indices")
    if not classes and (not (np.issubdtype(y.dtype, np.number) or y.dtype == bool)
                        or np.iscomplexobj(y) or y.ndim not in (1, 2)):
        raise DataError(f"{path}: y must be a 1-D or 2-D array of numbers (targets), got "
                        f"dtype {y.dtype}, shape {y.shape}")
    if X.ndim != 2 or len(X) != len(y):
        raise DataError(f"{path}: X must be (n, d) with n = len(y); got X {X.shape}, "
                        f"y {y.shape}")
    if classes:
        return _check_features(path, X), _check_labels(path, y)
    y = y.astype(np.float64)
    if not np.all(np.isfinite(y)):
        raise DataError(f"{path}: y contains NaN or inf")
    return _check_features(path, X), y


def split(X: np.ndarray, y: np.ndarray, fractions=(0.8, 0.1, 0.1), seed: int = 0):
    """Shuffle (X, y) with ``seed`` and cut it into train, valid and test.

    Returns
    -------
    ((X_train, y_train), (X_valid, y_valid), (X_test, y_test))
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise InputError(f"fractions must be three numbers >= 0 summing to 1, got {fractions}")
    n = len(X)
    n_valid = int(round(fractions[1] * n))
    n_test = int(round(fractions[2] * n))
    n_train = n - n_valid - n_test
    if n_train < 1 or (fractions[1] and n_valid < 1) or (fractions[2] and n_test < 1):
        raise InputError(f"{n} examples are too few to split into {fractions}")
    order = np.random.default_rng(seed).permutation(n)
    X, y = X[order], y[order]
    a, b = n_train, n_train + n_valid
    return (X[:a], y[:a]), (X[a:b], y[a:b]), (X[b:], y[b:])


# --------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------

#: name -> (magic number, number of items, sha256 of the uncompressed bytes)
MNIST_FILES = {
    "train-images-idx3-ubyte": (
        2051, 60000, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte": (
        2049, 60000, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte": (
        2051, 10000, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte": (
        2049, 10000, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}

#: name -> (bytes, sha256) of the gzipped archive as the mirrors serve it:
#: a download is checked against these before a byte of it is decompressed.
MNIST_ARCHIVES = {
    "train-images-idx3-ubyte": (
        9_912_422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train-labels-idx1-ubyte": (
        28_881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "t10k-images-idx3-ubyte": (
        1_648_877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "t10k-labels-idx1-ubyte": (
        4_542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}

#: Public mirrors of the original gzipped files, tried in this order: HTTPS
#: only (the checksums protect the bytes; HTTPS who is asked for them).
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
#: Further attempts at a mirror after a failed download, before the next.
DOWNLOAD_RETRIES = 2

N_TRAIN = 50_000  # the first 50,000 training images train; the last 10,000 validate


def data_home() -> Path:
    """The data root: ``$HANDPROP_DATA``, else ``$XDG_CACHE_HOME/handprop``
    (``~/.cache/handprop`` by default)."""
    env = os.environ.get("HANDPROP_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "handprop"


def _read_exactly(stream, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = stream.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def _read_idx(path: Path, magic: int, count: int, sha256: str) -> np.ndarray:
    """Parse one IDX file (raw or gzipped), checking its structure, then its checksum.

    The header is checked first, and only the bytes it implies are read (and
    decompressed): a gzip bomb, or a file that claims more than it holds,
    costs no more memory than the real file would.

    Returns
    -------
    uint8 array of shape (count, 28, 28) for images, (count,) for labels
    """
    ndim = magic & 0xFF
    header_len = 4 * (1 + ndim)
    with open_regular(path, "MNIST file") as f:
        stream = gzip.GzipFile(fileobj=f, mode="rb") if path.suffix == ".gz" else f
        try:
            header = _read_exactly(stream, header_len)
            if len(header) < header_len:
                raise DataError(f"{path}: truncated: {len(header)} bytes, shorter than the IDX "
                                f"header")
            found = int.from_bytes(header[:4], "big")
            if found != magic:
                raise DataError(f"{path}: wrong magic number {found} (0x{found:08x}); "
                                f"expected {magic} (0x{magic:08x})")
            dims = [int.from_bytes(header[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
            if dims[0] != count:
                raise DataError(f"{path}: wrong count: the header says {dims[0]} items, "
                                f"expected {count}")
            if ndim == 3 and dims[1:] != [28, 28]:
                raise DataError(f"{path}: images are {dims[1]}x{dims[2]}, expected 28x28")
            expected_len = header_len + int(np.prod(dims))
            body = _read_exactly(stream, expected_len - header_len)
            extra = stream.read(1)  # at the end of a gzip member, this checks its CRC
            if extra:  # a little more, so that corrupt data meets its CRC (bounded)
                stream.read(1 << 20)
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise DataError(f"{path}: truncated or corrupt gzip data ({exc})") from None
    if extra:
        raise DataError(f"{path}: too long: more than the {expected_len} bytes that its header "
                        f"implies")
    if len(body) < expected_len - header_len:
        raise DataError(f"{path}: truncated: {header_len + len(body)} bytes where the header "
                        f"implies {expected_len}")
    digest = hashlib.sha256(header)
    digest.update(body)
    if digest.hexdigest() != sha256:
        raise DataError(f"{path}: checksum mismatch: sha256 of the uncompressed bytes is "
                        f"{digest.hexdigest()}, expected {sha256}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.exists():  # a FIFO or a folder of that name is refused when read
            return candidate
    return None


def _secure(url: str) -> bool:
    """HTTPS, or plain HTTP to this machine itself (a local mirror, whose
    traffic never leaves it)."""
    import ipaddress
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host = (parts.hostname or "").lower()
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    return parts.scheme == "http" and local


class _Bounded:
    """A file that refuses to grow past ``limit`` bytes: a mirror that sends
    more than the archive's size is cut off, not written to the disk's end."""

    def __init__(self, f, limit: int, url: str) -> None:
        self.f, self.limit, self.url, self.size = f, limit, url, 0

    def write(self, chunk: bytes) -> int:
        self.size += len(chunk)
        if self.size > self.limit:
            raise ValueError(f"{self.url}: more than the {self.limit:,} bytes of the file")
        return self.f.write(chunk)

    def flush(self) -> None:
        self.f.flush()


class _Downloader:
    """pooch's HTTP downloader (requests, streamed to a file, a progress
    bar), with handprop's limits: HTTPS only, redirects included, and no
    more bytes than the archive has."""

    def __init__(self, limit: int, timeout: float, progress: bool) -> None:
        import pooch

        self.limit = limit
        self.http = pooch.HTTPDownloader(progressbar=progress, timeout=timeout,
                                         hooks={"response": self._check})

    @staticmethod
    def _check(response, *args, **kwargs):
        from urllib.parse import urljoin

        import requests

        target = response.url
        if response.is_redirect:
            target = urljoin(response.url, response.headers.get("location", ""))
        if not _secure(target):
            raise requests.exceptions.InvalidURL(f"{target}: not HTTPS; handprop downloads "
                                                 f"over HTTPS only")
        return response

    def __call__(self, url: str, output_file, pooch_, check_only: bool = False):
        if check_only:
            return self.http(url, output_file, pooch_, check_only=True)
        self._check(type("R", (), {"url": url, "is_redirect": False})())
        with open(output_file, "wb") as f:
            return self.http(url, _Bounded(f, self.limit, url), pooch_)


def _download(folder: Path, name: str, timeout: float, progress: bool) -> Path:
    """Fetch ``name.gz`` into ``folder`` with pooch from the first mirror that
    serves it: streamed to a temporary file beside the target, its size
    bounded and its sha256 checked before it is renamed into place (and
    before anything decompresses it), each mirror tried again
    :data:`DOWNLOAD_RETRIES` times."""
    try:
        import pooch
    except ImportError:
        raise ImportError(f"MNIST file {name} is not in {shown(folder)}, and downloading it "
                          f"needs pooch: pip install pooch") from None
    size, sha256 = MNIST_ARCHIVES[name]
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")  # pooch says "Downloading ..." on stderr: handprop does
    errors = []
    try:
        for mirror in MNIST_MIRRORS:
            url = f"{mirror}{name}.gz"
            if not _secure(url):
                errors.append(f"{url}: not HTTPS")
                continue
            fetcher = pooch.create(path=folder, base_url=mirror,
                                   registry={f"{name}.gz": f"sha256:{sha256}"},
                                   retry_if_failed=DOWNLOAD_RETRIES)
            try:
                return Path(fetcher.fetch(f"{name}.gz",
                                          downloader=_Downloader(size, timeout, progress)))
            except (ValueError, OSError) as exc:  # requests' errors are OSErrors
                reason = " ".join(str(exc).split())
                if "hash" in reason.lower() and "does not match" in reason.lower():
                    reason = "checksum mismatch"
                errors.append(f"{url}: {reason[:200]}")
    finally:
        logger.setLevel(level)
    raise DataError(
        f"MNIST file {name} is not in {shown(folder)} and could not be downloaded "
        f"({'; '.join(errors)}). Put the four IDX files (gzipped or not) in {shown(folder)}, "
        f"pass their folder with data_dir= (CLI: --data-dir), or set HANDPROP_DATA to a "
        f"folder whose mnist/ subfolder holds them."
    )


def load_mnist(
    data_dir: str | os.PathLike | None = None, *, download: bool = True, timeout: float = 30.0,
    progress: bool | None = None, full: bool = False,
):
    """MNIST as train, valid and test sets.

    Parameters
    ----------
    data_dir : an existing folder holding the four standard IDX files,
        gzipped or not. By default ``mnist/`` under :func:`data_home`.
    download : fetch missing files from :data:`MNIST_MIRRORS`, into the
        folder; a ``data_dir`` that does not exist is an error rather than a
        place to download to (a mistyped path would otherwise become a new
        folder tree). Where files are downloaded is printed on stderr.
    timeout : seconds per download attempt
    progress : a progress bar of each download on stderr (by default, when
        stderr is a terminal)
    full : train on all 60,000 official training images, the validation
        ones included (the ``mnist-full`` data set): for a last fit once the
        settings are chosen on the validation set, which is then no longer
        held out. Nothing may be chosen on its error (:data:`VALID_SEEN`).

    Returns
    -------
    ((X_train, y_train), (X_valid, y_valid), (X_test, y_test)):
    the first 50,000 official training images (all 60,000 with ``full``, in
    the official order), the last 10,000, and the official 10,000 test
    images. Each X is float32 in [0, 1] with shape (n, 784), each y int64
    with shape (n,).
    """
    if data_dir is not None and not os.fspath(data_dir).strip():
        raise DataError(f"data_dir is empty ({os.fspath(data_dir)!r}): give the folder that "
                        f"holds the four IDX files")
    folder = Path(data_dir) if data_dir is not None else data_home() / "mnist"
    if folder.exists() and not folder.is_dir():
        raise DataError(f"the MNIST folder {folder} is a file, not a folder (--data-dir, or "
                        f"HANDPROP_DATA)")
    if data_dir is not None and not folder.exists():
        raise DataError(f"the MNIST folder {folder} does not exist (--data-dir): give the "
                        f"folder that holds the four IDX files")
    paths = {}
    for name in MNIST_FILES:
        found = _find(folder, name)
        if found is None:
            if not download:
                raise DataError(f"MNIST file {name} (or {name}.gz) is not in {folder}")
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DataError(f"cannot create the MNIST folder {folder}: "
                                f"{exc.strerror or exc}") from None
            print(f"handprop: downloading {name}.gz into {shown(folder)}", file=sys.stderr)
            found = _download(folder, name, timeout,
                              sys.stderr.isatty() if progress is None else progress)
        paths[name] = found
    arrays = {name: _read_idx(paths[name], *MNIST_FILES[name]) for name in MNIST_FILES}
    for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        if arrays[name].max() > 9:
            raise DataError(f"{paths[name]}: labels must be digits 0 to 9")

    def images(a: np.ndarray) -> np.ndarray:
        X = a.reshape(len(a), 784).astype(np.float32)
        X *= np.float32(1 / 255)
        return X

    # Converted slice by slice from the uint8 bytes, so that no float copy of
    # the training images is ever held beside the splits.
    train_images = arrays.pop("train-images-idx3-ubyte")
    train_labels = arrays["train-labels-idx1-ubyte"].astype(np.int64)
    n_train = len(train_images) if full else N_TRAIN
    train = (images(train_images[:n_train]), train_labels[:n_train])
    valid = (images(train_images[N_TRAIN:]), train_labels[N_TRAIN:])
    del train_images
    test = (images(arrays.pop("t10k-images-idx3-ubyte")),
            arrays["t10k-labels-idx1-ubyte"].astype(np.int64))
    return train, valid, test


#: The data sets known by name, not by a file's suffix.
BUILT_IN = ("moons", "moons-small", "mnist", "mnist-full")
#: Those whose validation set is also trained on: nothing may be chosen on it.
VALID_SEEN = ("mnist-full",)


def load_dataset(name: str, *, data_dir=None, seed: int = 0, label=None,
                 classes: bool = True):
    """Train, valid and test sets by name: ``moons`` (600 / 200 / 200 points,
    noise 0.2), ``moons-small`` (200 / 200 / 200, noise 0.25, where capacity
    shows), ``mnist``, ``mnist-full`` (MNIST trained on its validation
    images too: :func:`load_mnist` with ``full``), a ``.csv``, a ``.npz``
    or a two-moons ``.txt`` file (files are split 80/10/10 with ``seed``;
    an .npz of X_train, y_train, X_valid, y_valid, X_test and y_test is
    used as it is split).

    ``label`` names a CSV's target column or columns (see :func:`load_csv`);
    with ``classes=False`` the targets of a file are read as numbers, for
    regression or multilabel outputs (the built-in sets' classes are given
    as they are).

    Returns
    -------
    ((X_train, y_train), (X_valid, y_valid), (X_test, y_test))
    """
    suffix = Path(name).suffix.lower() if name not in BUILT_IN else ""
    if label is not None and suffix != ".csv":
        raise DataError(f"a label column is chosen in a CSV file, not in {name}")
    if name == "moons":
        return moons_splits(seed=seed)
    if name == "moons-small":  # few noisy points, on which capacity shows
        return moons_splits(n_train=200, noise=0.25, seed=seed)
    if name == "mnist":
        return load_mnist(data_dir)
    if name == "mnist-full":
        return load_mnist(data_dir, full=True)
    if suffix == ".csv":
        X, y = load_csv(name, label, classes=classes)
    elif suffix == ".npz":
        if is_split_npz(name):  # already split: used as it is
            return load_split_npz(name, classes=classes)
        X, y = load_npz(name, classes=classes)
    elif suffix == ".txt":
        X, y = load_moons_txt(name)
    else:
        raise DataError(f"unknown dataset {name!r}: expected moons, moons-small, mnist, "
                        f"mnist-full, or a "
                        f".csv, .npz or .txt file")
    return split(X, y, seed=seed)
