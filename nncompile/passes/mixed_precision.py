"""Mixed precision: every contraction reads bf16 or fp16 operands, the rest stays f32.

With `meta["precision"]` = "mixed_bf16" or "mixed_f16" (the train block's
`precision` setting), each operand of each contraction (an op of kind matmul
or conv: the forward matmuls and convolutions, and after `autodiff` also the
ones that compute their gradients) is wrapped in `round_to` that precision.
The contraction still accumulates and writes f32. Everything else reads f32
values and is untouched: parameters (the master weights), optimizer state,
batch/layer-norm statistics, softmax and cross-entropy, reductions, the loss.
This is Keras's mixed policy and torch.autocast's list of low-precision ops,
minus their low-precision outputs: an output is rounded only when the next
contraction reads it.

It runs after `autodiff`, so the gradient contractions get rounded operands
the same way (dy and the rounded weight for dx; x and dy for dw) and the
gradient rule of `round_to` is never needed on this path. Guarantees: with
"f32" or no setting the graph is returned unchanged; no operand is rounded
twice (CSE merges the rounding of a weight read by the forward and the
backward contraction).
"""
from __future__ import annotations

from ..ir.graph import Graph, Node
from ..ir.ops import OPS
from .rewrite import rebuild

# the train block's setting -> the rounding of the contraction operands
PRECISION = {"mixed_bf16": "bf16", "mixed_f16": "f16"}
CONTRACTIONS = ("matmul", "conv")


def mixed_precision(g: Graph) -> Graph:
    """Round every contraction operand to the precision `meta["precision"]` names."""
    precision = PRECISION.get(g.meta.get("precision", "f32"))
    if precision is None or g.meta.get("mixed_precision"):
        return g

    def visit(out: Graph, n: Node, ins, m):
        if OPS[n.op].kind not in CONTRACTIONS:
            return None
        rounded = tuple(i if i.op == "round_to" else out.emit("round_to", i, precision=precision) for i in ins)
        return out._append(n.op, rounded, n.attrs, n.dtype, n.shape)

    g = rebuild(g, visit)
    g.meta["mixed_precision"] = True
    return g
