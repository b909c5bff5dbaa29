"""`nc.jit`, `nc.compile_graph`, `nc.parse_ir`: from a Python function (or IR
text) to a compiled step called with NumPy arrays.

    f = nc.jit(fn, *specs, backend="numpy")   # trace once, run the passes, compile
    f(*arrays)                                 # NumPy arrays in, NumPy arrays out
    f.ir(), f.ir(after="all"), f.code()

This module is a driver (like `compiler.py`): it runs the pass pipeline
(`passes/manager.py`: `PIPELINE`, or `REQUIRED` with optimize=False) and a
backend on the traced graph.

Naming: graph inputs are named after the function's parameters (`x`, `w1`;
`params.w1` for a leaf of a nested argument, `args.0` for *args); outputs are
`out` for a single value and `out.0`, `out.1.w`, ... for the leaves of a
returned tuple or dict. `compile_graph` reads that naming back, so a graph
printed, parsed and compiled returns the structure the function returned.
"""
from __future__ import annotations

import inspect
import os
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..backends.common import ident
from ..ir.graph import B, Graph, Node, fmt_shape
from ..ir.ops import NP_DTYPE
from ..ir.parser import parse_graph
from ..ir.printer import print_graph
from ..passes.manager import PIPELINE, REQUIRED, pass_names, run_passes
from . import tree
from .tensor import Tensor, TensorSpec, Trace, as_tensor, fail, spec_of

__all__ = ["jit", "Jitted", "compile_graph", "CompiledGraph", "parse_ir", "trace"]

BACKENDS = ("numpy", "triton")


def parse_ir(text: str) -> Graph:
    """The graph of an IR text (what `.ir()` or `nncompile dump` print): `ir.parser.parse_graph`."""
    return parse_graph(text)


# --- tracing ------------------------------------------------------------------------------------

def _spec_leaf(v) -> bool:
    return isinstance(v, (TensorSpec, np.ndarray, np.generic))


def trace(fn: Callable, *specs, name: Optional[str] = None):
    """Trace `fn` on symbolic arguments of these specs: (graph, argument structure,
    output structure). The graph's inputs have role "data"; nothing is differentiated
    or updated in place unless the function says so (grad, optimizers)."""
    fname = name or getattr(fn, "__name__", "fn")
    if not callable(fn):
        raise TypeError(f"nc.jit: {fn!r} is not a function")
    try:
        sig = inspect.signature(fn)
        bound = sig.bind(*specs)
        params = [(k, sig.parameters[k].kind) for k in bound.arguments]
        groups = [(k, bound.arguments[k], kind == inspect.Parameter.VAR_POSITIONAL) for k, kind in params]
    except TypeError as e:
        raise TypeError(f"nc.jit({fname}): {e}: give one spec (e.g. nc.f32[nc.B, 784]) per argument") from None
    except ValueError:       # no signature (a builtin): name the arguments by position
        groups = [(f"arg{i}", s, False) for i, s in enumerate(specs)]
    # the leaves: (input name, spec), the structure of every positional argument
    leaves: list[tuple[str, TensorSpec]] = []
    arg_trees: list[tree.TreeDef] = []
    for pname, value, var in groups:
        values = list(value) if var else [value]
        for j, v in enumerate(values):
            prefix = f"{pname}.{j}" if var else pname
            ls, td = tree.flatten(v, is_leaf=_spec_leaf, prefix=prefix)
            for path, leaf in ls:
                try:
                    leaves.append((path, spec_of(leaf)))
                except TypeError as e:
                    raise TypeError(f"nc.jit({fname}): argument {path}: {e}; fix other values with "
                                    "functools.partial or a closure") from None
            arg_trees.append(td)
    floats = {s.dtype for _, s in leaves if s.dtype != "i64"}
    g = Graph(fname, "f64" if floats == {"f64"} else "f32")
    code = getattr(inspect.unwrap(fn), "__code__", None)
    loc = None
    if code is not None:
        from ..errors import SourceLoc
        from .tensor import _display
        loc = SourceLoc(_display(code.co_filename), code.co_firstlineno, 1)
    used: set[str] = set()
    with Trace(g) as t:
        nodes = []
        for path, s in leaves:
            name_ = path
            k = 1
            while ident(name_) in used:     # "a.b" and "a_b" would be one Python name
                k += 1
                name_ = f"{path}~{k}"
            used.add(ident(name_))
            with g.at(loc, fname):
                nodes.append(Tensor(g.input(name_, s.shape, s.dtype, role="data"), t))
        args, k = [], 0
        for td in arg_trees:
            args.append(td.unflatten(nodes[k:k + td.num_leaves]))
            k += td.num_leaves
        out = fn(*args)
        outs, out_tree = tree.flatten(out, is_leaf=lambda v: isinstance(v, Tensor))
        if not outs:
            raise fail(f"nc.jit({fname}): the function returned no tensor", loc=loc)
        for path, v in outs:
            if isinstance(v, Tensor):
                node = as_tensor(v, t).node
            elif isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
                with g.at(loc, fname):
                    node = as_tensor(v, t).node
            else:
                raise fail(f"nc.jit({fname}): the function returned a {type(v).__name__}"
                           f"{' at ' + path if path else ''}; it may return tensors, numbers and tuples, "
                           "lists or dicts of them", loc=loc)
            g.output(f"out.{path}" if path else "out", node)
    return g, arg_trees, out_tree


