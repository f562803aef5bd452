"""The training step, pinned to the proven gradients.

For every option that enters a step, a few full-batch steps of ``fit`` and of
the estimator must leave the parameters equal, in float64 to 1e-10, to an
update computed here independently: the gradient from
``MLP.loss_and_grads(method="loop")`` (the per-example reference that the
gradient checker and the matrix code are checked against), and the
optimizer's update written out in plain NumPy from its formula.

Each step is full-batch, so a step is an epoch: the run's generator first
shuffles the examples (the reference applies the same permutation, so that
masks and rows line up), then draws the dropout masks of the minibatch
(input first, then each hidden layer; see handprop.train.step).

``tests/plant_bugs.py`` plants bugs in this wiring and checks that these
tests catch each one.
"""

import math
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

from handprop import MLP, ElasticNet, fit
from handprop.core.outputs import OUTPUTS
from handprop.train.step import Step
from problems import random_targets

RTOL, ATOL = 1e-10, 1e-13
N, D, STEPS = 40, 5, 3


# -- the independent reference -------------------------------------------------


def _masks(rng, n, net, rates, dtype=np.float64):
    """The step's draws: input mask (n, d) if its rate > 0, then one (n, d_l)
    per hidden layer if the hidden rate > 0; kept entries are 1 / (1 - rate)."""
    rate_in, rate_h = (0.0, rates) if np.isscalar(rates) else rates  # one number: hidden
    mask_in = (rng.random((n, net.d)) >= rate_in) / (1 - rate_in) if rate_in else None
    mask_h = ([(rng.random((n, h)) >= rate_h) / (1 - rate_h) for h in net.hidden]
              if rate_h else None)
    return mask_in, mask_h


class Reference:
    """SGD (momentum, Nesterov) and Adam, from their formulas."""

    def __init__(self, optimizer="sgd", momentum=0.0, nesterov=False, betas=(0.9, 0.999),
                 epsilon=1e-8):
        self.kind, self.mu, self.nesterov = optimizer, momentum, nesterov
        self.b1, self.b2, self.eps = betas[0], betas[1], epsilon
        self.state, self.t = {}, 0

    def update(self, params, grads, lr):
        self.t += 1
        for k, g in grads.items():
            if self.kind == "sgd":
                v = self.mu * self.state.get(k, 0.0) - lr * g  # v <- mu v - lr g
                self.state[k] = v
                params[k] = params[k] + (self.mu * v - lr * g if self.nesterov else v)
            else:
                m, s = self.state.get(k, (0.0, 0.0))
                m = self.b1 * m + (1 - self.b1) * g
                s = self.b2 * s + (1 - self.b2) * g * g
                self.state[k] = (m, s)
                lr_t = lr * math.sqrt(1 - self.b2**self.t) / (1 - self.b1**self.t)
                params[k] = params[k] - lr_t * m / (np.sqrt(s) + self.eps)


def _max_norm(params, L, c):
    for l in range(1, L + 1):
        W = params[f"W{l}"]
        norms = np.sqrt((W * W).sum(axis=1))
        params[f"W{l}"] = np.where((norms > c)[:, None], W * (c / norms)[:, None], W)


def reference_fit(net0, X, y, steps, *, lr=0.1, seed=0, penalty=None, dropout=(0.0, 0.0),
                  label_smoothing=0.0, sample_weight=None, max_norm=None, schedule="constant",
                  momentum=0.9, **optimizer):
    """The parameters after ``steps`` full-batch steps of fit, computed from
    loss_and_grads(method="loop") and the optimizer's formula. The defaults
    are fit's, written out: lr 0.1, sgd with momentum 0.9."""
    net = net0.copy()
    params = {k: v.copy() for k, v in net.params.items()}
    opt = Reference(momentum=momentum, **optimizer)
    rng = np.random.default_rng(seed)
    n = len(X)
    for epoch in range(1, steps + 1):
        order = rng.permutation(n)
        mask_in, mask_h = _masks(rng, n, net, dropout)
        net.params = params
        w = None if sample_weight is None else sample_weight[order]
        _, grads = net.loss_and_grads(X[order], y[order], penalty, method="loop",
                                      mask_in=mask_in, mask_h=mask_h,
                                      label_smoothing=label_smoothing, sample_weight=w)
        rate = lr if schedule == "constant" else lr * (1 + math.cos(math.pi * (epoch - 1)
                                                                    / steps)) / 2
        opt.update(params, grads, rate)
        if max_norm is not None:
            _max_norm(params, net.L, max_norm)
    return params


