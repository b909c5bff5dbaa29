"""Gradient clipping (clipnorm, global_clipnorm, clipvalue on every optimizer) as
IR ops of the update: against Keras 3's formulas (NumPy float64), against
torch.nn.utils.clip_grad_norm_ / clip_grad_value_, through the `.nn` trainer
(optimized step = unoptimized graph) and through nc.optim."""
import numpy as np
import pytest

import nncompile
import nncompile as nc
from extras import needs_torch, torch
from nncompile.backends.numpy.codegen import generate
from nncompile.errors import CompileError
from nncompile.ir.graph import Graph
from nncompile.passes.optimizer import apply_optimizer, slots_for

SGD = {"lr": 1.0, "momentum": 0.0, "nesterov": False}
SHAPES = {"w": (3, 4), "b": (5,), "s": ()}


def keras_clip(grads, clipnorm=None, global_clipnorm=None, clipvalue=None):
    """Keras 3's BaseOptimizer._clip_gradients, in NumPy."""
    if clipnorm:
        return {k: g * clipnorm / max(np.sqrt(np.sum(g * g)), clipnorm) for k, g in grads.items()}
    if global_clipnorm:
        n = np.sqrt(sum(np.sum(g * g) for g in grads.values()))
        scale = global_clipnorm * min(1.0 / n, 1.0 / global_clipnorm) + (n - n)
        return {k: g * scale for k, g in grads.items()}
    if clipvalue:
        return {k: np.clip(g, -clipvalue, clipvalue) for k, g in grads.items()}
    return grads


def _step(name, params, p0, grads):
    """One update of our optimizer over the parameters of SHAPES, float64."""
    g = Graph("opt", "f64")
    for k, shape in SHAPES.items():
        g.input(k, shape, role="param")
    gin = {k: g.input(f"g{k}", shape) for k, shape in SHAPES.items()}
    apply_optimizer(g, name, params, gin)
    state = {f"{name}.{s}.{k}": np.zeros(shape) for s in slots_for(name, params) for k, shape in SHAPES.items()}
    out = {k: v.copy() for k, v in p0.items()}
    generate(g)({**out, **{f"g{k}": v for k, v in grads.items()}, "step": np.array(1.0), "lr": np.array(params["lr"]),
                 **state})
    return out


def _draw(scale, seed=0):
    rng = np.random.default_rng(seed)
    p0 = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    return p0, {k: scale * rng.normal(size=s) for k, s in SHAPES.items()}


CLIPS = [{"clipnorm": 0.7}, {"global_clipnorm": 1.3}, {"clipvalue": 0.4}]


@pytest.mark.parametrize("clip", CLIPS, ids=lambda c: next(iter(c)))
@pytest.mark.parametrize("scale", [0.01, 3.0])   # below the threshold (unchanged) and above
def test_clipping_follows_keras_formulas(clip, scale):
    p0, grads = _draw(scale)
    got = _step("sgd", {**SGD, **clip}, p0, grads)
    want = keras_clip(grads, **clip)
    for k in SHAPES:
        np.testing.assert_allclose(p0[k] - got[k], want[k], rtol=1e-12, atol=1e-15, err_msg=k)
    if scale == 0.01 and "clipvalue" not in clip:
        for k in SHAPES:
            np.testing.assert_allclose(p0[k] - got[k], grads[k], rtol=1e-12)
    elif scale == 3.0:
        assert any(not np.allclose(p0[k] - got[k], grads[k]) for k in SHAPES)


def test_global_clipnorm_of_a_nonfinite_norm_is_nan_as_keras():
    p0, grads = _draw(1.0)
    grads["b"][0] = np.inf
    got = _step("sgd", {**SGD, "global_clipnorm": 1.0}, p0, grads)
    assert all(np.isnan(got[k]).all() for k in SHAPES)


@needs_torch
@pytest.mark.parametrize("clip", CLIPS, ids=lambda c: next(iter(c)))
def test_clipping_matches_torch_clip_grad_utilities(clip):
    p0, grads = _draw(3.0, seed=1)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in p0.items()}
    for k, v in grads.items():
        tp[k].grad = torch.tensor(v)
    (how, c), = clip.items()
    if how == "clipnorm":       # Keras: each variable by its own norm
        for v in tp.values():
            torch.nn.utils.clip_grad_norm_([v], c)
    elif how == "global_clipnorm":
        torch.nn.utils.clip_grad_norm_(list(tp.values()), c)
    else:
        torch.nn.utils.clip_grad_value_(list(tp.values()), c)
    # Adam with eps = 0 is the same function in Keras and torch, so clipping is the only difference
    adam = {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 0.0}
    torch.optim.Adam(list(tp.values()), lr=0.01, eps=0.0).step()
    got = _step("adam", {**adam, **clip}, p0, grads)
    # torch divides by (norm + 1e-6): 1e-6 / norm apart
    for k in SHAPES:
        np.testing.assert_allclose(got[k], tp[k].detach().numpy(), rtol=1e-6, atol=1e-9, err_msg=k)


