"""The Triton backend's op table: how each IR op becomes Triton code.

Pointwise ops (rows with `pointwise`) are computed inside the pointwise
kernel the code generator writes for their fusion group: `POINTWISE[op]` is
either a template over the operands' expressions (`"{0} + {1}"`) or a function
`(ctx, node) -> expression` that can ask the kernel being written for operands
(`ctx.arg(i)`, `ctx.load(node, dim_map)`), the flat index (`ctx.offs()`) and a
per-launch Philox key (`ctx.seed(rng_node, stream)`). Expressions compute in
the kernel's registers, in fp32 for f32 data.

Every other op is launched as a kernel of the library (`kernels/`):
`KERNELS[op](gen, node)` writes the launch into the generated module and
returns True, or False for a form it does not lower (a reduction over middle
axes, say), which then runs on the host (`rt.fallback`, listed in
`TritonProgram.fallbacks`). `GROUPS[kind](gen, group)` lowers a whole
multi-node group (a matmul with its epilogue). `VIEWS[op](src, node)` gives the
view expression of a view op. `STRUCTURAL` ops are not computed (inputs,
constants); `FALLBACK` would list ops with no lowering at all (none today).
`tests/backends/test_op_tables.py` checks that every op of the IR table is in
one of these.
"""
from __future__ import annotations

import math
from typing import Callable, Union

from ...ir.ops import norm_axes, sum_to_axes
from ..common import dim, literal, numel_src, shape_src

TL_DTYPE = {"f32": "tl.float32", "f64": "tl.float64", "i64": "tl.int64"}
STRUCTURAL = frozenset({"input", "const"})
FALLBACK: frozenset = frozenset()


def _unreduce(ctx, n):
    dy, x = n.inputs
    axes = norm_axes(n.attrs["axes"], len(x.shape))
    m, j = [], 0
    for k in range(len(x.shape)):   # output dim k reads dy's dim j, or broadcasts
        if k in axes:
            m.append(None)
            j += 1 if n.attrs["keepdims"] else 0
        else:
            m.append(j)
            j += 1
    a = ctx.load(dy, m)
    if n.attrs["mean"]:
        return f"{a} * (1.0 / ({numel_src([x.shape[k] for k in axes]) if axes else '1'}))"
    return a


def _dropout_mask(ctx, n):
    rate = float(n.attrs["rate"])
    scale = 0.0 if rate >= 1.0 else 1.0 / (1.0 - rate)
    key = ctx.seed(n.inputs[1], int(n.attrs["stream"]))
    counter = ctx.offs()
    if n.inputs[1].shape == (3,):     # a data-parallel shard: counted from its first global row
        counter = f"({ctx.first(n.inputs[1], n)} + {counter})"
    return f"tl.where(tl.rand({key}, {counter}) >= {literal(rate)}, {literal(scale)}, 0.0)"


def _attr(name):
    return lambda n: literal(n.attrs[name])


Pointwise = Union[str, Callable]

