"""Data for a program, checked against it, and the one `evaluate`: loss and
metrics of some weights in inference mode (the fit loop's validation, through
Trainer.evaluate, and `nncompile evaluate`)."""
from __future__ import annotations

import numpy as np

from ..errors import DataError
from ..ir.ops import NP_DTYPE
from . import data as datamod


def load_datasets(program, data=None, validation_data=None, validation_split: float = 0.0, sample_weight=None):
    """(train, val or None) as Datasets, checked against the model's shapes.
    `validation_data` (a pair, a triple with sample weights, or a Dataset), else
    `validation_split` (Keras's: the last part of the data), else the file's
    validation setting. `sample_weight` [N]: the data's, split with it."""
    t = program.ast.train
    if data is None and t.data is None:
        raise DataError("the train block has no `data` setting and no data was passed to fit()",
                        t.loc, source=program.ast.source)
    feature_shape = tuple(program.ast.model.input.shape)
    sparse = t.loss.name == "sparse_categorical_crossentropy"
    kind = "class" if sparse else "float"
    if data is None:
        data = datamod.load_data(t.data, feature_shape=feature_shape, label_kind=kind)
    elif not isinstance(data, datamod.Dataset):
        data = datamod.Dataset(*_pair(program, data, "fit(data=...)"), "fit(data=...)")
    if sample_weight is not None:
        data.w = check_weights(sample_weight, len(data), "sample_weight")
    val = None
    v = t.validation
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 3:
        xv, yv, wv = validation_data
        val = datamod.Dataset(*_pair(program, (xv, yv), "validation_data"), "validation_data")
        val.w = check_weights(wv, len(val), "validation_data's sample weights")
    elif validation_data is not None:
        val = validation_data if isinstance(validation_data, datamod.Dataset) else datamod.Dataset(
            *_pair(program, validation_data, "validation_data"), "validation_data")
    elif validation_split:
        data, val = keras_split(data, validation_split)
    elif v is not None:
        if v.data is not None:
            val = datamod.load_data(v.data, feature_shape=feature_shape, label_kind=kind)
            if sparse:
                val = datamod.with_label_names(val, data.label_names, data.name)
        else:
            data, val = datamod.split(data, v.fraction, seed=v.seed, stratify=v.stratify, shuffle=v.shuffle)
    for ds in (data, val):
        if ds is not None:
            check_labels(program, ds)
    return data, val


def check_weights(w, n: int, what: str) -> np.ndarray:
    """Sample weights as float64 [n]: one finite number per sample ([n, 1] accepted).
    Not rounded to float32 here: each graph converts them to its own float dtype."""
    w = _numeric(w, what)
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.shape != (n,):
        raise ValueError(f"{what} has shape {list(w.shape)}, expected [{n}] (one weight per sample)")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{what}: sample {int(np.flatnonzero(~np.isfinite(w))[0])} has a non-finite weight")
    return np.ascontiguousarray(w, np.float64)


def class_weights(y: np.ndarray, class_weight) -> np.ndarray:
    """Keras's class_weight as sample weights: each sample's class (its label, the
    argmax of a one-hot row, a single 0/1 target rounded) weighs class_weight[c],
    1 for a class left out."""
    if not isinstance(class_weight, dict) or not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool)
                                                     for k in class_weight):
        raise ValueError(f"class_weight must be a dict of class index (int): weight, got {class_weight!r}")
    y = np.asarray(y)
    if y.ndim > 1:
        y = np.argmax(y, axis=-1) if y.shape[-1] != 1 else y[..., 0]
    cls = np.round(y).astype(np.int64)
    table = np.ones(max([int(cls.max()) + 1 if len(cls) else 0, *[int(k) + 1 for k in class_weight]]), np.float32)
    for k, v in class_weight.items():
        table[int(k)] = float(v)
    return table[cls]


def keras_split(ds, fraction: float):
    """Keras's validation_split: the first ceil(N (1 - fraction)) samples train,
    the rest validate, in their order (taken before any shuffling)."""
    import math
    f = float(fraction)
    if not 0.0 < f < 1.0:
        raise ValueError(f"validation_split must be between 0 and 1 (exclusive), got {fraction!r}")
    cut = int(math.ceil(len(ds) * (1.0 - f)))
    if cut < 1 or cut >= len(ds):
        raise DataError(f"{ds.name}: validation_split={f:g} of {len(ds)} samples leaves "
                        f"{'no training' if cut < 1 else 'no validation'} samples")
    return ds.part(slice(0, cut), "training part"), ds.part(slice(cut, None), "validation split")


