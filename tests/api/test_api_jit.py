"""nc.jit, compile_graph and the optimizers: calling conventions, checked
arguments, located tracing errors, IR and code dumps, and training steps
against the `.nn` trainer and a NumPy transcription of Keras's formulas."""
import ast
import inspect
import os

import numpy as np
import pytest

import nncompile as nc
from nncompile.ir.printer import print_graph

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
THIS = os.path.relpath(os.path.abspath(__file__))


def mlp_loss(x, y, w1, b1, w2, b2):
    h = nc.relu(x @ w1 + b1)
    return nc.mean(nc.sparse_categorical_crossentropy(y, h @ w2 + b2, from_logits=True))


SPECS = (nc.f32[nc.B, 20], nc.i64[nc.B], nc.f32[20, 16], nc.f32[16], nc.f32[16, 10], nc.f32[10])


def mlp_args(batch=8, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((batch, 20)).astype(np.float32), rng.integers(0, 10, batch),
            (rng.standard_normal((20, 16)) * 0.3).astype(np.float32), np.zeros(16, np.float32),
            (rng.standard_normal((16, 10)) * 0.3).astype(np.float32), np.zeros(10, np.float32))


# --- calling ---------------------------------------------------------------------------------

def test_the_issue_example_round_trips_through_ir_text():
    f = nc.jit(mlp_loss, *SPECS)
    step = nc.jit(nc.value_and_grad(mlp_loss, argnums=(2, 3, 4, 5)), *SPECS)
    args = mlp_args()
    value, (gw1, gb1, gw2, gb2) = step(*args)
    assert isinstance(value, np.ndarray) and value.dtype == np.float32 and value.shape == ()
    np.testing.assert_allclose(value, f(*args), rtol=1e-6)
    assert gw1.shape == (20, 16) and gb2.shape == (10,)
    g = nc.parse_ir(step.ir())
    assert print_graph(g) == step.ir()
    h = nc.compile_graph(g)
    v2, grads2 = h(*args)
    np.testing.assert_array_equal(v2, value)
    for a, b in zip(grads2, (gw1, gb1, gw2, gb2)):
        np.testing.assert_array_equal(a, b)
    # by name, and from the text itself
    h2 = nc.compile_graph(step.ir())
    names = [n.attrs["name"] for n in h2.inputs]
    assert names == ["x", "y", "w1", "b1", "w2", "b2"]
    np.testing.assert_array_equal(h2(**dict(zip(names, args)))[0], value)


def test_one_compiled_step_serves_every_batch_size():
    f = nc.jit(mlp_loss, *SPECS)
    for b in (1, 3, 8, 3):
        args = mlp_args(b, seed=b)
        want = nc.jit(mlp_loss, *SPECS, optimize=False)(*args)
        np.testing.assert_allclose(f(*args), want, rtol=1e-6)


def test_outputs_keep_the_returned_structure():
    def fn(x, p):
        return {"sum": nc.sum(x), "parts": (x * 2, [x + p["a"], 3.0])}
    f = nc.jit(fn, nc.f32[nc.B, 2], {"a": nc.f32[2]})
    x = np.ones((3, 2), np.float32)
    out = f(x, {"a": np.array([1, 2], np.float32)})
    assert set(out) == {"sum", "parts"} and out["sum"] == 6
    np.testing.assert_array_equal(out["parts"][1][0], [[2, 3]] * 3)
    assert float(out["parts"][1][1]) == 3.0
    # the output names carry the structure: a compiled parse of the text rebuilds dicts and tuples
    back = nc.compile_graph(f.ir())(x, np.array([1, 2], np.float32))
    assert set(back) == {"sum", "parts"} and len(back["parts"]) == 2