# -- the data of each output/loss pair -----------------------------------------


def _problem(output, hidden, activation="tanh", m=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D))
    y = random_targets(rng, output, N, m)
    net = MLP(D, hidden, m, activation=activation, output=output, seed=seed)
    return net, X, y


FIT_OPTIONS = {
    "defaults": {},
    "plain": {"momentum": 0.0},
    "elastic net": {"penalty": "per-matrix"},
    "momentum": {"momentum": 0.9},
    "nesterov": {"momentum": 0.9, "nesterov": True},
    "adam": {"optimizer": "adam", "lr": 0.01},
    "label smoothing": {"label_smoothing": 0.2},
    "sample weights": {"sample_weight": "linspace"},
    "dropout": {"dropout": (0.2, 0.5)},
    "hidden dropout": {"dropout": 0.3},
    "max-norm": {"max_norm": 0.5, "lr": 1.0},
    "cosine schedule": {"schedule": "cosine", "momentum": 0.5},
    "everything": {"penalty": "per-matrix", "momentum": 0.9, "nesterov": True,
                   "label_smoothing": 0.1, "sample_weight": "linspace", "dropout": (0.1, 0.2),
                   "max_norm": 0.8},
}


def _resolve(options, net):
    options = dict(options)
    if options.get("penalty") == "per-matrix":  # a different lambda on every matrix
        n = net.L + 1
        options["penalty"] = ElasticNet.per_matrix([0.01 * k for k in range(1, n + 1)],
                                                   [0.02 * k for k in range(n, 0, -1)])
    if options.get("sample_weight") == "linspace":
        options["sample_weight"] = np.linspace(0.2, 3.0, N)
    return options


@pytest.mark.parametrize("output", list(OUTPUTS))  # every entry of the table
@pytest.mark.parametrize("hidden", [7, (6, 5, 4)], ids=["depth1", "depth3"])
@pytest.mark.parametrize("option", FIT_OPTIONS)
def test_fit_steps_equal_the_reference(option, hidden, output):
    net, X, y = _problem(output, hidden)
    options = _resolve(FIT_OPTIONS[option], net)
    if not OUTPUTS[output].smoothing and options.get("label_smoothing"):
        options.pop("label_smoothing")  # no smoothing of regression targets
    expected = reference_fit(net, X, y, STEPS, **options)
    trained = net.copy()
    fit(trained, X, y, epochs=STEPS, batch_size=N, progress=False, **options)
    for k in expected:
        assert_allclose(trained.params[k], expected[k], rtol=RTOL, atol=ATOL, err_msg=k)
    # the steps moved the parameters: the comparison is not of two copies of net0
    assert not np.allclose(trained.params["W1"], net.params["W1"])


