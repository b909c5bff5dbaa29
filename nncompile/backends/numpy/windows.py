"""The NumPy lowering of the window ops: convolution by explicit columns
(channels-last im2col through a strided view, one copy, then one BLAS GEMM
per group), its transposed forms, and pooling on strided window views.

With the native path (a C compiler), the columns, col2im and pooling are C
loops (backends/numpy/native.py: WindowKernels); the GEMMs stay with BLAS.

Buffers: the columns and padded copies are the op's workspaces
(`OpDef.workspace`), which the memory plan allocates from a shared pool and,
for a filter gradient whose forward columns it kept, hands over already
filled (`ctx.kept(n)`). Output-sized temporaries of pooling gradients are
this backend's own scratch.

Costs, per convolution with M = B*Ho*Wo output positions and K = kh*kw*C/groups:
forward: copy M*K (the columns), GEMM (M, K) x (K, F); input gradient: GEMM
(M, F) x (F, K) into columns, then kh*kw strided adds back into the image;
filter gradient: the columns again (kept or recomputed), GEMM (K, M) x (M, F).
"""
from __future__ import annotations

from ...ir.windows import out_hw


def _shapes(n, x):
    kh, kw = n.attrs["window"]
    return kh, kw, x.shape[3], n.attrs.get("groups", 1)


def _padded_src(ctx, n, x_node, x: str, k: int, fill: str = "0.0") -> tuple[str, list[str]]:
    """The image the windows read: x itself, or a padded copy of it in workspace k
    (borders refilled every call: the workspace is shared with other ops)."""
    (pt, pb), (pl, pr) = n.attrs["padding"]
    if not (pt or pb or pl or pr):
        return x, []
    b, h, w, c = x_node.shape
    xp = ctx.workspace(n, k, (b, h + pt + pb, w + pl + pr, c))
    lines = [f"{xp}[:, :{pt}].fill({fill})" if pt else "", f"{xp}[:, {pt + h}:].fill({fill})" if pb else "",
             f"{xp}[:, :, :{pl}].fill({fill})" if pl else "", f"{xp}[:, :, {pl + w}:].fill({fill})" if pr else "",
             f"np.copyto({xp}[:, {pt}:{pt + h}, {pl}:{pl + w}], {x})"]
    return xp, [line for line in lines if line]


def _windows(ctx, n, src: str, fixed: bool, ho: int, wo: int) -> str:
    """A strided view [B, Ho, Wo, kh, kw, C] of src's windows: made once when
    src is the same array every call, else every call."""
    args = f"{src}, {tuple(n.attrs['window'])!r}, {tuple(n.attrs['strides'])!r}, " \
           f"{tuple(n.attrs.get('dilation', (1, 1)))!r}, {ho}, {wo}"
    if fixed:
        return ctx.make_value(n, "win", f"_s.windows({args})")
    return f"_s.windows({args})"


def _columns(ctx, n, x_node, x: str) -> tuple[str, list[str]]:
    """Workspace 0 filled with x's columns [B, Ho, Wo, kh, kw, C] (lines), unless kept."""
    ho, wo = out_hw(x_node.shape[1], x_node.shape[2], n.attrs)
    kh, kw, c, _ = _shapes(n, x_node)
    cols = ctx.workspace(n, 0, (x_node.shape[0], ho, wo, kh, kw, c))
    if ctx.kept(n):
        return cols, []
    if ctx.windows is not None:    # one C loop: padding and columns together
        fn = ctx.windows.im2col(n, x_node, x_node.dtype)
        return cols, [f"_k.{fn}({ctx.address(cols)}, {ctx.pointer(x_node)}, B)"]
    src, lines = _padded_src(ctx, n, x_node, x, 1)
    win = _windows(ctx, n, src, bool(lines) or ctx.fixed(x_node), ho, wo)
    return cols, lines + [f"np.copyto({cols}, {win})"]


