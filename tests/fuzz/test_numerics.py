"""Numerics at the edges, against PyTorch (float64) where a reference exists.

* `loss_and_grads` of random architectures (the shared generator,
  `programs.program_specs` in tests/programs.py: image inputs with flatten,
  dense / batchnorm / layernorm / activation / dropout stacks, frozen layers,
  every loss and output form, L1/L2) equals torch autograd, on ordinary,
  all-zero, huge (x1e4) and batch-of-one inputs; and central finite
  differences (no torch needed, every layer kind the generator draws).
* Huge logits (|z| = 1e4) into softmax / sigmoid + cross-entropy give the exact
  finite loss and gradient, in float32 too.
* Batch norm on a batch of one (variance 0) stays finite thanks to epsilon.
* Very small and very large learning rates give the step torch gives.

The tests that compare with torch skip without it (tests/extras.py); the rest
run on a CPU-only install.
"""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nncompile
import programs as P
from extras import needs_torch, torch
from nncompile.frontend import parse_source
from nncompile.frontend.layers.activations import resolve as resolve_activation

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
EPS_PROB = 1e-7
F = torch.nn.functional if torch is not None else None


# ------------------------------------------------------------ the torch reference

def _act(h, fn):
    act, params = resolve_activation(fn)
    return {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
            "softmax": lambda t: torch.softmax(t, -1), "linear": lambda t: t,
            "gelu": lambda t: F.gelu(t, approximate="tanh" if params.get("approximate") else "none"),
            "leaky_relu": lambda t: F.leaky_relu(t, params.get("negative_slope")),
            "elu": lambda t: F.elu(t, params.get("alpha")), "selu": F.selu, "silu": F.silu, "softplus": F.softplus,
            "softsign": F.softsign, "hard_sigmoid": lambda t: F.relu6(t + 3) / 6, "exponential": torch.exp,
            }[act.name](h)


def torch_forward(ast, p, x):
    """The model as the language reference defines it (dropout off, batch
    statistics per channel, the last axis; a frozen batch norm uses its running
    statistics, which start at 0 and 1). TORCH_KINDS lists the layer kinds
    known here: the random-architecture test draws only those."""
    h, pre, last = x, None, "linear"
    for L in ast.model.layers:
        a = L.args
        pre, last = None, "linear"
        if L.kind == "dense":
            h = h @ p[f"{L.name}.weight"]
            if a["use_bias"]:
                h = h + p[f"{L.name}.bias"]
            if a["activation"] in ("softmax", "sigmoid"):
                pre = h
            h, last = _act(h, a["activation"]), a["activation"]
        elif L.kind == "activation":
            if a["fn"] in ("softmax", "sigmoid"):
                pre = h
            h, last = _act(h, a["fn"]), a["fn"]
        elif L.kind == "flatten":
            h = h.reshape(h.shape[0], -1)
        elif L.kind == "batchnorm":
            axes = tuple(range(h.dim() - 1))
            if L.frozen:
                mean, var = torch.zeros(h.shape[-1], dtype=h.dtype), torch.ones(h.shape[-1], dtype=h.dtype)
            else:
                mean = h.mean(axes, keepdim=True)
                var = ((h - mean) ** 2).mean(axes, keepdim=True)
            h = (h - mean) / torch.sqrt(var + a["epsilon"]) * p[f"{L.name}.gamma"] + p[f"{L.name}.beta"]
        elif L.kind == "layernorm":
            mean = h.mean(-1, keepdim=True)
            var = ((h - mean) ** 2).mean(-1, keepdim=True)
            h = (h - mean) / torch.sqrt(var + a["epsilon"]) * p[f"{L.name}.gamma"] + p[f"{L.name}.beta"]
    return h, pre, last


TORCH_KINDS = ("dense", "activation", "flatten", "batchnorm", "layernorm", "dropout")


