"""Pictures of a program as self-contained SVG or HTML (no system Graphviz).

    render(program, kind="layers", fmt="svg") -> str

kind="layers": one box per layer (and the input), top to bottom, with the
layer's name and kind, its output shape, its parameter count (and frozen /
lr_mult when set) and its source line; an arrow into each layer from each
of its inputs (the layer before it, unless its kind names others).

kind="kernels": the IR of the training step (the predict graph for a
program without a train block). With fusion groups (`graph.meta["groups"]`,
from the fusion pass) one box per group, listing its ops; otherwise one box
per IR node, colored by op kind. Graph inputs (parameters, optimizer state,
data) are small boxes at the top; constants are left out. Each box shows
the shape and the source line(s) it came from; hovering shows the details.
Boxes are laid out in layers by longest path from the inputs.

fmt="html" wraps the SVG in a minimal page with a title and a legend.

    write_picture(program, path, kind="layers") -> the format written

writes the picture in the format the file's extension names (.svg, .html/.htm;
.png and .pdf drawn from the same layout with cairosvg or else matplotlib,
refused when neither is installed), atomically, with the umask's mode; it
refuses any other extension, a folder, a missing folder and the program's own
file (`nncompile graph -o`).
"""
from __future__ import annotations

import html
import math
import os
from typing import Optional

from .errors import NNError
from .frontend.layers import LAYERS

__all__ = ["render", "write_picture", "FORMATS"]

FONT = "font-family:ui-monospace,Menlo,Consolas,monospace"

INPUT_COLOR = "#e5e7eb"
FROZEN_COLOR = "#d1d5db"
OP_COLORS = {
    "input": "#f3f4f6", "elementwise": "#dbeafe", "matmul": "#fde68a", "reduction": "#d1fae5",
    "rowwise": "#fbcfe8", "movement": "#e5e7eb", "index": "#ede9fe", "random": "#fee2e2",
    "const": "#ffffff",
}


def _esc(s) -> str:
    return html.escape(str(s), quote=True)


def _shape(shape) -> str:
    return "(" + ", ".join("None" if d == "B" else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class _Box:
    __slots__ = ("key", "lines", "color", "tip", "w", "h", "x", "y", "small")

    def __init__(self, key, lines, color, tip="", small=False):
        self.key, self.lines, self.color, self.tip, self.small = key, lines, color, tip, small
        self.w = self.h = self.x = self.y = 0.0


CHAR_W = 7.2        # monospace 12px
LINE_H = 16


def _size(b: _Box) -> None:
    longest = max((len(t) for t, _ in b.lines), default=4)
    b.w = max(90 if b.small else 150, CHAR_W * longest + 20)
    b.h = LINE_H * len(b.lines) + 12


MARGIN = 20


def _layout(boxes: list[_Box], rows: list[list[_Box]], title: str) -> tuple[float, float]:
    """Size and place every box; returns the picture's (width, height)."""
    for b in boxes:
        _size(b)
    gap_x, gap_y, margin = 24, 44, MARGIN
    row_w = [sum(b.w for b in r) + gap_x * (len(r) - 1) for r in rows]
    width = max(max(row_w, default=200), 8.4 * len(title)) + 2 * margin
    y = margin + 28
    for r, rw in zip(rows, row_w):
        x = (width - rw) / 2
        rh = max(b.h for b in r)
        for b in r:
            b.x, b.y = x, y + (rh - b.h) / 2
            x += b.w + gap_x
        y += rh + gap_y
    return width, y - gap_y + margin


def _edge_points(a: _Box, b: _Box) -> tuple[tuple[float, float], ...]:
    """The cubic Bezier of an edge: start, two control points, end."""
    x1, y1 = a.x + a.w / 2, a.y + a.h
    x2, y2 = b.x + b.w / 2, b.y
    dy = max(20.0, (y2 - y1) / 2)
    return (x1, y1), (x1, y1 + dy), (x2, y2 - dy), (x2, y2)


def _svg(boxes: list[_Box], rows: list[list[_Box]], edges: list[tuple[_Box, _Box]], title: str) -> str:
    width, height = _layout(boxes, rows, title)
    margin = MARGIN
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" style="{FONT};font-size:12px">',
           "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" "
           "markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#374151\"/>"
           "</marker></defs>",
           '<rect width="100%" height="100%" fill="#ffffff"/>',
           f'<text x="{margin}" y="{margin + 12}" font-weight="bold" font-size="14">{_esc(title)}</text>']
    out.append('<g class="edges" fill="none" stroke="#374151" stroke-width="1.2">')
    for a, b in edges:
        (x1, y1), (cx1, cy1), (cx2, cy2), (x2, y2) = _edge_points(a, b)
        out.append(f'<path d="M {x1:.1f} {y1:.1f} C {cx1:.1f} {cy1:.1f}, {cx2:.1f} {cy2:.1f}, '
                   f'{x2:.1f} {y2:.1f}" marker-end="url(#arrow)"/>')
    out.append("</g>")
    for b in boxes:
        out.append(f'<g class="box" id="{_esc(b.key)}">')
        if b.tip:
            out.append(f"<title>{_esc(b.tip)}</title>")
        out.append(f'<rect x="{b.x:.1f}" y="{b.y:.1f}" width="{b.w:.1f}" height="{b.h:.1f}" rx="6" '
                   f'fill="{b.color}" stroke="#374151" stroke-width="1"/>')
        for i, (text, style) in enumerate(b.lines):
            weight = ' font-weight="bold"' if style == "b" else ""
            fill = ' fill="#4b5563"' if style == "dim" else ""
            out.append(f'<text x="{b.x + 10:.1f}" y="{b.y + 6 + LINE_H * (i + 1) - 4:.1f}"{weight}{fill}>'
                       f"{_esc(text)}</text>")
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


