"""Spec rows of the data sources (`data = ...`, `validation = <source>`) and
of the training-time augmentations (`augment = [...]`)."""
from __future__ import annotations

import math

from ...errors import expected_one_of
from ..ast import AugmentSpec, DataSpec
from ..raw import MAX_DIM, RCall, RList, RName, describe, short
from .core import REQUIRED, Arg, Derived, Scope, Spec
from .types import ArgType, Bool, Bound, Choice, Float, Int, IntPair, Path, Str, StrList

BUILTIN_DATASETS = ("digits",)
# The model inputs each builtin dataset can feed: its flat features, or its images
# (row-major, channels-last; f32[H, W] for one channel).
BUILTIN_INPUTS = {"digits": ((64,), (8, 8), (8, 8, 1))}
# synthetic.images: the shape drawn for each class, in class order (`classes=k` uses the first k).
IMAGE_SHAPES = ("square outline", "filled disk", "plus", "horizontal bar", "vertical bar",
                "diagonal line (top left to bottom right)", "filled triangle (apex up)", "x (both diagonals)")


class DatasetName(ArgType):
    """builtin's argument: the name of a dataset shipped with nncompile, quoted or bare."""

    def read(self, scope, v, label):
        name = v.dotted if isinstance(v, RName) else scope.reader.get_str(v, label)
        if name not in BUILTIN_DATASETS:
            raise scope.err(f"unknown builtin dataset '{short(name)}'", v.loc,
                            hint=expected_one_of(name, BUILTIN_DATASETS))
        return name

    def describe(self):
        return "one of " + ", ".join(f'`"{n}"`' for n in BUILTIN_DATASETS)


def _not_a_target(scope: Scope, features, raw) -> None:
    for f in features:
        if f in scope.values["target"]:
            raise scope.err(f"column '{short(f)}' is both a feature and a target", raw.loc)


def _features_fit_input(scope: Scope) -> None:
    """A synthetic source makes exactly as many features as the model takes."""
    inp = scope.model.input
    n_in = math.prod(inp.shape)
    made = scope.values["features"]
    if made != n_in:
        raise scope.err(f"{scope.spec.name} makes {made} features but input '{inp.name}' has "
                        f"{n_in} (f32[{', '.join(map(str, inp.shape))}])", scope.raw["features"].loc,
                        hint=f"expected features={n_in}")


def _shape_txt(shape) -> str:
    return f"f32[{', '.join(map(str, shape))}]"


def _builtin_fits_input(scope: Scope) -> None:
    """A builtin dataset feeds only the input shapes it has (flat features, or images)."""
    inp, name = scope.model.input, scope.values["name"]
    shapes = BUILTIN_INPUTS[name]
    if tuple(inp.shape) not in shapes:
        raise scope.err(f"builtin {name} does not fit input '{inp.name}' ({_shape_txt(inp.shape)})",
                        scope.raw["name"].loc,
                        hint="declare the input as " + ", ".join(_shape_txt(s) for s in shapes[:-1])
                             + f" or {_shape_txt(shapes[-1])}")


def _images_fit_input(scope: Scope) -> None:
    """synthetic.images makes images of exactly the model's input shape
    ([H, W, C], or [H, W] for one channel)."""
    inp, v = scope.model.input, scope.values
    made = (v["height"], v["width"], v["channels"])
    shape = tuple(inp.shape)
    if shape == made or (v["channels"] == 1 and shape == made[:2]):
        return
    msg = (f"{scope.spec.name} makes {made[0]}x{made[1]}x{made[2]} images but input '{inp.name}' is "
           f"{_shape_txt(shape)}")
    if len(shape) not in (2, 3):
        raise scope.err(msg, scope.loc, hint="declare an image input f32[height, width, channels]; "
                                             "for a dense net on the pixels, follow it with flatten")
    want = dict(zip(("height", "width", "channels"), shape + ((1,) if len(shape) == 2 else ())))
    wrong = [k for k in want if want[k] != v[k]]
    loc = next((scope.raw[k].loc for k in wrong if k in scope.raw), scope.loc)
    raise scope.err(msg, loc, hint="expected " + ", ".join(f"{k}={want[k]}" for k in wrong))


def _path(example: str) -> Arg:
    return Arg("path", Path(), doc="the file, relative to the .nn file's folder", positional=True,
               example=f"expected e.g.  {example}")


def _count(name: str, lo: int, doc: str, default=REQUIRED) -> Arg:
    return Arg(name, Int(lo, MAX_DIM), default, doc, positional=True)


SEED = Arg("seed", Int(0), 0, "the generator's seed", positional=True)

