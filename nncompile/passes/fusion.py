"""Fusion analysis: which nodes run together in one kernel.

`fuse_elementwise(g)` does not rewrite the graph. It annotates it:

  g.meta["groups"]          a list of fusion groups in execution order
  g.meta["fusion_refused"]  (appended to) one line per fusion that was
                            possible in principle but refused, with the reason

A group is a dict:

  id        its index in the list
  kind      "elementwise"   a tree/DAG of pointwise ops computed in one pass
                            over the group's output shape (`shape`)
            "matmul",       a contraction head (a row with `head`: matmul,
            "conv"          conv2d, conv2d_grad_input) and its epilogue:
                            `epilogue` says {"bias": node id or None,
                            "activation": op name or None, "mask": node id or
                            None} (mask: the relu_grad source, backward of ReLU
                            fused in); the group's kind is the head's kind
            otherwise       the op kind of a singleton group ("reduction",
                            "rowwise", "index", "movement", "random", "pool",
                            "conv" for conv2d_grad_filter)
  nodes     node ids in execution order
  root      the last node (the group runs at its position)
  outputs   node ids whose value leaves the group (used by a later group or a
            graph output); the others stay in registers
  inputs    node ids read from outside the group (inputs, consts included)
  shape     the shape of the root (every elementwise member has this shape)

Pointwise ops are those whose op-table row says `pointwise`: the elementwise
ops, plus `unreduce` (broadcast of a gradient back to the input's shape) and
`dropout_mask` (a counter-based random draw per flat index).
Operands of other shapes (a bias [C] into [B,C], scalars, a [B,1] row
statistic) are broadcast in as group inputs.

Rule. A pointwise node joins the group of its users when ALL its users are
in that one group and it has the group's shape; then it is computed in
registers (it may still be a group output if the graph returns it). This is
what makes the grouping legal: a group is entered from outside only at its
root, so no path leaves a group and re-enters it. Groups are listed in the
order of their roots, which is a valid execution order.

Inputs, consts and values not needed by any output are in no group.
"""
from __future__ import annotations

from typing import Any, Optional

from ..ir.graph import Graph, Node
from ..ir.graph import users as graph_users
from ..ir.ops import OPS


def is_pointwise(n: Node) -> bool:
    return OPS[n.op].pointwise


def _epilogue(n: Node, users: dict[int, list[Node]],
                     out_ids: set[int]) -> tuple[list[Node], dict[str, Any]]:
    """The nodes after contraction `n` (a row with `head`) that its kernel's
    epilogue can compute:
    `+ bias[N]` (a row with epilogue="bias"), then a row with
    epilogue="activation"; or a row with epilogue="mask" (`relu_grad(n, y)`,
    the ReLU backward)."""
    chain: list[Node] = []
    epi: dict[str, Any] = {"bias": None, "activation": None, "mask": None}
    tail = n

    def only_user(x: Node) -> Optional[Node]:
        # the epilogue computes in registers: a value the graph returns must be stored
        us = users[x.id]
        return us[0] if len(us) == 1 and x.id not in out_ids else None

    u = only_user(tail)
    if u is not None and OPS[u.op].epilogue == "bias" and u.shape == n.shape and u.dtype == n.dtype:
        other = u.inputs[1] if u.inputs[0] is tail else u.inputs[0]
        if other is not tail and len(other.shape) == 1 and other.shape[0] == n.shape[-1]:
            chain.append(u)
            epi["bias"] = other.id
            tail = u
            u = only_user(tail)
    if u is not None and OPS[u.op].epilogue == "activation":
        chain.append(u)
        epi["activation"] = u.op
        tail = u
    elif u is not None and OPS[u.op].epilogue == "mask" and u.inputs[0] is tail and u.inputs[1] is not tail \
            and u.inputs[1].shape == n.shape and epi["bias"] is None:
        chain.append(u)
        epi["mask"] = u.inputs[1].id
    return chain, epi


