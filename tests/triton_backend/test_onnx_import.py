"""An imported ONNX model (nc.onnx.load) compiled by the Triton backend (under
the interpreter) against onnxruntime: a residual convnet with batch norm,
pooling, concat and a dense head, written by nncompile's own exporter."""
from pathlib import Path

import numpy as np
import pytest

from extras import ONNX_REASON, TRITON_REASON

pytest.importorskip("torch", reason=TRITON_REASON)
pytest.importorskip("triton", reason=TRITON_REASON)
pytest.importorskip("onnx", reason=ONNX_REASON)
ort = pytest.importorskip("onnxruntime", reason=ONNX_REASON)

import nncompile as nc  # noqa: E402

SRC = """
model m {
  input x: f32[6, 6, 2]
  conv2d c1(4, 3, relu, padding=same)
  batchnorm bn
  conv2d c2(4, 3, padding=same)
  add r(from=[c1, c2])
  avgpool2d p(2)
  flatten f
  dense h(5, gelu)
  dense h2(5, tanh)
  concat j(from=[h, h2])
  dense out(3, softmax)
}
"""


def test_imported_model_on_triton_matches_onnxruntime():
    prog = nc.compile(SRC)
    rng = np.random.default_rng(0)
    w = {**prog.init_params(0), **prog.init_state()}
    w = {k: (rng.random(v.shape) + 0.5).astype(np.float32) if "variance" in k else
         (v if k.endswith("weight") else rng.normal(size=v.shape).astype(np.float32)) for k, v in w.items()}
    model = prog.export_onnx(w)
    x = rng.normal(size=(3, 6, 6, 2)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    f = nc.onnx.load(model)
    jt = f.jit("triton")
    np.testing.assert_allclose(jt(f.params, x), want, rtol=1e-4, atol=1e-5)
    assert not jt.program.fallbacks, jt.program.fallbacks
