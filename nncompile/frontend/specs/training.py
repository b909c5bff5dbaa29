"""Spec rows of the train block: its settings, and the losses, optimizers,
schedules, `split`, early stopping and `weights` they take."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from ...errors import did_you_mean, expected_one_of
from ..ast import (EarlyStoppingSpec, InitFromSpec, LossSpec, MetricName, OptimizerSpec, ScheduleSpec,
                   ValidationSpec, final_activation)
from ..layers import LAYERS
from ..layers.activations import resolve as resolve_activation
from ..raw import MAX_DIM, RCall, RDict, RList, RName, RNum, RStr, describe, short
from ..values import fmt
from .core import Arg, Derived, Scope, Spec
from .sources import DATA_SOURCES, read_augment, read_data
from .types import ArgType, Bool, Choice, Float, Int, Path

# ------------------------------------------------------------------ metrics
# Keras 3's names and arguments; how each is computed is its row in frontend/metrics.py

THRESHOLD = Arg("threshold", Float(0.0, 1.0), 0.5, "a probability above it counts as a positive prediction",
                positional=True)
TOP_K = Arg("k", Int(1), 5, "how many of the highest scores may hold the true class", positional=True)
METRIC_SPECS = {s.name: s for s in (
    Spec("accuracy", (), doc="argmax against the label (sparse / categorical), else the output above 0.5 "
                             "(above 0 with from_logits)"),
    Spec("binary_accuracy", (THRESHOLD,), doc="the share of outputs whose `> threshold` matches the 0/1 target"),
    Spec("top_k_categorical_accuracy", (TOP_K,), doc="the true class is among the k highest scores"),
    Spec("sparse_top_k_categorical_accuracy", (TOP_K,), doc="the same, under Keras's name for integer labels"),
    Spec("precision", (replace(THRESHOLD, name="thresholds"),), doc="`tp / (tp + fp)` of `output > thresholds`, "
                                                                    "over every output unit (micro)"),
    Spec("recall", (replace(THRESHOLD, name="thresholds"),), doc="`tp / (tp + fn)`, likewise"),
    Spec("f1_score", (THRESHOLD,), doc="`2 tp / (2 tp + fp + fn)`, likewise (Keras `F1Score(average=\"micro\", "
                                       "threshold=0.5)`)"),
    Spec("auc", (Arg("num_thresholds", Int(2, 10_000), 200, "thresholds evenly spaced over [0, 1]",
                     positional=True),),
         doc="area under the ROC curve, Keras's trapezoids over its thresholds (micro over the units)"),
    Spec("mse", (), doc="mean squared error"),
    Spec("mae", (), doc="mean absolute error"),
    Spec("rmse", (), doc="root of the mean squared error over the epoch"),
    Spec("root_mean_squared_error", (), doc="the same, under Keras's class name"),
)}
METRICS = tuple(METRIC_SPECS)
# the step's precision; Keras's policy names are aliases
PRECISIONS = ("f32", "mixed_bf16", "mixed_f16")
PRECISION_ALIASES = {"float32": "f32", "mixed_bfloat16": "mixed_bf16", "mixed_float16": "mixed_f16"}


class Setting(ArgType):
    """A train setting whose value is itself a call or a list: `read(scope, raw, label)`
    builds its AST node; `text` says in the docs what it takes."""

    def __init__(self, read: Callable, text: str):
        self._read, self.text = read, text

    def read(self, scope, v, label):
        return self._read(scope, v, label)

    def describe(self):
        return self.text


# ------------------------------------------------------------------ monitored metrics

def logged_metrics(scope: Scope) -> list[str]:
    """What a run logs: loss, each metric, and with validation their val_ forms."""
    metrics, has_val = scope.settings["metrics"], scope.settings["validation"] is not None
    metrics = (*metrics, *scope.settings.get("weighted_metrics", ()))
    logged = ["loss", *metrics]
    if has_val:
        logged += ["val_loss", *[f"val_{m}" for m in metrics]]
    return logged


class Monitor(ArgType):
    """The name of a logged metric."""

    def read(self, scope, mv, label):
        logged = logged_metrics(scope)
        has_val = scope.settings["validation"] is not None
        if isinstance(mv, RName):
            mon = mv.dotted
        elif isinstance(mv, RStr):
            mon = mv.value
        else:
            raise scope.err(f"monitor must name a logged metric, got {describe(mv)}", mv.loc,
                            hint="the logged metrics are: " + ", ".join(logged))
        if mon not in logged:
            why = ""
            if mon.startswith("val_") and not has_val:
                why = " (there is no validation setting, so nothing val_* is logged)"
            elif mon.startswith("val_") and mon[4:] in METRICS or mon in METRICS:
                why = f" ('{mon.removeprefix('val_')}' is not in metrics)"
            raise scope.err(f"monitor '{short(mon)}' is not a logged metric{why}", mv.loc,
                            hint="the logged metrics are: " + ", ".join(logged) + did_you_mean(mon, logged))
        return mon

    def describe(self):
        return "a logged metric (§5.4)"


def resolve_mode(mode: str, monitor: str) -> str:
    """'auto' is the metric's own direction (Keras 3): 'max' for accuracy, precision,
    recall, f1_score, auc (and their val_ forms), 'min' for the loss and the errors."""
    if mode != "auto":
        return mode
    from ..metrics import direction
    try:
        return direction(monitor)
    except ValueError:
        return "min"


def _resolve_mode(scope: Scope) -> None:
    scope.values["mode"] = resolve_mode(scope.values["mode"], scope.values["monitor"])


MONITOR = Arg("monitor", Monitor(), Derived(
    lambda s: "val_loss" if s.settings["validation"] is not None else "loss",
    "`val_loss` with validation, else `loss`"), "the logged metric to watch")
MODE = Arg("mode", Choice(("auto", "min", "max")), "auto",
           "whether the monitor should go down or up; `auto`: the metric's direction (§5.8): `max` for the "
           "accuracies, precision, recall, f1_score, auc, `min` for the loss and the errors")

EARLY_STOPPING = Spec("early_stopping", (
    MONITOR,
    MODE,
    Arg("patience", Int(0), 0, "epochs without improvement before stopping"),
    Arg("min_delta", Float(0.0), 0.0, "the least change that counts as an improvement"),
    Arg("restore_best", Bool(), True, "end with the best epoch's weights", aliases=("restore_best_weights",)),
    Arg("start_from_epoch", Int(0), 0, "epochs before any stopping"),
), rules=(_resolve_mode,))


def read_early_stopping(scope: Scope, v, what: str) -> EarlyStoppingSpec:
    if not isinstance(v, RDict):
        raise scope.err(f"early_stopping must be a dict, got {describe(v)}", v.loc,
                        hint="expected e.g. { monitor: val_loss, patience: 10 }")
    es = scope.enter(EARLY_STOPPING, v.loc, what)
    es.raw = EARLY_STOPPING.bind_entries(scope.reader, v.entries, what)
    return EarlyStoppingSpec(**EARLY_STOPPING.validate(es).values, loc=v.loc)


# ------------------------------------------------------------------ losses

CROSSENTROPY = ("binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy")


def _only_crossentropy_logits(scope: Scope) -> None:
    for key in ("from_logits", "label_smoothing"):
        if scope.values[key]:
            raise scope.err(f"{key} only applies to cross-entropy losses, not {scope.spec.name}",
                            scope.raw[key].loc)


def _logits_need_linear_output(scope: Scope) -> None:
    if not scope.values["from_logits"]:
        return
    last = final_activation(scope.model)
    if last is not None and resolve_activation(last)[0].keeps_logits:
        raise scope.err(f"from_logits=true but the model's last layer already applies {last}",
                        scope.raw["from_logits"].loc,
                        hint="either drop from_logits=true, or make the last layer linear")


FROM_LOGITS = Arg("from_logits", Bool(), False,
                  "the model's output is logits (its last activation is linear); cross-entropy losses only")
LABEL_SMOOTHING = Arg("label_smoothing", Float(0.0, 1.0), 0.0,
                      "targets `y (1 - ls) + ls / K` over K classes (binary: `y (1 - ls) + ls / 2`), as Keras; "
                      "cross-entropy losses only (sparse labels as their one-hot rows, as PyTorch)")
LOSSES = {name: Spec(name, (FROM_LOGITS, LABEL_SMOOTHING), doc, rules=(
    _logits_need_linear_output if name in CROSSENTROPY else _only_crossentropy_logits,)) for name, doc in (
    ("mse", "mean squared error"),
    ("mae", "mean absolute error"),
    ("binary_crossentropy", "targets in [0, 1], one per output unit"),
    ("categorical_crossentropy", "one-hot (or probability) target rows"),
    ("sparse_categorical_crossentropy", "integer class labels"),
)}


def read_loss(scope: Scope, v, what: str) -> LossSpec:
    name_v, args = (v.name, v.args) if isinstance(v, RCall) else (v, [])
    name = scope.reader.get_choice(name_v, "loss", tuple(LOSSES))
    call = LOSSES[name].call(scope, args, f"loss {name}", v.loc)
    return LossSpec(name=name, from_logits=call.values["from_logits"], loc=v.loc,
                    label_smoothing=call.values["label_smoothing"])


# ------------------------------------------------------------------ optimizers

def _nesterov_needs_momentum(scope: Scope) -> None:
    if scope.values["nesterov"] and scope.values["momentum"] <= 0:
        raise scope.err("nesterov=true needs momentum > 0", scope.raw["nesterov"].loc, hint="add e.g. momentum=0.9")


def _lr(default: float) -> Arg:
    return Arg("lr", Float(0.0, lo_open=True), default, "the learning rate", positional=True,
               aliases=("learning_rate",), label="lr (learning rate)")


def _one_way_of_clipping(scope: Scope) -> None:
    given = [k for k in CLIPPING if scope.values[k] is not None]
    if len(given) > 1:
        raise scope.err(f"{given[0]} and {given[1]} are both set; gradients are clipped one way",
                        scope.raw[given[1]].loc, hint=f"keep one of {', '.join(CLIPPING)}")


# Keras 3's clipping arguments of every optimizer (passes/optimizer.py: clip_gradients).
# Keras refuses clipnorm with global_clipnorm and silently ignores clipvalue beside
# either; here any two are an error
CLIP_ARGS = (
    Arg("clipnorm", Float(0.0, lo_open=True), None,
        "clip each gradient to this L2 norm, by its own norm: `g * c / max(norm(g), c)`"),
    Arg("global_clipnorm", Float(0.0, lo_open=True), None,
        "clip all gradients together to this L2 norm: `g * c / max(N, c)`, N the norm of them all"),
    Arg("clipvalue", Float(0.0, lo_open=True), None, "clip each gradient element to `[-c, c]`"),
)
CLIPPING = tuple(a.name for a in CLIP_ARGS)

MOMENTUM = Arg("momentum", Float(0.0, 1.0, hi_open=True), 0.0, "momentum (0: none)")
EPS = Arg("eps", Float(0.0, lo_open=True), 1e-7, "added to the denominator, outside the square root",
          aliases=("epsilon",))
ADAM = Spec("adam", (
    _lr(0.001),
    Arg("beta1", Float(0.0, 1.0, hi_open=True), 0.9, "decay of the first-moment estimate", aliases=("beta_1",)),
    Arg("beta2", Float(0.0, 1.0, hi_open=True), 0.999, "decay of the second-moment estimate", aliases=("beta_2",)),
    EPS,
    *CLIP_ARGS,
), doc="Adam, with the bias-corrected learning rate", rules=(_one_way_of_clipping,))
OPTIMIZERS = {s.name: s for s in (
    Spec("sgd", (
        _lr(0.01),
        MOMENTUM,
        Arg("nesterov", Bool(), False, "Nesterov momentum (needs momentum > 0)"),
        *CLIP_ARGS,
    ), doc="stochastic gradient descent", rules=(_nesterov_needs_momentum, _one_way_of_clipping)),
    ADAM,
    ADAM.extend("adamw", Arg("weight_decay", Float(0.0), 0.004, "decoupled weight decay, scaled by lr"),
                doc="Adam with decoupled weight decay"),
    Spec("rmsprop", (
        _lr(0.001),
        Arg("rho", Float(0.0, 1.0, hi_open=True), 0.9, "decay of the mean square"),
        MOMENTUM,
        replace(EPS, doc="added to the mean square, inside the square root (Keras 3's formula)"),
        *CLIP_ARGS,
    ), rules=(_one_way_of_clipping,),
        doc="RMSprop as Keras 3: `v = rho v + (1 - rho) g^2`, `p -= lr g / sqrt(v + eps)` (PyTorch's "
            "RMSprop adds eps outside the square root: the two differ, most where v is small)"),
)}


def read_optimizer(scope: Scope, v, what: str) -> OptimizerSpec:
    name_v, args = (v.name, v.args) if isinstance(v, RCall) else (v, [])
    name = scope.reader.get_choice(name_v, "optimizer", tuple(OPTIMIZERS))
    call = OPTIMIZERS[name].call(scope, args, f"optimizer {name}", v.loc)
    return OptimizerSpec(name=name, params=call.values, loc=v.loc)


# ------------------------------------------------------------------ schedules

def _below_epochs(scope: Scope, warmup: int, raw) -> None:
    epochs = scope.settings["epochs"]
    if warmup >= epochs:
        raise scope.err(f"warmup ({warmup} epochs) must be less than epochs ({epochs})", raw.loc,
                        hint=f"expected an integer in [0, {epochs - 1}]")


def _below_lr(scope: Scope, min_lr: float, raw) -> None:
    lr = scope.settings["optimizer"].params["lr"]
    if min_lr >= lr:
        raise scope.err(f"min_lr ({fmt(min_lr)}) must be less than the optimizer's lr ({fmt(lr)})", raw.loc)


EVERY = Arg("every", Int(1), 10, "epochs per step", positional=True, label="every (epochs)")
MIN_LR = Arg("min_lr", Float(0.0), 0.0, "the lowest learning rate; less than the optimizer's lr", check=_below_lr)
SCHEDULES = {s.name: s for s in (
    Spec("step", (
        EVERY,
        Arg("factor", Float(0.0, 1.0, lo_open=True), 0.5, "the factor per step", positional=True),
    ), doc="`lr * factor ^ floor(e / every)`"),
    Spec("exponential", (
        Arg("rate", Float(0.0, 1.0, lo_open=True), 0.96, "the factor per step", positional=True),
        replace(EVERY, default=1),
    ), doc="`lr * rate ^ floor(e / every)`"),
    Spec("cosine", (
        Arg("warmup", Int(0), 0, "epochs of linear warm-up; less than epochs", positional=True,
            label="warmup (epochs)", check=_below_epochs),
        replace(MIN_LR, positional=True, doc="the learning rate reached at the end; less than the optimizer's lr"),
    ), doc="`e < warmup`: `lr * (e + 1) / warmup` (linear up to lr); then "
           "`min_lr + (lr - min_lr)(1 + cos(pi t / T)) / 2`, `t = e - warmup`, `T = E - warmup` "
           "(min_lr is reached at the end of training)"),
    Spec("reduce_on_plateau", (
        replace(MONITOR, positional=True),
        MODE,
        Arg("factor", Float(0.0, 1.0, lo_open=True, hi_open=True), 0.1, "the factor of each reduction",
            positional=True),
        Arg("patience", Int(0), 10, "epochs without improvement before a reduction", positional=True),
        Arg("min_delta", Float(0.0), 1e-4, "the least change that counts as an improvement"),
        MIN_LR,
        Arg("cooldown", Int(0), 0, "epochs after a reduction that are not counted"),
    ), doc="starts at lr; after `patience` epochs in which the monitor did not beat its best by more than "
           "`min_delta`, `lr = max(lr * factor, min_lr)`; then `cooldown` epochs are not counted (Keras "
           "`ReduceLROnPlateau`). NaN/Inf never improve.", rules=(_resolve_mode,)),
)}


def read_schedule(scope: Scope, v, what: str) -> ScheduleSpec:
    if isinstance(v, RCall):
        name_v, args = v.name, v.args
    elif isinstance(v, (RName, RStr)):
        name_v, args = v, []
    else:
        raise scope.err(f"schedule must be a schedule call, got {describe(v)}", v.loc,
                        hint="expected e.g. step(every=10, factor=0.5), exponential(rate=0.96), "
                             "cosine(warmup=5) or reduce_on_plateau(monitor=val_loss)")
    kind = scope.reader.get_choice(name_v, "schedule", tuple(SCHEDULES))
    call = SCHEDULES[kind].call(scope, args, f"schedule {kind}", v.loc)
    return ScheduleSpec(kind=kind, params=call.values, loc=v.loc,
                        param_locs={k: rv.loc for k, rv in call.raw.items()})


# ------------------------------------------------------------------ validation

SPLIT = Spec("split", (
    Arg("fraction", Float(0.0, 1.0, lo_open=True, hi_open=True), doc="the part held out for validation",
        positional=True, label="validation fraction", example="expected e.g.  split(0.2)"),
    Arg("seed", Int(0), 0, "the seed of the random choice", positional=True),
    Arg("stratify", Bool(), False, "keep each class's proportion on both sides", positional=True),
    Arg("shuffle", Bool(), True, "a random choice (else the last part of the data)", positional=True),
), doc="holds out a fraction of the training data")


def read_validation(scope: Scope, v, what: str) -> ValidationSpec:
    if isinstance(v, RNum):      # shorthand for split(number)
        split = scope.enter(SPLIT, v.loc, "split")
        split.raw = {"fraction": v}
        return ValidationSpec(**SPLIT.validate(split).values, data=None, loc=v.loc)
    if isinstance(v, RCall) and v.name.dotted == "split":
        return ValidationSpec(**SPLIT.call(scope, v.args, "split", v.loc).values, data=None, loc=v.loc)
    if isinstance(v, RCall) and v.name.dotted in DATA_SOURCES:
        d = read_data(scope, v, "validation")
        return ValidationSpec(fraction=None, seed=0, stratify=False, shuffle=False, data=d, loc=v.loc)
    if isinstance(v, RCall):
        raise scope.err(f"unknown validation source '{short(v.name.dotted)}'", v.name.loc,
                        hint=expected_one_of(v.name.dotted, ("split",) + tuple(DATA_SOURCES)))
    raise scope.err(f"validation must be split(fraction) or a data source, got {describe(v)}", v.loc,
                    hint='expected e.g. split(0.2) or csv("val.csv", target="y")')


# ------------------------------------------------------------------ initial weights

class LayerNames(ArgType):
    """Distinct names of layers with parameters of the model."""

    def read(self, scope, lv, label):
        items = lv.items if isinstance(lv, RList) else [lv] if isinstance(lv, (RName, RStr)) else None
        if items is None:
            raise scope.err(f"layers must be a list of layer names, got {describe(lv)}", lv.loc,
                            hint="expected e.g. layers=[h1, h2]")
        if not items:
            raise scope.err("layers must not be an empty list", lv.loc,
                            hint="leave out layers= to load every layer found in the file")
        model = scope.model
        by_name = {L.name: L for L in model.layers}
        with_params = [L.name for L in model.layers if LAYERS[L.kind].has_params]
        names: list[str] = []
        for it in items:
            if isinstance(it, RName) and len(it.parts) == 1:
                n = it.parts[0]
            elif isinstance(it, RStr):
                n = it.value
            else:
                raise scope.err(f"each entry of layers must be a layer name, got {describe(it)}", it.loc)
            if n not in by_name:
                raise scope.err(f"model '{model.name}' has no layer '{short(n)}'", it.loc,
                                hint="layers with parameters: " + ", ".join(with_params) + did_you_mean(n, by_name))
            if n not in with_params:
                raise scope.err(f"{by_name[n].kind} layer '{n}' has no weights to load", it.loc,
                                hint="layers with parameters: " + ", ".join(with_params))
            if n in names:
                raise scope.err(f"layers= names '{n}' twice", it.loc)
            names.append(n)
        return tuple(names)

    def describe(self):
        return "list of layer names"


WEIGHTS = Spec("weights", (
    Arg("path", Path(), doc="an `.npz` archive, relative to the .nn file's folder", positional=True,
        example='expected e.g.  weights("pretrained.npz")'),
    Arg("layers", LayerNames(), None, "the layers to load, each with parameters (default: every one)",
        positional=True),
), doc="initial weights from an `.npz` archive")


def read_init_from(scope: Scope, v, what: str) -> InitFromSpec:
    if not (isinstance(v, RCall) and v.name.dotted == "weights"):
        raise scope.err(f"init_from must be weights(\"file.npz\", ...), got {describe(v)}", v.loc,
                        hint='expected e.g.  init_from = weights("pretrained.npz", layers=[h1, h2])')
    call = WEIGHTS.call(scope, v.args, "weights", v.loc)
    return InitFromSpec(path=call.values["path"], layers=call.values["layers"], loc=v.loc)


# ------------------------------------------------------------------ the train block

def read_metrics(scope: Scope, v, what: str, weighted: bool = False) -> tuple[str, ...]:
    if isinstance(v, (RName, RStr, RCall)):
        items = [v]
    elif isinstance(v, RList):
        items = v.items
    else:
        raise scope.err(f"metrics must be a list of metric names, got {describe(v)}", v.loc,
                        hint="expected e.g. [accuracy]; " + "metrics: " + ", ".join(METRICS))
    out: list[MetricName] = []
    for it in items:
        name_v, args = (it.name, it.args) if isinstance(it, RCall) else (it, [])
        m = scope.reader.get_choice(name_v, "metric", METRICS)
        if m in [x.kind for x in out]:
            raise scope.err(f"metric '{m}' listed twice", it.loc)
        # Keras 3 logs a weighted metric under its name, or weighted_<name> when metrics has it too
        logged = f"weighted_{m}" if weighted and m in scope.settings["metrics"] else m
        out.append(MetricName(logged, METRIC_SPECS[m].call(scope, args, f"metric {m}", it.loc).values, kind=m))
    return tuple(out)


def read_weighted_metrics(scope: Scope, v, what: str) -> tuple[str, ...]:
    return read_metrics(scope, v, what, weighted=True)


CLASS_LOSSES = ("binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy")


def read_class_weight(scope: Scope, v, what: str) -> dict[int, float]:
    """{class index: weight}: Keras's class_weight; classes left out weigh 1."""
    loss = scope.settings["loss"].name
    if not isinstance(v, RDict):
        raise scope.err(f"class_weight must be a dict of class index: weight, got {describe(v)}", v.loc,
                        hint="expected e.g.  class_weight = {0: 1, 1: 5}")
    if loss not in CLASS_LOSSES:
        raise scope.err(f"class_weight needs classes, but the loss {loss} is a regression loss", v.loc,
                        hint="use a cross-entropy loss, or give sample weights to fit(sample_weight=...)")
    out: dict[int, float] = {}
    for key, loc, value in v.entries:
        if not key.isdigit():
            raise scope.err(f"class_weight keys are class indices (integers >= 0), not '{short(key)}'", loc,
                            hint="expected e.g.  class_weight = {0: 1, 1: 5}")
        k = int(key)
        if k in out:
            raise scope.err(f"class_weight gives class {k} twice", loc)
        if not isinstance(value, RNum) or not value.value >= 0:
            raise scope.err(f"class_weight: the weight of class {k} must be a number >= 0, got {describe(value)}",
                            value.loc)
        out[k] = float(value.value)
    if not out:
        raise scope.err("class_weight must not be empty", v.loc, hint="leave it out to weigh every class 1")
    return out


