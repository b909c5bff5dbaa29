"""Lowering: the checked AST to IR.

`build_model` writes the layers of a model into a graph, in training mode
(dropout active, batch norm on batch statistics, running statistics updated)
or in inference mode (dropout off, batch norm on running statistics).
`build_loss` and `build_metrics` add the training objective and the metrics.
Every node gets the source location and name of the layer it came from.

Shape mistakes (a dense layer after a 2-D input, say) become CompileErrors
that point at the layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from ..errors import CompileError
from ..ir.graph import B, Graph, Node, Shape
from . import ast

EPS_PROB = 1e-7  # Keras's clip for probabilities fed to cross-entropy


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
    layer: ast.Layer
    out_shape: tuple[int, ...]       # without the batch dimension
    params: tuple[ParamDecl, ...]
    flops: int                       # forward FLOPs per sample (multiply-add = 2)


def _err(prog: ast.Program, layer: ast.Layer, msg: str, hint: Optional[str] = None) -> CompileError:
    return CompileError(msg, layer.loc, source=prog.source, hint=hint)


def layer_infos(prog: ast.Program) -> list[LayerInfo]:
    """Shapes, parameters and cost of every layer; checks that shapes fit."""
    shape = prog.model.input.shape
    infos = []
    for L in prog.model.layers:
        a = L.args
        params: list[ParamDecl] = []
        n = math.prod(shape)
        flops = 0
        if L.kind == "dense":
            if len(shape) != 1:
                raise _err(prog, L, f"dense layer '{L.name}' needs a flat input, but its input has shape "
                           f"{list(shape)}", "add a `flatten` layer before it")
            params.append(ParamDecl(f"{L.name}.weight", (shape[0], a["units"]), a["init"], "param", L.name))
            if a["use_bias"]:
                params.append(ParamDecl(f"{L.name}.bias", (a["units"],), a["bias_init"], "param", L.name))
            flops = 2 * shape[0] * a["units"]
            shape = (a["units"],)
        elif L.kind in ("batchnorm", "layernorm"):
            c = shape[-1]
            params.append(ParamDecl(f"{L.name}.gamma", (c,), "ones", "param", L.name))
            params.append(ParamDecl(f"{L.name}.beta", (c,), "zeros", "param", L.name))
            if L.kind == "batchnorm":
                params.append(ParamDecl(f"{L.name}.moving_mean", (c,), "zeros", "state", L.name))
                params.append(ParamDecl(f"{L.name}.moving_variance", (c,), "ones", "state", L.name))
            flops = 4 * n
        elif L.kind == "flatten":
            shape = (n,)
        elif L.kind in ("dropout", "activation"):
            flops = n
        else:
            raise _err(prog, L, f"layer kind '{L.kind}' is not supported by the compiler yet")
        if L.kind == "dense" and a["activation"] != "linear":
            flops += a["units"]
        frozen = getattr(L, "frozen", False)
        mult = float(getattr(L, "lr_mult", 1.0))
        params = [ParamDecl(p.name, p.shape, p.init, p.role, p.layer, not frozen, mult)
                  if p.role == "param" else p for p in params]
        infos.append(LayerInfo(L, tuple(shape), tuple(params), flops))
    return infos


def declare_params(g: Graph, infos: list[LayerInfo]) -> None:
    """Declare every parameter and state input. Parameters of frozen layers are
    inputs with trainable=False (autodiff skips them); a learning-rate
    multiplier other than 1 is recorded in g.meta["lr_mult"] (param -> mult),
    which the optimizer pass reads."""
    for info in infos:
        with g.at(info.layer.loc, info.layer.name):
            for p in info.params:
                g.input(p.name, p.shape, role=p.role, init=p.init, trainable=p.trainable)
                if p.role == "param" and p.trainable and p.lr_mult != 1.0:
                    g.meta.setdefault("lr_mult", {})[p.name] = p.lr_mult


@dataclass
class ModelOut:
    out: Node                               # the model's output (after its last activation)
    logits: Optional[Node] = None           # pre-activation when the last op is softmax/sigmoid
    final_activation: str = "linear"
    state_updates: dict[str, Node] = field(default_factory=dict)
    penalties: list[Node] = field(default_factory=list)


def _activation(g: Graph, h: Node, fn: str) -> Node:
    if fn == "linear":
        return h
    if fn == "softmax":
        return g.emit("softmax", h)
    if fn == "leaky_relu":
        return g.emit("leaky_relu", h, alpha=0.2)
    return g.emit(fn, h)


def build_model(g: Graph, prog: ast.Program, infos: list[LayerInfo], x: Node, *, training: bool,
                rng: Optional[Node] = None) -> ModelOut:
    """Write the model's forward computation into `g` (parameters must be declared).

    Dropout is applied only when `training` and an `rng` input (i64[2]: seed, step)
    is given; batch norm uses batch statistics whenever `training`."""
    h = x
    mo = ModelOut(out=x)
    pre: Optional[Node] = None
    last_act = "linear"
    for idx, info in enumerate(infos):
        L, a = info.layer, info.layer.args
        with g.at(L.loc, L.name):
            pre, last_act = None, "linear"
            if L.kind == "dense":
                w = g.inputs[f"{L.name}.weight"]
                h = g.emit("matmul", h, w, ta=False, tb=False)
                if a["use_bias"]:
                    h = g.emit("add", h, g.inputs[f"{L.name}.bias"])
                if a["activation"] in ("softmax", "sigmoid"):
                    pre = h
                h = _activation(g, h, a["activation"])
                last_act = a["activation"]
                if a["l2"] > 0:
                    mo.penalties.append(g.emit("mul", g.emit("sum", g.emit("square", w), axes=(0, 1),
                                                             keepdims=False), g.const(a["l2"])))
                if a["l1"] > 0:
                    mo.penalties.append(g.emit("mul", g.emit("sum", g.emit("abs", w), axes=(0, 1),
                                                             keepdims=False), g.const(a["l1"])))
            elif L.kind == "activation":
                if a["fn"] in ("softmax", "sigmoid"):
                    pre = h
                h = _activation(g, h, a["fn"])
                last_act = a["fn"]
            elif L.kind == "dropout":
                if training and a["rate"] > 0 and rng is not None:
                    mask = g.emit("dropout_mask", h, rng, rate=float(a["rate"]), stream=idx)
                    h = g.emit("mul", h, mask)
            elif L.kind == "flatten":
                h = g.emit("reshape", h, shape=(B,) + info.out_shape)
            elif L.kind == "batchnorm":
                h = _batchnorm(g, L, h, training, mo)
            elif L.kind == "layernorm":
                h = _layernorm(g, L, h)
    mo.out = h
    mo.logits = pre
    mo.final_activation = last_act
    return mo


def _batchnorm(g: Graph, L: ast.Layer, h: Node, training: bool, mo: ModelOut) -> Node:
    gamma, beta = g.inputs[f"{L.name}.gamma"], g.inputs[f"{L.name}.beta"]
    mm, mv = g.inputs[f"{L.name}.moving_mean"], g.inputs[f"{L.name}.moving_variance"]
    eps, mom = L.args["epsilon"], L.args["momentum"]
    E, c = g.emit, g.const
    # statistics per channel (the last axis), over the batch and every other axis
    axes = tuple(range(len(h.shape) - 1))
    if training and not getattr(L, "frozen", False):  # frozen: running statistics, not updated
        mean = E("mean", h, axes=axes, keepdims=True)
        centered = E("sub", h, mean)
        var = E("mean", E("square", centered), axes=axes, keepdims=True)
        inv = E("div", c(1.0), E("sqrt", E("add", var, c(eps))))
        xhat = E("mul", centered, inv)
        c_shape = mm.shape
        mo.state_updates[mm.attrs["name"]] = E(
            "add", E("mul", mm, c(mom)), E("mul", E("reshape", mean, shape=c_shape), c(1.0 - mom)))
        mo.state_updates[mv.attrs["name"]] = E(
            "add", E("mul", mv, c(mom)), E("mul", E("reshape", var, shape=c_shape), c(1.0 - mom)))
    else:
        inv = E("div", c(1.0), E("sqrt", E("add", mv, c(eps))))
        xhat = E("mul", E("sub", h, mm), inv)
    return E("add", E("mul", xhat, gamma), beta)


def _layernorm(g: Graph, L: ast.Layer, h: Node) -> Node:
    E, c = g.emit, g.const
    gamma, beta = g.inputs[f"{L.name}.gamma"], g.inputs[f"{L.name}.beta"]
    mean = E("mean", h, axes=(-1,), keepdims=True)
    centered = E("sub", h, mean)
    var = E("mean", E("square", centered), axes=(-1,), keepdims=True)
    xhat = E("mul", centered, E("div", c(1.0), E("sqrt", E("add", var, c(L.args["epsilon"])))))
    return E("add", E("mul", xhat, gamma), beta)


# --- labels, loss and metrics ---------------------------------------------------------

def label_type(prog: ast.Program, infos: list[LayerInfo]) -> tuple[str, Shape]:
    """dtype and shape of the targets `y` the loss expects."""
    out_shape = infos[-1].out_shape if infos else prog.model.input.shape
    if prog.train is None:
        return "f32", (B,) + tuple(out_shape)
    if prog.train.loss.name == "sparse_categorical_crossentropy":
        return "i64", (B,) + tuple(out_shape[:-1])
    return "f32", (B,) + tuple(out_shape)


def _log_probs(g: Graph, mo: ModelOut, loss: ast.LossSpec) -> Node:
    if mo.final_activation == "softmax" and mo.logits is not None and not loss.from_logits:
        return g.emit("log_softmax", mo.logits)        # stable: never log(softmax(z))
    if loss.from_logits:
        return g.emit("log_softmax", mo.out)
    return g.emit("log", g.emit("clip", mo.out, lo=EPS_PROB, hi=1.0 - EPS_PROB))


def build_loss(g: Graph, prog: ast.Program, mo: ModelOut, y: Node) -> Node:
    """The batch-mean data loss plus every L1/L2 penalty (a scalar node)."""
    spec = prog.train.loss
    E, c = g.emit, g.const
    all_axes = lambda n: tuple(range(len(n.shape)))
    with g.at(spec.loc, "loss"):
        if spec.name == "sparse_categorical_crossentropy":
            data = E("mean", E("neg", E("take_label", _log_probs(g, mo, spec), y)), axes=(0,), keepdims=False)
        elif spec.name == "categorical_crossentropy":
            per = E("sum", E("mul", y, _log_probs(g, mo, spec)), axes=(-1,), keepdims=False)
            data = E("neg", E("mean", per, axes=(0,), keepdims=False))
        elif spec.name == "binary_crossentropy":
            z = mo.logits if (mo.final_activation == "sigmoid" and mo.logits is not None
                              and not spec.from_logits) else (mo.out if spec.from_logits else None)
            if z is not None:
                # softplus(z) - z*y: finite for any logit, gradient sigmoid(z) - y everywhere
                t = E("sub", E("softplus", z), E("mul", z, y))
            else:
                p = E("clip", mo.out, lo=EPS_PROB, hi=1.0 - EPS_PROB)
                t = E("neg", E("add", E("mul", y, E("log", p)),
                               E("mul", E("sub", c(1.0), y), E("log", E("sub", c(1.0), p)))))
            data = E("mean", t, axes=all_axes(t), keepdims=False)
        elif spec.name == "mse":
            d = E("sub", mo.out, y)
            data = E("mean", E("square", d), axes=all_axes(d), keepdims=False)
        elif spec.name == "mae":
            d = E("sub", mo.out, y)
            data = E("mean", E("abs", d), axes=all_axes(d), keepdims=False)
        else:
            raise CompileError(f"loss '{spec.name}' is not supported", spec.loc, source=prog.source)
        total = data
        for p in mo.penalties:
            total = E("add", total, p)
    return total


def build_metrics(g: Graph, prog: ast.Program, mo: ModelOut, y: Node) -> dict[str, Node]:
    """Batch-mean value of each metric the program asks for."""
    E = g.emit
    out: dict[str, Node] = {}
    loss = prog.train.loss.name
    loc = prog.train.setting_locs.get("metrics", prog.train.loc)
    with g.at(loc, "metrics"):
        for m in prog.train.metrics:
            if m == "accuracy":
                if loss == "sparse_categorical_crossentropy":
                    hit = E("equal", E("argmax", mo.out), y)
                elif loss == "categorical_crossentropy":
                    hit = E("equal", E("argmax", mo.out), E("argmax", y))
                elif mo.out.shape[-1] == 1 or loss == "binary_crossentropy":
                    thr = 0.0 if (loss == "binary_crossentropy" and prog.train.loss.from_logits) else 0.5
                    hit = E("equal", E("greater", mo.out, g.const(thr)), y)
                else:  # regression-style targets with several outputs: compare argmax
                    hit = E("equal", E("argmax", mo.out), E("argmax", y))
                out[m] = E("mean", hit, axes=tuple(range(len(hit.shape))), keepdims=False)
            elif m in ("mse", "mae"):
                yy = y
                if y.dtype == "i64":  # sparse labels: compare against one-hot
                    yy = E("onehot", y, depth=mo.out.shape[-1], dtype=mo.out.dtype)
                d = E("sub", mo.out, yy)
                d = E("square", d) if m == "mse" else E("abs", d)
                out[m] = E("mean", d, axes=tuple(range(len(d.shape))), keepdims=False)
    return out
