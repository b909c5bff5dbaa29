"""The run folder's curve picture, `curves.svg`: hand-written SVG, no plotting
library (the layer picture, graphviz.py, is made the same way and lends its
font and escaping).

    render_svg(history, title) -> str

One panel per logged quantity that is not a validation one (loss, each metric,
lr), each with the training curve and, when there is one, the validation
curve (`val_<name>`) against the epoch. The loss axis is logarithmic when every
finite loss is positive. A non-finite value breaks its line (no point is drawn
for it). `render_png` draws the same panels with matplotlib (`--curves png`).
"""
from __future__ import annotations

import math
from typing import Optional

from ..graphviz import FONT, _esc

TRAIN_COLOR = "#2563eb"
VAL_COLOR = "#ea580c"
PANEL_W, PANEL_H = 380, 250
PAD_L, PAD_R, PAD_T, PAD_B = 62, 14, 30, 40
LOG_NOTE = '<tspan font-weight="normal" font-size="10"> (log scale)</tspan>'


def panels(history: dict[str, list[float]]) -> list[str]:
    return [k for k in history if not k.startswith("val_")]


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _log_scale(key: str, history: dict) -> bool:
    vals = _finite(history[key]) + _finite(history.get(f"val_{key}", []))
    return key == "loss" and bool(vals) and all(v > 0 for v in vals)


def _lin_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = mag
    for m in (1, 2, 2.5, 5, 10):
        step = m * mag
        if span / step <= n:
            break
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi + step * 1e-9:
        ticks.append(0.0 if abs(k * step) < step * 1e-9 else k * step)
        k += 1
    return ticks