def test_outputs_are_copies_not_views_of_the_step_buffers():
    f = nc.jit(lambda x: x * 2, nc.f32[nc.B, 3])
    a = f(np.ones((2, 3), np.float32))
    f(np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(a, 2)


BAD_CALLS = [
    (lambda a: (a[0][:, :19],) + a[1:], "argument 'x': expected f32[B,20], got an array of shape [8, 19]: dimension 1 "
                                        "is 19, expected 20"),
    (lambda a: a[:2] + (a[2].astype(np.float64),) + a[3:], "argument 'w1': expected dtype f32 (float32), got "
                                                           "float64"),
    (lambda a: (a[0], a[1][:5]) + a[2:], "the batch B is 8 in argument 'x' but 5 in argument 'y'"),
    (lambda a: (a[0][None],) + a[1:], "expected f32[B,20] (rank 2), got an array of shape [1, 8, 20] (rank 3)"),
    (lambda a: a[:5], "takes 6 arguments (as its specs), got 5"),
    (lambda a: (a[0], a[1].astype(np.float32)) + a[2:], "argument 'y': expected dtype i64 (int64), got float32"),
    (lambda a: (a[0], a[1], 1.0) + a[3:], "argument 'w1': expected an array f32[20,16], got the number 1.0"),
    (lambda a: (a[0][:0], a[1][:0]) + a[2:], "the batch B is 0"),
]


@pytest.mark.parametrize("k", range(len(BAD_CALLS)))
def test_calls_with_wrong_arrays_are_clear_value_errors(k):
    f = nc.jit(mlp_loss, *SPECS)
    change, msg = BAD_CALLS[k]
    with pytest.raises(ValueError) as e:
        f(*change(mlp_args()))
    assert msg in str(e.value)
    assert str(e.value).startswith("mlp_loss()")


def test_a_jitted_function_called_while_tracing_is_inlined():
    inner = nc.jit(lambda x: nc.relu(x) * 2, nc.f32[nc.B, 3])
    outer = nc.jit(lambda x: inner(x) + 1, nc.f32[nc.B, 3])
    np.testing.assert_array_equal(outer(np.array([[-1, 0, 2]], np.float32)), [[1, 1, 5]])


def test_lossless_casts_and_scalars_are_accepted():
    f = nc.jit(lambda x, y, s: nc.sum(x * s) + nc.sum(y), nc.f64[nc.B, 2], nc.i64[nc.B], nc.f32[()])
    assert f(np.ones((2, 2), np.float32), np.array([1, 2], np.int32), 2) == 11


def test_nested_arguments_are_checked_by_structure():
    f = nc.jit(lambda p: nc.sum(p["w"]) + nc.sum(p["b"]), {"w": nc.f32[2, 2], "b": nc.f32[2]})
    assert f({"b": np.ones(2, np.float32), "w": np.ones((2, 2), np.float32)}) == 6
    with pytest.raises(ValueError, match=r"has keys \['w'\], expected \['w', 'b'\] \(missing \['b'\]\)"):
        f({"w": np.ones((2, 2), np.float32)})
    with pytest.raises(ValueError, match="expected a dict"):
        f(np.ones(2))


def test_specs_may_be_arrays_and_mistakes_in_specs_are_type_errors():
    w = np.ones((3, 2), np.float32)
    f = nc.jit(lambda x, w: x @ w, nc.f32[nc.B, 3], w)
    assert f.graph.inputs["w"].shape == (3, 2)
    with pytest.raises(TypeError, match="missing a required argument: 'w'"):
        nc.jit(lambda x, w: x @ w, nc.f32[nc.B, 3])
    with pytest.raises(TypeError, match="argument w: expected a spec"):
        nc.jit(lambda x, w: x @ w, nc.f32[nc.B, 3], "w")
    with pytest.raises(TypeError, match="at most once"):
        nc.f32[nc.B, nc.B]


# --- errors while tracing point at the user's line ----------------------------------------------

def _line_of(fn, text):
    src, start = inspect.getsourcelines(fn)
    return start + next(i for i, l in enumerate(src) if text in l)


def test_a_shape_mistake_is_a_compile_error_at_the_call_site():
    def model(x, w):
        h = x @ w
        return nc.sum(h)
    with pytest.raises(nc.CompileError) as e:
        nc.jit(model, nc.f32[nc.B, 784], nc.f32[128, 10])
    err = e.value
    line = _line_of(model, "h = x @ w")
    assert err.loc.file == THIS and err.loc.line == line and err.loc.column == 13
    text = str(err)
    assert text.startswith(f"{THIS}:{line}:13: error: nc.matmul: the inner dimensions differ: f32[B,784] @ "
                           "f32[128,10] (784 != 128)")
    assert "        h = x @ w\n" in text and "^^^^^" in text            # the line, and a caret under x @ w
    assert "expected the last dimension of the left operand (784)" in text


TRACE_ERRORS = [
    (lambda x: x + nc.ones_like(x)[:, :3], "nc.add: shapes f32[B,4] and f32[B,3] do not broadcast: dimension -1 is "
                                           "4 in one and 3 in the other"),
    (lambda x: x.reshape(nc.B, 5), "nc.reshape: cannot reshape f32[B,4] to (B, 5): 4 values per sample"),
    (lambda x: x.reshape(2, 2), "must keep it"),
    (lambda x: nc.sum(x, axis=2), "nc.sum: axis 2 is out of range for f32[B,4] (rank 2)"),
    (lambda x: x[0], "axis 0 of f32[B,4] is the batch B: it cannot be indexed by an integer"),
    (lambda x: x[:, ::2], "slices with a step other than 1 are not supported"),
    (lambda x: nc.softmax(x) if x else x, "the truth value of a traced tensor f32[B,4] is not known"),
    (lambda x: nc.sparse_categorical_crossentropy(x, x), "the labels must be i64[B] (one class index per row of "
                                                         "f32[B,4]), got f32[B,4]"),
    (lambda x: nc.conv2d(x, x), "nc.conv2d needs a batch of images [B, H, W, C] (channels last), got f32[B,4]"),
    (lambda x: nc.where(x > 0, x, nc.zeros_like(x).T), "nc.where: shapes"),
    (lambda x: x + np.ones(4), "a NumPy array of shape [4] cannot be a constant"),
    (lambda x: nc.relu(np.ones(3)), "a NumPy array of shape [3] cannot be a constant"),
    (lambda x: nc.grad(lambda u: u * 2)(x), "the function must return a float scalar, it returned f32[B,4]"),
    (lambda x: nc.grad(lambda u: nc.sum(nc.grad(lambda v: nc.sum(nc.relu(v)))(u)))(x),
     "higher-order gradients"),
    (lambda x: nc.dropout(x, 0.5, x), "nc.dropout: the key is an i64[2] tensor (seed, step), got f32[B,4]"),
    (lambda x: float(x), "has no value while tracing"),
    (lambda x: nc.ir_op("clip", x, lo=0.0), "nc.ir_op('clip'): missing attribute(s) ['hi']"),
    (lambda x: nc.ir_op("rleu", x), "unknown op 'rleu'"),
]


@pytest.mark.parametrize("k", range(len(TRACE_ERRORS)))
def test_tracing_mistakes_are_located_compile_errors(k):
    fn, msg = TRACE_ERRORS[k]
    with pytest.raises(nc.CompileError) as e:
        nc.jit(fn, nc.f32[nc.B, 4])
    assert msg in str(e.value)
    assert e.value.loc is not None and e.value.loc.file == THIS, e.value.loc


def test_a_tensor_kept_from_an_earlier_trace_is_refused():
    kept = []
    nc.jit(lambda x: kept.append(x) or x * 2, nc.f32[3])
    with pytest.raises(nc.CompileError, match="another trace|finished trace"):
        nc.jit(lambda x: x + kept[0], nc.f32[3])
    with pytest.raises(nc.CompileError, match="works on traced tensors"):
        nc.relu(3.0)


def test_the_ir_names_the_users_lines():
    step = nc.jit(nc.value_and_grad(mlp_loss, argnums=2), *SPECS)
    text = step.ir()
    line = _line_of(mlp_loss, "h = nc.relu")
    assert f"{THIS}:{line}:" in text and "mlp_loss" in text
    # gradient nodes point at the forward node they differentiate
    assert any("relu_grad" in l and f":{line}:" in l for l in text.splitlines())


# --- dumps ---------------------------------------------------------------------------------------

def test_ir_after_passes_and_code():
    step = nc.jit(nc.value_and_grad(mlp_loss, argnums=(2, 3)), *SPECS)
    every = step.ir(after="all")
    assert every.startswith("// IR of mlp_loss after tracing\ngraph mlp_loss {")
    from nncompile.passes.manager import pass_names
    for name in pass_names():
        assert f"// IR of mlp_loss after pass '{name}' (" in every
    assert step.ir(after="dce") in every and step.ir(after="trace") in every
    assert step.ir(after="plan_memory") == step.ir()
    with pytest.raises(ValueError, match="did you mean 'cse'"):
        step.ir(after="cs")
    assert "def make(B):" in step.code() and "np.matmul" in step.code()
    unopt = nc.jit(mlp_loss, *SPECS, optimize=False)
    assert [n for n, _, _ in unopt.pass_log] == ["scale_loss", "autodiff", "unscale_grads", "mixed_precision",
                                                 "optimizer", "skip_nonfinite", "dce"]   # precision: no-ops here


# --- optimizers ----------------------------------------------------------------------------------

def _keras(name, hp, p, g, s, t):
    """One step of Keras's update, in NumPy float64: the oracle."""
    p, s = p.copy(), {k: v.copy() for k, v in s.items()}
    lr = hp["lr"]
    if name == "sgd":
        if hp.get("momentum", 0) > 0:
            s["velocity"] = hp["momentum"] * s["velocity"] - lr * g
            p = p + (hp["momentum"] * s["velocity"] - lr * g if hp.get("nesterov") else s["velocity"])
        else:
            p = p - lr * g
    elif name in ("adam", "adamw"):
        if name == "adamw":
            p = p - p * lr * hp["weight_decay"]
        s["m"] += (1 - hp["beta1"]) * (g - s["m"])
        s["v"] += (1 - hp["beta2"]) * (g * g - s["v"])
        lr_t = lr * np.sqrt(1 - hp["beta2"] ** t) / (1 - hp["beta1"] ** t)
        p = p - lr_t * s["m"] / (np.sqrt(s["v"]) + hp["eps"])
    else:
        s["v"] = hp["rho"] * s["v"] + (1 - hp["rho"]) * g * g
        inc = lr * g / np.sqrt(s["v"] + hp["eps"])     # Keras 3: eps inside the root
        if hp.get("momentum", 0) > 0:
            s["momentum"] = hp["momentum"] * s["momentum"] + inc
            inc = s["momentum"]
        p = p - inc
    return p, s


OPTIMIZERS = [("sgd", {"lr": 0.1}), ("sgd", {"lr": 0.1, "momentum": 0.9}),
              ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}), ("adam", {"lr": 0.01}),
              ("adam", {"learning_rate": 0.01, "beta_1": 0.5, "epsilon": 1e-3}),
              ("adamw", {"lr": 0.01, "weight_decay": 0.1}), ("rmsprop", {"lr": 0.01}),
              ("rmsprop", {"lr": 0.01, "momentum": 0.5})]


