"""Training on an NVIDIA GPU through CuPy: the same code, the same results.

The first tests run everywhere: they check how a device is named and what a
machine without CuPy or without a GPU answers. The others need CuPy and a
GPU, which CI does not have; they are skipped there and run on a GPU machine:

    HANDPROP_DATA=../shared/data python -m pytest tests/test_gpu.py

There they check that the GPU computes what the CPU does: the forward and
backward passes to round-off in float64, and whole training runs (dropout,
penalty, sample weights, max-norm, distortions, checkpoints and resuming, the
estimator) to within float64 round-off of the CPU run.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

from handprop import MLP, ElasticNet, fit
from handprop.backend import namespace, resolve_device, to_numpy
from handprop.core.network import backward, data_loss, forward
from handprop.data.datasets import make_moons


def _gpu_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, or no driver
        return False


GPU = _gpu_available()
needs_gpu = pytest.mark.skipif(not GPU, reason="needs CuPy and an NVIDIA GPU")


def _cupy_installed() -> bool:
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


# -- everywhere ----------------------------------------------------------------


def test_cpu_is_numpy():
    assert resolve_device("cpu") is np
    assert namespace(np.zeros(2), np.ones(3)) is np
    a = np.arange(3.0)
    assert to_numpy(a) is a


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "CPU", "cuda0", ""])
def test_unknown_device_names_the_choices(device):
    with pytest.raises(ValueError, match='"cpu", "cuda", "cuda:N"'):
        resolve_device(device)


def test_device_must_be_a_string():
    with pytest.raises(TypeError, match="device must be a string"):
        resolve_device(0)


@pytest.mark.skipif(_cupy_installed(), reason="CuPy is installed here")
def test_cuda_without_cupy_says_what_to_install():
    with pytest.raises(ValueError, match=r"needs CuPy.*pip install 'handprop\[cuda12\]'"):
        resolve_device("cuda")


@pytest.mark.skipif(GPU, reason="a GPU is present")
def test_fit_on_a_missing_gpu_fails_before_training():
    X, y = make_moons(50, noise=0.1, seed=0)
    net = MLP(2, 4, 2, seed=0)
    before = {k: v.copy() for k, v in net.params.items()}
    with pytest.raises(ValueError, match="device='cuda'"):
        fit(net, X, y, epochs=1, device="cuda", progress=False)
    for k, v in net.params.items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("command,device,message", [
    pytest.param("train", "cuda", "device='cuda'",
                 marks=pytest.mark.skipif(GPU, reason="a GPU is present")),
    ("sweep", "gpu", '"cpu", "cuda", "cuda:N"'),
])
def test_cli_on_an_unusable_device_is_one_line_and_exit_2(tmp_path, command, device, message):
    proc = subprocess.run([sys.executable, "-m", "handprop", command, "--device", device,
                           "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr
    assert not (tmp_path / "run").exists()


def test_estimator_refuses_lbfgs_on_a_gpu():
    pytest.importorskip("sklearn")
    from handprop import MLPClassifier

    X, y = make_moons(40, noise=0.1, seed=0)
    with pytest.raises(ValueError, match="lbfgs runs SciPy's L-BFGS-B, on the CPU"):
        MLPClassifier(solver="lbfgs", device="cuda").fit(X, y)


# -- on a GPU ------------------------------------------------------------------


def _moons(n=400, seed=0):
    X, y = make_moons(n, noise=0.2, seed=seed)
    return X.astype(np.float64), y


@needs_gpu
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "softplus", "abs", "sign",
                                        "identity"])
@pytest.mark.parametrize("hidden", [17, (17, 9, 6)], ids=["depth1", "depth3"])
@pytest.mark.parametrize("output", ["softmax", "logistic", "identity"])
def test_forward_and_backward_on_gpu_match_numpy(activation, hidden, output):
    import cupy

    rng = np.random.default_rng(0)
    net = MLP(30, hidden, 5, activation=activation, output=output, seed=1)
    X = rng.normal(size=(10, 30))
    y = {"softmax": rng.integers(0, 5, size=10), "logistic": rng.integers(0, 2, size=(10, 5)),
         "identity": rng.normal(size=(10, 5))}[output]
    masks = tuple((rng.random((10, h)) > 0.3) / 0.7 for h in net.hidden)
    w = rng.random(10) + 0.1
    smoothing = 0.0 if output == "identity" else 0.1
    penalty = ElasticNet.per_matrix([1e-3 * k for k in range(1, net.L + 2)],
                                    [2e-3 * k for k in range(1, net.L + 2)])
    options = dict(masks=masks, sample_weight=w, label_smoothing=smoothing)
    cache = forward(net.params, X, net.activation, output, masks=masks)
    grads = backward(net.params, cache, X, y, net.activation, output, penalty, **options)
    loss = data_loss(output, cache.o_a, y, sample_weight=w, label_smoothing=smoothing)

    g = {k: cupy.asarray(v) for k, v in net.params.items()}
    gX, gy = cupy.asarray(X), cupy.asarray(y)
    gopts = dict(masks=tuple(cupy.asarray(m) for m in masks), sample_weight=cupy.asarray(w),
                 label_smoothing=smoothing)
    gcache = forward(g, gX, net.activation, output, masks=gopts["masks"])
    assert isinstance(gcache.o_s, cupy.ndarray)
    ggrads = backward(g, gcache, gX, gy, net.activation, output, penalty, **gopts)
    gloss = data_loss(output, gcache.o_a, gy, sample_weight=gopts["sample_weight"],
                      label_smoothing=smoothing)
    assert gloss == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(gcache.o_s.get(), cache.o_s, rtol=1e-12, atol=1e-15)
    for k in grads:
        assert isinstance(ggrads[k], cupy.ndarray)
        np.testing.assert_allclose(ggrads[k].get(), grads[k], rtol=1e-10, atol=1e-14)


def _run(device, *, epochs=3, hidden=32, **kwargs):
    X, y = _moons()
    Xv, yv = _moons(200, seed=1)
    net = MLP(2, hidden, 2, dtype="float64", seed=0)
    history = fit(net, X, y, valid=(Xv, yv), test=(Xv, yv), epochs=epochs, batch_size=32,
                  progress=False, device=device, **kwargs)
    return net, history


SETTINGS = {
    "sgd": dict(lr=0.1, momentum=0.9, nesterov=True, schedule="cosine"),
    "adam": dict(optimizer="adam", lr=0.01, schedule="step"),
    "regularized": dict(lr=0.1, momentum=0.9, dropout=(0.1, 0.3), max_norm=2.0,
                        penalty=ElasticNet(1e-4, 1e-3, 1e-4, 1e-3), label_smoothing=0.05,
                        sample_weight=np.linspace(0.5, 2.0, 400)),
    "depth 3": dict(hidden=(32, 16, 8), lr=0.1, momentum=0.9, dropout=(0.1, 0.2),
                    max_norm=2.0, penalty=ElasticNet(l2_W1=1e-3, l1_W3=1e-4, l2_W4=1e-3),
                    label_smoothing=0.05, sample_weight=np.linspace(0.5, 2.0, 400)),
    "depth 3 adam": dict(hidden=(32, 16, 8), optimizer="adam", lr=0.01, schedule="cosine"),
}


@needs_gpu
@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_fit_on_gpu_follows_the_cpu_run(name):
    cpu, h_cpu = _run("cpu", **SETTINGS[name])
    gpu, h_gpu = _run("cuda", **SETTINGS[name])
    for k, v in cpu.params.items():
        assert isinstance(gpu.params[k], np.ndarray)  # the net keeps NumPy arrays
        np.testing.assert_allclose(gpu.params[k], v, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(h_gpu.column("train_loss"), h_cpu.column("train_loss"),
                               rtol=1e-9)
    np.testing.assert_array_equal(h_gpu.column("valid_error"), h_cpu.column("valid_error"))
    np.testing.assert_allclose(h_gpu.column("test_loss"), h_cpu.column("test_loss"), rtol=1e-9)


@needs_gpu
def test_float32_on_gpu_learns_moons():
    X, y = _moons()
    net = MLP(2, 64, 2, dtype="float32", seed=0)
    history = fit(net, X.astype(np.float32), y, epochs=60, batch_size=32, lr=0.1,
                  momentum=0.9, progress=False, device="cuda")
    assert net.W1.dtype == np.float32
    assert history[-1].train_error < 0.06


@needs_gpu
def test_early_stopping_on_gpu_restores_the_best_epoch():
    cpu, h_cpu = _run("cpu", epochs=12, lr=0.5, momentum=0.9, patience=2)
    gpu, h_gpu = _run("cuda", epochs=12, lr=0.5, momentum=0.9, patience=2)
    assert h_gpu.best_epoch == h_cpu.best_epoch
    for k, v in cpu.params.items():
        np.testing.assert_allclose(gpu.params[k], v, rtol=1e-8, atol=1e-10)


@needs_gpu
def test_resume_on_gpu_continues_the_run(tmp_path):
    settings = dict(optimizer="adam", lr=0.01, dropout=(0.0, 0.2))
    whole, _ = _run("cuda", epochs=4, **settings)
    X, y = _moons()
    Xv, yv = _moons(200, seed=1)
    kwargs = dict(valid=(Xv, yv), test=(Xv, yv), batch_size=32, progress=False, **settings)
    for device in ("cuda", "cpu"):  # two epochs on the GPU, then two more here or on the CPU
        folder = tmp_path / device
        folder.mkdir()
        net = MLP(2, 32, 2, dtype="float64", seed=0)
        fit(net, X, y, epochs=2, checkpoint=folder, device="cuda", **kwargs)
        again = MLP(2, 32, 2, dtype="float64", seed=5)
        history = fit(again, X, y, epochs=4, resume=folder, force=True, device=device,
                      **kwargs)
        assert [r.epoch for r in history] == [1, 2, 3, 4]
        for k, v in whole.params.items():
            np.testing.assert_allclose(again.params[k], v, rtol=1e-8, atol=1e-10)


@needs_gpu
def test_divergence_on_gpu_restores_the_last_good_epoch():
    from handprop.train.training import Diverged

    X, y = _moons()
    net = MLP(2, 32, 2, dtype="float64", seed=0)
    fit(net, X, y, epochs=1, lr=0.1, progress=False, device="cuda")
    good = {k: v.copy() for k, v in net.params.items()}
    with pytest.raises(Diverged):
        fit(net, X * 1e150, y, epochs=2, lr=1e10, progress=False, device="cuda")
    for k, v in good.items():
        np.testing.assert_array_equal(net.params[k], v)


@needs_gpu
def test_distortions_on_gpu_follow_the_cpu_run():
    pytest.importorskip("scipy")
    rng = np.random.default_rng(0)
    X = rng.random((120, 784))
    y = rng.integers(0, 10, 120)
    nets = []
    for device in ("cpu", "cuda"):
        net = MLP(784, 16, 10, dtype="float64", seed=0)
        fit(net, X, y, epochs=2, batch_size=40, lr=0.05, augment="affine,elastic",
            progress=False, device=device)
        nets.append(net)
    for k, v in nets[0].params.items():
        np.testing.assert_allclose(nets[1].params[k], v, rtol=1e-8, atol=1e-10)


@needs_gpu
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_estimator_on_gpu_matches_the_cpu(solver):
    pytest.importorskip("sklearn")
    from handprop import MLPClassifier

    X, y = _moons(300)
    labels = np.array(["left", "right"])[y]
    kwargs = dict(hidden_layer_sizes=(16, 8), solver=solver, max_iter=15, random_state=0,
                  dtype="float64", early_stopping=True, class_weight="balanced",
                  dropout=(0.0, 0.2), learning_rate_init=0.01)
    cpu = MLPClassifier(**kwargs).fit(X, labels)
    gpu = MLPClassifier(device="cuda", **kwargs).fit(X, labels)
    for a, b in zip(gpu.coefs_ + gpu.intercepts_, cpu.coefs_ + cpu.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-9)
    assert gpu.validation_scores_ == cpu.validation_scores_
    # fitted state is NumPy only: warm starts, pickles and predictions need no GPU
    state = gpu._optimizer.update.state()
    assert state and all(isinstance(v, np.ndarray) for v in state.values())
    clone = pickle.loads(pickle.dumps(gpu))
    np.testing.assert_array_equal(clone.predict(X), gpu.predict(X))
    gpu.set_params(warm_start=True, max_iter=3).fit(X, labels)
    cpu.set_params(warm_start=True, max_iter=3).fit(X, labels)
    np.testing.assert_allclose(gpu.W1_, cpu.W1_, rtol=1e-8, atol=1e-10)


@needs_gpu
def test_cli_trains_on_gpu(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "handprop", "train", "--device", "cuda",
                           "--hidden", "64,32,16", "--epochs", "3", "--no-progress", "--out",
                           str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (out / "model.npz").exists() and "finished 3 epochs" in proc.stdout


def test_validating_a_device_selects_no_gpu(monkeypatch):
    # a CuPy whose GPU 1 records being made current: checking "cuda:1" (as the
    # estimator's parameter checks do) must not, training on it must
    import types

    used = []
    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 2, getDevice=lambda: 0),
        Device=lambda n: types.SimpleNamespace(use=lambda: used.append(n)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    from handprop.backend import check_device

    assert check_device("cuda:1") == (fake, 1) and used == []
    pytest.importorskip("sklearn")
    from handprop import MLPClassifier

    MLPClassifier(device="cuda:1")._check_params()
    assert used == []
    assert resolve_device("cuda:1") is fake and used == [1]
