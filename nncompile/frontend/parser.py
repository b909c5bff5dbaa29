"""Text -> checked AST.

`parse_source` runs Lark (LALR) over the text, transforms Lark's tree into the
small raw tree of `raw.py` (every node keeps its `SourceLoc`), and hands it
to `checks.check_program`, which validates it and fills in every default.

Every problem with the input is reported as a `CompileError` with a location,
the offending line and a caret; nothing the user writes can make this module
raise anything else.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (LarkError, UnexpectedCharacters, UnexpectedEOF,
                             UnexpectedInput, UnexpectedToken, VisitError)

from ..errors import CompileError, SourceLoc
from . import checks
from .ast import Program
from .raw import (MAX_DEPTH, MAX_INT, RArg, RCall, RDict, RLayer, RList, RName, RNum, RSection, RSetting,
                  RStr, RType)

__all__ = ["parse_source", "parse_file", "MAX_SOURCE_CHARS"]

# A program is a few dozen lines; anything this large is a mistake (a data file
# passed by accident). Refusing it up front keeps the compiler fast and bounded:
# Lark builds a positioned tree at ~25 us a token, so 1 MB of tokens took ~18 s
# (measured); 128 KiB answers in ~2 s whatever it holds.
MAX_SOURCE_CHARS = 131_072
MAX_STRING_CHARS = 10_000

_GRAMMAR_NAME = "nncompile.lark"
_parser: Optional[Lark] = None
_parse_lock = threading.Lock()   # the cached parser's post-lexer slot is per call


def _grammar_path() -> Path:
    here = Path(__file__).resolve().parent.parent          # .../nncompile
    candidates = [here / "grammar" / _GRAMMAR_NAME,        # installed wheel
                  here.parent / "grammar" / _GRAMMAR_NAME]  # source tree / editable
    for c in candidates:
        if c.is_file():
            return c
    raise CompileError(  # an installation problem, still reported without a traceback
        "cannot find the grammar file " + " or ".join(str(c) for c in candidates))


# ---------------------------------------------------------------- post-lexer

_OPENERS = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
_CLOSERS = {"RPAR": "LPAR", "RSQB": "LSQB", "RBRACE": "LBRACE"}
_CHAR = {"LPAR": "(", "RPAR": ")", "LSQB": "[", "RSQB": "]", "LBRACE": "{", "RBRACE": "}"}
# A '{' right after one of these opens a value dict, otherwise a block.
_VALUE_CONTEXT = {"EQUAL", "COLON", "COMMA", "LPAR", "LSQB"}


class _PostLex:
    """Make newlines mean "end of statement" only where that makes sense.

    Drops newlines inside (...), [...] and value dicts and at the top level,
    collapses runs of newlines, drops the newline after a block's '{' and adds
    one before a block's '}' so every statement ends with exactly one newline.
    Also checks bracket matching and bounds the nesting depth, so that no
    later stage can recurse deeply.
    """

    always_accept = ("_NL",)

    def __init__(self, filename: str, source: str):
        self.filename = filename
        self.source = source
        self.recent: list[Token] = []   # the last two tokens handed to the parser

    def _loc(self, tok: Token) -> SourceLoc:
        return SourceLoc(self.filename, tok.line, tok.column, tok.end_line, tok.end_column)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        stack: list[tuple[str, Token]] = []     # ("block" | "(" | "[" | "dict", opener)
        depth = 0                                 # nesting of value brackets
        prev: Optional[Token] = None              # last token yielded
        for tok in stream:
            t = tok.type
            if t == "_NL":
                if not stack or stack[-1][0] != "block":
                    continue                      # inside brackets or between blocks
                if prev is None or prev.type == "_NL" or (prev.type == "LBRACE" and stack[-1][1] is prev):
                    continue
                prev = tok
                yield tok
                continue
            if t in _OPENERS:
                if t == "LBRACE" and not (prev is not None and (
                        prev.type in _VALUE_CONTEXT or
                        (prev.type == "LBRACE" and stack and stack[-1][0] == "dict"))):
                    kind = "block"
                else:
                    kind = {"LPAR": "(", "LSQB": "[", "LBRACE": "dict"}[t]
                    depth += 1
                    if depth > MAX_DEPTH:
                        raise CompileError(
                            f"brackets nested too deeply (more than {MAX_DEPTH} levels)",
                            self._loc(tok), source=self.source,
                            hint="flatten the value; no setting needs this much nesting")
                stack.append((kind, tok))
            elif t in _CLOSERS:
                if not stack:
                    raise CompileError(f"unmatched '{_CHAR[t]}'", self._loc(tok), source=self.source,
                                       hint="there is no open bracket for it to close")
                kind, opener = stack[-1]
                if opener.type != _CLOSERS[t]:
                    raise CompileError(
                        f"'{_CHAR[t]}' does not match the '{_CHAR[opener.type]}' opened at "
                        f"line {opener.line}, column {opener.column}", self._loc(tok),
                        source=self.source, hint=f"expected '{_CHAR[_OPENERS[opener.type]]}'")
                if kind == "block" and prev is not None and prev.type != "_NL" and prev is not opener:
                    nl = Token.new_borrow_pos("_NL", "\n", tok)
                    yield nl
                stack.pop()
                if kind != "block":
                    depth -= 1
            prev = tok
            self.recent = [self.recent[-1], tok] if self.recent else [tok]
            yield tok
        if stack:
            kind, opener = stack[-1]
            what = "block" if kind == "block" else "bracket"
            raise CompileError(
                f"'{_CHAR[opener.type]}' opened here is never closed", self._loc(opener),
                source=self.source,
                hint=f"expected '{_CHAR[_OPENERS[opener.type]]}' to close this {what} before the end of the file")


def _get_parser() -> Lark:
    global _parser
    if _parser is None:
        text = _grammar_path().read_text(encoding="utf-8")
        _parser = Lark(text, parser="lalr", lexer="basic", propagate_positions=True,
                       maybe_placeholders=False, postlex=_PostLexSlot())
    return _parser


class _PostLexSlot:
    """Lark wants the post-lexer when the parser is built; ours carries the
    file name, so the cached parser gets this slot and the real one per call."""

    always_accept = _PostLex.always_accept

    def __init__(self):
        self.current: Optional[_PostLex] = None

    def process(self, stream):
        if self.current is None:  # internal invariant: parse_source sets it
            raise RuntimeError("nncompile parser used without a post-lexer")
        return self.current.process(stream)


# ---------------------------------------------------------- syntax errors

_TERMINAL_TEXT = {
    "LBRACE": "'{'", "RBRACE": "'}'", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['",
    "RSQB": "']'", "COMMA": "','", "EQUAL": "'='", "COLON": "':'", "DOT": "'.'",
    "NAME": "a name", "NUMBER": "a number", "STRING": "a string",
    "_NL": "end of line", "$END": "end of file",
}
_TERMINAL_ORDER = ["NAME", "NUMBER", "STRING", "EQUAL", "COLON", "COMMA", "DOT", "LPAR",
                   "RPAR", "LSQB", "RSQB", "LBRACE", "RBRACE", "_NL", "$END"]


def _describe_expected(names) -> str:
    names = [n for n in names if n not in ("WS", "COMMENT")]
    order = {n: i for i, n in enumerate(_TERMINAL_ORDER)}
    names = sorted(set(names), key=lambda n: (order.get(n, 99), n))
    texts = [_TERMINAL_TEXT.get(n, n.lower()) for n in names]
    if not texts:
        return ""
    if len(texts) == 1:
        return f"expected {texts[0]}"
    return "expected one of: " + ", ".join(texts)


def _describe_token(tok: Token) -> str:
    t = tok.type
    if t == "$END":
        return "end of file"
    if t == "_NL":
        return "end of line"
    if t == "NAME":
        return f"name '{tok}'"
    if t == "NUMBER":
        return f"number {tok}"
    if t == "STRING":
        s = str(tok)
        return f"string {s if len(s) <= 40 else s[:37] + '...'}"
    return _TERMINAL_TEXT.get(t, repr(str(tok)))


_SECTION_START = re.compile(r"^\s*([A-Za-z_]\w*)(?:\s+[A-Za-z_]\w*)?\s*\{\s*(#.*)?$")
_COLON_SETTING = re.compile(r"^\s*([A-Za-z_]\w*)\s*:\s*(\S.*?)\s*(#.*)?$")


def _open_blocks(text: str, before_line: int) -> list[tuple[str, int]]:
    """The sections (`train {`, `model m {`) opened and not closed before line
    `before_line`, outermost first: (kind, line). Braces in strings, comments and
    value dicts are counted as such."""
    stack: list[tuple[str, int]] = []
    for no, line in enumerate(text.split("\n")[:max(0, before_line - 1)], start=1):
        m = _SECTION_START.match(line)
        if m:
            stack.append((m.group(1), no))
            continue
        quote = None
        for ch in line:
            if quote:
                quote = None if ch == quote else quote
            elif ch in "\"'":
                quote = ch
            elif ch == "#":
                break
            elif ch == "{":
                stack.append(("", no))
            elif ch == "}" and stack:
                stack.pop()
    return [b for b in stack if b[0]]


def _block_hint(e, tok, text: str, filename: str, source: str) -> Optional[CompileError]:
    """A missing `}` (the next section starts, or the file ends, inside a block) or a
    `key: value` setting: say so in the user's terms."""
    at_end = tok is None or tok.type == "$END"
    line = None if at_end else tok.line
    lines = text.split("\n")
    blocks = _open_blocks(text, len(lines) + 1 if at_end else line)
    if blocks and (at_end or (tok.type == "LBRACE" and _SECTION_START.match(lines[line - 1]))):
        kind, opened = blocks[-1]
        where = "at the end of the file" if at_end else f"before line {line}"
        n = len(lines) if at_end else line
        while at_end and n > 1 and not lines[n - 1].strip():
            n -= 1
        loc = SourceLoc(filename, n, 1 if not at_end else len(lines[n - 1]) + 1)
        return CompileError(f"the '{kind}' block opened on line {opened} is not closed", loc, source=source,
                            hint=f"add '}}' {where}")
    if not at_end:
        m = _COLON_SETTING.match(lines[line - 1])
        value = m.group(2) if m else ""
        in_train = bool(blocks) and blocks[-1][0] == "train"
        if m and in_train:
            return CompileError("settings are written 'key = value', not 'key: value'",
                                SourceLoc(filename, line, lines[line - 1].index(":") + 1), source=source,
                                hint=f"did you mean '{m.group(1)} = {value}'?")
    return None


