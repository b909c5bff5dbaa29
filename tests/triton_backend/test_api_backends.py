"""nc.jit on both backends against each other (the Triton kernels under the
interpreter): forward values, gradients and training steps of functions
written with the graph API, including the ops it added (where, transpose,
the comparisons, the max-reduction and maximum gradients)."""
import numpy as np
import pytest

from extras import TRITON_REASON

torch = pytest.importorskip("torch", reason=TRITON_REASON)
triton = pytest.importorskip("triton", reason=TRITON_REASON)

import nncompile as nc  # noqa: E402


def both(fn, specs, args, rtol=2e-5, atol=1e-6):
    a = nc.jit(fn, *specs)(*args)
    t = nc.jit(fn, *specs, backend="triton")
    b = t(*args)
    la, _ = nc.api.tree.flatten(a)
    lb, _ = nc.api.tree.flatten(b)
    assert len(la) == len(lb)
    for (path, x), (_, y) in zip(la, lb):
        assert np.asarray(x).dtype == np.asarray(y).dtype, path
        np.testing.assert_allclose(y, x, rtol=rtol, atol=atol, err_msg=path)
    assert not t.program.fallbacks, t.program.fallbacks
    return a


def mlp(x, y, w1, b1, w2, b2):
    h = nc.relu(x @ w1 + b1)
    return nc.mean(nc.sparse_categorical_crossentropy(y, h @ w2 + b2, from_logits=True))


def test_the_issue_example_on_both_backends():
    rng = np.random.default_rng(0)
    specs = (nc.f32[nc.B, 12], nc.i64[nc.B], nc.f32[12, 8], nc.f32[8], nc.f32[8, 5], nc.f32[5])
    args = (rng.standard_normal((6, 12)).astype(np.float32), rng.integers(0, 5, 6),
            (rng.standard_normal((12, 8)) * 0.4).astype(np.float32), np.zeros(8, np.float32),
            (rng.standard_normal((8, 5)) * 0.4).astype(np.float32), np.zeros(5, np.float32))
    both(mlp, specs, args)
    both(nc.value_and_grad(mlp, argnums=(2, 3, 4, 5)), specs, args)
    # the parsed IR text compiles on the Triton backend too
    step = nc.jit(nc.value_and_grad(mlp, argnums=(2, 3, 4, 5)), *specs)
    v, grads = nc.compile_graph(nc.parse_ir(step.ir()), backend="triton")(*args)
    want_v, want_g = step(*args)
    np.testing.assert_allclose(v, want_v, rtol=1e-5)
    for a, b in zip(grads, want_g):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def new_ops(x, w, m):
    z = x @ w                                          # [B, 4]
    s = nc.softmax(z, axis=0)                          # along the batch: a transpose pair around the row op
    a = nc.where((z > 0.1) * (z <= 1.5) + (z != z), z, -z) * m
    b = nc.maximum(z, 0.2) + nc.minimum(z, -0.1) + (z >= 0) - (z < 0)
    c = nc.max(z, axis=-1, keepdims=True) + nc.logsumexp(z, axis=-1, keepdims=True)
    d = nc.concatenate([z[:, 1:], nc.pad(z[:, :1], ((0, 0), (0, 0)))], axis=1)
    t = nc.transpose(z.T @ z, (1, 0))                  # [4, 4]
    u = nc.transpose(z.reshape(nc.B, 2, 2), (0, 2, 1)).reshape(nc.B, 4)
    return nc.sum(s * a + b * c + d + u * z) + nc.mean(t ** 2)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the interpreter computes log(0) in masked-out lanes
def test_new_ops_and_their_gradients_on_both_backends():
    rng = np.random.default_rng(1)
    specs = (nc.f32[nc.B, 6], nc.f32[6, 4], nc.f32[4])
    args = (rng.standard_normal((5, 6)).astype(np.float32), rng.standard_normal((6, 4)).astype(np.float32),
            rng.standard_normal(4).astype(np.float32))
    both(new_ops, specs, args, rtol=1e-4, atol=1e-5)
    both(nc.value_and_grad(new_ops, argnums=(0, 1, 2)), specs, args, rtol=1e-4, atol=1e-5)


