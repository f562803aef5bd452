"""fit, History, schedules and the SGD step."""

import math
import re
from dataclasses import asdict

import numpy as np
import pytest
from numpy.testing import assert_allclose

from handprop import MLP, ElasticNet
from handprop.data.datasets import moons_splits
from handprop.train.optimizers import SGD
from handprop.train.schedules import Constant, Cosine, Plateau, Step, make_schedule
from handprop.train.training import COLUMNS, Diverged, History, evaluate, fit


@pytest.fixture(scope="module")
def moons():
    return moons_splits()


def _without_seconds(history):
    """The records without their timings, NaN-safe for comparison."""
    return [{k: repr(v) for k, v in asdict(r).items() if k != "seconds"} for r in history]


def test_fit_learns_two_moons(moons):
    train, valid, test = moons
    net = MLP(2, 100, 2, seed=0)
    history = fit(net, *train, valid=valid, test=test, epochs=60, lr=0.05, momentum=0.9,
                  progress=False)
    assert len(history) == 60
    assert history[-1].valid_error < 0.05
    assert history[-1].train_loss < history[0].train_loss
    assert evaluate(net, *valid) == (history[-1].valid_error, pytest.approx(
        history[-1].valid_loss, rel=1e-12))
    assert history.stop_reason == "finished 60 epochs"


def test_history_has_the_documented_columns_and_round_trips(moons, tmp_path):
    train, valid, _ = moons
    net = MLP(2, 10, 2, seed=0)
    log = tmp_path / "log.csv"
    seen = []
    history = fit(net, *train, valid=valid, epochs=3, progress=False, log=log,
                  on_epoch=seen.append)
    assert COLUMNS == ("epoch", "train_error", "train_loss", "valid_error", "valid_loss",
                       "test_error", "test_loss", "lr", "seconds")
    assert seen == list(history)
    text = log.read_text().splitlines()
    assert text[0] == ",".join(COLUMNS) and len(text) == 4
    back = History.read_csv(log)
    assert _without_seconds(back) == _without_seconds(history)
    assert math.isnan(back[0].test_error)  # no test set given
    assert [r.epoch for r in back] == [1, 2, 3]
    assert history.column("lr").tolist() == [0.1, 0.1, 0.1]
    rows = History.from_dicts(history.to_dicts())
    assert _without_seconds(rows) == _without_seconds(history)


def test_train_figures_come_from_the_minibatch_passes(moons):
    # with a vanishing learning rate the parameters stay put, so the error
    # accumulated over the epoch's minibatches is the error on the whole set
    train, _, _ = moons
    net = MLP(2, 10, 2, seed=0)
    err, loss = evaluate(net, *train)
    history = fit(net, *train, epochs=1, lr=1e-300, batch_size=64, progress=False)
    assert history[0].train_error == err
    assert history[0].train_loss == pytest.approx(loss, rel=1e-12)


def test_same_seed_same_history(moons):
    train, valid, test = moons
    runs = []
    for _ in range(2):
        net = MLP(2, 20, 2, seed=1, dtype="float32")
        h = fit(net, *train, valid=valid, test=test, epochs=4, momentum=0.5, seed=7,
                progress=False)
        runs.append((_without_seconds(h), net.W1.copy()))
    assert runs[0][0] == runs[1][0]
    assert np.array_equal(runs[0][1], runs[1][1])
    net = MLP(2, 20, 2, seed=1, dtype="float32")
    other = fit(net, *train, valid=valid, epochs=4, momentum=0.5, seed=8, progress=False)
    assert _without_seconds(other) != runs[0][0]


def test_early_stopping_restores_the_best_epoch(moons):
    train, valid, _ = moons
    net = MLP(2, 50, 2, seed=0)
    history = fit(net, *train, valid=valid, epochs=200, lr=0.5, momentum=0.9, patience=5,
                  progress=False)
    errors = history.column("valid_error")
    best = int(np.argmin(errors)) + 1  # the first epoch with the lowest error
    assert history.best_epoch == best
    assert len(history) == best + 5  # stopped after 5 epochs without improvement
    assert "early stopping" in history.stop_reason
    assert evaluate(net, *valid)[0] == errors[best - 1]
    assert_allclose(evaluate(net, *valid)[1], history[best - 1].valid_loss, rtol=1e-12)