def conv2d(ctx, n, a, out):
    x_node, w_node = n.inputs
    kh, kw, c, groups = _shapes(n, x_node)
    f = n.shape[3]
    cols, lines = _columns(ctx, n, x_node, a[0])
    k = kh * kw * c
    cols2 = f"{cols}.reshape(-1, {k})"
    w2 = f"{a[1]}.reshape({k // groups}, {f})"
    out2 = f"{out}.reshape(-1, {f})"
    if groups == 1:
        return "; ".join(lines + [f"np.matmul({cols2}, {w2}, out={out2})"])
    # per group: its channels' columns (strided in K: one copy) times its filters
    cg, fg = c // groups, f // groups
    c6 = f"{cols}.reshape(-1, {kh * kw}, {c})"
    for i in range(groups):
        lines.append(f"np.copyto({out2}[:, {i * fg}:{(i + 1) * fg}], np.matmul("
                     f"{c6}[:, :, {i * cg}:{(i + 1) * cg}].reshape(-1, {kh * kw * cg}), "
                     f"{w2}[:, {i * fg}:{(i + 1) * fg}]))")
    return "; ".join(lines)


def conv2d_grad_input(ctx, n, a, out):
    dy_node, w_node = n.inputs
    kh, kw, c, groups = _shapes(n, n)
    b, ho, wo, f = dy_node.shape
    k = kh * kw * c
    dcols = ctx.workspace(n, 0, (b, ho, wo, kh, kw, c))
    w2 = f"{a[1]}.reshape({k // groups}, {f})"
    dy2 = f"{a[0]}.reshape(-1, {f})"
    if groups == 1:
        lines = [f"np.matmul({dy2}, {w2}.T, out={dcols}.reshape(-1, {k}))"]
    else:
        cg, fg = c // groups, f // groups
        d6 = f"{dcols}.reshape(-1, {kh * kw}, {c})"
        lines = [f"np.copyto({d6}[:, :, {i * cg}:{(i + 1) * cg}], np.matmul({dy2}[:, {i * fg}:{(i + 1) * fg}], "
                 f"{w2}[:, {i * fg}:{(i + 1) * fg}].T).reshape(-1, {kh * kw}, {cg}))" for i in range(groups)]
    if ctx.windows is not None:
        fn = ctx.windows.col2im(n, n, n.dtype)
        return "; ".join(lines + [f"_k.{fn}({ctx.pointer(n)}, {ctx.address(dcols)}, B)"])
    return "; ".join(lines + _scatter(ctx, n, lambda r, s: ([], f"{dcols}[:, :, :, {r}, {s}]"), out, n.shape, 1))


def _scatter(ctx, n, piece, out: str, image_shape, k: int) -> list[str]:
    """Add window values back into the image `out` (col2im), through a padded
    workspace k when padded: `piece(r, s)` gives (lines, expression) of the
    [B, Ho, Wo, C] values at window offset (r, s)."""
    (pt, pb), (pl, pr) = n.attrs["padding"]
    (sh, sw), (dh, dw) = n.attrs["strides"], n.attrs.get("dilation", (1, 1))
    kh, kw = n.attrs["window"]
    b, h, w, c = image_shape
    ho, wo = out_hw(h, w, n.attrs)
    padded = pt or pb or pl or pr
    acc = ctx.workspace(n, k, (b, h + pt + pb, w + pl + pr, c)) if padded else out
    lines = [f"{acc}.fill(0)"]
    for r in range(kh):
        for s in range(kw):
            dst = f"{acc}[:, {r * dh}:{r * dh + sh * (ho - 1) + 1}:{sh}, {s * dw}:{s * dw + sw * (wo - 1) + 1}:{sw}]"
            pre, val = piece(r, s)
            lines += pre + [f"np.add({dst}, {val}, out={dst})"]
    if padded:
        lines.append(f"np.copyto({out}, {acc}[:, {pt}:{pt + h}, {pl}:{pl + w}])")
    return lines


def conv2d_grad_filter(ctx, n, a, out):
    x_node, dy_node = n.inputs
    kh, kw, c, groups = _shapes(n, x_node)
    f = n.shape[3]
    cols, lines = _columns(ctx, n, x_node, a[0])
    dy2 = f"{a[1]}.reshape(-1, {f})"
    if groups == 1:
        k = kh * kw * c
        return "; ".join(lines + [f"np.matmul({cols}.reshape(-1, {k}).T, {dy2}, out={out}.reshape({k}, {f}))"])
    cg, fg = c // groups, f // groups
    c6 = f"{cols}.reshape(-1, {kh * kw}, {c})"
    o2 = f"{out}.reshape({kh * kw * cg}, {f})"
    for i in range(groups):
        lines.append(f"np.copyto({o2}[:, {i * fg}:{(i + 1) * fg}], np.matmul("
                     f"{c6}[:, :, {i * cg}:{(i + 1) * cg}].reshape(-1, {kh * kw * cg}).T, {dy2}[:, {i * fg}:{(i + 1) * fg}]))")
    return "; ".join(lines)


