"""Window ops on channels-last images: 2-D convolution and pooling.

Layouts follow Keras: images are [B, H, W, C], convolution kernels
[kh, kw, C/groups, F]; output channel f belongs to group f // (F/groups).
Every window op takes the same attributes:

  window    (kh, kw)       pooling windows; a convolution's is its kernel's
  strides   (sh, sw)
  padding   ((top, bottom), (left, right)), explicit numbers (the frontend
            turns "same" into them as Keras does)
  dilation  (dh, dw)       convolutions only
  groups    g              convolutions only (depthwise: g = C)

This module holds their shape rules, their reference semantics (NumPy, by
explicit columns: the oracle, not the fast path) and the ops' gradient rules
live beside them in `ops.py`. The gradients of a convolution are themselves
convolutions: the input gradient is the transposed convolution of dy with the
same kernel (`conv2d_grad_input`), the kernel gradient is the correlation of
the input with dy (`conv2d_grad_filter`). Max pooling routes each window's
gradient to the first maximum in it (row-major within the window, as PyTorch);
average pooling divides by the number of non-padding elements in the window
(Keras "same" pooling; PyTorch's count_include_pad=False).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .graph import B
from .shapes import IRError


def out_size(n: int, k: int, s: int, d: int, pad: tuple[int, int]) -> int:
    return (n + pad[0] + pad[1] - d * (k - 1) - 1) // s + 1


def out_hw(h: int, w: int, attrs: dict, window=None) -> tuple[int, int]:
    kh, kw = window or attrs["window"]
    dh, dw = attrs.get("dilation", (1, 1))
    (sh, sw), (ph, pw) = attrs["strides"], attrs["padding"]
    return out_size(h, kh, sh, dh, ph), out_size(w, kw, sw, dw, pw)


def _check_image(x, what: str):
    if len(x.shape) != 4 or x.shape[0] != B:
        raise IRError(f"{what} needs an image batch [B, H, W, C], got {x.type_str}")


def _check_attrs(attrs: dict, window, hw, what: str):
    (sh, sw), (dh, dw) = attrs["strides"], attrs.get("dilation", (1, 1))
    if min(sh, sw, dh, dw) < 1:
        raise IRError(f"{what}: strides and dilation must be >= 1, got {attrs['strides']}, {attrs.get('dilation')}")
    if any(p < 0 for pair in attrs["padding"] for p in pair):
        raise IRError(f"{what}: negative padding {attrs['padding']}")
    ho, wo = out_hw(hw[0], hw[1], attrs, window)
    if ho < 1 or wo < 1:
        kh, kw = window
        raise IRError(f"{what}: a {kh}x{kw} window (dilation {dh}x{dw}) does not fit the "
                      f"{hw[0]}x{hw[1]} input with padding {attrs['padding']}")
    return ho, wo


# --- shape rules ------------------------------------------------------------------------------

def conv2d_rule(inputs, attrs, g):
    x, w = inputs
    _check_image(x, "conv2d")
    if len(w.shape) != 4:
        raise IRError(f"conv2d needs a kernel [kh, kw, C/groups, F], got {w.type_str}")
    kh, kw, cg, f = w.shape
    if tuple(attrs["window"]) != (kh, kw):
        raise IRError(f"conv2d: window {attrs['window']} differs from the kernel's {(kh, kw)}")
    groups, c = attrs["groups"], x.shape[3]
    if groups < 1 or c % groups or f % groups or cg * groups != c:
        raise IRError(f"conv2d: {c} input channels in {groups} groups need a kernel with {c // max(groups, 1)} "
                      f"input channels and a multiple of {groups} filters, got {w.type_str}")
    if x.dtype != w.dtype:
        raise IRError(f"dtype mismatch: {x.dtype} and {w.dtype}")
    ho, wo = _check_attrs(attrs, (kh, kw), x.shape[1:3], "conv2d")
    return x.dtype, (B, ho, wo, f)


def conv2d_grad_input_rule(inputs, attrs, g):
    dy, w = inputs
    h, wd = attrs["in_hw"]
    return dy.dtype, (B, h, wd, w.shape[2] * attrs["groups"])


def conv2d_grad_filter_rule(inputs, attrs, g):
    x, dy = inputs
    kh, kw = attrs["window"]
    return x.dtype, (kh, kw, x.shape[3] // attrs["groups"], dy.shape[3])


def pool_rule(inputs, attrs, g):
    x = inputs[0]
    _check_image(x, "pooling")
    ho, wo = _check_attrs(attrs, attrs["window"], x.shape[1:3], "pooling")
    return x.dtype, (B, ho, wo, x.shape[3])


def pool_grad_rule(inputs, attrs, g):
    """maxpool2d_grad(dy, x) and avgpool2d_grad(dy, x): the gradient has x's type."""
    return inputs[1].dtype, inputs[1].shape


