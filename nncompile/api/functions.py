"""The traced operations: `nc.relu`, `nc.matmul`, `nc.conv2d`, the losses, ...

Each function appends IR nodes (ops of `ir/ops.py`) to the graph being traced
and returns a `Tensor`. Arguments may be Tensors or Python/NumPy scalars
(constants). Shapes broadcast as in NumPy; an integer tensor meeting a float
one is cast to the float's dtype (f32 with f64 gives f64). Comparisons give
0/1 in the float dtype. Shape and dtype mistakes are CompileErrors at the
user's call site that name the shapes and say what was expected.
"""
from __future__ import annotations

import builtins
import inspect
import math
import sys
from typing import Optional, Sequence

from ..frontend.layers.windows import explicit_padding
from ..frontend.lower import EPS_PROB
from ..ir import shapes as S
from ..ir.graph import B, fmt_shape
from ..ir.ops import OPS
from . import tensor as _tensor
from .tensor import Tensor, api, as_tensor, current_trace, dtype_name, fail, is_float

__all__ = [
    # arithmetic
    "add", "subtract", "multiply", "divide", "negative", "power", "maximum", "minimum", "matmul",
    "square", "sqrt", "exp", "log", "abs", "sign", "clip", "cast",
    # activations
    "relu", "sigmoid", "tanh", "softplus", "leaky_relu", "gelu", "softmax", "log_softmax", "elu", "selu", "silu",
    "swish", "softsign", "hard_sigmoid",
    # comparisons
    "equal", "not_equal", "greater", "greater_equal", "less", "less_equal", "where",
    # reductions
    "sum", "mean", "max", "min", "argmax", "logsumexp",
    # shapes and indexing
    "reshape", "transpose", "flatten", "expand_dims", "squeeze", "concatenate", "pad", "getitem",
    "take_label", "one_hot", "zeros_like", "ones_like", "full_like",
    # layers' ops
    "conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d", "global_max_pool2d", "dropout",
    # losses
    "sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy",
    "mean_squared_error", "mean_absolute_error", "mse", "mae",
    # any IR op
    "ir_op",
]


def _t(x) -> Tensor:
    """`x` as a tensor of the current trace (a constant when it is a number)."""
    t = current_trace((x,))
    return as_tensor(x, t)


def _emit(op: str, *inputs: Tensor, **attrs) -> Tensor:
    t = inputs[0].trace if inputs else current_trace()
    return Tensor(t.graph.emit(op, *[i.node for i in inputs], **attrs), t)


def _desc(x: Tensor) -> str:
    return x.node.type_str


def _float(x: Tensor) -> Tensor:
    """x, cast to the graph's float dtype when it is an integer tensor."""
    return x if is_float(x.dtype) else _emit("cast", x, dtype=x.trace.graph.float_dtype)


def _pair(a, b) -> tuple[Tensor, Tensor]:
    """Two operands as tensors of one dtype: a number takes the tensor's dtype; an
    integer tensor meeting a float (tensor or number) becomes float."""
    t = current_trace((a, b))
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if ta and tb:
        a, b = as_tensor(a, t), as_tensor(b, t)
        if a.dtype != b.dtype:
            if not is_float(a.dtype):
                a = _emit("cast", a, dtype=b.dtype if is_float(b.dtype) else t.graph.float_dtype)
            if not is_float(b.dtype):
                b = _emit("cast", b, dtype=a.dtype)
            if a.dtype != b.dtype:        # f32 with f64
                a, b = [x if x.dtype == "f64" else _emit("cast", x, dtype="f64") for x in (a, b)]
        return a, b
    if not ta and not tb:
        return as_tensor(a, t), as_tensor(b, t)
    x, v = (a, b) if ta else (b, a)
    x = as_tensor(x, t)
    if not is_float(x.dtype) and not (isinstance(v, (bool, int)) or float(v).is_integer()):
        x = _float(x)
    c = as_tensor(v, t, x.dtype)
    return (x, c) if ta else (c, x)


def _check_broadcast(name: str, *xs: Tensor) -> None:
    shape: tuple = ()
    for x in xs:
        try:
            shape = S.broadcast(shape, x.shape)
        except S.IRError:
            a, b = shape, x.shape
            for i in range(1, builtins.max(len(a), len(b)) + 1):
                da = a[-i] if i <= len(a) else 1
                db = b[-i] if i <= len(b) else 1
                if not (da == db or da == 1 or db == 1):
                    break
            raise fail(f"nc.{name}: shapes {' and '.join(_desc(y) for y in xs)} do not broadcast: "
                       f"dimension {-i} is {da} in one and {db} in the other",
                       hint="expected equal sizes or 1 in each dimension, counted from the last (as NumPy)"
                       ) from None


def _binary(op: str, name: str, a, b) -> Tensor:
    a, b = _pair(a, b)
    _check_broadcast(name, a, b)
    return _emit(op, a, b)


# --- arithmetic ---------------------------------------------------------------------------------

