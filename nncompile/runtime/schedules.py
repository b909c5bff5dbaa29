"""Learning-rate schedules (the `schedule = ...` train setting).

The learning rate is a graph input (`lr`), so a schedule only changes the
number the Trainer feeds each step (`trainer.lr`); nothing is recompiled.

    sched = make_schedule(train.schedule, base_lr=train.optimizer.params["lr"], epochs=epochs)
    for epoch in range(epochs):
        trainer.lr = sched.lr_for_epoch(epoch)      # before the epoch's first batch
        ...                                          # train, validate -> logs
        sched.on_epoch_end(epoch, logs)              # reduce_on_plateau reacts here

Epochs are 0-based. Semantics (base = the optimizer's lr, E = epochs):

  constant (no schedule)     base
  step(every, factor)        base * factor ** (epoch // every)
  exponential(rate, every)   base * rate ** (epoch // every)
  cosine(warmup, min_lr)     epoch < warmup: base * (epoch + 1) / warmup  (linear up to base)
                             then min_lr + (base - min_lr) * (1 + cos(pi * t / T)) / 2
                             with t = epoch - warmup, T = E - warmup  (reaches min_lr at the end)
  reduce_on_plateau(...)     Keras ReduceLROnPlateau: after `patience` epochs in which the
                             monitored value did not beat the best by more than min_delta,
                             lr = max(lr * factor, min_lr); then `cooldown` epochs without
                             counting. NaN/Inf never improve.

Every schedule has `state_dict()` / `load_state_dict()` (plain JSON-able
values) so a resumed run continues with the same learning rate. The
arguments, their ranges and defaults are the rows of
`frontend/specs/training.py: SCHEDULES`; a schedule made by hand (tests, the
Python API) gets the missing defaults from them.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional

from ..frontend.specs.training import SCHEDULES, resolve_mode
from .callbacks import improves

__all__ = ["Schedule", "Constant", "StepDecay", "ExponentialDecay", "CosineDecay", "ReduceOnPlateau",
           "make_schedule"]


class Schedule:
    """Base: a learning rate per epoch; `on_epoch_end` may change it."""

    kind = "constant"

    def __init__(self, base_lr: float, epochs: int):
        self.base_lr = float(base_lr)
        self.epochs = int(epochs)

    def lr_for_epoch(self, epoch: int) -> float:
        raise NotImplementedError

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float]) -> float:
        """Called after each epoch with its logs; returns the learning rate of the next epoch."""
        return self.lr_for_epoch(epoch + 1)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        if d.get("kind", self.kind) != self.kind:
            raise ValueError(f"schedule state is for {d.get('kind')!r}, not {self.kind!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_lr={self.base_lr}, epochs={self.epochs})"

    def _args(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The schedule's arguments: `given`, with its spec's defaults for the rest."""
        return SCHEDULES[self.kind].complete(given)


class Constant(Schedule):
    kind = "constant"

    def lr_for_epoch(self, epoch: int) -> float:
        return self.base_lr


class StepDecay(Schedule):
    kind = "step"

    def __init__(self, base_lr: float, epochs: int, **args):
        super().__init__(base_lr, epochs)
        a = self._args(args)
        self.every, self.factor = int(a["every"]), float(a["factor"])

    def lr_for_epoch(self, epoch: int) -> float:
        return self.base_lr * self.factor ** (max(0, epoch) // self.every)


class ExponentialDecay(Schedule):
    kind = "exponential"

    def __init__(self, base_lr: float, epochs: int, **args):
        super().__init__(base_lr, epochs)
        a = self._args(args)
        self.rate, self.every = float(a["rate"]), int(a["every"])

    def lr_for_epoch(self, epoch: int) -> float:
        return self.base_lr * self.rate ** (max(0, epoch) // self.every)


class CosineDecay(Schedule):
    kind = "cosine"

    def __init__(self, base_lr: float, epochs: int, **args):
        super().__init__(base_lr, epochs)
        a = self._args(args)
        self.warmup, self.min_lr = int(a["warmup"]), float(a["min_lr"])

    def lr_for_epoch(self, epoch: int) -> float:
        epoch = max(0, epoch)
        if epoch < self.warmup:
            return self.base_lr * (epoch + 1) / self.warmup
        span = max(1, self.epochs - self.warmup)
        t = min(epoch - self.warmup, span)
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t / span))


class ReduceOnPlateau(Schedule):
    kind = "reduce_on_plateau"

    def __init__(self, base_lr: float, epochs: int, *, monitor: str, **args):
        super().__init__(base_lr, epochs)
        a = self._args(args)
        self.monitor, self.mode = monitor, resolve_mode(a["mode"], monitor)
        self.factor, self.patience = float(a["factor"]), int(a["patience"])
        self.min_delta, self.min_lr, self.cooldown = float(a["min_delta"]), float(a["min_lr"]), int(a["cooldown"])
        self.lr = self.base_lr
        self.best: Optional[float] = None
        self.wait = 0
        self.cooldown_left = 0
        self.reductions: list[tuple[int, float]] = []   # (epoch, new lr)

    def lr_for_epoch(self, epoch: int) -> float:
        return self.lr

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float]) -> float:
        if self.monitor not in logs:
            raise KeyError(f"reduce_on_plateau monitors {self.monitor!r}, which is not in the logs "
                           f"({', '.join(logs)})")
        value = float(logs[self.monitor])
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if improves(value, self.best, self.mode, self.min_delta):
            self.best, self.wait = value, 0
        elif self.cooldown_left == 0:
            self.wait += 1
            if self.wait >= self.patience:        # wait >= 1 here: patience 0 reduces at once
                new = max(self.lr * self.factor, self.min_lr)
                if new < self.lr:
                    self.lr = new
                    self.reductions.append((epoch, new))
                    self.cooldown_left = self.cooldown
                    self.wait = 0
        return self.lr

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "lr": self.lr, "best": self.best, "wait": self.wait,
                "cooldown_left": self.cooldown_left, "reductions": [list(r) for r in self.reductions]}

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        super().load_state_dict(d)
        self.lr = float(d["lr"])
        self.best = None if d.get("best") is None else float(d["best"])
        self.wait = int(d.get("wait", 0))
        self.cooldown_left = int(d.get("cooldown_left", 0))
        self.reductions = [(int(e), float(v)) for e, v in d.get("reductions", [])]


_KINDS = {"step": StepDecay, "exponential": ExponentialDecay, "cosine": CosineDecay,
          "reduce_on_plateau": ReduceOnPlateau}


def make_schedule(spec, base_lr: float, epochs: int) -> Schedule:
    """The schedule for a checked `ScheduleSpec` (or None: a constant learning rate).

    `base_lr` is the optimizer's lr; `epochs` the number of epochs this run trains
    (after any override), which cosine decays over."""
    if spec is None:
        return Constant(base_lr, epochs)
    cls = _KINDS.get(spec.kind)
    if cls is None:
        raise ValueError(f"unknown schedule {spec.kind!r}")
    return cls(base_lr, epochs, **dict(spec.params))
