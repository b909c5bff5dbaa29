"""Keras's activations elu, selu, silu/swish, softplus, softsign, hard_sigmoid and
exponential: each in a `.nn` program against PyTorch, its gradient (through its
IR, as the activation spec lowers it) against torch autograd, and the formulas
Keras documents where torch's differ in name or form."""
import numpy as np
import pytest

import nncompile
from extras import TORCH_REASON
from nncompile.frontend.layers.activations import SELU_ALPHA, SELU_SCALE, resolve
from nncompile.frontend.parser import parse_source
from nncompile.ir.graph import B, Graph
from nncompile.ir.interpret import interpret
from nncompile.passes.autodiff import differentiate

torch = pytest.importorskip("torch", reason=TORCH_REASON)
F = torch.nn.functional

# written as in a .nn file, its canonical (checked) value, torch's function
ACTS = [
    ("elu", "elu", F.elu),
    ("elu(0.5)", "elu(alpha=0.5)", lambda t: F.elu(t, 0.5)),
    ("selu", "selu", F.selu),
    ("silu", "silu", F.silu),
    ("swish", "silu", F.silu),
    ("softplus", "softplus", F.softplus),
    ("softsign", "softsign", F.softsign),
    # Keras 3's definition (F.hardsigmoid's float64 backward rounds its 1/6 to float32)
    ("hard_sigmoid", "hard_sigmoid", lambda t: F.relu6(t + 3) / 6),
    ("exponential", "exponential", torch.exp),
]
# away from the kinks of elu (0) and hard_sigmoid (-3, 3)
X = np.linspace(-4.1, 4.3, 40).reshape(8, 5)


def _act_program(act):
    return nncompile.Program(parse_source(
        f"train {{\n  loss = mse\n  optimizer = sgd\n}}\nmodel m {{\n  input x: f32[5]\n  activation a({act})\n}}\n",
        "model.nn"), float_dtype="f64")


@pytest.mark.parametrize("written, canonical, ref", ACTS, ids=[a[0] for a in ACTS])
def test_activation_in_a_program_matches_torch(written, canonical, ref):
    p = _act_program(written)
    assert next(iter(p.ast.model.layers[0].args.values())) == canonical
    np.testing.assert_allclose(p.predict({}, X), ref(torch.tensor(X)).numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("written, canonical, ref", ACTS, ids=[a[0] for a in ACTS])
def test_activation_gradient_matches_torch_autograd(written, canonical, ref):
    g = Graph("t", float_dtype="f64")
    x = g.input("x", (B, 5), "f64")
    r = g.input("r", (B, 5), "f64")
    act, params = resolve(canonical)
    loss = g.emit("sum", g.emit("mul", act.lower(g, x, params), r), axes=(0, 1), keepdims=False)
    g.output("dx", differentiate(g, loss, [x])["x"])
    rv = np.random.default_rng(0).normal(size=X.shape)
    got = interpret(g, {"x": X, "r": rv})["dx"]
    tx = torch.tensor(X, requires_grad=True)
    (ref(tx) * torch.tensor(rv)).sum().backward()
    np.testing.assert_allclose(got, tx.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_keras_formulas():
    def out(act):
        return _act_program(act).predict({}, X)
    # Keras 3's hard_sigmoid: 0 below -3, 1 above 3, x / 6 + 1/2 between (Keras 2's slope 0.2 is not it)
    np.testing.assert_allclose(out("hard_sigmoid"), np.clip(X / 6 + 0.5, 0, 1), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(out("hard_sigmoid"), F.hardsigmoid(torch.tensor(X)).numpy(), rtol=1e-14, atol=1e-15)
    elu = np.where(X > 0, X, np.expm1(X))
    np.testing.assert_allclose(out("elu"), elu, rtol=1e-14)
    np.testing.assert_allclose(out("selu"), SELU_SCALE * np.where(X > 0, X, SELU_ALPHA * np.expm1(X)), rtol=1e-14)
    np.testing.assert_allclose(out("silu"), X / (1 + np.exp(-X)), rtol=1e-14)
    np.testing.assert_allclose(out("softsign"), X / (1 + np.abs(X)), rtol=1e-14)


def test_activation_arguments_are_checked():
    from nncompile.errors import CompileError
    with pytest.raises(CompileError, match="takes no arguments"):
        _act_program("selu(2)")
    with pytest.raises(CompileError, match="alpha"):
        _act_program("elu(alpha=true)")


def test_summary_and_graph_name_the_activation_as_checked():
    from nncompile.graphviz import render
    p = nncompile.compile("model m {\n  input x: f32[6]\n  dense h(5, elu(0.5))\n  activation(swish)\n}\n")
    text = p.summary()
    assert "h (dense, elu(alpha=0.5))" in text and "(activation, silu)" in text
    for fmt in ("svg", "html"):
        picture = render(p, "layers", fmt)
        assert "elu(alpha=0.5)" in picture and "silu" in picture, fmt
