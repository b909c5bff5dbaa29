"""Argument types: how a raw value is read and checked, and how the language
reference describes it.

A type has `read(scope, raw, label) -> value` (raising a CompileError at the
raw value, naming it by `label`) and `describe() -> str` for the tables of
docs/language.md. Bounds that depend on the program (crop padding at most
min(H, W)) are `Bound`s, evaluated against the scope of the check.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from ..raw import MAX_DIM
from ..values import float_range, fmt, int_range


@dataclass(frozen=True)
class Bound:
    """A bound computed from the scope of the check; `text` names it in the docs."""
    value: Callable
    text: str


def _bound(b, scope):
    return b.value(scope) if isinstance(b, Bound) else b


def _bound_text(b) -> str:
    if isinstance(b, Bound):
        return b.text
    return "2^31-1" if b == MAX_DIM else fmt(b)


class ArgType:
    """Base of the argument types."""

    def read(self, scope, v, label: str):
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class Int(ArgType):
    def __init__(self, lo: Optional[int] = None, hi=None):
        self.lo, self.hi = lo, hi

    def read(self, scope, v, label):
        return scope.reader.get_int(v, label, self.lo, _bound(self.hi, scope))

    def describe(self):
        return int_range(self.lo, None if self.hi is None else _bound_text(self.hi), "integer")


class IntPair(ArgType):
    """An integer for both image axes, or a pair `[height, width]` of them (Keras's
    `kernel_size=3` or `(3, 3)`); read as a tuple of two."""

    def __init__(self, lo: Optional[int] = None, hi=None):
        self.lo, self.hi = lo, hi

    def read(self, scope, v, label):
        from ..raw import RList
        if isinstance(v, RList):
            if len(v.items) != 2:
                raise scope.reader.err(f"{label} must be one integer or a pair [height, width], got a list of "
                                       f"{len(v.items)}", v.loc, hint="expected e.g. 3 or [3, 3]")
            return tuple(scope.reader.get_int(x, label, self.lo, _bound(self.hi, scope)) for x in v.items)
        x = scope.reader.get_int(v, label, self.lo, _bound(self.hi, scope))
        return (x, x)

    def describe(self):
        return int_range(self.lo, None if self.hi is None else _bound_text(self.hi), "integer") + \
            " or a pair `[h, w]` of them"


class Float(ArgType):
    """A number (an integer is accepted); lo/hi closed unless marked open."""

    def __init__(self, lo: Optional[float] = None, hi: Optional[float] = None,
                 lo_open: bool = False, hi_open: bool = False):
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open

    def read(self, scope, v, label):
        return scope.reader.get_float(v, label, self.lo, self.hi, self.lo_open, self.hi_open)

    def describe(self):
        rng = float_range(self.lo, self.hi, self.lo_open, self.hi_open)
        return f"number {rng}" if rng else "number"


class Bool(ArgType):
    def read(self, scope, v, label):
        return scope.reader.get_bool(v, label)

    def describe(self):
        return "bool"


class Str(ArgType):
    def read(self, scope, v, label):
        return scope.reader.get_str(v, label)

    def describe(self):
        return "non-empty string"


class Path(ArgType):
    """A file path; relative paths are resolved against the .nn file's folder."""

    def read(self, scope, v, label):
        return scope.reader.get_path(v)

    def describe(self):
        return "path (string)"


class Choice(ArgType):
    """A name from a fixed set, bare or quoted. `noun` names it in "unknown NOUN 'x'"
    (default: the label); `text` replaces the list in the docs."""

    def __init__(self, choices: Sequence[str], aliases: Optional[dict] = None,
                 noun: Optional[str] = None, text: Optional[str] = None):
        self.choices = tuple(choices)
        self.aliases = dict(aliases or {})
        self.noun, self.text = noun, text

    def read(self, scope, v, label):
        return scope.reader.get_choice(v, label, self.choices, self.aliases, self.noun)

    def describe(self):
        if self.text:
            return self.text
        alias = "".join(f" (`{a}` = `{c}`)" for a, c in self.aliases.items())
        return "one of " + ", ".join(f"`{c}`" for c in self.choices) + alias


class StrList(ArgType):
    """A non-empty list of distinct strings, or one string."""

    def read(self, scope, v, label):
        return scope.reader.get_str_list(v, label)

    def describe(self):
        return "string or list of strings"


class LayerRef(ArgType):
    """The name of the model's input or of a layer defined before this one."""

    def read(self, scope, v, label):
        from ...errors import expected_one_of
        from ..raw import RName, RStr, describe, short
        if isinstance(v, RName) and len(v.parts) == 1:
            name = v.parts[0]
        elif isinstance(v, RStr):
            name = v.value
        else:
            raise scope.err(f"{label} must name a layer, got {describe(v)}", v.loc,
                            hint="expected e.g.  from=h1")
        if name not in scope.layers:
            raise scope.err(f"no layer '{short(name)}' before this one", v.loc,
                            hint=expected_one_of(name, scope.layers) + " (a layer reads only the input and "
                                 "the layers above it)")
        return name

    def describe(self):
        return "the name of the input or of an earlier layer"


class LayerRefs(ArgType):
    """At least `least` distinct names of the input or earlier layers: `[a, b]`."""

    def __init__(self, least: int = 2):
        self.least = least

    def read(self, scope, v, label):
        from ..raw import RList
        if not isinstance(v, RList) or len(v.items) < self.least:
            raise scope.err(f"{label} must list at least {self.least} layers", v.loc,
                            hint="expected e.g.  from=[h1, h2]")
        names = []
        for it in v.items:
            name = LayerRef().read(scope, it, label)
            if name in names:
                raise scope.err(f"{label} names '{name}' twice", it.loc)
            names.append(name)
        return tuple(names)

    def describe(self):
        return f"a list of at least {self.least} names of the input or earlier layers"