# --- calling a compiled graph ---------------------------------------------------------------------

def _backend(g: Graph, backend: str, cpu_kernels: Optional[str]):
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "numpy":
        from ..backends.numpy.codegen import generate
        return generate(g, cpu_kernels)
    from ..backends.triton import compile_graph as triton_compile
    return triton_compile(g)


class _Executable:
    """A compiled graph: inputs checked against their types (B free), outputs
    copied out as NumPy arrays."""

    def __init__(self, name: str, lowered: Graph, backend: str, optimize: bool, cpu_kernels: Optional[str],
                 verify: Optional[bool]):
        if verify is None:
            verify = os.environ.get("NNCOMPILE_VERIFY", "") not in ("", "0")
        self.name = name
        self.backend = backend
        self.optimize = optimize
        self.lowered = lowered
        self.graph, self.pass_log = run_passes(lowered, verify=verify, pipeline=PIPELINE if optimize else REQUIRED)
        self.program = _backend(self.graph, backend, cpu_kernels)
        self.inputs: list[Node] = list(self.graph.inputs.values())
        self.out_nodes: list[tuple[str, Node]] = list(self.graph.outputs.items())

    # --- introspection ---------------------------------------------------------------------
    def ir(self, after: Optional[str] = None) -> str:
        """The IR text: after the pipeline (default); after="all": after tracing and after
        every pass; after="trace": before any pass; after=PASS: after that pass."""
        if after is None:
            return print_graph(self.graph)
        names = [n for n, _, _ in self.pass_log]
        if after in ("trace", "lowered"):
            return print_graph(self.lowered)
        if after == "all":
            parts = [f"// IR of {self.name} after tracing", print_graph(self.lowered)]
            for pname, g, dt in self.pass_log:
                parts += [f"\n// IR of {self.name} after pass '{pname}' ({len(g)} nodes, {dt * 1e3:.2f} ms)",
                          print_graph(g)]
            return "\n".join(parts)
        for pname, g, _ in self.pass_log:
            if pname == after:
                return print_graph(g)
        from ..errors import expected_one_of
        known = pass_names() if self.optimize else [n for n, _ in REQUIRED]
        raise ValueError(f"no pass '{after}' ran: {expected_one_of(after, names or known + ['all', 'trace'])}")

    def code(self) -> str:
        """The generated module (NumPy: Python, and the C of the native loops after it;
        Triton: the module of kernels and launches)."""
        src = self.program.source
        c = getattr(self.program, "c_source", "")
        return src + (f"\n// the native kernels (C) the module calls as _k.*\n{c}" if c else "")

    # --- calls -----------------------------------------------------------------------------------
    def _run(self, values: list, where: Callable[[int], str]) -> list[np.ndarray]:
        arrays, batch, batch_from = {}, None, None
        for i, (node, v) in enumerate(zip(self.inputs, values)):
            a = _check_value(f"{self.name}() {where(i)}", v, node)
            for d, n in zip(node.shape, a.shape):
                if d == B:
                    if batch is None:
                        batch, batch_from = n, where(i)
                    elif n != batch:
                        raise ValueError(f"{self.name}(): the batch B is {batch} in {batch_from} but {n} in "
                                         f"{where(i)}; every argument with B needs the same batch size")
            arrays[node.attrs["name"]] = a
        if batch is not None and batch < 1:
            raise ValueError(f"{self.name}(): the batch B is {batch} in {batch_from}; it must be at least 1")
        outs = self.program(arrays, batch if batch is not None else 1)
        host = self.program.to_host
        return [np.array(host(outs[k]), dtype=NP_DTYPE[n.dtype]) for k, n in self.out_nodes]


