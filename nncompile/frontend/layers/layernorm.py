"""`layernorm NAME(epsilon)`: normalise each sample over its last axis."""
from __future__ import annotations

import math

from ..specs import Spec
from .base import LayerKind, Shaped, param
from .common import EPSILON


class LayerNorm(LayerKind):
    name = "layernorm"
    doc = "normalises each sample over its last axis (in training and inference alike); then `* gamma + beta`"
    spec = Spec("layernorm", (EPSILON,))
    has_params = True
    color = "#d1fae5"

    def shape(self, layer, shape, fail):
        c = shape[-1]
        params = (param(layer, "gamma", (c,), "ones"), param(layer, "beta", (c,), "zeros"))
        return Shaped(shape, params, 4 * math.prod(shape))

    def lower(self, low, info, h):
        layer = info.layer
        E, c = low.g.emit, low.g.const
        gamma, beta = low.param(layer, "gamma"), low.param(layer, "beta")
        mean = E("mean", h, axes=(-1,), keepdims=True)
        centered = E("sub", h, mean)
        var = E("mean", E("square", centered), axes=(-1,), keepdims=True)
        xhat = E("mul", centered, E("div", c(1.0), E("sqrt", E("add", var, c(layer.args["epsilon"])))))
        return E("add", E("mul", xhat, gamma), beta)
