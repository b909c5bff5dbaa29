"""IR inference graph -> ONNX model, through one table (`EXPORT`: IR op -> emitter).

The graph exported is a program's `predict` graph after the required passes:
batch norm already reads its running statistics (each batchnorm layer is
written as one BatchNormalization node) and dropout is not in it.
Parameters and batch-norm state become initializers; every other graph
input becomes a graph input whose batch dimension `B` is the symbolic
dimension "batch". Each ONNX node is named after the layer its IR node came
from (`h1/MatMul_11`), so a viewer (Netron) shows the program's layers.

The IR's images are channels last ([B, H, W, C], Keras); ONNX's Conv and
pooling are channels first. A window op is exported between two Transposes
(NHWC -> NCHW and back), and a transpose pair that cancels (one window op
feeding another) is left out. Convolution kernels are stored as ONNX's
[F, C/groups, kh, kw].
"""
from __future__ import annotations

from typing import Callable, Mapping, Optional

import numpy as np

from ..errors import NNError
from ..ir.graph import B, Graph, Node
from . import IR_VERSION, OPSET, require_onnx

TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)
ONNX_DTYPE = {"f32": 1, "i64": 7, "f64": 11}     # TensorProto.FLOAT, INT64, DOUBLE


def onnx_dtype(dtype: str) -> int:
    if dtype not in ONNX_DTYPE:
        raise NNError(f"the IR dtype {dtype} has no ONNX export here (exported: {', '.join(ONNX_DTYPE)})")
    return ONNX_DTYPE[dtype]


class _Builder:
    """The ONNX graph being built: nodes, initializers, and each IR node's value name."""

    def __init__(self, onnx, g: Graph):
        self.onnx, self.h, self.g = onnx, onnx.helper, g
        self.nodes: list = []
        self.inits: list = []
        self.names: dict[int, str] = {}
        self.nchw: dict[int, str] = {}      # IR node id -> the name of its NCHW transpose, made once
        self.kernels: dict[int, str] = {}   # conv kernel input id -> its initializer, stored as [F, C/g, kh, kw]
        self._k = 0

    def name_of(self, n: Node) -> str:
        return self.names[n.id]

    def fresh(self, n: Node, what: str) -> str:
        self._k += 1
        return f"{n.layer or 'graph'}/{what}_{self._k}"

    def node(self, n: Node, op_type: str, inputs, out: Optional[str] = None, **attrs) -> str:
        out = out or self.fresh(n, op_type)
        self.nodes.append(self.h.make_node(op_type, list(inputs), [out], name=f"{out}:{op_type}",
                                           **{k: v for k, v in attrs.items() if v is not None}))
        return out

    def const(self, n: Node, value, dtype) -> str:
        name = self.fresh(n, "const")
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def ints(self, n: Node, values) -> str:
        return self.const(n, np.asarray(list(values), np.int64), np.int64)

    def to_nchw(self, x: Node) -> str:
        """x (channels last) as NCHW: undoing the NHWC transpose a window op just made."""
        if x.id not in self.nchw:
            self.nchw[x.id] = self.node(x, "Transpose", [self.name_of(x)], perm=list(TO_NCHW))
        return self.nchw[x.id]

    def from_nchw(self, n: Node, y: str) -> str:
        self.nchw[n.id] = y
        return self.node(n, "Transpose", [y], perm=list(TO_NHWC))


Emit = Callable[[_Builder, Node], str]
EXPORT: dict[str, Emit] = {}


def _row(*ops: str):
    def deco(fn: Emit) -> Emit:
        for o in ops:
            EXPORT[o] = fn
        return fn
    return deco


def _simple(op: str, onnx_op: str, **attrs) -> None:
    EXPORT[op] = lambda b, n: b.node(n, onnx_op, [b.name_of(i) for i in n.inputs], **attrs)


for _ir, _ox in (("add", "Add"), ("sub", "Sub"), ("mul", "Mul"), ("div", "Div"), ("maximum", "Max"),
                 ("neg", "Neg"), ("exp", "Exp"), ("log", "Log"), ("sqrt", "Sqrt"), ("abs", "Abs"),
                 ("sign", "Sign"), ("relu", "Relu"), ("sigmoid", "Sigmoid"), ("tanh", "Tanh"),
                 ("softplus", "Softplus"), ("gelu", "Gelu")):
    _simple(_ir, _ox)
