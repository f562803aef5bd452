"""Training on an NVIDIA GPU: handprop on CuPy against PyTorch on CUDA, side by side.

Needs CuPy and a GPU (PyTorch too, for the comparison). Three measurements,
in one process:

1. One MNIST epoch (50,000 images, K = 100, float32, plain SGD with lr 0.1,
   the errors and loss of every minibatch counted), from the same
   initialization, for each d_h (512,256 is two hidden layers): handprop with
   ``device="cuda"``, PyTorch on
   CUDA (``nn.Linear``, ``nn.ReLU``, ``nn.Linear``, ``CrossEntropyLoss``,
   ``optim.SGD``, the data on the GPU, the same per-minibatch counting), and
   handprop on this machine's CPU cores. Each runs once to warm up, then
   ``--repeat`` times in turns; medians and ratios are reported.
2. ``MLPClassifier(device="cuda")`` against ``device="cpu"`` on MNIST
   (d_h = 1024, adam, batch_size 100, 10 iterations): seconds and test accuracy.
3. With ``--recipe``, recipe 1 of ``benchmarks/mnist_records.py`` (d_h = 2048,
   Adam, dropout 0.2 / 0.5, 100 epochs) trained on the GPU: test error and
   wall time, against the CPU figures of ``docs/accuracy.md``.

    HANDPROP_DATA=../shared/data python benchmarks/gpu.py [--recipe] [--out FILE]
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
from epoch import LR, D, K, M, _label, _sizes, make_torch_epoch  # benchmarks/epoch.py

import handprop
from handprop import MLP
from handprop.data.datasets import load_mnist
from handprop.train.training import evaluate, fit


def handprop_epoch(device):
    def run(X, y, d_h):
        net = MLP(D, d_h, M, dtype="float32", seed=0)
        t0 = time.perf_counter()
        fit(net, X, y, epochs=1, batch_size=K, lr=LR, momentum=0.0, seed=0, progress=False,
            device=device)
        return time.perf_counter() - t0

    return run


def epochs(X, y, hidden, repeat, versions):
    contenders = {"handprop cuda": handprop_epoch("cuda")}
    try:
        import torch

        if torch.cuda.is_available():
            contenders["torch cuda"] = make_torch_epoch(X, y, device="cuda")
            versions["torch"] = torch.__version__
    except ImportError:
        print("PyTorch is not installed (left out)")
    contenders["handprop cpu"] = handprop_epoch("cpu")
    rows = []
    for d_h in hidden:
        times = {name: [] for name in contenders}
        for run in contenders.values():  # warm-up: kernels compiled, pools filled
            run(X, y, d_h)
        for _ in range(repeat):
            for name, run in contenders.items():
                times[name].append(run(X, y, d_h))
        med = {name: statistics.median(t) for name, t in times.items()}
        row = {"d_h": _label(d_h), "seconds": med, "all_seconds": times}
        if "torch cuda" in med:
            row["handprop cuda / torch cuda"] = med["handprop cuda"] / med["torch cuda"]
        row["handprop cpu / handprop cuda"] = med["handprop cpu"] / med["handprop cuda"]
        rows.append(row)
        print(f"d_h = {_label(d_h)}: " + ", ".join(f"{k} {v:.3f} s" for k, v in med.items()),
              flush=True)
    names = list(contenders)
    print()
    print(f"Seconds per MNIST epoch, K = {K} (median of {repeat}):")
    print()
    print("| d_h | " + " | ".join(names) + " | handprop cuda / torch cuda | "
          "handprop cpu / handprop cuda |")
    print("|---:|" + "---:|" * (len(names) + 2))
    for r in rows:
        ratio = r.get("handprop cuda / torch cuda", float("nan"))
        print(f"| {r['d_h']} | " + " | ".join(f"{r['seconds'][n]:.3f}" for n in names)
              + f" | {ratio:.2f} | {r['handprop cpu / handprop cuda']:.1f} |")
    return rows


def estimator(data, max_iter):
    from sklearn.exceptions import ConvergenceWarning

    from handprop import MLPClassifier

    (X, y), _, (Xt, yt) = data
    out = {}
    for device in ("cuda", "cpu"):
        clf = MLPClassifier((1024,), batch_size=100, max_iter=max_iter, random_state=0,
                            device=device)
        t0 = time.perf_counter()
        with warnings.catch_warnings():  # 10 iterations do not converge, as intended
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
        out[device] = {"seconds": time.perf_counter() - t0, "test_accuracy": clf.score(Xt, yt)}
    print()
    print(f"MLPClassifier((1024,), batch_size=100, max_iter={max_iter}) on MNIST: "
          + ", ".join(f"device={d!r} {r['seconds']:.1f} s, test accuracy "
                      f"{100 * r['test_accuracy']:.2f}%" for d, r in out.items())
          + f"; cpu / cuda {out['cpu']['seconds'] / out['cuda']['seconds']:.1f}")
    return out


def recipe(data):
    (X, y), valid, test = data
    net = MLP(D, 2048, M, dtype="float32", seed=0)
    t0 = time.perf_counter()
    history = fit(net, X, y, valid=valid, epochs=100, batch_size=100, optimizer="adam",
                  lr=1e-3, schedule="cosine", dropout=(0.2, 0.5), seed=0, progress=False,
                  device="cuda")
    seconds = time.perf_counter() - t0
    test_error, _ = evaluate(net, *test)
    row = {"valid_error": history[-1].valid_error, "test_error": test_error,
           "seconds": seconds, "epochs": len(history)}
    print()
    print(f"recipe 1 on the GPU (d_h = 2048, adam, dropout 0.2 / 0.5, 100 epochs): test error "
          f"{100 * test_error:.2f}%, valid error {100 * row['valid_error']:.2f}%, "
          f"{seconds:.1f} s")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=_sizes, nargs="+", default=[512, 2048, (512, 256)],
                        help="hidden sizes: 512 (one layer) or 512,256 (two)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=10, help="the estimator's")
    parser.add_argument("--recipe", action="store_true", help="also train recipe 1")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "gpu.json"))
    args = parser.parse_args()
    import cupy

    data = load_mnist()
    (X, y), _, _ = data
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.runtime.getDevice())
    versions = {"handprop": handprop.__version__, "numpy": np.__version__,
                "cupy": cupy.__version__}
    info = {"gpu": props["name"].decode(), "cpu_cores": os.cpu_count(),
            "machine": platform.machine(), "versions": versions}
    info["epochs"] = epochs(X, y, args.hidden, args.repeat, versions)
    Path(args.out).write_text(json.dumps(info, indent=2) + "\n")  # what is done so far
    info["estimator"] = estimator(data, args.max_iter)
    if args.recipe:
        info["recipe_1"] = recipe(data)
    print()
    print(f"{info['gpu']}, {info['cpu_cores']} CPU cores; "
          + ", ".join(f"{k} {v}" for k, v in versions.items()))
    Path(args.out).write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {os.path.relpath(args.out)}")


if __name__ == "__main__":
    main()
