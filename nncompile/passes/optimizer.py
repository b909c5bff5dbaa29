"""Optimizer lowering: the parameter update written as IR ops.

`apply_optimizer` appends to the training graph, for each parameter, the
optimizer's state inputs (`<opt>.<slot>.<param>`, role "state") and the
update nodes, and registers the new parameter and state values as outputs
that update their inputs. The step counter (`step`, f32 scalar, 1 for the
first step) and the learning rate (`lr`, f32 scalar) are graph inputs, so a
schedule changes the learning rate without recompiling.

Per-parameter learning-rate multipliers (`lr_mult=` on a layer) come from
`g.meta["lr_mult"]` (param name -> multiplier; absent means 1): that
parameter's update uses lr * mult everywhere the optimizer uses lr
(adamw's decoupled weight decay included). Frozen parameters have no
gradient (autodiff skips inputs with trainable=False), so they get no
update and no optimizer state.

Semantics follow Keras:
  sgd      v = momentum*v - lr*g;  p += v   (nesterov: p += momentum*v - lr*g)
  adam     m += (1-b1)(g-m);  v += (1-b2)(g²-v)
           p -= lr*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v)+eps)
  adamw    p -= lr*wd*p, then adam
  rmsprop  v = rho*v + (1-rho)g²;  p -= lr*g/sqrt(v+eps)   (Keras 3: eps inside the
           square root; torch.optim.RMSprop puts it outside, sqrt(v)+eps)
           (momentum: mom = momentum*mom + lr*g/sqrt(v+eps); p -= mom)

Before the update, the gradients are clipped as Keras 3's optimizers do when one
of their clipping arguments is set (`clip_gradients`); the clipping is IR ops of
the same graph, so it fuses with the update.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional

from ..ir.graph import Graph, Node
from .rewrite import rebuild

SLOTS = {"sgd": ("velocity",), "adam": ("m", "v"), "adamw": ("m", "v"), "rmsprop": ("v", "momentum")}


def slots_for(name: str, params: Mapping[str, Any]) -> tuple[str, ...]:
    if name == "sgd":
        return ("velocity",) if params.get("momentum", 0.0) > 0 else ()
    if name == "rmsprop":
        return ("v", "momentum") if params.get("momentum", 0.0) > 0 else ("v",)
    return SLOTS[name]


def clip_gradients(g: Graph, params: Mapping[str, Any], grads: list[Node]) -> list[Node]:
    """Keras 3's gradient clipping (`BaseOptimizer._clip_gradients`), for the one
    of the optimizer's clipping arguments that is set (None or 0: off):
      clipnorm         g * c / max(||g||, c), each gradient by its own L2 norm
      global_clipnorm  g * c / max(N, c), N the L2 norm of all gradients together;
                       + (N - N), so a non-finite N makes every gradient NaN (as Keras)
      clipvalue        clip(g, -c, c), elementwise"""
    E = g.emit

    def sum_sq(x):
        return E("sum", E("square", x), axes=tuple(range(len(x.shape))), keepdims=False)

    if not grads:
        return grads
    c = lambda v: g.const(v, grads[0].dtype)  # noqa: E731
    if params.get("clipnorm"):
        cn = params["clipnorm"]
        return [E("div", E("mul", gr, c(cn)), E("maximum", E("sqrt", sum_sq(gr)), c(cn))) for gr in grads]
    if params.get("global_clipnorm"):
        cn = params["global_clipnorm"]
        total = sum_sq(grads[0])
        for gr in grads[1:]:
            total = E("add", total, sum_sq(gr))
        norm = E("sqrt", total)
        scale = E("add", E("div", c(cn), E("maximum", norm, c(cn))), E("sub", norm, norm))
        return [E("mul", gr, scale) for gr in grads]
    if params.get("clipvalue"):
        cv = float(params["clipvalue"])
        return [E("clip", gr, lo=-cv, hi=cv) for gr in grads]
    return grads


def bias_corrected_lr(g: Graph, name: str, params: Mapping[str, Any], step: Node, lr: Node) -> Optional[Node]:
    """Adam's lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t) (None for the other optimizers):
    computed once per step for all parameters."""
    if name not in ("adam", "adamw"):
        return None
    E = g.emit
    c = lambda v: g.const(v, step.dtype)  # noqa: E731
    b1, b2 = params["beta1"], params["beta2"]
    b1t = E("exp", E("mul", step, c(math.log(b1)))) if b1 > 0 else c(0.0)
    b2t = E("exp", E("mul", step, c(math.log(b2)))) if b2 > 0 else c(0.0)
    return E("div", E("mul", lr, E("sqrt", E("sub", c(1.0), b2t))), E("sub", c(1.0), b1t))


def update_param(g: Graph, name: str, params: Mapping[str, Any], p: Node, grad: Node,
                 state: Mapping[str, Node], lr: Node, lr_t: Optional[Node]) -> tuple[Node, dict[str, Node]]:
    """One parameter's update: (new value, {slot: new state}) from its gradient, its
    state (`slots_for(name, params)`), the learning rate and Adam's `lr_t`."""
    E = g.emit
    c = lambda v: g.const(v, p.dtype)  # noqa: E731
    new: dict[str, Node] = {}
    if name == "sgd":
        step_ = E("mul", grad, lr)
        mom = params.get("momentum", 0.0)
        if mom > 0:
            v = E("sub", E("mul", state["velocity"], c(mom)), step_)
            new["velocity"] = v
            if params.get("nesterov"):
                p_new = E("sub", E("add", p, E("mul", v, c(mom))), step_)
            else:
                p_new = E("add", p, v)
        else:
            p_new = E("sub", p, step_)
    elif name in ("adam", "adamw"):
        b1, b2, eps = params["beta1"], params["beta2"], params["eps"]
        pp = p
        if name == "adamw" and params.get("weight_decay", 0.0) > 0:
            pp = E("sub", p, E("mul", p, E("mul", lr, c(params["weight_decay"]))))
        m = E("add", state["m"], E("mul", E("sub", grad, state["m"]), c(1.0 - b1)))
        v = E("add", state["v"], E("mul", E("sub", E("square", grad), state["v"]), c(1.0 - b2)))
        new["m"], new["v"] = m, v
        upd = E("div", m, E("add", E("sqrt", v), c(eps)))
        p_new = E("sub", pp, E("mul", upd, lr_t))
    elif name == "rmsprop":
        rho, eps = params["rho"], params["eps"]
        v = E("add", E("mul", state["v"], c(rho)), E("mul", E("square", grad), c(1.0 - rho)))
        new["v"] = v
        inc = E("div", E("mul", grad, lr), E("sqrt", E("add", v, c(eps))))
        mom = params.get("momentum", 0.0)
        if mom > 0:
            inc = E("add", E("mul", state["momentum"], c(mom)), inc)
            new["momentum"] = inc
        p_new = E("sub", p, inc)
    else:
        raise ValueError(f"unknown optimizer {name}")
    return p_new, new


