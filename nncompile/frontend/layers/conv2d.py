"""`conv2d NAME(filters, kernel_size, activation, ...)`: 2-D convolution on
channels-last images, kernel `(kh, kw, in_channels / groups, filters)`."""
from __future__ import annotations

from ..raw import MAX_DIM
from ..specs import Arg, Int, IntPair, Spec
from .base import LayerKind, Shaped, param
from .common import ACTIVATION_ARG, KERNEL_ARGS, add_penalties
from .windows import PADDING, strides_arg, window_output


def _strides_or_dilation(scope) -> None:
    if max(scope.values["strides"]) > 1 and max(scope.values["dilation"]) > 1:
        raise scope.err(f"{scope.what}: strides > 1 and dilation > 1 together are not supported (as in Keras)",
                        scope.raw.get("dilation", scope.raw.get("strides")).loc, hint="choose one of them")


class Conv2D(LayerKind):
    name = "conv2d"
    doc = ("2-D convolution of a channels-last image `[H, W, C]` with a kernel `(kh, kw, C / groups, filters)` "
           "(Keras's layout), then the activation; `groups = C` is a depthwise convolution")
    spec = Spec("conv2d", (
        Arg("filters", Int(1, MAX_DIM), doc="the number of output channels", positional=True,
            example="expected e.g.  conv2d c1(16, 3, relu)"),
        Arg("kernel_size", IntPair(1), doc="the window: one integer, or `[kh, kw]`", positional=True,
            example="expected e.g.  conv2d c1(16, 3, relu)"),
        ACTIVATION_ARG,
        strides_arg((1, 1), "the step between windows"),
        PADDING,
        Arg("dilation", IntPair(1), (1, 1), "the spacing of the kernel's taps", aliases=("dilation_rate",)),
        Arg("groups", Int(1, MAX_DIM), 1, "channel groups: the input and output channels split into this "
            "many groups, each convolved on its own"),
        *KERNEL_ARGS,
    ), rules=(_strides_or_dilation,))
    has_params = True
    color = "#fde68a"

    def label(self, layer):
        a = layer.args
        kh, kw = a["kernel_size"]
        text = f"conv2d {kh}x{kw}" + (f"/{a['strides'][0]}" if max(a["strides"]) > 1 else "")
        return text if a["activation"] == "linear" else f"{text}, {a['activation']}"

    def activation(self, layer):
        return layer.args["activation"]

    def shape(self, layer, shape, fail):
        a = layer.args
        pads, hw = window_output(layer, "conv2d", shape, a["kernel_size"], a["strides"], a["dilation"],
                                 a["padding"], fail)
        c, f, groups = shape[2], a["filters"], a["groups"]
        if c % groups or f % groups:
            raise fail(f"conv2d layer '{layer.name}': groups={groups} must divide both the {c} input channels "
                       f"(input shape {list(shape)}) and the {f} filters",
                       f"expected groups to be a common divisor of {c} and {f}")
        kernel = tuple(a["kernel_size"]) + (c // groups, f)
        params = [param(layer, "weight", kernel, a["init"])]
        if a["use_bias"]:
            params.append(param(layer, "bias", (f,), a["bias_init"]))
        out = hw + (f,)
        flops = 2 * hw[0] * hw[1] * f * kernel[0] * kernel[1] * kernel[2] + (
            hw[0] * hw[1] * f if a["activation"] != "linear" else 0)
        return Shaped(out, tuple(params), flops)

    def lower(self, low, info, h):
        layer, a = info.layer, info.layer.args
        w = low.param(layer, "weight")
        pads, _ = window_output(layer, "conv2d", h.shape[1:], a["kernel_size"], a["strides"], a["dilation"],
                                a["padding"], None)
        h = low.g.emit("conv2d", h, w, window=tuple(a["kernel_size"]), strides=tuple(a["strides"]),
                       padding=pads, dilation=tuple(a["dilation"]), groups=a["groups"])
        if a["use_bias"]:
            h = low.g.emit("add", h, low.param(layer, "bias"))
        h = low.activate(h, a["activation"])
        add_penalties(low, w, a)
        return h
