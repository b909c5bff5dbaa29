"""Mixed precision on the Triton backend against the NumPy emulation (the CPU
oracle), under the interpreter: the rounding is bit-exact, whole mixed programs
agree at fp32 tolerance, and every kernel a mixed program generates compiles
ahead of time for sm_90."""
import os
import subprocess
import sys

import numpy as np
import pytest

from extras import TRITON_REASON

torch = pytest.importorskip("torch", reason=TRITON_REASON)
triton = pytest.importorskip("triton", reason=TRITON_REASON)

import nncompile  # noqa: E402
import programs as P  # noqa: E402
from nncompile.ir.graph import B, Graph  # noqa: E402
from nncompile.ir.precision import round_to  # noqa: E402
from nncompile.backends.triton import compile_graph  # noqa: E402
from nncompile.passes.manager import PIPELINE, run_passes  # noqa: E402

from rounded import assert_same_bits  # noqa: E402
from test_backend import ROOT, aot_results, close  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # masked-off lanes, inf * 0 (interpreter)

MLP = """
model m {
  input x: f32[12]
  dense h(16, relu)
  layernorm ln
  dense out(3, softmax)
}
train {
  loss = sparse_categorical_crossentropy
  optimizer = adam(lr=0.01)
  metrics = [accuracy]
  batch_size = 8
  precision = PRECISION
}
"""
CNN = """
model m {
  input x: f32[6, 6, 2]
  conv2d c1(4, 3, relu, padding=same)
  batchnorm bn
  maxpool2d p(2)
  flatten f
  dense out(3, softmax)
}
train {
  loss = sparse_categorical_crossentropy
  optimizer = sgd(lr=0.1, momentum=0.9)
  metrics = [accuracy]
  batch_size = 8
  precision = PRECISION
}
"""
MIXED = [m.replace("PRECISION", p) for m in (MLP, CNN) for p in ("mixed_bf16", "mixed_f16")]


@pytest.mark.parametrize("precision", ["bf16", "f16"])
def test_the_rounding_kernel_is_the_emulation_bit_for_bit(precision):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(4096) * 2.0 ** rng.integers(-30, 20, 4096)).astype(np.float32)
    x[:6] = [np.nan, np.inf, -np.inf, 65520, 1e-45, -0.0]
    g = Graph("t")
    g.output("r", g.emit("round_to", g.input("x", (B,)), precision=precision))
    run = compile_graph(run_passes(g, pipeline=[p for p in PIPELINE if p[0] != "autodiff"])[0])
    got = np.asarray(run.to_host(run({"x": run.to_device(x)})["r"]))
    assert_same_bits(got, round_to(x, precision))


@pytest.mark.parametrize("source", MIXED, ids=["mlp_bf16", "mlp_f16", "cnn_bf16", "cnn_f16"])
def test_mixed_programs_match_the_numpy_emulation(source):
    """Loss, gradients, two training steps and predictions: fp32 tolerance, the same
    as for f32 programs (both backends round the same f32 values at the same points;
    a value on a rounding boundary could flip one bf16 ulp, none does here)."""
    pn, pt = nncompile.compile(source), nncompile.compile(source, backend="triton")
    params = pn.init_params(0)
    x, y = P.program_batch(pn, 8, 1)
    (l1, g1), (l2, g2) = pn.loss_and_grads(params, x, y), pt.loss_and_grads(params, x, y)
    close(l2, l1, "loss")
    for k in g1:
        close(g2[k], g1[k], f"grad {k}")
    tn, tt = pn.trainer(seed=3, params=params), pt.trainer(seed=3, params=params)
    for i in range(2):
        xb, yb = P.program_batch(pn, 8, 10 + i)
        a, b = tn.train_batch(xb, yb), tt.train_batch(xb, yb)
        for k in a:
            close(b[k], a[k], f"step {i} {k}")
    close(tt.predict(x), tn.predict(x), "predict")
    # the rounding is there: the f32 program gives other numbers
    f32 = nncompile.compile(source.replace("mixed_bf16", "f32").replace("mixed_f16", "f32"))
    assert abs(f32.loss_and_grads(params, x, y)[0] - l1) > 1e-6


