"""The op table: every IR op in one row, and the only place an op's rules live.

A row (`op(name, kind=..., infer=..., ...)`) says, for one op:

  kind       what it is: input, const, elementwise, reduction, matmul,
             movement, rowwise, index, random, collective (talks to the other
             workers of a data-parallel run: never hoisted out of the step,
             run by every worker in the same order)
  infer      its dtype and shape rule (`ir/shapes.py`)
  ref        its reference NumPy semantics: the interpreter, the tests and the
             backends' fallbacks run it
  grad       its gradient rule, written as IR ops: `(g, node, dy)` returns one
             gradient node (or None: no gradient flows) per input; an op without
             a rule cannot be differentiated
  attrs      its static attributes, passed to `ref` by keyword
  pointwise  output element i depends only on input elements at i's index (after
             broadcasting): fusion may compute it in registers inside a group.
             Every elementwise op, plus `unreduce` (a broadcast) and
             `dropout_mask` (one counter-based draw per flat index)
  inplace    the output may be written over a same-shaped input (each element,
             or each row, is read before it is written); every backend's emitter
             for the op must allow that aliasing
  view       no kernel and no buffer: the output is a view of the first input
  workspace  `node -> [(shape, dtype), ...]`: scratch buffers a lowering by
             explicit columns needs while the op runs (im2col columns); the
             memory plan allocates them, a backend that needs none ignores them
  head       a contraction (matmul, convolution) whose kernel can apply an
             epilogue to its accumulator before the store
  epilogue   what such an epilogue may apply: "bias" (adding a vector of the
             output's last dimension), "activation" (a function of the value
             alone), "mask" (`relu_grad`: the ReLU backward, zero where a
             same-shaped input is not positive)

Passes and backends ask these columns, never op names. How each backend lowers
an op is that backend's own table (`backends/*/lowering.py`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from . import collective
from . import shapes as S
from . import windows as W
from .precision import round_to as _round_to
from .special import erfc
from .graph import B, Graph, Node
from .shapes import IRError, norm_axes, sum_to_axes

__all__ = ["OPS", "OpDef", "op", "IRError", "NP_DTYPE", "reference", "sum_to", "norm_axes",
           "sum_to_axes"]

NP_DTYPE = {"f32": np.float32, "f64": np.float64, "i64": np.int64}

INPUT, CONST, ELEMENTWISE, REDUCTION, MATMUL = "input", "const", "elementwise", "reduction", "matmul"
MOVEMENT, ROWWISE, INDEX, RANDOM, CONV, POOL = "movement", "rowwise", "index", "random", "conv", "pool"
COLLECTIVE = "collective"


@dataclass(frozen=True)
class OpDef:
    name: str
    kind: str
    infer: Callable
    ref: Optional[Callable] = None
    grad: Optional[Callable] = None
    attrs: tuple[str, ...] = ()
    pointwise: bool = False
    inplace: bool = False
    view: bool = False
    head: bool = False
    epilogue: Optional[str] = None
    workspace: Optional[Callable] = None


OPS: dict[str, OpDef] = {}


def op(name: str, *, kind: str, infer: Callable, ref: Optional[Callable] = None,
       grad: Optional[Callable] = None, attrs=(), pointwise: Optional[bool] = None,
       inplace: bool = False, view: bool = False, head: bool = False,
       epilogue: Optional[str] = None, workspace: Optional[Callable] = None) -> OpDef:
    """Add (or replace) the row of op `name`; see the module doc for the columns."""
    if pointwise is None:
        pointwise = kind == ELEMENTWISE
    d = OpDef(name, kind, infer, ref, grad, tuple(attrs), pointwise, inplace, view, head, epilogue, workspace)
    OPS[name] = d
    return d


def unary(name: str, ref, grad, **kw) -> OpDef:
    """An elementwise op of one input that may run in place."""
    return op(name, kind=ELEMENTWISE, infer=S.same, ref=ref, grad=grad, inplace=True, **kw)


def binary(name: str, ref, grad, **kw) -> OpDef:
    """An elementwise op of two broadcast inputs that may run in place."""
    return op(name, kind=ELEMENTWISE, infer=S.bcast, ref=ref, grad=grad, inplace=True, **kw)


def no_grad(g, n, dy):
    """The op's output does not depend smoothly on any input (comparisons, argmax, ...)."""
    return (None,) * len(n.inputs)


