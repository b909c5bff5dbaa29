"""ONNX model -> a Python function of the graph API (`nc.onnx.load`).

`load(path)` reads the model and returns an `OnnxFunction`: `fn(params,
*inputs)` applies the ONNX graph with the graph API's functions (`nc.conv2d`,
`nc.matmul`, ...), one row of `OPS` per ONNX op_type, following the ONNX
operator specification's attributes, defaults and (NumPy) broadcasting. So
tracing it (`nc.jit`, `nc.trace`, `nc.value_and_grad` for fine-tuning) gives
an IR graph that compiles on either backend like any traced function.

The float initializers (and float tensors of `Constant` nodes) are the
parameters (`.params`, by their ONNX names); integer initializers and the
other constants are static values (shapes, axes) or numbers. PyTorch's
exact GELU before opset 20 (Div, Erf, Add, Mul, Mul) is read as one Gelu
(`fuse_erf_gelu`).
Axis 0 of every graph input is the batch axis `nc.B`, whatever size the file
declares for it. Tensors keep ONNX's layout (NCHW): a Conv or pooling node
is traced between two transposes (the graph API's images are channels last).
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Optional

import numpy as np

from ..errors import CompileError, NNError
from . import require_onnx

MIN_OPSET = 7      # older opsets had other broadcasting rules (the `broadcast` attribute)


class Unsupported(NNError):
    """An ONNX node this importer cannot express, named with its op_type and opset."""


class Ctx:
    """One application of the graph: values by name (Tensors, or NumPy arrays for
    static values), the opset, and the node being applied (for errors)."""

    def __init__(self, opset: int, values: dict, static_batch: Optional[int], source: str):
        self.opset, self.values, self.static_batch, self.source = opset, values, static_batch, source
        self.node = None

    def fail(self, why: str, hint: Optional[str] = None) -> Unsupported:
        n = self.node
        return Unsupported(f"{self.source}: node '{n.name or n.output[0]}' ({n.op_type}, opset {self.opset}): {why}",
                           hint=hint)

    def const(self, name: str, what: str) -> np.ndarray:
        v = self.values.get(name)
        if not isinstance(v, np.ndarray):
            raise self.fail(f"its {what} must be a constant (an initializer or a Constant node); here it is "
                            f"computed", hint="export the model with constant folding on")
        return v

    def tensor(self, name: str):
        """A data operand: a Tensor, or a number for a one-element constant."""
        v = self.values[name]
        if isinstance(v, _Missing):
            raise v.error
        if isinstance(v, np.ndarray):
            if v.size != 1:
                raise self.fail(f"input '{name}' is a constant tensor of shape {list(v.shape)}; only "
                                "initializers can be tensors here")
            if not np.issubdtype(v.dtype, np.floating):
                raise self.fail(f"input '{name}' is an integer tensor; only float tensors are supported")
            return float(v.reshape(()))
        return v


def _attrs(onnx, node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


# --- the table: op_type -> (ctx, inputs (names, '' for an absent one), attrs) -> outputs -----------

Row = Callable[[Ctx, list, dict], Any]
OPS: dict[str, Row] = {}


def row(*names: str):
    def deco(fn: Row) -> Row:
        for n in names:
            OPS[n] = fn
        return fn
    return deco


def _nc():
    from .. import api
    return api


def _unary(name: str, fn: str):
    OPS[name] = lambda c, ins, a: getattr(_nc(), fn)(c.tensor(ins[0]))


for _o, _f in (("Relu", "relu"), ("Sigmoid", "sigmoid"), ("Tanh", "tanh"), ("Exp", "exp"), ("Log", "log"),
               ("Sqrt", "sqrt"), ("Abs", "abs"), ("Neg", "negative"), ("Softplus", "softplus")):
    _unary(_o, _f)


def _binary(name: str, fn: str):
    def apply(c, ins, a):
        x, y = c.tensor(ins[0]), c.tensor(ins[1])
        if not any(hasattr(v, "node") for v in (x, y)):
            raise c.fail("both operands are constants")
        return getattr(_nc(), fn)(x, y)
    OPS[name] = apply


for _o, _f in (("Add", "add"), ("Sub", "subtract"), ("Mul", "multiply"), ("Div", "divide")):
    _binary(_o, _f)


@row("Identity", "Dropout")
def _identity(c, ins, a):
    if len(ins) > 2 and ins[2]:
        mode = c.const(ins[2], "training_mode")
        if bool(mode.reshape(())):
            raise c.fail("training_mode is true: only inference dropout (the identity) is supported")
    return c.tensor(ins[0])


@row("LeakyRelu")
def _leaky(c, ins, a):
    return _nc().leaky_relu(c.tensor(ins[0]), float(a.get("alpha", 0.01)))


@row("Gelu")
def _gelu(c, ins, a):
    approx = _s(a.get("approximate", "none"))
    if approx not in ("none", "tanh"):
        raise c.fail(f"approximate={approx!r}; expected 'none' or 'tanh'")
    return _nc().gelu(c.tensor(ins[0]), approximate=approx == "tanh")


def _coerced(c, ins, a, fn):
    """Softmax / LogSoftmax: one axis from opset 13; before it, the input seen as
    2-D [prod(shape[:axis]), prod(shape[axis:])] (the spec's coercion)."""
    x = c.tensor(ins[0])
    if c.opset >= 13:
        return getattr(_nc(), fn)(x, axis=int(a.get("axis", -1)))
    axis = int(a.get("axis", 1)) % x.ndim
    if axis == x.ndim - 1:
        return getattr(_nc(), fn)(x, axis=-1)
    if axis != 1:
        raise c.fail(f"axis={axis} before opset 13 would merge the batch axis with others")
    shape = x.shape
    return getattr(_nc(), fn)(x.reshape(shape[0], -1), axis=-1).reshape(*shape)


OPS["Softmax"] = lambda c, ins, a: _coerced(c, ins, a, "softmax")
OPS["LogSoftmax"] = lambda c, ins, a: _coerced(c, ins, a, "log_softmax")


@row("MatMul")
def _matmul(c, ins, a):
    x, w = c.tensor(ins[0]), c.tensor(ins[1])
    if getattr(x, "ndim", 0) > 2 and getattr(w, "ndim", 0) == 2:
        # a stack of rows times a matrix; the graph API's @ is 2-D and its batch axis cannot
        # merge with the others, so: a broadcast product summed over the inner axis
        return _nc().sum(_nc().expand_dims(x, -1) * w, axis=-2)
    if getattr(x, "ndim", 0) > 2 or getattr(w, "ndim", 0) > 2:
        raise c.fail(f"batched MatMul of ranks {x.ndim} and {w.ndim}: only 2-D (and N-D @ 2-D) are supported")
    return x @ w


@row("Gemm")
def _gemm(c, ins, a):
    x, w = c.tensor(ins[0]), c.tensor(ins[1])
    if x.ndim != 2 or w.ndim != 2:
        raise c.fail(f"Gemm needs 2-D A and B, got ranks {x.ndim} and {w.ndim}")
    y = (x.T if a.get("transA", 0) else x) @ (w.T if a.get("transB", 0) else w)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    if alpha != 1.0:
        y = y * alpha
    if len(ins) > 2 and ins[2] and beta != 0.0:
        bias = c.tensor(ins[2])
        y = y + (bias * beta if beta != 1.0 else bias)
    return y


@row("Flatten")
def _flatten(c, ins, a):
    x = c.tensor(ins[0])
    axis = int(a.get("axis", 1)) % max(x.ndim, 1) if x.ndim else 0
    if axis != 1:
        raise c.fail(f"axis={a.get('axis', 1)} would merge the batch axis with others (only axis=1 keeps it)")
    return _nc().flatten(x)


@row("Reshape")
def _reshape(c, ins, a):
    from ..api import B
    x = c.tensor(ins[0])
    shape = [int(d) for d in c.const(ins[1], "shape").reshape(-1)]
    if not a.get("allowzero", 0):
        shape = [x.shape[k] if d == 0 else d for k, d in enumerate(shape)]
    if shape and B in x.shape and shape[0] not in (B, -1):
        if shape[0] != c.static_batch:
            raise c.fail(f"the shape {shape} fixes the batch axis to {shape[0]}; the batch size varies here",
                         hint="export the model with a shape of 0 or -1 for the batch (torch.flatten(x, 1), "
                              "x.reshape(x.shape[0], -1))")
        shape[0] = B        # the file's fixed batch size, written into the shape
    return _nc().reshape(x, tuple(shape))


@row("Transpose")
def _transpose(c, ins, a):
    perm = a.get("perm")
    return _nc().transpose(c.tensor(ins[0]), None if perm is None else tuple(perm))


@row("Concat")
def _concat(c, ins, a):
    return _nc().concatenate([c.tensor(i) for i in ins], axis=int(a["axis"]))


def _axes_of(c, ins, a, attr_until: int):
    """A reduction's axes: the attribute before opset `attr_until`, the second input from it."""
    if c.opset < attr_until:
        return a.get("axes")
    if len(ins) > 1 and ins[1]:
        return [int(v) for v in c.const(ins[1], "axes").reshape(-1)]
    return None


def _reduce(fn: str, attr_until: int):
    def apply(c, ins, a):
        x = c.tensor(ins[0])
        axes = _axes_of(c, ins, a, attr_until)
        if not axes:
            if a.get("noop_with_empty_axes", 0):
                return x
            axes = None
        return getattr(_nc(), fn)(x, axis=None if axes is None else tuple(axes), keepdims=bool(a.get("keepdims", 1)))
    return apply


OPS["ReduceMean"] = _reduce("mean", 18)
OPS["ReduceSum"] = _reduce("sum", 13)
OPS["ReduceMax"] = _reduce("max", 18)


@row("BatchNormalization")
def _batchnorm(c, ins, a):
    if not a.get("spatial", 1):
        raise c.fail("spatial=0 (statistics per element, not per channel) is not supported")
    if a.get("training_mode", 0):
        raise c.fail("training_mode=1: only inference batch normalization (the running statistics) is supported")
    x = c.tensor(ins[0])
    scale, bias, mean, var = (c.tensor(i) for i in ins[1:5])
    eps = float(a.get("epsilon", 1e-5))
    per_channel = (-1,) + (1,) * (x.ndim - 2)      # channel axis 1: broadcast over the axes after it
    nc = _nc()
    inv = nc.reshape(scale / nc.sqrt(var + eps), per_channel)
    return (x - nc.reshape(mean, per_channel)) * inv + nc.reshape(bias, per_channel)


# --- convolution and pooling (NCHW in ONNX, NHWC in the graph API) ----------------------------------

def _pads(c, a, hw, window, strides, dilation):
    """((top, bottom), (left, right)) from auto_pad / pads."""
    auto = _s(a.get("auto_pad", "NOTSET"))
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for n, k, s, d in zip(hw, window, strides, dilation):
            total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
            small, big = total // 2, total - total // 2
            out.append((small, big) if auto == "SAME_UPPER" else (big, small))
        return tuple(out)
    if auto == "VALID":
        return ((0, 0), (0, 0))
    if auto != "NOTSET":
        raise c.fail(f"auto_pad={auto!r}")
    p = list(a.get("pads", [0, 0, 0, 0]))
    if len(p) != 4:
        raise c.fail(f"pads={p}: only 2-D windows are supported")
    return ((p[0], p[2]), (p[1], p[3]))


def _images(c, x):
    if x.ndim != 4:
        raise c.fail(f"input of rank {x.ndim}: only 2-D images [N, C, H, W] are supported")
    return _nc().transpose(x, (0, 2, 3, 1))


def _nchw(y):
    return _nc().transpose(y, (0, 3, 1, 2))


@row("Conv")
def _conv(c, ins, a):
    nc = _nc()
    x, w = c.tensor(ins[0]), c.tensor(ins[1])
    if w.ndim != 4:
        raise c.fail(f"a kernel of rank {w.ndim}: only 2-D convolutions are supported")
    window = tuple(w.shape[2:])
    if "kernel_shape" in a and tuple(a["kernel_shape"]) != window:
        raise c.fail(f"kernel_shape={list(a['kernel_shape'])} differs from the kernel's {list(window)}")
    strides = tuple(a.get("strides", (1, 1)))
    dilation = tuple(a.get("dilations", (1, 1)))
    pads = _pads(c, a, x.shape[2:], window, strides, dilation)
    y = nc.conv2d(_images(c, x), nc.transpose(w, (2, 3, 1, 0)), strides=strides, padding=pads, dilation=dilation,
                  groups=int(a.get("group", 1)))
    if len(ins) > 2 and ins[2]:
        y = y + c.tensor(ins[2])
    return _nchw(y)


def _ceil_extra(c, a, hw, window, strides, pads):
    """The bottom/right padding that makes ceil_mode's last windows, dropped when
    they would start in the padding (as onnxruntime and PyTorch do)."""
    if not a.get("ceil_mode", 0):
        return pads
    out = []
    for n, k, s, (lo, hi) in zip(hw, window, strides, pads):
        size = -(-(n + lo + hi - k) // s) + 1
        if (size - 1) * s >= n + lo:
            size -= 1
        out.append((lo, max(hi, (size - 1) * s + k - n - lo)))
    return tuple(out)


def _pool(kind: str):
    def apply(c, ins, a):
        nc = _nc()
        x = c.tensor(ins[0])
        window = tuple(a["kernel_shape"])
        if len(window) != 2:
            raise c.fail(f"kernel_shape={list(window)}: only 2-D pooling is supported")
        if tuple(a.get("dilations", (1, 1))) != (1, 1):
            raise c.fail(f"dilations={list(a['dilations'])}: only undilated pooling is supported")
        strides = tuple(a.get("strides", (1, 1)))
        pads = _pads(c, a, x.shape[2:], window, strides, (1, 1))
        img = _images(c, x)
        if kind == "avg" and a.get("count_include_pad", 0) and any(map(any, pads)):
            if a.get("ceil_mode", 0):
                raise c.fail("count_include_pad=1 with ceil_mode=1 is not supported")
            img = nc.pad(img, ((0, 0),) + pads + ((0, 0),))      # zeros that count in the mean
            pads = ((0, 0), (0, 0))
        pads = _ceil_extra(c, a, x.shape[2:], window, strides, pads)
        fn = nc.max_pool2d if kind == "max" else nc.avg_pool2d
        return _nchw(fn(img, window, strides, pads))
    return apply


OPS["MaxPool"] = _pool("max")
OPS["AveragePool"] = _pool("avg")


def _global(fn: str):
    def apply(c, ins, a):
        x = c.tensor(ins[0])
        if x.ndim < 3:
            raise c.fail(f"input of rank {x.ndim}: expected [N, C, spatial...]")
        return getattr(_nc(), fn)(x, axis=tuple(range(2, x.ndim)), keepdims=True)
    return apply


OPS["GlobalAveragePool"] = _global("mean")
OPS["GlobalMaxPool"] = _global("max")


# --- the model ---------------------------------------------------------------------------------------

def constant_value(onnx, node, a) -> np.ndarray:
    if "value" in a:
        return onnx.numpy_helper.to_array(a["value"])
    for key, dt in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                    ("value_ints", np.int64)):
        if key in a:
            return np.asarray(a[key], dt)
    raise NNError(f"Constant node '{node.name}': only tensor, float(s) and int(s) values are supported")


class OnnxFunction:
    """An ONNX model as a graph-API function.

    `fn(params, *inputs)` traces the ONNX graph with the graph API; `params`
    maps the float initializers' names to arrays (`.params` holds the file's);
    `specs` are the inputs' specs (axis 0 the batch axis `nc.B`). Calling the
    object runs it compiled (`jit`, once per backend) with the file's weights.
    """

    def __init__(self, model, source: str, backend: str = "numpy"):
        onnx = require_onnx("importing ONNX")
        model = fuse_erf_gelu(model)
        self.model, self.source, self.backend = model, source, backend
        self._onnx = onnx
        g = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        if self.opset is None:
            raise NNError(f"{source}: the model imports no default ONNX opset")
        if self.opset < MIN_OPSET:
            raise NNError(f"{source}: opset {self.opset} is older than {MIN_OPSET}, the oldest supported")
        self.consts: dict[str, np.ndarray] = {}
        self.params: dict[str, np.ndarray] = {}
        for t in g.initializer:
            arr = onnx.numpy_helper.to_array(t)
            if np.issubdtype(arr.dtype, np.floating):
                self.params[t.name] = np.array(arr, np.float32)     # a writable copy
            else:
                self.consts[t.name] = arr
        from ..api import B, f32, i64
        self.input_names, self.specs, self.static_batch = [], [], None
        for vi in g.input:
            if vi.name in self.params or vi.name in self.consts:
                continue
            tt = vi.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            if not dims:
                raise NNError(f"{source}: input '{vi.name}' has no shape; expected [batch, ...]")
            if any(d is None for d in dims[1:]):
                raise NNError(f"{source}: input '{vi.name}' has a symbolic dimension after the first "
                              f"({[d if d is not None else '?' for d in dims]}); only the batch may vary")
            if dims[0] is not None:
                self.static_batch = dims[0]
            dtype = {1: f32, 7: i64}.get(tt.elem_type)
            if dtype is None:
                raise NNError(f"{source}: input '{vi.name}' has element type "
                              f"{onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)}; float32 and int64 are supported")
            self.input_names.append(vi.name)
            self.specs.append(dtype[(B, *dims[1:])])
        self.output_names = [o.name for o in g.output]
        # a Constant node's float tensor is data like an initializer (PyTorch writes some
        # tensors that way): a weight, so that it can be an operand (scalars stay numbers)
        for nd in g.node:
            if nd.op_type == "Constant":
                arr = constant_value(onnx, nd, _attrs(onnx, nd))
                if np.issubdtype(arr.dtype, np.floating) and arr.size > 1:
                    self.params[nd.output[0]] = np.array(arr, np.float32)
        for nd in g.node:
            if nd.domain not in ("", "ai.onnx"):
                raise Unsupported(f"{source}: node '{nd.name or nd.output[0]}' ({nd.domain}.{nd.op_type}, opset "
                                  f"{self.opset}): custom domains are not supported")
            if nd.op_type not in OPS and nd.op_type != "Constant":
                raise Unsupported(f"{source}: node '{nd.name or nd.output[0]}' ({nd.op_type}, opset {self.opset}): "
                                  f"op {nd.op_type} is not supported",
                                  hint="supported: " + ", ".join(sorted(OPS) + ["Constant"]))
        self._jitted: dict[str, Any] = {}

    def fn(self, params, *inputs):
        """Apply the graph to Tensors (inside a trace) with `params` by initializer name."""
        if len(inputs) != len(self.input_names):
            raise TypeError(f"{self.source}: the model takes {len(self.input_names)} input(s) "
                            f"({', '.join(self.input_names)}), got {len(inputs)}")
        onnx = self._onnx
        values: dict[str, Any] = {**self.consts, **params, **dict(zip(self.input_names, inputs))}
        c = Ctx(self.opset, values, self.static_batch, self.source)
        for nd in self.model.graph.node:
            c.node = nd
            a = _attrs(onnx, nd)
            if nd.op_type == "Constant":
                if nd.output[0] not in params:      # a float tensor constant is a weight (see __init__)
                    values[nd.output[0]] = constant_value(onnx, nd, a)
                continue
            try:
                out = OPS[nd.op_type](c, list(nd.input), a)
            except Unsupported:
                raise
            except CompileError as e:     # the graph API's check, said of the ONNX node
                raise c.fail(e.message.removeprefix("nc.")) from None
            values[nd.output[0]] = out
            for extra in nd.output[1:]:
                if extra:
                    values[extra] = _unavailable(c, extra)
        outs = []
        for name in self.output_names:
            v = values[name]
            if isinstance(v, _Missing):
                raise v.error
            outs.append(v)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _named_fn(self):
        """`fn` with a signature (params, <the inputs' names>), so that the traced graph's
        inputs are named `params.<initializer>` and after the ONNX inputs."""
        import inspect
        import re
        names: list[str] = []
        for n in self.input_names:
            k = re.sub(r"\W", "_", n)
            k = k if k.isidentifier() and k != "params" else f"input_{len(names)}"
            names.append(k if k not in names else f"{k}_{len(names)}")
        P = inspect.Parameter
        f = lambda params, *inputs: self.fn(params, *inputs)  # noqa: E731
        f.__signature__ = inspect.Signature([P("params", P.POSITIONAL_OR_KEYWORD)] +
                                            [P(k, P.POSITIONAL_OR_KEYWORD) for k in names])
        f.__name__ = _graph_name(self.model)
        return f

    def trace(self):
        """The IR graph (`nc.trace`): inputs `params.<name>` for the weights, then the model's inputs."""
        from ..api import trace
        return trace(self._named_fn(), self.params, *self.specs)[0]

    def jit(self, backend: Optional[str] = None, **kwargs):
        from ..api import jit
        return jit(self._named_fn(), self.params, *self.specs, backend=backend or self.backend, **kwargs)

    def export(self, params=None, path=None, *, force: bool = False):
        """The model with `params` (default: the file's) as a new ONNX model (nc.onnx.export)."""
        from . import export
        return export(self._named_fn(), self.params if params is None else params, *self.specs, path=path,
                      force=force)

    def __call__(self, *inputs, backend: Optional[str] = None):
        key = backend or self.backend
        if key not in self._jitted:
            self._jitted[key] = self.jit(key)
        return self._jitted[key](self.params, *inputs)

    def __repr__(self) -> str:
        ins = ", ".join(f"{n}: {s}" for n, s in zip(self.input_names, self.specs))
        return f"<nc.onnx model {_graph_name(self.model)}({ins}) opset {self.opset}, {len(self.params)} weights>"


class _Missing:
    def __init__(self, error):
        self.error = error


def _unavailable(c: Ctx, name: str) -> _Missing:
    return _Missing(c.fail(f"its output '{name}' (beyond the first) is not supported"))


def _graph_name(model) -> str:
    import re
    name = re.sub(r"\W", "_", model.graph.name or "onnx_model")
    return name if name and not name[0].isdigit() else f"m_{name}"


def fuse_erf_gelu(model):
    """PyTorch writes the exact GELU before opset 20 as x * (erf(x / sqrt 2) + 1) * 0.5
    (Div, Erf, Add, Mul, Mul): a copy of the model with each such chain one Gelu node,
    which both importers read (there is no Erf in the IR)."""
    onnx = require_onnx("importing ONNX")
    g = model.graph
    consts = {t.name: onnx.numpy_helper.to_array(t) for t in g.initializer}
    for nd in g.node:
        if nd.op_type == "Constant":
            consts[nd.output[0]] = constant_value(onnx, nd, _attrs(onnx, nd))
    users: dict[str, list] = {}
    for nd in g.node:
        for i in nd.input:
            users.setdefault(i, []).append(nd)
    outputs = {o.name for o in g.output}

    def only_user(name):
        us = users.get(name, [])
        return us[0] if len(us) == 1 and name not in outputs else None

    def other(nd, name):
        rest = [i for i in nd.input if i != name]
        return rest[0] if len(rest) == 1 else None

    def is_const(name, value):
        v = consts.get(name)
        return v is not None and v.size == 1 and abs(float(v.reshape(())) - value) <= 1e-4 * abs(value)

    replace: dict[int, object] = {}
    drop: set[int] = set()
    for div in g.node:
        if div.op_type != "Div" or len(div.input) != 2 or not is_const(div.input[1], math.sqrt(2.0)):
            continue
        x = div.input[0]
        erf = only_user(div.output[0])
        add = erf is not None and erf.op_type == "Erf" and only_user(erf.output[0])
        if not add or add.op_type != "Add" or not is_const(other(add, erf.output[0]), 1.0):
            continue
        mul = only_user(add.output[0])
        if mul is None or mul.op_type != "Mul" or other(mul, add.output[0]) != x:
            continue
        half = only_user(mul.output[0])
        if half is None or half.op_type != "Mul" or not is_const(other(half, mul.output[0]), 0.5):
            continue
        replace[id(div)] = onnx.helper.make_node("Gelu", [x], [half.output[0]], name=(half.name or div.name) + "/gelu")
        drop |= {id(erf), id(add), id(mul), id(half)}
    if not replace:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = [replace.get(id(nd), nd) for nd in g.node if id(nd) not in drop]
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def read_model(path):
    """(ModelProto, the name errors give it) of an ONNX file or a ModelProto."""
    onnx = require_onnx("importing ONNX")
    if not isinstance(path, (str, os.PathLike)):
        return path, "<model>"
    source = os.fspath(path)
    if os.path.isdir(source):
        raise NNError(f"{source}: is a folder, not an ONNX file")
    if not os.path.exists(source):
        raise NNError(f"{source}: no such ONNX file")
    try:
        return onnx.load(source), source
    except Exception as e:  # noqa: BLE001 - a file that is not a model: say so, no traceback
        raise NNError(f"{source}: not a readable ONNX model ({type(e).__name__}: {e})") from None


def load(path, backend: str = "numpy") -> OnnxFunction:
    """Read an ONNX file (or a ModelProto) into an `OnnxFunction`."""
    model, source = read_model(path)
    return OnnxFunction(model, source, backend)
