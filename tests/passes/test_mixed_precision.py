"""Mixed precision (passes/mixed_precision.py, the `round_to` op): the rounding is
torch's, bit for bit, on every path (reference, NumPy code, native C loops); the
pass rounds exactly the contraction operands; a mixed step equals an independent
torch reference that rounds the same operands, and stays within bf16 error of the
exact step."""
import numpy as np
import pytest

from extras import TORCH_REASON

torch = pytest.importorskip("torch", reason=TORCH_REASON)
F = torch.nn.functional

import nncompile  # noqa: E402
from nncompile.backends.numpy import native  # noqa: E402
from nncompile.backends.numpy.codegen import generate  # noqa: E402
from nncompile.errors import CompileError  # noqa: E402
from nncompile.ir.graph import B, Graph  # noqa: E402
from nncompile.ir.interpret import interpret  # noqa: E402
from nncompile.ir.ops import OPS  # noqa: E402
from nncompile.passes.autodiff import differentiate  # noqa: E402
from nncompile.passes.manager import PIPELINE, run_passes  # noqa: E402
from rounded import TORCH_DTYPE, assert_same_bits, rounded_conv, rounded_matmul  # noqa: E402

PRECISION = {"mixed_bf16": "bf16", "mixed_f16": "f16"}


def _hard_values(n=20000, seed=0):
    """Normal values over 40 binades, ties and near-ties of both formats, both formats'
    overflow and subnormal edges, infinities, NaN, signed zeros."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * 2.0 ** rng.integers(-30, 20, n)).astype(np.float32)
    ties = (rng.integers(1, 2 ** 10, 2000) * 2 + 1).astype(np.float32)         # odd: halfway in bf16 after scaling
    ties = np.concatenate([ties * np.float32(2.0 ** -8), ties * np.float32(2.0 ** -11)])
    near = np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))
    edges = np.array([65504, 65519, 65520, 65536, 3.4e38, 6.1e-5, 6.0e-8, 2.9e-8, 3.0e-8, 1e-45, 0.0, -0.0,
                      np.inf, -np.inf, np.nan], np.float32)
    return np.concatenate([x, ties, *near, edges, -edges])


def _torch_round(x, precision):
    return torch.from_numpy(np.ascontiguousarray(x)).to(TORCH_DTYPE[precision]).to(torch.from_numpy(x).dtype).numpy()


@pytest.mark.parametrize("precision", ["bf16", "f16"])
def test_rounding_is_torch_bit_for_bit_on_every_path(precision):
    x = _hard_values()
    want = _torch_round(x, precision)
    g = Graph("t")
    xi = g.input("x", (B,))
    # round_to(neg x) = -round_to(x) in a group of three pointwise ops: the native path compiles it
    g.output("r", g.emit("neg", g.emit("round_to", g.emit("neg", xi), precision=precision)))
    g.output("ref", g.emit("round_to", xi, precision=precision))
    assert_same_bits(interpret(g, {"x": x})["ref"], want)
    g = run_passes(g, pipeline=[p for p in PIPELINE if p[0] != "autodiff"])[0]
    paths = ["numpy"] + (["native"] if native.find_compiler() else [])
    for path in paths:
        run = generate(g, path)
        assert path == "numpy" or run.native
        with np.errstate(invalid="ignore", over="ignore"):
            out = run({"x": x})
        assert_same_bits(np.asarray(out["r"]), want)
        assert_same_bits(np.asarray(out["ref"]), want)


@pytest.mark.parametrize("precision", ["bf16", "f16"])
def test_gradient_of_round_to_is_torchs(precision):
    """d/dx sum(round(x * a) * c) = round(c) * a, as torch's autograd through .to(bf16).float()."""
    rng = np.random.default_rng(1)
    xs, a_, c_ = (rng.standard_normal((5, 7)) for _ in range(3))
    g = Graph("t", "f64")
    x, a, c = (g.input(k, (5, 7)) for k in "xac")
    loss = g.emit("sum", g.emit("mul", g.emit("round_to", g.emit("mul", x, a), precision=precision), c),
                  axes=(0, 1), keepdims=False)
    g.output("loss", loss)
    for k, v in differentiate(g, loss, [x, c]).items():
        g.output(f"d{k}", v)
    out = interpret(g, {"x": xs, "a": a_, "c": c_})
    tx, tc = (torch.tensor(v, requires_grad=True) for v in (xs, c_))
    tl = ((tx * torch.tensor(a_)).to(TORCH_DTYPE[precision]).double() * tc).sum()
    tl.backward()
    np.testing.assert_allclose(out["loss"], tl.item(), rtol=1e-12)
    np.testing.assert_array_equal(out["dx"], tx.grad.numpy())
    np.testing.assert_array_equal(out["dc"], tc.grad.numpy())
    assert not np.array_equal(out["dx"], c_ * a_)        # the rounding is there