@api("add")
def add(a, b) -> Tensor:
    return _binary("add", "add", a, b)


@api("subtract")
def subtract(a, b) -> Tensor:
    return _binary("sub", "subtract", a, b)


@api("multiply")
def multiply(a, b) -> Tensor:
    return _binary("mul", "multiply", a, b)


@api("divide")
def divide(a, b) -> Tensor:
    """True division (integer tensors are cast to the float dtype first, as NumPy)."""
    a, b = _pair(a, b)
    a, b = _float(a), _float(b)
    _check_broadcast("divide", a, b)
    return _emit("div", a, b)


@api("maximum")
def maximum(a, b) -> Tensor:
    return _binary("maximum", "maximum", a, b)


@api("minimum")
def minimum(a, b) -> Tensor:
    a, b = _pair(a, b)
    _check_broadcast("minimum", a, b)
    return _emit("neg", _emit("maximum", _emit("neg", a), _emit("neg", b)))


@api("negative")
def negative(x) -> Tensor:
    return _emit("neg", _t(x))


@api("power")
def power(x, p) -> Tensor:
    """x ** p. An integer exponent is repeated multiplication (any sign of x);
    0.5 is sqrt; any other exponent, or a tensor one, is exp(p * log(x)) (x > 0)."""
    if not isinstance(p, Tensor) and isinstance(x, Tensor):
        x = _t(x)
        pv = float(p)
        if pv.is_integer() and builtins.abs(pv) <= 64:
            n = int(builtins.abs(pv))
            if n == 0:
                return full_like(x, 1.0)
            out, base = None, x
            while n:                          # binary exponentiation
                if n & 1:
                    out = base if out is None else _emit("mul", out, base)
                n >>= 1
                if n:
                    base = _emit("square", base)
            if pv < 0:
                x = _float(out)
                return _emit("div", as_tensor(1.0, x.trace, x.dtype), x)
            return out
        if pv == 0.5:
            return _emit("sqrt", _float(x))
    x, p = _pair(x, p)
    x, p = _float(x), _float(p)
    _check_broadcast("power", x, p)
    return _emit("exp", _emit("mul", p, _emit("log", x)))


def _unary(op: str, name: str, floats: bool = False, doc: str = ""):
    @api(name)
    def fn(x) -> Tensor:
        x = _t(x)
        return _emit(op, _float(x) if floats else x)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc or f"The elementwise `{op}` of the IR."
    return fn


square = _unary("square", "square")
abs = _unary("abs", "abs")  # noqa: A001 - nc.abs, as np.abs
sign = _unary("sign", "sign")
relu = _unary("relu", "relu")
sqrt = _unary("sqrt", "sqrt", True)
exp = _unary("exp", "exp", True)
log = _unary("log", "log", True)
sigmoid = _unary("sigmoid", "sigmoid", True)
tanh = _unary("tanh", "tanh", True)
softplus = _unary("softplus", "softplus", True, "log(1 + exp(x)), stable for any x.")


@api("gelu")
def gelu(x, approximate: bool = False) -> Tensor:
    """GELU: the exact x * Phi(x) (Keras's and PyTorch's default), or with
    approximate=True the tanh approximation."""
    return _emit("gelu_tanh" if approximate else "gelu", _float(_t(x)))


@api("leaky_relu")
def leaky_relu(x, negative_slope: float = 0.2, *, alpha: Optional[float] = None) -> Tensor:
    """x for x > 0, else negative_slope * x (Keras's name; alpha is accepted as an alias)."""
    slope = negative_slope if alpha is None else alpha
    return _emit("leaky_relu", _float(_t(x)), alpha=float(slope))


def _keras_activation(name: str, doc: str):
    """nc.<name>: the `.nn` language's activation row (frontend/layers/activations.py)."""
    from ..frontend.layers.activations import ACTIVATIONS

    @api(name)
    def fn(x, **params) -> Tensor:
        x = _float(_t(x))
        act = ACTIVATIONS[name]
        unknown = set(params) - {a.name for a in act.args}
        if unknown:
            raise fail(f"nc.{name}: unknown argument {', '.join(sorted(unknown))}")
        values = {a.name: float(params.get(a.name, a.default)) for a in act.args}
        return Tensor(act.lower(x.trace.graph, x.node, values), x.trace)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


elu = _keras_activation("elu", "x for x > 0, else alpha * (exp(x) - 1); elu(x, alpha=1.0).")
selu = _keras_activation("selu", "scale * elu(x, alpha), Keras's constants.")
silu = _keras_activation("silu", "x * sigmoid(x) (nc.swish is the same).")
swish = silu
softsign = _keras_activation("softsign", "x / (1 + |x|).")
hard_sigmoid = _keras_activation("hard_sigmoid", "relu6(x + 3) / 6 (Keras 3).")


