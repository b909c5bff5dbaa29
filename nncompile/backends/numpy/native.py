"""The native CPU path of the NumPy backend: fused loops in C where NumPy cannot fuse.

NumPy runs one pass over memory per op. For a fusion group (the Adam update
is 12 ops over every parameter) this path writes one C loop that reads each
operand once and keeps the intermediate values in registers; likewise the
leading-axis reductions (bias gradients, batch statistics) and the softmax
cross-entropy rows. GEMMs stay with BLAS, and the loops are serial: OpenMP
threads fighting OpenBLAS's made a W1 step 4x slower (docs/backends.md).

Route: readable C compiled by the system C compiler (`$CC`, cc, gcc, clang),
else by `python -m ziglang cc` when the `ziglang` wheel is installed
(`pip install 'nncompile[native]'`), with -O2 and loop vectorization on GCC
(its -O3 miscompiled two loop nests; see FLAGS), -O3 on clang, -march=native
-ffp-contract=off -fno-math-errno (no FMA contraction: results equal NumPy's
except in the last bit of exp/log/tanh). The shared object is cached on disk
by the hash of its source, the compiler's identity and the flags, so a second
process pays only the load. Without a compiler everything runs on NumPy and
the program says so once.

The generated C carries each group's nodes, layers and `.nn` lines in
comments; `nncompile dump --stage code` prints it after the Python module.
Calls go through ctypes with the buffers' addresses taken once per batch size
in `make(B)`; the graph inputs' addresses are taken when the array object
changes (`support.Pointers`).
"""
from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from typing import Optional

from ...ir.graph import B, Node
from ...ir.ops import norm_axes, sum_to_axes
from ..common import dim, literal, numel_src
from . import c_lowering

