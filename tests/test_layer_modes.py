"""Dropout and batch norm in training and inference mode."""
import numpy as np
import pytest

import nncompile
from nncompile.backends.numpy.codegen import generate
from nncompile.ir.graph import Graph
from nncompile.ir.interpret import interpret


def _mask_graph(rate, stream=0):
    g = Graph("t")
    x = g.input("x", ("B", 500))
    rng = g.input("rng", (2,), "i64")
    g.output("m", g.emit("dropout_mask", x, rng, rate=rate, stream=stream))
    return g


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_mask_drops_the_right_fraction_and_rescales(rate):
    g = _mask_graph(rate)
    x = np.ones((40, 500), np.float32)
    m = interpret(g, {"x": x, "rng": np.array([7, 1])})["m"]
    assert set(np.unique(m)) <= {0.0, np.float32(1 / (1 - rate))}
    assert abs((m == 0).mean() - rate) < 0.01
    assert abs(m.mean() - 1.0) < 0.03  # inverted dropout keeps the expectation


def test_dropout_mask_is_a_function_of_seed_step_and_layer():
    g, g2 = _mask_graph(0.5), _mask_graph(0.5, stream=1)
    x = np.ones((4, 500), np.float32)
    run = lambda gr, s, t: interpret(gr, {"x": x, "rng": np.array([s, t])})["m"]
    assert np.array_equal(run(g, 1, 1), run(g, 1, 1))
    assert not np.array_equal(run(g, 1, 1), run(g, 1, 2))
    assert not np.array_equal(run(g, 1, 1), run(g, 2, 1))
    assert not np.array_equal(run(g, 1, 1), run(g2, 1, 1))
    # the generated code draws exactly the same mask as the reference
    assert np.array_equal(generate(g)({"x": x, "rng": np.array([1, 1])})["m"], run(g, 1, 1))


SRC = """
model m {{
  input x: f32[5]
  dense h(16, relu)
  {extra}
  dense o(3, softmax)
}}
train {{
  loss = sparse_categorical_crossentropy
  optimizer = sgd(lr=0.1)
}}
"""


def test_dropout_is_off_in_inference_and_in_loss_and_grads():
    with_drop = nncompile.compile(SRC.format(extra="dropout d(0.5)"))
    without = nncompile.compile(SRC.format(extra=""))
    params = without.init_params(0)
    x = np.random.default_rng(0).normal(size=(9, 5)).astype(np.float32)
    y = np.arange(9) % 3
    np.testing.assert_array_equal(with_drop.predict(params, x), without.predict(params, x))
    assert with_drop.loss_and_grads(params, x, y)[0] == without.loss_and_grads(params, x, y)[0]
    # ...and on in training: the step's loss differs from the dropout-free loss
    tr = with_drop.trainer(seed=0, params=params)
    assert tr.step(x, y) != pytest.approx(without.loss_and_grads(params, x, y)[0], rel=1e-6)


def test_batchnorm_uses_batch_statistics_in_training_and_running_ones_in_inference():
    prog = nncompile.compile(SRC.format(extra="batchnorm bn"))
    params = prog.init_params(0)
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(64, 5)) * 3 + 2).astype(np.float32)
    y = rng.integers(0, 3, size=64)
    tr = prog.trainer(seed=0, params=params)
    before = tr.host("state")
    assert np.all(before["bn.moving_mean"] == 0) and np.all(before["bn.moving_variance"] == 1)
    tr.step(x, y)
    h = np.maximum(x @ params["h.weight"] + params["h.bias"], 0)
    after = tr.host("state")
    np.testing.assert_allclose(after["bn.moving_mean"], 0.01 * h.mean(0), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(after["bn.moving_variance"], 0.99 + 0.01 * h.var(0), rtol=1e-4)
    # inference with fresh running stats (0, 1) is (h - 0) / sqrt(1 + eps) * gamma + beta
    z = (h / np.sqrt(1 + 1e-3)) @ params["o.weight"] + params["o.bias"]
    p = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(prog.predict(params, x), p / p.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)
