"""Whatever the user feeds nncompile, it compiles or says clearly why not.

In-process (the bulk): `parse_source` / `parse_file` + `Program` on token
mutations (insertions, deletions, swaps, replacements, duplications) of
generated valid programs, random text, random bytes (non-UTF-8 included) and a
table of pathological inputs (1 MB lines, 10k brackets, 1e400, 10**100, NUL
bytes, empty files, only comments, ...). Each must compile or raise
CompileError, whose message renders with `file:line:col`, the line and a caret,
within a time bound.

Through the CLI (a bounded sample): `python -m nncompile check FILE` in a child
with a wall-clock timeout and an address-space limit (RLIMIT_AS) must exit 0,
or exit 2 with `file:line:col: error:` on stderr and no traceback.

Inputs that once failed live in corpus/ and are replayed by
`test_corpus_file`; a corpus file named `bug-*.nn` is a known, reported bug and
runs as a strict xfail until it is fixed.

The valid programs that get mutated come from the shared generator
(tests/programs.py); NNCOMPILE_FUZZ_EXAMPLES raises the example counts.
"""
import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import nncompile
import programs as P
from nncompile.errors import CompileError
from nncompile.frontend import parse_file, parse_source

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
TIME_BOUND = 5.0                  # seconds of CPU time per input, in process
CLI_TIMEOUT = 20.0                # seconds per CLI run (interpreter start-up included)
CLI_MEMORY = 2 << 30              # bytes of address space for a CLI child
MAX_MESSAGE = 2000                # characters: an error is a few lines, never the whole input
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                      HealthCheck.filter_too_much])

EMPTY = "the file is empty"        # located at 1:1, but there is no line to show
LOC_RE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): error: ", re.M)


# ------------------------------------------------------------------ the oracle

class TimeBound(Exception):
    pass


@contextlib.contextmanager
def time_bound(seconds: float):
    """Raise TimeBound in the main thread after `seconds` of this process's CPU time.

    CPU time, not wall clock: it measures the work, where a wall-clock bound failed
    on a machine loaded by other jobs. The alarm interrupts a runaway computation;
    if it lands somewhere that swallows exceptions (a gc callback), the overrun is
    still reported at exit."""
    expired = []

    def on_alarm(signum, frame):
        expired.append(True)
        raise TimeBound(f"took longer than {seconds} s of CPU time")
    old = signal.signal(signal.SIGPROF, on_alarm)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)
    if expired:
        raise TimeBound(f"took longer than {seconds} s of CPU time")


def check_error(e: CompileError, filename: str, text=None):
    rendered = str(e)
    assert e.message and rendered
    assert len(rendered) <= MAX_MESSAGE, f"error message of {len(rendered)} characters"
    if e.loc is None:
        # the one whole-file problem these inputs can meet comes without a location, naming the file
        assert e.message.startswith(f"{filename}: file too large"), rendered
        return
    assert e.loc.file == filename
    assert e.loc.line >= 1 and e.loc.column >= 1, rendered
    assert rendered.startswith(f"{filename}:{e.loc.line}:{e.loc.column}: error: "), rendered
    if e.message == EMPTY:
        assert (e.loc.line, e.loc.column) == (1, 1), rendered
        return
    # every other error shows its line (invalid UTF-8 too, with U+FFFD) and a caret
    assert e.source is not None and e.source.strip(), rendered
    n_lines = len(e.source.splitlines())
    assert e.loc.line <= max(1, n_lines), f"line {e.loc.line} past the end ({n_lines} lines)"
    assert "^" in rendered.split("\n", 2)[-1], f"no caret line:\n{rendered}"


def compile_or_error(text: str, filename: str = "fuzz.nn"):
    """parse + build every graph and run the passes; only CompileError may come out."""
    with time_bound(TIME_BOUND):
        try:
            nncompile.Program(parse_source(text, filename=filename))
        except CompileError as e:
            check_error(e, filename, text)
            return e
    return None