def test_patience_needs_a_validation_set(moons):
    with pytest.raises(ValueError, match="patience .* needs a validation set"):
        fit(MLP(2, 5, 2), *moons[0], patience=3, progress=False)


def test_divergence_stops_with_a_message_and_finite_parameters(moons):
    train, valid, _ = moons
    net = MLP(2, 50, 2, seed=0, dtype="float32")
    with pytest.raises(Diverged, match="training diverged: the (loss|parameters) became"
                       ) as info:
        fit(net, *train, valid=valid, epochs=50, lr=1e30, progress=False)
    assert "smaller learning rate" in str(info.value)
    for p in net.params.values():
        assert np.all(np.isfinite(p))
    done = len(info.value.history)
    assert all(math.isfinite(r.train_loss) for r in info.value.history)
    if done:  # the parameters are those of the last finished epoch
        assert evaluate(net, *valid)[0] == info.value.history[-1].valid_error


@pytest.mark.parametrize("kwargs,message", [
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"epochs": 10**400}, "epochs must be an integer >= 1 that fits in 64 bits"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"lr": -0.1}, "lr must be a number > 0"),
    ({"lr": 10**400}, "lr must be a number > 0, got 1000.*too large for a float"),
    ({"learning_rate": 0.1}, "unknown run setting learning_rate; the settings are epochs, "),
    ({"lr": float("nan")}, "lr must be a number"),
    ({"momentum": 1.0}, "momentum must be a number in \\[0, 1\\)"),
    ({"nesterov": True, "momentum": 0.0}, "nesterov=True needs a momentum > 0"),
    ({"schedule": "warm"}, "schedule must be one of 'constant', 'step', 'cosine', 'plateau'"),
    ({"penalty": 0.1}, "penalty must be an ElasticNet"),
    ({"valid": ([[1.0, 2.0]], [5])}, r"y must hold classes in \[0, 2\)"),
    ({"test": "data"}, "test must be a pair"),
])
def test_bad_arguments_are_refused_before_training(moons, kwargs, message):
    net = MLP(2, 5, 2, seed=0)
    before = net.W1.copy()
    with pytest.raises((ValueError, TypeError), match=message):
        fit(net, *moons[0], progress=False, **kwargs)
    assert np.array_equal(net.W1, before)


def test_penalty_shrinks_the_weights(moons):
    train = moons[0]
    plain, decayed = MLP(2, 20, 2, seed=0), MLP(2, 20, 2, seed=0)
    fit(plain, *train, epochs=20, progress=False)
    fit(decayed, *train, epochs=20, penalty=ElasticNet(l2_W1=0.01, l2_W2=0.01), progress=False)
    assert np.abs(decayed.W1).sum() < 0.8 * np.abs(plain.W1).sum()


def test_parameters_are_updated_in_place(moons):
    net = MLP(2, 5, 2, seed=0)
    W1 = net.W1
    fit(net, *moons[0], epochs=1, momentum=0.9, progress=False)
    assert net.W1 is W1


def test_mnist_smoke(mnist):
    (X, y), (Xv, yv), _ = mnist
    net = MLP(784, 64, 10, seed=0, dtype="float32")
    history = fit(net, X[:5000], y[:5000], valid=(Xv[:2000], yv[:2000]), epochs=1, lr=0.1,
                  momentum=0.9, progress=False)
    assert history[0].valid_error < 0.15


# -- schedules and the SGD step ---------------------------------------------


