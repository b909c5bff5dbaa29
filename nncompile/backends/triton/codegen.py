"""Triton backend: generates one Python module of Triton kernels per graph.

From the fusion groups (`passes/fusion.py`, computed here if the pipeline did
not) it writes, as text:

  * one `@triton.jit` pointwise kernel per elementwise group, the group's
    expression inlined (loads of the group inputs, broadcasts as index
    arithmetic, one store per group output);
  * row kernels (softmax, log_softmax, softmax_xent and its gradient, argmax,
    take_label, onehot, reductions over trailing axes) and column reductions
    (reductions over leading axes: bias gradients, batch statistics);
  * calls to the hand-written matmul launcher (kernels.py) with the group's
    epilogue (bias, activation, ReLU-backward mask) fused;
  * `make(B, dev)`: allocates every buffer for batch size B and returns the
    straight-line `run(...)` that launches the kernels in order.

Identical kernel bodies (e.g. the Adam update of every parameter) are emitted
once. The module is written to a cache directory (Triton reads kernel source
from a file) and executed; modules are cached by source hash.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import numpy as np

from ...ir.graph import B, Graph, Node
from ...ir.ops import OPS, norm_axes, reduce_like_axes
from ...passes.fusion import fuse_elementwise, groups_valid, is_pointwise

TL_DTYPE = {"f32": "tl.float32", "f64": "tl.float64", "i64": "tl.int64"}
TORCH_DTYPE_SRC = {"f32": "torch.float32", "f64": "torch.float64", "i64": "torch.int64"}
ITEMSIZE = {"f32": 4, "f64": 8, "i64": 8}


def _ident(name: str) -> str:
    return "a_" + re.sub(r"\W", "_", name)


def _dim(d) -> str:
    return "B" if d == B else str(d)


def _prod(dims) -> str:
    ints = math.prod(d for d in dims if d != B)
    nb = sum(1 for d in dims if d == B)
    parts = ["B"] * nb + ([str(ints)] if ints != 1 or nb == 0 else [])
    return "*".join(parts)


def _shape_src(shape) -> str:
    parts = [_dim(d) for d in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def _lit(v: float) -> str:
    v = float(v)
    if math.isnan(v):
        return 'float("nan")'
    if math.isinf(v):
        return 'float("inf")' if v > 0 else 'float("-inf")'
    return repr(v)


def _loc(n: Node) -> str:
    if n.loc is None:
        return ""
    return f"{n.loc.file}:{n.loc.line}"


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
    # contiguous suffix of output dims -> offs % prod(suffix)
    if used == list(range(used[0], r)) and [dim_map[k] for k in used] == sorted(dim_map[k] for k in used):
        if used[0] == 0:
            return None if list(in_numel_dims) == [d for d in out_shape if d != 1] else "offs"
        return f"offs % ({_prod(out_shape[used[0]:])})"
    # contiguous prefix -> offs // prod(rest)
    if used == list(range(0, used[-1] + 1)) and [dim_map[k] for k in used] == sorted(dim_map[k] for k in used):
        return f"offs // ({_prod(out_shape[used[-1] + 1:])})"
    terms = []
    in_strides = {}
    acc = "1"
    for j in range(len(in_shape) - 1, -1, -1):
        in_strides[j] = acc
        acc = f"{acc}*{_dim(in_shape[j])}" if acc != "1" else _dim(in_shape[j])
    for k in used:
        inner = _prod(out_shape[k + 1:]) if k + 1 < r else "1"
        idx = "offs" if inner == "1" else f"(offs // ({inner}))"
        if k > 0:
            idx = f"({idx} % {_dim(out_shape[k])})"
        st = in_strides[dim_map[k]]
        terms.append(idx if st == "1" else f"{idx} * ({st})")
    return " + ".join(terms)


def _bcast_map(out_shape, in_shape) -> list:
    lead = len(out_shape) - len(in_shape)
    return [None if k < lead or in_shape[k - lead] == 1 and out_shape[k] != 1 else k - lead
            for k in range(len(out_shape))]


def _unreduce_map(out_shape, g_shape, axes, keepdims) -> list:
    axes = norm_axes(axes, len(out_shape))
    m, j = [], 0
    for k in range(len(out_shape)):
        if k in axes:
            m.append(None)
            if keepdims:
                j += 1
        else:
            m.append(j)
            j += 1
    return m


def _reduce_plan(in_shape, axes):
    """("row", R, C) for trailing axes, ("col", M, N) for leading axes, else None."""
    r = len(in_shape)
    axes = tuple(sorted(axes))
    k = len(axes)
    if k == 0:
        return ("row", _prod(in_shape), "1")
    if axes == tuple(range(r - k, r)):
        return ("row", _prod(in_shape[:r - k]) if r - k else "1", _prod(in_shape[r - k:]))
    if axes == tuple(range(k)):
        return ("col", _prod(in_shape[:k]), _prod(in_shape[k:]))
    return None


# --- pointwise expressions -------------------------------------------------------------

def _pw_expr(n: Node, a: list[str]) -> str:
    at = n.attrs
    op = n.op
    simple = {
        "add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0} * {1}", "div": "{0} / {1}",
        "maximum": "tl.maximum({0}, {1})", "relu_grad": "tl.where({1} > 0, {0}, 0.0)",
        "neg": "-{0}", "exp": "tl.exp({0})", "log": "tl.log({0})", "sqrt": "tl.sqrt({0})",
        "square": "{0} * {0}", "abs": "tl.abs({0})",
        "sign": "tl.where({0} > 0, 1.0, tl.where({0} < 0, -1.0, 0.0))",
        "relu": "tl.maximum({0}, 0.0)", "sigmoid": "1.0 / (1.0 + tl.exp(-{0}))", "tanh": "_tanh({0})",
        "softplus": "tl.maximum({0}, 0.0) + tl.log(1.0 + tl.exp(-tl.abs({0})))",
        "gelu": "_gelu({0})", "gelu_grad": "_gelu_grad({0}, {1})",
        "equal": "tl.where({0} == {1}, 1.0, 0.0)", "greater": "tl.where({0} > {1}, 1.0, 0.0)",
    }
    if op in simple:
        return simple[op].format(*a)
    if op == "leaky_relu":
        return f"tl.where({a[0]} > 0, {a[0]}, {a[0]} * {_lit(at['alpha'])})"
    if op == "leaky_grad":
        return f"tl.where({a[1]} > 0, {a[0]}, {a[0]} * {_lit(at['alpha'])})"
    if op == "clip":
        return f"tl.minimum(tl.maximum({a[0]}, {_lit(at['lo'])}), {_lit(at['hi'])})"
    if op == "clip_grad":
        return f"tl.where(({a[1]} >= {_lit(at['lo'])}) & ({a[1]} <= {_lit(at['hi'])}), {a[0]}, 0.0)"
    if op == "cast":
        return f"({a[0]}).to({TL_DTYPE[at['dtype']]})"
    raise KeyError(op)


# the generated module imports `_tanh` (kernels.py's, the one the matmul epilogue uses)
HELPERS = '''
@triton.jit
def _gelu(x):
    return 0.5 * x * (1.0 + _tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


@triton.jit
def _gelu_grad(g, x):
    c = 0.7978845608028654
    t = _tanh(c * (x + 0.044715 * x * x * x))
    return g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * x * x))
'''


# --- row / column kernel templates (one kernel text per use, deduplicated) -------------

ROW_SOFTMAX = '''
@triton.jit
def {name}(x_ptr, out_ptr, R, C, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_C)
    rmask = rows < R
    m = rmask[:, None] & (cols[None, :] < C)
    offs = rows[:, None] * C + cols[None, :]
    x = tl.load(x_ptr + offs, mask=m, other=float("-inf")).to(tl.float32)
    x = tl.where(rmask[:, None], x, 0.0)
    mx = tl.max(x, axis=1)
    e = tl.exp(x - mx[:, None])
    s = tl.sum(e, axis=1)
    {body}
    tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=m)
'''
SOFTMAX_BODY = "y = e / s[:, None]"
LOG_SOFTMAX_BODY = "y = (x - mx[:, None]) - tl.log(s)[:, None]"

ROW_XENT = '''
@triton.jit
def {name}(z_ptr, y_ptr, g_ptr, out_ptr, R, C, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_C)
    rmask = rows < R
    m = rmask[:, None] & (cols[None, :] < C)
    offs = rows[:, None] * C + cols[None, :]
    z = tl.load(z_ptr + offs, mask=m, other=float("-inf")).to(tl.float32)
    z = tl.where(rmask[:, None], z, 0.0)
    lab = tl.load(y_ptr + rows, mask=rmask, other=0)
    onehot = cols[None, :] == lab[:, None]
    mx = tl.max(z, axis=1)
    e = tl.exp(z - mx[:, None])
    s = tl.sum(e, axis=1)
    {body}
'''
XENT_BODY = '''z_lab = tl.sum(tl.where(onehot, z, 0.0), axis=1)
    loss = (tl.log(s) + mx) - z_lab
    tl.store(out_ptr + rows, loss.to(out_ptr.dtype.element_ty), mask=rmask)'''
XENT_GRAD_BODY = '''g = tl.load(g_ptr + rows, mask=rmask, other=0.0)
    d = (e / s[:, None] - tl.where(onehot, 1.0, 0.0)) * g[:, None]
    tl.store(out_ptr + offs, d.to(out_ptr.dtype.element_ty), mask=m)'''

ROW_ARGMAX = '''
@triton.jit
def {name}(x_ptr, out_ptr, R, C, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_C)
    rmask = rows < R
    m = rmask[:, None] & (cols[None, :] < C)
    x = tl.load(x_ptr + rows[:, None] * C + cols[None, :], mask=m, other=float("-inf"))
    mx = tl.max(x, axis=1)
    # the first column holding the maximum (NumPy's tie rule)
    idx = tl.min(tl.where((x == mx[:, None]) & m, cols[None, :], BLOCK_C), axis=1)
    tl.store(out_ptr + rows, idx.to(tl.int64), mask=rmask)
'''

ROW_TAKE = '''
@triton.jit
def {name}(p_ptr, y_ptr, out_ptr, R, C, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < R
    lab = tl.load(y_ptr + rows, mask=rmask, other=0)
    v = tl.load(p_ptr + rows * C + lab, mask=rmask, other=0.0)
    tl.store(out_ptr + rows, v, mask=rmask)
'''

ROW_ONEHOT = '''
@triton.jit
def {name}(y_ptr, out_ptr, R, C, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_C)
    rmask = rows < R
    m = rmask[:, None] & (cols[None, :] < C)
    lab = tl.load(y_ptr + rows, mask=rmask, other=0)
    v = tl.where(cols[None, :] == lab[:, None], 1.0, 0.0)
    tl.store(out_ptr + rows[:, None] * C + cols[None, :], v.to(out_ptr.dtype.element_ty), mask=m)
'''

ROW_REDUCE = '''
@triton.jit
def {name}(x_ptr, out_ptr, R, C, div, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < R
    acc = tl.full((BLOCK_R, BLOCK_C), {init}, tl.float32)
    for c0 in range(0, C, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)
        m = rmask[:, None] & (cols[None, :] < C)
        x = tl.load(x_ptr + rows[:, None] * C + cols[None, :], mask=m, other={init}).to(tl.float32)
        acc = {combine}
    r = {final}
    tl.store(out_ptr + rows, r.to(out_ptr.dtype.element_ty), mask=rmask)
'''

COL_REDUCE = '''
@triton.jit
def {name}(x_ptr, out_ptr, M, N, ROWS, div, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # program (pid_n, pid_s) reduces rows [pid_s*ROWS, (pid_s+1)*ROWS) of a
    # BLOCK_N-wide column strip; with several splits a second launch of this
    # kernel reduces the (split, N) partials
    pid_n = tl.program_id(0)
    pid_s = tl.program_id(1)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    cmask = cols < N
    r_start = pid_s * ROWS
    r_end = tl.minimum(r_start + ROWS, M)
    acc = tl.full((BLOCK_M, BLOCK_N), {init}, tl.float32)
    for r0 in range(r_start, r_end, BLOCK_M):
        rows = r0 + tl.arange(0, BLOCK_M)
        m = (rows[:, None] < r_end) & cmask[None, :]
        x = tl.load(x_ptr + rows[:, None] * N + cols[None, :], mask=m, other={init}).to(tl.float32)
        acc = {combine}
    r = {final}
    tl.store(out_ptr + pid_s * N + cols, r.to(out_ptr.dtype.element_ty), mask=cmask)
'''

REDUCE_OPS = {
    # op: (init, combine, final along axis {ax})
    "sum": ("0.0", "acc + x", "tl.sum(acc, axis={ax}) / div"),
    "mean": ("0.0", "acc + x", "tl.sum(acc, axis={ax}) / div"),
    "reduce_like": ("0.0", "acc + x", "tl.sum(acc, axis={ax}) / div"),
    "max": ('float("-inf")', "tl.maximum(acc, x)", "tl.max(acc, axis={ax})"),
}


# --- CUDA graphs -------------------------------------------------------------------------

class _GraphedStep:
    """Run a step eagerly once (Triton compiles, matmuls autotune), then capture
    it in a CUDA graph and replay it: inputs are copied into the captured
    tensors, state tensors must be the same objects every call (the trainer's
    are). Anything unexpected falls back to eager launches, said once."""

    def __init__(self, inner: Callable, program: "TritonProgram"):
        self.inner, self.program = inner, program
        self.calls = 0
        self.graph = None
        self.static: list = []
        self.outs = None
        self.failed: Optional[str] = None

    def __call__(self, *args):
        import torch
        self.calls += 1
        if self.failed or self.calls < 3:      # two warm-up calls: compile, autotune
            return self.inner(*args)
        if self.graph is None:
            try:
                self._capture(args)
            except Exception as e:  # noqa: BLE001 - any capture problem means: stay eager
                self.failed = f"{type(e).__name__}: {e}"
                self.graph = None
                torch.cuda.synchronize()
                print(f"nncompile: CUDA graph capture failed ({self.failed}); running kernels eagerly",
                      file=sys.stderr)
                return self.inner(*args)
        copy_back = []
        for i, (st, a) in enumerate(zip(self.static, args)):
            if st is a or (isinstance(a, torch.Tensor) and a.data_ptr() == st.data_ptr()):
                continue
            if isinstance(a, torch.Tensor) and a.shape == st.shape:
                st.copy_(a, non_blocking=True)
            else:
                st.copy_(torch.as_tensor(np.asarray(a), dtype=st.dtype).reshape(st.shape), non_blocking=True)
            if self.program.input_names[i] in self.program._updated and isinstance(a, torch.Tensor):
                copy_back.append((a, st))        # state passed as another tensor: give it its new value
        self.graph.replay()
        for a, st in copy_back:
            a.copy_(st)
        return self.outs

    def _capture(self, args):
        import torch
        # no extra warm-up here: a step updates the state in place, so running one
        # more would apply an update twice (the eager calls before were the warm-up)
        self.static = [a.clone() if self._is_data(i) else a for i, a in enumerate(args)]
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            self.outs = self.inner(*self.static)
        self.graph = g

    def _is_data(self, i: int) -> bool:
        """Inputs that change every call (data and scalars), copied into the
        graph's own tensors; state (parameters, optimizer, batch norm) is used in place."""
        name = self.program.input_names[i]
        return self.program.graph.input_specs[name].role in ("data", "scalar")


