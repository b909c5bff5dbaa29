"""Read the IR text form (what `ir.printer` writes) back into a Graph.

So a pass can be tested as "this IR in, that IR out", and a dump can be
edited and fed back. Shapes and dtypes are re-inferred from the op table and
checked against the written ones; a mismatch is an error with the line number.
"""
from __future__ import annotations

import re
from typing import Any

from ..errors import SourceLoc
from .graph import B, Graph, Node
from .ops import OPS, IRError

_HEAD = re.compile(r"^graph\s+(\S+)\s*\{\s*$")
_NODE = re.compile(r"^%(\d+):\s*(\w+)\[([^\]]*)\]\s*=\s*(\w+)(.*)$")
_RET = re.compile(r"^return\b(.*)$")
_META = re.compile(r"^meta\s+(\w+)(?:=(\"(?:[^\"\\\\]|\\\\.)*\"))?\s*(\{.*\})?$")


class IRParseError(ValueError):
    pass


def _split_top(s: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside quotes, parentheses and braces."""
    out, depth, cur, quote, esc = [], 0, [], False, False
    for ch in s:
        if quote:
            cur.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                quote = False
            continue
        if ch == '"':
            quote = True
        elif ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        if ch == sep and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def _value(s: str) -> Any:
    s = s.strip()
    if s == "true":
        return True
    if s == "false":
        return False
    if s == "none":
        return None
    if s.startswith('"') and s.endswith('"'):
        return s[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if s.startswith("(") and s.endswith(")"):
        return tuple(_value(x) for x in _split_top(s[1:-1]))
    if s == "B":
        return B
    if re.fullmatch(r"[+-]?\d+", s):
        return int(s)
    try:
        return float(s)
    except ValueError:
        raise IRParseError(f"cannot read attribute value {s!r}") from None


def _strip_comment(line: str) -> tuple[str, str]:
    quote = False
    for i, ch in enumerate(line):
        if ch == '"':
            quote = not quote
        elif ch == "#" and not quote:
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def _loc(comment: str) -> tuple[SourceLoc | None, str | None]:
    if not comment:
        return None, None
    first, _, rest = comment.partition(" ")
    m = re.fullmatch(r"(.+):(\d+):(\d+)", first)
    if m:
        return SourceLoc(m.group(1), int(m.group(2)), int(m.group(3))), (rest.strip() or None)
    return None, comment.strip() or None


def _attrs(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in _split_top(text.strip()[1:-1]):
        k, _, v = kv.rpartition("=") if kv.strip().startswith('"') else kv.partition("=")
        out[_value(k) if k.strip().startswith('"') else k.strip()] = _value(v)
    return out


def _read_meta(g: Graph, no: int, m, comment: str) -> None:
    """A `meta` line: an instruction for a pass (see ir.printer.pending_meta)."""
    key, value, attrs = m.group(1), m.group(2), m.group(3)
    if key == "differentiate" and value is not None:
        g.meta["differentiate"] = _value(value)
    elif key == "optimizer" and value is not None:
        loc, _ = _loc(comment)
        g.meta["optimizer"] = (_value(value), _attrs(attrs) if attrs else {}, loc)
    elif key == "lr_mult" and attrs:
        g.meta["lr_mult"] = _attrs(attrs)
    elif key == "precision" and value is not None:
        g.meta["precision"] = _value(value)
    else:
        raise IRParseError(f"line {no}: unknown meta line (expected meta differentiate=\"OUTPUT\", "
                           "meta optimizer=\"NAME\" {...}, meta lr_mult {...} or meta precision=\"P\")")


def parse_graph(text: str) -> Graph:
    lines = [l for l in text.strip().splitlines() if l.strip()]
    if not lines or not _HEAD.match(lines[0].strip()):
        raise IRParseError("line 1: expected 'graph NAME {'")
    g = Graph(_HEAD.match(lines[0].strip()).group(1))
    env: dict[int, Node] = {}
    dtypes_seen = set()
    for no, raw in enumerate(lines[1:], start=2):
        body, comment = _strip_comment(raw.strip())
        if body == "}":
            break
        if not body:
            continue
        m = _META.match(body)
        if m:
            _read_meta(g, no, m, comment)
            continue
        m = _RET.match(body)
        if m:
            for item in _split_top(m.group(1)):
                lhs, _, rhs = item.partition("=")
                target, _, upd = rhs.partition("->")
                ref = int(target.strip().lstrip("%"))
                if ref not in env:
                    raise IRParseError(f"line {no}: unknown value %{ref}")
                g.output(_value(lhs), env[ref], updates=_value(upd) if upd.strip() else None)
            continue
        m = _NODE.match(body)
        if not m:
            raise IRParseError(f"line {no}: cannot read {body!r}")
        nid, dtype, dims, op, rest = m.groups()
        shape = tuple(_value(d) for d in dims.split(",") if d.strip())
        attrs: dict[str, Any] = {}
        rest = rest.strip()
        if rest.endswith("}") and "{" in rest:
            brace = rest.index("{")
            for kv in _split_top(rest[brace + 1:-1]):
                k, _, v = kv.partition("=")
                attrs[k.strip()] = _value(v)
            rest = rest[:brace].strip()
        args = [a.strip() for a in rest.split(",") if a.strip()]
        loc, layer = _loc(comment)
        dtypes_seen.add(dtype)
        if op not in OPS:
            raise IRParseError(f"line {no}: unknown op {op!r}")
        with g.at(loc, layer):
            if op == "input":
                name = attrs.pop("name")
                node = g.input(name, shape, dtype, role=attrs.pop("role", "data"),
                               init=attrs.pop("init", None), trainable=attrs.pop("trainable", True))
            else:
                try:
                    ins = [env[int(a.lstrip("%"))] for a in args]
                except (KeyError, ValueError):
                    raise IRParseError(f"line {no}: unknown operand in {args}") from None
                try:
                    node = g.emit(op, *ins, **attrs)
                except (IRError, KeyError, TypeError) as e:
                    raise IRParseError(f"line {no}: {e}") from None
                if (node.dtype, node.shape) != (dtype, shape):
                    raise IRParseError(f"line {no}: written type {dtype}{list(shape)} but the op gives "
                                       f"{node.type_str}")
        env[int(nid)] = node
    if "f64" in dtypes_seen and "f32" not in dtypes_seen:
        g.float_dtype = "f64"
    return g