@pytest.mark.parametrize("name,hp", OPTIMIZERS)
def test_optimizers_follow_keras(name, hp):
    opt = getattr(nc.optim, name)(**hp)
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    state = opt.init(params)
    assert float(state["step"]) == 0 and set(state) == {"step", *opt.slots}

    def step(params, state, x):
        grads = nc.grad(lambda p: nc.sum(nc.tanh(x @ p["w"] + p["b"]) ** 2))(params)
        return opt.update(params, grads, state), grads

    f = nc.jit(step, params, state, nc.f64[nc.B, 3])
    oracle = {k: (v.copy(), {s: np.zeros_like(v) for s in opt.slots}) for k, v in params.items()}
    for t in range(1, 4):
        x = rng.standard_normal((4, 3))
        (params, state), grads = f(params, state, x)
        for k in params:
            p, s = _keras(name, opt.hparams, oracle[k][0], grads[k], oracle[k][1], t)
            oracle[k] = (p, s)
            np.testing.assert_allclose(params[k], p, rtol=1e-12, atol=1e-14, err_msg=f"{name} {k} step {t}")
        assert float(state["step"]) == t


def test_optimizer_arguments_are_checked_with_the_languages_rows():
    assert nc.optim.adam().hparams == {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "clipnorm": None,
                                      "global_clipnorm": None, "clipvalue": None}
    with pytest.raises(TypeError, match="unknown argument 'betta1'; did you mean 'beta1'"):
        nc.optim.adam(betta1=0.9)
    with pytest.raises(ValueError, match="lr=0 is out of range"):
        nc.optim.sgd(0)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        nc.optim.sgd(0.1, nesterov=True)


