"""Progress output of the fit loop.

Three kinds, chosen by `make_progress`:

- `RichProgress`: on a terminal with `rich` installed, a live bar (epochs and the
  batches of the current epoch, with the running loss); the chapter's
  "Epoch: N Loss: X" lines are printed above it.
- `PlainProgress`: when the output is not a terminal (a log file, a pipe, CI) or
  rich is missing: exactly one line per epoch and no control characters. Every
  `log_every` epochs the line is the chapter's "Epoch: N Loss: X ..." line; the
  other epochs get a compact "epoch N/M - loss: ... (t s)" line.
- `QuietProgress`: nothing (`--quiet`).
"""
from __future__ import annotations

import math
import sys
import time
from typing import Optional, TextIO


def fmt(v: float) -> str:
    return f"{v:.6g}" if math.isfinite(v) else str(v)


def chapter_line(epoch: int, logs: dict[str, float]) -> str:
    """The chapter's format: "Epoch: 0 Loss: 0.693 accuracy: 0.5 ..."."""
    return f"Epoch: {epoch} Loss: {fmt(logs['loss'])}" + "".join(
        f" {k}: {fmt(v)}" for k, v in logs.items() if k != "loss")


class QuietProgress:
    def start(self, epochs: int, batches: int, first_epoch: int = 0) -> None: ...
    def batch(self, epoch: int, i: int, loss: float) -> None: ...
    def epoch_end(self, epoch: int, logs: dict[str, float], chapter: bool, seconds: float) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...


class PlainProgress(QuietProgress):
    def __init__(self, out: TextIO):
        self.out = out
        self.epochs = 0

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def start(self, epochs: int, batches: int, first_epoch: int = 0) -> None:
        self.epochs = epochs

    def epoch_end(self, epoch: int, logs: dict[str, float], chapter: bool, seconds: float) -> None:
        if chapter:
            self._print(chapter_line(epoch, logs))
        else:
            self._print(f"epoch {epoch}/{self.epochs - 1} - " + " - ".join(f"{k}: {fmt(v)}" for k, v in logs.items())
                        + f" ({seconds:.1f} s)")

    def message(self, text: str) -> None:
        self._print(text)


class RichProgress(QuietProgress):
    """A live bar on a terminal. Updates are throttled (at most ~20 per second)."""

    def __init__(self, out: TextIO, *, force_terminal: Optional[bool] = None):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        self.console = Console(file=out, force_terminal=force_terminal, highlight=False)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=self.console, transient=True)
        self._last = 0.0
        self._epoch_task = self._batch_task = None

    def start(self, epochs: int, batches: int, first_epoch: int = 0) -> None:
        self.progress.start()
        self._epoch_task = self.progress.add_task("epochs", total=epochs, completed=first_epoch, info="")
        self._batch_task = self.progress.add_task(f"epoch {first_epoch}", total=batches, info="")

    def batch(self, epoch: int, i: int, loss: float) -> None:
        now = time.monotonic()
        if now - self._last < 0.05:
            return
        self._last = now
        self.progress.update(self._batch_task, completed=i + 1, description=f"epoch {epoch}",
                             info=f"loss {fmt(loss)}")

    def epoch_end(self, epoch: int, logs: dict[str, float], chapter: bool, seconds: float) -> None:
        if chapter:
            self.console.print(chapter_line(epoch, logs), markup=False, highlight=False)
        info = " ".join(f"{k} {fmt(v)}" for k, v in logs.items())
        self.progress.update(self._epoch_task, completed=epoch + 1, info=info)
        self.progress.reset(self._batch_task, description=f"epoch {epoch + 1}")

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        self.progress.stop()


def make_progress(out: Optional[TextIO] = None, *, quiet: bool = False, tty: Optional[bool] = None):
    """The progress display for `out`: quiet, a rich live bar on a terminal (when
    rich is installed), else plain lines. `tty` overrides the terminal test."""
    if quiet:
        return QuietProgress()
    out = out or sys.stdout
    if tty is None:
        try:
            tty = out.isatty()
        except (AttributeError, ValueError):
            tty = False
    if tty:
        try:
            return RichProgress(out, force_terminal=True)
        except ImportError:
            pass
    return PlainProgress(out)
