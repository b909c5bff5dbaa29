"""Dynamic loss scaling for fp16 training steps (`precision = mixed_f16`).

fp16 holds nothing below 6e-8, so small gradients rounded to fp16 for the
backward contractions (passes/mixed_precision.py) would flush to zero. The
loss is multiplied by a scale before differentiation, the gradients are
divided by it before the optimizer, and the scale adapts: Keras 3's
LossScaleOptimizer's constants (torch's GradScaler differs only in starting at
2**16):

  initial scale 2**15; after 2000 steps in a row with finite gradients it
  doubles; a step with any inf/NaN gradient is skipped (parameters and
  optimizer state keep their values, the optimizer's step count does not
  advance) and the scale halves.

The scale, the run of finite steps and the count of skipped steps are state
inputs (`loss_scale.scale`, `loss_scale.good`, `loss_scale.skipped`), updated by
the step itself, so checkpoints hold them and a resumed run continues exactly.
Batch-norm statistics are updated on a skipped step too, as in Keras and torch
(they come from the forward pass).

Three passes, each a no-op unless the graph is a training step in mixed_f16:
`scale_loss` (before autodiff), `unscale_grads` (after it), `skip_nonfinite`
(after the optimizer). All scale arithmetic is by powers of two: exact.
"""
from __future__ import annotations

from ..ir.graph import Graph
from .rewrite import copy_input, rebuild

INITIAL_SCALE = 2.0 ** 15
GROWTH_STEPS = 2000
SCALE, GOOD, SKIPPED = "loss_scale.scale", "loss_scale.good", "loss_scale.skipped"
FINITE = "loss_scale.finite"
SCALED = "loss.scaled"


def _applies(g: Graph) -> bool:
    return g.meta.get("precision") == "mixed_f16" and "optimizer" in g.meta


def scale_loss(g: Graph) -> Graph:
    """Differentiate loss * scale instead of the loss (a new output, `loss.scaled`)."""
    if not _applies(g) or g.meta.get("differentiated") or g.meta.get("differentiate") == SCALED:
        return g
    g = rebuild(g)
    loss = g.outputs[g.meta["differentiate"]]
    with g.at(loss.loc, "loss_scale"):
        # [1], not scalars: state lives in the backend's arrays, and a 0-d one does not survive them
        scale = g.input(SCALE, (1,), role="state", init=f"constant:{INITIAL_SCALE!r}")
        g.input(GOOD, (1,), role="state", init="zeros")
        g.input(SKIPPED, (1,), role="state", init="zeros")
        g.output(SCALED, g.emit("mul", loss, g.emit("reshape", scale, shape=())))
    g.meta["differentiate"] = SCALED
    return g


def unscale_grads(g: Graph) -> Graph:
    """Divide each gradient by the scale; decide whether all are finite (the output
    `loss_scale.finite`, 1 or 0, which `skip_nonfinite` consumes) and update the scale."""
    if not _applies(g) or SCALED not in g.outputs or not g.meta.get("differentiated"):
        return g
    g = rebuild(g)
    del g.outputs[SCALED]
    E, c = g.emit, g.const
    scale, good, skipped = g.inputs[SCALE], g.inputs[GOOD], g.inputs[SKIPPED]
    with g.at(scale.loc, "loss_scale"):
        s = E("reshape", scale, shape=())
        # g * 0 is 0 for a finite g and NaN for inf or NaN: one sum says whether all are finite
        bad = None
        for k in [k for k in g.outputs if k.startswith("grad.")]:
            grad = g.outputs[k]
            axes = tuple(range(len(grad.shape)))
            probe = E("sum", E("mul", grad, c(0.0)), axes=axes, keepdims=False) if axes else E("mul", grad, c(0.0))
            bad = probe if bad is None else E("add", bad, probe)
            g.output(k, E("div", grad, s))
        finite = E("equal", bad, c(0.0))
        run = E("add", good, c(1.0))
        grow = E("greater_equal", run, c(float(GROWTH_STEPS)))
        kept = E("where", grow, E("mul", scale, c(2.0)), scale)
        g.output(SCALE, E("where", finite, kept, E("mul", scale, c(0.5))), updates=SCALE)
        g.output(GOOD, E("where", finite, E("where", grow, c(0.0), run), c(0.0)), updates=GOOD)
        g.output(SKIPPED, E("add", skipped, E("sub", c(1.0), finite)), updates=SKIPPED)
        g.output(FINITE, finite)
    g.meta["loss_scale_ungated"] = sorted(g.updates)    # batch-norm statistics and the scale itself
    return g


def skip_nonfinite(g: Graph) -> Graph:
    """Keep the old value of every parameter and optimizer state on a step with
    non-finite gradients, and count the optimizer's steps without the skipped ones."""
    if not _applies(g) or FINITE not in g.outputs or not g.meta.get("optimized_update"):
        return g
    ungated = set(g.meta["loss_scale_ungated"])
    out = g.copy_structure()
    m = {}
    for n in g.nodes:
        if n.op == "input":
            m[n.id] = copy_input(out, g, n)
            if n.attrs["name"] == "step":     # the optimizer's t (Adam's bias correction): skipped steps don't count
                with out.at(n.loc, "loss_scale"):
                    m[n.id] = out.emit("sub", m[n.id], out.emit("reshape", out.inputs[SKIPPED], shape=()))
            continue
        with out.at(n.loc, n.layer):
            m[n.id] = out._append(n.op, tuple(m[i.id] for i in n.inputs), n.attrs, n.dtype, n.shape)
    finite = m[g.outputs[FINITE].id]
    for k, n in g.outputs.items():
        if k == FINITE:
            continue
        node = m[n.id]
        if k in g.updates and k not in ungated:
            with out.at(node.loc, "loss_scale"):
                node = out.emit("where", finite, node, out.inputs[g.updates[k]])
        out.output(k, node, updates=g.updates.get(k))
    return out
