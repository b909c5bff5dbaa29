"""The training loop: epochs, seeded shuffling, batches, validation, metrics,
early stopping, the chapter's "Epoch: N Loss: X" lines and a final summary."""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, TextIO

import numpy as np

from ..errors import DataError, TrainingError
from . import data as datamod
from .callbacks import EarlyStopping


@dataclass
class History:
    """Keras-style: history[metric] is the list of per-epoch values."""

    history: dict[str, list[float]] = field(default_factory=dict)
    epochs_run: int = 0
    stopped_epoch: Optional[int] = None
    best_epoch: Optional[int] = None
    best_value: Optional[float] = None
    restored: bool = False
    message: str = ""
    stop_reason: Optional[str] = None
    trainer: object = None
    seconds: float = 0.0

    @property
    def epoch(self) -> list[int]:
        return list(range(self.epochs_run))


def _fmt(v: float) -> str:
    return f"{v:.6g}" if math.isfinite(v) else str(v)


def load_datasets(program, data=None, validation_data=None):
    """(train, val or None) as Datasets, checked against the model's shapes."""
    t = program.ast.train
    if data is None and t.data is None:
        raise DataError("the train block has no `data` setting and no data was passed to fit()",
                        t.loc, source=program.ast.source)
    feature_shape = tuple(program.ast.model.input.shape)
    sparse = t.loss.name == "sparse_categorical_crossentropy"
    kind = "class" if sparse else "float"
    if data is None:
        data = datamod.load_data(t.data, feature_shape=feature_shape, label_kind=kind)
    elif isinstance(data, tuple):
        data = datamod.Dataset(np.asarray(data[0], np.float32), np.asarray(data[1]), "fit(data=...)")
    val = None
    v = t.validation
    if validation_data is not None:
        val = validation_data if isinstance(validation_data, datamod.Dataset) else datamod.Dataset(
            np.asarray(validation_data[0], np.float32), np.asarray(validation_data[1]), "validation_data")
    elif v is not None:
        if v.data is not None:
            val = datamod.load_data(v.data, feature_shape=feature_shape, label_kind=kind)
        else:
            data, val = datamod.split(data, v.fraction, seed=v.seed, stratify=v.stratify, shuffle=v.shuffle)
    for ds in (data, val):
        if ds is not None:
            _check_labels(program, ds)
    return data, val


def _check_labels(program, ds) -> None:
    t = program.ast.train
    out_units = program.graphs.infos[-1].out_shape[-1] if program.graphs.infos else None
    loc, src = (t.data.loc if t.data else t.loc), program.ast.source
    if t.loss.name == "sparse_categorical_crossentropy":
        if ds.y.ndim != 1:
            raise DataError(f"{ds.name}: sparse_categorical_crossentropy needs one integer label per "
                            f"sample, but the targets have shape {list(ds.y.shape)}", loc, source=src,
                            hint="use categorical_crossentropy for one-hot targets")
        if len(ds.y) and (ds.y.min() < 0 or ds.y.max() >= out_units):
            bad = int(np.flatnonzero((ds.y < 0) | (ds.y >= out_units))[0])
            raise DataError(f"{ds.name}: sample {bad} has label {int(ds.y[bad])}, but the model has "
                            f"{out_units} output units (labels must be 0..{out_units - 1})", loc, source=src)
    else:
        y = ds.y.reshape(len(ds.y), -1) if ds.y.ndim == 1 else ds.y
        if y.shape[1:] != (out_units,):
            raise DataError(f"{ds.name}: the targets have {y.shape[1] if y.ndim > 1 else 1} column(s) but "
                            f"the model's output has {out_units} unit(s)", loc, source=src)
        ds.y = np.ascontiguousarray(y, np.float32)


