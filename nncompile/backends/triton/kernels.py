"""Hand-written, generic Triton building-block kernels for the nncompile TRITON backend.

Every kernel here is IR-independent: the code generator (later) only has to
pick one of these launchers and pass torch tensors.  All launchers work on

* CUDA tensors (compiled Triton), and
* CPU tensors when ``TRITON_INTERPRET=1`` was set *before* ``triton`` was
  imported (the Triton interpreter; used by the test-suite on machines with
  no GPU).  Under the interpreter every program instance costs ~1 ms of
  Python, so the launchers then pick very large blocks / tiny grids.

Conventions
-----------
* Accumulation / statistics are always fp32, whatever the input dtype.
* "Memory traffic" comments count the *compulsory* DRAM bytes per kernel for
  fp32 data (4 B/element); a bandwidth-bound kernel is judged against them
  (H100 SXM: ~3.35 TB/s HBM3).
* Random numbers: ``dropout`` uses ``tl.rand(seed, flat_index)``, which is
  bit-exact with :func:`nncompile.ir.philox.philox_uniform`; the per-site seed
  is :func:`nncompile.ir.philox.mix` computed on the host.

Kernels / launchers
-------------------
``matmul``              C = op(A) @ op(B) [+ bias] [activation] [* (mask_src > 0)]
``matmul_relu_grad``    C = (op(A) @ op(B)) * (mask_src > 0)    (fused ReLU backward)
``softmax_xent_fwd_bwd``  per-row loss and dlogits in one pass
``colsum`` / ``bn_stats`` column reductions (bias grads, batch-norm statistics)
``dropout``             inverted dropout with Philox keep decisions
``fused_update``        one launch updates every parameter in a flat buffer
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

__all__ = [
    "interpreting",
    "matmul",
    "matmul_relu_grad",
    "softmax_xent_fwd_bwd",
    "colsum",
    "bn_stats",
    "dropout",
    "fused_update",
    "MatmulConfig",
    "clear_autotune_cache",
    "aot_specs",
]


def interpreting() -> bool:
    """True when Triton runs kernels with its CPU interpreter."""
    try:
        return bool(triton.knobs.runtime.interpret)
    except AttributeError:  # pragma: no cover - older triton
        return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def _clamp(v, lo, hi):
    return max(lo, min(hi, v))


def _check_device(*tensors):
    for t in tensors:
        if t is None:
            continue
        if not t.is_cuda and not interpreting():
            raise RuntimeError(
                "nncompile triton kernels need CUDA tensors (or CPU tensors with "
                "TRITON_INTERPRET=1 set before importing triton)")


# Interpreter block caps: big blocks keep the grid (= Python loop) tiny.
_INTERP_MAX_ELEMS = 1 << 16


# =============================================================================
# 1. Matmul with fused epilogue
# =============================================================================
#
# C[M, N] = op(A)[M, K] @ op(B)[K, N], op = identity or transpose (done purely
# with strides, no copies).  Classic tiled GEMM (Triton tutorial 03): each
# program owns a BLOCK_M x BLOCK_N tile of C, walks K in BLOCK_K steps, keeps
# the fp32 accumulator in registers, and runs the epilogue on it before the
# single store:
#     acc += bias[None, :]        (HAS_BIAS)
#     acc  = act(acc)             (ACTIVATION: 0 none, 1 relu, 2 sigmoid, 3 tanh)
#     acc *= (mask_src > 0)       (HAS_MASK: backward of ReLU fused in)
# Program ids are swizzled in groups of GROUP_M rows of tiles so neighbouring
# programs reuse the same A/B panels from L2.
#
# Memory traffic (ideal, perfect L2 reuse): read A (M*K) + B (K*N), write C
# (M*N) [+ read bias N] [+ read mask M*N]; in practice A is re-read N/BLOCK_N
# times and B M/BLOCK_M times from L2.  FLOPs: 2*M*N*K.  Compute bound for
# large shapes (H100 SXM dense: ~495 TF/s tf32, ~990 TF/s bf16; fp32 "ieee"
# dots run on CUDA cores at ~67 TF/s).

_ACTIVATIONS = {None: 0, "none": 0, "relu": 1, "sigmoid": 2, "tanh": 3}


@triton.jit
def _tanh(x):
    # tanh without libdevice (works in the interpreter too):
    #   |x| small : odd Taylor polynomial (avoids 1 - exp(-2|x|) cancellation)
    #   otherwise : sign(x) * (1 - t) / (1 + t), t = exp(-2|x|) in (0, 1]
    ax = tl.abs(x)
    t = tl.exp(-2.0 * ax)
    big = (1.0 - t) / (1.0 + t)
    x2 = x * x
    small = ax * (1.0 + x2 * (-0.333333333333 + x2 * (0.133333333333 + x2 * (-0.053968253968))))
    r = tl.where(ax < 0.0625, small, big)
    return tl.where(x < 0, -r, r)


@triton.jit
def _matmul_kernel(
    a_ptr, b_ptr, c_ptr, bias_ptr, mask_ptr,
    M, N, K,
    stride_am, stride_ak, stride_bk, stride_bn,
    stride_cm, stride_cn, stride_mm, stride_mn,
    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, HAS_MASK: tl.constexpr,
    UPCAST: tl.constexpr, PRECISION: tl.constexpr,
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
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m

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
        if UPCAST:
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
        acc = _tanh(acc)
    if HAS_MASK:
        ms = tl.load(mask_ptr + offs_m[:, None] * stride_mm + offs_n[None, :] * stride_mn,
                     mask=c_mask, other=0.0)
        acc = tl.where(ms > 0, acc, 0.0)
    c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=c_mask)


class MatmulConfig(tuple):
    """(BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_warps, num_stages)."""

    __slots__ = ()

    def __new__(cls, bm, bn, bk, gm, warps, stages):
        return super().__new__(cls, (int(bm), int(bn), int(bk), int(gm), int(warps), int(stages)))

    def smem_bytes(self, elem_size: int) -> int:
        bm, bn, bk, _, _, stages = self
        return stages * (bm * bk + bk * bn) * elem_size


# Candidate configs for H100.  Pruned by a shared-memory estimate (227 KB max)
# and by the problem size before timing.
_CONFIGS_32BIT = [  # fp32 / tf32 operands
    MatmulConfig(128, 128, 32, 8, 4, 3),
    MatmulConfig(128, 256, 32, 8, 8, 3),
    MatmulConfig(128, 64, 32, 8, 4, 4),
    MatmulConfig(64, 128, 32, 8, 4, 4),
    MatmulConfig(64, 64, 32, 8, 4, 4),
    MatmulConfig(32, 64, 32, 8, 4, 4),
]
_CONFIGS_16BIT = [  # bf16 / fp16 operands
    MatmulConfig(128, 256, 64, 8, 8, 3),
    MatmulConfig(128, 128, 64, 8, 4, 4),
    MatmulConfig(128, 128, 64, 8, 8, 3),
    MatmulConfig(64, 128, 64, 8, 4, 4),
    MatmulConfig(64, 64, 64, 8, 4, 3),
    MatmulConfig(32, 64, 64, 8, 4, 4),
]
_SMEM_LIMIT = 232448  # H100: 227 KB dynamic shared memory per block


def _interp_matmul_config(M, N, K) -> MatmulConfig:
    # One or very few programs; tl.dot needs every block dim >= 16.
    return MatmulConfig(_clamp(_next_pow2(M), 16, 128), _clamp(_next_pow2(N), 16, 128),
                        _clamp(_next_pow2(K), 16, 128), 8, 4, 1)


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


def _launch_matmul(cfg, a, b, c, bias, mask_src, M, N, K, sa, sb, act, precision):
    bm, bn, bk, gm, warps, stages = cfg
    grid = (triton.cdiv(M, bm) * triton.cdiv(N, bn),)
    dummy = c
    _matmul_kernel[grid](
        a, b, c, bias if bias is not None else dummy, mask_src if mask_src is not None else dummy,
        M, N, K,
        sa[0], sa[1], sb[0], sb[1],
        c.stride(0), c.stride(1),
        mask_src.stride(0) if mask_src is not None else 0,
        mask_src.stride(1) if mask_src is not None else 0,
        HAS_BIAS=bias is not None, ACTIVATION=act, HAS_MASK=mask_src is not None,
        UPCAST=interpreting() and a.dtype != torch.float32, PRECISION=precision,
        BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=gm,
        num_warps=warps, num_stages=stages,
    )


def _pick_matmul_config(a, b, c, bias, mask_src, M, N, K, sa, sb, act, precision):
    if interpreting():
        return _interp_matmul_config(M, N, K)
    esz = a.element_size()
    key = "|".join(str(x) for x in (
        torch.cuda.get_device_name(a.device), triton.__version__, a.dtype, c.dtype, precision,
        M, N, K, sa[0] == 1, sb[0] == 1, bias is not None, act, mask_src is not None))
    cfg = _AUTOTUNE.get(key, disk=True)
    if cfg is not None:
        return cfg
    cands = _CONFIGS_16BIT if esz <= 2 else _CONFIGS_32BIT
    cands = [cf for cf in cands if cf.smem_bytes(esz) <= _SMEM_LIMIT]
    # Don't try tiles much larger than the problem.
    small = [cf for cf in cands if cf[0] <= max(32, _next_pow2(M)) and cf[1] <= max(64, _next_pow2(N))]
    cands = small or cands[-1:]
    if len(cands) == 1:
        best = cands[0]
    else:
        scratch = torch.empty_like(c)  # never tune into `out` (it may alias an input)
        best, best_t = None, float("inf")
        for cf in cands:
            try:
                t = triton.testing.do_bench(
                    lambda: _launch_matmul(cf, a, b, scratch, bias, mask_src, M, N, K, sa, sb, act, precision),
                    warmup=5, rep=20)
            except Exception:  # out of resources etc.: skip the config
                continue
            if t < best_t:
                best, best_t = cf, t
        if best is None:
            raise RuntimeError("matmul autotuner: no config compiled for this problem")
    _AUTOTUNE.put(key, best, disk=True)
    return best


def matmul(a, b, *, trans_a=False, trans_b=False, bias=None, activation=None, out=None,
           relu_mask=None, precision="ieee", out_dtype=None, config=None):
    """``out = act(op(a) @ op(b) + bias) * (relu_mask > 0)`` with fp32 accumulation.

    a: (M, K), or (K, M) if ``trans_a``;  b: (K, N), or (N, K) if ``trans_b``.
    Transposes are free (strides only; any strides are accepted).
    bias: (N,) or None.  activation: None | "relu" | "sigmoid" | "tanh".
    relu_mask: (M, N) tensor or None; result is zeroed where relu_mask <= 0
    (applied after the activation).  precision: "ieee" (exact fp32 dot) or
    "tf32"/"tf32x3" for fp32 operands (ignored for bf16/fp16 operands, which
    always use tensor cores with fp32 accumulation).  out_dtype defaults to
    a.dtype; ``out`` (M, N) may be given instead.  ``config`` forces a
    :class:`MatmulConfig` (skips the autotuner)."""
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError("matmul: a and b must be 2-D")
    if a.dtype != b.dtype:
        raise TypeError(f"matmul: dtype mismatch {a.dtype} vs {b.dtype}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"matmul: unknown activation {activation!r}")
    _check_device(a, b, bias, out, relu_mask)
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
        acc = {0: lambda x: x, 1: torch.relu, 2: torch.sigmoid, 3: torch.tanh}[_ACTIVATIONS[activation]](acc)
        if relu_mask is not None:
            acc = torch.where(relu_mask > 0, acc, 0.0)
        out.copy_(acc)
        return out
    act = _ACTIVATIONS[activation]
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
    cfg = MatmulConfig(*config) if config is not None else _pick_matmul_config(
        a, b, out, bias, relu_mask, M, N, K, sa, sb, act, precision)
    _launch_matmul(cfg, a, b, out, bias, relu_mask, M, N, K, sa, sb, act, precision)
    return out


def matmul_relu_grad(a, b, mask_src, *, trans_a=False, trans_b=False, out=None, precision="ieee",
                     out_dtype=None, config=None):
    """``(op(a) @ op(b)) * (mask_src > 0)``: the backward of ReLU fused into the
    matmul epilogue (e.g. dH = (dY @ W^T) * (H > 0)).  mask_src: (M, N)."""
    return matmul(a, b, trans_a=trans_a, trans_b=trans_b, out=out, relu_mask=mask_src,
                  precision=precision, out_dtype=out_dtype, config=config)


# =============================================================================
# 2. Softmax cross-entropy, forward + backward in one kernel
# =============================================================================
#
# Each program owns BLOCK_R rows.  SINGLE_PASS (C <= BLOCK_C): the whole row
# block is loaded once into registers, then
#     mx   = max_j x_j                 (stability)
#     s    = sum_j exp(x_j - mx)
#     loss = log(s) + mx - x_label     (= -log softmax[label])
#     grad = (exp(x - mx) / s - onehot(label)) * scale
# Memory traffic: read logits M*C, write grad M*C, read labels M, write loss M
# -> ~8*M*C bytes for fp32 (2 passes over DRAM, the minimum).
# For very wide rows (C > _XENT_MAX_BLOCK_C) the row does not fit in registers:
# an online-softmax loop (running max + rescaled sum) then a second loop to
# write grad -> 12*M*C bytes (logits read twice).

_XENT_MAX_BLOCK_C = 8192


@triton.jit
def _softmax_xent_kernel(
    x_ptr, labels_ptr, loss_ptr, grad_ptr,
    M, C, stride_xm, stride_gm, scale,
    SINGLE_PASS: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < M
    labels = tl.load(labels_ptr + rows, mask=rmask, other=0).to(tl.int32)
    cols = tl.arange(0, BLOCK_C)
    x_row = x_ptr + rows[:, None].to(tl.int64) * stride_xm
    g_row = grad_ptr + rows[:, None].to(tl.int64) * stride_gm
    if SINGLE_PASS:
        m2 = rmask[:, None] & (cols[None, :] < C)
        x = tl.load(x_row + cols[None, :], mask=m2, other=float("-inf")).to(tl.float32)
        x = tl.where(rmask[:, None], x, 0.0)  # padded rows: no NaNs
        mx = tl.max(x, axis=1)
        e = tl.exp(x - mx[:, None])
        s = tl.sum(e, axis=1)
        onehot = cols[None, :] == labels[:, None]
        x_lab = tl.sum(tl.where(onehot, x, 0.0), axis=1)
        loss = tl.log(s) + mx - x_lab
        g = (e / s[:, None] - tl.where(onehot, 1.0, 0.0)) * scale
        tl.store(g_row + cols[None, :], g.to(grad_ptr.dtype.element_ty), mask=m2)
    else:
        mx = tl.full((BLOCK_R,), float("-inf"), tl.float32)
        s = tl.zeros((BLOCK_R,), tl.float32)
        x_lab = tl.zeros((BLOCK_R,), tl.float32)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + cols
            m2 = rmask[:, None] & (cc[None, :] < C)
            x = tl.load(x_row + cc[None, :], mask=m2, other=float("-inf")).to(tl.float32)
            x = tl.where(rmask[:, None], x, 0.0)
            new_mx = tl.maximum(mx, tl.max(x, axis=1))
            s = s * tl.exp(mx - new_mx) + tl.sum(tl.exp(x - new_mx[:, None]), axis=1)
            mx = new_mx
            x_lab += tl.sum(tl.where(cc[None, :] == labels[:, None], x, 0.0), axis=1)
        loss = tl.log(s) + mx - x_lab
        inv_s = 1.0 / s
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + cols
            m2 = rmask[:, None] & (cc[None, :] < C)
            x = tl.load(x_row + cc[None, :], mask=m2, other=float("-inf")).to(tl.float32)
            x = tl.where(rmask[:, None], x, 0.0)
            p = tl.exp(x - mx[:, None]) * inv_s[:, None]
            g = (p - tl.where(cc[None, :] == labels[:, None], 1.0, 0.0)) * scale
            tl.store(g_row + cc[None, :], g.to(grad_ptr.dtype.element_ty), mask=m2)
    tl.store(loss_ptr + rows, loss, mask=rmask)


def softmax_xent_fwd_bwd(logits, labels, scale=1.0, *, grad_out=None, loss_out=None, block_c=None):
    """Softmax cross-entropy forward and backward in one launch.

    logits: (M, C) float (row stride arbitrary, column stride must be 1);
    labels: (M,) integer class indices in [0, C).  Returns ``(loss, grad)``:
    loss (M,) fp32 = -log softmax(logits)[label]; grad (M, C) (dtype of
    logits unless ``grad_out`` given) = (softmax - onehot) * scale.
    Typical use: scale = 1/M for a mean loss.  ``block_c`` (power of two)
    forces the column chunk; if < C the two-loop online-softmax path is used."""
    if logits.dim() != 2 or labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError("softmax_xent_fwd_bwd: logits (M, C) and labels (M,) required")
    _check_device(logits, labels, grad_out, loss_out)
    if logits.stride(1) != 1:
        logits = logits.contiguous()
    labels = labels.contiguous()
    M, C = logits.shape
    grad = grad_out if grad_out is not None else torch.empty_like(logits)
    if grad.stride(1) != 1 or tuple(grad.shape) != (M, C):
        raise ValueError("softmax_xent_fwd_bwd: grad_out must be (M, C) with unit column stride")
    loss = loss_out if loss_out is not None else torch.empty(M, device=logits.device, dtype=torch.float32)
    if M == 0:
        return loss, grad
    bc = _next_pow2(C)
    single = bc <= _XENT_MAX_BLOCK_C
    if not single:
        bc = _XENT_MAX_BLOCK_C if not interpreting() else min(_INTERP_MAX_ELEMS, bc)
        single = interpreting() and bc >= C
    if block_c is not None:
        bc = int(block_c)
        single = bc >= C
    if interpreting():
        br = _clamp(_INTERP_MAX_ELEMS // bc, 1, _next_pow2(M))
        warps = 4
    else:
        br = _clamp(4096 // bc, 1, 128)
        br = min(br, _next_pow2(M))
        warps = _clamp(br * bc // 512, 1, 16)
    grid = (triton.cdiv(M, br),)
    _softmax_xent_kernel[grid](logits, labels, loss, grad, M, C, logits.stride(0), grad.stride(0),
                               float(scale), SINGLE_PASS=single, BLOCK_R=br, BLOCK_C=bc,
                               num_warps=warps)
    return loss, grad


# =============================================================================
# 3. Column reductions: colsum (bias gradients) and bn_stats
# =============================================================================
#
# Program (pid_n, pid_s) reduces rows [pid_s*R, (pid_s+1)*R) of a BLOCK_N-wide
# column strip, accumulating a BLOCK_M x BLOCK_N fp32 tile in registers and
# reducing it once at the end.  For tall-skinny inputs (few column strips) the
# rows are split over SPLIT programs that write fp32 partials (SPLIT, N); a
# second tiny launch reduces the partials (deterministic, no atomics).
# Memory traffic: read M*N once, write N (plus SPLIT*N partials, negligible).

@triton.jit
def _colsum_kernel(x_ptr, out_ptr, M, N, stride_xm, stride_xn, ROWS_PER_SPLIT,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_s = tl.program_id(1)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    cmask = cols < N
    r_start = pid_s * ROWS_PER_SPLIT
    r_end = tl.minimum(r_start + ROWS_PER_SPLIT, M)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for r0 in range(r_start, r_end, BLOCK_M):
        rows = r0 + tl.arange(0, BLOCK_M)
        m2 = (rows[:, None] < r_end) & cmask[None, :]
        x = tl.load(x_ptr + rows[:, None].to(tl.int64) * stride_xm + cols[None, :] * stride_xn,
                    mask=m2, other=0.0)
        acc += x.to(tl.float32)
    tl.store(out_ptr + pid_s * N + cols, tl.sum(acc, axis=0), mask=cmask)


def _reduce_launch_params(M, N):
    """(BLOCK_M, BLOCK_N, split, rows_per_split, num_warps)."""
    if interpreting():
        bn = _clamp(_next_pow2(N), 1, 1024)
        bm = _clamp(_INTERP_MAX_ELEMS // bn, 1, _next_pow2(M))
        return bm, bn, 1, M, 4
    bn = _clamp(_next_pow2(N), 16, 128)
    bm = 32
    n_strips = triton.cdiv(N, bn)
    target = 264  # ~2 waves of programs on 132 SMs
    split = _clamp(target // n_strips, 1, triton.cdiv(M, bm * 4))
    rows = triton.cdiv(triton.cdiv(M, split), bm) * bm
    split = triton.cdiv(M, rows)
    return bm, bn, split, rows, 4


def colsum(x, *, out=None):
    """Column sums of a 2-D tensor (any strides) -> (N,) fp32 (or ``out``)."""
    if x.dim() != 2:
        raise ValueError("colsum: x must be 2-D")
    _check_device(x, out)
    M, N = x.shape
    if out is None:
        out = torch.empty(N, device=x.device, dtype=torch.float32)
    if N == 0:
        return out
    if M == 0:
        return out.zero_()
    bm, bn, split, rows, warps = _reduce_launch_params(M, N)
    if split == 1:
        _colsum_kernel[(triton.cdiv(N, bn), 1)](x, out, M, N, x.stride(0), x.stride(1), rows,
                                                BLOCK_M=bm, BLOCK_N=bn, num_warps=warps)
        return out
    part = torch.empty((split, N), device=x.device, dtype=torch.float32)
    _colsum_kernel[(triton.cdiv(N, bn), split)](x, part, M, N, x.stride(0), x.stride(1), rows,
                                                BLOCK_M=bm, BLOCK_N=bn, num_warps=warps)
    _colsum_kernel[(triton.cdiv(N, bn), 1)](part, out, split, N, N, 1, split,
                                            BLOCK_M=_clamp(_next_pow2(split), 1, 64), BLOCK_N=bn,
                                            num_warps=warps)
    return out


# bn_stats: per-column mean and biased variance in ONE pass over x using
# chunked Welford / Chan merging: for each BLOCK_M-row chunk compute the chunk
# mean and centred M2 in registers (exact two-pass inside the chunk), then
# merge into the running (count, mean, M2).  Numerically stable even when
# |mean| >> std.  Split partials (mean, M2 per split) are merged by a second
# small kernel.  Memory traffic: read M*N once, write 2N.

@triton.jit
def _bn_stats_kernel(x_ptr, mean_ptr, m2_ptr, M, N, stride_xm, stride_xn, ROWS_PER_SPLIT,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_s = tl.program_id(1)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    cmask = cols < N
    r_start = pid_s * ROWS_PER_SPLIT
    r_end = tl.minimum(r_start + ROWS_PER_SPLIT, M)
    mean = tl.zeros((BLOCK_N,), tl.float32)
    m2 = tl.zeros((BLOCK_N,), tl.float32)
    cnt = 0.0
    for r0 in range(r_start, r_end, BLOCK_M):
        rows = r0 + tl.arange(0, BLOCK_M)
        rmask = rows < r_end
        msk = rmask[:, None] & cmask[None, :]
        x = tl.load(x_ptr + rows[:, None].to(tl.int64) * stride_xm + cols[None, :] * stride_xn,
                    mask=msk, other=0.0).to(tl.float32)
        c_cnt = tl.minimum(r_end - r0, BLOCK_M).to(tl.float32)
        c_mean = tl.sum(x, axis=0) / c_cnt
        d = tl.where(rmask[:, None], x - c_mean[None, :], 0.0)
        c_m2 = tl.sum(d * d, axis=0)
        new_cnt = cnt + c_cnt
        delta = c_mean - mean
        mean = mean + delta * (c_cnt / new_cnt)
        m2 = m2 + c_m2 + delta * delta * (cnt * c_cnt / new_cnt)
        cnt = new_cnt
    tl.store(mean_ptr + pid_s * N + cols, mean, mask=cmask)
    tl.store(m2_ptr + pid_s * N + cols, m2, mask=cmask)


@triton.jit
def _bn_merge_kernel(pmean_ptr, pm2_ptr, mean_ptr, var_ptr, M, N, SPLIT, ROWS_PER_SPLIT,
                     BLOCK_N: tl.constexpr):
    # Chan merge of SPLIT partial (mean, M2) rows, then var = M2 / M.
    pid_n = tl.program_id(0)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    cmask = cols < N
    mean = tl.zeros((BLOCK_N,), tl.float32)
    m2 = tl.zeros((BLOCK_N,), tl.float32)
    cnt = 0.0
    for s in range(0, SPLIT):
        c_cnt = tl.minimum(M - s * ROWS_PER_SPLIT, ROWS_PER_SPLIT).to(tl.float32)
        c_mean = tl.load(pmean_ptr + s * N + cols, mask=cmask, other=0.0)
        c_m2 = tl.load(pm2_ptr + s * N + cols, mask=cmask, other=0.0)
        new_cnt = cnt + c_cnt
        delta = c_mean - mean
        mean = mean + delta * (c_cnt / new_cnt)
        m2 = m2 + c_m2 + delta * delta * (cnt * c_cnt / new_cnt)
        cnt = new_cnt
    tl.store(mean_ptr + cols, mean, mask=cmask)
    tl.store(var_ptr + cols, m2 / cnt, mask=cmask)


def bn_stats(x):
    """Per-column mean and biased variance of a 2-D tensor -> (mean, var), fp32 (N,)."""
    if x.dim() != 2:
        raise ValueError("bn_stats: x must be 2-D")
    _check_device(x)
    M, N = x.shape
    mean = torch.empty(N, device=x.device, dtype=torch.float32)
    var = torch.empty(N, device=x.device, dtype=torch.float32)
    if N == 0:
        return mean, var
    if M == 0:
        return mean.fill_(float("nan")), var.fill_(float("nan"))
    bm, bn, split, rows, warps = _reduce_launch_params(M, N)
    if split == 1:
        _bn_stats_kernel[(triton.cdiv(N, bn), 1)](x, mean, var, M, N, x.stride(0), x.stride(1), rows,
                                                  BLOCK_M=bm, BLOCK_N=bn, num_warps=warps)
        var.div_(M)  # kernel wrote M2
        return mean, var
    pmean = torch.empty((split, N), device=x.device, dtype=torch.float32)
    pm2 = torch.empty((split, N), device=x.device, dtype=torch.float32)
    _bn_stats_kernel[(triton.cdiv(N, bn), split)](x, pmean, pm2, M, N, x.stride(0), x.stride(1), rows,
                                                  BLOCK_M=bm, BLOCK_N=bn, num_warps=warps)
    _bn_merge_kernel[(triton.cdiv(N, bn),)](pmean, pm2, mean, var, M, N, split, rows,
                                            BLOCK_N=bn, num_warps=warps)
    return mean, var


# =============================================================================
# 4. Dropout
# =============================================================================
#
# out[i] = x[i] * scale if tl.rand(seed, i) >= rate else 0, i = flat index
# (row-major over a contiguous x), scale = float32(1 / (1 - rate)) computed on
# the host in float64 (0 when rate >= 1).  Keep decisions are bit-identical to
# nncompile.ir.philox.dropout_keep_mask(s, step, stream, shape, rate) when
# seed = philox.mix(s, step, stream).  Optionally writes the keep mask (uint8).
# Memory traffic: read N, write N (+N bytes for the mask).  Philox costs ~100
# integer ops per element, still under the bandwidth roof on H100.

@triton.jit
def _dropout_kernel(x_ptr, out_ptr, mask_ptr, n, seed, rate, scale,
                    WRITE_MASK: tl.constexpr, OFF64: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    if OFF64:
        offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    else:
        offs = pid * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    x = tl.load(x_ptr + offs, mask=m, other=0.0)
    r = tl.rand(seed, offs)
    keep = r >= rate
    y = tl.where(keep, x.to(tl.float32) * scale, 0.0)
    tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=m)
    if WRITE_MASK:
        tl.store(mask_ptr + offs, keep.to(tl.uint8), mask=m)


def _elementwise_block(n: int):
    if interpreting():
        return _clamp(_next_pow2(n), 16, _INTERP_MAX_ELEMS), 4
    return 1024, 4


def dropout(x, seed: int, rate: float, *, out=None, return_mask=False):
    """Inverted dropout. ``seed`` is the kernel seed (use
    ``nncompile.ir.philox.mix(seed, step, stream)``; must be in [0, 2**31)).
    Returns ``out`` or ``(out, keep_mask_uint8)`` if ``return_mask``.
    The backward pass is ``dropout(grad, same_seed, rate)``."""
    _check_device(x, out)
    seed = int(seed)
    if not 0 <= seed < 2 ** 31:
        raise ValueError("dropout: seed must be in [0, 2**31) (use philox.mix)")
    x = x.contiguous()
    if out is None:
        out = torch.empty_like(x)
    if not out.is_contiguous() or out.shape != x.shape:
        raise ValueError("dropout: out must be contiguous with x's shape")
    mask = torch.empty(x.shape, device=x.device, dtype=torch.uint8) if return_mask else None
    n = x.numel()
    if n:
        rate = float(rate)
        scale = 0.0 if rate >= 1.0 else 1.0 / (1.0 - rate)
        block, warps = _elementwise_block(n)
        _dropout_kernel[(triton.cdiv(n, block),)](
            x, out, mask if mask is not None else out, n, seed, rate, scale,
            WRITE_MASK=return_mask, OFF64=n >= 2 ** 31 - block, BLOCK=block, num_warps=warps)
    return (out, mask) if return_mask else out


# =============================================================================
# 5. Fused optimizer update over one flat parameter buffer
# =============================================================================
#
# All parameters live in one flat fp32 buffer p, gradients in g, optimizer
# state in s1 / s2 (same length, same layout), so ONE launch updates the whole
# model.  Keras semantics (all in fp32, t = step, 1-based):
#   weight decay (adamw, or any optimizer with weight_decay): p -= lr*wd*p first
#   sgd:       p -= lr*g
#   sgd+mom:   v = momentum*v - lr*g;  p += v           (s1 = v)
#   nesterov:  v = momentum*v - lr*g;  p += momentum*v - lr*g
#   adam:      m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2     (s1 = m, s2 = v)
#              p -= lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)
#   rmsprop:   v = rho*v + (1-rho)*g^2                          (s1 = v)
#              inc = lr*g / (sqrt(v) + eps)
#              p -= inc, or with momentum: mom = momentum*mom + inc; p -= mom (s2 = mom)
# b^t is computed in-kernel as exp2(t*log2(b)) in fp32 (lr and step are plain
# kernel arguments, so no host-side recompute is needed per step).
# Memory traffic per element (fp32): sgd 12 B, sgd+momentum 20 B,
# adam/adamw 28 B, rmsprop 20 B (28 B with momentum).

_OPTS = {"sgd": 0, "adam": 1, "adamw": 1, "rmsprop": 2}


@triton.jit(do_not_specialize=["step"])  # step == 1 would otherwise become a constexpr
def _fused_update_kernel(p_ptr, g_ptr, s1_ptr, s2_ptr, n, lr, step, beta1, beta2, eps, wd,
                         momentum, rho,
                         OPT: tl.constexpr, USE_MOMENTUM: tl.constexpr, NESTEROV: tl.constexpr,
                         HAS_WD: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    p = tl.load(p_ptr + offs, mask=m, other=0.0)
    g = tl.load(g_ptr + offs, mask=m, other=0.0)
    if HAS_WD:
        p = p - p * (lr * wd)
    if OPT == 0:
        if USE_MOMENTUM:
            v = tl.load(s1_ptr + offs, mask=m, other=0.0)
            v = momentum * v - lr * g
            tl.store(s1_ptr + offs, v, mask=m)
            if NESTEROV:
                p = p + momentum * v - lr * g
            else:
                p = p + v
        else:
            p = p - lr * g
    elif OPT == 1:
        mm = tl.load(s1_ptr + offs, mask=m, other=0.0)
        vv = tl.load(s2_ptr + offs, mask=m, other=0.0)
        mm = beta1 * mm + (1.0 - beta1) * g
        vv = beta2 * vv + (1.0 - beta2) * g * g
        tl.store(s1_ptr + offs, mm, mask=m)
        tl.store(s2_ptr + offs, vv, mask=m)
        t = step + 0.0  # -> fp32 (also correct if step arrives as a Python int)
        b1t = tl.exp2(t * tl.log2(beta1))
        b2t = tl.exp2(t * tl.log2(beta2))
        alpha = lr * tl.sqrt(1.0 - b2t) / (1.0 - b1t)
        p = p - alpha * mm / (tl.sqrt(vv) + eps)
    else:
        vv = tl.load(s1_ptr + offs, mask=m, other=0.0)
        vv = rho * vv + (1.0 - rho) * g * g
        tl.store(s1_ptr + offs, vv, mask=m)
        inc = lr * g / (tl.sqrt(vv) + eps)
        if USE_MOMENTUM:
            mo = tl.load(s2_ptr + offs, mask=m, other=0.0)
            mo = momentum * mo + inc
            tl.store(s2_ptr + offs, mo, mask=m)
            p = p - mo
        else:
            p = p - inc
    tl.store(p_ptr + offs, p, mask=m)


def fused_update(kind, params, grads, state1=None, state2=None, *, lr, step=1,
                 beta1=0.9, beta2=0.999, eps=1e-7, weight_decay=0.0, momentum=0.0,
                 nesterov=False, rho=0.9):
    """Update every parameter in the flat fp32 buffer ``params`` in place (one launch).

    kind: "sgd" | "adam" | "adamw" | "rmsprop".  State buffers (flat fp32,
    same length, updated in place): sgd with momentum: state1 = velocity;
    adam/adamw: state1 = m, state2 = v; rmsprop: state1 = v, state2 = momentum
    buffer (only if momentum > 0).  ``step`` is the 1-based iteration number
    used for Adam's bias correction.  ``weight_decay`` is decoupled (p -= lr*wd*p
    before the update); it is required for "adamw" semantics and allowed for
    all kinds."""
    if kind not in _OPTS:
        raise ValueError(f"fused_update: unknown optimizer {kind!r}")
    opt = _OPTS[kind]
    use_mom = momentum != 0.0 and opt in (0, 2)
    need = {0: (use_mom, False), 1: (True, True), 2: (True, use_mom)}[opt]
    for t, req, name in ((state1, need[0], "state1"), (state2, need[1], "state2")):
        if req and t is None:
            raise ValueError(f"fused_update: {kind} needs {name}")
    n = params.numel()
    for t in (params, grads, state1, state2):
        if t is None:
            continue
        if t.dtype != torch.float32 or not t.is_contiguous() or t.numel() != n:
            raise ValueError("fused_update: buffers must be contiguous fp32 of equal length")
    _check_device(params, grads, state1, state2)
    if n == 0:
        return params
    block, warps = _elementwise_block(n)
    if not interpreting():
        block, warps = 2048, 8
    _fused_update_kernel[(triton.cdiv(n, block),)](
        params, grads, state1 if state1 is not None else params, state2 if state2 is not None else params,
        n, float(lr), int(step), float(beta1), float(beta2), float(eps), float(weight_decay),
        float(momentum), float(rho),
        OPT=opt, USE_MOMENTUM=use_mom, NESTEROV=bool(nesterov) and use_mom,
        HAS_WD=weight_decay != 0.0, BLOCK=block, num_warps=warps)
    return params


# =============================================================================
# AOT specs: representative instantiations (largest tiles) for sm_90 checks
# =============================================================================

def aot_specs():
    """List of dicts (name, kernel, signature, constexprs, num_warps, num_stages)
    covering every kernel above with its largest GPU configuration, for
    :func:`nncompile.backends.triton.aot.compile_for_h100`."""
    specs = []
    mm_sig = {"a_ptr": "*fp32", "b_ptr": "*fp32", "c_ptr": "*fp32", "bias_ptr": "*fp32",
              "mask_ptr": "*fp32", "M": "i32", "N": "i32", "K": "i32",
              "stride_am": "i32", "stride_ak": "i32", "stride_bk": "i32", "stride_bn": "i32",
              "stride_cm": "i32", "stride_cn": "i32", "stride_mm": "i32", "stride_mn": "i32"}
    for dt, cfgs, prec in (("fp32", _CONFIGS_32BIT, "tf32"), ("fp32", _CONFIGS_32BIT[:1], "ieee"),
                           ("bf16", _CONFIGS_16BIT, "ieee")):
        for cf in cfgs:
            esz = 4 if dt == "fp32" else 2
            if cf.smem_bytes(esz) > _SMEM_LIMIT:
                continue
            sig = dict(mm_sig, a_ptr=f"*{dt}", b_ptr=f"*{dt}")
            bm, bn, bk, gm, w, st = cf
            specs.append(dict(
                name=f"matmul_{dt}_{prec}_{bm}x{bn}x{bk}_w{w}s{st}", kernel=_matmul_kernel, signature=sig,
                constexprs=dict(HAS_BIAS=True, ACTIVATION=3, HAS_MASK=True, UPCAST=False, PRECISION=prec,
                                BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=gm),
                num_warps=w, num_stages=st))
    xent_sig = {"x_ptr": "*fp32", "labels_ptr": "*i64", "loss_ptr": "*fp32", "grad_ptr": "*fp32",
                "M": "i32", "C": "i32", "stride_xm": "i32", "stride_gm": "i32", "scale": "fp32"}
    specs.append(dict(name="softmax_xent_single_16x256", kernel=_softmax_xent_kernel, signature=xent_sig,
                      constexprs=dict(SINGLE_PASS=True, BLOCK_R=16, BLOCK_C=256), num_warps=8, num_stages=3))
    specs.append(dict(name="softmax_xent_single_1x8192", kernel=_softmax_xent_kernel, signature=xent_sig,
                      constexprs=dict(SINGLE_PASS=True, BLOCK_R=1, BLOCK_C=8192), num_warps=16, num_stages=3))
    specs.append(dict(name="softmax_xent_loop_1x8192", kernel=_softmax_xent_kernel, signature=xent_sig,
                      constexprs=dict(SINGLE_PASS=False, BLOCK_R=1, BLOCK_C=8192), num_warps=16, num_stages=3))
    red_sig = {"x_ptr": "*fp32", "out_ptr": "*fp32", "M": "i32", "N": "i32", "stride_xm": "i32",
               "stride_xn": "i32", "ROWS_PER_SPLIT": "i32"}
    specs.append(dict(name="colsum_32x128", kernel=_colsum_kernel, signature=red_sig,
                      constexprs=dict(BLOCK_M=32, BLOCK_N=128), num_warps=4, num_stages=3))
    bn_sig = {"x_ptr": "*fp32", "mean_ptr": "*fp32", "m2_ptr": "*fp32", "M": "i32", "N": "i32",
              "stride_xm": "i32", "stride_xn": "i32", "ROWS_PER_SPLIT": "i32"}
    specs.append(dict(name="bn_stats_32x128", kernel=_bn_stats_kernel, signature=bn_sig,
                      constexprs=dict(BLOCK_M=32, BLOCK_N=128), num_warps=4, num_stages=3))
    merge_sig = {"pmean_ptr": "*fp32", "pm2_ptr": "*fp32", "mean_ptr": "*fp32", "var_ptr": "*fp32",
                 "M": "i32", "N": "i32", "SPLIT": "i32", "ROWS_PER_SPLIT": "i32"}
    specs.append(dict(name="bn_merge_128", kernel=_bn_merge_kernel, signature=merge_sig,
                      constexprs=dict(BLOCK_N=128), num_warps=4, num_stages=3))
    do_sig = {"x_ptr": "*fp32", "out_ptr": "*fp32", "mask_ptr": "*u8", "n": "i32", "seed": "i32",
              "rate": "fp32", "scale": "fp32"}
    for off64 in (False, True):
        sig = dict(do_sig, n="i64" if off64 else "i32")
        specs.append(dict(name=f"dropout_{'i64' if off64 else 'i32'}_1024", kernel=_dropout_kernel,
                          signature=sig, constexprs=dict(WRITE_MASK=True, OFF64=off64, BLOCK=1024),
                          num_warps=4, num_stages=3))
    up_sig = {"p_ptr": "*fp32", "g_ptr": "*fp32", "s1_ptr": "*fp32", "s2_ptr": "*fp32", "n": "i32",
              "lr": "fp32", "step": "i32", "beta1": "fp32", "beta2": "fp32", "eps": "fp32", "wd": "fp32",
              "momentum": "fp32", "rho": "fp32"}
    for name, opt, mom, nest, wd in (("sgd", 0, False, False, False), ("sgd_nesterov", 0, True, True, False),
                                     ("adamw", 1, False, False, True), ("rmsprop_mom", 2, True, False, False)):
        specs.append(dict(name=f"fused_update_{name}", kernel=_fused_update_kernel, signature=up_sig,
                          constexprs=dict(OPT=opt, USE_MOMENTUM=mom, NESTEROV=nest, HAS_WD=wd, BLOCK=2048),
                          num_warps=8, num_stages=3))
    return specs