def _pool_windows(ctx, n, x_node, x: str, fill: str) -> tuple[str, list[str]]:
    ho, wo = out_hw(x_node.shape[1], x_node.shape[2], n.attrs)
    src, lines = _padded_src(ctx, n, x_node, x, 0, fill)
    return _windows(ctx, n, src, bool(lines) or ctx.fixed(x_node), ho, wo), lines


def _native_pool(ctx, n, is_max: bool):
    x = n.inputs[0]
    fn = ctx.windows.pool(n, x, n.dtype, is_max)
    return f"_k.{fn}({ctx.pointer(n)}, {ctx.pointer(x)}, B)"


def _native_pool_grad(ctx, n, is_max: bool):
    dy, x = n.inputs
    fn = ctx.windows.pool_grad(n, x, n.dtype, is_max)
    return f"_k.{fn}({ctx.pointer(n)}, {ctx.pointer(dy)}, {ctx.pointer(x)}, B)"


def maxpool2d(ctx, n, a, out):
    if ctx.windows is not None:
        return _native_pool(ctx, n, True)
    win, lines = _pool_windows(ctx, n, n.inputs[0], a[0], "-np.inf")
    return "; ".join(lines + [f"np.maximum.reduce({win}, axis=(3, 4), out={out})"])


def avgpool2d(ctx, n, a, out):
    if ctx.windows is not None:
        return _native_pool(ctx, n, False)
    win, lines = _pool_windows(ctx, n, n.inputs[0], a[0], "0.0")
    inv = _inverse_counts(ctx, n, n.inputs[0])
    return "; ".join(lines + [f"np.add.reduce({win}, axis=(3, 4), out={out})", f"np.multiply({out}, {inv}, out={out})"])


def _inverse_counts(ctx, n, x_node) -> str:
    """1 / (non-padding elements of each window), [1, Ho, Wo, 1], made once."""
    a = n.attrs
    return ctx.make_value(n, "inv", f"(1.0 / _W.pool_counts({tuple(x_node.shape[1:3])!r}, {tuple(a['window'])!r}, "
                                    f"{tuple(a['strides'])!r}, {tuple(map(tuple, a['padding']))!r}))"
                                    f".astype(np.{'float32' if n.dtype == 'f32' else 'float64'})")


def maxpool2d_grad(ctx, n, a, out):
    """Each window's gradient to its first maximum (row-major), as PyTorch routes it."""
    if ctx.windows is not None:
        return _native_pool_grad(ctx, n, True)
    dy, x_node = n.inputs
    win, lines = _pool_windows(ctx, n, x_node, a[1], "-np.inf")
    ysh = dy.shape
    y, taken, hit, part = (ctx.scratch(n, "y", ysh), ctx.scratch(n, "t", ysh, "bool"),
                           ctx.scratch(n, "h", ysh, "bool"), ctx.scratch(n, "p", ysh))
    lines += [f"np.maximum.reduce({win}, axis=(3, 4), out={y})", f"{taken}.fill(False)"]

    def first_max(r, s):   # hit: the window's maximum sits here and not at an earlier offset
        return ([f"np.equal({win}[:, :, :, {r}, {s}], {y}, out={hit})", f"np.greater({hit}, {taken}, out={hit})",
                 f"np.logical_or({taken}, {hit}, out={taken})", f"np.multiply({a[0]}, {hit}, out={part})"], part)
    return "; ".join(lines + _scatter(ctx, n, first_max, out, x_node.shape, 1))


def avgpool2d_grad(ctx, n, a, out):
    if ctx.windows is not None:
        return _native_pool_grad(ctx, n, False)
    dy, x_node = n.inputs
    inv = _inverse_counts(ctx, n, x_node)
    share = ctx.scratch(n, "s", dy.shape)
    return "; ".join([f"np.multiply({a[0]}, {inv}, out={share})"]
                     + _scatter(ctx, n, lambda r, s: ([], share), out, x_node.shape, 1))


EMITTERS = {"conv2d": conv2d, "conv2d_grad_input": conv2d_grad_input, "conv2d_grad_filter": conv2d_grad_filter,
            "maxpool2d": maxpool2d, "maxpool2d_grad": maxpool2d_grad, "avgpool2d": avgpool2d,
            "avgpool2d_grad": avgpool2d_grad}
