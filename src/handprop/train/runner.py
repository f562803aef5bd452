"""The epoch runner: one training run, epoch by epoch or a few minibatches at
a time, around the one training step.

:class:`Runner` owns what a run is besides its minibatch steps:

- the **history**, one :class:`~handprop.train.history.EpochRecord` per epoch;
- **early stopping**: the best epoch's parameters, kept and restored;
- the **rollback on divergence**: a minibatch whose loss is not finite makes
  no update, and the parameters go back to the end of the last good epoch;
- the **device copies**: the data and the parameters copied to a GPU once,
  and the net's NumPy arrays given the parameters after every epoch;
- its **state** (:meth:`Runner.save` and :meth:`Runner.restore`): what a
  checkpoint holds, so that a resumed run is bit for bit the one that was
  never stopped.

``fit`` (:mod:`handprop.train.training`) trains through it a whole epoch at
a time, with a log, checkpoints and signals; the playground a few minibatches
per request. The estimators keep scikit-learn's own epoch rules, and share
its device copies (:class:`handprop.backend.DeviceCopy`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .._version import __version__
from ..backend import DeviceCopy, resolve_device, to_numpy
from ..core.network import MLP, Workspace, data_loss, forward
from ..errors import InputError, InputTypeError
from . import checkpoint as ckpt
from .history import Diverged, EpochRecord, History
from .settings import RunSettings
from .step import EpochTotals, Step

__all__ = ["Data", "Runner", "evaluate_arrays"]


@dataclass
class Data:
    """The checked training data: X (n, d), T (the targets, as the net's pair
    checks them), optional sample weights (n,), and the (X, T) pairs of valid
    and test, or None."""

    X: np.ndarray
    T: np.ndarray
    weights: np.ndarray | None
    valid: tuple | None
    test: tuple | None

    @classmethod
    def check(cls, net: MLP, X, y, valid=None, test=None, sample_weight=None) -> Data:
        X = net.check_X(X)
        T = net.check_y(y, X.shape[0])
        if sample_weight is not None:
            sample_weight = net.check_options(X.shape[0], sample_weight=sample_weight)[
                "sample_weight"]
        return cls(X, T, sample_weight, _check_split(net, valid, "valid"),
                   _check_split(net, test, "test"))

    def fingerprints(self) -> dict:
        return {"train": ckpt.fingerprint(self.X, self.T),
                "valid": ckpt.fingerprint(*self.valid) if self.valid else None,
                "test": ckpt.fingerprint(*self.test) if self.test else None,
                "sample_weight": None if self.weights is None else ckpt.fingerprint(
                    self.weights[:, None], np.zeros(0))}


def _check_split(net: MLP, split, name: str):
    if split is None:
        return None
    if not (isinstance(split, (tuple, list)) and len(split) == 2):
        raise InputTypeError(f"{name} must be a pair (X, y), got {type(split).__name__}")
    X = net.check_X(split[0])
    return X, net.check_y(split[1], X.shape[0])


def evaluate_arrays(net: MLP, params: dict, X, T, work: Workspace) -> tuple[float, float]:
    """The pair's measure (error rate or R^2) and the mean loss of ``params``
    on checked X (n, d) and T, ``work``'s rows at a time (NumPy or CuPy, as
    ``params``)."""
    chunk = work.X.shape[0]
    sums = None
    total = 0.0
    pair = net.pair
    for start in range(0, len(X), chunk):
        Xc, Tc = X[start:start + chunk], T[start:start + chunk]
        cache = forward(params, Xc, net.activation, pair, out=work.cache(len(Xc)))
        part = pair.tally(cache.o_a, cache.o_s, Tc)
        sums = part if sums is None else sums + part
        total += data_loss(pair, cache.o_a, Tc) * len(Xc)
    return pair.score(sums, len(X)), total / len(X)


class Runner:
    """One training run of ``net`` by ``settings`` on ``data``.

    Parameters
    ----------
    net : MLP, trained in place (its arrays are updated, never replaced)
    settings : RunSettings, already validated
    data : :class:`Data`
    device : "cpu", "cuda" or "cuda:N"

    Attributes
    ----------
    epoch : the last finished epoch (0 before the first)
    history : History of the finished epochs
    finished : None while the run goes on, else why it stopped
    in_epoch : None between epochs; else the epoch under way: its order of
        the examples, the next minibatch, its sums so far, its seconds and
        its rate

    Use it as a context manager (it opens the step's threads and silences
    overflow warnings, which divergence reports instead).
    """

    def __init__(self, net: MLP, settings: RunSettings, data: Data, *,
                 device: str = "cpu") -> None:
        settings.check_net(net)
        settings.check_memory(net.sizes, net.dtype, len(data.X))  # before the buffers
        augment = settings.make_augmenter(net.d)
        if settings.patience is not None and data.valid is None:
            raise InputError("patience (early stopping) needs a validation set: pass "
                             "valid=(X, y)")
        self.net, self.settings, self.data, self.pair = net, settings, data, net.pair
        # what a resumed run must match
        self.record = {"net": net.spec(), "run": settings.to_dict(),
                       "data": data.fingerprints()}
        self.optimizer = settings.make_optimizer()
        self.sched = settings.make_schedule()
        self.rng = np.random.default_rng(settings.seed)
        self.epoch = 0
        self.history = History(measure=self.pair.measure)
        self.best_score = math.inf
        self.best_epoch: int | None = None
        self.best_params: dict[str, np.ndarray] | None = None
        self.in_epoch: dict | None = None
        self.finished: str | None = None
        xp = resolve_device(device)
        self.device = DeviceCopy(net.params, xp)
        self.device.adopt(self.optimizer)
        put = self.device.put
        self.valid = None if data.valid is None else tuple(put(a) for a in data.valid)
        self.test = None if data.test is None else tuple(put(a) for a in data.test)
        self.step = Step(net, self.device.params, put(data.X), put(data.T),
                         optimizer=self.optimizer, batch_size=settings.batch_size,
                         penalty=settings.penalty, dropout=settings.dropout,
                         max_norm=settings.max_norm, label_smoothing=settings.label_smoothing,
                         sample_weight=put(data.weights), rng=self.rng, augment=augment,
                         seed=settings.seed, host_X=data.X)
        self.n_batches = self.step.n_batches
        self.steps_before = 0  # the minibatch steps of the finished epochs
        self.pending_batch_size: int | None = None  # a new K, from the next epoch
        self.eval_work = Workspace(net.sizes, min(2048, max(len(data.X), 1)), net.dtype,
                                   net.pair, xp)
        # the end of the last good epoch, for a rollback
        self.snapshot = {k: v.copy() for k, v in self.device.params.items()}

    def __enter__(self) -> Runner:
        self.errstate = np.errstate(over="ignore", invalid="ignore")
        self.errstate.__enter__()
        self.step.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.step.__exit__(*exc)
        self.errstate.__exit__(*exc)

    @property
    def steps_taken(self) -> int:
        """Minibatch steps taken so far (every finished epoch's, and this one's)."""
        return self.steps_before + (self.in_epoch["batch"] if self.in_epoch else 0)

    # -- live changes -----------------------------------------------------------

    def retune(self, **changes) -> dict:
        """Change parameters of the run as it trains: those the parameter
        table marks ``live`` (the learning rate, momentum, the L1 and L2
        lambdas, the minibatch size), by their table names, each checked by
        the table; an InputError names a bad value or a parameter that
        cannot change mid-run, and then nothing changes.

        The learning rate is the schedule's starting point (the epoch under
        way continues at the new rate), the momentum the optimizer's, the
        lambdas the step's penalty, from the next minibatch on. A new
        minibatch size changes how the examples are cut, so it takes effect
        at the start of the next epoch (now, between epochs).

        Returns the changes as they were applied, each checked value by name.
        """
        from .parameters import PARAMETERS, per_matrix

        fixed = sorted(n for n in changes if n not in PARAMETERS or not PARAMETERS[n].live)
        if fixed:
            live = ", ".join(n for n, p in PARAMETERS.items() if p.live)
            raise InputError(f"{', '.join(map(str, fixed))} cannot change while the run trains "
                             f"(only {live} can): start a new run")
        n_weights = self.net.L + 1
        checked = {n: PARAMETERS[n].check(v, n_weights=n_weights) for n, v in changes.items()}
        fields = {n: v for n, v in checked.items() if n not in ("l1", "l2")}
        if "l1" in checked or "l2" in checked:
            pen = self.settings.penalty
            old = [[pen.lambdas(f"W{k}")[i] for k in range(1, n_weights + 1)] for i in (0, 1)]
            l1 = checked.get("l1", old[0])
            l2 = checked.get("l2", old[1])
            fields["penalty"] = type(pen).per_matrix(per_matrix("l1", l1, n_weights),
                                                     per_matrix("l2", l2, n_weights))
        settings = self.settings.replace(**fields)  # the optimizer's checks too
        settings.check_net(self.net)
        if "lr" in fields:
            old_lr, new_lr = self.settings.lr, settings.lr
            self.sched.lr = new_lr
            if getattr(self.sched, "current", None) is not None:  # a plateau's cut rate
                self.sched.current *= new_lr / old_lr
            if self.in_epoch is not None:
                self.in_epoch["first_rate"] = self.sched.rate(self.epoch + 1)
        if "momentum" in fields and hasattr(self.optimizer, "momentum"):
            self.optimizer.momentum = settings.momentum
        if "penalty" in fields:
            self.step.retune(penalty=settings.penalty)
        if "batch_size" in fields:
            self.pending_batch_size = settings.batch_size
            if self.in_epoch is None:
                self._take_batch_size()
        self.settings = settings
        self.record["run"] = settings.to_dict()
        return checked

    def go_on_after_divergence(self) -> None:
        """After :class:`Diverged` (the parameters restored to the end of the
        last good epoch), let the run go on, with settings retuned: the
        optimizer's state (velocity, moments), which the diverged minibatches
        left non-finite, starts afresh."""
        self.optimizer = self.settings.make_optimizer()
        self.device.adopt(self.optimizer)
        self.step.optimizer = self.optimizer
        self.history.stop_reason = ""

    def _take_batch_size(self) -> None:
        if self.pending_batch_size is not None:
            self.step.retune(batch_size=self.pending_batch_size)
            self.n_batches = self.step.n_batches
            self.pending_batch_size = None

    # -- training -------------------------------------------------------------

    def train(self, *, max_batches: int | None = None, after_batch=None) -> EpochRecord | None:
        """Train the epoch under way (a new one if none is), from its next
        minibatch: all of it, or ``max_batches`` minibatches, or until
        ``after_batch(b)`` returns True.

        Returns the epoch's record when it ended (and was recorded, with
        early stopping and the schedule told), else None: the epoch stays
        under way. Raises Diverged, the parameters rolled back.
        """
        epoch = self.epoch + 1
        part = self.in_epoch
        if part is None:
            self._take_batch_size()
            part = self.in_epoch = {
                "order": self.rng.permutation(len(self.data.X)), "batch": 0, "tally": None,
                "loss_sum": 0.0, "seconds": 0.0, "first_rate": self.sched.rate(epoch)}
        start_time = time.perf_counter() - part["seconds"]
        self.step.start_epoch(epoch, part["order"], part["batch"])
        rate = self._rates(epoch, part)
        budget = [max_batches]

        def after(b):
            stop = after_batch is not None and after_batch(b) is True
            if budget[0] is not None:
                budget[0] -= 1
                stop = stop or budget[0] <= 0
            return stop

        totals = self.step.train_epoch(rate, totals=EpochTotals(
            batch=part["batch"], seen=min(part["batch"] * self.step.batch_size,
                                          len(self.data.X)),
            tally=part["tally"], loss_sum=part["loss_sum"]), after_batch=after)
        part.update(batch=totals.batch, tally=totals.tally, loss_sum=totals.loss_sum,
                    seconds=time.perf_counter() - start_time)
        if totals.diverged:
            b, loss, lr = totals.diverged
            self._rollback(f"the loss became {loss} at epoch {epoch}, minibatch {b + 1} of "
                           f"{self.n_batches} (lr = {lr:g})")
        if totals.batch < self.n_batches:  # stopped within the epoch
            return None
        xp = self.device.xp
        if not all(bool(xp.all(xp.isfinite(p))) for p in self.device.params.values()):
            self._rollback(f"the parameters became infinite in epoch {epoch} "
                           f"(lr = {part['first_rate']:g})")
        for k, v in self.device.params.items():
            self.snapshot[k][...] = v
        self.device.to_host()
        record = self._record(epoch, part, time.perf_counter() - start_time)
        self.end_epoch(record)
        return record

    def _rates(self, epoch: int, part: dict):
        sched, nb = self.sched, self.n_batches
        if sched.per_batch:
            return lambda b: sched.rate(epoch + b / nb)
        return lambda b: part["first_rate"]

    def _rollback(self, what: str):
        """Return to the end of the last good epoch and raise Diverged."""
        self.device.load(self.snapshot)
        self.in_epoch = None
        message = (f"training diverged: {what}; the parameters are restored to the end of "
                   f"epoch {self.epoch}. {self._advice()}")
        self.history.stop_reason = message
        raise Diverged(message, self.history)

    def _advice(self) -> str:
        """What to try after a divergence: a lambda far too large, or else
        the learning rate."""
        big = [f"{k} = {v:g}" for k, v in self.settings.penalty.to_dict().items() if v > 1e3]
        if big:
            return f"The penalty is huge ({', '.join(big)}): try a smaller lambda."
        return "Try a smaller learning rate."

    def _record(self, epoch: int, part: dict, seconds: float) -> EpochRecord:
        nan2 = (math.nan, math.nan)
        net, params = self.net, self.device.params
        v = evaluate_arrays(net, params, *self.valid, self.eval_work) if self.valid else nan2
        t = evaluate_arrays(net, params, *self.test, self.eval_work) if self.test else nan2
        n = len(self.data.X)
        train = self.pair.score(part["tally"], n) if part["tally"] is not None else math.nan
        return EpochRecord(epoch, train, part["loss_sum"] / n, *v, *t, part["first_rate"],
                           seconds)

    def end_epoch(self, record: EpochRecord) -> None:
        """Record a finished epoch: the history, the schedule, early stopping
        (which watches the validation error, or the validation loss of a
        regression pair), and the run's end."""
        self.history.append(record)
        self.steps_before += self.n_batches
        self.epoch = record.epoch
        self.in_epoch = None
        self._take_batch_size()
        score = record.valid_error if self.pair.classifies else record.valid_loss
        self.sched.observe(score if not math.isnan(score) else record.train_loss)
        patience = self.settings.patience
        if patience is not None:
            if score < self.best_score:
                self.best_score, self.best_epoch = score, record.epoch
                self.best_params = {k: v.copy() for k, v in self.net.params.items()}
            elif record.epoch - self.best_epoch >= patience:
                what = "error" if self.pair.classifies else "loss"
                self.finished = (f"early stopping: no better validation {what} for "
                                 f"{patience} epochs after epoch {self.best_epoch}")
        if self.finished is None and record.epoch >= self.settings.epochs:
            self.finished = f"finished {self.settings.epochs} epochs"

    def finish(self) -> History:
        """The history, the net holding the best epoch's parameters when early
        stopping was on."""
        if self.settings.patience is not None and self.best_params is not None:
            self.device.load(self.best_params)
            self.history.best_epoch = self.best_epoch
        self.history.stop_reason = self.finished or self.history.stop_reason
        return self.history

    def sync(self) -> None:
        """Give the net's arrays the parameters as they are now (mid-epoch too)."""
        self.device.to_host()

    # -- checkpoints ------------------------------------------------------------

    def save(self, folder):
        """Write the run's whole state as the checkpoint of ``folder``."""
        self.sync()
        arrays = {f"param_{k}": v for k, v in self.net.params.items()}
        arrays.update({f"opt_{k}": to_numpy(v) for k, v in self.optimizer.state().items()})
        if self.best_params is not None:
            arrays.update({f"best_{k}": v for k, v in self.best_params.items()})
        part = None
        if self.in_epoch is not None:
            arrays["order"] = self.in_epoch["order"]
            part = {k: v for k, v in self.in_epoch.items() if k != "order"}
            part["tally"] = None if part["tally"] is None else part["tally"].tolist()
        meta = {
            "handprop_version": __version__,
            "settings": self.record,
            "epoch": self.epoch,
            "history": self.history.to_dicts(),
            "finished": self.finished,
            "rng": self.rng.bit_generator.state,
            "schedule": self.sched.state(),
            "best": {"score": None if math.isinf(self.best_score) else self.best_score,
                     "epoch": self.best_epoch},
            "in_epoch": part,
        }
        return ckpt.save(folder, arrays, meta)

    def restore(self, folder, force: bool = False) -> None:
        """Continue the run saved in ``folder``: every part of its checkpoint
        checked against this run before any is used."""
        diffs = []

        def expect(meta: dict):
            """Compare the settings, then say which arrays may be read: all
            before a single array is."""
            saved = meta.get("settings")
            if not isinstance(saved, dict) or not isinstance(saved.get("net"), dict):
                raise InputError(f"{ckpt.path_in(folder)}: a damaged checkpoint: it does not "
                                 f"record its run's settings")
            if isinstance(saved.get("run"), dict):
                # a setting added since the checkpoint was written is at its
                # default there: the run it records had no other value
                defaults = RunSettings().to_dict()
                saved = {**saved, "run": {**{k: v for k, v in defaults.items()
                                             if k not in saved["run"]}, **saved["run"]}}
            diffs.extend(ckpt.differences(saved, self.record))
            if diffs and not force:
                raise ckpt.ResumeMismatch(
                    f"cannot resume {ckpt.path_in(folder)}: it was started with other "
                    f"settings: {'; '.join(diffs)} (force=True, or --force, resumes anyway)")
            if saved["net"] != self.record["net"]:
                raise InputError(f"cannot resume {ckpt.path_in(folder)} with another net: its "
                                 f"parameters are those of {saved['net']}; train again")
            return self._checkpoint_arrays()

        arrays, meta = ckpt.load(folder, expect)
        try:
            self._restore_state(arrays, meta, force)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise InputError(f"{ckpt.path_in(folder)}: a damaged checkpoint ({exc}); it "
                             f"cannot be resumed: train again, or resume another "
                             f"checkpoint") from None
        if force and diffs:
            self.finished = None  # new settings may extend a finished run

    def _checkpoint_arrays(self) -> tuple[dict, dict]:
        """The arrays a checkpoint of this run may hold, with their shapes:
        (required, optional) for :func:`handprop.files.read_archive`."""
        net = self.net
        shapes = net.shapes()
        required = {f"param_{k}": (s, net.dtype) for k, s in shapes.items()}
        optional = {"order": ((len(self.data.X),), np.int64)}
        for k, s in self.optimizer.state_spec(shapes).items():
            optional[f"opt_{k}"] = ((), np.int64) if s is None else (s, net.dtype)
        optional.update({f"best_{k}": (s, net.dtype) for k, s in shapes.items()})
        return required, optional

    def _restore_state(self, arrays: dict, meta: dict, force: bool) -> None:
        """Every part of the state, checked before it is used (a checkpoint
        can be edited: its checksums only prove it was not damaged by chance)."""
        n = len(self.data.X)
        epoch = meta["epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        history = History.from_dicts(meta["history"], measure=self.pair.measure)
        if len(history) != epoch or [r.epoch for r in history] != list(range(1, epoch + 1)):
            raise ValueError(f"{len(history)} epochs of history for epoch {epoch}")
        for r in history:
            if not (math.isfinite(r.train_loss) and math.isfinite(r.lr) and r.lr > 0
                    and math.isfinite(r.seconds) and r.seconds >= 0):
                raise ValueError(f"epoch {r.epoch}'s record holds a loss, rate or time that "
                                 f"is not a finite number in range")
        finished = meta.get("finished")
        if finished is not None and not isinstance(finished, str):
            raise ValueError("finished must be a string or null")
        best = meta["best"]
        score, best_epoch = best["score"], best["epoch"]
        if not (score is None or (_is_number(score) and math.isfinite(score))) or not (
                best_epoch is None or (isinstance(best_epoch, int)
                                       and not isinstance(best_epoch, bool)
                                       and 1 <= best_epoch <= epoch)):
            raise ValueError(f"bad early-stopping record {best!r}"[:200])
        part = meta.get("in_epoch")
        if part is not None:
            part = _checked_part(part, arrays.get("order"), n, self.n_batches, self.pair)
        self.sched.load_state(meta["schedule"], keep=("lr", "epochs") if force else ())
        self.rng.bit_generator.state = _checked_rng(meta["rng"], self.rng)
        opt = {k[len("opt_"):]: v for k, v in arrays.items() if k.startswith("opt_")}
        steps = epoch * self.n_batches + (part["batch"] if part else 0)
        self.optimizer.load_state(opt, self.net.shapes(), steps)
        self.device.adopt(self.optimizer)
        # copied into the net's own arrays, which outside references keep
        self.net.params = {k[len("param_"):]: v for k, v in arrays.items()
                           if k.startswith("param_")}
        self.device.load(self.net.params)
        for k, v in self.device.params.items():
            self.snapshot[k][...] = v
        best_params = {k[len("best_"):]: v for k, v in arrays.items() if k.startswith("best_")}
        if best_params and set(best_params) != set(self.net.param_names):
            raise ValueError("the best epoch's parameters are incomplete")
        self.best_params = best_params or None
        self.epoch, self.history, self.finished = epoch, history, finished
        self.steps_before = epoch * self.n_batches
        self.best_score = math.inf if score is None else float(score)
        self.best_epoch = best_epoch
        self.in_epoch = part


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _checked_rng(state, rng: np.random.Generator) -> dict:
    """A generator state that this generator's bit generator accepts, tried
    on a copy first."""
    if not isinstance(state, dict):
        raise ValueError("the random generator's state must be an object")
    trial = type(rng.bit_generator)()
    try:
        trial.state = state
    except (TypeError, ValueError, OverflowError, KeyError) as exc:
        raise ValueError(f"bad random generator state ({exc})"[:200]) from None
    return state


def _checked_part(part, order, n: int, n_batches: int, pair) -> dict:
    """A stopped epoch's record, checked: its figures are finite numbers, its
    minibatch is in range, and its order is a permutation of the n examples.
    A handprop 0.2 checkpoint counts ``wrong``, which becomes the tally."""
    if isinstance(part, dict) and "wrong" in part and "tally" not in part:
        part = dict(part)
        wrong = part.pop("wrong")
        part["tally"] = [wrong] if (_is_number(wrong) and pair.classifies) else wrong
    keys = {"batch", "tally", "loss_sum", "seconds", "first_rate"}
    if not isinstance(part, dict) or set(part) != keys:
        raise ValueError(f"bad record of the stopped epoch {part!r}"[:200])
    batch = part["batch"]
    if isinstance(batch, bool) or not isinstance(batch, int) or not 0 <= batch < n_batches:
        raise ValueError(f"minibatch {batch!r} of {n_batches} is out of range")
    for key in ("loss_sum", "seconds", "first_rate"):
        if not _is_number(part[key]) or not math.isfinite(part[key]):
            raise ValueError(f"{key} must be a finite number, got {part[key]!r}"[:200])
    if part["seconds"] < 0 or part["first_rate"] <= 0 or part["loss_sum"] < 0:
        raise ValueError("the stopped epoch's time, rate or loss is out of range")
    tally = part["tally"]
    if tally is not None:
        if not (isinstance(tally, list) and tally and all(
                _is_number(v) and math.isfinite(v) for v in tally)):
            raise ValueError(f"bad tally of the stopped epoch {tally!r}"[:200])
        tally = np.array(tally, dtype=np.float64)
        if pair.classifies and (len(tally) != 1 or not 0 <= tally[0] <= n):
            raise ValueError(f"{tally[0]!r} misclassified of {n} examples"[:200])
    elif batch:
        raise ValueError("a stopped epoch with minibatches trained has no tally")
    if order is None or not np.array_equal(np.sort(order), np.arange(n)):
        raise ValueError(f"the stopped epoch's order is not a permutation of the {n} examples")
    return {**part, "tally": tally, "order": order}