POINTWISE: dict[str, Pointwise] = {
    "add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0} * {1}", "div": "{0} / {1}",
    "maximum": "tl.maximum({0}, {1})", "neg": "-{0}", "exp": "tl.exp({0})", "log": "tl.log({0})",
    "sqrt": "tl.sqrt({0})", "square": "{0} * {0}", "abs": "tl.abs({0})",
    "sign": "tl.where({0} > 0, 1.0, tl.where({0} < 0, -1.0, 0.0))",
    "relu": "tl.maximum({0}, 0.0)", "sigmoid": "1.0 / (1.0 + tl.exp(-{0}))", "tanh": "_tanh({0})",
    "softplus": "tl.maximum({0}, 0.0) + tl.log(1.0 + tl.exp(-tl.abs({0})))",
    "silu": "{0} / (1.0 + tl.exp(-{0}))", "softsign": "{0} / (1.0 + tl.abs({0}))",
    "elu": lambda c, n: (f"tl.where({c.arg(0)} > 0, {c.arg(0)}, "
                         f"{literal(n.attrs['alpha'])} * (tl.exp(tl.minimum({c.arg(0)}, 0.0)) - 1.0))"),
    "gelu": "_gelu({0})", "gelu_grad": "_gelu_grad({0}, {1})",
    "gelu_tanh": "_gelu_tanh({0})", "gelu_tanh_grad": "_gelu_tanh_grad({0}, {1})",
    "equal": "tl.where({0} == {1}, 1.0, 0.0)", "greater": "tl.where({0} > {1}, 1.0, 0.0)",
    "greater_equal": "tl.where({0} >= {1}, 1.0, 0.0)", "not_equal": "tl.where({0} != {1}, 1.0, 0.0)",
    "where": "tl.where({0} != 0, {1}, {2})",
    "relu_grad": "tl.where({1} > 0, {0}, 0.0)",
    "leaky_relu": lambda c, n: f"tl.where({c.arg(0)} > 0, {c.arg(0)}, {c.arg(0)} * {literal(n.attrs['alpha'])})",
    "leaky_grad": lambda c, n: f"tl.where({c.arg(1)} > 0, {c.arg(0)}, {c.arg(0)} * {literal(n.attrs['alpha'])})",
    "clip": lambda c, n: (f"tl.minimum(tl.maximum({c.arg(0)}, {literal(n.attrs['lo'])}), "
                          f"{literal(n.attrs['hi'])})"),
    "clip_grad": lambda c, n: (f"tl.where(({c.arg(1)} >= {literal(n.attrs['lo'])}) & "
                               f"({c.arg(1)} <= {literal(n.attrs['hi'])}), {c.arg(0)}, 0.0)"),
    "cast": lambda c, n: f"({c.arg(0)}).to({TL_DTYPE[n.attrs['dtype']]})",
    "round_to": lambda c, n: f"_round_{n.attrs['precision']}({c.arg(0)}).to({TL_DTYPE[n.dtype]})",
    "unreduce": _unreduce,
    "dropout_mask": _dropout_mask,
}
# the device functions (kernels/functions.py) a template may call
DEVICE_FUNCTIONS = {"_tanh": "tanh", "_gelu": "gelu", "_gelu_grad": "gelu_grad", "_gelu_tanh": "gelu_tanh",
                    "_gelu_tanh_grad": "gelu_tanh_grad", "_round_bf16": "round_bf16", "_round_f16": "round_f16"}


def pointwise_expr(ctx, n) -> str:
    e = POINTWISE[n.op]
    if isinstance(e, str):
        return e.format(*[ctx.arg(i) for i in range(len(n.inputs))])
    return e(ctx, n)


# --- library kernels ------------------------------------------------------------------------

def _rows_of(shape) -> str:
    return numel_src(shape[:-1]) if len(shape) > 1 else "1"


def _softmax(gen, n):
    if not n.shape:
        return False
    gen.rows_launch(n, "softmax_kernel", [gen.tensor(n.inputs[0]), gen.buffer(n)], [n.inputs[0], n],
                    _rows_of(n.shape), dim(n.shape[-1]), {"LOG": n.op == "log_softmax"},
                    f"read + write {n.type_str}")
    return True


def _softmax_xent(gen, n):
    z, y = n.inputs[:2]
    if len(z.shape) != 2:
        return False
    grad = n.op == "softmax_xent_grad"
    dy = n.inputs[2] if grad else z          # the forward reads no dy: any pointer will do
    gen.rows_launch(n, "softmax_xent_kernel", [gen.tensor(z), gen.tensor(y), gen.tensor(dy), gen.buffer(n)],
                    [z, y, dy, n], dim(z.shape[0]), dim(z.shape[1]), {"GRAD": grad},
                    f"read {z.type_str} + labels, write {n.type_str}")
    return True


def _argmax(gen, n):
    x = n.inputs[0]
    if not x.shape:
        return False
    gen.rows_launch(n, "argmax_kernel", [gen.tensor(x), gen.buffer(n)], [x, n], _rows_of(x.shape),
                    dim(x.shape[-1]), {}, f"read {x.type_str}, write {n.type_str}")
    return True


