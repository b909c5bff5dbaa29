"""The Triton kernel library (backends/triton/kernels/) against NumPy and torch,
on CPU tensors under the Triton interpreter (conftest sets TRITON_INTERPRET=1),
and the Philox stream the generated dropout kernels draw from. Shapes are
small and blocks big, so each launch is a handful of program instances; the
TINY-blocks tests run many programs and split reductions."""

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
# Dropout: the generated pointwise kernel draws tl.rand(key, flat index)
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
def test_generated_dropout_matches_philox_mask(rate):
    from nncompile.backends.triton.codegen import compile_graph
    from nncompile.ir.graph import B, Graph
    g = Graph("drop")
    x = g.input("x", (B, 53))
    rng = g.input("rng", (2,), "i64", role="scalar")
    g.output("y", g.emit("mul", x, g.emit("dropout_mask", x, rng, rate=rate, stream=3)))
    xs = np.random.default_rng(0).standard_normal((37, 53)).astype(np.float32)
    out = compile_graph(g)({"x": torch.from_numpy(xs), "rng": np.array([2024, 17])})["y"].numpy()
    keep = philox.dropout_keep_mask(2024, 17, 3, xs.shape, rate)
    scale = np.float32(1.0 / (1.0 - rate))
    np.testing.assert_array_equal(out, np.where(keep, xs * scale, 0.0).astype(np.float32))
    if rate == 0.5:
        assert abs(keep.mean() - 0.5) < 0.05


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
    got = K.matmul(torch.from_numpy(dy), torch.from_numpy(w), relu_mask=torch.from_numpy(h), trans_b=True)
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
# Row kernels
# ----------------------------------------------------------------------------

@pytest.fixture(params=[False, True], ids=["big-blocks", "tiny-blocks"])
def blocks(request, monkeypatch):
    """Run each row/column test with one program and with many (tiny blocks)."""
    if request.param:
        monkeypatch.setenv("NNCOMPILE_TRITON_TINY_BLOCKS", "1")
    return request.param


@pytest.mark.parametrize("shape", [(50, 10), (7, 1), (3, 4, 33)])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_rows_vs_torch(shape, log, blocks):
    x = torch.randn(shape) * 5
    x.view(-1, shape[-1])[0] += 1000.0   # stability: huge logits must not overflow
    got = K.softmax(x, log=log)
    ref = torch.log_softmax(x.double(), -1) if log else torch.softmax(x.double(), -1)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
    inplace = x.clone()
    K.softmax(inplace, out=inplace, log=log)         # each row is read before it is written
    np.testing.assert_array_equal(inplace.numpy(), got.numpy())


@pytest.mark.parametrize("M,C", [(50, 10), (33, 300), (7, 1)])
def test_softmax_xent_and_grad_vs_torch(M, C, blocks):
    torch.manual_seed(C)
    z = (torch.randn(M, C) * 5).requires_grad_()
    y = torch.randint(0, C, (M,))
    dy = torch.rand(M)
    ref = torch.nn.functional.cross_entropy(z.double(), y, reduction="none")
    (ref * dy.double()).sum().backward()
    np.testing.assert_allclose(K.softmax_xent(z.detach(), y).numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(K.softmax_xent_grad(z.detach(), y, dy).numpy(), z.grad.numpy(), rtol=1e-5,
                               atol=1e-6)


def test_argmax_first_of_ties_take_and_onehot(blocks):
    x = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [-1.0, -5.0, -1.0, -9.0]])
    np.testing.assert_array_equal(K.argmax(x).numpy(), np.argmax(x.numpy(), -1))   # NumPy's tie rule
    y = torch.tensor([3, 0, 2])
    np.testing.assert_array_equal(K.take_label(x, y).numpy(), x.numpy()[np.arange(3), y.numpy()])
    np.testing.assert_array_equal(K.onehot(y, 5).numpy(), np.eye(5, dtype=np.float32)[y.numpy()])


@pytest.mark.parametrize("shape", [(5, 1), (37, 300), (4, 2000)])
def test_reduce_rows_sum_mean_max(shape, blocks):
    if blocks:
        shape = (min(shape[0], 6), min(shape[1], 40))
    x = torch.randn(shape) * 3 + 100
    xd = x.double().numpy()
    np.testing.assert_allclose(K.reduce_rows(x).numpy(), xd.sum(-1), rtol=1e-6)
    np.testing.assert_allclose(K.reduce_rows(x, scale=1.0 / shape[-1]).numpy(), xd.mean(-1), rtol=1e-6)
    np.testing.assert_array_equal(K.reduce_rows(x, K.MAX).numpy(), x.numpy().max(-1))


