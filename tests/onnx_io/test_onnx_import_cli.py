"""`nncompile import model.onnx -o model.nn`: layer graphs exported by PyTorch
become a .nn program and weights that predict as torch does; the round trip
import -> fine-tune (init_from, frozen, lr_mult) -> export; and the messages for
what the language cannot say."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from extras import ONNX_REASON, TORCH_REASON

onnx = pytest.importorskip("onnx", reason=ONNX_REASON)
ort = pytest.importorskip("onnxruntime", reason=ONNX_REASON)
torch = pytest.importorskip("torch", reason=TORCH_REASON)
nn = torch.nn

import nncompile  # noqa: E402
from nncompile.errors import NNError  # noqa: E402
from nncompile.onnx.layers import to_program  # noqa: E402
from nncompile.runtime.weights import load_weights  # noqa: E402
from torch_export import export  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


class DigitsCNN(nn.Module):
    """A residual convnet for the 8x8 digits, with batch norm and a dense head."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        h = torch.relu(self.bn(self.c1(x)))
        h = nn.functional.max_pool2d(torch.relu(h + self.c2(h)), 2)
        return torch.softmax(self.fc(torch.flatten(h, 1)), 1)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.h1, self.bn, self.h2, self.out = nn.Linear(6, 12), nn.BatchNorm1d(12), nn.Linear(12, 12), nn.Linear(12, 3)

    def forward(self, x):
        h = nn.functional.leaky_relu(self.bn(self.h1(x)), 0.05)
        h = h + torch.sigmoid(self.h2(h))
        return torch.softmax(self.out(h), -1)


