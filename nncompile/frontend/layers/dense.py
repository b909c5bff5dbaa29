"""`dense NAME(units, activation, ...)`: x @ weight (+ bias), then the activation."""
from __future__ import annotations

from ..raw import MAX_DIM
from ..specs import Arg, Int, Spec
from .base import LayerKind, Shaped, param
from .common import ACTIVATION_ARG, KERNEL_ARGS, add_penalties


class Dense(LayerKind):
    name = "dense"
    doc = "fully connected: `x @ weight + bias` (weight `(in, units)`), then the activation; needs a flat input"
    spec = Spec("dense", (
        Arg("units", Int(1, MAX_DIM), doc="the number of outputs", positional=True,
            example="expected e.g.  dense hidden(10, relu)"),
        ACTIVATION_ARG,
        *KERNEL_ARGS,
    ))
    has_params = True
    color = "#dbeafe"

    def label(self, layer):
        act = layer.args["activation"]
        return "dense" if act == "linear" else f"dense, {act}"

    def activation(self, layer):
        return layer.args["activation"]

    def shape(self, layer, shape, fail):
        a = layer.args
        if len(shape) != 1:
            raise fail(f"dense layer '{layer.name}' needs a flat input, but its input has shape {list(shape)}",
                       "add a `flatten` layer before it")
        params = [param(layer, "weight", (shape[0], a["units"]), a["init"])]
        if a["use_bias"]:
            params.append(param(layer, "bias", (a["units"],), a["bias_init"]))
        flops = 2 * shape[0] * a["units"] + (a["units"] if a["activation"] != "linear" else 0)
        return Shaped((a["units"],), tuple(params), flops)

    def lower(self, low, info, h):
        layer, a = info.layer, info.layer.args
        w = low.param(layer, "weight")
        h = low.g.emit("matmul", h, w, ta=False, tb=False)
        if a["use_bias"]:
            h = low.g.emit("add", h, low.param(layer, "bias"))
        h = low.activate(h, a["activation"])
        add_penalties(low, w, a)
        return h
