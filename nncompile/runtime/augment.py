"""Training-time data augmentation (the `augment = [...]` train setting).

    aug = make_augment(train.augment, feature_shape)     # once, before training
    aug_rng = np.random.default_rng([seed, 0xA06, epoch]) # the loop's own stream, one per epoch
    ...
    xb = aug(x[idx], aug_rng)                             # each training batch only

The callable never modifies its input: it returns a new array (or the input
itself when there is nothing to do). Evaluation and prediction never augment.
All randomness comes from the generator the loop passes, so a run is
reproducible from its seed.

Augmentations, applied in the order written:

  noise(std)            x + N(0, std^2), independently per feature
  flip(axis, p=0.5)     each sample, with probability p, mirrored:
                        horizontal = along W (the 2nd feature dim), vertical = along H (the 1st)
  crop(padding=2)       each sample zero-padded by `padding` on all four sides of
                        H and W, then cropped back to H x W at a uniform random offset
                        (a random shift of up to `padding` pixels each way)
  translate(max=2, fill=zeros)
                        each sample shifted by a uniform random whole number of
                        pixels in [-max, max], rows and columns independently
                        (max may be a pair [rows, columns]); the uncovered pixels
                        are zeros, or the nearest edge pixel, the mirror image, or
                        the pixels shifted out on the other side (fill=nearest,
                        reflect, wrap)

flip, crop and translate need an image-shaped input, f32[H, W] or f32[H, W, C]
(the frontend reports them on a flat input as a CompileError). The arguments and
their defaults are the rows of `frontend/specs/sources.py: AUGMENTATIONS`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..frontend.specs.sources import AUGMENTATIONS, IMAGE_AUGMENTATIONS

__all__ = ["make_augment", "Augment"]


def _noise(std: float):
    def f(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return (x + rng.normal(0.0, std, size=x.shape)).astype(x.dtype, copy=False)
    return f


def _flip(axis: str, p: float):
    ax = 2 if axis == "horizontal" else 1          # batch dims: (N, H, W[, C])

    def f(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        which = rng.random(len(x)) < p
        if not which.any():
            return x
        out = x.copy()
        out[which] = np.flip(x[which], axis=ax)
        return out
    return f


def _shifted(padded: np.ndarray, oy: np.ndarray, ox: np.ndarray, h: int, w: int) -> np.ndarray:
    """Each sample i's H x W window of `padded` starting at row oy[i], column ox[i]."""
    n = len(padded)
    rows = oy[:, None] + np.arange(h)[None, :]           # (N, H)
    cols = ox[:, None] + np.arange(w)[None, :]           # (N, W)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _crop(padding: int):
    def f(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, h, w = x.shape[:3]
        pad = [(0, 0), (padding, padding), (padding, padding)] + [(0, 0)] * (x.ndim - 3)
        padded = np.pad(x, pad)
        dy = rng.integers(0, 2 * padding + 1, size=n)
        dx = rng.integers(0, 2 * padding + 1, size=n)
        return _shifted(padded, dy, dx, h, w)
    return f


_PAD_MODES = {"zeros": "constant", "nearest": "edge", "reflect": "symmetric", "wrap": "wrap"}


def _translate(max_shift, fill: str):
    my, mx = (max_shift, max_shift) if isinstance(max_shift, int) else (int(max_shift[0]), int(max_shift[1]))
    mode = _PAD_MODES[fill]

    def f(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, h, w = x.shape[:3]
        dy = rng.integers(-my, my + 1, size=n)           # the content moves down by dy, right by dx
        dx = rng.integers(-mx, mx + 1, size=n)
        pad = [(0, 0), (my, my), (mx, mx)] + [(0, 0)] * (x.ndim - 3)
        padded = np.pad(x, pad, mode=mode)
        # out[r, c] = x[r - dy, c - dx] = padded[r - dy + my, c - dx + mx]
        return _shifted(padded, my - dy, mx - dx, h, w)
    return f


class Augment:
    """A sequence of augmentations; call it as aug(x_batch, rng) -> x_batch."""

    def __init__(self, steps: Sequence[tuple[str, Callable]], feature_shape: tuple[int, ...]):
        self.steps = list(steps)
        self.feature_shape = tuple(feature_shape)

    @property
    def active(self) -> bool:
        return bool(self.steps)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.steps:
            return x
        x = np.asarray(x)
        if tuple(x.shape[1:]) != self.feature_shape:
            raise ValueError(f"augment: expected a batch of shape (N, {', '.join(map(str, self.feature_shape))}), "
                             f"got {x.shape}")
        out = x
        for _, f in self.steps:
            out = f(out, rng)
        if out is x:  # nothing changed (a flip that drew no sample): still a new array
            out = x.copy()
        return out

    def __repr__(self) -> str:
        return f"Augment({', '.join(k for k, _ in self.steps)})"


_STEPS = {"noise": lambda p: _noise(float(p["std"])),
          "flip": lambda p: _flip(p["axis"], float(p["p"])),
          "crop": lambda p: _crop(int(p["padding"])),
          "translate": lambda p: _translate(p["max"], p["fill"])}


def make_augment(specs, feature_shape: Sequence[int]) -> Augment:
    """The augmentation of checked `AugmentSpec`s (an empty sequence or None: identity)
    for inputs of `feature_shape` (without the batch dimension)."""
    feature_shape = tuple(int(d) for d in feature_shape)
    steps = []
    for s in specs or ():
        if s.kind not in _STEPS:
            raise ValueError(f"unknown augmentation {s.kind!r}")
        if s.kind in IMAGE_AUGMENTATIONS and len(feature_shape) not in (2, 3):
            raise ValueError(f"{s.kind} needs an image input f32[H, W] or f32[H, W, C], "
                             f"got f32{list(feature_shape)}")
        steps.append((s.kind, _STEPS[s.kind](AUGMENTATIONS[s.kind].complete(s.params))))
    return Augment(steps, feature_shape)
