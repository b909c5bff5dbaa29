"""The op table: every IR op in one row.

A row says, for one op:
  kind      what it is to the passes: input, const, elementwise, reduction,
            matmul, movement, random, index
  infer     its dtype and shape rule
  ref       its reference NumPy semantics (the interpreter and tests use it)
  grad      its gradient rule, written as IR ops: (G, node, g) -> one gradient
            (or None) per input
  emit      how the NumPy backend writes it into a preallocated buffer:
            a template over {out}, {a}, {b}, ... and the attrs; ops without a
            template fall back to calling `ref` and copying.
Adding an op is adding one row.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from .graph import B, Dim, Graph, Node, Shape


class IRError(ValueError):
    """An op applied to values of the wrong shape or dtype (a compiler bug or a
    shape mistake the frontend turns into a CompileError with a location)."""


NP_DTYPE = {"f32": np.float32, "f64": np.float64, "i64": np.int64}


# --- shape rules --------------------------------------------------------------

def broadcast(a: Shape, b: Shape) -> Shape:
    out: list[Dim] = []
    for i in range(max(len(a), len(b))):
        da = a[len(a) - 1 - i] if i < len(a) else 1
        db = b[len(b) - 1 - i] if i < len(b) else 1
        if da == db or db == 1:
            out.append(da)
        elif da == 1:
            out.append(db)
        else:
            raise IRError(f"cannot broadcast shapes {a} and {b}")
    return tuple(reversed(out))


def norm_axes(axes: Sequence[int], rank: int) -> tuple[int, ...]:
    return tuple(sorted(a % rank for a in axes))


def reduced(shape: Shape, axes: Sequence[int], keepdims: bool) -> Shape:
    axes = norm_axes(axes, len(shape))
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def same(inputs, attrs, g):
    return inputs[0].dtype, inputs[0].shape


def bcast(inputs, attrs, g):
    a, b = inputs
    if a.dtype != b.dtype:
        raise IRError(f"dtype mismatch: {a.dtype} and {b.dtype}")
    return a.dtype, broadcast(a.shape, b.shape)


def like_second(inputs, attrs, g):
    return inputs[0].dtype, inputs[1].shape


def reduce_rule(inputs, attrs, g):
    return inputs[0].dtype, reduced(inputs[0].shape, attrs["axes"], attrs["keepdims"])


def matmul_rule(inputs, attrs, g):
    a, b = inputs
    if len(a.shape) != 2 or len(b.shape) != 2:
        raise IRError(f"matmul needs 2-D operands, got {a.shape} and {b.shape}")
    m, k = a.shape[::-1] if attrs.get("ta") else a.shape
    k2, n = b.shape[::-1] if attrs.get("tb") else b.shape
    if k != k2:
        raise IRError(f"matmul inner dimensions differ: {a.shape} @ {b.shape}")
    return a.dtype, (m, n)


def reshape_rule(inputs, attrs, g):
    shape = tuple(attrs["shape"])
    src = inputs[0].shape
    n_src = math.prod(d for d in src if d != B)
    n_dst = math.prod(d for d in shape if d != B)
    if (B in src) != (B in shape) or n_src != n_dst:
        raise IRError(f"cannot reshape {src} to {shape}")
    return inputs[0].dtype, shape


def rowwise(inputs, attrs, g):
    return inputs[0].dtype, inputs[0].shape


def take_label_rule(inputs, attrs, g):
    p, y = inputs
    if y.dtype != "i64" or y.shape != p.shape[:-1]:
        raise IRError(f"take_label needs i64 labels of shape {p.shape[:-1]}, got {y.type_str}")
    return p.dtype, p.shape[:-1]


def onehot_rule(inputs, attrs, g):
    return attrs["dtype"], inputs[0].shape + (attrs["depth"],)


def argmax_rule(inputs, attrs, g):
    return "i64", inputs[0].shape[:-1]


def equal_rule(inputs, attrs, g):
    return g.float_dtype, broadcast(inputs[0].shape, inputs[1].shape)


def cast_rule(inputs, attrs, g):
    return attrs["dtype"], inputs[0].shape


def const_rule(inputs, attrs, g):
    return attrs["dtype"], ()


def no_infer(inputs, attrs, g):
    raise IRError("inputs are created with Graph.input")


# --- gradient helpers -----------------------------------------------------------

def reduce_like(G: Graph, g: Node, x: Node) -> Node:
    """Sum `g` down to `x`'s shape (undo broadcasting)."""
    if g.shape == x.shape:
        return g
    return G.emit("reduce_like", g, x)


