"""`batchnorm NAME(momentum, epsilon)`: normalise each channel (the last axis)."""
from __future__ import annotations

import math

from ..specs import Arg, Float, Spec
from .base import LayerKind, Shaped, param
from .common import EPSILON


class BatchNorm(LayerKind):
    name = "batchnorm"
    doc = ("normalises each channel (the last axis) over the batch and every other axis: batch statistics "
           "in training (the running ones updated with `momentum`), the running statistics otherwise; "
           "then `* gamma + beta`")
    spec = Spec("batchnorm", (
        Arg("momentum", Float(0.0, 1.0, hi_open=True), 0.99, "of the running statistics", positional=True,
            label="batchnorm momentum"),
        EPSILON,
    ))
    has_params = True
    color = "#d1fae5"

    def shape(self, layer, shape, fail):
        c = shape[-1]
        params = (param(layer, "gamma", (c,), "ones"), param(layer, "beta", (c,), "zeros"),
                  param(layer, "moving_mean", (c,), "zeros", "state"),
                  param(layer, "moving_variance", (c,), "ones", "state"))
        return Shaped(shape, params, 4 * math.prod(shape))

    def lower(self, low, info, h):
        layer = info.layer
        E, c = low.g.emit, low.g.const
        gamma, beta = low.param(layer, "gamma"), low.param(layer, "beta")
        mm, mv = low.param(layer, "moving_mean"), low.param(layer, "moving_variance")
        eps, mom = layer.args["epsilon"], layer.args["momentum"]
        axes = tuple(range(len(h.shape) - 1))     # statistics per channel: over every other axis
        # a data-parallel step's statistics are the global batch's: each shard's means
        # reduced over the workers (ir/collective.py); autodiff makes the backward match
        sync = (lambda v: E("shard_mean", v)) if low.g.meta.get("data_parallel") else (lambda v: v)
        if low.training and not layer.frozen:     # frozen: the running statistics, not updated
            mean = sync(E("mean", h, axes=axes, keepdims=True))
            centered = E("sub", h, mean)
            var = sync(E("mean", E("square", centered), axes=axes, keepdims=True))
            inv = E("div", c(1.0), E("sqrt", E("add", var, c(eps))))
            xhat = E("mul", centered, inv)
            updates = low.out.state_updates
            updates[mm.attrs["name"]] = E(
                "add", E("mul", mm, c(mom)), E("mul", E("reshape", mean, shape=mm.shape), c(1.0 - mom)))
            updates[mv.attrs["name"]] = E(
                "add", E("mul", mv, c(mom)), E("mul", E("reshape", var, shape=mm.shape), c(1.0 - mom)))
        else:
            inv = E("div", c(1.0), E("sqrt", E("add", mv, c(eps))))
            xhat = E("mul", E("sub", h, mm), inv)
        return E("add", E("mul", xhat, gamma), beta)
