"""Issue 10's "messages" and "what users expect" items, one regression test each:
the message a user gets for a classic mistake, and the Keras behaviour they expect."""
import argparse
import math

import numpy as np
import pytest

import nncompile
from extras import needs_torch, torch
from nncompile import cli
from nncompile.errors import CompileError, DataError
from nncompile.frontend import parse_source
from nncompile.runtime.data import Dataset, _load_csv
from nncompile.runtime.preflight import preflight


def load_csv(path, target):
    return _load_csv({"path": path, "header": True, "target": target, "features": None}, None, None, None)

MODEL = "model m {\n  input x: f32[4]\n  dense o(2, softmax)\n}\n"


def _err(src: str) -> CompileError:
    with pytest.raises(CompileError) as e:
        nncompile.Program(parse_source(src, "model.nn"))
    return e.value


# ------------------------------------------------------------------ the language

def test_a_colon_setting_says_key_equals_value():
    e = _err("train {\n  loss = mse\n  epochs: 3\n}\n" + MODEL)
    assert "settings are written 'key = value', not 'key: value'" in e.message
    assert e.loc.line == 3 and e.hint == "did you mean 'epochs = 3'?"


def test_a_missing_closing_brace_names_the_block_and_its_line():
    e = _err("train {\n  loss = mse\n  optimizer = adam\n\n" + MODEL)
    assert e.message == "the 'train' block opened on line 1 is not closed"
    assert e.loc.line == 5 and e.hint == "add '}' before line 5"


@pytest.mark.parametrize("setting, other, ours", [
    ("loss = mean_squared_error", "mean_squared_error", "mse"),
    ("loss = mean_absolute_error", "mean_absolute_error", "mae"),
    ("metrics = [acc]", "acc", "accuracy"),
])
def test_keras_names_get_did_you_mean(setting, other, ours):
    e = _err(f"train {{\n  loss = sparse_categorical_crossentropy\n  optimizer = adam\n  {setting}\n}}\n" + MODEL
             if not setting.startswith("loss") else f"train {{\n  {setting}\n  optimizer = adam\n}}\n" + MODEL)
    assert f"did you mean '{ours}'? ('{other}' is another name for it)" in e.hint


def test_xavier_is_glorot():
    e = _err("train {\n  loss = mse\n  optimizer = adam\n}\nmodel m {\n  input x: f32[4]\n"
             "  dense o(1, init=xavier)\n}\n")
    assert "did you mean 'glorot_uniform'?" in e.hint


# ------------------------------------------------------------------ data files

def test_a_semicolon_csv_gets_a_separator_hint(tmp_path):
    p = tmp_path / "semi.csv"
    p.write_text("a;b;c;d;label\n1;2;3;4;0\n")
    with pytest.raises(DataError) as e:
        load_csv(str(p), target=["label"])
    assert "separated by ';'" in e.value.hint


def test_a_headerless_csv_gets_the_header_hint(tmp_path):
    p = tmp_path / "nohead.csv"
    p.write_text("1,2,3,4,0\n2,1,0,3,1\n")
    with pytest.raises(DataError) as e:
        load_csv(str(p), target=["label"])
    assert "set header=false" in e.value.hint


