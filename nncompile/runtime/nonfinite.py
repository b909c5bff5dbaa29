"""Finding where a NaN or Inf came from.

When a batch's loss or metric is not finite, the non-finite policy
(callbacks/nan_policy.py) stops the loop and calls `locate_train_step`. It does
not keep a copy of the state before every step (that would cost a copy of every
parameter per batch). Instead it recomputes it: it restores the snapshot taken
at the start of the epoch (the loop keeps one anyway, for Ctrl-C and
`--on-nan rollback`), re-runs the compiled step on the
epoch's earlier batches (same order, same rng and step values, so the same
state), and then replays the bad batch through the reference interpreter on
the *unoptimized* train_step graph with exactly the inputs the step got
(parameters and state before the step, x, y, rng, step, lr).
`first_nonfinite` names the first IR node whose value is not finite; every node
carries the `.nn` source location and layer it came from.

If that first node is an input (a parameter or an optimizer state that was
already non-finite), the previous step produced it, so that step is replayed
instead. Cost: at most one epoch of extra compute, only when a NaN happens.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import TrainingError
from ..ir import collective
from ..ir.interpret import first_nonfinite
from ..ir.ops import NP_DTYPE


@dataclass
class NonFiniteReport:
    what: str                       # "loss", "accuracy", "val_loss", "parameters"
    value: float
    epoch: int
    batch: Optional[int] = None     # index of the batch within the epoch
    step: Optional[int] = None      # the optimizer step (1-based) whose graph produced it
    node: object = None             # the first non-finite IR node, if found
    graph: str = "train_step"
    note: str = ""
    action: str = "stop"            # "stop" | "rollback"

    def render(self, program) -> str:
        where = f"epoch {self.epoch}" + (f", batch {self.batch}" if self.batch is not None else "")
        head = f"non-finite {self.what} ({self.value}) at {where}"
        if self.step is not None:
            head += f" (step {self.step})"
        lines = [f"Training stopped: {head}"]
        n = self.node
        if n is not None:
            src = ", ".join(f"%{i.id} {i.op}" for i in n.inputs[:4])
            desc = (f"the first non-finite value is {n.name}: {n.type_str} = {n.op}({src})"
                    f" in the {self.graph} graph")
            if n.layer:
                desc += f", layer '{n.layer}'"
            err = TrainingError(desc, n.loc, source=program.ast.source if n.loc and
                                n.loc.file == program.ast.filename else None)
            lines.append(str(err))
        elif self.note:
            lines.append(self.note)
        if self.note and n is not None:
            lines.append(self.note)
        return "\n".join(lines)


def _weights(g, feed: dict, wb, n: int) -> dict:
    """The sample weights of a weighted graph (1 where none were given)."""
    if "sample_weight" in g.inputs:
        feed["sample_weight"] = np.asarray(np.ones(n) if wb is None else wb, NP_DTYPE[g.inputs["sample_weight"].dtype])
    return feed


def _inputs(trainer, host: dict, xb, yb, step: int, wb=None) -> dict:
    g = trainer.program.graphs.unoptimized["train_step"]
    dt = NP_DTYPE[trainer.program.float_dtype]
    feed = _weights(g, dict(host), wb, len(xb))
    feed[trainer.x_name] = np.asarray(xb, NP_DTYPE[g.inputs[trainer.x_name].dtype])
    feed["y"] = np.asarray(yb, NP_DTYPE[g.inputs["y"].dtype])
    feed["rng"] = np.zeros(tuple(g.inputs["rng"].shape), np.int64)   # a data-parallel one: from row 0
    feed["rng"][:2] = trainer.seed, step
    feed["step"] = np.array(step, dt)
    feed["lr"] = np.array(trainer.lr, dt)
    return feed


def locate_train_step(trainer, epoch_start: dict, batches: list, bad: int, x, y,
                      w=None) -> tuple[object, int, int]:
    """Recompute the state before batch `bad` from `epoch_start` (a Trainer
    snapshot) and replay it through the interpreter (`w`: the sample weights,
    or None). Returns (node or None, the batch index it was found in, that
    step). Leaves the trainer at the state before batch `bad` (or before the
    batch found)."""
    wb = (lambda j: None) if w is None else (lambda j: w[batches[j]])
    g = trainer.program.graphs.unoptimized["train_step"]
    trainer.restore(epoch_start)
    prev = None          # (host state, batch index, step) before the previous step
    for j in range(bad):
        if j == bad - 1:
            prev = (trainer.host("arrays"), j, trainer.step_count + 1)
        if w is None:
            trainer.train_batch(x[batches[j]], y[batches[j]])
        else:
            trainer.train_batch(x[batches[j]], y[batches[j]], wb(j))
    cur = (trainer.host("arrays"), bad, trainer.step_count + 1)
    candidates = [cur, prev] if bad < len(batches) else [prev]
    for cand in candidates:
        if cand is None:
            continue
        host, j, step = cand
        with collective.local():   # the whole global batch, here: the step one process would take
            node = first_nonfinite(g, _inputs(trainer, host, x[batches[j]], y[batches[j]], step, wb(j)))
        if node is not None and node.op == "input" and cand is cur and prev is not None:
            continue    # already non-finite before this step: the previous step made it
        return node, j, step
    return None, bad, cur[2]


def locate_evaluate(program, trainer, val) -> str:
    """For a non-finite validation value: the first node of the evaluate graph
    that is not finite on the first validation batch that shows it."""
    if val is None:
        return ""
    g = program.graphs.unoptimized.get("evaluate")
    if g is None:
        return ""
    state = trainer.host("model_state")
    for i in range(0, len(val.x), 256):
        feed = _weights(g, {**state, trainer.x_name: val.x[i:i + 256], "y": val.y[i:i + 256]},
                        None if val.w is None else val.w[i:i + 256], len(val.x[i:i + 256]))
        node = first_nonfinite(g, feed)
        if node is not None:
            where = f" at {node.loc}" if node.loc else ""
            layer = f", layer '{node.layer}'" if node.layer else ""
            return (f"the first non-finite value on validation samples {i}..{min(i + 256, len(val.x)) - 1} is "
                    f"{node.name}: {node.type_str} = {node.op} in the evaluate graph{layer}{where}")
    return "the reference interpreter did not reproduce the non-finite validation value"


def all_finite(arrays: dict) -> bool:
    return all(np.all(np.isfinite(v)) for v in arrays.values() if np.asarray(v).dtype.kind == "f")


def first_bad(values: dict) -> Optional[str]:
    for k, v in values.items():
        if not math.isfinite(v):
            return k
    return None
