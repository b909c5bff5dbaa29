"""The three shipped examples parse, with every default filled in."""
import os
from pathlib import Path

import pytest

from nncompile.errors import CompileError, SourceLoc
from nncompile.frontend import parse_file, parse_source
from nncompile.frontend.ast import Program

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
NO_CLIP = {"clipnorm": None, "global_clipnorm": None, "clipvalue": None}   # every optimizer's clipping: off


def test_textbook_classifier():
    p = parse_file(EX / "textbook_classifier.nn")
    assert isinstance(p, Program)
    m = p.model
    assert m.name == "classifier"
    assert (m.input.name, m.input.dtype, m.input.shape) == ("x", "f32", (10,))
    assert [(l.kind, l.name) for l in m.layers] == [("dense", "hidden"), ("dense", "outputs")]
    assert m.layers[0].args == {"units": 10, "activation": "relu", "use_bias": True, "l1": 0.0,
                                "l2": 0.0, "init": "glorot_uniform", "bias_init": "zeros"}
    assert m.layers[1].args["activation"] == "softmax"
    t = p.train
    assert t.data.kind == "synthetic.classification"
    assert t.data.args == {"samples": 1000, "features": 10, "classes": 2, "seed": 0}
    assert (t.loss.name, t.loss.from_logits) == ("sparse_categorical_crossentropy", False)
    assert t.optimizer.name == "adam"
    assert t.optimizer.params == {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, **NO_CLIP}
    assert t.metrics == ("accuracy",)
    assert (t.epochs, t.batch_size, t.log_every, t.seed) == (1000, 32, 100, 0)
    v = t.validation
    assert (v.fraction, v.seed, v.stratify, v.shuffle, v.data) == (0.2, 0, False, True, None)
    assert t.early_stopping is None
    # locations
    assert m.layers[0].loc.line == 5 and m.layers[0].loc.column == 3
    assert m.layers[0].arg_locs["activation"].column == 21
    assert t.setting_locs["epochs"].line == 14
    assert p.filename.endswith("textbook_classifier.nn")


def test_textbook_regression_resolves_csv_path():
    p = parse_file(EX / "textbook_regression.nn")
    assert p.model.layers[1].args["activation"] == "linear"
    assert p.model.layers[1].args["units"] == 2
    t = p.train
    assert (t.loss.name, t.optimizer.name) == ("mse", "sgd")
    assert t.optimizer.params == {"lr": 0.01, "momentum": 0.0, "nesterov": False, **NO_CLIP}
    assert t.data.kind == "csv"
    assert t.data.args == {"path": str(EX / "data" / "regression.csv"), "target": ["y0", "y1"],
                           "features": None, "header": True}
    assert os.path.isabs(t.data.args["path"])
    assert (t.epochs, t.log_every, t.batch_size, t.metrics, t.validation) == (1000, 100, 32, (), None)


def test_digits():
    p = parse_file(str(EX / "digits.nn"))
    m = p.model
    assert m.input.shape == (64,)
    assert [(l.kind, l.name) for l in m.layers] == [
        ("dense", "h1"), ("batchnorm", "bn1"), ("dropout", "drop1"), ("dense", "h2"), ("dense", "out")]
    assert m.layers[0].args["l2"] == 1e-4 and m.layers[0].args["l1"] == 0.0
    assert m.layers[1].args == {"momentum": 0.99, "epsilon": 1e-3}
    assert m.layers[2].args == {"rate": 0.2}
    assert m.layers[3].args["l1"] == 1e-5
    t = p.train
    assert t.data.kind == "builtin" and t.data.args == {"name": "digits"}
    assert (t.epochs, t.batch_size, t.seed, t.log_every) == (200, 64, 42, 1)
    v = t.validation
    assert (v.fraction, v.seed, v.stratify, v.shuffle) == (0.2, 1, True, True)
    es = t.early_stopping
    assert (es.monitor, es.mode, es.patience, es.min_delta, es.restore_best, es.start_from_epoch) == \
        ("val_loss", "min", 10, 1e-4, True, 0)


MINIMAL = """model m {
  input x: f32[4]
  dense out(1)
}
"""


def test_no_train_block():
    p = parse_source(MINIMAL)
    assert p.train is None
    assert p.model.layers[0].args["activation"] == "linear"
    assert p.filename == "<string>"


def test_auto_names_and_aliases():
    p = parse_source("""model m {
  input x: f32[8, 2]
  flatten
  dense(16, none, use_bias=false, init=he_normal)
  dense dense_1(4)
  dense(units=3, activation="relu")
  dropout(0.5)
  activation(tanh)
  layernorm
  batchnorm(0.9, eps=1e-5)
}""")
    names = [l.name for l in p.model.layers]
    assert names == ["flatten_1", "dense_2", "dense_1", "dense_3", "dropout_1", "activation_1",
                     "layernorm_1", "batchnorm_1"]
    d = p.model.layers[1].args
    assert (d["activation"], d["use_bias"], d["init"]) == ("linear", False, "he_normal")
    assert p.model.layers[3].args["activation"] == "relu"
    assert p.model.layers[5].args == {"fn": "tanh"}
    assert p.model.layers[6].args == {"epsilon": 1e-3}
    assert p.model.layers[7].args == {"momentum": 0.9, "epsilon": 1e-5}
    assert p.model.input.shape == (8, 2)