def reduce_like_axes(gshape: Shape, xshape: Shape) -> tuple[int, ...]:
    lead = len(gshape) - len(xshape)
    axes = list(range(lead))
    for i, d in enumerate(xshape):
        if d == 1 and gshape[lead + i] != 1:
            axes.append(lead + i)
    return tuple(axes)


def _grad_matmul(G, n, g):
    a, b = n.inputs
    ta, tb = n.attrs.get("ta", False), n.attrs.get("tb", False)
    mm = lambda x, y, **kw: G.emit("matmul", x, y, ta=kw.get("ta", False), tb=kw.get("tb", False))
    if not ta and not tb:
        return mm(g, b, tb=True), mm(a, g, ta=True)
    if ta and not tb:
        return mm(b, g, tb=True), mm(a, g)
    if not ta and tb:
        return mm(g, b), mm(g, a, ta=True)
    return mm(b, g, ta=True, tb=True), mm(g, a, ta=True, tb=True)


def _grad_div(G, n, g):
    a, b = n.inputs
    da = reduce_like(G, G.emit("div", g, b), a)
    db = reduce_like(G, G.emit("neg", G.emit("div", G.emit("mul", g, n), b)), b)
    return da, db


def _grad_softmax(G, n, g):
    gy = G.emit("mul", g, n)
    s = G.emit("sum", gy, axes=(-1,), keepdims=True)
    return (G.emit("mul", n, G.emit("sub", g, s)),)


def _grad_log_softmax(G, n, g):
    s = G.emit("sum", g, axes=(-1,), keepdims=True)
    return (G.emit("sub", g, G.emit("mul", G.emit("exp", n), s)),)


def _grad_take_label(G, n, g):
    p, y = n.inputs
    oh = G.emit("onehot", y, depth=p.shape[-1], dtype=p.dtype)
    g2 = G.emit("reshape", g, shape=g.shape + (1,))
    return G.emit("mul", oh, g2), None


def _grad_tanh(G, n, g):
    one = G.const(1.0, n.dtype)
    return (G.emit("mul", g, G.emit("sub", one, G.emit("square", n))),)


def _grad_sigmoid(G, n, g):
    one = G.const(1.0, n.dtype)
    return (G.emit("mul", g, G.emit("mul", n, G.emit("sub", one, n))),)


# --- reference semantics ----------------------------------------------------------

def _sigmoid(a):
    return (0.5 * (1.0 + np.tanh(0.5 * a))).astype(a.dtype)


def _gelu(a):
    c = np.asarray(math.sqrt(2.0 / math.pi), a.dtype)
    return (0.5 * a * (1.0 + np.tanh(c * (a + 0.044715 * a ** 3)))).astype(a.dtype)


def _gelu_grad(g, a):
    c = math.sqrt(2.0 / math.pi)
    inner = c * (a + 0.044715 * a ** 3)
    t = np.tanh(inner)
    d = 0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * a * a)
    return (g * d).astype(g.dtype)


def _log_softmax(a):
    m = a.max(axis=-1, keepdims=True)
    s = a - m
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def _softmax(a):
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _unreduce(g, x, axes, keepdims, mean):
    axes = norm_axes(axes, x.ndim)
    if not keepdims:
        g = np.expand_dims(g, axes)
    out = np.broadcast_to(g, x.shape).astype(g.dtype, copy=True)
    if mean:
        out *= g.dtype.type(1.0 / max(1, math.prod(x.shape[a] for a in axes)))
    return out


