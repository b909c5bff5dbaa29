"""Every differentiable op's gradient rule against two oracles: PyTorch autograd
(float64) and central finite differences, over shapes drawn by hypothesis. Both
the reference interpreter and the generated NumPy code are checked. Without
torch the finite-difference half still runs; the torch half skips."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from extras import needs_torch, torch
from nncompile.backends.numpy.codegen import generate
from nncompile.ir.graph import Graph
from nncompile.ir.interpret import interpret
from nncompile.ir.ops import OPS
from nncompile.ir.verify import verify
from nncompile.passes.autodiff import differentiate

T = torch
F = torch.nn.functional if torch is not None else None

# every test runs once per oracle; the torch one skips where torch is missing
ORACLES = [pytest.param("torch", marks=needs_torch), "finite_differences"]
oracles = pytest.mark.parametrize("oracle", ORACLES)


def _pos(rng, shape):
    return rng.uniform(0.5, 2.0, size=shape)


def _any(rng, shape):
    # keep away from kinks (relu/abs/clip at 0) so finite differences are valid
    x = rng.normal(size=shape)
    return np.where(np.abs(x) < 0.05, 0.3, x)


# op -> (input makers, attrs, torch function)
UNARY = {
    "neg": (_any, {}, lambda a: -a),
    "exp": (_any, {}, lambda a: T.exp(a)),
    "log": (_pos, {}, lambda a: T.log(a)),
    "sqrt": (_pos, {}, lambda a: T.sqrt(a)),
    "square": (_any, {}, lambda a: T.square(a)),
    "abs": (_any, {}, lambda a: T.abs(a)),
    "relu": (_any, {}, lambda a: T.relu(a)),
    "sigmoid": (_any, {}, lambda a: T.sigmoid(a)),
    "tanh": (_any, {}, lambda a: T.tanh(a)),
    "softplus": (_any, {}, lambda a: F.softplus(a)),
    "leaky_relu": (_any, {"alpha": 0.2}, lambda a: F.leaky_relu(a, 0.2)),
    "gelu": (_any, {}, lambda a: F.gelu(a)),
    "elu": (_any, {"alpha": 0.7}, lambda a: F.elu(a, 0.7)),
    "silu": (_any, {}, lambda a: F.silu(a)),
    "softsign": (_any, {}, lambda a: F.softsign(a)),
    "gelu_tanh": (_any, {}, lambda a: F.gelu(a, approximate="tanh")),
    "clip": (_any, {"lo": -0.5, "hi": 0.7}, lambda a: T.clamp(a, -0.5, 0.7)),
    "softmax": (_any, {}, lambda a: T.softmax(a, -1)),
    "log_softmax": (_any, {}, lambda a: T.log_softmax(a, -1)),
}
BINARY = {
    "add": (_any, _any, lambda a, b: a + b),
    "sub": (_any, _any, lambda a, b: a - b),
    "mul": (_any, _any, lambda a, b: a * b),
    "div": (_any, _pos, lambda a, b: a / b),
    "maximum": (_any, _any, lambda a, b: T.maximum(a, b)),
}


def _loss_graph(g: Graph, out, r_shape):
    """loss = sum(out * R) for a random R: every element of `out` gets a weight."""
    R = g.input("R", r_shape, "f64")
    loss = g.emit("sum", g.emit("mul", out, R), axes=tuple(range(len(out.shape))), keepdims=False)
    g.output("loss", loss)
    return loss


def _finite_differences(g, feed, wrt, got, rng, what, eps=1e-6, coords=8):
    """Central differences of the graph's "loss" on a few coordinates of each
    input in `wrt`, against the gradients in `got` (interpreter and generated code)."""
    def loss_at(vals):
        return float(interpret(g, vals)["loss"])
    for k in wrt:
        v = np.asarray(feed[k], np.float64)
        flat = v.reshape(-1)
        for idx in rng.choice(flat.size, size=min(coords, flat.size), replace=False):
            plus, minus = flat.copy(), flat.copy()
            plus[idx] += eps
            minus[idx] -= eps
            fd = (loss_at({**feed, k: plus.reshape(v.shape).astype(feed[k].dtype)})
                  - loss_at({**feed, k: minus.reshape(v.shape).astype(feed[k].dtype)})) / (2 * eps)
            for name, res in got.items():
                assert abs(fd - res[f"d{k}"].reshape(-1)[idx]) <= 1e-5 * max(1.0, abs(fd)), \
                    (what, name, k, idx, fd, res[f"d{k}"].reshape(-1)[idx])


def _check(g: Graph, out, inputs: dict, torch_fn, rng, oracle):
    """loss = sum(out * R); compare d loss / d inputs (interpreter and generated
    NumPy code) with the oracle: torch autograd or central finite differences."""
    r = rng.normal(size=tuple(int(d) for d in np.shape(interpret_out(g, out, inputs))))
    loss = _loss_graph(g, out, out.shape)
    wrt = [g.inputs[k] for k in inputs]
    for k, gn in differentiate(g, loss, wrt).items():
        g.output(f"d{k}", gn)
    feed = {**inputs, "R": r}
    ref = interpret(g, feed)
    gen = generate(g)(feed)
    for k in inputs:
        np.testing.assert_allclose(gen[f"d{k}"], ref[f"d{k}"], rtol=1e-10, atol=1e-12, err_msg=f"numpy vs interp d{k}")
    if oracle == "torch":
        tin = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in inputs.items()}
        tl = (torch_fn(*tin.values()) * torch.tensor(r)).sum()
        tl.backward()
        for k in inputs:
            want = tin[k].grad.numpy()
            np.testing.assert_allclose(ref[f"d{k}"], want, rtol=1e-7, atol=1e-9, err_msg=f"interp d{k}")
            np.testing.assert_allclose(gen[f"d{k}"], want, rtol=1e-7, atol=1e-9, err_msg=f"numpy d{k}")
    else:
        _finite_differences(g, feed, inputs, {"interp": ref, "numpy": gen}, rng, out.op)


def interpret_out(g, out, inputs):
    g.output("_probe", out)
    v = interpret(g, inputs)["_probe"]
    del g.outputs["_probe"]
    return v


shapes2 = st.tuples(st.integers(1, 5), st.integers(1, 6))


@oracles
@pytest.mark.parametrize("name", sorted(UNARY))
@settings(max_examples=8, deadline=None)
@given(shape=shapes2, seed=st.integers(0, 2**16))
def test_unary_gradients(name, oracle, shape, seed):
    rng = np.random.default_rng(seed)
    make, attrs, tfn = UNARY[name]
    g = Graph("t", "f64")
    a = g.input("a", shape)
    _check(g, g.emit(name, a, **attrs), {"a": make(rng, shape)}, tfn, rng, oracle)


@oracles
@pytest.mark.parametrize("name", sorted(BINARY))
@settings(max_examples=10, deadline=None)
@given(shape=shapes2, bshape_kind=st.sampled_from(["same", "row", "row1", "col", "scalar"]),
       seed=st.integers(0, 2**16))
def test_binary_gradients_with_broadcasting(name, oracle, shape, bshape_kind, seed):
    rng = np.random.default_rng(seed)
    m, n = shape
    bshape = {"same": (m, n), "row": (n,), "row1": (1, n), "col": (m, 1), "scalar": ()}[bshape_kind]
    ma, mb, tfn = BINARY[name]
    g = Graph("t", "f64")
    a, b = g.input("a", shape), g.input("b", bshape)
    _check(g, g.emit(name, a, b), {"a": ma(rng, shape), "b": mb(rng, bshape)}, tfn, rng, oracle)


@oracles
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
@settings(max_examples=6, deadline=None)
@given(m=st.integers(1, 5), k=st.integers(1, 5), n=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_matmul_gradients(ta, tb, oracle, m, k, n, seed):
    rng = np.random.default_rng(seed)
    sa = (k, m) if ta else (m, k)
    sb = (n, k) if tb else (k, n)
    g = Graph("t", "f64")
    a, b = g.input("a", sa), g.input("b", sb)
    tfn = lambda x, y: (x.T if ta else x) @ (y.T if tb else y)
    _check(g, g.emit("matmul", a, b, ta=ta, tb=tb), {"a": _any(rng, sa), "b": _any(rng, sb)}, tfn, rng, oracle)


@oracles
@pytest.mark.parametrize("op", ["sum", "mean"])
@settings(max_examples=8, deadline=None)
@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3)),
       axes=st.sampled_from([(0,), (1,), (-1,), (0, 2), (0, 1, 2)]), keepdims=st.booleans(),
       seed=st.integers(0, 2**16))
def test_reduction_gradients(op, oracle, shape, axes, keepdims, seed):
    rng = np.random.default_rng(seed)
    g = Graph("t", "f64")
    a = g.input("a", shape)
    tfn = (lambda x: x.sum(dim=axes, keepdim=keepdims)) if op == "sum" else (lambda x: x.mean(dim=axes, keepdim=keepdims))
    _check(g, g.emit(op, a, axes=axes, keepdims=keepdims), {"a": _any(rng, shape)}, tfn, rng, oracle)


def _cross_entropy_rows(z, labels):
    """-log softmax(z)[y] per row, in float64 NumPy."""
    m = z.max(-1, keepdims=True)
    lse = np.log(np.exp(z - m).sum(-1)) + m[:, 0]
    return lse - z[np.arange(len(labels)), labels]


@oracles
@settings(max_examples=8, deadline=None)
@given(b=st.integers(1, 6), c=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_take_label_of_log_softmax_gradient(oracle, b, c, seed):
    """The sparse cross-entropy path: -take_label(log_softmax(z), y)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, size=b)
    g = Graph("t", "f64")
    z = g.input("z", (b, c))
    y = g.input("y", (b,), "i64")
    out = g.emit("neg", g.emit("take_label", g.emit("log_softmax", z), y))
    # y is an input but not differentiated: pass it alongside
    _loss_graph(g, out, (b,))
    g.output("per_row", out)
    g.output("dz", differentiate(g, g.outputs["loss"], [z])["z"])
    feed = {"z": _any(rng, (b, c)), "y": labels, "R": rng.normal(size=(b,))}
    got, gen = interpret(g, feed), generate(g)(feed)
    np.testing.assert_allclose(gen["dz"], got["dz"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["per_row"], _cross_entropy_rows(feed["z"], labels), rtol=1e-10, atol=1e-12)
    if oracle == "torch":
        tz = torch.tensor(feed["z"], requires_grad=True)
        ce = torch.nn.functional.cross_entropy(tz, torch.tensor(labels), reduction="none")
        (ce * torch.tensor(feed["R"])).sum().backward()
        np.testing.assert_allclose(got["dz"], tz.grad.numpy(), rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(gen["dz"], tz.grad.numpy(), rtol=1e-7, atol=1e-10)
    else:
        _finite_differences(g, feed, ["z"], {"interp": got, "numpy": gen}, rng, "take_label")


@oracles
@settings(max_examples=8, deadline=None)
@given(b=st.integers(1, 6), c=st.integers(2, 5), seed=st.integers(0, 2**16), scale=st.sampled_from([1.0, 50.0]))
def test_fused_softmax_xent_gradient(oracle, b, c, seed, scale):
    """The fused op and its fused gradient rule, also on large logits."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, size=b)
    z = _any(rng, (b, c)) * scale
    g = Graph("t", "f64")
    zn = g.input("z", (b, c))
    yn = g.input("y", (b,), "i64")
    out = g.emit("softmax_xent", zn, yn)
    loss = _loss_graph(g, out, (b,))
    g.output("per_row", out)
    g.output("dz", differentiate(g, loss, [zn])["z"])
    feed = {"z": z, "y": labels, "R": rng.normal(size=(b,))}
    results = {"interp": interpret(g, feed), "numpy": generate(g)(feed)}
    for res in results.values():
        np.testing.assert_allclose(res["per_row"], _cross_entropy_rows(z, labels), rtol=1e-10, atol=1e-12)
    if oracle == "torch":
        tz = torch.tensor(z, requires_grad=True)
        ce = torch.nn.functional.cross_entropy(tz, torch.tensor(labels), reduction="none")
        (ce * torch.tensor(feed["R"])).sum().backward()
        for res in results.values():
            np.testing.assert_allclose(res["per_row"], ce.detach().numpy(), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(res["dz"], tz.grad.numpy(), rtol=1e-8, atol=1e-12)
    else:
        _finite_differences(g, feed, ["z"], results, rng, "softmax_xent")


@oracles
def test_reshape_gradient(oracle):
    rng = np.random.default_rng(0)
    g = Graph("t", "f64")
    a = g.input("a", ("B", 2, 3))
    _check(g, g.emit("reshape", a, shape=("B", 6)), {"a": _any(rng, (4, 2, 3))},
           lambda x: x.reshape(4, 6), rng, oracle)


# cast chains: (input dtype, the dtypes it is cast to in turn); f32 steps round to float32
CAST_CHAINS = [("f32", ["f64"]), ("f64", ["f32", "f64"]), ("f32", ["f64", "f32", "f64"]),
               ("f64", ["f32", "f64", "f32", "f64"])]


def _cast_chain(g, a, b, chain):
    """cast(a) through `chain`, with an op in each dtype along the way:
    tanh(cast(exp(cast(a) * b)))... The last cast is to f64."""
    h = a
    for i, dt in enumerate(chain):
        h = g.emit("cast", h, dtype=dt)
        h = g.emit("mul", h, g.emit("cast", b, dtype=dt)) if i == 0 else g.emit("tanh" if i % 2 else "exp", h)
    return h


def _torch_cast_chain(ta, tb, chain):
    to = {"f32": torch.float32, "f64": torch.float64}
    h = ta
    for i, dt in enumerate(chain):
        h = h.to(to[dt])
        h = h * tb.to(to[dt]) if i == 0 else (torch.tanh(h) if i % 2 else torch.exp(h))
    return h


@oracles
@pytest.mark.parametrize("src,chain", CAST_CHAINS, ids=["-".join([c[0]] + c[1]) for c in CAST_CHAINS])
@settings(max_examples=8, deadline=None)
@given(shape=shapes2, seed=st.integers(0, 2**16))
def test_cast_gradients(src, chain, oracle, shape, seed):
    """The gradient of a cast is the incoming gradient cast back to the input's
    dtype: through f32 -> f64 -> f32 chains the gradient has each input's dtype
    and the value of the same chain in float64 (up to float32 rounding)."""
    rng = np.random.default_rng(seed)
    np_dt = {"f32": np.float32, "f64": np.float64}
    g = Graph("t", "f64")
    a = g.input("a", shape, src)              # the input of the chain, in `src`
    b = g.input("b", (shape[1],), "f64")      # a float64 parameter, cast into the chain
    out = _cast_chain(g, a, b, chain)
    assert [n.dtype for n in g.nodes if n.op == "cast"][-1] == "f64" and out.dtype == "f64"
    loss = _loss_graph(g, out, shape)
    grads = differentiate(g, loss, [a, b])
    assert (grads["a"].dtype, grads["b"].dtype) == (src, "f64")
    g.output("da", grads["a"])
    g.output("db", grads["b"])
    verify(g)
    feed = {"a": (rng.normal(size=shape) * 0.5).astype(np_dt[src]), "b": rng.normal(size=shape[1]) * 0.5,
            "R": rng.normal(size=shape)}
    results = {"interp": interpret(g, feed), "numpy": generate(g)(feed)}
    for res in results.values():
        assert res["da"].dtype == np_dt[src] and res["db"].dtype == np.float64
    # float32 steps round: relative to the largest gradient, float32 precision
    f32 = "f32" in chain or src == "f32"
    rtol = 2e-6 if f32 else 1e-10

    def close(got, want, what):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=what)

    if oracle == "torch":
        ta = torch.tensor(feed["a"], requires_grad=True)
        tb = torch.tensor(feed["b"], requires_grad=True)
        (_torch_cast_chain(ta, tb, chain) * torch.tensor(feed["R"])).sum().backward()
        assert ta.grad.dtype == {"f32": torch.float32, "f64": torch.float64}[src]
        for name, res in results.items():
            close(res["da"], ta.grad.numpy(), f"{name} da")
            close(res["db"], tb.grad.numpy(), f"{name} db")
    else:
        # finite differences of the same chain computed all in float64 (the casts
        # to f32 would round the differences away): the gradient is that
        # function's, up to the chain's float32 rounding
        g64 = Graph("t64", "f64")
        a64, b64 = g64.input("a", shape, "f64"), g64.input("b", (shape[1],), "f64")
        _loss_graph(g64, _cast_chain(g64, a64, b64, ["f64"] * len(chain)), shape)
        feed64 = {**feed, "a": feed["a"].astype(np.float64)}
        fd = {}
        for k in ("a", "b"):
            v = feed64[k]
            d = np.zeros(v.size)
            for i in range(v.size):
                plus, minus = v.reshape(-1).copy(), v.reshape(-1).copy()
                plus[i] += 1e-6
                minus[i] -= 1e-6
                lp = float(interpret(g64, {**feed64, k: plus.reshape(v.shape)})["loss"])
                lm = float(interpret(g64, {**feed64, k: minus.reshape(v.shape)})["loss"])
                d[i] = (lp - lm) / 2e-6
            fd[k] = d.reshape(v.shape)
        for name, res in results.items():
            close(res["da"].astype(np.float64), fd["a"], f"{name} da")
            close(res["db"], fd["b"], f"{name} db")


def test_every_op_with_a_gradient_rule_is_tested():
    tested = set(UNARY) | set(BINARY) | {"matmul", "sum", "mean", "take_label", "reshape", "softmax_xent", "cast"}
    tested |= {"round_to"}    # tests/passes/test_mixed_precision.py
    tested |= {"conv2d", "maxpool2d", "avgpool2d"}    # tests/ir/test_window_gradients.py
    tested |= {"concat", "slice", "pad"}
    tested |= {"max", "transpose", "where", "unreduce"}
    tested |= {"shard_mean"}   # over workers: tests/runtime/test_distributed.py (2 workers against 1)
    no_grad_needed = {"input", "const", "sign", "onehot", "argmax", "equal", "greater", "greater_equal",
                      "not_equal", "dropout_mask"}
    with_rules = {k for k, d in OPS.items() if d.grad is not None}
    assert with_rules - tested - no_grad_needed == set()


@oracles
@settings(max_examples=15, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_concat_slice_pad_gradients(oracle, axis, a, b, seed):
    """concat's adjoint is slicing, slice's is padding: against torch and finite differences."""
    rng = np.random.default_rng(seed)
    shape = [2, 3, 4, 5]
    sa, sb = list(shape), list(shape)
    sa[axis], sb[axis] = a, b
    g = Graph("t", "f64")
    x, y = g.input("a", ("B",) + tuple(sa[1:])), g.input("b", ("B",) + tuple(sb[1:]))
    cat = g.emit("concat", x, y, axis=axis)
    cut = g.emit("slice", cat, axis=axis, start=1, stop=a + b)
    out = g.emit("pad", cut, axis=axis, before=2, after=1)
    feed = {"a": _any(rng, sa), "b": _any(rng, sb)}
    tcut = lambda t: torch.narrow(t, axis, 1, a + b - 1)  # noqa: E731

    def tfn(ta, tb):
        c = tcut(torch.cat([ta, tb], dim=axis))
        pads = [0, 0] * (3 - axis) + [2, 1]
        return torch.nn.functional.pad(c, pads)
    _check(g, out, feed, tfn, rng, oracle)


@needs_torch
@settings(max_examples=8, deadline=None)
@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3)),
       axes=st.sampled_from([(0,), (1,), (-1,), (0, 2), (0, 1, 2)]), keepdims=st.booleans(),
       ties=st.booleans(), seed=st.integers(0, 2**16))
def test_max_reduction_gradient(shape, axes, keepdims, ties, seed):
    """As torch.amax: the gradient is shared evenly by the maxima (ties drawn on purpose)."""
    rng = np.random.default_rng(seed)
    g = Graph("t", "f64")
    a = g.input("a", shape)
    x = rng.integers(0, 3, size=shape).astype(np.float64) if ties else _any(rng, shape)
    out = g.emit("max", a, axes=axes, keepdims=keepdims)
    tfn = lambda t: torch.amax(t, dim=axes, keepdim=keepdims)  # noqa: E731
    if ties:   # finite differences do not hold at a tie: compare with torch only
        _check_torch_only(g, out, {"a": x}, tfn, rng)
    else:
        _check(g, out, {"a": x}, tfn, rng, "torch")


@needs_torch
def test_maximum_gradient_splits_ties_as_torch():
    rng = np.random.default_rng(1)
    g = Graph("t", "f64")
    a, b = g.input("a", (3, 4)), g.input("b", (4,))
    x, y = rng.integers(0, 3, (3, 4)).astype(np.float64), rng.integers(0, 3, (4,)).astype(np.float64)
    _check_torch_only(g, g.emit("maximum", a, b), {"a": x, "b": y}, torch.maximum, rng)


@needs_torch
@pytest.mark.parametrize("perm", [(1, 0), (0, 2, 1), (2, 0, 1), (1, 2, 0)])
def test_transpose_gradient(perm):
    rng = np.random.default_rng(0)
    shape = (2, 3) if len(perm) == 2 else (2, 3, 4)
    g = Graph("t", "f64")
    a = g.input("a", shape)
    _check(g, g.emit("transpose", a, perm=perm), {"a": _any(rng, shape)}, lambda t: t.permute(*perm), rng,
           "torch")


@needs_torch
@settings(max_examples=10, deadline=None)
@given(kind=st.sampled_from(["same", "row", "col", "scalar"]), seed=st.integers(0, 2**16))
def test_where_gradient_with_broadcasting(kind, seed):
    rng = np.random.default_rng(seed)
    bshape = {"same": (3, 4), "row": (4,), "col": (3, 1), "scalar": ()}[kind]
    g = Graph("t", "f64")
    c, a, b = g.input("c", (3, 1) if kind == "row" else (4,)), g.input("a", (3, 4)), g.input("b", bshape)
    cond = (rng.random((3, 1) if kind == "row" else (4,)) > 0.5).astype(np.float64)
    out = g.emit("where", c, a, b)
    tc = torch.tensor(cond) != 0
    feed = {"a": _any(rng, (3, 4)), "b": _any(rng, bshape)}
    g2 = g
    # the condition is an input too, but not differentiated: bind it as a constant feed
    _check_torch_only(g2, out, feed, lambda ta, tb: torch.where(tc, ta, tb), rng, extra={"c": cond})


def _check_torch_only(g, out, inputs, torch_fn, rng, extra=None):
    """loss = sum(out * R): d loss / d inputs by the interpreter and the NumPy code against torch."""
    extra = extra or {}
    shape = np.shape(interpret_out(g, out, {**inputs, **extra}))
    r = rng.normal(size=tuple(int(d) for d in shape))
    R = g.input("R", out.shape, "f64")
    loss = g.emit("sum", g.emit("mul", out, R), axes=tuple(range(len(out.shape))), keepdims=False)
    g.output("loss", loss)
    for k, gn in differentiate(g, loss, [g.inputs[k] for k in inputs]).items():
        g.output(f"d{k}", gn)
    feed = {**inputs, **extra, "R": r}
    tin = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in inputs.items()}
    (torch_fn(*tin.values()) * torch.tensor(r)).sum().backward()
    for res, what in ((interpret(g, feed), "interp"), (generate(g)(feed), "numpy")):
        for k in inputs:
            np.testing.assert_allclose(res[f"d{k}"], tin[k].grad.numpy(), rtol=1e-7, atol=1e-9,
                                       err_msg=f"{what} d{k}")


@needs_torch
@pytest.mark.parametrize("axes,keepdims,mean", [((), True, False), ((1,), False, False), ((0, 2), True, True),
                                                ((2,), False, True)])
def test_unreduce_gradient(axes, keepdims, mean):
    """unreduce broadcasts dy back over `axes` (a mean's share: / count); x gives only the shape."""
    rng = np.random.default_rng(0)
    xs = (2, 3, 4)
    ds = tuple(1 if k in axes else d for k, d in enumerate(xs)) if keepdims else \
        tuple(d for k, d in enumerate(xs) if k not in axes)
    if axes == ():
        ds = (3, 1)
    g = Graph("t", "f64")
    a, x = g.input("a", ds), g.input("x", xs)
    count = float(np.prod([xs[k] for k in axes])) if axes else 1.0

    def tfn(ta, tx):
        t = ta if keepdims or not axes else ta.reshape([1 if k in axes else d for k, d in enumerate(xs)])
        return t.expand(*xs) / (count if mean else 1.0) + 0 * tx
    out = g.emit("unreduce", a, x, axes=axes, keepdims=keepdims, mean=mean)
    _check_torch_only(g, out, {"a": _any(rng, ds)}, lambda ta: tfn(ta, torch.zeros(xs)), rng,
                      extra={"x": _any(rng, xs)})