def _pair(program, data, what: str) -> tuple:
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValueError(f"{what} must be a pair (x, y) of arrays, got {type(data).__name__}"
                         + (f" of length {len(data)}" if isinstance(data, (tuple, list)) else ""))
    return check_batch(program, data[0], data[1], what)


def check_labels(program, ds, loc=None) -> None:
    """The one check of targets against the program, for `run`, `evaluate` and
    validation: their shape against the loss and the output layer, finite
    values, sparse labels integers in [0, units), binary/categorical targets in
    [0, 1] (categorical rows summing to 1). Errors point at `loc` (default: the
    data setting). Float targets become [N, units] float32 (in place)."""
    t = program.ast.train
    src = program.ast.source
    if loc is None:
        loc = t.setting_locs.get("data", t.data.loc if t.data else t.loc)
    units = program.graphs.infos[-1].out_shape[-1] if program.graphs.infos else None
    loss = t.loss.name
    y = np.asarray(ds.y)
    if loss == "sparse_categorical_crossentropy":
        if y.ndim != 1:
            raise DataError(f"{ds.name}: sparse_categorical_crossentropy needs one integer label per "
                            f"sample, but the targets have shape {list(y.shape)}", loc, source=src,
                            hint="use categorical_crossentropy for one-hot targets")
    else:
        cols = y.reshape(len(y), -1) if y.ndim == 1 else y
        if cols.shape[1:] != (units,):
            raise DataError(f"{ds.name}: the targets have {cols.shape[1] if cols.ndim > 1 else 1} column(s) but "
                            f"the model's output has {units} unit(s)", loc, source=src)
    names = ds.label_names
    if names is not None and units is not None and len(names) > units:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise DataError(f"{ds.name}: the labels name {len(names)} classes ({shown}), but the model has {units} "
                        "output units", loc, source=src,
                        hint=f"make the last layer {len(names)} units wide")
    if len(y) and units is not None:
        _check_values(ds, y, loss, units, loc, src)
    if loss != "sparse_categorical_crossentropy":
        ds.y = np.ascontiguousarray(y.reshape(len(y), -1), np.float32)


def _check_values(ds, y, loss, units, loc, src) -> None:
    if np.issubdtype(y.dtype, np.floating):
        flat = y.reshape(len(y), -1)
        bad = ~np.isfinite(flat).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{ds.name}: {ds.where(i)} has a non-finite target ({flat[i].tolist()[:8]})", loc,
                            source=src)
    if loss == "sparse_categorical_crossentropy":
        flat = y.reshape(-1)
        bad = (flat < 0) | (flat >= units)
        if np.issubdtype(y.dtype, np.floating):
            bad |= flat != np.round(flat)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            v = flat[i]
            shown = int(v) if float(v).is_integer() else float(v)
            raise DataError(f"{ds.name}: {ds.where(i)} has label {shown}, but the model has {units} output "
                            f"units (labels must be integers 0..{units - 1})", loc, source=src,
                            hint=f"make the last layer {max(units, int(np.nanmax(flat)) + 1)} units wide, "
                                 "or fix the labels")
    elif loss in ("binary_crossentropy", "categorical_crossentropy"):
        flat = y.reshape(len(y), -1)
        bad = ((flat < 0) | (flat > 1)).any(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            row = flat[i]
            v = row[(row < 0) | (row > 1)][0]
            raise DataError(f"{ds.name}: {ds.where(i)} has target {float(v):g}, but {loss} needs targets in "
                            f"[0, 1]", loc, source=src,
                            hint="for integer class labels use sparse_categorical_crossentropy")
        if loss == "categorical_crossentropy" and flat.shape[1] == units and flat.shape[1] > 1:
            sums = flat.sum(axis=1)
            off = np.abs(sums - 1.0) > 1e-3
            if off.any():
                i = int(np.flatnonzero(off)[0])
                raise DataError(f"{ds.name}: {ds.where(i)}: the targets sum to {float(sums[i]):g}, but "
                                "categorical_crossentropy needs one-hot (or probability) rows summing to 1",
                                loc, source=src)


def _numeric(a, what: str) -> np.ndarray:
    try:
        arr = np.asarray(a)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"{what} must be an array of numbers ({type(e).__name__}: {e})") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{what} must hold numbers, got dtype {arr.dtype}")
    return arr


def first_bad_label(y: np.ndarray, units: int):
    """The index of the first int64 label outside [0, units), or None. One pass when
    all are good: a negative label read as uint64 is above any class count."""
    if len(y) == 0 or int(y.view(np.uint64).max()) < units:
        return None
    return int(np.argmax((y < 0) | (y >= units)))


