"""Cross-check two backends: run the same training steps on both and compare.

`nncompile run FILE --check-backend` (or `cross_check(path)`) trains a few steps
on the NumPy backend and on the Triton backend from the same initial weights,
on the same batches from the program's own data, and compares the losses, the
gradients of the first batch and, for each step started from the same state on
both, the parameters and optimizer state after it. Without a GPU
the Triton side runs under the Triton interpreter (set before Triton loads).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

# the tolerances documented in docs/triton-backend.md (float32, a few steps)
RTOL = 1e-4
ATOL_SCALE = 1e-5


@dataclass
class CrossCheck:
    steps: int
    rows: list[tuple[str, float, bool]] = field(default_factory=list)   # (what, max rel diff, ok)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r[2] for r in self.rows)

    def text(self) -> str:
        lines = [f"cross-check numpy vs triton, {self.steps} steps (rtol {RTOL:g}, atol {ATOL_SCALE:g} x scale):"]
        for what, d, ok in self.rows:
            lines.append(f"  {'ok ' if ok else 'BAD'} {what:<40} max rel diff {d:.2e}")
        lines += [f"  note: {n}" for n in self.notes]
        lines.append("backends agree" if self.ok else "backends DISAGREE")
        return "\n".join(lines)


def _compare(a: np.ndarray, b: np.ndarray) -> tuple[float, bool]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(1e-12, float(np.max(np.abs(a))) if a.size else 1.0)
    diff = np.abs(a - b)
    ok = bool(np.all(diff <= RTOL * np.abs(a) + ATOL_SCALE * scale))
    return float(np.max(diff / np.maximum(np.abs(a), scale * 1e-3))) if a.size else 0.0, ok


def cross_check(path: str, steps: int = 3, seed: int = 0) -> CrossCheck:
    from .backends.triton import missing
    from .errors import NNError
    if missing() is not None:
        raise NNError(f"--check-backend: {missing()}")
    import torch
    interpreted = not torch.cuda.is_available()
    if interpreted:
        os.environ.setdefault("TRITON_INTERPRET", "1")
    from .compiler import compile
    from .runtime.loop import load_datasets
    pn, pt = compile(path), compile(path, backend="triton")
    train, _ = load_datasets(pn)
    bs = pn.ast.train.batch_size
    params = pn.init_params(seed)
    res = CrossCheck(steps)
    if interpreted:
        res.notes.append("no CUDA GPU here: the Triton side ran under Triton's CPU interpreter (slow; the "
                         "numbers check the generated kernels, not a GPU)")
    xb, yb = train.x[:bs], train.y[:bs]
    ln, gn = pn.loss_and_grads(params, xb, yb)
    lt, gt = pt.loss_and_grads(params, xb, yb)
    res.rows.append(("loss_and_grads: loss", *_compare(np.array(ln), np.array(lt))))
    for k in gn:
        res.rows.append((f"loss_and_grads: d {k}", *_compare(gn[k], gt[k])))
    tn, tt = pn.trainer(seed=seed, params=params), pt.trainer(seed=seed, params=params)
    # Each step starts both backends from the same state (the NumPy side's): a
    # trajectory compared over several steps mostly measures how chaotic training
    # is (batch norm and Adam amplify last-bit differences), not the backends.
    # An adaptive optimizer (Adam normalises the gradient) turns a gradient element
    # that is mostly rounding into a full-size step whose sign is noise, different
    # on each backend: such elements are not a disagreement, so they are not
    # compared. An element is rounding-dominated when the two backends' gradients
    # at the same point differ by more than a tenth of it.
    adaptive = pn.ast.train.optimizer.name in ("adam", "adamw", "rmsprop")
    rng = np.random.default_rng(seed)
    ln_, lt_ = [], []
    worst: dict[str, tuple[float, bool]] = {}
    skipped = 0
    for _ in range(steps):
        idx = rng.choice(len(train), size=min(bs, len(train)), replace=False)
        xb, yb = train.x[idx], train.y[idx]
        start = tn.snapshot()
        tt.restore({"arrays": tt.to_device(tn.to_host(start["arrays"])), "step": start["step"]})
        significant = {}
        if adaptive:
            here = tn.host()
            _, g = pn.loss_and_grads(here, xb, yb)
            _, g2 = pt.loss_and_grads(here, xb, yb)
            top = max(float(np.max(np.abs(v))) for v in g.values())
            significant = {k: (np.abs(v) > 1e-5 * top) & (np.abs(v - g2[k]) <= 0.1 * np.abs(v))
                           for k, v in g.items()}
        ln_.append(tn.step(xb, yb))
        lt_.append(tt.step(xb, yb))
        hn, ht = tn.host("arrays"), tt.host("arrays")
        for k in hn:
            p = next((q for q in significant if k == q or k.endswith("." + q)), None)
            mask = significant[p] if p is not None else np.ones(np.shape(hn[k]), bool)
            skipped += int(mask.size - mask.sum()) if p == k else 0
            d, ok = _compare(hn[k][mask], ht[k][mask])
            prev = worst.get(k, (0.0, True))
            worst[k] = (max(prev[0], d), prev[1] and ok)
    res.rows.append(("train steps: losses", *_compare(np.array(ln_), np.array(lt_))))
    for k, (d, ok) in worst.items():
        res.rows.append((f"each step: {k}", d, ok))
    if skipped:
        res.notes.append(f"{skipped} parameter elements not compared after a step: their gradient was "
                         f"mostly rounding (the backends' gradients differed by over a tenth of it), "
                         f"and {pn.ast.train.optimizer.name} turns that noise into steps")
    return res
