"""NumPy backend: generates a Python module from a graph.

The module has one function, `make(B)`, that allocates every buffer the graph
needs for batch size B and returns `run(*inputs) -> tuple(outputs)`. `run`
is straight-line code: one NumPy call per node (the op's emitter in
`lowering.py`), writing into preallocated buffers with `out=`, so a step
allocates nothing for a fixed batch size (the last, smaller batch of an epoch
gets its own buffers, made once).

Nodes run in the memory plan's schedule (`passes/memory.py`) and write where
the plan says: its buffers, in place over dying inputs, into their place in a
concatenation, or, for outputs that update an input (new parameters,
optimizer and batch-norm state), straight into that input's array. Other
outputs are views of internal buffers, valid until the next call.

What this backend adds to the plan, allocating nothing the plan shares:
  * scalar nodes run as Python float arithmetic (`lowering.SCALAR`);
  * values that depend only on constants and the batch size are computed once
    per batch size in `make(B)` ("hoisted");
  * a large 1-D elementwise fusion group (the optimizer update over the flat
    parameter buffer) runs tile by tile, its internal values in tile-sized
    scratch rows, so each tile's operands stay in cache through the chain.
"""
from __future__ import annotations

import math
import os
import sys
from typing import Any, Callable, Mapping, Optional

import numpy as np

from ...ir.graph import Graph, Node, batch_size
from ...ir.ops import NP_DTYPE, OPS
from ...passes.fusion import groups_valid
from ...ir import windows as ir_windows
from ...passes.memory import MemoryPlan, has_buffer, plan_of
from ..common import comment, describe, ident, literal, numel_src, shape_src
from . import blas, lowering, native, support

TILE = 32768          # elements per tile (128 KB per f32 operand): measured best of 16K-128K on W1, W2
TILE_MIN = 4 * TILE   # smaller groups run untiled


def _np_dtype(dtype: str) -> str:
    return "np.bool_" if dtype == "bool" else f"np.{NP_DTYPE[dtype].__name__}"


class _Gen:
    """The module being written, and what emitters may ask of it."""

    def __init__(self, g: Graph, plan: MemoryPlan):
        self.g = g
        self.plan = plan
        self.byid = {n.id: n for n in g.nodes}
        self.make: list[str] = []
        self.run: list[str] = []
        self.var: dict[int, str] = {}
        self.consts: dict[str, Any] = {}
        self.declared: set[str] = set()
        self.hoisted: set[int] = set()
        self.probs: dict = {}   # (logits id, labels id) -> softmax scratch (lowering._softmax_xent)
        self.pointer_slots: dict[str, tuple[int, str]] = {}   # graph-input variable -> (slot, dtype)
        self.addressed: list[str] = []   # buffers the native kernels reach only by address
        self.windows = None              # native.WindowKernels when the native path is on
        self.py_scalars: set[int] = set()  # scalar nodes computed as Python floats (_python_scalars)
        self.input_views: list[str] = []   # makers of the views of graph inputs (support.Views)

    # --- for emitters ---------------------------------------------------------------
    def scratch(self, n: Node, k, shape, dtype: Optional[str] = None) -> str:
        """A buffer of `shape` private to node n, made once per batch size."""
        name = f"s{n.id}_{k}"
        self.make.append(f"{name} = np.empty({shape_src(shape)}, {_np_dtype(dtype or n.dtype)})")
        return name

    def make_value(self, n: Node, prefix: str, expr: str) -> str:
        """A value computed once per batch size (a 1/count factor, a reshaped view)."""
        name = f"{prefix}{n.id}"
        self.make.append(f"{name} = {expr}")
        return name

    def workspace(self, n: Node, i: int, shape) -> str:
        """Node n's i-th workspace (`OpDef.workspace`) viewed as `shape`, from the plan's pool."""
        k = self.plan.workspace_of[n.id][i]
        per, dtype = self.plan.workspaces[k]
        pool = f"ws{k}"
        decl = f"{pool} = np.empty((B, {per}), {_np_dtype(dtype)})"
        if decl not in self.declared:
            self.declared.add(decl)
            self.make.append(decl)
        return self.make_value(n, f"ws{i}_", f"{pool}.reshape(-1)[:{numel_src(shape)}].reshape({shape_src(shape)})")

    # --- for the native path -------------------------------------------------------
    def value(self, n: Node) -> str:
        return _value(self, n)

    def hoisted_node(self, n: Node) -> bool:
        return n.id in self.hoisted

    def describe(self, ns) -> str:
        return describe(ns)

    def pointer(self, n: Node) -> str:
        """An expression for the address of node n's array: taken once in make()
        for buffers; for graph inputs, when the array object changes; views at
        their source's address plus their offset."""
        if OPS[n.op].view and n.inputs[0].op != "const":
            base = self.pointer(n.inputs[0])
            off = n.attrs.get("offset", 0) * NP_DTYPE[n.dtype]().itemsize
            return f"({base} + {off})" if off else base
        v = _value(self, n)
        if self.fixed(n) or n.id in self.hoisted:
            return self.address(v)
        if v not in self.pointer_slots:
            self.pointer_slots[v] = (len(self.pointer_slots), n.dtype)
        return f"_P.get({self.pointer_slots[v][0]}, {v})"

    def address(self, v: str) -> str:
        """The address of array variable v of make(), taken once (v is kept alive with run)."""
        name = f"ptr_{v}"
        line = f"{name} = {v}.ctypes.data"
        if line not in self.declared:
            self.declared.add(line)
            self.make.append(line)
            self.addressed.append(v)
        return name

    def kept(self, n: Node) -> bool:
        """Whether the plan kept the forward convolution's columns for filter gradient n."""
        return n.id in self.plan.kept_columns

    def fixed(self, n: Node) -> bool:
        """Whether node n's array is the same one at every call of a batch size
        (a buffer made in make()), so views of it can be made once."""
        return has_buffer(n) and n.id not in self.plan.update_into

    def arange(self, d) -> str:
        name = f"ar_{d}"
        line = f"{name} = np.arange({d})"
        if line not in self.make:
            self.make.append(line)
        return name

    # --- buffers --------------------------------------------------------------------
    def buffer(self, n: Node) -> str:
        """Where node n's value is written, as the plan says."""
        plan = self.plan
        if n.id in plan.update_into:
            return ident(plan.update_into[n.id])
        if n.id in plan.placed:
            cat_id, o = plan.placed[n.id]
            out = f"p{n.id}"
            self.make.append(f"{out} = {self.buffer(self.byid[cat_id])}[{o}:{o + math.prod(n.shape)}]"
                             f".reshape({shape_src(n.shape)})")
            return out
        out = f"b{plan.buffer_of[n.id]}"
        decl = f"{out} = np.empty({shape_src(n.shape)}, {_np_dtype(n.dtype)})"
        if decl not in self.declared:
            self.declared.add(decl)
            self.make.append(decl)
        return out