# Checked in this order, so each setting may use those above it.
TRAIN = Spec("train", (
    Arg("data", Setting(read_data, "a data source (§5.1)"), None,
        "the training data; without it the runner must be given data"),
    Arg("loss", Setting(read_loss, "a loss name, or a call `NAME(from_logits=true, label_smoothing=0.1)`"),
        doc="the training objective",
        example="add e.g.  loss = mse"),
    Arg("optimizer", Setting(read_optimizer, "an optimizer name or call (§5.2)"), doc="the update rule",
        example="add e.g.  optimizer = adam(lr=0.001)"),
    Arg("metrics", Setting(read_metrics, "a list of metric names or calls (a single one is also accepted)"), (),
        "each one of " + ", ".join(f"`{m}`" for m in METRICS) + " (§5.8), no duplicates"),
    Arg("weighted_metrics", Setting(read_weighted_metrics, "a list of metric names or calls"), (),
        "metrics weighted by the sample weights (§5.9); logged as `weighted_<name>` when `metrics` has it too"),
    Arg("epochs", Int(1), 1, "passes over the training data"),
    Arg("batch_size", Int(1, MAX_DIM), 32, "samples per step"),
    Arg("validation", Setting(read_validation, "`split(...)`, a number (shorthand for `split(number)`), "
                                               "or a data source (§5.3)"), None, "data for the val_* metrics"),
    Arg("early_stopping", Setting(read_early_stopping, "a dict (§5.4)"), None, "none: no early stopping"),
    Arg("log_every", Int(1), 1, "log every N epochs"),
    Arg("seed", Int(0), 0, "the seed of initialisation, shuffling, dropout and augmentation"),
    Arg("schedule", Setting(read_schedule, "a learning-rate schedule (§5.5)"), None, "none: a constant lr"),
    Arg("init_from", Setting(read_init_from, "`weights(path, layers=[...])` (§5.6)"), None,
        "initial weights (transfer learning)"),
    Arg("augment", Setting(read_augment, "a list of augmentations (§5.7)"), (), "applied to training batches only"),
    Arg("precision", Choice(PRECISIONS, aliases=PRECISION_ALIASES), "f32",
        "`mixed_bf16`, `mixed_f16`: matmuls and convolutions on bf16 / fp16 operands, the rest in f32 "
        "(docs/mixed-precision.md)"),
    Arg("class_weight", Setting(read_class_weight, "a dict `{class: weight}` (§5.9)"), None,
        "the weight of each class's samples in the training loss and the weighted metrics; others weigh 1"),
))

__all__ = ["TRAIN", "LOSSES", "CROSSENTROPY", "OPTIMIZERS", "SCHEDULES", "SPLIT", "EARLY_STOPPING", "WEIGHTS",
           "METRICS", "METRIC_SPECS", "PRECISIONS", "CLIPPING", "logged_metrics", "resolve_mode"]
