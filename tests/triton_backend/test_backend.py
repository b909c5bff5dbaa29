"""The Triton backend vs the NumPy backend on whole models, on the CPU through
the Triton interpreter (tests/triton_backend/conftest.py sets TRITON_INTERPRET=1).

Tolerance: fp32, rtol 1e-4 / atol 1e-5 relative to each array's scale (the
backends differ only in summation order and exp/tanh rounding; measured
differences are ~1e-7). Besides the hand-written models, programs drawn from
the shared generator (tests/programs.py) are compared the same way. Dropout masks are bit-identical (Philox), so training
with dropout matches too. Also: no host fallbacks for the examples' ops,
in-place state updates, and every generated kernel compiling ahead of time for
sm_90 within the 227 KB shared-memory limit. (The fusion pass itself, IR in and
groups out, needs no Triton: tests/passes/test_fusion.py.)
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from extras import TRITON_REASON

torch = pytest.importorskip("torch", reason=TRITON_REASON)
triton = pytest.importorskip("triton", reason=TRITON_REASON)

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import nncompile  # noqa: E402
import programs as P  # noqa: E402
from nncompile.ir.graph import B  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # masked-off lanes (interpreter)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RTOL, ATOL = 1e-4, 1e-5


def close(a, b, what=""):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(1.0, float(np.abs(b).max()) if b.size else 1.0)
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL * scale, err_msg=what)


def src(layers, loss, opt, metrics="[accuracy]", inp=6):
    body = "\n".join("  " + l for l in layers)
    return (f"model m {{\n  input x: f32[{inp}]\n{body}\n}}\ntrain {{\n  loss = {loss}\n"
            f"  optimizer = {opt}\n  metrics = {metrics}\n  batch_size = 16\n}}\n")


MODELS = {
    # the brief's model: relu -> softmax, sparse labels, adam
    "sparse_adam": src(["dense h(8, relu)", "dense o(3, softmax)"],
                       "sparse_categorical_crossentropy", "adam(lr=0.01)"),
    # dropout + batch norm, one-hot labels, sgd with nesterov momentum
    "cce_sgd_dropout_bn": src(["dense h(8, relu)", "batchnorm bn", "dropout(0.3)", "dense o(3, softmax)"],
                              "categorical_crossentropy", "sgd(lr=0.1, momentum=0.9, nesterov=true)"),
    # sigmoid/tanh, binary cross-entropy, rmsprop with momentum
    "bce_rmsprop": src(["dense h(8, tanh)", "dense o(2, sigmoid)"],
                       "binary_crossentropy", "rmsprop(lr=0.01, momentum=0.5)"),
    # gelu, leaky relu, layer norm, l1/l2 penalties, mse, adamw
    "mse_adamw": src(["dense h(8, gelu, l2=0.01, l1=0.001)", "layernorm ln", "dense h2(5, leaky_relu)",
                      "dense o(2)"], "mse", "adamw(lr=0.01)", metrics="[mse, mae]"),
    # Keras's other activations (issue 16)
    "keras_activations": src(["dense h(8, elu(0.5))", "dense h2(8, selu)", "dense h3(8, swish)",
                              "dense h4(8, softsign)", "dense h5(6, hard_sigmoid)", "dense h6(6, softplus)",
                              "dense o(2, exponential)"], "mse", "adam(lr=0.01)", metrics="[mse]"),
    # a normalization first, label smoothing, clipping: per variable, global, by value (issue 16)
    "keras_norm_smooth_clip": src(["normalization nz", "dense h(8, silu, init=lecun_normal)", "dense o(3, softmax)"],
                                  "sparse_categorical_crossentropy(label_smoothing=0.1)", "sgd(lr=0.1, clipnorm=0.05)"),
    "keras_global_clip": src(["dense h(8, softsign, init=orthogonal)", "dense o(3)"],
                             "categorical_crossentropy(from_logits=true, label_smoothing=0.2)",
                             "adam(lr=0.01, global_clipnorm=0.1)"),
    "keras_clipvalue": src(["dense h(8, hard_sigmoid, init=variance_scaling(2, mode=fan_avg))", "dense o(2, sigmoid)"],
                           "binary_crossentropy(label_smoothing=0.3)", "rmsprop(lr=0.01, clipvalue=0.02)"),
    # mae, plain sgd, no bias
    "mae_sgd": src(["dense h(8, relu, use_bias=false)", "dense o(2)"], "mae", "sgd(lr=0.05)",
                   metrics="[mae]"),
}


data = P.program_batch   # data(prog, n, seed): a random batch of the right shape for the program


@pytest.fixture(scope="module", params=sorted(MODELS))
def pair(request):
    s = MODELS[request.param]
    return request.param, nncompile.compile(s, backend="numpy"), nncompile.compile(s, backend="triton")


def test_model_matches_numpy(pair):
    name, pn, pt = pair
    params = pn.init_params(0)
    x, y = data(pn, 16, 1)
    # loss and gradients (dropout off, batch statistics)
    l1, g1 = pn.loss_and_grads(params, x, y)
    l2, g2 = pt.loss_and_grads(params, x, y)
    close(l2, l1, "loss")
    assert set(g1) == set(g2)
    for k in g1:
        close(g2[k], g1[k], f"grad {k}")
    close(pt.predict(params, x), pn.predict(params, x), "predict")
    # 3 training steps, then a last batch of a different size (5)
    tn, tt = pn.trainer(seed=3, params=params), pt.trainer(seed=3, params=params)
    for i in range(3):
        xb, yb = data(pn, 16, 10 + i)
        a, b = tn.train_batch(xb, yb), tt.train_batch(xb, yb)
        assert a.keys() == b.keys()
        for k in a:
            close(b[k], a[k], f"step {i} {k}")
    xb, yb = data(pn, 5, 20)
    close(tt.step(xb, yb), tn.step(xb, yb), "last batch loss")
    hn, ht = tn.host("params"), tt.host("params")
    for k in hn:
        close(ht[k], hn[k], f"param {k} after 4 steps")
    sn, st = tn.host("state"), tt.host("state")
    assert sn.keys() == st.keys()
    for k in sn:
        close(st[k], sn[k], f"state {k}")
    # inference with the trained state (batch norm running statistics)
    xe, ye = data(pn, 7, 30)
    en, et = tn.evaluate(xe, ye), tt.evaluate(xe, ye)
    for k in en:
        close(et[k], en[k], f"evaluate {k}")
    close(tt.predict(xe), tn.predict(xe), "predict after training")
    # no host fallbacks for these ops
    for gname in ("train_step", "loss_and_grads", "evaluate", "predict"):
        assert pt.compiled(gname).fallbacks == [], (gname, pt.compiled(gname).fallbacks)


@settings(max_examples=P.examples(8), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=P.program_specs(), n=st.integers(1, 6), seed=st.integers(0, 1000))
def test_generated_programs_match_numpy(spec, n, seed):
    """Random programs: loss, gradients and predictions of a batch, then two
    training steps (batches of n and 3): losses, metrics, state and parameters
    (under an adaptive optimizer, the elements whose step follows rounding
    noise are left out: programs.compare_training)."""
    pn, pt = nncompile.compile(spec.source), nncompile.compile(spec.source, backend="triton")
    rng = np.random.default_rng(seed)
    params = pn.init_params(seed)
    x, y = P.random_batch(spec, n, rng)
    l1, g1 = pn.loss_and_grads(params, x, y)
    l2, g2 = pt.loss_and_grads(params, x, y)
    close(l2, l1, f"loss\n{spec.source}")
    assert set(g1) == set(g2) == P.trainable(pn)
    for k in g1:
        close(g2[k], g1[k], f"grad {k}\n{spec.source}")
    close(pt.predict(params, x), pn.predict(params, x), f"predict\n{spec.source}")
    P.compare_training(pn, pt, spec, params, [P.random_batch(spec, m, rng) for m in (n, 3)], close, seed=seed)


def test_state_lives_on_device_and_updates_in_place():
    s = MODELS["sparse_adam"]
    pt = nncompile.compile(s, backend="triton")
    tr = pt.trainer(seed=0)
    before = {k: v for k, v in tr.arrays.items()}
    snap = {k: v.clone() for k, v in before.items()}
    x, y = data(pt, 16, 0)
    tr.step(x, y)
    for k, v in tr.arrays.items():
        assert isinstance(v, torch.Tensor) and v is before[k]
    changed = [k for k in before if not torch.equal(before[k], snap[k])]
    assert changed, "no parameter changed"
    prog = pt.compiled("train_step")
    # parameters and optimizer state are written by the update kernel itself, not copied
    assert ".copy_(" not in prog.source.split("def run(")[1]


def test_source_is_readable_triton():
    pt = nncompile.compile(MODELS["cce_sgd_dropout_bn"], backend="triton")
    s = pt.compiled("train_step").source
    assert "@triton.jit" in s and "tl.rand(" in s and "K.matmul(" in s
    assert "# group" in s and "memory:" in s and "<string>:" in s
    assert "FALLBACK" not in s


def test_dropout_masks_identical_to_numpy():
    # the train step with dropout matches the NumPy backend step for step (above);
    # here: a model that is mostly dropout, so a mask mismatch could not hide
    s = src(["dense h(16, relu)", "dropout(0.5)", "dense o(3, softmax)"],
            "sparse_categorical_crossentropy", "sgd(lr=0.5)")
    pn, pt = nncompile.compile(s, backend="numpy"), nncompile.compile(s, backend="triton")
    params = pn.init_params(0)
    tn, tt = pn.trainer(seed=7, params=params), pt.trainer(seed=7, params=params)
    for i in range(2):
        x, y = data(pn, 16, i)
        close(tt.step(x, y), tn.step(x, y))
    hn, ht = tn.host(), tt.host()
    for k in hn:
        close(ht[k], hn[k], k)


def test_call_interface_and_numpy_args():
    pt = nncompile.compile(MODELS["sparse_adam"], backend="triton")
    prog = pt.compiled("predict")
    params = pt.init_params(0)
    x, _ = data(pt, 4, 0)
    out = prog({**params, "x": x})
    assert prog.to_host(out["y_hat"]).shape == (4, 3)
    assert prog.input_names == list(prog.graph.inputs)
    # numpy state arrays passed to run() get their new values too
    step = pt.compiled("train_step")
    g = pt.graphs.train_step
    feed = {}
    for k, n in g.inputs.items():
        shape = tuple(4 if d == B else d for d in n.shape)
        feed[k] = np.zeros(shape, np.float32)
    feed.update(x=x, y=np.array([0, 1, 2, 0]), rng=np.array([0, 1]), step=np.float32(1), lr=np.float32(0.01))
    flat = [k for k in g.inputs if g.input_specs[k].role == "param"]
    for k in flat:
        feed[k] = pt.init_params(0).get(k, np.full(feed[k].shape, 0.1, np.float32)).astype(np.float32)
    before = {k: feed[k].copy() for k in flat}
    step(feed)
    assert any(not np.array_equal(before[k], feed[k]) for k in flat)


# --- AOT: every generated kernel compiles for sm_90 ----------------------------------------

AOT_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ.pop("TRITON_INTERPRET", None)
    sys.path.insert(0, {root!r})
    import nncompile
    from nncompile.backends.triton.codegen import aot_specs
    from nncompile.backends.triton.aot import compile_all
    specs, seen = [], set()
    for s in json.loads(sys.argv[1]):
        p = nncompile.compile(s, backend="triton")
        for name in ("train_step", "loss_and_grads", "evaluate", "predict"):
            for sp in aot_specs(getattr(p.graphs, name)):
                key = sp["kernel"].src if hasattr(sp["kernel"], "src") else sp["name"]
                if (key, tuple(sorted(sp["constexprs"].items())), sp["num_warps"]) not in seen:
                    seen.add((key, tuple(sorted(sp["constexprs"].items())), sp["num_warps"]))
                    specs.append(sp)
    res = compile_all(specs)
    print(json.dumps([{{k: r.get(k) for k in ("name", "shared", "smem_ok", "error")}} for r in res]))
""")


