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


def test_parse_translate():
    assert prog("8, 8, 1", "translate").train.augment[0].params == {"max": (2, 2), "fill": "zeros"}
    assert prog("8, 8", "[translate(3)]").train.augment[0].params == {"max": (3, 3), "fill": "zeros"}
    assert prog("8, 32, 3", "[translate([1, 9], fill=wrap)]").train.augment[0].params == \
        {"max": (1, 9), "fill": "wrap"}
    assert prog("8, 32", "[translate(max=[0, 4], fill=reflect)]").train.augment[0].params["max"] == (0, 4)
    assert prog("2, 9", "[translate]").train.augment[0].params["max"] == (1, 2)     # at most H - 1
    a = prog("8, 8, 3", "[flip, crop(1), translate(2, nearest)]").train.augment
    assert [s.kind for s in a] == ["flip", "crop", "translate"] and a[2].params["fill"] == "nearest"


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
    ("64", "[translate(2)]", 14, "translate needs an image input, but input 'x' is f32[64]"),
    ("8, 8, 1", "[translate(8)]", 24, "translate max must be at most 7 for rows (H)"),
    ("8, 32", "[translate([2, 32])]", 24, "translate max must be at most 31 for columns (W)"),
    ("8, 8", "[translate(0)]", 24, "translate max [0, 0] moves nothing"),
    ("8, 8", "[translate(-1)]", 24, "translate max must be an integer >= 0"),
    ("8, 8", "[translate([1, 2, 3])]", 24, "translate max must be one integer or a pair"),
    ("8, 8", "[translate(fill=mirror)]", 29, "unknown translate fill 'mirror'"),
    ("8, 8", "[shift(2)]", 14, "unknown augmentation 'shift'"),
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


def _shift_ref(img, dy, dx, mode="constant"):
    """img moved down by dy and right by dx, the uncovered pixels filled as np.pad's mode."""
    h, w = img.shape[:2]
    p = max(abs(dy), abs(dx), 1)
    pad = [(p, p), (p, p)] + [(0, 0)] * (img.ndim - 2)
    big = np.pad(img, pad, mode=mode)
    return big[p - dy:p - dy + h, p - dx:p - dx + w]


@pytest.mark.parametrize("c", [None, 3])
def test_translate_is_a_zero_filled_shift_within_max(c):
    x = images(n=80, h=6, w=7, c=c) + 10.0           # no zeros in the data
    keep = x.copy()
    out = make_augment([spec("translate", max=(2, 3), fill="zeros")], x.shape[1:])(x, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == x.dtype and np.array_equal(x, keep)
    shifts = []
    for i in range(len(x)):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-3, 4)
                 if np.array_equal(_shift_ref(x[i], dy, dx), out[i])]
        assert len(found) == 1, i                      # every channel moved alike, zeros where uncovered
        shifts.append(found[0])
    dys, dxs = {d for d, _ in shifts}, {d for _, d in shifts}
    assert dys == set(range(-2, 3)) and dxs == set(range(-3, 4))     # the whole range is drawn


def test_translate_one_axis_and_an_integer_max():
    x = images(n=40, h=6, w=7)
    out = make_augment([spec("translate", max=(0, 2), fill="zeros")], x.shape[1:])(x, np.random.default_rng(1))
    for i in range(len(x)):   # rows never move
        assert any(np.array_equal(_shift_ref(x[i], 0, dx), out[i]) for dx in range(-2, 3))
    a = make_augment([spec("translate", max=2)], x.shape[1:])(x, np.random.default_rng(5))    # fill defaults
    b = make_augment([spec("translate", max=(2, 2), fill="zeros")], x.shape[1:])(x, np.random.default_rng(5))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("fill,mode", [("nearest", "edge"), ("reflect", "symmetric"), ("wrap", "wrap")])
def test_translate_fills(fill, mode):
    x = images(n=60, h=5, w=6, c=2)
    out = make_augment([spec("translate", max=(2, 2), fill=fill)], x.shape[1:])(x, np.random.default_rng(2))
    moved = 0
    for i in range(len(x)):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(_shift_ref(x[i], dy, dx, mode), out[i])]
        assert found, i
        moved += found[0] != (0, 0)
    assert moved > 40
    if fill == "wrap":        # a shift with wrap-around is np.roll
        one = make_augment([spec("translate", max=(1, 1), fill="wrap")], (5, 6))
        r = one(x[:1, :, :, 0], np.random.default_rng(0))[0]
        assert any(np.array_equal(np.roll(x[0, :, :, 0], (dy, dx), axis=(0, 1)), r)
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    if fill == "nearest":     # one row, fill by hand: a b c d e f moved right by 2 is a a a b c d
        row = np.arange(1, 7, dtype=np.float32).reshape(1, 1, 6)
        assert _shift_ref(row[0], 0, 2, "edge").tolist() == [[1, 1, 1, 2, 3, 4]]
    if fill == "reflect":     # mirrored at the edge, the edge pixel repeated: b a a b c d
        row = np.arange(1, 7, dtype=np.float32).reshape(1, 6)
        assert _shift_ref(row, 0, 2, "symmetric").tolist() == [[2, 1, 1, 2, 3, 4]]


def test_translate_is_seeded():
    x = images(n=16, c=1)
    aug = make_augment([spec("translate", max=(2, 2), fill="zeros")], x.shape[1:])
    a, b, c = (aug(x, np.random.default_rng(s)) for s in (4, 4, 5))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(ValueError, match="translate needs an image input"):
        make_augment([spec("translate", max=(1, 1), fill="zeros")], (30,))


IMAGE_PROG = """model m {
  input x: f32[8, 8, 1]
  conv2d c(4, 3, relu)
  global_maxpool2d
  dense out(4, softmax)
}
train {
  data = synthetic.images(samples=96, height=8, width=8, channels=1, classes=4, seed=2)
  loss = sparse_categorical_crossentropy
  optimizer = adam(lr=0.01)
  epochs = 4
  batch_size = 32
  validation = split(0.25)
  augment = [flip(horizontal), crop(1), translate([1, 2], fill=reflect)]
  seed = 5
}
"""


def test_image_augmentations_in_the_fit_loop_resume_exactly(tmp_path):
    """flip, crop and translate on an [H, W, C] input: training only, seeded, and a
    resumed run draws the same augmented batches as an uninterrupted one."""
    import nncompile
    from nncompile.runtime.checkpoint import load_checkpoint
    from nncompile.runtime.loop import TrainingInterrupted, fit
    from nncompile.runtime.records import RunRecord
    prog = nncompile.compile(IMAGE_PROG)
    ref = fit(prog, quiet=True)
    assert fit(nncompile.compile(IMAGE_PROG), quiet=True).history == ref.history
    plain = fit(nncompile.compile(IMAGE_PROG.replace("  augment = [flip(horizontal), crop(1), "
                                                     "translate([1, 2], fill=reflect)]\n", "")), quiet=True)
    assert plain.history["loss"] != ref.history["loss"]
    rec = RunRecord.create(prog, str(tmp_path / "run"))

    def stop(epoch, logs, trainer):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        fit(prog, quiet=True, record=rec, on_epoch=stop)
    prog2 = nncompile.compile(IMAGE_PROG)
    res = fit(prog2, quiet=True, record=RunRecord(rec.path, prog2), resume=load_checkpoint(rec.checkpoint_path))
    assert res.history == ref.history
    for k, v in ref.trainer.host("arrays").items():
        assert v.tobytes() == res.trainer.host("arrays")[k].tobytes(), k