@pytest.mark.parametrize("m", [1, 4])
def test_fit_steps_with_logistic_targets(m):
    # one logistic unit for two classes (y (n,) of 0/1), and multilabel (y (n, m))
    net, X, y = _problem("logistic", (6, 4), m=m)
    options = {"momentum": 0.9, "label_smoothing": 0.1, "penalty": ElasticNet(l2_W2=0.01)}
    expected = reference_fit(net, X, y, STEPS, **options)
    trained = net.copy()
    fit(trained, X, y, epochs=STEPS, batch_size=N, progress=False, **options)
    for k in expected:
        assert_allclose(trained.params[k], expected[k], rtol=RTOL, atol=ATOL, err_msg=k)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_minibatches_follow_the_reference_one_by_one(schedule):
    # Several minibatches per epoch: the step gathers the rows of each from
    # the shuffled order, and a cosine schedule lowers the rate before each.
    # Here the reference walks the same minibatches.
    net, X, y = _problem("softmax", (6, 4))
    K, epochs, lr = 15, 2, 0.1  # 40 examples: minibatches of 15, 15 and 10
    trained = net.copy()
    fit(trained, X, y, epochs=epochs, batch_size=K, lr=lr, momentum=0.9, dropout=(0.1, 0.2),
        schedule=schedule, progress=False)
    ref = net.copy()
    params = {k: v.copy() for k, v in ref.params.items()}
    opt = Reference(momentum=0.9)
    rng = np.random.default_rng(0)
    n_batches = 3
    for epoch in range(1, epochs + 1):
        order = rng.permutation(N)
        for b, start in enumerate(range(0, N, K)):
            rows = order[start:start + K]
            mask_in, mask_h = _masks(rng, len(rows), ref, (0.1, 0.2))
            ref.params = params
            _, grads = ref.loss_and_grads(X[rows], y[rows], mask_in=mask_in, mask_h=mask_h,
                                          method="loop")
            progress = (epoch - 1 + b / n_batches) / epochs
            rate = lr if schedule == "constant" else lr * (1 + math.cos(math.pi * progress)) / 2
            opt.update(params, grads, rate)
    for k in params:
        assert_allclose(trained.params[k], params[k], rtol=RTOL, atol=ATOL, err_msg=k)


def test_the_recorded_train_loss_is_the_minibatch_data_loss():
    # "train loss": the data loss of each minibatch, before its update,
    # without the penalty, averaged over the epoch's examples
    net, X, y = _problem("softmax", 7)
    penalty = ElasticNet(l2_W1=0.5, l2_W2=0.5)
    before = net.copy()
    history = fit(net, X, y, epochs=1, batch_size=N, penalty=penalty, progress=False)
    assert history[0].train_loss == pytest.approx(before.loss(X, y), rel=1e-12)
    assert history[0].train_loss < before.loss(X, y, penalty)


def test_the_step_objective_is_loss_and_grads_with_the_decay():
    # what lbfgs minimizes: the loss with the penalty and alpha's decay term
    net, X, y = _problem("softmax", (6, 4))
    w = np.linspace(0.5, 2.0, N)
    penalty = ElasticNet(l1_W1=0.01, l2_W3=0.02)
    step = Step(net, net.params, X, y, optimizer=None, batch_size=N, penalty=penalty,
                decay=0.05)
    loss, grads = step.objective(X, y, w)
    expected_penalty = penalty.with_l2(0.05 / w.sum(), net.L + 1)
    ref_loss, ref = net.loss_and_grads(X, y, expected_penalty, method="loop", sample_weight=w)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for k in ref:
        assert_allclose(grads[k], ref[k], rtol=1e-12, atol=1e-15, err_msg=k)


# -- the estimator -----------------------------------------------------------------


def _initial_net(clf, d, m):
    """The net that MLPClassifier(random_state=...) starts from, drawn as
    scikit-learn draws it: per layer, the (fan_in, fan_out) weights, then the
    biases, uniform in +-sqrt(6 / (fan_in + fan_out)); and the generator of
    its dropout masks, seeded from the random state after those draws."""
    rs = np.random.RandomState(clf.random_state)
    sizes = (d, *clf.hidden_layer_sizes, m)
    net = MLP(d, clf.hidden_layer_sizes, m, activation="relu", dtype="float64", seed=0)
    params = {}
    for l in range(1, len(sizes)):
        bound = np.sqrt(6 / (sizes[l - 1] + sizes[l]))
        params[f"W{l}"] = rs.uniform(-bound, bound, (sizes[l - 1], sizes[l])).T
        params[f"b{l}"] = rs.uniform(-bound, bound, sizes[l])
    net.params = params
    state = rs.get_state()[1]
    return net, np.random.default_rng([int(v) for v in state[:4]] + [int(state[-1])])