class NumpyProgram:
    """A compiled graph: call it with inputs by name; results are a dict by output name."""

    def __init__(self, graph: Graph, source: str, namespace: dict[str, Any]):
        self.graph = graph
        self.source = source
        self.input_names = list(graph.inputs)
        self.output_names = list(graph.outputs)
        self._make: Callable = namespace["make"]
        self._runs: dict[int, Callable] = {}
        self.c_source = ""        # the native kernels' C source, when the native path is used
        self.native = False

    def runner(self, batch: int) -> Callable:
        """The straight-line `run(*inputs)` for one batch size (buffers made once)."""
        run = self._runs.get(batch)
        if run is None:
            run = self._runs[batch] = blas.pinned(self._make(batch), blas.threads_for(self.graph, batch))
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
            batch = batch_size(self.graph, inputs)
        outs = self.runner(batch)(*[inputs[n] for n in self.input_names])
        return dict(zip(self.output_names, outs))


def use_native(choice: Optional[str] = None) -> bool:
    """Whether to compile native kernels: `choice` (or NNCOMPILE_CPU_KERNELS) is
    "native", "numpy" or "auto" (native when a C compiler is found)."""
    choice = choice or os.environ.get("NNCOMPILE_CPU_KERNELS", "auto")
    if choice not in ("auto", "native", "numpy"):
        raise ValueError(f"cpu kernels must be auto, native or numpy, not {choice!r}")
    if choice == "numpy":
        return False
    if native.find_compiler() is None:
        if choice == "native":
            from ...errors import NNError
            raise NNError("--cpu-kernels native needs a C compiler: install one (gcc, clang) or "
                          "`pip install 'nncompile[native]'` (a compiler in a wheel)")
        note = native.unavailable_note()
        if note:
            print(note, file=sys.stderr)
        return False
    return True