def _take_label(gen, n):
    p, y = n.inputs
    if len(p.shape) != 2:
        return False
    gen.rows_launch(n, "take_kernel", [gen.tensor(p), gen.tensor(y), gen.buffer(n)], [p, y, n],
                    dim(p.shape[0]), dim(p.shape[1]), {}, f"gather {n.type_str} from {p.type_str}",
                    blocks="take")
    return True


def _onehot(gen, n):
    if len(n.shape) != 2:
        return False
    gen.rows_launch(n, "onehot_kernel", [gen.tensor(n.inputs[0]), gen.buffer(n)], [n.inputs[0], n],
                    dim(n.shape[0]), dim(n.shape[1]), {}, f"write {n.type_str}")
    return True


def reduce_plan(in_shape, axes):
    """("row", R, C) for a reduction over trailing axes, ("col", M, N) over
    leading axes, else None."""
    r, axes = len(in_shape), tuple(sorted(axes))
    k = len(axes)
    if k == 0:
        return ("row", numel_src(in_shape), "1")
    if axes == tuple(range(r - k, r)):
        return ("row", numel_src(in_shape[:r - k]) if r - k else "1", numel_src(in_shape[r - k:]))
    if axes == tuple(range(k)):
        return ("col", numel_src(in_shape[:k]), numel_src(in_shape[k:]))
    return None


def _reduce(gen, n):
    x = n.inputs[0]
    if n.dtype not in ("f32", "f64"):
        return False
    axes = sum_to_axes(x.shape, n.shape) if n.op == "reduce_like" else norm_axes(n.attrs["axes"], len(x.shape))
    plan = reduce_plan(x.shape, axes)
    if plan is None:
        return False
    scale = f"1.0 / ({numel_src([x.shape[k] for k in axes]) if axes else '1'})" if n.op == "mean" else "1.0"
    traffic = f"read {x.type_str}, write {n.type_str}"
    reduce = "K.MAX" if n.op == "max" else "K.SUM"
    if plan[0] == "row":
        gen.rows_launch(n, "reduce_rows_kernel", [gen.tensor(x), gen.buffer(n)], [x, n], plan[1], plan[2],
                        {"REDUCE": reduce}, traffic, blocks="loop", scale=scale)
    else:
        gen.cols_launch(n, x, plan[1], plan[2], reduce, scale, traffic)
    return True


def _concat_flat(gen, n):
    out = gen.buffer(n)
    off = 0
    for x in n.inputs:
        size = math.prod(x.shape)
        if gen.plan.placed.get(x.id) != (n.id, off):
            gen.run.append(f"{out}[{off}:{off + size}].copy_({gen.tensor(x)}.reshape(-1))")
        off += size
    placed = [x.name for x in n.inputs if gen.plan.placed.get(x.id, (None,))[0] == n.id]
    if placed:
        gen.run.append(f"# (pieces written in place: {', '.join(placed)})")
    return True


def _narrow(src: str, axis: int, start, length) -> str:
    return f"{src}.narrow({axis}, {start}, {length})"


def _concat(gen, n):
    axis, off, out = n.attrs["axis"] % len(n.shape), 0, gen.buffer(n)
    for x in n.inputs:      # movement only: torch's copy kernels
        gen.run.append(f"{_narrow(out, axis, off, x.shape[axis])}.copy_({gen.tensor(x)})")
        off += x.shape[axis]
    return True


def _slice(gen, n):
    axis = n.attrs["axis"] % len(n.shape)
    src = _narrow(gen.tensor(n.inputs[0]), axis, n.attrs["start"], n.attrs["stop"] - n.attrs["start"])
    gen.run.append(f"{gen.buffer(n)}.copy_({src})")
    return True