def test_schedules():
    assert [Constant(0.1).rate(e) for e in (1, 50)] == [0.1, 0.1]
    step = Step(1.0, step_size=2, gamma=0.5)
    assert [step.rate(e) for e in range(1, 6)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    cos = Cosine(1.0, epochs=4, lr_min=0.0)
    assert_allclose([cos.rate(e) for e in range(1, 5)],
                    [1.0, (1 + np.cos(np.pi / 4)) / 2, 0.5, (1 + np.cos(3 * np.pi / 4)) / 2])
    plateau = Plateau(1.0, factor=0.5, patience=2)
    rates = []
    for metric in [0.5, 0.4, 0.4, 0.4, 0.3, 0.35, 0.35]:
        rates.append(plateau.rate(len(rates) + 1))
        plateau.observe(metric)
    assert rates == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5]
    assert plateau.rate(8) == 0.25
    assert isinstance(make_schedule("cosine", 0.1, 10), Cosine)


def test_sgd_steps_match_their_closed_form(rng):
    p0 = rng.normal(size=(3, 2))
    grads = [rng.normal(size=(3, 2)) for _ in range(3)]
    lr, mu = 0.1, 0.9
    for nesterov in (False, True):
        p = {"W": p0.copy()}
        sgd = SGD(mu, nesterov)
        v = np.zeros_like(p0)
        expected = p0.copy()
        for g in grads:
            scale = sgd.grad_scale(lr)
            sgd.step(p, {"W": scale * g}, lr, scale=scale)
            v = mu * v - lr * g
            expected = expected + (mu * v - lr * g if nesterov else v)
            assert_allclose(p["W"], expected, rtol=1e-14)
    p = {"W": p0.copy()}
    SGD().step(p, {"W": lr * grads[0]}, lr, scale=lr)
    assert_allclose(p["W"], p0 - lr * grads[0], rtol=1e-15)
    for scale in (1.0, 3.0):  # any scale is divided out
        p = {"W": p0.copy()}
        SGD(mu, nesterov=True).step(p, {"W": scale * grads[0]}, lr, scale=scale)
        assert_allclose(p["W"], p0 + mu * (-lr * grads[0]) - lr * grads[0], rtol=1e-14)


# -- optimizers, dropout, max-norm, label smoothing, augmentation in fit -----


@pytest.fixture(scope="module")
def small_mnist(mnist):
    (X, y), (Xv, yv), _ = mnist
    return (X[:1000], y[:1000]), (Xv[:2000], yv[:2000])


def test_dropout_and_augmentation_reduce_overfitting(small_mnist):
    train, valid = small_mnist
    errors = {}
    for name, kwargs in {"plain": {}, "dropout": {"dropout": (0.2, 0.5)},
                         "augment": {"augment": "elastic"}}.items():
        net = MLP(784, 256, 10, dtype="float32", seed=0)
        history = fit(net, *train, valid=valid, epochs=40, batch_size=50, lr=0.05,
                      momentum=0.9, progress=False, **kwargs)
        errors[name] = history[-1].valid_error
        if name == "plain":
            assert history[-1].train_error == 0.0  # it does overfit 1,000 examples
    assert errors["dropout"] < errors["plain"] - 0.005, errors
    assert errors["augment"] < errors["plain"] - 0.02, errors


def test_adam_trains(moons):
    train, valid, _ = moons
    net = MLP(2, 64, 2, seed=0)
    history = fit(net, *train, valid=valid, epochs=40, lr=0.01, optimizer="adam",
                  progress=False)
    assert history[-1].valid_error < 0.05


def test_max_norm_and_label_smoothing_in_fit(moons):
    train, valid, _ = moons
    net = MLP(2, 64, 2, seed=0)
    fit(net, *train, valid=valid, epochs=20, lr=0.5, momentum=0.9, max_norm=0.5,
        progress=False)
    assert np.linalg.norm(net.W1, axis=1).max() <= 0.5 + 1e-6
    # smoothing keeps the predicted probabilities away from 0 and 1: with
    # eps = 0.2 the best a training point can get is 0.9 for its class
    sharp, smooth = MLP(2, 64, 2, seed=0), MLP(2, 64, 2, seed=0)
    fit(sharp, *train, epochs=30, lr=0.1, momentum=0.9, progress=False)
    fit(smooth, *train, epochs=30, lr=0.1, momentum=0.9, label_smoothing=0.2, progress=False)
    confidence = {name: net.predict_proba(train[0]).max(axis=1).mean()
                  for name, net in (("sharp", sharp), ("smooth", smooth))}
    assert confidence["smooth"] < 0.92 < confidence["sharp"], confidence


