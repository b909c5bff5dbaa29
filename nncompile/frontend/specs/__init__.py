"""The language's declarative specs: argument types, `Arg` and `Spec` rows,
and the binder/validator over them (`core`, `types`).

The rows themselves live beside what they describe: `training` (the train
block: settings, losses, optimizers, schedules, split, early stopping,
weights), `sources` (data sources and augmentations) and, one module per
kind, `nncompile.frontend.layers`. `docs` renders the tables of
docs/language.md from all of them (`python -m nncompile.frontend.specs`).

This package imports only `core` and `types` here, so the layer kinds can
use them without importing the rows that refer back to the layers.
"""
from .core import REQUIRED, Arg, Derived, Scope, Spec
from .types import ArgType, Bool, Bound, Choice, Float, Int, IntPair, LayerRef, LayerRefs, Path, Str, StrList

__all__ = ["REQUIRED", "Arg", "Derived", "Scope", "Spec", "ArgType", "Bool", "Bound", "Choice", "Float",
           "Int", "IntPair", "LayerRef", "LayerRefs", "Path", "Str", "StrList"]