def test_a_learning_rate_tensor_overrides_the_rate():
    opt = nc.optim.sgd(0.1)
    p = {"w": np.ones(2)}
    f = nc.jit(lambda p, s, lr: opt.update(p, {"w": p["w"] * 0 + 1}, s, lr=lr), p, opt.init(p), nc.f64[()])
    new, _ = f(p, opt.init(p), 0.5)
    np.testing.assert_allclose(new["w"], 0.5)


def test_a_jitted_training_step_matches_the_nn_trainer():
    """The same model, loss and Adam as a `.nn` program: one step from the same
    parameters gives the same loss and the same new parameters."""
    src = """model m {
  input x: f32[20]
  dense h(16, relu)
  dense out(10, softmax)
}
train {
  data = synthetic.classification(samples=64, features=20, classes=10, seed=0)
  loss = sparse_categorical_crossentropy
  optimizer = adam(lr=0.01)
  epochs = 1
  batch_size = 8
}
"""
    prog = nc.compile(src)
    params = prog.init_params(seed=0)
    opt = nc.optim.adam(lr=0.01)

    def step(params, state, x, y):
        def loss(p):
            h = nc.relu(x @ p["h.weight"] + p["h.bias"])
            return nc.mean(nc.sparse_categorical_crossentropy(y, h @ p["out.weight"] + p["out.bias"],
                                                             from_logits=True))
        value, grads = nc.value_and_grad(loss)(params)
        params, state = opt.update(params, grads, state)
        return value, params, state

    f = nc.jit(step, params, opt.init(params), nc.f32[nc.B, 20], nc.i64[nc.B])
    trainer = prog.trainer(seed=0, params={k: v.copy() for k, v in params.items()})
    rng = np.random.default_rng(0)
    state = opt.init(params)
    for _ in range(3):
        x, y = rng.standard_normal((8, 20)).astype(np.float32), rng.integers(0, 10, 8)
        want = trainer.step(x, y)
        value, params, state = f(params, state, x, y)
        np.testing.assert_allclose(value, want, rtol=1e-5)
        for k, v in params.items():
            np.testing.assert_allclose(v, np.asarray(trainer.params[k]), rtol=1e-4, atol=1e-6, err_msg=k)