# GCC: -O2 with loop vectorization (the dynamic cost model), not -O3. GCC 12.2's -O3
# miscompiled two of the generated loop nests (an im2col element loop and an average
# pool over a 2-channel chunk with one-sided padding: wrong values, found by the
# hypothesis geometry test in tests/backends/test_native.py); bisected, no single
# -O3 option added to -O2 reproduces it, and these flags run the measured loops as
# fast. Clang (and `zig cc`) keep -O3.
COMMON_FLAGS = ["-march=native", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared", "-std=c99"]
GCC_OPT = ["-O2", "-ftree-loop-vectorize", "-fvect-cost-model=dynamic"]
CLANG_OPT = ["-O3"]
FLAGS = GCC_OPT + COMMON_FLAGS          # for the identity of a GCC build (tests, docs)


def flags_for(identity: str) -> list[str]:
    """The flags for the compiler whose `--version` line is `identity`."""
    return (CLANG_OPT if "clang" in identity.lower() else GCC_OPT) + COMMON_FLAGS
C_TYPE = {"f32": "float", "f64": "double"}
C_PTR = {**C_TYPE, "i64": "int64_t"}
CTYPES = {"float *": ctypes.c_void_p, "double *": ctypes.c_void_p, "int64_t *": ctypes.c_void_p,
          "double": ctypes.c_double, "long": ctypes.c_long, "uint32_t": ctypes.c_uint32}
MIN_ELEMENTS = 256     # smaller groups stay on NumPy: a ctypes call costs about two NumPy calls
MIN_OPS = 3            # ... unless they have this many ops (W3's Adam over 132 parameters: 12 calls)

_compiler_lock = threading.Lock()
_compiler: Optional[list] = None
_probed = False
_said = False


def find_compiler() -> Optional[list[str]]:
    """The C compiler command to use, or None (probed once per process)."""
    global _compiler, _probed
    with _compiler_lock:
        if _probed:
            return _compiler
        _probed = True
        cands = [os.environ["CC"]] if os.environ.get("CC") else []
        cands += [c for c in ("cc", "gcc", "clang") if shutil.which(c)]
        for c in cands:
            if _works([c]):
                _compiler = [c]
                return _compiler
        try:
            import ziglang  # noqa: F401
            if _works([sys.executable, "-m", "ziglang", "cc"]):
                _compiler = [sys.executable, "-m", "ziglang", "cc"]
        except ImportError:
            pass
        return _compiler


def _works(cmd: list[str]) -> bool:
    try:
        r = subprocess.run(cmd + ["--version"], capture_output=True, timeout=60)
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def unavailable_note() -> Optional[str]:
    """A one-time note for a process that has no C compiler (None once said, or when there is one)."""
    global _said
    if find_compiler() is not None or _said:
        return None
    _said = True
    return ("nncompile: no C compiler found, so the CPU runs on NumPy alone (slower); install one "
            "(e.g. gcc) or `pip install 'nncompile[native]'` (a compiler in a wheel)")


def _identity(cmd: list[str]) -> str:
    r = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=60)
    cpu = platform.machine() + platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu += next((line for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return r.stdout.splitlines()[0] if r.stdout else " ".join(cmd) + cpu


_identities: dict[str, str] = {}
_loaded: dict[str, ctypes.CDLL] = {}


def cache_dir() -> str:
    root = os.environ.get("NNCOMPILE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "nncompile")
    d = os.path.join(root, "native")
    try:
        os.makedirs(d, exist_ok=True)
        return d
    except OSError:
        d = os.path.join(tempfile.gettempdir(), "nncompile_native")
        os.makedirs(d, exist_ok=True)
        return d


def load(source: str) -> ctypes.CDLL:
    """Compile `source` (or take it from the disk cache) and load it."""
    cmd = find_compiler()
    if cmd is None:
        raise RuntimeError("no C compiler")
    key_cmd = " ".join(cmd)
    if key_cmd not in _identities:
        _identities[key_cmd] = _identity(cmd)
    flags = flags_for(_identities[key_cmd])
    key = hashlib.sha256("\0".join([source, _identities[key_cmd], " ".join(flags)]).encode()).hexdigest()[:24]
    lib = _loaded.get(key)
    if lib is not None:
        return lib
    path = os.path.join(cache_dir(), f"k_{key}.so")
    if not os.path.exists(path):
        with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
            src, out = os.path.join(tmp, "k.c"), os.path.join(tmp, "k.so")
            with open(src, "w") as f:
                f.write(source)
            r = subprocess.run(cmd + flags + [src, "-o", out, "-lm"], capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise RuntimeError(f"the C compiler failed:\n{r.stderr[-4000:]}")
            os.replace(out, path)       # atomic: a concurrent process sees all of it or none
    lib = _loaded[key] = ctypes.CDLL(path)
    return lib


# --- the generator ------------------------------------------------------------------------------

class _Loop:
    """One fused pointwise group written as a C loop: what `c_lowering` asks for."""

    def __init__(self, kernels: "NativeKernels", gen, gr: dict):
        self.kernels, self.gen, self.gr = kernels, gen, gr
        self.shape = tuple(gr["shape"])
        self.dtype = gen.byid[gr["root"]].dtype
        self.T, self.f = C_TYPE[self.dtype], ("f" if self.dtype == "f32" else "")
        self.ids = set(gr["nodes"])
        self.params: list[str] = []       # C parameters
        self.args: list[str] = []         # Python arguments of the call
        self.loads: dict = {}
        self.split = None
        self.node: Optional[Node] = None
        self.uses_flat = False
        self.body: Optional[list[str]] = None

    def python_scalar(self, expr: str) -> str:
        """A double parameter whose value is a Python expression of B (a 1/count)."""
        p = f"s{len(self.params)}"
        self.params.append(f"double {p}")
        self.args.append(("expr", expr))
        return p

    def flat(self) -> str:
        self.uses_flat = True
        return "(i * nc + j)"

    def first(self, rng: Node, n: Node) -> str:
        """The global flat index of the node's first element: a data-parallel shard's offset."""
        p = f"r{len(self.params)}"
        self.params.append(f"long {p}")
        self.args.append(("first", rng, math.prod(n.shape[1:])))
        return p

    def seed(self, rng: Node, stream: int) -> str:
        p = f"key{len(self.params)}"
        self.params.append(f"uint32_t {p}")
        self.args.append(("mix", rng, stream))
        return p

    def operand(self, i: Node, dim_map=None) -> Optional[str]:
        """The C expression of operand i at the loop's element, or None when its
        broadcast pattern does not fit the loop's row/column split."""
        gen = self.gen
        if i.id in self.ids:
            return f"v{i.id}"
        if i.op == "const":
            v = float(i.attrs["value"])
            return f"(({self.T}){literal(v)})" if math.isfinite(v) else \
                {math.inf: "INFINITY", -math.inf: "-INFINITY"}.get(v, "NAN")
        if i.shape == ():      # a Python float or a 0-d array: passed by value
            key = ("s", i.id)
            if key not in self.loads:
                p = f"s{len(self.params)}"
                self.params.append(f"double {p}")
                self.args.append(("value", i))
                self.loads[key] = f"(({C_TYPE.get(i.dtype, 'double')}){p})"
            return self.loads[key]
        dm = dim_map if dim_map is not None else _bcast_map(self.shape, i.shape)
        pattern = tuple(dm[k] is not None and self.shape[k] != 1 and i.shape[dm[k]] != 1
                        for k in range(len(self.shape)))
        key = ("p", i.id, pattern)
        if key not in self.loads:
            index = _index(pattern, self.split)
            if index is None:
                return None
            p = f"p{len(self.params)}"
            self.params.append(f"const {C_PTR[i.dtype]} *{p}")
            self.args.append(("pointer", i))
            self.loads[key] = f"{p}[{index}]"
        return self.loads[key]

    def arg(self, k: int) -> Optional[str]:
        return self.operand(self.node.inputs[k])


def _bcast_map(out_shape, in_shape) -> list:
    lead = len(out_shape) - len(in_shape)
    return [None if k < lead or in_shape[k - lead] == 1 and out_shape[k] != 1 else k - lead
            for k in range(len(out_shape))]


def _index(pattern: tuple, split: int) -> Optional[str]:
    """Index of an operand (read where `pattern` is True, broadcast elsewhere) in a
    loop over rows (dims before `split`) and columns (dims from it)."""
    rows, cols = pattern[:split], pattern[split:]
    if (any(rows) and not all(rows)) or (any(cols) and not all(cols)):
        return None
    r, c = bool(rows) and all(rows), bool(cols) and all(cols)
    return {(True, True): "i * nc + j", (True, False): "i", (False, True): "j", (False, False): "0"}[(r, c)]


def _splits(shape) -> list[int]:
    """Row/column splits to try, the plainest first: one flat loop (split 0: every
    dimension a column, so the inner loop, the one GCC vectorizes, is the whole
    array; nr = 1), then 2-level loops with the rows outside."""
    return [0] + [k for k in range(len(shape) - 1, 0, -1)]


class NativeKernels:
    """The C functions of one graph, collected while the Python module is written."""

    def __init__(self):
        self.functions: list[str] = []
        self.names: list[str] = []
        self.signatures: dict[str, list] = {}    # function -> ctypes argument types
        self.uses_philox = False

    def _add(self, name: str, params: list[str], text: str) -> None:
        self.functions.append(text)
        self.names.append(name)
        self.signatures[name] = [CTYPES["double *" if "*" in p else p.rsplit(" ", 1)[0].replace("const ", "")]
                                 for p in params]

    def plan_group(self, gen, gr: dict) -> Optional[_Loop]:
        """A native loop for elementwise group `gr`, or None to keep it on NumPy.
        Reads only shapes: nothing is written until `emit_group`."""
        ns = [gen.byid[i] for i in gr["nodes"]]
        shape = tuple(gr["shape"])
        if not shape or any(n.dtype not in C_TYPE or n.op not in c_lowering.C_EXPR for n in ns):
            return None
        # a small group is still worth one call when it replaces MIN_OPS NumPy calls
        worth = _big(shape) or len(ns) >= MIN_OPS
        if len({n.dtype for n in ns}) != 1 or not worth or any(gen.hoisted_node(n) for n in ns):
            return None
        for split in _splits(shape):
            loop = _Loop(self, gen, gr)
            loop.split = split
            loop.body = self._body(loop, ns)
            if loop.body is not None:
                return loop
        return None

    def _body(self, loop: _Loop, ns: list[Node]) -> Optional[list[str]]:
        lines = []
        for n in ns:
            loop.node = n
            if n.op == "unreduce":
                a = [loop.operand(n.inputs[0], _unreduce_map(n))]
            elif n.op == "dropout_mask":
                a = []
                self.uses_philox = True
            else:
                a = [loop.arg(k) for k in range(len(n.inputs))]
            if any(x is None for x in a):
                return None
            lines.append(f"const {loop.T} v{n.id} = {c_lowering.c_expr(loop, n, a)};  /* {n.name} {n.op} */")
        return lines

    def emit_group(self, gen, loop: _Loop) -> str:
        """Write the planned loop's C function; returns the Python line that calls it."""
        gr, body = loop.gr, loop.body
        ns = [gen.byid[i] for i in gr["nodes"]]
        name = f"g{gr['id']}"
        outs = []
        for oid in gr["outputs"]:
            n = gen.byid[oid]
            p = f"o{len(outs)}"
            outs.append((p, n))
        params = [f"{loop.T} *{p}" for p, _ in outs] + loop.params + ["long nr", "long nc"]
        stores = [f"{p}[i * nc + j] = v{n.id};" for p, n in outs]
        rows, cols = loop.shape[:loop.split], loop.shape[loop.split:]
        src = [f"/* group {gr['id']}: {gen.describe(ns)} */",
               f"void {name}({', '.join(params)}) {{",
               "    for (long i = 0; i < nr; i++) {",
               "        #pragma GCC ivdep",
               "        for (long j = 0; j < nc; j++) {"]
        src += ["            " + line for line in body + stores]
        src += ["        }", "    }", "}"]
        self._add(name, params, "\n".join(src))
        for _, n in outs:
            gen.var[n.id] = gen.buffer(n)
        gr_node = ns[-1]

        def py(arg):
            kind, node = arg[0], arg[1]
            if kind == "mix":
                return f"_s.mix({gen.value(node)}, {arg[2]})"
            if kind == "first":
                return f"int({gen.value(node)}[2]) * {arg[2]}"
            if kind == "expr":
                return gen.make_value(gr_node, f"c{len(gen.make)}_", node)
            return f"float({gen.value(node)})" if kind == "value" else gen.pointer(node)
        call_args = [gen.pointer(n) for _, n in outs] + [py(a) for a in loop.args] + [
            numel_src(rows) if rows else "1", numel_src(cols) if cols else "1"]
        return f"_k.{name}({', '.join(call_args)})"

    def lowers_single(self, n: Node) -> bool:
        """Whether `reduction` / `softmax_xent` lower this node (read-only check)."""
        if n.op in ("sum", "mean", "reduce_like"):
            x = n.inputs[0]
            if n.dtype not in C_TYPE or x.dtype != n.dtype:
                return False
            axes = sum_to_axes(x.shape, n.shape) if n.op == "reduce_like" else norm_axes(n.attrs["axes"],
                                                                                          len(x.shape))
            return bool(axes) and tuple(axes) == tuple(range(len(axes))) and _big(x.shape)
        if n.op in ("softmax_xent", "softmax_xent_grad"):
            z = n.inputs[0]
            return len(z.shape) == 2 and z.dtype in C_TYPE and _big(z.shape)
        return False

    # --- reductions and rows --------------------------------------------------------------
    def reduction(self, gen, n: Node) -> str:
        """A leading-axis sum/mean (bias gradients, batch statistics, the mean loss)."""
        x = n.inputs[0]
        axes = sum_to_axes(x.shape, n.shape) if n.op == "reduce_like" else norm_axes(n.attrs["axes"], len(x.shape))
        k = len(axes)
        T = C_TYPE[n.dtype]
        name = f"r{n.id}"
        scale = "" if n.op != "mean" else f"    for (long j = 0; j < nc; j++) out[j] *= ({T})(1.0 / (double)nr);\n"
        self._add(name, [f"{T} *out", f"const {T} *x", "long nr", "long nc"], 
            f"/* {n.name} {n.op} over the leading axes {tuple(axes)}: {gen.describe([n])} */\n"
            f"void {name}({T} *out, const {T} *x, long nr, long nc) {{\n"
            f"    for (long j = 0; j < nc; j++) out[j] = x[j];\n"
            f"    for (long i = 1; i < nr; i++) {{\n"
            f"        const {T} *row = x + i * nc;\n"
            f"        #pragma GCC ivdep\n"
            f"        for (long j = 0; j < nc; j++) out[j] += row[j];\n"
            f"    }}\n{scale}}}")
        return (f"_k.{name}({gen.pointer(n)}, {gen.pointer(x)}, {numel_src(x.shape[:k])}, "
                f"{numel_src(x.shape[k:]) if x.shape[k:] else '1'})")

    def softmax_xent(self, gen, n: Node, probs: str) -> str:
        """softmax_xent (loss per row; the probabilities kept for the gradient) or its gradient."""
        z, y = n.inputs[:2]
        T, f = C_TYPE[z.dtype], ("f" if z.dtype == "f32" else "")
        name = f"x{n.id}"
        if n.op == "softmax_xent":
            self._add(name, [f"{T} *loss", f"{T} *probs", f"const {T} *z", "const int64_t *y", "long nr", "long nc"],
                      
                f"/* {n.name} softmax_xent: {gen.describe([n])} */\n"
                f"void {name}({T} *loss, {T} *probs, const {T} *z, const int64_t *y, long nr, long nc) {{\n"
                f"    for (long i = 0; i < nr; i++) {{\n"
                f"        const {T} *zi = z + i * nc; {T} *pi = probs + i * nc; {T} mx = zi[0], s = 0;\n"
                f"        for (long j = 1; j < nc; j++) mx = zi[j] > mx ? zi[j] : mx;\n"
                f"        for (long j = 0; j < nc; j++) {{ pi[j] = exp{f}(zi[j] - mx); s += pi[j]; }}\n"
                f"        for (long j = 0; j < nc; j++) pi[j] /= s;\n"
                # a label outside [0, nc) gives NaN, never a read outside the row (the
                # runtime refuses such labels before a step: evaluation.check_batch)
                f"        loss[i] = (uint64_t)y[i] < (uint64_t)nc ? (log{f}(s) + mx) - zi[y[i]] : NAN;\n"
                f"    }}\n}}")
            return (f"_k.{name}({gen.pointer(n)}, {probs}, {gen.pointer(z)}, {gen.pointer(y)}, "
                    f"{dim(z.shape[0])}, {z.shape[1]})")
        dy = n.inputs[2]
        self._add(name, [f"{T} *out", f"const {T} *probs", "const int64_t *y", f"const {T} *dy", "long nr", "long nc"],
                  
            f"/* {n.name} softmax_xent_grad: {gen.describe([n])} */\n"
            f"void {name}({T} *out, const {T} *probs, const int64_t *y, const {T} *dy, long nr, long nc) {{\n"
            f"    for (long i = 0; i < nr; i++) {{\n"
            f"        const {T} *pi = probs + i * nc; {T} *oi = out + i * nc; const {T} g = dy[i];\n"
            f"        for (long j = 0; j < nc; j++) oi[j] = pi[j] * g;\n"
            f"        if ((uint64_t)y[i] < (uint64_t)nc) oi[y[i]] -= g;\n"
            f"        else for (long j = 0; j < nc; j++) oi[j] = NAN;\n"
            f"    }}\n}}")
        return (f"_k.{name}({gen.pointer(n)}, {probs}, {gen.pointer(y)}, {gen.pointer(dy)}, {dim(z.shape[0])}, "
                f"{z.shape[1]})")

    def bind(self, lib: ctypes.CDLL):
        """The loaded functions, as attributes (ctypes prototypes: the cheapest call)."""
        ns = type("NativeFunctions", (), {})()
        for name in self.names:
            setattr(ns, name, ctypes.CFUNCTYPE(None, *self.signatures[name])((name, lib)))
        return ns

    def source(self, graph_name: str) -> str:
        head = [f"/* generated by nncompile (native CPU path) from graph '{graph_name}' */",
                "#include <math.h>", "#include <stdint.h>", "#include <string.h>"]
        if self.uses_philox:
            head.append(c_lowering.PHILOX)
        head.append(c_lowering.ROUNDING)
        return "\n".join(head + [""] + ["\n".join([f, ""]) for f in self.functions])


def _unreduce_map(n: Node) -> list:
    axes = norm_axes(n.attrs["axes"], len(n.shape))
    m, j = [], 0
    for k in range(len(n.shape)):
        if k in axes:
            m.append(None)
            j += 1 if n.attrs["keepdims"] else 0
        else:
            m.append(j)
            j += 1
    return m


def _big(shape) -> bool:
    """Worth a native call: B-sized, or at least MIN_ELEMENTS."""
    return B in shape or math.prod(d for d in shape if d != B) >= MIN_ELEMENTS




# --- window ops: the data movement around the GEMMs ----------------------------------------------
# Geometry is baked into each function (shapes are static but for B). Loops
# run in the order the NumPy path adds, so results are the same to the bit
# (col2im: window offset (r, s) outermost; pooling gradients: window by window).

def _geometry(n: Node, image) -> dict:
    """The window geometry of node n over `image` [B, H, W, C] (a Node or a shape)."""
    from ...ir.windows import out_hw
    shape = tuple(image.shape if isinstance(image, Node) else image)
    (kh, kw), (sh, sw) = n.attrs["window"], n.attrs["strides"]
    (dh, dw), ((pt, _), (pl, _)) = n.attrs.get("dilation", (1, 1)), n.attrs["padding"]
    ho, wo = out_hw(shape[1], shape[2], n.attrs)
    return dict(H=shape[1], W=shape[2], C=shape[3], HO=ho, WO=wo, KH=kh, KW=kw, SH=sh, SW=sw, DH=dh, DW=dw,
                PT=pt, PL=pl)


def _defines(geo: dict) -> str:
    return "".join(f"    const long {k} = {v};\n" for k, v in geo.items())


class WindowKernels:
    """The C functions of the window ops (im2col, col2im, pooling) for one graph."""

    def __init__(self, kernels: NativeKernels):
        self.k = kernels

    def im2col(self, n: Node, image, dtype: str) -> str:
        """cols[b, oh, ow, r, s, c] = x[b, ih, iw, c] (0 outside the image): the name."""
        T, geo = C_TYPE[dtype], _geometry(n, image)
        name = f"im2col{n.id}"
        self.k._add(name, [f"{T} *cols", f"const {T} *x", "long nb"], (
            f"/* {n.name} {n.op}: the columns [B, Ho, Wo, kh, kw, C] of its input, padding as zeros */\n"
            f"void {name}({T} *cols, const {T} *x, long nb) {{\n{_defines(geo)}"
            f"    for (long b = 0; b < nb; b++) for (long oh = 0; oh < HO; oh++) for (long ow = 0; ow < WO; ow++)\n"
            f"    for (long r = 0; r < KH; r++) for (long s = 0; s < KW; s++) {{\n"
            f"        const long ih = oh * SH - PT + r * DH, iw = ow * SW - PL + s * DW;\n"
            f"        {T} *dst = cols + ((((b * HO + oh) * WO + ow) * KH + r) * KW + s) * C;\n"
            f"        if (ih < 0 || ih >= H || iw < 0 || iw >= W) memset(dst, 0, C * sizeof({T}));\n"
            f"        else memcpy(dst, x + ((b * H + ih) * W + iw) * C, C * sizeof({T}));\n"
            f"    }}\n}}"))
        return name

    def col2im(self, n: Node, image, dtype: str) -> str:
        """x = the sum of the window values cols [B, Ho, Wo, kh, kw, C] back in their places."""
        T, geo = C_TYPE[dtype], _geometry(n, image)
        name = f"col2im{n.id}"
        self.k._add(name, [f"{T} *x", f"const {T} *cols", "long nb"], (
            f"/* {n.name} {n.op}: window values [B, Ho, Wo, kh, kw, C] added back into the image */\n"
            f"void {name}({T} *x, const {T} *cols, long nb) {{\n{_defines(geo)}"
            f"    for (long i = 0; i < nb * H * W * C; i++) x[i] = 0;\n"
            f"    for (long r = 0; r < KH; r++) for (long s = 0; s < KW; s++)\n"
            f"    for (long b = 0; b < nb; b++) for (long oh = 0; oh < HO; oh++) for (long ow = 0; ow < WO; ow++) {{\n"
            f"        const long ih = oh * SH - PT + r * DH, iw = ow * SW - PL + s * DW;\n"
            f"        if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;\n"
            f"        {T} *dst = x + ((b * H + ih) * W + iw) * C;\n"
            f"        const {T} *src = cols + ((((b * HO + oh) * WO + ow) * KH + r) * KW + s) * C;\n"
            f"        for (long c = 0; c < C; c++) dst[c] += src[c];\n"
            f"    }}\n}}"))
        return name

    # The pooling loops run the window outside and a chunk of channels inside (the
    # layout is channels-last), so each inner loop is a contiguous, branch-free
    # vector loop; the state of a chunk (running max, first argmax) is a small array.
    CHUNK = 64

    def _window_loop(self, *passes: str, before: str = "", after: str = "") -> str:
        """The per-output-pixel loop over a chunk of channels (c0 .. c0 + nc; yo the
        pixel's offset in the output): `before`, then each of `passes` in a loop over
        the window elements inside the image (ih, iw; xo their channel offset in the
        input, k = r * KW + s), then `after`."""
        windows = "".join(
            f"        for (long r = 0; r < KH; r++) for (long s = 0; s < KW; s++) {{\n"
            f"            const long ih = oh * SH - PT + r, iw = ow * SW - PL + s, k = r * KW + s;\n"
            f"            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;\n"
            f"            const long xo = ((b * H + ih) * W + iw) * C + c0; (void)k;\n{body}"
            f"        }}\n" for body in passes)
        return (f"    for (long b = 0; b < nb; b++) for (long oh = 0; oh < HO; oh++) for (long ow = 0; ow < WO; ow++)\n"
                f"    for (long c0 = 0; c0 < C; c0 += {self.CHUNK}) {{\n"
                f"        const long nc = C - c0 < {self.CHUNK} ? C - c0 : {self.CHUNK};\n"
                f"        const long yo = ((b * HO + oh) * WO + ow) * C + c0;\n{before}{windows}{after}    }}\n")

    def pool(self, n: Node, image, dtype: str, is_max: bool) -> str:
        T, geo = C_TYPE[dtype], _geometry(n, image)
        name = f"pool{n.id}"
        N = self.CHUNK
        if is_max:   # NaN propagates (as torch's max pooling)
            before = f"        {T} acc[{N}];\n        for (long c = 0; c < nc; c++) acc[c] = -INFINITY;\n"
            body = ("            for (long c = 0; c < nc; c++) { const " + T + " v = x[xo + c]; "
                    "acc[c] = (v > acc[c] || v != v) ? v : acc[c]; }\n")
            after = "        for (long c = 0; c < nc; c++) out[yo + c] = acc[c];\n"
        else:        # the mean over the window's elements inside the image
            before = f"        {T} acc[{N}]; long cnt = 0;\n        for (long c = 0; c < nc; c++) acc[c] = 0;\n"
            body = "            cnt++;\n            for (long c = 0; c < nc; c++) acc[c] += x[xo + c];\n"
            after = (f"        const {T} inv = ({T})1 / ({T})(cnt > 0 ? cnt : 1);\n"
                     "        for (long c = 0; c < nc; c++) out[yo + c] = acc[c] * inv;\n")
        self.k._add(name, [f"{T} *out", f"const {T} *x", "long nb"], (
            f"/* {n.name} {n.op} */\n"
            f"void {name}({T} *out, const {T} *x, long nb) {{\n{_defines(geo)}"
            + self._window_loop(body, before=before, after=after) + "}"))
        return name

    def pool_grad(self, n: Node, image, dtype: str, is_max: bool) -> str:
        """dx from dy: each window's gradient to its first maximum (max) or shared
        among its elements inside the image (average)."""
        T, geo = C_TYPE[dtype], _geometry(n, image)
        name = f"poolgrad{n.id}"
        N = self.CHUNK
        if is_max:
            # pass 1: the first argmax k of each channel; pass 2: dy added where k is it
            loops = self._window_loop(
                ("            for (long c = 0; c < nc; c++) { const " + T + " v = x[xo + c]; "
                 "const int take = at[c] < 0 || v > best[c]; best[c] = take ? v : best[c]; "
                 "at[c] = take ? k : at[c]; }\n"),
                "            for (long c = 0; c < nc; c++) dx[xo + c] += at[c] == k ? dy[yo + c] : (" + T + ")0;\n",
                before=(f"        {T} best[{N}]; long at[{N}];\n"
                        "        for (long c = 0; c < nc; c++) { best[c] = -INFINITY; at[c] = -1; }\n"))
        else:
            loops = self._window_loop(
                "            for (long c = 0; c < nc; c++) dx[xo + c] += dy[yo + c] * inv;\n",
                before=(f"        long cnt = 0;\n"
                        f"        for (long r = 0; r < KH; r++) for (long s = 0; s < KW; s++) {{\n"
                        f"            const long ih = oh * SH - PT + r, iw = ow * SW - PL + s;\n"
                        f"            cnt += (ih >= 0 && ih < H && iw >= 0 && iw < W);\n"
                        f"        }}\n"
                        f"        const {T} inv = ({T})1 / ({T})(cnt > 0 ? cnt : 1);\n"))
        self.k._add(name, [f"{T} *dx", f"const {T} *dy", f"const {T} *x", "long nb"], (
            f"/* {n.name} {n.op} */\n"
            f"void {name}({T} *dx, const {T} *dy, const {T} *x, long nb) {{\n{_defines(geo)}"
            f"    memset(dx, 0, (size_t)(nb * H * W * C) * sizeof({T}));\n" + loops + "}"))
        return name
