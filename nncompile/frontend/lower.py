"""Lowering: the checked AST to IR.

`layer_infos` asks each layer's kind (`layers/`) for its output shape,
parameters and FLOPs; `build_model` asks each kind to write its IR into a
graph, in training mode (dropout active, batch norm on batch statistics,
running statistics updated) or in inference mode (dropout off, batch norm on
running statistics). `build_loss` and `build_metrics` add the training
objective and the metrics. Every node gets the source location and name of
the layer it came from.

Shape mistakes (a dense layer after a 2-D input, say) become CompileErrors
that point at the layer.
"""
from __future__ import annotations

from typing import Optional

from ..errors import CompileError
from ..ir.graph import B, Graph, Node, Shape
from . import ast
from .layers import LAYERS, LayerInfo, Lowering, ModelOut, ParamDecl
from .metrics import RULES as METRIC_RULES, MetricInputs

__all__ = ["LayerInfo", "ParamDecl", "ModelOut", "layer_infos", "declare_params", "build_model", "build_loss",
           "build_metrics", "label_type"]

EPS_PROB = 1e-7  # Keras's clip for probabilities fed to cross-entropy


def _inputs(kind, layer, outputs: dict, previous):
    """What `layer` reads: the outputs its kind names, else the previous one."""
    names = kind.inputs(layer)
    return [outputs[n] for n in names] if names else [previous]


def layer_infos(prog: ast.Program) -> list[LayerInfo]:
    """Shapes, parameters and cost of every layer; checks that shapes fit."""
    inp = prog.model.input
    shape = tuple(inp.shape)
    shapes = {inp.name: shape}       # every output shape so far, by layer name
    previous = inp.name
    infos = []
    for L in prog.model.layers:
        kind = LAYERS.get(L.kind)
        if kind is None:
            raise CompileError(f"layer kind '{L.kind}' is not supported by the compiler yet", L.loc,
                               source=prog.source)
        fail = lambda msg, hint=None, L=L: CompileError(msg, L.loc, source=prog.source, hint=hint)  # noqa: E731
        sources = kind.inputs(L) or (previous,)
        if kind.adapts and tuple(sources) != (inp.name,):
            raise fail(f"{L.kind} layer '{L.name}' is adapted to the training data, so it reads the model's "
                       f"input '{inp.name}', not '{sources[0]}'",
                       hint=f"put it first in the model, or write from={inp.name}")
        shaped = kind.infer(L, [shapes[n] for n in sources], fail)
        params = [ParamDecl(p.name, p.shape, p.init, p.role, p.layer, not L.frozen, float(L.lr_mult))
                  if p.role == "param" else p for p in shaped.params]
        shape = shapes[L.name] = tuple(shaped.out_shape)
        previous = L.name
        infos.append(LayerInfo(L, shape, tuple(params), shaped.flops, kind.label(L), tuple(sources)))
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


def build_model(g: Graph, prog: ast.Program, infos: list[LayerInfo], x: Node, *, training: bool,
                rng: Optional[Node] = None) -> ModelOut:
    """Write the model's forward computation into `g` (parameters must be declared).

    Dropout is applied only when `training` and an `rng` input (i64[2]: seed, step)
    is given; batch norm uses batch statistics whenever `training`."""
    h = x
    outputs = {prog.model.input.name: x}     # every output so far, by layer name
    mo = ModelOut(out=x)
    for idx, info in enumerate(infos):
        L, kind = info.layer, LAYERS[info.layer.kind]
        low = Lowering(g, training, rng, idx, mo)
        with g.at(L.loc, L.name):
            h = outputs[L.name] = kind.emit(low, info, _inputs(kind, L, outputs, h))
        mo.logits, mo.final_activation = low.logits, low.activation
    mo.out = h
    return mo


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


def _batch_mean(g: Graph, t: Node, w: Optional[Node]) -> Node:
    """The mean of a loss term t [B, ...]; with sample weights w [B], Keras 3's
    "sum_over_batch_size": sum_i w_i l_i / B, l_i the mean of sample i's terms."""
    E = g.emit
    if w is None:
        return E("mean", t, axes=tuple(range(len(t.shape))), keepdims=False)
    per = E("mean", t, axes=tuple(range(1, len(t.shape))), keepdims=False) if len(t.shape) > 1 else t
    return E("mean", E("mul", per, w), axes=(0,), keepdims=False)


