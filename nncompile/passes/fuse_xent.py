"""Fuse softmax cross-entropy before differentiation.

    neg(take_label(log_softmax(z), y))  ->  softmax_xent(z, y)

The fused op computes log-sum-exp(z) - z[y] in one stable row kernel, and its
gradient rule is the single row kernel (softmax(z) - onehot(y)) * g, instead of
the log_softmax / onehot / broadcast chain that differentiating the pieces
gives. It runs before `autodiff` so the backward pass gets the fused gradient.
Guarantees: same values up to rounding (the fused form is the more accurate).
The rewrite is refused, and the reason recorded in `meta["fusion_refused"]`,
when the log-probabilities are used elsewhere.
"""
from __future__ import annotations

from ..ir.graph import Graph, Node
from .cleanup import dce
from .rewrite import rebuild


def fuse_softmax_xent(g: Graph) -> Graph:
    users = g.users()

    def visit(out: Graph, n: Node, ins, m):
        if n.op != "neg" or n.inputs[0].op != "take_label":
            return None
        take = n.inputs[0]
        logp, y = take.inputs
        if logp.op != "log_softmax" or len(logp.shape) != 2:
            return None
        if (len(users[take.id]) != 1 or len(users[logp.id]) != 1
                or any(o is take or o is logp for o in g.outputs.values())):
            out.meta.setdefault("fusion_refused", []).append(
                f"{n.name}: softmax cross-entropy not fused: the log-probabilities {logp.name} have other users")
            return None
        return out.emit("softmax_xent", m[logp.inputs[0].id], m[y.id])

    return dce(rebuild(g, visit))
