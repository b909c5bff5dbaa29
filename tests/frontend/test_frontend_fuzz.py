"""Mutated programs either parse or raise CompileError -- never anything else."""
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nncompile.errors import CompileError
from nncompile.frontend import parse_source

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [(ROOT / "examples" / n).read_text() for n in
           ("textbook_classifier.nn", "textbook_regression.nn", "digits.nn")]
TOKEN_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|[+-]?\d+\.?\d*(?:[eE][+-]?\d+)?|\s+|#[^\n]*|.')


def tokens(src):
    return TOKEN_RE.findall(src)


POOL = sorted({t for s in SOURCES for t in tokens(s) if not t.isspace()}) + [
    "\n", " ", "{", "}", "(", ")", "[", "]", ",", "=", ":", ".", '"', "'", "\\", "@", "-1", "1e999",
    "99999999999999999999999999", "0", "1.5", "true", "none", "input", "train", "model", "\t", "\r",
    "\u2028", "é", "\0", "#",
]

edit = st.tuples(st.sampled_from(["delete", "insert", "replace", "duplicate"]),
                 st.integers(min_value=0, max_value=10_000), st.sampled_from(POOL))


def check(src):
    try:
        parse_source(src, filename="fuzz.nn")
    except CompileError as e:
        text = str(e)           # rendering must not fail either
        assert e.message and text
        # inputs this small are never "too large", the one error without a location
        assert e.loc is not None, text
        assert e.loc.file == "fuzz.nn" and e.loc.line >= 1 and e.loc.column >= 1, text
        assert text.startswith(f"fuzz.nn:{e.loc.line}:{e.loc.column}: error: "), text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(SOURCES))), st.lists(edit, min_size=1, max_size=4))
def test_token_mutations(which, edits):
    toks = tokens(SOURCES[which])
    for op, pos, tok in edits:
        i = pos % (len(toks) + 1)
        if op == "insert":
            toks.insert(i, tok)
        elif op == "delete" and toks:
            del toks[min(i, len(toks) - 1)]
        elif op == "replace" and toks:
            toks[min(i, len(toks) - 1)] = tok
        elif op == "duplicate" and toks:
            j = min(i, len(toks) - 1)
            toks.insert(j, toks[j])
    check("".join(toks))


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_random_text(text):
    check(text)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(range(len(SOURCES))), st.integers(min_value=0, max_value=10_000),
       st.text(min_size=1, max_size=5))
def test_random_insertions(which, pos, junk):
    src = SOURCES[which]
    i = pos % (len(src) + 1)
    check(src[:i] + junk + src[i:])
