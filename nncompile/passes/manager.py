"""The pass manager: the optimisation pipeline, in order, with its names.

`PIPELINE` lists the passes that run on every graph after lowering. Each is a
function `Graph -> Graph`. `run_passes` returns the final graph and a log of
(pass name, graph after it, seconds) that `nncompile dump --after` prints.
With `verify=True` (or NNCOMPILE_VERIFY=1) the verifier runs after every pass.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

from ..ir.graph import Graph
from ..ir.verify import verify as verify_graph
from .autodiff import autodiff_pass
from .cleanup import cse, dce
from .flatten import flatten_params
from .fusion import fuse_elementwise
from .optimizer import optimizer_pass
from .fuse_xent import fuse_softmax_xent
from .loss_scale import scale_loss, skip_nonfinite, unscale_grads
from .memory import plan_memory
from .mixed_precision import mixed_precision
from .simplify import simplify

Pass = Callable[[Graph], Graph]

# The passes a graph needs to mean what the program says (no optimisation):
# the unoptimised graph that tests compare the optimised one against.
REQUIRED: list[tuple[str, Pass]] = [
    ("scale_loss", scale_loss),
    ("autodiff", autodiff_pass),
    ("unscale_grads", unscale_grads),
    ("mixed_precision", mixed_precision),
    ("optimizer", optimizer_pass),
    ("skip_nonfinite", skip_nonfinite),
    ("dce", dce),
]

PIPELINE: list[tuple[str, Pass]] = [
    ("fuse_softmax_xent", fuse_softmax_xent),
    ("scale_loss", scale_loss),
    ("autodiff", autodiff_pass),
    ("unscale_grads", unscale_grads),
    ("mixed_precision", mixed_precision),
    ("flatten_params", flatten_params),
    ("optimizer", optimizer_pass),
    ("skip_nonfinite", skip_nonfinite),
    ("simplify", simplify),
    ("cse", cse),
    ("dce", dce),
    ("fuse_elementwise", fuse_elementwise),
    ("plan_memory", plan_memory),
]


def pass_names() -> list[str]:
    return [name for name, _ in PIPELINE]


def run_passes(g: Graph, *, verify: bool = False, until: Optional[str] = None,
               pipeline: Optional[list[tuple[str, Pass]]] = None) -> tuple[Graph, list]:
    log = []
    if verify:
        verify_graph(g)
    for name, fn in (pipeline or PIPELINE):
        t0 = time.perf_counter()
        g = fn(g)
        dt = time.perf_counter() - t0
        if verify:
            verify_graph(g)
        log.append((name, g, dt))
        if name == until:
            break
    return g, log