def torch_loss(ast, p, x, y):
    out, pre, last = torch_forward(ast, p, x)
    spec = ast.train.loss

    def log_probs():
        if last == "softmax" and pre is not None and not spec.from_logits:
            return torch.log_softmax(pre, -1)
        if spec.from_logits:
            return torch.log_softmax(out, -1)
        return torch.log(torch.clamp(out, EPS_PROB, 1 - EPS_PROB))

    ls, k = spec.label_smoothing, out.shape[-1]
    if spec.name == "sparse_categorical_crossentropy" and ls:
        data = -((F.one_hot(y, k).to(out.dtype) * (1 - ls) + ls / k) * log_probs()).sum(-1).mean()
    elif spec.name == "sparse_categorical_crossentropy":
        data = -log_probs().gather(-1, y.unsqueeze(-1)).mean()
    elif spec.name == "categorical_crossentropy":
        data = -((y * (1 - ls) + ls / k) * log_probs()).sum(-1).mean()
    elif spec.name == "binary_crossentropy":
        y = y * (1 - ls) + 0.5 * ls
        z = pre if (last == "sigmoid" and pre is not None and not spec.from_logits) else (
            out if spec.from_logits else None)
        if z is not None:
            data = F.binary_cross_entropy_with_logits(z, y)
        else:
            q = torch.clamp(out, EPS_PROB, 1 - EPS_PROB)
            data = -(y * torch.log(q) + (1 - y) * torch.log(1 - q)).mean()
    elif spec.name == "mse":
        data = ((out - y) ** 2).mean()
    else:
        data = (out - y).abs().mean()
    for L in ast.model.layers:
        if L.kind == "dense":
            w = p[f"{L.name}.weight"]
            if L.args["l2"] > 0:
                data = data + L.args["l2"] * (w ** 2).sum()
            if L.args["l1"] > 0:
                data = data + L.args["l1"] * w.abs().sum()
    return data


def _tensors(params):
    return {k: torch.tensor(np.asarray(v, np.float64), requires_grad=True) for k, v in params.items()}


def compare_with_torch(src, params, x, y, *, rtol=1e-7, atol=1e-9, float_dtype="f64"):
    ast = parse_source(src, filename="num.nn")
    prog = nncompile.Program(ast, float_dtype=float_dtype)
    if params is None:
        params = prog.init_params(seed=0)
    loss, grads = prog.loss_and_grads(params, x, y)
    tp = _tensors(params)
    ty = torch.tensor(y) if np.asarray(y).dtype.kind == "i" else torch.tensor(np.asarray(y, np.float64))
    tl = torch_loss(ast, tp, torch.tensor(np.asarray(x, np.float64)), ty)
    if tp:
        tl.backward()
    assert math.isfinite(loss)
    assert loss == pytest.approx(tl.item(), rel=rtol, abs=atol), src
    frozen = {k for k in params for L in ast.model.layers if L.frozen and k.startswith(L.name + ".")}
    assert set(grads) == set(params) - frozen, src
    for k in grads:
        ref = tp[k].grad.numpy() if tp[k].grad is not None else np.zeros_like(params[k])
        assert np.all(np.isfinite(grads[k])), k
        np.testing.assert_allclose(grads[k], ref, rtol=rtol * 10, atol=atol * 10, err_msg=f"{k}\n{src}")
    return loss, grads


# ------------------------------------------------- random architectures vs torch

def _inputs(kind, spec, n, rng):
    x, y = P.random_batch(spec, n, rng, dtype=np.float64)
    if kind == "zeros":
        x = np.zeros_like(x)
    elif kind == "huge":
        x = x * 1e4
    elif kind == "tiny":
        x = x * 1e-6
    return x, y


@needs_torch
@settings(max_examples=P.examples(60), **SETTINGS)
@given(P.program_specs(allow_dropout=True, kinds=TORCH_KINDS, branches=False),
       st.sampled_from(["normal", "normal", "zeros", "huge", "tiny"]),
       st.integers(1, 6), st.integers(0, 2**16), st.booleans())
def test_loss_and_grads_match_torch_on_random_architectures(spec, kind, n, seed, jitter):
    rng = np.random.default_rng(seed)
    x, y = _inputs(kind, spec, n, rng)
    prog = nncompile.Program(parse_source(spec.source), float_dtype="f64")
    params = prog.init_params(seed=seed)
    # biases and beta start at 0, so with all-zero inputs a logit is exactly 0 (once a bug of the
    # logits-form BCE gradient: test_binary_crossentropy_gradient_at_logit_zero); jittered, they are not
    if jitter:
        params = {k: v + rng.normal(scale=0.1, size=v.shape) for k, v in params.items()}
    # huge inputs push the clipped-probability paths onto their kinks; the comparison stays exact
    # elsewhere, so those are compared with a looser tolerance only
    loose = kind in ("huge",)
    compare_with_torch(spec.source, params, x, y, rtol=1e-5 if loose else 1e-7, atol=1e-6 if loose else 1e-9)