def test_sample_weight_in_fit(moons):
    (X, y), valid, _ = moons
    weights = np.where(y == 1, 10.0, 1.0)
    plain, weighted = MLP(2, 4, 2, seed=0), MLP(2, 4, 2, seed=0)
    fit(plain, X, y, epochs=5, progress=False)
    fit(weighted, X, y, epochs=5, sample_weight=weights, progress=False)
    assert (weighted.predict(X) == 1).mean() > (plain.predict(X) == 1).mean()


@pytest.mark.parametrize("kwargs", [
    {"optimizer": "adam", "lr": 0.001},
    {"dropout": (0.2, 0.5), "max_norm": 2.0, "label_smoothing": 0.1},
    {"augment": "shift,elastic"},
])
def test_resume_is_identical_with_every_option(small_mnist, tmp_path, kwargs):
    import os
    import signal

    from handprop.train import checkpoint

    train, valid = small_mnist
    args = dict(valid=valid, epochs=4, batch_size=50, progress=False, **kwargs)
    whole = MLP(784, 32, 10, dtype="float32", seed=0)
    h_whole = fit(whole, *train, **args)
    part = MLP(784, 32, 10, dtype="float32", seed=0)

    def stop(record):
        if record.epoch == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(checkpoint.Interrupted):
        fit(part, *train, checkpoint=tmp_path, on_epoch=stop, **args)
    resumed = MLP(784, 32, 10, dtype="float32", seed=9)
    h_resumed = fit(resumed, *train, resume=tmp_path, **args)
    assert _without_seconds(h_resumed) == _without_seconds(h_whole)
    for name in whole.params:
        assert np.array_equal(resumed.params[name], whole.params[name])


