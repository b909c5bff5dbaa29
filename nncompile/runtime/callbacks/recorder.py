"""The run folder's history and weights files, as a callback (the folder is records.RunRecord)."""
from __future__ import annotations

from ..weights import save_weights
from .base import Callback


class RunRecorder(Callback):
    """history.csv (rewritten from the starting history, then a row per epoch as
    it ends); at the end weights_final.npz, weights_<name>.npz for each
    snapshot the loop keeps (weights_best.npz) and curves.png."""

    def __init__(self, record):
        self.record = record

    def on_train_begin(self, state) -> None:
        self.record.write_history(state.history)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.record.append_epoch(epoch, logs)

    def on_train_end(self) -> None:
        loop, h = self.loop, self.loop.history
        save_weights(self.record.file("weights_final.npz"), loop.program, loop.trainer.host("model_state"),
                     epoch=h.final_epoch, seed=loop.seed)
        for name, snap in loop.snapshots.items():
            self.record.save_snapshot(name, snap, loop.trainer)
        note = self.record.plot(h.history)
        if note:
            h.notes.append(note)
