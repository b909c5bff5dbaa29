"""`Arg` and `Spec` rows, and the one binder/validator over them.

A `Spec` is everything the language knows about one call-like thing (a layer
kind, an optimizer, a schedule, a data source, ...): its arguments in order,
each an `Arg` row with type, default, documentation, position and aliases,
plus the rules that tie arguments together. Binding (`bind`, `bind_entries`)
matches what was written against the rows: unknown, duplicate, misplaced and
missing arguments. `validate` reads each argument through its type, fills
defaults and runs the rules. The docs tables and every "expected one of"
list come from the same rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Callable, Mapping, Optional, Sequence

from ...errors import SourceLoc, expected_one_of
from ..raw import RArg, short
from ..values import Reader
from .types import ArgType


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()   # the default of an argument that must be given


@dataclass(frozen=True)
class Derived:
    """A default computed from the scope of the check; `text` names it in the docs."""
    value: Callable[["Scope"], Any]
    text: str


@dataclass(frozen=True)
class Arg:
    """One argument: a row of a spec table.

    check(scope, value, raw) is a further condition on this value (it may use
    the arguments read before it, or the program), made right after it is read.
    example is the hint when a required argument is missing."""
    name: str
    type: ArgType
    default: Any = REQUIRED
    doc: str = ""
    positional: bool = False
    aliases: tuple[str, ...] = ()
    label: str = ""                  # how messages name it ("dropout rate"); default: the name
    check: Optional[Callable] = None
    example: Optional[str] = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def what(self) -> str:
        return self.label or self.name


@dataclass
class Scope:
    """What a check may look at: the program so far, and the call being checked.

    layers are the names a layer's arguments may refer to (the model input
    and the layers before it); settings are the train settings checked so far
    (empty outside the train block); values and raw are the current call's
    arguments checked so far and as written (raw value by canonical name);
    what names the call in messages."""
    reader: Reader
    model: Any = None                     # the checked ModelDef, once there is one
    layers: Sequence[str] = ()
    settings: dict = field(default_factory=dict)
    spec: Optional["Spec"] = None
    loc: Optional[SourceLoc] = None
    what: str = ""
    values: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)

    def err(self, msg: str, loc: Optional[SourceLoc], hint: Optional[str] = None):
        return self.reader.err(msg, loc, hint)

    def enter(self, spec: "Spec", loc: Optional[SourceLoc], what: str = "") -> "Scope":
        """The scope of a call inside this one (same program, fresh arguments)."""
        return Scope(self.reader, self.model, self.layers, self.settings, spec, loc, what)


@dataclass(frozen=True)
class Spec:
    """requires: checks of the context, made before the arguments are bound
    (flip needs an image input). rules: cross-argument rules, run after every
    argument is read; a rule may also derive a value (mode 'auto')."""
    name: str
    args: tuple[Arg, ...] = ()
    doc: str = ""
    requires: tuple[Callable[[Scope], None], ...] = ()
    rules: tuple[Callable[[Scope], None], ...] = ()

    # -- the rows -------------------------------------------------------------
    @cached_property
    def positional(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.args if a.positional)

    @cached_property
    def keys(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.args)

    @cached_property
    def aliases(self) -> dict[str, str]:
        """alias -> canonical name, in the order of the rows."""
        return {al: a.name for a in self.args for al in a.aliases}

    def extend(self, name: str, *args: Arg, doc: Optional[str] = None) -> "Spec":
        """This spec under another name, with more arguments after its own."""
        return replace(self, name=name, args=self.args + args, doc=self.doc if doc is None else doc)

    def with_default(self, name: str, value: Any) -> "Spec":
        """This spec with one argument made optional, defaulting to `value`."""
        return replace(self, args=tuple(replace(a, default=value) if a.name == name else a for a in self.args))

    def defaults(self) -> dict[str, Any]:
        """The fixed defaults (not the required or derived ones)."""
        return {a.name: a.default for a in self.args if not a.required and not isinstance(a.default, Derived)}

    def complete(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """`values` with the fixed defaults filled in: for settings made by hand
        (tests, the Python API) rather than by the checker."""
        return {**self.defaults(), **values}

    # -- checking ---------------------------------------------------------------
    def call(self, outer: Scope, args: Optional[list[RArg]], what: str, loc: SourceLoc) -> Scope:
        """Check a call of this spec: bind `args`, read and default every argument,
        run the rules. Returns the call's scope (.values checked, .raw as written)."""
        scope = outer.enter(self, loc, what)
        for need in self.requires:
            need(scope)
        scope.raw = self.bind(scope.reader, args, what, loc)
        return self.validate(scope)

    def validate(self, scope: Scope) -> Scope:
        """Read the bound raw arguments of `scope` through their types, in the
        order of the rows, filling defaults; then run the rules."""
        for a in self.args:
            if a.name in scope.raw:
                raw = scope.raw[a.name]
                scope.values[a.name] = a.type.read(scope, raw, a.what)
                if a.check is not None:
                    a.check(scope, scope.values[a.name], raw)
            elif not a.required:
                d = a.default
                scope.values[a.name] = d.value(scope) if isinstance(d, Derived) else d
        for rule in self.rules:
            rule(scope)
        return scope

    def bind(self, reader: Reader, args: Optional[list[RArg]], what: str, where: SourceLoc) -> dict[str, Any]:
        """Match positional and key=value arguments against the rows. Returns
        canonical name -> raw value, in the order written; reports unknown,
        duplicate, misplaced and missing required arguments."""
        positional, keys, aliases = self.positional, self.keys, self.aliases
        out: dict[str, Any] = {}
        seen_kw = False
        for a in args or []:
            if a.key is None:
                if seen_kw:
                    raise reader.err(f"positional argument after key=value arguments in {what}", a.value.loc,
                                     hint="put positional arguments first, or name this one")
                npos = len(out)
                if npos >= len(positional):
                    raise self._too_many_positional(reader, what, a)
                out[positional[npos]] = a.value
                continue
            seen_kw = True
            key = aliases.get(a.key, a.key)
            if key not in keys:
                if not keys:
                    raise reader.err(f"{what} takes no arguments", a.key_loc)
                raise reader.err(f"unknown argument '{a.key}' for {what}", a.key_loc,
                                 hint=expected_one_of(a.key, list(keys) + list(aliases)))
            if key in out:
                raise reader.err(f"argument '{key}' given twice in {what}", a.key_loc,
                                 hint="each argument may be given once (by position or by key=value)")
            out[key] = a.value
        for arg in self.args:
            if arg.required and arg.name not in out:
                pos = ""
                if arg.name in positional:
                    pos = f" (argument {positional.index(arg.name) + 1}, or {arg.name}=...)"
                raise reader.err(f"{what} needs '{arg.name}'{pos}", where, hint=arg.example)
        return out

    def _too_many_positional(self, reader: Reader, what: str, a: RArg):
        positional, keys = self.positional, self.keys
        if not positional:
            msg = f"{what} takes no positional arguments"
            hint = f"name the argument: one of {', '.join(keys)}" if keys else f"{what} takes no arguments"
        else:
            msg = (f"too many positional arguments for {what}: it takes at most "
                   f"{len(positional)} ({', '.join(positional)})")
            others = [k for k in keys if k not in positional]
            hint = f"give the others as key=value: {', '.join(others)}" if others else None
        return reader.err(msg, a.value.loc, hint=hint)

    def bind_entries(self, reader: Reader, entries, what: str) -> dict[str, Any]:
        """Match the entries of a value dict ({ key: value, ... }) against the rows."""
        aliases = self.aliases
        out: dict[str, Any] = {}
        for key, kloc, val in entries:
            k = aliases.get(key, key)
            if k not in self.keys:
                raise reader.err(f"unknown {what} key '{short(key)}'", kloc,
                                 hint=expected_one_of(key, self.keys))
            if k in out:
                raise reader.err(f"{what} key '{k}' given twice", kloc)
            out[k] = val
        return out