def fit(program, *, epochs: Optional[int] = None, seed: Optional[int] = None, out: Optional[TextIO] = None,
        quiet: bool = False, data=None, validation_data=None,
        on_epoch: Optional[Callable[[int, dict, object], None]] = None) -> History:
    t = program.ast.train
    if t is None:
        raise TrainingError("the program has no train block", program.ast.model.loc, source=program.ast.source)
    epochs = t.epochs if epochs is None else int(epochs)
    seed = t.seed if seed is None else int(seed)
    out = out or sys.stdout
    say = (lambda s: None) if quiet else (lambda s: print(s, file=out, flush=True))
    train, val = load_datasets(program, data, validation_data)
    trainer = program.trainer(seed=seed)
    es = None
    if t.early_stopping is not None:
        e = t.early_stopping
        if e.monitor.startswith("val_") and val is None:
            raise TrainingError(f"early stopping monitors '{e.monitor}' but there is no validation data",
                                e.loc, source=program.ast.source)
        es = EarlyStopping(e.monitor, e.mode, e.patience, e.min_delta, e.start_from_epoch)
    restore_best = bool(t.early_stopping and t.early_stopping.restore_best)
    best_snapshot = None
    hist = History(trainer=trainer)
    shuffle_rng = np.random.default_rng([seed, 0x5EED])
    x, y = train.x, train.y
    t0 = time.perf_counter()
    say(f"Training {program.ast.model.name}: {len(train)} samples"
        + (f", {len(val)} for validation" if val is not None else "")
        + f", {epochs} epochs, batch size {t.batch_size}")
    stop_reason = None
    with np.errstate(all="ignore"):
        for epoch in range(epochs):
            sums: dict[str, float] = {}
            for idx in datamod.batches(len(x), t.batch_size, shuffle_rng):
                m = trainer.train_batch(x[idx], y[idx])
                for k, v in m.items():
                    sums[k] = sums.get(k, 0.0) + v * len(idx)
            logs = {k: v / len(x) for k, v in sums.items()}
            if val is not None:
                logs.update({f"val_{k}": v for k, v in trainer.evaluate(val.x, val.y, max(t.batch_size, 256)).items()})
            for k, v in logs.items():
                hist.history.setdefault(k, []).append(v)
            hist.epochs_run = epoch + 1
            if on_epoch:
                on_epoch(epoch, logs, trainer)
            finite = all(math.isfinite(v) for v in logs.values())
            if epoch % t.log_every == 0 or epoch == epochs - 1 or not finite:
                say(f"Epoch: {epoch} Loss: {_fmt(logs['loss'])}" + "".join(
                    f" {k}: {_fmt(v)}" for k, v in logs.items() if k != "loss"))
            if not finite:
                bad = [k for k, v in logs.items() if not math.isfinite(v)]
                stop_reason = f"non-finite {', '.join(bad)} at epoch {epoch}"
                hist.stopped_epoch = epoch
                break
            if es is not None:
                improved, stop = es.update(epoch, logs.get(es.monitor, float("nan")))
                if improved and restore_best:
                    best_snapshot = trainer.snapshot()
                if stop:
                    hist.stopped_epoch = epoch
                    stop_reason = "early stopping"
                    break
    hist.seconds = time.perf_counter() - t0
    parts = []
    if stop_reason == "early stopping":
        parts.append(f"Early stopping: stopped at epoch {hist.stopped_epoch}")
    elif stop_reason:
        parts.append(f"Training stopped: {stop_reason}")
    else:
        parts.append(f"Finished {hist.epochs_run} epochs")
    if es is not None and es.best_epoch is not None:
        hist.best_epoch, hist.best_value = es.best_epoch, es.best
        parts.append(f"best epoch {es.best_epoch}, {es.monitor} {_fmt(es.best)}")
        if restore_best and best_snapshot is not None and es.best_epoch != hist.epochs_run - 1:
            trainer.restore(best_snapshot)
            hist.restored = True
            parts.append("weights restored")
    hist.message = "; ".join(parts) + f" ({hist.seconds:.1f} s)"
    say(hist.message)
    at = hist.best_epoch if hist.restored else hist.epochs_run - 1
    final = {k: v[at] for k, v in hist.history.items()} if hist.history else {}
    if final:
        label = f"Final (epoch {at}, restored weights)" if hist.restored else "Final"
        say(f"{label}: " + " ".join(f"{k}: {_fmt(v)}" for k, v in final.items()))
    hist.stop_reason = stop_reason
    return hist