# --- layers ------------------------------------------------------------------------

def _layers(program) -> tuple[list[_Box], list[list[_Box]], list, str, dict]:
    prog = program.ast
    inp = prog.model.input
    boxes = [_Box("input", [(f"{inp.name}  (input)", "b"), (f"output {_shape(('B',) + tuple(inp.shape))}", ""),
                            (f"line {inp.loc.line}", "dim")], INPUT_COLOR,
                  tip=f"input {inp.name}: {inp.dtype}{list(inp.shape)} (line {inp.loc.line})")]
    by_name = {inp.name: boxes[0]}
    edges = []
    for info in program.graphs.infos:
        L = info.layer
        n = sum(math.prod(p.shape) for p in info.params)
        extra = []
        if getattr(L, "frozen", False):
            extra.append("frozen")
        if getattr(L, "lr_mult", 1.0) != 1.0:
            extra.append(f"lr x{L.lr_mult:g}")
        lines = [(f"{L.name}  ({info.label})", "b"), (f"output {_shape(('B',) + tuple(info.out_shape))}", ""),
                 (f"params {n:,}" + (f"  [{', '.join(extra)}]" if extra else ""), ""),
                 (f"line {L.loc.line}", "dim")]
        tip = "\n".join([f"{L.kind} {L.name} (line {L.loc.line})"]
                        + [f"{k} = {v}" for k, v in L.args.items()]
                        + [f"{p.name}: {list(p.shape)} ({p.role})" for p in info.params])
        kind = LAYERS[L.kind]
        box = _Box(f"layer-{L.name}", lines, FROZEN_COLOR if L.frozen else kind.color, tip)
        edges += [(by_name[n], box) for n in kind.inputs(L)] or [(boxes[-1], box)]
        boxes.append(box)
        by_name[L.name] = box
    rows = [[b] for b in boxes]
    legend = {"input": INPUT_COLOR, **{name: kind.color for name, kind in LAYERS.items()}, "frozen": FROZEN_COLOR}
    return boxes, rows, edges, f'model "{prog.model.name}"  ({prog.filename})', legend


# --- kernels -----------------------------------------------------------------------

def _lines_of(nodes) -> str:
    ls = sorted({n.loc.line for n in nodes if n.loc is not None})
    if not ls:
        return "no source line"
    if len(ls) == 1:
        return f"line {ls[0]}"
    return "lines " + ", ".join(map(str, ls[:6])) + (", ..." if len(ls) > 6 else "")


