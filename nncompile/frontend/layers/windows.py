"""What the window layers (convolution, pooling) share: their geometry rows,
Keras's "same"/"valid" padding, and the shape check that names the shapes."""
from __future__ import annotations

import math

from ...ir.windows import out_size
from ..specs import Arg, Choice, IntPair

PADDING = Arg("padding", Choice(("valid", "same")), "valid",
              "`valid`: no padding; `same`: zero padding so that the output is `ceil(input / strides)` "
              "(Keras's split: the extra row or column at the bottom/right)")


def strides_arg(default, doc: str) -> Arg:
    return Arg("strides", IntPair(1), default, doc)


def explicit_padding(padding: str, hw, window, strides, dilation=(1, 1)) -> tuple:
    """((top, bottom), (left, right)) for Keras's padding name."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    pads = []
    for n, k, s, d in zip(hw, window, strides, dilation):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def window_output(layer, what: str, shape, window, strides, dilation, padding, fail) -> tuple[tuple, tuple]:
    """(explicit padding, (Ho, Wo)) of a window layer on an image input, or the
    located error naming the shapes."""
    if len(shape) != 3:
        raise fail(f"{what} layer '{layer.name}' needs an image input [height, width, channels], but its input "
                   f"has shape {list(shape)}", "declare the input as e.g.  input x: f32[28, 28, 1]")
    pads = explicit_padding(padding, shape[:2], window, strides, dilation)
    hw = tuple(out_size(n, k, s, d, p) for n, k, s, d, p in zip(shape[:2], window, strides, dilation, pads))
    if min(hw) < 1:
        reach = [(k - 1) * d + 1 for k, d in zip(window, dilation)]
        raise fail(f"{what} layer '{layer.name}': its {reach[0]}x{reach[1]} window does not fit the "
                   f"{shape[0]}x{shape[1]} input (shape {list(shape)}, padding {padding})",
                   "use padding=same, a smaller window, or a larger input")
    return pads, hw


def numel(shape) -> int:
    return math.prod(shape)
