"""User callbacks through Program.fit: hook order, the logs they get, stopping,
resumable state; and resume through the same session code as the CLI."""
import json

import numpy as np
import pytest

import nncompile
from nncompile.errors import TrainingError
from nncompile.runtime.callbacks import Callback
from nncompile.runtime.data import Dataset
from nncompile.runtime.evaluation import evaluate
from nncompile.runtime.loop import TrainingInterrupted

SRC = """model m {{
  input x: f32[4]
  dense h(8, relu)
  dropout d(0.2)
  dense o(3, softmax)
}}
train {{
  data = synthetic.classification(samples=80, features=4, classes=3, seed=1)
  loss = sparse_categorical_crossentropy
  optimizer = adam(lr=0.01)
  metrics = [accuracy]
  epochs = {epochs}
  batch_size = 16
  validation = split(0.25)
  {extra}
}}
"""
BATCHES = 4   # 60 training samples in batches of 16


def src(epochs=3, extra=""):
    return SRC.format(epochs=epochs, extra=extra)


class Recorder(Callback):
    def __init__(self):
        self.events, self.epoch_logs, self.batch_logs = [], [], []

    def on_train_begin(self, state):
        self.events.append(("train_begin", state.epoch))

    def on_epoch_begin(self, epoch):
        self.events.append(("epoch_begin", epoch))

    def on_batch_begin(self, batch):
        self.events.append(("batch_begin", batch))

    def on_batch_end(self, batch, logs):
        self.events.append(("batch_end", batch))
        self.batch_logs.append(dict(logs))

    def on_epoch_end(self, epoch, logs):
        self.events.append(("epoch_end", epoch))
        self.epoch_logs.append(dict(logs))

    def on_train_end(self):
        self.events.append(("train_end", None))


def test_hooks_run_in_keras_order():
    rec = Recorder()
    nncompile.compile(src(epochs=2)).fit(quiet=True, callbacks=[rec])
    batches = [e for b in range(BATCHES) for e in (("batch_begin", b), ("batch_end", b))]
    expected = [("train_begin", 0)]
    for epoch in range(2):
        expected += [("epoch_begin", epoch)] + batches + [("epoch_end", epoch)]
    assert rec.events == expected + [("train_end", None)]


def test_logs_are_kerass_with_lr_under_a_schedule():
    rec = Recorder()
    h = nncompile.compile(src(extra="schedule = step(every=1, factor=0.5)")).fit(quiet=True, callbacks=[rec])
    assert [list(logs) for logs in rec.epoch_logs] == [["loss", "accuracy", "val_loss", "val_accuracy", "lr"]] * 3
    for k, values in h.history.items():
        assert [logs[k] for logs in rec.epoch_logs] == values
    assert [logs["lr"] for logs in rec.epoch_logs] == pytest.approx([0.01, 0.005, 0.0025])
    assert len(rec.batch_logs) == 3 * BATCHES and all(set(b) == {"loss", "accuracy"} for b in rec.batch_logs)
    # the epoch's loss is the batch-size-weighted mean of its batches' (60 = 16 + 16 + 16 + 12)
    first = rec.batch_logs[:BATCHES]
    assert rec.epoch_logs[0]["loss"] == pytest.approx(
        sum(b["loss"] * n for b, n in zip(first, (16, 16, 16, 12))) / 60)
    rec = Recorder()
    nncompile.compile(src()).fit(quiet=True, callbacks=[rec])
    assert "lr" not in rec.epoch_logs[0]


class StopAt(Callback):
    def __init__(self, epoch, batch=None):
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, batch, logs):
        if self.batch is not None and (self.loop.epoch, batch) == (self.epoch, self.batch):
            self.loop.stop("asked to at a batch")

    def on_epoch_end(self, epoch, logs):
        if self.batch is None and epoch == self.epoch:
            self.loop.stop("asked to")


def test_a_callback_stops_training_after_an_epoch():
    rec = Recorder()
    h = nncompile.compile(src(epochs=10)).fit(quiet=True, callbacks=[StopAt(2), rec])
    assert h.epochs_run == 3 and len(h.history["loss"]) == 3 and h.stopped_epoch == 2
    assert h.stop_reason == "asked to" and h.message.startswith("Training stopped: asked to")
    assert rec.events[-2:] == [("epoch_end", 2), ("train_end", None)]   # later callbacks still see the epoch


def test_a_callback_stops_training_within_an_epoch():
    rec = Recorder()
    h = nncompile.compile(src(epochs=10)).fit(quiet=True, callbacks=[StopAt(1, batch=1), rec])
    assert h.epochs_run == 2 and h.trainer.step_count == BATCHES + 2
    assert rec.events[-4:] == [("batch_begin", 1), ("batch_end", 1), ("epoch_end", 1), ("train_end", None)]
    # the cut-short epoch still averages its batches and is validated
    assert set(rec.epoch_logs[1]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert rec.epoch_logs[1]["loss"] == pytest.approx((rec.batch_logs[-2]["loss"] + rec.batch_logs[-1]["loss"]) / 2)


class Counter(Callback):
    """A resumable callback: its count survives a checkpoint and resume."""
    state_key = "counter"

    def __init__(self, interrupt_at=None):
        self.count, self.seen, self.interrupt_at = 0, [], interrupt_at

    def on_epoch_end(self, epoch, logs):
        self.count += 1
        self.seen.append(self.count)
        if epoch == self.interrupt_at:
            raise KeyboardInterrupt

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def test_resume_through_program_fit_restores_callback_state_bit_identically(tmp_path):
    run = tmp_path / "run"
    ref = nncompile.compile(src(epochs=6)).fit(quiet=True, callbacks=[Counter()])
    with pytest.raises(TrainingInterrupted) as e:
        nncompile.compile(src(epochs=6)).fit(quiet=True, record=str(run), callbacks=[Counter(interrupt_at=3)])
    # a user callback runs before the epoch is committed: interrupted in epoch 3, epochs 0-2 are saved
    assert e.value.epoch == 3
    counter = Counter()
    res = nncompile.compile(src(epochs=6)).fit(quiet=True, resume=str(run), record=True, callbacks=[counter])
    assert counter.seen == [4, 5, 6] and res.resumed_from == 3
    assert res.history == ref.history
    for k, v in ref.trainer.host("arrays").items():
        assert v.tobytes() == res.trainer.host("arrays")[k].tobytes(), k
    doc = json.loads((run / "settings.json").read_text())
    assert [r["epoch"] for r in doc["resumes"]] == [3]
    with pytest.raises(TrainingError, match="leave --out out"):
        nncompile.compile(src(epochs=6)).fit(quiet=True, resume=str(run), record=str(tmp_path / "other"))
    with pytest.raises(TrainingError, match="differs from the seed"):
        nncompile.compile(src(epochs=6)).fit(quiet=True, resume=str(run), seed=5)


def test_two_callbacks_with_one_state_key_are_refused():
    with pytest.raises(ValueError, match="counter"):
        nncompile.compile(src()).fit(quiet=True, callbacks=[Counter(), Counter()])


def test_trainer_evaluate_is_the_one_evaluate():
    prog = nncompile.compile(src())
    tr = prog.trainer(seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(70, 4)).astype(np.float32), rng.integers(0, 3, 70)
    tr.step(x[:16], y[:16])
    assert tr.evaluate(x, y, 32) == evaluate(prog, tr.host("model_state"), Dataset(x, y, "d"), 32)
    with pytest.raises(nncompile.errors.DataError, match="label 7"):
        tr.evaluate(x, np.full(70, 7), 32)
