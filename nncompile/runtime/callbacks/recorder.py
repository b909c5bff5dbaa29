"""The run folder's history and weights files, as a callback (the folder and
every write into it is records.RunFolder)."""
from __future__ import annotations

from .base import Callback


class RunRecorder(Callback):
    """history.csv (rewritten from the starting history, then a row per epoch as
    it ends; a failed epoch that was rolled back is not a row; rewritten whole
    at the end); at the end weights_final.npz, weights_<name>.npz for each
    snapshot the loop keeps (weights_best.npz) and curves.svg (or curves.png)."""

    def __init__(self, record):
        self.record = record

    def on_train_begin(self, state) -> None:
        self.record.write_history(state.history)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.loop.failed and self.loop.rolled_back:
            return
        self.record.append_epoch(epoch, logs)

    def on_train_end(self) -> None:
        loop, h = self.loop, self.loop.history
        self.record.save_weights("weights_final.npz", loop.trainer.host("model_state"), epoch=h.final_epoch,
                                 seed=loop.seed)
        for name, snap in loop.snapshots.items():
            self.record.save_snapshot(name, snap, loop.trainer)
        self.record.write_history(h.history)
        note = self.record.write_curves(h.history)
        if note:
            h.notes.append(note)
