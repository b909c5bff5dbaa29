"""Column reductions: out[n] = reduce over m of x[m, n] (bias gradients, batch
statistics: a reduction over the leading axes of a contiguous array).

Program (pid_n, pid_s) reduces rows [pid_s*ROWS, (pid_s+1)*ROWS) of a
BLOCK_N-wide column strip, in fp32. With a tall, narrow input one strip per
program would leave most of a GPU idle, so `launch.col_blocks` splits the rows
among several programs per strip; each writes its partial row into a
(split, N) scratch and a second launch of the same kernel reduces the
partials. Memory: read M*N, write N (plus 2*split*N for the partials).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..launch import col_blocks, partial_block
from .functions import reduce_final, reduce_init, reduce_step
from .rows import MAX, SUM


@triton.jit
def reduce_cols_kernel(x_ptr, out_ptr, M, N, ROWS, scale, REDUCE: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid_n = tl.program_id(0).to(tl.int64)
    pid_s = tl.program_id(1).to(tl.int64)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    cmask = cols < N
    r_start = pid_s * ROWS
    r_end = tl.minimum(r_start + ROWS, M)
    acc = reduce_init(BLOCK_M, BLOCK_N, REDUCE)
    for r0 in range(r_start, r_end, BLOCK_M):
        rows = r0 + tl.arange(0, BLOCK_M)
        acc = reduce_step(acc, x_ptr + rows[:, None] * N + cols[None, :], (rows[:, None] < r_end) & cmask[None, :],
                          REDUCE)
    r = reduce_final(acc, scale, 0, REDUCE)
    tl.store(out_ptr + pid_s * N + cols, r.to(out_ptr.dtype.element_ty), mask=cmask)


def reduce_cols(x, m: int, n: int, reduce=SUM, scale=1.0, out=None, partials=None):
    """Reduce a contiguous tensor seen as (m, n) over its m rows (SUM times
    `scale`, or MAX). `partials`: a (split, n) fp32 scratch for a split launch
    (made here when needed and not given)."""
    out = torch.empty((n,), device=x.device, dtype=x.dtype) if out is None else out
    bm, bn, split, rows, w = col_blocks(m, n)
    grid_n = triton.cdiv(n, bn)
    if split == 1:
        reduce_cols_kernel[(grid_n, 1)](x, out, m, n, rows, float(scale), REDUCE=reduce, BLOCK_M=bm,
                                        BLOCK_N=bn, num_warps=w)
        return out
    if partials is None:
        partials = torch.empty((split, n), device=x.device, dtype=torch.float32)
    reduce_cols_kernel[(grid_n, split)](x, partials, m, n, rows, 1.0, REDUCE=reduce, BLOCK_M=bm, BLOCK_N=bn,
                                        num_warps=w)
    reduce_cols_kernel[(grid_n, 1)](partials, out, split, n, split, float(scale), REDUCE=reduce,
                                    BLOCK_M=partial_block(split), BLOCK_N=bn, num_warps=w)
    return out


__all__ = ["reduce_cols", "reduce_cols_kernel", "SUM", "MAX"]
