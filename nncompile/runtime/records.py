"""Run records: the folder every `nncompile run` leaves behind.

    runs/<model>-<YYYYmmdd-HHMMSS>/
      <file>.nn            a copy of the program as it was run
      settings.json        resolved settings (every default explicit), seed, versions
      history.csv          epoch, loss, metrics, val_* (one row per epoch, written as it goes)
      curves.png           loss and metric curves (when matplotlib is installed)
      weights_final.npz    the weights the run ended with
      weights_best.npz     the best epoch's weights (when early stopping found one)
      checkpoint.npz       the state to resume from (see checkpoint.py)

See docs/runtime.md.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import platform
import sys
import time
from typing import Any, Optional

from ..errors import TrainingError
from .weights import write_text_atomic

_SKIP_FIELDS = ("loc", "arg_locs", "setting_locs")


def to_plain(v: Any) -> Any:
    """Dataclasses -> dicts (without source locations), tuples -> lists."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: to_plain(getattr(v, f.name)) for f in dataclasses.fields(v) if f.name not in _SKIP_FIELDS}
    if isinstance(v, dict):
        return {str(k): to_plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_plain(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if hasattr(v, "item") and callable(v.item):   # numpy scalars
        return v.item()
    return v


def resolved_settings(program, *, epochs: Optional[int] = None, seed: Optional[int] = None) -> dict:
    """The program's checked model and train block, every default explicit, with
    the command line's overrides applied."""
    t = program.ast.train
    if t is not None and (epochs is not None or seed is not None):
        t = dataclasses.replace(t, epochs=t.epochs if epochs is None else int(epochs),
                                seed=t.seed if seed is None else int(seed))
    return {"model": to_plain(program.ast.model), "train": to_plain(t),
            "backend": program.backend, "float_dtype": program.float_dtype}


def versions() -> dict:
    import numpy as np
    try:
        from importlib.metadata import version
        nnc = version("nncompile")
    except Exception:  # not installed as a distribution
        nnc = "unknown"
    return {"nncompile": nnc, "numpy": np.__version__, "python": sys.version.split()[0],
            "platform": platform.platform()}


class RunRecord:
    """The run folder and the files in it."""

    def __init__(self, path: str, program):
        self.path = path
        self.program = program
        self._history_keys: Optional[list[str]] = None

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def checkpoint_path(self) -> str:
        return self.file("checkpoint.npz")

    # --- creation ---------------------------------------------------------------
    @classmethod
    def create(cls, program, out: Optional[str] = None, root: str = "runs") -> "RunRecord":
        if out is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            base = os.path.join(root, f"{program.ast.model.name}-{stamp}")
            os.makedirs(root, exist_ok=True)
            path, n = base, 1
            while True:
                try:
                    os.mkdir(path)
                    break
                except FileExistsError:
                    n += 1
                    path = f"{base}-{n}"
        else:
            path = out
            if os.path.exists(os.path.join(path, "checkpoint.npz")) or os.path.exists(
                    os.path.join(path, "settings.json")):
                raise TrainingError(f"{path} already holds a run",
                                    hint=f"continue it with --resume {path}, or choose another --out folder")
            if os.path.exists(path) and not os.path.isdir(path):
                raise TrainingError(f"--out {path}: exists and is not a folder")
            os.makedirs(path, exist_ok=True)
        return cls(path, program)

    def write_start(self, settings: dict, seed: int, command: Optional[list[str]] = None,
                    resumes: Optional[list] = None) -> None:
        prog = self.program.ast
        nn_name = os.path.basename(prog.filename) if prog.filename and prog.filename != "<string>" else "model.nn"
        if not nn_name.endswith(".nn"):
            nn_name += ".nn"
        write_text_atomic(self.file(nn_name), prog.source)
        doc = {"model_file": nn_name, "seed": seed, "settings": settings, "versions": versions(),
               "command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if resumes:
            doc["resumes"] = resumes
        write_text_atomic(self.file("settings.json"), json.dumps(doc, indent=2, allow_nan=True) + "\n")

    def read_settings_doc(self) -> Optional[dict]:
        try:
            with open(self.file("settings.json"), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    # --- history ----------------------------------------------------------------
    def write_history(self, history: dict[str, list[float]]) -> None:
        """(Re)write history.csv from a whole history (start of a run or a resume)."""
        keys = list(history)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["epoch"] + keys)
        n = len(next(iter(history.values()))) if history else 0
        for i in range(n):
            w.writerow([i] + [repr(float(history[k][i])) for k in keys])
        write_text_atomic(self.file("history.csv"), buf.getvalue())
        self._history_keys = keys if keys else None

    def append_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        keys = list(logs)
        if self._history_keys is None or not os.path.exists(self.file("history.csv")):
            with open(self.file("history.csv"), "w", encoding="utf-8", newline="") as f:
                f.write(",".join(["epoch"] + keys) + "\n")
            self._history_keys = keys
        with open(self.file("history.csv"), "a", encoding="utf-8", newline="") as f:
            f.write(",".join([str(epoch)] + [repr(float(logs.get(k, math.nan))) for k in self._history_keys])
                    + "\n")

    # --- curves -----------------------------------------------------------------
    def plot(self, history: dict[str, list[float]]) -> Optional[str]:
        """Write curves.png; returns a note when it could not (no matplotlib)."""
        if not history or not any(history.values()):
            return None
        try:
            import matplotlib
            matplotlib.use("Agg", force=True)
            import matplotlib.pyplot as plt
        except Exception:
            return "matplotlib is not installed: no curves.png (pip install matplotlib)"
        base = [k for k in history if not k.startswith("val_")]
        fig, axes = plt.subplots(1, len(base), figsize=(5 * len(base), 3.6), squeeze=False)
        for ax, k in zip(axes[0], base):
            ep = range(len(history[k]))
            ax.plot(ep, history[k], label=k)
            if f"val_{k}" in history:
                ax.plot(range(len(history[f"val_{k}"])), history[f"val_{k}"], label=f"val_{k}")
            ax.set_xlabel("epoch")
            ax.set_title(k)
            if k == "loss" and all(v > 0 for v in history[k] if math.isfinite(v)):
                ax.set_yscale("log")
            ax.legend()
            ax.grid(alpha=0.3)
        fig.suptitle(self.program.ast.model.name)
        fig.tight_layout()
        from .weights import write_atomic
        write_atomic(self.file("curves.png"), lambda f: fig.savefig(f, format="png", dpi=90))
        plt.close(fig)
        return None

    # --- weights ----------------------------------------------------------------
    def save_snapshot(self, name: str, snapshot: dict, trainer) -> None:
        """weights_<name>.npz (weights_best.npz) from a trainer snapshot the loop keeps."""
        from .weights import model_signature, save_weights
        names = model_signature(self.program)
        arrays = trainer.to_host({k: v for k, v in snapshot["arrays"].items() if k in names})
        save_weights(self.file(f"weights_{name}.npz"), self.program, arrays, epoch=int(snapshot["epoch"]),
                     seed=trainer.seed)