SRC = """model m {
  input x: f32[6]
  dense h(8, tanh)
  dense h2(5, relu)
  dense o(3, softmax)
}
train {
  loss = sparse_categorical_crossentropy
  optimizer = OPT
  batch_size = 8
}
"""


@pytest.mark.parametrize("opt", ["sgd(lr=0.5, clipnorm=0.05)", "adam(lr=0.01, global_clipnorm=0.1)",
                                 "rmsprop(lr=0.01, momentum=0.5, clipvalue=0.01)",
                                 "adamw(lr=0.01, clipnorm=0.02)"])
def test_the_compiled_step_clips_as_the_unoptimized_graph(opt):
    src = SRC.replace("OPT", opt)
    fast, ref = nncompile.compile(src), nncompile.compile(src, optimize=False, cpu_kernels="numpy")
    params = fast.init_params(0)
    rng = np.random.default_rng(0)
    tf, tr = fast.trainer(seed=1, params=params), ref.trainer(seed=1, params=params)
    for _ in range(3):
        x, y = rng.normal(size=(8, 6)).astype(np.float32), rng.integers(0, 3, 8)
        np.testing.assert_allclose(tf.step(x, y), tr.step(x, y), rtol=1e-5)
    hf, hr = tf.host("params"), tr.host("params")
    for k in hr:
        np.testing.assert_allclose(hf[k], hr[k], rtol=2e-5, atol=1e-6, err_msg=k)
    # per-variable clipnorm keeps the parameters unflattened; the clipping ops fuse
    # with the update (the clip of clipvalue shares its group)
    g = fast.graphs.train_step
    assert ("flat_params" in g.meta) == (" clipnorm=" not in opt)
    byid = {n.id: n for n in g.nodes}
    for gr in g.meta["groups"]:
        if any(byid[i].op == "clip" for i in gr["nodes"]):
            assert len(gr["nodes"]) > 1 and any(byid[i].op == "sub" for i in gr["nodes"])


def test_the_first_step_is_keras_sgd_on_clipped_gradients():
    src = SRC.replace("OPT", "sgd(lr=0.5, clipnorm=0.05)")
    p = nncompile.compile(src)
    params = p.init_params(0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 6)).astype(np.float32), rng.integers(0, 3, 8)
    _, grads = p.loss_and_grads(params, x, y)
    tr = p.trainer(seed=1, params=params)
    tr.step(x, y)
    new = tr.host("params")
    want = keras_clip({k: v.astype(np.float64) for k, v in grads.items()}, clipnorm=0.05)
    for k in grads:
        np.testing.assert_allclose(params[k] - new[k], 0.5 * want[k], rtol=1e-4, atol=1e-7, err_msg=k)


def test_one_way_of_clipping():
    with pytest.raises(CompileError, match="clipnorm and clipvalue are both set") as e:
        nncompile.compile(SRC.replace("OPT", "adam(clipnorm=1, clipvalue=0.5)"))
    assert (e.value.loc.line, e.value.loc.column) == (9, 42)   # at clipvalue
    with pytest.raises(CompileError, match="clipnorm"):
        nncompile.compile(SRC.replace("OPT", "sgd(clipnorm=0)"))
    with pytest.raises(ValueError, match="global_clipnorm and clipvalue are both set"):
        nc.optim.rmsprop(global_clipnorm=1.0, clipvalue=1.0)


def test_nc_optim_clips_in_the_traced_step():
    opt = nc.optim.sgd(0.1, clipnorm=0.5)
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}

    def step(params, state, x):
        grads = nc.grad(lambda p: nc.sum(nc.tanh(x @ p["w"] + p["b"]) ** 2))(params)
        return opt.update(params, grads, state), grads

    f = nc.jit(step, params, opt.init(params), nc.f64[nc.B, 3])
    (new, _), grads = f(params, opt.init(params), rng.standard_normal((4, 3)))
    want = keras_clip(grads, clipnorm=0.5)
    assert any(np.linalg.norm(g) > 0.5 for g in grads.values())
    for k in params:
        np.testing.assert_allclose(new[k], params[k] - 0.1 * want[k], rtol=1e-12, err_msg=k)