def _reduce_like(g, x):
    axes = reduce_like_axes(g.shape, x.shape)
    return np.sum(g, axis=axes, keepdims=True).reshape(x.shape).astype(g.dtype)


def _take_label(p, y):
    return np.take_along_axis(p, y[..., None], axis=-1)[..., 0]


def _onehot(y, depth, dtype):
    out = np.zeros(y.shape + (depth,), NP_DTYPE[dtype])
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out


def _dropout_mask(x, seed, rate, stream):
    from . import philox
    s = int(np.asarray(seed).reshape(-1)[0])
    step = int(np.asarray(seed).reshape(-1)[1])
    keep = philox.dropout_keep_mask(s, step, stream, x.shape, rate)
    return (keep * (1.0 / (1.0 - rate))).astype(x.dtype)


# --- the table ----------------------------------------------------------------------

@dataclass(frozen=True)
class OpDef:
    name: str
    kind: str
    infer: Callable
    ref: Optional[Callable] = None
    grad: Optional[Callable] = None
    emit: Optional[str] = None
    attrs: tuple[str, ...] = ()
    # the NumPy emitter may write the output into the buffer of its first input
    inplace_ok: bool = False


OPS: dict[str, OpDef] = {}


def op(name, kind, infer, ref=None, grad=None, emit=None, attrs=(), inplace_ok=False):
    OPS[name] = OpDef(name, kind, infer, ref, grad, emit, tuple(attrs), inplace_ok)


def unary(name, ref, grad, emit, **kw):
    op(name, "elementwise", same, ref, grad, emit, inplace_ok=True, **kw)


def binary(name, ref, grad, emit):
    op(name, "elementwise", bcast, ref, grad, emit, inplace_ok=True)


E = "elementwise"
op("input", "input", no_infer, attrs=("name",))
op("const", "const", const_rule, attrs=("value", "dtype"))

binary("add", np.add,
       lambda G, n, g: (reduce_like(G, g, n.inputs[0]), reduce_like(G, g, n.inputs[1])),
       "np.add({a}, {b}, out={out})")
binary("sub", np.subtract,
       lambda G, n, g: (reduce_like(G, g, n.inputs[0]),
                        reduce_like(G, G.emit("neg", g), n.inputs[1])),
       "np.subtract({a}, {b}, out={out})")
binary("mul", np.multiply,
       lambda G, n, g: (reduce_like(G, G.emit("mul", g, n.inputs[1]), n.inputs[0]),
                        reduce_like(G, G.emit("mul", g, n.inputs[0]), n.inputs[1])),
       "np.multiply({a}, {b}, out={out})")
binary("div", np.divide, _grad_div, "np.divide({a}, {b}, out={out})")
binary("maximum", np.maximum, None, "np.maximum({a}, {b}, out={out})")
# relu'(x) * g, with the mask taken from the relu's output (or input: same sign)
binary("relu_grad", lambda g, y: np.where(y > 0, g, np.zeros((), g.dtype)).astype(g.dtype), None,
       "np.multiply({a}, {b} > 0, out={out})")
op("leaky_grad", E, bcast,
   lambda g, x, alpha: np.where(x > 0, g, g * np.asarray(alpha, g.dtype)).astype(g.dtype),
   None, None, attrs=("alpha",))
op("gelu_grad", E, bcast, _gelu_grad, None, None)
op("clip_grad", E, bcast,
   lambda g, x, lo, hi: np.where((x >= lo) & (x <= hi), g, np.zeros((), g.dtype)).astype(g.dtype),
   None, None, attrs=("lo", "hi"))

unary("neg", np.negative, lambda G, n, g: (G.emit("neg", g),), "np.negative({a}, out={out})")
unary("exp", np.exp, lambda G, n, g: (G.emit("mul", g, n),), "np.exp({a}, out={out})")
unary("log", np.log, lambda G, n, g: (G.emit("div", g, n.inputs[0]),), "np.log({a}, out={out})")
unary("sqrt", np.sqrt,
      lambda G, n, g: (G.emit("div", G.emit("mul", g, G.const(0.5, n.dtype)), n),),
      "np.sqrt({a}, out={out})")
