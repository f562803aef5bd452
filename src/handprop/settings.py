"""One frozen object that describes a training run: :class:`RunSettings`.

Every setting that decides what a run computes lives here, is validated
once, when the object is made, and is recorded from here: ``fit`` trains by
it, ``handprop train`` builds it from its options and writes it to run.json,
a sweep's trial builds it from the trial's hyper-parameters, and a
checkpoint stores it so that a resumed run can be compared with the one that
was stopped. What does not change the result (where data is read from and
output written to, a progress bar, the device) is not a setting.

>>> s = RunSettings(epochs=5, lr=0.05, momentum=0.9, dropout=0.5)
>>> s.dropout, s.penalty
((0.0, 0.5), ElasticNet())
>>> RunSettings.from_dict(s.to_dict()) == s
True
>>> RunSettings(lr=-1)
Traceback (most recent call last):
...
handprop.errors.InputError: lr must be a number > 0, got -1
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields

from . import validate
from .errors import InputError, InputTypeError
from .optimizers import OPTIMIZERS, SGD, Adam
from .penalty import ElasticNet
from .schedules import SCHEDULES, Schedule, make_schedule

__all__ = ["RunSettings"]


@dataclass(frozen=True)
class RunSettings:
    """The hyper-parameters of one training run.

    Parameters
    ----------
    epochs : int >= 1
    batch_size : int >= 1, K; the last minibatch of an epoch may be smaller
    lr : float > 0, the learning rate (the schedule's starting point)
    optimizer : "sgd" (with ``momentum`` and ``nesterov``) or "adam" (with
        ``betas`` and ``epsilon``); see :mod:`handprop.optimizers`
    momentum : float in [0, 1); nesterov : bool
    betas : (beta1, beta2), each in [0, 1); epsilon : float > 0
    schedule : "constant", "step", "cosine", "plateau" or a
        :class:`handprop.schedules.Schedule`
    penalty : ElasticNet (none by default), or a dict of its lambdas
    patience : int >= 1 or None. With a validation set, stop once the
        validation error (the loss, for identity outputs) has not improved
        for this many epochs, and restore the parameters of the best epoch.
    seed : int >= 0, seeds the shuffling and the dropout masks (from one
        generator, in that order), and the distortions (minibatch b of epoch
        e from a generator of its own, seeded by (seed, e, b)): the same seed
        gives the same run, resumed or not
    dropout : the dropout rate of the hidden layers, or (input rate, hidden
        rate); inverted dropout, so evaluation uses the net as it is
    max_norm : float > 0 or None: after every step, each row of each hidden
        layer's weights W1 ... WL whose L2 norm exceeds it is scaled back to it
    label_smoothing : eps in [0, 1) (softmax and logistic outputs)
    augment : None, a string of :class:`handprop.augment.Augmenter` kinds
        ("shift", "affine", "elastic", comma-separated), an Augmenter, or any
        callable ``(X_batch, rng) -> X_batch``
    """

    epochs: int = 10
    batch_size: int = 100
    lr: float = 0.1
    optimizer: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    epsilon: float = 1e-8
    schedule: str | Schedule = "constant"
    penalty: ElasticNet = field(default_factory=ElasticNet)
    patience: int | None = None
    seed: int = 0
    dropout: tuple[float, float] = (0.0, 0.0)
    max_norm: float | None = None
    label_smoothing: float = 0.0
    augment: object = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: the checked values replace the given ones
        set_(self, "epochs", validate.number("epochs", self.epochs, low=1, integer=True))
        set_(self, "batch_size", validate.number("batch_size", self.batch_size, low=1,
                                                 integer=True))
        set_(self, "lr", validate.number("lr", self.lr, low=0, low_open=True))
        validate.choice("optimizer", self.optimizer, OPTIMIZERS)
        if not (isinstance(self.betas, (tuple, list)) and len(self.betas) == 2):
            raise InputError(f"betas must be a pair (beta1, beta2), got {self.betas!r}")
        set_(self, "betas", tuple(self.betas))
        self.make_optimizer()  # checks momentum, nesterov, betas and epsilon
        set_(self, "momentum", float(self.momentum))
        set_(self, "nesterov", bool(self.nesterov))
        set_(self, "epsilon", float(self.epsilon))
        set_(self, "betas", tuple(float(b) for b in self.betas))
        if not isinstance(self.schedule, Schedule):
            validate.choice("schedule", self.schedule, SCHEDULES)
        if isinstance(self.penalty, dict):
            set_(self, "penalty", ElasticNet.from_dict(self.penalty))
        if self.penalty is None:
            set_(self, "penalty", ElasticNet())
        if not isinstance(self.penalty, ElasticNet):
            raise InputTypeError(f"penalty must be an ElasticNet or None, got "
                            f"{type(self.penalty).__name__}")
        if self.patience is not None:
            set_(self, "patience", validate.number("patience", self.patience, low=1,
                                                   integer=True))
        set_(self, "seed", validate.number("seed", self.seed, low=0, integer=True))
        set_(self, "dropout", validate.dropout_rates(self.dropout))
        if self.max_norm is not None:
            set_(self, "max_norm", validate.number("max_norm", self.max_norm, low=0,
                                                   low_open=True))
        set_(self, "label_smoothing", validate.rate("label_smoothing", self.label_smoothing))
        augment = self.augment
        if isinstance(augment, str):
            from .augment import Augmenter

            Augmenter(augment)  # a bad kind, or no SciPy, fails here
        elif augment is not None and not callable(augment):
            raise InputTypeError(f"augment must be None, a string of kinds, or a callable, got "
                            f"{type(augment).__name__}")

    # -- what the run is made of ----------------------------------------------

    def make_optimizer(self) -> SGD | Adam:
        """A fresh optimizer of these settings."""
        if self.optimizer == "sgd":
            return SGD(self.momentum, self.nesterov)
        return Adam(self.betas[0], self.betas[1], self.epsilon)

    def make_schedule(self) -> Schedule:
        """The learning-rate schedule, starting at ``lr`` (a copy of a given
        Schedule, so that a run never changes the settings)."""
        if isinstance(self.schedule, Schedule):
            return dataclasses.replace(self.schedule)
        return make_schedule(self.schedule, self.lr, self.epochs)

    def make_augmenter(self, d: int):
        """The callable that distorts minibatches of d features, or None."""
        from .augment import Augmenter

        augment = Augmenter(self.augment) if isinstance(self.augment, str) else self.augment
        if isinstance(augment, Augmenter) and augment.shape[0] * augment.shape[1] != d:
            h, w = augment.shape
            raise InputError(f"augmentation distorts {h} x {w} images, but the examples have "
                             f"{d} features, not {h * w}")
        return augment

    def replace(self, **changes) -> RunSettings:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    # -- JSON -------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Plain JSON: the penalty as its lambdas, a Schedule as its kind and
        state, an augmentation callable as its repr."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, ElasticNet):
                value = value.to_dict()
            elif isinstance(value, Schedule):
                value = {"kind": type(value).__name__, **value.state()}
            elif isinstance(value, tuple):
                value = list(value)
            elif f.name == "augment" and value is not None and not isinstance(value, str):
                value = repr(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, values: dict) -> RunSettings:
        """Settings from :meth:`to_dict`'s JSON (a recorded Schedule becomes
        its kind's name); a ValueError names what is wrong."""
        if not isinstance(values, dict):
            raise InputError(f"run settings must be a JSON object, got {type(values).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise InputError(f"unknown run settings {', '.join(unknown)}")
        values = dict(values)
        if isinstance(values.get("schedule"), dict):
            values["schedule"] = str(values["schedule"].get("kind", "")).lower()
        try:
            return cls(**values)
        except TypeError as exc:
            raise InputError(str(exc)) from None

    @classmethod
    def build(cls, settings: RunSettings | None = None, **options) -> RunSettings:
        """``settings`` (or the defaults) with ``options`` applied; an
        unknown option is a TypeError that lists the known ones."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise InputTypeError(f"unknown run setting{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(unknown)}; the settings are {', '.join(names)}")
        if settings is None:
            return cls(**options)
        if not isinstance(settings, RunSettings):
            raise InputTypeError(f"settings must be a RunSettings, got {type(settings).__name__}")
        return settings.replace(**options) if options else settings
