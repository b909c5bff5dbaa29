"""The callback protocol of the fit loop (Keras-like hooks) and the list that runs them."""
from __future__ import annotations

from typing import Iterable, Optional


class Callback:
    """Override the hooks you need. Before `on_train_begin`, the loop sets
    `self.loop`: the running `Loop` (program, trainer, train/val data, epochs,
    history, epoch, the committed `state`, `stop(reason)`, ...).

    A resumable callback sets `state_key` and implements `state_dict()` (plain
    JSON values) and `load_state_dict()`: its state is part of the loop's
    snapshot after every good epoch, so checkpoints save it and resume
    restores it. See docs/runtime.md, "Callbacks"."""

    loop = None
    state_key: Optional[str] = None

    def on_train_begin(self, state) -> None:
        """Before the first epoch. `state`: the LoopState training starts from
        (epoch 0, or the checkpoint being resumed)."""

    def on_epoch_begin(self, epoch: int) -> None:
        """Before the epoch's batches are drawn."""

    def on_batch_begin(self, batch: int) -> None:
        """Before the optimizer step on batch `batch` of the current epoch."""

    def on_batch_end(self, batch: int, logs: dict[str, float]) -> None:
        """After the step; `logs`: the batch's loss and metrics (computed before the update)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """After validation. `logs`: loss, metrics (batch-size-weighted means), val_*, and lr
        when a schedule is set. Callbacks earlier in the list may have added to it."""

    def on_train_end(self) -> None:
        """After the last epoch (or a stop)."""

    def on_interrupt(self) -> None:
        """Ctrl-C, instead of on_train_end: `loop.state` is the last good epoch's snapshot."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _overrides(cb: Callback, hook: str) -> bool:
    return getattr(type(cb), hook) is not getattr(Callback, hook)


class CallbackList:
    """Callbacks in the order they run; every hook calls each of them in turn."""

    def __init__(self, callbacks: Iterable[Callback]):
        self.callbacks = list(callbacks)
        keys = [c.state_key for c in self.callbacks if c.state_key]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"more than one callback keeps its state under {', '.join(twice)}")
        # the batch hooks run once per step: call only the callbacks that define them
        self._batch_begin = [c.on_batch_begin for c in self.callbacks if _overrides(c, "on_batch_begin")]
        self._batch_end = [c.on_batch_end for c in self.callbacks if _overrides(c, "on_batch_end")]

    def bind(self, loop) -> "CallbackList":
        for c in self.callbacks:
            c.loop = loop
        return self

    def on_train_begin(self, state) -> None:
        for c in self.callbacks:
            c.on_train_begin(state)

    def on_epoch_begin(self, epoch: int) -> None:
        for c in self.callbacks:
            c.on_epoch_begin(epoch)

    def on_batch_begin(self, batch: int) -> None:
        for hook in self._batch_begin:
            hook(batch)

    def on_batch_end(self, batch: int, logs: dict) -> None:
        for hook in self._batch_end:
            hook(batch, logs)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        for c in self.callbacks:
            c.on_epoch_end(epoch, logs)

    def on_train_end(self) -> None:
        for c in self.callbacks:
            c.on_train_end()

    def on_interrupt(self) -> None:
        # every callback gets its turn (the checkpoint is written even when closing the
        # display fails on a terminal that is gone); the first error is raised after
        first = None
        for c in self.callbacks:
            try:
                c.on_interrupt()
            except Exception as e:
                first = first or e
        if first is not None:
            raise first

    # --- resumable state ----------------------------------------------------------
    def states(self) -> dict[str, dict]:
        return {c.state_key: c.state_dict() for c in self.callbacks if c.state_key}

    def load_states(self, states: dict[str, dict]) -> None:
        for c in self.callbacks:
            if c.state_key and states.get(c.state_key) is not None:
                c.load_state_dict(states[c.state_key])