def test_train_variants_and_defaults(tmp_path):
    p = parse_source(MINIMAL + """
train {
  data = npz("d/train.npz")
  loss = binary_crossentropy(from_logits=true)
  optimizer = sgd(learning_rate=0.1, momentum=0.9, nesterov=true)
  validation = csv("val.csv", target="label", features=["a", "b"], header=false)
  early_stopping = {}
}
""", filename="t.nn", base_dir=str(tmp_path))
    t = p.train
    assert t.data.args == {"path": str(tmp_path / "d" / "train.npz"), "x": "x", "y": "y"}
    assert t.loss.from_logits is True
    assert t.optimizer.params == {"lr": 0.1, "momentum": 0.9, "nesterov": True, **NO_CLIP}
    v = t.validation
    assert v.fraction is None and v.data.kind == "csv"
    assert v.data.args == {"path": str(tmp_path / "val.csv"), "target": ["label"],
                           "features": ["a", "b"], "header": False}
    es = t.early_stopping
    assert (es.monitor, es.mode, es.patience, es.min_delta, es.restore_best) == ("val_loss", "min", 0, 0.0, True)
    assert (t.epochs, t.batch_size, t.log_every, t.seed, t.metrics) == (1, 32, 1, 0, ())


def test_optimizer_defaults_and_modes():
    for opt, params in [("adamw", {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "weight_decay": 0.004}),
                        ("rmsprop", {"lr": 0.001, "rho": 0.9, "momentum": 0.0, "eps": 1e-7}),
                        ("sgd", {"lr": 0.01, "momentum": 0.0, "nesterov": False}),
                        ("adam(0.01, beta_1=0.8, epsilon=1e-8)", {"lr": 0.01, "beta1": 0.8, "beta2": 0.999, "eps": 1e-8})]:
        p = parse_source(MINIMAL + f"train {{\n loss = mse\n optimizer = {opt}\n}}\n")
        assert p.train.optimizer.params == {**params, **NO_CLIP}, opt
    p = parse_source(MINIMAL + """train {
  loss = mse
  optimizer = adam
  metrics = [accuracy, mae]
  early_stopping = { monitor: accuracy, start_from_epoch: 3, restore_best_weights: false }
}""")
    es = p.train.early_stopping
    assert (es.monitor, es.mode, es.restore_best, es.start_from_epoch) == ("accuracy", "max", False, 3)
    assert p.train.early_stopping.loc.line == 9


def test_syntax_freedom():
    """Comments, blank lines, CRLF, trailing commas, one-line blocks, multi-line values."""
    src = ("# header\r\nmodel m { input x: f32[3,]\r\n\r\n  dense(2, relu,)  # trailing\r\n"
           "  dense o(1) }\r\ntrain {\n  early_stopping = {\n    monitor: \"loss\",\n    patience: 3,\n  }\n"
           "  loss = 'mse'\n  optimizer = sgd(\n    lr = 5e-1,\n  )\n  epochs = +3\n}\n")
    p = parse_source(src)
    assert p.model.input.shape == (3,)
    assert p.train.loss.name == "mse" and p.train.optimizer.params["lr"] == 0.5
    assert p.train.early_stopping.monitor == "loss" and p.train.early_stopping.patience == 3
    assert p.train.epochs == 3
    assert "\r" not in p.source


def test_string_escapes(tmp_path):
    p = parse_source(MINIMAL + 'train {\n loss = mse\n optimizer = sgd\n data = npz("a\\u00e9\\tb.npz", x="in\\"x")\n}',
                     base_dir=str(tmp_path))
    assert p.train.data.args["path"] == str(tmp_path / "a\u00e9\tb.npz")
    assert p.train.data.args["x"] == 'in"x'


def test_parse_file_errors(tmp_path):
    with pytest.raises(CompileError, match="no such file"):
        parse_file(tmp_path / "missing.nn")
    empty = tmp_path / "empty.nn"
    empty.write_text("  \n")
    with pytest.raises(CompileError, match="empty"):
        parse_file(empty)
    bad = tmp_path / "bad.nn"
    bad.write_bytes(b"model m {\n  input x: f32[4]\xff\n}")
    with pytest.raises(CompileError, match="not valid UTF-8") as ei:
        parse_file(bad)
    assert ei.value.line == 2
    with pytest.raises(CompileError, match="directory"):
        parse_file(tmp_path)
    bom = tmp_path / "bom.nn"
    bom.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert parse_file(bom).model.name == "m"


def test_locations_are_sourcelocs():
    p = parse_source(MINIMAL, filename="x.nn")
    loc = p.model.layers[0].loc
    assert isinstance(loc, SourceLoc) and loc.file == "x.nn" and (loc.line, loc.column) == (3, 3)