def test_label_errors_name_the_file_row_counting_the_header_and_blank_lines(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("a,b,c,d,label\n1,2,3,4,0\n2,1,0,3,1\n\n3,3,3,3,5\n")
    prog = nncompile.Program(parse_source(
        "train {\n  loss = sparse_categorical_crossentropy\n  optimizer = adam\n}\n" + MODEL, "model.nn"))
    ds = load_csv(str(p), target=["label"])
    with pytest.raises(DataError, match=r"d.csv: row 5 has label 5"):
        preflight(prog, ds)
    # arrays without a file: the 0-based sample index
    with pytest.raises(DataError, match=r"sample 2 has label 5"):
        preflight(prog, Dataset(ds.x, ds.y, "arrays"))


def test_the_memory_limit_counts_every_tensor_of_the_layer(monkeypatch):
    import nncompile.errors as errors
    monkeypatch.setattr(errors, "physical_memory", lambda: 1000)
    prog = nncompile.Program(parse_source("train {\n  loss = mse\n  optimizer = adam\n}\nmodel m {\n"
                                          "  input x: f32[10]\n  dense h(20)\n  dense o(1)\n}\n", "model.nn"))
    with pytest.raises(CompileError) as info:
        prog.init_params()
    e = info.value
    assert "layer 'h' alone has 220 parameters" in e.message    # 10*20 weights + 20 biases


# ------------------------------------------------------------------ pre-flight warnings

def _program(train, out):
    return nncompile.Program(parse_source(f"train {{\n{train}}}\nmodel m {{\n  input x: f32[4]\n  {out}\n}}\n",
                                          "model.nn"))


def test_softmax_on_one_unit_warns():
    p = _program("  loss = mse\n  optimizer = adam\n", "dense o(1, softmax)")
    ws = preflight(p, Dataset(np.zeros((4, 4), np.float32), np.zeros((4, 1), np.float32), "d"))
    assert any("softmax over a single unit" in w.message and w.loc.line == 7 for w in ws)


def test_accuracy_on_a_regression_loss_warns():
    p = _program("  loss = mse\n  optimizer = adam\n  metrics = [accuracy]\n", "dense o(1)")
    ws = preflight(p, Dataset(np.zeros((4, 4), np.float32), np.zeros((4, 1), np.float32), "d"))
    assert [w.loc.line for w in ws if "accuracy with the regression loss mse" in w.message] == [4]
    p = _program("  loss = mse\n  optimizer = adam\n", "dense o(1)")
    assert preflight(p, Dataset(np.zeros((4, 4), np.float32), np.zeros((4, 1), np.float32), "d")) == []


# ------------------------------------------------------------------ activations as Keras

def _act_program(act):
    return nncompile.Program(parse_source(
        f"train {{\n  loss = mse\n  optimizer = sgd\n}}\nmodel m {{\n  input x: f32[5]\n  activation a({act})\n}}\n",
        "model.nn"), float_dtype="f64")


@needs_torch
@pytest.mark.parametrize("act, ref", [
    ("gelu", lambda t: torch.nn.functional.gelu(t)),
    ("gelu(approximate=true)", lambda t: torch.nn.functional.gelu(t, approximate="tanh")),
    ("leaky_relu", lambda t: torch.nn.functional.leaky_relu(t, 0.2)),
    ("leaky_relu(0.05)", lambda t: torch.nn.functional.leaky_relu(t, 0.05)),
    ("leaky_relu(negative_slope=0.3)", lambda t: torch.nn.functional.leaky_relu(t, 0.3)),
])
def test_gelu_is_exact_by_default_and_leaky_relu_takes_its_slope(act, ref):
    x = np.linspace(-4, 4, 40).reshape(8, 5)
    out = _act_program(act).predict({}, x)
    np.testing.assert_allclose(out, ref(torch.tensor(x)).numpy(), rtol=1e-12, atol=1e-14)


def test_exact_and_approximate_gelu_differ():
    x = np.linspace(-4, 4, 40).reshape(8, 5)
    a, b = _act_program("gelu").predict({}, x), _act_program("gelu(approximate=true)").predict({}, x)
    assert 1e-5 < np.abs(a - b).max() < 1e-2
    exact = np.array([[v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in row] for row in x])
    np.testing.assert_allclose(a, exact, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ the command line

def _actions(p, path=()):
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sp in a.choices.items():
                yield from _actions(sp, path + (name,))
        else:
            yield path, a


def test_every_option_of_every_command_has_help_text():
    missing = [(path, a.option_strings or a.dest) for path, a in _actions(cli._parser())
               if a.dest != "help" and not (a.help and a.help.strip())]
    assert not missing


def test_one_epoch_is_singular(tmp_path, capsys):
    f = tmp_path / "m.nn"
    f.write_text("train {\n  data = synthetic.regression(samples=16, features=4)\n  loss = mse\n"
                 "  optimizer = adam\n  epochs = 1\n}\nmodel m {\n  input x: f32[4]\n  dense o(1)\n}\n")
    assert cli.main(["run", str(f), "--no-record", "--quiet"]) == 0
    assert "Finished 1 epoch " in capsys.readouterr().out
