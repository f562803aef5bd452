"""One frozen object that describes a training run: :class:`RunSettings`.

Every setting that decides what a run computes lives here, is validated
once, when the object is made, by the parameter table of
:mod:`handprop.train.parameters` (whose defaults are the fields'), and is
recorded from here: ``fit`` trains by
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

from ..core.penalty import ElasticNet
from ..errors import InputError, InputTypeError
from .optimizers import OPTIMIZERS, SGD, Adam
from .parameters import PARAMETERS, RUN
from .schedules import Schedule, make_schedule

__all__ = ["RunSettings"]

#: The fields checked by the parameter table (l1 and l2 make ``penalty``).
_CHECKED_BY_TABLE = frozenset(RUN) - {"l1", "l2"}


def _default(name: str):
    return PARAMETERS[name].default


@dataclass(frozen=True)
class RunSettings:
    """The hyper-parameters of one training run.

    Parameters
    ----------
    epochs : int >= 1
    batch_size : int >= 1, K; the last minibatch of an epoch may be smaller
    lr : float > 0, the learning rate (the schedule's starting point)
    optimizer : "sgd" (with ``momentum`` and ``nesterov``) or "adam" (with
        ``betas`` and ``epsilon``); see :mod:`handprop.train.optimizers`
    momentum : float in [0, 1); nesterov : bool
    betas : (beta1, beta2), each in [0, 1); epsilon : float > 0
    schedule : "constant", "step", "cosine", "plateau" or a
        :class:`handprop.train.schedules.Schedule`
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
    augment : None, a string of :class:`handprop.data.augment.Augmenter` kinds
        ("shift", "affine", "elastic", comma-separated), an Augmenter, or any
        callable ``(X_batch, rng) -> X_batch``
    """

    epochs: int = _default("epochs")
    batch_size: int = _default("batch_size")
    lr: float = _default("lr")
    optimizer: str = _default("optimizer")
    momentum: float = _default("momentum")
    nesterov: bool = _default("nesterov")
    betas: tuple[float, float] = _default("betas")
    epsilon: float = _default("epsilon")
    schedule: str | Schedule = _default("schedule")
    penalty: ElasticNet = field(default_factory=ElasticNet)
    patience: int | None = _default("patience")
    seed: int = _default("seed")
    dropout: tuple[float, float] = _default("dropout")
    max_norm: float | None = _default("max_norm")
    label_smoothing: float = _default("label_smoothing")
    augment: object = _default("augment")

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: the checked values replace the given ones
        for f in fields(self):
            if f.name in _CHECKED_BY_TABLE and not (
                    f.name == "schedule" and isinstance(self.schedule, Schedule)):
                set_(self, f.name, PARAMETERS[f.name].check(getattr(self, f.name)))
        self.make_optimizer()  # the optimizer's own checks (nesterov needs momentum)
        if isinstance(self.penalty, dict):
            set_(self, "penalty", ElasticNet.from_dict(self.penalty))
        if self.penalty is None:
            set_(self, "penalty", ElasticNet())
        if not isinstance(self.penalty, ElasticNet):
            raise InputTypeError(f"penalty must be an ElasticNet or None, got "
                                 f"{type(self.penalty).__name__}")
        if isinstance(self.augment, str):
            from ..data.augment import Augmenter

            Augmenter(self.augment)  # a bad kind, or no SciPy, fails here

    # -- what the run is made of ----------------------------------------------

    def make_optimizer(self) -> SGD | Adam:
        """A fresh optimizer of these settings (each optimizer reads its own
        from them: :data:`handprop.train.optimizers.OPTIMIZERS`)."""
        return OPTIMIZERS[self.optimizer].from_settings(self)

    def make_schedule(self) -> Schedule:
        """The learning-rate schedule, starting at ``lr`` (a copy of a given
        Schedule, so that a run never changes the settings)."""
        if isinstance(self.schedule, Schedule):
            return dataclasses.replace(self.schedule)
        return make_schedule(self.schedule, self.lr, self.epochs)

    def make_augmenter(self, d: int):
        """The callable that distorts minibatches of d features, or None."""
        from ..data.augment import Augmenter

        augment = Augmenter(self.augment) if isinstance(self.augment, str) else self.augment
        if isinstance(augment, Augmenter) and augment.shape[0] * augment.shape[1] != d:
            h, w = augment.shape
            raise InputError(f"augmentation distorts {h} x {w} images, but the examples have "
                             f"{d} features, not {h * w}")
        return augment

    def check_net(self, net) -> None:
        """Refuse settings that do not fit ``net`` (an MLP): lambdas for
        weight matrices it lacks, label smoothing of regression targets,
        distortions of images of another size. A ValueError says which."""
        net.check_penalty(self.penalty)
        if self.label_smoothing:
            net.check_options(1, label_smoothing=self.label_smoothing)
        self.make_augmenter(net.d)

    def memory_needed(self, sizes, dtype, n_examples: int) -> int:
        """Bytes, roughly, that training a net of layer ``sizes`` (d, d_1,
        ..., m) in ``dtype`` takes beyond the data: the parameters, their
        gradients, the rollback snapshot, the optimizer's state and early
        stopping's copy, and the activations of a minibatch and of an
        evaluation chunk. Checked before anything is allocated."""
        import numpy as np

        item = np.dtype(dtype).itemsize
        sizes = [int(s) for s in sizes]
        n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        copies = 3  # the parameters, their gradients, the snapshot
        if self.optimizer == "adam":
            copies += 3  # two moments and a scratch array
        elif self.momentum:
            copies += 2 if self.nesterov else 1
        if self.patience is not None:
            copies += 1
        rows = min(self.batch_size, n_examples) + min(2048, n_examples)
        widest = max(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        # the activations, their derivatives and the deltas of each layer;
        # the float64 draw of the widest matrix at initialization
        return copies * n_params * item + 3 * rows * sum(sizes) * item + 8 * widest

    def check_memory(self, sizes, dtype, n_examples: int) -> None:
        """Refuse, before anything is allocated, a run whose
        :meth:`memory_needed` exceeds what this process may use."""
        from ..files import memory_limit

        need = self.memory_needed(sizes, dtype, n_examples)
        limit, what = memory_limit()
        if need > limit:
            hidden = ",".join(str(int(s)) for s in list(sizes)[1:-1])
            raise InputError(f"training a net of hidden sizes {hidden} on {int(sizes[0])} "
                             f"inputs would take about {need / 2**30:.1f} GiB, more than "
                             f"{what}: try smaller hidden sizes or a smaller batch size")

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
