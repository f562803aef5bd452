"""Learning-rate schedules: the rate for each epoch.

A schedule is asked for the rate before each epoch (:meth:`Schedule.rate`)
and told the epoch's validation error afterwards (:meth:`Schedule.observe`),
which only reduce-on-plateau uses. Its state is a small dict of numbers, so
that a checkpoint can store it as JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["Schedule", "Constant", "Step", "Cosine", "Plateau", "make_schedule", "SCHEDULES"]


@dataclass
class Schedule:
    """Base: a constant rate ``lr``."""

    lr: float

    def rate(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (counted from 1)."""
        return self.lr

    def observe(self, metric: float) -> None:
        """Told the epoch's validation error (or training loss) after it ends."""

    def state(self) -> dict:
        return asdict(self)


@dataclass
class Constant(Schedule):
    """lr for every epoch."""


@dataclass
class Step(Schedule):
    """lr * gamma ** floor((epoch - 1) / step_size): cut by gamma every step_size epochs."""

    step_size: int = 10
    gamma: float = 0.5

    def rate(self, epoch: int) -> float:
        return self.lr * self.gamma ** ((epoch - 1) // self.step_size)


@dataclass
class Cosine(Schedule):
    """From lr at epoch 1 down to lr_min after the last epoch, along half a cosine:
    lr_min + (lr - lr_min) (1 + cos(pi (epoch - 1) / epochs)) / 2."""

    epochs: int = 10
    lr_min: float = 0.0

    def rate(self, epoch: int) -> float:
        progress = (epoch - 1) / max(self.epochs, 1)
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * progress))


@dataclass
class Plateau(Schedule):
    """Multiply the rate by ``factor`` when the observed metric has not
    improved for ``patience`` epochs in a row (never below ``min_lr``)."""

    factor: float = 0.5
    patience: int = 3
    min_lr: float = 0.0
    current: float | None = None
    best: float = math.inf
    bad_epochs: int = 0

    def rate(self, epoch: int) -> float:
        if self.current is None:
            self.current = self.lr
        return self.current

    def observe(self, metric: float) -> None:
        if self.current is None:
            self.current = self.lr
        if metric < self.best:
            self.best = metric
            self.bad_epochs = 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.current = max(self.current * self.factor, self.min_lr)
            self.bad_epochs = 0


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
    raise ValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)} "
                     f"or a handprop.schedules.Schedule")