def _kernels(program, graph: Optional[str] = None):
    from .ir.ops import OPS
    name = graph or ("train_step" if program.graphs.train_step is not None else "predict")
    g = getattr(program.graphs, name)
    live = g.live_nodes()
    byid = {n.id: n for n in live}
    groups = g.meta.get("groups") or []
    valid = bool(groups) and all(i in byid for gr in groups for i in gr.get("nodes", ()))
    owner: dict[int, _Box] = {}
    boxes: list[_Box] = []
    members: dict[int, list] = {}
    for n in live:
        if n.op == "input":
            spec = g.input_specs[n.attrs["name"]]
            b = _Box(f"in-{n.id}", [(n.attrs["name"], "b"), (n.type_str, "dim")], OP_COLORS["input"],
                     tip=f"input {n.attrs['name']} ({spec.role}{'' if spec.trainable else ', frozen'}) "
                         f"{n.type_str}", small=True)
            boxes.append(b)
            owner[n.id] = b
            members[id(b)] = [n]
    if valid:
        for gr in groups:
            ns = [byid[i] for i in gr["nodes"]]
            ops = " ".join(n.op for n in ns)
            if len(ops) > 44:
                ops = ops[:41] + "..."
            root = byid.get(gr.get("root", ns[-1].id), ns[-1])
            layers = sorted({n.layer for n in ns if n.layer})
            kind = gr.get("kind", "group")
            lines = [(f"group {gr.get('id', len(boxes))}: {kind} ({len(ns)} ops)", "b"), (ops, ""),
                     (f"{root.dtype}[{','.join(map(str, root.shape))}]", ""),
                     (f"{', '.join(layers[:3]) + (', ...' if len(layers) > 3 else '')}  {_lines_of(ns)}", "dim")]
            tip = "\n".join(f"%{n.id}: {n.type_str} = {n.op}  # {n.loc.line if n.loc else '?'} {n.layer or ''}"
                            for n in ns)
            color = OP_COLORS.get(kind, OP_COLORS.get(OPS[root.op].kind, "#ffffff"))
            b = _Box(f"group-{gr.get('id')}", lines, color, tip)
            boxes.append(b)
            members[id(b)] = ns
            for n in ns:
                owner[n.id] = b
    for n in live:
        if n.id in owner or n.op in ("input", "const"):
            continue
        kind = OPS[n.op].kind
        lines = [(f"%{n.id} {n.op}", "b"), (n.type_str, ""),
                 (f"{n.layer or ''}  {_lines_of([n])}".strip(), "dim")]
        attrs = ", ".join(f"{k}={v}" for k, v in n.attrs.items())
        b = _Box(f"node-{n.id}", lines, OP_COLORS.get(kind, "#ffffff"),
                 tip=f"%{n.id}: {n.type_str} = {n.op} {attrs}".strip()
                     + (f"\n{n.loc} ({n.layer})" if n.loc else ""))
        boxes.append(b)
        members[id(b)] = [n]
        owner[n.id] = b
    # edges between boxes and depth (longest path) per box; boxes are in a valid order
    # except that a group's position is its root's, so iterate nodes in graph order.
    edge_set: dict[tuple[int, int], tuple[_Box, _Box]] = {}
    for n in live:
        b = owner.get(n.id)
        if b is None:
            continue
        for i in n.inputs:
            a = owner.get(i.id)
            if a is not None and a is not b:
                edge_set.setdefault((id(a), id(b)), (a, b))
    preds: dict[int, list[_Box]] = {}
    for a, b in edge_set.values():
        preds.setdefault(id(b), []).append(a)
    depth: dict[int, int] = {}

    def d(b: _Box, stack=0) -> int:
        k = id(b)
        if k not in depth:
            depth[k] = 0  # guards cycles (none in valid groupings)
            depth[k] = max((d(a) + 1 for a in preds.get(k, ())), default=0)
        return depth[k]

    import sys
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 10000 + 4 * len(boxes)))
    try:
        for b in boxes:
            d(b)
    finally:
        sys.setrecursionlimit(old)
    # inputs sit just above their first consumer instead of all in the top row
    succ_depth: dict[int, int] = {}
    for a, b in edge_set.values():
        if a.small:
            succ_depth[id(a)] = min(succ_depth.get(id(a), 1 << 30), depth[id(b)])
    for b in boxes:
        if b.small and id(b) in succ_depth:
            depth[id(b)] = max(0, succ_depth[id(b)] - 1)
    nrows = max(depth.values(), default=0) + 1
    rows: list[list[_Box]] = [[] for _ in range(nrows)]
    for b in boxes:
        rows[depth[id(b)]].append(b)
    rows = [r for r in rows if r]
    title = (f'{name} of "{program.ast.model.name}": '
             + (f"{len(groups)} fusion groups" if valid else f"{sum(1 for b in boxes if not b.small)} IR nodes"))
    legend = {k: c for k, c in OP_COLORS.items() if k != "const"}
    return boxes, rows, list(edge_set.values()), title, legend


# --- public --------------------------------------------------------------------------

def render(program, kind: str = "layers", fmt: str = "svg", graph: Optional[str] = None) -> str:
    """The picture of `program` (a compiled `nncompile.compiler.Program`) as an SVG
    document or a self-contained HTML page. kind: "layers" or "kernels"; `graph`
    picks the IR graph for kernels (default train_step, else predict)."""
    if kind not in ("layers", "kernels"):
        raise ValueError(f"kind must be 'layers' or 'kernels', got {kind!r}")
    if fmt not in ("svg", "html"):
        raise ValueError(f"fmt must be 'svg' or 'html', got {fmt!r}")
    boxes, rows, edges, title, legend = _layers(program) if kind == "layers" else _kernels(program, graph)
    svg = _svg(boxes, rows, edges, title)
    if fmt == "svg":
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + svg + "\n"
    items = "".join(f'<span class="key"><span class="sw" style="background:{c}"></span>{_esc(k)}</span>'
                    for k, c in legend.items())
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_esc(title)}</title><style>"
            "body{font-family:system-ui,sans-serif;margin:16px;color:#111827}"
            ".legend{margin:8px 0 12px}.key{margin-right:14px;font-size:13px;white-space:nowrap}"
            ".sw{display:inline-block;width:12px;height:12px;border:1px solid #374151;margin-right:4px;"
            "vertical-align:-2px}.wrap{overflow:auto}"
            "</style></head><body>"
            f"<h1 style=\"font-size:18px\">{_esc(title)}</h1>"
            f"<div class=\"legend\">{items}</div><div class=\"wrap\">{svg}</div>"
            "<p style=\"font-size:12px;color:#6b7280\">Hover a box for details. Made by nncompile graph.</p>"
            "</body></html>\n")


