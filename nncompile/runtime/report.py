"""Keras-style model summary (works without data)."""
from __future__ import annotations

import math


def summary(program) -> str:
    prog = program.ast
    inp = prog.model.input
    infos = program.graphs.infos
    # a model with branches gets Keras's "Connected to" column
    previous = [inp.name] + [i.layer.name for i in infos[:-1]]
    branched = any(i.sources != (p,) for i, p in zip(infos, previous))
    rows = [("Layer (type)", "Output Shape", "Param #") + (("Connected to",) if branched else ()) + ("Source",)]
    rows.append((f"{inp.name} (input)", str((None,) + tuple(inp.shape)), "0") + (("",) if branched else ())
                + (f"line {inp.loc.line}",))
    trainable = non_trainable = 0
    flops = 0
    for info in program.graphs.infos:
        L = info.layer
        n_tr = sum(math.prod(p.shape) for p in info.params if p.role == "param")
        n_st = sum(math.prod(p.shape) for p in info.params if p.role == "state")
        if L.frozen:  # a frozen layer's weights are not trained
            n_tr, n_st = 0, n_tr + n_st
        trainable += n_tr
        non_trainable += n_st
        flops += info.flops
        label = info.label + (", frozen" if L.frozen else "")
        rows.append((f"{L.name} ({label})", str((None,) + tuple(info.out_shape)), f"{n_tr + n_st:,}")
                    + ((", ".join(info.sources),) if branched else ()) + (f"line {L.loc.line}",))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    bar = "=" * (sum(widths) + 2 * (len(widths) - 1))
    out = [f'Model: "{prog.model.name}"  ({prog.filename})', bar, line(rows[0]), "-" * len(bar)]
    out += [line(r) for r in rows[1:]]
    out += [bar,
            f"Total params: {trainable + non_trainable:,} ({4 * (trainable + non_trainable):,} bytes as f32)",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {non_trainable:,}",
            f"Forward FLOPs per sample: {flops:,}"]
    return "\n".join(out)