def generate(g: Graph, cpu_kernels: Optional[str] = None) -> NumpyProgram:
    plan = plan_of(g)
    gen = _Gen(g, plan)
    order = [gen.byid[i] for i in plan.schedule]
    for n in g.inputs.values():
        gen.var[n.id] = ident(n.attrs["name"])
    gen.hoisted = _hoistable(g, order, plan)
    gen.py_scalars = _python_scalars(g)
    kernels = native.NativeKernels() if use_native(cpu_kernels) else None
    gen.windows = native.WindowKernels(kernels) if kernels is not None else None
    loops = _native_groups(gen, kernels) if kernels is not None else {}
    in_loops = {i for loop in loops.values() for i in loop.gr["nodes"]}
    tiled = [gr for gr in _tiled_groups(g, gen.hoisted) if gr["nodes"][-1] not in loops]
    last_of = {gr["nodes"][-1]: gr for gr in tiled}
    in_tiles = {i for gr in tiled for i in gr["nodes"]}
    for n in order:
        if n.id in loops:
            loop = loops[n.id]
            call = kernels.emit_group(gen, loop)
            gen.run.append(f"{call}  # group {loop.gr['id']}: {len(loop.gr['nodes'])} ops in one native loop")
        elif n.id in last_of:
            _emit_tiled(gen, last_of[n.id])
        elif n.id not in in_tiles and n.id not in in_loops:
            if kernels is None or not _emit_native_single(gen, kernels, n):
                _emit_node(gen, n)
    # Updates that could not be written in place are copied into their input at the end,
    # so after `run` every updated input holds its new value.
    for out_name, in_name in g.updates.items():
        p = g.outputs[out_name]
        if plan.update_into.get(p.id) != in_name:
            gen.run.append(f"np.copyto({ident(in_name)}, {gen.var[p.id]})  # update {in_name}")
    args = ", ".join(ident(k) for k in g.inputs)
    rets = ", ".join(_value(gen, n) for n in g.outputs.values())   # (a constant output is its literal)
    if gen.pointer_slots:
        dtypes = [f"np.{NP_DTYPE[dt].__name__}" for _, dt in sorted(gen.pointer_slots.values())]
        gen.make.insert(0, f"_P = _s.Pointers([{', '.join(dtypes)}])  # graph inputs' addresses")
    if gen.input_views:
        gen.make.insert(0, f"_V = _s.Views([{', '.join(gen.input_views)}])  # views of graph inputs")
    src = [f"# generated by nncompile from graph '{g.name}': {len(order)} nodes"
           + (f", {len(kernels.names)} native kernels" if kernels is not None and kernels.names else ""),
           "import numpy as np", "", "", "def make(B):"]
    src += ["    " + line for line in gen.make]
    src += ["", f"    def run({args}):"]
    src += ["        " + line for line in gen.run] or ["        pass"]
    src += [f"        return ({rets}{',' if len(g.outputs) == 1 else ''})", ""]
    if gen.addressed:   # run holds the buffers it reaches only by address: they must outlive make()
        src.append(f"    run.buffers = ({', '.join(gen.addressed)},)")
    src += ["    return run", ""]
    source = "\n".join(src)
    namespace: dict[str, Any] = {"np": np, "_s": support, "_W": ir_windows, **gen.consts}
    c_source = ""
    if kernels is not None and kernels.names:
        c_source = kernels.source(g.name)
        namespace["_k"] = kernels.bind(native.load(c_source))
    exec(compile(source, f"<nncompile:{g.name}>", "exec"), namespace)
    prog = NumpyProgram(g, source, namespace)
    prog.c_source, prog.native = c_source, bool(c_source)
    return prog


def _native_groups(gen: _Gen, kernels) -> dict:
    """The elementwise groups that run as native loops, by their last node; and
    the epilogue of each contraction group (bias, activation, ReLU mask after a
    BLAS matmul or convolution): BLAS cannot apply it, so it runs as one native
    loop over the head's output instead of one NumPy pass per op."""
    if not groups_valid(gen.g):
        return {}
    out = {}
    for gr in gen.g.meta["groups"]:
        if gr["kind"] == "elementwise":
            loop = kernels.plan_group(gen, gr)
        elif OPS[gen.byid[gr["nodes"][0]].op].head and len(gr["nodes"]) > 1:
            chain = gr["nodes"][1:]
            loop = kernels.plan_group(gen, {**gr, "id": f"{gr['id']}e", "nodes": chain, "root": chain[-1],
                                            "outputs": [i for i in gr["outputs"] if i in chain],
                                            "shape": gen.byid[chain[-1]].shape})
        else:
            continue
        if loop is not None:
            out[gr["nodes"][-1]] = loop
    return out


