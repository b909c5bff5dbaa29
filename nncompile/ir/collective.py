"""The data-parallel collective behind the `shard_mean` op.

Under data parallelism (docs/distributed.md) each worker runs the training
step on its shard of the global batch. `shard_mean(x)` is then the mean of
`x` over the workers, each weighted by its shard's share of the global batch
(n_r / N): the value the one-process step computes from the whole batch,
when `x` is a mean over the shard (a loss, a batch-norm statistic) or the
gradient of one. Its adjoint is itself.

The IR knows no processes: the runtime installs the reduction
(`install(fn)`, fn reducing a NumPy array or torch tensor in place, the same
on every worker), and every backend calls `reduce_into` (the NumPy backend
through the op's reference semantics). With nothing installed `shard_mean`
is the identity: one worker, or a graph replayed by the interpreter.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Optional

_reduce: Optional[Callable] = None


def install(fn: Optional[Callable]) -> None:
    """Set (or with None, remove) this process's reduction: fn(buffer) in place."""
    global _reduce
    _reduce = fn


@contextlib.contextmanager
def local():
    """Within it, `shard_mean` is the identity: a graph run on the whole global
    batch by one worker alone (the non-finite replay)."""
    global _reduce
    saved, _reduce = _reduce, None
    try:
        yield
    finally:
        _reduce = saved


def reduce_into(buf) -> None:
    """Reduce `buf` (this worker's value, overwritten with the weighted mean over the workers)."""
    if _reduce is not None:
        _reduce(buf)


def shard_mean(x):
    """The op's reference semantics: a reduced copy of `x`."""
    import numpy as np
    out = np.array(x, copy=True)
    reduce_into(out)
    return out
