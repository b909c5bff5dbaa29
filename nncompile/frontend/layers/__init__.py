"""The layer kinds, one module each, and their registry.

Adding a kind: write its module (a `LayerKind` subclass: spec, shape,
lower, label) and list it in `LAYERS` below; its IR ops and their emitters
live in `nncompile/ir/ops.py` and the backends. Nothing else in the frontend,
the runtime or the pictures names a kind.
"""
from __future__ import annotations

from .activation import ActivationLayer
from .base import FROM, TRANSFER, LayerInfo, LayerKind, Lowering, ModelOut, ParamDecl, Shaped, param
from .batchnorm import BatchNorm
from .conv2d import Conv2D
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten
from .layernorm import LayerNorm
from .merge import Add, Concat, Multiply
from .normalization import Normalization
from .pooling import AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D

# In the order the language reference and "expected one of" lists show them.
LAYERS: dict[str, LayerKind] = {k.name: k for k in (
    Dense(), Conv2D(), MaxPool2D(), AvgPool2D(), GlobalAvgPool2D(), GlobalMaxPool2D(), Dropout(), BatchNorm(),
    LayerNorm(), Normalization(), ActivationLayer(), Flatten(), Add(), Concat(), Multiply())}


def with_params() -> list[str]:
    """The kinds that take frozen= and lr_mult=."""
    return [name for name, kind in LAYERS.items() if kind.has_params]


__all__ = ["FROM", "LAYERS", "TRANSFER", "LayerInfo", "LayerKind", "Lowering", "ModelOut", "ParamDecl", "Shaped",
           "param", "with_params"]