@api("clip")
def clip(x, lo: float, hi: float) -> Tensor:
    """Clip to [lo, hi] (numbers; for tensor bounds use nc.maximum / nc.minimum)."""
    if isinstance(lo, Tensor) or isinstance(hi, Tensor):
        raise fail("nc.clip takes numbers as bounds", hint="for tensor bounds: nc.minimum(nc.maximum(x, lo), hi)")
    if lo > hi:
        raise fail(f"nc.clip: lo {lo} is above hi {hi}")
    return _emit("clip", _t(x), lo=float(lo), hi=float(hi))


@api("cast")
def cast(x, dtype) -> Tensor:
    """x as `dtype` (nc.f32, nc.f64, nc.i64); float to integer truncates toward zero."""
    x, name = _t(x), dtype_name(dtype)
    return x if x.dtype == name else _emit("cast", x, dtype=name)


def _axis_softmax(op: str, x: Tensor, axis: int) -> Tensor:
    x = _float(x)
    if x.ndim == 0:
        raise fail(f"nc.{op} of a scalar: it needs at least one axis")
    a = _axis(op, x, axis)
    if a == x.ndim - 1:
        return _emit(op, x)
    perm = list(range(x.ndim))
    perm[a], perm[-1] = perm[-1], perm[a]
    return _emit("transpose", _emit(op, _emit("transpose", x, perm=tuple(perm))), perm=tuple(perm))


@api("softmax")
def softmax(x, axis: int = -1) -> Tensor:
    return _axis_softmax("softmax", _t(x), axis)


@api("log_softmax")
def log_softmax(x, axis: int = -1) -> Tensor:
    return _axis_softmax("log_softmax", _t(x), axis)


# --- comparisons --------------------------------------------------------------------------------

@api("equal")
def equal(a, b) -> Tensor:
    return _binary("equal", "equal", a, b)


@api("not_equal")
def not_equal(a, b) -> Tensor:
    return _binary("not_equal", "not_equal", a, b)


@api("greater")
def greater(a, b) -> Tensor:
    return _binary("greater", "greater", a, b)


@api("greater_equal")
def greater_equal(a, b) -> Tensor:
    return _binary("greater_equal", "greater_equal", a, b)


@api("less")
def less(a, b) -> Tensor:
    return _binary("greater", "less", b, a)


@api("less_equal")
def less_equal(a, b) -> Tensor:
    return _binary("greater_equal", "less_equal", b, a)


@api("where")
def where(cond, a, b) -> Tensor:
    """a where cond is nonzero (true), else b; the three broadcast together."""
    a, b = _pair(a, b)
    c = as_tensor(cond, a.trace)
    _check_broadcast("where", c, a, b)
    return _emit("where", c, a, b)


# --- reductions ---------------------------------------------------------------------------------

def _axis(name: str, x: Tensor, axis) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise fail(f"nc.{name}: an axis is an integer, not {axis!r}")
    if not -x.ndim <= axis < x.ndim:
        raise fail(f"nc.{name}: axis {axis} is out of range for {_desc(x)} (rank {x.ndim})",
                   hint=f"expected an axis in {-x.ndim}..{x.ndim - 1}" if x.ndim else "a scalar has no axes")
    return axis % x.ndim


