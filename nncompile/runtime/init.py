"""Parameter initialisers (Keras semantics), seeded and deterministic."""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) == 2:
        return shape[0], shape[1]
    n = shape[0] if shape else 1
    return n, n


def _truncated_normal(rng: np.random.Generator, std: float, shape) -> np.ndarray:
    # Keras draws from a normal truncated at 2 std, rescaled to keep the variance.
    std = std / 0.87962566103423978
    out = rng.normal(0.0, std, size=shape)
    bad = np.abs(out) > 2 * std
    while bad.any():
        out[bad] = rng.normal(0.0, std, size=int(bad.sum()))
        bad = np.abs(out) > 2 * std
    return out


def initial_value(init: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    fan_in, fan_out = _fans(shape)
    if init == "zeros":
        return np.zeros(shape)
    if init == "ones":
        return np.ones(shape)
    if init == "glorot_uniform":
        lim = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-lim, lim, size=shape)
    if init == "glorot_normal":
        return _truncated_normal(rng, math.sqrt(2.0 / (fan_in + fan_out)), shape)
    if init == "he_uniform":
        lim = math.sqrt(6.0 / fan_in)
        return rng.uniform(-lim, lim, size=shape)
    if init == "he_normal":
        return _truncated_normal(rng, math.sqrt(2.0 / fan_in), shape)
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
        out[name] = np.ascontiguousarray(initial_value(init, tuple(shape), rng), dtype=dtype)
    return out
