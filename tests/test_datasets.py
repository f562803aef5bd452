"""Loaders: two moons, MNIST from ../shared/data, the user's files, and bad files."""

import gzip

import numpy as np
import pytest
from numpy.testing import assert_allclose

import mirror
from conftest import MNIST_DIR
from handprop.data import datasets
from handprop.data.datasets import (
    DataError,
    load_csv,
    load_dataset,
    load_mnist,
    load_moons_txt,
    load_npz,
    make_moons,
    split,
)

LABELS = "train-labels-idx1-ubyte"


def test_make_moons_is_seeded_and_balanced():
    X, y = make_moons(101, noise=0.1, seed=3)
    X2, y2 = make_moons(101, noise=0.1, seed=3)
    assert X.shape == (101, 2) and y.shape == (101,) and y.dtype == np.int64
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert np.bincount(y).tolist() == [51, 50]
    assert not np.array_equal(make_moons(101, noise=0.1, seed=4)[0], X)
    X0, y0 = make_moons(200, noise=0.0)
    upper = X0[y0 == 0]
    assert_allclose(np.hypot(*upper.T), 1.0)  # the upper moon is the unit half-circle
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        make_moons(1)
    with pytest.raises(ValueError, match="noise must be"):
        make_moons(10, noise=-1)


# -- MNIST from ../shared/data ----------------------------------------------


