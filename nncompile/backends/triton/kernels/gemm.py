"""C = act(op(A) @ op(B) + bias) [* (mask > 0)]: the tiled GEMM with its epilogue.

The classic tiled GEMM (the Triton tutorials' matrix multiplication): each
program owns a BLOCK_M x BLOCK_N tile of C, walks K in BLOCK_K steps, keeps
the fp32 accumulator in registers, and runs the epilogue on it before the
single store:
    acc += bias[None, :]        (HAS_BIAS)
    acc  = act(acc)             (ACTIVATION: 0 none, 1 relu, 2 sigmoid, 3 tanh)
    acc *= (mask_src > 0)       (HAS_MASK: backward of ReLU fused in)
Program ids are swizzled in groups of GROUP_M rows of tiles so neighbouring
programs reuse the same A/B panels from L2. op = identity or transpose, done
with strides only (no copies).

Memory traffic (ideal, perfect L2 reuse): read A (M*K) + B (K*N), write C
(M*N) [+ read bias N] [+ read mask M*N]; in practice A is re-read N/BLOCK_N
times and B M/BLOCK_M times from L2. FLOPs: 2*M*N*K. Compute bound for large
shapes (H100 SXM dense: ~495 TF/s tf32, ~990 TF/s bf16; fp32 "ieee" dots run
on CUDA cores at ~67 TF/s).

The tile is chosen by timing the candidates of `launch.matmul_candidates` once
per problem (cached in memory and, on a GPU, on disk).
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
from typing import Optional

import torch
import triton
import triton.language as tl

from ..launch import MatmulConfig, interp_matmul_config, interpreting, matmul_candidates
from .functions import dot_operand, tanh

# the activations the epilogue applies: the IR ops whose row says epilogue="activation"
ACTIVATIONS = {None: 0, "none": 0, "relu": 1, "sigmoid": 2, "tanh": 3}


@triton.jit
def matmul_kernel(
    a_ptr, b_ptr, c_ptr, bias_ptr, mask_ptr,
    M, N, K,
    stride_am, stride_ak, stride_bk, stride_bn,
    stride_cm, stride_cn, stride_mm, stride_mn,
    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, HAS_MASK: tl.constexpr,
    UPCAST: tl.constexpr, PRECISION: tl.constexpr, DOT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = tl.minimum(num_pid_m - first_pid_m, GROUP_M)
    pid_m = (first_pid_m + ((pid % num_pid_in_group) % group_size_m)).to(tl.int64)
    pid_n = ((pid % num_pid_in_group) // group_size_m).to(tl.int64)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    # Rows/cols past the edge wrap around (loads stay in bounds, no mask in the
    # K loop on M/N); they are discarded by the masked store.
    offs_am = offs_m % M
    offs_bn = offs_n % N
    offs_k = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + offs_am[:, None] * stride_am + offs_k[None, :] * stride_ak
    b_ptrs = b_ptr + offs_k[:, None] * stride_bk + offs_bn[None, :] * stride_bn

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        k_rem = K - k * BLOCK_K
        a = tl.load(a_ptrs, mask=offs_k[None, :] < k_rem, other=0.0)
        b = tl.load(b_ptrs, mask=offs_k[:, None] < k_rem, other=0.0)
        if DOT != 0:
            # fp32 operands that a mixed-precision step rounded: 16-bit tensor-core dot
            a = dot_operand(a, DOT)
            b = dot_operand(b, DOT)
        elif UPCAST:
            # Interpreter only: its bf16 tl.dot is wrong, do it in fp32.
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
        a_ptrs += BLOCK_K * stride_ak
        b_ptrs += BLOCK_K * stride_bk

    # ---- epilogue: accumulator still in registers --------------------------
    c_mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)
        acc = acc + bias[None, :]
    if ACTIVATION == 1:
        acc = tl.maximum(acc, 0.0)
    elif ACTIVATION == 2:
        acc = 1.0 / (1.0 + tl.exp(-acc))
    elif ACTIVATION == 3:
        acc = tanh(acc)
    if HAS_MASK:
        ms = tl.load(mask_ptr + offs_m[:, None] * stride_mm + offs_n[None, :] * stride_mn,
                     mask=c_mask, other=0.0)
        acc = tl.where(ms > 0, acc, 0.0)
    c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=c_mask)


def check_device(*tensors):
    for t in tensors:
        if t is not None and not t.is_cuda and not interpreting():
            raise RuntimeError(
                "nncompile triton kernels need CUDA tensors (or CPU tensors with "
                "TRITON_INTERPRET=1 set before importing triton)")


class _AutotuneCache:
    """In-memory cache of the best matmul config per problem key, mirrored to a
    JSON file on disk when running on a real GPU.

    File: ``$NNCOMPILE_CACHE_DIR/triton_matmul_autotune.json`` (default
    ``~/.cache/nncompile``).  Keys include the GPU name and Triton version so a
    stale file from another card is harmless."""

    def __init__(self):
        self._mem: dict[str, MatmulConfig] = {}
        self._loaded = False
        self._lock = threading.Lock()

    @staticmethod
    def path() -> str:
        root = os.environ.get("NNCOMPILE_CACHE_DIR") or os.path.join(
            os.path.expanduser("~"), ".cache", "nncompile")
        return os.path.join(root, "triton_matmul_autotune.json")

    def _load(self):
        if self._loaded:
            return
        self._loaded = True
        try:
            with open(self.path()) as f:
                data = json.load(f)
            for k, v in data.items():
                self._mem.setdefault(k, MatmulConfig(*v))
        except (OSError, ValueError, TypeError):
            pass

    def get(self, key: str, disk: bool) -> Optional[MatmulConfig]:
        with self._lock:
            if disk:
                self._load()
            return self._mem.get(key)

    def put(self, key: str, cfg: MatmulConfig, disk: bool):
        with self._lock:
            self._mem[key] = cfg
            if not disk:
                return
            path = self.path()
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                try:
                    with open(path) as f:
                        data = json.load(f)
                except (OSError, ValueError):
                    data = {}
                data[key] = list(cfg)
                fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
                with os.fdopen(fd, "w") as f:
                    json.dump(data, f, indent=0, sort_keys=True)
                os.replace(tmp, path)  # atomic: concurrent writers never corrupt it
            except OSError:
                pass  # read-only home etc.: in-memory cache still works

    def clear(self, disk: bool = False):
        with self._lock:
            self._mem.clear()
            self._loaded = False
            if disk:
                try:
                    os.remove(self.path())
                except OSError:
                    pass


_AUTOTUNE = _AutotuneCache()


def clear_autotune_cache(disk: bool = False):
    """Forget tuned matmul configs (and delete the on-disk file if ``disk``)."""
    _AUTOTUNE.clear(disk)


def _launch_matmul(cfg, a, b, c, bias, mask_src, M, N, K, sa, sb, act, precision, dot=0):
    bm, bn, bk, gm, warps, stages = cfg
    grid = (triton.cdiv(M, bm) * triton.cdiv(N, bn),)
    dummy = c
    matmul_kernel[grid](
        a, b, c, bias if bias is not None else dummy, mask_src if mask_src is not None else dummy,
        M, N, K,
        sa[0], sa[1], sb[0], sb[1],
        c.stride(0), c.stride(1),
        mask_src.stride(0) if mask_src is not None else 0,
        mask_src.stride(1) if mask_src is not None else 0,
        HAS_BIAS=bias is not None, ACTIVATION=act, HAS_MASK=mask_src is not None,
        UPCAST=interpreting() and a.dtype != torch.float32, PRECISION=precision, DOT=dot,
        BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=gm,
        num_warps=warps, num_stages=stages,
    )


def _pick_matmul_config(a, b, c, bias, mask_src, M, N, K, sa, sb, act, precision, dot=0):
    if interpreting():
        return interp_matmul_config(M, N, K)
    esz = a.element_size()
    key = "|".join(str(x) for x in (
        torch.cuda.get_device_name(a.device), triton.__version__, a.dtype, c.dtype, precision, dot,
        M, N, K, sa[0] == 1, sb[0] == 1, bias is not None, act, mask_src is not None))
    cfg = _AUTOTUNE.get(key, disk=True)
    if cfg is not None:
        return cfg
    cands = matmul_candidates(M, N, esz)
    if len(cands) == 1:
        best = cands[0]
    else:
        scratch = torch.empty_like(c)  # never tune into `out` (it may alias an input)
        best, best_t = None, float("inf")
        for cf in cands:
            try:
                t = triton.testing.do_bench(
                    lambda: _launch_matmul(cf, a, b, scratch, bias, mask_src, M, N, K, sa, sb, act, precision,
                                           dot),
                    warmup=5, rep=20)
            except Exception:  # out of resources etc.: skip the config
                continue
            if t < best_t:
                best, best_t = cf, t
        if best is None:
            raise RuntimeError("matmul autotuner: no config compiled for this problem")
    _AUTOTUNE.put(key, best, disk=True)
    return best


# the DOT constexpr of the contraction kernels for the `operands` of a mixed-precision step
DOT_OPERANDS = {None: 0, "bf16": 1, "f16": 2}


def matmul(a, b, *, trans_a=False, trans_b=False, bias=None, activation=None, out=None,
           relu_mask=None, precision="ieee", out_dtype=None, config=None, operands=None):
    """``out = act(op(a) @ op(b) + bias) * (relu_mask > 0)`` with fp32 accumulation.

    a: (M, K), or (K, M) if ``trans_a``;  b: (K, N), or (N, K) if ``trans_b``.
    Transposes are free (strides only; any strides are accepted).
    bias: (N,) or None.  activation: None | "relu" | "sigmoid" | "tanh".
    relu_mask: (M, N) tensor or None; result is zeroed where relu_mask <= 0
    (applied after the activation).  precision: "ieee" (exact fp32 dot) or
    "tf32"/"tf32x3" for fp32 operands (ignored for bf16/fp16 operands, which
    always use tensor cores with fp32 accumulation).  out_dtype defaults to
    a.dtype; ``out`` (M, N) may be given instead.  ``config`` forces a
    :class:`MatmulConfig` (skips the autotuner).  operands: "bf16" / "f16" for fp32
    operands that hold bf16 / fp16 values (a mixed-precision step's, rounded by
    round_to): the dot runs on 16-bit tensor cores, exactly the same products."""
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError("matmul: a and b must be 2-D")
    if a.dtype != b.dtype:
        raise TypeError(f"matmul: dtype mismatch {a.dtype} vs {b.dtype}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"matmul: unknown activation {activation!r}")
    check_device(a, b, bias, out, relu_mask)
    M, K = (a.shape[1], a.shape[0]) if trans_a else (a.shape[0], a.shape[1])
    Kb, N = (b.shape[1], b.shape[0]) if trans_b else (b.shape[0], b.shape[1])
    if K != Kb:
        raise ValueError(f"matmul: inner dims differ ({K} vs {Kb})")
    sa = (a.stride(1), a.stride(0)) if trans_a else (a.stride(0), a.stride(1))  # (m, k)
    sb = (b.stride(1), b.stride(0)) if trans_b else (b.stride(0), b.stride(1))  # (k, n)
    if out is None:
        out = torch.empty((M, N), device=a.device, dtype=out_dtype or a.dtype)
    elif tuple(out.shape) != (M, N):
        raise ValueError(f"matmul: out has shape {tuple(out.shape)}, expected {(M, N)}")
    if bias is not None:
        if bias.dim() != 1 or bias.shape[0] != N:
            raise ValueError("matmul: bias must have shape (N,)")
        bias = bias.contiguous()
    if relu_mask is not None and tuple(relu_mask.shape) != (M, N):
        raise ValueError("matmul: relu_mask must have shape (M, N)")
    if M == 0 or N == 0:
        return out
    if K == 0:  # empty reduction: epilogue on zeros
        acc = torch.zeros((M, N), device=a.device, dtype=torch.float32)
        if bias is not None:
            acc += bias.float()
        acc = {0: lambda x: x, 1: torch.relu, 2: torch.sigmoid, 3: torch.tanh}[ACTIVATIONS[activation]](acc)
        if relu_mask is not None:
            acc = torch.where(relu_mask > 0, acc, 0.0)
        out.copy_(acc)
        return out
    act = ACTIVATIONS[activation]
    if (not interpreting() and a.dtype == torch.float32 and str(precision).startswith("tf32")
            and M * N * K >= (1 << 24)):
        # Hopper tf32 wgmma only takes K-major operands: an M- or N-major operand
        # makes Triton fall back to a ~3x slower path (measured on H200: 4096^3
        # tf32 103 -> 318 TFLOP/s).  A K-major copy costs one extra pass over the
        # operand, negligible next to 2*M*N*K flops.
        if sa[1] != 1:
            a = (a.t() if trans_a else a).contiguous()  # (M, K), K contiguous
            sa = (a.stride(0), 1)
        if sb[0] != 1:
            b = (b if trans_b else b.t()).contiguous()  # (N, K), K contiguous
            sb = (1, b.stride(0))
    dot = DOT_OPERANDS[operands]
    cfg = MatmulConfig(*config) if config is not None else _pick_matmul_config(
        a, b, out, bias, relu_mask, M, N, K, sa, sb, act, precision, dot)
    _launch_matmul(cfg, a, b, out, bias, relu_mask, M, N, K, sa, sb, act, precision, dot)
    return out
