"""Arguments whose value is a name from a table, or a call of one that takes
arguments (`relu`, `leaky_relu(0.1)`; `he_normal`, `variance_scaling(2, mode=fan_out)`).

The checked value is a string: the bare name when every argument has its
default, else the canonical call text with the arguments that differ
(`leaky_relu(negative_slope=0.1)`), so labels, summaries and saved settings
show what runs; `parse_call` turns that text back into the name and the
values given.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Callable, Mapping

from ..raw import RCall, RName, RStr, describe
from ..values import fmt
from .core import Spec
from .types import ArgType


def _text(v: Any) -> str:
    return "true" if v is True else "false" if v is False else fmt(v)


def call_text(spec: Spec, values: Mapping[str, Any]) -> str:
    """`name`, or `name(k=v, ...)` with the arguments that are not their default."""
    given = [(a.name, values[a.name]) for a in spec.args if values[a.name] != a.default]
    if not given:
        return spec.name
    return f"{spec.name}({', '.join(f'{k}={_text(v)}' for k, v in given)})"


_CALL = re.compile(r"^(\w+)(?:\((.*)\))?$")


def _value(v: str) -> Any:
    if v in ("true", "false"):
        return v == "true"
    try:
        return float(v)
    except ValueError:
        return v        # a choice (mode=fan_out)


@lru_cache(maxsize=None)
def _parse(text: str) -> tuple[str, tuple]:
    m = _CALL.match(text)
    if m is None:
        raise KeyError(f"not a name or call: {text!r}")
    items = [item.split("=") for item in filter(None, (m.group(2) or "").split(","))]
    return m.group(1), tuple((k.strip(), _value(v.strip())) for k, v in items)


def parse_call(text: str) -> tuple[str, dict]:
    """(name, {argument: value}) of a canonical text (only the arguments written)."""
    name, given = _parse(text)
    return name, dict(given)


class CallChoice(ArgType):
    """A name from `table()` (name -> Spec of its arguments), or a call of one that
    takes arguments, checked against its spec; the value is `call_text`."""

    def __init__(self, table: Callable[[], Mapping[str, Spec]], aliases: Mapping[str, str], noun: str):
        self.table, self.aliases, self.noun = table, aliases, noun

    def read(self, scope, v, label):
        table = self.table()
        if isinstance(v, RCall):
            name = scope.reader.get_choice(v.name, label, tuple(table), dict(self.aliases), self.noun)
            spec = table[name]
            if not spec.args:
                raise scope.err(f"{self.noun} {name} takes no arguments", v.loc,
                                hint=f"write it without parentheses: {name}")
            return call_text(spec, spec.call(scope, v.args, f"{self.noun} {name}", v.loc).values)
        if not isinstance(v, (RName, RStr)):
            raise scope.err(f"{label} must be an {self.noun} name, got {describe(v)}", v.loc,
                            hint="expected one of: " + ", ".join(table))
        return scope.reader.get_choice(v, label, tuple(table), dict(self.aliases), self.noun)

    def describe(self):
        return f"an {self.noun}"