def file_or_error(data: bytes, suffix=".nn"):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "input" + suffix)
        with open(path, "wb") as f:
            f.write(data)
        with time_bound(TIME_BOUND):
            try:
                nncompile.Program(parse_file(path))
            except CompileError as e:
                check_error(e, path)
                return e
    return None


# --------------------------------------------------------------- mutations

TOKEN_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|[+-]?\d+\.?\d*(?:[eE][+-]?\d+)?'
                      r'|[ \t]+|\n|#[^\n]*|.')
SPECIALS = ["\n", " ", "{", "}", "(", ")", "[", "]", ",", "=", ":", ".", '"', "'", "\\", "@", "-1", "0",
            "1e400", "-1e400", "1e-400", str(10 ** 100), "9" * 500, "0." + "0" * 450 + "1", "2147483648",
            "1.5", "nan", "inf", "true", "none", "input", "train", "model", "dense", "flatten", "batchnorm",
            "layernorm", "dropout", "activation", "softmax", "x", "f32", "f64", "\t", "\r", "\r\n",
            "\u2028", "\x0b", "\x0c", "\x85", "é", "\ufeff", "\0", "#", "'unterminated", '"s"', "'s'",
            "from_logits", "split", "synthetic.classification", "csv", "npz", "builtin",
            "label_smoothing", "clipnorm", "global_clipnorm", "clipvalue", "normalization", "elu", "selu",
            "variance_scaling", "orthogonal", "truncated_normal", "fan_out",
            "[" * 40, "(" * 40, "{" * 40]


def tokens(src):
    return TOKEN_RE.findall(src)


def mutate(src: str, edits) -> str:
    toks = tokens(src)
    for op, pos, pos2, tok in edits:
        i = pos % (len(toks) + 1)
        if op == "insert":
            toks.insert(i, tok)
        elif not toks:
            continue
        elif op == "delete":
            del toks[min(i, len(toks) - 1)]
        elif op == "replace":
            toks[min(i, len(toks) - 1)] = tok
        elif op == "duplicate":
            j = min(i, len(toks) - 1)
            toks.insert(j, toks[j])
        elif op == "swap":
            a, b = min(i, len(toks) - 1), pos2 % len(toks)
            toks[a], toks[b] = toks[b], toks[a]
        elif op == "move":  # a token taken out and put back elsewhere
            t = toks.pop(min(i, len(toks) - 1))
            toks.insert(pos2 % (len(toks) + 1), t)
    return "".join(toks)


@st.composite
def mutated_programs(draw):
    spec = draw(P.program_specs())
    pool = sorted({t for t in tokens(spec.source) if t.strip()}) + SPECIALS
    edit = st.tuples(st.sampled_from(["insert", "delete", "replace", "duplicate", "swap", "move"]),
                     st.integers(0, 10_000), st.integers(0, 10_000), st.sampled_from(pool))
    edits = draw(st.lists(edit, min_size=1, max_size=5))
    return mutate(spec.source, edits)


@settings(max_examples=P.examples(300), **SETTINGS)
@given(mutated_programs())
def test_mutated_generated_programs(src):
    compile_or_error(src)


LANG_ALPHABET = st.sampled_from(list("model train input dense flatten {}()[]=:,.\"'#\n \t0123456789eE+-_xf")
                                + ["\\", "\0", "\r", "\u2028", "é", "\ufeff", "\ud800", "\U0001f600"])


@settings(max_examples=P.examples(150), **SETTINGS)
@given(st.one_of(st.text(max_size=300), st.text(LANG_ALPHABET, max_size=300)))
def test_random_text(text):
    compile_or_error(text)


@settings(max_examples=P.examples(100), **SETTINGS)
@given(st.one_of(st.binary(max_size=300),
                 st.builds(lambda prefix, junk, pos: prefix[:pos] + junk + prefix[pos:],
                           P.program_specs().map(lambda s: s.source.encode()),
                           st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xef\xbb\xbf",
                                            b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\r", b"\x80\x80"]),
                           st.integers(0, 400))))
def test_random_bytes_through_parse_file(data):
    file_or_error(data)


# ---------------------------------------------------------- pathological inputs