# --- the program object ------------------------------------------------------------------

class TritonProgram:
    """A compiled graph on the Triton backend; same interface as NumpyProgram.
    Arrays are torch tensors on `device` (CUDA, or CPU under TRITON_INTERPRET=1)."""

    def __init__(self, graph: Graph, source: str, namespace: dict[str, Any], fallbacks: list[str],
                 kernels: list[str], host_scalars: dict[str, str]):
        from . import rt
        self.graph = graph
        self.source = source
        self.input_names = list(graph.inputs)
        self.output_names = list(graph.outputs)
        self.fallbacks = fallbacks
        self.kernels = kernels
        self._device = None          # resolved on first use: dumping source needs no GPU
        self._make: Callable = namespace["make"]
        self._runs: dict[int, Callable] = {}
        self._rt = rt
        self._updated = set(graph.updates.values())
        self._slots = []
        for name, node in graph.inputs.items():
            kind = host_scalars.get(name, "tensor")
            self._slots.append((name, kind, rt.TORCH_DTYPE[node.dtype]))

    @property
    def device(self):
        if self._device is None:
            self._device = self._rt.device()
        return self._device

    cuda_graphs = False

    def runner(self, batch: int) -> Callable:
        run = self._runs.get(batch)
        if run is not None:
            return run
        inner = self._make(int(batch), self.device)
        if self.cuda_graphs and self.device.type == "cuda":
            inner = _GraphedStep(inner, self)
        rt, dev, slots = self._rt, self.device, self._slots
        torch = rt.torch

        def run(*args):
            conv = list(args)
            back = []
            for i, (name, kind, dt) in enumerate(slots):
                a = args[i]
                if kind == "float":
                    conv[i] = float(a)
                elif kind == "ints":
                    conv[i] = rt.host_ints(a)
                elif not (type(a) is torch.Tensor and a.device == dev and a.dtype == dt
                          and a.is_contiguous()):
                    conv[i] = rt.to_torch(a, dt, dev)
                    if name in self._updated and isinstance(a, np.ndarray):
                        back.append((a, conv[i]))
            outs = inner(*conv)
            for arr, t in back:       # a NumPy state array gets its new value too
                np.copyto(arr, t.detach().cpu().numpy().reshape(arr.shape))
            return outs

        self._runs[batch] = run
        return run

    def to_device(self, a, dtype=None):
        rt = self._rt
        if dtype is None:
            dt = a.dtype if isinstance(a, rt.torch.Tensor) else rt._NP_TO_TORCH.get(np.asarray(a).dtype,
                                                                                    rt.torch.float32)
        else:
            dt = rt._NP_TO_TORCH[np.dtype(dtype)] if not isinstance(dtype, rt.torch.dtype) else dtype
        return rt.to_torch(a, dt, self.device)

    @staticmethod
    def to_host(a) -> np.ndarray:
        import torch
        if isinstance(a, torch.Tensor):
            return a.detach().cpu().numpy()
        return np.asarray(a)

    @staticmethod
    def copy(a):
        import torch
        return a.clone() if isinstance(a, torch.Tensor) else np.array(a)

    @staticmethod
    def copyto(dst, src) -> None:
        import torch
        if isinstance(src, torch.Tensor):
            dst.copy_(src.to(dst.device))
        else:
            dst.copy_(torch.from_numpy(np.ascontiguousarray(src)).to(dst.device, dst.dtype))

    def __call__(self, inputs: Mapping[str, Any], batch: Optional[int] = None) -> dict[str, Any]:
        if batch is None:
            batch = 1
            for name, node in self.graph.inputs.items():
                if B in node.shape:
                    batch = int(np.shape(inputs[name])[node.shape.index(B)])
                    break
        outs = self.runner(batch)(*[inputs[n] for n in self.input_names])
        return dict(zip(self.output_names, outs))


