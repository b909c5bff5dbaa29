"""The tracer: symbolic tensors that record IR nodes, and the specs of arguments.

A second frontend beside the `.nn` language: calling a Python function on
`Tensor`s appends one IR node per operation to the graph being traced. Every
node records the user's call site (file, line, column: the first frame outside
the nncompile package) as its `SourceLoc`, and the calling function's name as
its layer, so IR dumps, generated code and errors point at the user's code.

A shape or dtype mistake is a `CompileError` located at that call site, with
the line and a caret (read with `linecache`), the shapes involved and what was
expected.

This module imports only `ir` and `errors`: tracing builds a graph, it runs no
pass and no backend.
"""
from __future__ import annotations

import functools
import linecache
import math
import os
import sys
import threading
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..errors import CompileError, SourceLoc
from ..ir.graph import B, FLOAT_DTYPES, Graph, Node, fmt_shape
from ..ir.ops import NP_DTYPE, IRError

__all__ = ["B", "DType", "f32", "f64", "i64", "TensorSpec", "Tensor", "Trace", "api", "fail", "call_site",
           "as_tensor", "spec_of", "current_trace"]

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


# --- dtypes and specs -----------------------------------------------------------------------------

class DType:
    """`nc.f32`, `nc.f64`, `nc.i64`; `nc.f32[nc.B, 784]` is the spec of an argument."""

    def __init__(self, name: str):
        self.name = name
        self.numpy = np.dtype(NP_DTYPE[name])

    def __getitem__(self, dims) -> "TensorSpec":
        if not isinstance(dims, tuple):
            dims = (dims,)
        return TensorSpec(self.name, dims)

    def __repr__(self) -> str:
        return f"nc.{self.name}"

    def __eq__(self, other) -> bool:
        return isinstance(other, DType) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


f32, f64, i64 = DType("f32"), DType("f64"), DType("i64")
DTYPES = {"f32": f32, "f64": f64, "i64": i64}


def dtype_name(d) -> str:
    """"f32" for nc.f32, "f32", np.float32 or np.dtype("float32")."""
    if isinstance(d, DType):
        return d.name
    if isinstance(d, str) and d in DTYPES:
        return d
    try:
        nd = np.dtype(d)
    except TypeError:
        nd = None
    for k, v in NP_DTYPE.items():
        if nd is not None and nd == np.dtype(v):
            return k
    raise TypeError(f"unknown dtype {d!r}; expected nc.f32, nc.f64 or nc.i64")


class TensorSpec:
    """The dtype and shape of a jitted function's argument; `B` (nc.B) is the
    batch dimension, free at every call."""

    __slots__ = ("dtype", "shape")

    def __init__(self, dtype: str, shape: Sequence):
        shape = tuple(shape)
        for d in shape:
            if d != B and not (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0):
                raise TypeError(f"a dimension of a spec is a size >= 0 or nc.B, not {d!r}")
        if sum(1 for d in shape if d == B) > 1:
            raise TypeError(f"a spec holds nc.B at most once, got {fmt_shape(dtype, shape)}")
        self.dtype = dtype
        self.shape = tuple(d if d == B else int(d) for d in shape)

    def __repr__(self) -> str:
        return fmt_shape(self.dtype, self.shape)

    def __eq__(self, other) -> bool:
        return isinstance(other, TensorSpec) and (other.dtype, other.shape) == (self.dtype, self.shape)

    def __hash__(self) -> int:
        return hash((self.dtype, self.shape))


def spec_of(value) -> TensorSpec:
    """The spec of a concrete value: a NumPy array or scalar, a Python number
    (float: f32, int: i64), a Tensor, or a spec itself."""
    if isinstance(value, TensorSpec):
        return value
    if isinstance(value, Tensor):
        return TensorSpec(value.dtype, value.shape)
    if isinstance(value, bool):
        raise TypeError("a bool is not an array; give a spec or an array")
    if isinstance(value, float):
        return TensorSpec("f32", ())
    if isinstance(value, int):
        return TensorSpec("i64", ())
    if isinstance(value, (np.ndarray, np.generic)):
        return TensorSpec(dtype_name(value.dtype), np.shape(value))
    raise TypeError(f"expected a spec (e.g. nc.f32[nc.B, 784]) or an array, got {type(value).__name__}")


