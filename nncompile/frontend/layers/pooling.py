"""Pooling on channels-last images: `maxpool2d` / `avgpool2d` over windows,
`global_avgpool2d` / `global_maxpool2d` over the whole image (to [C])."""
from __future__ import annotations

from ...ir.graph import B
from ..specs import Arg, Derived, IntPair, Spec
from .base import LayerKind, Shaped
from .windows import PADDING, numel, window_output


class _Pool(LayerKind):
    op: str
    color = "#fce7f3"

    def __init__(self):
        self.spec = Spec(self.name, (
            Arg("pool_size", IntPair(1), (2, 2), "the window: one integer, or `[h, w]`", positional=True),
            Arg("strides", IntPair(1), Derived(lambda scope: scope.values["pool_size"], "pool_size"),
                "the step between windows"),
            PADDING,
        ))

    def label(self, layer):
        kh, kw = layer.args["pool_size"]
        return f"{self.name} {kh}x{kw}"

    def shape(self, layer, shape, fail):
        a = layer.args
        _, hw = window_output(layer, self.name, shape, a["pool_size"], a["strides"], (1, 1), a["padding"], fail)
        k = a["pool_size"][0] * a["pool_size"][1]
        return Shaped(hw + (shape[2],), (), numel(hw) * shape[2] * k)

    def lower(self, low, info, h):
        a = info.layer.args
        pads, _ = window_output(info.layer, self.name, h.shape[1:], a["pool_size"], a["strides"], (1, 1),
                                a["padding"], None)
        return low.g.emit(self.op, h, window=tuple(a["pool_size"]), strides=tuple(a["strides"]), padding=pads)


class MaxPool2D(_Pool):
    name, op = "maxpool2d", "maxpool2d"
    doc = "the maximum of each window (its gradient goes to the window's first maximum, as PyTorch's)"


class AvgPool2D(_Pool):
    name, op = "avgpool2d", "avgpool2d"
    doc = "the mean of each window; with padding=same, padding is left out of the mean (Keras)"


class _GlobalPool(LayerKind):
    spec: Spec
    color = "#fce7f3"

    def shape(self, layer, shape, fail):
        window_output(layer, self.name, shape, (1, 1), (1, 1), (1, 1), "valid", fail)
        return Shaped((shape[2],), (), numel(shape))


class GlobalAvgPool2D(_GlobalPool):
    name = "global_avgpool2d"
    doc = "the mean over height and width of each channel: `[H, W, C]` to `[C]`"
    spec = Spec("global_avgpool2d")

    def lower(self, low, info, h):
        return low.g.emit("mean", h, axes=(1, 2), keepdims=False)


class GlobalMaxPool2D(_GlobalPool):
    name = "global_maxpool2d"
    doc = "the maximum over height and width of each channel: `[H, W, C]` to `[C]`"
    spec = Spec("global_maxpool2d")

    def lower(self, low, info, h):
        hw = tuple(h.shape[1:3])
        pooled = low.g.emit("maxpool2d", h, window=hw, strides=hw, padding=((0, 0), (0, 0)))
        return low.g.emit("reshape", pooled, shape=(B, h.shape[3]))
