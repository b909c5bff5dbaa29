"""What both code generators need to write Python source for a graph: names
for values and shapes, literals, the comment that locates a node."""
from __future__ import annotations

import math
import re

from ..ir.graph import B, Node


def ident(name: str) -> str:
    """A Python identifier for a graph input's name ("h1.weight" -> "a_h1_weight")."""
    return "a_" + re.sub(r"\W", "_", name)


def dim(d) -> str:
    return "B" if d == B else str(d)


def shape_src(shape) -> str:
    """A Python tuple expression for a shape, B standing for the batch size."""
    parts = [dim(d) for d in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def numel_src(dims) -> str:
    """A Python expression for the product of `dims` ("B*784", "10")."""
    ints = math.prod(d for d in dims if d != B)
    nb = sum(1 for d in dims if d == B)
    parts = ["B"] * nb + ([str(ints)] if ints != 1 or nb == 0 else [])
    return "*".join(parts)


def literal(v: float) -> str:
    """A Python float literal, inf and nan included."""
    v = float(v)
    if math.isnan(v):
        return 'float("nan")'
    if math.isinf(v):
        return 'float("inf")' if v > 0 else 'float("-inf")'
    return repr(v)


def where(n: Node) -> str:
    """`file:line` of the node's source, or ""."""
    return f"{n.loc.file}:{n.loc.line}" if n.loc is not None else ""


def comment(n: Node) -> str:
    """The trailing comment of a generated line: the node, its op, where it came from."""
    if not (n.loc or n.layer):
        return ""
    return f"  # {n.name} {n.op}" + (f" {where(n)}" if n.loc else "") + (f" {n.layer}" if n.layer else "")


def describe(ns) -> str:
    """Nodes, with their layers and source lines: the comment above a kernel."""
    locs = sorted({where(n) for n in ns if n.loc}, key=lambda s: (len(s), s))
    layers = sorted({n.layer for n in ns if n.layer})
    text = ", ".join(f"{n.name} {n.op}" for n in ns)
    if layers:
        text += " [" + ", ".join(layers) + "]"
    if locs:
        text += " at " + ", ".join(locs)
    return text
