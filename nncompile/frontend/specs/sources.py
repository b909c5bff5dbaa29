"""Spec rows of the data sources (`data = ...`, `validation = <source>`) and
of the training-time augmentations (`augment = [...]`)."""
from __future__ import annotations

import math

from ...errors import expected_one_of
from ..ast import AugmentSpec, DataSpec
from ..raw import MAX_DIM, RCall, RList, RName, describe, short
from .core import REQUIRED, Arg, Derived, Scope, Spec
from .types import ArgType, Bool, Bound, Choice, Float, Int, Path, Str, StrList

BUILTIN_DATASETS = ("digits",)


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
    Arg("name", DatasetName(), doc="`digits`: the 8x8 UCI digits, 64 features, 10 classes", positional=True,
        label="the builtin dataset name"),
), doc="a dataset shipped with nncompile")
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

DATA_SOURCES = {s.name: s for s in (CSV, NPZ, BUILTIN, SYNTHETIC_CLASSIFICATION, SYNTHETIC_REGRESSION)}

# `nncompile predict --input FILE`: a file of features only (no target columns, no targets array).
FEATURE_FILES = {"csv": CSV.with_default("target", []), "npz": NPZ.with_default("y", None)}


def read_data(scope: Scope, v, what: str) -> DataSpec:
    """A data source call (the `data` setting, or a `validation` source)."""
    if not isinstance(v, RCall):
        hint = 'expected a data source: csv("file.csv", target="y"), npz("file.npz"), builtin("digits"), ' \
               "synthetic.classification(...) or synthetic.regression(...)"
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
        raise scope.err(f"{scope.spec.name} needs an image input, but input '{inp.name}' is "
                        f"f32[{', '.join(map(str, inp.shape))}]", scope.loc,
                        hint=f"{' and '.join(image_only)} apply to inputs f32[H, W] or f32[H, W, C]; "
                             "for flat features use noise(std)")


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
)}


def read_augment(scope: Scope, v, what: str) -> tuple[AugmentSpec, ...]:
    """The `augment` setting: a list of augmentations, each kind at most once."""
    if isinstance(v, RList):
        items = v.items
    elif isinstance(v, (RCall, RName)):
        items = [v]
    else:
        raise scope.err(f"augment must be a list of augmentations, got {describe(v)}", v.loc,
                        hint="expected e.g. [noise(0.05), flip(horizontal), crop(padding=2)]")
    out: list[AugmentSpec] = []
    for it in items:
        if isinstance(it, RCall):
            name_v, args = it.name, it.args
        elif isinstance(it, RName):
            name_v, args = it, []
        else:
            raise scope.err(f"each augmentation must be a call, got {describe(it)}", it.loc,
                            hint="expected one of: noise(std), flip(horizontal), crop(padding=2)")
        kind = scope.reader.get_choice(name_v, "augmentation", tuple(AUGMENTATIONS))
        if any(a.kind == kind for a in out):
            raise scope.err(f"augmentation '{kind}' listed twice", it.loc)
        call = AUGMENTATIONS[kind].call(scope, args, kind, it.loc)
        out.append(AugmentSpec(kind=kind, params=call.values, loc=it.loc))
    return tuple(out)
