"""Reading raw values: integers, numbers, booleans, strings, names and paths,
each checked for type and range, with the messages every check shares.

A `Reader` knows the file being checked (for error snippets and relative
paths); the argument types of `specs` read through it.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

from ..errors import CompileError, SourceLoc, did_you_mean, expected_one_of
from .raw import RList, RName, RNum, RStr, describe, short


def fmt(x) -> str:
    """A number as a message shows it: 1e-3 stays 0.001, 2.0 becomes 2."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x) if isinstance(x, float) else str(x)


def int_range(lo, hi, noun: str = "an integer") -> str:
    """'an integer in [1, 10]', 'an integer >= 0', ... ('an integer' unbounded)."""
    if lo is not None and hi is not None:
        return f"{noun} in [{lo}, {hi}]"
    if lo is not None:
        return f"{noun} >= {lo}"
    if hi is not None:
        return f"{noun} <= {hi}"
    return noun


def float_range(lo, hi, lo_open: bool = False, hi_open: bool = False) -> str:
    """'in (0, 1]', '> 0', '>= 0', ... ('' unbounded)."""
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{fmt(lo)}, {fmt(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {fmt(lo)}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {fmt(hi)}"
    return ""


class Reader:
    def __init__(self, filename: str, source: Optional[str], base_dir: str):
        self.filename = filename
        self.source = source
        self.base_dir = base_dir

    # -- errors -------------------------------------------------------------
    def err(self, msg: str, loc: Optional[SourceLoc], hint: Optional[str] = None) -> CompileError:
        return CompileError(msg, loc, source=self.source, hint=hint)

    def span(self, a: SourceLoc, b: Optional[SourceLoc]) -> SourceLoc:
        if b is None:
            return a
        return SourceLoc(self.filename, a.line, a.column, b.end_line, b.end_column)

    # -- values -------------------------------------------------------------
    def get_int(self, v, what: str, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
        if isinstance(v, RNum) and not v.is_int and float(v.value).is_integer():
            raise self.err(f"{what} must be an integer, got {v.text}", v.loc,
                           hint=f"write it without a decimal point or exponent: {fmt(int(v.value)) if abs(v.value) < 1e18 else 'an integer'}")
        if not (isinstance(v, RNum) and v.is_int):
            raise self.err(f"{what} must be an integer, got {describe(v)}", v.loc,
                           hint="expected " + int_range(lo, hi))
        x = int(v.value)
        if (lo is not None and x < lo) or (hi is not None and x > hi):
            raise self.err(f"{what} must be {int_range(lo, hi)}, got {v.text}", v.loc)
        return x

    def get_float(self, v, what: str, lo: Optional[float] = None, hi: Optional[float] = None,
                  lo_open: bool = False, hi_open: bool = False) -> float:
        rng = float_range(lo, hi, lo_open, hi_open)
        if not isinstance(v, RNum):
            hint = f"expected a number{(' ' + rng) if rng else ''}"
            if isinstance(v, RStr):
                hint += "; write numbers without quotes"
            raise self.err(f"{what} must be a number, got {describe(v)}", v.loc, hint=hint)
        try:
            x = float(v.value)
        except OverflowError:  # only for huge integers; the parser bounds them, but be safe
            raise self.err(f"{what}: {short(v.text)} is too large", v.loc) from None
        bad = ((lo is not None and (x <= lo if lo_open else x < lo)) or
               (hi is not None and (x >= hi if hi_open else x > hi)))
        if bad:
            raise self.err(f"{what} must be {rng}, got {v.text}", v.loc)
        return x

    def get_bool(self, v, what: str) -> bool:
        if isinstance(v, RName) and len(v.parts) == 1 and v.parts[0] in ("true", "false"):
            return v.parts[0] == "true"
        hint = "expected true or false"
        if isinstance(v, RName):
            hint += did_you_mean(v.dotted.lower(), ("true", "false"))
        elif isinstance(v, RNum) and v.is_int and v.value in (0, 1):
            hint += f"; did you mean '{'true' if v.value else 'false'}'?"
        raise self.err(f"{what} must be true or false, got {describe(v)}", v.loc, hint=hint)

    def get_str(self, v, what: str) -> str:
        """A non-empty string."""
        if isinstance(v, RStr):
            if not v.value:
                raise self.err(f"{what} must not be empty", v.loc)
            return v.value
        hint = "expected a string in double quotes"
        if isinstance(v, RName):
            hint += f', e.g. "{short(v.dotted)}"'
        raise self.err(f"{what} must be a string, got {describe(v)}", v.loc, hint=hint)

    def get_choice(self, v, what: str, choices: Sequence[str],
                   aliases: Optional[dict] = None, noun: Optional[str] = None) -> str:
        """A name from a fixed set, written bare (relu) or quoted ("relu")."""
        aliases = aliases or {}
        noun = noun or what
        if isinstance(v, RName):
            name = v.dotted
        elif isinstance(v, RStr):
            name = v.value
        else:
            raise self.err(f"{what} must be a name, got {describe(v)}", v.loc,
                           hint="expected one of: " + ", ".join(choices))
        if name in choices:
            return name
        if name in aliases:
            return aliases[name]
        lowered = name.lower()
        if lowered != name and (lowered in choices or lowered in aliases):
            raise self.err(f"unknown {noun} '{short(name)}'", v.loc,
                           hint=f"names are case-sensitive; did you mean '{lowered}'?")
        raise self.err(f"unknown {noun} '{short(name)}'", v.loc, hint=expected_one_of(name, choices))

    def get_str_list(self, v, what: str) -> list[str]:
        """A non-empty list of distinct strings; a single string is a list of one."""
        if isinstance(v, RStr):
            items = [v]
        elif isinstance(v, RList):
            items = v.items
            if not items:
                raise self.err(f"{what} must not be an empty list", v.loc)
        else:
            raise self.err(f"{what} must be a list of strings, got {describe(v)}", v.loc,
                           hint='expected e.g. ["y0", "y1"]')
        out: list[str] = []
        for it in items:
            s = self.get_str(it, f"each entry of {what}")
            if s in out:
                raise self.err(f"{what} names '{short(s)}' twice", it.loc)
            out.append(s)
        return out

    def get_path(self, v) -> str:
        """A file path, made absolute against the directory of the .nn file."""
        p = self.get_str(v, "the file path")
        if "\0" in p:
            raise self.err("the file path contains a NUL character", v.loc)
        if not os.path.isabs(p):
            p = os.path.join(self.base_dir, p)
        return os.path.normpath(p)
