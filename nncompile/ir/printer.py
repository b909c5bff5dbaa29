"""The IR's text form, one node a line:

    %7: f32[B,10] = add %5, %6   # model.nn:4:3 hidden

Inputs print as `%0: f32[10,10] = input {name="hidden.weight", role="param"}`
and the graph ends with its outputs: `return loss=%20, hidden.weight=%31`.
Instructions for passes that have not run yet come first, as `meta` lines
(`meta differentiate="loss"`, `meta optimizer="adam" {lr=0.001, ...}`).
`parse_graph` (in ir.parser) reads this form back.
"""
from __future__ import annotations

from typing import Any

from .graph import Graph, Node


def fmt_attr(v: Any) -> str:
    if v is None:       # an optimizer argument that is off (clipnorm)
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (tuple, list)):
        return "(" + ", ".join(fmt_attr(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return str(v)


def print_node(n: Node, g: Graph | None = None) -> str:
    attrs = dict(n.attrs)
    if n.op == "input" and g is not None:
        spec = g.input_specs[attrs["name"]]
        attrs["role"] = spec.role
        if spec.init:
            attrs["init"] = spec.init
        if not spec.trainable:
            attrs["trainable"] = False
    args = ", ".join(i.name for i in n.inputs)
    text = f"{n.name}: {n.type_str} = {n.op}"
    if args:
        text += " " + args
    if attrs:
        text += " {" + ", ".join(f"{k}={fmt_attr(v)}" for k, v in attrs.items()) + "}"
    if n.loc or n.layer:
        where = []
        if n.loc:
            where.append(f"{n.loc.file}:{n.loc.line}:{n.loc.column}")
        if n.layer:
            where.append(n.layer)
        text = f"{text:<56}  # {' '.join(where)}"
    return text


def pending_meta(g: Graph) -> list[str]:
    """The instructions for passes that have not run yet, as `meta` lines: what
    autodiff should differentiate, the optimizer (and per-parameter learning-rate
    multipliers) the optimizer pass should apply. So the text of a graph before
    those passes means the same graph; results of passes (groups, the memory
    plan) are not printed: the passes recompute them."""
    lines = []
    if g.meta.get("precision", "f32") != "f32":   # read by the mixed-precision and loss-scale passes
        lines.append(f"meta precision={fmt_attr(g.meta['precision'])}")
    if g.meta.get("differentiate") is not None and not g.meta.get("differentiated"):
        lines.append(f"meta differentiate={fmt_attr(g.meta['differentiate'])}")
    opt = g.meta.get("optimizer")
    if opt is not None and not g.meta.get("optimized_update"):
        name, params, loc = opt
        text = f"meta optimizer={fmt_attr(name)}"
        if params:
            text += " {" + ", ".join(f"{k}={fmt_attr(v)}" for k, v in params.items()) + "}"
        if loc is not None:
            text = f"{text:<56}  # {loc.file}:{loc.line}:{loc.column}"
        lines.append(text)
        if g.meta.get("lr_mult"):
            lines.append("meta lr_mult {" + ", ".join(f"{fmt_attr(k)}={fmt_attr(float(v))}"
                                                       for k, v in g.meta["lr_mult"].items()) + "}")
    return lines


def print_graph(g: Graph) -> str:
    lines = [f"graph {g.name} {{"]
    lines += ["  " + line for line in pending_meta(g)]
    lines += ["  " + print_node(n, g) for n in g.nodes]
    outs = []
    for k, n in g.outputs.items():
        upd = f" -> {fmt_attr(g.updates[k])}" if k in g.updates else ""
        outs.append(f"{fmt_attr(k)}={n.name}{upd}")
    lines.append("  return " + ", ".join(outs))
    lines.append("}")
    return "\n".join(lines)
