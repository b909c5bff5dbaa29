"""A catalogue of broken programs and the error each must give.

Each case: (id, source, line, column, phrase in the message[, phrase in the hint]).
Every error must be a CompileError at that location whose str() shows the
offending line with a caret under the column.
"""
import pytest

from nncompile.errors import CompileError
from nncompile.frontend import parse_source

MODEL = """model m {
  input x: f32[10]
  dense h(10, relu)
  dense out(2, softmax)
}
"""


def train(*lines: str) -> str:
    """MODEL plus a train block (the train block starts at line 6)."""
    body = "\n".join("  " + l for l in lines)
    return MODEL + "train {\n" + body + "\n}\n"


BASE = ("loss = sparse_categorical_crossentropy", "optimizer = adam(lr=0.001)")


def image_train(shape: str, *lines: str) -> str:
    """A model on an image input f32[shape] plus a train block (which starts at line 6)."""
    body = "\n".join("  " + l for l in (*BASE, *lines))
    return (f"model m {{\n  input x: f32[{shape}]\n  flatten\n  dense out(4, softmax)\n}}\n"
            f"train {{\n{body}\n}}\n")

CASES = [
    # ---- syntax
    ("unclosed-paren", "model m {\n  input x: f32[10]\n  dense h(10, relu\n  dense o(2)\n}\n",
     4, 3, "is a ')' missing at the end of line 3", "expected one of"),
    ("unclosed-block", "model m {\n  input x: f32[10]\n  dense h(10)\n", 1, 9, "never closed", "'}'"),
    ("mismatched-bracket", "model m {\n  input x: f32[10)\n  dense h(1)\n}", 2, 18, "does not match", "']'"),
    ("unmatched-close", "model m {\n  input x: f32[10]\n  dense h(1)\n}\n}\n", 5, 1, "unmatched '}'", None),
    ("missing-comma", "model m {\n  input x: f32[10]\n  dense h(10 relu)\n}", 3, 14, "unexpected name 'relu'", "','"),
    ("two-settings-one-line", train("loss = mse optimizer = sgd"), 7, 14, "unexpected name 'optimizer'", "end of line"),
    ("bad-character", "model m {\n  input x: f32[10]\n  dense h(10) @\n}", 3, 15, "unexpected character '@'", None),
    ("unterminated-string", train(*BASE, 'data = csv("a.csv)'), 9, 14, "unterminated string", None),
    ("missing-value", train("loss =", "optimizer = sgd"), 7, 9, "unexpected end of line", "a number"),
    ("bad-escape", train(*BASE, 'data = npz("a\\qb.npz")'), 9, 16, "invalid escape", None),
    ("too-deep", train(*BASE, "metrics = " + "[" * 40 + "]" * 40), 9, 45, "nested too deeply", None),
    ("huge-int", train(*BASE, "epochs = 123456789012345678901234567890"), 9, 12, "too large", None),
    ("huge-float", train(*BASE, "epochs = 1e999"), 9, 12, "out of range", None),
    # ---- blocks and layers
    ("no-model", "train {\n  loss = mse\n  optimizer = sgd\n}\n", 1, 1, "no model block", None),
    ("unknown-block", "modle m {\n  input x: f32[2]\n  dense(1)\n}", 1, 1, "unknown block 'modle'", "did you mean 'model'"),
    ("two-models", MODEL + MODEL, 6, 1, "second model block", None),
    ("two-trains", train(*BASE) + "train {\n  loss = mse\n  optimizer = sgd\n}\n", 10, 1, "second train block", None),
    ("input-not-first", "model m {\n  dense h(10)\n  input x: f32[10]\n}", 2, 3, "must start with an input", None),
    ("input-no-type", "model m {\n  input x\n  dense h(1)\n}", 2, 9, "needs a type", "f32[10]"),
    ("bad-dtype", "model m {\n  input x: f64[10]\n  dense h(1)\n}", 2, 12, "unknown element type 'f64'", "f32"),
    ("zero-dim", "model m {\n  input x: f32[10, 0]\n  dense h(1)\n}", 2, 20, "input dimension must be an integer in [1,", None),
    ("unknown-layer", "model m {\n  input x: f32[10]\n  dnese h(1)\n}", 3, 3, "unknown layer kind 'dnese'", "did you mean 'dense'"),
    ("unknown-activation", "model m {\n  input x: f32[10]\n  dense h(10, rleu)\n}", 3, 15, "unknown activation 'rleu'", "did you mean 'relu'"),
    ("activation-case", "model m {\n  input x: f32[10]\n  dense h(10, ReLU)\n}", 3, 15, "unknown activation 'ReLU'", "case-sensitive"),
    ("duplicate-layer", "model m {\n  input x: f32[10]\n  dense h(10)\n  dense h(2)\n}", 4, 9, "duplicate name 'h'", None),
    ("layer-named-like-input", "model m {\n  input x: f32[10]\n  dense x(10)\n}", 3, 9, "already used by the input", None),
    ("dropout-range", "model m {\n  input x: f32[10]\n  dropout d(1.5)\n  dense o(1)\n}", 3, 13, "dropout rate must be in [0, 1), got 1.5", None),
    ("dense-missing-units", "model m {\n  input x: f32[10]\n  dense h\n}", 3, 3, "needs 'units'", None),
    ("units-string", 'model m {\n  input x: f32[10]\n  dense h("10")\n}', 3, 11, "units must be an integer, got the string", None),
    ("units-float", "model m {\n  input x: f32[10]\n  dense h(10.5)\n}", 3, 11, "units must be an integer", None),
    ("unknown-layer-arg", "model m {\n  input x: f32[10]\n  dense h(10, l3=0.1)\n}", 3, 15, "unknown argument 'l3'", "l1, l2"),
    ("negative-l2", "model m {\n  input x: f32[10]\n  dense h(10, l2=-1e-4)\n}", 3, 18, "l2 must be >= 0", None),
    ("duplicate-arg", "model m {\n  input x: f32[10]\n  dense h(10, units=3)\n}", 3, 15, "'units' given twice", None),
    ("too-many-positional", "model m {\n  input x: f32[10]\n  dense h(10, relu, 3)\n}", 3, 21, "too many positional", "l1"),
    ("positional-after-key", "model m {\n  input x: f32[10]\n  dense h(units=10, relu)\n}", 3, 21, "positional argument after", None),
    ("bad-bool", "model m {\n  input x: f32[10]\n  dense h(10, use_bias=True)\n}", 3, 24, "use_bias must be true or false", "did you mean 'true'"),
    ("bad-init", "model m {\n  input x: f32[10]\n  dense h(10, init=he_unifrom)\n}", 3, 20, "unknown initializer", "did you mean 'he_uniform'"),
    ("layer-with-type", "model m {\n  input x: f32[10]\n  dense h(10): f32[3]\n}", 3, 16, "only the input has a type", None),
    ("setting-in-model", "model m {\n  input x: f32[10]\n  epochs = 3\n}", 3, 3, "is a train setting", None),
    ("no-layers", "model m {\n  input x: f32[10]\n}", 1, 1, "has no layers", None),
    # ---- train block
    ("unknown-setting", train(*BASE, "epoch = 10"), 9, 3, "unknown train setting 'epoch'", "did you mean 'epochs'"),
    ("duplicate-setting", train(*BASE, "epochs = 1", "epochs = 2"), 10, 3, "'epochs' is set twice", None),
    ("missing-loss", train("optimizer = sgd"), 6, 1, "needs a 'loss' setting", None),
    ("missing-optimizer", train("loss = mse"), 6, 1, "needs an 'optimizer' setting", None),
    ("layer-in-train", train(*BASE, "dense h(3)"), 9, 3, "expected a setting", "model block"),
    ("unknown-loss", train("loss = sparse_categorical_crosentropy", "optimizer = sgd"), 7, 10,
     "unknown loss", "did you mean 'sparse_categorical_crossentropy'"),
    ("unknown-optimizer", train("loss = mse", "optimizer = adma(lr=0.1)"), 8, 15, "unknown optimizer 'adma'", "did you mean 'adam'"),
    ("lr-zero", train("loss = mse", "optimizer = adam(lr=0)"), 8, 23, "must be > 0", None),
    ("beta-range", train("loss = mse", "optimizer = adam(beta1=1.0)"), 8, 26, "beta1 must be in [0, 1)", None),
    ("unknown-opt-param", train("loss = mse", "optimizer = sgd(lr=0.1, rho=0.9)"), 8, 27, "unknown argument 'rho'", None),
    ("nesterov-no-momentum", train("loss = mse", "optimizer = sgd(nesterov=true)"), 8, 28, "needs momentum > 0", None),
    ("lr-twice", train("loss = mse", "optimizer = sgd(lr=0.1, learning_rate=0.2)"), 8, 27, "'lr' given twice", None),
    ("from-logits-mse", train("loss = mse(from_logits=true)", "optimizer = sgd"), 7, 26, "only applies to cross-entropy", None),
    ("from-logits-softmax", train("loss = sparse_categorical_crossentropy(from_logits=true)", "optimizer = sgd"), 7, 54,
     "already applies softmax", None),
    ("epochs-zero", train(*BASE, "epochs = 0"), 9, 12, "epochs must be an integer >= 1, got 0", None),
    ("epochs-string", train(*BASE, 'epochs = "10"'), 9, 12, "epochs must be an integer, got the string", None),
    ("batch-size-float", train(*BASE, "batch_size = 3.5"), 9, 16, "batch_size must be an integer", None),
    ("unknown-metric", train(*BASE, "metrics = [acuracy]"), 9, 14, "unknown metric 'acuracy'", "did you mean 'accuracy'"),
    ("duplicate-metric", train(*BASE, "metrics = [accuracy, accuracy]"), 9, 24, "listed twice", None),
    ("unknown-data", train(*BASE, "data = cvs(\"a.csv\")"), 9, 10, "unknown data source 'cvs'", "did you mean 'csv'"),
    ("csv-no-target", train(*BASE, 'data = csv("a.csv")'), 9, 10, "needs 'target'", None),
    ("unknown-builtin", train(*BASE, 'data = builtin("mnist")'), 9, 18, "unknown builtin dataset 'mnist'", "digits"),
    ("synthetic-features", train(*BASE, "data = synthetic.classification(samples=10, features=5, classes=2)"),
     9, 56, "makes 5 features but input 'x' has 10", None),
    ("synthetic-missing", train(*BASE, "data = synthetic.regression(samples=10)"), 9, 10, "needs 'features'", None),
    # ---- image data
    ("digits-layout", image_train("4, 16", 'data = builtin("digits")'), 9, 18,
     "builtin digits does not fit input 'x' (f32[4, 16])", "f32[64], f32[8, 8] or f32[8, 8, 1]"),
    ("digits-channels", image_train("8, 8, 3", "data = builtin(digits)"), 9, 18,
     "builtin digits does not fit input 'x' (f32[8, 8, 3])", "f32[8, 8, 1]"),
    ("digits-validation", image_train("8, 8, 2", "validation = builtin(digits)"), 9, 24,
     "builtin digits does not fit", None),
    ("images-width", image_train("16, 12, 1", "data = synthetic.images(100, height=16, width=16)"), 9, 49,
     "synthetic.images makes 16x16x1 images but input 'x' is f32[16, 12, 1]", "expected width=12"),
    ("images-channels-default", image_train("16, 16, 3", "data = synthetic.images(100, 16, 16)"), 9, 10,
     "makes 16x16x1 images but input 'x' is f32[16, 16, 3]", "expected channels=3"),
    ("images-two-wrong", image_train("8, 12", "data = synthetic.images(100, 16, 16, 2)"), 9, 32,
     "makes 16x16x2 images but input 'x' is f32[8, 12]", "expected height=8, width=12, channels=1"),
    ("images-flat-input", train(*BASE, "data = synthetic.images(100, 16, 16)"), 9, 10,
     "makes 16x16x1 images but input 'x' is f32[10]", "follow it with flatten"),
    ("images-too-small", image_train("4, 4, 1", "data = synthetic.images(100, 4, 4)"), 9, 32,
     "height must be an integer in [8,", None),
    ("images-classes", image_train("8, 8, 1", "data = synthetic.images(100, 8, 8, classes=9)"), 9, 46,
     "classes must be an integer in [2, 8]", None),
    ("images-missing-width", image_train("8, 8, 1", "data = synthetic.images(100, 8)"), 9, 10,
     "needs 'width'", None),
    ("split-range", train(*BASE, "validation = split(1.5)"), 9, 22, "validation fraction must be in (0, 1)", None),
    ("split-unknown-key", train(*BASE, "validation = split(0.2, stratfy=true)"), 9, 27, "unknown argument 'stratfy'",
     "did you mean 'stratify'"),
    ("patience-negative", train(*BASE, "early_stopping = { patience: -1 }"), 9, 32, "patience must be an integer >= 0", None),
    ("es-unknown-key", train(*BASE, "early_stopping = { patiense: 3 }"), 9, 22, "unknown early_stopping key 'patiense'",
     "did you mean 'patience'"),
    ("es-duplicate-key", train(*BASE, "early_stopping = { patience: 3, patience: 4 }"), 9, 35, "given twice", None),
    ("monitor-unknown", train(*BASE, "metrics = [accuracy]", "validation = split(0.2)", "early_stopping = { monitor: val_acc }"),
     11, 31, "monitor 'val_acc' is not a logged metric", "loss, accuracy, val_loss, val_accuracy"),
    ("monitor-no-validation", train(*BASE, "early_stopping = { monitor: val_loss }"), 9, 31, "no validation setting", None),
    ("es-not-dict", train(*BASE, "early_stopping = 10"), 9, 20, "early_stopping must be a dict", None),
    ("bad-mode", train(*BASE, "early_stopping = { mode: maximum }"), 9, 28, "unknown mode 'maximum'", "min, max"),
    ("train-with-name", MODEL + "train fast {\n  loss = mse\n  optimizer = sgd\n}\n", 6, 7, "takes no name", None),
    ("seed-negative", train(*BASE, "seed = -1"), 9, 10, "seed must be an integer >= 0", None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_broken_program(case):
    name, src, line, col, phrase, hint = case
    with pytest.raises(CompileError) as ei:
        parse_source(src, filename="bad.nn")
    e = ei.value
    text = str(e)
    assert phrase in e.message, text
    assert (e.line, e.column) == (line, col), text
    assert e.loc.file == "bad.nn"
    if hint is not None:
        assert e.hint and hint in e.hint, text
    # the rendered error shows file:line:col, the offending line and a caret under the column
    lines = text.splitlines()
    assert lines[0].startswith(f"bad.nn:{line}:{col}: error: ")
    src_line = src.replace("\r\n", "\n").split("\n")[line - 1]
    assert len(src_line) <= 200    # shown whole (longer lines show a window: test_language_fuzz)
    assert lines[1].endswith(src_line.expandtabs(1))
    caret_line = lines[2]
    assert caret_line.split("|", 1)[1][col] == "^", text   # "| " + (col-1) spaces + "^"


def test_catalogue_is_big_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize("src,message", [("", "the file is empty"), ("   \n\n", "the file is empty"),
                                         ("# just a comment\n", "no model block in the file")])
def test_empty_and_comment_only(src, message):
    with pytest.raises(CompileError) as ei:
        parse_source(src, "e.nn")
    assert ei.value.message == message
    assert (ei.value.line, ei.value.column) == (1, 1)


def test_too_large():
    with pytest.raises(CompileError, match="too large"):
        parse_source("#" * 2_000_001)


def test_not_a_string():
    with pytest.raises(CompileError):
        parse_source(b"model m {}")  # type: ignore[arg-type]


def test_nul_byte():
    with pytest.raises(CompileError, match="NUL") as ei:
        parse_source(MODEL.replace("relu", "re\0lu"))
    assert (ei.value.line, ei.value.column) == (3, 17)
