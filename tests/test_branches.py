"""Models with branches: layers that read a named earlier layer (from=), and the
merge layers add / multiply / concat; against a PyTorch module built from the
same weights (loss and every gradient), on dense and convolutional models."""
import numpy as np
import pytest

import nncompile
from nncompile import CompileError

torch = pytest.importorskip("torch")
F = torch.nn.functional

DENSE = """model m {{
  input x: f32[6]
  dense a(5, tanh)
  dense b(5, relu, from=x)
  {merge} j(from=[a, b])
  dense c(5, sigmoid, from=a)
  multiply g(from=[j, c]){extra}
  dense out(3, softmax)
}}
train {{
  loss = sparse_categorical_crossentropy
  optimizer = sgd
}}
"""


def _t(a):
    return torch.tensor(np.asarray(a, np.float64), requires_grad=True)


@pytest.mark.parametrize("merge", ["add", "concat"])
def test_dense_branches_match_torch(merge):
    src = DENSE.format(merge=merge, extra="" if merge == "add" else "")
    if merge == "concat":   # concat doubles the width: gate it with a 10-wide branch
        src = src.replace("dense c(5, sigmoid, from=a)", "dense c(10, sigmoid, from=a)")
    p = nncompile.compile(src, float_dtype="f64")
    rng = np.random.default_rng(0)
    params = p.init_params(seed=1)
    x, y = rng.standard_normal((7, 6)), rng.integers(0, 3, 7)
    loss, grads = p.loss_and_grads(params, x, y)
    t = {k: _t(v) for k, v in params.items()}
    tx = torch.tensor(x)
    lin = lambda h, n: h @ t[f"{n}.weight"] + t[f"{n}.bias"]  # noqa: E731
    a, b = torch.tanh(lin(tx, "a")), torch.relu(lin(tx, "b"))
    j = a + b if merge == "add" else torch.cat([a, b], dim=1)
    g = j * torch.sigmoid(lin(a, "c"))
    tl = F.cross_entropy(lin(g, "out"), torch.tensor(y))
    tl.backward()
    assert loss == pytest.approx(tl.item(), rel=1e-10)
    for k in params:
        np.testing.assert_allclose(grads[k], t[k].grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=k)


def test_residual_convnet_matches_torch():
    src = """model m {
  input x: f32[6, 6, 2]
  conv2d s(4, 3, relu, padding=same)
  conv2d c(4, 3, padding=same)
  add r(from=[s, c])
  concat k(from=[r, x])
  global_avgpool2d p
  dense out(3, softmax)
}
train { loss = sparse_categorical_crossentropy
  optimizer = sgd }
"""
    p = nncompile.compile(src, float_dtype="f64")
    rng = np.random.default_rng(2)
    params = p.init_params(seed=0)
    x, y = rng.standard_normal((5, 6, 6, 2)), rng.integers(0, 3, 5)
    loss, grads = p.loss_and_grads(params, x, y)
    t = {k: _t(v) for k, v in params.items()}
    tx = torch.tensor(x).permute(0, 3, 1, 2)
    conv = lambda h, n: F.conv2d(h, t[f"{n}.weight"].permute(3, 2, 0, 1), t[f"{n}.bias"], padding=1)  # noqa: E731
    s = torch.relu(conv(tx, "s"))
    k = torch.cat([s + conv(s, "c"), tx], dim=1)
    logits = k.mean(dim=(2, 3)) @ t["out.weight"] + t["out.bias"]
    tl = F.cross_entropy(logits, torch.tensor(y))
    tl.backward()
    assert loss == pytest.approx(tl.item(), rel=1e-10)
    for name in params:
        np.testing.assert_allclose(grads[name], t[name].grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=name)


def _error(src):
    with pytest.raises(CompileError) as e:
        nncompile.compile(src)
    return e.value


def test_branch_mistakes_are_located_errors_naming_the_branches():
    base = "model m {{\n  input x: f32[4]\n  dense a(3)\n  dense b(2)\n  {line}\n  dense out(1)\n}}\n"
    e = _error(base.format(line="add j(from=[a, b])"))
    assert e.line == 5 and "'a' [3], 'b' [2]" in e.message
    e = _error(base.format(line="concat j(from=[a, out])"))
    assert e.message == "no layer 'out' before this one" and "expected one of: x, a, b" in e.hint
    e = _error(base.format(line="add j(from=[a])"))
    assert "at least 2 layers" in e.message
    e = _error(base.format(line="dense j(2, from=zz)"))
    assert e.message == "no layer 'zz' before this one" and e.column > 10
    e = _error(base.format(line="concat j(from=[a, b], axis=2)"))
    assert "axis 2 does not fit" in e.message


def test_summary_lists_each_layers_inputs_and_the_picture_draws_the_branches(tmp_path):
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = nncompile.compile(os.path.join(root, "examples", "residual_mlp.nn"))
    text = p.summary()
    assert "Connected to" in text and "r1 (add)" in text and "stem, b1b" in text
    from nncompile.graphviz import render
    assert render(p).count("marker-end") == len(p.graphs.infos) + 2   # one arrow per input read