def nnc(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "nncompile", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.mark.parametrize("fold", [False, True], ids=["batchnorm", "folded"])
@pytest.mark.parametrize("net,shape", [(DigitsCNN, (1, 8, 8)), (MLP, (6,))], ids=["cnn", "mlp"])
def test_imported_program_predicts_as_torch(net, shape, fold):
    torch.manual_seed(0)
    module = net()
    x = torch.randn(7, *shape)
    text, weights = to_program(export(module, x, fold=fold), "m.onnx")
    prog = nncompile.compile(text)
    with torch.no_grad():
        want = module(x).numpy()
    xin = x.numpy().transpose(0, 2, 3, 1) if len(shape) == 3 else x.numpy()     # channels last
    np.testing.assert_allclose(prog.predict(weights, xin), want, rtol=1e-4, atol=1e-5)
    kinds = [layer.kind for layer in prog.ast.model.layers]
    if not fold:
        assert "batchnorm" in kinds
    assert "add" in kinds


def test_import_fine_tune_export_round_trip(tmp_path):
    torch.manual_seed(0)
    module = DigitsCNN()
    export(module, torch.randn(2, 1, 8, 8), tmp_path / "cnn.onnx", fold=False)
    r = nnc("import", tmp_path / "cnn.onnx", "-o", tmp_path / "cnn.nn", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "agree with the ONNX graph" in r.stderr
    text = (tmp_path / "cnn.nn").read_text()
    assert 'init_from = weights("cnn.npz")' in text           # the template names the weights file
    assert "conv2d           c1(8, 3, padding=same)" in text and "dense            fc(10, softmax)" in text
    # the weights file is one predict / evaluate / init_from read
    prog = nncompile.compile(str(tmp_path / "cnn.nn"))
    w0 = load_weights(str(tmp_path / "cnn.npz"), prog)
    x = np.random.default_rng(0).normal(size=(5, 8, 8, 1)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(prog.predict(w0, x), want, rtol=1e-4, atol=1e-5)

    # fine-tune: c1 frozen, c2 slowed down, from the imported weights
    tuned = text.replace("c1(8, 3, padding=same)", "c1(8, 3, padding=same, frozen=true)")
    tuned = tuned.replace("c2(8, 3, padding=same)", "c2(8, 3, padding=same, lr_mult=0.1)")
    tuned += """
train {
  data       = builtin("digits")
  loss       = sparse_categorical_crossentropy
  optimizer  = adam(lr=1e-3)
  metrics    = [accuracy]
  epochs     = 2
  batch_size = 64
  init_from  = weights("cnn.npz")
}
"""
    (tmp_path / "tune.nn").write_text(tuned)
    r = nnc("run", tmp_path / "tune.nn", "--out", tmp_path / "run", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    tprog = nncompile.compile(str(tmp_path / "tune.nn"))
    w1 = load_weights(str(tmp_path / "run"), tprog)
    np.testing.assert_array_equal(w1["c1.weight"], w0["c1.weight"])           # frozen
    assert not np.allclose(w1["fc.weight"], w0["fc.weight"])                  # trained
    r = nnc("export", tmp_path / "tune.nn", "--weights", tmp_path / "run", "-o", tmp_path / "tuned.onnx", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    model = onnx.load(str(tmp_path / "tuned.onnx"))
    onnx.checker.check_model(model, full_check=True)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, tprog.predict(w1, x), rtol=1e-4, atol=1e-6)


def test_not_expressible_names_the_node_and_why(tmp_path):
    class TwoBranches(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            h = torch.relu(self.a(x))
            return self.b(h) + self.c(h)     # c reads h, not the layer just before it
    export(TwoBranches(), torch.randn(2, 4), tmp_path / "two.onnx", fold=True)
    r = nnc("import", tmp_path / "two.onnx", "-o", tmp_path / "two.nn", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "node '/c/Gemm' (Gemm, opset 17)" in r.stderr and "not the layer just before it" in r.stderr
    assert not (tmp_path / "two.nn").exists() and not (tmp_path / "two.npz").exists()

    class Odd(nn.Module):
        def forward(self, x):
            return torch.cos(x)
    export(Odd(), torch.randn(2, 4), tmp_path / "odd.onnx", fold=False)
    r = nnc("import", tmp_path / "odd.onnx", "-o", tmp_path / "odd.nn", cwd=tmp_path)
    assert r.returncode == 2 and "(Cos, opset 17) has no layer" in r.stderr


def test_import_keeps_files_it_did_not_write(tmp_path):
    export(MLP(), torch.randn(2, 6), tmp_path / "m.onnx", fold=False)
    (tmp_path / "m.nn").write_text("model mine { input x: f32[1]\n dense out(1) }\n")
    r = nnc("import", tmp_path / "m.onnx", "-o", tmp_path / "m.nn", cwd=tmp_path)
    assert r.returncode == 2 and "--force" in r.stderr
    assert (tmp_path / "m.nn").read_text().startswith("model mine")
    r = nnc("import", tmp_path / "m.onnx", "-o", tmp_path / "m.nn", "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = nnc("import", tmp_path / "m.onnx", "-o", tmp_path / "m.nn", "--weights-out", tmp_path / "w.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr       # its own .nn: replaced without --force
    assert 'weights("w.npz")' in (tmp_path / "m.nn").read_text()
    r = nnc("import", tmp_path / "m.onnx", "-o", tmp_path / "m.onnx", cwd=tmp_path)
    assert r.returncode == 2 and "never written over" in r.stderr


def test_a_channels_first_output_is_refused():
    class ConvOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            return self.c(x)
    with pytest.raises(NNError, match=r"output is an image"):
        to_program(export(ConvOut(), torch.randn(2, 1, 5, 5), fold=False), "conv.onnx")


def test_dropout_and_unfused_activations_become_layers():
    """Gemm -> Dropout(0.25) -> Relu (the dropout between them: an activation layer) ->
    MatMul + Add (a dense layer and its bias) -> Softmax (folded into it)."""
    from onnx import TensorProto, helper, numpy_helper
    from nncompile.onnx.layers import check_program
    rng = np.random.default_rng(0)
    w1, b1, w2, b2 = (rng.normal(size=s).astype(np.float32) for s in ((5, 4), (5,), (5, 3), (3,)))
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="hidden", transB=1, alpha=0.5),
             helper.make_node("Dropout", ["h", "r"], ["d"], name="drop"),
             helper.make_node("Relu", ["d"], ["a"], name="act"),
             helper.make_node("MatMul", ["a", "w2"], ["m"], name="out/MatMul"),
             helper.make_node("Add", ["m", "b2"], ["z"], name="out/Add"),
             helper.make_node("Softmax", ["z"], ["y"], name="out/Softmax", axis=-1)]
    inits = [numpy_helper.from_array(v, k) for k, v in
             (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2), ("r", np.array(0.25, np.float32)))]
    g = helper.make_graph(nodes, "hand", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], initializer=inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    text, weights = to_program(model, "hand.onnx")
    assert "dense            hidden(5)" in text and "dropout          drop(0.25)" in text
    assert "activation       act(relu)" in text and "dense            out(3, softmax)" in text
    assert "# out/MatMul, out/Add, out/Softmax" in text        # each layer names the nodes it came from
    prog, _ = check_program(text, weights, model)
    x = rng.normal(size=(4, 4)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(prog.predict(weights, x), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights["hidden.weight"], 0.5 * w1.T)     # alpha folded in