def _check_value(what: str, v: Any, node: Node) -> np.ndarray:
    """v as a contiguous array of the node's dtype and shape (B free), or a ValueError."""
    want = fmt_shape(node.dtype, node.shape)
    np_dt = np.dtype(NP_DTYPE[node.dtype])
    if isinstance(v, (Tensor, TensorSpec)):
        raise ValueError(f"{what}: expected an array {want}, got a {type(v).__name__} (call the jitted "
                         "function with arrays, not inside another trace)")
    if isinstance(v, (bool, int, float, np.number, np.bool_)):
        if node.shape != ():
            raise ValueError(f"{what}: expected an array {want}, got the number {v!r}")
        if np_dt.kind == "i" and not float(v).is_integer():
            raise ValueError(f"{what}: expected an integer ({want}), got {v!r}")
        return np.asarray(v, np_dt)
    try:
        a = np.asarray(v)
    except Exception as e:   # noqa: BLE001 - anything that is not array-like
        raise ValueError(f"{what}: expected an array {want}, got {type(v).__name__} ({e})") from None
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{what}: expected an array {want}, got {type(v).__name__} of dtype {a.dtype}")
    if a.dtype != np_dt:
        if not np.can_cast(a.dtype, np_dt, "safe"):
            raise ValueError(f"{what}: expected dtype {node.dtype} ({np_dt.name}), got {a.dtype} (shape "
                             f"{list(a.shape)}); convert it, e.g. x.astype(np.{np_dt.name})")
        a = a.astype(np_dt)
    if a.ndim != len(node.shape):
        raise ValueError(f"{what}: expected {want} (rank {len(node.shape)}), got an array of shape "
                         f"{list(a.shape)} (rank {a.ndim})")
    for k, (d, n) in enumerate(zip(node.shape, a.shape)):
        if d != B and d != n:
            raise ValueError(f"{what}: expected {want}, got an array of shape {list(a.shape)}: dimension {k} "
                             f"is {n}, expected {d}")
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)   # (ascontiguousarray makes 0-d arrays 1-d)


