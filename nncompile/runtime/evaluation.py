"""Data for a program, checked against it, and the one `evaluate`: loss and
metrics of some weights in inference mode (the fit loop's validation, through
Trainer.evaluate, and `nncompile evaluate`)."""
from __future__ import annotations

import numpy as np

from ..errors import DataError
from ..ir.ops import NP_DTYPE
from . import data as datamod


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
            check_labels(program, ds)
    return data, val


def check_labels(program, ds) -> None:
    """Refuse targets that do not fit the loss and the output layer; make
    float targets [N, units] float32 (in place)."""
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


def evaluate(program, weights: dict, ds, batch_size: int = 1024) -> dict[str, float]:
    """Loss and metrics of `weights` (name -> array: the inference tensors, on
    the host or the backend's own, as a Trainer's model_state) on a Dataset:
    means over the samples, each batch weighted by its size."""
    check_labels(program, ds)
    n = len(ds)
    if n == 0:
        raise DataError(f"{ds.name}: no samples to evaluate")
    run = program.compiled("evaluate")
    g = program.graphs.evaluate
    xname = program.ast.model.input.name
    names = list(g.inputs)
    base = {k: run.to_device(v) for k, v in weights.items()}
    sums: dict[str, float] = {}
    for i in range(0, n, batch_size):
        xb, yb = ds.x[i:i + batch_size], ds.y[i:i + batch_size]
        feed = {**base, xname: run.to_device(xb, NP_DTYPE[g.inputs[xname].dtype]),
                "y": run.to_device(yb, NP_DTYPE[g.inputs["y"].dtype])}
        with np.errstate(all="ignore"):
            outs = run.runner(len(xb))(*[feed[k] for k in names])
        for k, v in zip(g.outputs, outs):
            sums[k] = sums.get(k, 0.0) + float(v) * len(xb)
    return {k: v / n for k, v in sums.items()}
