"""The kernel initializers: names, arguments and Keras 3's defaults, one row each.
The draws are `runtime/init.py`'s (Keras's formulas over the kernel's fans); a
value is the canonical text of `specs/calls.py` (`variance_scaling(scale=2)`)."""
from __future__ import annotations

from .calls import CallChoice
from .core import Arg, Spec
from .types import Choice, Float

MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

INITIALIZERS = {s.name: s for s in (
    Spec("glorot_uniform", (), "uniform in `[-l, l]`, `l = sqrt(6 / (fan_in + fan_out))`"),
    Spec("glorot_normal", (), "truncated normal, std `sqrt(2 / (fan_in + fan_out))`"),
    Spec("he_uniform", (), "uniform, `l = sqrt(6 / fan_in)`"),
    Spec("he_normal", (), "truncated normal, std `sqrt(2 / fan_in)`"),
    Spec("lecun_uniform", (), "uniform, `l = sqrt(3 / fan_in)`"),
    Spec("lecun_normal", (), "truncated normal, std `sqrt(1 / fan_in)`"),
    Spec("orthogonal", (
        Arg("gain", Float(), 1.0, "the factor of the orthogonal matrix", positional=True),),
        "the kernel as a (prod(shape[:-1]), shape[-1]) matrix with orthonormal rows or columns (QR of a normal "
        "draw, signs fixed by R's diagonal), times gain"),
    Spec("truncated_normal", (
        Arg("mean", Float(), 0.0, "the mean", positional=True),
        Arg("stddev", Float(0.0, lo_open=True), 0.05, "the std of the normal before truncation", positional=True),),
        "normal draws, those more than 2 stddev from the mean drawn again (Keras's `TruncatedNormal`)"),
    Spec("variance_scaling", (
        Arg("scale", Float(0.0, lo_open=True), 1.0, "the variance factor", positional=True),
        Arg("mode", Choice(MODES), "fan_in", "the fan `n` that divides it (`fan_avg`: their mean)"),
        Arg("distribution", Choice(DISTRIBUTIONS), "truncated_normal",
            "`truncated_normal`: std `sqrt(scale / n) / 0.8796` before truncation at 2 std; "
            "`untruncated_normal`: std `sqrt(scale / n)`; `uniform`: `l = sqrt(3 scale / n)`"),),
        "Keras's `VarianceScaling` (glorot, he and lecun are its cases)"),
    Spec("zeros", (), "all zeros"),
)}

# the argument type of a kernel's `init`: a name, or a call of an initializer with arguments
INITIALIZER = CallChoice(lambda: INITIALIZERS, {}, "initializer")