CNN = """
model m {{
  input x: f32[6, 6, 2]
  conv2d c1(4, 3, relu, padding=same)
  batchnorm bn
  maxpool2d p(2)
  flatten f
  dense h(8, relu)
  dense out(3, softmax)
}}
train {{
  loss = sparse_categorical_crossentropy
  optimizer = adam(lr=0.01)
  batch_size = 8
  precision = {precision}
}}
"""


def _contractions(g):
    return [n for n in g.nodes if OPS[n.op].kind in ("matmul", "conv")]


@pytest.mark.parametrize("precision", ["mixed_bf16", "mixed_f16"])
def test_every_contraction_operand_and_nothing_else_is_rounded(precision):
    prog = nncompile.compile(CNN.format(precision=precision))
    for name in ("train_step", "predict"):
        for g in (prog.graphs.unoptimized[name], getattr(prog.graphs, name)):
            cs = _contractions(g)
            assert cs and all(i.op == "round_to" and i.attrs["precision"] == PRECISION[precision]
                              for n in cs for i in n.inputs)
            users = g.users()
            rounded = [n for n in g.nodes if n.op == "round_to"]
            assert all(OPS[u.op].kind in ("matmul", "conv") or u.op == "fused" for n in rounded for u in users[n.id])
            assert not any(n.inputs[0].op == "round_to" for n in rounded)
    step = prog.graphs.unoptimized["train_step"]
    assert len(_contractions(step)) == 8           # conv and 2 dense; dx of the dense ones; 3 dw
    # each weight is read by its forward and its dx contraction, and rounded once (CSE)
    opt = prog.graphs.train_step
    assert sum(n.op == "round_to" and n.inputs[0].op == "slice_flat" for n in opt.nodes) == 3
    for k in step.updates:                         # master weights and optimizer state stay f32
        assert step.outputs[k].op != "round_to"


def test_f32_and_the_keras_names():
    plain = nncompile.compile(CNN.format(precision="f32"))
    assert not any(n.op == "round_to" for n in plain.graphs.unoptimized["train_step"].nodes)
    for keras, ours in (("mixed_bfloat16", "mixed_bf16"), ("mixed_float16", "mixed_f16"), ("float32", "f32")):
        assert nncompile.compile(CNN.format(precision=keras)).ast.train.precision == ours
    with pytest.raises(CompileError) as e:
        nncompile.compile(CNN.format(precision="bf16"))
    msg = str(e.value)
    assert "<string>:" in msg and "mixed_bf16" in msg and "precision = bf16" in msg


MLP = """
model m {{
  input x: f32[12]
  dense h(16, tanh)
  dense out(3, softmax)
}}
train {{
  loss = sparse_categorical_crossentropy
  optimizer = sgd(lr=0.1)
  precision = {precision}
}}
"""


def _exact_conv(x, w):
    return F.conv2d(x, w, padding=1)


def _torch_mlp(p, x, conv, mm):
    h = torch.tanh(mm(x, p["h.weight"]) + p["h.bias"])
    return mm(h, p["out.weight"]) + p["out.bias"]


def _torch_cnn(p, x, conv, mm):
    """CNN without its batchnorm, in torch's layouts (NCHW images, OIHW kernels)."""
    h = F.relu(conv(x.permute(0, 3, 1, 2), p["c1.weight"].permute(3, 2, 0, 1)) + p["c1.bias"][None, :, None, None])
    h = F.max_pool2d(h, 2).permute(0, 2, 3, 1).reshape(x.shape[0], -1)
    h = F.relu(mm(h, p["h.weight"]) + p["h.bias"])
    return mm(h, p["out.weight"]) + p["out.bias"]


