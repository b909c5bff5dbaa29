"""Helpers the generated NumPy modules call for ops that are not one NumPy call."""
from __future__ import annotations

import math

import numpy as np

from ...ir import philox


def dropout_mask(rng: np.ndarray, rate: float, stream: int, out: np.ndarray) -> None:
    """out = keep / (1 - rate), keep drawn by the counter-based Philox generator
    from (seed, step, stream), exactly as the Triton backend draws it."""
    seed, step = int(rng[0]), int(rng[1])
    keep = philox.dropout_keep_mask(seed, step, stream, out.shape, rate)
    np.multiply(keep, 1.0 / (1.0 - rate), out=out)


# Scalar math on Python floats for the scalar parts of a step (the learning-rate
# schedule of Adam's bias correction, say): ~10x cheaper than NumPy calls on 0-d
# arrays, with IEEE results where `math` would raise.
def sdiv(a, b):
    try:
        return a / b
    except ZeroDivisionError:
        return math.nan if a == 0 or a != a else math.copysign(math.inf, a) * math.copysign(1.0, b)


def sexp(a):
    try:
        return math.exp(a)
    except OverflowError:
        return math.inf


def slog(a):
    if a > 0:
        return math.log(a)
    return -math.inf if a == 0 else math.nan


def ssqrt(a):
    return math.sqrt(a) if a >= 0 else math.nan


_POOL = None


def run_tiles(fn, tiles, *args) -> None:
    """Run fn(lo, hi, worker, *args) over the tiles on two threads (NumPy releases
    the GIL inside its loops), each thread taking every other tile; `worker` (0 or
    1) picks the thread's own scratch row."""
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor
        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nncompile-tiles")

    def half(w):
        for lo, hi in tiles[w::2]:
            fn(lo, hi, w, *args)

    other = _POOL.submit(half, 1)
    half(0)
    other.result()
