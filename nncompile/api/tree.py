"""Nested arguments and results: tuples, lists and dicts of leaves.

A jitted function's arguments (and what it returns) may be nested: a dict of
parameters, a tuple of gradients. `flatten` lists the leaves with their paths
("w1", "params.w1", "0.1") and a `TreeDef` that rebuilds the structure from
the leaves in the same order. Dicts keep their keys' insertion order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional


@dataclass(frozen=True)
class TreeDef:
    """The structure of a nested value: kind "leaf", "tuple", "list" or "dict"."""

    kind: str
    children: tuple["TreeDef", ...] = ()
    keys: tuple = ()

    @property
    def num_leaves(self) -> int:
        return 1 if self.kind == "leaf" else sum(c.num_leaves for c in self.children)

    def unflatten(self, leaves: list) -> Any:
        it = iter(leaves)
        out = self._build(it)
        rest = list(it)
        if rest:
            raise ValueError(f"{len(rest)} leaves too many for {self}")
        return out

    def _build(self, it):
        if self.kind == "leaf":
            return next(it)
        items = [c._build(it) for c in self.children]
        if self.kind == "dict":
            return dict(zip(self.keys, items))
        return tuple(items) if self.kind == "tuple" else list(items)

    def __str__(self) -> str:
        if self.kind == "leaf":
            return "*"
        if self.kind == "dict":
            return "{" + ", ".join(f"{k!r}: {c}" for k, c in zip(self.keys, self.children)) + "}"
        inner = ", ".join(str(c) for c in self.children)
        return f"[{inner}]" if self.kind == "list" else f"({inner}{',' if len(self.children) == 1 else ''})"


LEAF = TreeDef("leaf")


def flatten(value: Any, is_leaf: Optional[Callable[[Any], bool]] = None,
            prefix: str = "") -> tuple[list[tuple[str, Any]], TreeDef]:
    """([(path, leaf), ...], treedef). Tuples, lists and dicts are containers;
    anything else (or what `is_leaf` accepts) is a leaf."""
    leaves: list[tuple[str, Any]] = []

    def walk(v, path) -> TreeDef:
        if is_leaf is not None and is_leaf(v):
            leaves.append((path, v))
            return LEAF
        if isinstance(v, dict):
            keys = tuple(v)
            return TreeDef("dict", tuple(walk(v[k], _join(path, str(k))) for k in keys), keys)
        if isinstance(v, (tuple, list)) and not hasattr(v, "_fields"):
            kind = "tuple" if isinstance(v, tuple) else "list"
            return TreeDef(kind, tuple(walk(x, _join(path, str(i))) for i, x in enumerate(v)),
                           tuple(range(len(v))))
        leaves.append((path, v))
        return LEAF

    tree = walk(value, prefix)
    return leaves, tree


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def leaves_like(tree: TreeDef, value: Any, what: str) -> list:
    """The leaves of `value` in `tree`'s order, checking that it has that structure
    (dicts by key, so a dict's order may differ); a ValueError names the difference."""
    out: list = []

    def walk(t: TreeDef, v, path):
        where = f" at {path}" if path else ""
        if t.kind == "leaf":
            if isinstance(v, (dict, list)) or (isinstance(v, tuple) and not hasattr(v, "_fields")):
                raise ValueError(f"{what}: expected an array{where}, got a {type(v).__name__}")
            out.append(v)
            return
        if t.kind == "dict":
            if not isinstance(v, dict):
                raise ValueError(f"{what}: expected a dict{where} with keys {list(t.keys)}, got a "
                                 f"{type(v).__name__}")
            if set(v) != set(t.keys):
                missing, extra = [k for k in t.keys if k not in v], [k for k in v if k not in t.keys]
                raise ValueError(f"{what}: the dict{where} has keys {list(v)}, expected {list(t.keys)}"
                                 + (f" (missing {missing})" if missing else "")
                                 + (f" (unexpected {extra})" if extra else ""))
            for k, c in zip(t.keys, t.children):
                walk(c, v[k], _join(path, str(k)))
            return
        if not isinstance(v, (tuple, list)):
            raise ValueError(f"{what}: expected a {t.kind} of {len(t.children)}{where}, got a {type(v).__name__}")
        if len(v) != len(t.children):
            raise ValueError(f"{what}: expected a {t.kind} of {len(t.children)}{where}, got {len(v)} items")
        for i, (c, x) in enumerate(zip(t.children, v)):
            walk(c, x, _join(path, str(i)))

    walk(tree, value, "")
    return out


def from_paths(names: list[str], prefix: str) -> Optional[TreeDef]:
    """The structure that the output names `prefix` / `prefix.0` / `prefix.1.w` describe
    (numeric parts: tuples, others: dicts), or None when the names do not follow it."""
    if names == [prefix]:
        return LEAF
    parts = []
    for n in names:
        if not n.startswith(prefix + "."):
            return None
        parts.append(n[len(prefix) + 1:].split("."))

    def build(rows: list[list[str]]) -> Optional[TreeDef]:
        if rows == [[]]:
            return LEAF
        if any(not r for r in rows):
            return None
        groups: dict[str, list[list[str]]] = {}
        for r in rows:
            groups.setdefault(r[0], []).append(r[1:])
        children = []
        for k, sub in groups.items():
            c = build(sub)
            if c is None:
                return None
            children.append(c)
        keys = tuple(groups)
        if all(k.isdigit() for k in keys) and [int(k) for k in keys] == list(range(len(keys))):
            return TreeDef("tuple", tuple(children), tuple(range(len(keys))))
        return TreeDef("dict", tuple(children), keys)

    return build(parts)
