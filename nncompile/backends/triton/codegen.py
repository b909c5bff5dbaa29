"""Triton backend: generates one Python module of Triton code per graph.

From the fusion groups (`passes/fusion.py`) and the memory plan
(`passes/memory.py`) — computed here when the pipeline did not — it writes, as
text:

  * one `@triton.jit` pointwise kernel per elementwise group, the group's
    expression inlined from the backend's op table (`lowering.POINTWISE`):
    loads of the group inputs, broadcasts as index arithmetic, one store per
    group output; identical kernel bodies (the Adam update of every
    parameter, say) are emitted once;
  * launches of the library kernels (`kernels/`) for the other ops
    (`lowering.KERNELS`, `lowering.GROUPS`): the matmul with its epilogue,
    row kernels, column reductions;
  * `make(B, dev)`: allocates the plan's buffers that leave a kernel for batch
    size B (values that stay inside a fused group live in registers) and
    returns the straight-line `run(...)` that launches the kernels in order.

The module is written to a cache directory (Triton reads kernel source from a
file) and executed; modules are cached by source hash.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any, Optional

from ...ir.graph import Graph, Node, users as graph_users
from ...ir.ops import OPS
from ...passes.fusion import fuse_elementwise, groups_valid, schedule
from ...passes.memory import plan_of, unplanned
from ..common import describe, dim, ident, literal, numel_src, shape_src, where
from . import lowering
from .launch import interpreting

TORCH_DTYPE_SRC = {"f32": "torch.float32", "f64": "torch.float64", "i64": "torch.int64"}
ITEMSIZE = {"f32": 4, "f64": 8, "i64": 8}
PTR = {"f32": "*fp32", "f64": "*fp64", "i64": "*i64"}
AOT_B = 4096   # batch size standing in for B when choosing GPU launch sizes for AOT checks


def _aot_int(expr: str) -> int:
    return int(eval(expr, {"B": AOT_B, "float": float}))


# --- pointwise operand indexing ---------------------------------------------------------------

def _index_expr(out_shape, in_shape, dim_map) -> Optional[str]:
    """Offset into a contiguous input for flat output index `offs`.
    dim_map[k] = the input dim that output dim k reads, or None (broadcast).
    Returns None when the input is read at `offs` itself."""
    r = len(out_shape)
    used = [k for k in range(r) if dim_map[k] is not None and in_shape[dim_map[k]] != 1]
    in_numel_dims = [d for d in in_shape if d != 1]
    if used == list(range(r)) and [in_shape[dim_map[k]] for k in used] == list(out_shape):
        return None
    if not used:
        return "0"
    ordered = [dim_map[k] for k in used] == sorted(dim_map[k] for k in used)
    if used == list(range(used[0], r)) and ordered:   # a contiguous suffix of output dims
        if used[0] == 0:
            return None if list(in_numel_dims) == [d for d in out_shape if d != 1] else "offs"
        return f"offs % ({numel_src(out_shape[used[0]:])})"
    if used == list(range(0, used[-1] + 1)) and ordered:   # a contiguous prefix
        return f"offs // ({numel_src(out_shape[used[-1] + 1:])})"
    in_strides, acc = {}, "1"
    for j in range(len(in_shape) - 1, -1, -1):
        in_strides[j] = acc
        acc = f"{acc}*{dim(in_shape[j])}" if acc != "1" else dim(in_shape[j])
    terms = []
    for k in used:
        inner = numel_src(out_shape[k + 1:]) if k + 1 < r else "1"
        idx = "offs" if inner == "1" else f"(offs // ({inner}))"
        if k > 0:
            idx = f"({idx} % {dim(out_shape[k])})"
        st = in_strides[dim_map[k]]
        terms.append(idx if st == "1" else f"{idx} * ({st})")
    return " + ".join(terms)


def _bcast_map(out_shape, in_shape) -> list:
    lead = len(out_shape) - len(in_shape)
    return [None if k < lead or in_shape[k - lead] == 1 and out_shape[k] != 1 else k - lead
            for k in range(len(out_shape))]


@dataclass
class _Kernel:
    name: str
    text: str
    uses: list[str] = field(default_factory=list)
    sig: dict = field(default_factory=dict)        # runtime args -> Triton type, for AOT checks
    aot: list = field(default_factory=list)        # (constexprs, num_warps) of GPU launches
    library: bool = False                          # a kernel of kernels/, not generated


class _Pointwise:
    """The pointwise kernel of one elementwise group being written: what
    `lowering.POINTWISE` emitters ask for (see its doc)."""

    def __init__(self, gen: "_Gen", gr: dict, ns: list[Node]):
        self.gen, self.gr, self.shape = gen, gr, tuple(gr["shape"])
        self.ids = set(gr["nodes"])
        self.params: list[str] = []     # kernel parameter names
        self.types: dict[str, str] = {}
        self.callargs: list[str] = []   # run-side arguments
        self.loads: list[str] = []
        self.cache: dict[Any, str] = {}
        self.kv: dict[int, str] = {}
        self.block_vars: set[str] = set()
        self.traffic_full, self.traffic_small = 0, []
        self.node: Optional[Node] = None
        self.block = False

    def _param(self, prefix: str, typ: str, callarg: str) -> str:
        p = f"{prefix}{len(self.params)}"
        self.params.append(p)
        self.types[p] = typ
        self.callargs.append(callarg)
        return p

    def arg(self, i: int) -> str:
        return self.load(self.node.inputs[i])

    def offs(self) -> str:
        self.block = True
        return "offs"

    def _host_ints(self, rng: Node) -> str:
        gen = self.gen
        if gen.host.get(rng.attrs.get("name", "")) == "ints":
            return gen.var[rng.id]
        return f"rt.host_ints({gen.tensor(rng)})"

    def seed(self, rng: Node, stream: int) -> str:
        return self._param("seed", "i32", f"rt.mix({self._host_ints(rng)}, {stream})")

    def first(self, rng: Node, n: Node) -> str:
        """The global flat index of the node's first element: a data-parallel shard's offset."""
        return self._param("first", "i64", f"int({self._host_ints(rng)}[2]) * {math.prod(n.shape[1:])}")

    def load(self, i: Node, dim_map=None) -> str:
        gen = self.gen
        if i.id in self.ids:
            v = self.kv[i.id]
            self.block |= v in self.block_vars
            return v
        if i.op == "const":
            return literal(i.attrs["value"]) if i.dtype != "i64" else str(int(i.attrs["value"]))
        if i.op == "input" and gen.host.get(i.attrs["name"]) == "float":
            key = ("s", i.id)
            if key not in self.cache:
                self.cache[key] = self._param("s", "fp32" if i.dtype == "f32" else "fp64", gen.var[i.id])
            return self.cache[key]
        dm = tuple(dim_map) if dim_map is not None else tuple(_bcast_map(self.shape, i.shape))
        key = ("t", i.id, dm)
        if key in self.cache:
            v = self.cache[key]
            self.block |= v in self.block_vars
            return v
        p = self._param("in", PTR[i.dtype], gen.tensor(i))
        v = f"x{len(self.cache)}"
        if all(d == 1 for d in i.shape):
            self.loads.append(f"{v} = tl.load({p})")
            self.traffic_small.append(f"{i.dtype}[]")
        else:
            idx = _index_expr(self.shape, i.shape, list(dm))
            if idx is None:
                idx = "offs"
                self.traffic_full += ITEMSIZE[i.dtype]
            else:
                self.traffic_small.append(i.type_str)
            self.loads.append(f"{v} = tl.load({p} + {idx}, mask=mask, other=0)")
            self.block_vars.add(v)
            self.block = True
        self.cache[key] = v
        return v

    def write(self, ns: list[Node]) -> None:
        gen, gid = self.gen, self.gr["id"]
        body = []
        for j, n in enumerate(ns):
            self.node, self.block = n, False
            expr = lowering.pointwise_expr(self, n)
            gen.device_functions |= {f for f in lowering.DEVICE_FUNCTIONS if f + "(" in expr}
            v = self.kv[n.id] = f"v{j}"
            if self.block:
                self.block_vars.add(v)
            body.append(f"{v} = {expr}  # {n.op}")
        stores, outs = [], []
        for j, oid in enumerate(self.gr["outputs"]):
            n = gen.byid[oid]
            p = f"out{j}"
            outs.append(p)
            self.types[p] = PTR[n.dtype]
            val = self.kv[oid]
            if val not in self.block_vars:
                val = f"tl.zeros([BLOCK], {lowering.TL_DTYPE[n.dtype]}) + {val}"
            stores.append(f"tl.store({p} + offs, ({val}).to({p}.dtype.element_ty), mask=mask)")
        seeds = [p for p in self.params if p.startswith("seed")]
        # a new Philox key every step: never let Triton specialise on its value
        deco = f"@triton.jit(do_not_specialize={seeds!r})" if seeds else "@triton.jit"
        lines = [deco, f"def {{NAME}}({', '.join(outs + self.params + ['n', 'B', 'BLOCK: tl.constexpr'])}):",
                 "    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)",
                 "    mask = offs < n"]
        lines += ["    " + line for line in self.loads + body + stores]
        numel = numel_src(self.shape) if self.shape else "1"
        out_bytes = sum(ITEMSIZE[gen.byid[o].dtype] for o in self.gr["outputs"])
        small = f" + broadcast reads of {', '.join(self.traffic_small)}" if self.traffic_small else ""
        use = (f"group {gid}: {gen.describe(ns)}\n#     memory: {self.traffic_full + out_bytes} bytes/element x "
               f"{numel} elements{small} ({self.traffic_full} B read, {out_bytes} B written per element)")
        from .launch import pointwise_block
        sig = {p: self.types[p] for p in outs + self.params}
        sig.update(n="i32", B="i32")
        blk, w = pointwise_block(_aot_int(numel), interp=False)
        kname = gen.kernel("\n".join(lines) + "\n", "pointwise", use, sig, ((("BLOCK", blk),), w))
        outvars = [gen.buffer(gen.byid[o]) for o in self.gr["outputs"]]
        gen.make.append(f"n_g{gid} = {numel}")
        gen.make.append(f"blk_g{gid}, w_g{gid} = launch.pointwise_block(n_g{gid})")
        gen.make.append(f"grid_g{gid} = (triton.cdiv(n_g{gid}, blk_g{gid}),)")
        gen.run.append(f"{kname}[grid_g{gid}]({', '.join(outvars + self.callargs)}, n_g{gid}, B, "
                       f"BLOCK=blk_g{gid}, num_warps=w_g{gid})")


class _Gen:
    def __init__(self, g: Graph, host_scalars: bool = True):
        if not groups_valid(g):
            fuse_elementwise(g)
        self.g = g
        self.plan = plan_of(g)
        if self.plan.schedule != [n.id for n in schedule(g)]:   # planned for another schedule
            self.plan = unplanned(g)
        self.nodes = g.live_nodes()
        self.byid = {n.id: n for n in g.nodes}
        self.groups = g.meta["groups"]
        self.users = graph_users(self.nodes)
        self.out_ids = {n.id for n in g.outputs.values()}
        self.kernels: dict[str, _Kernel] = {}   # body text -> kernel
        self.make: list[str] = []
        self.run: list[str] = []
        self.var: dict[int, str] = {}
        self.declared: set[str] = set()
        self.fallbacks: list[str] = []
        self.host: dict[str, str] = {}           # input name -> "float" / "ints"
        self.device_functions: set[str] = set()
        if host_scalars:
            self._host_scalars()

    def _host_scalars(self):
        """Which graph inputs arrive as host values (kernel scalar arguments)."""
        targets = set(self.plan.update_into.values())
        for name, n in self.g.inputs.items():
            us = self.users.get(n.id, [])
            if n.id in self.out_ids or not us or name in targets:
                continue
            if n.shape == () and n.dtype in ("f32", "f64") and all(
                    OPS[u.op].pointwise and u.op not in ("unreduce", "dropout_mask") for u in us):
                self.host[name] = "float"
            elif n.dtype == "i64" and all(u.op == "dropout_mask" and u.inputs[1] is n for u in us):
                self.host[name] = "ints"

    # --- what the lowering functions use --------------------------------------------------
    def kernel(self, text_with_name: str, label: str, use: str, sig: Optional[dict] = None,
               aot: Optional[tuple] = None, library: bool = False) -> str:
        """A kernel (generated text with {NAME}, or a library kernel's name), its uses recorded."""
        k = self.kernels.get(text_with_name)
        if k is None:
            name = text_with_name if library else f"k{len(self.kernels)}_{label}"
            k = self.kernels[text_with_name] = _Kernel(name, "" if library else
                                                       text_with_name.replace("{NAME}", name), library=library)
        k.uses.append(use)
        if sig is not None:
            k.sig = sig
        if aot is not None and aot not in k.aot:
            k.aot.append(aot)
        return ("K." + k.name) if library else k.name

    def buffer(self, n: Node) -> str:
        """The tensor node n's value is written to, as the memory plan says."""
        if n.id in self.var:
            return self.var[n.id]
        plan = self.plan
        if n.id in plan.update_into:
            v = ident(plan.update_into[n.id])
        elif n.id in plan.placed:
            cid, off = plan.placed[n.id]
            v = f"p{n.id}"
            self.make.append(f"{v} = {self.buffer(self.byid[cid])}[{off}:{off + _numel(n)}]"
                             f".view({shape_src(n.shape)})  # {n.name}'s place in {self.byid[cid].name}")
        else:
            v = f"b{plan.buffer_of[n.id]}"
            decl = f"{v} = torch.empty({shape_src(n.shape)}, device=dev, dtype={TORCH_DTYPE_SRC[n.dtype]})"
            if decl not in self.declared:
                self.declared.add(decl)
                self.make.append(decl)
        self.var[n.id] = v
        return v

    def tensor(self, n: Node) -> str:
        """A run-side expression for node n's value as a tensor."""
        if n.id in self.var:
            return self.var[n.id]
        if n.op == "const":
            v = self.var[n.id] = f"c{n.id}"
            self.make.append(f"{v} = torch.full((), {literal(n.attrs['value'])}, device=dev, "
                             f"dtype={TORCH_DTYPE_SRC[n.dtype]})")
            return v
        raise KeyError(n)

    def rows_launch(self, n: Node, kernel: str, ptrs: list[str], ptr_nodes: list[Node], rows: str, cols: str,
                    constexprs: dict, traffic: str, blocks: str = "rows", scale: Optional[str] = None) -> None:
        """Launch row kernel `kernel` of kernels/rows.py over `rows` x `cols`."""
        from . import kernels as K
        from .launch import loop_row_blocks, row_blocks
        fn = {"rows": "row_blocks", "loop": "loop_row_blocks", "take": "row_blocks"}[blocks]
        choose = loop_row_blocks if blocks == "loop" else row_blocks
        names = [a for a in getattr(K, kernel).arg_names]
        sig = {a: PTR[pn.dtype] for a, pn in zip([a for a in names if a.endswith("_ptr")], ptr_nodes)}
        sig.update(R="i32", C="i32")
        if scale is not None:
            sig["scale"] = "fp32"
        br, bc, w = choose(_aot_int(rows), _aot_int(cols) if blocks != "take" else 1, interp=False)
        meta = {"BLOCK_R": br} if blocks == "take" else {"BLOCK_R": br, "BLOCK_C": bc}
        aot_consts = {k: (getattr(K, v[2:]) if isinstance(v, str) and v.startswith("K.") else v)
                      for k, v in constexprs.items()}
        kname = self.kernel(kernel, kernel, f"{self.describe([n])}\n#     memory: {traffic}", sig,
                            (tuple(sorted({**aot_consts, **meta}.items())), w), library=True)
        i = n.id
        self.make.append(f"br{i}, bc{i}, w{i} = launch.{fn}({rows}, {cols if blocks != 'take' else 1})")
        self.make.append(f"grid{i} = (triton.cdiv({rows}, br{i}),)")
        consts = "".join(f", {k}={v}" for k, v in constexprs.items())
        blk = f"BLOCK_R=br{i}" + ("" if blocks == "take" else f", BLOCK_C=bc{i}")
        extra = f", {scale}" if scale is not None else ""
        self.run.append(f"{kname}[grid{i}]({', '.join(ptrs)}, {rows}, {cols}{extra}{consts}, {blk}, "
                        f"num_warps=w{i})")

    def library_use(self, n: Node, kernel: str, ptr_nodes: list[Node], ints, constexprs: dict, blocks,
                    traffic: str) -> None:
        """Record a launch of library kernel `kernel` (for the module's comments and
        the AOT checks): its pointers' dtypes, integer arguments and the GPU blocks
        `blocks(False)` -> (block constexprs, num_warps)."""
        from . import kernels as K
        ptrs = [a for a in getattr(K, kernel).arg_names if a.endswith("_ptr")]
        sig = {a: PTR[pn.dtype] for a, pn in zip(ptrs, ptr_nodes)}
        sig.update({a: "i32" for a in ints})
        meta, warps = blocks(False)
        consts = {**constexprs, **meta}
        if "PRECISION" in getattr(K, kernel).arg_names:
            consts["PRECISION"] = "ieee"
        self.kernel(kernel, kernel, f"{self.describe([n])}\n#     memory: {traffic}", sig,
                    (tuple(sorted(consts.items())), warps), library=True)

    def cols_launch(self, n: Node, x: Node, m: str, cols: str, reduce: str, scale: str, traffic: str) -> None:
        """Launch the column reduction of kernels/columns.py over an (m, cols) view of x."""
        from . import kernels as K
        from .launch import col_blocks
        bm, bn, _, _, w = col_blocks(_aot_int(m), _aot_int(cols), interp=False)
        sig = {"x_ptr": PTR[x.dtype], "out_ptr": PTR[n.dtype], "M": "i32", "N": "i32", "ROWS": "i32",
               "scale": "fp32"}
        red = getattr(K, reduce[2:])
        kname = self.kernel("reduce_cols_kernel", "reduce_cols", f"{self.describe([n])}\n#     memory: {traffic}",
                            sig, (tuple(sorted({"REDUCE": red, "BLOCK_M": bm, "BLOCK_N": bn}.items())), w),
                            library=True)
        i, out, src = n.id, self.buffer(n), self.tensor(x)
        self.make.append(f"bm{i}, bn{i}, sp{i}, rows{i}, w{i} = launch.col_blocks({m}, {cols})")
        self.make.append(f"part{i} = torch.empty((sp{i}, {cols}), device=dev, dtype=torch.float32)"
                         f" if sp{i} > 1 else None")
        self.make.append(f"bm{i}b = launch.partial_block(sp{i})")
        grid = f"(triton.cdiv({cols}, bn{i}), {{}})"
        common = f"REDUCE={reduce}, BLOCK_N=bn{i}, num_warps=w{i}"
        self.run.append(f"if sp{i} == 1:")
        self.run.append(f"    {kname}[{grid.format(1)}]({src}, {out}, {m}, {cols}, rows{i}, {scale}, "
                        f"BLOCK_M=bm{i}, {common})")
        self.run.append("else:  # split rows over programs, then reduce the partials")
        self.run.append(f"    {kname}[{grid.format(f'sp{i}')}]({src}, part{i}, {m}, {cols}, rows{i}, 1.0, "
                        f"BLOCK_M=bm{i}, {common})")
        self.run.append(f"    {kname}[{grid.format(1)}](part{i}, {out}, sp{i}, {cols}, sp{i}, {scale}, "
                        f"BLOCK_M=bm{i}b, {common})")

    def describe(self, ns: list[Node]) -> str:
        return describe(ns)

    # --- generation -------------------------------------------------------------------------
    def generate(self) -> str:
        for name, n in self.g.inputs.items():
            self.var[n.id] = ident(name)
        for gr in self.groups:
            ns = [self.byid[i] for i in gr["nodes"]]
            self.run.append(f"# group {gr['id']} ({gr['kind']}): {self.describe(ns)}")
            if gr["kind"] == "elementwise":
                _Pointwise(self, gr, ns).write(ns)
            elif gr["kind"] in lowering.GROUPS:
                lowering.GROUPS[gr["kind"]](self, gr, ns)
            elif gr["kind"] == "view":
                n = ns[0]
                self.var[n.id] = f"v{n.id}"
                self.run.append(f"v{n.id} = {lowering.VIEWS[n.op](self.tensor(n.inputs[0]), n)}")
            elif not lowering.KERNELS.get(ns[0].op, lambda gen, n: False)(self, ns[0]):
                self.host_fallback(ns[0])
        # updates not written in place are copied at the end
        for out_name, in_name in self.g.updates.items():
            p = self.g.outputs[out_name]
            if self.plan.update_into.get(p.id) != in_name:
                src = self.tensor(p)
                if src != ident(in_name):
                    self.run.append(f"{ident(in_name)}.copy_({src})  # update {in_name}")
        rets = [ident(self.g.updates[k]) if k in self.g.updates else self.tensor(n)
                for k, n in self.g.outputs.items()]
        return self.assemble(rets)

    def host_fallback(self, n: Node) -> None:
        """No Triton lowering for this form of the op: its reference semantics on the host."""
        out = self.buffer(n)
        opdef = OPS[n.op]
        attrs = {k: n.attrs[k] for k in opdef.attrs if k in n.attrs}
        args = [self.var[i.id] if i.op == "input" and i.attrs["name"] in self.host else self.tensor(i)
                for i in n.inputs]
        self.fallbacks.append(f"{n.name} {n.op} {n.type_str}" + (f" ({where(n)})" if n.loc else ""))
        self.run.append(f"rt.fallback({n.op!r}, {attrs!r}, {out}, {', '.join(args)})  # FALLBACK (host)")

    def assemble(self, rets: list[str]) -> str:
        g = self.g
        args = ", ".join(ident(k) for k in g.inputs)
        generated = [k for k in self.kernels.values() if not k.library]
        n_launch = sum(len(k.uses) for k in self.kernels.values())
        src = [f"# generated by nncompile (triton backend) from graph '{g.name}': "
               f"{len(self.nodes)} nodes, {len(self.groups)} groups, {len(generated)} generated kernels, "
               f"{len(self.kernels) - len(generated)} library kernels ({n_launch} launches)",
               "# memory traffic is the compulsory DRAM bytes per launch at batch size B",
               "import torch", "import triton", "import triton.language as tl", "",
               "from nncompile.backends.triton import kernels as K", "from nncompile.backends.triton import launch, rt"]
        for f in sorted(self.device_functions):
            src.append(f"from nncompile.backends.triton.kernels.functions import "
                       f"{lowering.DEVICE_FUNCTIONS[f]} as {f}")
        for k in self.kernels.values():
            src += ["", f"# {'K.' if k.library else ''}{k.name}: used by {len(k.uses)} group(s)"]
            src += ["#   " + u for u in k.uses]
            if not k.library:
                src += [k.text.strip("\n"), ""]
        src += ["", "PREC = rt.env_precision()  # matmul input precision", "", "",
                "def make(B, dev):", "    # buffers for batch size B (made once per batch size)"]
        src += ["    " + line for line in self.make] or ["    pass"]
        src += ["", f"    def run({args}):"]
        src += ["        " + line for line in self.run] or ["        pass"]
        src += [f"        return ({', '.join(rets)}{',' if len(rets) == 1 else ''})", "", "    return run", ""]
        return "\n".join(src)


def _numel(n: Node) -> int:
    import math
    return math.prod(n.shape)


# --- compile + cache -----------------------------------------------------------------------

_MODULES: dict[str, dict[str, Any]] = {}


def _cache_dir() -> str:
    root = os.environ.get("NNCOMPILE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "nncompile")
    d = os.path.join(root, "triton_gen")
    try:
        os.makedirs(d, exist_ok=True)
        return d
    except OSError:
        d = os.path.join(tempfile.gettempdir(), "nncompile_triton_gen")
        os.makedirs(d, exist_ok=True)
        return d


def load_source(source: str, name: str) -> dict[str, Any]:
    """Execute generated source (written to a file: Triton reads kernels' source
    text through `inspect`); cached by content hash."""
    key = hashlib.sha256((source + f"|interp={interpreting()}").encode()).hexdigest()[:20]
    ns = _MODULES.get(key)
    if ns is not None:
        return ns
    stem = re.sub(r"\W", "_", name)
    path = os.path.join(_cache_dir(), f"{stem}_{key}.py")
    if not os.path.exists(path):
        tmp = path + f".{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(source)
        os.replace(tmp, path)
    ns = {"__name__": f"nncompile_gen_{key}", "__file__": path}
    exec(compile(source, path, "exec"), ns)
    _MODULES[key] = ns
    return ns


def aot_specs(g: Graph) -> list[dict]:
    """Every kernel `g` launches (generated or from the library) with the GPU
    launch configurations the program would use (B = AOT_B), as specs for
    aot.compile_all. Must run in a process without TRITON_INTERPRET (kernels
    must be real JITFunctions)."""
    from . import kernels as K
    gen = _Gen(g)
    ns = load_source(gen.generate(), g.name)
    specs = []
    for k in gen.kernels.values():
        fn = getattr(K, k.name) if k.library else ns[k.name]
        for consts, warps in k.aot:
            specs.append(dict(name=f"{g.name}.{k.name}", kernel=fn, signature=k.sig,
                              constexprs=dict(consts), num_warps=warps, num_stages=3))
    return specs


def compile_graph(g: Graph, cuda_graphs: Optional[bool] = None):
    """Generate and load the Triton module of `g`.

    cuda_graphs: capture the whole step in a CUDA graph after a warm-up call and
    replay it (one launch instead of one per kernel). Default: on when a CUDA GPU
    is used, unless NNCOMPILE_CUDA_GRAPHS=0. It needs every input as a device
    tensor (step and lr are read by the kernels, not passed as host numbers), so
    graphs with dropout (whose Philox seed is mixed on the host each step) or a
    data-parallel all-reduce are not captured."""
    from .program import TritonProgram
    if cuda_graphs is None:
        cuda_graphs = os.environ.get("NNCOMPILE_CUDA_GRAPHS", "1") not in ("0", "") and not interpreting()
    if cuda_graphs and any(n.op == "dropout_mask" or OPS[n.op].kind == "collective" for n in g.nodes):
        cuda_graphs = False   # (a data-parallel all-reduce is a host call with this step's shard weight)
    gen = _Gen(g, host_scalars=not cuda_graphs)
    source = gen.generate()
    ns = load_source(source, g.name)
    prog = TritonProgram(g, source, ns, gen.fallbacks, [k.name for k in gen.kernels.values()], gen.host)
    prog.cuda_graphs = cuda_graphs
    return prog
