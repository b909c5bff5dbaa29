"""The NumPy backend's native path: C loops that agree with the NumPy path,
cached on disk, and a NumPy fallback when no C compiler exists."""
import os
import subprocess
import sys

import numpy as np
import pytest

import nncompile
from nncompile.backends.numpy import c_lowering, native
from nncompile.backends.numpy.codegen import generate
from nncompile.ir.graph import B, Graph
from nncompile.ir.ops import OPS
from nncompile.passes.manager import PIPELINE, run_passes

needs_cc = pytest.mark.skipif(native.find_compiler() is None, reason="no C compiler")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_pointwise_op_has_a_c_expression():
    missing = [name for name, d in OPS.items() if d.pointwise and name not in c_lowering.C_EXPR]
    assert not missing, f"pointwise ops the native loops cannot compute: {missing}"


def _pointwise_graph():
    """Every pointwise op in groups, over [B, 37] with row and column broadcasts."""
    g = Graph("t")
    x = g.input("x", (B, 37))
    v = g.input("v", (37,))
    r = g.input("r", (B, 1))
    rng = g.input("rng", (2,), "i64", role="scalar")
    h = g.emit("add", g.emit("mul", x, v), r)
    outs = {}
    for op in ("neg", "exp", "log", "sqrt", "square", "abs", "sign", "relu", "sigmoid", "tanh", "softplus",
               "gelu", "gelu_tanh", "cast", "silu", "softsign"):
        attrs = {"dtype": "f32"} if op == "cast" else {}
        outs[op] = g.emit(op, g.emit("abs", h) if op in ("log", "sqrt") else h, **attrs)
    outs["leaky"] = g.emit("leaky_relu", h, alpha=0.3)
    outs["elu"] = g.emit("elu", h, alpha=0.7)
    outs["clip"] = g.emit("clip", h, lo=-0.5, hi=0.5)
    for op in ("sub", "div", "maximum", "equal", "greater", "greater_equal", "not_equal", "relu_grad",
               "gelu_grad", "gelu_tanh_grad"):
        outs[op] = g.emit(op, h, g.emit("sigmoid", x))
    outs["where"] = g.emit("where", g.emit("greater", h, r), h, g.emit("exp", v))
    outs["leaky_grad"] = g.emit("leaky_grad", h, x, alpha=0.3)
    outs["clip_grad"] = g.emit("clip_grad", h, x, lo=-0.2, hi=0.4)
    outs["unreduce"] = g.emit("mul", h, g.emit("unreduce", g.emit("sum", x, axes=(1,), keepdims=False), x,
                                               axes=(1,), keepdims=False, mean=True))
    outs["dropout"] = g.emit("mul", h, g.emit("dropout_mask", h, rng, rate=0.4, stream=3))
    outs["colsum"] = g.emit("sum", h, axes=(0,), keepdims=False)
    for k, n in outs.items():
        g.output(k, n)
    return run_passes(g, pipeline=[p for p in PIPELINE if p[0] not in ("autodiff",)])[0]


@needs_cc
def test_native_loops_agree_with_numpy_and_dropout_is_bit_exact():
    g = _pointwise_graph()
    rng = np.random.default_rng(0)
    feed = {"x": rng.standard_normal((50, 37)).astype(np.float32),
            "v": rng.standard_normal(37).astype(np.float32),
            "r": rng.standard_normal((50, 1)).astype(np.float32), "rng": np.array([7, 11])}
    fast, slow = generate(g, "native"), generate(g, "numpy")
    assert fast.native and fast.c_source.count("void g") >= 3
    a, b = slow(feed), fast(feed)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=2e-6, atol=1e-6, err_msg=k)
    for k in ("add", "dropout", "relu_grad", "equal", "clip", "colsum"):
        if k in a:
            np.testing.assert_array_equal(b[k], a[k], err_msg=k)   # no transcendental: the same bits
    np.testing.assert_array_equal(b["dropout"] != 0, a["dropout"] != 0)