# --- gradient helpers -------------------------------------------------------------------

def sum_to(g: Graph, dy: Node, x: Node) -> Node:
    """Sum `dy` down to `x`'s shape (undo broadcasting)."""
    if dy.shape == x.shape:
        return dy
    return g.emit("reduce_like", dy, x)


def _grad_matmul(g, n, dy):
    a, b = n.inputs
    ta, tb = n.attrs.get("ta", False), n.attrs.get("tb", False)

    def mm(x, y, ta=False, tb=False):
        return g.emit("matmul", x, y, ta=ta, tb=tb)
    if not ta and not tb:
        return mm(dy, b, tb=True), mm(a, dy, ta=True)
    if ta and not tb:
        return mm(b, dy, tb=True), mm(a, dy)
    if not ta and tb:
        return mm(dy, b), mm(dy, a, ta=True)
    return mm(b, dy, ta=True, tb=True), mm(dy, a, ta=True, tb=True)


def _grad_div(g, n, dy):
    a, b = n.inputs
    da = sum_to(g, g.emit("div", dy, b), a)
    db = sum_to(g, g.emit("neg", g.emit("div", g.emit("mul", dy, n), b)), b)
    return da, db


def _grad_softmax(g, n, dy):
    s = g.emit("sum", g.emit("mul", dy, n), axes=(-1,), keepdims=True)
    return (g.emit("mul", n, g.emit("sub", dy, s)),)


def _grad_log_softmax(g, n, dy):
    s = g.emit("sum", dy, axes=(-1,), keepdims=True)
    return (g.emit("sub", dy, g.emit("mul", g.emit("exp", n), s)),)


def _grad_take_label(g, n, dy):
    p, y = n.inputs
    oh = g.emit("onehot", y, depth=p.shape[-1], dtype=p.dtype)
    return g.emit("mul", oh, g.emit("reshape", dy, shape=dy.shape + (1,))), None


def _grad_tanh(g, n, dy):
    return (g.emit("mul", dy, g.emit("sub", g.const(1.0, n.dtype), g.emit("square", n))),)


def _grad_sigmoid(g, n, dy):
    return (g.emit("mul", dy, g.emit("mul", n, g.emit("sub", g.const(1.0, n.dtype), n))),)


def _grad_silu(g, n, dy):
    x = n.inputs[0]
    s = g.emit("sigmoid", x)
    one = g.const(1.0, n.dtype)
    return (g.emit("mul", dy, g.emit("mul", s, g.emit("add", one, g.emit("mul", x, g.emit("sub", one, s))))),)


def _grad_unreduce_of(mean: bool):
    def rule(g, n, dy):
        return (g.emit("unreduce", dy, n.inputs[0], axes=n.attrs["axes"], keepdims=n.attrs["keepdims"],
                       mean=mean),)
    return rule


def _mask(g, op, a, b, dtype):
    """0/1 of `op(a, b)` (a comparison) in `dtype`."""
    m = g.emit(op, a, b)
    return m if m.dtype == dtype else g.emit("cast", m, dtype=dtype)


def _grad_maximum(g, n, dy):
    # as torch: the gradient goes to the larger input, split evenly on a tie
    a, b = n.inputs
    half = g.emit("mul", _mask(g, "equal", a, b, dy.dtype), g.const(0.5, dy.dtype))
    da = g.emit("mul", dy, g.emit("add", _mask(g, "greater", a, b, dy.dtype), half))
    db = g.emit("mul", dy, g.emit("add", _mask(g, "greater", b, a, dy.dtype), half))
    return sum_to(g, da, a), sum_to(g, db, b)


def _grad_where(g, n, dy):
    c, a, b = n.inputs
    zero = g.const(0.0, dy.dtype)
    return None, sum_to(g, g.emit("where", c, dy, zero), a), sum_to(g, g.emit("where", c, zero, dy), b)


