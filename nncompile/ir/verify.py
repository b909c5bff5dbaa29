"""The verifier: structural and type invariants every pass must keep.

Run after each pass when `NNCOMPILE_VERIFY=1` (or `verify=True` in the pass
manager). A failure is a compiler bug, reported with the offending node.
"""
from __future__ import annotations

from .graph import DTYPES, Graph
from .ops import OPS, IRError


class VerifyError(AssertionError):
    pass


def verify(g: Graph) -> None:
    seen: set[int] = set()
    ids: set[int] = set()
    for n in g.nodes:
        where = f"graph {g.name}: {n.name} ({n.op})"
        if n.id in ids:
            raise VerifyError(f"{where}: id used twice")
        ids.add(n.id)
        if n.op not in OPS:
            raise VerifyError(f"{where}: unknown op")
        if n.dtype not in DTYPES:
            raise VerifyError(f"{where}: bad dtype {n.dtype}")
        for i in n.inputs:
            if i.id not in seen:
                raise VerifyError(f"{where}: uses {i.name} before it is defined (not SSA order)")
        if n.op == "input":
            if g.inputs.get(n.attrs["name"]) is not n:
                raise VerifyError(f"{where}: input not registered")
        else:
            try:
                dtype, shape = OPS[n.op].infer(n.inputs, n.attrs, g)
            except IRError as e:
                raise VerifyError(f"{where}: {e}") from None
            if (dtype, tuple(shape)) != (n.dtype, n.shape):
                raise VerifyError(f"{where}: recorded type {n.type_str} but rule gives {dtype}{list(shape)}")
        seen.add(n.id)
    for k, n in g.outputs.items():
        if n.id not in seen:
            raise VerifyError(f"graph {g.name}: output {k!r} is not a node of the graph")
    for out, inp in g.updates.items():
        if inp not in g.inputs:
            raise VerifyError(f"graph {g.name}: output {out!r} updates unknown input {inp!r}")
        a, b = g.outputs[out], g.inputs[inp]
        if (a.dtype, a.shape) != (b.dtype, b.shape):
            raise VerifyError(f"graph {g.name}: update {out!r} has type {a.type_str}, input {b.type_str}")