def _emit_native_single(gen: _Gen, kernels, n: Node) -> bool:
    """A reduction or softmax cross-entropy row kernel in C, when it applies."""
    if not kernels.lowers_single(n):
        return False
    gen.var[n.id] = gen.buffer(n)
    key = (n.inputs[0].id, n.inputs[1].id) if n.op.startswith("softmax_xent") else None
    if n.op == "softmax_xent":    # the probabilities, kept for the gradient of the same (z, y)
        gen.probs[key] = gen.scratch(n, 1, n.inputs[0].shape)
    if n.op in ("sum", "mean", "reduce_like"):
        call = kernels.reduction(gen, n)
    else:
        call = kernels.softmax_xent(gen, n, gen.address(gen.probs[key]))
    gen.run.append(call + comment(n))
    return True


def _python_scalars(g: Graph) -> set[int]:
    """Scalar nodes computed as Python floats (`lowering.SCALAR`): of scalar inputs,
    and read only by nodes that take a Python float as well as an array (other
    Python-float nodes, or elementwise NumPy emitters); a node read by a view, a
    reduction or a reference fallback keeps its 0-d buffer."""
    users = g.users()
    out: set[int] = set()
    for n in reversed(g.nodes):
        if not (n.shape == () and n.dtype in ("f32", "f64") and n.op in lowering.SCALAR
                and all(i.shape == () for i in n.inputs)):
            continue
        if all(u.id in out or (OPS[u.op].kind == "elementwise" and u.op in lowering.EMITTERS)
               for u in users[n.id]):
            out.add(n.id)
    return out


def _hoistable(g: Graph, order: list[Node], plan: MemoryPlan) -> set[int]:
    """Nodes whose value depends only on constants and the batch size: computed
    once per batch size in make(), not every step (e.g. the 1/B seed of a mean's
    gradient)."""
    out_ids = {n.id for n in g.outputs.values()}
    hoisted = {n.id for n in g.nodes if n.op == "const"}
    for n in order:
        if (OPS[n.op].kind not in ("random", "collective") and n.id not in out_ids and n.id not in plan.update_into
                and n.inputs and (all(i.id in hoisted for i in n.inputs)
                                  or (n.op == "unreduce" and n.inputs[0].id in hoisted))):
            hoisted.add(n.id)
    return hoisted


def _emit_node(gen: _Gen, n: Node) -> None:
    a = [_value(gen, i) for i in n.inputs]
    where = comment(n)
    if OPS[n.op].view and n.inputs[0].op == "const":   # nothing to view: the constant, filled once
        v = gen.var[n.id] = f"v{n.id}"
        line = f"{v} = np.full({shape_src(n.shape)}, {a[0]}, {_np_dtype(n.dtype)})"
        (gen.make if n.id in gen.hoisted else gen.run).append(line + where)
        return
    if OPS[n.op].view:  # a view, no buffer
        v = gen.var[n.id] = f"v{n.id}"
        if n.inputs[0].op == "input":   # of a graph input: made when the array object changes
            gen.input_views.append(f"lambda a: {lowering.VIEWS[n.op](n, ['a'])}")
            gen.run.append(f"{v} = _V.get({len(gen.input_views) - 1}, {a[0]}){where}")
        else:   # a view of a value made once per batch size is made with it, in make()
            line = f"{v} = {lowering.VIEWS[n.op](n, a)}{where}"
            (gen.make if n.id in gen.hoisted else gen.run).append(line)
        return
    if n.id in gen.py_scalars:
        v = gen.var[n.id] = f"f{n.id}"
        # a 0-d input array (step, lr) read as a Python float: arithmetic on 0-d arrays
        # costs ~1 us an op, on floats ~50 ns
        a = [f"float({x})" if i.op == "input" else x for i, x in zip(n.inputs, a)]
        line = f"{v} = {lowering.SCALAR[n.op].format(a=a[0], b=a[-1])}"
        (gen.make if n.id in gen.hoisted else gen.run).append(line + where)
        return
    if n.id in gen.hoisted:
        out = gen.var[n.id] = f"h{n.id}"
        gen.make.append(f"{out} = np.empty({shape_src(n.shape)}, {_np_dtype(n.dtype)})")
        gen.make.append(_code(gen, n, a, out) + where)
        return
    out = gen.var[n.id] = gen.buffer(n)
    gen.run.append(_code(gen, n, a, out) + where)


def _value(gen: _Gen, n: Node) -> str:
    if n.id not in gen.var and n.op == "const":
        v = n.attrs["value"]
        if n.dtype == "i64" and math.isfinite(v) and float(v).is_integer():
            gen.var[n.id] = repr(int(v))      # an int: a float literal would make integer ops float
        else:
            gen.var[n.id] = repr(v) if math.isfinite(v) else literal(v)
    return gen.var[n.id]