_simple("gelu_tanh", "Gelu", approximate="tanh")
_simple("softmax", "Softmax", axis=-1)
_simple("log_softmax", "LogSoftmax", axis=-1)
EXPORT["transpose"] = lambda b, n: b.node(n, "Transpose", [b.name_of(n.inputs[0])], perm=list(n.attrs["perm"]))
EXPORT["leaky_relu"] = lambda b, n: b.node(n, "LeakyRelu", [b.name_of(n.inputs[0])], alpha=float(n.attrs["alpha"]))
EXPORT["elu"] = lambda b, n: b.node(n, "Elu", [b.name_of(n.inputs[0])], alpha=float(n.attrs["alpha"]))
EXPORT["softsign"] = lambda b, n: b.node(n, "Softsign", [b.name_of(n.inputs[0])])
# silu(x) = x * sigmoid(x): ONNX has no single op for it before opset 24's Swish
EXPORT["silu"] = lambda b, n: b.node(n, "Mul", [b.name_of(n.inputs[0]),
                                                b.node(n, "Sigmoid", [b.name_of(n.inputs[0])])])
EXPORT["square"] = lambda b, n: b.node(n, "Mul", [b.name_of(n.inputs[0])] * 2)
EXPORT["cast"] = lambda b, n: b.node(n, "Cast", [b.name_of(n.inputs[0])], to=onnx_dtype(n.attrs["dtype"]))
EXPORT["argmax"] = lambda b, n: b.node(n, "ArgMax", [b.name_of(n.inputs[0])], axis=-1, keepdims=0)
EXPORT["concat"] = lambda b, n: b.node(n, "Concat", [b.name_of(i) for i in n.inputs], axis=int(n.attrs["axis"]))


@_row("const")
def _const(b: _Builder, n: Node) -> str:
    from ..ir.ops import NP_DTYPE
    return b.const(n, n.attrs["value"], NP_DTYPE[n.dtype])


@_row("round_to")
def _round_to(b: _Builder, n: Node) -> str:
    # mixed precision's rounding of a matmul or convolution operand, kept in its dtype:
    # a cast to bf16 / f16 (ONNX rounds to nearest even, as the IR) and back
    low = {"bf16": 16, "f16": 10}[n.attrs["precision"]]     # TensorProto.BFLOAT16, FLOAT16
    return b.node(n, "Cast", [b.node(n, "Cast", [b.name_of(n.inputs[0])], to=low)], to=onnx_dtype(n.dtype))


@_row("clip")
def _clip(b: _Builder, n: Node) -> str:
    from ..ir.ops import NP_DTYPE
    dt = NP_DTYPE[n.dtype]
    return b.node(n, "Clip", [b.name_of(n.inputs[0]), b.const(n, n.attrs["lo"], dt), b.const(n, n.attrs["hi"], dt)])


@_row("equal", "greater", "greater_equal", "not_equal")
def _compare(b: _Builder, n: Node) -> str:
    ins = [b.name_of(i) for i in n.inputs]
    if n.op == "not_equal":
        mask = b.node(n, "Not", [b.node(n, "Equal", ins)])
    else:
        mask = b.node(n, {"equal": "Equal", "greater": "Greater", "greater_equal": "GreaterOrEqual"}[n.op], ins)
    return b.node(n, "Cast", [mask], to=onnx_dtype(n.dtype))     # the IR's comparisons are 0/1 numbers


@_row("where")
def _where(b: _Builder, n: Node) -> str:
    from ..ir.ops import NP_DTYPE
    c, x, y = n.inputs
    nonzero = b.node(n, "Not", [b.node(n, "Equal", [b.name_of(c), b.const(n, 0, NP_DTYPE[c.dtype])])])
    return b.node(n, "Where", [nonzero, b.name_of(x), b.name_of(y)])


