"""The NumPy backend's op table: how each IR op becomes Python source.

`EMITTERS[op](ctx, node, args, out)` returns one line of Python that computes
the node into the preallocated array `out` from the argument expressions
`args` (with `out=`, so a step allocates nothing). A string is a template over
`{out}`, `{a}`, `{b}`, ... and the node's attributes. An emitter may return
None for a form it does not handle (a softmax that is not 2-D, say); the node
then falls back to its reference semantics.

Every emitter of an op whose IR row says `inplace` must give the right answer
when `out` is the same array as one of its same-shaped arguments: each
argument element is read before that element of `out` is written.

`VIEWS[op](node, args)` gives the expression of a view (no buffer).
`SCALAR[op]` computes a scalar node as Python float arithmetic (see codegen).
`FALLBACK` lists the ops that have no emitter on purpose: they run their
reference semantics (`OpDef.ref`) and copy the result into `out`, which
allocates a temporary per call. `STRUCTURAL` ops are not computed at all
(inputs, constants). `tests/backends/test_op_tables.py` checks that every op
of the IR table is in one of these.
"""
from __future__ import annotations

import math
from typing import Callable, Union

from ...ir.ops import norm_axes, sum_to_axes
from ..common import dim, shape_src
from .windows import EMITTERS as WINDOW_EMITTERS

Emitter = Union[str, Callable]

STRUCTURAL = frozenset({"input", "const"})
# gelu (exact: erfc by ir/special.py; and the tanh form) and the backward helpers of
# leaky_relu, gelu and clip: rare in the workloads measured, and each needs several
# passes with scratch buffers (the native path has a C expression for every one)
FALLBACK = frozenset({"leaky_relu", "gelu", "gelu_tanh", "leaky_grad", "gelu_grad", "gelu_tanh_grad",
                      "clip_grad"})

SCALAR: dict[str, str] = {
    "add": "({a} + {b})", "sub": "({a} - {b})", "mul": "({a} * {b})", "neg": "(-{a})",
    "square": "({a} * {a})", "div": "_s.sdiv({a}, {b})", "exp": "_s.sexp({a})",
    "log": "_s.slog({a})", "sqrt": "_s.ssqrt({a})",
}


def _count(shape, axes) -> str:
    dims = [dim(shape[a]) for a in axes]
    return "*".join(dims) if dims else "1"


def _relu_grad(ctx, n, a, out):
    if n.inputs[1].shape != n.shape:
        return f"np.multiply({a[0]}, {a[1]} > 0, out={out})"
    # the mask into a preallocated bool buffer: `y > 0` would allocate one every step
    mask = ctx.scratch(n, "m", n.shape, "bool")
    return f"np.greater({a[1]}, 0, out={mask}); np.multiply({a[0]}, {mask}, out={out})"


# each computes its scratch from `a` before writing `out`, which may alias `a`
def _elu(ctx, n, a, out):
    s = ctx.scratch(n, 0, n.shape)   # alpha * expm1(min(x, 0))
    return (f"np.minimum({a[0]}, 0, out={s}); np.expm1({s}, out={s}); np.multiply({s}, {n.attrs['alpha']!r}, out={s}); "
            f"np.maximum({a[0]}, 0, out={out}); np.add({out}, {s}, out={out})")


def _silu(ctx, n, a, out):
    s = ctx.scratch(n, 0, n.shape)   # sigmoid(x), in the form of the sigmoid emitter
    return (f"np.multiply({a[0]}, 0.5, out={s}); np.tanh({s}, out={s}); np.multiply({s}, 0.5, out={s}); "
            f"np.add({s}, 0.5, out={s}); np.multiply({a[0]}, {s}, out={out})")


def _softsign(ctx, n, a, out):
    s = ctx.scratch(n, 0, n.shape)   # 1 + |x|
    return f"np.abs({a[0]}, out={s}); np.add({s}, 1.0, out={s}); np.divide({a[0]}, {s}, out={out})"


def _matmul(ctx, n, a, out):
    x = a[0] + (".T" if n.attrs.get("ta") else "")
    y = a[1] + (".T" if n.attrs.get("tb") else "")
    return f"np.matmul({x}, {y}, out={out})"


def _reduce(ctx, n, a, out):
    # ufunc.reduce directly: np.sum/np.mean add microseconds of Python per call
    axes = norm_axes(n.attrs["axes"], len(n.inputs[0].shape))
    fn = "np.maximum.reduce" if n.op == "max" else "np.add.reduce"
    code = f"{fn}({a[0]}, axis={axes!r}, keepdims={n.attrs['keepdims']}, out={out})"
    if n.op == "mean":
        k = ctx.make_value(n, "k", f"1.0 / max(1, {_count(n.inputs[0].shape, axes)})")
        code += f"; np.multiply({out}, {k}, out={out})"
    return code


