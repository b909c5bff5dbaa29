"""User-facing errors.

Every mistake a user can make (in a `.nn` file, a data file, a weights file) is
reported through one of these types. They carry a source location when there
is one and render as::

    model.nn:4:21: error: unknown activation 'rleu'
        4 |   dense  hidden(10, rleu)
          |                     ^
    expected one of: relu, sigmoid, tanh, softmax, linear; did you mean 'relu'?

The CLI prints ``str(err)`` and exits with status 2; it never shows a traceback.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Optional


@dataclass(frozen=True)
class SourceLoc:
    """A position in a source file (1-based line and column)."""

    file: str
    line: int
    column: int
    end_line: Optional[int] = None
    end_column: Optional[int] = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class NNError(Exception):
    """Base class of every error nncompile reports to a user."""

    kind = "error"

    def __init__(self, message: str, loc: Optional[SourceLoc] = None, *,
                 source: Optional[str] = None, hint: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.source = source
        self.hint = hint

    @property
    def line(self) -> Optional[int]:
        return self.loc.line if self.loc else None

    @property
    def column(self) -> Optional[int]:
        return self.loc.column if self.loc else None

    def __str__(self) -> str:
        head = f"{self.loc}: {self.kind}: {self.message}" if self.loc else f"{self.kind}: {self.message}"
        parts = [head]
        snippet = self._snippet()
        if snippet:
            parts.append(snippet)
        if self.hint:
            parts.append(self.hint)
        return "\n".join(parts)

    def _snippet(self) -> str:
        if not (self.loc and self.source is not None):
            return ""
        lines = self.source.splitlines()
        if not (1 <= self.loc.line <= len(lines)):
            return ""
        text = lines[self.loc.line - 1].expandtabs(1)
        if len(text) > 200:  # keep very long lines readable: show a window around the caret
            start = max(0, self.loc.column - 80)
            text = ("..." if start else "") + text[start:start + 160]
            col = self.loc.column - start + (3 if start else 0)
        else:
            col = self.loc.column
        num = str(self.loc.line)
        pad = " " * len(num)
        width = 1
        if self.loc.end_line == self.loc.line and self.loc.end_column:
            width = max(1, min(self.loc.end_column - self.loc.column, len(text) - col + 1))
        return f" {num} | {text}\n {pad} | {' ' * (col - 1)}{'^' * width}"


class CompileError(NNError, ValueError):
    """A mistake in a `.nn` program (syntax, names, values, shapes)."""


class DataError(NNError):
    """A problem with a data file or dataset: names the file, row and column."""


class WeightsError(NNError):
    """A truncated, corrupted or mismatched weights/checkpoint file."""


class TrainingError(NNError):
    """Training cannot go on (for example a non-finite loss)."""


# Names a user of Keras or PyTorch writes for one of ours (Keras's long and short names,
# the papers' names of the initializers). A hint only where the intended name is among
# the choices of the place it was written.
OTHER_NAMES = {
    "acc": "accuracy", "mean_squared_error": "mse", "mean_absolute_error": "mae",
    "MSE": "mse", "MAE": "mae", "sparse_categorical_accuracy": "accuracy",
    "categorical_accuracy": "accuracy", "binary_accuracy": "accuracy",
    "xavier": "glorot_uniform", "xavier_uniform": "glorot_uniform", "xavier_normal": "glorot_normal",
    "kaiming": "he_uniform", "kaiming_uniform": "he_uniform", "kaiming_normal": "he_normal",
    "msra": "he_normal", "SGD": "sgd", "Adam": "adam", "AdamW": "adamw", "RMSprop": "rmsprop",
    "swish": "silu", "identity": "linear", "crossentropy": "sparse_categorical_crossentropy",
    "cross_entropy": "sparse_categorical_crossentropy", "nll": "sparse_categorical_crossentropy",
    "bce": "binary_crossentropy", "BatchNormalization": "batchnorm", "Dense": "dense",
    "Dropout": "dropout", "Flatten": "flatten", "Conv2D": "conv2d", "MaxPooling2D": "maxpool2d",
    "AveragePooling2D": "avgpool2d", "LayerNormalization": "layernorm", "Normalization": "normalization",
}


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return "; did you mean 'x'?" for the intended choice (a known other name of
    it, else the closest spelling), or ""."""
    choices = list(choices)
    other = OTHER_NAMES.get(name)
    if other in choices:
        return f"; did you mean '{other}'? ('{name}' is another name for it)"
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def expected_one_of(name: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    return f"expected one of: {', '.join(choices)}{did_you_mean(name, choices)}"


def physical_memory() -> int:
    """Bytes of RAM on this machine (a large number where it cannot be read)."""
    import os
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def fmt_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
