"""What a run prints: the start lines, a line (or a live bar) per epoch, the
summary and the Final line. The displays themselves are in progress.py."""
from __future__ import annotations

import time

from ..progress import fmt
from .base import Callback


class ProgressLogger(Callback):
    """Drives a progress display (progress.make_progress). It also composes the
    summary line (`history.message`), which the CLI prints itself with --quiet;
    callbacks add parts to it through `loop.summary` in their on_train_end."""

    def __init__(self, display, log_every: int = 1):
        self.display = display
        self.log_every = log_every
        self._t0 = 0.0

    def on_train_begin(self, state) -> None:
        loop, s, say = self.loop, self.loop.session, self.display.message
        name = loop.program.ast.model.name
        for m in s.messages:
            say(m)
        if s.resume is not None:
            say(f"Resuming {name} at epoch {state.epoch}" + (f", batch {state.batch}" if state.batch else "")
                + f" (step {state.step}) of {loop.epochs}" + (f" from {s.resume_from}" if s.resume_from else ""))
        if (s.resume is not None or s.restart) and s.changes:
            say("Settings changed since the checkpoint:\n" + "\n".join(f"  {c}" for c in s.changes))
        say(f"Training {name}: {len(loop.train)} samples"
            + (f", {len(loop.val)} for validation" if loop.val is not None else "")
            + f", {loop.epochs} epochs, batch size {loop.batch_size}")
        self.display.start(loop.epochs, -(-len(loop.train) // loop.batch_size), state.epoch)
        self._t0 = time.perf_counter()

    def on_batch_end(self, batch: int, logs: dict) -> None:
        self.display.batch(self.loop.epoch, batch, logs["loss"])

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        # the chapter's "Epoch: N Loss: X" line every log_every epochs, the last one, and a failed one
        if self.loop.failed and self.loop.rolled_back:
            self.display.message(f"Epoch {epoch}: a non-finite value; rolled back (--on-nan rollback), "
                                 "so this epoch is not in the history")
            return
        chapter = epoch % self.log_every == 0 or epoch == self.loop.epochs - 1 or self.loop.failed
        self.display.epoch_end(epoch, logs, chapter, time.perf_counter() - self._t0)

    def on_interrupt(self) -> None:
        try:
            self.display.close()
        except OSError:   # the terminal is gone (SIGHUP)
            pass

    def on_train_end(self) -> None:
        self.display.close()
        h = self.loop.history
        if h.stop_reason == "early stopping":
            head = f"Early stopping: stopped at epoch {h.stopped_epoch}"
        elif h.stop_reason:
            head = f"Training stopped: {h.stop_reason}"
        else:
            head = f"Finished {h.epochs_run} epoch{'' if h.epochs_run == 1 else 's'}"
        h.message = "; ".join([head] + self.loop.summary) + f" ({h.seconds:.1f} s)"
        self.display.message(h.message)
        at = h.final_epoch
        if h.history and at >= 0:
            label = f"Final (epoch {at}, restored weights)" if h.restored else "Final"
            self.display.message(f"{label}: " + " ".join(f"{k}: {fmt(v[at])}" for k, v in h.history.items()))
