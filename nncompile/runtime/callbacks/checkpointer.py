"""checkpoint.npz, as a callback (the file format is checkpoint.py)."""
from __future__ import annotations

import re
from typing import Union

from ...errors import TrainingError
from .base import Callback


def parse_every(value: Union[int, str, None]) -> tuple[int, str]:
    """`--checkpoint-every`: N or "Nepochs" (every N epochs), "Nsteps" (every N
    optimizer steps), 0 (only on Ctrl-C and at the end). Returns (N, "epochs" |
    "steps")."""
    if value is None:
        return 0, "epochs"
    if isinstance(value, tuple):
        return value
    if isinstance(value, bool):
        raise TrainingError(f"--checkpoint-every: expected N, Nepochs or Nsteps, not {value!r}")
    if isinstance(value, int):
        n, unit = value, "epochs"
    else:
        m = re.fullmatch(r"\s*(-?\d+)\s*(epochs?|steps?)?\s*", str(value))
        if m is None:
            raise TrainingError(f"--checkpoint-every: expected N (epochs), Nepochs or Nsteps, not {value!r}",
                                hint="e.g. --checkpoint-every 5 (every 5 epochs) or --checkpoint-every 200steps")
        n, unit = int(m.group(1)), "steps" if (m.group(2) or "").startswith("step") else "epochs"
    if n < 0:
        raise TrainingError(f"--checkpoint-every must be 0 or more, not {n}")
    return n, unit


class Checkpointer(Callback):
    """Writes the loop's state to the run folder's checkpoint.npz (atomically:
    the previous checkpoint stays whole until the new one replaces it):

    - every N epochs (`every=(N, "epochs")`): the committed state after every
      N-th epoch and after every epoch that took a new snapshot (a new best:
      then its weights file too);
    - every N steps (`every=(N, "steps")`): after the batch that makes the
      step counter a multiple of N, the loop's state between two batches
      (`loop.batch_state()`; at an epoch's last batch, the epoch's committed
      state once it has ended), and also on each new best;
    - on Ctrl-C (SIGTERM, SIGHUP): the committed state, never the arrays of a
      half-finished step, unless the file already holds a later state;
    - at the end."""

    def __init__(self, record, every=0):
        self.record = record
        self.every, self.unit = parse_every(every)
        self._due_at_epoch_end = False

    def on_train_begin(self, state) -> None:
        if self.every and self.unit == "steps":
            self.loop.after_batch.append(self._after_batch)

    def _write(self, st) -> None:
        self.loop.history.checkpoint = self.record.save_checkpoint(st)
        self.loop.saved = st

    def _save(self, finished: bool = False) -> None:
        self._write(self.loop.host_state(finished))

    def _after_batch(self, batch: int) -> None:
        loop = self.loop
        if loop.failed or loop.trainer.step_count % self.every:
            return
        if batch == len(loop.batches) - 1:   # the epoch's end comes next: save its committed state then
            self._due_at_epoch_end = True
            return
        self._write(loop.batch_state())

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        due, self._due_at_epoch_end = self._due_at_epoch_end, False
        if not self.every or self.loop.failed:
            return
        new = [name for name, snap in self.loop.snapshots.items() if snap["epoch"] == epoch]
        if (self.unit == "epochs" and (epoch + 1) % self.every == 0) or due or new:
            self._save()
            for name in new:
                self.record.save_snapshot(name, self.loop.snapshots[name], self.loop.trainer)

    def on_interrupt(self) -> None:
        saved, st = self.loop.saved, self.loop.state
        if saved is not None and saved.position > st.position:
            return   # the file holds a later state (a checkpoint inside this epoch)
        self._save()

    def on_train_end(self) -> None:
        # the last good epoch's state, before any restore of the best weights
        self._save(finished=True)
