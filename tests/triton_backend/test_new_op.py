"""Adding an op is adding its IR row and one emitter per backend (docs/extending.md):
a test registers a new elementwise op, a softsign(x) = x / (1 + |x|) of its own (named
"demo_softsign": the table has a real softsign), and trains
through it on both backends, against the reference interpreter and torch."""
import numpy as np
import pytest

from extras import TRITON_REASON

torch = pytest.importorskip("torch", reason=TRITON_REASON)
triton = pytest.importorskip("triton", reason=TRITON_REASON)

from nncompile.backends.numpy import lowering as np_lowering
from nncompile.backends.numpy.codegen import generate
from nncompile.backends.triton import lowering as tr_lowering
from nncompile.backends.triton.codegen import compile_graph
from nncompile.ir import ops
from nncompile.ir.graph import B, Graph
from nncompile.ir.interpret import interpret
from nncompile.passes.manager import PIPELINE, REQUIRED, run_passes


def _softsign_grad(g, n, dy):
    # d/dx x / (1 + |x|) = 1 / (1 + |x|)^2
    den = g.emit("add", g.const(1.0, n.dtype), g.emit("abs", n.inputs[0]))
    return (g.emit("div", dy, g.emit("square", den)),)


def _numpy_softsign(ctx, n, a, out):
    s = ctx.scratch(n, 0, n.shape)   # |x| + 1 in a scratch buffer: `out` may alias `a`
    return f"np.abs({a[0]}, out={s}); np.add({s}, 1.0, out={s}); np.divide({a[0]}, {s}, out={out})"


@pytest.fixture
def softsign():
    ops.unary("demo_softsign", lambda a: (a / (1 + np.abs(a))).astype(a.dtype), _softsign_grad)
    np_lowering.EMITTERS["demo_softsign"] = _numpy_softsign
    tr_lowering.POINTWISE["demo_softsign"] = "{0} / (1.0 + tl.abs({0}))"
    yield
    del ops.OPS["demo_softsign"], np_lowering.EMITTERS["demo_softsign"], tr_lowering.POINTWISE["demo_softsign"]


def _model():
    g = Graph("train_step")
    x = g.input("x", (B, 6))
    w = g.input("w", (6, 5), role="param", init="glorot_uniform")
    b = g.input("b", (5,), role="param", init="zeros")
    h = g.emit("demo_softsign", g.emit("add", g.emit("matmul", x, w), b))
    loss = g.emit("mean", g.emit("square", h), axes=(0, 1), keepdims=False)
    g.output("loss", loss)
    g.meta["differentiate"] = "loss"
    g.meta["optimizer"] = ("sgd", {"lr": 0.1, "momentum": 0.0, "nesterov": False}, None)
    return g


def test_a_registered_elementwise_op_trains_on_both_backends(softsign):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 6)).astype(np.float32)
    w = rng.standard_normal((6, 5)).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    oracle, _ = run_passes(_model(), pipeline=REQUIRED)
    optimized, _ = run_passes(_model(), pipeline=PIPELINE)
    groups = [gr["kind"] for gr in optimized.meta["groups"]]
    assert "elementwise" in groups
    feed = {"x": x, "w": w, "b": bias, "step": np.float32(1), "lr": np.float32(0.1)}
    want = interpret(oracle, feed)
    # torch: the same step by autograd
    tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(bias, requires_grad=True)
    z = torch.tensor(x) @ tw + tb
    tloss = ((z / (1 + z.abs())) ** 2).mean()
    tloss.backward()
    np.testing.assert_allclose(want["loss"], tloss.item(), rtol=1e-6)
    np.testing.assert_allclose(want["w"], (tw - 0.1 * tw.grad).detach().numpy(), rtol=1e-5, atol=1e-7)
    # the optimized step holds both parameters in one flat buffer (flatten_params)
    layout = optimized.meta["flat_params"]["layout"]
    for run in (generate(optimized), compile_graph(optimized)):
        flat = np.concatenate([feed[name].reshape(-1) for name, _, _ in layout])
        got = run({"x": x, "params.flat": flat, "step": feed["step"], "lr": feed["lr"]})
        np.testing.assert_allclose(float(got["loss"]), want["loss"], rtol=1e-6, err_msg=type(run).__name__)
        new = got["params.flat"]
        new = new.numpy() if isinstance(new, torch.Tensor) else np.asarray(new)
        for name, off, shape in layout:
            np.testing.assert_allclose(new[off:off + int(np.prod(shape))].reshape(shape), want[name],
                                       rtol=1e-5, atol=1e-6, err_msg=f"{type(run).__name__} {name}")
    assert not compile_graph(optimized).fallbacks