def test_every_kernel_of_a_mixed_program_compiles_aot_sm90():
    res = aot_results(MIXED)
    assert len(res) >= 10
    bad = [r for r in res if r["error"] or not r["smem_ok"]]
    assert not bad, bad


def test_every_contraction_of_a_mixed_step_runs_a_16_bit_dot():
    """The generated module hands each matmul its operands' precision and each
    convolution kernel DOT=1 (bf16) / 2 (fp16); f32 programs keep DOT=0."""
    for source, dot, operands in ((MIXED[2], 1, "'bf16'"), (MIXED[3], 2, "'f16'")):
        code = nncompile.compile(source, backend="triton").compiled("train_step").source
        launches = [l for l in code.splitlines() if "K.matmul(" in l or "K.conv2d" in l and "[grid" in l]
        assert launches and all(f"operands={operands}" in l if "K.matmul(" in l else f"DOT={dot}" in l
                                for l in launches), launches
    plain = nncompile.compile(CNN.replace("PRECISION", "f32"), backend="triton").compiled("train_step").source
    assert "operands=" not in plain and "DOT=1" not in plain and "DOT=2" not in plain


PTX_SCRIPT = """
import os, sys
os.environ.pop("TRITON_INTERPRET", None)
sys.path.insert(0, {root!r})
import triton
from triton.backends.compiler import GPUTarget
from nncompile.backends.triton.kernels import matmul_aot_specs
for dot, ty in ((1, "bf16"), (2, "f16")):
    sp = next(s for s in matmul_aot_specs() if s["constexprs"]["DOT"] == dot)
    sig = {{a: sp["signature"].get(a, "constexpr") for a in sp["kernel"].arg_names}}
    ck = triton.compile(triton.compiler.ASTSource(fn=sp["kernel"], signature=sig, constexprs=sp["constexprs"]),
                        target=GPUTarget("cuda", 90, 32), options={{"num_warps": sp["num_warps"]}})
    ptx = ck.asm["ptx"]
    mma = [l.strip() for l in ptx.splitlines() if "mma" in l and "." + ty in l]
    print(dot, bool(mma), mma[0].split()[0] if mma else "-")
"""


def test_the_sm90_code_of_a_mixed_matmul_multiplies_16_bit_operands():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", PTX_SCRIPT.format(root=ROOT)], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [l.split() for l in out.stdout.strip().splitlines()]
    assert [l[:2] for l in lines] == [["1", "True"], ["2", "True"]], out.stdout


@pytest.mark.parametrize("precision", ["bf16", "f16"])
def test_the_kernels_round_their_operands_against_torch(precision):
    """K.matmul(operands=...) and conv2d(dot=...) on fp32 operands that are not yet
    rounded: torch's .to(bf16 / fp16) of both, multiplied in float64."""
    from nncompile.backends.triton import kernels as K
    from nncompile.backends.triton.kernels.conv import conv2d
    from nncompile.backends.triton.kernels.gemm import DOT_OPERANDS
    from rounded import rounder
    r = rounder(precision)
    torch.manual_seed(0)
    a, b = torch.randn(37, 50), torch.randn(50, 23)
    got = K.matmul(a, b, operands=precision)
    want = r(a) @ r(b)
    np.testing.assert_allclose(got.double().numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    assert np.abs(got.double().numpy() - (a.double() @ b.double()).numpy()).max() > 1e-3   # it did round
    x, w = torch.randn(2, 6, 6, 3), torch.randn(3, 3, 3, 4)          # NHWC, (kh, kw, c, f)
    got = conv2d(x, w, (1, 1), ((1, 1), (1, 1)), (1, 1), 1, (6, 6), dot=DOT_OPERANDS[precision])
    want = torch.nn.functional.conv2d(r(x).permute(0, 3, 1, 2), r(w).permute(3, 2, 0, 1), padding=1)
    np.testing.assert_allclose(got.double().numpy(), want.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-5)