class Jitted(_Executable):
    """A traced and compiled function: call it with arrays shaped like its specs."""

    def __init__(self, fn: Callable, specs: Sequence, backend: str = "numpy", optimize: bool = True,
                 cpu_kernels: Optional[str] = None, verify: Optional[bool] = None, name: Optional[str] = None):
        self.fn = fn
        self.specs = tuple(specs)
        g, self.arg_trees, self.out_tree = trace(fn, *specs, name=name)
        super().__init__(g.name, g, backend, optimize, cpu_kernels, verify)
        self.__doc__ = getattr(fn, "__doc__", None)

    def __repr__(self) -> str:
        return f"<nc.jit {self.name}({', '.join(map(str, self.specs))}) on {self.backend}>"

    def __call__(self, *args):
        leaves, _ = tree.flatten(args)
        if any(isinstance(v, Tensor) for _, v in leaves):     # called while tracing: inline the function
            return self.fn(*args)
        if len(args) != len(self.arg_trees):
            raise ValueError(f"{self.name}() takes {len(self.arg_trees)} arguments (as its specs), got {len(args)}")
        values: list = []
        for i, (td, a) in enumerate(zip(self.arg_trees, args)):
            values += tree.leaves_like(td, a, f"{self.name}() argument {i}")
        names = [n.attrs["name"] for n in self.inputs]
        outs = self._run(values, lambda i: f"argument '{names[i]}'")
        return self.out_tree.unflatten(outs)


def jit(fn: Callable, *specs, backend: str = "numpy", optimize: bool = True, cpu_kernels: Optional[str] = None,
        verify: Optional[bool] = None, name: Optional[str] = None) -> Jitted:
    """Trace `fn` once on arguments of these specs (`nc.f32[nc.B, 784]`, or arrays:
    their static shapes; nested tuples/lists/dicts of them for nested arguments),
    run the pass pipeline (all of `PIPELINE`; with optimize=False only `REQUIRED`),
    and compile with `backend` ("numpy" or "triton"). Returns a callable taking
    NumPy arrays (checked against the specs, B free) and returning NumPy arrays in
    the structure the function returned."""
    return Jitted(fn, specs, backend, optimize, cpu_kernels, verify, name)


class CompiledGraph(_Executable):
    """A compiled IR graph (parsed or built by hand): call it with its inputs,
    positionally (in the graph's input order) or by name. Outputs named as
    `nc.jit` names them (`out`, `out.0`, `out.1.w`) come back in that structure,
    other graphs' outputs as a dict by name."""

    def __init__(self, g: Graph, backend: str = "numpy", optimize: bool = True, cpu_kernels: Optional[str] = None,
                 verify: Optional[bool] = None):
        super().__init__(g.name, g, backend, optimize, cpu_kernels, verify)
        names = [k for k, _ in self.out_nodes]
        self.out_tree = tree.from_paths(names, "out")

    def __repr__(self) -> str:
        ins = ", ".join(f"{n.attrs['name']}: {n.type_str}" for n in self.inputs)
        return f"<nc.compile_graph {self.name}({ins}) on {self.backend}>"

    def __call__(self, *args, **kwargs):
        names = [n.attrs["name"] for n in self.inputs]
        if len(args) > len(names):
            raise ValueError(f"{self.name}() takes {len(names)} inputs ({', '.join(names)}), got {len(args)}")
        given = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names:
                from ..errors import did_you_mean
                raise ValueError(f"{self.name}() has no input '{k}'{did_you_mean(k, names)}; inputs: "
                                 f"{', '.join(names)}")
            if k in given:
                raise ValueError(f"{self.name}(): input '{k}' given twice")
            given[k] = v
        missing = [k for k in names if k not in given]
        if missing:
            raise ValueError(f"{self.name}(): missing input(s) {', '.join(missing)}")
        outs = self._run([given[k] for k in names], lambda i: f"input '{names[i]}'")
        if self.out_tree is None:
            return {k: v for (k, _), v in zip(self.out_nodes, outs)}
        return self.out_tree.unflatten(outs)


def compile_graph(g, backend: str = "numpy", optimize: bool = True, cpu_kernels: Optional[str] = None,
                  verify: Optional[bool] = None) -> CompiledGraph:
    """Compile a graph (or its IR text): run the passes it still needs (the pipeline's
    passes skip what is done: a graph already differentiated is not differentiated
    again) and the backend."""
    if isinstance(g, str):
        g = parse_graph(g)
    if not isinstance(g, Graph):
        raise TypeError(f"compile_graph takes a Graph or IR text, not {type(g).__name__}")
    return CompiledGraph(g, backend, optimize, cpu_kernels, verify)