def apply_optimizer(g: Graph, name: str, params: Mapping[str, Any], grads: Mapping[str, Node],
                    loc=None, lr_mult: Optional[Mapping[str, float]] = None) -> None:
    c = g.const
    E = g.emit
    lr_mult = lr_mult or {}
    with g.at(loc, "optimizer"):
        step = g.input("step", (), role="scalar")
        lr = g.input("lr", (), role="scalar")
        base_lr, base_lr_t = lr, bias_corrected_lr(g, name, params, step, lr)
        lr_t = base_lr_t
        clipped = clip_gradients(g, params, list(grads.values()))
        for pname, grad in zip(grads, clipped):
            p = g.inputs[pname]
            mult = float(lr_mult.get(pname, 1.0))
            if mult != 1.0:
                lr = E("mul", base_lr, c(mult))
                if base_lr_t is not None:
                    lr_t = E("mul", base_lr_t, c(mult))
            else:
                lr, lr_t = base_lr, base_lr_t
            state = {s: g.input(f"{name}.{s}.{pname}", p.shape, role="state", init="zeros")
                     for s in slots_for(name, params)}
            p_new, new = update_param(g, name, params, p, grad, state, lr, lr_t)
            g.output(pname, p_new, updates=pname)
            for s, node in new.items():
                key = f"{name}.{s}.{pname}"
                g.output(key, node, updates=key)


def optimizer_pass(g: Graph) -> Graph:
    """If the graph asks for it (`meta["optimizer"]`), replace its "grad.*"
    outputs with the optimizer update of each parameter (see module doc). In a
    data-parallel step (`meta["data_parallel"]`) the update reads the
    gradients' `shard_mean` over the workers."""
    spec = g.meta.get("optimizer")
    if spec is None or g.meta.get("optimized_update"):
        return g
    name, params, loc = spec
    g = rebuild(g)
    grads = {k[len("grad."):]: n for k, n in g.outputs.items() if k.startswith("grad.")}
    for k in grads:
        del g.outputs[f"grad.{k}"]
    if g.meta.get("data_parallel"):   # every worker updates with the global batch's gradient
        with g.at(loc, "optimizer"):  # (one reduction of the flat buffer, after flatten_params)
            grads = {k: g.emit("shard_mean", n) for k, n in grads.items()}
    apply_optimizer(g, name, params, grads, loc=loc, lr_mult=g.meta.get("lr_mult"))
    g.meta["optimized_update"] = True
    return g
