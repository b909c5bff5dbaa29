"""Keras 3's initializers lecun_uniform / lecun_normal, orthogonal, truncated_normal
and variance_scaling(scale, mode, distribution): their statistics against
Keras's formulas, glorot / he / lecun as variance_scaling's cases (the same
draws), orthogonality, and their arguments checked in a `.nn` file."""
import math

import numpy as np
import pytest

import nncompile
from nncompile.errors import CompileError
from nncompile.runtime.init import initialize

SHAPE = (400, 300)
CONV = (3, 3, 16, 32)          # fan_in 144, fan_out 288
FANS = {"fan_in": 144, "fan_out": 288, "fan_avg": 216}
TRUNC = 0.87962566103423978    # the std of a unit normal truncated at 2


def _one(init, shape=SHAPE, seed=0, dtype=np.float32):
    return initialize([("k.weight", shape, init)], seed=seed, dtype=dtype)["k.weight"]


def test_lecun():
    u, n = _one("lecun_uniform"), _one("lecun_normal")
    lim = math.sqrt(3 / 400)
    assert np.abs(u).max() <= lim and u.std() == pytest.approx(math.sqrt(1 / 400), rel=0.02)
    assert n.std() == pytest.approx(math.sqrt(1 / 400), rel=0.02)
    assert np.abs(n).max() <= 2 * math.sqrt(1 / 400) / TRUNC * (1 + 1e-6)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["truncated_normal", "untruncated_normal", "uniform"])
def test_variance_scaling_moments(mode, distribution):
    scale = 2.5
    w = _one(f"variance_scaling(scale={scale}, mode={mode}, distribution={distribution})", CONV, dtype=np.float64)
    std = math.sqrt(scale / FANS[mode])
    assert abs(w.mean()) < 0.05 * std
    assert w.std() == pytest.approx(std, rel=0.03)
    if distribution == "uniform":
        assert np.abs(w).max() <= math.sqrt(3 * scale / FANS[mode])
    elif distribution == "truncated_normal":
        assert np.abs(w).max() <= 2 * std / TRUNC * (1 + 1e-9)
    else:       # a plain normal reaches past 2 std (P = 4.6% of 147456 draws)
        assert np.abs(w).max() > 2.5 * std


@pytest.mark.parametrize("named, call", [
    ("glorot_uniform", "variance_scaling(mode=fan_avg, distribution=uniform)"),
    ("glorot_normal", "variance_scaling(mode=fan_avg)"),
    ("he_uniform", "variance_scaling(scale=2, distribution=uniform)"),
    ("he_normal", "variance_scaling(scale=2)"),
    ("lecun_uniform", "variance_scaling(distribution=uniform)"),
    ("lecun_normal", "variance_scaling"),
])
def test_named_initializers_are_cases_of_variance_scaling(named, call):
    """As Keras defines them: the same draws, the same numbers."""
    np.testing.assert_allclose(_one(named, CONV, seed=4), _one(call, CONV, seed=4), rtol=1e-6)


def test_truncated_normal_redraws_beyond_two_stddev():
    w = _one("truncated_normal(mean=0.5, stddev=0.1)", dtype=np.float64)
    assert w.min() >= 0.3 and w.max() <= 0.7 and w.min() < 0.31 and w.max() > 0.69
    assert w.mean() == pytest.approx(0.5, abs=1e-3)
    assert w.std() == pytest.approx(0.1 * TRUNC, rel=0.01)     # Keras: stddev before truncation
    d = _one("truncated_normal", dtype=np.float64)
    assert np.abs(d).max() <= 0.1 and d.std() == pytest.approx(0.05 * TRUNC, rel=0.01)


@pytest.mark.parametrize("shape", [(20, 8), (8, 20), (12, 12), (3, 3, 4, 8), (2, 2, 2, 40)])
def test_orthogonal(shape):
    w = _one("orthogonal", shape, dtype=np.float64)
    m = w.reshape(-1, shape[-1])
    small = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(small, np.eye(min(m.shape)), atol=1e-12)
    g = _one("orthogonal(gain=2)", shape, dtype=np.float64)
    np.testing.assert_allclose(g, 2 * w, rtol=1e-12)       # the same draw, times gain
    assert _one("orthogonal", shape).dtype == np.float32


def _model(init):
    return f"model m {{\n  input x: f32[6]\n  dense h(5, init={init})\n}}\n"


def test_initializers_in_a_program():
    p = nncompile.compile(_model("variance_scaling(2.0, mode=fan_out, distribution=uniform)"))
    layer = p.ast.model.layers[0]
    assert layer.args["init"] == "variance_scaling(scale=2, mode=fan_out, distribution=uniform)"
    w = p.init_params(0)["h.weight"]
    assert np.abs(w).max() <= math.sqrt(3 * 2 / 5) and w.std() > 0
    assert nncompile.compile(_model("variance_scaling(1, mode=fan_in)")).ast.model.layers[0].args["init"] == \
        "variance_scaling"           # every argument its default: the bare name
    w = nncompile.compile(_model("orthogonal")).init_params(0)["h.weight"]
    np.testing.assert_allclose(w.T @ w, np.eye(5), atol=1e-6)
    p = nncompile.compile(_model("truncated_normal(stddev=0.02)"))
    assert p.ast.model.layers[0].args["init"] == "truncated_normal(stddev=0.02)"
    assert np.abs(p.init_params(0)["h.weight"]).max() <= 0.04


@pytest.mark.parametrize("init, message", [
    ("variance_scaling(mode=fan_sideways)", "unknown mode 'fan_sideways'"),
    ("variance_scaling(scale=0)", "scale"),
    ("lecun_normal(1)", "initializer lecun_normal takes no arguments"),
    ("truncated_normal(stddev=-1)", "stddev"),
    ("lecun", "unknown initializer 'lecun'"),
])
def test_initializer_arguments_are_checked(init, message):
    with pytest.raises(CompileError, match=message) as e:
        nncompile.compile(_model(init))
    assert e.value.loc.line == 3
