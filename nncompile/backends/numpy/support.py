"""Helpers the generated NumPy modules call for ops that are not one NumPy call."""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ...ir import collective, philox
from ...ir.precision import round_to  # noqa: F401  (the generated code's `_s.round_to`)


def dropout_mask(rng: np.ndarray, rate: float, stream: int, out: np.ndarray) -> None:
    """out = keep / (1 - rate), keep drawn by the counter-based Philox generator
    from (seed, step, stream), exactly as the Triton backend draws it."""
    seed, step = int(rng[0]), int(rng[1])
    keep = philox.dropout_keep_mask(seed, step, stream, out.shape, rate, philox.first_index(rng, out.shape))
    np.multiply(keep, 1.0 / (1.0 - rate), out=out)


def shard_mean(x: np.ndarray, out: np.ndarray) -> None:
    """The data-parallel all-reduce (ir/collective.py): out = x averaged over the workers."""
    np.copyto(out, x)
    collective.reduce_into(out)


def mix(rng, stream: int) -> int:
    """The Philox key of one dropout site for this (seed, step) (the native path's dropout)."""
    return philox.mix(int(rng[0]), int(rng[1]), stream)


class Pointers:
    """Addresses of the graph inputs the native kernels read, refreshed only when
    the array object changes (taking `.ctypes.data` costs microseconds); each
    array is checked once: C-contiguous, of the kernel's dtype."""

    def __init__(self, dtypes: list):
        self.arrays = [None] * len(dtypes)
        self.addrs = [0] * len(dtypes)
        self.dtypes = dtypes

    def get(self, k: int, a) -> int:
        if self.arrays[k] is a:
            return self.addrs[k]
        if not (isinstance(a, np.ndarray) and a.flags.c_contiguous and a.dtype == self.dtypes[k]):
            raise TypeError(f"native kernels need C-contiguous {np.dtype(self.dtypes[k])} arrays, got "
                            f"{type(a).__name__} {getattr(a, 'dtype', '')}")
        self.arrays[k], self.addrs[k] = a, a.ctypes.data
        return self.addrs[k]


class Views:
    """Views of graph inputs (the parameters as slices of their flat buffer), made
    again only when the array object changes: a slice and a reshape cost ~0.8 us,
    as much as the rest of a small model's step spends on some ops."""

    def __init__(self, makers: list):
        self.makers = makers
        self.arrays = [None] * len(makers)
        self.views = [None] * len(makers)

    def get(self, k: int, a):
        if self.arrays[k] is not a:
            self.arrays[k], self.views[k] = a, self.makers[k](a)
        return self.views[k]


def windows(x: np.ndarray, window, strides, dilation, ho: int, wo: int) -> np.ndarray:
    """A read-only view [B, Ho, Wo, kh, kw, C] of the windows of image x [B, H, W, C]."""
    (kh, kw), (sh, sw), (dh, dw) = window, strides, dilation
    sb, s_h, s_w, sc = x.strides
    return as_strided(x, (x.shape[0], ho, wo, kh, kw, x.shape[3]),
                      (sb, s_h * sh, s_w * sw, s_h * dh, s_w * dw, sc), writeable=False)


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



def run_tiles(fn, tiles, *args) -> None:
    """Run fn(lo, hi, 0, *args) over the tiles, in order, on this thread.

    Measured (benchmarks/w2.nn, 2 cores): splitting the tiles over two threads was
    0.25 ms slower per step than one thread, because OpenBLAS's threads are still
    spinning on the second core right after the GEMMs; the `worker` argument (0)
    and the scratch rows per worker are kept for a backend that runs tiles in
    parallel."""
    for lo, hi in tiles:
        fn(lo, hi, 0, *args)