@pytest.mark.parametrize("kwargs,message", [
    ({"optimizer": "rmsprop"}, "optimizer must be one of 'sgd', 'adam', got 'rmsprop'"),
    ({"dropout": 1.0}, r"dropout must be a rate in \[0, 1\) .* got 1.0"),
    ({"dropout": (-0.1, 0.5)}, r"dropout must be a rate in \[0, 1\) .* got \(-0.1, 0.5\)"),
    ({"dropout": (0.1, 0.2, 0.3)}, r"or a pair \(input rate, hidden rate\), got \(0.1, 0.2, 0.3"),
    ({"max_norm": 0.0}, "max_norm must be a number > 0"),
    ({"label_smoothing": 2.0}, "label_smoothing"),
    ({"augment": "shift"}, "augmentation distorts 28 x 28 images, but the examples have 2"),
    ({"augment": 3}, "augment must be None"),
    ({"sample_weight": np.ones(3)}, r"sample_weight must have shape \(600,\)"),
])
def test_bad_training_options(moons, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fit(MLP(2, 5, 2, seed=0), *moons[0], progress=False, **kwargs)


def test_dropout_rates_of_any_number_type(moons):
    train, _, _ = moons
    a, b = MLP(2, 5, 2, seed=0), MLP(2, 5, 2, seed=0)
    fit(a, *train, epochs=2, dropout=np.float32(0.5), progress=False)
    fit(b, *train, epochs=2, dropout=(0, 0.5), progress=False)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def test_resume_copies_into_the_nets_own_arrays(moons, tmp_path):
    train, valid, _ = moons
    fit(MLP(2, (8, 4), 2, seed=0), *train, valid=valid, epochs=2, checkpoint=tmp_path,
        progress=False)
    net = MLP(2, (8, 4), 2, seed=0)
    arrays = dict(net.params)
    fit(net, *train, valid=valid, epochs=3, resume=tmp_path, force=True, progress=False)
    assert all(net.params[k] is arrays[k] for k in arrays)


def test_regression_early_stopping_watches_the_validation_loss():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    Y = np.column_stack([np.sin(X[:, 0]), X[:, 1] * X[:, 2]])
    net = MLP(3, (32, 16), 2, activation="tanh", output="identity", seed=0)
    history = fit(net, X[:200], Y[:200], valid=(X[200:], Y[200:]), epochs=200, lr=0.05,
                  momentum=0.9, batch_size=20, patience=5, progress=False)
    losses = history.column("valid_loss")
    # a regression pair's measure is R^2 (it was NaN, an error rate, before
    # each face carried regression): valid's is scikit-learn's r2_score
    assert history.measure == "r2" and history.columns[1] == "train_r2"
    assert np.array_equal(history.column("valid_r2"), history.column("valid_error"))
    best = history[history.best_epoch - 1]
    from sklearn.metrics import r2_score

    assert best.valid_error == pytest.approx(r2_score(Y[200:], net.predict(X[200:])), rel=1e-9)
    assert history.column("train_r2")[-1] > 0.9 > history.column("train_r2")[0]
    assert history.best_epoch == int(np.argmin(losses)) + 1
    assert "no better validation loss" in history.stop_reason
    assert losses.min() < 0.1 < losses[0]  # it learned
    from handprop.train.training import evaluate

    assert evaluate(net, X[200:], Y[200:])[1] == pytest.approx(losses.min(), rel=1e-12)


# -- live changes of a run (Runner.retune) ----------------------------------------


def _runner(**settings):
    from handprop.train.runner import Data, Runner
    from handprop.train.settings import RunSettings

    (X, y), valid, _ = moons_splits(n_train=100, n_valid=40, n_test=40, seed=0)
    net = MLP(2, (6,), 2, dtype=np.float64, seed=0)
    return net, Runner(net, RunSettings(**settings), Data.check(net, X, y, valid))


def test_retune_changes_only_the_tables_live_parameters_and_checks_them():
    net, runner = _runner(batch_size=10, lr=0.1, momentum=0.5, schedule="plateau")
    for bad, message in [({"epochs": 3}, "epochs cannot change while the run trains"),
                         ({"lr": 0}, "lr must be a number > 0"),
                         ({"momentum": 1.0}, "momentum must be a number in [0, 1)"),
                         ({"l2": [0.1, 0.2, 0.3]}, "l2 must be one lambda, or one per weight "
                                                    "matrix (2 for this net), got 3")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            runner.retune(**bad)
    assert runner.settings.lr == 0.1 and runner.optimizer.momentum == 0.5  # nothing changed
    with runner:
        runner.train(max_batches=3)
        runner.retune(lr=0.02, momentum=0.8, l1=0.001, batch_size=25)
        assert runner.in_epoch["first_rate"] == 0.02 and runner.sched.current == 0.02
        assert runner.optimizer.momentum == 0.8 and runner.step.penalty == \
            ElasticNet.per_matrix([0.001, 0.001], [0, 0])
        assert runner.n_batches == 10  # the epoch under way keeps its minibatches
        runner.train()
        assert runner.epoch == 1 and runner.n_batches == 4 and runner.steps_taken == 10
        runner.train()
    assert runner.steps_taken == 14 and runner.history[-1].lr == 0.02
    assert runner.record["run"]["lr"] == 0.02


def test_retune_leaves_fit_as_it_was():
    """A runner never retuned trains as fit always did: the same parameters
    as fit's, bit for bit."""
    net, runner = _runner(batch_size=10, lr=0.1, epochs=3)
    with runner:
        while not runner.finished:
            runner.train()
    (X, y), valid, _ = moons_splits(n_train=100, n_valid=40, n_test=40, seed=0)
    other = MLP(2, (6,), 2, dtype=np.float64, seed=0)
    fit(other, X, y, batch_size=10, lr=0.1, epochs=3, valid=valid)
    for k in net.params:
        assert np.array_equal(net.params[k], other.params[k]), k
