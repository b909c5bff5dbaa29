"""The reference interpreter: runs a graph node by node with each op's `ref`.

Slow and simple on purpose. It is the oracle the backends are tested against,
and the tool that replays a batch to find the first node that produced a NaN.
"""
from __future__ import annotations

from typing import Callable, Mapping, Optional

import numpy as np

from .graph import Graph, Node
from .ops import NP_DTYPE, reference


def interpret(g: Graph, inputs: Mapping[str, np.ndarray],
              watch: Optional[Callable[[Node, np.ndarray], None]] = None) -> dict[str, np.ndarray]:
    env: dict[int, np.ndarray] = {}
    for n in g.live_nodes():
        if n.op == "input":
            name = n.attrs["name"]
            if name not in inputs:
                continue
            env[n.id] = np.asarray(inputs[name], NP_DTYPE[n.dtype])
        else:
            env[n.id] = reference(n, [env[i.id] for i in n.inputs])
        if watch is not None:
            watch(n, env[n.id])
    return {k: env[n.id] for k, n in g.outputs.items()}


def first_nonfinite(g: Graph, inputs: Mapping[str, np.ndarray]) -> Optional[Node]:
    """The first node (in execution order) whose value holds a NaN or Inf."""
    found: list[Node] = []

    def watch(n: Node, v: np.ndarray) -> None:
        if not found and v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            found.append(n)

    with np.errstate(all="ignore"):
        interpret(g, inputs, watch)
    return found[0] if found else None
