"""`dropout NAME(rate)`: in training, zero each unit with probability `rate`."""
from __future__ import annotations

import math

from ..specs import Arg, Float, Spec
from .base import LayerKind, Shaped


class Dropout(LayerKind):
    name = "dropout"
    doc = ("in training, each unit is zeroed with probability `rate` and the rest scaled by "
           "1 / (1 - rate) (Philox masks keyed by seed, step and layer); the identity otherwise")
    spec = Spec("dropout", (
        Arg("rate", Float(0.0, 1.0, hi_open=True), doc="the fraction of units dropped", positional=True,
            label="dropout rate", example="expected e.g.  dropout drop1(0.2)"),
    ))
    passes_activation = True
    color = "#fee2e2"

    def label(self, layer):
        return f"dropout {layer.args['rate']:g}"

    def shape(self, layer, shape, fail):
        return Shaped(shape, flops=math.prod(shape))

    def lower(self, low, info, h):
        rate = info.layer.args["rate"]
        if low.training and rate > 0 and low.rng is not None:
            mask = low.g.emit("dropout_mask", h, low.rng, rate=float(rate), stream=low.stream)
            h = low.g.emit("mul", h, mask)
        return h
