"""Differential test: for random programs, the optimized graphs (every pass) and
the unoptimized ones (autodiff + optimizer only) give the same loss, gradients,
predictions and updated parameters within float32 tolerance."""
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

import nncompile

ACTS = ["relu", "sigmoid", "tanh", "linear", "gelu", "leaky_relu"]
OPTS = ["sgd(lr=0.05)", "sgd(lr=0.05, momentum=0.9)", "sgd(lr=0.05, momentum=0.9, nesterov=true)",
        "adam(lr=0.01)", "adamw(lr=0.01, weight_decay=0.01)", "rmsprop(lr=0.01)",
        "rmsprop(lr=0.01, momentum=0.5)"]
LOSSES = ["sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy", "mse", "mae"]


@st.composite
def programs(draw):
    n_in = draw(st.integers(1, 6))
    layers = []
    for i in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["dense", "dense", "batchnorm", "dropout", "layernorm", "activation"]))
        if kind == "dense":
            l2 = draw(st.sampled_from(["", ", l2=0.001"]))
            l1 = draw(st.sampled_from(["", ", l1=0.001"]))
            layers.append(f"dense d{i}({draw(st.integers(1, 7))}, {draw(st.sampled_from(ACTS))}{l2}{l1})")
        elif kind == "dropout":
            layers.append(f"dropout p{i}({draw(st.sampled_from([0.0, 0.3]))})")
        elif kind == "activation":
            layers.append(f"activation a{i}({draw(st.sampled_from(ACTS))})")
        else:
            layers.append(f"{kind} n{i}")
    loss = draw(st.sampled_from(LOSSES))
    units = draw(st.integers(2, 4))
    out_act = {"sparse_categorical_crossentropy": "softmax", "categorical_crossentropy": "softmax",
               "binary_crossentropy": "sigmoid"}.get(loss, draw(st.sampled_from(ACTS)))
    layers.append(f"dense out({units}, {out_act})")
    metrics = draw(st.sampled_from(["[accuracy]", "[mse, mae]", "[]"]))
    src = (f"model m {{\n  input x: f32[{n_in}]\n" + "".join(f"  {l}\n" for l in layers) + "}\n"
           f"train {{\n  loss = {loss}\n  optimizer = {draw(st.sampled_from(OPTS))}\n"
           f"  metrics = {metrics}\n  batch_size = 8\n}}\n")
    return src, n_in, units, loss


def _data(n_in, units, loss, n, rng):
    x = rng.normal(size=(n, n_in)).astype(np.float32)
    if loss == "sparse_categorical_crossentropy":
        y = rng.integers(0, units, size=n)
    elif loss == "categorical_crossentropy":
        y = np.eye(units, dtype=np.float32)[rng.integers(0, units, size=n)]
    elif loss == "binary_crossentropy":
        y = rng.integers(0, 2, size=(n, units)).astype(np.float32)
    else:
        y = rng.normal(size=(n, units)).astype(np.float32)
    return x, y


def close(a, b, what):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5, err_msg=what)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=programs(), seed=st.integers(0, 1000))
def test_optimized_matches_unoptimized(case, seed):
    """(With a C compiler the optimized side runs the native loops.)"""
    check_against_unoptimized(case, seed, "auto")


def check_against_unoptimized(case, seed, cpu_kernels):
    src, n_in, units, loss = case
    opt = nncompile.compile(src, cpu_kernels=cpu_kernels)
    ref = nncompile.compile(src, optimize=False, cpu_kernels="numpy")   # the oracle: NumPy only
    rng = np.random.default_rng(seed)
    params = opt.init_params(seed)
    x, y = _data(n_in, units, loss, 8, rng)
    l1, g1 = opt.loss_and_grads(params, x, y)
    l2, g2 = ref.loss_and_grads(params, x, y)
    close(l1, l2, f"loss\n{src}")
    for k in g1:
        close(g1[k], g2[k], f"grad {k}\n{src}")
    close(opt.predict(params, x), ref.predict(params, x), f"predict\n{src}")
    t1, t2 = opt.trainer(seed=seed, params=params), ref.trainer(seed=seed, params=params)
    batches = [_data(n_in, units, loss, n, rng) for n in (8, 3)]
    # Adaptive optimizers turn a gradient that is zero up to rounding (a bias
    # followed by batch norm, say) into a full-size step of arbitrary sign:
    # compare those parameters only where every step's gradient is well above rounding.
    adaptive = "adam" in src or "rmsprop" in src
    significant = {k: np.ones(v.shape, bool) for k, v in params.items()}
    for i, (xb, yb) in enumerate(batches):
        if adaptive:
            _, gb = opt.loss_and_grads(t1.host(), xb, yb)
            for k in gb:
                significant[k] &= np.abs(gb[k]) > 1e-4
        close(t1.step(xb, yb), t2.step(xb, yb), f"step loss\n{src}")
        if i == 0:  # batch-norm statistics of step 1 come from identical parameters
            for k in t1.state:
                p = next((q for q in params if k.endswith("." + q) and k != q), None)
                mask = significant[p] if (adaptive and p) else np.ones(t1.state[k].shape, bool)
                close(t1.state[k][mask], t2.state[k][mask], f"state {k} after 1 step\n{src}")
    for k in t1.params:
        mask = significant[k] if adaptive else np.ones(params[k].shape, bool)
        close(t1.params[k][mask], t2.params[k][mask], f"param {k} after 2 steps\n{src}")
    if not adaptive:
        for k in t1.state:
            close(t1.state[k], t2.state[k], f"state {k} after 2 steps\n{src}")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=programs(), seed=st.integers(0, 1000))
def test_tiled_optimizer_chain_matches_unoptimized(monkeypatch, case, seed):
    """The same check with tiny tiles, so the tiled update path runs."""
    import nncompile.backends.numpy.codegen as cg
    monkeypatch.setattr(cg, "TILE", 8)
    monkeypatch.setattr(cg, "TILE_MIN", 16)
    check_against_unoptimized(case, seed, "numpy")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=programs(), seed=st.integers(0, 1000))
def test_numpy_path_alone_matches_unoptimized(case, seed):
    """The optimized graphs on the NumPy path alone (no native loops)."""
    check_against_unoptimized(case, seed, "numpy")
