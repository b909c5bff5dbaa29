"""The raw tree: what the parser hands to the checks.

Blocks, statements and generic values, each with its `SourceLoc`. Nothing here
knows which layer kinds, settings or arguments exist; `checks.py` and the
specs decide what a raw value means.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

from ..errors import SourceLoc

MAX_DEPTH = 32                 # nesting of brackets in a value
MAX_INT = 2 ** 63 - 1          # largest integer literal
MAX_DIM = 2 ** 31 - 1          # largest units / dimension / batch size


@dataclass
class RNum:
    value: Union[int, float]
    is_int: bool
    text: str
    loc: SourceLoc


@dataclass
class RStr:
    value: str
    loc: SourceLoc


@dataclass
class RName:
    parts: tuple[str, ...]
    loc: SourceLoc

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass
class RArg:
    key: Optional[str]
    key_loc: Optional[SourceLoc]
    value: Any


@dataclass
class RCall:
    name: RName
    args: list[RArg]
    loc: SourceLoc


@dataclass
class RList:
    items: list
    loc: SourceLoc


@dataclass
class RDict:
    entries: list[tuple[str, SourceLoc, Any]]
    loc: SourceLoc


@dataclass
class RType:
    name: str
    name_loc: SourceLoc
    dims: Optional[list]
    loc: SourceLoc
    dims_loc: Optional[SourceLoc] = None


@dataclass
class RLayer:
    kind: str
    kind_loc: SourceLoc
    name: Optional[str]
    name_loc: Optional[SourceLoc]
    args: Optional[list[RArg]]
    args_loc: Optional[SourceLoc]
    type: Optional[RType]
    loc: SourceLoc


@dataclass
class RSetting:
    key: str
    key_loc: SourceLoc
    value: Any
    loc: SourceLoc


@dataclass
class RSection:
    kind: str
    kind_loc: SourceLoc
    name: Optional[str]
    name_loc: Optional[SourceLoc]
    stmts: list = field(default_factory=list)
    loc: Optional[SourceLoc] = None


def describe(v) -> str:
    """A short phrase naming what a raw value is, for "expected X, got Y"."""
    if isinstance(v, RNum):
        return f"the {'integer' if v.is_int else 'number'} {short(v.text)}"
    if isinstance(v, RStr):
        return f'the string "{short(v.value)}"'
    if isinstance(v, RName):
        return f"the name {short(v.dotted)}"
    if isinstance(v, RCall):
        return f"a call {short(v.name.dotted)}(...)"
    if isinstance(v, RList):
        return "a list"
    if isinstance(v, RDict):
        return "a dict"
    return "a value"


def short(s: str, n: int = 40) -> str:
    """`s`, cut to `n` characters for a message."""
    return s if len(s) <= n else s[:n - 3] + "..."