def fuse_elementwise(g: Graph) -> Graph:
    nodes = g.live_nodes()
    pos = {n.id: i for i, n in enumerate(nodes)}
    users = graph_users(nodes)
    out_ids = {n.id for n in g.outputs.values()}
    refused: list[str] = g.meta.setdefault("fusion_refused", [])

    group_of: dict[int, int] = {}            # node id -> provisional group key
    members: dict[int, list[Node]] = {}      # provisional key -> nodes
    info: dict[int, dict[str, Any]] = {}
    key = 0

    def new_group(kind: str, ns: list[Node], **extra) -> int:
        nonlocal key
        key += 1
        members[key] = list(ns)
        info[key] = {"kind": kind, **extra}
        for m in ns:
            group_of[m.id] = key
        return key

    # 1. contraction heads (matmul, convolution) claim their epilogues
    for n in nodes:
        if OPS[n.op].head:
            chain, epi = _epilogue(n, users, out_ids)
            new_group(OPS[n.op].kind, [n] + chain, epilogue=epi)

    # 2. pointwise trees, grown from their roots (reverse execution order)
    for n in reversed(nodes):
        if n.id in group_of or OPS[n.op].kind in ("input", "const"):
            continue
        if not is_pointwise(n):
            new_group("view" if OPS[n.op].view else OPS[n.op].kind, [n])
            continue
        us = users[n.id]
        gks = {group_of.get(u.id) for u in us}
        target = next(iter(gks)) if len(gks) == 1 else None
        if target is not None and info[target]["kind"] == "elementwise":
            root = members[target][-1]
            if n.shape == root.shape:
                members[target].append(n)
                group_of[n.id] = target
                continue
            refused.append(f"{n.name} {n.op} not fused into the group of {root.name}: "
                           f"its shape {n.type_str} differs from the group's {root.type_str} "
                           f"(read as a broadcast input)")
        elif us:
            pw = [u for u in us if group_of.get(u.id) is not None
                  and info[group_of[u.id]]["kind"] == "elementwise"]
            if pw and len(us) > 1:
                refused.append(f"{n.name} {n.op} not fused into the group of {pw[0].name}: "
                               f"{n.name} has {len(us)} users in {len(gks)} groups")
        new_group("elementwise", [n])

    # 3. order: members by position, groups by their root's position
    groups = []
    for k, ns in members.items():
        ns.sort(key=lambda m: pos[m.id])
    for k in sorted(members, key=lambda k: pos[members[k][-1].id]):
        ns = members[k]
        ids = {m.id for m in ns}
        ins: list[int] = []
        for m in ns:
            for i in m.inputs:
                if i.id not in ids and i.id not in ins:
                    ins.append(i.id)
        outs = [m.id for m in ns
                if m.id in out_ids or any(u.id not in ids for u in users[m.id])]
        gid = len(groups)
        groups.append({"id": gid, "kind": info[k]["kind"], "nodes": [m.id for m in ns],
                       "root": ns[-1].id, "outputs": outs, "inputs": ins,
                       "shape": ns[-1].shape, **{kk: v for kk, v in info[k].items() if kk != "kind"}})
    g.meta["groups"] = groups
    return g


def groups_valid(g: Graph) -> bool:
    """True when meta["groups"] covers exactly the live computed nodes of `g`
    (a later rewrite would leave stale groups behind)."""
    groups = g.meta.get("groups")
    if not groups:
        return False
    want = {n.id for n in g.live_nodes() if n.op not in ("input", "const")}
    have = [i for gr in groups for i in gr["nodes"]]
    ids = {n.id: n for n in g.nodes}
    return sorted(have) == sorted(want) and all(i in ids for i in have)


def schedule(g: Graph) -> list[Node]:
    """The order in which the backends run the graph's computed nodes: group by
    group (each group's members in graph order), groups in the order of their
    roots (valid: see the module doc). Without groups: the live nodes' order.
    Inputs and constants are not in it."""
    if not groups_valid(g):
        return [n for n in g.live_nodes() if OPS[n.op].kind not in ("input", "const")]
    byid = {n.id: n for n in g.nodes}
    return [byid[i] for gr in g.meta["groups"] for i in gr["nodes"]]


def describe(g: Graph) -> str:
    """One line per group, for dumps and tests."""
    byid = {n.id: n for n in g.nodes}
    lines = []
    for gr in g.meta.get("groups", []):
        ops = " ".join(f"%{i}:{byid[i].op}" for i in gr["nodes"])
        lines.append(f"group {gr['id']} {gr['kind']}: {ops} -> "
                     + ", ".join(f"%{i}" for i in gr["outputs"]))
    return "\n".join(lines)