def _pad(gen, n):
    axis, out = n.attrs["axis"] % len(n.shape), gen.buffer(n)
    gen.run.append(f"{out}.zero_(); {_narrow(out, axis, n.attrs['before'], n.inputs[0].shape[axis])}"
                   f".copy_({gen.tensor(n.inputs[0])})")
    return True


def _transpose(gen, n):
    gen.run.append(f"{gen.buffer(n)}.copy_({gen.tensor(n.inputs[0])}.permute{tuple(n.attrs['perm'])!r})")
    return True


def _shard_mean(gen, n):
    # the data-parallel all-reduce, on the device tensor (NCCL on a GPU; ir/collective.py)
    out = gen.buffer(n)
    gen.run.append(f"{out}.copy_({gen.tensor(n.inputs[0])}); rt.reduce_into({out})")
    return True


KERNELS: dict[str, Callable] = {
    "concat": _concat, "slice": _slice, "pad": _pad, "transpose": _transpose,
    "softmax": _softmax, "log_softmax": _softmax,
    "softmax_xent": _softmax_xent, "softmax_xent_grad": _softmax_xent,
    "argmax": _argmax, "take_label": _take_label, "onehot": _onehot,
    "sum": _reduce, "mean": _reduce, "max": _reduce, "reduce_like": _reduce,
    "concat_flat": _concat_flat, "shard_mean": _shard_mean,
}


def _operands(n) -> str | None:
    """"bf16" / "f16" when every operand of contraction n is rounded to it (a mixed-precision
    step, passes/mixed_precision.py): the kernel then runs its dot on 16-bit tensor cores."""
    ps = {i.attrs["precision"] if i.op == "round_to" else None for i in n.inputs}
    return ps.pop() if len(ps) == 1 else None


def _dot(n) -> int:
    return {None: 0, "bf16": 1, "f16": 2}[_operands(n)]


def _matmul_group(gen, gr, ns):
    mm, root = ns[0], ns[-1]
    epi = gr.get("epilogue", {})
    a, b = mm.inputs
    kw = [f"trans_a={bool(mm.attrs.get('ta'))}", f"trans_b={bool(mm.attrs.get('tb'))}"]
    if epi.get("bias") is not None:
        kw.append(f"bias={gen.tensor(gen.byid[epi['bias']])}")
    if epi.get("activation"):
        kw.append(f"activation={epi['activation']!r}")
    if epi.get("mask") is not None:
        kw.append(f"relu_mask={gen.tensor(gen.byid[epi['mask']])}")
    if _operands(mm):
        kw.append(f"operands={_operands(mm)!r}")
    m_, n_ = root.shape
    k_ = a.shape[0] if mm.attrs.get("ta") else a.shape[1]
    gen.run.append(f"#   M,N,K = {dim(m_)},{dim(n_)},{dim(k_)}: 2*M*N*K flops; memory: reads "
                   f"{a.type_str} + {b.type_str}, writes {root.type_str}")
    gen.run.append(f"K.matmul({gen.tensor(a)}, {gen.tensor(b)}, {', '.join(kw)}, out={gen.buffer(root)}, "
                   f"precision=PREC)")


# --- convolution and pooling (kernels/conv.py, kernels/pool.py) -------------------------------

CONV_INTS = ("B", "H", "W", "C", "HO", "WO", "F", "KH", "KW", "SH", "SW", "PT", "PL", "DH", "DW", "CG", "FG")


