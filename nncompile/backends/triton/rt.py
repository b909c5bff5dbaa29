"""Runtime helpers that generated Triton modules call (host side only).

Kept small and free of graph knowledge: block-size choices for the
interpreter vs a GPU, the Philox stream seed, and the host fallback for ops
that have no Triton lowering yet.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import triton

from ...ir import philox
from ...ir.ops import NP_DTYPE, OPS
from .kernels import interpreting

TORCH_DTYPE = {"f32": torch.float32, "f64": torch.float64, "i64": torch.int64}
_NP_TO_TORCH = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64,
                np.dtype(np.int64): torch.int64, np.dtype(np.int32): torch.int32,
                np.dtype(np.bool_): torch.bool, np.dtype(np.uint8): torch.uint8}

INTERP = interpreting()
# elements per program: the interpreter costs ~1 ms per program instance, so
# it gets one big block; a GPU gets many small ones
INTERP_MAX = 1 << 16


def device() -> torch.device:
    if torch.cuda.is_available() and not INTERP:
        return torch.device("cuda", torch.cuda.current_device())   # "cuda:0": compares equal to tensors' device
    if INTERP:
        return torch.device("cpu")
    raise RuntimeError("the triton backend needs a CUDA GPU, or TRITON_INTERPRET=1 set before "
                       "triton is imported (CPU interpreter, slow)")


def np2(n: int) -> int:
    n = int(n)
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def clamp(v, lo, hi):
    return max(lo, min(hi, v))


def tiny() -> bool:
    """NNCOMPILE_TRITON_TINY_BLOCKS=1: tiny blocks, so that even small test
    shapes launch many programs and split reductions (tests the launch math)."""
    return os.environ.get("NNCOMPILE_TRITON_TINY_BLOCKS", "") not in ("", "0")


def pointwise_block(n: int, interp: bool = INTERP) -> tuple[int, int]:
    """(BLOCK, num_warps) for a pointwise kernel over n elements."""
    if interp and tiny():
        return 16, 4
    if interp:
        return clamp(np2(n), 16, INTERP_MAX), 4
    return (1024, 4) if n >= 1 << 16 else (clamp(np2(n), 128, 1024), 4)


def row_blocks(rows: int, cols: int, interp: bool = INTERP) -> tuple[int, int, int]:
    """(BLOCK_R, BLOCK_C, num_warps) for a row kernel (whole row in one block)."""
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
    """(BLOCK_M, BLOCK_N, split, rows_per_split, num_warps) for a column reduction."""
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


def host_ints(a) -> list[int]:
    if isinstance(a, torch.Tensor):
        return [int(v) for v in a.reshape(-1).tolist()]
    return [int(v) for v in np.asarray(a).reshape(-1)]


def mix(rng: list[int], stream: int) -> int:
    """The Philox key of one dropout site for this (seed, step): see ir/philox.py."""
    return philox.mix(rng[0], rng[1], stream)


def to_torch(a, dtype: torch.dtype, dev: torch.device) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        if a.device != dev or a.dtype != dtype:
            a = a.to(device=dev, dtype=dtype)
        return a if a.is_contiguous() else a.contiguous()
    arr = np.ascontiguousarray(a)
    t = torch.from_numpy(arr) if arr.dtype in _NP_TO_TORCH else torch.from_numpy(arr.astype(np.float64))
    return t.to(device=dev, dtype=dtype)


def fallback(op: str, attrs: dict, out: torch.Tensor, *ins) -> None:
    """Run one op by its NumPy reference semantics on the host (listed in
    TritonProgram.fallbacks; the examples' ops never come here)."""
    args = [x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x) for x in ins]
    res = np.asarray(OPS[op].ref(*args, **attrs))
    out.copy_(torch.from_numpy(np.ascontiguousarray(res, dtype=NP_DTYPE[_dt_name(out.dtype)])).reshape(out.shape))


def _dt_name(dt: torch.dtype) -> str:
    return {torch.float32: "f32", torch.float64: "f64", torch.int64: "i64"}[dt]


def env_precision() -> str:
    """Matmul input precision: "ieee" (exact fp32, the default) or tf32 via NNCOMPILE_TF32=1."""
    return "tf32" if os.environ.get("NNCOMPILE_TF32", "") not in ("", "0") else "ieee"
