"""What a layer kind defines, and what shape inference and lowering hand it.

A kind is one `LayerKind` subclass in its own module: its argument `spec`,
`shape` (output shape, parameters, FLOPs, shape errors), `lower` (the IR it
emits), `label` (summary and graph), `has_params` (frozen= and lr_mult=
apply) and how it affects the model's final activation.

A layer reads the output of the layer before it, unless its kind names other
inputs (`inputs`, e.g. from a `from=[a, b]` argument, whose check may use
`scope.layers`); such a kind overrides `infer` and `emit`, which take one
shape / node per input, instead of `shape` and `lower`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from ...errors import CompileError
from ...ir.graph import Graph, Node
from ..specs import Arg, Bool, Float, LayerRef, Scope, Spec
from .activations import resolve


@dataclass(frozen=True)
class ParamDecl:
    name: str
    shape: tuple[int, ...]
    init: str
    role: str            # "param" or "state"
    layer: str
    trainable: bool = True   # False for the parameters of a frozen layer
    lr_mult: float = 1.0     # the layer's learning-rate multiplier


@dataclass(frozen=True)
class LayerInfo:
    layer: object                    # the ast.Layer
    out_shape: tuple[int, ...]       # without the batch dimension
    params: tuple[ParamDecl, ...]
    flops: int                       # forward FLOPs per sample (multiply-add = 2)
    label: str = ""                  # "dense, relu": how summary and graph name the layer
    sources: tuple[str, ...] = ()    # the names of the layers (or the input) it reads


@dataclass(frozen=True)
class Shaped:
    """What a layer makes of its input: output shape (without the batch
    dimension), parameters (as untrained-default ParamDecls) and FLOPs."""
    out_shape: tuple[int, ...]
    params: tuple[ParamDecl, ...] = ()
    flops: int = 0


def param(layer, what: str, shape: tuple[int, ...], init: str, role: str = "param") -> ParamDecl:
    """The parameter `<layer>.<what>` (role "state" for running statistics)."""
    return ParamDecl(f"{layer.name}.{what}", tuple(shape), init, role, layer.name)


@dataclass
class ModelOut:
    out: Node                               # the model's output (after its last activation)
    logits: Optional[Node] = None           # pre-activation when the last op is softmax/sigmoid
    final_activation: str = "linear"
    state_updates: dict[str, Node] = field(default_factory=dict)
    penalties: list[Node] = field(default_factory=list)


class Lowering:
    """What one layer's lowering works with: the graph, the mode, its dropout
    stream, and the model output it adds penalties and state updates to.

    logits/activation: what the layer applied last (a fresh Lowering per layer,
    so after the last one they describe the model's output)."""

    def __init__(self, g: Graph, training: bool, rng: Optional[Node], stream: int, out: ModelOut):
        self.g, self.training, self.rng, self.stream, self.out = g, training, rng, stream, out
        self.logits: Optional[Node] = None
        self.activation = "linear"

    def param(self, layer, what: str) -> Node:
        return self.g.inputs[f"{layer.name}.{what}"]

    def activate(self, h: Node, fn: str) -> Node:
        act, params = resolve(fn)
        self.logits = h if act.keeps_logits else None
        self.activation = act.name
        return act.lower(self.g, h, params)


class LayerKind:
    """Base of the layer kinds; a subclass sets the class attributes and
    overrides `shape` and `lower` (and `label` / `activation` when they say more)."""

    name: str
    spec: Spec
    doc: str = ""
    has_params: bool = False         # frozen= and lr_mult= apply
    passes_activation: bool = False  # the output activation shows through it (dropout, flatten)
    adapts: bool = False             # its state is computed from the training data before training
    color: str = "#ffffff"           # its box in `nncompile graph`

    def label(self, layer) -> str:
        return self.name

    def activation(self, layer) -> Optional[str]:
        """The activation this layer applies last (None: not an activation)."""
        return None

    merges: bool = False             # reads several named layers (from=[a, b]); else one (from=a)

    def inputs(self, layer) -> tuple[str, ...]:
        """The names of the layers (or the model input) this layer reads;
        () for the layer before it."""
        src = layer.args.get("from")
        return tuple(src) if isinstance(src, tuple) else (() if src is None else (src,))

    def adapt(self, layer, x) -> dict:
        """A kind that `adapts`: its state ({what: array}) from the training features
        x [N, *input shape] (it reads the model's input)."""
        raise NotImplementedError

    def shape(self, layer, shape: tuple[int, ...], fail: Callable[..., CompileError]) -> Shaped:
        """`fail(message, hint=None)` makes the CompileError that points at the layer."""
        raise NotImplementedError

    def lower(self, low: Lowering, info: LayerInfo, h: Node) -> Node:
        raise NotImplementedError

    def infer(self, layer, shapes: Sequence[tuple[int, ...]], fail: Callable[..., CompileError]) -> Shaped:
        """Shape inference with one shape per input."""
        (shape,) = shapes
        return self.shape(layer, shape, fail)

    def emit(self, low: Lowering, info: LayerInfo, hs: Sequence[Node]) -> Node:
        """Lowering with one node per input."""
        (h,) = hs
        return self.lower(low, info, h)


def _frozen_and_lr_mult(scope: Scope) -> None:
    if scope.values["frozen"] and "lr_mult" in scope.raw:
        raise scope.err(f"{scope.what} is frozen, so lr_mult has no effect", scope.raw["lr_mult"].loc,
                        hint="drop lr_mult, or drop frozen=true to fine-tune the layer at a scaled learning rate")


# Every layer that reads one input may name it (default: the layer before it).
FROM = Spec("from", (
    Arg("from", LayerRef(), None, "the layer (or the model's input) it reads; default: the line before"),
))

# The transfer-learning options of every layer with parameters (keys only).
TRANSFER = Spec("transfer", (
    Arg("frozen", Bool(), False,
        "the layer's parameters are not trained (no gradient, no optimizer state). A frozen "
        "`batchnorm` also runs on its running statistics in training, and does not update them."),
    Arg("lr_mult", Float(0.0), 1.0,
        "the layer's parameters are updated with `lr * lr_mult` (everywhere the optimizer uses lr, "
        "adamw's weight decay included); `0` keeps them fixed"),
), rules=(_frozen_and_lr_mult,))