M = "model m {\n  input x: f32[4]\n"
END = "  dense o(1)\n}\n"
TRAIN = "train {\n  loss = mse\n  optimizer = sgd\n"
MB = 1_000_000

PATHOLOGICAL = {
    "empty": b"",
    "only-spaces": b"   \n\t\n  ",
    "only-comments": b"# a comment\n# another\n",
    "only-bom": b"\xef\xbb\xbf",
    "bom-then-comment": b"\xef\xbb\xbf# hi\n",
    "only-cr": b"\r\r\r",
    "nul-byte": (M + END).encode().replace(b"dense", b"de\x00nse"),
    "nul-only": b"\x00",
    "non-utf8-latin1": (M + "  # caf\xe9\n" + END).encode("latin-1"),
    "non-utf8-lone-continuation": b"model m {\n  input x: f32[4]\x80\n" + END.encode(),
    "non-utf8-surrogate": b"model m {\n\xed\xa0\x80\n}\n",
    "non-utf8-overlong": b"model m \xc0\xaf{\n}\n",
    "utf16": (M + END).encode("utf-16"),
    "line-1mb-comment": (M + "#" + "c" * (MB - 100) + "\n" + END).encode(),
    "line-1mb-name": (M + "  " + "a" * (MB - 100) + "\n}\n").encode(),
    "line-1mb-string": (M + END + TRAIN + '  data = csv("' + "s" * (MB - 200) + '", target="y")\n}\n').encode(),
    "line-1mb-number": (M + "  dense o(" + "9" * (MB - 100) + ")\n}\n").encode(),
    "line-1mb-spaces": (M + " " * (MB - 100) + END).encode(),
    "too-large-file": (M + END + "#" * (MB + 10)).encode(),
    "way-too-large-file": b"#" * (5 * MB),
    "nest-10k-parens": (M + "  dense o" + "(" * 10_000 + ")" * 10_000 + "\n}\n").encode(),
    "nest-10k-lists": (M + END + TRAIN + "  metrics = " + "[" * 10_000 + "]" * 10_000 + "\n}\n").encode(),
    "nest-10k-dicts": (M + END + TRAIN + "  early_stopping = " + "{a: " * 10_000 + "1" + "}" * 10_000
                       + "\n}\n").encode(),
    "nest-10k-blocks": ("model m " + "{" * 10_000 + "}" * 10_000).encode(),
    "nest-10k-open-only": (M + "  dense o" + "(" * 10_000).encode(),
    "nest-10k-close-only": (M + END + ")" * 10_000).encode(),
    "nest-10k-mixed": (M + END + TRAIN + "  metrics = " + "[(" * 5_000 + ")]" * 5_000 + "\n}\n").encode(),
    "nest-31-lists": (M + END + TRAIN + "  metrics = " + "[" * 31 + "]" * 31 + "\n}\n").encode(),
    "float-1e400": (M + "  dense o(1, l2=1e400)\n}\n").encode(),
    "float-neg-1e400": (M + END + TRAIN + "  seed = -1e400\n}\n").encode(),
    "float-1e-400": (M + "  dense o(1, l2=1e-400)\n}\n").encode(),
    "int-10**100": (M + "  dense o(" + str(10 ** 100) + ")\n}\n").encode(),
    "int-2**63": (M + END + TRAIN + f"  seed = {2 ** 63}\n}}\n").encode(),
    "int-2**31": (M + f"  dense o({2 ** 31})\n}}\n").encode(),
    "int-5000-digits": (M + "  dense o(" + "7" * 5000 + ")\n}\n").encode(),
    "float-5000-digits": (M + "  dropout(0." + "3" * 5000 + ")\n" + END).encode(),
    "float-400-digits": (M + "  dropout(" + "1" * 399 + ".0)\n" + END).encode(),
    "many-positional-args": (M + "  dense o(" + "1," * 30_000 + ")\n}\n").encode(),
    "many-keyword-args": (M + "  dense o(" + ",".join(f"k{i}=1" for i in range(20_000)) + ")\n}\n").encode(),
    "many-list-items": (M + END + TRAIN + "  metrics = [" + "accuracy," * 30_000 + "]\n}\n").encode(),
    "many-dims": ("model m {\n  input x: f32[" + "1," * 30_000 + "]\n  flatten\n" + END).encode(),
    "huge-dims-product": ("model m {\n  input x: f32[2147483647, 2147483647, 2147483647]\n  flatten\n"
                          + END).encode(),
    "many-dotted-parts": (M + END + TRAIN + "  data = a" + ".a" * 30_000 + "\n}\n").encode(),
    "many-blocks": ("model m {\n  input x: f32[1]\n  dense o(1)\n}\n" * 5_000).encode(),
    "many-unknown-lines": (M + "  bogus\n" * 20_000 + END).encode(),
    "many-blank-lines": (M + "\n" * 500_000 + END).encode(),
    "many-settings": (M + END + TRAIN + "  epochs = 1\n" * 20_000 + "}\n").encode(),
    "control-chars": (M + "  dense\x0bo(1)\x0c\n}\n").encode(),
    "unicode-line-separators": (M + "\u2028\u2029\x85" + END).encode(),
    "emoji-name": (M + "  dense \U0001f600(1)\n}\n").encode(),
    "tab-indentation": (M + "\t\t" + END).encode(),
    "crlf": (M + END).replace("\n", "\r\n").encode(),
    "cr-only": (M + END).replace("\n", "\r").encode(),
    "string-escapes": (M + END + TRAIN + '  data = npz("\\x00\\uFFFF\\ud800")\n}\n').encode(),
    "string-bad-hex": (M + END + TRAIN + '  data = npz("\\xZZ")\n}\n').encode(),
    "string-trailing-backslash": (M + END + TRAIN + '  data = npz("abc\\\n}\n').encode(),
}