@_row("sum", "mean", "max")
def _reduce(b: _Builder, n: Node) -> str:
    x = n.inputs[0]
    axes = n.attrs["axes"]
    axes = range(len(x.shape)) if axes is None else ((axes,) if isinstance(axes, int) else axes)
    op = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax"}[n.op]
    return b.node(n, op, [b.name_of(x), b.ints(n, axes)], keepdims=int(bool(n.attrs["keepdims"])))


@_row("matmul")
def _matmul(b: _Builder, n: Node) -> str:
    a, w = (b.name_of(i) for i in n.inputs)
    ta, tb = bool(n.attrs.get("ta")), bool(n.attrs.get("tb"))
    if not (ta or tb):
        return b.node(n, "MatMul", [a, w])
    return b.node(n, "Gemm", [a, w], transA=int(ta), transB=int(tb))


@_row("reshape")
def _reshape(b: _Builder, n: Node) -> str:
    shape = [-1 if d == B else int(d) for d in n.attrs["shape"]]
    return b.node(n, "Reshape", [b.name_of(n.inputs[0]), b.ints(n, shape)])


@_row("slice")
def _slice(b: _Builder, n: Node) -> str:
    a = n.attrs
    return b.node(n, "Slice", [b.name_of(n.inputs[0]), b.ints(n, [a["start"]]), b.ints(n, [a["stop"]]),
                               b.ints(n, [a["axis"]])])


@_row("pad")
def _pad(b: _Builder, n: Node) -> str:
    rank = len(n.shape)
    pads = [0] * (2 * rank)
    ax = n.attrs["axis"] % rank
    pads[ax], pads[rank + ax] = n.attrs["before"], n.attrs["after"]
    return b.node(n, "Pad", [b.name_of(n.inputs[0]), b.ints(n, pads)])


def _onnx_pads(padding) -> list[int]:
    (top, bottom), (left, right) = padding
    return [int(top), int(left), int(bottom), int(right)]


@_row("conv2d")
def _conv(b: _Builder, n: Node) -> str:
    x, w = n.inputs
    if w.op == "input" and w.id in b.kernels:
        kernel = b.kernels[w.id]
    else:   # a computed kernel: [kh, kw, C/g, F] -> [F, C/g, kh, kw] in the graph
        kernel = b.node(n, "Transpose", [b.name_of(w)], perm=[3, 2, 0, 1])
    a = n.attrs
    y = b.node(n, "Conv", [b.to_nchw(x), kernel], kernel_shape=list(a["window"]), strides=list(a["strides"]),
               pads=_onnx_pads(a["padding"]), dilations=list(a["dilation"]), group=int(a["groups"]))
    return b.from_nchw(n, y)


@_row("maxpool2d", "avgpool2d")
def _pool(b: _Builder, n: Node) -> str:
    a = n.attrs
    extra = {} if n.op == "maxpool2d" else {"count_include_pad": 0}    # Keras: padding is not counted
    y = b.node(n, "MaxPool" if n.op == "maxpool2d" else "AveragePool", [b.to_nchw(n.inputs[0])],
               kernel_shape=list(a["window"]), strides=list(a["strides"]), pads=_onnx_pads(a["padding"]), **extra)
    return b.from_nchw(n, y)


def _batchnorm_input(g: Graph, layer: str, nodes: list) -> Optional[Node]:
    """The input of an inference batch norm layer's nodes, if they are the lowering's
    (x - moving_mean) * 1/sqrt(moving_variance + eps) * gamma + beta; else None."""
    mm, beta = g.inputs.get(f"{layer}.moving_mean"), g.inputs.get(f"{layer}.beta")
    last = nodes[-1]
    sub = next((n for n in nodes if n.op == "sub" and n.inputs[1] is mm), None)
    if sub is None or last.op != "add" or last.inputs[1] is not beta or sub.inputs[0].layer == layer:
        return None
    return sub.inputs[0]


