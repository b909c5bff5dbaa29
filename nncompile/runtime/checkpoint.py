"""Checkpoints: everything the fit loop needs to continue a run exactly.

A checkpoint is one `.npz` file (see `weights.py`: no pickle, atomic write):

  <name>            every array of the trainer at the end of an epoch: parameters,
                    optimizer state (adam.m.*, ...), batch-norm statistics
  best/<name>       the same for the best epoch so far (early stopping), if any
  __meta__          JSON: kind "checkpoint", model, tensors (name -> shape), epoch
                    (the next epoch to run), step (optimizer steps taken), seed,
                    rng (the shuffle Generator's bit_generator.state), history,
                    early_stopping (best, best_epoch, wait), best_epoch, settings
                    (the resolved settings the run had)

It is taken at an epoch boundary, so resuming from it replays nothing and
reproduces an uninterrupted run bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..errors import WeightsError
from .weights import load_arrays, save_arrays


@dataclass
class LoopState:
    """The fit loop at an epoch boundary (host copies of every array)."""

    epoch: int                                  # the next epoch to run
    step: int                                   # optimizer steps taken
    seed: int
    arrays: dict[str, np.ndarray]               # the trainer's arrays, by name
    rng: dict                                   # np.random.Generator bit_generator.state
    history: dict[str, list[float]] = field(default_factory=dict)
    early_stopping: Optional[dict] = None       # EarlyStopping.state_dict()
    best_epoch: Optional[int] = None
    best_step: Optional[int] = None
    best_arrays: Optional[dict[str, np.ndarray]] = None
    settings: Optional[dict] = None
    finished: bool = False                      # the run ended (not interrupted) after this epoch
    schedule: Optional[dict] = None             # the learning-rate schedule's state_dict()


def save_checkpoint(path: str, program, st: LoopState) -> None:
    arrays = dict(st.arrays)
    if st.best_arrays is not None:
        arrays.update({f"best/{k}": v for k, v in st.best_arrays.items()})
    meta = {"kind": "checkpoint", "model": program.ast.model.name,
            "tensors": {k: list(np.shape(v)) for k, v in st.arrays.items()},
            "epoch": st.epoch, "step": st.step, "seed": st.seed, "rng": st.rng,
            "history": st.history, "early_stopping": st.early_stopping, "best_epoch": st.best_epoch,
            "best_step": st.best_step, "has_best": st.best_arrays is not None, "settings": st.settings, "finished": st.finished,
            "schedule": st.schedule}
    save_arrays(path, arrays, meta)


def load_checkpoint(path: str) -> LoopState:
    arrays, meta = load_arrays(path, "checkpoint")
    if meta.get("kind") != "checkpoint":
        raise WeightsError(f"{path}: not a checkpoint (a {meta.get('kind', 'unknown')} file)",
                           hint="resume from a run folder, or its checkpoint.npz")
    try:
        live = {k: v for k, v in arrays.items() if not k.startswith("best/")}
        best = {k[5:]: v for k, v in arrays.items() if k.startswith("best/")} if meta["has_best"] else None
        for k, shape in meta["tensors"].items():
            if k not in live or list(live[k].shape) != list(shape):
                raise WeightsError(f"{path}: array {k!r} is missing or has the wrong shape; the checkpoint "
                                   "is corrupted")
        return LoopState(epoch=int(meta["epoch"]), step=int(meta["step"]), seed=int(meta["seed"]), arrays=live,
                         rng=meta["rng"], history={k: [float(x) for x in v] for k, v in meta["history"].items()},
                         early_stopping=meta.get("early_stopping"), best_epoch=meta.get("best_epoch"),
                         best_step=meta.get("best_step"),
                         best_arrays=best, settings=meta.get("settings"), finished=bool(meta.get("finished")),
                         schedule=meta.get("schedule"))
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{path}: the checkpoint's metadata is incomplete or corrupted ({e})") from None


def check_compatible(path: str, st: LoopState, trainer) -> None:
    """Refuse to resume when the model's tensors changed shape (or the optimizer
    changed, which changes the optimizer-state tensors)."""
    have = {k: tuple(v.shape) for k, v in st.arrays.items()}
    want = {k: tuple(np.shape(v)) for k, v in trainer.arrays.items()}
    problems = []
    for k in want:
        if k not in have:
            problems.append(f"  {k}: {want[k]} in the model, not in the checkpoint")
        elif have[k] != want[k]:
            problems.append(f"  {k}: {have[k]} in the checkpoint, {want[k]} in the model")
    for k in have:
        if k not in want:
            problems.append(f"  {k}: {have[k]} in the checkpoint, not in the model")
    if problems:
        shown = problems[:12] + ([f"  ... and {len(problems) - 12} more"] if len(problems) > 12 else [])
        raise WeightsError(f"cannot resume from {path}: the model's tensors changed since the checkpoint:\n"
                           + "\n".join(shown),
                           hint="a change that alters parameter shapes (units, layers, inputs) or the optimizer "
                                "needs a fresh run; epochs, patience and the learning rate may change")


def diff_settings(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Lines "key: old -> new" for every leaf that differs between two settings trees."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in list(old) + [k for k in new if k not in old]:
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in new:
                out.append(f"{key}: {old[k]!r} -> (removed)")
            elif k not in old:
                out.append(f"{key}: (none) -> {new[k]!r}")
            else:
                out += diff_settings(old[k], new[k], key)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and \
            all(isinstance(v, dict) for v in old + new):
        out = []
        for i, (a, b) in enumerate(zip(old, new)):
            label = a.get("name", i) if a.get("name") == b.get("name") else i
            out += diff_settings(a, b, f"{prefix}[{label}]")
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]
