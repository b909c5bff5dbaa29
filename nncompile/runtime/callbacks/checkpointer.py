"""checkpoint.npz, as a callback (the file format is checkpoint.py)."""
from __future__ import annotations

from ..checkpoint import save_checkpoint
from .base import Callback


class Checkpointer(Callback):
    """Writes the loop's committed state (`loop.state`, never the arrays of a
    half-finished step) to the run folder's checkpoint.npz: with `every` N,
    after every N-th epoch and after every epoch that took a new snapshot (a
    new best: then its weights file too); on Ctrl-C; and at the end."""

    def __init__(self, record, every: int = 0):
        self.record = record
        self.every = every

    def _save(self, finished: bool = False) -> None:
        save_checkpoint(self.record.checkpoint_path, self.loop.program, self.loop.host_state(finished))
        self.loop.history.checkpoint = self.record.checkpoint_path

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if not self.every or self.loop.failed:
            return
        new = [name for name, snap in self.loop.snapshots.items() if snap["epoch"] == epoch]
        if (epoch + 1) % self.every == 0 or new:
            self._save()
            for name in new:
                self.record.save_snapshot(name, self.loop.snapshots[name], self.loop.trainer)

    def on_interrupt(self) -> None:
        self._save()

    def on_train_end(self) -> None:
        # the last good epoch's state, before any restore of the best weights
        self._save(finished=True)
