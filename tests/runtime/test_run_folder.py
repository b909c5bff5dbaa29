"""What a run folder guarantees (docs/reliability.md, "What a run folder
guarantees"): one run per folder, nothing of the user's is written over, a
refused run changes nothing, SIGTERM/SIGHUP save a checkpoint like Ctrl-C,
files follow the umask, a resume on changed data is refused, checkpoints
inside an epoch resume exactly and survive a kill at any moment, the resume
hint is the whole command, a rolled-back epoch is not a history row, and the
curves are SVG without matplotlib."""
import io
import json
import os
import random
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import nncompile
from nncompile import cli
from nncompile.errors import TrainingError
from nncompile.runtime.checkpoint import load_checkpoint
from nncompile.runtime.loop import TrainingInterrupted, fit
from nncompile.runtime.records import RunRecord
from nncompile.runtime.weights import load_arrays

# dropout (keyed by step), batch norm, adam, a shuffled split, noise augmentation,
# a schedule and early stopping with restore_best: everything a resume must carry
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
  early_stopping = { monitor: val_loss, patience: 6, restore_best: true }
  schedule = step(every=3, factor=0.5)
  augment = [noise(0.1)]
  seed = 7
  log_every = 100
}
"""

CSV_SRC = """model m {
  input x: f32[3]
  dense h(8, relu)
  dense o(1)
}
train {
  data = csv("d.csv", target=["y"])
  loss = mse
  optimizer = adam(lr=0.01)
  epochs = 3
  batch_size = 8
  validation = split(0.25)
}
"""

ENV = {k: v for k, v in os.environ.items() if k != "NNCOMPILE_DEBUG"}


def _nnc(*args, cwd, timeout=180):
    return subprocess.run([sys.executable, "-m", "nncompile", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=ENV, timeout=timeout)


def _default_signals():
    for name in ("SIGHUP", "SIGTERM", "SIGINT"):   # as a shell started without nohup gives them
        signal.signal(getattr(signal, name), signal.SIG_DFL if name != "SIGINT" else signal.default_int_handler)


def _popen(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "nncompile", *map(str, args)], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals)


def _same_arrays(a, b):
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k


def _same_weights(dir_a, dir_b, name="weights_final.npz"):
    _same_arrays(load_arrays(str(Path(dir_a) / name))[0], load_arrays(str(Path(dir_b) / name))[0])


def _folder(path) -> dict:
    """Everything about a folder's files a run could change."""
    out = {}
    for p in sorted(Path(path).rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(path))] = (p.read_bytes() if p.is_file() else None, stat.S_IMODE(st.st_mode),
                                         st.st_mtime_ns)
    return out


def _csv(path, n=40, edit=None):
    rows = ["a,b,c,y"] + [f"{i % 5},{i % 3},{(i * 7) % 11},{(i % 4) * 0.5}" for i in range(n)]
    if edit:
        rows = edit(rows)
    Path(path).write_text("\n".join(rows) + "\n")


# --- one run per folder ---------------------------------------------------------------

def test_two_runs_into_one_folder_the_second_is_refused_and_the_first_kept(tmp_path):
    """Both runs pass the 'is there a run here' check before either writes (started
    together); the second to claim the folder is refused, the first runs on."""
    prog = nncompile.compile(SRC)
    first = RunRecord.create(prog, str(tmp_path / "run"))
    second = RunRecord.create(nncompile.compile(SRC), str(tmp_path / "run"))
    refused = []

    def meanwhile(epoch, logs, trainer):
        if epoch == 1:
            with pytest.raises(TrainingError, match="in use by another run") as e:
                fit(second.program, quiet=True, record=second)
            refused.append(str(e.value))

    ref = fit(prog, quiet=True, record=first, on_epoch=meanwhile)
    assert refused and f"(pid {os.getpid()})" in refused[0]
    assert len((tmp_path / "run" / "history.csv").read_text().splitlines()) == 1 + ref.epochs_run
    assert not (tmp_path / "run" / ".nncompile.lock").exists()   # released at the end


