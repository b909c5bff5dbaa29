"""Pre-flight checks of meaning: the program and its loaded data, before training.

    warnings = preflight(program, train, val, epochs=epochs)   # raises on errors
    for w in warnings:
        print(w, file=sys.stderr)                               # model.nn:L:C: warning: ...

The frontend checks what the text alone can tell; these checks need the data
(or the final number of epochs). Errors are raised (`DataError` for the data,
`TrainingError` / `CompileError` for the settings); warnings are returned as
`CompileWarning`s, which print like errors with the kind "warning":

errors
  * a softmax/sigmoid output with a from_logits loss (the frontend reports it
    first; kept here for programs built without it)
  * labels outside what the output can produce, naming the first bad sample:
    sparse labels not integers in [0, units); binary / categorical targets
    outside [0, 1]; non-finite targets
  * a val_* metric monitored (early_stopping, reduce_on_plateau) without
    validation data
warnings
  * patience >= epochs (early_stopping or reduce_on_plateau can never act)
  * a class of the training data missing from the validation data
  * binary_crossentropy on a softmax output with more than one unit
  * softmax over a single unit (its output is always 1)
  * accuracy as a metric of a regression loss (mse, mae)
  * every layer with parameters frozen (nothing to train)
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import CompileError, DataError, NNError, TrainingError
from ..frontend.ast import final_activation
from .evaluation import check_labels

__all__ = ["CompileWarning", "preflight"]


class CompileWarning(NNError):
    """Something probably wrong that does not stop the run."""

    kind = "warning"


def _classes(y: np.ndarray, loss: str, units: int) -> Optional[np.ndarray]:
    """The class of each sample, for classification losses; None otherwise."""
    if len(y) == 0:
        return None
    if loss == "sparse_categorical_crossentropy":
        return np.asarray(y).astype(np.int64).reshape(-1)
    if loss == "categorical_crossentropy":
        return np.asarray(y).reshape(len(y), -1).argmax(axis=1)
    if loss == "binary_crossentropy" and units == 1:
        return (np.asarray(y).reshape(-1) >= 0.5).astype(np.int64)
    return None


def preflight(program, train, val=None, *, epochs: Optional[int] = None) -> list[CompileWarning]:
    """Check the program against its loaded data (`train`, `val`: Datasets with .x, .y, .name;
    `val` None without validation data) and the run's number of epochs (default: the
    file's). Raises the first error; returns the warnings, in a stable order."""
    prog = program.ast
    t = prog.train
    if t is None:
        return []
    src = prog.source
    epochs = t.epochs if epochs is None else int(epochs)
    warnings: list[CompileWarning] = []
    warn = lambda msg, loc, hint=None: warnings.append(CompileWarning(msg, loc, source=src, hint=hint))  # noqa: E731
    units = program.graphs.infos[-1].out_shape[-1] if program.graphs.infos else None
    last = final_activation(prog.model)
    loss_loc = t.setting_locs.get("loss", t.loss.loc)

    # --- the output and the loss
    if t.loss.from_logits and last in ("softmax", "sigmoid"):
        raise CompileError(f"from_logits=true but the model's last layer already applies {last}", t.loss.loc,
                           source=src, hint="either drop from_logits=true, or make the last layer linear")
    if t.loss.name == "binary_crossentropy" and last == "softmax" and units is not None and units > 1:
        warn(f"binary_crossentropy on a softmax output with {units} units: each unit is treated as an "
             "independent yes/no, but softmax makes them compete", loss_loc,
             hint="use categorical_crossentropy (one-hot targets) or sparse_categorical_crossentropy "
                  "(integer labels) with softmax, or sigmoid units for multi-label targets")

    if last == "softmax" and units == 1:
        warn("softmax over a single unit always outputs 1.0: the model cannot learn anything",
             program.graphs.infos[-1].layer.loc,
             hint="for a yes/no output use sigmoid with binary_crossentropy; for K classes use K softmax units")
    regression = t.loss.name in ("mse", "mae")
    if regression and any(str(m).split("(")[0] == "accuracy" for m in t.metrics):
        warn(f"accuracy with the regression loss {t.loss.name}: accuracy compares predicted classes, which "
             "a regression output does not have", t.setting_locs.get("metrics", t.loc),
             hint="drop accuracy (mse and mae are metrics too), or use a classification loss")

    # --- labels
    data_loc = t.setting_locs.get("data", t.loc)
    check_labels(program, train, data_loc)
    if val is not None:
        val_loc = t.validation.loc if t.validation is not None else t.loc
        check_labels(program, val, val_loc if t.validation is not None and t.validation.data else data_loc)

    # --- monitors and patience
    monitors = []
    if t.early_stopping is not None:
        e = t.early_stopping
        monitors.append(("early_stopping", e.monitor, e.patience, e.loc))
    if t.schedule is not None and t.schedule.kind == "reduce_on_plateau":
        s = t.schedule
        mloc = s.param_locs.get("monitor", s.loc) if s.param_locs else s.loc
        ploc = s.param_locs.get("patience", s.loc) if s.param_locs else s.loc
        monitors.append(("reduce_on_plateau", s.params["monitor"], s.params["patience"], (mloc, ploc)))
    for what, mon, patience, loc in monitors:
        mloc, ploc = loc if isinstance(loc, tuple) else (loc, loc)
        if mon.startswith("val_") and val is None:
            raise TrainingError(f"{what} monitors '{mon}' but there is no validation data", mloc, source=src,
                                hint="add e.g.  validation = split(0.2), or monitor 'loss'")
        if patience >= epochs:
            warn(f"{what} patience ({patience}) >= epochs ({epochs}): it can never "
                 + ("stop training" if what == "early_stopping" else "reduce the learning rate"), ploc,
                 hint=f"use a patience below {epochs}, or train for more epochs")

    # --- classes in the validation split
    if val is not None and units is not None:
        ct = _classes(train.y, t.loss.name, units)
        cv = _classes(val.y, t.loss.name, units)
        if ct is not None and cv is not None:
            missing = sorted(set(np.unique(ct).tolist()) - set(np.unique(cv).tolist()))
            if missing:
                shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
                vloc = t.validation.loc if t.validation is not None else t.loc
                strat = (t.validation is not None and t.validation.fraction is not None
                         and not t.validation.stratify)
                warn(f"{len(missing)} class{'es' if len(missing) > 1 else ''} of the training data "
                     f"{'are' if len(missing) > 1 else 'is'} missing from the validation data ({val.name}): "
                     f"{shown}", vloc,
                     hint="use split(..., stratify=true)" if strat else "validation metrics will not cover them")

    # --- nothing to train
    with_params = [info.layer for info in program.graphs.infos if any(p.role == "param" for p in info.params)]
    if with_params and all(getattr(L, "frozen", False) or getattr(L, "lr_mult", 1.0) == 0 for L in with_params):
        warn("every layer is frozen (or has lr_mult=0): training will not change the model",
             with_params[-1].loc, hint="unfreeze at least the last layer")
    return warnings


def format_warnings(warnings) -> str:
    """All warnings, one block each, for printing to stderr."""
    return "\n".join(str(w) for w in warnings)

