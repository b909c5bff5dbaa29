"""Schedules, augmentation, transfer learning, frozen layers and pre-flight
warnings, through the real fit loop (and the CLI where a user meets them)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import nncompile
from nncompile.runtime.checkpoint import load_checkpoint
from nncompile.runtime.loop import TrainingInterrupted, fit
from nncompile.runtime.records import RunRecord

BASE = """model m {{
  input x: f32[6]
  dense h(12, relu{hopts})
  dense o(3, softmax)
}}
train {{
  data = synthetic.classification(samples=96, features=6, classes=3, seed=1)
  loss = sparse_categorical_crossentropy
  optimizer = {opt}
  epochs = {epochs}
  batch_size = 16
  validation = split(0.25)
  {extra}
}}
"""


def src(hopts="", extra="", epochs=6, opt="sgd(lr=0.1)"):
    return BASE.format(hopts=hopts, extra=extra, epochs=epochs, opt=opt)


def test_step_schedule_sets_the_learning_rate_each_epoch():
    h = fit(nncompile.compile(src(extra="schedule = step(every=2, factor=0.5)")), quiet=True)
    assert h.history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_a_schedule_changes_training_and_a_constant_one_does_not():
    plain = fit(nncompile.compile(src()), quiet=True).history["loss"]
    const = fit(nncompile.compile(src(extra="schedule = step(every=100, factor=0.5)")), quiet=True).history
    decayed = fit(nncompile.compile(src(extra="schedule = exponential(rate=0.1)")), quiet=True).history["loss"]
    assert const["loss"] == plain and decayed[0] == plain[0] and decayed[1:] != plain[1:]


def test_reduce_on_plateau_state_survives_resume(tmp_path):
    text = src(extra="schedule = reduce_on_plateau(monitor=val_loss, factor=0.5, patience=0)\n"
                     "  augment = [noise(0.1)]")
    prog = nncompile.compile(text)
    ref = fit(prog, quiet=True)
    rec = RunRecord.create(prog, str(tmp_path / "run"))

    def stop(epoch, logs, trainer):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        fit(prog, quiet=True, record=rec, on_epoch=stop)
    st = load_checkpoint(rec.checkpoint_path)
    assert st.schedule is not None
    prog2 = nncompile.compile(text)
    res = fit(prog2, quiet=True, record=RunRecord(rec.path, prog2), resume=st)
    assert res.history == ref.history  # learning rates and augmented batches replayed exactly
    for k, v in ref.trainer.host("arrays").items():
        assert v.tobytes() == res.trainer.host("arrays")[k].tobytes(), k


def test_augmentation_is_training_only_and_seeded():
    text = src(extra="augment = [noise(0.5)]")
    a = fit(nncompile.compile(text), quiet=True).history
    b = fit(nncompile.compile(text), quiet=True).history
    plain = fit(nncompile.compile(src()), quiet=True).history
    assert a == b and a["loss"] != plain["loss"]


def test_frozen_layer_keeps_its_weights():
    prog = nncompile.compile(src(hopts=", frozen=true"))
    h = fit(prog, quiet=True)
    init = prog.init_params(prog.ast.train.seed)
    after = h.trainer.host()
    np.testing.assert_array_equal(after["h.weight"], init["h.weight"])
    assert not np.array_equal(after["o.weight"], init["o.weight"])


def test_init_from_loads_matching_layers_and_reports_them(tmp_path, capsys):
    w = nncompile.compile(src()).init_params(123)
    np.savez(tmp_path / "w.npz", **w)
    # with a vanishing learning rate the trained weights are the starting weights
    prog = nncompile.compile(src(extra=f'init_from = weights("{tmp_path / "w.npz"}", layers=[h])',
                                 epochs=1, opt="sgd(lr=1e-30)"))
    h = fit(prog)
    assert "h" in capsys.readouterr().out
    np.testing.assert_allclose(h.trainer.host()["h.weight"], w["h.weight"], rtol=1e-6)
    assert not np.allclose(h.trainer.host()["o.weight"], w["o.weight"])


def test_preflight_warning_is_printed_with_its_location(tmp_path):
    (tmp_path / "m.nn").write_text(src(extra="early_stopping = { monitor: val_loss, patience: 50 }"))
    env = {k: v for k, v in os.environ.items() if k != "NNCOMPILE_DEBUG"}
    r = subprocess.run([sys.executable, "-m", "nncompile", "run", "m.nn", "--no-record"], cwd=tmp_path,
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "m.nn:" in r.stderr and "warning" in r.stderr and "patience" in r.stderr
