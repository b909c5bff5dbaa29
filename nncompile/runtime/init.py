"""Parameter initialisers (Keras semantics), seeded and deterministic."""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) as Keras's compute_fans: a kernel (..., in, out) has a
    receptive field of prod(shape[:-2]) (1 for a dense (in, out) kernel)."""
    if len(shape) < 2:
        n = shape[0] if shape else 1
        return n, n
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _uniform(rng: np.random.Generator, lim: float, shape, dtype) -> np.ndarray:
    # drawn in the parameter's dtype: no float64 copy of a large parameter
    out = rng.random(size=shape, dtype=dtype)
    out *= dtype(2 * lim)
    out -= dtype(lim)
    return out


def _truncated_normal(rng: np.random.Generator, std: float, shape, dtype) -> np.ndarray:
    # Keras draws from a normal truncated at 2 std, rescaled to keep the variance.
    std = std / 0.87962566103423978
    out = rng.standard_normal(size=shape, dtype=dtype)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(size=int(bad.sum()), dtype=dtype)
        bad = np.abs(out) > 2
    out *= dtype(std)
    return out


def initial_value(init: str, shape: tuple[int, ...], rng: np.random.Generator,
                  dtype=np.float32) -> np.ndarray:
    fan_in, fan_out = _fans(shape)
    if init == "zeros":
        return np.zeros(shape, dtype)
    if init == "ones":
        return np.ones(shape, dtype)
    if init.startswith("constant:"):    # a state that starts elsewhere than 0 (passes/loss_scale.py)
        return np.full(shape, float(init[len("constant:"):]), dtype)
    if init == "glorot_uniform":
        return _uniform(rng, math.sqrt(6.0 / (fan_in + fan_out)), shape, dtype)
    if init == "glorot_normal":
        return _truncated_normal(rng, math.sqrt(2.0 / (fan_in + fan_out)), shape, dtype)
    if init == "he_uniform":
        return _uniform(rng, math.sqrt(6.0 / fan_in), shape, dtype)
    if init == "he_normal":
        return _truncated_normal(rng, math.sqrt(2.0 / fan_in), shape, dtype)
    raise ValueError(f"unknown initializer {init!r}")


def initialize(specs: Iterable[tuple[str, tuple[int, ...], str]], seed: int,
               dtype=np.float32) -> dict[str, np.ndarray]:
    """Values for (name, shape, init) triples. Each parameter draws from its own
    stream derived from (seed, name), so adding a layer does not change the
    initial values of the others."""
    out = {}
    for name, shape, init in specs:
        key = int.from_bytes(name.encode(), "little") % (2**63)
        rng = np.random.default_rng([seed, key])
        out[name] = np.ascontiguousarray(initial_value(init, tuple(shape), rng, np.dtype(dtype).type))
    return out