# --- the generator ---------------------------------------------------------------------

@dataclass
class _Kernel:
    name: str
    text: str
    uses: list[str] = field(default_factory=list)
    sig: dict = field(default_factory=dict)        # runtime args -> Triton type, for AOT checks
    aot: list = field(default_factory=list)        # (constexprs, num_warps) of GPU launches


PTR = {"f32": "*fp32", "f64": "*fp64", "i64": "*i64"}
AOT_B = 4096   # batch size standing in for B when choosing GPU launch sizes for AOT checks


def _aot_int(expr: str) -> int:
    return int(eval(expr, {"B": AOT_B, "float": float}))


class _Gen:
    def __init__(self, g: Graph, host_scalars: bool = True):
        if not groups_valid(g):
            fuse_elementwise(g)
        self.g = g
        self.nodes = g.live_nodes()
        self.byid = {n.id: n for n in g.nodes}
        self.groups = g.meta["groups"]
        self.group_of = {i: gr["id"] for gr in self.groups for i in gr["nodes"]}
        self.users: dict[int, list[Node]] = {n.id: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                if n not in self.users[i.id]:
                    self.users[i.id].append(n)
        self.out_ids = {n.id for n in g.outputs.values()}
        self.kernels: dict[str, _Kernel] = {}   # body text -> kernel
        self.make: list[str] = []
        self.run: list[str] = []
        self.var: dict[int, str] = {}
        self.fallbacks: list[str] = []
        self.host: dict[str, str] = {}           # input name -> "float" / "ints"
        self.uses_helpers = False
        if host_scalars:
            self._host_scalars()
        self._inplace = self._plan_inplace()
        self._placed: dict[int, tuple[int, int]] = {}   # node id -> (concat id, offset)
        self._plan_concat()

    # which graph inputs arrive as host values (kernel scalar arguments)
    def _host_scalars(self):
        for name, n in self.g.inputs.items():
            us = self.users.get(n.id, [])
            if n.id in self.out_ids or not us:
                continue
            if n.shape == () and n.dtype in ("f32", "f64") and all(
                    is_pointwise(u) and u.op not in ("unreduce", "dropout_mask") for u in us):
                self.host[name] = "float"
            elif n.dtype == "i64" and all(u.op == "dropout_mask" and u.inputs[1] is n for u in us):
                self.host[name] = "ints"

    def _plan_inplace(self) -> dict[int, str]:
        """Update outputs written straight into the input they update."""
        out: dict[int, str] = {}
        counts: dict[int, int] = {}
        for n in self.g.outputs.values():
            counts[n.id] = counts.get(n.id, 0) + 1
        for out_name, in_name in self.g.updates.items():
            p, x = self.g.outputs[out_name], self.g.inputs[in_name]
            gid = self.group_of.get(p.id)
            if gid is None or counts[p.id] != 1 or p.id in out or in_name in self.host:
                continue
            gr = self.groups[gid]
            if gr["kind"] != "elementwise" or p.shape != x.shape or p.dtype != x.dtype:
                continue
            ok = True
            readers, stack = [], list(self.users[x.id])
            while stack:          # readers through views (reshape, slice_flat) count too
                u = stack.pop()
                if u.op in ("reshape", "slice_flat"):
                    stack.extend(self.users[u.id])
                else:
                    readers.append(u)
            for u in readers:
                ug = self.group_of.get(u.id)
                if ug is None or ug > gid:
                    ok = False
                elif ug == gid and (u.op in ("unreduce", "dropout_mask") or u.shape != x.shape):
                    ok = False
            if ok:
                out[p.id] = _ident(in_name)
        return out

    def _plan_concat(self):
        """Pieces of a concat_flat (the flat gradient) are written straight into
        their place in its buffer, so the concatenation copies nothing."""
        for n in self.nodes:
            if n.op != "concat_flat":
                continue
            off = 0
            for x in n.inputs:
                size = math.prod(x.shape)
                ok = (x.id in self.group_of and x.id not in self._inplace and x.id not in self._placed
                      and self.groups[self.group_of[x.id]]["kind"] not in ("view",)
                      and sum(1 for y in n.inputs if y is x) == 1 and x.id not in self.out_ids)
                if ok:
                    self._placed[x.id] = (n.id, off)
                off += size

    def concat(self, n: Node) -> None:
        out = self.buffer(n)
        off = 0
        for x in n.inputs:
            size = math.prod(x.shape)
            if self._placed.get(x.id) != (n.id, off):
                self.run.append(f"{out}[{off}:{off + size}].copy_({self.tensor(x)}.reshape(-1))")
            off += size
        if not any(self._placed.get(x.id, (None,))[0] == n.id for x in n.inputs):
            return
        self.run.append(f"# (pieces written in place: {', '.join(x.name for x in n.inputs if x.id in self._placed)})")

    # --- helpers ------------------------------------------------------------------------
    def kernel(self, text_with_name: str, label: str, use: str, sig: Optional[dict] = None,
               aot: Optional[tuple] = None) -> str:
        body = text_with_name
        k = self.kernels.get(body)
        if k is None:
            name = f"k{len(self.kernels)}_{label}"
            k = self.kernels[body] = _Kernel(name, body.replace("{NAME}", name))
        k.uses.append(use)
        if sig is not None:
            k.sig = sig
        if aot is not None and aot not in k.aot:
            k.aot.append(aot)
        return k.name

    def buffer(self, n: Node) -> str:
        if n.id in self.var:          # a concat_flat whose pieces already made it
            return self.var[n.id]
        if n.id in self._inplace:
            self.var[n.id] = self._inplace[n.id]
            return self.var[n.id]
        v = f"t{n.id}"
        if n.id in self._placed:
            cid, off = self._placed[n.id]
            cat = self.byid[cid]
            if cid not in self.var:
                self.var[cid] = f"t{cid}"
                self.make.append(f"t{cid} = torch.empty({_shape_src(cat.shape)}, device=dev, "
                                 f"dtype={TORCH_DTYPE_SRC[cat.dtype]})")
            self.make.append(f"{v} = t{cid}[{off}:{off + math.prod(n.shape)}].view({_shape_src(n.shape)})"
                             f"  # {n.name}'s place in {cat.name}")
            self.var[n.id] = v
            return v
        self.make.append(f"{v} = torch.empty({_shape_src(n.shape)}, device=dev, dtype={TORCH_DTYPE_SRC[n.dtype]})")
        self.var[n.id] = v
        return v

    def tensor(self, n: Node) -> str:
        """A run-side expression for node n's value as a tensor."""
        if n.id in self.var:
            return self.var[n.id]
        if n.op == "const":
            v = f"c{n.id}"
            self.make.append(f"{v} = torch.full((), {_lit(n.attrs['value'])}, device=dev, "
                             f"dtype={TORCH_DTYPE_SRC[n.dtype]})")
            self.var[n.id] = v
            return v
        raise KeyError(n)

    def describe(self, ns: list[Node]) -> str:
        locs = sorted({_loc(n) for n in ns if n.loc}, key=lambda s: (len(s), s))
        layers = sorted({n.layer for n in ns if n.layer})
        ops = ", ".join(f"{n.name} {n.op}" for n in ns)
        extra = ""
        if layers:
            extra += " [" + ", ".join(layers) + "]"
        if locs:
            extra += " at " + ", ".join(locs)
        return ops + extra

    # --- generation ---------------------------------------------------------------------
    def generate(self) -> str:
        for name, n in self.g.inputs.items():
            self.var[n.id] = _ident(name)
        for gr in self.groups:
            ns = [self.byid[i] for i in gr["nodes"]]
            self.run.append(f"# group {gr['id']} ({gr['kind']}): {self.describe(ns)}")
            kind = gr["kind"]
            if kind == "elementwise":
                self.pointwise(gr, ns)
            elif kind == "matmul":
                self.matmul(gr, ns)
            elif kind == "view":
                n = ns[0]
                self.var[n.id] = f"v{n.id}"
                src = self.tensor(n.inputs[0])
                if n.op == "slice_flat":
                    o = n.attrs["offset"]
                    src = f"{src}[{o}:{o + math.prod(n.shape)}]"
                self.run.append(f"v{n.id} = {src}.view({_shape_src(n.shape)})")
            elif ns[0].op == "concat_flat":
                self.concat(ns[0])
            else:
                self.single(ns[0])
        # updates not written in place are copied at the end
        for out_name, in_name in self.g.updates.items():
            p = self.g.outputs[out_name]
            if self._inplace.get(p.id) != _ident(in_name):
                src = self.tensor(p) if p.op != "input" else self.var[p.id]
                if src != _ident(in_name):
                    self.run.append(f"{_ident(in_name)}.copy_({src})  # update {in_name}")
        rets = []
        for out_name, n in self.g.outputs.items():
            if out_name in self.g.updates:
                rets.append(_ident(self.g.updates[out_name]))
            elif n.op == "input":
                rets.append(self.var[n.id])
            else:
                rets.append(self.tensor(n))
        return self.assemble(rets)

    def assemble(self, rets: list[str]) -> str:
        g = self.g
        args = ", ".join(_ident(k) for k in g.inputs)
        n_launch = sum(len(k.uses) for k in self.kernels.values())
        src = [f"# generated by nncompile (triton backend) from graph '{g.name}': "
               f"{len(self.nodes)} nodes, {len(self.groups)} groups, {len(self.kernels)} distinct "
               f"generated kernels ({n_launch} launches of them)",
               "# memory traffic is the compulsory DRAM bytes per launch at batch size B",
               "import torch", "import triton", "import triton.language as tl", "",
               "from nncompile.backends.triton import kernels as K", "from nncompile.backends.triton import rt", ""]
        if self.uses_helpers:
            src.append("from nncompile.backends.triton.kernels import _tanh")
            src.append(HELPERS)
        for k in self.kernels.values():
            src.append("")
            src.append(f"# {k.name}: used by {len(k.uses)} group(s)")
            for u in k.uses:
                src.append("#   " + u)
            src.append(k.text.strip("\n"))
            src.append("")
        src += ["", "PREC = rt.env_precision()  # matmul input precision", "", "",
                "def make(B, dev):", "    # buffers for batch size B (made once per batch size)"]
        src += ["    " + l for l in self.make] or ["    pass"]
        src += ["", f"    def run({args}):"]
        src += ["        " + l for l in self.run] or ["        pass"]
        src += [f"        return ({', '.join(rets)}{',' if len(rets) == 1 else ''})", "", "    return run", ""]
        return "\n".join(src)

    def pointwise(self, gr: dict, ns: list[Node]) -> None:
        ids = set(gr["nodes"])
        shape = gr["shape"]
        numel = _prod(shape) if shape else "1"
        params: list[str] = []     # kernel parameter names
        callargs: list[str] = []   # run-side arguments
        loads: list[str] = []
        val: dict[Any, str] = {}
        kv: dict[int, str] = {}
        block_vars: set[str] = set()
        traffic_full, traffic_small = 0, []
        gid = gr["id"]
        types: dict[str, str] = {}

        def operand(i: Node, dim_map=None) -> str:
            nonlocal traffic_full
            if i.id in ids:
                return kv[i.id]
            if i.op == "const":
                return _lit(i.attrs["value"]) if i.dtype != "i64" else str(int(i.attrs["value"]))
            if i.op == "input" and self.host.get(i.attrs["name"]) == "float":
                key = ("s", i.id)
                if key not in val:
                    p = f"s{len(params)}"
                    params.append(p)
                    types[p] = "fp32" if i.dtype == "f32" else "fp64"
                    callargs.append(self.var[i.id])
                    val[key] = p
                return val[key]
            dm = tuple(dim_map) if dim_map is not None else tuple(_bcast_map(shape, i.shape))
            key = ("t", i.id, dm)
            if key in val:
                return val[key]
            p = f"in{len(params)}"
            params.append(p)
            types[p] = PTR[i.dtype]
            callargs.append(self.tensor(i))
            v = f"x{len(val)}"
            if all(d == 1 for d in i.shape):
                loads.append(f"{v} = tl.load({p})")
                traffic_small.append(f"{i.dtype}[]")
            else:
                idx = _index_expr(shape, i.shape, list(dm))
                if idx is None:
                    idx = "offs"
                    traffic_full += ITEMSIZE[i.dtype]
                else:
                    traffic_small.append(i.type_str)
                loads.append(f"{v} = tl.load({p} + {idx}, mask=mask, other=0)")
                block_vars.add(v)
            val[key] = v
            return v

        body: list[str] = []
        for j, n in enumerate(ns):
            v = f"v{j}"
            if n.op == "unreduce":
                gin, x = n.inputs
                a = operand(gin, _unreduce_map(shape, gin.shape, n.attrs["axes"], n.attrs["keepdims"]))
                expr = a
                if n.attrs["mean"]:
                    axes = norm_axes(n.attrs["axes"], len(x.shape))
                    expr = f"{a} * (1.0 / ({_prod([x.shape[k] for k in axes]) if axes else '1'}))"
                if a in block_vars:
                    block_vars.add(v)
            elif n.op == "dropout_mask":
                rng = n.inputs[1]
                p = f"seed{len(params)}"
                params.append(p)
                types[p] = "i32"
                if self.host.get(rng.attrs.get("name", "")) == "ints":
                    callargs.append(f"rt.mix({self.var[rng.id]}, {int(n.attrs['stream'])})")
                else:
                    callargs.append(f"rt.mix(rt.host_ints({self.tensor(rng)}), {int(n.attrs['stream'])})")
                rate = float(n.attrs["rate"])
                scale = 0.0 if rate >= 1.0 else 1.0 / (1.0 - rate)
                expr = f"tl.where(tl.rand({p}, offs) >= {_lit(rate)}, {_lit(scale)}, 0.0)"
                block_vars.add(v)
            else:
                a = [operand(i) for i in n.inputs]
                if n.op in ("tanh", "gelu", "gelu_grad"):
                    self.uses_helpers = True
                expr = _pw_expr(n, a)
                if any(x in block_vars for x in a):
                    block_vars.add(v)
            kv[n.id] = v
            body.append(f"{v} = {expr}  # {n.op}")
        stores = []
        outs = []
        for j, oid in enumerate(gr["outputs"]):
            n = self.byid[oid]
            p = f"out{j}"
            outs.append(p)
            types[p] = PTR[n.dtype]
            val_ = kv[oid]
            if val_ not in block_vars:
                val_ = f"tl.zeros([BLOCK], {TL_DTYPE[n.dtype]}) + {val_}"
            stores.append(f"tl.store({p} + offs, ({val_}).to({p}.dtype.element_ty), mask=mask)")
        sig = ", ".join(outs + params + ["n", "B", "BLOCK: tl.constexpr"])
        seeds = [p for p in params if p.startswith("seed")]
        # a new Philox seed every step: never let Triton specialise on its value
        deco = f"@triton.jit(do_not_specialize={seeds!r})" if seeds else "@triton.jit"
        lines = [deco, f"def {{NAME}}({sig}):",
                 "    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)",
                 "    mask = offs < n"]
        lines += ["    " + l for l in loads + body + stores]
        text = "\n".join(lines) + "\n"
        out_bytes = sum(ITEMSIZE[self.byid[o].dtype] for o in gr["outputs"])
        small = f" + broadcast reads of {', '.join(traffic_small)}" if traffic_small else ""
        use = (f"group {gid}: {self.describe(ns)}\n#     memory: {traffic_full + out_bytes} bytes/element x "
               f"{numel} elements{small} ({traffic_full} B read, {out_bytes} B written per element)")
        from . import rt
        sig = {p: types[p] for p in outs + params}
        sig.update(n="i32", B="i32")
        blk, w = rt.pointwise_block(_aot_int(numel), interp=False)
        kname = self.kernel(text, "pointwise", use, sig, ((("BLOCK", blk),), w))
        outvars = [self.buffer(self.byid[o]) for o in gr["outputs"]]
        # launch sizes are named after the group (g<id>); row kernels after their node
        self.make.append(f"n_g{gid} = {numel}")
        self.make.append(f"blk_g{gid}, w_g{gid} = rt.pointwise_block(n_g{gid})")
        self.make.append(f"grid_g{gid} = (triton.cdiv(n_g{gid}, blk_g{gid}),)")
        self.run.append(f"{kname}[grid_g{gid}]({', '.join(outvars + callargs)}, n_g{gid}, B, "
                        f"BLOCK=blk_g{gid}, num_warps=w_g{gid})")

    def matmul(self, gr: dict, ns: list[Node]) -> None:
        mm = ns[0]
        epi = gr.get("epilogue", {})
        root = ns[-1]
        a, b = mm.inputs
        out = self.buffer(root)
        kw = [f"trans_a={bool(mm.attrs.get('ta'))}", f"trans_b={bool(mm.attrs.get('tb'))}"]
        if epi.get("bias") is not None:
            kw.append(f"bias={self.tensor(self.byid[epi['bias']])}")
        if epi.get("activation"):
            kw.append(f"activation={epi['activation']!r}")
        if epi.get("mask") is not None:
            kw.append(f"relu_mask={self.tensor(self.byid[epi['mask']])}")
        m_, n_ = root.shape
        k_ = a.shape[0] if mm.attrs.get("ta") else a.shape[1]
        self.run.append(f"#   M,N,K = {_dim(m_)},{_dim(n_)},{_dim(k_)}: 2*M*N*K flops; memory: reads "
                        f"{a.type_str} + {b.type_str}, writes {root.type_str}")
        self.run.append(f"K.matmul({self.tensor(a)}, {self.tensor(b)}, {', '.join(kw)}, out={out}, precision=PREC)")

    def row_launch(self, n: Node, template: str, label: str, ptrs: list[str], rows: str, cols: str,
                   traffic: str, blocks: str = "row_blocks", extra_args: str = "",
                   ptr_nodes: Optional[list] = None) -> None:
        from . import rt
        names = re.search(r"def \{NAME\}\(([^)]*)\)", template).group(1)
        args = [a.strip() for a in names.split(",")]
        ptr_nodes = ptr_nodes if ptr_nodes is not None else list(n.inputs) + [n]
        sig = {}
        for a, pn in zip([a for a in args if a.endswith("_ptr")], ptr_nodes):
            sig[a] = PTR[pn.dtype]
        for a in args:
            if not a.endswith("_ptr") and ":" not in a:
                sig[a] = "fp32" if a == "div" else "i32"
        br, bc, w = getattr(rt, blocks)(_aot_int(rows), _aot_int(cols), interp=False)
        kname = self.kernel(template, label, f"{self.describe([n])}\n#     memory: {traffic}", sig,
                            ((("BLOCK_R", br), ("BLOCK_C", bc)), w))
        i = n.id
        self.make.append(f"br{i}, bc{i}, w{i} = rt.{blocks}({rows}, {cols})")
        self.make.append(f"grid{i} = (triton.cdiv({rows}, br{i}),)")
        self.run.append(f"{kname}[grid{i}]({', '.join(ptrs)}, {rows}, {cols}{extra_args}, "
                        f"BLOCK_R=br{i}, BLOCK_C=bc{i}, num_warps=w{i})")

    def single(self, n: Node) -> None:
        op = n.op
        ins = [self.tensor(i) if (i.op != "input" or i.attrs["name"] not in self.host) else None
               for i in n.inputs]
        if op in ("softmax", "log_softmax") and n.shape:
            out = self.buffer(n)
            r, c = (_prod(n.shape[:-1]) if len(n.shape) > 1 else "1"), _dim(n.shape[-1])
            t = ROW_SOFTMAX.format(name="{NAME}", body=SOFTMAX_BODY if op == "softmax" else LOG_SOFTMAX_BODY)
            self.row_launch(n, t, op, [ins[0], out], r, c, f"read + write {n.type_str}")
            return
        if op in ("softmax_xent", "softmax_xent_grad") and len(n.inputs[0].shape) == 2:
            out = self.buffer(n)
            z = n.inputs[0]
            r, c = _dim(z.shape[0]), _dim(z.shape[1])
            body = XENT_BODY if op == "softmax_xent" else XENT_GRAD_BODY
            t = ROW_XENT.format(name="{NAME}", body=body)
            g = ins[2] if op == "softmax_xent_grad" else ins[0]
            gn = n.inputs[2] if op == "softmax_xent_grad" else n.inputs[0]
            self.row_launch(n, t, op, [ins[0], ins[1], g, out], r, c,
                            f"read {z.type_str} + labels, write {n.type_str}",
                            ptr_nodes=[n.inputs[0], n.inputs[1], gn, n])
            return
        if op == "argmax" and n.inputs[0].shape:
            out = self.buffer(n)
            x = n.inputs[0]
            r = _prod(x.shape[:-1]) if len(x.shape) > 1 else "1"
            self.row_launch(n, ROW_ARGMAX.format(name="{NAME}"), op, [ins[0], out], r,
                            _dim(x.shape[-1]), f"read {x.type_str}, write {n.type_str}")
            return
        if op == "take_label" and len(n.inputs[0].shape) == 2:
            out = self.buffer(n)
            p = n.inputs[0]
            self.row_launch(n, ROW_TAKE.format(name="{NAME}"), op, [ins[0], ins[1], out],
                            _dim(p.shape[0]), _dim(p.shape[1]), f"gather {n.type_str} from {p.type_str}")
            return
        if op == "onehot" and len(n.shape) == 2:
            out = self.buffer(n)
            self.row_launch(n, ROW_ONEHOT.format(name="{NAME}"), op, [ins[0], out],
                            _dim(n.shape[0]), _dim(n.shape[1]), f"write {n.type_str}")
            return
        if op in REDUCE_OPS and n.dtype in ("f32", "f64"):
            x = n.inputs[0]
            if op == "reduce_like":
                axes = reduce_like_axes(x.shape, n.shape)
            else:
                axes = norm_axes(n.attrs["axes"], len(x.shape))
            plan = _reduce_plan(x.shape, axes)
            if plan is not None:
                out = self.buffer(n)
                init, combine, final = REDUCE_OPS[op]
                div = "1.0"
                if op == "mean":
                    div = f"float({_prod([x.shape[k] for k in axes]) if axes else '1'})"
                traffic = f"read {x.type_str}, write {n.type_str}"
                if plan[0] == "row":
                    t = ROW_REDUCE.format(
                        name="{NAME}", init=init, combine=combine, final=final.format(ax=1))
                    self.row_launch(n, t, f"row_{op}", [ins[0], out], plan[1], plan[2], traffic,
                                    blocks="loop_row_blocks", extra_args=f", {div}")
                else:
                    t = COL_REDUCE.format(
                        name="{NAME}", init=init, combine=combine, final=final.format(ax=0))
                    from . import rt
                    bm, bn, _, _, w = rt.col_blocks(_aot_int(plan[1]), _aot_int(plan[2]), interp=False)
                    sig = {"x_ptr": PTR[x.dtype], "out_ptr": PTR[n.dtype], "M": "i32", "N": "i32",
                           "ROWS": "i32", "div": "fp32"}
                    kname = self.kernel(t, f"col_{op}", f"{self.describe([n])}\n#     memory: {traffic}",
                                        sig, ((("BLOCK_M", bm), ("BLOCK_N", bn)), w))
                    i, M, N = n.id, plan[1], plan[2]
                    self.make.append(f"bm{i}, bn{i}, sp{i}, rows{i}, w{i} = rt.col_blocks({M}, {N})")
                    self.make.append(f"part{i} = torch.empty((sp{i}, {N}), device=dev, dtype=torch.float32)"
                                     f" if sp{i} > 1 else None")
                    self.make.append(f"bm{i}b = rt.clamp(rt.np2(sp{i}), 1, 64)")
                    self.run.append(f"if sp{i} == 1:")
                    self.run.append(f"    {kname}[(triton.cdiv({N}, bn{i}), 1)]({ins[0]}, {out}, {M}, {N}, "
                                    f"rows{i}, {div}, BLOCK_M=bm{i}, BLOCK_N=bn{i}, num_warps=w{i})")
                    self.run.append("else:  # split rows over programs, then reduce the partials")
                    self.run.append(f"    {kname}[(triton.cdiv({N}, bn{i}), sp{i})]({ins[0]}, part{i}, {M}, "
                                    f"{N}, rows{i}, 1.0, BLOCK_M=bm{i}, BLOCK_N=bn{i}, num_warps=w{i})")
                    self.run.append(f"    {kname}[(triton.cdiv({N}, bn{i}), 1)](part{i}, {out}, sp{i}, {N}, "
                                    f"sp{i}, {div}, BLOCK_M=bm{i}b, BLOCK_N=bn{i}, num_warps=w{i})")
                return
        # no Triton lowering: the op's reference semantics on the host
        out = self.buffer(n)
        opdef = OPS[op]
        attrs = {k: n.attrs[k] for k in opdef.attrs if k in n.attrs}
        args = [a if a is not None else self.var[i.id] for a, i in zip(ins, n.inputs)]
        self.fallbacks.append(f"{n.name} {op} {n.type_str}" + (f" ({_loc(n)})" if n.loc else ""))
        self.run.append(f"rt.fallback({op!r}, {attrs!r}, {out}, {', '.join(args)})  # FALLBACK (host)")


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
    from . import rt
    key = hashlib.sha256((source + f"|interp={rt.INTERP}").encode()).hexdigest()[:20]
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
    """Every generated kernel of `g` with the GPU launch configurations the
    program would use (B = AOT_B), as specs for aot.compile_all. Must run in a
    process without TRITON_INTERPRET (kernels must be real JITFunctions)."""
    gen = _Gen(g)
    source = gen.generate()
    ns = load_source(source, g.name)
    specs = []
    for k in gen.kernels.values():
        for consts, warps in k.aot:
            specs.append(dict(name=f"{g.name}.{k.name}", kernel=ns[k.name], signature=k.sig,
                              constexprs=dict(consts), num_warps=warps, num_stages=3))
    return specs


def compile_graph(g: Graph, cuda_graphs: Optional[bool] = None) -> TritonProgram:
    """Generate and load the Triton module of `g`.

    cuda_graphs: capture the whole step in a CUDA graph after a warm-up call and
    replay it (one launch instead of one per kernel). Default: on when a CUDA GPU
    is used, unless NNCOMPILE_CUDA_GRAPHS=0. It needs every input as a device
    tensor (step and lr are read by the kernels, not passed as host numbers), so
    graphs with dropout (whose Philox seed is mixed on the host each step) are
    not captured."""
    if cuda_graphs is None:
        cuda_graphs = os.environ.get("NNCOMPILE_CUDA_GRAPHS", "1") not in ("0", "") and not _interpreting()
    if cuda_graphs and any(n.op == "dropout_mask" for n in g.nodes):
        cuda_graphs = False
    gen = _Gen(g, host_scalars=not cuda_graphs)
    source = gen.generate()
    ns = load_source(source, g.name)
    prog = TritonProgram(g, source, ns, gen.fallbacks, [k.name for k in gen.kernels.values()], gen.host)
    prog.cuda_graphs = cuda_graphs
    return prog


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