def _emit_batchnorm(b: _Builder, g: Graph, n: Node, x: Node, args: tuple[float, float]) -> str:
    """One BatchNormalization node (channels on axis 1) for the layer that ends in `n`;
    `args`: (epsilon, momentum), the momentum kept for whoever trains the model next."""
    ins = [b.names[g.inputs[f"{n.layer}.{k}"].id] for k in ("gamma", "beta", "moving_mean", "moving_variance")]
    attrs = {"epsilon": float(args[0]), "momentum": float(args[1])}
    r = len(x.shape)
    if r == 2:
        return b.node(n, "BatchNormalization", [b.name_of(x)] + ins, **attrs)
    if r == 4:
        return b.from_nchw(n, b.node(n, "BatchNormalization", [b.to_nchw(x)] + ins, **attrs))
    to = [0, r - 1, *range(1, r - 1)]
    back = [to.index(k) for k in range(r)]
    y = b.node(n, "BatchNormalization", [b.node(n, "Transpose", [b.name_of(x)], perm=to)] + ins, **attrs)
    return b.node(n, "Transpose", [y], perm=back)


def export_graph(g: Graph, tensors: Mapping[str, np.ndarray], *, name: str, doc: str = "",
                 batchnorms: Mapping[str, tuple[float, float]] = {}):
    """The ONNX ModelProto of inference graph `g`; `tensors` holds every param and
    state input (and any other input stored in the model, by name); `batchnorms`
    names the batch norm layers (their epsilon and momentum), each exported as
    one BatchNormalization node. Raises NNError naming the node for an op that
    has no ONNX form."""
    onnx = require_onnx("exporting to ONNX")
    h = onnx.helper
    b = _Builder(onnx, g)
    missing = [k for k, s in g.input_specs.items() if s.role in ("param", "state") and k not in tensors]
    if missing:
        raise NNError(f"exporting '{name}': no values for {', '.join(missing)}",
                      hint="pass the parameters and the batch-norm state, e.g. trainer.host('model_state')"
                      if any(g.input_specs[k].role == "state" for k in missing) else None)
    conv_kernels = {n.inputs[1].id for n in g.nodes if n.op == "conv2d"}
    other_users = {i.id for n in g.nodes if n.op != "conv2d" for i in n.inputs}
    inputs = []
    for key, node in g.inputs.items():
        spec = g.input_specs[key]
        b.names[node.id] = key
        if spec.role in ("param", "state") or key in tensors:
            from ..ir.ops import NP_DTYPE
            a = np.asarray(tensors[key], NP_DTYPE[node.dtype])
            if tuple(a.shape) != tuple(node.shape):
                raise NNError(f"exporting '{name}': {key} has shape {list(a.shape)}, the model needs "
                              f"{list(node.shape)}")
            if node.id in conv_kernels and node.id not in other_users:
                a = np.ascontiguousarray(a.transpose(3, 2, 0, 1))
                b.kernels[node.id] = key
            b.inits.append(onnx.numpy_helper.from_array(a, key))
        else:
            dims = ["batch" if d == B else int(d) for d in node.shape]
            inputs.append(h.make_tensor_value_info(key, onnx_dtype(node.dtype), dims))
    live = g.live_nodes()
    by_layer: dict[str, list[Node]] = {}
    for n in live:
        if n.layer in batchnorms and n.op != "input":
            by_layer.setdefault(n.layer, []).append(n)
    bn_in = {layer: _batchnorm_input(g, layer, nodes) for layer, nodes in by_layer.items()}
    for n in live:
        if n.op == "input":
            continue
        if bn_in.get(n.layer) is not None:      # the layer's nodes: one BatchNormalization at its last
            if n is by_layer[n.layer][-1]:
                b.names[n.id] = _emit_batchnorm(b, g, n, bn_in[n.layer], batchnorms[n.layer])
            continue
        emit = EXPORT.get(n.op)
        if emit is None:
            where = f"{n.loc}: " if n.loc else ""
            raise NNError(f"{where}cannot export op '{n.op}' (layer '{n.layer}') to ONNX: it has no ONNX form here",
                          hint="ONNX export covers the inference graph's ops; see docs/onnx.md")
        b.names[n.id] = emit(b, n)
    outputs = []
    for oname, node in g.outputs.items():
        src = b.name_of(node)
        b.nodes.append(h.make_node("Identity", [src], [oname], name=f"{oname}:Identity"))
        dims = ["batch" if d == B else int(d) for d in node.shape]
        outputs.append(h.make_tensor_value_info(oname, onnx_dtype(node.dtype), dims))
    graph = h.make_graph(_drop_cancelling(b.nodes), name, inputs, outputs, initializer=b.inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)], producer_name="nncompile",
                         doc_string=doc)
    model.ir_version = IR_VERSION
    from .. import __version__
    model.producer_version = __version__
    return model


