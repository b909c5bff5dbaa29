"""The learning-rate schedule as a callback (the schedules are in schedules.py)."""
from __future__ import annotations

import math

from .base import Callback


class LearningRateScheduler(Callback):
    """Sets the trainer's learning rate before each epoch and lets the schedule
    react to the epoch's logs (reduce_on_plateau). With `log`, the epoch's rate
    goes into the logs as `lr` (the history, history.csv, the printed line).
    Runs before the non-finite policy, so that a non-finite validation value
    still gets its epoch's rate logged."""

    state_key = "schedule"

    def __init__(self, schedule, *, log: bool = True):
        self.schedule = schedule
        self.log = log

    def on_epoch_begin(self, epoch: int) -> None:
        self.loop.trainer.lr = self.schedule.lr_for_epoch(epoch)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.loop.failed:   # a non-finite step cut the epoch short: its row is NaN past what it computed
            return
        if self.log:
            logs["lr"] = self.loop.trainer.lr
        if all(math.isfinite(v) for v in logs.values()):   # a non-finite validation value is no plateau
            self.schedule.on_epoch_end(epoch, logs)

    def state_dict(self) -> dict:
        return self.schedule.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.schedule.load_state_dict(state)
