"""Where an epoch's time goes on the CPU: matrix products, elementwise work,
the optimizer, dropout masks and distortions, for one recipe's net.

At the settings of a recipe of mnist_records.py (by default recipe 5: 3 x 1024
ReLU units, K = 100, float32, Adam, hidden dropout 0.25, elastic
distortions), it times each part of a minibatch in a loop of its own over
one epoch of the recipe's data set (600 minibatches of 100 for recipe 5, which
trains on all 60,000 training images; 500 for recipe 4):

- the matrix products of the forward and backward passes alone, at the
  net's shapes, into buffers (X W^T per layer; G^T h per layer, and G W for
  every layer but the first: the inputs need no delta);
- the whole forward and backward pass (``loss_and_gradients``): what it
  takes beyond the products is the elementwise work (activations, their
  derivatives, dropout's multiplications, softmax and its loss);
- the optimizer's update of all parameters, the dropout masks' draws and,
  with input dropout, the masking of the inputs;
- the distortion of 100 images (for a recipe with distortions), which a
  background thread does while the previous minibatch trains (it competes
  for the cores, it does not wait);

then one whole training epoch (``Step.train_epoch``: its train figures are
tallied from the minibatches) and one whole ``fit`` epoch, whose difference
is fit's set-up and the evaluation of the validation and test sets.

    HANDPROP_DATA=../shared/data python benchmarks/epoch_breakdown.py [--recipe 4|5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from handprop import MLP
from handprop.core.network import loss_and_gradients
from handprop.data.augment import Augmenter
from handprop.data.datasets import load_dataset
from handprop.train.optimizers import Adam
from handprop.train.step import Step
from handprop.train.training import fit

sys.path.insert(0, str(Path(__file__).parent))
from mnist_records import RECIPES  # noqa: E402


def timed(f, n: int) -> float:
    """Seconds for n calls of f, after two calls of warm-up."""
    f()
    f()
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    adam_recipes = [n for n, r in RECIPES.items() if r["fit"].get("optimizer") == "adam"]
    parser.add_argument("--recipe", type=int, default=5, choices=adam_recipes,
                        help="the recipe whose net and settings are timed (default 5)")
    args = parser.parse_args()
    recipe = RECIPES[args.recipe]
    hidden = recipe["d_h"] if isinstance(recipe["d_h"], tuple) else (recipe["d_h"],)
    settings = recipe["fit"]
    K, dropout, kinds = settings["batch_size"], settings["dropout"], settings.get("augment")
    (X, y), valid, test = load_dataset(recipe.get("data", "mnist"))
    n_batches = len(X) // K
    augment = Augmenter(kinds) if kinds else None

    def new_step() -> tuple[MLP, Step]:
        """A fresh net of the recipe's sizes and its training step at its settings."""
        net = MLP(784, hidden, 10, dtype="float32", seed=0)
        return net, Step(net, net.params, X, net.check_y(y, len(y)), optimizer=Adam(),
                         batch_size=K, dropout=dropout, rng=np.random.default_rng(0),
                         augment=augment, seed=0, host_X=X)

    net, step = new_step()
    params, work = step.params, step.work
    sizes = net.sizes
    Xb, Tb = X[:K].copy(), net.check_y(y[:K], K)
    mask_in, masks = step.masks.draw(K)

    # the products alone, into buffers of the pass's shapes
    acts = [np.empty((K, n), np.float32) for n in sizes]
    acts[0][:] = Xb
    grads_out = [np.empty((K, n), np.float32) for n in sizes]
    dWs = [np.empty((sizes[l + 1], sizes[l]), np.float32) for l in range(len(sizes) - 1)]

    def products():
        for l in range(1, len(sizes)):
            np.matmul(acts[l - 1], params[f"W{l}"].T, out=acts[l])
        for l in range(len(sizes) - 1, 0, -1):
            np.matmul(grads_out[l].T, acts[l - 1], out=dWs[l - 1])
            if l > 1:
                np.matmul(grads_out[l], params[f"W{l}"], out=grads_out[l - 1])

    for g in grads_out:
        g[:] = 0.001

    def passes():
        return loss_and_gradients(params, Xb, Tb, net.activation, net.pair, None, work=work,
                                  masks=masks, penalty_value=False, stop_if_not_finite=True)

    grads = passes().grads
    adam = Adam()
    rng = np.random.default_rng(1)
    masked = np.empty_like(Xb)

    def draw_masks():
        mask_in, _ = step.masks.draw(K)
        if mask_in is not None:
            np.multiply(Xb, mask_in, out=masked)

    parts = {
        "matrix products (forward and backward)": timed(products, n_batches),
        "forward and backward pass, whole": timed(passes, n_batches),
        "optimizer (Adam) update": timed(lambda: adam.step(params, grads, 0.0), n_batches),
        "dropout masks": timed(draw_masks, n_batches),
    }
    if augment is not None:
        parts["distortions (background thread)"] = timed(lambda: augment(X[:K], rng), n_batches)
    # 2 K d_in d_out per product: forward, dW, and the delta below (none for the inputs)
    flops = 2 * K * n_batches * (3 * sum(sizes[l] * sizes[l + 1] for l in range(len(sizes) - 1))
                                 - sizes[0] * sizes[1])
    _, step2 = new_step()
    with step2:
        step2.start_epoch(1, np.random.default_rng(0).permutation(len(X)))
        t0 = time.perf_counter()
        step2.train_epoch(lambda b: 1e-3)
        train_epoch = time.perf_counter() - t0
    net3 = MLP(784, hidden, 10, dtype="float32", seed=0)
    t0 = time.perf_counter()
    fit(net3, X, y, valid=valid, test=test, progress=False, seed=0,
        **dict(settings, epochs=1))
    fit_epoch = time.perf_counter() - t0

    print(f"recipe {args.recipe}: d_h = {hidden}, K = {K}, float32, dropout {dropout}, "
          f"distortions: {kinds or 'none'}; {n_batches} minibatches per epoch; "
          f"seconds per epoch:")
    print("| part | seconds per epoch | share of a training epoch |")
    print("|---|---:|---:|")
    products_s = parts["matrix products (forward and backward)"]
    elementwise = parts["forward and backward pass, whole"] - products_s
    rows = [("matrix products (forward and backward)", products_s),
            ("elementwise work of the passes (the whole pass less its products)", elementwise),
            ("optimizer (Adam) update", parts["optimizer (Adam) update"]),
            ("dropout masks" + (" and the inputs' masking" if dropout[0] else ""),
             parts["dropout masks"])]
    if augment is not None:
        rows.append((f"{kinds} distortions (in a background thread)",
                     parts["distortions (background thread)"]))
    rows += [("a whole training epoch (Step.train_epoch)", train_epoch),
             ("a whole fit epoch: set-up, training, valid and test figures", fit_epoch)]
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {100 * seconds / train_epoch:.0f}% |")
    print(f"\nthe products: {flops / 1e9:.0f} GFLOP per epoch, "
          f"{flops / products_s / 1e9:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
