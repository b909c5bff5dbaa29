"""Low-precision rounding: the values a bf16 or fp16 tensor can hold, kept in f32.

A mixed-precision step rounds each matmul and convolution operand to bf16 or
fp16 (`round_to` in the op table, put there by `passes/mixed_precision.py`)
and computes in f32. These functions are that rounding's reference: round to
nearest, ties to even (what `torch.Tensor.to(torch.bfloat16)` and the GPU's
cvt.rn do), overflow to +-inf, NaN kept NaN, fp16 subnormals kept. A backend
with native bf16/fp16 operands converts in registers instead; its results are
these, bit for bit.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

PRECISIONS = ("bf16", "f16")


def round_to(a: np.ndarray, precision: str, out: Optional[np.ndarray] = None) -> np.ndarray:
    """`a` rounded to the nearest `precision` value, in `a`'s dtype (into `out` if given;
    `out` may be `a`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    a = np.asarray(a)
    if out is None:
        out = np.empty(a.shape, a.dtype if a.dtype.kind == "f" else np.float32)
    if precision == "f16":      # NumPy's float32 -> float16 conversion rounds to nearest even
        with np.errstate(over="ignore"):    # beyond 65504: inf, as the cast on the GPU
            np.copyto(out, a.astype(np.float32).astype(np.float16), casting="unsafe")
        return out
    x = np.ascontiguousarray(a, dtype=np.float32)
    nan = np.isnan(x)
    u = x.view(np.uint32)
    # add just under half an ulp of bf16, plus 1 when the kept part is odd (ties to even),
    # then drop the low 16 bits; a NaN could carry into the sign, so NaNs are put back
    r = ((u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))) & np.uint32(0xFFFF0000)).view(np.float32)
    r[nan] = np.nan
    np.copyto(out, r, casting="unsafe")
    return out
