"""How many threads NumPy's BLAS may use for a compiled step.

OpenBLAS (NumPy's BLAS) splits a GEMM above a tiny size over all cores, and its
worker threads then spin, waiting for the next GEMM. Where the contractions are
small that gains nothing (a 64x64x128 GEMM took 10.4 us on one thread and 10.3 us
on two) and costs a great deal as soon as another process wants the cores: the
spinning workers take the time slices the main thread needs for everything
between the GEMMs. Measured on the 2-core development machine with five other
jobs running: `nncompile run examples/digits.nn` 17.8 s with two BLAS threads,
1.6 s with one (OPENBLAS_NUM_THREADS=1); digits_cnn.nn 52 s against 11.5 s. With
this policy they ran in 2.0 s and 12.2 s on the same loaded machine.

The policy: a step whose largest contraction is small (SMALL_MNK) runs on one
BLAS thread; any other step runs on the thread count the process started with.
The size of a contraction is sqrt(|a| * |b| * |out|) of its operands, which is
M*N*K for a matmul and, for a convolution, its im2col GEMM's M*N*K divided by
sqrt(kh*kw) — a proxy good enough for a threshold. OPENBLAS_NUM_THREADS (or
OMP_NUM_THREADS) set by the user is left alone: they chose.

The setting is the process's: it stays as the last step left it, so NumPy code
of the user's own that runs after a small model's step runs on one thread until
a larger model's step (or `set_threads`) changes it back."""
from __future__ import annotations

import ctypes
import glob
import math
import os
from typing import Callable, Optional

import numpy as np

from ...ir.graph import Graph, concrete
from ...ir.ops import CONV, MATMUL, OPS

SMALL_MNK = 2 ** 24
"""Below this contraction size (about 34 MFLOP) one BLAS thread is used. At the size
itself (128x512x256) a second thread gained 13% (345 vs 300 us, other jobs
running); digits (0.5M) and digits_cnn (6.3M) gained nothing and lost 4-10x."""

_SETTERS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads")


def _library():
    """(set, get) of the OpenBLAS that NumPy loaded, or None (another BLAS, or none found)."""
    libs = glob.glob(os.path.join(os.path.dirname(np.__path__[0]), "numpy.libs", "*openblas*.so*"))
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, s) for s in _SETTERS if hasattr(lib, s)), None)
        getter = next((getattr(lib, s) for s in _GETTERS if hasattr(lib, s)), None)
        if setter is not None and getter is not None:
            setter.argtypes, setter.restype, getter.restype = [ctypes.c_int], None, ctypes.c_int
            return setter, getter
    return None


_LIB = _library()
_USER_CHOSE = any(os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"))
DEFAULT = _LIB[1]() if _LIB is not None else None
"""The thread count the process started with."""
_current = DEFAULT


def set_threads(n: Optional[int]) -> None:
    """Let BLAS use `n` threads (None: the count the process started with)."""
    global _current
    want = DEFAULT if n is None else n
    if _LIB is not None and want is not None and want != _current:
        _LIB[0](want)
        _current = want


def contraction_size(g: Graph, batch: int) -> int:
    """The largest contraction of the graph at this batch size (0 if none)."""
    size = 0
    for n in g.live_nodes():
        if OPS[n.op].kind in (MATMUL, CONV) and len(n.inputs) >= 2:
            a, b = (math.prod(concrete(i.shape, batch)) for i in n.inputs[:2])
            size = max(size, int(math.sqrt(a * b * math.prod(concrete(n.shape, batch)))))
    return size


def threads_for(g: Graph, batch: int) -> Optional[int]:
    """1 for a graph of small contractions; None (the process's count) otherwise."""
    if _LIB is None or _USER_CHOSE or DEFAULT == 1:
        return None
    return 1 if contraction_size(g, batch) < SMALL_MNK else None


def pinned(run: Callable, threads: Optional[int]) -> Callable:
    """`run`, setting the BLAS thread count first where it is not already that."""
    want = DEFAULT if threads is None else threads
    if _LIB is None or want is None:
        return run

    def run_pinned(*args):
        if _current != want:
            set_threads(want)
        return run(*args)
    return run_pinned
