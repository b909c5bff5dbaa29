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


CASES = {   # op_type, attributes, data shape, initializer shapes, opset
    "conv": ("Conv", {"strides": [2, 1], "pads": [1, 0, 2, 1], "group": 2, "dilations": [1, 2]}, (2, 4, 7, 6),
             {"w": (6, 2, 3, 2), "b": (6,)}, 11),
    "maxpool_ceil": ("MaxPool", {"kernel_shape": [3, 2], "strides": [2, 2], "ceil_mode": 1}, (2, 3, 7, 6), {}, 12),
    "avgpool_counting_pads": ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1},
                              (2, 3, 5, 5), {}, 19),
    "gemm": ("Gemm", {"transB": 1, "alpha": 0.5, "beta": 2.0}, (3, 5), {"w": (4, 5), "c": (4,)}, 13),
    "batchnorm": ("BatchNormalization", {"epsilon": 1e-3}, (2, 3, 4, 4),
                  {"scale": (3,), "bias": (3,), "mean": (3,), "var": (3,)}, 15),
    "softmax_axis1": ("Softmax", {"axis": 1}, (2, 3, 4), {}, 13),
    "reduce_mean": ("ReduceMean", {"axes": [1, 2], "keepdims": 0}, (2, 3, 4), {}, 13),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_single_ops_on_triton_match_onnxruntime(case):
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "onnx_io"))
    from onnx_cases import compare, model
    op, attrs, shape, inits, opset = CASES[case]
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=shape).astype(np.float32)}
    weights = {k: (np.abs(rng.normal(size=s)) + 0.5 if k == "var" else rng.normal(size=s)).astype(np.float32)
               for k, s in inits.items()}
    compare(model(op, data, weights, attrs, opset), data, backend="triton", atol=2e-5)
