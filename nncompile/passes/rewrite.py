"""The machinery passes share: copy a graph node by node, optionally replacing nodes."""
from __future__ import annotations

from typing import Callable, Optional

from ..ir.graph import Graph, Node


def rebuild(g: Graph, visit: Optional[Callable[..., Optional[Node]]] = None,
            keep: Optional[set[int]] = None) -> Graph:
    """A copy of `g`. For each node (in order), `visit(new_graph, node, new_inputs, m)`
    may return a node of the new graph to stand for it; None copies it as is.
    `m` maps the ids of nodes already visited to their new nodes.
    `keep`, if given, is the set of ids to copy (inputs are always copied)."""
    out = g.copy_structure()
    m: dict[int, Node] = {}
    for n in g.nodes:
        if n.op == "input":
            m[n.id] = copy_input(out, g, n)
            continue
        if keep is not None and n.id not in keep:
            continue
        ins = tuple(m[i.id] for i in n.inputs)
        with out.at(n.loc, n.layer):
            rep = visit(out, n, ins, m) if visit else None
            if rep is None:
                rep = out._append(n.op, ins, n.attrs, n.dtype, n.shape)
        m[n.id] = rep
    for k, n in g.outputs.items():
        out.output(k, m[n.id], updates=g.updates.get(k))
    return out


def copy_input(out: Graph, g: Graph, n: Node) -> Node:
    """Declare input `n` of `g` in `out`, with its spec and source location."""
    spec = g.input_specs[n.attrs["name"]]
    with out.at(n.loc, n.layer):
        return out.input(spec.name, n.shape, n.dtype, role=spec.role, init=spec.init, trainable=spec.trainable)


def attrs_key(attrs: dict) -> tuple:
    def freeze(v):
        if isinstance(v, (list, tuple)):
            return tuple(freeze(x) for x in v)
        if isinstance(v, float):
            return ("f", repr(v))  # 0.0 and -0.0, nan: distinct by text
        return v
    return tuple(sorted((k, freeze(v)) for k, v in attrs.items()))
