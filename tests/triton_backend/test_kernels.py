"""Triton building-block kernels vs NumPy/torch references, on CPU tensors under
the Triton interpreter (conftest sets TRITON_INTERPRET=1).  Shapes are small
and blocks big so each launch is a handful of program instances."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import reference
from extras import TRITON_REASON

torch = pytest.importorskip("torch", reason=TRITON_REASON)
triton = pytest.importorskip("triton", reason=TRITON_REASON)
import triton.language as tl  # noqa: E402

from nncompile.backends.triton import kernels as K  # noqa: E402
from nncompile.ir import philox  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_interpreter_active():
    assert K.interpreting()


# ----------------------------------------------------------------------------
# Philox bit-exactness vs tl.randint / tl.rand
# ----------------------------------------------------------------------------

@triton.jit
def _rng_probe(seed, off_ptr, out_i, out_f, n, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    off = tl.load(off_ptr + i, mask=m)
    tl.store(out_i + i, tl.randint(seed, off), mask=m)
    tl.store(out_f + i, tl.rand(seed, off), mask=m)


def _probe(seed, offs):
    n = offs.size
    oi = torch.empty(n, dtype=torch.int32)
    of = torch.empty(n, dtype=torch.float32)
    _rng_probe[(1,)](seed, torch.from_numpy(offs), oi, of, n, BLOCK=triton.next_power_of_2(n))
    return oi.numpy().view(np.uint32), of.numpy()


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("seed", [0, 1, 42, 123456789, 2**31 - 1, 2**33 + 5])
def test_philox_bit_exact(dtype, seed):
    rng = np.random.default_rng(seed % 1000)
    info = np.iinfo(dtype)
    offs = np.concatenate([
        np.arange(600), rng.integers(0, info.max, 400, endpoint=True),
        [info.max, info.max - 1, 2**31 - 1, -1, -2**31],
    ]).astype(dtype)
    if dtype == np.int64:
        offs = np.concatenate([offs, np.array([2**32, 2**32 + 1, 2**40 + 3, -2**40], dtype=np.int64)])
    ti, tf = _probe(seed, offs)
    np.testing.assert_array_equal(philox.philox_uint32(seed, offs), ti)
    u = philox.philox_uniform(seed, offs)
    assert u.dtype == np.float32
    np.testing.assert_array_equal(u.view(np.uint32), tf.view(np.uint32))
    assert (u >= 0).all() and (u < 1).all()


# ----------------------------------------------------------------------------
# Dropout
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
def test_dropout_matches_philox_mask(rate):
    shape = (37, 53)
    x = torch.randn(shape)
    seed = philox.mix(2024, 17, 3)
    out, mask = K.dropout(x, seed, rate, return_mask=True)
    keep = philox.dropout_keep_mask(2024, 17, 3, shape, rate)
    np.testing.assert_array_equal(mask.numpy().astype(bool), keep)
    scale = np.float32(1.0 / (1.0 - rate))
    ref = np.where(keep, x.numpy() * scale, 0.0).astype(np.float32)
    np.testing.assert_array_equal(out.numpy(), ref)
    # backward recomputes the same mask from the same seed
    g = torch.ones(shape)
    np.testing.assert_array_equal(K.dropout(g, seed, rate).numpy() != 0, keep)
    if rate == 0.5:
        assert abs(keep.mean() - 0.5) < 0.05


def test_dropout_rate_one_and_seed_range():
    x = torch.randn(5, 7)
    assert (K.dropout(x, 3, 1.0) == 0).all()
    with pytest.raises(ValueError):
        K.dropout(x, 2**31, 0.5)


# ----------------------------------------------------------------------------
# Matmul with fused epilogue
# ----------------------------------------------------------------------------

_ACT = {None: lambda z: z, "relu": lambda z: np.maximum(z, 0), "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
        "tanh": np.tanh}


def _mm_ref(a, b, ta, tb, bias=None, act=None, mask=None):
    A = a.T if ta else a
    B = b.T if tb else b
    z = A.astype(np.float64) @ B.astype(np.float64)
    if bias is not None:
        z = z + bias
    z = _ACT[act](z)
    if mask is not None:
        z = z * (mask > 0)
    return z


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("act", [None, "relu", "sigmoid", "tanh"])
def test_matmul_fp32_epilogues(ta, tb, act):
    rng = np.random.default_rng(0)
    M, N, Kd = 37, 45, 150  # K > BLOCK_K: exercises the K loop and its tail mask
    a = rng.standard_normal((Kd, M) if ta else (M, Kd)).astype(np.float32) * 0.2
    b = rng.standard_normal((N, Kd) if tb else (Kd, N)).astype(np.float32) * 0.2
    bias = rng.standard_normal(N).astype(np.float32)
    out = K.matmul(torch.from_numpy(a), torch.from_numpy(b), trans_a=ta, trans_b=tb,
                   bias=torch.from_numpy(bias), activation=act)
    assert out.shape == (M, N) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), _mm_ref(a, b, ta, tb, bias, act), rtol=1e-4, atol=1e-5)


def test_matmul_multi_tile_and_out():
    rng = np.random.default_rng(1)
    M, N, Kd = 200, 150, 70  # > 128: several output tiles, grouped ordering
    a = rng.standard_normal((M, Kd)).astype(np.float32)
    b = rng.standard_normal((Kd, N)).astype(np.float32)
    out = torch.full((M, N), 7.0)
    r = K.matmul(torch.from_numpy(a), torch.from_numpy(b), out=out)
    assert r is out
    np.testing.assert_allclose(out.numpy(), a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


def test_matmul_noncontiguous_view():
    base = torch.randn(64, 90)
    a = base[:, 10:50]  # row stride 90
    b = torch.randn(40, 33)
    np.testing.assert_allclose(K.matmul(a, b).numpy(), (a.double() @ b.double()).numpy(), rtol=1e-4, atol=1e-4)


def test_matmul_relu_grad():
    rng = np.random.default_rng(2)
    dy = rng.standard_normal((31, 20)).astype(np.float32)
    w = rng.standard_normal((40, 20)).astype(np.float32)
    h = rng.standard_normal((31, 40)).astype(np.float32)
    got = K.matmul_relu_grad(torch.from_numpy(dy), torch.from_numpy(w), torch.from_numpy(h), trans_b=True)
    np.testing.assert_allclose(got.numpy(), _mm_ref(dy, w, False, True, mask=h), rtol=1e-4, atol=1e-5)
    assert (got.numpy()[h <= 0] == 0).all()


def test_matmul_bf16_inputs_fp32_accumulation():
    torch.manual_seed(0)
    a = torch.randn(40, 96).to(torch.bfloat16)
    b = torch.randn(96, 24).to(torch.bfloat16)
    out = K.matmul(a, b, out_dtype=torch.float32, activation="relu")
    ref = torch.relu(a.double() @ b.double())
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-4, atol=1e-4)
    out16 = K.matmul(a, b)
    assert out16.dtype == torch.bfloat16
    np.testing.assert_allclose(out16.float().numpy(), (a.double() @ b.double()).numpy(), rtol=2e-2, atol=2e-2)


def test_matmul_errors_and_empty():
    with pytest.raises(ValueError):
        K.matmul(torch.randn(3, 4), torch.randn(5, 6))
    with pytest.raises(ValueError):
        K.matmul(torch.randn(3, 4), torch.randn(4, 6), activation="gelu")
    r = K.matmul(torch.randn(3, 0), torch.randn(0, 4), bias=torch.ones(4), activation="relu")
    np.testing.assert_array_equal(r.numpy(), np.ones((3, 4), np.float32))


# ----------------------------------------------------------------------------
# Softmax cross-entropy fwd+bwd
# ----------------------------------------------------------------------------

def _xent_ref(x, y, scale):
    x = x.astype(np.float64)
    mx = x.max(1, keepdims=True)
    lse = np.log(np.exp(x - mx).sum(1)) + mx[:, 0]
    loss = lse - x[np.arange(len(y)), y]
    p = np.exp(x - lse[:, None])
    p[np.arange(len(y)), y] -= 1
    return loss, p * scale


@pytest.mark.parametrize("M,C,block_c", [(50, 10, None), (33, 300, None), (20, 300, 64), (7, 1, None)])
def test_softmax_xent(M, C, block_c):
    rng = np.random.default_rng(C)
    x = (rng.standard_normal((M, C)) * 5).astype(np.float32)
    x[0, :] += 1000.0  # stability: huge logits must not overflow
    y = rng.integers(0, C, M)
    loss, grad = K.softmax_xent_fwd_bwd(torch.from_numpy(x), torch.from_numpy(y), 1.0 / M, block_c=block_c)
    rl, rg = _xent_ref(x, y, 1.0 / M)
    assert loss.dtype == torch.float32 and grad.shape == (M, C)
    assert np.isfinite(loss.numpy()).all()
    np.testing.assert_allclose(loss.numpy(), rl, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad.numpy(), rg, rtol=1e-5, atol=1e-7)


def test_softmax_xent_vs_torch_int32_labels():
    torch.manual_seed(0)
    x = torch.randn(64, 17, requires_grad=True)
    y = torch.randint(0, 17, (64,))
    ref = torch.nn.functional.cross_entropy(x, y, reduction="sum")
    ref.backward()
    loss, grad = K.softmax_xent_fwd_bwd(x.detach(), y.to(torch.int32), 1.0)
    np.testing.assert_allclose(loss.sum().item(), ref.item(), rtol=1e-5)
    np.testing.assert_allclose(grad.numpy(), x.grad.numpy(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------
# Column reductions
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("M,N", [(1, 5), (100, 37), (300, 130)])
def test_colsum_and_bn_stats(M, N):
    rng = np.random.default_rng(M)
    x = (rng.standard_normal((M, N)) * 3 + 1000).astype(np.float32)  # |mean| >> std
    np.testing.assert_allclose(K.colsum(torch.from_numpy(x)).numpy(), x.astype(np.float64).sum(0),
                               rtol=1e-5)
    mean, var = K.bn_stats(torch.from_numpy(x))
    xd = x.astype(np.float64)
    np.testing.assert_allclose(mean.numpy(), xd.mean(0), rtol=1e-6)
    np.testing.assert_allclose(var.numpy(), xd.var(0), rtol=1e-3, atol=1e-4)


def test_column_reductions_split_path(monkeypatch):
    # Force the GPU's split-rows + partials path (3 splits of 40 rows, 16-row blocks).
    monkeypatch.setattr(K, "_reduce_launch_params", lambda M, N: (16, 64, 3, 40, 4))
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((110, 70)) * 2 - 50).astype(np.float32)
    xt = torch.from_numpy(x)
    np.testing.assert_allclose(K.colsum(xt).numpy(), x.astype(np.float64).sum(0), rtol=1e-5, atol=1e-3)
    mean, var = K.bn_stats(xt)
    np.testing.assert_allclose(mean.numpy(), x.astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(var.numpy(), x.astype(np.float64).var(0), rtol=1e-4)
    # strided (transposed) input
    np.testing.assert_allclose(K.colsum(xt.t()).numpy(), x.astype(np.float64).sum(1), rtol=1e-5, atol=1e-3)


# ----------------------------------------------------------------------------
# Fused optimizer update
# ----------------------------------------------------------------------------

_opt_ref = reference.optimizer_steps   # the Keras update rules in float64 NumPy


@pytest.mark.parametrize("kind,hp", [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.1, momentum=0.9)),
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("adam", dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-7)),
    ("adamw", dict(lr=1e-3, beta1=0.8, beta2=0.99, eps=1e-7, weight_decay=0.04)),
    ("rmsprop", dict(lr=1e-3, rho=0.9, eps=1e-7)),
    ("rmsprop", dict(lr=1e-3, rho=0.9, eps=1e-7, momentum=0.5)),
])
def test_fused_update(kind, hp):
    rng = np.random.default_rng(0)
    n = 5000  # one flat buffer holding "all parameters"
    p0 = rng.standard_normal(n).astype(np.float32)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(4)]
    p = torch.from_numpy(p0.copy())
    s1 = torch.zeros(n)
    s2 = torch.zeros(n)
    for t, g in enumerate(grads, start=1):
        K.fused_update(kind, p, torch.from_numpy(g), s1, s2, step=t, **hp)
    rp, r1, r2 = _opt_ref(kind, p0, grads, hp)
    np.testing.assert_allclose(p.numpy(), rp, rtol=1e-5, atol=1e-6)
    if kind != "sgd" or hp.get("momentum"):
        np.testing.assert_allclose(s1.numpy(), r1, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # 0/0 in masked-off lanes (eps=0)
def test_fused_update_matches_torch_adam_keras_eps_differs_only_in_eps_placement():
    # With eps=0 Keras Adam and torch Adam coincide exactly (up to fp32 rounding).
    torch.manual_seed(0)
    n = 1000
    p = torch.randn(n)
    tp = torch.nn.Parameter(p.clone())
    opt = torch.optim.Adam([tp], lr=1e-2, betas=(0.9, 0.999), eps=0.0)
    m, v = torch.zeros(n), torch.zeros(n)
    for t in range(1, 4):
        g = torch.randn(n)
        tp.grad = g.clone()
        opt.step()
        K.fused_update("adam", p, g, m, v, lr=1e-2, step=t, eps=0.0)
    np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_fused_update_validation():
    p = torch.zeros(10)
    with pytest.raises(ValueError):
        K.fused_update("adam", p, p.clone(), lr=0.1)
    with pytest.raises(ValueError):
        K.fused_update("lion", p, p.clone(), lr=0.1)


# ----------------------------------------------------------------------------
# AOT compile for H100 (separate process: the interpreter can't compile)
# ----------------------------------------------------------------------------

def test_aot_compile_all_kernels_for_sm90():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    r = subprocess.run([sys.executable, "-m", "nncompile.backends.triton.aot"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    res = json.loads(r.stdout)
    bad = [d for d in res if d["error"] or not d["smem_ok"]]
    assert not bad, bad
    assert r.returncode == 0, r.stderr[-2000:]
    names = {d["name"].split("_")[0] for d in res}
    assert {"matmul", "softmax", "colsum", "bn", "dropout", "fused"} <= names
    for d in res:
        assert d["has_ptx"] and d["has_cubin"]
        assert 0 <= d["shared"] <= 232448
    big = [d for d in res if d["name"].startswith("matmul")]
    assert max(d["shared"] for d in big) > 64 * 1024  # pipelined GEMM really uses smem


def test_aot_refuses_interpreted_kernel():
    from nncompile.backends.triton.aot import compile_for_h100
    with pytest.raises(RuntimeError, match="interpreter"):
        compile_for_h100(K._dropout_kernel, {}, {})
