"""Convolution and pooling on the Triton backend (interpreter) against the NumPy
backend, with bias/activation/ReLU-mask epilogues fused into the conv kernels;
one program and many (tiny blocks)."""
import numpy as np
import pytest

from extras import TRITON_REASON

torch = pytest.importorskip("torch", reason=TRITON_REASON)
triton = pytest.importorskip("triton", reason=TRITON_REASON)
from hypothesis import assume, given, settings, strategies as st

from nncompile.backends.numpy.codegen import generate
from nncompile.backends.triton.codegen import compile_graph
from nncompile.ir.graph import B, Graph
from nncompile.passes.autodiff import differentiate
from nncompile.passes.manager import PIPELINE, run_passes


def _case_graph(op, x_shape, attrs, w_shape=None, bias=False, act=None):
    g = Graph("t")
    x = g.input("x", (B,) + x_shape)
    ins = [x]
    if w_shape is not None:
        ins.append(g.input("w", w_shape, role="param"))
    y = g.emit(op, *ins, **attrs)
    if bias:
        y = g.emit("add", y, g.input("b", (y.shape[-1],), role="param"))
    if act:
        y = g.emit(act, y)
    r = g.input("r", y.shape)
    loss = g.emit("sum", g.emit("mul", y, r), axes=(0, 1, 2, 3), keepdims=False)
    g.output("y", y)
    for k, gn in differentiate(g, loss, [g.inputs[k] for k in ("x", "w", "b") if k in g.inputs]).items():
        g.output(f"d{k}", gn)
    g2, _ = run_passes(g, pipeline=[p for p in PIPELINE if p[0] != "autodiff"])
    return g2


def _compare(g, feed):
    want = generate(g)(feed)
    got = compile_graph(g)({k: torch.from_numpy(v) for k, v in feed.items()})
    for k in want:
        np.testing.assert_allclose(got[k].numpy(), want[k], rtol=1e-4, atol=1e-4, err_msg=k)
    assert not compile_graph(g).fallbacks


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2]))
    cg, fg = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    k = draw(st.integers(1, 3))
    s, d = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pad = tuple(tuple(draw(st.integers(0, 1)) for _ in range(2)) for _ in range(2))
    h, w = draw(st.integers(2, 7)), draw(st.integers(2, 7))
    assume(h + sum(pad[0]) >= d * (k - 1) + 1 and w + sum(pad[1]) >= d * (k - 1) + 1)
    return dict(x=(h, w, cg * groups), w=(k, k, cg, fg * groups), bias=draw(st.booleans()),
                act=draw(st.sampled_from([None, "relu", "tanh"])),
                attrs=dict(window=(k, k), strides=(s, s), padding=pad, dilation=(d, d), groups=groups))


@settings(max_examples=12, deadline=None)
@given(conv_cases(), st.integers(0, 1000))
def test_conv2d_with_epilogue_and_gradients_match_numpy(case, seed):
    g = _case_graph("conv2d", case["x"], case["attrs"], case["w"], case["bias"], case["act"])
    rng = np.random.default_rng(seed)
    feed = {"x": rng.standard_normal((2,) + case["x"]).astype(np.float32),
            "w": rng.standard_normal(case["w"]).astype(np.float32),
            "r": rng.standard_normal((2,) + tuple(g.inputs["r"].shape[1:])).astype(np.float32)}
    if case["bias"]:
        feed["b"] = rng.standard_normal(case["w"][3]).astype(np.float32)
    _compare(g, feed)


@pytest.mark.parametrize("op", ["maxpool2d", "avgpool2d"])
@pytest.mark.parametrize("window,strides,padding", [((2, 2), (2, 2), ((0, 0), (0, 0))),
                                                     ((3, 3), (1, 1), ((1, 1), (1, 1))),
                                                     ((3, 2), (2, 1), ((0, 1), (1, 0)))])
def test_pooling_and_gradient_match_numpy_with_ties(op, window, strides, padding):
    g = _case_graph(op, (7, 6, 3), dict(window=window, strides=strides, padding=padding))
    rng = np.random.default_rng(0)
    feed = {"x": rng.integers(-2, 3, (2, 7, 6, 3)).astype(np.float32),     # ties in most windows
            "r": rng.standard_normal((2,) + tuple(g.inputs["r"].shape[1:])).astype(np.float32)}
    _compare(g, feed)


def test_conv_relu_backward_mask_fuses_into_the_input_gradient():
    """conv -> relu -> conv: the second conv's input gradient carries the ReLU mask epilogue."""
    g = Graph("t")
    x = g.input("x", (B, 6, 6, 2))
    attrs = dict(window=(3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    h = g.emit("relu", g.emit("conv2d", x, g.input("w1", (3, 3, 2, 4), role="param"), **attrs))
    y = g.emit("conv2d", h, g.input("w2", (3, 3, 4, 3), role="param"), **attrs)
    loss = g.emit("mean", g.emit("square", y), axes=(0, 1, 2, 3), keepdims=False)
    g.output("loss", loss)
    for k, gn in differentiate(g, loss, [g.inputs["w1"], g.inputs["w2"]]).items():
        g.output(f"d{k}", gn)
    g2, _ = run_passes(g, pipeline=[p for p in PIPELINE if p[0] != "autodiff"])
    heads = [(gr["kind"], gr["epilogue"]) for gr in g2.meta["groups"] if gr["kind"] == "conv" and "epilogue" in gr]
    assert any(e["mask"] is not None for _, e in heads)
    assert any(e["activation"] == "relu" for _, e in heads)
    rng = np.random.default_rng(1)
    _compare(g2, {"x": rng.standard_normal((3, 6, 6, 2)).astype(np.float32),
                  "w1": rng.standard_normal((3, 3, 2, 4)).astype(np.float32),
                  "w2": rng.standard_normal((3, 3, 4, 3)).astype(np.float32)})


def test_window_kernels_with_many_programs(monkeypatch):
    monkeypatch.setenv("NNCOMPILE_TRITON_TINY_BLOCKS", "1")
    test_conv_relu_backward_mask_fuses_into_the_input_gradient()
    test_pooling_and_gradient_match_numpy_with_ties("maxpool2d", (3, 3), (1, 1), ((1, 1), (1, 1)))