def _grad_max(g, n, dy):
    # as torch.amax: the gradient is shared evenly by the elements equal to the maximum
    x = n.inputs[0]
    axes, keep = n.attrs["axes"], n.attrs["keepdims"]
    mask = _mask(g, "equal", x, g.emit("unreduce", n, x, axes=axes, keepdims=keep, mean=False), dy.dtype)
    share = g.emit("div", dy, g.emit("sum", mask, axes=axes, keepdims=keep))
    return (g.emit("mul", mask, g.emit("unreduce", share, x, axes=axes, keepdims=keep, mean=False)),)


def _grad_transpose(g, n, dy):
    perm = tuple(n.attrs["perm"])
    inverse = tuple(sorted(range(len(perm)), key=lambda k: perm[k]))
    return (g.emit("transpose", dy, perm=inverse),)


def _grad_unreduce(g, n, dy):
    # the adjoint of broadcasting dy to x's shape is summing back (a mean's share: the mean);
    # x gives only the shape
    a, x = n.inputs
    axes = n.attrs["axes"]
    if not axes:        # a broadcast (a mean over no axes divides by 1)
        return sum_to(g, dy, a), None
    back = g.emit("mean" if n.attrs["mean"] else "sum", dy, axes=axes, keepdims=n.attrs["keepdims"])
    return back, None


def _grad_xent(g, n, dy):
    z, y = n.inputs
    return g.emit("softmax_xent_grad", z, y, dy), None


# --- reference semantics ------------------------------------------------------------------

def _sigmoid(a):
    return (0.5 * (1.0 + np.tanh(0.5 * a))).astype(a.dtype)


_GELU_C = math.sqrt(2.0 / math.pi)


_INV_SQRT2, _INV_SQRT_2PI = 1.0 / math.sqrt(2.0), 1.0 / math.sqrt(2.0 * math.pi)


def _gelu(a):
    # x * Phi(x), Phi(x) = erfc(-x / sqrt 2) / 2: accurate in the negative tail too, where
    # 1 + erf(x / sqrt 2) cancels
    return (a * 0.5 * erfc(-a * a.dtype.type(_INV_SQRT2))).astype(a.dtype)


def _gelu_grad(dy, a):
    # Phi(x) + x * phi(x)
    d = 0.5 * erfc(-a * a.dtype.type(_INV_SQRT2)) + a * np.exp(-0.5 * a * a) * a.dtype.type(_INV_SQRT_2PI)
    return (dy * d).astype(dy.dtype)


def _gelu_tanh(a):
    c = np.asarray(_GELU_C, a.dtype)
    return (0.5 * a * (1.0 + np.tanh(c * (a + 0.044715 * a ** 3)))).astype(a.dtype)


def _gelu_tanh_grad(dy, a):
    t = np.tanh(_GELU_C * (a + 0.044715 * a ** 3))
    d = 0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * _GELU_C * (1.0 + 3 * 0.044715 * a * a)
    return (dy * d).astype(dy.dtype)


def _log_softmax(a):
    s = a - a.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def _softmax(a):
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _reduce(fn):
    def ref(a, axes, keepdims):
        return np.asarray(fn(a, axis=norm_axes(axes, a.ndim), keepdims=keepdims)).astype(a.dtype)
    return ref


def _unreduce(dy, x, axes, keepdims, mean):
    axes = norm_axes(axes, x.ndim)
    if not keepdims:
        dy = np.expand_dims(dy, axes)
    out = np.broadcast_to(dy, x.shape).astype(dy.dtype, copy=True)
    if mean:
        out *= dy.dtype.type(1.0 / max(1, math.prod(x.shape[a] for a in axes)))
    return out


def _reduce_like(dy, x):
    return np.sum(dy, axis=sum_to_axes(dy.shape, x.shape), keepdims=True).reshape(x.shape).astype(dy.dtype)


def _take_label(p, y):
    return np.take_along_axis(p, y[..., None], axis=-1)[..., 0]


