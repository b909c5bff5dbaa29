"""2-D convolution on channels-last images as implicit GEMMs: the columns are
never written to memory, each program gathers its tile of them on the fly.

    forward        out[m, g*FG + n] = sum_k cols(x)[m, k] * w[k, g*FG + n]
                   m = (b, oh, ow) over B*Ho*Wo, k = (r, s, c) over KH*KW*CG
    input grad     dx[m, g*CG + n] = sum_k dy[(b, oh, ow), g*FG + f] * w[(r, s, n), g*FG + f]
                   m = (b, ih, iw) over B*H*W, k = (r, s, f) over KH*KW*FG, where
                   oh = (ih + PT - r*DH) / SH must be whole and in range
    filter grad    dw[m, g*FG + n] = sum_k cols(x)[k, m] * dy[k, g*FG + n]
                   m = (r, s, c) over KH*KW*CG, k = (b, oh, ow) over B*Ho*Wo,
                   split over SPLIT programs per tile (partials added by the
                   column-reduction kernel)

Program grid: (M tiles, N tiles, groups [x SPLIT]). Accumulation in fp32 (operands
in bf16 / fp16 with DOT 1 / 2: a mixed-precision step's, `functions.dot_operand`); the
forward and input-gradient kernels apply the matmul kernel's epilogue (bias,
activation, ReLU mask) to the accumulator before the single store. Memory
traffic (ideal): forward reads x once per N tile and w once per M tile; the
input gradient reads dy and w likewise; FLOPs 2*M*N*K each. Offsets are int64.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..launch import conv_blocks, interpreting
from .functions import dot_operand, tanh


@triton.jit
def _epilogue(acc, offs_m, ch, M, cmask, bias_ptr, mask_ptr, C_OUT,
              HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, HAS_MASK: tl.constexpr):
    if HAS_BIAS:
        acc = acc + tl.load(bias_ptr + ch, mask=cmask, other=0.0).to(tl.float32)[None, :]
    if ACTIVATION == 1:
        acc = tl.maximum(acc, 0.0)
    elif ACTIVATION == 2:
        acc = 1.0 / (1.0 + tl.exp(-acc))
    elif ACTIVATION == 3:
        acc = tanh(acc)
    if HAS_MASK:
        ms = tl.load(mask_ptr + offs_m[:, None] * C_OUT + ch[None, :],
                     mask=(offs_m[:, None] < M) & cmask[None, :], other=0.0)
        acc = tl.where(ms > 0, acc, 0.0)
    return acc


@triton.jit
def conv2d_kernel(x_ptr, w_ptr, out_ptr, bias_ptr, mask_ptr,
                  B, H, W, C, HO, WO, F, KH, KW, SH, SW, PT, PL, DH, DW, CG, FG,
                  HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, HAS_MASK: tl.constexpr,
                  PRECISION: tl.constexpr, DOT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    grp = tl.program_id(2)
    offs_m = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    M = B * HO * WO
    K = KH * KW * CG
    b = offs_m // (HO * WO)
    oh = (offs_m // WO) % HO
    ow = offs_m % WO
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + tl.arange(0, BLOCK_K)
        r = kk // (KW * CG)
        s = (kk // CG) % KW
        c = kk % CG
        ih = oh[:, None] * SH - PT + r[None, :] * DH
        iw = ow[:, None] * SW - PL + s[None, :] * DW
        ok = ((offs_m[:, None] < M) & (kk[None, :] < K) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W))
        a = tl.load(x_ptr + ((b[:, None] * H + ih) * W + iw) * C + grp * CG + c[None, :], mask=ok, other=0.0)
        wt = tl.load(w_ptr + kk[:, None] * F + grp * FG + offs_n[None, :],
                     mask=(kk[:, None] < K) & (offs_n[None, :] < FG), other=0.0)
        acc = tl.dot(dot_operand(a, DOT), dot_operand(wt, DOT), acc, input_precision=PRECISION)
    nmask = offs_n < FG
    ch = grp * FG + offs_n
    acc = _epilogue(acc, offs_m, ch, M, nmask, bias_ptr, mask_ptr, F, HAS_BIAS, ACTIVATION, HAS_MASK)
    tl.store(out_ptr + offs_m[:, None] * F + ch[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=(offs_m[:, None] < M) & nmask[None, :])


@triton.jit
def conv2d_grad_input_kernel(dy_ptr, w_ptr, out_ptr, bias_ptr, mask_ptr,
                             B, H, W, C, HO, WO, F, KH, KW, SH, SW, PT, PL, DH, DW, CG, FG,
                             HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, HAS_MASK: tl.constexpr,
                             PRECISION: tl.constexpr, DOT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                             BLOCK_K: tl.constexpr):
    grp = tl.program_id(2)
    offs_m = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)   # input channel within the group
    M = B * H * W
    K = KH * KW * FG
    b = offs_m // (H * W)
    ih = (offs_m // W) % H
    iw = offs_m % W
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + tl.arange(0, BLOCK_K)
        r = kk // (KW * FG)
        s = (kk // FG) % KW
        f = kk % FG
        th = ih[:, None] + PT - r[None, :] * DH
        tw = iw[:, None] + PL - s[None, :] * DW
        oh = th // SH
        ow = tw // SW
        ok = ((offs_m[:, None] < M) & (kk[None, :] < K) & (th >= 0) & (tw >= 0)
              & (th % SH == 0) & (tw % SW == 0) & (oh < HO) & (ow < WO))
        a = tl.load(dy_ptr + ((b[:, None] * HO + oh) * WO + ow) * F + grp * FG + f[None, :], mask=ok, other=0.0)
        wt = tl.load(w_ptr + ((r[:, None] * KW + s[:, None]) * CG + offs_n[None, :]) * F + grp * FG + f[:, None],
                     mask=(kk[:, None] < K) & (offs_n[None, :] < CG), other=0.0)
        acc = tl.dot(dot_operand(a, DOT), dot_operand(wt, DOT), acc, input_precision=PRECISION)
    nmask = offs_n < CG
    ch = grp * CG + offs_n
    acc = _epilogue(acc, offs_m, ch, M, nmask, bias_ptr, mask_ptr, C, HAS_BIAS, ACTIVATION, HAS_MASK)
    tl.store(out_ptr + offs_m[:, None] * C + ch[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=(offs_m[:, None] < M) & nmask[None, :])


@triton.jit
def conv2d_grad_filter_kernel(x_ptr, dy_ptr, out_ptr,
                              B, H, W, C, HO, WO, F, KH, KW, SH, SW, PT, PL, DH, DW, CG, FG, SPLIT, K_PER_SPLIT,
                              PRECISION: tl.constexpr, DOT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                              BLOCK_K: tl.constexpr):
    pid2 = tl.program_id(2)
    grp = pid2 // SPLIT
    split = pid2 % SPLIT
    offs_m = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)   # (r, s, c)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)                  # filter within the group
    M = KH * KW * CG
    K = B * HO * WO
    r = offs_m // (KW * CG)
    s = (offs_m // CG) % KW
    c = offs_m % CG
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    k_lo = split.to(tl.int64) * K_PER_SPLIT
    k_hi = tl.minimum(k_lo + K_PER_SPLIT, K)
    for k0 in range(k_lo, k_hi, BLOCK_K):
        kk = k0 + tl.arange(0, BLOCK_K)
        b = kk // (HO * WO)
        oh = (kk // WO) % HO
        ow = kk % WO
        ih = oh[None, :] * SH - PT + r[:, None] * DH
        iw = ow[None, :] * SW - PL + s[:, None] * DW
        ok = ((offs_m[:, None] < M) & (kk[None, :] < k_hi) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W))
        a = tl.load(x_ptr + ((b[None, :] * H + ih) * W + iw) * C + grp * CG + c[:, None], mask=ok, other=0.0)
        d = tl.load(dy_ptr + kk[:, None] * F + grp * FG + offs_n[None, :],
                    mask=(kk[:, None] < k_hi) & (offs_n[None, :] < FG), other=0.0)
        acc = tl.dot(dot_operand(a, DOT), dot_operand(d, DOT), acc, input_precision=PRECISION)
    # partials: out is [SPLIT, M, F] (SPLIT 1: the filter gradient itself, [KH*KW*CG, F])
    tl.store(out_ptr + split * (M * F) + offs_m[:, None] * F + grp * FG + offs_n[None, :],
             acc.to(out_ptr.dtype.element_ty), mask=(offs_m[:, None] < M) & (offs_n[None, :] < FG))


# --- launchers --------------------------------------------------------------------------------

def geometry(x_shape, w_shape, strides, padding, dilation, groups, out_hw):
    """The integer arguments the kernels share, in their order."""
    b, h, w, c = x_shape
    kh, kw, cg, f = w_shape
    return (b, h, w, c, out_hw[0], out_hw[1], f, kh, kw, strides[0], strides[1], padding[0][0], padding[1][0],
            dilation[0], dilation[1], cg, f // groups)


def conv2d(x, w, strides, padding, dilation, groups, out_hw, bias=None, activation=0, relu_mask=None,
           out=None, precision="ieee", dot=0):
    geo = geometry(x.shape, w.shape, strides, padding, dilation, groups, out_hw)
    m, fg, k = geo[0] * geo[4] * geo[5], geo[16], geo[7] * geo[8] * geo[15]
    out = torch.empty((geo[0],) + tuple(out_hw) + (geo[6],), device=x.device, dtype=x.dtype) if out is None else out
    bm, bn, bk, warps = conv_blocks(m, fg, k)
    conv2d_kernel[(triton.cdiv(m, bm), triton.cdiv(fg, bn), groups)](
        x, w, out, bias if bias is not None else out, relu_mask if relu_mask is not None else out, *geo,
        HAS_BIAS=bias is not None, ACTIVATION=activation, HAS_MASK=relu_mask is not None, PRECISION=precision,
        DOT=dot, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, num_warps=warps)
    return out


def conv2d_grad_input(dy, w, strides, padding, dilation, groups, in_hw, relu_mask=None, out=None,
                      precision="ieee", dot=0):
    b = dy.shape[0]
    c = w.shape[2] * groups
    geo = geometry((b,) + tuple(in_hw) + (c,), w.shape, strides, padding, dilation, groups, dy.shape[1:3])
    m, k = b * in_hw[0] * in_hw[1], geo[7] * geo[8] * geo[16]
    out = torch.empty((b,) + tuple(in_hw) + (c,), device=dy.device, dtype=dy.dtype) if out is None else out
    bm, bn, bk, warps = conv_blocks(m, geo[15], k)
    conv2d_grad_input_kernel[(triton.cdiv(m, bm), triton.cdiv(geo[15], bn), groups)](
        dy, w, out, out, relu_mask if relu_mask is not None else out, *geo,
        HAS_BIAS=False, ACTIVATION=0, HAS_MASK=relu_mask is not None, PRECISION=precision, DOT=dot,
        BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, num_warps=warps)
    return out


def filter_split(m: int, n: int, k: int, groups: int, bm: int, bn: int) -> int:
    """K splits of a filter gradient: enough programs to fill a GPU (one under the interpreter)."""
    if interpreting():
        return 1
    tiles = triton.cdiv(m, bm) * triton.cdiv(n, bn) * groups
    return max(1, min(triton.cdiv(264, tiles), triton.cdiv(k, 4 * 64)))


def conv2d_grad_filter(x, dy, window, strides, padding, dilation, groups, out=None, partials=None,
                       precision="ieee", dot=0):
    from .columns import reduce_cols
    c, f = x.shape[3], dy.shape[3]
    w_shape = tuple(window) + (c // groups, f)
    geo = geometry(x.shape, w_shape, strides, padding, dilation, groups, dy.shape[1:3])
    m, fg, k = geo[7] * geo[8] * geo[15], geo[16], geo[0] * geo[4] * geo[5]
    out = torch.empty(w_shape, device=x.device, dtype=x.dtype) if out is None else out
    bm, bn, bk, warps = conv_blocks(m, fg, k)
    split = filter_split(m, fg, k, groups, bm, bn)
    per = triton.cdiv(triton.cdiv(k, split), bk) * bk
    target = out if split == 1 else (partials if partials is not None else
                                     torch.empty((split, m * f), device=x.device, dtype=torch.float32))
    conv2d_grad_filter_kernel[(triton.cdiv(m, bm), triton.cdiv(fg, bn), groups * split)](
        x, dy, target, *geo, split, per, PRECISION=precision, DOT=dot, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, num_warps=warps)
    if split > 1:
        reduce_cols(target, split, m * f, out=out.view(-1))
    return out