def _syntax_error(e: UnexpectedInput, filename: str, source: str, text: str,
                  recent: Optional[list] = None) -> CompileError:
    if isinstance(e, (UnexpectedToken, UnexpectedEOF)):
        better = _block_hint(e, getattr(e, "token", None), text, filename, source)
        if better is not None:
            return better
    line = getattr(e, "line", None)
    column = getattr(e, "column", None)
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if 0 <= e.pos_in_stream < len(text) else ""
        loc = SourceLoc(filename, e.line, e.column, e.line, e.column + 1)
        if ch in "\"'":
            return CompileError("unterminated string", loc, source=source,
                                hint=f"close the string with {ch} on the same line")
        if ch == "\\":
            msg = "unexpected character '\\'"
        elif ch.isprintable() and ch.strip():
            msg = f"unexpected character '{ch}'"
        else:
            msg = f"unexpected character {ch!r} (U+{ord(ch):04X})" if ch else "unexpected character"
        allowed = e.allowed or ()
        hint = _describe_expected(allowed) if 0 < len(allowed) <= 4 else None
        return CompileError(msg, loc, source=source, hint=hint or None)
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END" or line is None or line < 1:
            lines = text.split("\n")
            n = len(lines)
            while n > 1 and not lines[n - 1].strip():
                n -= 1
            loc = SourceLoc(filename, n, len(lines[n - 1]) + 1)
        else:
            end_col = tok.end_column if tok.end_line == tok.line else None
            if tok.type == "_NL":
                end_col = None
            loc = SourceLoc(filename, tok.line, tok.column, tok.line if end_col else None, end_col)
        expected = set(e.expected or ())
        ip = getattr(e, "interactive_parser", None)
        if ip is not None:
            try:  # the precise set: LALR states share lookaheads after a default reduction
                expected = set(ip.accepts()) or expected
            except Exception:  # noqa: BLE001 - fall back to Lark's own set
                pass
        hint = _describe_expected(expected)
        msg = f"unexpected {_describe_token(tok)}"
        closers = [c for c in ("RPAR", "RSQB", "RBRACE") if c in expected]
        if (closers and recent and len(recent) == 2 and recent[1] is tok
                and recent[0].end_line is not None and recent[0].end_line < tok.line):
            msg += f" (is a {_TERMINAL_TEXT[closers[0]]} missing at the end of line {recent[0].end_line}?)"
        return CompileError(msg, loc, source=source, hint=hint or None)
    if isinstance(e, UnexpectedEOF):
        lines = text.split("\n")
        loc = SourceLoc(filename, len(lines), len(lines[-1]) + 1)
        return CompileError("unexpected end of file", loc, source=source,
                            hint=_describe_expected(e.expected or ()) or None)
    loc = SourceLoc(filename, line, column) if line and column else None
    return CompileError("syntax error", loc, source=source)