def build_loss(g: Graph, prog: ast.Program, mo: ModelOut, y: Node, w: Optional[Node] = None) -> Node:
    """The batch-mean data loss (weighted by the sample weights `w` [B], when given)
    plus every L1/L2 penalty (a scalar node)."""
    spec = prog.train.loss
    E, c = g.emit, g.const
    with g.at(spec.loc, "loss"):
        ls = spec.label_smoothing
        if spec.name == "sparse_categorical_crossentropy" and not ls:
            data = _batch_mean(g, E("neg", E("take_label", _log_probs(g, mo, spec), y)), w)
        elif spec.name in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
            if y.dtype == "i64":     # sparse labels, smoothed: as their one-hot rows
                y = E("onehot", y, depth=mo.out.shape[-1], dtype=mo.out.dtype)
            if ls:                   # Keras: y (1 - ls) + ls / K
                y = E("add", E("mul", y, c(1.0 - ls)), c(ls / mo.out.shape[-1]))
            per = E("sum", E("mul", y, _log_probs(g, mo, spec)), axes=(-1,), keepdims=False)
            data = E("neg", _batch_mean(g, per, w))
        elif spec.name == "binary_crossentropy":
            if ls:                   # Keras: y (1 - ls) + ls / 2
                y = E("add", E("mul", y, c(1.0 - ls)), c(0.5 * ls))
            z = mo.logits if (mo.final_activation == "sigmoid" and mo.logits is not None
                              and not spec.from_logits) else (mo.out if spec.from_logits else None)
            if z is not None:
                # softplus(z) - z*y: finite for any logit, gradient sigmoid(z) - y everywhere
                t = E("sub", E("softplus", z), E("mul", z, y))
            else:
                p = E("clip", mo.out, lo=EPS_PROB, hi=1.0 - EPS_PROB)
                t = E("neg", E("add", E("mul", y, E("log", p)),
                               E("mul", E("sub", c(1.0), y), E("log", E("sub", c(1.0), p)))))
            data = _batch_mean(g, t, w)
        elif spec.name == "mse":
            data = _batch_mean(g, E("square", E("sub", mo.out, y)), w)
        elif spec.name == "mae":
            data = _batch_mean(g, E("abs", E("sub", mo.out, y)), w)
        else:
            raise CompileError(f"loss '{spec.name}' is not supported", spec.loc, source=prog.source)
        total = data
        for p in mo.penalties:
            total = E("add", total, p)
    return total


def build_metrics(g: Graph, prog: ast.Program, mo: ModelOut, y: Node, w: Optional[Node] = None) -> dict[str, Node]:
    """Each metric the program asks for: its batch mean, or its statistics
    (metrics.py); the weighted metrics with the sample weights `w` [B]."""
    t = prog.train
    out: dict[str, Node] = {}
    for setting, metrics, weights in (("metrics", t.metrics, None), ("weighted_metrics", t.weighted_metrics, w)):
        inputs = MetricInputs(g, mo.out, y, t.loss.name, t.loss.from_logits, weights)
        with g.at(t.setting_locs.get(setting, t.loc), setting):
            for m in metrics:
                out.update(_metric(g, prog, mo, y, m, inputs))
    return out


def _metric(g: Graph, prog: ast.Program, mo: ModelOut, y: Node, m, inputs: MetricInputs) -> dict[str, Node]:
    E = g.emit
    loss = prog.train.loss.name
    kind = getattr(m, "kind", m)
    if kind != "accuracy":   # the statistics of the metric's row (metrics.py), or its mean
        return {str(k): v for k, v in METRIC_RULES[kind].build(inputs, str(m), getattr(m, "params", {})).items()}
    if loss == "sparse_categorical_crossentropy":
        hit = E("equal", E("argmax", mo.out), y)
    elif loss == "categorical_crossentropy":
        hit = E("equal", E("argmax", mo.out), E("argmax", y))
    elif mo.out.shape[-1] == 1 or loss == "binary_crossentropy":
        thr = 0.0 if (loss == "binary_crossentropy" and prog.train.loss.from_logits) else 0.5
        hit = E("equal", E("greater", mo.out, g.const(thr)), y)
    else:  # regression-style targets with several outputs: compare argmax
        hit = E("equal", E("argmax", mo.out), E("argmax", y))
    return inputs.mean(hit, str(m))