@settings(max_examples=P.examples(30), **SETTINGS)
@given(P.program_specs(allow_dropout=True), st.sampled_from(["normal", "normal", "zeros", "tiny"]),
       st.integers(1, 6), st.integers(0, 2**16))
def test_loss_and_grads_match_finite_differences_on_random_architectures(spec, kind, n, seed):
    """The same programs without torch: each gradient against central differences
    of the float64 loss, on a few coordinates of every parameter. (No huge
    inputs: they put the clipped-probability paths on their kinks.)"""
    rng = np.random.default_rng(seed)
    x, y = _inputs(kind, spec, n, rng)
    prog = nncompile.Program(parse_source(spec.source), float_dtype="f64")
    # jittered: with zero biases and all-zero inputs a relu would sit on its kink, where a
    # difference quotient is not the derivative
    params = {k: v + rng.normal(scale=0.1, size=v.shape) for k, v in prog.init_params(seed=seed).items()}
    loss, grads = prog.loss_and_grads(params, x, y)
    assert math.isfinite(loss)
    assert set(grads) == P.trainable(prog)
    for k, g in grads.items():
        assert g.shape == params[k].shape and np.all(np.isfinite(g)), k
        flat = params[k].reshape(-1)
        for i in rng.choice(flat.size, size=min(3, flat.size), replace=False):
            h = 1e-6 * max(1.0, abs(flat[i]))
            at = []
            for step in (h, -h):
                p = flat.copy()
                p[i] += step
                at.append(prog.loss_and_grads({**params, k: p.reshape(params[k].shape)}, x, y)[0])
            fd = (at[0] - at[1]) / (2 * h)
            assert abs(fd - g.reshape(-1)[i]) <= 1e-5 * max(1.0, abs(fd)), (k, i, fd, g.reshape(-1)[i], spec.source)


# was a bug (fixed): the logits-form BCE gradient was -y instead of sigmoid(0) - y at a logit of exactly 0
@needs_torch
@pytest.mark.parametrize("logits", [False, True])
def test_binary_crossentropy_gradient_at_logit_zero(logits):
    src = ("model m {\n  input x: f32[1]\n  dense out(1, %s, init=zeros)\n}\n"
           "train {\n  loss = binary_crossentropy%s\n  optimizer = sgd\n}\n"
           % (("linear", "(from_logits=true)") if logits else ("sigmoid", "")))
    compare_with_torch(src, None, np.array([[1.0], [2.0]]), np.array([[1.0], [0.0]]))


# ---------------------------------------------------------------- huge logits

IDENTITY = {"z.weight": np.eye(3)}


def _identity_model(act, loss, from_logits=False):
    lf = f"{loss}(from_logits=true)" if from_logits else loss
    return (f"model m {{\n  input x: f32[3]\n  dense z(3, {act}, use_bias=false)\n}}\n"
            f"train {{\n  loss = {lf}\n  optimizer = sgd\n}}\n")


HUGE = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4 - 1, 1e4], [0.0, 0.0, 0.0]])


@needs_torch
@pytest.mark.parametrize("dtype", ["f64", "f32"])
@pytest.mark.parametrize("case", [("softmax", "sparse_categorical_crossentropy", False),
                                  ("softmax", "categorical_crossentropy", False),
                                  ("linear", "sparse_categorical_crossentropy", True),
                                  ("linear", "categorical_crossentropy", True),
                                  ("sigmoid", "binary_crossentropy", False),
                                  ("linear", "binary_crossentropy", True)],
                         ids=lambda c: f"{c[0]}-{c[1]}{'-logits' if c[2] else ''}")
def test_huge_logits_give_the_exact_finite_loss(case, dtype):
    act, loss, from_logits = case
    src = _identity_model(act, loss, from_logits)
    if loss == "sparse_categorical_crossentropy":
        y = np.array([1, 0, 1, 2])
    elif loss == "categorical_crossentropy":
        y = np.eye(3)[[1, 0, 1, 2]]
    else:
        y = np.array([[0, 1, 1], [1, 0, 0], [0, 1, 0], [1, 1, 0]], np.float64)
    rtol = 1e-6 if dtype == "f32" else 1e-9
    # HUGE has logits of exactly 0 too (binary cross-entropy there was bug 2, fixed)
    compare_with_torch(src, IDENTITY, HUGE, y, rtol=rtol, atol=1e-6 if dtype == "f32" else 1e-9,
                       float_dtype=dtype)


