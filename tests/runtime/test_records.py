"""Run records, weights files and progress output. The curves.png plot needs
matplotlib (the [plots] extra): its test skips without it, and a run without it
says so instead of writing the plot."""
import io
import json
import os
import re
import sys
import zipfile

import numpy as np
import pytest

import nncompile
from nncompile import cli
from nncompile.errors import WeightsError
from nncompile.runtime.loop import fit
from nncompile.runtime.progress import make_progress
from nncompile.runtime.weights import load_weights, save_weights, write_atomic

SRC = """model m {
  input x: f32[4]
  dense h(6, relu)
  batchnorm bn
  dense o(3, softmax)
}
train {
  data = synthetic.classification(samples=80, features=4, classes=3, seed=1)
  loss = sparse_categorical_crossentropy
  optimizer = adam
  metrics = [accuracy]
  epochs = 5
  validation = split(0.25)
  early_stopping = { monitor: val_loss, patience: 10 }
  log_every = 2
}
"""


@pytest.fixture
def run_dir(tmp_path):
    f = tmp_path / "m.nn"
    f.write_text(SRC)
    assert cli.main(["run", str(f), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    return tmp_path / "run"


def test_run_folder_layout(run_dir):
    names = sorted(os.listdir(run_dir))
    assert names == [".nncompile-files.json", "checkpoint.npz", "curves.svg", "history.csv", "m.nn",
                     "settings.json", "weights_best.npz", "weights_final.npz"]
    # the manifest lists exactly the files the run created (no lock left behind)
    assert json.loads((run_dir / ".nncompile-files.json").read_text())["files"] == names[1:]
    assert (run_dir / "m.nn").read_text() == SRC
    doc = json.loads((run_dir / "settings.json").read_text())
    assert doc["seed"] == 0 and set(doc["versions"]) == {"nncompile", "numpy", "python", "platform"}
    t = doc["settings"]["train"]
    # every default explicit
    assert t["optimizer"] == {"name": "adam", "params": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-07,
                                                         "clipnorm": None, "global_clipnorm": None, "clipvalue": None}}
    assert t["batch_size"] == 32 and t["epochs"] == 5 and t["early_stopping"]["mode"] == "min"
    assert t["validation"]["fraction"] == 0.25 and "loc" not in t
    layers = doc["settings"]["model"]["layers"]
    assert layers[1]["kind"] == "batchnorm" and layers[1]["args"]["momentum"] == 0.99
    lines = (run_dir / "history.csv").read_text().splitlines()
    assert lines[0] == "epoch,loss,accuracy,val_loss,val_accuracy" and len(lines) == 6
    svg = (run_dir / "curves.svg").read_text()
    assert svg.startswith("<?xml") and 'id="panel-loss"' in svg and 'id="panel-accuracy"' in svg
    # plain arrays, no pickle; the format marker and the tensor names and shapes
    with np.load(run_dir / "weights_final.npz", allow_pickle=False) as z:
        assert z["h.weight"].shape == (4, 6) and "bn.moving_mean" in z.files
        meta = json.loads(bytes(z["__meta__"]))
    assert meta["format"] == "nncompile" and meta["version"] == 1 and meta["kind"] == "weights"
    assert meta["tensors"]["o.weight"] == [6, 3]


def test_no_record_and_default_folder(tmp_path, monkeypatch, capsys):
    f = tmp_path / "m.nn"
    f.write_text(SRC)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", str(f), "--no-record", "--quiet"]) == 0
    assert not (tmp_path / "runs").exists()
    assert cli.main(["run", str(f), "--quiet", "--epochs", "1"]) == 0
    assert cli.main(["run", str(f), "--quiet", "--epochs", "1"]) == 0
    runs = sorted(os.listdir(tmp_path / "runs"))
    assert len(runs) == 2 and all(re.fullmatch(r"m-\d{8}-\d{6}(-\d+)?", r) for r in runs)
    assert "run saved to runs/m-" in capsys.readouterr().err
    # --out on a folder that already holds a run is refused
    assert cli.main(["run", str(f), "--quiet", "--out", f"runs/{runs[0]}"]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_weights_for_another_model_are_refused(run_dir):
    other = nncompile.compile(SRC.replace("dense h(6, relu)", "dense h(5, relu)"))
    with pytest.raises(WeightsError) as e:
        load_weights(str(run_dir), other)
    msg = str(e.value)
    assert "weights_final.npz" in msg and "h.weight: shape (4, 6) in the file, (4, 5) in the model" in msg
    same = nncompile.compile(SRC)
    w = load_weights(str(run_dir / "weights_best.npz"), same)
    assert set(w) == set(same.init_params()) | {"bn.moving_mean", "bn.moving_variance"}


@pytest.mark.parametrize("damage", ["truncate", "garbage", "pickle", "no_marker"])
def test_damaged_weights_are_a_weights_error_naming_the_file(run_dir, damage):
    p = run_dir / "weights_final.npz"
    if damage == "truncate":
        p.write_bytes(p.read_bytes()[:300])
    elif damage == "garbage":
        data = bytearray(p.read_bytes())
        data[200:260] = b"\x00" * 60
        p.write_bytes(bytes(data))
    elif damage == "pickle":
        np.savez(p, **{"__meta__": np.array([{"a": 1}], dtype=object)})
    else:
        np.savez(p, x=np.zeros(3))
    with pytest.raises(WeightsError, match=re.escape(str(p))):
        load_weights(str(p), nncompile.compile(SRC))


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    p = tmp_path / "w.npz"
    prog = nncompile.compile(SRC)
    params = {**prog.init_params(0), **prog.init_state()}
    save_weights(str(p), prog, params)
    before = p.read_bytes()

    def dies(f):
        f.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(str(p), dies)
    assert p.read_bytes() == before and os.listdir(tmp_path) == ["w.npz"]


def test_plain_progress_honours_log_every_in_the_chapters_format():
    """A pipe or a log file gets the chapter's line every log_every epochs (and the
    last); --verbose (verbose=2) every epoch; never control characters."""
    prog = nncompile.compile(SRC)
    for verbose, want in ((None, ["0", "2", "4"]), (2, ["0", "1", "2", "3", "4"])):
        buf = io.StringIO()
        fit(prog, out=buf, verbose=verbose)
        text = buf.getvalue()
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text)     # no \r, no escape codes
        lines = [l for l in text.splitlines() if l.lower().startswith("epoch")]
        assert [l.split()[1] for l in lines] == want and all(l.startswith("Epoch: ") for l in lines)


def test_the_live_bar_keeps_bar_counts_and_eta_at_80_columns():
    pytest.importorskip("rich")
    from nncompile.runtime.progress import RichProgress
    buf = io.StringIO()
    p = RichProgress(buf, force_terminal=True, width=80)
    p.start(200, 23, 37)
    p.progress.update(p._epoch_task, info="loss 0.123456 accuracy 0.987654 val_loss 0.23456 val_accuracy 0.95432")
    p.progress.stop()
    p.console.print(p.progress.get_renderable())
    plain = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", l) for l in buf.getvalue().splitlines()]
    line = [l for l in plain if l.startswith("epochs")][-1]
    assert "37/200" in line and "━" in line and "-:--:--" in line and line.endswith("…")
    assert len(line) <= 80


def test_rich_progress_on_a_terminal_and_quiet():
    # rich is a dependency (the progress bar), so this never skips
    prog = nncompile.compile(SRC)
    buf = io.StringIO()
    fit(prog, progress=make_progress(buf, tty=True))
    text = buf.getvalue()
    assert "Epoch: 0 Loss: " in text and "Epoch: 4 Loss: " in text and "\x1b[" in text
    buf = io.StringIO()
    fit(prog, out=buf, quiet=True)
    assert buf.getvalue() == ""
