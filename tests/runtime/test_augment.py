"""Augmentation: the frontend setting and the runtime transforms."""
import numpy as np
import pytest

from nncompile.errors import CompileError
from nncompile.frontend import parse_source
from nncompile.frontend.ast import AugmentSpec
from nncompile.runtime.augment import make_augment


def prog(shape: str, augment: str):
    src = f"""model m {{
  input x: f32[{shape}]
  flatten
  dense out(3, softmax)
}}
train {{
  loss = sparse_categorical_crossentropy
  optimizer = sgd
  augment = {augment}
}}
"""
    return parse_source(src, "model.nn")


def spec(kind, **params):
    return AugmentSpec(kind, params, None)


def images(n=32, h=5, w=6, c=None, seed=0):
    shape = (n, h, w) + ((c,) if c else ())
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_parse_defaults():
    p = prog("8, 8", "[noise(0.05), flip(horizontal), crop(padding=2)]")
    a = p.train.augment
    assert [s.kind for s in a] == ["noise", "flip", "crop"]
    assert a[0].params == {"std": 0.05}
    assert a[1].params == {"axis": "horizontal", "p": 0.5}
    assert a[2].params == {"padding": 2}
    assert prog("8, 8", "flip").train.augment[0].params == {"axis": "horizontal", "p": 0.5}
    assert prog("8, 8", "[flip(vertical, p=1)]").train.augment[0].params == {"axis": "vertical", "p": 1.0}
    assert prog("8, 8, 3", "[crop]").train.augment[0].params == {"padding": 2}
    assert prog("10", "[noise(std=0.1)]").train.augment[0].params == {"std": 0.1}
    assert prog("10", "[]").train.augment == ()


@pytest.mark.parametrize("shape,augment,col,phrase", [
    ("64", "[noise(0.05), flip(horizontal)]", 27, "flip needs an image input, but input 'x' is f32[64]"),
    ("64", "[crop(padding=2)]", 14, "crop needs an image input"),
    ("2, 3, 4, 5", "[crop]", 14, "crop needs an image input"),
    ("8, 8", "[noise(0)]", 20, "noise std must be > 0"),
    ("8, 8", "[noise]", 14, "noise needs 'std'"),
    ("8, 8", "[flip(diagonal)]", 19, "unknown flip axis 'diagonal'"),
    ("8, 8", "[flip(p=2)]", 21, "flip probability p must be in [0, 1]"),
    ("8, 8", "[crop(padding=9)]", 27, "crop padding must be an integer in [1, 8]"),
    ("8, 8", "[rotate(10)]", 14, "unknown augmentation 'rotate'"),
    ("8, 8", "[noise(0.1), noise(0.2)]", 26, "augmentation 'noise' listed twice"),
    ("8, 8", "0.1", 13, "augment must be a list of augmentations"),
])
def test_errors_point_at_the_augmentation(shape, augment, col, phrase):
    with pytest.raises(CompileError) as e:
        prog(shape, augment)
    assert phrase in e.value.message, str(e.value)
    assert (e.value.loc.line, e.value.loc.column) == (9, col), str(e.value)


def test_empty_is_identity():
    aug = make_augment((), (5, 6))
    assert not aug.active
    x = images()
    assert aug(x, np.random.default_rng(0)) is x


def test_noise_is_seeded_and_leaves_the_input_alone():
    x = images()
    keep = x.copy()
    aug = make_augment([spec("noise", std=0.5)], (5, 6))
    a = aug(x, np.random.default_rng(1))
    b = aug(x, np.random.default_rng(1))
    c = aug(x, np.random.default_rng(2))
    assert np.array_equal(x, keep)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.shape == x.shape
    assert np.std(a - x) == pytest.approx(0.5, rel=0.1)
    # flat inputs take noise too
    flat = make_augment([spec("noise", std=0.1)], (30,))
    assert flat(x.reshape(32, 30), np.random.default_rng(0)).shape == (32, 30)


@pytest.mark.parametrize("c", [None, 3])
def test_flip(c):
    x = images(c=c)
    keep = x.copy()
    always = make_augment([spec("flip", axis="horizontal", p=1.0)], x.shape[1:])
    np.testing.assert_array_equal(always(x, np.random.default_rng(0)), x[:, :, ::-1])
    vert = make_augment([spec("flip", axis="vertical", p=1.0)], x.shape[1:])
    np.testing.assert_array_equal(vert(x, np.random.default_rng(0)), x[:, ::-1])
    never = make_augment([spec("flip", axis="horizontal", p=0.0)], x.shape[1:])
    out = never(x, np.random.default_rng(0))
    assert out is not x and np.array_equal(out, x)
    half = make_augment([spec("flip", axis="horizontal", p=0.5)], x.shape[1:])(x, np.random.default_rng(3))
    flipped = [np.array_equal(half[i], x[i, :, ::-1]) for i in range(len(x))]
    same = [np.array_equal(half[i], x[i]) for i in range(len(x))]
    assert all(f or s for f, s in zip(flipped, same)) and 0 < sum(flipped) < len(x)
    assert np.array_equal(x, keep)


@pytest.mark.parametrize("c", [None, 2])
def test_crop_is_a_shift_with_zero_fill(c):
    x = images(n=64, c=c) + 10.0        # no zeros in the data
    keep = x.copy()
    aug = make_augment([spec("crop", padding=2)], x.shape[1:])
    out = aug(x, np.random.default_rng(0))
    assert out.shape == x.shape and np.array_equal(x, keep)
    shifts = set()
    for i in range(len(x)):
        found = None
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                ref = np.zeros_like(x[i])
                h, w = x.shape[1:3]
                # out[r, s] = x[r + dy, s + dx] where in range, else 0
                ys, yd = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
                xs, xd = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
                ref[yd, xd] = x[i][ys, xs]
                if np.array_equal(ref, out[i]):
                    found = (dy, dx)
        assert found is not None
        shifts.add(found)
    assert len(shifts) > 5                # offsets are drawn per sample


def test_order_and_reproducibility():
    x = images()
    specs = [spec("noise", std=0.1), spec("flip", axis="horizontal", p=0.5), spec("crop", padding=1)]
    aug = make_augment(specs, (5, 6))
    assert np.array_equal(aug(x, np.random.default_rng(9)), aug(x, np.random.default_rng(9)))
    with pytest.raises(ValueError):
        make_augment([spec("flip", axis="horizontal", p=1.0)], (30,))
    with pytest.raises(ValueError):
        aug(x.reshape(32, 30), np.random.default_rng(0))