# --- where a call comes from --------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def _positions(code, lasti: int):
    try:
        return list(code.co_positions())[lasti // 2]
    except (AttributeError, IndexError):
        return None


def _display(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def user_frame():
    """The innermost frame outside the nncompile package (the user's code)."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_PACKAGE):
        f = f.f_back
    return f


def call_site() -> tuple[Optional[SourceLoc], Optional[str]]:
    """(location, function name) of the user's code that is calling into nncompile."""
    f = user_frame()
    if f is None:
        return None, None
    code = f.f_code
    line, col, end_line, end_col = f.f_lineno, 1, None, None
    pos = _positions(code, f.f_lasti)
    if pos is not None and pos[0] is not None:
        line, end_line = pos[0], pos[1]
        if pos[2] is not None:
            col, end_col = pos[2] + 1, (pos[3] + 1 if pos[3] is not None else None)
    return SourceLoc(_display(code.co_filename), line, col, end_line, end_col), code.co_name


def _source(loc: Optional[SourceLoc]) -> Optional[str]:
    if loc is None:
        return None
    lines = linecache.getlines(loc.file) or linecache.getlines(os.path.abspath(loc.file))
    return "".join(lines) if lines else None


def fail(message: str, hint: Optional[str] = None, loc: Optional[SourceLoc] = None) -> CompileError:
    """A CompileError at the user's call site (or `loc`), with the source line when it can be read."""
    if loc is None:
        loc, _ = call_site()
    return CompileError(message, loc, source=_source(loc), hint=hint)


# --- traces -------------------------------------------------------------------------------------

class Trace:
    """The graph a function is being traced into."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.open = True
        self.streams = 0          # dropout streams handed out so far

    def next_stream(self) -> int:
        self.streams += 1
        return self.streams - 1

    def __enter__(self) -> "Trace":
        _state().stack.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _state().stack.pop()
        self.open = False


_local = threading.local()


def _state():
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local


def current_trace(args: Sequence = ()) -> Optional[Trace]:
    """The trace of the tensors among `args`, else the innermost open trace."""
    for a in args:
        if isinstance(a, Tensor):
            return a.trace
        if isinstance(a, (list, tuple)):
            t = current_trace(a)
            if t is not None:
                return t
    stack = _state().stack
    return stack[-1] if stack else None


def api(name: str) -> Callable:
    """Decorate a traced operation: its nodes get the user's call site, and an
    IRError (a shape or dtype rule of the op table) becomes a located CompileError."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            t = current_trace(args)
            if t is None:
                raise fail(f"nc.{name} works on traced tensors: call it inside a function that you "
                           f"nc.jit (its arguments are then Tensors)")
            if not t.open:
                raise fail(f"nc.{name}: a tensor of a finished trace was used (kept from an earlier "
                           "nc.jit?); tensors are valid only while their function is traced")
            loc, layer = call_site()
            try:
                with t.graph.at(loc, layer):
                    return fn(*args, **kwargs)
            except IRError as e:
                raise fail(f"nc.{name}: {e}", loc=loc) from None
        wrapper.api_name = name
        return wrapper
    return deco


# --- tensors ------------------------------------------------------------------------------------

class Tensor:
    """A symbolic value: one node of the graph being traced. Supports the
    arithmetic operators (NumPy broadcasting), comparisons (0/1 in the float
    dtype), `@`, indexing by integers and slices, `.T`, `.reshape`,
    `.sum/.mean/.max/.min`, `.astype`."""

    __slots__ = ("node", "trace")
    __array_ufunc__ = None          # NumPy defers to our reflected operators
    __hash__ = object.__hash__      # `==` builds a node, identity stays the hash

    def __init__(self, node: Node, trace: Trace):
        self.node = node
        self.trace = trace

    @property
    def shape(self) -> tuple:
        return self.node.shape

    @property
    def dtype(self) -> str:
        return self.node.dtype

    @property
    def ndim(self) -> int:
        return len(self.node.shape)

    @property
    def size(self):
        return B if B in self.shape else math.prod(self.shape)

    def __repr__(self) -> str:
        return f"Tensor({self.node.type_str}, {self.node.name} = {self.node.op})"

    # Python needs a value for these; a traced tensor has none
    def __bool__(self):
        raise fail(f"the truth value of a traced tensor {self.node.type_str} is not known while tracing "
                   "(Python `if`, `and`, `or`, `not` on it)",
                   hint="compute both branches and choose with nc.where(cond, a, b)")

    def __float__(self):
        raise fail(f"a traced tensor {self.node.type_str} has no value while tracing (float(), int() or "
                   "an index made of it)", hint="return it from the jitted function to get its value")

    __int__ = __index__ = __complex__ = __float__

    def __array__(self, *a, **k):
        raise fail(f"a traced tensor {self.node.type_str} cannot become a NumPy array while tracing",
                   hint="use nc.* functions on it inside the traced function, or return it")

    def __len__(self) -> int:
        if not self.shape:
            raise fail("len() of a scalar tensor")
        if self.shape[0] == B:
            raise fail(f"len() of a tensor {self.node.type_str}: its first dimension is the batch B, "
                       "unknown while tracing")
        return int(self.shape[0])

    def __iter__(self):
        raise fail(f"cannot iterate over a traced tensor {self.node.type_str}",
                   hint="index it with slices, or use nc.* reductions")

    # operators: the functions module fills these in (it defines the operations)
    T = property(lambda self: _F.transpose(self))

    def __add__(self, o): return _F.add(self, o)
    def __radd__(self, o): return _F.add(o, self)
    def __sub__(self, o): return _F.subtract(self, o)
    def __rsub__(self, o): return _F.subtract(o, self)
    def __mul__(self, o): return _F.multiply(self, o)
    def __rmul__(self, o): return _F.multiply(o, self)
    def __truediv__(self, o): return _F.divide(self, o)
    def __rtruediv__(self, o): return _F.divide(o, self)
    def __pow__(self, o): return _F.power(self, o)
    def __rpow__(self, o): return _F.power(o, self)
    def __matmul__(self, o): return _F.matmul(self, o)
    def __rmatmul__(self, o): return _F.matmul(o, self)
    def __neg__(self): return _F.negative(self)
    def __pos__(self): return self
    def __abs__(self): return _F.abs(self)
    def __lt__(self, o): return _F.less(self, o)
    def __le__(self, o): return _F.less_equal(self, o)
    def __gt__(self, o): return _F.greater(self, o)
    def __ge__(self, o): return _F.greater_equal(self, o)
    def __eq__(self, o): return _F.equal(self, o)  # type: ignore[override]
    def __ne__(self, o): return _F.not_equal(self, o)  # type: ignore[override]
    def __getitem__(self, key): return _F.getitem(self, key)

    def __floordiv__(self, o):
        raise fail("`//` is not supported on traced tensors", hint="use / (true division)")

    __rfloordiv__ = __mod__ = __rmod__ = __floordiv__

    def reshape(self, *shape): return _F.reshape(self, shape[0] if len(shape) == 1 and isinstance(
        shape[0], (tuple, list)) else shape)
    def transpose(self, *axes): return _F.transpose(self, (axes[0] if len(axes) == 1 and isinstance(
        axes[0], (tuple, list)) else axes) or None)
    def sum(self, axis=None, keepdims=False): return _F.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return _F.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return _F.max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return _F.min(self, axis, keepdims)
    def argmax(self, axis=-1): return _F.argmax(self, axis)
    def astype(self, dtype): return _F.cast(self, dtype)
    def flatten(self): return _F.flatten(self)


def as_tensor(v, trace: Trace, dtype: Optional[str] = None) -> Tensor:
    """`v` as a tensor of `trace`: a Tensor, or a Python/NumPy scalar as a constant
    (of `dtype`, else f32 for floats and i64 for integers)."""
    if isinstance(v, Tensor):
        if v.trace is not trace:
            raise fail("a tensor from another trace was used (kept from an earlier nc.jit, or from the "
                       "function around a nested one?)")
        return v
    if isinstance(v, (bool, int, float, np.number, np.bool_)) or (isinstance(v, np.ndarray) and v.ndim == 0):
        val = float(np.asarray(v))
        if dtype is None:
            kind = np.asarray(v).dtype.kind
            dtype = "i64" if kind in "iub" else (trace.graph.float_dtype if not isinstance(v, np.floating)
                                                  else dtype_name(np.asarray(v).dtype))
        return Tensor(trace.graph.const(val, dtype), trace)
    if isinstance(v, np.ndarray):
        raise fail(f"a NumPy array of shape {list(v.shape)} cannot be a constant of a traced function",
                   hint="pass it as an argument of the jitted function (with its spec)")
    raise fail(f"expected a tensor or a number, got {type(v).__name__}")


def is_float(dtype: str) -> bool:
    return dtype in FLOAT_DTYPES


# set by functions.py (the operations the operators call)
_F: Any = None
