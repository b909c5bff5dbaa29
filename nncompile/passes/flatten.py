"""Flatten the trainable parameters into one buffer, so the optimizer update is
one chain of elementwise ops over all parameters instead of one per parameter.

Runs after `autodiff` and before `optimizer`. Each trainable parameter input
`p` is replaced by `slice_flat(params.flat, offset, shape)` (a view), and the
`grad.<p>` outputs by one `grad.params.flat = concat_flat(grads...)`; the
backends write each gradient straight into its place in that buffer, so the
concatenation copies nothing. The layout is in `meta["flat_params"]`:
{"input": "params.flat", "layout": [(name, offset, shape), ...]}.

Guarantees: the same values as the unflattened graph. Refused (graph unchanged,
reason in `meta["fusion_refused"]`) when fewer than two parameters would be
flattened, or when parameters carry per-parameter optimizer settings (lr_mult,
clipnorm).
"""
from __future__ import annotations

import math

from ..ir.graph import Graph
from .rewrite import copy_input

FLAT = "params.flat"


def flatten_params(g: Graph) -> Graph:
    if "optimizer" not in g.meta or not g.meta.get("differentiated") or "flat_params" in g.meta:
        return g
    names = [k for k in g.outputs if k.startswith("grad.")]
    params = [k[len("grad."):] for k in names]
    refused = g.meta.setdefault("fusion_refused", [])
    if len(params) < 2:
        return g
    # clipnorm scales each parameter's gradient by its own norm: not one chain over the buffer
    per_param = g.meta.get("lr_mult") or g.meta["optimizer"][1].get("clipnorm")
    if per_param or any(g.inputs[p].dtype != g.inputs[params[0]].dtype for p in params):
        refused.append("flatten_params: parameters have per-parameter settings or dtypes; updated one by one")
        return g
    layout, off = [], 0
    for p in params:
        shape = tuple(g.inputs[p].shape)
        layout.append((p, off, shape))
        off += math.prod(shape)
    where = {p: (o, s) for p, o, s in layout}
    out = g.copy_structure()
    m = {}
    flat = None
    for n in g.nodes:
        if n.op == "input" and n.attrs["name"] in where:
            if flat is None:
                with out.at(None, "params"):
                    flat = out.input(FLAT, (off,), n.dtype, role="param", init="flat")
            o, s = where[n.attrs["name"]]
            with out.at(n.loc, n.layer):
                m[n.id] = out.emit("slice_flat", flat, offset=o, shape=s)
            continue
        if n.op == "input":
            m[n.id] = copy_input(out, g, n)
            continue
        with out.at(n.loc, n.layer):
            m[n.id] = out._append(n.op, tuple(m[i.id] for i in n.inputs), n.attrs, n.dtype, n.shape)
    for k, n in g.outputs.items():
        if not k.startswith("grad."):
            out.output(k, m[n.id], updates=g.updates.get(k))
    with out.at(None, "optimizer"):
        out.output(f"grad.{FLAT}", out.emit("concat_flat", *[m[g.outputs[k].id] for k in names]))
    out.meta["flat_params"] = {"input": FLAT, "layout": layout}
    return out