def _unreduce(ctx, n, a, out):
    x = n.inputs[1]
    axes = norm_axes(n.attrs["axes"], len(x.shape))
    src = a[0] if n.attrs["keepdims"] or not axes else f"np.expand_dims({a[0]}, {axes!r})"
    code = f"np.copyto({out}, {src})"
    if n.attrs["mean"]:
        k = ctx.make_value(n, "k", f"1.0 / max(1, {_count(x.shape, axes)})")
        code += f"; np.multiply({out}, {k}, out={out})"
    return code


def _reduce_like(ctx, n, a, out):
    gshape, xshape = n.inputs[0].shape, n.inputs[1].shape
    keep = (1,) * (len(gshape) - len(xshape)) + tuple(xshape)
    view = ctx.make_value(n, "w", f"{out}.reshape({shape_src(keep)})")
    return f"np.add.reduce({a[0]}, axis={sum_to_axes(gshape, xshape)!r}, keepdims=True, out={view})"


def _softmax(ctx, n, a, out):
    if len(n.shape) != 2:
        return None
    s0 = ctx.scratch(n, 0, (n.shape[0], 1))
    code = [f"np.maximum.reduce({a[0]}, axis=1, keepdims=True, out={s0})",
            f"np.subtract({a[0]}, {s0}, out={out})"]
    if n.op == "softmax":
        code += [f"np.exp({out}, out={out})", f"np.add.reduce({out}, axis=1, keepdims=True, out={s0})",
                 f"np.divide({out}, {s0}, out={out})"]
    else:
        s1 = ctx.scratch(n, 1, n.shape)
        code += [f"np.exp({out}, out={s1})", f"np.add.reduce({s1}, axis=1, keepdims=True, out={s0})",
                 f"np.log({s0}, out={s0})", f"np.subtract({out}, {s0}, out={out})"]
    return "; ".join(code)


def _softmax_xent(ctx, n, a, out):
    # loss = log(sum(exp(z - max))) - (z[y] - max); the probabilities stay in a
    # scratch buffer for the gradient of the same (z, y), which needs only them
    z, y = a
    zn = n.inputs[0]
    if len(zn.shape) != 2:
        return None
    row = (zn.shape[0], 1)
    s0, s1, s2 = ctx.scratch(n, 0, row), ctx.scratch(n, 1, zn.shape), ctx.scratch(n, 2, row)
    ctx.probs[(zn.id, n.inputs[1].id)] = s1
    return "; ".join([f"np.maximum.reduce({z}, axis=1, keepdims=True, out={s0})",
                      f"np.subtract({z}, {s0}, out={s1})",
                      f"np.exp({s1}, out={s1})", f"np.add.reduce({s1}, axis=1, keepdims=True, out={s2})",
                      f"np.divide({s1}, {s2}, out={s1})", f"np.log({s2}, out={s2})",
                      f"np.add({s2}, {s0}, out={s2})",
                      f"np.subtract({s2}[:, 0], {z}[{ctx.arange(n.shape[0])}, {y}], out={out})"])


def _softmax_xent_grad(ctx, n, a, out):
    z, y, dy = a
    if len(n.shape) != 2:
        return None
    ar = ctx.arange(n.shape[0])
    probs = ctx.probs.get((n.inputs[0].id, n.inputs[1].id))
    if probs is not None:  # (softmax - onehot) * dy from the forward's probabilities
        return "; ".join([f"np.multiply({probs}, {dy}[:, None], out={out})", f"{out}[{ar}, {y}] -= {dy}"])
    s0 = ctx.scratch(n, 0, (n.shape[0], 1))
    return "; ".join([f"np.maximum.reduce({z}, axis=1, keepdims=True, out={s0})",
                      f"np.subtract({z}, {s0}, out={out})",
                      f"np.exp({out}, out={out})", f"np.add.reduce({out}, axis=1, keepdims=True, out={s0})",
                      f"np.divide({out}, {s0}, out={out})", f"{out}[{ar}, {y}] -= 1",
                      f"np.multiply({out}, {dy}[:, None], out={out})"])


def _take_label(ctx, n, a, out):
    if len(n.inputs[0].shape) != 2:
        return None
    return f"np.copyto({out}, {a[0]}[{ctx.arange(n.shape[0])}, {a[1]}])"


def _onehot(ctx, n, a, out):
    if len(n.shape) != 2:
        return None
    return f"{out}.fill(0); {out}[{ctx.arange(n.shape[0])}, {a[0]}] = 1"


def _where(ctx, n, a, out):
    # out = b, then a where the condition holds (a mask of the condition's shape, made once)
    c = n.inputs[0]
    mask = ctx.scratch(n, "m", c.shape, "bool")
    return f"np.not_equal({a[0]}, 0, out={mask}); np.copyto({out}, {a[2]}); np.copyto({out}, {a[1]}, where={mask})"