# --- workspaces ----------------------------------------------------------------------------------
# What a lowering by explicit columns (im2col + one GEMM) needs while the op
# runs: the memory plan allocates these buffers (and may keep a forward
# convolution's columns alive for its filter gradient); a backend that
# computes the op without them (Triton's implicit GEMM) ignores them.

def _padded(x, padding):
    (pt, pb), (pl, pr) = padding
    if not (pt or pb or pl or pr):
        return []
    return [((B, x.shape[1] + pt + pb, x.shape[2] + pl + pr, x.shape[3]), x.dtype)]


def conv2d_workspace(n):
    """[columns [B, Ho, Wo, kh, kw, C], padded input (if any)]."""
    x = n.inputs[0]
    return [((B,) + tuple(n.shape[1:3]) + tuple(n.attrs["window"]) + (x.shape[3],), x.dtype)] \
        + _padded(x, n.attrs["padding"])


def conv2d_grad_input_workspace(n):
    """[dy's columns [B, Ho, Wo, kh, kw, C], padded dx (if any)]."""
    dy = n.inputs[0]
    return [((B,) + tuple(dy.shape[1:3]) + tuple(n.attrs["window"]) + (n.shape[3],), dy.dtype)] \
        + _padded(n, n.attrs["padding"])


def conv2d_grad_filter_workspace(n):
    """The same as the forward convolution's: [columns of x, padded x (if any)]."""
    x, dy = n.inputs
    return [((B,) + tuple(dy.shape[1:3]) + tuple(n.attrs["window"]) + (x.shape[3],), x.dtype)] \
        + _padded(x, n.attrs["padding"])


def pool_workspace(n):
    """[padded input (if any)]."""
    return _padded(n.inputs[0], n.attrs["padding"])


def pool_grad_workspace(n):
    """[padded input, padded gradient] when padded."""
    return _padded(n.inputs[1], n.attrs["padding"]) * 2


# --- reference semantics ------------------------------------------------------------------------

def _pad(x, padding, value=0.0):
    (pt, pb), (pl, pr) = padding
    if not (pt or pb or pl or pr):
        return x
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=value)


def windows(xp, window, strides, dilation, ho, wo):
    """A read-only view [B, Ho, Wo, kh, kw, C] of the (padded) image's windows."""
    (kh, kw), (sh, sw), (dh, dw) = window, strides, dilation
    sb, s_h, s_w, sc = xp.strides
    return as_strided(xp, (xp.shape[0], ho, wo, kh, kw, xp.shape[3]),
                      (sb, s_h * sh, s_w * sw, s_h * dh, s_w * dw, sc), writeable=False)


def _scatter_windows(cols, in_shape, padding, strides, dilation):
    """The adjoint of `windows`: add window values [B, Ho, Wo, kh, kw, C] back
    into an image of `in_shape`."""
    (pt, pb), (pl, pr) = padding
    b, h, w, c = in_shape
    _, ho, wo, kh, kw, _ = cols.shape
    (sh, sw), (dh, dw) = strides, dilation
    out = np.zeros((b, h + pt + pb, w + pl + pr, c), cols.dtype)
    for r in range(kh):
        for s in range(kw):
            out[:, r * dh:r * dh + sh * (ho - 1) + 1:sh, s * dw:s * dw + sw * (wo - 1) + 1:sw] += cols[:, :, :, r, s]
    return out[:, pt:pt + h, pl:pl + w]


def _group_slices(c: int, f: int, groups: int):
    cg, fg = c // groups, f // groups
    return [(slice(i * cg, (i + 1) * cg), slice(i * fg, (i + 1) * fg)) for i in range(groups)]


