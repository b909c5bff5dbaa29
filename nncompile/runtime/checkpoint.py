"""Checkpoints: everything the fit loop needs to continue a run exactly.

A checkpoint is one `.npz` file (see `weights.py`: no pickle, atomic write):

  <name>            every array of the trainer at the end of an epoch: parameters,
                    optimizer state (adam.m.*, ...), batch-norm statistics
  <snap>/<name>     the same for each trainer snapshot a callback keeps: best/<name>
                    for early stopping's best epoch
  __meta__          JSON: kind "checkpoint", model, tensors (name -> shape), epoch
                    (the next epoch to run), step (optimizer steps taken), seed,
                    rng (the shuffle Generator's bit_generator.state), history,
                    settings (the resolved settings the run had), finished;
                    `callbacks`, the state keys of the resumable callbacks, each
                    with its state_dict() under that key (early_stopping:
                    best, best_epoch, wait; schedule); for each snapshot
                    has_<snap>, <snap>_step, <snap>_epoch; `data`, the fingerprint
                    of the training and validation data (data_fingerprint);
                    for a checkpoint inside an epoch (`--checkpoint-every Nsteps`):
                    `batch` (the next batch of `epoch` to run, 0 at an epoch
                    boundary), `rng` then the shuffle state at the epoch's
                    start (the epoch's order is drawn from it again), `sums`
                    and `seen` (the epoch's batch-size-weighted sums so far),
                    `aug_rng` (the augmentation stream's position)

Resuming from it replays nothing and reproduces an uninterrupted run bit for bit.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from ..errors import WeightsError
from .weights import load_arrays, save_arrays

# before the meta named its callbacks, these two were the only ones
_OLD_CALLBACKS = ["early_stopping", "schedule"]


@dataclass
class LoopState:
    """The fit loop at an epoch boundary: what a checkpoint holds, what Ctrl-C
    saves, what `--on-nan rollback` and resume restore. In the running loop the
    arrays are the backend's own copies; in a file, and once loaded, NumPy."""

    epoch: int                                  # the next epoch to run
    step: int                                   # optimizer steps taken
    seed: int
    arrays: dict[str, Any]                      # the trainer's arrays, by name
    rng: dict                                   # np.random.Generator bit_generator.state
    history: dict[str, list[float]] = field(default_factory=dict)
    callbacks: dict[str, dict] = field(default_factory=dict)   # state_key -> a callback's state_dict()
    snapshots: dict[str, dict] = field(default_factory=dict)   # name -> {"arrays", "step", "epoch"}
    settings: Optional[dict] = None
    finished: bool = False                      # the run ended (not interrupted) after this epoch
    data: Optional[dict] = None                 # data_fingerprint() of the data the run trains on
    # inside an epoch (batch > 0): `rng` is the shuffle state at the epoch's start
    batch: int = 0                              # the next batch of `epoch` to run
    sums: dict[str, float] = field(default_factory=dict)   # the epoch's weighted sums so far
    seen: int = 0                               # samples in those sums
    aug_rng: Optional[dict] = None              # the augmentation stream's bit_generator.state

    @property
    def position(self) -> tuple[int, int]:
        """(epoch, batch): how far the run had got; later positions compare greater."""
        return (self.epoch, self.batch)

    @property
    def early_stopping(self) -> Optional[dict]:
        return self.callbacks.get("early_stopping")

    @property
    def schedule(self) -> Optional[dict]:
        return self.callbacks.get("schedule")

    @property
    def best_arrays(self) -> Optional[dict]:
        best = self.snapshots.get("best")
        return best["arrays"] if best is not None else None

    def trainer_snapshot(self) -> dict:
        """The trainer's part, as Trainer.restore takes it."""
        return {"arrays": self.arrays, "step": self.step}

    def converted(self, convert: Callable[[dict], dict], **changes) -> "LoopState":
        """A copy with every array dict passed through `convert` (to the host, or to the device)."""
        snaps = {n: {**s, "arrays": convert(s["arrays"])} for n, s in self.snapshots.items()}
        return dataclasses.replace(self, arrays=convert(self.arrays), snapshots=snaps, **changes)