# ------------------------------------------------------- tree conversion

@dataclass
class _Group:
    """An argument list or a type's dims: the items and where the brackets are."""
    items: list
    loc: SourceLoc


@v_args(meta=True)
class _ToRaw(Transformer):
    """Lark's tree -> the raw tree of `raw.py`, bottom up, one method per rule.
    Number and string literals are checked here (bounds, escapes). Nesting
    needs no check: the post-lexer bounds it."""

    def __init__(self, filename: str, source: str):
        super().__init__(visit_tokens=False)
        self.filename = filename
        self.source = source
        # v_args wraps each rule method anew on every attribute access (a
        # quarter of the transform's time); bind each one once.
        for rule in _RULES:
            setattr(self, rule, getattr(self, rule))

    def _tok_loc(self, tok: Token) -> SourceLoc:
        return SourceLoc(self.filename, tok.line, tok.column, tok.end_line, tok.end_column)

    def _loc(self, meta) -> SourceLoc:
        if getattr(meta, "empty", True):
            return SourceLoc(self.filename, 1, 1)
        return SourceLoc(self.filename, meta.line, meta.column, meta.end_line, meta.end_column)

    def _err(self, msg: str, loc: SourceLoc, hint: Optional[str] = None) -> CompileError:
        return CompileError(msg, loc, source=self.source, hint=hint)

    # -- blocks and statements ------------------------------------------------
    def start(self, meta, sections) -> list[RSection]:
        return sections

    def section(self, meta, children) -> RSection:
        toks = [c for c in children if isinstance(c, Token)]
        kind, name = toks[0], (toks[1] if len(toks) > 1 else None)
        return RSection(kind=str(kind), kind_loc=self._tok_loc(kind),
                        name=str(name) if name is not None else None,
                        name_loc=self._tok_loc(name) if name is not None else None,
                        stmts=[c for c in children if not isinstance(c, Token)], loc=self._loc(meta))

    def setting(self, meta, children) -> RSetting:
        key, value = children
        return RSetting(key=str(key), key_loc=self._tok_loc(key), value=value, loc=self._loc(meta))

    def layer(self, meta, children) -> RLayer:
        # NAME NAME? arglist? (":" type)?
        kind, name, args, typ = children[0], None, None, None
        for c in children[1:]:
            if isinstance(c, Token):
                name = c
            elif isinstance(c, _Group):
                args = c
            else:
                typ = c
        return RLayer(kind=str(kind), kind_loc=self._tok_loc(kind),
                      name=str(name) if name is not None else None,
                      name_loc=self._tok_loc(name) if name is not None else None,
                      args=args.items if args else None, args_loc=args.loc if args else None,
                      type=typ, loc=self._loc(meta))

    def type(self, meta, children) -> RType:
        name, dims = children[0], (children[1] if len(children) > 1 else None)
        return RType(name=str(name), name_loc=self._tok_loc(name), dims=dims.items if dims else None,
                     dims_loc=dims.loc if dims else None, loc=self._loc(meta))

    def dims(self, meta, values) -> _Group:
        return _Group(values, self._loc(meta))

    # -- values ---------------------------------------------------------------
    def arglist(self, meta, args) -> _Group:
        return _Group(args, self._loc(meta))

    def posarg(self, meta, children) -> RArg:
        return RArg(key=None, key_loc=None, value=children[0])

    def kwarg(self, meta, children) -> RArg:
        key, value = children
        return RArg(key=str(key), key_loc=self._tok_loc(key), value=value)

    def number(self, meta, children) -> RNum:
        return self._number(children[0])

    def string(self, meta, children) -> RStr:
        return self._string(children[0])

    def dotted(self, meta, names) -> RName:
        return RName(parts=tuple(str(t) for t in names), loc=self._loc(meta))

    def call(self, meta, children) -> RCall:
        name, args = children
        return RCall(name=name, args=args.items, loc=self._loc(meta))

    def list(self, meta, items) -> RList:
        return RList(items=items, loc=self._loc(meta))

    def dict(self, meta, entries) -> RDict:
        return RDict(entries=entries, loc=self._loc(meta))

    def entry(self, meta, children) -> tuple:
        key, value = children
        k = self._string(key).value if key.type == "STRING" else str(key)
        return (k, self._tok_loc(key), value)

    # -- literals -------------------------------------------------------------
    def _number(self, tok: Token) -> RNum:
        text = str(tok)
        loc = self._tok_loc(tok)
        if len(text) > 400:
            raise self._err("number literal too long", loc, hint="write large or small numbers with an exponent, e.g. 1e-4")
        if re.fullmatch(r"[+-]?\d+", text):
            digits = text.lstrip("+-").lstrip("0") or "0"
            if len(digits) > 19 or abs(int(text)) > MAX_INT:
                raise self._err(f"integer {text if len(text) <= 30 else text[:27] + '...'} is too large", loc,
                                hint=f"integers must lie within +-{MAX_INT}")
            return RNum(value=int(text), is_int=True, text=text, loc=loc)
        try:
            v = float(text)
        except (ValueError, OverflowError):
            raise self._err(f"invalid number {text}", loc) from None
        if v != v or v in (float("inf"), float("-inf")):
            raise self._err(f"number {text if len(text) <= 30 else text[:27] + '...'} is out of range", loc,
                            hint="numbers must be finite 64-bit floats (|x| < 1.8e308)")
        return RNum(value=v, is_int=False, text=text, loc=loc)

    _ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}

    def _string(self, tok: Token) -> RStr:
        raw = str(tok)
        loc = self._tok_loc(tok)
        if len(raw) > MAX_STRING_CHARS:
            raise self._err(f"string literal too long ({len(raw)} characters)", loc)
        body = raw[1:-1]
        out = []
        i = 0
        while i < len(body):
            ch = body[i]
            if ch != "\\":
                out.append(ch)
                i += 1
                continue
            nxt = body[i + 1] if i + 1 < len(body) else ""
            col = tok.column + 1 + i
            eloc = SourceLoc(self.filename, tok.line, col, tok.line, col + 2)
            if nxt in self._ESCAPES:
                out.append(self._ESCAPES[nxt])
                i += 2
            elif nxt in ("u", "x"):
                n = 4 if nxt == "u" else 2
                hexdigits = body[i + 2:i + 2 + n]
                if len(hexdigits) != n or not all(c in "0123456789abcdefABCDEF" for c in hexdigits):
                    raise self._err(f"invalid escape '\\{nxt}{hexdigits}'",
                                    SourceLoc(self.filename, tok.line, col, tok.line, col + 2 + len(hexdigits)),
                                    hint=f"expected \\{nxt} followed by {n} hex digits")
                out.append(chr(int(hexdigits, 16)))
                i += 2 + n
            else:
                raise self._err(f"invalid escape '\\{nxt}' in string", eloc,
                                hint="expected one of: \\n, \\t, \\r, \\\\, \\\", \\', \\0, \\xHH, \\uHHHH")
        return RStr(value="".join(out), loc=loc)


