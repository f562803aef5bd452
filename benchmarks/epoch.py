"""One MNIST training epoch: handprop against PyTorch, scikit-learn, the
per-example loop, and two rooflines, measured side by side in one process.

For each hidden-layer size d_h (one hidden layer), or list of sizes such as
512,256 (several), every contender trains one epoch over the 50,000 training
images with K = 100, float32 and plain SGD (lr 0.1, no momentum, no penalty),
from the same initialization, at least three times, the contenders taking
turns; the table reports medians and ratios. PyTorch and scikit-learn come
from the ``[bench]`` extra (``pip install torch==2.13.0 scikit-learn``); a
contender that is not installed is left out of the table.

- handprop: ``handprop.fit`` for one epoch, which also counts the training
  errors and loss of every minibatch, as the assignment asks.
- loop: handprop's per-example reference implementation, timed on a
  2,000-example slice and extrapolated to 50,000.
- torch: ``nn.Linear`` and ``nn.ReLU`` layers, ``CrossEntropyLoss`` and
  ``optim.SGD`` on the same threads, with handprop's initial weights; it also
  counts errors and loss per minibatch, so that both do the same work.
- sklearn: ``MLPClassifier(solver="sgd", momentum=0, alpha=0, batch_size=100,
  max_iter=1, learning_rate_init=0.1)`` on float32 input.
- before and after (with ``--before PATH``): the same epoch by the handprop
  found in PATH (a checkout's ``src``, say of the previous version) and by
  this one, each timed the same way, in a subprocess of its own, in turns
  with the others: the before-and-after comparison of a change. A version
  that cannot build the net (0.1 had one hidden layer) shows nan.
- shape roofline: the epoch's matrix-product FLOPs at the throughput that
  numpy's matmul reaches at exactly those shapes, measured here.
- peak: the same FLOPs at numpy's float32 throughput on a 2048 x 2048 product.

    HANDPROP_DATA=../shared/data python benchmarks/epoch.py
    HANDPROP_DATA=../shared/data python benchmarks/epoch.py --hidden 512 512,256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

import handprop
from handprop import MLP
from handprop.data.datasets import load_mnist
from handprop.train.optimizers import SGD
from handprop.train.training import fit

K, LR, D, M = 100, 0.1, 784, 10


def handprop_epoch(X, y, d_h):
    net = MLP(D, d_h, M, dtype="float32", seed=0)
    t0 = time.perf_counter()
    fit(net, X, y, epochs=1, batch_size=K, lr=LR, momentum=0.0, seed=0, progress=False)
    return time.perf_counter() - t0


def loop_epoch(X, y, d_h, n_slice=2000):
    net = MLP(D, d_h, M, dtype="float32", seed=0)
    sgd = SGD()
    t0 = time.perf_counter()
    for start in range(0, n_slice, K):
        _, grads = net.loss_and_grads(X[start:start + K], y[start:start + K], method="loop")
        sgd.step(net.params, grads, LR)  # the gradients themselves: scale 1
    return (time.perf_counter() - t0) * len(X) / n_slice


# Written for any version: the package's public names only (the modules
# moved in 0.3), and every setting given (fit's default momentum became 0.9).
_BEFORE = """
import sys, time, numpy as np
from handprop import MLP, fit
try:
    from handprop.data.datasets import load_mnist
except ImportError:  # handprop 0.2 and before
    from handprop.datasets import load_mnist
