"""`normalization NAME`: standardise each feature (the last axis) by the mean and
variance of the training data, adapted before training (Keras `Normalization`
after `adapt`)."""
from __future__ import annotations

import math

import numpy as np

from ..specs import Spec
from .base import LayerKind, Shaped, param

# Keras's backend.epsilon(): the least standard deviation divided by
EPSILON = 1e-7


class Normalization(LayerKind):
    name = "normalization"
    doc = ("`(x - mean) / max(sqrt(variance), 1e-7)` per feature (the last axis); `mean` and `variance` are "
           "state, computed from the training data before the first epoch (Keras's `adapt`: over every "
           "other axis, the variance biased) and saved with the weights. It reads the model's input")
    spec = Spec("normalization")
    adapts = True
    color = "#d1fae5"

    def shape(self, layer, shape, fail):
        c = shape[-1]
        params = (param(layer, "mean", (c,), "zeros", "state"), param(layer, "variance", (c,), "ones", "state"))
        return Shaped(shape, params, 2 * math.prod(shape))

    def lower(self, low, info, h):
        E, c = low.g.emit, low.g.const
        mean, var = low.param(info.layer, "mean"), low.param(info.layer, "variance")
        return E("div", E("sub", h, mean), E("maximum", E("sqrt", var), c(EPSILON)))

    def adapt(self, layer, x):
        axes = tuple(range(x.ndim - 1))
        return {"mean": x.mean(axis=axes, dtype=np.float64), "variance": x.var(axis=axes, dtype=np.float64)}
