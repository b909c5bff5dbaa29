"""Single-node ONNX models for the import tests: build one, run it with
onnxruntime (the oracle) and with `nc.onnx.load`."""
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import nncompile as nc


def model(op_type, data: dict, inits: dict, attrs: dict, opset: int, n_out: int = 1, extra_inputs=()):
    """`data`: name -> example array (axis 0 the batch: declared symbolic);
    `inits`: name -> initializer array; inputs in the order data, inits, extra
    ('' for an absent optional input)."""
    names = list(data) + list(inits) + list(extra_inputs)
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op_type, names, outs, name=f"the_{op_type.lower()}", **attrs)
    ins = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), ["N", *v.shape[1:]])
           for k, v in data.items()]
    inits = [numpy_helper.from_array(v, k) for k, v in inits.items()]
    bare = helper.make_graph([node], "single", ins, [helper.make_value_info(o, onnx.TypeProto()) for o in outs],
                             initializer=inits)
    opsets = [helper.make_opsetid("", opset)]
    inferred = onnx.shape_inference.infer_shapes(helper.make_model(bare, opset_imports=opsets))
    types = {v.name: v.type for v in inferred.graph.output if v.type.tensor_type.HasField("shape")}
    outv = [helper.make_value_info(o, types[o]) if o in types
            else helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs]
    g = helper.make_graph([node], "single", ins, outv, initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def run_ort(m, data):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    s = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return s.run(None, data)


def compare(m, data, backend="numpy", rtol=1e-5, atol=1e-5):
    want = run_ort(m, data)[0]
    f = nc.onnx.load(m)
    got = f.jit(backend, cpu_kernels="numpy" if backend == "numpy" else None)(f.params, *data.values())
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    return got