def _concat_flat(ctx, n, a, out):
    lines, off = [], 0
    for x, ax in zip(n.inputs, a):
        size = math.prod(x.shape)
        if ctx.plan.placed.get(x.id) != (n.id, off):  # not written in place: copy it in
            lines.append(f"{out}[{off}:{off + size}] = {ax}.reshape(-1)")
        off += size
    return "; ".join(lines) or "pass"


EMITTERS: dict[str, Emitter] = {
    "add": "np.add({a}, {b}, out={out})",
    "sub": "np.subtract({a}, {b}, out={out})",
    "mul": "np.multiply({a}, {b}, out={out})",
    "div": "np.divide({a}, {b}, out={out})",
    "maximum": "np.maximum({a}, {b}, out={out})",
    "equal": "np.equal({a}, {b}, out={out})",
    "greater": "np.greater({a}, {b}, out={out})",
    "greater_equal": "np.greater_equal({a}, {b}, out={out})",
    "not_equal": "np.not_equal({a}, {b}, out={out})",
    "where": _where,
    "transpose": "np.copyto({out}, np.transpose({a}, {perm}))",
    "neg": "np.negative({a}, out={out})",
    "exp": "np.exp({a}, out={out})",
    "log": "np.log({a}, out={out})",
    "sqrt": "np.sqrt({a}, out={out})",
    "square": "np.square({a}, out={out})",
    "abs": "np.abs({a}, out={out})",
    "sign": "np.sign({a}, out={out})",
    "relu": "np.maximum({a}, 0, out={out})",
    "sigmoid": "np.multiply({a}, 0.5, out={out}); np.tanh({out}, out={out}); "
               "np.multiply({out}, 0.5, out={out}); np.add({out}, 0.5, out={out})",
    "tanh": "np.tanh({a}, out={out})",
    "softplus": "np.logaddexp(0, {a}, out={out})",
    "elu": _elu, "silu": _silu, "softsign": _softsign,
    "clip": "np.clip({a}, {lo}, {hi}, out={out})",
    "cast": "np.copyto({out}, {a}, casting='unsafe')",
    "round_to": "_s.round_to({a}, {precision}, {out})",
    "relu_grad": _relu_grad,
    "sum": _reduce, "mean": _reduce, "max": _reduce,
    "unreduce": _unreduce,
    "reduce_like": _reduce_like,
    "matmul": _matmul,
    "softmax": _softmax, "log_softmax": _softmax,
    "softmax_xent": _softmax_xent,
    "softmax_xent_grad": _softmax_xent_grad,
    "take_label": _take_label,
    "onehot": _onehot,
    "argmax": "np.argmax({a}, axis=-1, out={out})",
    "dropout_mask": lambda ctx, n, a, out: (f"_s.dropout_mask({a[1]}, {n.attrs['rate']!r}, "
                                            f"{n.attrs['stream']!r}, {out})"),
    "concat_flat": _concat_flat,
    "shard_mean": "_s.shard_mean({a}, {out})",
}


def _axis_index(n, axis, start, stop) -> str:
    return "[" + ", ".join([":"] * axis + [f"{start}:{stop}"]) + "]"


def _concat(ctx, n, a, out):
    axis, off, lines = n.attrs["axis"] % len(n.shape), 0, []
    for x, ax in zip(n.inputs, a):
        lines.append(f"np.copyto({out}{_axis_index(n, axis, off, off + x.shape[axis])}, {ax})")
        off += x.shape[axis]
    return "; ".join(lines)


def _slice(ctx, n, a, out):
    axis = n.attrs["axis"] % len(n.shape)
    return f"np.copyto({out}, {a[0]}{_axis_index(n, axis, n.attrs['start'], n.attrs['stop'])})"


def _pad(ctx, n, a, out):
    axis = n.attrs["axis"] % len(n.shape)
    before = n.attrs["before"]
    inner = _axis_index(n, axis, before, before + n.inputs[0].shape[axis])
    return f"{out}.fill(0); np.copyto({out}{inner}, {a[0]})"


EMITTERS.update(WINDOW_EMITTERS)
EMITTERS.update({"concat": _concat, "slice": _slice, "pad": _pad})


def _slice_flat(n, a):
    o, size = n.attrs["offset"], math.prod(n.shape)
    return f"{a[0]}[{o}:{o + size}].reshape({shape_src(n.shape)})"


VIEWS: dict[str, Callable] = {
    "reshape": lambda n, a: f"{a[0]}.reshape({shape_src(n.shape)})",
    "slice_flat": _slice_flat,
}


def emit(ctx, n, args: list[str], out: str):
    """The line computing `n` into `out`, or None when only the fallback can."""
    e = EMITTERS.get(n.op)
    if e is None:
        return None
    if isinstance(e, str):
        fields = {"out": out, **{k: repr(v) for k, v in n.attrs.items()}}
        fields.update(zip("abcd", args))
        return e.format(**fields)
    return e(ctx, n, args, out)
