"""ONNX export against onnxruntime: every example and random programs exported
with random weights, checked by onnx.checker (full check), run by onnxruntime
and compared with nncompile's own `predict` (the NumPy backend)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from extras import ONNX_REASON

onnx = pytest.importorskip("onnx", reason=ONNX_REASON)
ort = pytest.importorskip("onnxruntime", reason=ONNX_REASON)

import nncompile  # noqa: E402
import programs as P  # noqa: E402
from nncompile.errors import NNError  # noqa: E402
from nncompile.onnx import IR_VERSION, OPSET  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.nn"))


def random_weights(prog, seed=0):
    """Parameters and state away from their initial values (non-zero biases, running
    statistics that are not 0 and 1), so that each tensor's layout matters."""
    rng = np.random.default_rng(seed)
    w = {**prog.init_params(seed), **prog.init_state()}
    for k, v in w.items():
        if k.endswith("moving_variance"):
            w[k] = (rng.random(v.shape) + 0.5).astype(v.dtype)
        elif not k.endswith("weight"):
            w[k] = rng.normal(size=v.shape).astype(v.dtype)
    return w


def run_onnx(model, name, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {name: x})[0]


def check_export(prog, w, batches=(1, 5)):
    model = prog.export_onnx(w)
    onnx.checker.check_model(model, full_check=True)
    name = prog.ast.model.input.name
    rng = np.random.default_rng(1)
    for n in batches:   # one model serves every batch size
        x = rng.normal(size=(n,) + tuple(prog.ast.model.input.shape)).astype(np.float32)
        np.testing.assert_allclose(run_onnx(model, name, x), prog.predict(w, x), rtol=2e-4, atol=2e-5)
    return model


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_exports_and_onnxruntime_agrees(path):
    prog = nncompile.compile(str(path))
    model = check_export(prog, random_weights(prog))
    assert model.opset_import[0].version == OPSET and model.ir_version == IR_VERSION
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and all(d.dim_value > 0 for d in dims[1:])
    layers = {layer.name for layer in prog.ast.model.layers if layer.kind != "dropout"}
    named = {nd.name.split("/")[0] for nd in model.graph.node}
    assert layers <= named      # every layer that computes something names its nodes


def test_inference_graph_uses_running_statistics_and_no_dropout():
    prog = nncompile.compile(str(ROOT / "examples" / "digits.nn"))
    w = random_weights(prog)
    model = check_export(prog, w)
    x = np.random.default_rng(2).normal(size=(1, 64)).astype(np.float32)
    # batch size 1: batch statistics would make every normalised value 0
    y = run_onnx(model, "x", x)
    assert y.std() > 1e-3
    ops = [nd.op_type for nd in model.graph.node]
    assert "Dropout" not in ops and "RandomUniform" not in ops and "RandomUniformLike" not in ops


def test_conv_kernels_are_stored_channels_first():
    prog = nncompile.compile(str(ROOT / "examples" / "digits_cnn.nn"))
    w = random_weights(prog)
    model = check_export(prog, w)
    init = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(init["c2.weight"], w["c2.weight"].transpose(3, 2, 0, 1))
    convs = [nd for nd in model.graph.node if nd.op_type == "Conv"]
    assert len(convs) == 3 and convs[0].name.startswith("c1/")
    # c2 -> maxpool -> c3: NHWC/NCHW transposes between window ops cancel
    assert sum(nd.op_type == "Transpose" for nd in model.graph.node) < 2 * 4