def _code(gen: _Gen, n: Node, a: list[str], out: str) -> str:
    line = lowering.emit(gen, n, a, out)
    if line is not None:
        return line
    # the op's reference semantics, copied into the buffer (lowering.FALLBACK)
    opdef = OPS[n.op]
    fn = f"ref{n.id}"
    attrs = {k: n.attrs[k] for k in opdef.attrs if k in n.attrs}
    gen.consts[fn] = (lambda f, kw: (lambda *xs: f(*xs, **kw)))(opdef.ref, attrs)
    # the reference takes arrays: constants and Python-float scalars become NumPy scalars
    a = [f"{_np_dtype(i.dtype)}({x})" if i.op == "const" or i.id in gen.py_scalars else x
         for i, x in zip(n.inputs, a)]
    return f"np.copyto({out}, {fn}({', '.join(a)}), casting='unsafe')"


# --- tiles -----------------------------------------------------------------------------

def _tiled_groups(g: Graph, hoisted: set[int]) -> list[dict]:
    """The elementwise fusion groups to run tile by tile: 1-D (the optimizer
    update over the flat parameter buffer), large, made of ops with a NumPy
    emitter, reading only arrays of their own length or scalars. Per element
    the ops run in the same order, so every buffer the memory plan shares
    stays correct."""
    if not groups_valid(g):
        return []
    byid = {n.id: n for n in g.nodes}
    out = []
    for gr in g.meta["groups"]:
        shape = tuple(gr["shape"])
        if gr["kind"] != "elementwise" or len(shape) != 1 or not isinstance(shape[0], int) \
                or shape[0] < TILE_MIN:
            continue
        ns = [byid[i] for i in gr["nodes"]]
        if all(OPS[n.op].kind == "elementwise" and n.dtype in ("f32", "f64") and n.op in lowering.EMITTERS
               and n.id not in hoisted and all(i.shape in (shape, ()) for i in n.inputs) for n in ns):
            out.append(gr)
    return out


def _emit_tiled(gen: _Gen, gr: dict) -> None:
    group = [gen.byid[i] for i in gr["nodes"]]
    ids = set(gr["nodes"])
    leaving = set(gr["outputs"])
    N = group[0].shape[0]
    fn = f"tiles{group[0].id}"
    body: list[str] = []
    local: dict[int, str] = {}
    params: list[str] = []      # full-size arrays (and scalars) the tile function takes
    scratch_of: dict[int, str] = {}
    users = {n.id: [u for u in group if n in u.inputs] for n in group}
    # members follow the schedule, so the largest id among a value's users is its last use
    last_use = {n.id: max((u.id for u in users[n.id]), default=None) for n in group}
    for n in group:
        for i in n.inputs:
            if i.id in ids or i.id in local:
                continue
            full = _value(gen, i)
            if i.shape == ():
                local[i.id] = full
                if not (i.op == "const" or i.id in gen.hoisted) and full not in params:
                    params.append(full)
            else:
                local[i.id] = f"x{i.id}"
                params.append(full)
                body.append(f"x{i.id} = {full}[lo:hi]")
        out = f"x{n.id}"
        if n.id in leaving:
            full = gen.var[n.id] = gen.buffer(n)
            if full not in params:
                params.append(full)
            body.append(f"{out} = {full}[lo:hi]")
        else:  # internal to the group: a tile-sized scratch row, reused once its value dies
            reuse = next((i for i in n.inputs if i.id in scratch_of and OPS[n.op].inplace
                          and last_use[i.id] == n.id and i.dtype == n.dtype), None)
            if reuse is None:
                row = scratch_of[n.id] = f"ts{n.id}"
                gen.make.append(f"{row} = np.empty((2, {TILE}), {_np_dtype(n.dtype)})")
                body.append(f"{out} = {row}[w, :hi - lo]")  # one row per worker thread
            else:
                scratch_of[n.id] = scratch_of[reuse.id]
                body.append(f"{out} = {local[reuse.id]}")
        local[n.id] = out
        body.append(_code(gen, n, [local[i.id] for i in n.inputs], out) + f"  # {n.name} {n.op}")
    args = ", ".join(params)
    gen.make.append(f"tiles_{N} = [(lo, min(lo + {TILE}, {N})) for lo in range(0, {N}, {TILE})]")
    gen.run.append(f"def {fn}(lo, hi, w, {args}):")
    gen.run.extend("    " + line for line in body)
    gen.run.append(f"_s.run_tiles({fn}, tiles_{N}, {args})  # group {gr['id']}: {len(group)} elementwise "
                   f"ops over {N} elements, tile by tile")