# --- files ---------------------------------------------------------------------------

FORMATS = {".svg": "svg", ".html": "html", ".htm": "html", ".png": "png", ".pdf": "pdf"}


def _draw_matplotlib(boxes: list[_Box], rows, edges, title: str, fmt: str):
    """The same picture drawn with matplotlib (no pyplot, no global backend
    change): a function writing it as PNG or PDF to a binary file."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path
    width, height = _layout(boxes, rows, title)
    dpi = 96
    pt = 72 / dpi                      # one SVG pixel in points
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    mono = ["DejaVu Sans Mono", "monospace"]
    ax.text(MARGIN, MARGIN + 12, title, fontsize=14 * pt, fontweight="bold", family=mono, va="baseline")
    for a, b in edges:
        path = Path(list(_edge_points(a, b)), [Path.MOVETO, Path.CURVE4, Path.CURVE4, Path.CURVE4])
        ax.add_patch(FancyArrowPatch(path=path, arrowstyle="-|>", mutation_scale=9, color="#374151", lw=1.2 * pt))
    for b in boxes:
        ax.add_patch(FancyBboxPatch((b.x, b.y), b.w, b.h, boxstyle="round,pad=0,rounding_size=6",
                                    facecolor=b.color, edgecolor="#374151", lw=pt))
        for i, (text, style) in enumerate(b.lines):
            ax.text(b.x + 10, b.y + 6 + LINE_H * (i + 1) - 4, text, fontsize=12 * pt, family=mono,
                    fontweight="bold" if style == "b" else "normal",
                    color="#4b5563" if style == "dim" else "#111827", va="baseline")
    return lambda f: fig.savefig(f, format=fmt, dpi=dpi)


def _raster(program, kind: str, fmt: str, graph: Optional[str]):
    """A writer of the picture as PNG or PDF: cairosvg when installed, else matplotlib."""
    try:
        import cairosvg
    except Exception:   # not installed, or its cairo library is missing
        cairosvg = None
    if cairosvg is not None:
        svg = render(program, kind, "svg", graph).encode("utf-8")
        data = (cairosvg.svg2png if fmt == "png" else cairosvg.svg2pdf)(bytestring=svg)
        return lambda f: f.write(data)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    boxes, rows, edges, title, _ = _layers(program) if kind == "layers" else _kernels(program, graph)
    return _draw_matplotlib(boxes, rows, edges, title, fmt)


def write_picture(program, path: str, kind: str = "layers", graph: Optional[str] = None) -> str:
    """Write the picture of `program` to `path` in the format its extension names
    (see FORMATS); returns that format. Every refusal is an NNError (the CLI: exit 2)."""
    from .runtime.weights import write_atomic
    path = os.fspath(path)
    shown = f"graph -o {path}"
    if os.path.isdir(path):
        raise NNError(f"{shown}: is a folder", hint=f"give a file name, e.g. {os.path.join(path, 'model.svg')}")
    ext = os.path.splitext(path)[1].lower()
    fmt = FORMATS.get(ext)
    if fmt is None:
        raise NNError(f"{shown}: cannot tell the picture's format from '{ext or path}'",
                      hint="end the file name with .svg, .html, .png or .pdf")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise NNError(f"{shown}: the folder {os.path.dirname(path) or folder} does not exist")
    src = program.ast.filename
    if src and os.path.exists(src) and os.path.exists(path) and os.path.samefile(src, path):
        raise NNError(f"{shown}: that is the program itself; it is never written over")
    if fmt in ("svg", "html"):
        text = render(program, kind, fmt, graph)
        write = lambda f: f.write(text.encode("utf-8"))  # noqa: E731
    else:
        write = _raster(program, kind, fmt, graph)
        if write is None:
            raise NNError(f"{shown}: drawing {fmt.upper()} needs cairosvg or matplotlib, and neither is installed",
                          hint="pip install matplotlib (or cairosvg); .svg and .html need nothing")
    try:
        write_atomic(path, write)
    except PermissionError:
        raise NNError(f"{shown}: permission denied") from None
    return fmt
