"""Helpers the generated NumPy modules call for ops that are not one NumPy call."""
from __future__ import annotations

import numpy as np

from ...ir import philox


def dropout_mask(rng: np.ndarray, rate: float, stream: int, out: np.ndarray) -> None:
    """out = keep / (1 - rate), keep drawn by the counter-based Philox generator
    from (seed, step, stream), exactly as the Triton backend draws it."""
    seed, step = int(rng[0]), int(rng[1])
    keep = philox.dropout_keep_mask(seed, step, stream, out.shape, rate)
    np.multiply(keep, 1.0 / (1.0 - rate), out=out)