CSV = Spec("csv", (
    _path('csv("train.csv", target="y")'),
    Arg("target", StrList(), doc="the target column(s)", aliases=("targets",),
        example='name the target column(s), e.g. target="label" or target=["y0", "y1"]'),
    Arg("features", StrList(), None, "the feature columns (default: every other column)", check=_not_a_target),
    Arg("header", Bool(), True, "the first line names the columns; with `false` they are named `c0`, `c1`, ..."),
), doc="a CSV file of numbers; a column cannot be both feature and target")
NPZ = Spec("npz", (
    _path('npz("train.npz")'),
    Arg("x", Str(), "x", "the name of the features array", label="x (the array name)"),
    Arg("y", Str(), "y", "the name of the targets array", label="y (the array name)"),
), doc="a NumPy `.npz` archive (read without pickles)")
BUILTIN = Spec("builtin", (
    Arg("name", DatasetName(), doc="`digits`: the 8x8 UCI digits (1,797 samples, 10 classes, pixels scaled to "
        "[0, 1]), as 64 features (`f32[64]`) or as images (`f32[8, 8, 1]` or `f32[8, 8]`)", positional=True,
        label="the builtin dataset name"),
), doc="a dataset shipped with nncompile; the model's input shape picks its layout",
    rules=(_builtin_fits_input,))
SYNTHETIC_CLASSIFICATION = Spec("synthetic.classification", (
    _count("samples", 1, "the number of samples"),
    _count("features", 1, "must equal the number of input features"),
    _count("classes", 2, "the number of classes"),
    SEED,
), doc="Gaussian clusters, one per class (about 10% Bayes error)", rules=(_features_fit_input,))
SYNTHETIC_REGRESSION = Spec("synthetic.regression", (
    _count("samples", 1, "the number of samples"),
    _count("features", 1, "must equal the number of input features"),
    _count("targets", 1, "the number of targets", default=1),
    Arg("noise", Float(0.0), 0.1, "the standard deviation of the noise added to the targets", positional=True),
    SEED,
), doc="a noisy linear function of Gaussian features, plus a little tanh", rules=(_features_fit_input,))

SYNTHETIC_IMAGES = Spec("synthetic.images", (
    _count("samples", 1, "the number of samples"),
    Arg("height", Int(8, MAX_DIM), doc="the image height H (must equal the input's)", positional=True),
    Arg("width", Int(8, MAX_DIM), doc="the image width W (must equal the input's)", positional=True),
    Arg("channels", Int(1, MAX_DIM), 1, "the channels C (must equal the input's; an input f32[H, W] is one "
        "channel)", positional=True),
    Arg("classes", Int(2, len(IMAGE_SHAPES)), 4, "the number of classes, each a shape: "
        + ", ".join(f"{i} {n}" for i, n in enumerate(IMAGE_SHAPES)), positional=True),
    Arg("noise", Float(0.0), 0.1, "the standard deviation of the Gaussian noise added to every pixel",
        positional=True),
    SEED,
), doc="a shape per class (square outline, disk, plus, bars, ...) of random size (a quarter to a half of "
       "min(H, W), at least 4 pixels) at a random position on a noisy black background; the shape's "
       "brightness in each channel is drawn from [0.5, 1] (with several channels, a random colour that "
       "says nothing about the class); balanced classes", rules=(_images_fit_input,))

DATA_SOURCES = {s.name: s for s in (CSV, NPZ, BUILTIN, SYNTHETIC_CLASSIFICATION, SYNTHETIC_REGRESSION,
                                    SYNTHETIC_IMAGES)}

# `nncompile predict --input FILE`: a file of features only (no target columns, no targets array).
FEATURE_FILES = {"csv": CSV.with_default("target", []), "npz": NPZ.with_default("y", None)}


def read_data(scope: Scope, v, what: str) -> DataSpec:
    """A data source call (the `data` setting, or a `validation` source)."""
    if not isinstance(v, RCall):
        hint = 'expected a data source: csv("file.csv", target="y"), npz("file.npz"), builtin("digits"), ' \
               "synthetic.classification(...), synthetic.regression(...) or synthetic.images(...)"
        if isinstance(v, RName) and v.dotted in DATA_SOURCES:
            hint = f"{v.dotted} needs arguments, e.g. {v.dotted}(...)"
        elif isinstance(v, RName) and v.dotted in BUILTIN_DATASETS:
            hint = f'did you mean builtin("{v.dotted}")?'
        raise scope.err(f"{what} must be a data source, got {describe(v)}", v.loc, hint=hint)
    kind = v.name.dotted
    if kind not in DATA_SOURCES:
        raise scope.err(f"unknown data source '{short(kind)}'", v.name.loc, hint=expected_one_of(kind, DATA_SOURCES))
    call = DATA_SOURCES[kind].call(scope, v.args, kind, v.loc)
    return DataSpec(kind=kind, args=call.values, loc=v.loc)


# ------------------------------------------------------------------ augmentations

def _image_side(scope: Scope) -> int:
    shape = scope.model.input.shape
    return min(shape[0], shape[1])


def _needs_image(scope: Scope) -> None:
    inp = scope.model.input
    if len(inp.shape) not in (2, 3):
        image_only = [name for name, s in AUGMENTATIONS.items() if _needs_image in s.requires]
        names = ", ".join(image_only[:-1]) + " and " + image_only[-1] if len(image_only) > 1 else image_only[0]
        raise scope.err(f"{scope.spec.name} needs an image input, but input '{inp.name}' is "
                        f"f32[{', '.join(map(str, inp.shape))}]", scope.loc,
                        hint=f"{names} apply to inputs f32[H, W] or f32[H, W, C]; "
                             "for flat features use noise(std)")