(X, y), _, _ = load_mnist()
sizes = [int(s) for s in sys.argv[1].split(",")]
plain = dict(epochs=1, batch_size=100, lr=0.1, momentum=0.0, seed=0, progress=False)
net = MLP(784, sizes[0] if len(sizes) == 1 else tuple(sizes), 10, dtype="float32", seed=0)
fit(net, X[:1000], y[:1000], **plain)
net = MLP(784, sizes[0] if len(sizes) == 1 else tuple(sizes), 10, dtype="float32", seed=0)
t0 = time.perf_counter()
fit(net, X, y, **plain)
print(time.perf_counter() - t0)
"""


def make_subprocess_epoch(path):
    """The epoch of the handprop in ``path`` (a ``src`` folder), timed in a
    subprocess after its own warm-up, so that two versions run side by side."""
    import subprocess
    import sys

    def epoch(_X, _y, d_h):
        sizes = ",".join(map(str, d_h if isinstance(d_h, tuple) else (d_h,)))
        env = {**os.environ, "PYTHONPATH": str(path)}
        r = subprocess.run([sys.executable, "-c", _BEFORE, sizes], env=env,
                           capture_output=True, text=True)
        return float(r.stdout.split()[-1]) if r.returncode == 0 else float("nan")

    return epoch


def make_torch_epoch(X, y, threads=None, device="cpu"):
    """PyTorch's epoch on ``device`` ("cpu", with ``threads`` threads, or
    "cuda", the data copied there once; benchmarks/gpu.py times that one)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    Xt, yt = torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev)

    def sync():  # a GPU's work is asynchronous: wait for it before reading the clock
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def torch_epoch(_X, _y, d_h):
        net = MLP(D, d_h, M, dtype="float32", seed=0)
        layers = []
        for n_in, n_out in zip(net.sizes[:-1], net.sizes[1:], strict=True):
            layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
        model = torch.nn.Sequential(*layers[:-1]).to(dev)
        with torch.no_grad():  # the same initial weights as handprop's
            for l, linear in enumerate(model[::2], start=1):
                linear.weight.copy_(torch.from_numpy(net.params[f"W{l}"]))
                linear.bias.zero_()
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        loss_fn = torch.nn.CrossEntropyLoss()
        gen = torch.Generator(device=dev).manual_seed(0)
        sync()
        t0 = time.perf_counter()
        perm = torch.randperm(len(Xt), generator=gen, device=dev)
        wrong, total = 0, 0.0
        for start in range(0, len(Xt), K):
            idx = perm[start:start + K]
            xb, yb = Xt[idx], yt[idx]
            out = model(xb)
            loss = loss_fn(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            wrong += int((out.argmax(1) != yb).sum())
            total += float(loss.detach()) * len(idx)
        sync()
        return time.perf_counter() - t0

    return torch_epoch


def sklearn_epoch(X, y, d_h):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    sizes = d_h if isinstance(d_h, tuple) else (d_h,)
    clf = MLPClassifier(hidden_layer_sizes=sizes, solver="sgd", momentum=0.0, alpha=0.0,
                        batch_size=K, max_iter=1, learning_rate_init=LR, random_state=0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    return time.perf_counter() - t0


def _median_time(f, repeat):
    f()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def shape_roofline(n, d_h, repeat):
    """Seconds the epoch's products take at numpy's throughput on their shapes:
    for each layer of n_in inputs and n_out outputs, the forward product
    H W^T, the gradient G^T H and, above the first layer, the delta G W."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    sizes = (D, *(d_h if isinstance(d_h, tuple) else (d_h,)), M)
    products = []  # (call, flops)
    for l in range(1, len(sizes)):
        n_in, n_out = sizes[l - 1], sizes[l]
        H = rng.random((K, n_in), dtype=f32)
        W = rng.random((n_out, n_in), dtype=f32)
        G = rng.random((K, n_out), dtype=f32)
        out_a, out_w, out_g = (np.empty((K, n_out), f32), np.empty((n_out, n_in), f32),
                               np.empty((K, n_in), f32))
        flops = 2 * K * n_in * n_out
        products.append((lambda H=H, W=W, o=out_a: np.matmul(H, W.T, out=o), flops))
        products.append((lambda G=G, H=H, o=out_w: np.matmul(G.T, H, out=o), flops))
        if l > 1:
            products.append((lambda G=G, W=W, o=out_g: np.matmul(G, W, out=o), flops))
    batches = n // K
    seconds = 0.0
    total = 0
    for call, f in products:
        seconds += _median_time(lambda call=call: [call() for _ in range(50)], repeat) / 50
        total += f
    return seconds * batches, total * batches


def peak_flops(repeat):
    rng = np.random.default_rng(0)
    A = rng.random((2048, 2048), dtype=np.float32)
    out = np.empty_like(A)
    return 2 * 2048**3 / _median_time(lambda: np.matmul(A, A, out=out), repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=_sizes, nargs="+", default=[128, 512, 1024, (512, 256)],
                        help="hidden sizes: 512 (one layer) or 512,256 (two)")
    parser.add_argument("--before", default=None, metavar="SRC",
                        help="also time the handprop in this src folder (e.g. a checkout of "
                        "the previous version), for a before-and-after ratio")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "epoch.json"))
    args = parser.parse_args()
    (X, y), _, _ = load_mnist()
    contenders = {"handprop": handprop_epoch, "loop": loop_epoch}
    versions = {"handprop": handprop.__version__, "numpy": np.__version__}
    if args.before:
        contenders["after"] = make_subprocess_epoch(Path(handprop.__file__).parent.parent)
        contenders["before"] = make_subprocess_epoch(Path(args.before).resolve())
    try:
        import torch

        contenders["torch"] = make_torch_epoch(X, y, args.threads)
        versions["torch"] = torch.__version__
    except ImportError:
        print("PyTorch is not installed: pip install torch==2.13.0 (left out)")
    try:
        import sklearn

        contenders["sklearn"] = sklearn_epoch
        versions["scikit-learn"] = sklearn.__version__
    except ImportError:
        print("scikit-learn is not installed: pip install scikit-learn (left out)")

    peak = peak_flops(args.repeat)
    results = []
    for d_h in args.hidden:
        times = {name: [] for name in contenders}
        for run in contenders.values():  # warm-up: imports, thread pools, page faults
            run(X, y, d_h)
        for _ in range(args.repeat):
            for name, run in contenders.items():
                times[name].append(run(X, y, d_h))
        med = {name: statistics.median(t) for name, t in times.items()}
        roof, flops = shape_roofline(len(X), d_h, args.repeat)
        row = {"d_h": _label(d_h), "seconds": med, "all_seconds": times,
               "shape_roofline": roof, "peak": flops / peak, "flops": flops}
        results.append(row)
        print(f"d_h = {_label(d_h)}: " + ", ".join(f"{k} {v:.3f} s" for k, v in med.items())
              + f", shape roofline {roof:.3f} s, peak {flops / peak:.3f} s", flush=True)

    names = [n for n in ("handprop", "after", "before", "torch", "sklearn", "loop")
             if n in contenders]
    print()
    print(f"Seconds per epoch (median of {args.repeat}):")
    print()
    print("| d_h | " + " | ".join(names) + " | shape roofline | peak |")
    print("|---:|" + "---:|" * (len(names) + 2))
    for r in results:
        print(f"| {r['d_h']} | " + " | ".join(f"{r['seconds'][n]:.3f}" for n in names)
              + f" | {r['shape_roofline']:.3f} | {r['peak']:.3f} |")
    print()
    print("Ratios:")
    print()
    cols = []
    if "before" in contenders:
        cols.append(("after / before",
                     lambda r: r["seconds"]["after"] / r["seconds"]["before"]))
    if "torch" in contenders:
        cols.append(("handprop / torch",
                     lambda r: r["seconds"]["handprop"] / r["seconds"]["torch"]))
    if "sklearn" in contenders:
        cols.append(("sklearn / handprop",
                     lambda r: r["seconds"]["sklearn"] / r["seconds"]["handprop"]))
    cols.append(("loop / handprop", lambda r: r["seconds"]["loop"] / r["seconds"]["handprop"]))
    cols.append(("shape roofline / handprop",
                 lambda r: r["shape_roofline"] / r["seconds"]["handprop"]))
    cols.append(("peak / handprop", lambda r: r["peak"] / r["seconds"]["handprop"]))
    print("| d_h | " + " | ".join(c for c, _ in cols) + " |")
    print("|---:|" + "---:|" * len(cols))
    for r in results:
        r["ratios"] = {c: f(r) for c, f in cols}
        print(f"| {r['d_h']} | " + " | ".join(f"{f(r):.2f}" for _, f in cols) + " |")
    print()
    print(f"peak: {peak / 1e9:.0f} GFLOP/s (numpy float32 2048 x 2048 matmul); "
          f"{args.threads} threads; " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    info = {"machine": platform.machine(), "processor": _cpu_name(), "threads": args.threads,
            "peak_flops": peak, "versions": versions, "results": results}
    Path(args.out).write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {os.path.relpath(args.out)}")


def _sizes(text: str):
    sizes = tuple(int(v) for v in text.split(","))
    return sizes[0] if len(sizes) == 1 else sizes


def _label(d_h) -> str:
    return ",".join(map(str, d_h)) if isinstance(d_h, tuple) else str(d_h)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
