"""Memory planning: which buffer holds each value, for every backend.

The plan is made over the schedule both backends run (`fusion.schedule`: the
fusion groups in order, each group's members in order), so it runs after
`fuse_elementwise`. Liveness is computed over that schedule. A computed
value is written:
  - into the buffer of an input that dies at this node, when the op's row says
    `inplace` (same shape and dtype);
  - else into a free buffer of the same shape and dtype (its last reader ran);
  - else into a new buffer.
Views (rows with `view`: reshape, slice_flat) have no buffer: they share their
source's and keep it alive. Graph inputs are never overwritten by this reuse;
outputs stay live to the end.

Three more decisions are part of the plan:
  - workspaces: scratch an op's row asks for (`OpDef.workspace`: the im2col
    columns of a convolution, a padded copy of its input) come from a pool of
    [B, n] buffers shared by every op that needs one, each as large as its
    largest user; a workspace lives while its op runs, except that a forward
    convolution's columns are kept for its filter gradient (which then does
    not recompute them) when they take at most COLUMNS_KEEP_LIMIT elements
    per sample (`kept_columns`; `notes` says which were kept and which
    recomputed, and `dump --after plan_memory` prints it);
  - `placed`: the pieces of a `concat_flat` (the flat gradient) are written
    straight into their place in its buffer, so the concatenation copies nothing;
  - `update_into`: an output that is the next value of an input (a parameter,
    optimizer or batch-norm state: `Graph.updates`) is written straight into
    that input's array when every other reader of the input runs before it,
    or in the same fusion group reading it element for element.

Why one plan is right for both backends: the NumPy backend runs every node,
in schedule order, and uses every buffer. The Triton backend runs a fusion
group as one kernel and keeps values that do not leave the group in
registers, so it allocates only the buffers of group outputs. A buffer shared
by two values in this plan is shared only where, in the kernel that writes the
second value, the first is read at the same index it is written (same shape;
reused after its last reader, in the same group or earlier), which is safe for
a kernel that loads before it stores. The only backend-specific decisions left
are execution strategies that allocate nothing the plan knows of (docs/passes.md).

The plan is stored in `graph.meta["memory_plan"]`; it is the last pass, since
any later rewrite would invalidate it. `MemoryPlan.report(batch)` gives the
bytes one buffer per value would take, and the bytes the plan takes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..ir.graph import B, Graph, Node, Shape
from ..ir.graph import users as graph_users
from ..ir.ops import NP_DTYPE, OPS
from .fusion import groups_valid, schedule

UNBUFFERED_KINDS = ("input", "const")
# a forward convolution's columns are kept for its filter gradient up to this
# many elements per sample (1 MB of f32: 64 MB at batch 64), else recomputed
COLUMNS_KEEP_LIMIT = 1 << 18


def has_buffer(n: Node) -> bool:
    d = OPS[n.op]
    return d.kind not in UNBUFFERED_KINDS and not d.view


@dataclass
class MemoryPlan:
    schedule: list[int] = field(default_factory=list)           # node ids in execution order
    buffer_of: dict[int, int] = field(default_factory=dict)     # node id -> buffer index
    buffers: list[tuple[Shape, str]] = field(default_factory=list)
    inplace: list[tuple[int, int]] = field(default_factory=list)  # (node id, input id it overwrote)
    # values written straight into their place in a concat_flat's buffer: id -> (concat id, offset)
    placed: dict[int, tuple[int, int]] = field(default_factory=dict)
    # outputs written straight into the graph input they update: node id -> input name
    update_into: dict[int, str] = field(default_factory=dict)
    values: list[tuple[Shape, str]] = field(default_factory=list)  # every buffered value
    # workspace pools: [elements per sample, dtype]; node id -> its workspaces' pool indices
    workspaces: list[list] = field(default_factory=list)
    workspace_of: dict[int, list[int]] = field(default_factory=dict)
    kept_columns: dict[int, int] = field(default_factory=dict)  # filter-gradient id -> conv id
    notes: list[str] = field(default_factory=list)

    def report(self, batch: int) -> dict[str, int]:
        def nbytes(shape, dtype):
            return math.prod(batch if d == B else d for d in shape) * NP_DTYPE[dtype]().itemsize
        return {"values": len(self.values), "buffers": len(self.buffers),
                "bytes_before": sum(nbytes(*v) for v in self.values),
                "bytes_after": sum(nbytes(*b) for b in self.buffers),
                "in_place": len(self.inplace), "workspaces": len(self.workspaces),
                "workspace_bytes": sum(nbytes((B, n), dt) for n, dt in self.workspaces)}


def unplanned(g: Graph) -> MemoryPlan:
    """The plan of a graph that never ran `plan_memory` (the unoptimised oracle):
    one buffer per value, nothing in place, nothing placed, updates copied."""
    plan = MemoryPlan(schedule=[n.id for n in schedule(g)])
    for n in schedule(g):
        if has_buffer(n):
            plan.buffer_of[n.id] = len(plan.buffers)
            plan.buffers.append((n.shape, n.dtype))
            plan.values.append((n.shape, n.dtype))
        for shape, dtype in workspace_specs(n):
            plan.workspace_of.setdefault(n.id, []).append(len(plan.workspaces))
            plan.workspaces.append([_per_sample(shape), dtype])
    return plan


def workspace_specs(n: Node) -> list[tuple[Shape, str]]:
    ws = OPS[n.op].workspace
    return ws(n) if ws is not None else []


def _per_sample(shape: Shape) -> int:
    if not shape or shape[0] != B or B in shape[1:]:
        raise ValueError(f"a workspace is [B, ...], not {shape}")
    return math.prod(shape[1:])


def plan_of(g: Graph) -> MemoryPlan:
    """The graph's memory plan, or `unplanned(g)` when it has none."""
    plan = g.meta.get("memory_plan")
    return plan if plan is not None else unplanned(g)