def _default_shift(scope: Scope) -> tuple[int, int]:
    h, w = scope.model.input.shape[:2]
    return (min(2, h - 1), min(2, w - 1))


def _shift_fits(scope: Scope, value, raw) -> None:
    """translate: at most H - 1 rows and W - 1 columns, and not nothing at all."""
    h, w = scope.model.input.shape[:2]
    for axis, m, size in (("rows (H)", value[0], h), ("columns (W)", value[1], w)):
        if m > size - 1:
            raise scope.err(f"translate max must be at most {size - 1} for {axis}: the input is "
                            f"f32[{', '.join(map(str, scope.model.input.shape))}], got {m}", raw.loc,
                            hint="a shift of H or W pixels or more leaves nothing of the image; "
                                 "give [rows, columns] to bound each axis on its own")
    if value == (0, 0):
        raise scope.err("translate max [0, 0] moves nothing", raw.loc,
                        hint="give at least one axis a shift of 1 or more, e.g. translate(2) or translate([0, 2])")


FILLS = ("zeros", "nearest", "reflect", "wrap")

AUGMENTATIONS = {s.name: s for s in (
    Spec("noise", (
        Arg("std", Float(0.0, lo_open=True), doc="the standard deviation", positional=True, aliases=("stddev",),
            label="noise std", example="expected e.g.  noise(0.05)"),
    ), doc="adds Gaussian noise N(0, std²) to every feature"),
    Spec("flip", (
        Arg("axis", Choice(("horizontal", "vertical"), noun="flip axis"), "horizontal",
            "`horizontal` mirrors along W, `vertical` along H", positional=True, label="flip axis"),
        Arg("p", Float(0.0, 1.0), 0.5, "the probability of mirroring a sample", positional=True,
            label="flip probability p"),
    ), doc="mirrors each sample with probability p", requires=(_needs_image,)),
    Spec("crop", (
        Arg("padding", Int(1, Bound(_image_side, "min(H, W)")), Derived(lambda s: min(2, _image_side(s)),
                                                                         "`2`, or min(H, W) if smaller"),
            "pixels of zero padding on each side", positional=True, label="crop padding"),
    ), doc="zero-pads H and W by `padding` on each side and crops back to H x W at a random offset "
           "(a random shift of up to `padding` pixels)", requires=(_needs_image,)),
    Spec("translate", (
        Arg("max", IntPair(0), Derived(_default_shift, "`[2, 2]`, or H - 1 / W - 1 where smaller"),
            "the largest shift in pixels: one integer for both axes, or `[rows, columns]`; at most H - 1 "
            "and W - 1, not both 0", positional=True, label="translate max", check=_shift_fits),
        Arg("fill", Choice(FILLS, noun="translate fill"), "zeros",
            "what fills the uncovered pixels (shown for a row `a b c` padded by 2): `zeros`; `nearest` repeats "
            "the edge pixel (`a a [a b c] c c`); `reflect` mirrors the image at its edge (`b a [a b c] c b`); "
            "`wrap` takes the pixels from the other side (`b c [a b c] a b`)", positional=True,
            label="translate fill"),
    ), doc="shifts each sample by a random whole number of pixels, drawn uniformly from [-max, max] for the "
           "rows and the columns independently", requires=(_needs_image,)),
)}
# The augmentations that need an image input f32[H, W] or f32[H, W, C].
IMAGE_AUGMENTATIONS = tuple(name for name, s in AUGMENTATIONS.items() if _needs_image in s.requires)


def read_augment(scope: Scope, v, what: str) -> tuple[AugmentSpec, ...]:
    """The `augment` setting: a list of augmentations, each kind at most once."""
    if isinstance(v, RList):
        items = v.items
    elif isinstance(v, (RCall, RName)):
        items = [v]
    else:
        raise scope.err(f"augment must be a list of augmentations, got {describe(v)}", v.loc,
                        hint="expected e.g. [noise(0.05), flip(horizontal), translate(2)]")
    out: list[AugmentSpec] = []
    for it in items:
        if isinstance(it, RCall):
            name_v, args = it.name, it.args
        elif isinstance(it, RName):
            name_v, args = it, []
        else:
            raise scope.err(f"each augmentation must be a call, got {describe(it)}", it.loc,
                            hint="expected one of: noise(std), flip(horizontal), crop(padding=2), translate(max=2)")
        kind = scope.reader.get_choice(name_v, "augmentation", tuple(AUGMENTATIONS))
        if any(a.kind == kind for a in out):
            raise scope.err(f"augmentation '{kind}' listed twice", it.loc)
        call = AUGMENTATIONS[kind].call(scope, args, kind, it.loc)
        out.append(AugmentSpec(kind=kind, params=call.values, loc=it.loc))
    return tuple(out)
