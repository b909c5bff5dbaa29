"""Checkpoints and exact resume: an interrupted run, resumed, ends bit-identical
to an uninterrupted one."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import nncompile
from nncompile import cli
from nncompile.errors import WeightsError
from nncompile.runtime.checkpoint import load_checkpoint
from nncompile.runtime.loop import TrainingInterrupted, fit
from nncompile.runtime.records import RunRecord
from nncompile.runtime.weights import load_arrays

# dropout (rng keyed by step), batch norm (state), adam (optimizer state), a
# shuffled split and early stopping with restore_best: everything resume must carry
SRC = """model m {
  input x: f32[6]
  dense h(16, relu)
  batchnorm bn
  dropout d(0.3)
  dense o(3, softmax)
}
train {
  data = synthetic.classification(samples=120, features=6, classes=3, seed=4)
  loss = sparse_categorical_crossentropy
  optimizer = adam(lr=0.01)
  metrics = [accuracy]
  epochs = 8
  batch_size = 16
  validation = split(0.25, seed=2)
  early_stopping = { monitor: val_loss, patience: 20, restore_best: true }
  seed = 7
  log_every = 100
}
"""


def _all(trainer):
    return trainer.host("arrays")


def _assert_same(a, b):
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k


def test_interrupt_from_on_epoch_then_resume_is_bit_identical(tmp_path):
    prog = nncompile.compile(SRC)
    ref = fit(prog, quiet=True, record=RunRecord.create(prog, str(tmp_path / "ref")))

    rec = RunRecord.create(prog, str(tmp_path / "run"))

    def stop_at_3(epoch, logs, trainer):
        if epoch == 3:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted) as e:
        fit(prog, quiet=True, record=rec, on_epoch=stop_at_3)
    assert e.value.epoch == 4 and e.value.checkpoint == rec.checkpoint_path
    st = load_checkpoint(rec.checkpoint_path)
    assert st.epoch == 4 and st.step == 4 * 6 and len(st.history["loss"]) == 4
    assert st.best_arrays is not None and st.early_stopping["best_epoch"] is not None

    prog2 = nncompile.compile(SRC)
    res = fit(prog2, quiet=True, record=RunRecord(rec.path, prog2), resume=st)
    assert res.history == ref.history
    assert res.best_epoch == ref.best_epoch and res.restored == ref.restored
    _assert_same(_all(res.trainer), _all(ref.trainer))
    for name in ("weights_final.npz", "weights_best.npz"):
        a, _ = load_arrays(str(tmp_path / "ref" / name))
        b, _ = load_arrays(os.path.join(rec.path, name))
        _assert_same(a, b)
    # history.csv of the resumed run is the uninterrupted one's
    assert (tmp_path / "ref" / "history.csv").read_text() == Path(rec.path, "history.csv").read_text()


def test_interrupt_mid_epoch_resumes_from_the_last_finished_epoch(tmp_path, monkeypatch):
    """A KeyboardInterrupt in the middle of an epoch's batches (inside the step)
    saves the end of the previous epoch; resuming redoes that epoch exactly."""
    prog = nncompile.compile(SRC)
    ref = fit(prog, quiet=True)
    from nncompile.runtime.trainer import Trainer
    real = Trainer.train_batch
    calls = {"n": 0}

    def flaky(self, x, y):
        calls["n"] += 1
        if calls["n"] == 6 * 5 + 3:   # the 4th batch of epoch 5
            raise KeyboardInterrupt
        return real(self, x, y)

    monkeypatch.setattr(Trainer, "train_batch", flaky)
    rec = RunRecord.create(prog, str(tmp_path / "run"))
    with pytest.raises(TrainingInterrupted) as e:
        fit(prog, quiet=True, record=rec)
    assert e.value.epoch == 5
    monkeypatch.setattr(Trainer, "train_batch", real)
    res = fit(nncompile.compile(SRC), quiet=True, resume=load_checkpoint(rec.checkpoint_path))
    assert res.history == ref.history
    _assert_same(_all(res.trainer), _all(ref.trainer))


def _nnc(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "NNCOMPILE_DEBUG"}
    return subprocess.run([sys.executable, "-m", "nncompile", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_cli_sigint_then_resume_matches_an_uninterrupted_run(tmp_path):
    """A real Ctrl-C (SIGINT) at whatever moment it lands: exit 130, a message
    saying where the checkpoint is, and `--resume` ends bit-identical."""
    src = SRC.replace("epochs = 8", "epochs = 150").replace("patience: 20", "patience: 500")
    (tmp_path / "m.nn").write_text(src)
    ref = _nnc("run", "m.nn", "--out", "ref", "--quiet", cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    env = {k: v for k, v in os.environ.items() if k != "NNCOMPILE_DEBUG"}
    # SIGINT back to its default in the child: a test run started in the background by a shell
    # without job control inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
    p = subprocess.Popen([sys.executable, "-m", "nncompile", "run", "m.nn", "--out", "run"], cwd=tmp_path,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    hist = tmp_path / "run" / "history.csv"
    deadline = time.time() + 60
    while time.time() < deadline:
        if hist.exists() and hist.read_text().count("\n") >= 4:
            break
        time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "checkpoint saved to run/checkpoint.npz" in err and "--resume run" in err
    assert "Traceback" not in err
    st = load_checkpoint(str(tmp_path / "run" / "checkpoint.npz"))
    assert 3 <= st.epoch < 150
    r = _nnc("run", "m.nn", "--resume", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"Resuming m at epoch {st.epoch}" in r.stdout
    a, _ = load_arrays(str(tmp_path / "ref" / "weights_final.npz"))
    b, _ = load_arrays(str(tmp_path / "run" / "weights_final.npz"))
    _assert_same(a, b)
    assert (tmp_path / "ref" / "history.csv").read_text() == (tmp_path / "run" / "history.csv").read_text()


def test_resume_after_edit_shows_the_changes_and_refuses_new_shapes(tmp_path, capsys):
    f = tmp_path / "m.nn"
    f.write_text(SRC.replace("epochs = 8", "epochs = 3"))
    assert cli.main(["run", str(f), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    # more epochs, a new learning rate and patience: allowed, and shown
    f.write_text(SRC.replace("epochs = 8", "epochs = 5").replace("lr=0.01", "lr=0.005")
                 .replace("patience: 20", "patience: 3"))
    capsys.readouterr()
    assert cli.main(["run", str(f), "--resume", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "Resuming m at epoch 3 (step 18) of 5" in out
    assert "train.epochs: 3 -> 5" in out and "train.optimizer.params.lr: 0.01 -> 0.005" in out
    assert "train.early_stopping.patience: 20 -> 3" in out
    st = load_checkpoint(str(tmp_path / "run" / "checkpoint.npz"))
    assert st.epoch == 5 and st.finished
    import json
    doc = json.loads((tmp_path / "run" / "settings.json").read_text())
    assert doc["resumes"][0]["epoch"] == 3 and "train.epochs: 3 -> 5" in doc["resumes"][0]["changes"]
    # a change of parameter shapes is refused, clearly
    f.write_text(SRC.replace("dense h(16, relu)", "dense h(12, relu)"))
    assert cli.main(["run", str(f), "--resume", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "h.weight: (6, 16) in the checkpoint, (6, 12) in the model" in err
    assert "Traceback" not in err
    # and so is another seed
    f.write_text(SRC)
    assert cli.main(["run", str(f), "--resume", str(tmp_path / "run"), "--seed", "3"]) == 2
    assert "--seed 3 differs" in capsys.readouterr().err


def test_corrupted_checkpoint_is_a_clear_error(tmp_path, capsys):
    f = tmp_path / "m.nn"
    f.write_text(SRC.replace("epochs = 8", "epochs = 1"))
    assert cli.main(["run", str(f), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    ck = tmp_path / "run" / "checkpoint.npz"
    data = ck.read_bytes()
    ck.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="checkpoint.npz"):
        load_checkpoint(str(ck))
    assert cli.main(["run", str(f), "--resume", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.npz" in err and "truncated or corrupted" in err


def test_checkpoint_every_writes_during_the_run(tmp_path):
    prog = nncompile.compile(SRC)
    rec = RunRecord.create(prog, str(tmp_path / "run"))
    seen = []

    def look(epoch, logs, trainer):
        if os.path.exists(rec.checkpoint_path):
            seen.append((epoch, load_checkpoint(rec.checkpoint_path).epoch))

    fit(prog, quiet=True, record=rec, checkpoint_every=3, on_epoch=look)
    # every 3 epochs, and on every best epoch (early stopping on): never behind by 3 or more
    assert seen and all(epoch + 1 - ck < 3 for epoch, ck in seen)
    assert any(ck == 3 for _, ck in seen)