# ----------------------------------------------------------------------------
# Column reductions
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("M,N", [(1, 5), (100, 37), (300, 130)])
def test_reduce_cols_sum_mean_max(M, N, blocks):
    if blocks:   # tiny blocks: every program is ~1 ms of interpreter; keep the grid small
        M, N = min(M, 30), min(N, 9)
    rng = np.random.default_rng(M)
    x = (rng.standard_normal((M, N)) * 3 + 1000).astype(np.float32)  # |mean| >> std
    xt, xd = torch.from_numpy(x), x.astype(np.float64)
    np.testing.assert_allclose(K.reduce_cols(xt, M, N).numpy(), xd.sum(0), rtol=1e-5)
    np.testing.assert_allclose(K.reduce_cols(xt, M, N, scale=1.0 / M).numpy(), xd.mean(0), rtol=1e-6)
    np.testing.assert_array_equal(K.reduce_cols(xt, M, N, K.MAX).numpy(), x.max(0))


def test_reduce_cols_split_path(monkeypatch):
    # the GPU's split-rows + partials path: 3 splits of 40 rows, 16-row blocks
    import nncompile.backends.triton.kernels.columns as cols
    monkeypatch.setattr(cols, "col_blocks", lambda m, n: (16, 64, 3, 40, 4))
    x = (np.random.default_rng(5).standard_normal((110, 70)) * 2 - 50).astype(np.float32)
    got = K.reduce_cols(torch.from_numpy(x), 110, 70)
    np.testing.assert_allclose(got.numpy(), x.astype(np.float64).sum(0), rtol=1e-5, atol=1e-3)


# ----------------------------------------------------------------------------
# The generated optimizer update (one pointwise kernel over the flat buffer)
# against the Keras rules in float64 NumPy (tests/reference.py)
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind,hp", [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.1, momentum=0.9)),
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("adam", dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-7)),
    ("adamw", dict(lr=1e-3, beta1=0.8, beta2=0.99, eps=1e-7, weight_decay=0.04)),
    ("rmsprop", dict(lr=1e-3, rho=0.9, eps=1e-7)),
    ("rmsprop", dict(lr=1e-3, rho=0.9, eps=1e-7, momentum=0.5)),
])
def test_generated_update_matches_the_keras_rules(kind, hp):
    from nncompile.backends.triton.codegen import compile_graph
    from nncompile.ir.graph import Graph
    from nncompile.passes.fusion import fuse_elementwise
    from nncompile.passes.memory import plan_memory
    from nncompile.passes.optimizer import apply_optimizer, slots_for
    n = 5000
    g = Graph("update")
    g.input("p", (n,), role="param")
    grad = g.input("g", (n,))
    params = {k: v for k, v in hp.items() if k != "lr"}
    apply_optimizer(g, kind, params, {"p": grad})
    prog = compile_graph(plan_memory(fuse_elementwise(g)))
    assert len([k for k in prog.kernels if not k.startswith("k")]) == 0   # generated pointwise kernels only
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(n).astype(np.float32)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(4)]
    feed = {"p": torch.from_numpy(p0.copy()), "lr": torch.tensor(hp["lr"], dtype=torch.float32)}
    for s in slots_for(kind, params):
        feed[f"{kind}.{s}.p"] = torch.zeros(n)
    for t, gr in enumerate(grads, start=1):
        prog({**feed, "g": torch.from_numpy(gr), "step": torch.tensor(float(t))})
    rp, r1, r2 = reference.optimizer_steps(kind, p0, grads, hp)
    np.testing.assert_allclose(feed["p"].numpy(), rp, rtol=1e-5, atol=1e-6)


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
    assert {"matmul", "softmax", "argmax", "take", "onehot", "reduce"} <= names
    for d in res:
        assert d["has_ptx"] and d["has_cubin"]
        assert 0 <= d["shared"] <= 232448
    big = [d for d in res if d["name"].startswith("matmul")]
    assert max(d["shared"] for d in big) > 64 * 1024  # pipelined GEMM really uses smem


def test_aot_refuses_interpreted_kernel():
    from nncompile.backends.triton.aot import compile_for_h100
    with pytest.raises(RuntimeError, match="interpreter"):
        compile_for_h100(K.softmax_kernel, {}, {})
