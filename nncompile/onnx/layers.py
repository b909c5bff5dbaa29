"""An ONNX model that is a layer graph -> a `.nn` program and its weights
(`nncompile import model.onnx -o model.nn`).

The ONNX nodes are read in order, each one becoming a layer of the language
(one table, `RULES`: op_type -> rule), or folding into the layer before it
(a bias `Add` after a dense or conv layer without one, an activation after
a dense or conv layer whose output nothing else reads). The program is
channels last: an image input [N, C, H, W] becomes `input x: f32[H, W, C]`,
convolution kernels are stored as Keras's [kh, kw, C/groups, F], and the
rows of a dense layer that reads a flattened image are reordered from ONNX's
(C, H, W) to (H, W, C). A model channels last in the file already (tf2onnx's
transposes around each Conv, and our own exports) keeps its layout.

What the language cannot say (a layer that reads another one than the layer
just before it, padding that is not `valid` or Keras's `same`, an op with no
layer) is an `NotExpressible` error naming the node, its op_type and why.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import NNError
from . import require_onnx

HEADER = "# imported from ONNX by nncompile"
ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softmax": "softmax"}


class NotExpressible(NNError):
    """An ONNX node that has no layer of the language."""


@dataclass
class Val:
    """An ONNX value as the program sees it: the layer that makes it and its sample shape."""
    layer: str
    shape: tuple                    # without the batch; images as (H, W, C)
    image: bool = False             # an image: ONNX holds it as [N, C, H, W], or [N, H, W, C] if nhwc
    chw: Optional[tuple] = None     # flattened from an image: ONNX's element order (C, H, W)
    nhwc: bool = False              # channels last in ONNX too (Keras / tf2onnx models, our own exports)

    def made_by(self, layer: str) -> "Val":
        """The same value (shape, layout) as the output of `layer`."""
        return Val(layer, self.shape, self.image, self.chw, self.nhwc)


@dataclass
class Layer:
    kind: str
    name: str
    args: list = field(default_factory=list)
    activation: Optional[str] = None
    positional: int = 1             # the arguments before the activation (dense: units; conv2d: filters, size)
    nodes: list = field(default_factory=list)    # the ONNX nodes it came from

    def text(self) -> str:
        k = self.positional
        args = self.args[:k] + ([self.activation] if self.activation else []) + self.args[k:]
        text = f"{self.kind:<16} {self.name}({', '.join(args)})" if args else f"{self.kind:<16} {self.name}"
        return f"{text:<56} # {', '.join(self.nodes)}" if self.nodes else text


class Importer:
    def __init__(self, model, source: str):
        from .loader import fuse_erf_gelu
        onnx = require_onnx("importing ONNX")
        model = fuse_erf_gelu(model)
        self.onnx, self.model, self.source = onnx, model, source
        g = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.consts = {t.name: onnx.numpy_helper.to_array(t) for t in g.initializer}
        self.users: dict[str, int] = {}
        for nd in g.node:
            for i in nd.input:
                self.users[i] = self.users.get(i, 0) + 1
        for o in g.output:
            self.users[o.name] = self.users.get(o.name, 0) + 1
        self.vals: dict[str, Val] = {}
        self.layers: list[Layer] = []
        self.weights: dict[str, np.ndarray] = {}
        self.names: set[str] = set()
        self.node = None
        self.input_name = "x"

    # --- helpers ------------------------------------------------------------------------------------
    def fail(self, why: str, hint: Optional[str] = None) -> NotExpressible:
        n = self.node
        return NotExpressible(f"{self.source}: node '{n.name or n.output[0]}' ({n.op_type}, opset {self.opset}) "
                              f"has no layer in the .nn language: {why}", hint=hint)

    def attrs(self) -> dict:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in self.node.attribute}

    def const(self, name: str, what: str) -> np.ndarray:
        if name not in self.consts:
            raise self.fail(f"its {what} is computed, not a stored tensor")
        return self.consts[name]

    def val(self, name: str) -> Val:
        if name not in self.vals:
            raise self.fail(f"input '{name}' is a constant, not the output of a layer")
        return self.vals[name]

    def chained(self, v: Val) -> None:
        """A layer reads the layer just before it (or the input, first)."""
        last = self.layers[-1].name if self.layers else self.input_name
        if v.layer != last:
            raise self.fail(f"it reads layer '{v.layer}', not the layer just before it ('{last}'); in the "
                            "language only merge layers (add, concat, multiply) read other layers than the "
                            "one before them")

    def name_for(self, kind: str) -> str:
        """A layer name from the node's (PyTorch's '/fc1/Gemm' -> 'fc1'), else KIND_N."""
        n = self.node
        parts = [p for p in re.split(r"[/.:]", n.name or "")
                 if p and p != n.op_type and not p.startswith(n.op_type + "_")]
        base = re.sub(r"\W", "_", "_".join(parts)).strip("_") if parts else ""
        if not base or base[0].isdigit() or base in self.names or base == self.input_name:
            k = 1
            while f"{kind}_{k}" in self.names or f"{kind}_{k}" == self.input_name:
                k += 1
            base = f"{kind}_{k}"
        self.names.add(base)
        return base

    def add_layer(self, kind: str, args=(), src: Optional[Val] = None) -> Layer:
        if src is not None:
            self.chained(src)
        layer = Layer(kind, self.name_for(kind), list(args), nodes=[self.node_name()])
        self.layers.append(layer)
        return layer

    def node_name(self) -> str:
        return self.node.name or self.node.output[0]

    def out(self, v: Val) -> None:
        self.vals[self.node.output[0]] = v

    def foldable(self, v: Val, inp: str) -> Optional[Layer]:
        """The dense/conv layer making `v` if an activation may fold into it."""
        if not self.layers or self.layers[-1].name != v.layer or self.users.get(inp, 0) != 1:
            return None
        last = self.layers[-1]
        return last if last.kind in ("dense", "conv2d") and last.activation is None else None

    # --- the walk -----------------------------------------------------------------------------------
    def run(self) -> tuple[str, dict[str, np.ndarray]]:
        g = self.model.graph
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise NNError(f"{self.source}: the model has {len(inputs)} inputs; a .nn program has one")
        if len(g.output) != 1:
            raise NNError(f"{self.source}: the model has {len(g.output)} outputs; a .nn program has one")
        vi = inputs[0]
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim][1:]
        if vi.type.tensor_type.elem_type != 1 or not dims or not all(d > 0 for d in dims) or len(dims) not in (1, 3):
            raise NNError(f"{self.source}: input '{vi.name}' is not float32 [N, features] or [N, C, H, W]")
        name = re.sub(r"\W", "_", vi.name)
        self.input_name = name if name and not name[0].isdigit() else "x"
        image = len(dims) == 3
        nhwc = input_is_nhwc(self.model)
        shape = tuple(dims) if nhwc or not image else (dims[1], dims[2], dims[0])
        self.vals[vi.name] = Val(self.input_name, shape, image, nhwc=nhwc)
        for nd in g.node:
            self.node = nd
            rule = RULES.get(nd.op_type)
            if rule is None:
                raise self.fail(f"op {nd.op_type} has no layer",
                                hint="expressible: " + ", ".join(sorted(RULES)))
            rule(self, list(nd.input), self.attrs())
        self.node = g.node[-1] if g.node else None
        final = self.vals.get(g.output[0].name)
        if final is None or not self.layers or final.layer != self.layers[-1].name:
            raise NNError(f"{self.source}: the model's output '{g.output[0].name}' is not made by its last layer")
        if final.image:
            raise NNError(f"{self.source}: the model's output is an image [N, C, H, W]; only flat outputs "
                          "are imported (their order would differ in channels last)")
        dim_text = ", ".join(str(d) for d in shape)
        lines = [HEADER, f"# from {self.source} (opset {self.opset}); the weights are in the file beside it."]
        if image and not nhwc:
            lines.append(f"# Images are channels last here: feed {self.input_name} as [N, H, W, C] (the ONNX "
                         "model's [N, C, H, W] transposed).")
        lines += [f"model {_model_name(g.name)} {{", f"  {'input':<16} {self.input_name}: f32[{dim_text}]"]
        lines += [f"  {layer.text()}" for layer in self.layers]
        lines.append("}")
        return "\n".join(lines) + "\n", self.weights


# --- the rules: one per op_type ----------------------------------------------------------------------

def _dense(imp: Importer, x: Val, w: np.ndarray, b: Optional[np.ndarray]):
    if len(x.shape) != 1:
        raise imp.fail(f"a dense layer needs a flat input, got shape {list(x.shape)}")
    if x.chw is not None:   # ONNX flattened (C, H, W); the program flattens (H, W, C)
        c, h, wd = x.chw
        w = w.reshape(c, h, wd, -1).transpose(1, 2, 0, 3).reshape(h * wd * c, -1)
    layer = imp.add_layer("dense", [str(w.shape[1])] + ([] if b is not None else ["use_bias=false"]), x)
    imp.weights[f"{layer.name}.weight"] = np.ascontiguousarray(w, np.float32)
    if b is not None:
        imp.weights[f"{layer.name}.bias"] = np.ascontiguousarray(b.reshape(-1), np.float32)
    imp.out(Val(layer.name, (w.shape[1],)))


def _gemm(imp: Importer, ins, a):
    if a.get("transA", 0):
        raise imp.fail("transA=1 (the batch would be the contracted axis)")
    w = imp.const(ins[1], "weight")
    w = w.T if a.get("transB", 0) else w
    w = w * float(a.get("alpha", 1.0))
    b = None
    if len(ins) > 2 and ins[2]:
        b = imp.const(ins[2], "bias") * float(a.get("beta", 1.0))
        if b.size not in (1, w.shape[1]):
            raise imp.fail(f"a bias of shape {list(b.shape)}, not one value per output")
        b = np.broadcast_to(b.reshape(-1), (w.shape[1],))
    _dense(imp, imp.val(ins[0]), w, b)


def _matmul(imp: Importer, ins, a):
    w = imp.const(ins[1], "right operand")
    if w.ndim != 2:
        raise imp.fail(f"a right operand of rank {w.ndim}")
    _dense(imp, imp.val(ins[0]), w, None)      # a bias Add after it folds in (_add)


def _fold_bias(imp: Importer, ins) -> bool:
    """Add(layer output, stored vector) right after a dense or conv layer without a
    bias, whose output nothing else reads: that layer's bias."""
    consts = [i for i in ins if i in imp.consts]
    if len(ins) != 2 or len(consts) != 1:
        return False
    x = imp.vals.get(next(i for i in ins if i not in imp.consts))
    b = imp.consts[consts[0]]
    last = imp.layers[-1] if imp.layers else None
    if x is None or last is None or x.layer != last.name or last.kind not in ("dense", "conv2d"):
        return False
    channels = x.shape[-1]
    # the bias's axis: the last one, or ONNX's channel axis 1 of an NCHW image ([C, 1, 1])
    fits = b.shape in ((channels,), (1, channels)) if not (x.image and not x.nhwc) else b.shape == (channels, 1, 1)
    value = [i for i in ins if i not in imp.consts][0]
    if not fits or "use_bias=false" not in last.args or last.activation or imp.users.get(value, 0) != 1:
        return False
    last.args.remove("use_bias=false")
    last.nodes.append(imp.node_name())
    imp.weights[f"{last.name}.bias"] = np.ascontiguousarray(b.reshape(-1), np.float32)
    imp.out(x)
    return True


