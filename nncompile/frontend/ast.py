"""The checked AST of a `.nn` program.

The parser turns Lark's tree into these nodes and the semantic checks fill in
every default, so what leaves the frontend is complete and validated: later
stages never look up a default or re-check a value. Every node keeps the
`SourceLoc` it came from so errors, IR dumps and reports point back at the file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..errors import SourceLoc

# Layer kinds and the activations a layer may name. The checks use these tables.
ACTIVATIONS = ("relu", "sigmoid", "tanh", "softmax", "linear", "gelu", "leaky_relu")
LOSSES = ("mse", "mae", "binary_crossentropy", "categorical_crossentropy",
          "sparse_categorical_crossentropy")
METRICS = ("accuracy", "mse", "mae")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("step", "exponential", "cosine", "reduce_on_plateau")
AUGMENTS = ("noise", "flip", "crop")


@dataclass(frozen=True)
class InputDecl:
    name: str
    dtype: str                      # "f32"
    shape: tuple[int, ...]          # feature shape, without the batch dimension
    loc: SourceLoc


@dataclass(frozen=True)
class Layer:
    """One layer. `args` is complete (defaults filled) and depends on `kind`:

    dense:      units:int, activation:str, use_bias:bool, l1:float, l2:float,
                init:str ("glorot_uniform" | "glorot_normal" | "he_uniform" |
                "he_normal" | "zeros"), bias_init:str ("zeros")
    dropout:    rate:float in [0, 1)
    batchnorm:  momentum:float in [0, 1), epsilon:float > 0
    layernorm:  epsilon:float > 0
    activation: fn:str (one of ACTIVATIONS)
    flatten:    (none)
    """

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
    """A data source. kind and args (defaults filled):

    csv:       path:str, target:list[str] (column names; one name for labels),
               features:list[str] | None (None = every other column), header:bool
    npz:       path:str, x:str="x", y:str="y"
    builtin:   name:str ("digits")
    synthetic.classification: samples:int, features:int, classes:int, seed:int
    synthetic.regression:     samples:int, features:int, targets:int, noise:float, seed:int

    Relative paths are resolved against the directory of the `.nn` file by the
    frontend, so `path` is absolute here.
    """

    kind: str
    args: dict[str, Any]
    loc: SourceLoc


@dataclass(frozen=True)
class LossSpec:
    name: str                       # one of LOSSES
    from_logits: bool
    loc: SourceLoc


@dataclass(frozen=True)
class OptimizerSpec:
    """name and params (defaults filled, Keras defaults):

    sgd:     lr=0.01, momentum=0.0, nesterov=False
    adam:    lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7
    adamw:   lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7, weight_decay=0.004
    rmsprop: lr=0.001, rho=0.9, momentum=0.0, eps=1e-7
    """

    name: str
    params: dict[str, Any]
    loc: SourceLoc


@dataclass(frozen=True)
class ValidationSpec:
    """Either a split of the training data or separate data.

    split:  fraction in (0, 1), seed:int, stratify:bool, shuffle:bool
    data:   a DataSpec (then fraction is None)
    """

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
    """A learning-rate schedule. kind and params (defaults filled):

    step:              every:int >= 1 (10), factor:float in (0, 1] (0.5)
    exponential:       rate:float in (0, 1] (0.96), every:int >= 1 (1)
    cosine:            warmup:int >= 0 and < epochs (0), min_lr:float >= 0 and < lr (0.0)
    reduce_on_plateau: monitor:str (a logged metric), mode:"min"|"max",
                       factor:float in (0, 1) (0.1), patience:int >= 0 (10),
                       min_delta:float >= 0 (1e-4), min_lr:float >= 0 (0.0),
                       cooldown:int >= 0 (0)
    """

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
    """One training-time augmentation. kind and params (defaults filled):

    noise: std:float > 0 (Gaussian, added to every feature)
    flip:  axis:"horizontal"|"vertical" ("horizontal"), p:float in [0, 1] (0.5)
    crop:  padding:int >= 1 (2) (zero-pad H and W, crop back at a random offset)
    """

    kind: str
    params: dict[str, Any]
    loc: SourceLoc


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
        if layer.kind == "dense":
            return layer.args["activation"]
        if layer.kind == "activation":
            return layer.args["fn"]
        if layer.kind in ("dropout", "flatten"):
            continue
        return None
    return None