unary("square", np.square,
      lambda G, n, g: (G.emit("mul", g, G.emit("mul", n.inputs[0], G.const(2.0, n.dtype))),),
      "np.square({a}, out={out})")
unary("abs", np.abs, lambda G, n, g: (G.emit("mul", g, G.emit("sign", n.inputs[0])),),
      "np.abs({a}, out={out})")
unary("sign", np.sign, lambda G, n, g: (None,), "np.sign({a}, out={out})")
unary("relu", lambda a: np.maximum(a, np.zeros((), a.dtype)),
      lambda G, n, g: (G.emit("relu_grad", g, n),), "np.maximum({a}, 0, out={out})")
unary("sigmoid", _sigmoid, _grad_sigmoid,
      "np.multiply({a}, 0.5, out={out}); np.tanh({out}, out={out}); "
      "np.multiply({out}, 0.5, out={out}); np.add({out}, 0.5, out={out})")
unary("tanh", np.tanh, _grad_tanh, "np.tanh({a}, out={out})")
# log(1 + exp(x)), stable for any x; smooth, so its gradient sigmoid(x) has no kink
unary("softplus", lambda a: np.logaddexp(np.zeros((), a.dtype), a),
      lambda G, n, g: (G.emit("mul", g, G.emit("sigmoid", n.inputs[0])),),
      "np.logaddexp(0, {a}, out={out})")
op("leaky_relu", E, same, lambda a, alpha: np.where(a > 0, a, a * np.asarray(alpha, a.dtype)),
   lambda G, n, g: (G.emit("leaky_grad", g, n.inputs[0], alpha=n.attrs["alpha"]),),
   None, attrs=("alpha",))
op("gelu", E, same, _gelu, lambda G, n, g: (G.emit("gelu_grad", g, n.inputs[0]),), None)
op("clip", E, same, lambda a, lo, hi: np.clip(a, lo, hi).astype(a.dtype),
   lambda G, n, g: (G.emit("clip_grad", g, n.inputs[0], lo=n.attrs["lo"], hi=n.attrs["hi"]),),
   "np.clip({a}, {lo}, {hi}, out={out})", attrs=("lo", "hi"))
op("cast", E, cast_rule, lambda a, dtype: a.astype(NP_DTYPE[dtype]),
   lambda G, n, g: (G.emit("cast", g, dtype=n.inputs[0].dtype),), None, attrs=("dtype",))

op("sum", "reduction", reduce_rule,
   lambda a, axes, keepdims: np.sum(a, axis=norm_axes(axes, a.ndim), keepdims=keepdims).astype(a.dtype),
   lambda G, n, g: (G.emit("unreduce", g, n.inputs[0], axes=n.attrs["axes"],
                           keepdims=n.attrs["keepdims"], mean=False),),
   None, attrs=("axes", "keepdims"))
op("mean", "reduction", reduce_rule,
   lambda a, axes, keepdims: np.mean(a, axis=norm_axes(axes, a.ndim), keepdims=keepdims).astype(a.dtype),
   lambda G, n, g: (G.emit("unreduce", g, n.inputs[0], axes=n.attrs["axes"],
                           keepdims=n.attrs["keepdims"], mean=True),),
   None, attrs=("axes", "keepdims"))
op("max", "reduction", reduce_rule,
   lambda a, axes, keepdims: np.max(a, axis=norm_axes(axes, a.ndim), keepdims=keepdims),
   None, None, attrs=("axes", "keepdims"))
# the gradients of reductions: broadcast back / sum down
op("unreduce", "movement", like_second, _unreduce, None, None, attrs=("axes", "keepdims", "mean"))
op("reduce_like", "reduction", like_second, _reduce_like, None, None)

op("matmul", "matmul", matmul_rule,
   lambda a, b, ta=False, tb=False: np.matmul(a.T if ta else a, b.T if tb else b),
   _grad_matmul, None, attrs=("ta", "tb"))
op("reshape", "movement", reshape_rule,
   lambda a, shape: a.reshape(tuple(a.shape[0] if d == B else d for d in shape)),
   lambda G, n, g: (G.emit("reshape", g, shape=n.inputs[0].shape),), None, attrs=("shape",))