def _same_or_valid(imp: Importer, a, hw, window, strides, dilation) -> str:
    from ..frontend.layers.windows import explicit_padding
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto == "VALID":
        return "valid"
    same = explicit_padding("same", hw, window, strides, dilation)
    if auto == "SAME_UPPER":
        return "same"
    if auto != "NOTSET":
        raise imp.fail(f"auto_pad={auto}: only VALID, SAME_UPPER or explicit pads that equal them")
    p = list(a.get("pads", [0, 0, 0, 0]))
    pads = ((p[0], p[2]), (p[1], p[3]))
    if pads == ((0, 0), (0, 0)):
        return "valid"
    if pads == same:
        return "same"
    raise imp.fail(f"pads={p}: the language pads 'valid' (none) or 'same' (Keras's {list(same)} here)",
                   hint="pad explicitly in the other framework, or use padding that keeps the size")


def _num(v) -> str:
    """A float attribute (ONNX stores float32) as its shortest decimal: 0.9, not 0.8999999761581421."""
    return repr(float(f"{float(v):.7g}"))


def _pair(v) -> str:
    return str(v[0]) if v[0] == v[1] else f"[{v[0]}, {v[1]}]"


def _image_in(imp: Importer, ins) -> Val:
    x = imp.val(ins[0])
    if not x.image or x.nhwc:
        raise imp.fail(f"it needs an image [N, C, H, W], got a sample shape {list(x.shape)}"
                       f"{' held channels last' if x.nhwc else ''}")
    return x