@settings(max_examples=int(os.environ.get("NNCOMPILE_ONNX_EXAMPLES", 25)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(P.program_specs())
def test_random_programs_export_and_onnxruntime_agrees(spec):
    prog = nncompile.compile(spec.source)
    check_export(prog, random_weights(prog))


def test_missing_state_is_an_error_naming_it():
    prog = nncompile.compile(str(ROOT / "examples" / "digits.nn"))
    with pytest.raises(NNError, match="bn1.moving_mean") as e:
        prog.export_onnx(prog.init_params(0))
    assert "state" in (e.value.hint or "")


def test_export_writes_atomically_and_keeps_foreign_files(tmp_path):
    prog = nncompile.compile(str(ROOT / "examples" / "textbook_classifier.nn"))
    w = random_weights(prog)
    out = tmp_path / "m.onnx"
    prog.export_onnx(w, out)
    prog.export_onnx(w, out)                     # its own file: replaced
    assert onnx.load(str(out)).producer_name == "nncompile"
    other = tmp_path / "notes.txt"
    other.write_text("keep me")
    with pytest.raises(NNError, match="not written over"):
        prog.export_onnx(w, other)
    assert other.read_text() == "keep me"
    prog.export_onnx(w, other, force=True)
    assert onnx.load(str(other)).graph.name == "classifier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "notes.txt"]    # no temp files left
    with pytest.raises(NNError, match="is a folder"):
        prog.export_onnx(w, tmp_path)


def nnc(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "nncompile", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_cli_export_from_a_run_folder(tmp_path):
    src = ROOT / "examples" / "textbook_classifier.nn"
    r = nnc("run", src, "--epochs", "2", "--out", tmp_path / "run", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = nnc("export", src, "--weights", tmp_path / "run", "-o", tmp_path / "m.onnx", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stderr and "opset 20" in r.stderr
    prog = nncompile.compile(str(src))
    from nncompile.runtime.weights import load_weights
    w = load_weights(str(tmp_path / "run"), prog)
    x = np.random.default_rng(0).normal(size=(9, 10)).astype(np.float32)
    model = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(model, full_check=True)
    np.testing.assert_allclose(run_onnx(model, "x", x), prog.predict(w, x), rtol=1e-4, atol=1e-6)
    # never over the program or its weights, and a foreign file only with --force
    r = nnc("export", src, "--weights", tmp_path / "run", "-o", tmp_path / "run" / "weights_final.npz", cwd=tmp_path)
    assert r.returncode == 2 and "input files" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    r = nnc("export", src, "--weights", tmp_path / "run", "-o", tmp_path / "x.csv", cwd=tmp_path)
    assert r.returncode == 2 and "--force" in r.stderr
    assert (tmp_path / "x.csv").read_text() == "a,b\n1,2\n"
    r = nnc("export", src, "--weights", tmp_path / "run", "-o", tmp_path / "x.csv", "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_an_op_without_an_onnx_form_is_an_error_naming_it():
    from nncompile.onnx.exporter import export_graph
    g, _, _ = nncompile.trace(lambda p, y: nncompile.take_label(p, y), nncompile.f32[nncompile.B, 3],
                              nncompile.i64[nncompile.B])
    with pytest.raises(NNError, match="cannot export op 'take_label'"):
        export_graph(g, {}, name="t")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_export_imports_back_as_the_same_program(path):
    """export -> `nncompile import`'s conversion: the same layers, weights and predictions
    (batch norm comes back from its BatchNormalization node, convolutions from between
    their transposes)."""
    from nncompile.onnx.layers import check_program, to_program
    prog = nncompile.compile(str(path))
    w = random_weights(prog)
    model = prog.export_onnx(w)
    text, w2 = to_program(model, path.name)
    back, _ = check_program(text, w2, model)
    def kinds(p):
        return [layer.kind for layer in p.ast.model.layers if layer.kind not in ("dropout", "activation")]
    assert kinds(back) == kinds(prog)
    bn = [layer for layer in back.ast.model.layers if layer.kind == "batchnorm"]
    assert all(layer.args["momentum"] == 0.99 and layer.args["epsilon"] == 1e-3 for layer in bn)
    x = np.random.default_rng(3).normal(size=(6,) + tuple(prog.ast.model.input.shape)).astype(np.float32)
    np.testing.assert_allclose(back.predict(w2, x), prog.predict(w, x), rtol=1e-5, atol=1e-6)


def test_batch_norm_exports_as_one_node():
    prog = nncompile.compile(str(ROOT / "examples" / "digits_cnn.nn"))
    model = check_export(prog, random_weights(prog))
    bn = [nd for nd in model.graph.node if nd.op_type == "BatchNormalization"]
    assert len(bn) == 1 and bn[0].name.startswith("bn1/")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in bn[0].attribute}
    assert abs(attrs["epsilon"] - 1e-3) < 1e-9 and abs(attrs["momentum"] - 0.99) < 1e-7


# ops that only training graphs hold (gradients, losses, masks, the flat parameter buffer)
TRAINING_ONLY = {"input", "relu_grad", "leaky_grad", "gelu_grad", "gelu_tanh_grad", "clip_grad", "unreduce",
                 "reduce_like", "softmax_xent", "softmax_xent_grad", "take_label", "onehot", "dropout_mask",
                 "conv2d_grad_input", "conv2d_grad_filter", "maxpool2d_grad", "avgpool2d_grad", "slice_flat",
                 "concat_flat", "shard_mean"}


def test_every_inference_op_of_the_ir_table_has_an_onnx_row():
    """A new IR op that a layer or activation lowers to needs a row in onnx/exporter.py: EXPORT
    (or, if only training graphs hold it, a place in TRAINING_ONLY)."""
    from nncompile.ir.ops import OPS
    from nncompile.onnx.exporter import EXPORT
    missing = sorted(set(OPS) - set(EXPORT) - TRAINING_ONLY)
    assert not missing, f"IR ops without an ONNX export row: {missing}"


def test_the_rows_layers_do_not_use_against_onnxruntime():
    """The EXPORT rows the layers never reach (comparisons, where, clip, cast, pad,
    slice, argmax, the other reductions, ...), through a traced graph-API function."""
    from nncompile.onnx.exporter import export_graph
    nc = nncompile

    def fn(x, z):
        h = nc.where(nc.greater(x, 0.1), nc.square(x), nc.clip(x, -0.5, 0.5))
        h = h + nc.equal(x, x) - nc.not_equal(x, z) * nc.greater_equal(z, x) + nc.sign(x) * nc.abs(z)
        h = nc.maximum(nc.negative(h), nc.softplus(z)) + nc.gelu(x, approximate=True) + nc.leaky_relu(z, 0.3)
        p = nc.pad(h[:, 1:3, :], ((0, 0), (1, 0), (0, 2)))              # [B, 3, 6]
        t = p.transpose(0, 2, 1).reshape(nc.B, 18)
        c = nc.concatenate([t, nc.cast(nc.argmax(t), nc.f32).reshape(nc.B, 1)], axis=1)
        return (nc.log_softmax(c) + nc.sum(x, axis=(1, 2), keepdims=True).reshape(nc.B, 1),
                nc.max(z, axis=1), nc.exp(nc.log(nc.abs(x) + 1.0)), nc.argmax(c))
    specs = (nc.f32[nc.B, 4, 4], nc.f32[nc.B, 4, 4])
    g, _, _ = nc.trace(fn, *specs)
    ops = {n.op for n in g.nodes}
    assert {"where", "greater", "equal", "not_equal", "greater_equal", "clip", "square", "sign", "abs", "neg",
            "maximum", "softplus", "gelu_tanh", "leaky_relu", "pad", "slice", "transpose", "reshape", "concat",
            "cast", "argmax", "log_softmax", "sum", "max", "exp", "log"} <= ops, ops
    model = export_graph(g, {}, name="rows")
    onnx.checker.check_model(model, full_check=True)
    rng = np.random.default_rng(0)
    x, z = rng.normal(size=(5, 4, 4)).astype(np.float32), rng.normal(size=(5, 4, 4)).astype(np.float32)
    z[0, 0, :] = x[0, 0, :]     # equal and not_equal both ways
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": x, "z": z})
    want = nc.jit(fn, *specs)(x, z)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("precision", ["bf16", "f16"])
def test_round_to_exports_as_casts_that_round_as_torch(precision):
    """Mixed precision's `round_to` (an operand rounded to bf16 / f16, kept in f32): two
    Casts, against torch's conversion (round to nearest even). The node is made by hand:
    the row must not depend on which ops this checkout's table holds."""
    torch = pytest.importorskip("torch")
    from nncompile.ir.graph import Graph
    from nncompile.onnx.exporter import export_graph
    g = Graph("r")
    x = g.input("x", (nncompile.B, 64))
    g.output("y", g._append("round_to", (x,), {"precision": precision}, "f32", x.shape))
    model = export_graph(g, {}, name="r")
    onnx.checker.check_model(model, full_check=True)
    rng = np.random.default_rng(0)
    v = (rng.normal(size=(3, 64)) * 10.0 ** rng.integers(-3, 4, size=(3, 64))).astype(np.float32)
    got = run_onnx(model, "x", v)
    want = torch.from_numpy(v).to(torch.bfloat16 if precision == "bf16" else torch.float16).float().numpy()
    np.testing.assert_array_equal(got, want)


def test_a_mixed_precision_program_exports_its_rounding():
    """A mixed_bf16 program's inference rounds matmul and conv operands (round_to):
    the ONNX model does too, so onnxruntime agrees with predict."""
    from nncompile.ir.ops import OPS
    if "round_to" not in OPS:
        pytest.skip("this checkout has no mixed precision (issue 17)")
    src = (ROOT / "examples" / "digits_cnn.nn").read_text().replace(
        "seed           = 42", "seed           = 42\n  precision      = mixed_bf16")
    prog = nncompile.compile(src)
    assert "round_to" in {n.op for n in prog.graphs.unoptimized["predict"].nodes}
    model = check_export(prog, random_weights(prog))
    assert "Cast" in {nd.op_type for nd in model.graph.node}