def _onehot(y, depth, dtype):
    out = np.zeros(y.shape + (depth,), NP_DTYPE[dtype])
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out


def _dropout_mask(x, seed, rate, stream):
    from . import philox
    s, step = (int(v) for v in np.asarray(seed).reshape(-1)[:2])
    keep = philox.dropout_keep_mask(s, step, stream, x.shape, rate, philox.first_index(seed, x.shape))
    return (keep * (1.0 / (1.0 - rate))).astype(x.dtype)


def _softmax_xent(z, y):
    m = z.max(axis=-1, keepdims=True)
    lse = (np.log(np.exp(z - m).sum(axis=-1, keepdims=True)) + m)[..., 0]
    return lse - np.take_along_axis(z, y[..., None], axis=-1)[..., 0]


def _softmax_xent_grad(z, y, dy):
    p = _softmax(z)
    np.put_along_axis(p, y[..., None], np.take_along_axis(p, y[..., None], axis=-1) - 1, axis=-1)
    return p * dy[..., None]


def _zero(dtype):
    return np.zeros((), dtype)


# --- the table ------------------------------------------------------------------------------

op("input", kind=INPUT, infer=S.no_rule, attrs=("name",))
op("const", kind=CONST, infer=S.const_rule, attrs=("value", "dtype"))

binary("add", np.add, lambda g, n, dy: (sum_to(g, dy, n.inputs[0]), sum_to(g, dy, n.inputs[1])),
       epilogue="bias")
binary("sub", np.subtract,
       lambda g, n, dy: (sum_to(g, dy, n.inputs[0]), sum_to(g, g.emit("neg", dy), n.inputs[1])))
binary("mul", np.multiply,
       lambda g, n, dy: (sum_to(g, g.emit("mul", dy, n.inputs[1]), n.inputs[0]),
                         sum_to(g, g.emit("mul", dy, n.inputs[0]), n.inputs[1])))
binary("div", np.divide, _grad_div)
binary("maximum", np.maximum, _grad_maximum)
op("equal", kind=ELEMENTWISE, infer=S.compare_rule, ref=np.equal, grad=no_grad)
op("greater", kind=ELEMENTWISE, infer=S.compare_rule, ref=np.greater, grad=no_grad)
op("greater_equal", kind=ELEMENTWISE, infer=S.compare_rule, ref=np.greater_equal, grad=no_grad)
op("not_equal", kind=ELEMENTWISE, infer=S.compare_rule, ref=np.not_equal, grad=no_grad)
# a where cond is nonzero, else b (cond: 0/1 from a comparison, or any number)
op("where", kind=ELEMENTWISE, infer=S.where_rule, ref=lambda c, a, b: np.where(c != 0, a, b), grad=_grad_where)

unary("neg", np.negative, lambda g, n, dy: (g.emit("neg", dy),))
unary("exp", np.exp, lambda g, n, dy: (g.emit("mul", dy, n),))
unary("log", np.log, lambda g, n, dy: (g.emit("div", dy, n.inputs[0]),))
unary("sqrt", np.sqrt, lambda g, n, dy: (g.emit("div", g.emit("mul", dy, g.const(0.5, n.dtype)), n),))
unary("square", np.square,
      lambda g, n, dy: (g.emit("mul", dy, g.emit("mul", n.inputs[0], g.const(2.0, n.dtype))),))
unary("abs", np.abs, lambda g, n, dy: (g.emit("mul", dy, g.emit("sign", n.inputs[0])),))
unary("sign", np.sign, no_grad)
unary("relu", lambda a: np.maximum(a, _zero(a.dtype)), lambda g, n, dy: (g.emit("relu_grad", dy, n),),
      epilogue="activation")
unary("sigmoid", _sigmoid, _grad_sigmoid, epilogue="activation")
unary("tanh", np.tanh, _grad_tanh, epilogue="activation")
# log(1 + exp(x)), stable for any x; smooth, so its gradient sigmoid(x) has no kink
unary("softplus", lambda a: np.logaddexp(_zero(a.dtype), a),
      lambda g, n, dy: (g.emit("mul", dy, g.emit("sigmoid", n.inputs[0])),))
