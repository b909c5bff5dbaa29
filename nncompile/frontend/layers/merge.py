"""Merge layers: join the branches of a model. Each reads the layers it names
(`from=[a, b, ...]`): `add` and `multiply` elementwise (the same shapes),
`concat` along an axis (default the last: features, or the channels of an image)."""
from __future__ import annotations

import math

from ..specs import Arg, Int, LayerRefs, Spec
from .base import LayerKind, Shaped

FROM_MANY = Arg("from", LayerRefs(2), doc="the layers (or the model's input) it joins", positional=True,
                example="expected e.g.  add sum1(from=[h1, h2])")


def _names(layer) -> str:
    return " and ".join(f"'{n}'" for n in layer.args["from"])


class _Elementwise(LayerKind):
    merges = True
    op: str
    color = "#e0e7ff"

    def infer(self, layer, shapes, fail):
        if len(set(shapes)) != 1:
            listed = ", ".join(f"'{n}' {list(s)}" for n, s in zip(layer.args["from"], shapes))
            raise fail(f"{self.name} layer '{layer.name}' joins branches of different shapes: {listed}",
                       f"{self.name} needs the same shape from {_names(layer)}")
        return Shaped(shapes[0], flops=(len(shapes) - 1) * math.prod(shapes[0]))

    def emit(self, low, info, hs):
        h = hs[0]
        for other in hs[1:]:
            h = low.g.emit(self.op, h, other)
        return h


class Add(_Elementwise):
    name, op = "add", "add"
    doc = "the sum of its inputs (a residual connection: `add r(from=[x, h2])`)"
    spec = Spec("add", (FROM_MANY,))


class Multiply(_Elementwise):
    name, op = "multiply", "mul"
    doc = "the elementwise product of its inputs (a gate)"
    spec = Spec("multiply", (FROM_MANY,))


class Concat(LayerKind):
    name = "concat"
    doc = "its inputs joined along `axis` (default -1: the features, or an image's channels)"
    spec = Spec("concat", (FROM_MANY, Arg("axis", Int(), -1, "the axis of a sample to join along, -1 the last")))
    merges = True
    color = "#e0e7ff"

    def infer(self, layer, shapes, fail):
        rank = len(shapes[0])
        axis = layer.args["axis"]
        listed = ", ".join(f"'{n}' {list(s)}" for n, s in zip(layer.args["from"], shapes))
        if not -rank <= axis < rank or any(len(s) != rank for s in shapes):
            raise fail(f"concat layer '{layer.name}': axis {axis} does not fit the branches {listed}",
                       f"expected branches of one rank and an axis in [-{rank}, {rank - 1}]")
        axis %= rank
        others = {tuple(d for k, d in enumerate(s) if k != axis) for s in shapes}
        if len(others) != 1:
            raise fail(f"concat layer '{layer.name}' joins branches that differ in another axis than {axis}: "
                       f"{listed}", "every other axis must be the same")
        out = list(shapes[0])
        out[axis] = sum(s[axis] for s in shapes)
        return Shaped(tuple(out))

    def emit(self, low, info, hs):
        axis = info.layer.args["axis"] % len(info.out_shape) + 1    # + the batch axis
        return low.g.emit("concat", *hs, axis=axis)