def save_checkpoint(path: str, program, st: LoopState) -> None:
    arrays = dict(st.arrays)
    meta = {"kind": "checkpoint", "model": program.ast.model.name,
            "tensors": {k: list(np.shape(v)) for k, v in st.arrays.items()},
            "epoch": st.epoch, "step": st.step, "seed": st.seed, "rng": st.rng, "history": st.history,
            "settings": st.settings, "finished": st.finished, "callbacks": list(st.callbacks),
            "data": st.data, "batch": st.batch,
            # a metric's histogram statistic (AUC's) is a vector: a list in the JSON
            "sums": {k: np.asarray(v).tolist() for k, v in st.sums.items()}, "seen": st.seen, "aug_rng": st.aug_rng}
    for name, snap in st.snapshots.items():
        arrays.update({f"{name}/{k}": v for k, v in snap["arrays"].items()})
        meta.update({f"has_{name}": True, f"{name}_step": snap["step"], f"{name}_epoch": snap["epoch"]})
    for key, state in st.callbacks.items():
        if key in meta or key in ("format", "version"):
            raise ValueError(f"a callback's state_key {key!r} collides with the checkpoint's own {key!r}")
        meta[key] = state
    save_arrays(path, arrays, meta)


def load_checkpoint(path: str) -> LoopState:
    arrays, meta = load_arrays(path, "checkpoint")
    if meta.get("kind") != "checkpoint":
        raise WeightsError(f"{path}: not a checkpoint (a {meta.get('kind', 'unknown')} file)",
                           hint="resume from a run folder, or its checkpoint.npz")
    try:
        live = {k: v for k, v in arrays.items() if "/" not in k}
        for k, shape in meta["tensors"].items():
            if k not in live or list(live[k].shape) != list(shape):
                raise WeightsError(f"{path}: array {k!r} is missing or has the wrong shape; the checkpoint "
                                   "is corrupted")
        snapshots = {}
        for name in [k[4:] for k, v in meta.items() if k.startswith("has_") and v]:
            step = meta.get(f"{name}_step")
            snapshots[name] = {"arrays": {k[len(name) + 1:]: v for k, v in arrays.items() if k.startswith(name + "/")},
                               "step": int(meta["step"] if step is None else step),
                               "epoch": meta.get(f"{name}_epoch")}
        callbacks = {k: meta[k] for k in meta.get("callbacks", _OLD_CALLBACKS) if meta.get(k) is not None}
        return LoopState(epoch=int(meta["epoch"]), step=int(meta["step"]), seed=int(meta["seed"]), arrays=live,
                         rng=meta["rng"], history={k: [float(x) for x in v] for k, v in meta["history"].items()},
                         callbacks=callbacks, snapshots=snapshots, settings=meta.get("settings"),
                         finished=bool(meta.get("finished")), data=meta.get("data"),
                         batch=int(meta.get("batch", 0)), sums={k: np.asarray(v, np.float64) if isinstance(v, list) else float(v)
                                                         for k, v in meta.get("sums", {}).items()},
                         seen=int(meta.get("seen", 0)), aug_rng=meta.get("aug_rng"))
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{path}: the checkpoint's metadata is incomplete or corrupted ({e})") from None


def data_fingerprint(train, val) -> dict:
    """What identifies the data a run trains on: per part (train, validation) the
    sample count, the shapes and dtypes of x and y and a SHA-256 of their bytes.
    A data file that changed (rows removed, values edited) changes it, and with
    it the split, the batches and every step after them."""
    def part(ds) -> dict:
        h = hashlib.sha256()
        shapes = {}
        for key, a in (("x", ds.x), ("y", ds.y)):
            a = np.ascontiguousarray(a)
            h.update(f"{key}:{a.dtype.str}:{a.shape};".encode())
            h.update(memoryview(a).cast("B"))
            shapes[key] = [int(d) for d in a.shape]
        return {"samples": int(len(ds.x)), **shapes, "sha256": h.hexdigest()}
    return {"train": part(train), "validation": part(val) if val is not None else None}


def check_same_data(path: str, st: LoopState, now: dict) -> None:
    """Refuse to resume on other data than the checkpoint's (checkpoints from before
    the fingerprint existed are not checked)."""
    was = st.data
    if not was or was == now:
        return
    lines = []
    for part in ("train", "validation"):
        a, b = was.get(part), now.get(part)
        if a == b:
            continue
        if a is None or b is None:
            lines.append(f"  {part}: {'none' if a is None else str(a['samples']) + ' samples'} in the checkpoint, "
                         f"{'none' if b is None else str(b['samples']) + ' samples'} now")
        elif a.get("samples") != b.get("samples"):
            lines.append(f"  {part}: {b['samples']} samples now, {a['samples']} in the checkpoint")
        elif (a.get("x"), a.get("y")) != (b.get("x"), b.get("y")):
            lines.append(f"  {part}: shapes x {b.get('x')} y {b.get('y')} now, x {a.get('x')} y {a.get('y')} "
                         "in the checkpoint")
        else:
            lines.append(f"  {part}: the same shapes, different values")
    raise WeightsError(f"cannot resume from {path}: the data changed since the checkpoint:\n" + "\n".join(lines),
                       hint="a resumed run must train on the data it started with (other data means another "
                            "split, other batches, another run); restore the data, or start a new run "
                            "(--out elsewhere)")


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
