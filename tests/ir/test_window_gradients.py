"""Convolution and pooling: forward and both gradients against PyTorch autograd
in float64, over hypothesis-drawn strides, paddings (asymmetric, as Keras's
"same" makes them), dilations, groups, kernel sizes, channel counts and odd
image sizes; pooling with ties. The reference semantics (ir/windows.py) are
what the interpreter and both backends are tested against, so they are tested
against an independent oracle here."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from nncompile.ir.graph import B, Graph
from nncompile.ir.interpret import interpret
from nncompile.passes.autodiff import differentiate

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _nchw(a):
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


def _nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


def _pad_t(t, padding, value=0.0):
    (pt, pb), (pl, pr) = padding
    return F.pad(t, (pl, pr, pt, pb), value=value)


def _graph(op, x_shape, w_shape, attrs):
    g = Graph("t", "f64")
    x = g.input("x", (B,) + x_shape[1:])
    ins = [x]
    if w_shape is not None:
        ins.append(g.input("w", w_shape, role="param"))
    y = g.emit(op, *ins, **attrs)
    r = g.input("r", y.shape)          # a random cotangent: loss = sum(y * r)
    loss = g.emit("sum", g.emit("mul", y, r), axes=tuple(range(4)), keepdims=False)
    g.output("y", y)
    for k, gn in differentiate(g, loss, [g.inputs[k] for k in ("x", "w") if k in g.inputs]).items():
        g.output(f"d{k}", gn)
    return g


@st.composite
def convs(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg, fg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pad = tuple(tuple(draw(st.integers(0, 2)) for _ in range(2)) for _ in range(2))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    assume(h + sum(pad[0]) >= dh * (kh - 1) + 1 and w + sum(pad[1]) >= dw * (kw - 1) + 1)
    return dict(b=draw(st.integers(1, 3)), hw=(h, w), c=cg * groups, f=fg * groups,
                attrs=dict(window=(kh, kw), strides=(sh, sw), padding=pad, dilation=(dh, dw), groups=groups))


@settings(max_examples=60, deadline=None)
@given(convs(), st.integers(0, 2**31 - 1))
def test_conv2d_and_its_gradients_match_torch(case, seed):
    rng = np.random.default_rng(seed)
    a = case["attrs"]
    x = rng.standard_normal((case["b"],) + case["hw"] + (case["c"],))
    w = rng.standard_normal(a["window"] + (case["c"] // a["groups"], case["f"]))
    g = _graph("conv2d", x.shape, w.shape, a)
    r = rng.standard_normal(tuple(x.shape[0] if d == B else d for d in g.inputs["r"].shape))
    out = interpret(g, {"x": x, "w": w, "r": r})
    tx, tw = _nchw(x).requires_grad_(), torch.from_numpy(w.transpose(3, 2, 0, 1).copy()).requires_grad_()
    ty = F.conv2d(_pad_t(tx, a["padding"]), tw, stride=a["strides"], dilation=a["dilation"], groups=a["groups"])
    (ty * _nchw(r)).sum().backward()
    np.testing.assert_allclose(out["y"], _nhwc(ty), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out["dx"], _nhwc(tx.grad), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out["dw"], tw.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-10, atol=1e-10)


@st.composite
def pools(draw):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pad = tuple(tuple(draw(st.integers(0, k - 1)) for _ in range(2)) for k in (kh, kw))  # pads < window
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    assume(h + sum(pad[0]) >= kh and w + sum(pad[1]) >= kw)
    return dict(b=draw(st.integers(1, 2)), hw=(h, w), c=draw(st.integers(1, 3)),
                attrs=dict(window=(kh, kw), strides=(sh, sw), padding=pad))


def _torch_pool(op, tx, a):
    if op == "maxpool2d":
        return F.max_pool2d(_pad_t(tx, a["padding"], -np.inf), a["window"], a["strides"])
    kh, kw = a["window"]
    sums = F.avg_pool2d(_pad_t(tx, a["padding"]), a["window"], a["strides"]) * (kh * kw)
    ones = torch.ones((1, 1) + tx.shape[2:], dtype=tx.dtype)
    counts = F.avg_pool2d(_pad_t(ones, a["padding"]), a["window"], a["strides"]) * (kh * kw)
    return sums / counts


@settings(max_examples=60, deadline=None)
@given(pools(), st.sampled_from(["maxpool2d", "avgpool2d"]), st.booleans(), st.integers(0, 2**31 - 1))
def test_pooling_and_its_gradient_match_torch(case, op, ties, seed):
    rng = np.random.default_rng(seed)
    shape = (case["b"],) + case["hw"] + (case["c"],)
    # ties: small integers, so windows often hold their maximum twice
    x = rng.integers(-2, 3, shape).astype(np.float64) if ties else rng.standard_normal(shape)
    g = _graph(op, x.shape, None, case["attrs"])
    r = rng.standard_normal(tuple(x.shape[0] if d == B else d for d in g.inputs["r"].shape))
    out = interpret(g, {"x": x, "r": r})
    tx = _nchw(x).requires_grad_()
    ty = _torch_pool(op, tx, case["attrs"])
    (ty * _nchw(r)).sum().backward()
    np.testing.assert_allclose(out["y"], _nhwc(ty), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["dx"], _nhwc(tx.grad), rtol=1e-12, atol=1e-12)


def test_shapes_that_do_not_fit_are_ir_errors_naming_them():
    from nncompile.ir.ops import IRError
    g = Graph("t")
    x = g.input("x", (B, 4, 4, 6))
    with pytest.raises(IRError, match="does not fit the 4x4 input"):
        g.emit("conv2d", x, g.input("w", (5, 5, 6, 2)), window=(5, 5), strides=(1, 1),
               padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1)
    with pytest.raises(IRError, match="6 input channels in 4 groups"):
        g.emit("conv2d", x, g.input("w2", (3, 3, 1, 4)), window=(3, 3), strides=(1, 1),
               padding=((1, 1), (1, 1)), dilation=(1, 1), groups=4)
    with pytest.raises(IRError, match="strides"):
        g.emit("maxpool2d", x, window=(2, 2), strides=(0, 2), padding=((0, 0), (0, 0)))