@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_input_in_process(name):
    file_or_error(PATHOLOGICAL[name])


def test_a_thousand_layers_compile_in_the_bound():
    assert file_or_error((M + "".join(f"  dense h{i}(2)\n" for i in range(1000)) + END).encode()) is None


# 1 MB inputs are refused at once (over the 128 KiB limit); just under the limit
# they must still answer within TIME_BOUND seconds of the child's CPU time (a
# wall-clock bound flakes on a loaded machine; CPU time measures the work, and
# RLIMIT_CPU kills a runaway child).
def test_one_megabyte_of_arguments_answers_in_the_bound():
    # through the CLI: a child that overruns is killed, where an in-process alarm may be swallowed
    check_cli_in_bound((M + "  dense o(" + "1," * 480_000 + ")\n}\n").encode())


def test_just_under_the_size_limit_answers_in_the_bound():
    from nncompile.frontend.parser import MAX_SOURCE_CHARS
    args = M + "  dense o(" + "1," * ((MAX_SOURCE_CHARS - 200) // 2) + ")\n}\n"
    layers = M + "".join(f"  dense h{i}(2)\n" for i in range((MAX_SOURCE_CHARS - 200) // 18)) + "}\n"
    for text in (args, layers):
        assert len(text) <= MAX_SOURCE_CHARS
        check_cli_in_bound(text.encode())


def test_one_megabyte_of_layers_answers_in_the_bound():
    check_cli_in_bound((M + "".join(f"  dense h{i}(2)\n" for i in range(55_000)) + "}\n").encode())


# ----------------------------------------------------------------------- the CLI

def _limit_child(cpu_seconds=None):
    resource.setrlimit(resource.RLIMIT_AS, (CLI_MEMORY, CLI_MEMORY))
    if cpu_seconds is not None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))


def run_cli(data: bytes, *args, name="input.nn", timeout=CLI_TIMEOUT, cpu_seconds=None):
    """`python -m nncompile <args> FILE` on `data`, bounded in time and memory."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(data)
        env = {k: v for k, v in os.environ.items() if k != "NNCOMPILE_DEBUG"}
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        argv = list(args) or ["check"]
        r = subprocess.run([sys.executable, "-m", "nncompile", *argv, path], capture_output=True,
                           timeout=timeout, preexec_fn=lambda: _limit_child(cpu_seconds), env=env, cwd=d)
        return r, path


def check_cli_in_bound(data: bytes, *args):
    """check_cli, and the child used at most TIME_BOUND seconds of CPU (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    check_cli(data, *args, cpu_seconds=int(TIME_BOUND) + 1, timeout=CLI_TIMEOUT * 3)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu <= TIME_BOUND, f"{cpu:.1f} s of CPU (bound {TIME_BOUND} s)"


def check_cli(data: bytes, *args, allowed=(0, 2), timeout=CLI_TIMEOUT, cpu_seconds=None):
    r, path = run_cli(data, *args, timeout=timeout, cpu_seconds=cpu_seconds)
    out, err = r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err and "Traceback" not in out, err[-3000:]
    assert "internal compiler error" not in err, err[-3000:]
    assert r.returncode in allowed, f"exit {r.returncode}\n{err[-3000:]}"
    if r.returncode == 2:
        assert len(err) <= MAX_MESSAGE + 200, f"{len(err)} characters on stderr"
        m = LOC_RE.search(err)
        if m is None:  # whole-file problems (too large) name the file instead
            assert err.startswith(f"error: {path}: file too large"), err
        else:
            assert m.group("file") == path, err
            if f"error: {EMPTY}" not in err:   # an empty file has no line to show
                assert "^" in err, f"no caret:\n{err}"
    return r


CLI_SAMPLE = sorted(PATHOLOGICAL)


@pytest.mark.parametrize("name", CLI_SAMPLE[::max(1, len(CLI_SAMPLE) // P.scale(12))])
def test_pathological_input_through_the_cli(name):
    check_cli(PATHOLOGICAL[name])


@settings(max_examples=P.scale(8), **SETTINGS)
@given(mutated_programs())
def test_mutated_programs_through_the_cli(src):
    check_cli(src.encode("utf-8", "surrogatepass"))


@settings(max_examples=P.scale(4), **SETTINGS)
@given(st.binary(max_size=200))
def test_random_bytes_through_the_cli(data):
    check_cli(data)


@pytest.mark.parametrize("cmd", ["summary", "dump"])
def test_other_commands_report_errors_the_same_way(cmd):
    r = check_cli(PATHOLOGICAL["float-1e400"], cmd)
    assert r.returncode == 2


# A valid program whose sizes the checks accept but no machine can hold.
HUGE_DENSE = (b"model m {\n  input x: f32[10]\n  dense h(2147483647, relu)\n  dense out(2, softmax)\n}\n"
              b"train {\n  data = synthetic.classification(samples=100, features=10, classes=2)\n"
              b"  loss = sparse_categorical_crossentropy\n  optimizer = sgd\n}\n")
HUGE_DATA = (b"model m {\n  input x: f32[10]\n  dense out(2, softmax)\n}\n"
             b"train {\n  data = synthetic.classification(samples=2147483647, features=10, classes=2)\n"
             b"  loss = sparse_categorical_crossentropy\n  optimizer = sgd\n}\n")


@pytest.mark.parametrize("data", [HUGE_DENSE, HUGE_DATA], ids=["huge-dense", "huge-data"])
def test_run_with_sizes_that_cannot_fit_is_a_clear_error(data):
    check_cli(data, "run", "--quiet", allowed=(2,))


def test_check_accepts_huge_but_valid_sizes():
    """`check` allocates nothing, so these are fine there."""
    assert check_cli(HUGE_DENSE).returncode == 0


# --------------------------------------------------------------- the corpus

CORPUS_FILES = sorted(p.name for p in CORPUS.glob("*.nn"))


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_file(name, request):
    if name.startswith("bug-"):
        first = (CORPUS / name).read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace")
        request.applymarker(pytest.mark.xfail(strict=True, reason=first.lstrip("# ")))
    data = (CORPUS / name).read_bytes()
    file_or_error(data)
    if len(data) < 20_000:
        check_cli(data)


def test_non_utf8_error_shows_the_line_and_a_caret():
    r = check_cli(b"model m {\n  input x: f32[4]\x80\n  dense o(1)\n}\n")
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2 and ":2:18: error:" in err
    assert "^" in err and "input x: f32[4]" in err
