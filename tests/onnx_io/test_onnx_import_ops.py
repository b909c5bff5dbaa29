"""Each supported ONNX op, imported with nc.onnx.load, against onnxruntime over
the attribute space the operator specification allows (hypothesis draws the
attributes, shapes and broadcasting); and the errors for what is not supported."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from extras import ONNX_REASON

onnx = pytest.importorskip("onnx", reason=ONNX_REASON)
pytest.importorskip("onnxruntime", reason=ONNX_REASON)

import nncompile as nc  # noqa: E402
from nncompile.errors import NNError  # noqa: E402
from onnx_cases import compare, model  # noqa: E402

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RNG = np.random.default_rng(0)


def arr(*shape, positive=False):
    a = RNG.normal(size=shape).astype(np.float32)
    return np.abs(a) + 0.1 if positive else a


@pytest.mark.parametrize("op,positive", [("Relu", False), ("Sigmoid", False), ("Tanh", False), ("Exp", False),
                                         ("Log", True), ("Sqrt", True), ("Identity", False)])
def test_unary(op, positive):
    x = arr(3, 4, 5, positive=positive)
    compare(model(op, {"x": x}, {}, {}, 17), {"x": x})


@SETTINGS
@given(st.one_of(st.none(), st.floats(0.0, 2.0)))
def test_leaky_relu(alpha):
    x = arr(4, 6)
    compare(model("LeakyRelu", {"x": x}, {}, {} if alpha is None else {"alpha": alpha}, 16), {"x": x})


@pytest.mark.parametrize("approximate", [None, "none", "tanh"])
def test_gelu(approximate):
    x = arr(4, 6) * 3
    compare(model("Gelu", {"x": x}, {}, {} if approximate is None else {"approximate": approximate}, 20),
            {"x": x}, atol=2e-5)


BROADCAST = [(3, 4, 5), (5,), (4, 1), (1,), (), (1, 4, 5), (3, 1, 5)]


@SETTINGS
@given(st.sampled_from(["Add", "Sub", "Mul", "Div"]), st.sampled_from(BROADCAST), st.booleans(),
       st.sampled_from([7, 13, 14]))
def test_binary_broadcasting(op, shape, data_first, opset):
    x = arr(2, 3, 4, 5)
    w = arr(*shape, positive=op == "Div")
    if data_first:
        m = model(op, {"x": x}, {"w": w}, {}, opset)
    else:   # the initializer on the left: names order in the node is (w, x)
        m = model(op, {"x": x}, {"w": w}, {}, opset)
        m.graph.node[0].input[:] = ["w", "x"]
    compare(m, {"x": x})


def test_binary_of_two_data_inputs():
    x, y = arr(3, 4), arr(3, 4, positive=True)
    compare(model("Div", {"x": x, "y": y}, {}, {}, 14), {"x": x, "y": y})


@SETTINGS
@given(st.sampled_from(["Softmax", "LogSoftmax"]), st.integers(2, 4), st.data())
def test_softmax_axes_in_both_opset_semantics(op, rank, data):
    opset = data.draw(st.sampled_from([11, 13]))
    axis = data.draw(st.one_of(st.none(), st.integers(1 if opset < 13 else -rank + 1, rank - 1)))
    if opset < 13 and axis is not None and axis not in (1, rank - 1, -1):
        axis = 1
    x = arr(*([3, 4, 2, 3][:rank]))
    compare(model(op, {"x": x}, {}, {} if axis is None else {"axis": axis}, opset), {"x": x})


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 4), st.booleans())
def test_matmul(k, n, stacked):
    x = arr(3, 2, k) if stacked else arr(3, k)
    compare(model("MatMul", {"x": x}, {"w": arr(k, n)}, {}, 13), {"x": x})


@SETTINGS
@given(st.booleans(), st.sampled_from([1.0, 0.5, -2.0]), st.sampled_from([1.0, 0.0, 3.0]),
       st.sampled_from([None, (4,), (1, 4), (), (1,)]))
def test_gemm(trans_b, alpha, beta, c_shape):
    x = arr(3, 5)
    w = arr(4, 5) if trans_b else arr(5, 4)
    inits = {"w": w} if c_shape is None else {"w": w, "c": arr(*c_shape)}
    attrs = {"transB": int(trans_b), "alpha": alpha, "beta": beta}
    compare(model("Gemm", {"x": x}, inits, attrs, 13), {"x": x})


def test_gemm_trans_a_contracts_the_batch():
    a, b = arr(6, 3), arr(6, 4)       # A^T B: [3, 6] @ [6, 4]
    compare(model("Gemm", {"a": a, "b": b}, {}, {"transA": 1, "alpha": 0.5}, 13), {"a": a, "b": b})


def test_gemm_both_transposed():
    a = arr(5, 3)
    m = model("Gemm", {"a": a}, {"w": arr(4, 3), "c": arr(4)}, {"transA": 0, "transB": 1, "beta": 2.0}, 11)
    compare(m, {"a": a})


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2]))
    c = groups * draw(st.integers(1, 2))
    f = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    attrs = {}
    if draw(st.booleans()):
        attrs["strides"] = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    if draw(st.booleans()):
        attrs["dilations"] = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    pad = draw(st.sampled_from(["pads", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID", None]))
    if pad.startswith("SAME") if pad else False:
        attrs.pop("dilations", None)     # onnxruntime (the oracle) refuses dilations with auto_pad SAME_*
    if pad == "pads":
        attrs["pads"] = [draw(st.integers(0, 2)) for _ in range(4)]
    elif pad is not None:
        attrs["auto_pad"] = pad
    if draw(st.booleans()):
        attrs["kernel_shape"] = [kh, kw]
    if groups > 1 or draw(st.booleans()):
        attrs["group"] = groups
    return c, f, (kh, kw), attrs, draw(st.booleans())


@SETTINGS
@given(conv_cases())
def test_conv(case):
    c, f, (kh, kw), attrs, bias = case
    x = arr(2, c, 7, 6)
    inits = {"w": arr(f, c // attrs.get("group", 1), kh, kw)}
    if bias:
        inits["b"] = arr(f)
    compare(model("Conv", {"x": x}, inits, attrs, 11), {"x": x}, atol=2e-5)


@st.composite
def pool_cases(draw, op):
    k = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    attrs = {"kernel_shape": k}
    if draw(st.booleans()):
        attrs["strides"] = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    pad = draw(st.sampled_from(["pads", "SAME_UPPER", "SAME_LOWER", "VALID", None]))
    if pad == "pads":     # the spec: padding smaller than the window
        attrs["pads"] = [draw(st.integers(0, k[i % 2] - 1)) for i in range(4)]
    elif pad is not None:
        attrs["auto_pad"] = pad
    if pad and pad.startswith("SAME") and "strides" in attrs:
        # onnxruntime (the oracle) computes a negative padding where a stride exceeds the window
        attrs["strides"] = [min(s, kk) for s, kk in zip(attrs["strides"], k)]
    if pad in ("pads", None, "VALID") and draw(st.booleans()):
        attrs["ceil_mode"] = 1
    if op == "AveragePool" and draw(st.booleans()) and not attrs.get("ceil_mode"):
        attrs["count_include_pad"] = 1
    return attrs


@SETTINGS
@given(st.data(), st.sampled_from(["MaxPool", "AveragePool"]))
def test_pooling(data, op):
    attrs = data.draw(pool_cases(op))
    x = arr(2, 3, 7, 6)
    compare(model(op, {"x": x}, {}, attrs, 19 if op == "AveragePool" else 12), {"x": x})


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pooling(op):
    x = arr(2, 3, 5, 4)
    compare(model(op, {"x": x}, {}, {}, 13), {"x": x})


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4), (2, 3, 2, 2)])
def test_flatten(shape):
    x = arr(*shape)
    compare(model("Flatten", {"x": x}, {}, {}, 13), {"x": x})
    compare(model("Flatten", {"x": x}, {}, {"axis": 1}, 11), {"x": x})


@pytest.mark.parametrize("shape", [(0, -1), (-1, 12), (0, 4, 3), (0, 2, -1, 2), (0, 3, 0)])
def test_reshape(shape):
    x = arr(2, 3, 4)
    compare(model("Reshape", {"x": x}, {"s": np.array(shape, np.int64)}, {}, 14), {"x": x})


def test_reshape_to_a_fixed_batch_is_refused_with_a_symbolic_batch():
    x = arr(2, 3, 4)
    m = model("Reshape", {"x": x}, {"s": np.array([2, 12], np.int64)}, {}, 14)
    with pytest.raises(NNError, match=r"node 'the_reshape' \(Reshape, opset 14\): .*fixes the batch axis to 2"):
        nc.onnx.load(m).trace()


@pytest.mark.parametrize("perm", [None, (0, 2, 1), (0, 1, 2), (2, 0, 1)])
def test_transpose(perm):
    x = arr(3, 2, 4)
    compare(model("Transpose", {"x": x}, {}, {} if perm is None else {"perm": list(perm)}, 13), {"x": x})


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_concat(axis):
    a, b, c = arr(2, 3, 4), arr(2, 3, 4), arr(2, 3, 4)
    compare(model("Concat", {"a": a, "b": b, "c": c}, {}, {"axis": axis}, 13), {"a": a, "b": b, "c": c})


@SETTINGS
@given(st.sampled_from([(3, 4), (3, 4, 2, 2), (3, 4, 5)]), st.one_of(st.none(), st.floats(1e-6, 1e-1)),
       st.sampled_from([9, 14, 15]))
def test_batch_normalization_inference(shape, eps, opset):
    x = arr(*shape)
    c = shape[1]
    inits = {"scale": arr(c), "bias": arr(c), "mean": arr(c), "var": arr(c, positive=True)}
    compare(model("BatchNormalization", {"x": x}, inits, {} if eps is None else {"epsilon": eps}, opset), {"x": x},
            atol=2e-5)


def test_dropout_is_the_identity_in_inference():
    x = arr(3, 4)
    compare(model("Dropout", {"x": x}, {"ratio": np.array(0.3, np.float32)}, {}, 13), {"x": x})
    compare(model("Dropout", {"x": x}, {}, {"ratio": 0.5}, 10), {"x": x})
    m = model("Dropout", {"x": x}, {"ratio": np.array(0.3, np.float32), "t": np.array(True)}, {}, 13)
    with pytest.raises(NNError, match="training_mode"):
        nc.onnx.load(m).trace()


@st.composite
def reduce_cases(draw):
    axes = draw(st.one_of(st.none(), st.lists(st.integers(-2, 2), min_size=1, max_size=2, unique_by=lambda a: a % 3)))
    keep = draw(st.sampled_from([None, 0, 1]))
    return axes, keep


@SETTINGS
@given(st.sampled_from([("ReduceMean", 13), ("ReduceMean", 18), ("ReduceSum", 11), ("ReduceSum", 13)]),
       reduce_cases())
def test_reductions(op_opset, case):
    op, opset = op_opset
    axes, keep = case
    x = arr(2, 3, 4)
    attrs = {} if keep is None else {"keepdims": keep}
    inits = {}
    as_input = (op == "ReduceMean" and opset >= 18) or (op == "ReduceSum" and opset >= 13)
    if axes is not None:
        if as_input:
            inits["axes"] = np.array(axes, np.int64)
        else:
            attrs["axes"] = axes
    compare(model(op, {"x": x}, inits, attrs, opset), {"x": x})


def test_reduce_with_empty_axes_and_noop():
    x = arr(2, 3)
    compare(model("ReduceSum", {"x": x}, {}, {"noop_with_empty_axes": 1}, 13), {"x": x})


def test_unsupported_op_names_node_op_type_and_opset():
    x = arr(2, 3)
    with pytest.raises(NNError, match=r"node 'the_cos' \(Cos, opset 13\): op Cos is not supported") as e:
        nc.onnx.load(model("Cos", {"x": x}, {}, {}, 13))
    assert "Conv" in e.value.hint


def test_unsupported_attribute_names_the_node():
    x = arr(2, 3, 5, 5)
    m = model("MaxPool", {"x": x}, {}, {"kernel_shape": [2, 2], "dilations": [2, 2]}, 12)
    with pytest.raises(NNError, match=r"node 'the_maxpool' \(MaxPool, opset 12\): dilations"):
        nc.onnx.load(m).trace()


def test_missing_file_and_garbage(tmp_path):
    with pytest.raises(NNError, match="no such ONNX file"):
        nc.onnx.load(tmp_path / "nope.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"\x00\x01garbage")
    with pytest.raises(NNError, match="not a readable ONNX model"):
        nc.onnx.load(tmp_path / "bad.onnx")


def test_constant_nodes_as_operands_and_shapes():
    """A float Constant tensor is an operand (a weight); an int64 one a static shape."""
    from onnx import TensorProto, helper, numpy_helper
    x = arr(2, 3, 4)
    w = arr(12)
    nodes = [helper.make_node("Constant", [], ["s"], value=numpy_helper.from_array(np.array([0, 12], np.int64))),
             helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w)),
             helper.make_node("Constant", [], ["k"], value_float=2.0),
             helper.make_node("Reshape", ["x", "s"], ["r"]),
             helper.make_node("Mul", ["r", "w"], ["m"]),
             helper.make_node("Add", ["m", "k"], ["y0"])]
    g = helper.make_graph(nodes, "c", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
                          [helper.make_tensor_value_info("y0", TensorProto.FLOAT, ["N", 12])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    got = compare(m, {"x": x})
    np.testing.assert_allclose(got, x.reshape(2, 12) * w + 2.0, rtol=1e-6)
    assert "w" in nc.onnx.load(m).params