def test_two_cli_runs_started_together_exactly_one_succeeds(tmp_path):
    (tmp_path / "m.nn").write_text(SRC.replace("epochs = 8", "epochs = 30"))
    procs = [_popen("run", "m.nn", "--out", "run", "--quiet", cwd=tmp_path) for _ in range(2)]
    results = [(p.wait(timeout=180), p.communicate()[1]) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    err = next(e for rc, e in results if rc == 2)
    assert "in use by another run" in err or "already holds a run" in err
    assert "Traceback" not in err
    assert len((tmp_path / "run" / "history.csv").read_text().splitlines()) == 31


def test_the_run_that_loses_the_race_to_make_the_folder_leaves_it_to_the_winner(tmp_path, monkeypatch):
    """Two runs both see no folder; the first makes it and takes its lock, the
    second's mkdir then finds it: that run did not make it, so its refusal ("in use
    by another run") must not try to remove the winner's folder (it used to, with
    an OSError 'Directory not empty' instead of the refusal)."""
    from nncompile.runtime.records import RunFolder
    prog = nncompile.compile(SRC)
    first = RunFolder.create(prog, str(tmp_path / "run"))
    first.claim()
    second = RunFolder(str(tmp_path / "run"), prog, fresh=True)   # it checked before the first made it
    for name in ("isdir", "lexists"):   # the second run's first look came before the first made it
        real, seen = getattr(os.path, name), []

        def first_look(p, real=real, seen=seen):
            if os.fspath(p) == second.path and not seen:
                seen.append(p)
                return False
            return real(p)
        monkeypatch.setattr(os.path, name, first_look)
    with pytest.raises(TrainingError, match="in use by another run"):
        second.claim()
    monkeypatch.undo()
    assert first.claimed and os.listdir(tmp_path / "run")
    first.release()


# --- nothing of the user's is written over ---------------------------------------------------

def test_out_folder_holding_the_users_files_is_refused_and_left_alone(tmp_path):
    d = tmp_path / "exp"
    d.mkdir()
    (d / "m.nn").write_bytes(b"\xef\xbb\xbf" + SRC.replace("\n", "\r\n").encode())
    (d / "history.csv").write_text("my own history\n")
    (d / "curves.svg").write_text("<svg>mine</svg>\n")
    os.chmod(d / "m.nn", 0o644)
    before = _folder(d)
    r = _nnc("run", "exp/m.nn", "--out", "exp", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "history.csv, curves.svg, which this run would write but did not create" in r.stderr
    assert _folder(d) == before


def test_out_folder_of_the_program_never_touches_the_source(tmp_path):
    """--out the folder the .nn file lives in: the run writes its files beside it,
    and the source keeps its bytes (BOM, CRLF), its mode and its mtime."""
    d = tmp_path / "exp"
    d.mkdir()
    src_bytes = b"\xef\xbb\xbf" + SRC.replace("epochs = 8", "epochs = 2").replace("\n", "\r\n").encode()
    (d / "m.nn").write_bytes(src_bytes)
    os.chmod(d / "m.nn", 0o640)
    st = (d / "m.nn").stat()
    assert cli.main(["run", str(d / "m.nn"), "--out", str(d), "--quiet"]) == 0
    assert cli.main(["run", str(d / "m.nn"), "--resume", str(d), "--epochs", "3", "--quiet"]) == 0
    after = (d / "m.nn").stat()
    assert (d / "m.nn").read_bytes() == src_bytes
    assert (stat.S_IMODE(after.st_mode), after.st_mtime_ns) == (0o640, st.st_mtime_ns)
    doc = json.loads((d / "settings.json").read_text())
    assert doc["model_file"] == "m.nn"
    assert "m.nn" not in json.loads((d / ".nncompile-files.json").read_text())["files"]
    # another m.nn of the user's there (not the program): the copy takes another name
    other = tmp_path / "other"
    other.mkdir()
    (other / "m.nn").write_text("my notes\n")
    assert cli.main(["run", str(d / "m.nn"), "--out", str(other), "--quiet"]) == 0
    assert (other / "m.nn").read_text() == "my notes\n"
    assert (other / "m.run.nn").read_bytes() == src_bytes     # the copy is byte for byte
    assert json.loads((other / "settings.json").read_text())["model_file"] == "m.run.nn"


# --- a refusal changes nothing -----------------------------------------------------------

@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace("dense h(16, relu)", "dense h(12, relu)"), "the model's tensors changed"),
    (lambda s: s.replace("optimizer = adam(lr=0.01)", "optimizer = sgd(lr=0.01)"), "the model's tensors changed"),
    (lambda s: s.replace("samples=120", "samples=100"), "the data changed"),
])
def test_a_refused_resume_changes_nothing(tmp_path, capsys, edit, message):
    f = tmp_path / "m.nn"
    f.write_text(SRC.replace("epochs = 8", "epochs = 2"))
    assert cli.main(["run", str(f), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    before = _folder(tmp_path / "run")
    f.write_text(edit(SRC))
    capsys.readouterr()
    assert cli.main(["run", str(f), "--resume", str(tmp_path / "run")]) == 2
    out, err = capsys.readouterr()
    assert message in err and "Resuming" not in out
    assert _folder(tmp_path / "run") == before


def test_resume_after_the_data_file_changed_is_refused(tmp_path, capsys):
    _csv(tmp_path / "d.csv")
    (tmp_path / "m.nn").write_text(CSV_SRC)
    assert cli.main(["run", str(tmp_path / "m.nn"), "--out", str(tmp_path / "run"), "--epochs", "2",
                     "--quiet"]) == 0
    before = _folder(tmp_path / "run")
    _csv(tmp_path / "d.csv", n=36)                       # rows removed: another split
    capsys.readouterr()
    assert cli.main(["run", str(tmp_path / "m.nn"), "--resume", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "the data changed since the checkpoint" in err and "train: 27 samples now, 30 in the checkpoint" in err
    assert _folder(tmp_path / "run") == before
    _csv(tmp_path / "d.csv", edit=lambda rows: rows[:5] + ["9,9,9,9"] + rows[6:])   # same size, a value edited
    assert cli.main(["run", str(tmp_path / "m.nn"), "--resume", str(tmp_path / "run")]) == 2
    assert "the same shapes, different values" in capsys.readouterr().err
    _csv(tmp_path / "d.csv")                             # the data as it was: resumes
    assert cli.main(["run", str(tmp_path / "m.nn"), "--resume", str(tmp_path / "run"), "--quiet"]) == 0
    doc = json.loads((tmp_path / "run" / "settings.json").read_text())
    assert doc["data"]["train"]["samples"] == 30 and len(doc["data"]["train"]["sha256"]) == 64


# --- signals ----------------------------------------------------------------------------

@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_stop_signals_save_a_checkpoint_and_the_printed_command_resumes_exactly(tmp_path, sig):
    """Ctrl-C, a scheduler's SIGTERM or a closed terminal's SIGHUP: exit 128+signal,
    a checkpoint, and a resume command with every flag the run was started with;
    following it ends bit-identical to an uninterrupted run."""
    signum = getattr(signal, sig)
    (tmp_path / "m.nn").write_text(SRC.replace("patience: 6", "patience: 100"))
    ref = _nnc("run", "m.nn", "--out", "ref", "--epochs", "120", "--quiet", cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    p = _popen("run", "m.nn", "--epochs", "120", "--out", "run", "--checkpoint-every", "2", cwd=tmp_path)
    hist = tmp_path / "run" / "history.csv"
    deadline = time.time() + 90
    while time.time() < deadline and not (hist.exists() and hist.read_text().count("\n") >= 5):
        time.sleep(0.01)
    p.send_signal(signum)
    out, err = p.communicate(timeout=90)
    assert p.returncode == 128 + signum, err
    assert "Traceback" not in err and "checkpoint saved to run/checkpoint.npz" in err
    hint = [line for line in err.splitlines() if line.startswith("resume with: ")]
    assert hint == ["resume with: nncompile run m.nn --epochs 120 --checkpoint-every 2 --resume run"], err
    st = load_checkpoint(str(tmp_path / "run" / "checkpoint.npz"))
    assert 4 <= st.epoch < 120
    r = _nnc(*shlex.split(hint[0][len("resume with: "):])[1:], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"Resuming m at epoch {st.epoch}" in r.stdout and "Settings changed" not in r.stdout
    _same_weights(tmp_path / "ref", tmp_path / "run")
    assert (tmp_path / "ref" / "history.csv").read_text() == hist.read_text()


def test_a_run_that_saved_no_checkpoint_is_started_again_by_resume(tmp_path, capsys):
    """Not trapped between 'already holds a run' and 'holds no checkpoint': --resume
    starts it from epoch 0 with its seed, and ends as a fresh run with that seed."""
    f = tmp_path / "m.nn"
    f.write_text(SRC.replace("epochs = 8", "epochs = 3"))
    assert cli.main(["run", str(f), "--out", str(tmp_path / "ref"), "--seed", "5", "--quiet"]) == 0
    assert cli.main(["run", str(f), "--out", str(tmp_path / "run"), "--seed", "5", "--quiet"]) == 0
    (tmp_path / "run" / "checkpoint.npz").unlink()       # as if killed before its first checkpoint
    capsys.readouterr()
    assert cli.main(["run", str(f), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "already holds a run that saved no checkpoint" in err
    assert f"--resume {tmp_path / 'run'} starts it again from epoch 0 with its seed" in err
    assert cli.main(["run", str(f), "--resume", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "holds no checkpoint (the run stopped before its first one): starting it again from epoch 0 " \
           "with its seed 5" in out
    _same_weights(tmp_path / "ref", tmp_path / "run")
    doc = json.loads((tmp_path / "run" / "settings.json").read_text())
    assert doc["seed"] == 5 and doc["resumes"][-1]["epoch"] == 0 and "restart" in doc["resumes"][-1]


# --- modes ------------------------------------------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_run_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    f = tmp_path / "m.nn"
    f.write_text(SRC.replace("epochs = 8", "epochs = 2"))
    old = os.umask(umask)
    try:
        assert cli.main(["run", str(f), "--out", str(tmp_path / "run"), "--quiet"]) == 0
        assert cli.main(["graph", str(f), "-o", str(tmp_path / "g.svg")]) == 0
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "run").iterdir()] + [tmp_path / "g.svg"]
    assert len(files) == 9
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {p.name: oct(mode) for p in files}


# --- checkpoints inside an epoch ---------------------------------------------------------

def _interrupt_at(monkeypatch, n):
    from nncompile.runtime.trainer import Trainer
    real = Trainer.train_batch
    calls = {"n": 0}

    def flaky(self, x, y):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(self, x, y)

    monkeypatch.setattr(Trainer, "train_batch", flaky)
    return lambda: monkeypatch.setattr(Trainer, "train_batch", real)


def test_checkpoints_every_n_steps_resume_inside_an_epoch_bit_identically(tmp_path, monkeypatch):
    """6 batches an epoch, a checkpoint every 4 steps: most land inside an epoch.
    Interrupted at random steps, resumed: the same weights, history and
    history.csv as an uninterrupted run (nothing skipped, nothing repeated)."""
    ref = fit(nncompile.compile(SRC), quiet=True, record=str(tmp_path / "ref"))
    inside = 0
    for k, stop in enumerate(random.Random(3).sample(range(6, 48), 6)):
        run = tmp_path / f"run{k}"
        restore = _interrupt_at(monkeypatch, stop)
        with pytest.raises(TrainingInterrupted) as e:
            fit(nncompile.compile(SRC), quiet=True, record=str(run), checkpoint_every="4steps")
        restore()
        st = load_checkpoint(str(run / "checkpoint.npz"))
        # the latest of: every 4th step, each epoch's end with a new best, the last epoch's end
        assert (stop - 1) // 4 * 4 <= st.step <= stop - 1
        assert (e.value.epoch, e.value.batch) == (st.epoch, st.batch)
        inside += st.batch > 0
        res = fit(nncompile.compile(SRC), quiet=True, resume=str(run), record=True)
        assert res.history == ref.history and res.best_epoch == ref.best_epoch
        _same_arrays(res.trainer.host("arrays"), ref.trainer.host("arrays"))
        _same_weights(tmp_path / "ref", run)
        _same_weights(tmp_path / "ref", run, "weights_best.npz")
        assert (tmp_path / "ref" / "history.csv").read_text() == (run / "history.csv").read_text()
    assert inside >= 2


def test_checkpoint_every_is_epochs_or_steps(tmp_path, capsys):
    f = tmp_path / "m.nn"
    f.write_text(SRC.replace("epochs = 8", "epochs = 1"))
    assert cli.main(["run", str(f), "--out", str(tmp_path / "run"), "--checkpoint-every", "soon"]) == 2
    assert "expected N (epochs), Nepochs or Nsteps, not 'soon'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert cli.main(["run", str(f), "--out", str(tmp_path / "run"), "--checkpoint-every", "2steps",
                     "--quiet"]) == 0


class _Kill(BaseException):
    """Stands for kill -9: nothing catches it, no on_interrupt runs."""


def test_a_kill_anywhere_in_the_writes_leaves_a_whole_checkpoint_to_resume(tmp_path, monkeypatch):
    """The run dies at the n-th fsync or rename of its files (random n over the
    whole run, a checkpoint every 3 steps): what is left resumes (or restarts)
    and ends bit-identical to an uninterrupted run."""
    ref = fit(nncompile.compile(SRC), quiet=True, record=str(tmp_path / "ref"))
    real_fsync, real_replace = os.fsync, os.replace
    count = {"n": 0, "at": None}

    def counted(real):
        def f(*a):
            count["n"] += 1
            if count["n"] == count["at"]:
                raise _Kill
            return real(*a)
        return f

    monkeypatch.setattr(os, "fsync", counted(real_fsync))
    monkeypatch.setattr(os, "replace", counted(real_replace))
    fit(nncompile.compile(SRC), quiet=True, record=str(tmp_path / "count"), checkpoint_every="3steps")
    total = count["n"]
    assert total > 60
    for k, at in enumerate(sorted(random.Random(5).sample(range(1, total), 8))):
        run = tmp_path / f"run{k}"
        count.update(n=0, at=at)
        with pytest.raises(_Kill):
            fit(nncompile.compile(SRC), quiet=True, record=str(run), checkpoint_every="3steps")
        count["at"] = None
        if (run / "checkpoint.npz").exists():
            load_checkpoint(str(run / "checkpoint.npz"))    # whole
        if (run / "settings.json").exists():
            res = fit(nncompile.compile(SRC), quiet=True, resume=str(run), record=True,
                      checkpoint_every="3steps")
        else:
            res = fit(nncompile.compile(SRC), quiet=True, record=str(run), checkpoint_every="3steps")
        assert res.history == ref.history, at
        _same_arrays(res.trainer.host("arrays"), ref.trainer.host("arrays"))
        assert not [n for n in os.listdir(run) if n.endswith(".tmp")]


def test_kill_9_at_random_moments_then_resume_is_bit_identical(tmp_path):
    (tmp_path / "m.nn").write_text(SRC.replace("epochs = 8", "epochs = 40").replace("patience: 6", "patience: 30"))
    ref = _nnc("run", "m.nn", "--out", "ref", "--quiet", cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    rng = random.Random(11)
    for k in range(3):
        run = f"run{k}"
        p = _popen("run", "m.nn", "--out", run, "--checkpoint-every", "3steps", "--quiet", cwd=tmp_path)
        ck = tmp_path / run / "checkpoint.npz"
        deadline = time.time() + 90
        while time.time() < deadline and not ck.exists() and p.poll() is None:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 1.0))
        p.kill()
        p.communicate(timeout=60)
        if p.returncode == 0:   # finished before the kill: nothing to test this time
            continue
        st = load_checkpoint(str(ck))                      # the latest complete checkpoint, whole
        assert st.step % 3 == 0 or st.batch == 0
        # a kill during the interpreter's exit lands after the lock was released
        held = (tmp_path / run / ".nncompile.lock").exists()
        r = _nnc("run", "m.nn", "--resume", run, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert ("ended without releasing the folder" in r.stderr) == held, r.stderr
        _same_weights(tmp_path / "ref", tmp_path / run)
        assert (tmp_path / "ref" / "history.csv").read_text() == (tmp_path / run / "history.csv").read_text()
        assert not [n for n in os.listdir(tmp_path / run) if n.endswith(".tmp") or n == ".nncompile.lock"]


# --- the history of a rolled-back epoch, the curves -------------------------------------

def test_on_nan_rollback_writes_no_row_for_the_rolled_back_epoch(tmp_path):
    from nncompile.runtime.data import Dataset
    prog = nncompile.compile(CSV_SRC.replace('  data = csv("d.csv", target=["y"])\n', "")
                             .replace("epochs = 3", "epochs = 6").replace("  validation = split(0.25)\n", ""))
    rng = np.random.default_rng(0)
    ds = Dataset(rng.normal(size=(64, 3)).astype(np.float32), rng.normal(size=(64, 1)).astype(np.float32), "t")

    def poison(epoch, logs, trainer):
        if epoch == 2:
            ds.y[5] = 1e20      # (y_hat - y)^2 overflows float32 from epoch 3 on

    buf = io.StringIO()
    h = fit(prog, data=ds, on_epoch=poison, on_nan="rollback", out=buf, record=str(tmp_path / "run"))
    lines = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "1", "2"] and "inf" not in "".join(lines)
    text = buf.getvalue()
    assert "Epoch 3: a non-finite value; rolled back (--on-nan rollback), so this epoch is not in the history" \
        in text
    final = [line for line in text.splitlines() if line.startswith("Final")]
    assert final and "inf" not in final[0] and "nan" not in final[0]
    assert load_checkpoint(str(tmp_path / "run" / "checkpoint.npz")).history == h.history


def test_curves_are_svg_without_matplotlib_and_png_only_when_asked(tmp_path, monkeypatch, capsys):
    f = tmp_path / "m.nn"
    f.write_text(SRC.replace("epochs = 8", "epochs = 3"))
    code = ("import sys; from nncompile import cli; rc = cli.main(['run', 'm.nn', '--out', 'run', '--quiet']); "
            "print('matplotlib' in sys.modules, rc)")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=ENV,
                       timeout=120)
    assert r.stdout.splitlines()[-1].split() == ["False", "0"], r.stderr
    names = os.listdir(tmp_path / "run")
    assert "curves.svg" in names and "curves.png" not in names
    import xml.etree.ElementTree as ET
    root = ET.parse(tmp_path / "run" / "curves.svg").getroot()
    panels = [g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g")]
    assert panels == ["panel-loss", "panel-accuracy", "panel-lr"]
    assert len(list(root.iter("{http://www.w3.org/2000/svg}polyline"))) == 5   # loss, val_loss, acc, val_acc, lr
    pytest.importorskip("matplotlib")
    assert cli.main(["run", str(f), "--out", str(tmp_path / "png"), "--curves", "png", "--quiet"]) == 0
    assert (tmp_path / "png" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "png" / "curves.svg").exists()
    assert cli.main(["run", str(f), "--out", str(tmp_path / "none"), "--curves", "none", "--quiet"]) == 0
    assert not [n for n in os.listdir(tmp_path / "none") if n.startswith("curves")]
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    capsys.readouterr()
    assert cli.main(["run", str(f), "--out", str(tmp_path / "nompl"), "--curves", "png"]) == 2
    assert "--curves png needs matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "nompl").exists()