@pytest.mark.parametrize("act", ["softmax", "sigmoid"])
def test_huge_logits_in_training_and_prediction(act):
    """A training step and predictions with logits of 1e4 stay finite; the
    probabilities saturate exactly to 0 and 1."""
    loss = "sparse_categorical_crossentropy" if act == "softmax" else "binary_crossentropy"
    prog = nncompile.compile(_identity_model(act, loss))
    y = np.array([1, 0, 1, 2]) if act == "softmax" else np.array(
        [[0, 1, 1], [1, 0, 0], [0, 1, 0], [1, 1, 0]], np.float32)
    tr = prog.trainer(params={"z.weight": np.eye(3)})
    out = tr.train_batch(HUGE.astype(np.float32), y)
    assert math.isfinite(out["loss"])
    assert all(np.all(np.isfinite(v)) for v in tr.host("params").values())
    p = prog.predict({"z.weight": np.eye(3, dtype=np.float32)}, HUGE.astype(np.float32))
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    if act == "softmax":
        np.testing.assert_allclose(p[0], [1, 0, 0], atol=0)
        np.testing.assert_allclose(p.sum(-1), 1, rtol=1e-6)
    else:
        np.testing.assert_allclose(p[1], [0, 0, 0], atol=0)


# ---------------------------------------------------------- batch norm, batch of one

BN = """model m {{
  input x: f32[4]
  dense h(3, relu)
  batchnorm bn({momentum}, {eps})
  dense out(2, softmax)
}}
train {{
  loss = sparse_categorical_crossentropy
  optimizer = sgd(lr=0.1)
}}
"""


def _batch_of_one(x_kind):
    rng = np.random.default_rng(1)
    return (rng.normal(size=(1, 4)) if x_kind == "normal" else np.zeros((1, 4))), np.array([1])


@needs_torch
@pytest.mark.parametrize("eps", [1e-3, 1e-12])
@pytest.mark.parametrize("x_kind", ["normal", "zeros"])
def test_batchnorm_on_a_batch_of_one_matches_torch(eps, x_kind):
    compare_with_torch(BN.format(momentum=0.9, eps=eps), None, *_batch_of_one(x_kind))


@pytest.mark.parametrize("eps", [1e-3, 1e-12])
@pytest.mark.parametrize("x_kind", ["normal", "zeros"])
def test_batchnorm_on_a_batch_of_one_is_finite(eps, x_kind):
    src = BN.format(momentum=0.9, eps=eps)
    x, y = _batch_of_one(x_kind)
    prog64 = nncompile.compile(src, float_dtype="f64")
    params = prog64.init_params(seed=0)
    loss, grads = prog64.loss_and_grads(params, x, y)
    assert math.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads.values())
    # variance 0: the normalized value is exactly 0, the output is beta, the layers below get no gradient
    assert np.all(grads["h.weight"] == 0) and np.all(grads["h.bias"] == 0)
    # ... and the loss is that of predicting softmax(beta @ W + b) for the label
    z = params["bn.beta"] @ params["out.weight"] + params["out.bias"]
    assert loss == pytest.approx(float(np.log(np.exp(z).sum()) - z[1]), rel=1e-12)
    prog = nncompile.compile(src)
    tr = prog.trainer(seed=0)
    for _ in range(3):
        assert math.isfinite(tr.step(x.astype(np.float32), y))
    for k, v in {**tr.host("params"), **tr.host("state")}.items():
        assert np.all(np.isfinite(v)), k
    assert np.all(np.isfinite(tr.predict(x.astype(np.float32))))


def test_all_zero_batches_train_and_evaluate():
    src = BN.format(momentum=0.5, eps=1e-3).replace("dense out(2, softmax)",
                                                     "layernorm ln\n  dense out(2, softmax)")
    prog = nncompile.compile(src)
    tr = prog.trainer(seed=0)
    x, y = np.zeros((8, 4), np.float32), np.zeros(8, np.int64)
    for _ in range(3):
        assert math.isfinite(tr.step(x, y))
    ev = tr.evaluate(x, y)
    assert all(math.isfinite(v) for v in ev.values())


# ------------------------------------------------------------ learning rates

LR = """model m {{
  input x: f32[5]
  dense h(4, tanh)
  dense out(3, softmax)
}}
train {{
  loss = sparse_categorical_crossentropy
  optimizer = {opt}
}}
"""