def plan_memory(g: Graph) -> Graph:
    """Annotate the graph with a buffer plan (see module doc). The graph itself is unchanged."""
    order = schedule(g)
    pos = {n.id: i for i, n in enumerate(order)}
    root: dict[int, Node] = {}            # view -> the node owning the memory
    for n in g.live_nodes():
        root[n.id] = root[n.inputs[0].id] if OPS[n.op].view else n
    last_use: dict[int, int] = {}
    for i, n in enumerate(order):
        for x in n.inputs:
            last_use[root[x.id].id] = i
    end = len(order)
    for o in g.outputs.values():
        last_use[root[o.id].id] = end
    plan = MemoryPlan(schedule=[n.id for n in order])
    outputs = [o.id for o in g.outputs.values()]
    users = graph_users(order)
    plan.update_into = _updates_in_place(g, order, pos, users)
    for n in order:
        if n.op == "concat_flat":
            off = 0
            for x in n.inputs:
                if (has_buffer(x) and users.get(x.id) == [n] and n.inputs.count(x) == 1
                        and x.id not in outputs and x.op != "concat_flat"):
                    plan.placed[x.id] = (n.id, off)
                off += math.prod(x.shape)
    free: dict[tuple, list[int]] = {}

    def release(i: int, n: Node) -> None:
        """Free the buffers whose last reader is node i."""
        for x in {root[x.id].id: root[x.id] for x in n.inputs}.values():
            if last_use.get(x.id) == i and x.id in plan.buffer_of:
                free.setdefault((x.shape, x.dtype), []).append(plan.buffer_of[x.id])

    for i, n in enumerate(order):
        if not has_buffer(n) or n.id in plan.placed or n.id in plan.update_into:
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
        if OPS[n.op].inplace:
            for x in n.inputs:
                r = root[x.id]
                if (has_buffer(r) and not OPS[x.op].view and (x.shape, x.dtype) == key
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
    _plan_workspaces(plan, order, pos)
    g.meta["memory_plan"] = plan
    return g


def _same_columns(conv: Node, grad: Node) -> bool:
    """Whether a filter gradient needs exactly the columns the convolution made."""
    return (grad.inputs[0] is conv.inputs[0] and tuple(grad.shape) == tuple(conv.inputs[1].shape)
            and all(grad.attrs[k] == conv.attrs[k] for k in ("window", "strides", "padding", "dilation")))


def _plan_workspaces(plan: MemoryPlan, order: list[Node], pos: dict[int, int]) -> None:
    """Pool the workspaces (see module doc); keep convolution columns for the filter gradient."""
    convs = [n for n in order if n.op == "conv2d"]
    keep_until: dict[int, int] = {}          # pool index -> schedule position of its last user
    free: list[int] = []

    def take(per_sample: int, dtype: str) -> int:
        k = next((k for k in free if plan.workspaces[k][1] == dtype), None)
        if k is None:
            plan.workspaces.append([per_sample, dtype])
            return len(plan.workspaces) - 1
        free.remove(k)
        plan.workspaces[k][0] = max(plan.workspaces[k][0], per_sample)
        return k

    for i, n in enumerate(order):
        specs = workspace_specs(n)
        conv = next((c for c in convs if n.op == "conv2d_grad_filter" and pos[c.id] < i and _same_columns(c, n)
                     and c.id in plan.workspace_of), None)
        if conv is not None and plan.workspace_of[conv.id][0] in keep_until:
            cols = plan.workspace_of[conv.id][0]
            plan.workspace_of[n.id] = [cols]
            plan.kept_columns[n.id] = conv.id
            keep_until[cols] = i
        elif specs:
            plan.workspace_of[n.id] = [take(_per_sample(s), dt) for s, dt in specs]
            if n.op == "conv2d":
                per = _per_sample(specs[0][0])
                grads = [u for u in order[i + 1:] if u.op == "conv2d_grad_filter" and _same_columns(n, u)]
                if grads and per <= COLUMNS_KEEP_LIMIT:
                    keep_until[plan.workspace_of[n.id][0]] = pos[grads[0].id]
                    plan.notes.append(f"{n.name} conv2d: columns ({per:,} elements a sample) kept for "
                                      f"{grads[0].name} conv2d_grad_filter")
                elif grads:
                    plan.notes.append(f"{n.name} conv2d: columns ({per:,} elements a sample, over the "
                                      f"{COLUMNS_KEEP_LIMIT:,} limit) recomputed by {grads[0].name}")
        for k in plan.workspace_of.get(n.id, []):   # free what this node was the last user of
            if keep_until.get(k, i) <= i and k not in free:
                keep_until.pop(k, None)
                free.append(k)


def _updates_in_place(g: Graph, order: list[Node], pos: dict[int, int],
                      users: dict[int, list[Node]]) -> dict[int, str]:
    """Outputs written straight into the input they update (see module doc)."""
    group_of = ({i: gr["id"] for gr in g.meta["groups"] for i in gr["nodes"]}
                if groups_valid(g) else {})
    counts: dict[int, int] = {}
    for o in g.outputs.values():
        counts[o.id] = counts.get(o.id, 0) + 1
    out: dict[int, str] = {}
    for out_name, in_name in g.updates.items():
        p, x = g.outputs[out_name], g.inputs[in_name]
        if (p.id not in pos or not OPS[p.op].inplace or counts[p.id] != 1 or p.id in out
                or (p.shape, p.dtype) != (x.shape, x.dtype)
                or g.input_specs[in_name].role == "scalar"):
            continue
        if all(_reads_before(u, p, x, pos, group_of) for u in _readers(x, users)):
            out[p.id] = in_name
    return out


def _readers(x: Node, users: dict[int, list[Node]]) -> list[tuple[Node, bool]]:
    """The nodes that read input x's memory, directly or through views: (reader, direct)."""
    out, stack = [], [(u, True) for u in users.get(x.id, [])]
    while stack:
        u, direct = stack.pop()
        if OPS[u.op].view:
            stack.extend((w, False) for w in users.get(u.id, []))
        else:
            out.append((u, direct))
    return out


def _reads_before(reader: tuple[Node, bool], p: Node, x: Node, pos: dict[int, int],
                  group_of: dict[int, int]) -> bool:
    """Whether writing p into x's array cannot change what `reader` reads."""
    u, direct = reader
    if u is p:
        return direct
    if pos[u.id] > pos[p.id]:
        return False
    if group_of and group_of.get(u.id) == group_of.get(p.id):
        # the same kernel reads x while it writes p: only element for element
        d = OPS[u.op]
        return direct and d.pointwise and d.kind == "elementwise" and u.shape == x.shape
    return True
