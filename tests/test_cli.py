"""The command line, end to end, as a user runs it."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from extras import needs_triton

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"


def nnc(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "NNCOMPILE_DEBUG"}
    return subprocess.run([sys.executable, "-m", "nncompile", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, env=env, timeout=300)


def test_textbook_classifier_prints_the_chapter_format():
    r = nnc("run", EX / "textbook_classifier.nn", "--epochs", "201")
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.startswith("Epoch:")]
    assert [l.split()[1] for l in lines] == ["0", "100", "200"]
    assert re.match(r"Epoch: 0 Loss: \d+\.\d+ accuracy: ", lines[0])
    final_acc = float(re.search(r" val_accuracy: ([\d.]+)", lines[-1]).group(1))
    assert final_acc > 0.8


def test_textbook_regression_loss_goes_down():
    r = nnc("run", EX / "textbook_regression.nn", "--epochs", "300")
    assert r.returncode == 0, r.stderr
    losses = [float(m) for m in re.findall(r"^Epoch: \d+ Loss: ([\d.e+-]+)", r.stdout, re.M)]
    assert len(losses) >= 3 and losses[-1] < 0.2 * losses[0]


def test_digits_reaches_95_percent_validation_accuracy():
    r = nnc("run", EX / "digits.nn")
    assert r.returncode == 0, r.stderr
    final = r.stdout.strip().splitlines()[-1]
    acc = float(re.search(r"val_accuracy: ([\d.]+)", final).group(1))
    assert acc >= 0.95, r.stdout


def test_digits_cnn_reaches_98_5_percent_validation_accuracy():
    r = nnc("run", EX / "digits_cnn.nn", "--no-record")
    assert r.returncode == 0, r.stderr
    final = r.stdout.strip().splitlines()[-1]
    acc = float(re.search(r"val_accuracy: ([\d.]+)", final).group(1))
    assert acc >= 0.985, r.stdout


def test_seed_override_is_reproducible_and_matters():
    a = nnc("run", EX / "textbook_classifier.nn", "--epochs", "2", "--seed", "1").stdout
    b = nnc("run", EX / "textbook_classifier.nn", "--epochs", "2", "--seed", "1").stdout
    c = nnc("run", EX / "textbook_classifier.nn", "--epochs", "2", "--seed", "2").stdout
    strip = lambda s: re.sub(r"\(\d+\.\d s\)", "", s)
    assert strip(a) == strip(b) and strip(a) != strip(c)


def test_summary_is_a_keras_style_table():
    r = nnc("summary", EX / "digits.nn")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "h1 (dense, relu)" in out and "(None, 128)" in out
    # 64*128+128 + bn 4*128 + 128*64+64 + 64*10+10
    assert "Total params: 17,738" in out
    assert "Trainable params: 17,482" in out and "Non-trainable params: 256" in out


def test_check_and_dump_stages():
    assert "ok" in nnc("check", EX / "digits.nn").stdout
    ir = nnc("dump", EX / "digits.nn", "--stage", "ir").stdout
    assert re.search(r"%\d+: f32\[B,128\] = matmul", ir) and "digits.nn:3" in ir
    train = nnc("dump", EX / "digits.nn", "--stage", "train").stdout
    assert "softmax_xent_grad" in train and "dropout_mask" in train
    code = nnc("dump", EX / "digits.nn", "--stage", "code").stdout
    assert "def run(" in code and "np.matmul(" in code and "out=" in code
    ast = nnc("dump", EX / "digits.nn", "--stage", "ast").stdout
    assert "Layer(kind='batchnorm'" in ast


def test_dump_after_every_pass():
    r = nnc("dump", EX / "textbook_classifier.nn", "--after", "all")
    assert r.returncode == 0, r.stderr
    for p in ("fuse_softmax_xent", "autodiff", "optimizer", "simplify", "cse", "dce", "plan_memory"):
        assert f"after pass '{p}'" in r.stdout
    r = nnc("dump", EX / "digits.nn", "--after", "all", "--graph", "train_step")
    assert re.search(r"// memory plan at batch 64: \d+ values in \d+ buffers, [\d,]+ bytes -> [\d,]+ bytes", r.stdout)
    assert "// refused: " in r.stdout  # fusions that were refused say why
    r = nnc("dump", EX / "textbook_classifier.nn", "--after", "autodif")
    assert r.returncode == 2 and "did you mean 'autodiff'" in r.stderr


@pytest.mark.parametrize("text,where,phrase", [
    ("model m {\n  input x: f32[4]\n  dense h(3, rleu)\n}\n", ":3:14:", "did you mean 'relu'"),
    ("model m {\n  input x: f32[4]\n  dense h(3)\n}\ntrain {\n  loss = mse\n  optimizer = sgd\n  epoch = 3\n}\n",
     ":8:3:", "epochs"),
    ("model m {\n  input x: f32[4]\n  dropout d(1.5)\n}\n", ":3:13:", "dropout"),
    ("model m {\n  input x: f32[4]\n  dense h(3\n}\n", ":4:1:", "expected"),
])
def test_mistakes_exit_2_with_location_and_caret_never_a_traceback(tmp_path, text, where, phrase):
    f = tmp_path / "bad.nn"
    f.write_text(text)
    r = nnc("run", f)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert f"bad.nn{where}" in r.stderr and phrase in r.stderr
    assert "^" in r.stderr


def test_missing_file_and_bad_data_are_clear_errors(tmp_path):
    r = nnc("run", tmp_path / "nope.nn")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    f = tmp_path / "m.nn"
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,0\n3,x,1\n")
    f.write_text('model m {\n  input x: f32[2]\n  dense o(2, softmax)\n}\ntrain {\n'
                 '  data = csv("d.csv", target=["y"])\n  loss = sparse_categorical_crossentropy\n'
                 '  optimizer = adam\n}\n')
    r = nnc("run", f)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "d.csv" in r.stderr and "row 3" in r.stderr and "'b'" in r.stderr


def test_labels_outside_the_output_units_are_refused(tmp_path):
    (tmp_path / "d.csv").write_text("a,y\n1,0\n2,5\n")
    f = tmp_path / "m.nn"
    f.write_text('model m {\n  input x: f32[1]\n  dense o(2, softmax)\n}\ntrain {\n'
                 '  data = csv("d.csv", target=["y"])\n  loss = sparse_categorical_crossentropy\n'
                 '  optimizer = adam\n}\n')
    r = nnc("run", f)
    assert r.returncode == 2 and "label 5" in r.stderr and "2 output units" in r.stderr


def test_python_api_matches_the_documented_names():
    import numpy as np
    import nncompile
    prog = nncompile.compile(str(EX / "digits.nn"))
    params = prog.init_params(seed=0)
    assert params["h1.weight"].shape == (64, 128) and params["bn1.gamma"].shape == (128,)
    x = np.random.default_rng(0).random((5, 64), dtype=np.float32)
    y = np.array([0, 1, 2, 3, 4])
    loss, grads = prog.loss_and_grads(params, x, y)
    assert set(grads) == set(params) and np.isfinite(loss)
    assert prog.predict(params, x).shape == (5, 10)
    tr = prog.trainer(seed=0)
    l0 = tr.step(x, y)
    for _ in range(20):
        l1 = tr.step(x, y)
    assert l1 < l0 and set(tr.params) == set(params)
    hist = prog.fit(epochs=2, quiet=True)
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(hist.history["loss"]) == 2
    with pytest.raises(nncompile.CompileError) as e:
        nncompile.compile("model m {\n  input x: f32[2]\n  dense o(2, softmx)\n}\n")
    assert (e.value.line, e.value.column) == (3, 14)


def test_graph_pictures_without_graphviz(tmp_path):
    r = nnc("graph", EX / "digits.nn", "-o", tmp_path / "g.svg")
    assert r.returncode == 0, r.stderr
    svg = (tmp_path / "g.svg").read_text()
    assert svg.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" ')
    assert "h1" in svg and "batchnorm" in svg and "digits.nn" in svg
    r = nnc("graph", EX / "digits.nn", "-o", tmp_path / "k.html", "--kernels")
    assert r.returncode == 0, r.stderr
    assert "<html" in (tmp_path / "k.html").read_text().lower()


@needs_triton
def test_check_backend_compares_numpy_and_triton():
    r = nnc("run", EX / "textbook_classifier.nn", "--check-backend")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "backends agree" in r.stdout and "loss_and_grads: d hidden.weight" in r.stdout


def test_summary_counts_frozen_layers_as_non_trainable(tmp_path):
    f = tmp_path / "m.nn"
    f.write_text("model m {\n  input x: f32[4]\n  dense h(8, relu, frozen=true)\n  dense o(2, softmax)\n}\n")
    out = nnc("summary", f).stdout
    assert "h (dense, relu, frozen)" in out
    assert "Trainable params: 18" in out and "Non-trainable params: 40" in out


@needs_triton
def test_dump_triton_kernels_without_a_gpu():
    r = nnc("dump", EX / "digits.nn", "--backend", "triton", "--stage", "kernels")
    assert r.returncode == 0, r.stderr
    assert "@triton.jit" in r.stdout and "tl.load" in r.stdout and "digits.nn" in r.stdout


HIDE_TRITON = ("import sys; sys.modules['torch'] = None; sys.modules['triton'] = None; "
               "from nncompile.cli import main; sys.exit(main(sys.argv[1:]))")


@pytest.mark.parametrize("args", [["run", "--backend", "triton", "--no-record", "--epochs", "1"],
                                  ["dump", "--backend", "triton", "--stage", "code"]], ids=["run", "dump"])
def test_triton_backend_on_a_cpu_only_install_says_what_to_install(args):
    """Without torch and triton (hidden here, so this runs on every install) the
    triton backend is a clear error (exit 2), not an internal compiler error."""
    env = {k: v for k, v in os.environ.items() if k != "NNCOMPILE_DEBUG"}
    r = subprocess.run([sys.executable, "-c", HIDE_TRITON, args[0], str(EX / "textbook_classifier.nn"), *args[1:]],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "error: the triton backend needs torch and triton, and torch is not installed" in r.stderr
    assert "pip install 'nncompile[triton]'" in r.stderr
    assert "internal compiler error" not in r.stderr and "Traceback" not in r.stderr


def test_precision_on_the_command_line():
    r = nnc("dump", EX / "textbook_classifier.nn", "--stage", "train", "--precision", "mixed_bfloat16")
    assert r.returncode == 0, r.stderr
    assert 'round_to' in r.stdout and 'precision="bf16"' in r.stdout
    assert "round_to" not in nnc("dump", EX / "textbook_classifier.nn", "--stage", "train").stdout
    r = nnc("run", EX / "textbook_classifier.nn", "--epochs", "1", "--precision", "bf16")
    assert r.returncode == 2 and "unknown precision 'bf16'" in r.stderr and "mixed_bf16" in r.stderr
    assert "Traceback" not in r.stderr
