"""Learning-rate schedules: the rate for each epoch, or each minibatch.

A schedule is asked for the rate at a point of training (:meth:`Schedule.rate`),
given as a position in epochs: 1.0 at the start of the first epoch, 1.5
halfway through it. Schedules whose ``per_batch`` is True (cosine) are asked
before every minibatch, so that the rate decays smoothly even in a run of two
or three epochs; the others are asked once per epoch. After each epoch a
schedule is told the validation error (:meth:`Schedule.observe`), which only
reduce-on-plateau uses. Its state is a small dict of numbers, so that a
checkpoint can store it as JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..errors import InputError

__all__ = ["Schedule", "Constant", "Step", "Cosine", "Plateau", "make_schedule", "SCHEDULES"]


@dataclass
class Schedule:
    """Base: a constant rate ``lr``."""

    lr: float
    per_batch = False

    def rate(self, epoch: float) -> float:
        """The learning rate at position ``epoch`` (1.0 = start of epoch 1)."""
        return self.lr

    def observe(self, metric: float) -> None:
        """Told the epoch's validation error (or training loss) after it ends."""

    def state(self) -> dict:
        return asdict(self)

    def load_state(self, state: dict, *, keep: tuple[str, ...] = ()) -> None:
        """Take back :meth:`state` (a checkpoint's JSON), every field checked
        first: a ValueError names a field that is unknown, missing, or out of
        its range, and nothing changes. Fields named in ``keep`` keep their
        current values (a resumed run given new settings)."""
        if not isinstance(state, dict):
            raise ValueError(f"a schedule's state must be an object, got {state!r}"[:200])
        names = {f.name for f in fields(self)}
        if set(state) != names:
            raise ValueError(f"a {type(self).__name__} schedule's state must hold "
                             f"{', '.join(sorted(names))}, got {', '.join(sorted(state))}")
        checked = {name: _check_field(name, state[name]) for name in names}
        for name, value in checked.items():
            if name not in keep:
                setattr(self, name, value)


@dataclass
class Constant(Schedule):
    """lr for every epoch."""


@dataclass
class Step(Schedule):
    """lr * gamma ** floor((epoch - 1) / step_size): cut by gamma every step_size epochs."""

    step_size: int = 10
    gamma: float = 0.5

    def rate(self, epoch: float) -> float:
        return self.lr * self.gamma ** ((int(epoch) - 1) // self.step_size)


@dataclass
class Cosine(Schedule):
    """From lr at the start down to lr_min at the end of the last epoch, along
    half a cosine, updated before every minibatch:
    lr_min + (lr - lr_min) (1 + cos(pi (epoch - 1) / epochs)) / 2."""

    epochs: int = 10
    lr_min: float = 0.0
    per_batch = True

    def rate(self, epoch: float) -> float:
        progress = (epoch - 1) / max(self.epochs, 1)
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * progress))


@dataclass
class Plateau(Schedule):
    """Multiply the rate by ``factor`` when the observed metric has not
    improved for ``patience`` epochs in a row (never below ``min_lr``)."""

    factor: float = 0.5
    patience: int = 3
    min_lr: float = 0.0
    current: float | None = None  # the rate now; None until training starts
    best: float | None = None  # the best metric seen; None until one is
    bad_epochs: int = 0

    def rate(self, epoch: float) -> float:
        if self.current is None:
            self.current = self.lr
        return self.current

    def observe(self, metric: float) -> None:
        if self.current is None:
            self.current = self.lr
        if self.best is None or metric < self.best:
            self.best = metric
            self.bad_epochs = 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.current = max(self.current * self.factor, self.min_lr)
            self.bad_epochs = 0


#: Each state field's range: (integer, low, low_open, high, may be None).
_FIELDS = {
    "lr": (False, 0, True, None, False), "gamma": (False, 0, True, None, False),
    "lr_min": (False, 0, False, None, False), "min_lr": (False, 0, False, None, False),
    "factor": (False, 0, True, 1, False), "step_size": (True, 1, False, None, False),
    "epochs": (True, 1, False, None, False), "patience": (True, 1, False, None, False),
    "bad_epochs": (True, 0, False, None, False), "current": (False, 0, True, None, True),
    "best": (False, None, False, None, True),
}


def _check_field(name: str, value):
    integer, low, low_open, high, nullable = _FIELDS[name]
    if value is None and nullable:
        return None
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        kind = "an integer" if integer else "a finite number"
        raise ValueError(f"the schedule's {name} must be {kind}, got {value!r}"[:200])
    if (low is not None and (value < low or (low_open and value == low))) or (
            high is not None and value > high):
        raise ValueError(f"the schedule's {name} is out of range: {value!r}"[:200])
    return int(value) if integer else float(value)


SCHEDULES = ("constant", "step", "cosine", "plateau")


def make_schedule(schedule: str | Schedule, lr: float, epochs: int) -> Schedule:
    """A Schedule from a name (with its default settings) or an instance."""
    if isinstance(schedule, Schedule):
        return schedule
    if schedule == "constant":
        return Constant(lr)
    if schedule == "step":
        return Step(lr, step_size=max(1, epochs // 3), gamma=0.1 ** 0.5)
    if schedule == "cosine":
        return Cosine(lr, epochs=epochs)
    if schedule == "plateau":
        return Plateau(lr)
    raise InputError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)} "
                     f"or a handprop.train.schedules.Schedule")
