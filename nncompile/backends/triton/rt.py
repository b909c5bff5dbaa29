"""Runtime helpers that generated Triton modules call (host side only).

Kept small and free of graph knowledge: the device, host/torch conversions,
the Philox stream seed, and the host fallback for forms of ops that have no
Triton lowering. Launch sizes are in launch.py.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from ...ir import philox
from ...ir.collective import reduce_into  # noqa: F401  (a data-parallel step's all-reduce)
from ...ir.ops import NP_DTYPE, OPS
from .launch import INTERP

TORCH_DTYPE = {"f32": torch.float32, "f64": torch.float64, "i64": torch.int64}
_NP_TO_TORCH = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64,
                np.dtype(np.int64): torch.int64, np.dtype(np.int32): torch.int32,
                np.dtype(np.bool_): torch.bool, np.dtype(np.uint8): torch.uint8}


def device() -> torch.device:
    if torch.cuda.is_available() and not INTERP:
        return torch.device("cuda", torch.cuda.current_device())   # "cuda:0": compares equal to tensors' device
    if INTERP:
        return torch.device("cpu")
    from ...errors import NNError
    from . import cannot_run
    raise NNError(cannot_run() or "the triton backend needs a CUDA GPU")


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