TO_NCHW, TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


def input_is_nhwc(model) -> bool:
    """Whether the image input is channels last in the file: it goes only into
    transposes to NCHW (tf2onnx's pattern, and nncompile's own exports)."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    vi = next(i for i in g.input if i.name not in inits)
    readers = [nd for nd in g.node if vi.name in nd.input]
    return (len(vi.type.tensor_type.shape.dim) == 4 and bool(readers)
            and all(nd.op_type == "Transpose" and _perm(nd) == TO_NCHW for nd in readers))


def _perm(node) -> Optional[list]:
    return next((list(a.ints) for a in node.attribute if a.name == "perm"), None)


def _transpose(imp: Importer, ins, a):
    """Between channels first and last (the transposes around a channels-last
    model's Conv and pooling nodes): no layer, the same image."""
    x = imp.val(ins[0])
    perm = list(a.get("perm", []))
    if x.image and perm == (TO_NCHW if x.nhwc else TO_NHWC):
        v = x.made_by(x.layer)
        v.nhwc = not x.nhwc
        imp.out(v)
        return
    raise imp.fail(f"perm={perm}: only the transposes between channels first and channels last of an image "
                   "have no effect on layers")


def _conv(imp: Importer, ins, a):
    x = _image_in(imp, ins)
    w = imp.const(ins[1], "kernel")
    if w.ndim != 4:
        raise imp.fail(f"a kernel of rank {w.ndim}: only 2-D convolutions have a layer")
    f, cg, kh, kw = w.shape
    strides, dil = tuple(a.get("strides", (1, 1))), tuple(a.get("dilations", (1, 1)))
    groups = int(a.get("group", 1))
    padding = _same_or_valid(imp, a, x.shape[:2], (kh, kw), strides, dil)
    args = [str(f), _pair((kh, kw))]
    args += [f"strides={_pair(strides)}"] if strides != (1, 1) else []
    args += [f"padding={padding}"] if padding != "valid" else []
    args += [f"dilation={_pair(dil)}"] if dil != (1, 1) else []
    args += [f"groups={groups}"] if groups != 1 else []
    bias = len(ins) > 2 and bool(ins[2])
    args += [] if bias else ["use_bias=false"]
    layer = imp.add_layer("conv2d", args, x)
    layer.positional = 2
    imp.weights[f"{layer.name}.weight"] = np.ascontiguousarray(w.transpose(2, 3, 1, 0), np.float32)
    if bias:
        imp.weights[f"{layer.name}.bias"] = np.ascontiguousarray(imp.const(ins[2], "bias"), np.float32)
    imp.out(Val(layer.name, _window_shape(x.shape, (kh, kw), strides, dil, padding, f), True))


def _window_shape(shape, window, strides, dil, padding, channels):
    from ..frontend.layers.windows import explicit_padding
    pads = explicit_padding(padding, shape[:2], window, strides, dil)
    hw = tuple((n + lo + hi - ((k - 1) * d + 1)) // s + 1
               for n, k, s, d, (lo, hi) in zip(shape[:2], window, strides, dil, pads))
    return hw + (channels,)


def _pool(kind: str):
    def rule(imp: Importer, ins, a):
        x = _image_in(imp, ins)
        window = tuple(a["kernel_shape"])
        strides = tuple(a.get("strides", (1, 1)))
        if tuple(a.get("dilations", (1, 1))) != (1, 1):
            raise imp.fail("dilated pooling")
        padding = _same_or_valid(imp, a, x.shape[:2], window, strides, (1, 1))
        if kind == "avgpool2d" and a.get("count_include_pad", 0) and padding == "same":
            raise imp.fail("count_include_pad=1: the language's average leaves the padding out")
        shape = _window_shape(x.shape, window, strides, (1, 1), padding, x.shape[2])
        if a.get("ceil_mode", 0):
            ceil = tuple(-(-(n - k) // s) + 1 for n, k, s in zip(x.shape[:2], window, strides))
            if padding != "valid" or ceil != shape[:2]:
                raise imp.fail("ceil_mode=1 where it changes the output size")
        args = [_pair(window)] + ([f"strides={_pair(strides)}"] if strides != window else [])
        args += [f"padding={padding}"] if padding != "valid" else []
        layer = imp.add_layer(kind, args, x)
        imp.out(Val(layer.name, shape, True))
    return rule


def _global(kind: str):
    def rule(imp: Importer, ins, a):
        x = imp.val(ins[0]) if imp.node.op_type.startswith("Reduce") else _image_in(imp, ins)
        layer = imp.add_layer(kind, [], x)
        # ONNX keeps [N, C, 1, 1]: a flatten or reshape to [N, C] after it is the identity here
        imp.out(Val(layer.name, (x.shape[2],)))
    return rule


def _spatial_reduce(kind: str, attr_until: int):
    """ReduceMean / ReduceMax over H and W of an image: the global pooling layer."""
    def rule(imp: Importer, ins, a):
        x = imp.val(ins[0])
        if imp.opset < attr_until:
            axes = a.get("axes")
        else:
            axes = [int(v) for v in imp.const(ins[1], "axes").reshape(-1)] if len(ins) > 1 and ins[1] else None
        if not x.image or axes is None or sorted(int(v) % 4 for v in axes) != ([1, 2] if x.nhwc else [2, 3]):
            raise imp.fail(f"a reduction over axes {axes}; only the mean or maximum over height and width of "
                           "an image (global pooling) has a layer")
        _global(kind)(imp, ins, a)
    return rule


def _activation(imp: Importer, ins, a):
    op = imp.node.op_type
    x = imp.val(ins[0])
    if op in ("Softmax",):
        rank = len(x.shape) + 1
        axis = int(a.get("axis", -1 if imp.opset >= 13 else 1)) % rank
        if x.image or axis != rank - 1:
            raise imp.fail(f"softmax over axis {a.get('axis')} of a rank-{rank} value; the language's is over "
                           "the last axis of a flat value")
    if op == "LeakyRelu":
        act = f"leaky_relu({_num(a.get('alpha', 0.01))})"
    elif op == "Gelu":
        approx = a.get("approximate", b"none")
        tanh = (approx.decode() if isinstance(approx, bytes) else approx) == "tanh"
        act = "gelu(approximate=true)" if tanh else "gelu"
    else:
        act = ACTIVATIONS[op]
    host = imp.foldable(x, ins[0])
    if host is not None:
        host.activation = act
        host.nodes.append(imp.node_name())
        imp.out(x)
        return
    layer = imp.add_layer("activation", [act], x)
    imp.out(x.made_by(layer.name))


def _batchnorm(imp: Importer, ins, a):
    if a.get("training_mode", 0):
        raise imp.fail("training_mode=1")
    x = imp.val(ins[0])
    if not x.image and len(x.shape) != 1 or x.nhwc:
        raise imp.fail(f"a value of shape {list(x.shape)}{' held channels last' if x.nhwc else ''}: ONNX "
                       "normalizes axis 1")
    eps = float(a.get("epsilon", 1e-5))
    momentum = float(a.get("momentum", 0.9))
    layer = imp.add_layer("batchnorm", [_num(momentum), f"epsilon={_num(eps)}"], x)
    for key, i in (("gamma", 1), ("beta", 2), ("moving_mean", 3), ("moving_variance", 4)):
        imp.weights[f"{layer.name}.{key}"] = np.ascontiguousarray(imp.const(ins[i], key), np.float32)
    imp.out(x.made_by(layer.name))


def _flatten(imp: Importer, ins, a):
    x = imp.val(ins[0])
    if int(a.get("axis", 1)) != 1:
        raise imp.fail(f"axis={a.get('axis')}: only axis=1 keeps the batch")
    _to_flat(imp, x)


def _to_flat(imp: Importer, x: Val):
    if not x.image:      # already flat (a global pool's [N, C, 1, 1] included)
        imp.out(x)
        return
    layer = imp.add_layer("flatten", [], x)
    h, w, c = x.shape
    imp.out(Val(layer.name, (h * w * c,), chw=None if x.nhwc else (c, h, w)))


def _reshape(imp: Importer, ins, a):
    x = imp.val(ins[0])
    shape = [int(d) for d in imp.const(ins[1], "shape").reshape(-1)]
    n = math.prod(x.shape)
    if len(shape) == 2 and shape[0] in (0, -1) and shape[1] in (-1, n) or len(shape) == 2 and shape[1] == n:
        _to_flat(imp, x)
        return
    raise imp.fail(f"a reshape to {shape}; only flattening each sample has a layer")


def _merge(kind: str):
    def rule(imp: Importer, ins, a):
        xs = [imp.val(i) for i in ins]
        first = xs[0]
        if any(v.shape != first.shape or v.image != first.image or v.nhwc != first.nhwc for v in xs):
            raise imp.fail("its operands have different shapes (the language's merges do not broadcast)")
        args = ["from=[" + ", ".join(v.layer for v in xs) + "]"]
        if kind == "concat":
            rank = len(first.shape) + 1
            axis = int(a["axis"]) % rank
            if axis == 0:
                raise imp.fail("concat along the batch axis")
            # NCHW's axis 1 (channels) is the last axis here; H and W come first
            axis = {1: -1, 2: 0, 3: 1}[axis] if first.image and not first.nhwc else axis - 1
            args.append(f"axis={axis}")
            shape = list(first.shape)
            shape[axis] = sum(v.shape[axis] for v in xs)
            shape = tuple(shape)
        else:
            shape = first.shape
        if len({v.layer for v in xs}) != len(xs):
            raise imp.fail("it reads one layer twice")
        if kind == "concat" and any(v.chw is not None for v in xs):
            raise imp.fail("a concat of flattened images (their element order differs channels last)")
        layer = imp.add_layer(kind, args)
        imp.out(Val(layer.name, shape, first.image, first.chw if kind != "concat" else None, first.nhwc))
    return rule


def _identity(imp: Importer, ins, a):
    imp.out(imp.val(ins[0]))


def _dropout(imp: Importer, ins, a):
    x = imp.val(ins[0])
    rate = float(a.get("ratio", 0.5))
    if len(ins) > 1 and ins[1]:
        rate = float(imp.const(ins[1], "ratio").reshape(()))
    layer = imp.add_layer("dropout", [_num(rate)], x)
    imp.out(x.made_by(layer.name))


def _constant(imp: Importer, ins, a):
    from .loader import constant_value as value
    imp.consts[imp.node.output[0]] = value(imp.onnx, imp.node, a)


def _add(imp: Importer, ins, a):
    if not _fold_bias(imp, ins):
        _merge("add")(imp, ins, a)


RULES = {
    "Gemm": _gemm, "MatMul": _matmul, "Conv": _conv, "MaxPool": _pool("maxpool2d"),
    "AveragePool": _pool("avgpool2d"), "GlobalAveragePool": _global("global_avgpool2d"),
    "GlobalMaxPool": _global("global_maxpool2d"), "Relu": _activation, "Sigmoid": _activation,
    "Tanh": _activation, "Softmax": _activation, "LeakyRelu": _activation, "Gelu": _activation,
    "BatchNormalization": _batchnorm, "Flatten": _flatten, "Reshape": _reshape, "Add": _add,
    "Mul": _merge("multiply"), "Concat": _merge("concat"), "Identity": _identity, "Dropout": _dropout,
    "Transpose": _transpose, "Constant": _constant, "ReduceMean": _spatial_reduce("global_avgpool2d", 18),
    "ReduceMax": _spatial_reduce("global_maxpool2d", 18),
}


def _model_name(name: str) -> str:
    n = re.sub(r"\W", "_", name or "").strip("_")
    return n if n and not n[0].isdigit() else "imported"


def to_program(model, source: str, weights_file: str = "model.npz") -> tuple[str, dict[str, np.ndarray]]:
    """(.nn source text, weights by parameter name) of an ONNX model; the text's
    comments name `weights_file` for `init_from`."""
    text, weights = Importer(model, source).run()
    return text + FINE_TUNE.format(weights=weights_file), weights


FINE_TUNE = """
# To fine-tune, add a train block that starts from the imported weights, e.g.
# (frozen=true or lr_mult=0.1 on a layer keeps it fixed or slows it down):
#
# train {{
#   data      = csv("train.csv", target=["y"])
#   loss      = sparse_categorical_crossentropy
#   optimizer = adam(lr=1e-4)
#   init_from = weights("{weights}")
# }}
"""


def check_program(text: str, weights: dict, model, samples: int = 4):
    """Compile the imported program and compare its predictions on random inputs
    with the ONNX graph's (run by `nc.onnx.load`, an independent path through the
    graph API); returns (program, the largest difference). A difference is a bug
    of the import, said as such."""
    from ..compiler import compile as compile_nn
    from .loader import OnnxFunction
    program = compile_nn(text)
    shape = tuple(program.ast.model.input.shape)
    x = np.random.default_rng(0).normal(size=(samples,) + shape).astype(np.float32)
    state = {k: v for k, v in weights.items()}
    got = program.predict(state, x)
    ref = OnnxFunction(model, "<model>")
    want = ref(x.transpose(0, 3, 1, 2) if len(shape) == 3 and not input_is_nhwc(model) else x)
    want = np.asarray(want).reshape(got.shape)
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    if not diff <= 1e-4 * (1.0 + float(np.max(np.abs(want)))):
        raise NNError(f"internal error: the imported program's predictions differ from the ONNX graph's by {diff:.3g}",
                      hint="this is a bug in nncompile import; please report it with the model")
    return program, diff