def aot_results(sources) -> list[dict]:
    """compile_all's report for every kernel the programs `sources` generate (in a process
    without TRITON_INTERPRET: interpreted kernels cannot be compiled)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    out = subprocess.run([sys.executable, "-c", AOT_SCRIPT.format(root=ROOT), json.dumps(list(sources))],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_generated_kernels_compile_aot_sm90():
    res = aot_results(MODELS.values())
    assert len(res) >= 10
    bad = [r for r in res if r["error"] or not r["smem_ok"]]
    assert not bad, bad
    assert max(r["shared"] for r in res) < 227 * 1024


def test_many_programs_and_split_reductions(monkeypatch):
    """Tiny blocks: every kernel runs as many programs and column reductions
    split rows, so grid and offset arithmetic are exercised (the interpreter
    otherwise runs each small kernel as one program)."""
    monkeypatch.setenv("NNCOMPILE_TRITON_TINY_BLOCKS", "1")
    test_model_matches_numpy(("tiny", nncompile.compile(MODELS["cce_sgd_dropout_bn"], backend="numpy"),
                              nncompile.compile(MODELS["cce_sgd_dropout_bn"], backend="triton")))
    test_model_matches_numpy(("tiny", nncompile.compile(MODELS["sparse_adam"], backend="numpy"),
                              nncompile.compile(MODELS["sparse_adam"], backend="triton")))


def test_snapshot_restore_on_device():
    pt = nncompile.compile(MODELS["sparse_adam"], backend="triton")
    tr = pt.trainer(seed=0)
    x, y = data(pt, 16, 0)
    snap = tr.snapshot()
    first = tr.step(x, y)
    tr.step(x, y)
    tr.restore(snap)
    assert tr.step(x, y) == pytest.approx(first, rel=1e-6)


def test_dump_code_needs_no_gpu():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    out = subprocess.run([sys.executable, "-m", "nncompile", "dump", os.path.join(ROOT, "examples", "digits.nn"),
                          "--backend", "triton", "--stage", "code"], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "@triton.jit" in out.stdout and "def make(B, dev):" in out.stdout and "tl.rand(" in out.stdout
