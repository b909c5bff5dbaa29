"""`flatten`: reshape each sample to one axis."""
from __future__ import annotations

import math

from ...ir.graph import B
from ..specs import Spec
from .base import LayerKind, Shaped


class Flatten(LayerKind):
    name = "flatten"
    doc = "reshapes each sample to one axis (row-major); takes no arguments"
    spec = Spec("flatten")
    passes_activation = True
    color = "#ede9fe"

    def shape(self, layer, shape, fail):
        return Shaped((math.prod(shape),))

    def lower(self, low, info, h):
        return low.g.emit("reshape", h, shape=(B,) + info.out_shape)
