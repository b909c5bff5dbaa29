"""Shape and dtype rules of the op table, and the shape arithmetic they share.

A rule is `rule(inputs, attrs, graph) -> (dtype, shape)`; it raises `IRError`
when the inputs do not fit. Shapes may hold the symbol `B` (the batch size).
"""
from __future__ import annotations

import math
from typing import Sequence

from .graph import B, Dim, Shape


class IRError(ValueError):
    """An op applied to values of the wrong shape or dtype (a compiler bug or a
    shape mistake the frontend turns into a CompileError with a location)."""


def broadcast(a: Shape, b: Shape) -> Shape:
    """NumPy broadcasting of two shapes."""
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


def sum_to_axes(gshape: Shape, xshape: Shape) -> tuple[int, ...]:
    """The axes of `gshape` to sum so that it becomes `xshape` (undoing a broadcast)."""
    lead = len(gshape) - len(xshape)
    axes = list(range(lead))
    for i, d in enumerate(xshape):
        if d == 1 and gshape[lead + i] != 1:
            axes.append(lead + i)
    return tuple(axes)


# --- rules ------------------------------------------------------------------------------

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


def take_label_rule(inputs, attrs, g):
    p, y = inputs
    if y.dtype != "i64" or y.shape != p.shape[:-1]:
        raise IRError(f"take_label needs i64 labels of shape {p.shape[:-1]}, got {y.type_str}")
    return p.dtype, p.shape[:-1]


def onehot_rule(inputs, attrs, g):
    return attrs["dtype"], inputs[0].shape + (attrs["depth"],)


def argmax_rule(inputs, attrs, g):
    return "i64", inputs[0].shape[:-1]


def where_rule(inputs, attrs, g):
    """where(cond, a, b): a where cond is nonzero, else b; the three broadcast together."""
    c, a, b = inputs
    if a.dtype != b.dtype:
        raise IRError(f"where: the two branches differ in dtype: {a.dtype} and {b.dtype}")
    return a.dtype, broadcast(c.shape, broadcast(a.shape, b.shape))


def transpose_rule(inputs, attrs, g):
    x, perm = inputs[0], tuple(attrs["perm"])
    if sorted(perm) != list(range(len(x.shape))):
        raise IRError(f"transpose: {perm} is not a permutation of the {len(x.shape)} axes of {x.type_str}")
    return x.dtype, tuple(x.shape[p] for p in perm)


def compare_rule(inputs, attrs, g):
    """Comparisons give 0/1 in the graph's float dtype."""
    return g.float_dtype, broadcast(inputs[0].shape, inputs[1].shape)


def cast_rule(inputs, attrs, g):
    return attrs["dtype"], inputs[0].shape


def const_rule(inputs, attrs, g):
    return attrs["dtype"], ()


def no_rule(inputs, attrs, g):
    raise IRError("inputs are created with Graph.input")


def slice_flat_rule(inputs, attrs, g):
    x = inputs[0]
    n = math.prod(attrs["shape"])
    if len(x.shape) != 1 or attrs["offset"] + n > x.shape[0]:
        raise IRError(f"slice_flat of {n} elements at {attrs['offset']} does not fit {x.type_str}")
    return x.dtype, tuple(attrs["shape"])


def concat_flat_rule(inputs, attrs, g):
    if any(B in i.shape for i in inputs) or len({i.dtype for i in inputs}) != 1:
        raise IRError("concat_flat needs static shapes of one dtype")
    return inputs[0].dtype, (sum(math.prod(i.shape) for i in inputs),)


def _static_axis(x, axis: int, what: str) -> int:
    axis = axis % len(x.shape) if x.shape else 0
    if not x.shape or x.shape[axis] == B:
        raise IRError(f"{what} along axis {axis} of {x.type_str}: not the batch axis")
    return axis


def concat_rule(inputs, attrs, g):
    """Join inputs along `axis`: every other dimension (and the dtype) must agree."""
    first = inputs[0]
    axis = _static_axis(first, attrs["axis"], "concat")
    for x in inputs[1:]:
        if x.dtype != first.dtype or len(x.shape) != len(first.shape) or \
                any(a != b for k, (a, b) in enumerate(zip(x.shape, first.shape)) if k != axis):
            raise IRError(f"concat along axis {axis}: {first.type_str} and {x.type_str} differ in another "
                          "dimension or the dtype")
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in inputs)
    return first.dtype, tuple(shape)


def slice_rule(inputs, attrs, g):
    x = inputs[0]
    axis = _static_axis(x, attrs["axis"], "slice")
    start, stop = attrs["start"], attrs["stop"]
    if not 0 <= start < stop <= x.shape[axis]:
        raise IRError(f"slice {start}:{stop} of axis {axis} does not fit {x.type_str}")
    shape = list(x.shape)
    shape[axis] = stop - start
    return x.dtype, tuple(shape)


def pad_rule(inputs, attrs, g):
    x = inputs[0]
    axis = _static_axis(x, attrs["axis"], "pad")
    if attrs["before"] < 0 or attrs["after"] < 0:
        raise IRError("pad: negative padding")
    shape = list(x.shape)
    shape[axis] = x.shape[axis] + attrs["before"] + attrs["after"]
    return x.dtype, tuple(shape)