def _conv_geometry(x_shape, w_shape, n_attrs, out_hw) -> str:
    """The kernels' integer arguments, as a make-time tuple expression (B symbolic)."""
    (sh, sw), pad, (dh, dw) = n_attrs["strides"], n_attrs["padding"], n_attrs["dilation"]
    kh, kw, cg, f = w_shape
    vals = [dim(x_shape[0]), x_shape[1], x_shape[2], x_shape[3], out_hw[0], out_hw[1], f, kh, kw, sh, sw,
            pad[0][0], pad[1][0], dh, dw, cg, f // n_attrs["groups"]]
    return "(" + ", ".join(str(v) for v in vals) + ")"


def _conv_group(gen, gr, ns):
    head, root = ns[0], ns[-1]
    if head.op == "conv2d_grad_filter":
        return _conv_filter(gen, head)
    epi = gr.get("epilogue", {})
    i, out = head.id, gen.buffer(root)
    if head.op == "conv2d":
        x, w = head.inputs
        geo = _conv_geometry(x.shape, w.shape, head.attrs, head.shape[1:3])
        m, n_, k = numel_src(head.shape[:3]), head.shape[3] // head.attrs["groups"], "*".join(
            map(str, w.shape[:3]))
        kernel = "conv2d_kernel"
    else:
        x, w = head.inputs      # dy, w
        geo = _conv_geometry(head.shape, w.shape, head.attrs, x.shape[1:3])
        m, n_, k = numel_src(head.shape[:3]), w.shape[2], f"{w.shape[0]}*{w.shape[1]}*{w.shape[3] // head.attrs['groups']}"
        kernel = "conv2d_grad_input_kernel"
    bias = gen.tensor(gen.byid[epi["bias"]]) if epi.get("bias") is not None else out
    mask = gen.tensor(gen.byid[epi["mask"]]) if epi.get("mask") is not None else out
    act = {None: 0, "relu": 1, "sigmoid": 2, "tanh": 3}[epi.get("activation")]
    consts = dict(HAS_BIAS=epi.get("bias") is not None, ACTIVATION=act, HAS_MASK=epi.get("mask") is not None,
                  DOT=_dot(head))
    gen.make.append(f"geo{i} = {geo}")
    gen.make.append(f"bm{i}, bn{i}, bk{i}, w{i} = launch.conv_blocks({m}, {n_}, {k})")
    gen.make.append(f"grid{i} = (triton.cdiv({m}, bm{i}), triton.cdiv({n_}, bn{i}), {head.attrs['groups']})")
    gen.library_use(n=head, kernel=kernel, ptr_nodes=[x, w, root, root, root], ints=CONV_INTS, constexprs=consts,
                    blocks=lambda interp: _conv_blocks_aot(m, n_, k), traffic=f"{head.op} {root.type_str}")
    flags = ", ".join(f"{k_}={v}" for k_, v in consts.items())
    gen.run.append(f"K.{kernel}[grid{i}]({gen.tensor(x)}, {gen.tensor(w)}, {out}, {bias}, {mask}, *geo{i}, {flags}, "
                   f"PRECISION=PREC, BLOCK_M=bm{i}, BLOCK_N=bn{i}, BLOCK_K=bk{i}, num_warps=w{i})")