MODELS = {"mlp": (MLP, (12,), _torch_mlp), "cnn": (CNN.replace("  batchnorm bn\n", ""), (6, 6, 2), _torch_cnn)}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("precision", ["mixed_bf16", "mixed_f16"])
def test_mixed_loss_and_grads_equal_a_torch_reference_that_rounds_the_same_operands(precision, model):
    """In f64 (so no f32 error moves a rounding point): the same numbers as torch with
    each matmul's and convolution's operands (and dy in their gradients) rounded; not
    the exact ones."""
    src, shape, forward = MODELS[model]
    prog = nncompile.compile(src.format(precision=precision), float_dtype="f64")
    rng = np.random.default_rng(2)
    params = prog.init_params(seed=3)
    x, y = rng.standard_normal((8,) + shape), rng.integers(0, 3, 8)
    loss, grads = prog.loss_and_grads(params, x, y)
    p = PRECISION[precision]
    for conv, mm, same in ((rounded_conv(p), rounded_matmul(p), True), (_exact_conv, torch.matmul, False)):
        tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        tl = F.cross_entropy(forward(tp, torch.tensor(x), conv, mm), torch.tensor(y))
        tl.backward()
        errs = [abs(loss - tl.item()) / abs(tl.item())] + [
            np.linalg.norm(grads[k] - tp[k].grad.numpy()) / np.linalg.norm(tp[k].grad.numpy()) for k in params]
        assert (max(errs) < 1e-12) == same, (same, errs)


def test_a_mixed_step_is_within_bf16_error_of_the_exact_step():
    """f32 mixed against an f64 step without rounding: loss and gradients within a few
    of bf16's relative error (2^-8), f16 closer, plain f32 at ~1e-7. (The first
    convolution's filter gradient of a convnet can be off by several percent: its sum
    over every pixel cancels; tests above pin those numbers exactly instead.)"""
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((32, 12)).astype(np.float32), rng.integers(0, 3, 32)
    exact = nncompile.compile(MLP.format(precision="f32"), float_dtype="f64")
    params = exact.init_params(seed=1)
    ref_loss, ref = exact.loss_and_grads(params, x, y)
    errs = {}
    for precision in ("f32", "mixed_bf16", "mixed_f16"):
        loss, grads = nncompile.compile(MLP.format(precision=precision)).loss_and_grads(params, x, y)
        errs[precision] = max([abs(loss - ref_loss) / ref_loss] + [
            np.linalg.norm(grads[k] - ref[k]) / np.linalg.norm(ref[k]) for k in ref])
    assert errs["f32"] < 1e-6
    assert 1e-5 < errs["mixed_f16"] < errs["mixed_bf16"] < 2.0 ** -6, errs


def test_the_pass_as_ir_text():
    """IR text in, IR text out: both operands of the matmul are rounded, the rest is not;
    the pass is idempotent (it runs again on its own output's text unchanged)."""
    import textwrap
    from nncompile.ir.parser import parse_graph
    from nncompile.ir.printer import print_graph
    from nncompile.passes.mixed_precision import mixed_precision
    src = textwrap.dedent("""
        graph t {
          meta precision="mixed_bf16"
          %0: f32[B,4] = input {name="x", role="data"}
          %1: f32[4,3] = input {name="w", role="param"}
          %2: f32[B,3] = matmul %0, %1 {ta=false, tb=false}
          %3: f32[B,3] = relu %2
          return "y"=%3
        }""").strip()
    want = textwrap.dedent("""
        graph t {
          meta precision="mixed_bf16"
          %0: f32[B,4] = input {name="x", role="data"}
          %1: f32[4,3] = input {name="w", role="param"}
          %2: f32[B,4] = round_to %0 {precision="bf16"}
          %3: f32[4,3] = round_to %1 {precision="bf16"}
          %4: f32[B,3] = matmul %2, %3 {ta=false, tb=false}
          %5: f32[B,3] = relu %4
          return "y"=%5
        }""").strip()

    def text(g):
        return "\n".join(l.split("  #")[0].rstrip() for l in print_graph(g).splitlines())
    out = text(mixed_precision(parse_graph(src)))
    assert out == want
    assert text(mixed_precision(parse_graph(out))) == want
    assert "round_to" not in text(mixed_precision(parse_graph(src.replace("mixed_bf16", "f32"))))