ESTIMATOR_OPTIONS = {
    "sgd": {"solver": "sgd", "momentum": 0.0},
    "momentum": {"solver": "sgd", "momentum": 0.9, "nesterovs_momentum": False},
    "nesterov": {"solver": "sgd", "momentum": 0.9},
    "adam": {"solver": "adam"},
    "alpha": {"solver": "sgd", "momentum": 0.0, "alpha": 0.3},
    "elastic net": {"solver": "sgd", "momentum": 0.0, "alpha": 0.1, "l1": 0.01, "l2": 0.02},
    "sample weights": {"solver": "sgd", "momentum": 0.9, "alpha": 0.2, "weights": True},
    "class weight": {"solver": "adam", "alpha": 0.2, "class_weight": "balanced"},
    "dropout": {"solver": "sgd", "momentum": 0.5, "dropout": (0.2, 0.3)},
}


@pytest.mark.parametrize("hidden", [(7,), (6, 5, 4)], ids=["depth1", "depth3"])
@pytest.mark.parametrize("option", ESTIMATOR_OPTIONS)
def test_estimator_steps_equal_the_reference(option, hidden):
    pytest.importorskip("sklearn")
    from handprop import MLPClassifier

    options = dict(ESTIMATOR_OPTIONS[option])
    weights = options.pop("weights", False)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(N, D))
    y = rng.integers(0, 3, size=N)
    w = np.linspace(0.2, 3.0, N) if weights else None
    lr = 0.1 if options["solver"] == "sgd" else 0.01
    clf = MLPClassifier(hidden, batch_size=N, learning_rate_init=lr, max_iter=STEPS,
                        shuffle=False, tol=0.0, n_iter_no_change=100, random_state=3,
                        dtype="float64", **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached
        clf.fit(X, y, sample_weight=w)
    net, mask_rng = _initial_net(clf, D, 3)
    sw = np.ones(N) if w is None else w.copy()
    if options.get("class_weight") == "balanced":
        sw *= (N / (3 * np.bincount(y)))[y]
    if w is None and not options.get("class_weight"):
        sw = None
    n = N if sw is None else sw.sum()
    # scikit-learn's alpha: 0.5 alpha ||W||^2 / n on every weight matrix
    L1, L2 = options.get("l1", 0.0), options.get("l2", 0.0)
    n_weights = len(hidden) + 1
    penalty = ElasticNet.per_matrix([L1] * n_weights,
                                    [L2 + 0.5 * options.get("alpha", 1e-4) / n] * n_weights)
    nesterov = options.get("nesterovs_momentum", True) and options.get("momentum", 0.9) > 0
    opt = Reference(options["solver"], momentum=options.get("momentum", 0.9), nesterov=nesterov)
    params = {k: v.copy() for k, v in net.params.items()}
    for _ in range(STEPS):
        mask_in, mask_h = _masks(mask_rng, N, net, options.get("dropout", (0.0, 0.0)))
        net.params = params
        _, grads = net.loss_and_grads(X, y, penalty, method="loop", mask_in=mask_in,
                                      mask_h=mask_h, sample_weight=sw)
        opt.update(params, grads, lr)
    for l, (W, b) in enumerate(zip(clf.coefs_, clf.intercepts_, strict=True), start=1):
        assert_allclose(W.T, params[f"W{l}"], rtol=RTOL, atol=ATOL, err_msg=f"W{l}")
        assert_allclose(b, params[f"b{l}"], rtol=RTOL, atol=ATOL, err_msg=f"b{l}")
    assert clf.n_iter_ == STEPS


@pytest.mark.parametrize("hidden", [(7,), (6, 5, 4)], ids=["depth1", "depth3"])
def test_lbfgs_reports_the_reference_loss(hidden):
    # lbfgs minimizes the step's objective; at its answer, loss_ must be the
    # reference loss with alpha's term 0.5 alpha ||W||^2 / n
    pytest.importorskip("sklearn")
    from handprop import MLPClassifier

    rng = np.random.default_rng(2)
    X = rng.normal(size=(N, D))
    y = rng.integers(0, 3, size=N)
    clf = MLPClassifier(hidden, solver="lbfgs", alpha=0.5, max_iter=5, random_state=0,
                        dtype="float64", l2=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    net = clf.net_
    penalty = ElasticNet.per_matrix([], [0.01 + 0.25 / N] * (len(hidden) + 1))
    assert clf.loss_ == pytest.approx(net.loss(X, y, penalty), rel=1e-12)
