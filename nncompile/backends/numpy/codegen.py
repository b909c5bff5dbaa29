"""NumPy backend: generates a Python module from a graph.

The module has one function, `make(B)`, that allocates every buffer the graph
needs for batch size B and returns `run(*inputs) -> tuple(outputs)`. `run`
is straight-line code: one NumPy call per node, writing into preallocated
buffers with `out=`, so a step allocates nothing for a fixed batch size (the
last, smaller batch of an epoch gets its own buffers, made once).

Outputs that update an input (new parameters, optimizer and batch-norm state)
are written straight into the input's array when every other reader of that
input runs earlier: parameters are updated in place. Other outputs are views
of internal buffers, valid until the next call.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from ...ir.graph import B, Graph, Node
from ...ir.ops import NP_DTYPE, OPS, norm_axes, reduce_like_axes
from . import support


def _ident(name: str) -> str:
    return "a_" + re.sub(r"\W", "_", name)


def _shape_expr(shape) -> str:
    parts = [("B" if d == B else str(d)) for d in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def _count_expr(shape, axes) -> str:
    dims = [("B" if shape[a] == B else str(shape[a])) for a in axes]
    return "*".join(dims) if dims else "1"


@dataclass
class _Gen:
    g: Graph
    lines_make: list[str]
    lines_run: list[str]
    var: dict[int, str]
    consts: dict[str, Any]
    declared: set = field(default_factory=set)
    hoisted: set = field(default_factory=set)
    probs: dict = field(default_factory=dict)   # (logits id, labels id) -> softmax scratch


# Scalar elementwise ops run as Python float arithmetic (see support.sdiv & co).
PY_SCALAR = {"add": "({a} + {b})", "sub": "({a} - {b})", "mul": "({a} * {b})", "neg": "(-{a})",
             "square": "({a} * {a})", "div": "_s.sdiv({a}, {b})", "exp": "_s.sexp({a})",
             "log": "_s.slog({a})", "sqrt": "_s.ssqrt({a})"}


TILE = 32768          # elements per tile (128 KB per f32 operand): measured best of 16K-128K on W1, W2
TILE_MIN = 4 * TILE   # smaller groups run untiled


def _tile_group(g: Graph, nodes: list[Node], users, hoisted) -> tuple[set[int], Optional[int]]:
    """The elementwise chain over the flat parameter buffer (the optimizer update),
    when it is large: run tile by tile, so each tile's operands stay in cache
    through the whole chain instead of streaming every array through memory once
    per op. Per element the ops run in the same order, so every buffer the
    memory plan shares stays correct."""
    cat = next((n for n in nodes if n.op == "concat_flat"), None)
    if cat is None or cat.shape[0] < TILE_MIN:
        return set(), None
    N = cat.shape
    pos = {n.id: i for i, n in enumerate(nodes)}
    group = {n.id for n in nodes
             if pos[n.id] > pos[cat.id] and OPS[n.op].kind == "elementwise" and n.shape == N
             and n.dtype in ("f32", "f64") and OPS[n.op].emit and n.id not in hoisted
             and all(i.shape in (N, ()) for i in n.inputs)}
    if not group:
        return set(), None
    # inputs of the group must not depend on the group (it runs at its last node's place)
    tainted: set[int] = set()
    for n in nodes:
        if n.id not in group and any(i.id in group or i.id in tainted for i in n.inputs):
            tainted.add(n.id)
    for n in nodes:
        if n.id in group and any(i.id in tainted for i in n.inputs):
            return set(), None
    return group, max(group, key=lambda i: pos[i])


def _emit_tiled(gen: _Gen, group: list[Node], users, inplace: dict[int, str]) -> None:
    g = gen.g
    ids = {n.id for n in group}
    outputs = {n.id for n in g.outputs.values()}
    N = group[0].shape[0]
    fn = f"tiles{group[0].id}"
    body: list[str] = []
    local: dict[int, str] = {}
    params: list[str] = []      # full-size arrays the tile function slices
    scratch_of: dict[int, str] = {}
    # ids follow the schedule, so the largest id among a value's users in the group is its last use
    last_use = {n.id: max((u.id for u in users[n.id] if u.id in ids), default=None) for n in group}
    for n in group:
        for i in n.inputs:
            if i.id in ids or i.id in local:
                continue
            if i.shape == ():
                local[i.id] = gen.var[i.id]
                if not (i.op == "const" or i.id in gen.hoisted) and gen.var[i.id] not in params:
                    params.append(gen.var[i.id])
            else:
                v = f"x{i.id}"
                local[i.id] = v
                params.append(gen.var[i.id])
                body.append(f"{v} = {gen.var[i.id]}[lo:hi]")
        needed_outside = n.id in outputs or any(u.id not in ids for u in users[n.id])
        if needed_outside:
            full = inplace.get(n.id) or _buffer_var(gen, g.meta["memory_plan"], n)
            gen.var[n.id] = full
            if full not in params:
                params.append(full)
            out = f"x{n.id}"
            body.append(f"{out} = {full}[lo:hi]")
        else:  # internal to the tile: a tile-sized scratch, reused once its value dies
            reuse = next((scratch_of[i.id] for i in n.inputs if i.id in scratch_of and OPS[n.op].inplace_ok
                          and last_use[i.id] == n.id and i.dtype == n.dtype), None)
            out = f"x{n.id}"
            if reuse is None:
                reuse = f"ts{n.id}"
                gen.lines_make.append(f"{reuse} = np.empty((2, {TILE}), np.{NP_DTYPE[n.dtype].__name__})")
                body.append(f"{out} = {reuse}[w, :hi - lo]")  # one row per worker thread
            else:
                body.append(f"{out} = {local[next(i.id for i in n.inputs if scratch_of.get(i.id) == reuse)]}")
            scratch_of[n.id] = reuse
        local[n.id] = out
        body.append(_code(gen, n, [local[i.id] for i in n.inputs], out) + f"  # {n.name} {n.op}")
    args = ", ".join(params)
    gen.lines_make.append(f"tiles_{N} = [(lo, min(lo + {TILE}, {N})) for lo in range(0, {N}, {TILE})]")
    gen.lines_run.append(f"def {fn}(lo, hi, w, {args}):")
    gen.lines_run.extend("    " + l for l in body)
    gen.lines_run.append(f"_s.run_tiles({fn}, tiles_{N}, {args})  # {len(group)} elementwise ops over "
                         f"{N} elements, tile by tile")


def _hoistable(g: Graph, nodes: list[Node], inplace: dict[int, str]) -> set[int]:
    """Nodes whose value depends only on constants and the batch size: computed
    once per batch size in make(), not every step (e.g. the 1/B seed of a mean's
    gradient)."""
    out_ids = {n.id for n in g.outputs.values()}
    hoisted: set[int] = set()
    for n in nodes:
        if n.op == "const":
            hoisted.add(n.id)
        elif (n.op != "input" and OPS[n.op].kind != "random" and n.id not in out_ids
              and n.id not in inplace and n.inputs
              and (all(i.id in hoisted for i in n.inputs)
                   or (n.op == "unreduce" and n.inputs[0].id in hoisted))):
            hoisted.add(n.id)
    return hoisted


class NumpyProgram:
    """A compiled graph: call it with inputs by name; results are a dict by output name."""

    def __init__(self, graph: Graph, source: str, namespace: dict[str, Any]):
        self.graph = graph
        self.source = source
        self.input_names = list(graph.inputs)
        self.output_names = list(graph.outputs)
        self._make: Callable = namespace["make"]
        self._runs: dict[int, Callable] = {}

    def runner(self, batch: int) -> Callable:
        """The straight-line `run(*inputs)` for one batch size (buffers made once)."""
        run = self._runs.get(batch)
        if run is None:
            run = self._runs[batch] = self._make(batch)
        return run

    # The backend interface the runtime uses to hold state (the Triton backend
    # implements the same methods for torch tensors on the device).
    @staticmethod
    def to_device(a, dtype=None) -> np.ndarray:
        return np.ascontiguousarray(a, dtype)

    @staticmethod
    def to_host(a) -> np.ndarray:
        return np.asarray(a)

    @staticmethod
    def copy(a) -> np.ndarray:
        return a.copy()

    @staticmethod
    def copyto(dst, src) -> None:
        np.copyto(dst, src)

    def __call__(self, inputs: Mapping[str, np.ndarray], batch: int | None = None) -> dict[str, np.ndarray]:
        if batch is None:
            batch = _batch_of(self.graph, inputs)
        args = [inputs[n] for n in self.input_names]
        outs = self.runner(batch)(*args)
        return dict(zip(self.output_names, outs))


def _batch_of(g: Graph, inputs: Mapping[str, np.ndarray]) -> int:
    for name, node in g.inputs.items():
        if B in node.shape:
            return int(np.shape(inputs[name])[node.shape.index(B)])
    return 1


def generate(g: Graph) -> NumpyProgram:
    nodes = g.live_nodes()
    pos = {n.id: i for i, n in enumerate(nodes)}
    users: dict[int, list[Node]] = {n.id: [] for n in nodes}
    for n in nodes:
        for i in n.inputs:
            users[i.id].append(n)

    # Which outputs may be written straight into the input they update.
    inplace: dict[int, str] = {}
    out_nodes = [n.id for n in g.outputs.values()]
    for out_name, in_name in g.updates.items():
        p, inp = g.outputs[out_name], g.inputs[in_name]
        opdef = OPS[p.op]
        ok = (opdef.inplace_ok and opdef.emit and ";" not in opdef.emit and p.id not in inplace
              and p.op not in ("input", "const") and out_nodes.count(p.id) == 1
              and p.shape == inp.shape
              and all(pos[u.id] < pos[p.id] for u in users[inp.id] if u is not p))
        if ok:
            inplace[p.id] = _ident(in_name)

    gen = _Gen(g, [], [], {}, {})
    gen.hoisted = _hoistable(g, nodes, inplace)
    group, last = _tile_group(g, nodes, users, gen.hoisted)
    for n in nodes:
        if n.id in group:
            if n.id == last:
                _emit_tiled(gen, [x for x in nodes if x.id in group], users, inplace)
            continue
        _emit_node(gen, n, inplace)

    # Updates that could not be written in place are copied into their input at the end,
    # so after `run` every updated input holds its new value.
    for out_name, in_name in g.updates.items():
        p = g.outputs[out_name]
        if inplace.get(p.id) != _ident(in_name):
            gen.lines_run.append(f"np.copyto({_ident(in_name)}, {gen.var[p.id]})  # update {in_name}")
    args = ", ".join(_ident(k) for k in g.inputs)
    rets = ", ".join(gen.var[n.id] for n in g.outputs.values())
    src = [f"# generated by nncompile from graph '{g.name}': {len(nodes)} nodes",
           "import numpy as np", "", "", "def make(B):"]
    src += ["    " + l for l in gen.lines_make]
    src += ["", f"    def run({args}):"]
    src += ["        " + l for l in gen.lines_run] or ["        pass"]
    src += [f"        return ({rets}{',' if len(g.outputs) == 1 else ''})", "", "    return run", ""]
    source = "\n".join(src)
    namespace: dict[str, Any] = {"np": np, "_s": support, **gen.consts}
    exec(compile(source, f"<nncompile:{g.name}>", "exec"), namespace)
    return NumpyProgram(g, source, namespace)


def _emit_node(gen: _Gen, n: Node, inplace: dict[int, str]) -> None:
    g = gen.g
    if n.op == "input":
        gen.var[n.id] = _ident(n.attrs["name"])
        return
    if n.op == "const":
        v = n.attrs["value"]
        gen.var[n.id] = repr(v) if math.isfinite(v) else f"float('{v}')"
        return
    a = [gen.var[i.id] for i in n.inputs]
    comment = ""
    if n.loc or n.layer:
        comment = f"  # {n.name} {n.op}" + (f" {n.loc.file}:{n.loc.line}" if n.loc else "") + \
            (f" {n.layer}" if n.layer else "")
    if n.op == "reshape":  # a view, no buffer
        v = f"v{n.id}"
        gen.var[n.id] = v
        gen.lines_run.append(f"{v} = {a[0]}.reshape({_shape_expr(n.shape)}){comment}")
        return
    if n.op == "slice_flat":  # a view of one parameter in the flat buffer
        v = f"v{n.id}"
        gen.var[n.id] = v
        o, size = n.attrs["offset"], math.prod(n.shape)
        gen.lines_run.append(f"{v} = {a[0]}[{o}:{o + size}].reshape({_shape_expr(n.shape)}){comment}")
        return
    if (n.shape == () and n.dtype in ("f32", "f64") and n.op in PY_SCALAR
            and all(i.shape == () for i in n.inputs)):
        v = f"f{n.id}"
        gen.var[n.id] = v
        line = f"{v} = {PY_SCALAR[n.op].format(a=a[0], b=a[-1])}"
        (gen.lines_make if n.id in gen.hoisted else gen.lines_run).append(line + comment)
        return
    if n.id in gen.hoisted:
        out = f"h{n.id}"
        gen.var[n.id] = out
        gen.lines_make.append(f"{out} = np.empty({_shape_expr(n.shape)}, np.{NP_DTYPE[n.dtype].__name__})")
        gen.lines_make.append(_code(gen, n, a, out) + comment)
        return
    plan = g.meta.get("memory_plan")
    if n.op == "concat_flat":
        out = _buffer_var(gen, plan, n)
        gen.var[n.id] = out
        off = 0
        for x, ax in zip(n.inputs, a):
            size = math.prod(x.shape)
            if plan is None or x.id not in plan.placed:  # not written in place: copy it in
                gen.lines_run.append(f"{out}[{off}:{off + size}] = {ax}.reshape(-1){comment}")
            off += size
        return
    if plan is not None and n.id in plan.placed:
        cat_id, o = plan.placed[n.id]
        cat = next(x for x in g.nodes if x.id == cat_id)
        buf = _buffer_var(gen, plan, cat)
        out = f"p{n.id}"
        gen.lines_make.append(f"{out} = {buf}[{o}:{o + math.prod(n.shape)}].reshape({_shape_expr(n.shape)})")
    elif n.id in inplace:
        out = inplace[n.id]
    elif plan is not None and n.id in plan.buffer_of:
        out = _buffer_var(gen, plan, n)
    else:
        out = f"t{n.id}"
        gen.lines_make.append(f"{out} = np.empty({_shape_expr(n.shape)}, np.{NP_DTYPE[n.dtype].__name__})")
    gen.var[n.id] = out
    code = _code(gen, n, a, out)
    gen.lines_run.append(code + comment)


def _buffer_var(gen: _Gen, plan, n: Node) -> str:
    """The planned buffer of `n`, declared in make() the first time it is named."""
    out = f"b{plan.buffer_of[n.id]}"
    decl = f"{out} = np.empty({_shape_expr(n.shape)}, np.{NP_DTYPE[n.dtype].__name__})"
    if decl not in gen.declared:
        gen.declared.add(decl)
        gen.lines_make.append(decl)
    return out


def _arange(gen: _Gen, dim) -> str:
    name = f"ar_{dim}"
    line = f"{name} = np.arange({dim})"
    if line not in gen.lines_make:
        gen.lines_make.append(line)
    return name


def _scratch(gen: _Gen, n: Node, k: int, shape, dtype: str | None = None) -> str:
    name = f"s{n.id}_{k}"
    dt = NP_DTYPE[dtype or n.dtype].__name__
    gen.lines_make.append(f"{name} = np.empty({_shape_expr(shape)}, np.{dt})")
    return name


def _code(gen: _Gen, n: Node, a: Sequence[str], out: str) -> str:
    opdef = OPS[n.op]
    at = n.attrs
    if n.op == "relu_grad" and n.inputs[1].shape == n.shape:
        # the mask into a preallocated bool buffer: `y > 0` would allocate one every step
        mask = f"m{n.id}"
        gen.lines_make.append(f"{mask} = np.empty({_shape_expr(n.shape)}, np.bool_)")
        return f"np.greater({a[1]}, 0, out={mask}); np.multiply({a[0]}, {mask}, out={out})"
    if opdef.emit:
        fields = {"out": out, **{k: repr(v) for k, v in at.items()}}
        fields.update({k: v for k, v in zip("abcd", a)})
        return opdef.emit.format(**fields)
    rank = len(n.inputs[0].shape) if n.inputs else 0
    if n.op == "matmul":
        x = a[0] + (".T" if at.get("ta") else "")
        y = a[1] + (".T" if at.get("tb") else "")
        return f"np.matmul({x}, {y}, out={out})"
    if n.op in ("sum", "mean", "max"):
        # ufunc.reduce directly: np.sum/np.mean add microseconds of Python per call
        axes = norm_axes(at["axes"], rank)
        fn = "np.maximum.reduce" if n.op == "max" else "np.add.reduce"
        code = f"{fn}({a[0]}, axis={axes!r}, keepdims={at['keepdims']}, out={out})"
        if n.op == "mean":
            k = f"k{n.id}"
            gen.lines_make.append(f"{k} = 1.0 / max(1, {_count_expr(n.inputs[0].shape, axes)})")
            code += f"; np.multiply({out}, {k}, out={out})"
        return code
    if n.op == "unreduce":
        x = n.inputs[1]
        axes = norm_axes(at["axes"], len(x.shape))
        src = a[0] if at["keepdims"] or not axes else f"np.expand_dims({a[0]}, {axes!r})"
        code = f"np.copyto({out}, {src})"
        if at["mean"]:
            k = f"k{n.id}"
            gen.lines_make.append(f"{k} = 1.0 / max(1, {_count_expr(x.shape, axes)})")
            code += f"; np.multiply({out}, {k}, out={out})"
        return code
    if n.op == "reduce_like":
        gshape, xshape = n.inputs[0].shape, n.inputs[1].shape
        axes = reduce_like_axes(gshape, xshape)
        keep = (1,) * (len(gshape) - len(xshape)) + tuple(xshape)
        view = f"w{n.id}"
        gen.lines_make.append(f"{view} = {out}.reshape({_shape_expr(keep)})")
        return f"np.add.reduce({a[0]}, axis={axes!r}, keepdims=True, out={view})"
    if n.op in ("softmax", "log_softmax") and rank == 2:
        row = (n.shape[0], 1)
        s0 = _scratch(gen, n, 0, row)
        code = [f"np.maximum.reduce({a[0]}, axis=1, keepdims=True, out={s0})",
                f"np.subtract({a[0]}, {s0}, out={out})"]
        if n.op == "softmax":
            code += [f"np.exp({out}, out={out})", f"np.add.reduce({out}, axis=1, keepdims=True, out={s0})",
                     f"np.divide({out}, {s0}, out={out})"]
        else:
            s1 = _scratch(gen, n, 1, n.shape)
            code += [f"np.exp({out}, out={s1})", f"np.add.reduce({s1}, axis=1, keepdims=True, out={s0})",
                     f"np.log({s0}, out={s0})", f"np.subtract({out}, {s0}, out={out})"]
        return "; ".join(code)
    if n.op == "softmax_xent" and rank == 2:
        # loss = log(sum(exp(z - max))) - (z[y] - max); the probabilities stay in a
        # scratch buffer for the gradient of the same (z, y), which needs only them
        z, y = a
        row = (n.inputs[0].shape[0], 1)
        s0, s1, s2 = _scratch(gen, n, 0, row), _scratch(gen, n, 1, n.inputs[0].shape), _scratch(gen, n, 2, row)
        gen.probs[(n.inputs[0].id, n.inputs[1].id)] = s1
        return "; ".join([f"np.maximum.reduce({z}, axis=1, keepdims=True, out={s0})",
                          f"np.subtract({z}, {s0}, out={s1})",
                          f"np.exp({s1}, out={s1})", f"np.add.reduce({s1}, axis=1, keepdims=True, out={s2})",
                          f"np.divide({s1}, {s2}, out={s1})", f"np.log({s2}, out={s2})",
                          f"np.add({s2}, {s0}, out={s2})",
                          f"np.subtract({s2}[:, 0], {z}[{_arange(gen, n.shape[0])}, {y}], out={out})"])
    if n.op == "softmax_xent_grad" and rank == 2:
        z, y, gr = a
        ar = _arange(gen, n.shape[0])
        probs = gen.probs.get((n.inputs[0].id, n.inputs[1].id))
        if probs is not None:  # (softmax - onehot) * g from the forward's probabilities
            return "; ".join([f"np.multiply({probs}, {gr}[:, None], out={out})", f"{out}[{ar}, {y}] -= {gr}"])
        s0 = _scratch(gen, n, 0, (n.shape[0], 1))
        return "; ".join([f"np.maximum.reduce({z}, axis=1, keepdims=True, out={s0})",
                          f"np.subtract({z}, {s0}, out={out})",
                          f"np.exp({out}, out={out})", f"np.add.reduce({out}, axis=1, keepdims=True, out={s0})",
                          f"np.divide({out}, {s0}, out={out})", f"{out}[{ar}, {y}] -= 1",
                          f"np.multiply({out}, {gr}[:, None], out={out})"])
    if n.op == "take_label" and rank == 2:
        return f"np.copyto({out}, {a[0]}[{_arange(gen, n.shape[0])}, {a[1]}])"
    if n.op == "onehot" and len(n.shape) == 2:
        return f"{out}.fill(0); {out}[{_arange(gen, n.shape[0])}, {a[0]}] = 1"
    if n.op == "argmax":
        return f"np.argmax({a[0]}, axis=-1, out={out})"
    if n.op == "cast":
        return f"np.copyto({out}, {a[0]}, casting='unsafe')"
    if n.op == "dropout_mask":
        return f"_s.dropout_mask({a[1]}, {at['rate']!r}, {at['stream']!r}, {out})"
    # Fallback: the op's reference semantics, copied into the buffer.
    fn = f"ref{n.id}"
    attrs = {k: at[k] for k in opdef.attrs if k in at}
    gen.consts[fn] = (lambda f, kw: (lambda *xs: f(*xs, **kw)))(opdef.ref, attrs)
    return f"np.copyto({out}, {fn}({', '.join(a)}), casting='unsafe')"