def _log_ticks(lo: float, hi: float) -> list[float]:
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for mults in ((1,), (1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [m * 10.0 ** e for e in range(a, b + 1) for m in mults if lo <= m * 10.0 ** e <= hi]
        if len(ticks) >= 3 or mults[-1] == 9:
            return ticks
    return []


def _range(vals: list[float], log: bool) -> tuple[float, float]:
    lo, hi = min(vals), max(vals)
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        d = 0.5 if log else max(abs(hi) * 0.1, 0.5 if hi == 0 else abs(hi) * 0.1)
        lo, hi = lo - d, hi + d
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad
    return (10 ** lo, 10 ** hi) if log else (lo, hi)


def _label(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    return f"{v:.3g}" if 1e-3 <= a < 1e4 else f"{v:.1e}"


def _panel(key: str, history: dict, x0: float, y0: float) -> list[str]:
    series = [(key, history[key], TRAIN_COLOR)]
    if f"val_{key}" in history:
        series.append((f"val_{key}", history[f"val_{key}"], VAL_COLOR))
    log = _log_scale(key, history)
    vals = [v for _, s, _ in series for v in _finite(s)]
    n = max(len(s) for _, s, _ in series)
    pw, ph = PANEL_W - PAD_L - PAD_R, PANEL_H - PAD_T - PAD_B
    left, top = x0 + PAD_L, y0 + PAD_T
    ex_lo, ex_hi = (-0.5, 0.5) if n <= 1 else (0.0, float(n - 1))
    out = [f'<g class="panel" id="panel-{_esc(key)}">',
           f'<text x="{left:.1f}" y="{y0 + 20}" font-weight="bold">{_esc(key)}{LOG_NOTE if log else ""}</text>',
           f'<rect x="{left:.1f}" y="{top:.1f}" width="{pw:.1f}" height="{ph:.1f}" fill="#ffffff" '
           f'stroke="#9ca3af" stroke-width="1"/>']

    def sx(e: float) -> float:
        return left + (e - ex_lo) / (ex_hi - ex_lo) * pw

    if not vals:
        out.append(f'<text x="{left + pw / 2:.1f}" y="{top + ph / 2:.1f}" text-anchor="middle" '
                   f'fill="#6b7280">no finite values</text>')
        out.append("</g>")
        return out
    lo, hi = _range(vals, log)
    f = math.log10 if log else (lambda v: v)
    flo, fhi = f(lo), f(hi)

    def sy(v: float) -> float:
        return top + ph - (f(v) - flo) / (fhi - flo) * ph

    # y ticks and grid
    for t in (_log_ticks(lo, hi) if log else _lin_ticks(lo, hi)):
        y = sy(t)
        out.append(f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{left + pw:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{left - 5:.1f}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{_label(t)}</text>')
    # x ticks: whole epochs
    xt = [0] if n <= 1 else [int(round(t)) for t in _lin_ticks(0, n - 1, 6) if float(t).is_integer()]
    for t in sorted(set(xt)):
        x = sx(t)
        out.append(f'<line x1="{x:.1f}" y1="{top + ph:.1f}" x2="{x:.1f}" y2="{top + ph + 4:.1f}" stroke="#6b7280"/>')
        out.append(f'<text x="{x:.1f}" y="{top + ph + 15:.1f}" text-anchor="middle" font-size="10">{t}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{top + ph + 32:.1f}" text-anchor="middle" '
               f'font-size="11">epoch</text>')
    # the curves: a polyline per finite run of points
    for name, s, color in series:
        runs, cur = [], []
        for e, v in enumerate(s):
            if v is not None and math.isfinite(float(v)):
                cur.append(f"{sx(e):.1f},{sy(float(v)):.1f}")
            elif cur:
                runs.append(cur)
                cur = []
        if cur:
            runs.append(cur)
        for r in runs:
            if len(r) > 1:
                out.append(f'<polyline points="{" ".join(r)}" fill="none" stroke="{color}" stroke-width="1.6"/>')
        if len(s) <= 40 or any(len(r) == 1 for r in runs):
            for r in runs:
                for p in (r if len(s) <= 40 else [q for q in r if len(r) == 1]):
                    cx, cy = p.split(",")
                    out.append(f'<circle cx="{cx}" cy="{cy}" r="2.2" fill="{color}"/>')
    # legend: in the panel's header, right-aligned, so that it never hides a curve
    lx = left + pw
    for name, _, color in reversed(series):
        lx -= 6.2 * len(name) + 26
        out.append(f'<line x1="{lx:.1f}" y1="{y0 + 16:.1f}" x2="{lx + 16:.1f}" y2="{y0 + 16:.1f}" '
                   f'stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{lx + 20:.1f}" y="{y0 + 20:.1f}" font-size="10">{_esc(name)}</text>')
    out.append("</g>")
    return out


def render_svg(history: dict[str, list[float]], title: str = "") -> Optional[str]:
    """The curves of a history as an SVG document; None when it holds no epoch."""
    keys = panels(history)
    if not keys or not any(history.values()):
        return None
    width, height = PANEL_W * len(keys), PANEL_H + 30
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" style="{FONT};font-size:12px">',
           '<rect width="100%" height="100%" fill="#ffffff"/>',
           f'<text x="12" y="20" font-weight="bold" font-size="14">{_esc(title)}</text>']
    for i, k in enumerate(keys):
        out += _panel(k, history, PANEL_W * i, 30)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def render_png(history: dict[str, list[float]], title: str = ""):
    """A function writing the curves as PNG to a binary file (matplotlib, Agg), or
    None when the history holds no epoch. Raises ImportError without matplotlib."""
    keys = panels(history)
    if not keys or not any(history.values()):
        return None
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6), squeeze=False)
    for ax, k in zip(axes[0], keys):
        ax.plot(range(len(history[k])), history[k], label=k)
        if f"val_{k}" in history:
            ax.plot(range(len(history[f"val_{k}"])), history[f"val_{k}"], label=f"val_{k}")
        ax.set_xlabel("epoch")
        ax.set_title(k)
        if _log_scale(k, history):
            ax.set_yscale("log")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()

    def write(f):
        try:
            fig.savefig(f, format="png", dpi=90)
        finally:
            plt.close(fig)
    return write
