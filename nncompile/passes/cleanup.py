"""Common-subexpression and dead-code elimination."""
from __future__ import annotations

from ..ir.graph import Graph, Node
from ..ir.ops import OPS
from .rewrite import attrs_key, rebuild


def dce(g: Graph) -> Graph:
    """Drop every node no output depends on. Inputs are kept (they are the
    graph's signature). Guarantees: outputs and their values are unchanged."""
    live = {n.id for n in g.live_nodes()}
    return rebuild(g, keep=live)


def cse(g: Graph) -> Graph:
    """Merge nodes that apply the same op with the same attributes to the same
    inputs. Random ops are never merged. Guarantees: values are unchanged; the
    first node of a set of equal ones (and its source location) survives."""
    seen: dict[tuple, Node] = {}

    def visit(out: Graph, n: Node, ins: tuple[Node, ...], m):
        if OPS[n.op].kind == "random":
            return None
        key = (n.op, tuple(i.id for i in ins), attrs_key(n.attrs), n.dtype, n.shape)
        hit = seen.get(key)
        if hit is not None:
            return hit
        node = out._append(n.op, ins, n.attrs, n.dtype, n.shape)
        seen[key] = node
        return node

    return rebuild(g, visit)
