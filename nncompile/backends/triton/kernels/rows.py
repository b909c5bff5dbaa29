"""Row kernels: softmax, log-softmax, softmax cross-entropy and its gradient,
argmax, label gather, one-hot, and reductions over the last axis.

Every kernel sees its input as R rows of C contiguous elements; a program owns
BLOCK_R rows. The kernels that need a whole row at once (softmax, the
cross-entropies, argmax) hold it in registers (C <= BLOCK_C); the reductions
loop over the columns. Offsets are int64, so arrays past 2^31 elements index
correctly. Statistics are computed in fp32 whatever the storage type.

Each kernel has a thin launcher below it that picks its blocks
(`launch.row_blocks`, `launch.loop_row_blocks`) and launches it: the code
generator calls the kernels directly with blocks chosen once per batch size,
the tests call the launchers.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..launch import loop_row_blocks, row_blocks
from .functions import reduce_final, reduce_init, reduce_step

# reductions (the REDUCE constexpr): sum (mean is a sum times 1/count) and max
SUM, MAX = 0, 1


@triton.jit
def _row_block(pid, R, C, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    rows = pid.to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_C)
    rmask = rows < R
    m = rmask[:, None] & (cols[None, :] < C)
    return rows, cols, rmask, m, rows[:, None] * C + cols[None, :]


@triton.jit
def _row_stats(x_ptr, offs, m, rmask):
    """The rows in fp32 (padding -inf, so it never wins the max), their max and sum(exp(x - max))."""
    x = tl.load(x_ptr + offs, mask=m, other=float("-inf")).to(tl.float32)
    x = tl.where(rmask[:, None], x, 0.0)   # padding rows: finite, never stored
    mx = tl.max(x, axis=1)
    e = tl.exp(x - mx[:, None])
    return x, mx, e, tl.sum(e, axis=1)


@triton.jit
def softmax_kernel(x_ptr, out_ptr, R, C, LOG: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    # memory: read R*C, write R*C (may be in place: each row is read before it is written)
    rows, cols, rmask, m, offs = _row_block(tl.program_id(0), R, C, BLOCK_R, BLOCK_C)
    x, mx, e, s = _row_stats(x_ptr, offs, m, rmask)
    if LOG:
        y = (x - mx[:, None]) - tl.log(s)[:, None]
    else:
        y = e / s[:, None]
    tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def softmax_xent_kernel(z_ptr, y_ptr, dy_ptr, out_ptr, R, C, GRAD: tl.constexpr,
                        BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    # GRAD=False: out[r] = logsumexp(z[r]) - z[r, y[r]]; memory: read R*C + R labels, write R
    # GRAD=True:  out[r] = (softmax(z[r]) - onehot(y[r])) * dy[r]; read R*C + 2R, write R*C
    rows, cols, rmask, m, offs = _row_block(tl.program_id(0), R, C, BLOCK_R, BLOCK_C)
    z, mx, e, s = _row_stats(z_ptr, offs, m, rmask)
    onehot = cols[None, :] == tl.load(y_ptr + rows, mask=rmask, other=0)[:, None]
    if GRAD:
        dy = tl.load(dy_ptr + rows, mask=rmask, other=0.0)
        d = (e / s[:, None] - tl.where(onehot, 1.0, 0.0)) * dy[:, None]
        tl.store(out_ptr + offs, d.to(out_ptr.dtype.element_ty), mask=m)
    else:
        loss = (tl.log(s) + mx) - tl.sum(tl.where(onehot, z, 0.0), axis=1)
        tl.store(out_ptr + rows, loss.to(out_ptr.dtype.element_ty), mask=rmask)


@triton.jit
def argmax_kernel(x_ptr, out_ptr, R, C, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    # memory: read R*C, write R
    rows, cols, rmask, m, offs = _row_block(tl.program_id(0), R, C, BLOCK_R, BLOCK_C)
    x = tl.load(x_ptr + offs, mask=m, other=float("-inf"))
    mx = tl.max(x, axis=1)
    # the first column holding the maximum (NumPy's tie rule)
    idx = tl.min(tl.where((x == mx[:, None]) & m, cols[None, :], BLOCK_C), axis=1)
    tl.store(out_ptr + rows, idx.to(tl.int64), mask=rmask)


@triton.jit
def take_kernel(p_ptr, y_ptr, out_ptr, R, C, BLOCK_R: tl.constexpr):
    # out[r] = p[r, y[r]]; memory: read 2R, write R
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < R
    lab = tl.load(y_ptr + rows, mask=rmask, other=0)
    tl.store(out_ptr + rows, tl.load(p_ptr + rows * C + lab, mask=rmask, other=0.0), mask=rmask)


@triton.jit
def onehot_kernel(y_ptr, out_ptr, R, C, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    # memory: read R labels, write R*C
    rows, cols, rmask, m, offs = _row_block(tl.program_id(0), R, C, BLOCK_R, BLOCK_C)
    lab = tl.load(y_ptr + rows, mask=rmask, other=0)
    v = tl.where(cols[None, :] == lab[:, None], 1.0, 0.0)
    tl.store(out_ptr + offs, v.to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def reduce_rows_kernel(x_ptr, out_ptr, R, C, scale, REDUCE: tl.constexpr,
                       BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    # out[r] = reduce(x[r, :]) * scale (REDUCE: SUM or MAX); memory: read R*C, write R
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < R
    acc = reduce_init(BLOCK_R, BLOCK_C, REDUCE)
    for c0 in range(0, C, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)
        acc = reduce_step(acc, x_ptr + rows[:, None] * C + cols[None, :], rmask[:, None] & (cols[None, :] < C),
                          REDUCE)
    r = reduce_final(acc, scale, 1, REDUCE)
    tl.store(out_ptr + rows, r.to(out_ptr.dtype.element_ty), mask=rmask)


# --- launchers ----------------------------------------------------------------------------

def _rows(x: torch.Tensor) -> tuple[int, int]:
    c = x.shape[-1] if x.dim() else 1
    return x.numel() // max(c, 1), c


def softmax(x, out=None, log=False):
    """softmax (or log_softmax) over the last axis of a contiguous tensor."""
    out = torch.empty_like(x) if out is None else out
    r, c = _rows(x)
    br, bc, w = row_blocks(r, c)
    softmax_kernel[(triton.cdiv(r, br),)](x, out, r, c, LOG=log, BLOCK_R=br, BLOCK_C=bc, num_warps=w)
    return out


def softmax_xent(z, y, out=None):
    """Per-row cross-entropy of logits z [R, C] with int64 labels y [R]."""
    r, c = z.shape
    out = torch.empty((r,), device=z.device, dtype=z.dtype) if out is None else out
    br, bc, w = row_blocks(r, c)
    softmax_xent_kernel[(triton.cdiv(r, br),)](z, y, z, out, r, c, GRAD=False, BLOCK_R=br, BLOCK_C=bc,
                                               num_warps=w)
    return out


def softmax_xent_grad(z, y, dy, out=None):
    """(softmax(z) - onehot(y)) * dy[:, None]."""
    r, c = z.shape
    out = torch.empty_like(z) if out is None else out
    br, bc, w = row_blocks(r, c)
    softmax_xent_kernel[(triton.cdiv(r, br),)](z, y, dy, out, r, c, GRAD=True, BLOCK_R=br, BLOCK_C=bc,
                                               num_warps=w)
    return out


def argmax(x, out=None):
    r, c = _rows(x)
    out = torch.empty(x.shape[:-1], device=x.device, dtype=torch.int64) if out is None else out
    br, bc, w = row_blocks(r, c)
    argmax_kernel[(triton.cdiv(r, br),)](x, out, r, c, BLOCK_R=br, BLOCK_C=bc, num_warps=w)
    return out


def take_label(p, y, out=None):
    r, c = p.shape
    out = torch.empty((r,), device=p.device, dtype=p.dtype) if out is None else out
    br, _, w = row_blocks(r, 1)
    take_kernel[(triton.cdiv(r, br),)](p, y, out, r, c, BLOCK_R=br, num_warps=w)
    return out


def onehot(y, depth, out=None, dtype=torch.float32):
    r = y.numel()
    out = torch.empty((r, depth), device=y.device, dtype=dtype) if out is None else out
    br, bc, w = row_blocks(r, depth)
    onehot_kernel[(triton.cdiv(r, br),)](y, out, r, depth, BLOCK_R=br, BLOCK_C=bc, num_warps=w)
    return out


def reduce_rows(x, reduce=SUM, scale=1.0, out=None):
    """reduce over the last axis (SUM times `scale`, or MAX)."""
    r, c = _rows(x)
    out = torch.empty(x.shape[:-1], device=x.device, dtype=x.dtype) if out is None else out
    br, bc, w = loop_row_blocks(r, c)
    reduce_rows_kernel[(triton.cdiv(r, br),)](x, out, r, c, float(scale), REDUCE=reduce, BLOCK_R=br,
                                              BLOCK_C=bc, num_warps=w)
    return out
