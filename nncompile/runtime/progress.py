"""Progress output of the fit loop.

Three kinds, chosen by `make_progress`:

- `RichProgress`: on a terminal with `rich` installed, a live bar (epochs and the
  batches of the current epoch, with the running loss); the chapter's
  "Epoch: N Loss: X" lines are printed above it every `log_every` epochs. At 80
  columns the bar, the counts and the times keep their room; the metrics are
  cut short first.
- `PlainProgress`: when the output is not a terminal (a log file, a pipe, CI) or
  rich is missing: the chapter's "Epoch: N Loss: X ..." line every `log_every`
  epochs (and for the last and a failed epoch), no control characters; with
  verbosity 2 (`--verbose`) that line for every epoch.
- `QuietProgress`: nothing (`--quiet`, verbosity 0).

Epochs are numbered from 0 everywhere (the chapter's first line is "Epoch: 0").
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
    def __init__(self, out: TextIO, every_epoch: bool = False):
        self.out = out
        self.epochs = 0
        self.every_epoch = every_epoch

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def start(self, epochs: int, batches: int, first_epoch: int = 0) -> None:
        self.epochs = epochs

    def epoch_end(self, epoch: int, logs: dict[str, float], chapter: bool, seconds: float) -> None:
        if chapter or self.every_epoch:
            self._print(chapter_line(epoch, logs))

    def message(self, text: str) -> None:
        self._print(text)


class RichProgress(QuietProgress):
    """A live bar on a terminal. Updates are throttled (at most ~20 per second)."""

    def __init__(self, out: TextIO, *, force_terminal: Optional[bool] = None, width: Optional[int] = None):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        from rich.table import Column
        self.console = Console(file=out, force_terminal=force_terminal, highlight=False, width=width)
        fixed = lambda **kw: Column(no_wrap=True, **kw)  # noqa: E731
        # the metrics come last and are cut short first, so 80 columns keep the bar, counts and ETA
        self.progress = Progress(TextColumn("{task.description}", table_column=fixed(min_width=9)),
                                 BarColumn(bar_width=20), MofNCompleteColumn(table_column=fixed(min_width=7)),
                                 TimeElapsedColumn(table_column=fixed()), TimeRemainingColumn(table_column=fixed()),
                                 TextColumn("{task.fields[info]}", table_column=fixed(overflow="ellipsis", ratio=1)),
                                 console=self.console, transient=True, expand=True)
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


def make_progress(out: Optional[TextIO] = None, *, quiet: bool = False, tty: Optional[bool] = None,
                  verbose: Optional[int] = None):
    """The progress display for `out` at a verbosity (Keras's numbers): 0 nothing
    (`quiet`), 1 a rich live bar on a terminal (when rich is installed) or plain
    lines every log_every epochs elsewhere, 2 a plain line every epoch. `tty`
    overrides the terminal test."""
    verbose = (0 if quiet else 1) if verbose is None else int(verbose)
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, not {verbose!r}")
    if verbose == 0:
        return QuietProgress()
    if verbose == 2:
        return PlainProgress(out or sys.stdout, every_epoch=True)
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