_RULES = [name for name in vars(_ToRaw) if not name.startswith("_")]


# ------------------------------------------------------------ public API

_LINE_BREAKS = str.maketrans({c: " " for c in "\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


def parse_source(text: str, filename: str = "<string>", base_dir: Optional[str] = None,
                 overrides: Optional[dict] = None) -> Program:
    """Parse and check the text of a `.nn` program.

    Relative data paths are resolved against `base_dir` (default: the current
    directory). `overrides` (train setting -> value, from the command line or
    the API) replace the file's settings before the checks, so they are checked
    exactly as if the file said them. Raises `CompileError` for every mistake.
    """
    if not isinstance(text, str):
        raise CompileError(f"expected the program text as a str, got {type(text).__name__}")
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # What error snippets show: the same lines Lark counts (only '\n' breaks a line).
    source = text.translate(_LINE_BREAKS)
    if len(text) > MAX_SOURCE_CHARS:
        raise CompileError(f"{filename}: file too large ({len(text)} characters; at most "
                           f"{MAX_SOURCE_CHARS} are accepted)",
                           hint="is this really a .nn program and not a data file?")
    if not text.strip():
        raise CompileError("the file is empty", SourceLoc(filename, 1, 1), source=source,
                           hint="expected a model block: model NAME { ... } with an input line and layers, one per line")
    if "\0" in text:
        i = text.index("\0")
        line = text.count("\n", 0, i) + 1
        col = i - (text.rfind("\n", 0, i) + 1) + 1
        raise CompileError("the file contains a NUL byte (is it a binary file?)",
                           SourceLoc(filename, line, col), source=source)
    with _parse_lock:
        parser = _get_parser()
        slot = parser.options.postlex
        slot.current = _PostLex(filename, source)
        try:
            tree = parser.parse(text)
        except CompileError:
            raise
        except UnexpectedInput as e:
            raise _syntax_error(e, filename, source, text, slot.current.recent) from None
        except LarkError as e:  # any other parser failure is still the user's text
            raise CompileError(f"syntax error: {e}", SourceLoc(filename, 1, 1), source=source) from None
        except RecursionError:
            raise CompileError("program too deeply nested", SourceLoc(filename, 1, 1), source=source) from None
        finally:
            slot.current = None
    try:
        sections = _ToRaw(filename, source).transform(tree)
    except VisitError as e:   # Lark wraps what a rule method raises
        raise e.orig_exc from None
    if base_dir is None:
        base_dir = os.getcwd()
    if overrides:
        _override(sections, overrides, filename)
    return checks.check_program(sections, filename=filename, source=source, base_dir=base_dir)


def _raw_value(v):
    """A Python value as the raw tree would hold it (no location: it came from outside the file)."""
    from .raw import RName
    if isinstance(v, bool):
        return RName(("true" if v else "false",), None)
    if isinstance(v, int):
        return RNum(v, True, str(v), None)
    if isinstance(v, float):
        return RNum(v, False, repr(v), None)
    if isinstance(v, str):
        return RStr(v, None)
    return RName((repr(v),), None)


def _override(sections, overrides: dict, filename: str) -> None:
    train = next((s for s in sections if s.kind == "train"), None)
    if train is None:
        raise CompileError(f"{', '.join(overrides)} given, but {filename} has no train block")
    for key, value in overrides.items():
        setting = RSetting(key, None, _raw_value(value), None)
        i = next((k for k, st in enumerate(train.stmts) if isinstance(st, RSetting) and st.key == key), None)
        if i is None:
            train.stmts.append(setting)
        else:
            train.stmts[i] = setting


def with_overrides(prog: Program, **overrides) -> Program:
    """The program re-checked with some train settings replaced (None: kept)."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not overrides:
        return prog
    base = os.path.dirname(os.path.abspath(prog.filename)) if os.path.isfile(prog.filename) else None
    return parse_source(prog.source, prog.filename, base, overrides=overrides)


def parse_file(path) -> Program:
    """Read a `.nn` file (UTF-8) and parse it; relative data paths are
    resolved against the file's directory."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SOURCE_CHARS * 4 + 1)
    except FileNotFoundError:
        raise CompileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CompileError(f"{path}: is a directory, expected a .nn file") from None
    except PermissionError:
        raise CompileError(f"{path}: permission denied") from None
    except OSError as e:
        raise CompileError(f"{path}: cannot read the file ({e.strerror or e})") from None
    if len(data) > MAX_SOURCE_CHARS * 4:
        raise CompileError(f"{path}: file too large (more than {MAX_SOURCE_CHARS} characters)",
                           hint="is this really a .nn program and not a data file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        line_start = data.rfind(b"\n", 0, e.start) + 1
        col = len(data[line_start:e.start].decode("utf-8", "replace")) + 1   # in characters
        raise CompileError(f"the file is not valid UTF-8 (byte 0x{data[e.start]:02x})",
                           SourceLoc(path, line, col, line, col + 1),
                           source=data.decode("utf-8", "replace"),
                           hint="save the file as UTF-8") from None
    if not text.strip():
        raise CompileError("the file is empty", SourceLoc(path, 1, 1),
                           hint="expected a model block: model NAME { ... } with an input line and layers, one per line")
    base_dir = os.path.dirname(os.path.abspath(path))
    return parse_source(text, filename=path, base_dir=base_dir)