def _drop_cancelling(nodes: list) -> list:
    """Leave out Transpose(NCHW) of Transpose(NHWC) of y: read y itself. The NHWC
    transpose stays when something else reads it (unused nodes are harmless to
    ONNX, but onnx.checker and viewers are happier without them: they are dropped)."""
    producer = {o: nd for nd in nodes for o in nd.output}
    rename: dict[str, str] = {}
    for nd in nodes:
        if nd.op_type == "Transpose" and list(nd.attribute[0].ints) == list(TO_NCHW):
            src = producer.get(nd.input[0])
            if src is not None and src.op_type == "Transpose" and list(src.attribute[0].ints) == list(TO_NHWC):
                rename[nd.output[0]] = src.input[0]
    kept = []
    for nd in nodes:
        if nd.output[0] in rename:
            continue
        for i, name in enumerate(nd.input):
            if name in rename:
                nd.input[i] = rename[name]
        kept.append(nd)
    used = {i for nd in kept for i in nd.input}
    outputs = {nd.output[0] for nd in kept if nd.op_type == "Identity"}
    # a transpose back to NHWC that nothing reads any more
    return [nd for nd in kept if nd.output[0] in used or nd.output[0] in outputs or nd.op_type != "Transpose"]


def export_program(program, tensors: Mapping[str, np.ndarray], path: Optional[str] = None, *, force: bool = False):
    """The ONNX model of a Program's inference graph, written atomically to `path` if given."""
    g = program.graphs.unoptimized["predict"]
    src = program.ast.filename or "<string>"
    bns = {i.layer.name: (i.layer.args["epsilon"], i.layer.args["momentum"]) for i in program.graphs.infos
           if i.layer.kind == "batchnorm"}
    model = export_graph(g, tensors, name=program.ast.model.name, batchnorms=bns,
                         doc=f"model '{program.ast.model.name}' from {src}, exported by nncompile")
    onnx = require_onnx()
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        write_model(model, path, sources=[program.ast.filename], force=force)
    return model


def written_by_us(path: str) -> bool:
    """Whether `path` is an ONNX model nncompile wrote (one it may replace unasked)."""
    onnx = require_onnx()
    try:
        with open(path, "rb") as f:
            m = onnx.ModelProto.FromString(f.read())
    except Exception:   # noqa: BLE001 - anything unreadable is not ours
        return False
    return m.producer_name == "nncompile"


def write_model(model, path, sources=(), flag: str = "-o", force: bool = False) -> None:
    """Write `model` atomically to `path`; refuses a folder, a missing folder, the
    command's own input files (as `graph -o` does), and, unless `force`, an
    existing file that is not an ONNX model nncompile wrote."""
    import os
    from ..runtime.weights import write_atomic
    path = os.fspath(path)
    if os.path.isdir(path):
        raise NNError(f"{flag} {path}: is a folder", hint=f"give a file name, e.g. {os.path.join(path, 'model.onnx')}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise NNError(f"{flag} {path}: the folder {os.path.dirname(path) or folder} does not exist")
    for s in sources:
        if s and os.path.exists(s) and os.path.exists(path) and os.path.samefile(s, path):
            raise NNError(f"{flag} {path}: that is one of this command's input files; it is never written over")
    if os.path.exists(path) and not force and not written_by_us(path):
        raise NNError(f"{flag} {path}: the file exists and is not an ONNX model written by nncompile; "
                      "it is not written over", hint="choose another name, or pass --force (force=True) to "
                                                     "replace it")
    data = model.SerializeToString()
    try:
        write_atomic(path, lambda f: f.write(data))
    except PermissionError:
        raise NNError(f"{flag} {path}: permission denied") from None