def _torch_opt(name, params, lr):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, eps=1e-12)
    return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7)


@needs_torch
@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("lr", [1e-30, 1e-8, 1e8, 1e30])
def test_extreme_learning_rates_match_torch(opt, lr):
    """One step in float64 equals torch's (Adam: the first step is lr*sign(g)
    up to eps, wherever eps is placed)."""
    # eps=1e-12: Keras's eps placement (outside the bias correction) and torch's then agree to ~1e-9
    src = LR.format(opt=f"{opt}(lr={lr}, eps=1e-12)" if opt == "adam" else f"{opt}(lr={lr})")
    prog = nncompile.compile(src, float_dtype="f64")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 5)), rng.integers(0, 3, size=6)
    params = prog.init_params(seed=2)
    tr = prog.trainer(seed=0, params=params)
    ours = tr.step(x, y)
    ast = parse_source(src)
    tp = _tensors(params)
    o = _torch_opt(opt, list(tp.values()), lr)
    loss = torch_loss(ast, tp, torch.tensor(x), torch.tensor(y))
    loss.backward()
    o.step()
    assert ours == pytest.approx(loss.item(), rel=1e-10)
    for k, v in tr.host("params").items():
        assert np.all(np.isfinite(v)), k
        np.testing.assert_allclose(v, tp[k].detach().numpy(), rtol=1e-6, atol=1e-12 + 1e-6 * (lr if opt == "adam" else 0),
                                   err_msg=k)


@pytest.mark.parametrize("lr", [1e-30, 1e30])
def test_extreme_learning_rates_in_float32_stay_finite_for_a_step(lr):
    prog = nncompile.compile(LR.format(opt=f"sgd(lr={lr})"))
    rng = np.random.default_rng(0)
    tr = prog.trainer(seed=0)
    before = tr.host("params")
    loss = tr.step(rng.normal(size=(6, 5)).astype(np.float32), rng.integers(0, 3, size=6))
    assert math.isfinite(loss)
    after = tr.host("params")
    for k in before:
        assert np.all(np.isfinite(after[k])), k
        if lr < 1:  # a step of ~1e-30: weights unchanged to float32 resolution
            np.testing.assert_allclose(after[k], before[k], rtol=1e-7, atol=1e-25)


DIVERGE = """model m {{
  input x: f32[5]
  dense h(4, tanh)
  dense out(3{out})
}}
train {{
  data = {data}
  loss = {loss}
  optimizer = sgd(lr=1e30)
  epochs = 5
}}
"""


def test_fit_with_a_diverging_learning_rate_stops_cleanly():
    """lr=1e30 on a linear regression head: the squared error overflows float32 on
    the second step. `fit` must stop there with a report (not raise, not go on
    with NaN), keeping the weights from before the step that overflowed."""
    src = DIVERGE.format(out="", data="synthetic.regression(samples=64, features=5, targets=3)", loss="mse")
    hist = nncompile.compile(src).fit(quiet=True)
    assert hist.stop_reason == "non-finite loss at epoch 0, batch 1"
    assert hist.history["loss"] == [math.inf]
    rep = hist.nonfinite
    assert (rep.what, rep.epoch, rep.batch, rep.step, rep.node.op) == ("loss", 0, 1, 2, "square")
    assert "the weights are those before step 2" in hist.report
    assert hist.trainer.step_count == 1
    assert all(np.all(np.isfinite(v)) for v in hist.trainer.host().values())


def test_fit_with_a_diverging_learning_rate_on_softmax_trains_on():
    """The same learning rate under tanh + softmax cross-entropy: the weights grow
    to ~1e29 but everything stays finite (tanh saturates, the loss is computed
    from the logits), so all 5 epochs run and nothing is reported."""
    src = DIVERGE.format(out=", softmax", data="synthetic.classification(samples=64, features=5, classes=3)",
                         loss="sparse_categorical_crossentropy")
    hist = nncompile.compile(src).fit(quiet=True)
    assert hist.stop_reason is None and hist.nonfinite is None
    losses = hist.history["loss"]
    assert len(losses) == 5 and all(math.isfinite(v) and v > 1e25 for v in losses)
    params = hist.trainer.host()
    assert all(np.all(np.isfinite(v)) for v in params.values())
    assert max(float(np.abs(v).max()) for v in params.values()) > 1e25
