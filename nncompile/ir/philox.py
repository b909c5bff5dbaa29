"""Counter-based Philox 4x32-10 in NumPy, bit-exact with Triton's ``tl.randint`` / ``tl.rand``.

This module is the single source of truth for random numbers in nncompile: the
NumPy backend calls it directly and the Triton backend calls ``tl.rand`` inside
kernels; both must agree bit for bit (tests/triton_backend/test_kernels.py checks this
against the Triton interpreter).

Algorithm (mirrors triton/language/random.py, Triton 3.x):

* key:      ``seed`` is cast to uint64; ``k0 = seed & 0xffffffff`` and
            ``k1 = seed >> 32`` (for the 31-bit seeds we use, ``k1 == 0``).
* counter:  ``c0 = offset & 0xffffffff`` (an int32 offset is reinterpreted as
            uint32), ``c1 = offset >> 32`` for 64-bit offsets (0 for int32
            offsets), ``c2 = c3 = 0``.
* 10 rounds, each::

      c0' = umulhi(0xCD9E8D57, c2) ^ c1 ^ k0
      c2' = umulhi(0xD2511F53, c0) ^ c3 ^ k1
      c1' = (0xCD9E8D57 * c2) mod 2**32
      c3' = (0xD2511F53 * c0) mod 2**32
      k0 += 0x9E3779B9 ; k1 += 0xBB67AE85        (mod 2**32)

* ``randint`` returns ``c0`` of the final state.
* ``rand``: reinterpret the uint32 as int32 ``x``; if ``x < 0`` use ``~x``; then
  ``float32(x) * float32(4.6566127342e-10)`` (int->float rounds to nearest,
  the product is a float32 multiply).  The result lies in [0, 1).

Dropout streams
---------------
``mix(seed, step, stream)`` derives an independent 31-bit seed per
(user seed, training step, dropout site) with a SplitMix64-style finaliser
computed on the host in exact 64-bit integer arithmetic (Python ints)::

    z = (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9
         + stream * 0x94D049BB133111EB + 0x2545F4914F6CDD1D) mod 2**64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) mod 2**64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) mod 2**64
    z =   z ^ (z >> 31)
    mix = z & 0x7FFFFFFF

The Triton backend computes ``mix`` on the host and passes it as the kernel's
``seed`` argument (a non-negative int32, so the kernel's key is ``(mix, 0)``).
An element with flat (row-major) index ``i`` is KEPT iff
``philox_uniform(mix(seed, step, stream), i) >= rate``. In a data-parallel
step the rng input has a third element, the shard's first row in the global
batch, and ``i`` is the element's flat index in the global batch.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "philox_uint32",
    "philox_uniform",
    "mix",
    "dropout_keep_mask",
    "first_index",
    "uint32_to_uniform",
]

_KEY_A = np.uint64(0x9E3779B9)
_KEY_B = np.uint64(0xBB67AE85)
_ROUND_A = np.uint64(0xD2511F53)
_ROUND_B = np.uint64(0xCD9E8D57)
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_N_ROUNDS = 10
_CHUNK = 16384
_UNIFORM_SCALE = np.float32(4.6566127342e-10)
_M64 = (1 << 64) - 1


def _as_offsets_u64(offsets) -> tuple[np.ndarray, np.ndarray]:
    """Return (lo, hi) uint64 arrays holding the 32-bit halves of the counter."""
    off = np.asarray(offsets)
    if off.dtype.kind not in "iu":
        raise TypeError(f"offsets must be an integer array, got dtype {off.dtype}")
    if off.dtype.itemsize <= 4:
        # Triton: offset.to(uint32) (wraps negatives), hi word = 0.
        lo = off.astype(np.int64).astype(np.uint64) & _MASK32
        hi = np.zeros_like(lo)
    else:
        # Triton: lo = offset.to(uint32); hi = (offset >> 32).to(uint32)
        # (arithmetic shift for signed offsets, then truncation).
        o64 = off.astype(np.int64) if off.dtype.kind == "i" else off.astype(np.uint64)
        u = o64.view(np.uint64) if o64.dtype == np.int64 else o64
        lo = u & _MASK32
        if o64.dtype == np.int64:
            hi = (o64 >> 32).view(np.uint64) & _MASK32
        else:
            hi = (u >> _SHIFT32) & _MASK32
    return lo, hi


def philox_uint32(seed: int, offsets) -> np.ndarray:
    """Philox 4x32-10 first output word; equals ``tl.randint(seed, offsets)``
    reinterpreted as uint32.  ``offsets`` may be any integer array (int32
    offsets behave like Triton int32 offsets; int64 offsets feed the high
    counter word exactly as Triton does)."""
    seed = int(seed) & _M64  # tl: seed.to(uint64) (sign-extends negatives)
    lo, hi = _as_offsets_u64(offsets)
    shape = lo.shape
    lo = lo.ravel()
    hi = hi.ravel()
    out = np.empty(lo.shape, dtype=np.uint32)
    k0 = seed & 0xFFFFFFFF
    k1 = (seed >> 32) & 0xFFFFFFFF
    # Work in cache-sized chunks with preallocated buffers and in-place ufuncs:
    # ~10x less memory traffic than naive whole-array temporaries.
    n = lo.shape[0]
    chunk = min(_CHUNK, max(n, 1))
    bufs = [np.empty(chunk, dtype=np.uint64) for _ in range(6)]
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        m = e - s
        c0, c1, c2, c3, pa, pb = (b[:m] for b in bufs)
        c0[...] = lo[s:e]
        c1[...] = hi[s:e]
        c2.fill(0)
        c3.fill(0)
        kk0, kk1 = k0, k1
        for _ in range(_N_ROUNDS):
            # 32x32 -> 64-bit products are exact in uint64.
            np.multiply(c2, _ROUND_B, out=pb)
            np.multiply(c0, _ROUND_A, out=pa)
            # new c0 = hi(pb) ^ c1 ^ k0  (stored into c0)
            np.right_shift(pb, _SHIFT32, out=c0)
            np.bitwise_xor(c0, c1, out=c0)
            np.bitwise_xor(c0, np.uint64(kk0), out=c0)
            # new c2 = hi(pa) ^ c3 ^ k1  (stored into c2)
            np.right_shift(pa, _SHIFT32, out=c2)
            np.bitwise_xor(c2, c3, out=c2)
            np.bitwise_xor(c2, np.uint64(kk1), out=c2)
            # new c1 = lo(pb), new c3 = lo(pa)
            np.bitwise_and(pb, _MASK32, out=c1)
            np.bitwise_and(pa, _MASK32, out=c3)
            kk0 = (kk0 + 0x9E3779B9) & 0xFFFFFFFF
            kk1 = (kk1 + 0xBB67AE85) & 0xFFFFFFFF
        out[s:e] = c0
    return out.reshape(shape)


def uint32_to_uniform(x: np.ndarray) -> np.ndarray:
    """Triton's ``uint_to_uniform_float`` for 32-bit inputs: float32 in [0, 1)."""
    xi = np.asarray(x, dtype=np.uint32).view(np.int32)
    xi = np.where(xi < 0, ~xi, xi)
    return xi.astype(np.float32) * _UNIFORM_SCALE