op("softmax", "rowwise", rowwise, _softmax, _grad_softmax, None)
op("log_softmax", "rowwise", rowwise, _log_softmax, _grad_log_softmax, None)
op("take_label", "index", take_label_rule, _take_label, _grad_take_label, None)
op("onehot", "index", onehot_rule, _onehot, lambda G, n, g: (None,), None, attrs=("depth", "dtype"))
op("argmax", "index", argmax_rule, lambda a: np.argmax(a, axis=-1), lambda G, n, g: (None,), None)
op("equal", E, equal_rule, np.equal, lambda G, n, g: (None, None), "np.equal({a}, {b}, out={out})")
op("greater", E, equal_rule, np.greater, lambda G, n, g: (None, None), "np.greater({a}, {b}, out={out})")
# keep-mask / (1 - rate) for dropout; `seed` is an i64[2] input (seed, step)
op("dropout_mask", "random", lambda i, a, g: (i[0].dtype, i[0].shape), _dropout_mask,
   lambda G, n, g: (None, None), None, attrs=("rate", "stream"))


def _softmax_xent(z, y):
    m = z.max(axis=-1, keepdims=True)
    lse = (np.log(np.exp(z - m).sum(axis=-1, keepdims=True)) + m)[..., 0]
    return lse - np.take_along_axis(z, y[..., None], axis=-1)[..., 0]


def _softmax_xent_grad(z, y, g):
    p = _softmax(z)
    np.put_along_axis(p, y[..., None], np.take_along_axis(p, y[..., None], axis=-1) - 1, axis=-1)
    return p * g[..., None]


def _xent_grad_rule(G, n, g):
    z, y = n.inputs
    return G.emit("softmax_xent_grad", z, y, g), None


def _xent_grad_infer(inputs, attrs, g):
    return inputs[0].dtype, inputs[0].shape


# softmax cross-entropy on sparse labels, fused: per-row -log softmax(z)[y],
# and its gradient (softmax(z) - onehot(y)) * g, each one stable row kernel
op("softmax_xent", "rowwise", take_label_rule, _softmax_xent, _xent_grad_rule, None)
op("softmax_xent_grad", "rowwise", _xent_grad_infer, _softmax_xent_grad, None, None)


def _slice_flat_rule(inputs, attrs, g):
    x = inputs[0]
    n = math.prod(attrs["shape"])
    if len(x.shape) != 1 or attrs["offset"] + n > x.shape[0]:
        raise IRError(f"slice_flat of {n} elements at {attrs['offset']} does not fit {x.type_str}")
    return x.dtype, tuple(attrs["shape"])


def _concat_flat_rule(inputs, attrs, g):
    if any(B in i.shape for i in inputs) or len({i.dtype for i in inputs}) != 1:
        raise IRError("concat_flat needs static shapes of one dtype")
    return inputs[0].dtype, (sum(math.prod(i.shape) for i in inputs),)


# a flat buffer of all parameters: each parameter is a view into it, and their
# gradients are laid out the same way, so the optimizer updates all at once
op("slice_flat", "movement", _slice_flat_rule,
   lambda x, offset, shape: x[offset:offset + math.prod(shape)].reshape(shape), None, None,
   attrs=("offset", "shape"))
op("concat_flat", "movement", _concat_flat_rule,
   lambda *xs: np.concatenate([x.reshape(-1) for x in xs]), None, None)


def reference(node: Node, args: list[np.ndarray]) -> np.ndarray:
    """Evaluate one node with its reference semantics."""
    opdef = OPS[node.op]
    if node.op == "const":
        return np.asarray(node.attrs["value"], NP_DTYPE[node.dtype])
    if opdef.ref is None:
        raise IRError(f"op {node.op} has no reference semantics")
    attrs = {k: node.attrs[k] for k in opdef.attrs if k in node.attrs}
    out = opdef.ref(*args, **attrs)
    return np.asarray(out).astype(NP_DTYPE[node.dtype], copy=False)