unary("leaky_relu", lambda a, alpha: np.where(a > 0, a, a * np.asarray(alpha, a.dtype)),
      lambda g, n, dy: (g.emit("leaky_grad", dy, n.inputs[0], alpha=n.attrs["alpha"]),), attrs=("alpha",))
# Keras's elu: x for x > 0, else alpha * (exp(x) - 1); the gradient from the output,
# y + alpha = alpha * exp(x) where x <= 0 (as torch, alpha at 0)
unary("elu", lambda a, alpha: np.where(a > 0, a, np.asarray(alpha, a.dtype) * np.expm1(np.minimum(a, 0))),
      lambda g, n, dy: (g.emit("where", g.emit("greater", n.inputs[0], g.const(0.0, n.dtype)), dy,
                               g.emit("mul", dy, g.emit("add", n, g.const(n.attrs["alpha"], n.dtype)))),),
      attrs=("alpha",))
# silu (Keras's swish): x * sigmoid(x); d/dx = s * (1 + x * (1 - s))
unary("silu", lambda a: a * _sigmoid(a), _grad_silu)
# softsign: x / (1 + |x|); d/dx = 1 / (1 + |x|)^2
unary("softsign", lambda a: (a / (1 + np.abs(a))).astype(a.dtype),
      lambda g, n, dy: (g.emit("div", dy, g.emit("square", g.emit("add", g.const(1.0, n.dtype),
                                                                       g.emit("abs", n.inputs[0])))),))
# the exact GELU, x * Phi(x) (PyTorch's and Keras's default), and its tanh approximation
unary("gelu", _gelu, lambda g, n, dy: (g.emit("gelu_grad", dy, n.inputs[0]),))
unary("gelu_tanh", _gelu_tanh, lambda g, n, dy: (g.emit("gelu_tanh_grad", dy, n.inputs[0]),))
unary("clip", lambda a, lo, hi: np.clip(a, lo, hi).astype(a.dtype),
      lambda g, n, dy: (g.emit("clip_grad", dy, n.inputs[0], lo=n.attrs["lo"], hi=n.attrs["hi"]),),
      attrs=("lo", "hi"))
op("cast", kind=ELEMENTWISE, infer=S.cast_rule, ref=lambda a, dtype: a.astype(NP_DTYPE[dtype]),
   grad=lambda g, n, dy: (g.emit("cast", dy, dtype=n.inputs[0].dtype),), attrs=("dtype",))
# the value rounded to the nearest bf16 / f16 (ties to even), kept in its dtype: the cast
# that mixed precision puts before every matmul and convolution operand
# (passes/mixed_precision.py, ir/precision.py). Its gradient is the incoming gradient
# rounded the same way, as torch's x.to(torch.bfloat16).float(): a bf16 value's gradient is bf16
unary("round_to", lambda a, precision: _round_to(a, precision),
      lambda g, n, dy: (g.emit("round_to", dy, precision=n.attrs["precision"]),), attrs=("precision",))

# backward helpers of the activations: (dy, x or y) -> dx
# relu'(x) * dy, with the mask taken from the relu's output (or input: same sign)
binary("relu_grad", lambda dy, y: np.where(y > 0, dy, _zero(dy.dtype)).astype(dy.dtype), None,
       epilogue="mask")
binary("leaky_grad", lambda dy, x, alpha: np.where(x > 0, dy, dy * np.asarray(alpha, dy.dtype)).astype(dy.dtype),
       None, attrs=("alpha",))
binary("gelu_grad", _gelu_grad, None)
binary("gelu_tanh_grad", _gelu_tanh_grad, None)
binary("clip_grad", lambda dy, x, lo, hi: np.where((x >= lo) & (x <= hi), dy, _zero(dy.dtype)).astype(dy.dtype),
       None, attrs=("lo", "hi"))

op("sum", kind=REDUCTION, infer=S.reduce_rule, ref=_reduce(np.sum), grad=_grad_unreduce_of(False),
   attrs=("axes", "keepdims"))
