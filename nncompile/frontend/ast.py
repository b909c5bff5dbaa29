"""The checked AST of a `.nn` program.

The parser turns Lark's tree into these nodes and the semantic checks fill in
every default, so what leaves the frontend is complete and validated: later
stages never look up a default or re-check a value. Which arguments each
kind takes, their ranges and defaults are the spec rows (`frontend/specs`,
`frontend/layers`); the `args` / `params` dicts below hold one value per row.
Every node keeps the `SourceLoc` it came from so errors, IR dumps and
reports point back at the file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..errors import SourceLoc
from .layers import LAYERS


@dataclass(frozen=True)
class InputDecl:
    name: str
    dtype: str                      # "f32"
    shape: tuple[int, ...]          # feature shape, without the batch dimension
    loc: SourceLoc


@dataclass(frozen=True)
class Layer:
    """One layer. `args` holds every argument of the kind's spec
    (`frontend/layers/<kind>.py`), defaults filled; frozen= and lr_mult= are
    the fields below, not args."""

    kind: str
    name: str
    args: dict[str, Any]
    loc: SourceLoc
    arg_locs: dict[str, SourceLoc] = field(default_factory=dict, compare=False)
    # Transfer learning (layers with parameters only): a frozen layer's
    # parameters are not trained (a frozen batchnorm also runs on its running
    # statistics in training and does not update them); lr_mult scales the
    # learning rate of the layer's parameters.
    frozen: bool = False
    lr_mult: float = 1.0


@dataclass(frozen=True)
class ModelDef:
    name: str
    input: InputDecl
    layers: tuple[Layer, ...]
    loc: SourceLoc


@dataclass(frozen=True)
class DataSpec:
    """A data source: kind and args as `specs/sources.py` defines them
    (defaults filled). csv's target is a list of column names and its
    features None for "every other column". Relative paths are resolved
    against the directory of the `.nn` file by the frontend, so `path` is
    absolute here."""

    kind: str
    args: dict[str, Any]
    loc: SourceLoc


@dataclass(frozen=True)
class LossSpec:
    name: str                       # one of specs.training.LOSSES
    from_logits: bool
    loc: SourceLoc
    label_smoothing: float = 0.0    # cross-entropies: the targets' smoothing (Keras's formulas)


@dataclass(frozen=True)
class OptimizerSpec:
    """name and params: every argument of the optimizer's spec
    (`specs.training.OPTIMIZERS`, Keras defaults), defaults filled."""

    name: str
    params: dict[str, Any]
    loc: SourceLoc


@dataclass(frozen=True)
class ValidationSpec:
    """Either a split of the training data (the arguments of
    `specs.training.SPLIT`) or separate data (a DataSpec; then fraction is None)."""

    fraction: Optional[float]
    seed: int
    stratify: bool
    shuffle: bool
    data: Optional[DataSpec]
    loc: SourceLoc


@dataclass(frozen=True)
class EarlyStoppingSpec:
    monitor: str                    # a logged metric: "loss", "val_loss", "accuracy", ...
    mode: str                       # "min" | "max" ("auto" is resolved by the checks)
    patience: int
    min_delta: float
    restore_best: bool
    start_from_epoch: int
    loc: SourceLoc


@dataclass(frozen=True)
class ScheduleSpec:
    """A learning-rate schedule: kind and params as `specs.training.SCHEDULES`
    defines them (defaults filled; reduce_on_plateau's monitor is a logged
    metric and its mode "min" or "max", "auto" resolved)."""

    kind: str
    params: dict[str, Any]
    loc: SourceLoc
    param_locs: dict[str, SourceLoc] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class InitFromSpec:
    """`init_from = weights("file.npz", layers=[h1, h2])`: initial weights.

    path is absolute; layers is None for "every layer with parameters"."""

    path: str
    layers: Optional[tuple[str, ...]]
    loc: SourceLoc


@dataclass(frozen=True)
class AugmentSpec:
    """One training-time augmentation: kind and params as
    `specs.sources.AUGMENTATIONS` defines them (defaults filled)."""

    kind: str
    params: dict[str, Any]
    loc: SourceLoc


class MetricName(str):
    """A metric of the train block: its logged name (a str, as Keras logs a metric
    given by name), with its checked arguments (specs.training.METRIC_SPECS) in
    `params` and the metric it is in `kind`."""

    params: dict

    kind: str

    def __new__(cls, name: str, params: Optional[dict] = None, kind: Optional[str] = None):
        self = super().__new__(cls, name)
        self.params = dict(params or {})
        self.kind = kind or name      # the metric (its row): "precision" for "weighted_precision"
        return self

    def __reduce__(self):
        return MetricName, (str(self), self.params, self.kind)


@dataclass(frozen=True)
class TrainDef:
    data: Optional[DataSpec]
    loss: LossSpec
    optimizer: OptimizerSpec
    metrics: tuple[str, ...]
    epochs: int
    batch_size: int
    validation: Optional[ValidationSpec]
    early_stopping: Optional[EarlyStoppingSpec]
    log_every: int
    seed: int
    loc: SourceLoc
    setting_locs: dict[str, SourceLoc] = field(default_factory=dict, compare=False)
    schedule: Optional[ScheduleSpec] = None
    init_from: Optional[InitFromSpec] = None
    augment: tuple[AugmentSpec, ...] = ()
    precision: str = "f32"      # "f32", "mixed_bf16", "mixed_f16" (passes/mixed_precision.py)
    # class index -> weight of its samples in the training loss and weighted metrics
    class_weight: Optional[dict[int, float]] = None
    weighted_metrics: tuple[str, ...] = ()     # MetricNames, "weighted_<m>" when m is in metrics too


@dataclass(frozen=True)
class Program:
    model: ModelDef
    train: Optional[TrainDef]
    filename: str
    source: str


def final_activation(model: ModelDef) -> Optional[str]:
    """The activation the model's output passes through last (None when the last
    layer with an effect is not an activation-bearing one, e.g. batchnorm)."""
    for layer in reversed(model.layers):
        kind = LAYERS[layer.kind]
        if not kind.passes_activation:
            return kind.activation(layer)
    return None
