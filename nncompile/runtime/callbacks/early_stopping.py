"""Early stopping: a small state machine (`update`) and the callback that feeds
it once an epoch, keeps the best epoch's weights and restores them at the end."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from ..progress import fmt
from .base import Callback


def improves(value: Optional[float], best: Optional[float], mode: str, min_delta: float) -> bool:
    """Whether a monitored value beats the best so far by more than min_delta, in
    the direction of mode ("min" or "max"). NaN and Inf never improve."""
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


@dataclass
class EarlyStopping(Callback):
    """Keras semantics: an epoch improves when its monitored value beats the best
    by more than `min_delta` (in the direction of `mode`); after `patience`
    epochs without improvement, training stops. Epochs before
    `start_from_epoch` are not considered. NaN and Inf never improve.

    As a callback it keeps the best epoch's weights as the loop's "best"
    snapshot when `restore_best` (restored at the end, unless the last epoch is
    the best) or `keep_best` (for weights_best.npz and checkpoints) is set."""

    monitor: str
    mode: str = "min"
    patience: int = 0
    min_delta: float = 0.0
    start_from_epoch: int = 0
    restore_best: bool = False
    keep_best: bool = False
    best: Optional[float] = None
    best_epoch: Optional[int] = None
    wait: int = 0
    stopped_epoch: Optional[int] = None
    history: list = field(default_factory=list)

    state_key = "early_stopping"

    def improved(self, value: float) -> bool:
        return improves(value, self.best, self.mode, self.min_delta)

    def update(self, epoch: int, value: float) -> tuple[bool, bool]:
        """Feed one epoch's value; returns (improved, stop)."""
        self.history.append(value)
        if epoch < self.start_from_epoch:
            return False, False
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True, False
        self.wait += 1
        if self.wait >= self.patience:  # wait >= 1 here, so patience 0 stops at once
            self.stopped_epoch = epoch
            return False, True
        return False, False

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, d: dict) -> None:
        self.best, self.best_epoch, self.wait = d["best"], d["best_epoch"], d["wait"]

    # --- hooks --------------------------------------------------------------------
    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.loop.failed:   # a non-finite epoch is not a candidate and does not count
            return
        improved, stop = self.update(epoch, logs.get(self.monitor, float("nan")))
        if improved and (self.restore_best or self.keep_best):
            self.loop.keep_snapshot("best")
        if stop:
            self.loop.stop("early stopping")

    def on_train_end(self) -> None:
        h = self.loop.history
        if self.best_epoch is None:
            return
        h.best_epoch, h.best_value = self.best_epoch, self.best
        self.loop.summary.append(f"best epoch {self.best_epoch}, {self.monitor} {fmt(self.best)}")
        best = self.loop.snapshots.get("best")
        if self.restore_best and best is not None and self.best_epoch != h.epochs_run - 1:
            self.loop.trainer.restore(best)
            h.restored = True
            self.loop.summary.append("weights restored")