def conv2d(x, w, window, strides, padding, dilation, groups):
    kh, kw, cg, f = w.shape
    ho, wo = out_hw(x.shape[1], x.shape[2], {"strides": strides, "padding": padding, "dilation": dilation},
                    (kh, kw))
    cols = windows(_pad(x, padding), (kh, kw), strides, dilation, ho, wo)
    out = np.empty((x.shape[0], ho, wo, f), x.dtype)
    m = x.shape[0] * ho * wo
    for cs, fs in _group_slices(x.shape[3], f, groups):
        a = np.ascontiguousarray(cols[..., cs]).reshape(m, kh * kw * cg)
        out[..., fs] = (a @ w[..., fs].reshape(kh * kw * cg, -1)).reshape(out[..., fs].shape)
    return out


def conv2d_grad_input(dy, w, window, strides, padding, dilation, groups, in_hw):
    kh, kw, cg, f = w.shape
    b, ho, wo, _ = dy.shape
    c = cg * groups
    cols = np.empty((b, ho, wo, kh, kw, c), dy.dtype)
    for cs, fs in _group_slices(c, f, groups):
        d = dy[..., fs].reshape(b * ho * wo, -1) @ w[..., fs].reshape(kh * kw * cg, -1).T
        cols[..., cs] = d.reshape(b, ho, wo, kh, kw, cg)
    return _scatter_windows(cols, (b, in_hw[0], in_hw[1], c), padding, strides, dilation)


def conv2d_grad_filter(x, dy, window, strides, padding, dilation, groups):
    kh, kw = window
    b, ho, wo, f = dy.shape
    c = x.shape[3]
    cg = c // groups
    cols = windows(_pad(x, padding), (kh, kw), strides, dilation, ho, wo)
    out = np.empty((kh, kw, cg, f), x.dtype)
    for cs, fs in _group_slices(c, f, groups):
        a = np.ascontiguousarray(cols[..., cs]).reshape(b * ho * wo, kh * kw * cg)
        out[..., fs] = (a.T @ dy[..., fs].reshape(b * ho * wo, -1)).reshape(kh, kw, cg, -1)
    return out


def maxpool2d(x, window, strides, padding):
    ho, wo = out_hw(x.shape[1], x.shape[2], {"strides": strides, "padding": padding}, window)
    cols = windows(_pad(x, padding, -np.inf), window, strides, (1, 1), ho, wo)
    return cols.max(axis=(3, 4))


def maxpool2d_grad(dy, x, window, strides, padding):
    kh, kw = window
    b, ho, wo, c = dy.shape
    cols = windows(_pad(x, padding, -np.inf), window, strides, (1, 1), ho, wo)
    first = cols.reshape(b, ho, wo, kh * kw, c).argmax(axis=3)      # the first maximum, row-major
    routed = np.zeros((b, ho, wo, kh * kw, c), dy.dtype)
    np.put_along_axis(routed, first[:, :, :, None, :], dy[:, :, :, None, :], axis=3)
    return _scatter_windows(routed.reshape(b, ho, wo, kh, kw, c), x.shape, padding, strides, (1, 1))


def pool_counts(hw, window, strides, padding):
    """[1, Ho, Wo, 1]: how many non-padding elements each window holds."""
    ones = np.ones((1, hw[0], hw[1], 1))
    ho, wo = out_hw(hw[0], hw[1], {"strides": strides, "padding": padding}, window)
    return windows(_pad(ones, padding), window, strides, (1, 1), ho, wo).sum(axis=(3, 4))


def avgpool2d(x, window, strides, padding):
    ho, wo = out_hw(x.shape[1], x.shape[2], {"strides": strides, "padding": padding}, window)
    sums = windows(_pad(x, padding), window, strides, (1, 1), ho, wo).sum(axis=(3, 4))
    return sums / pool_counts(x.shape[1:3], window, strides, padding)


def avgpool2d_grad(dy, x, window, strides, padding):
    kh, kw = window
    share = dy / pool_counts(x.shape[1:3], window, strides, padding)
    cols = np.broadcast_to(share[:, :, :, None, None, :], dy.shape[:3] + (kh, kw, dy.shape[3]))
    return _scatter_windows(cols, x.shape, padding, strides, (1, 1))