op("mean", kind=REDUCTION, infer=S.reduce_rule, ref=_reduce(np.mean), grad=_grad_unreduce_of(True),
   attrs=("axes", "keepdims"))
op("max", kind=REDUCTION, infer=S.reduce_rule, ref=_reduce(np.max), grad=_grad_max, attrs=("axes", "keepdims"))
# the adjoints of reductions: broadcast back (pointwise in the output) / sum down to a shape
op("unreduce", kind=MOVEMENT, infer=S.like_second, ref=_unreduce, attrs=("axes", "keepdims", "mean"),
   pointwise=True, grad=_grad_unreduce)
op("reduce_like", kind=REDUCTION, infer=S.like_second, ref=_reduce_like)

op("matmul", kind=MATMUL, infer=S.matmul_rule, grad=_grad_matmul, attrs=("ta", "tb"), head=True,
   ref=lambda a, b, ta=False, tb=False: np.matmul(a.T if ta else a, b.T if tb else b))
op("transpose", kind=MOVEMENT, infer=S.transpose_rule, attrs=("perm",), grad=_grad_transpose,
   ref=lambda a, perm: np.ascontiguousarray(np.transpose(a, perm)))
op("reshape", kind=MOVEMENT, infer=S.reshape_rule, view=True, attrs=("shape",),
   ref=lambda a, shape: a.reshape(tuple(a.shape[0] if d == B else d for d in shape)),
   grad=lambda g, n, dy: (g.emit("reshape", dy, shape=n.inputs[0].shape),))

op("softmax", kind=ROWWISE, infer=S.same, ref=_softmax, grad=_grad_softmax, inplace=True)
op("log_softmax", kind=ROWWISE, infer=S.same, ref=_log_softmax, grad=_grad_log_softmax, inplace=True)
# softmax cross-entropy on sparse labels, fused: per-row -log softmax(z)[y], and
# its gradient (softmax(z) - onehot(y)) * dy, each one stable row kernel
op("softmax_xent", kind=ROWWISE, infer=S.take_label_rule, ref=_softmax_xent, grad=_grad_xent)
op("softmax_xent_grad", kind=ROWWISE, infer=S.same, ref=_softmax_xent_grad)
op("take_label", kind=INDEX, infer=S.take_label_rule, ref=_take_label, grad=_grad_take_label)
op("onehot", kind=INDEX, infer=S.onehot_rule, ref=_onehot, grad=no_grad, attrs=("depth", "dtype"))
op("argmax", kind=INDEX, infer=S.argmax_rule, ref=lambda a: np.argmax(a, axis=-1), grad=no_grad)
# keep-mask / (1 - rate) for dropout; `seed` is an i64[2] input (seed, step), or i64[3]
# (seed, step, first global row of this worker's shard) in a data-parallel step
op("dropout_mask", kind=RANDOM, infer=S.same, ref=_dropout_mask, grad=no_grad, attrs=("rate", "stream"),
   pointwise=True)

# data parallelism (ir/collective.py): the mean over the workers of a per-shard value,
# weighted by shard size; the identity in one process. Adjoint: itself
op("shard_mean", kind=COLLECTIVE, infer=S.same, ref=collective.shard_mean,
   grad=lambda g, n, dy: (g.emit("shard_mean", dy),))

# window ops on channels-last images (ir/windows.py): convolution and pooling
CONV_ATTRS = ("window", "strides", "padding", "dilation", "groups")
POOL_ATTRS = ("window", "strides", "padding")


def _grad_conv2d(g, n, dy):
    x, w = n.inputs
    a = {k: n.attrs[k] for k in CONV_ATTRS}
    return (g.emit("conv2d_grad_input", dy, w, in_hw=tuple(x.shape[1:3]), **a),
            g.emit("conv2d_grad_filter", x, dy, **a))


def _grad_pool(grad_op):
    return lambda g, n, dy: (g.emit(grad_op, dy, n.inputs[0], **{k: n.attrs[k] for k in POOL_ATTRS}),)