def _axes(name: str, x: Tensor, axis) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(x.ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = tuple(_axis(name, x, a) for a in axes)
    if len(set(out)) != len(out):
        raise fail(f"nc.{name}: axis {axis} names an axis twice")
    return tuple(sorted(out))


def _reduce(op: str, name: str, x, axis, keepdims: bool) -> Tensor:
    x = _t(x)
    axes = _axes(name, x, axis)
    if not axes:
        return x
    if op == "mean":
        x = _float(x)
    return _emit(op, x, axes=axes, keepdims=bool(keepdims))


@api("sum")
def sum(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return _reduce("sum", "sum", x, axis, keepdims)


@api("mean")
def mean(x, axis=None, keepdims: bool = False) -> Tensor:
    return _reduce("mean", "mean", x, axis, keepdims)


@api("max")
def max(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return _reduce("max", "max", x, axis, keepdims)


@api("min")
def min(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    x = _t(x)
    if not _axes("min", x, axis):
        return x
    return _emit("neg", _reduce("max", "min", _emit("neg", x), axis, keepdims))


@api("argmax")
def argmax(x, axis: int = -1) -> Tensor:
    """The index (i64) of the largest element along `axis` (the first on a tie)."""
    x = _t(x)
    if x.ndim == 0:
        raise fail("nc.argmax of a scalar")
    a = _axis("argmax", x, axis)
    if a != x.ndim - 1:
        perm = tuple(k for k in range(x.ndim) if k != a) + (a,)
        x = _emit("transpose", x, perm=perm)
    return _emit("argmax", x)


@api("logsumexp")
def logsumexp(x, axis=None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) over `axis`, stable (the maximum is taken out first)."""
    x = _float(_t(x))
    axes = _axes("logsumexp", x, axis)
    if not axes:
        return x
    m = _emit("max", x, axes=axes, keepdims=True)
    s = _emit("log", _emit("sum", _emit("exp", _emit("sub", x, m)), axes=axes, keepdims=True))
    out = _emit("add", s, m)
    if not keepdims:
        out = _emit("reshape", out, shape=tuple(d for k, d in enumerate(x.shape) if k not in axes))
    return out


# --- shapes -------------------------------------------------------------------------------------

@api("reshape")
def reshape(x, shape) -> Tensor:
    """x with a new shape of the same number of elements. One entry may be -1
    (inferred); the batch dimension B stays (write nc.B, or -1 for it)."""
    x = _t(x)
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    for d in shape:
        if d != B and (isinstance(d, bool) or not isinstance(d, int) or d < -1):
            raise fail(f"nc.reshape: a dimension is a size, -1 or nc.B, not {d!r}")
    if shape.count(-1) > 1 or shape.count(B) > 1:
        raise fail(f"nc.reshape: {shape} has more than one -1 (or nc.B)")
    per = math.prod(d for d in x.shape if d != B)
    known = math.prod(d for d in shape if d not in (B, -1))
    want = "per sample" if B in x.shape else "in all"
    if B in x.shape and B not in shape:
        if -1 not in shape:
            raise fail(f"nc.reshape: {_desc(x)} has the batch dimension B; the new shape {shape} must keep it",
                       hint="write nc.B (or -1) for it, e.g. x.reshape(nc.B, 8, 8, 1)")
        shape = tuple(B if d == -1 else d for d in shape)
    elif B not in x.shape and B in shape:
        raise fail(f"nc.reshape: {_desc(x)} has no batch dimension to keep, but {shape} names nc.B")
    elif -1 in shape:
        if known == 0 or per % known:
            raise fail(f"nc.reshape: cannot reshape {_desc(x)} to {shape}: {per} values {want} do not "
                       f"divide into groups of {known}")
        shape = tuple(per // known if d == -1 else d for d in shape)
    if math.prod(d for d in shape if d != B) != per:
        raise fail(f"nc.reshape: cannot reshape {_desc(x)} to {tuple(shape)}: {per} values {want}, the new "
                   f"shape holds {math.prod(d for d in shape if d != B)}")
    return x if tuple(shape) == x.shape else _emit("reshape", x, shape=tuple(shape))


@api("transpose")
def transpose(x, axes: Optional[Sequence[int]] = None) -> Tensor:
    """x with its axes permuted (reversed when `axes` is None, as `.T`)."""
    x = _t(x)
    perm = tuple(range(x.ndim))[::-1] if axes is None else tuple(_axis("transpose", x, a) for a in axes)
    if sorted(perm) != list(range(x.ndim)):
        raise fail(f"nc.transpose: {tuple(axes)} is not a permutation of the {x.ndim} axes of {_desc(x)}")
    return x if perm == tuple(range(x.ndim)) else _emit("transpose", x, perm=perm)


@api("flatten")
def flatten(x) -> Tensor:
    """[B, d1, d2, ...] -> [B, d1*d2*...] (the first axis stays)."""
    x = _t(x)
    if x.ndim < 2:
        return x
    return reshape(x, (x.shape[0], math.prod(d for d in x.shape[1:])))


@api("expand_dims")
def expand_dims(x, axis: int) -> Tensor:
    x = _t(x)
    if not -x.ndim - 1 <= axis <= x.ndim:
        raise fail(f"nc.expand_dims: axis {axis} is out of range for {_desc(x)}")
    a = axis % (x.ndim + 1)
    return _emit("reshape", x, shape=x.shape[:a] + (1,) + x.shape[a:])


@api("squeeze")
def squeeze(x, axis=None) -> Tensor:
    x = _t(x)
    axes = [k for k, d in enumerate(x.shape) if d == 1] if axis is None else list(_axes("squeeze", x, axis))
    for a in axes:
        if x.shape[a] != 1:
            raise fail(f"nc.squeeze: axis {a} of {_desc(x)} has size {x.shape[a]}, not 1")
    if not axes:
        return x
    return _emit("reshape", x, shape=tuple(d for k, d in enumerate(x.shape) if k not in axes))


@api("concatenate")
def concatenate(xs: Sequence, axis: int = -1) -> Tensor:
    """Join tensors along `axis` (not the batch axis); the other dimensions must agree."""
    xs = list(xs)
    if not xs:
        raise fail("nc.concatenate of no tensors")
    t = current_trace(xs)
    xs = [as_tensor(x, t) for x in xs]
    floats = [x.dtype for x in xs if is_float(x.dtype)]
    dt = ("f64" if "f64" in floats else floats[0]) if floats else xs[0].dtype
    xs = [x if x.dtype == dt else _emit("cast", x, dtype=dt) for x in xs]
    first = xs[0]
    if first.ndim == 0:
        raise fail("nc.concatenate of scalars: reshape them to [1] first")
    a = _axis("concatenate", first, axis)
    for x in xs[1:]:
        if x.ndim != first.ndim or any(p != q for k, (p, q) in enumerate(zip(x.shape, first.shape)) if k != a):
            raise fail(f"nc.concatenate along axis {a}: {_desc(first)} and {_desc(x)} differ in another "
                       "dimension", hint="expected equal shapes except along the axis joined")
    if first.shape[a] == B:
        raise fail("nc.concatenate along the batch axis B is not supported")
    return xs[0] if len(xs) == 1 else _emit("concat", *xs, axis=a)


@api("pad")
def pad(x, pad_width) -> Tensor:
    """Zero padding, as np.pad: an int (every axis), a (before, after) pair (every
    axis), or one pair per axis. The batch axis is not padded."""
    x = _t(x)
    if isinstance(pad_width, int):
        widths = [(pad_width, pad_width)] * x.ndim
    elif len(pad_width) == 2 and all(isinstance(v, int) for v in pad_width):
        widths = [tuple(pad_width)] * x.ndim
    else:
        widths = [tuple(w) for w in pad_width]
    if len(widths) != x.ndim:
        raise fail(f"nc.pad: {len(widths)} (before, after) pairs for {_desc(x)} of rank {x.ndim}")
    for k, (lo, hi) in enumerate(widths):
        if lo < 0 or hi < 0:
            raise fail(f"nc.pad: negative padding {(lo, hi)} on axis {k}")
        if not (lo or hi):
            continue
        if x.shape[k] == B:
            raise fail("nc.pad: the batch axis B cannot be padded")
        x = _emit("pad", x, axis=k, before=int(lo), after=int(hi))
    return x


@api("getitem")
def getitem(x, key) -> Tensor:
    """x[key]: integers, slices with step 1, `...` and None (a new axis of size 1)."""
    x = _t(x)
    key = key if isinstance(key, tuple) else (key,)
    if builtins.sum(1 for k in key if k is Ellipsis) > 1:
        raise fail("an index can hold only one '...'")
    n_axes = builtins.sum(1 for k in key if k is not None and k is not Ellipsis)
    if n_axes > x.ndim:
        raise fail(f"too many indices for {_desc(x)}: {n_axes} for rank {x.ndim}")
    if Ellipsis in key:
        i = key.index(Ellipsis)
        key = key[:i] + (slice(None),) * (x.ndim - n_axes) + key[i + 1:]
    else:
        key = key + (slice(None),) * (x.ndim - n_axes)
    out_shape: list = []
    axis = 0
    for k in key:
        if k is None:
            out_shape.append(1)
            continue
        d = x.shape[axis]
        if isinstance(k, Tensor):
            raise fail("indexing with a tensor is not supported",
                       hint="for labels use nc.take_label(p, y); for masks nc.where")
        if isinstance(k, slice):
            if k.step not in (None, 1):
                raise fail(f"slices with a step other than 1 are not supported (got {k.step}) on axis {axis} "
                           f"of {_desc(x)}")
            if d == B:
                if (k.start, k.stop) not in ((None, None), (0, None)):
                    raise fail(f"axis {axis} of {_desc(x)} is the batch B: it can only be taken whole (:)",
                               hint="slice the batch before calling the jitted function")
                out_shape.append(d)
                axis += 1
                continue
            start, stop, _ = k.indices(d)
            if stop <= start:
                raise fail(f"the slice {start}:{stop} of axis {axis} of {_desc(x)} is empty")
            if (start, stop) != (0, d):
                x = _emit("slice", x, axis=axis, start=start, stop=stop)
            out_shape.append(stop - start)
        else:
            if isinstance(k, bool) or not isinstance(k, int):
                raise fail(f"an index is an integer, a slice, ... or None, not {k!r}")
            if d == B:
                raise fail(f"axis {axis} of {_desc(x)} is the batch B: it cannot be indexed by an integer")
            if not -d <= k < d:
                raise fail(f"index {k} is out of range for axis {axis} of {_desc(x)} (size {d})")
            k %= d
            if d != 1:
                x = _emit("slice", x, axis=axis, start=k, stop=k + 1)
        axis += 1
    return x if tuple(out_shape) == x.shape else _emit("reshape", x, shape=tuple(out_shape))


@api("take_label")
def take_label(p, labels) -> Tensor:
    """p[..., labels]: the element of the last axis that each label names."""
    p, y = _t(p), _t(labels)
    _check_labels("take_label", y, p)
    return _emit("take_label", p, y)


@api("one_hot")
def one_hot(labels, depth: int, dtype=None) -> Tensor:
    y = _t(labels)
    if y.dtype != "i64":
        raise fail(f"nc.one_hot needs i64 labels, got {_desc(y)}")
    return _emit("onehot", y, depth=int(depth), dtype=dtype_name(dtype) if dtype else y.trace.graph.float_dtype)


def _fill(x: Tensor, value: float) -> Tensor:
    c = as_tensor(value, x.trace, x.dtype)
    return _emit("unreduce", c, x, axes=(), keepdims=True, mean=False)


@api("zeros_like")
def zeros_like(x) -> Tensor:
    return _fill(_t(x), 0.0)


@api("ones_like")
def ones_like(x) -> Tensor:
    return _fill(_t(x), 1.0)


@api("full_like")
def full_like(x, value: float) -> Tensor:
    return _fill(_t(x), value)


# --- convolution, pooling, dropout --------------------------------------------------------------

def _ints2(name: str, what: str, v) -> tuple[int, int]:
    pair = (v, v) if isinstance(v, int) else tuple(v)
    if len(pair) != 2 or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in pair):
        raise fail(f"nc.{name}: {what} is an integer >= 1 or a pair of them, not {v!r}")
    return pair  # type: ignore[return-value]


def _padding(name: str, padding, hw, window, strides, dilation=(1, 1)):
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise fail(f"nc.{name}: padding is 'valid', 'same', an integer or ((top, bottom), (left, right)), "
                       f"not {padding!r}")
        return explicit_padding(padding, hw, window, strides, dilation)
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    pads = tuple(tuple(p) if isinstance(p, (tuple, list)) else (p, p) for p in padding)
    if len(pads) != 2 or any(len(p) != 2 or builtins.min(p) < 0 for p in pads):
        raise fail(f"nc.{name}: padding {padding!r} is not ((top, bottom), (left, right))")
    return pads


def _images(name: str, x: Tensor) -> None:
    if x.ndim != 4 or x.shape[0] != B:
        raise fail(f"nc.{name} needs a batch of images [B, H, W, C] (channels last), got {_desc(x)}",
                   hint="reshape the input, e.g. x.reshape(nc.B, 8, 8, 1)")


@api("conv2d")
def conv2d(x, w, strides=1, padding="valid", dilation=1, groups: int = 1) -> Tensor:
    """2-D convolution of images [B, H, W, C] with a kernel [kh, kw, C/groups, F]
    (Keras layout); padding "valid", "same" (Keras's split), an integer or
    ((top, bottom), (left, right)). Add the bias yourself (`+ b`)."""
    x, w = _pair(_t(x), _t(w))
    _images("conv2d", x)
    if w.ndim != 4:
        raise fail(f"nc.conv2d: the kernel is [kh, kw, C/groups, F], got {_desc(w)}")
    kh, kw, cg, f = w.shape
    c = x.shape[3]
    if not isinstance(groups, int) or groups < 1 or c % groups or f % groups or cg * groups != c:
        raise fail(f"nc.conv2d: images {_desc(x)} have {c} channels; with groups={groups} the kernel needs "
                   f"{c // groups if isinstance(groups, int) and groups >= 1 and c % groups == 0 else '?'} input "
                   f"channels and a multiple of {groups} filters, got {_desc(w)}")
    st, dl = _ints2("conv2d", "strides", strides), _ints2("conv2d", "dilation", dilation)
    pads = _padding("conv2d", padding, x.shape[1:3], (kh, kw), st, dl)
    return _emit("conv2d", x, w, window=(kh, kw), strides=st, padding=pads, dilation=dl, groups=groups)


def _pool(op: str, name: str, x, pool_size, strides, padding) -> Tensor:
    x = _float(_t(x))
    _images(name, x)
    win = _ints2(name, "pool_size", pool_size)
    st = win if strides is None else _ints2(name, "strides", strides)
    pads = _padding(name, padding, x.shape[1:3], win, st)
    return _emit(op, x, window=win, strides=st, padding=pads)


@api("max_pool2d")
def max_pool2d(x, pool_size=2, strides=None, padding="valid") -> Tensor:
    """Max pooling of images [B, H, W, C]; strides default to the pool size (Keras)."""
    return _pool("maxpool2d", "max_pool2d", x, pool_size, strides, padding)


@api("avg_pool2d")
def avg_pool2d(x, pool_size=2, strides=None, padding="valid") -> Tensor:
    """Average pooling (padding excluded from the count, as Keras)."""
    return _pool("avgpool2d", "avg_pool2d", x, pool_size, strides, padding)


def _global(op: str, name: str, x) -> Tensor:
    # a pooling window over the whole image (as the .nn layers), then [B, 1, 1, C] -> [B, C]
    x = _float(_t(x))
    _images(name, x)
    hw = tuple(x.shape[1:3])
    pooled = _emit(op, x, window=hw, strides=hw, padding=((0, 0), (0, 0)))
    return _emit("reshape", pooled, shape=(B, x.shape[3]))


@api("global_avg_pool2d")
def global_avg_pool2d(x) -> Tensor:
    """The mean over height and width of each channel: [B, H, W, C] -> [B, C]."""
    return _global("avgpool2d", "global_avg_pool2d", x)


@api("global_max_pool2d")
def global_max_pool2d(x) -> Tensor:
    """The maximum over height and width of each channel: [B, H, W, C] -> [B, C]."""
    return _global("maxpool2d", "global_max_pool2d", x)


@api("dropout")
def dropout(x, rate: float, key, stream: Optional[int] = None) -> Tensor:
    """Zero each element with probability `rate`, scale the rest by 1/(1-rate).
    `key` is an i64[2] tensor (seed, step): the same key gives the same mask on
    both backends (Philox, counter-based); change the step every call. Each
    call in a trace gets its own `stream` unless given."""
    x = _float(_t(x))
    k = as_tensor(key, x.trace)
    if k.dtype != "i64" or k.shape != (2,):
        raise fail(f"nc.dropout: the key is an i64[2] tensor (seed, step), got {_desc(k)}",
                   hint="add an argument with spec nc.i64[2] and pass np.array([seed, step])")
    if not 0.0 <= float(rate) < 1.0:
        raise fail(f"nc.dropout: rate is in [0, 1), got {rate}")
    s = x.trace.next_stream() if stream is None else int(stream)
    if float(rate) == 0.0:
        return x
    return _emit("mul", x, _emit("dropout_mask", x, k, rate=float(rate), stream=s))


# --- losses (Keras: per-sample values; take nc.mean for the batch loss) -------------------------

def _check_labels(name: str, y: Tensor, p: Tensor) -> None:
    if p.ndim == 0 or y.dtype != "i64" or y.shape != p.shape[:-1]:
        want = fmt_shape("i64", p.shape[:-1]) if p.ndim else "labels"
        raise fail(f"nc.{name}: the labels must be {want} (one class index per row of {_desc(p)}), "
                   f"got {_desc(y)}",
                   hint="for one-hot or probability targets use nc.categorical_crossentropy"
                   if y.shape == p.shape else None)


def _same_shape(name: str, y: Tensor, p: Tensor) -> None:
    if y.shape != p.shape:
        raise fail(f"nc.{name}: targets {_desc(y)} and predictions {_desc(p)} differ in shape",
                   hint="expected y_true and y_pred of the same shape")


def _clipped_log(p: Tensor) -> Tensor:
    return _emit("log", _emit("clip", p, lo=EPS_PROB, hi=1.0 - EPS_PROB))


def _smoothed(y: Tensor, label_smoothing: float, k: float) -> Tensor:
    """Keras's smoothed targets y (1 - ls) + ls / k (k: the classes; 2 for binary)."""
    ls = float(label_smoothing)
    if not 0.0 <= ls <= 1.0:
        raise fail(f"label_smoothing is in [0, 1], got {label_smoothing}")
    if ls == 0.0:
        return y
    return _emit("add", _emit("mul", y, as_tensor(1.0 - ls, y.trace, y.dtype)), as_tensor(ls / k, y.trace, y.dtype))


@api("sparse_categorical_crossentropy")
def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False,
                                    label_smoothing: float = 0.0) -> Tensor:
    """-log p[y] per sample: integer labels y_true [B], predictions [B, classes]
    (probabilities, clipped to [1e-7, 1 - 1e-7]; or logits with from_logits=True,
    then one stable fused kernel). With label_smoothing, the labels' one-hot rows
    smoothed as categorical_crossentropy's (as PyTorch's cross_entropy)."""
    y, p = _t(y_true), _float(_t(y_pred))
    _check_labels("sparse_categorical_crossentropy", y, p)
    if label_smoothing:
        onehot = _emit("onehot", y, depth=p.shape[-1], dtype=p.dtype)
        return categorical_crossentropy(onehot, p, from_logits, label_smoothing)
    if from_logits:
        if p.ndim == 2:
            return _emit("softmax_xent", p, y)
        return _emit("neg", _emit("take_label", _emit("log_softmax", p), y))
    return _emit("neg", _emit("take_label", _clipped_log(p), y))


@api("categorical_crossentropy")
def categorical_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0) -> Tensor:
    """-sum(y * log p) over the last axis, for one-hot (or soft) targets (smoothed:
    y (1 - ls) + ls / classes, as Keras)."""
    y, p = _pair(_float(_t(y_true)), _float(_t(y_pred)))
    _same_shape("categorical_crossentropy", y, p)
    y = _smoothed(y, label_smoothing, p.shape[-1] if p.ndim else 1)
    logp = _emit("log_softmax", p) if from_logits else _clipped_log(p)
    return _emit("neg", _emit("sum", _emit("mul", y, logp), axes=(p.ndim - 1,), keepdims=False))


@api("binary_crossentropy")
def binary_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0) -> Tensor:
    """Mean over the last axis of -(y log p + (1-y) log(1-p)); with from_logits,
    softplus(z) - z*y (finite for any logit); smoothed targets y (1 - ls) + ls / 2
    (Keras)."""
    y, p = _pair(_float(_t(y_true)), _float(_t(y_pred)))
    _same_shape("binary_crossentropy", y, p)
    y = _smoothed(y, label_smoothing, 2.0)
    if from_logits:
        t = _emit("sub", _emit("softplus", p), _emit("mul", p, y))
    else:
        q = _emit("clip", p, lo=EPS_PROB, hi=1.0 - EPS_PROB)
        one = as_tensor(1.0, p.trace, p.dtype)
        t = _emit("neg", _emit("add", _emit("mul", y, _emit("log", q)),
                               _emit("mul", _emit("sub", one, y), _emit("log", _emit("sub", one, q)))))
    return _emit("mean", t, axes=(t.ndim - 1,), keepdims=False) if t.ndim else t


@api("mean_squared_error")
def mean_squared_error(y_true, y_pred) -> Tensor:
    """Mean over the last axis of (y_pred - y_true)^2."""
    y, p = _pair(_float(_t(y_true)), _float(_t(y_pred)))
    _same_shape("mean_squared_error", y, p)
    d = _emit("square", _emit("sub", p, y))
    return _emit("mean", d, axes=(d.ndim - 1,), keepdims=False) if d.ndim else d


@api("mean_absolute_error")
def mean_absolute_error(y_true, y_pred) -> Tensor:
    """Mean over the last axis of |y_pred - y_true|."""
    y, p = _pair(_float(_t(y_true)), _float(_t(y_pred)))
    _same_shape("mean_absolute_error", y, p)
    d = _emit("abs", _emit("sub", p, y))
    return _emit("mean", d, axes=(d.ndim - 1,), keepdims=False) if d.ndim else d


mse = mean_squared_error
mae = mean_absolute_error


# --- any op of the IR table ---------------------------------------------------------------------

@api("ir_op")
def ir_op(name: str, *inputs, **attrs) -> Tensor:
    """Append IR op `name` (any row of `ir/ops.py`) with these inputs and attributes."""
    if name not in OPS or name == "input":
        from ..errors import expected_one_of
        raise fail(f"nc.ir_op: unknown op '{name}'", hint=expected_one_of(name, [k for k in OPS if k != "input"]))
    t = current_trace(inputs)
    d = OPS[name]
    try:      # attributes with a default in the reference semantics may be left out
        optional = {k for k, p in inspect.signature(d.ref).parameters.items() if p.default is not p.empty}
    except (TypeError, ValueError):
        optional = set()
    missing = [a for a in d.attrs if a not in attrs and a not in optional]
    unknown = [a for a in attrs if a not in d.attrs]
    if unknown or missing:
        raise fail(f"nc.ir_op('{name}'): " + (f"unknown attribute(s) {unknown}" if unknown else
                                              f"missing attribute(s) {missing}"),
                   hint=f"its attributes: {', '.join(OPS[name].attrs) or 'none'}")
    if inputs:
        return _emit(name, *[as_tensor(i, t) for i in inputs], **attrs)
    return Tensor(t.graph.emit(name, **attrs), t)


# --- the operators of Tensor call these ---------------------------------------------------------

@api("matmul")
def matmul(a, b) -> Tensor:
    """a @ b for 2-D operands (a 1-D operand is a row or column vector, as NumPy).
    A transposed operand (x.T) becomes the matmul's transpose flag."""
    t = current_trace((a, b))
    if not (isinstance(a, Tensor) or isinstance(b, Tensor)):
        raise fail("nc.matmul needs tensors")
    a, b = _pair(as_tensor(a, t), as_tensor(b, t))
    a, b = _float(a), _float(b)
    if a.ndim == 0 or b.ndim == 0:
        raise fail(f"nc.matmul of a scalar ({_desc(a)} @ {_desc(b)})", hint="use * to scale")
    if a.ndim > 2 or b.ndim > 2:
        raise fail(f"nc.matmul of {_desc(a)} @ {_desc(b)}: only 2-D (and 1-D) operands are supported",
                   hint="reshape to 2-D first, e.g. x.reshape(-1, k) for a stack of rows")
    va, vb = a.ndim == 1, b.ndim == 1
    ka, kb = a.shape[-1], b.shape[0]
    if ka != kb:
        raise fail(f"nc.matmul: the inner dimensions differ: {_desc(a)} @ {_desc(b)} ({ka} != {kb})",
                   hint=f"expected the last dimension of the left operand ({ka}) to equal the first of the "
                        f"right one ({kb})")
    if va:
        a = _emit("reshape", a, shape=(1, a.shape[0]))
    if vb:
        b = _emit("reshape", b, shape=(b.shape[0], 1))
    ta = a.node.op == "transpose" and a.ndim == 2
    tb = b.node.op == "transpose" and b.ndim == 2
    an = Tensor(a.node.inputs[0], t) if ta else a
    bn = Tensor(b.node.inputs[0], t) if tb else b
    out = _emit("matmul", an, bn, ta=ta, tb=tb)
    if va or vb:
        out = _emit("reshape", out, shape=tuple(d for d, v in ((out.shape[0], va), (out.shape[1], vb)) if not v))
    return out


_tensor._F = sys.modules[__name__]
