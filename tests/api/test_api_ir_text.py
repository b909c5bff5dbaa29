"""The IR text round-trips: parse(print(g)) prints the same text, over graphs
that hypothesis builds with the graph API (before, during and after the pass
pipeline, differentiated or not); and the parsed graph compiles to the same
results as the jitted function. Also: the `meta` lines that carry pending
pass instructions (differentiate, optimizer, lr_mult) of `.nn` graphs."""
import math

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

import nncompile as nc
from nncompile.ir.parser import parse_graph
from nncompile.ir.printer import print_graph
from nncompile.ir.verify import verify
from nncompile.passes.manager import REQUIRED, run_passes

N, M = 5, 3

CONSTS = st.one_of(st.sampled_from([0.0, -0.0, 1.0, 0.5, -2.0, 1e-30, 3.4e38, math.inf, -math.inf, math.nan]),
                   st.floats(allow_nan=False, allow_infinity=False, width=32))


def _unary(draw, x):
    k = draw(st.sampled_from(["relu", "sigmoid", "tanh", "softplus", "square", "abs", "neg", "gelu", "leaky",
                              "clip", "softmax", "log_softmax", "scale", "pow", "exp"]))
    if k == "neg":
        return -x
    if k == "leaky":
        return nc.leaky_relu(x, draw(st.sampled_from([0.1, 0.3])))
    if k == "clip":
        return nc.clip(x, -0.5, 0.75)
    if k == "scale":
        return x * draw(CONSTS) + draw(CONSTS)
    if k == "pow":
        return x ** draw(st.integers(-2, 4))
    if k == "exp":
        return nc.exp(nc.clip(x, -5.0, 5.0))
    if k in ("softmax", "log_softmax") and not x.shape:
        return x
    return getattr(nc, k)(x)


def _step(draw, pool):
    x = draw(st.sampled_from(pool))
    kind = draw(st.sampled_from(["unary", "unary", "binary", "reduce", "move", "where", "matmul", "compare"]))
    if kind == "unary":
        return _unary(draw, x)
    if kind == "binary":
        same = [y for y in pool if y.shape == x.shape or y.shape == x.shape[1:] or y.shape == ()]
        y = draw(st.sampled_from(same))
        op = draw(st.sampled_from(["+", "-", "*", "max", "min"]))
        return {"+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y, "max": lambda: nc.maximum(x, y),
                "min": lambda: nc.minimum(x, y)}[op]()
    if kind == "reduce" and x.ndim:
        axis = draw(st.sampled_from([None, -1, 0] if x.ndim > 1 else [None, 0]))
        op = draw(st.sampled_from(["sum", "mean", "max", "min", "logsumexp"]))
        return getattr(nc, op)(x, axis=axis, keepdims=draw(st.booleans()))
    if kind == "move" and x.ndim == 2 and x.shape[1] > 1:
        op = draw(st.sampled_from(["slice", "concat", "pad", "reshape", "T"]))
        if op == "slice":
            return x[:, 1:]
        if op == "concat":
            return nc.concatenate([x, x[:, :1]], axis=1)
        if op == "pad":
            return nc.pad(x, ((0, 0), (1, 0)))
        if op == "T" and x.shape[0] != nc.B:
            return x.T
        return x.reshape(nc.B if nc.B in x.shape else -1, x.shape[1], 1)[:, :, 0]
    if kind == "where":
        return nc.where(x > 0, x, x * 0.5)
    if kind == "compare":
        return (x >= 0.25) + (x != 0)
    if kind == "matmul" and x.ndim == 2 and x.shape[1] == N:
        return x @ pool[1]
    return x


def program(draw):
    """A function of (x, w, v, y) whose body hypothesis draws while it is traced."""
    n = draw(st.integers(1, 8))
    grad = draw(st.booleans())
    picks = draw(st.lists(st.integers(0, 100), min_size=1, max_size=3))

    def body(x, w, v, y):
        pool = [x, w, v]
        for _ in range(n):
            pool.append(_step(draw, pool))
        outs = [pool[i % len(pool)] for i in picks]
        loss = nc.mean(nc.sparse_categorical_crossentropy(y, x @ w + v, from_logits=True))
        for o in outs:
            loss = loss + nc.mean(o * 0.01)
        return loss, tuple(outs)

    def fn(x, w, v, y):
        if grad:
            (value, outs), gw = nc.value_and_grad(body, argnums=(1, 2), has_aux=True)(x, w, v, y)
            return value, outs, gw
        return body(x, w, v, y)

    return fn


SPECS = (nc.f32[nc.B, N], nc.f32[N, M], nc.f32[M], nc.i64[nc.B])


def _same_text(g):
    text = print_graph(g)
    g2 = parse_graph(text)
    verify(g2)
    assert print_graph(g2) == text
    return g2


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data(), st.integers(0, 2 ** 16))
def test_printed_graphs_parse_back_to_the_same_text(data, seed):
    step = nc.jit(program(data.draw), *SPECS)          # traced once: the draws happen here
    _same_text(step.lowered)
    for _, g, _ in step.pass_log:
        _same_text(g)
    _same_text(run_passes(step.lowered, pipeline=REQUIRED)[0])
    # the parsed final graph compiles, and computes what the jitted function does
    rng = np.random.default_rng(seed)
    args = (rng.standard_normal((4, N)).astype(np.float32), rng.standard_normal((N, M)).astype(np.float32),
            rng.standard_normal(M).astype(np.float32), rng.integers(0, M, 4))
    want = step(*args)
    got = nc.compile_graph(nc.parse_ir(step.ir()))(*args)
    flat_w, _ = nc.api.tree.flatten(want)
    flat_g, _ = nc.api.tree.flatten(got)
    assert len(flat_w) == len(flat_g)
    for (_, a), (_, b) in zip(flat_w, flat_g):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_pending_pass_instructions_round_trip_as_meta_lines():
    src = """model m {
  input x: f32[6]
  dense h(4, relu, lr_mult=0.5)
  dense out(3, softmax)
}
train {
  data = synthetic.classification(samples=32, features=6, classes=3, seed=0)
  loss = sparse_categorical_crossentropy
  optimizer = rmsprop(lr=0.01, momentum=0.5)
  epochs = 1
}
"""
    prog = nc.compile(src)
    g = prog.graphs.lowered["train_step"]
    text = print_graph(g)
    assert 'meta differentiate="loss"' in text and 'meta optimizer="rmsprop" {lr=0.01' in text
    assert 'meta lr_mult {"h.weight"=0.5, "h.bias"=0.5}' in text
    g2 = _same_text(g)
    assert g2.meta["optimizer"][:2] == g.meta["optimizer"][:2] and g2.meta["lr_mult"] == g.meta["lr_mult"]
    a, _ = run_passes(g)
    b, _ = run_passes(g2)
    assert print_graph(a) == print_graph(b)
    assert "meta " not in print_graph(a)       # done: no instruction left


def test_a_parsed_nn_graph_compiles_and_returns_its_outputs_by_name():
    prog = nc.compile("examples/digits.nn")
    params = prog.init_params(seed=0)
    text = print_graph(prog.graphs.predict)
    f = nc.compile_graph(text)
    x = np.random.default_rng(0).random((5, 64)).astype(np.float32)
    state = prog.init_state()
    out = f(x=x, **params, **{k: v for k, v in state.items() if k in f.graph.inputs})
    assert set(out) == {"y_hat"}
    np.testing.assert_allclose(out["y_hat"], prog.predict(params, x), rtol=1e-5, atol=1e-7)
