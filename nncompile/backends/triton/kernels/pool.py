"""Max and average pooling on channels-last images, and their gradients.

The forward kernels are pointwise over the output [B, Ho, Wo, C]: each element
loops over its window (padding: -inf for max, left out of the average, whose
divisor counts only the window's elements inside the image). The gradient
kernels are pointwise over the input [B, H, W, C] and gather, with no
atomics: an element adds dy of every window that holds it — for max pooling,
only of the windows whose first maximum (row-major) it is, found by
rescanning the window, as PyTorch routes it. Memory: the forward reads the
input about (KH*KW)/(SH*SW) times and writes the output once; the max-pool
gradient reads up to KH*KW windows per element (KH*KW*KH*KW loads, cached).
Offsets are int64.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..launch import pointwise_block


@triton.jit
def _decode(offs, H, W, C):
    return offs // (H * W * C), (offs // (W * C)) % H, (offs // C) % W, offs % C


@triton.jit
def pool_kernel(x_ptr, out_ptr, n, H, W, C, HO, WO, KH, KW, SH, SW, PT, PL,
                MAX: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = offs < n
    b, oh, ow, c = _decode(offs, HO, WO, C)
    if MAX:
        acc = tl.full((BLOCK,), float("-inf"), tl.float32)
    else:
        acc = tl.zeros((BLOCK,), tl.float32)
    count = tl.zeros((BLOCK,), tl.float32)
    for r in range(0, KH):
        for s in range(0, KW):
            ih = oh * SH - PT + r
            iw = ow * SW - PL + s
            inside = live & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            ptrs = x_ptr + ((b * H + ih) * W + iw) * C + c
            if MAX:
                acc = tl.maximum(acc, tl.load(ptrs, mask=inside, other=float("-inf")).to(tl.float32))
            else:
                acc += tl.load(ptrs, mask=inside, other=0.0).to(tl.float32)
            count += tl.where(inside, 1.0, 0.0)
    if not MAX:
        acc = acc / tl.maximum(count, 1.0)
    tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=live)


@triton.jit
def _first_max_at(x_ptr, b, oh, ow, c, ih, iw, ok, H, W, C, KH, KW, SH, SW, PT, PL, BLOCK: tl.constexpr):
    """Whether (ih, iw) holds the first maximum of window (oh, ow) (where ok)."""
    best = tl.full((BLOCK,), float("-inf"), tl.float32)
    at_h = tl.full((BLOCK,), -1, tl.int64)
    at_w = tl.full((BLOCK,), -1, tl.int64)
    for r in range(0, KH):
        for s in range(0, KW):
            h2 = oh * SH - PT + r
            w2 = ow * SW - PL + s
            inside = ok & (h2 >= 0) & (h2 < H) & (w2 >= 0) & (w2 < W)
            v = tl.load(x_ptr + ((b * H + h2) * W + w2) * C + c, mask=inside, other=float("-inf")).to(tl.float32)
            better = inside & ((v > best) | (at_h < 0))
            best = tl.where(better, v, best)
            at_h = tl.where(better, h2, at_h)
            at_w = tl.where(better, w2, at_w)
    return (at_h == ih) & (at_w == iw)


@triton.jit
def pool_grad_kernel(dy_ptr, x_ptr, out_ptr, n, H, W, C, HO, WO, KH, KW, SH, SW, PT, PL,
                     MAX: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = offs < n
    b, ih, iw, c = _decode(offs, H, W, C)
    acc = tl.zeros((BLOCK,), tl.float32)
    for r in range(0, KH):
        for s in range(0, KW):
            th = ih + PT - r
            tw = iw + PL - s
            oh = th // SH
            ow = tw // SW
            ok = live & (th >= 0) & (tw >= 0) & (th % SH == 0) & (tw % SW == 0) & (oh < HO) & (ow < WO)
            d = tl.load(dy_ptr + ((b * HO + oh) * WO + ow) * C + c, mask=ok, other=0.0).to(tl.float32)
            if MAX:
                ok = ok & _first_max_at(x_ptr, b, oh, ow, c, ih, iw, ok, H, W, C, KH, KW, SH, SW, PT, PL, BLOCK)
                acc += tl.where(ok, d, 0.0)
            else:
                h0 = oh * SH - PT
                w0 = ow * SW - PL
                count = ((tl.minimum(h0 + KH, H) - tl.maximum(h0, 0)) *
                         (tl.minimum(w0 + KW, W) - tl.maximum(w0, 0))).to(tl.float32)
                acc += tl.where(ok, d / tl.maximum(count, 1.0), 0.0)
    tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=live)


def geometry(x_shape, window, strides, padding, out_hw):
    b, h, w, c = x_shape
    return (h, w, c, out_hw[0], out_hw[1], window[0], window[1], strides[0], strides[1], padding[0][0], padding[1][0])


def pool(x, window, strides, padding, out_hw, op="max", out=None):
    out = torch.empty((x.shape[0],) + tuple(out_hw) + (x.shape[3],), device=x.device, dtype=x.dtype) \
        if out is None else out
    n = out.numel()
    blk, w = pointwise_block(n)
    pool_kernel[(triton.cdiv(n, blk),)](x, out, n, *geometry(x.shape, window, strides, padding, out_hw),
                                        MAX=op == "max", BLOCK=blk, num_warps=w)
    return out


def pool_grad(dy, x, window, strides, padding, op="max", out=None):
    out = torch.empty_like(x) if out is None else out
    n = out.numel()
    blk, w = pointwise_block(n)
    pool_grad_kernel[(triton.cdiv(n, blk),)](dy, x, out, n,
                                             *geometry(x.shape, window, strides, padding, dy.shape[1:3]),
                                             MAX=op == "max", BLOCK=blk, num_warps=w)
    return out