def test_mnist_split_sizes_types_and_ranges(mnist):
    (Xtr, ytr), (Xva, yva), (Xte, yte) = mnist
    assert Xtr.shape == (50000, 784) and Xva.shape == (10000, 784) and Xte.shape == (10000, 784)
    for X, y in mnist:
        assert X.dtype == np.float32 and y.dtype == np.int64
        assert X.min() == 0.0 and X.max() == 1.0
        assert y.min() == 0 and y.max() == 9
    # the label counts that ../shared/data/README.md lists
    assert (np.bincount(ytr) + np.bincount(yva)).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(yte).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert yte[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert ytr[:5].tolist() == [5, 0, 4, 1, 9]


def test_mnist_valid_is_the_last_10000_training_images(mnist):
    raw = gzip.decompress((MNIST_DIR / f"{LABELS}.gz").read_bytes())
    labels = np.frombuffer(raw, dtype=np.uint8, offset=8)
    assert np.array_equal(mnist[0][1], labels[:50000])
    assert np.array_equal(mnist[1][1], labels[50000:])


def test_mnist_full_trains_on_all_60000_training_images(mnist):
    (Xtr, ytr), (Xva, yva), (Xte, yte) = load_dataset("mnist-full")
    assert Xtr.shape == (60000, 784) and ytr.shape == (60000,)
    assert Xtr.dtype == np.float32 and ytr.dtype == np.int64
    # the official order: the 50,000 training images, then the 10,000 validation ones
    assert np.array_equal(Xtr[:50000], mnist[0][0]) and np.array_equal(ytr[:50000], mnist[0][1])
    assert np.array_equal(Xtr[50000:], mnist[1][0]) and np.array_equal(ytr[50000:], mnist[1][1])
    # the validation set is kept (seen in training now), the test set untouched
    assert np.array_equal(Xva, mnist[1][0]) and np.array_equal(yva, mnist[1][1])
    assert np.array_equal(Xte, mnist[2][0]) and np.array_equal(yte, mnist[2][1])
    (X60, y60), _, _ = load_mnist(full=True)  # what the name reads
    assert np.array_equal(X60, Xtr) and np.array_equal(y60, ytr)


def test_mnist_data_root_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HANDPROP_DATA", str(tmp_path))
    assert datasets.data_home() == tmp_path
    monkeypatch.delenv("HANDPROP_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert datasets.data_home() == tmp_path / "cache" / "handprop"


def _copy_mnist(folder, raw=()):
    """The four files in ``folder``, those named in ``raw`` decompressed."""
    folder.mkdir(exist_ok=True)
    for name in datasets.MNIST_FILES:
        if name in raw:
            (folder / name).write_bytes(gzip.decompress((MNIST_DIR / f"{name}.gz").read_bytes()))
        else:
            (folder / f"{name}.gz").symlink_to(MNIST_DIR / f"{name}.gz")


def test_mnist_reads_raw_and_gzipped_files(tmp_path, mnist):
    _copy_mnist(tmp_path, raw=(LABELS, "t10k-labels-idx1-ubyte"))
    (_, ytr), _, (_, yte) = load_mnist(tmp_path, download=False)
    assert np.array_equal(ytr, mnist[0][1]) and np.array_equal(yte, mnist[2][1])


def _labels_bytes():
    return bytearray(gzip.decompress((MNIST_DIR / f"{LABELS}.gz").read_bytes()))


@pytest.mark.parametrize("damage,message", [
    (lambda b: b[:30000], "truncated: 30000 bytes where the header implies 60008"),
    (lambda b: b[:5], "truncated: 5 bytes, shorter than the IDX header"),
    (lambda b: b"\x00\x00\x08\x03" + b[4:], "wrong magic number 2051"),
    (lambda b: b[:4] + (59999).to_bytes(4, "big") + b[8:], "wrong count: the header says 59999"),
    (lambda b: b[:100] + bytes([(b[100] + 1) % 10]) + b[101:], "checksum mismatch"),
    (lambda b: b + b"\x00", "too long"),
])
def test_mnist_rejects_damaged_files(tmp_path, damage, message):
    _copy_mnist(tmp_path)
    (tmp_path / f"{LABELS}.gz").unlink()
    (tmp_path / LABELS).write_bytes(bytes(damage(_labels_bytes())))
    with pytest.raises(DataError, match=message) as info:
        load_mnist(tmp_path, download=False)
    assert str(tmp_path / LABELS) in str(info.value)


def test_mnist_rejects_truncated_gzip(tmp_path):
    _copy_mnist(tmp_path)
    (tmp_path / f"{LABELS}.gz").unlink()
    data = (MNIST_DIR / f"{LABELS}.gz").read_bytes()
    (tmp_path / f"{LABELS}.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated or corrupt gzip"):
        load_mnist(tmp_path, download=False)


def test_mnist_missing_without_download(tmp_path):
    with pytest.raises(DataError, match="is not in"):
        load_mnist(tmp_path, download=False)


def test_mnist_download_checks_and_renames(tmp_path, monkeypatch):
    # a mirror on this machine, over HTTP (loopback is allowed), through pooch
    bad = tmp_path / "bad_mirror"
    bad.mkdir()
    for name in datasets.MNIST_FILES:
        (bad / f"{name}.gz").write_bytes(gzip.compress(b"not mnist"))
    monkeypatch.setattr(datasets, "MNIST_ARCHIVES", mirror.archives(MNIST_DIR))
    monkeypatch.setattr(datasets, "DOWNLOAD_RETRIES", 0)
    cache = tmp_path / "cache"
    cache.mkdir()  # an existing folder: downloads go there
    with mirror.serve(bad) as first, mirror.serve(MNIST_DIR) as second:
        monkeypatch.setattr(datasets, "MNIST_MIRRORS", (first.url, second.url))
        (_, ytr), _, _ = load_mnist(cache)
    assert len(ytr) == 50000
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{n}.gz" for n in
                                                             datasets.MNIST_FILES)
    assert len(first.requests) == len(second.requests) == 4  # the bad one, then the good


def test_mnist_download_retries_then_succeeds(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "MNIST_ARCHIVES", mirror.archives(MNIST_DIR))
    monkeypatch.setattr(datasets, "DOWNLOAD_RETRIES", 1)
    cache = tmp_path / "cache"
    _copy_mnist(cache)
    (cache / f"{LABELS}.gz").unlink()
    routes = {f"/{LABELS}.gz": mirror.fail_then(MNIST_DIR / f"{LABELS}.gz", failures=1)}
    with mirror.serve(routes=routes) as local:
        monkeypatch.setattr(datasets, "MNIST_MIRRORS", (local.url,))
        load_mnist(cache)
    assert local.requests == [f"/{LABELS}.gz"] * 2  # failed once, retried once


def test_mnist_mirrors_are_https():
    assert all(m.startswith("https://") for m in datasets.MNIST_MIRRORS)
    assert datasets._secure("https://example.org/x") and datasets._secure("http://127.0.0.1/")
    assert not datasets._secure("http://example.org/x")
    assert not datasets._secure("ftp://127.0.0.1/x")


def test_mnist_failed_download_leaves_nothing_and_says_where(tmp_path, monkeypatch):
    bad = tmp_path / "bad_mirror"
    bad.mkdir()
    for name in datasets.MNIST_FILES:
        (bad / f"{name}.gz").write_bytes(gzip.compress(b"not mnist"))
    monkeypatch.setattr(datasets, "DOWNLOAD_RETRIES", 0)
    cache = tmp_path / "cache"
    cache.mkdir()
    with mirror.serve(bad) as local:
        monkeypatch.setattr(datasets, "MNIST_MIRRORS", (local.url, "http://127.0.0.1:9/nothing/",
                                                        "http://example.org/mnist/"))
        with pytest.raises(DataError) as info:
            load_mnist(cache, timeout=2)
    text = str(info.value)
    assert "checksum mismatch" in text and "Put the four IDX files" in text
    assert "http://example.org/mnist/train-images-idx3-ubyte.gz: not HTTPS" in text
    assert str(cache) in text and "HANDPROP_DATA" in text
    assert list(cache.iterdir()) == []  # nothing half-written


# -- the user's files -------------------------------------------------------


def test_load_moons_txt(tmp_path):
    path = tmp_path / "moons.txt"
    path.write_text("0.5 1.0 0\n-0.2 0.3 1\n1.5 -0.4 1\n")
    X, y = load_moons_txt(path)
    assert_allclose(X, [[0.5, 1.0], [-0.2, 0.3], [1.5, -0.4]])
    assert y.tolist() == [0, 1, 1] and y.dtype == np.int64
    path.write_text("0.5 1.0\n")
    with pytest.raises(DataError, match="expected 3 columns"):
        load_moons_txt(path)
    path.write_text("0.5 1.0 0\n0.5 abc 1\n")
    with pytest.raises(DataError, match=r"moons.txt: line 2, column 2: 'abc' is not a number"):
        load_moons_txt(path)


def test_load_csv_with_and_without_header(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a,label,b\n1,0,2\n3,1,4\n5,2,6\n")
    X, y = load_csv(path)
    assert_allclose(X, [[1, 2], [3, 4], [5, 6]]) and y.tolist() == [0, 1, 2]
    X, y = load_csv(path, label="b")
    assert y.tolist() == [2, 4, 6]
    path.write_text("1,2,0\n3,4,1\n")
    X, y = load_csv(path)  # no header: the last column is the label
    assert_allclose(X, [[1, 2], [3, 4]]) and y.tolist() == [0, 1]
    X, y = load_csv(path, label=0)
    assert y.tolist() == [1, 3]


@pytest.mark.parametrize("text,kwargs,message", [
    ("1,2,0\n3,x,1\n", {}, r"data.csv: line 2, column 2: 'x' is not a number"),
    ("a,b,label\n1,2,0\n3,4\n", {}, r"data.csv: line 3 has 2 cells, expected 3"),
    ("1,2,0.5\n", {}, "labels must be integers >= 0"),
    ("1,2,-1\n", {}, "labels must be integers >= 0"),
    ("1,nan,1\n", {}, r"data.csv: line 1, column 2: 'nan' is not a finite number"),
    ("a,b,label\n\n1,2,0\n3,1e400,1\n", {}, r"line 4, column 2: '1e400' is not a finite"),
    ("1,2,0\n1_0,2,1\n", {}, r"data.csv: line 2, column 1: '1_0' is not a number"),
    ("1,2,0\n\u0661,2,1\n", {}, r"data.csv: line 2, column 1: '\u0661' is not a number"),
    ('1,"2",0\n3,4,1\n', {}, None),  # quoted numbers are numbers
    ("", {}, "the file is empty"),
    ("a,b,label\n", {}, "no rows of data"),
    ("a,b\n1,2\n", {"label": "c"}, "no column named 'c'"),
    ("1,2\n", {"label": 5}, "out of range"),
])
def test_load_csv_rejects_bad_files(tmp_path, text, kwargs, message):
    path = tmp_path / "data.csv"
    path.write_text(text)
    if message is None:
        assert load_csv(path, **kwargs)[0].shape == (2, 2)
        return
    with pytest.raises(DataError, match=message):
        load_csv(path, **kwargs)


def test_load_npz(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, X=np.ones((4, 3)), y=np.array([0, 1, 1, 0]))
    X, y = load_npz(path)
    assert X.shape == (4, 3) and y.tolist() == [0, 1, 1, 0]
    np.savez(path, X=np.ones((4, 3)), y=np.array([0, 1]))
    with pytest.raises(DataError, match="n = len"):
        load_npz(path)
    np.savez(path, features=np.ones((4, 3)))
    with pytest.raises(DataError, match="expected arrays named X and y, found features"):
        load_npz(path)
    np.savez(path, X=np.array([{"a": 1}] * 4, dtype=object), y=np.zeros(4))
    with pytest.raises(DataError, match="array X has dtype object, not numbers"):  # no pickles
        load_npz(path)
    path.write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_npz(path)
    with pytest.raises(DataError, match="no such data file"):
        load_npz(tmp_path / "missing.npz")


def test_split_and_load_dataset(tmp_path):
    X = np.arange(200, dtype=float).reshape(100, 2)
    y = np.arange(100) % 3
    (a, ya), (b, yb), (c, yc) = split(X, y, seed=1)
    assert (len(a), len(b), len(c)) == (80, 10, 10)
    assert sorted(np.concatenate([a, b, c])[:, 0].tolist()) == X[:, 0].tolist()
    path = tmp_path / "d.csv"
    np.savetxt(path, np.column_stack([X, y]), delimiter=",")
    train, valid, test = load_dataset(str(path))
    assert len(train[0]) == 80
    with pytest.raises(DataError, match="unknown dataset 'foo.xls'"):
        load_dataset("foo.xls")


def test_tests_read_the_shared_data():
    assert (datasets.data_home() / "mnist").resolve() == MNIST_DIR.resolve()
