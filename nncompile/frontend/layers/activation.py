"""`activation NAME(fn)`: apply an activation on its own."""
from __future__ import annotations

import math

from ..specs import Arg, Spec
from .activations import ACTIVATION
from .base import LayerKind, Shaped


class ActivationLayer(LayerKind):
    name = "activation"
    doc = "applies the activation `fn` elementwise"
    spec = Spec("activation", (
        Arg("fn", ACTIVATION, doc="the activation", positional=True, aliases=("activation",), label="activation",
            example="expected e.g.  activation act(relu)"),
    ))
    color = "#fef3c7"

    def label(self, layer):
        return f"activation, {layer.args['fn']}"

    def activation(self, layer):
        return layer.args["fn"]

    def shape(self, layer, shape, fail):
        return Shaped(shape, flops=math.prod(shape))

    def lower(self, low, info, h):
        return low.activate(h, info.layer.args["fn"])
