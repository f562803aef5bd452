"""Model files: .npz + JSON, atomic, refused when damaged."""

import io
import json
import zipfile

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from handprop import MLP
from handprop.files import atomic_write


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_then_load_gives_identical_predictions(tmp_path, rng, dtype):
    net = MLP(5, 7, 3, activation="tanh", dtype=dtype, seed=2)
    net.b1[:] = rng.normal(size=7)
    path = tmp_path / "model.npz"
    net.save(path, history=[{"epoch": 1, "valid_error": 0.5}], settings={"lr": 0.1})
    back = MLP.load(path)
    assert repr(back) == repr(net)
    for name in net.params:
        assert_array_equal(back.params[name], net.params[name])
        assert back.params[name].dtype == net.dtype
    X = rng.normal(size=(20, 5))
    assert_array_equal(back.predict_proba(X), net.predict_proba(X))
    assert back.meta == {"history": [{"epoch": 1, "valid_error": 0.5}], "settings": {"lr": 0.1}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]  # no temporary left


def _rewrite(path, change):
    """Rewrite the archive at ``path`` with ``change(arrays)`` applied."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def _saved(tmp_path):
    path = tmp_path / "model.npz"
    MLP(3, 4, 2, seed=0).save(path)
    return path


def test_a_tampered_array_is_refused(tmp_path):
    path = _saved(tmp_path)
    _rewrite(path, lambda a: a["W1"].__setitem__((0, 0), 42.0))
    with pytest.raises(ValueError, match="W1 does not match its recorded sha256"):
        MLP.load(path)


def test_tampered_metadata_is_refused(tmp_path):
    path = _saved(tmp_path)

    def change(arrays):
        meta = json.loads(str(arrays["metadata"]))
        meta["hidden"] = [5]
        arrays["metadata"] = np.array(json.dumps(meta))

    _rewrite(path, change)
    with pytest.raises(ValueError, match=r"W1 has shape \(4, 3\).*the metadata says \(5, 3\)"):
        MLP.load(path)


def test_a_truncated_file_is_refused(tmp_path):
    path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable model file; truncated or corrupt"):
        MLP.load(path)


def test_a_pickle_is_never_loaded(tmp_path):
    path = _saved(tmp_path)

    def evil(arrays):  # W1 an object array: loading it would unpickle
        arrays["W1"] = np.array([object()], dtype=object)

    _rewrite(path, evil)
    with pytest.raises(ValueError, match="W1 has dtype object, not numbers"):
        MLP.load(path)
    path = tmp_path / "evil.npz"
    np.savez(path, W1=np.zeros(1), metadata=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="metadata has dtype object, not numbers"):
        MLP.load(path)


def test_other_files_are_refused(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, X=np.ones(3))
    with pytest.raises(ValueError, match="not a handprop model file: it has no metadata"):
        MLP.load(path)
    path.write_text("hello")
    with pytest.raises(ValueError, match="not a readable model file"):
        MLP.load(path)
    with pytest.raises(ValueError, match="no such model file"):
        MLP.load(tmp_path / "missing.npz")
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as z:
        for name in ("metadata", "W1", "b1", "W2", "b2"):
            z.writestr(f"{name}.npy", b"garbage")
    with pytest.raises(ValueError, match="array metadata has no readable .npy header"):
        MLP.load(tmp_path / "z.npz")


def test_a_failed_save_keeps_the_old_file(tmp_path):
    path = _saved(tmp_path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="model metadata must be plain JSON"):
        MLP(3, 4, 2, seed=1).save(path, history=object())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target, "w") as f:
        f.write("new, half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with pytest.raises(OSError, match="does not exist"):
        with atomic_write(tmp_path / "missing" / "x.txt"):
            pass


def test_an_archive_with_other_arrays_is_refused(tmp_path):
    from handprop.files import write_archive

    path = tmp_path / "m.npz"
    write_archive(path, {"W1": np.zeros(2)}, {}, kind="handprop-model", version=1)
    with pytest.raises(ValueError, match="bad model metadata"):
        MLP.load(path)
    header = {"d": 1, "hidden": [2], "m": 2, "activation": "relu", "output": "softmax",
              "dtype": "float64"}
    write_archive(path, {"W1": np.zeros((2, 1))}, header, kind="handprop-model", version=2)
    with pytest.raises(ValueError, match="the metadata declares arrays W1, b1, W2, b2; the file "
                       "holds W1"):
        MLP.load(path)
    write_archive(path, {"W1": np.zeros(2)}, {}, kind="handprop-checkpoint", version=1)
    with pytest.raises(ValueError, match="not a handprop model file"):
        MLP.load(path)