def _conv_blocks_aot(m, n_, k):
    from .launch import conv_blocks
    from .codegen import _aot_int
    bm, bn, bk, w = conv_blocks(_aot_int(m), _aot_int(str(n_)), _aot_int(str(k)), interp=False)
    return {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, w


def _conv_filter(gen, n):
    x, dy = n.inputs
    i, out = n.id, gen.buffer(n)
    geo = _conv_geometry(x.shape, n.shape, n.attrs, dy.shape[1:3])
    m, f = "*".join(map(str, n.shape[:3])), n.shape[3]
    fg, k, groups = f // n.attrs["groups"], numel_src(dy.shape[:3]), n.attrs["groups"]
    gen.make.append(f"geo{i} = {geo}")
    gen.make.append(f"bm{i}, bn{i}, bk{i}, w{i} = launch.conv_blocks({m}, {fg}, {k})")
    gen.make.append(f"sp{i} = K.filter_split({m}, {fg}, {k}, {groups}, bm{i}, bn{i})")
    gen.make.append(f"per{i} = triton.cdiv(triton.cdiv({k}, sp{i}), bk{i}) * bk{i}")
    gen.make.append(f"part{i} = torch.empty((sp{i}, {m}*{f}), device=dev, dtype=torch.float32) if sp{i} > 1 else {out}")
    gen.make.append(f"grid{i} = (triton.cdiv({m}, bm{i}), triton.cdiv({fg}, bn{i}), {groups} * sp{i})")
    gen.library_use(n=n, kernel="conv2d_grad_filter_kernel", ptr_nodes=[x, dy, n], ints=CONV_INTS + ("SPLIT", "K_PER_SPLIT"),
                    constexprs={"DOT": _dot(n)}, blocks=lambda interp: _conv_blocks_aot(m, fg, k),
                    traffic=f"{n.op} {n.type_str}")
    gen.run.append(f"K.conv2d_grad_filter_kernel[grid{i}]({gen.tensor(x)}, {gen.tensor(dy)}, part{i}, *geo{i}, "
                   f"sp{i}, per{i}, PRECISION=PREC, DOT={_dot(n)}, BLOCK_M=bm{i}, BLOCK_N=bn{i}, BLOCK_K=bk{i}, num_warps=w{i})")
    gen.run.append(f"if sp{i} > 1:  # add the split partials")
    gen.run.append(f"    K.reduce_cols(part{i}, sp{i}, {m}*{f}, out={out}.view(-1))")
    return True


POOL_INTS = ("n", "H", "W", "C", "HO", "WO", "KH", "KW", "SH", "SW", "PT", "PL")


def _pool(gen, n):
    grad = n.op.endswith("_grad")
    x = n.inputs[1] if grad else n.inputs[0]
    img = x if grad else n            # the grad kernel runs over the input, the forward over the output
    out_hw = n.inputs[0].shape[1:3] if grad else n.shape[1:3]
    a = n.attrs
    vals = [x.shape[1], x.shape[2], x.shape[3], out_hw[0], out_hw[1], a["window"][0], a["window"][1],
            a["strides"][0], a["strides"][1], a["padding"][0][0], a["padding"][1][0]]
    i, out, numel = n.id, gen.buffer(n), numel_src(img.shape)
    kernel = "pool_grad_kernel" if grad else "pool_kernel"
    gen.make.append(f"n{i} = {numel}")
    gen.make.append(f"blk{i}, w{i} = launch.pointwise_block(n{i})")
    gen.make.append(f"grid{i} = (triton.cdiv(n{i}, blk{i}),)")
    is_max = n.op.startswith("max")
    ptr_nodes = [n.inputs[0], x, n] if grad else [x, n]
    gen.library_use(n=n, kernel=kernel, ptr_nodes=ptr_nodes, ints=POOL_INTS, constexprs={"MAX": is_max},
                    blocks=lambda interp: _pool_blocks_aot(numel), traffic=f"{n.op} {n.type_str}")
    ptrs = ", ".join([gen.tensor(p) for p in ptr_nodes[:-1]] + [out])
    gen.run.append(f"K.{kernel}[grid{i}]({ptrs}, n{i}, {', '.join(map(str, vals))}, MAX={is_max}, "
                   f"BLOCK=blk{i}, num_warps=w{i})")
    return True


def _pool_blocks_aot(numel):
    from .launch import pointwise_block
    from .codegen import _aot_int
    blk, w = pointwise_block(_aot_int(numel), interp=False)
    return {"BLOCK": blk}, w


KERNELS.update({"maxpool2d": _pool, "avgpool2d": _pool, "maxpool2d_grad": _pool, "avgpool2d_grad": _pool})

GROUPS: dict[str, Callable] = {"matmul": _matmul_group, "conv": _conv_group}
# the IR ops that head each kind of group (the coverage test reads it)
GROUP_OPS = {"matmul": "matmul", "conv2d": "conv", "conv2d_grad_input": "conv", "conv2d_grad_filter": "conv"}


def _slice_flat(src, n):
    o = n.attrs["offset"]
    return f"{src}[{o}:{o + math.prod(n.shape)}].view({shape_src(n.shape)})"


VIEWS: dict[str, Callable] = {
    "reshape": lambda src, n: f"{src}.view({shape_src(n.shape)})",
    "slice_flat": _slice_flat,
}