def philox_uniform(seed: int, offsets) -> np.ndarray:
    """Equals ``tl.rand(seed, offsets)``: float32 uniform in [0, 1)."""
    return uint32_to_uniform(philox_uint32(seed, offsets))


def mix(seed: int, step: int, stream: int) -> int:
    """Deterministic 31-bit seed for (seed, step, stream); see module docstring.

    Always returns an int in [0, 2**31), so it is passed to a Triton kernel as
    a non-negative int32 and the Philox key is (mix, 0) in both backends."""
    z = (int(seed) * 0x9E3779B97F4A7C15 + int(step) * 0xBF58476D1CE4E5B9
         + int(stream) * 0x94D049BB133111EB + 0x2545F4914F6CDD1D) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    z = z ^ (z >> 31)
    return z & 0x7FFFFFFF


def first_index(rng, shape) -> int:
    """The flat index in the global batch of the first element of a tensor of
    ``shape`` [rows, ...]: 0, or for a data-parallel rng (seed, step, row0)
    row0 times the row's size."""
    rng = np.asarray(rng).reshape(-1)
    if rng.size < 3:
        return 0
    return int(rng[2]) * int(np.prod(tuple(shape)[1:], dtype=np.int64))


def dropout_keep_mask(seed: int, step: int, stream: int, shape, rate, start: int = 0) -> np.ndarray:
    """Boolean keep-mask of ``shape``: flat index i kept iff
    ``philox_uniform(mix(seed, step, stream), start + i) >= rate``. A worker of a
    data-parallel run passes ``start`` = its shard's first global row times the
    row's size, so the mask of a sample does not depend on the number of workers.

    Flat indices are row-major.  Arrays with fewer than 2**31 elements use
    int32-compatible counters; larger ones use int64 counters (identical
    values for i < 2**32, as Triton's high counter word is then 0)."""
    shape = tuple(int(s) for s in (shape if np.iterable(shape) else (shape,)))
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    offs = np.arange(start, start + n, dtype=np.int64)
    u = philox_uniform(mix(seed, step, stream), offs)
    return (u >= np.float32(rate)).reshape(shape)
