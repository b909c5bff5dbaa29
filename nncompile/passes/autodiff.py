"""Reverse-mode automatic differentiation as a graph transform.

`differentiate` appends, to the same graph, the nodes that compute the
gradient of a scalar node with respect to chosen inputs. Each op's rule lives
in the op table (`OpDef.grad`); this pass only walks the graph backwards,
calls the rules and sums the contributions of values used more than once.

Guarantees: only nodes on a path from a `wrt` input to the loss are
differentiated; every gradient node carries the source location and layer of
the forward node it differentiates; the forward nodes are left untouched.
"""
from __future__ import annotations

from typing import Optional

from ..ir.graph import Graph, Node
from ..ir.ops import OPS, IRError
from .rewrite import rebuild


def _between(g: Graph, loss: Node, wrt: list[Node]) -> set[int]:
    """Ids of nodes that depend on some `wrt` node and that `loss` depends on."""
    ancestors: set[int] = set()
    stack = [loss]
    while stack:
        n = stack.pop()
        if n.id not in ancestors:
            ancestors.add(n.id)
            stack.extend(n.inputs)
    reach = {w.id for w in wrt}
    for n in g.nodes:  # graph order is topological
        if n.id not in reach and any(i.id in reach for i in n.inputs):
            reach.add(n.id)
    return ancestors & reach


def differentiate(g: Graph, loss: Node, wrt: list[Node]) -> dict[str, Node]:
    """Append d(loss)/d(w) for each input `w` in `wrt`; return {input name: grad node}."""
    return {w.attrs["name"]: gw for w, gw in zip(wrt, gradients(g, loss, wrt))}


def gradients(g: Graph, loss: Node, wrt: list[Node], since: Optional[int] = None) -> list[Node]:
    """Append d(loss)/d(w) for each node `w` of `wrt` (inputs or computed values);
    return the gradient nodes in the order of `wrt`. With `since` (a node id),
    nodes older than it other than the `wrt` nodes are constants: only paths
    through nodes appended from `since` on carry gradient (a function traced
    into the graph from that point, differentiated w.r.t. its arguments)."""
    if loss.shape != ():
        raise IRError(f"can only differentiate a scalar, got {loss.type_str}")
    relevant = _between(g, loss, wrt)
    if since is not None:
        relevant = {i for i in relevant if i >= since or i in {w.id for w in wrt}}
    grads: dict[int, Node] = {}
    with g.at(loss.loc, loss.layer):
        grads[loss.id] = g.const(1.0, loss.dtype)
    wrt_ids = {w.id for w in wrt}
    for n in reversed([n for n in g.nodes if n.id in relevant]):
        gn = grads.get(n.id)
        if gn is None or n.op == "input" or n.id in wrt_ids:   # each `wrt` node is a variable of its own
            continue
        rule = OPS[n.op].grad
        if rule is None:
            raise IRError(f"op {n.op} ({n.name}) has no gradient rule")
        with g.at(n.loc, n.layer):
            contributions = rule(g, n, gn)
            for inp, gi in zip(n.inputs, contributions):
                if gi is None or inp.id not in relevant:
                    continue
                prev = grads.get(inp.id)
                grads[inp.id] = gi if prev is None else g.emit("add", prev, gi)
    out: list[Node] = []
    for w in wrt:
        gw = grads.get(w.id)
        if gw is None:  # the loss does not depend on w
            with g.at(w.loc, w.layer):
                gw = g.emit("unreduce", g.const(0.0, w.dtype), w, axes=(), keepdims=True, mean=False)
        out.append(gw)
    return out


def autodiff_pass(g: Graph) -> Graph:
    """If the graph asks for it (`meta["differentiate"]` names a scalar output),
    append the gradient of that output with respect to every trainable
    parameter input, as outputs "grad.<param>". Idempotent: a graph that
    already has its gradients is returned unchanged."""
    target = g.meta.get("differentiate")
    if target is None or g.meta.get("differentiated"):
        return g
    g = rebuild(g)
    params = [g.inputs[k] for k, s in g.input_specs.items() if s.role == "param" and s.trainable]
    for name, node in differentiate(g, g.outputs[target], params).items():
        g.output(f"grad.{name}", node)
    g.meta["differentiated"] = True
    return g