op("conv2d", kind=CONV, infer=W.conv2d_rule, ref=W.conv2d, grad=_grad_conv2d, attrs=CONV_ATTRS, head=True,
   workspace=W.conv2d_workspace)
# dx: the transposed convolution of dy with the same kernel
op("conv2d_grad_input", kind=CONV, infer=W.conv2d_grad_input_rule, ref=W.conv2d_grad_input,
   attrs=CONV_ATTRS + ("in_hw",), head=True, workspace=W.conv2d_grad_input_workspace)
# dw: the correlation of the input with dy
op("conv2d_grad_filter", kind=CONV, infer=W.conv2d_grad_filter_rule, ref=W.conv2d_grad_filter,
   attrs=CONV_ATTRS, workspace=W.conv2d_grad_filter_workspace)
op("maxpool2d", kind=POOL, infer=W.pool_rule, ref=W.maxpool2d, grad=_grad_pool("maxpool2d_grad"),
   attrs=POOL_ATTRS, workspace=W.pool_workspace)
op("maxpool2d_grad", kind=POOL, infer=W.pool_grad_rule, ref=W.maxpool2d_grad, attrs=POOL_ATTRS,
   workspace=W.pool_grad_workspace)
op("avgpool2d", kind=POOL, infer=W.pool_rule, ref=W.avgpool2d, grad=_grad_pool("avgpool2d_grad"),
   attrs=POOL_ATTRS, workspace=W.pool_workspace)
op("avgpool2d_grad", kind=POOL, infer=W.pool_grad_rule, ref=W.avgpool2d_grad, attrs=POOL_ATTRS,
   workspace=W.pool_grad_workspace)

# a flat buffer of all parameters: each parameter is a view into it, and their
# gradients are laid out the same way, so the optimizer updates all at once
op("slice_flat", kind=MOVEMENT, infer=S.slice_flat_rule, view=True, attrs=("offset", "shape"),
   ref=lambda x, offset, shape: x[offset:offset + math.prod(shape)].reshape(shape))
op("concat_flat", kind=MOVEMENT, infer=S.concat_flat_rule,
   ref=lambda *xs: np.concatenate([x.reshape(-1) for x in xs]))


# joining and cutting along one (non-batch) axis: concat's adjoint is slicing,
# slice's is zero padding, pad's is slicing again
def _axis(x, a) -> int:
    return a % len(x.shape)


def _cut(x, axis, start, stop):
    return x[(slice(None),) * axis + (slice(start, stop),)]


def _grad_concat(g, n, dy):
    axis, off, out = _axis(n, n.attrs["axis"]), 0, []
    for x in n.inputs:
        out.append(g.emit("slice", dy, axis=axis, start=off, stop=off + x.shape[axis]))
        off += x.shape[axis]
    return tuple(out)


def _grad_slice(g, n, dy):
    x, axis = n.inputs[0], _axis(n, n.attrs["axis"])
    return (g.emit("pad", dy, axis=axis, before=n.attrs["start"], after=x.shape[axis] - n.attrs["stop"]),)


def _grad_pad(g, n, dy):
    axis = _axis(n, n.attrs["axis"])
    return (g.emit("slice", dy, axis=axis, start=n.attrs["before"], stop=n.attrs["before"] + n.inputs[0].shape[axis]),)


def _pad(x, axis, before, after):
    widths = [(0, 0)] * x.ndim
    widths[axis % x.ndim] = (before, after)
    return np.pad(x, widths)


op("concat", kind=MOVEMENT, infer=S.concat_rule, grad=_grad_concat, attrs=("axis",),
   ref=lambda *xs, axis: np.concatenate(xs, axis=axis))
op("slice", kind=MOVEMENT, infer=S.slice_rule, grad=_grad_slice, attrs=("axis", "start", "stop"),
   ref=lambda x, axis, start, stop: _cut(x, axis % x.ndim, start, stop).copy())
op("pad", kind=MOVEMENT, infer=S.pad_rule, grad=_grad_pad, attrs=("axis", "before", "after"), ref=_pad)


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