# --- layering ------------------------------------------------------------------------------------

def test_the_tracer_imports_no_pass_backend_or_runtime():
    for mod in ("tensor.py", "functions.py", "tree.py"):
        with open(os.path.join(ROOT, "nncompile", "api", mod)) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                top = (node.module or "").split(".")[0]
                assert top in ("", "errors", "ir", "frontend", "tensor", "tree", "functions"), (mod, node.module)


SCALAR_CASES = {
    "view_of_a_scalar": lambda x: nc.reshape(nc.mean(x) * 3, (1, 1)) + x,
    "fallback_of_a_scalar": lambda x: nc.gelu(nc.mean(x) * 2) + nc.leaky_relu(nc.mean(x) - 1.0),
    "grad_through_a_full_reduction": nc.grad(lambda x: nc.logsumexp(nc.exp(x * 0.5) * 2) * 3),
}


@pytest.mark.parametrize("kernels", ["numpy", "native"])
@pytest.mark.parametrize("name", sorted(SCALAR_CASES))
def test_scalar_values_feeding_views_and_fallbacks(name, kernels):
    """The NumPy backend computes scalar chains as Python floats; a value read by a
    view or a reference fallback keeps an array (found by the IR round-trip fuzz)."""
    fn = SCALAR_CASES[name]
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    want = nc.jit(fn, nc.f32[nc.B, 4], optimize=False, cpu_kernels="numpy")(x)
    np.testing.assert_allclose(nc.jit(fn, nc.f32[nc.B, 4], cpu_kernels=kernels)(x), want, rtol=1e-6)


def test_a_view_of_a_value_made_once_per_batch_is_made_in_make():
    """The gradient of mean(mean(w, axis=0).reshape(...) * 0.01) seeds a constant
    unreduce whose reshape is hoisted into make() with it; the view must be made
    there too (found by the IR round-trip property test: NameError in make)."""
    def body(x, w):
        m = nc.mean(w, axis=0, keepdims=True)
        r = m.reshape(-1, m.shape[1], 1)[:, :, 0]
        return nc.mean(nc.relu(x @ w)) + nc.mean(r * 0.01)

    specs = (nc.f32[nc.B, 5], nc.f32[5, 3])
    rng = np.random.default_rng(0)
    args = (rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal((5, 3)).astype(np.float32))
    grad = nc.value_and_grad(body, argnums=(1,))
    got = nc.jit(grad, *specs)(*args)
    want = nc.jit(grad, *specs, optimize=False, cpu_kernels="numpy")(*args)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    np.testing.assert_allclose(got[1][0], want[1][0], rtol=1e-5, atol=1e-7)