def test_a_training_step_with_dropout_and_adam_on_both_backends():
    """Dropout masks are Philox streams keyed by (seed, step): both backends drop the same units."""
    rng = np.random.default_rng(2)
    opt = nc.optim.adam(lr=0.05)
    params = {"w1": (rng.standard_normal((10, 16)) * 0.3).astype(np.float32), "b1": np.zeros(16, np.float32),
              "w2": (rng.standard_normal((16, 3)) * 0.3).astype(np.float32), "b2": np.zeros(3, np.float32)}

    def step(params, state, x, y, key):
        def loss(p):
            h = nc.dropout(nc.relu(x @ p["w1"] + p["b1"]), 0.3, key)
            return nc.mean(nc.sparse_categorical_crossentropy(y, h @ p["w2"] + p["b2"], from_logits=True))
        value, grads = nc.value_and_grad(loss)(params)
        params, state = opt.update(params, grads, state)
        return value, params, state

    specs = (params, opt.init(params), nc.f32[nc.B, 10], nc.i64[nc.B], nc.i64[2])
    f_np, f_tr = nc.jit(step, *specs), nc.jit(step, *specs, backend="triton")
    p_np = p_tr = params
    s_np = s_tr = opt.init(params)
    for k in range(3):
        x, y = rng.standard_normal((8, 10)).astype(np.float32), rng.integers(0, 3, 8)
        key = np.array([5, k + 1])
        v_np, p_np, s_np = f_np(p_np, s_np, x, y, key)
        v_tr, p_tr, s_tr = f_tr(p_tr, s_tr, x, y, key)
        np.testing.assert_allclose(v_tr, v_np, rtol=1e-5)
        for name in params:
            np.testing.assert_allclose(p_tr[name], p_np[name], rtol=1e-4, atol=1e-6, err_msg=f"{name} step {k}")


def test_a_small_convnet_gradient_on_both_backends():
    rng = np.random.default_rng(3)

    def loss(x, y, k, b, w):
        h = nc.relu(nc.conv2d(x, k, padding="same") + b)
        h = nc.max_pool2d(h, 2)
        z = nc.global_avg_pool2d(h) @ w
        return nc.mean(nc.sparse_categorical_crossentropy(y, z, from_logits=True))

    specs = (nc.f32[nc.B, 6, 6, 2], nc.i64[nc.B], nc.f32[3, 3, 2, 4], nc.f32[4], nc.f32[4, 3])
    args = (rng.standard_normal((3, 6, 6, 2)).astype(np.float32), rng.integers(0, 3, 3),
            (rng.standard_normal((3, 3, 2, 4)) * 0.3).astype(np.float32), np.zeros(4, np.float32),
            rng.standard_normal((4, 3)).astype(np.float32))
    both(nc.value_and_grad(loss, argnums=(2, 3, 4)), specs, args, rtol=1e-4, atol=1e-5)


def test_the_triton_code_is_there_without_a_gpu():
    t = nc.jit(mlp, nc.f32[nc.B, 4], nc.i64[nc.B], nc.f32[4, 3], nc.f32[3], nc.f32[3, 2], nc.f32[2],
               backend="triton")
    assert "def make(B, dev)" in t.code() and "K.matmul" in t.code()
    with pytest.raises(ValueError, match="unknown backend"):
        nc.jit(lambda x: x * 2, nc.f32[4], backend="cuda")


def test_the_graph_api_example_trains_on_triton():
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": root, "TRITON_INTERPRET": "1"}
    r = subprocess.run([sys.executable, os.path.join(root, "examples", "graph_api.py"), "--epochs", "1",
                        "--hidden", "16", "--batch-size", "256", "--backend", "triton"],
                       capture_output=True, text=True, env=env, cwd=root, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Epoch: 0 Loss: ")
