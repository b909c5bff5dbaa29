"""Memory planning: which buffer holds each value.

Liveness is computed over the graph's execution order. A node's value is
written:
  - into the buffer of an input that dies at this node, when the op can work
    in place (elementwise, same shape and dtype);
  - else into a free buffer of the same shape and dtype (its last reader ran);
  - else into a new buffer.
Graph inputs are never overwritten here (parameters are updated in place by
the backend, through `Graph.updates`), outputs stay live to the end, and views
(reshape) share their source's buffer and keep it alive.

The plan is stored in `graph.meta["memory_plan"]`; it is the last pass, since
any later rewrite would invalidate it. `MemoryPlan.report(batch)` gives the
bytes one buffer per value would take, and the bytes the plan takes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..ir.graph import B, Graph, Node, Shape
from ..ir.ops import NP_DTYPE, OPS

# ops whose NumPy and Triton code may write the output over an input of the same shape
INPLACE_OPS = {name for name, d in OPS.items() if d.inplace_ok} | {"softmax", "log_softmax"}
NO_BUFFER = {"input", "const", "reshape", "slice_flat"}
VIEWS = {"reshape", "slice_flat"}


@dataclass
class MemoryPlan:
    buffer_of: dict[int, int] = field(default_factory=dict)     # node id -> buffer index
    buffers: list[tuple[Shape, str]] = field(default_factory=list)
    inplace: list[tuple[int, int]] = field(default_factory=list)  # (node id, input id it overwrote)
    # values written straight into their place in a concat_flat's buffer: id -> (concat id, offset)
    placed: dict[int, tuple[int, int]] = field(default_factory=dict)
    values: list[tuple[Shape, str]] = field(default_factory=list)  # every buffered value

    def report(self, batch: int) -> dict[str, int]:
        def nbytes(shape, dtype):
            return math.prod(batch if d == B else d for d in shape) * NP_DTYPE[dtype]().itemsize
        return {"values": len(self.values), "buffers": len(self.buffers),
                "bytes_before": sum(nbytes(*v) for v in self.values),
                "bytes_after": sum(nbytes(*b) for b in self.buffers),
                "in_place": len(self.inplace)}


def plan_memory(g: Graph) -> Graph:
    """Annotate the graph with a buffer plan (see module doc). The graph itself is unchanged."""
    nodes = g.live_nodes()
    root: dict[int, Node] = {}            # view -> the node owning the memory
    for n in nodes:
        root[n.id] = root[n.inputs[0].id] if n.op in VIEWS else n
    last_use: dict[int, int] = {}
    for i, n in enumerate(nodes):
        for x in n.inputs:
            r = root[x.id]
            last_use[r.id] = i
    end = len(nodes)
    for o in g.outputs.values():
        last_use[root[o.id].id] = end
    plan = MemoryPlan()
    users: dict[int, int] = {}
    for n in nodes:
        for x in n.inputs:
            users[x.id] = users.get(x.id, 0) + 1
    outputs = {o.id for o in g.outputs.values()}
    for n in nodes:
        if n.op == "concat_flat":
            off = 0
            for x in n.inputs:
                if (x.op not in NO_BUFFER and users.get(x.id) == 1 and x.id not in outputs
                        and x.op != "concat_flat"):
                    plan.placed[x.id] = (n.id, off)
                off += math.prod(x.shape)
    free: dict[tuple, list[int]] = {}

    def release(i: int, n: Node) -> None:
        """Free the buffers whose last reader is node i."""
        for x in {root[x.id].id: root[x.id] for x in n.inputs}.values():
            if last_use.get(x.id) == i and x.id in plan.buffer_of:
                free.setdefault((x.shape, x.dtype), []).append(plan.buffer_of[x.id])

    for i, n in enumerate(nodes):
        if n.op in NO_BUFFER or n.id in plan.placed:
            release(i, n)
            continue
        key = (n.shape, n.dtype)
        plan.values.append(key)
        buf = None
        if n.op == "concat_flat":  # its pieces are written before it runs: never a reused buffer
            buf = len(plan.buffers)
            plan.buffers.append(key)
            plan.buffer_of[n.id] = buf
            release(i, n)
            continue
        if n.op in INPLACE_OPS:
            for x in n.inputs:
                r = root[x.id]
                if (r.op not in ("input", "const") and x.op not in VIEWS and (x.shape, x.dtype) == key
                        and last_use.get(r.id) == i and r.id in plan.buffer_of
                        and sum(1 for y in n.inputs if root[y.id] is r) == 1):
                    buf = plan.buffer_of[r.id]
                    plan.inplace.append((n.id, x.id))
                    last_use[r.id] = -1  # its buffer now belongs to n
                    break
        if buf is None and free.get(key):
            buf = free[key].pop()
        if buf is None:
            buf = len(plan.buffers)
            plan.buffers.append(key)
        plan.buffer_of[n.id] = buf
        release(i, n)
        if last_use.get(n.id) is None:  # never read: free at once
            free.setdefault(key, []).append(buf)
    g.meta["memory_plan"] = plan
    return g