def check_batch(program, x, y=None, what: str = "") -> tuple:
    """x (and y) of an API call (loss_and_grads, Trainer.step, predict, fit(data=...))
    as the compiled step needs them: x [N, *input shape] float, y the loss's labels
    ([N] integers for sparse labels, [N, units] floats otherwise, [N] accepted for
    one unit). A wrong shape, dtype or length is a ValueError naming what was expected."""
    inp = program.ast.model.input
    shape = tuple(inp.shape)
    label = f"{what}: " if what else ""
    x = _numeric(x, f"{label}x")
    if x.ndim == 0 or tuple(x.shape[1:]) != shape:
        n = int(np.prod(shape))
        if not (x.ndim == 2 and x.shape[1] == n):
            raise ValueError(f"{label}x has shape {list(x.shape)}, expected [N, {', '.join(map(str, shape))}] "
                             f"(input '{inp.name}': f32[{', '.join(map(str, shape))}])")
        x = x.reshape((len(x),) + shape)
    # the dtype is the compiled graph's (f32, or f64 under float_dtype="f64"): Program._inputs
    # converts, so a float64 batch is not rounded to float32 here
    if y is None:
        return x, None
    t = program.ast.train
    y = _numeric(y, f"{label}y")
    if len(y) != len(x) if y.ndim else True:
        raise ValueError(f"{label}x has {len(x)} samples but y has {len(y) if y.ndim else 'no axis'}; "
                         "expected one target per sample")
    units = program.graphs.infos[-1].out_shape[-1] if program.graphs.infos else shape[-1]
    if t is not None and t.loss.name == "sparse_categorical_crossentropy":
        if y.ndim != 1 or (y.dtype.kind == "f" and not np.all(y == np.round(y))):
            raise ValueError(f"{label}y has shape {list(y.shape)} (dtype {y.dtype}), expected [{len(x)}] integer "
                             "class labels (sparse_categorical_crossentropy)")
        y = np.ascontiguousarray(y, np.int64)
        bad = first_bad_label(y, units)
        if bad is not None:
            raise ValueError(f"{label}y[{bad}] = {int(y[bad])} is not a class index: expected 0..{units - 1} "
                             f"(the output has {units} units)")
        return x, y
    if y.ndim == 1 and units == 1:
        y = y.reshape(-1, 1)
    if y.shape[1:] != (units,):
        raise ValueError(f"{label}y has shape {list(y.shape)}, expected [{len(x)}, {units}] "
                         f"(one target per output unit)")
    return x, y


def evaluate(program, weights: dict, ds, batch_size: int = 1024) -> dict[str, float]:
    """Loss and metrics of `weights` (name -> array: the inference tensors, on
    the host or the backend's own, as a Trainer's model_state) on a Dataset:
    means over the samples, each batch weighted by its size (a metric's
    statistics so, then its value from them: Program.metric_logs)."""
    return program.metric_logs(evaluate_means(program, weights, ds, batch_size))


def evaluate_means(program, weights: dict, ds, batch_size: int = 1024) -> dict:
    """The evaluate graph's outputs (the loss, mean metrics, metrics' statistics)
    as means over the samples of `ds`, before Program.metric_logs finishes them:
    what data-parallel workers average over their shards (runtime/distributed.py)."""
    check_labels(program, ds)
    n = len(ds)
    if n == 0:
        raise DataError(f"{ds.name}: no samples to evaluate")
    run = program.compiled("evaluate")
    g = program.graphs.evaluate
    xname = program.ast.model.input.name
    names = list(g.inputs)
    base = {k: run.to_device(v) for k, v in weights.items()}
    sums: dict = {}
    outputs = [(k, node.shape == ()) for k, node in g.outputs.items()]
    for i in range(0, n, batch_size):
        xb, yb = ds.x[i:i + batch_size], ds.y[i:i + batch_size]
        feed = {**base, xname: run.to_device(xb, NP_DTYPE[g.inputs[xname].dtype]),
                "y": run.to_device(yb, NP_DTYPE[g.inputs["y"].dtype])}
        if "sample_weight" in g.inputs:
            wb = np.ones(len(xb)) if ds.w is None else ds.w[i:i + batch_size]
            feed["sample_weight"] = run.to_device(wb, NP_DTYPE[g.inputs["sample_weight"].dtype])
        with np.errstate(all="ignore"):
            outs = run.runner(len(xb))(*[feed[k] for k in names])
        for (k, scalar), v in zip(outputs, outs):
            v = float(v) if scalar else np.array(run.to_host(v), np.float64)
            sums[k] = sums.get(k, 0.0) + v * len(xb)
    return {k: v / n for k, v in sums.items()}
