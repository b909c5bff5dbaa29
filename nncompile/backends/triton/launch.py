"""Launch heuristics of every Triton kernel, in one place: block sizes, warps,
grid splits and the matmul tile candidates.

Two regimes. On a GPU, blocks are sized for occupancy and bandwidth. Under
the interpreter (TRITON_INTERPRET=1, no GPU) every program instance costs
about 1 ms of Python, so kernels get one big block and a tiny grid. The
`interp` argument of each function picks the regime (default: the running
one), so the code generator can also ask for the GPU sizes it would use, to
compile the kernels ahead of time for sm_90.

NNCOMPILE_TRITON_TINY_BLOCKS=1 makes blocks tiny under the interpreter, so
that even small test shapes launch many programs and split reductions (tests
of the grid and offset arithmetic).
"""
from __future__ import annotations

import os

import triton

# elements per program under the interpreter: one big block
INTERP_MAX = 1 << 16
SMEM_LIMIT = 232448   # H100/H200: 227 KB of dynamic shared memory per block


def interpreting() -> bool:
    """True when Triton runs kernels with its CPU interpreter."""
    try:
        return bool(triton.knobs.runtime.interpret)
    except AttributeError:  # pragma: no cover - older triton
        return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


INTERP = interpreting()


def np2(n: int) -> int:
    """The next power of two >= n (1 for n <= 1)."""
    n = int(n)
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def clamp(v, lo, hi):
    return max(lo, min(hi, v))


def tiny() -> bool:
    return os.environ.get("NNCOMPILE_TRITON_TINY_BLOCKS", "") not in ("", "0")


def pointwise_block(n: int, interp: bool = INTERP) -> tuple[int, int]:
    """(BLOCK, num_warps) for a pointwise kernel over n elements."""
    if interp and tiny():
        return 16, 4
    if interp:
        return clamp(np2(n), 16, INTERP_MAX), 4
    return (1024, 4) if n >= 1 << 16 else (clamp(np2(n), 128, 1024), 4)


def row_blocks(rows: int, cols: int, interp: bool = INTERP) -> tuple[int, int, int]:
    """(BLOCK_R, BLOCK_C, num_warps) for a row kernel that holds whole rows."""
    bc = np2(max(cols, 1))
    if interp and tiny():
        return 2, bc, 4
    if interp:
        return clamp(INTERP_MAX // bc, 1, np2(rows)), bc, 4
    br = clamp(4096 // bc, 1, min(64, np2(rows)))
    return br, bc, clamp(br * bc // 256, 1, 8)


def loop_row_blocks(rows: int, cols: int, interp: bool = INTERP) -> tuple[int, int, int]:
    """(BLOCK_R, BLOCK_C, num_warps) for a row reduction that loops over columns."""
    if interp and tiny():
        return 2, 16, 4
    if interp:
        bc = clamp(np2(cols), 16, INTERP_MAX)
        return clamp(INTERP_MAX // bc, 1, np2(rows)), bc, 4
    bc = clamp(np2(cols), 16, 1024)
    br = clamp(4096 // bc, 1, min(64, np2(rows)))
    return br, bc, 4


def col_blocks(m: int, n: int, interp: bool = INTERP) -> tuple[int, int, int, int, int]:
    """(BLOCK_M, BLOCK_N, split, rows_per_split, num_warps) for a column
    reduction of an (m, n) array; with split > 1 the rows are shared out
    among `split` programs per column strip, and a second pass adds the partials."""
    if interp and tiny():
        rows = 4
        return 2, 4, triton.cdiv(max(m, 1), rows), rows, 4
    if interp:
        bn = clamp(np2(n), 1, 1024)
        return clamp(INTERP_MAX // bn, 1, np2(m)), bn, 1, max(m, 1), 4
    bn = clamp(np2(n), 16, 128)
    bm = 32
    strips = triton.cdiv(n, bn)
    split = clamp(264 // strips, 1, max(1, triton.cdiv(m, bm * 4)))
    rows = triton.cdiv(triton.cdiv(m, split), bm) * bm
    split = triton.cdiv(m, rows) if m else 1
    return bm, bn, split, max(rows, 1), 4


def partial_block(split: int) -> int:
    """BLOCK_M of the pass that adds a split column reduction's partials."""
    return clamp(np2(split), 1, 64)


def conv_blocks(m: int, n: int, k: int, interp: bool = INTERP) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K, num_warps) for an implicit-GEMM convolution
    with an (m, n) output and a reduction of k (tl.dot needs every block >= 16)."""
    bn = clamp(np2(n), 16, 128)
    if interp and tiny():
        return 16, 16, 16, 4
    if interp:
        return clamp(np2(m), 16, 4096), bn, clamp(np2(k), 16, 128), 4
    return (128 if m >= 1 << 14 else 64), clamp(bn, 16, 64), 32, 4


# --- matmul tiles -------------------------------------------------------------------------

class MatmulConfig(tuple):
    """(BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_warps, num_stages)."""

    __slots__ = ()

    def __new__(cls, bm, bn, bk, gm, warps, stages):
        return super().__new__(cls, (int(bm), int(bn), int(bk), int(gm), int(warps), int(stages)))

    def smem_bytes(self, elem_size: int) -> int:
        bm, bn, bk, _, _, stages = self
        return stages * (bm * bk + bk * bn) * elem_size


# Candidates for H100, pruned by shared memory and problem size, then timed.
MATMUL_CONFIGS_32BIT = [  # fp32 / tf32 operands
    MatmulConfig(128, 128, 32, 8, 4, 3),
    MatmulConfig(128, 256, 32, 8, 8, 3),
    MatmulConfig(128, 64, 32, 8, 4, 4),
    MatmulConfig(64, 128, 32, 8, 4, 4),
    MatmulConfig(64, 64, 32, 8, 4, 4),
    MatmulConfig(32, 64, 32, 8, 4, 4),
]
MATMUL_CONFIGS_16BIT = [  # bf16 / fp16 operands
    MatmulConfig(128, 256, 64, 8, 8, 3),
    MatmulConfig(128, 128, 64, 8, 4, 4),
    MatmulConfig(128, 128, 64, 8, 8, 3),
    MatmulConfig(64, 128, 64, 8, 4, 4),
    MatmulConfig(64, 64, 64, 8, 4, 3),
    MatmulConfig(32, 64, 64, 8, 4, 4),
]


def matmul_candidates(m: int, n: int, elem_size: int) -> list[MatmulConfig]:
    """The tiles worth timing for an (m, n) output: those that fit in shared
    memory and are not much larger than the problem."""
    cands = MATMUL_CONFIGS_16BIT if elem_size <= 2 else MATMUL_CONFIGS_32BIT
    cands = [cf for cf in cands if cf.smem_bytes(elem_size) <= SMEM_LIMIT]
    small = [cf for cf in cands if cf[0] <= max(32, np2(m)) and cf[1] <= max(64, np2(n))]
    return small or cands[-1:]


def interp_matmul_config(m: int, n: int, k: int) -> MatmulConfig:
    # one or very few programs; tl.dot needs every block dim >= 16
    return MatmulConfig(clamp(np2(m), 16, 128), clamp(np2(n), 16, 128), clamp(np2(k), 16, 128), 8, 4, 1)