@needs_cc
def test_the_c_source_names_the_nn_lines_and_is_cached_on_disk(tmp_path):
    env = {**os.environ, "NNCOMPILE_CACHE_DIR": str(tmp_path), "PYTHONPATH": ROOT}
    code = ("import time, nncompile; t = time.perf_counter(); p = nncompile.compile('examples/digits.nn'); "
            "run = p.compiled('train_step'); print(run.native, time.perf_counter() - t)")
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    files = sorted(os.listdir(tmp_path / "native"))
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert first.stdout.split()[0] == "True" and second.stdout.split()[0] == "True", first.stderr
    assert files == sorted(os.listdir(tmp_path / "native")) and len(files) == 1    # loaded, not rebuilt
    src = nncompile.compile(os.path.join(ROOT, "examples", "digits.nn")).compiled("train_step").c_source
    assert "digits.nn:" in src and "h1" in src


def test_without_a_compiler_the_numpy_path_runs_and_says_so_once(monkeypatch, capsys):
    monkeypatch.setattr(native, "find_compiler", lambda: None)
    monkeypatch.setattr(native, "_said", False)
    p = nncompile.compile(os.path.join(ROOT, "examples", "textbook_classifier.nn"))
    assert not p.compiled("train_step").native and not p.compiled("predict").native
    err = capsys.readouterr().err
    assert err.count("no C compiler found") == 1 and "nncompile[native]" in err
    q = nncompile.compile(os.path.join(ROOT, "examples", "textbook_classifier.nn"), cpu_kernels="native")
    with pytest.raises(nncompile.NNError, match="needs a C compiler"):
        q.compiled("train_step")


def test_cpu_kernels_flag_is_checked():
    r = subprocess.run([sys.executable, "-m", "nncompile", "check", "examples/digits.nn", "--cpu-kernels", "fast"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "invalid choice" in r.stderr


@needs_cc
def test_native_window_loops_agree_with_numpy_over_geometries():
    """im2col, col2im and pooling in C against the NumPy path, over kernel sizes,
    strides, asymmetric paddings, dilations, groups and channel counts (a
    miscompiled loop nest once gave garbage for C=2 with one-sided padding)."""
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=150, deadline=None)
    @given(st.integers(1, 3), st.integers(1, 2), st.integers(1, 2), st.integers(1, 5),
           st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)),
           st.sampled_from([1, 2]), st.integers(2, 6), st.integers(2, 6), st.integers(0, 1000))
    def check(k, s, d, c, pads, groups, h, wd, seed):
        pad = ((pads[0], pads[1]), (pads[2], pads[3]))
        from hypothesis import assume
        assume(h + sum(pad[0]) >= d * (k - 1) + 1 and wd + sum(pad[1]) >= d * (k - 1) + 1)
        assume(h >= k and wd >= k)
        g = Graph("t")
        x = g.input("x", (B, h, wd, c * groups))
        w = g.input("w", (k, k, c, 2 * groups), role="param")
        y = g.emit("conv2d", x, w, window=(k, k), strides=(s, s), padding=pad, dilation=(d, d), groups=groups)
        ppad = tuple((min(a, k - 1), min(b, k - 1)) for a, b in pad)
        for op in ("maxpool2d", "avgpool2d"):
            g.output(op, g.emit(op, x, window=(k, k), strides=(s, s), padding=ppad))
        r = g.input("r", y.shape)
        loss = g.emit("sum", g.emit("mul", y, r), axes=(0, 1, 2, 3), keepdims=False)
        from nncompile.passes.autodiff import differentiate
        for name, gn in differentiate(g, loss, [x, w]).items():
            g.output("d" + name, gn)
        g.output("y", y)
        g2 = run_passes(g, pipeline=[p for p in PIPELINE if p[0] != "autodiff"])[0]
        rng = np.random.default_rng(seed)
        feed = {"x": rng.standard_normal((2, h, wd, c * groups)).astype(np.float32),
                "w": rng.standard_normal((k, k, c, 2 * groups)).astype(np.float32),
                "r": rng.standard_normal((2,) + tuple(y.shape[1:])).astype(np.float32)}
        a, b = generate(g2, "numpy")(feed), generate(g2, "native")(feed)
        for key in a:
            np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-5, err_msg=key)
    check()
