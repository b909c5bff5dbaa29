"""The Keras-shaped API: fit(x, y, ...) with Keras's arguments and History,
evaluate / predict on the trained state, Keras-shaped callbacks and the five
built-in ones, each checked against Keras 3's documented rules (or against
the same run written out by hand)."""
import csv
import math

import numpy as np
import pytest

import nncompile
from nncompile.callbacks import (Callback, CSVLogger, EarlyStopping, ModelCheckpoint, ReduceLROnPlateau,
                                 TerminateOnNaN)

SRC = """model m {{
  input x: f32[4]
  dense h(8, relu)
  dense o(3, softmax)
}}
train {{
  loss = sparse_categorical_crossentropy
  optimizer = adam(lr=0.01)
  metrics = [accuracy{metrics}]
  epochs = {epochs}
  batch_size = 16
  {extra}
}}
"""


def prog(epochs=3, metrics="", extra=""):
    return nncompile.compile(SRC.format(epochs=epochs, metrics=metrics, extra=extra))


def data(n=70, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1)


class Recorder(Callback):
    def __init__(self):
        self.events, self.batch_logs, self.epoch_logs = [], [], []

    def on_train_begin(self, logs=None):
        self.events.append("train_begin")
        self.weights_at_start = self.model.get_weights()

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(f"epoch_begin {epoch}")

    def on_batch_begin(self, batch, logs=None):
        self.events.append(f"batch_begin {batch}")

    def on_batch_end(self, batch, logs=None):
        self.events.append(f"batch_end {batch}")
        self.batch_logs.append(dict(logs))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(f"epoch_end {epoch}")
        self.epoch_logs.append(dict(logs))

    def on_train_end(self, logs=None):
        self.events.append("train_end")
        self.end_logs = dict(logs)


def test_fit_on_arrays_gives_kerass_history_and_hooks():
    x, y = data()
    rec = Recorder()
    p = prog(metrics=", auc")
    h = p.fit(x, y, batch_size=20, epochs=2, validation_data=(x[:10], y[:10]), verbose=0, callbacks=[rec])
    assert list(h.history) == ["loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"]
    assert h.epoch == [0, 1] and h.params == {"verbose": 0, "epochs": 2, "steps": 4}
    assert h.model is p
    batches = [e for b in range(4) for e in (f"batch_begin {b}", f"batch_end {b}")]
    assert rec.events == ["train_begin", "epoch_begin 0", *batches, "epoch_end 0", "epoch_begin 1", *batches,
                          "epoch_end 1", "train_end"]
    assert rec.end_logs == rec.epoch_logs[-1]
    for e, logs in enumerate(rec.epoch_logs):
        assert logs == {k: v[e] for k, v in h.history.items()}
        # Keras 3's batch logs are the epoch's running means: the last batch's are the epoch's
        last = rec.batch_logs[4 * e + 3]
        assert last == pytest.approx({k: v for k, v in logs.items() if not k.startswith("val_")}, rel=1e-6)


def test_first_batch_logs_are_that_batchs_and_running_means_follow():
    x, y = data()
    rec = Recorder()
    p = prog(epochs=1)
    p.fit(x, y, batch_size=30, shuffle=False, verbose=0, callbacks=[rec])   # batches of 30, 30, 10
    t = nncompile.compile(SRC.format(epochs=1, metrics="", extra="")).trainer()
    b = [t.train_batch(x[i:i + 30], y[i:i + 30]) for i in (0, 30, 60)]
    assert rec.batch_logs[0] == pytest.approx(b[0], rel=1e-6)
    assert rec.batch_logs[1]["loss"] == pytest.approx((b[0]["loss"] + b[1]["loss"]) / 2, rel=1e-6)
    assert rec.batch_logs[2]["loss"] == pytest.approx((30 * b[0]["loss"] + 30 * b[1]["loss"] + 10 * b[2]["loss"])
                                                      / 70, rel=1e-6)


def test_shuffle_false_steps_through_the_data_in_order():
    x, y = data()
    p = prog(epochs=2)
    p.fit(x, y, shuffle=False, batch_size=25, verbose=0)
    t = prog().trainer()
    for _ in range(2):
        for i in range(0, 70, 25):
            t.train_batch(x[i:i + 25], y[i:i + 25])
    for a, b in zip(p.get_weights(), [t.host("model_state")[k] for k in p.graphs.predict.inputs if k != "x"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n, split, n_val", [(10, 0.25, 2), (10, 0.35, 3), (70, 0.2, 14)])
def test_validation_split_is_kerass_last_part(n, split, n_val):
    x, y = data(n)
    a = prog(epochs=2).fit(x, y, validation_split=split, verbose=0)
    cut = math.ceil(n * (1 - split))
    assert n - cut == n_val
    b = prog(epochs=2).fit(x[:cut], y[:cut], validation_data=(x[cut:], y[cut:]), verbose=0)
    assert a.history == b.history


def test_the_files_settings_are_the_defaults_and_arguments_override_them():
    x, y = data()
    p = prog(epochs=3, extra="validation = split(0.2)")
    h = p.fit(x, y, verbose=0)
    assert h.epoch == [0, 1, 2] and "val_loss" in h.history and h.params["steps"] == 4   # 56 samples / 16
    h = prog(epochs=3).fit(x, y, epochs=1, batch_size=70, verbose=0)
    assert h.epoch == [0] and h.params["steps"] == 1 and "val_loss" not in h.history
    with pytest.raises(nncompile.CompileError, match="batch_size"):
        prog().fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        prog().fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="y is missing"):
        prog().fit(x, verbose=0)


def test_a_second_fit_continues_and_evaluate_predict_read_the_trained_state():
    x, y = data()
    p = prog(epochs=2, metrics=", precision")
    before = p.predict(x)
    np.testing.assert_array_equal(before, p.predict(p.init_params(0), x))
    h = p.fit(x, y, verbose=0)
    trained = h.trainer.host("model_state")
    np.testing.assert_array_equal(p.predict(x), p.predict(trained, x))
    loss, acc, prec = p.evaluate(x, y)
    assert {"loss": loss, "accuracy": acc, "precision": prec} == h.trainer.evaluate(x, y)
    assert p.evaluate(x, y, return_dict=True) == h.trainer.evaluate(x, y)
    rec = Recorder()
    steps = h.trainer.step_count
    h2 = p.fit(x, y, epochs=1, verbose=0, callbacks=[rec])
    assert h2.trainer is h.trainer and h.trainer.step_count == steps + 5
    for a, k in zip(rec.weights_at_start, [k for k in p.graphs.predict.inputs if k != "x"]):
        np.testing.assert_array_equal(a, trained[k])
    bare = SRC.format(epochs=1, metrics="", extra="").replace("[accuracy]", "[]")
    assert nncompile.compile(bare).evaluate(x, y) == nncompile.compile(bare).trainer().evaluate(x, y)["loss"]


class StopAt(Callback):
    def __init__(self, epoch, batch=None):
        self.epoch, self.batch = epoch, batch

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_batch_end(self, batch, logs=None):
        if self.batch is not None and (self.current, batch) == (self.epoch, self.batch):
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.batch is None and epoch == self.epoch:
            self.model.stop_training = True


def test_model_stop_training_stops_after_the_epoch_or_the_batch():
    x, y = data()
    h = prog(epochs=10).fit(x, y, verbose=0, callbacks=[StopAt(2)])
    assert h.epoch == [0, 1, 2]
    rec = Recorder()
    h = prog(epochs=10).fit(x, y, verbose=0, callbacks=[StopAt(1, batch=1), rec])
    assert h.epoch == [0, 1] and rec.events.count("batch_end 1") == 2 and "batch_begin 2" not in rec.events[-5:]


# --- the built-in callbacks, against Keras 3's rules, on a stand-in model -----------------

class FakeModel:
    def __init__(self):
        self.stop_training = False
        self.weights = [np.zeros(1)]
        self.optimizer = type("Opt", (), {"learning_rate": 1.0})()

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, w):
        self.weights = [np.array(a) for a in w]


def drive(cb, values, key="val_loss"):
    """Feed per-epoch values (weights = the epoch number); the epochs run."""
    m = FakeModel()
    cb.set_model(m)
    cb.on_train_begin({})
    run = 0
    for e, v in enumerate(values):
        m.weights = [np.array([float(e)])]
        cb.on_epoch_end(e, {key: v})
        run += 1
        if m.stop_training:
            break
    cb.on_train_end({})
    return run, m


@pytest.mark.parametrize("kw, values, run, weights", [
    ({"patience": 0}, [3, 2, 2.5, 1], 3, 2),                  # stops at the first epoch that is no better
    ({"patience": 2}, [3, 2, 2.5, 2.4, 1], 4, 3),
    ({"patience": 2, "min_delta": 0.5}, [3, 2.8, 2.6, 1], 3, 2),
    ({"patience": 2}, [3, 2, 2.5, 2.4], 4, 3),
    ({"patience": 2, "baseline": 1.0}, [3, 2, 2.5, 2.4], 3, 2),   # better than the best, not the baseline: wait goes on
    ({"patience": 1, "start_from_epoch": 2}, [1, 5, 6, 7], 4, 3),
    ({"patience": 1, "restore_best_weights": True}, [3, 1, 2, 2], 3, 1),
    ({"patience": 5, "restore_best_weights": True}, [3, 1, 2, 2], 4, 1),   # Keras 3 restores at the end anyway
    ({"patience": 1, "mode": "max", "monitor": "val_auc"}, [0.5, 0.7, 0.6], 3, 2),
    ({"patience": 1, "monitor": "val_auc"}, [0.5, 0.7, 0.6], 3, 2),       # auto: auc goes up
])
def test_early_stopping_follows_keras(kw, values, run, weights):
    cb = EarlyStopping(**kw)
    got, m = drive(cb, values, kw.get("monitor", "val_loss"))
    assert (got, m.weights[0][0]) == (run, weights)


def test_early_stopping_on_a_missing_metric_warns_and_never_stops():
    with pytest.warns(UserWarning, match="val_loss"):
        assert drive(EarlyStopping(), [1, 2, 3], key="loss")[0] == 3


def test_early_stopping_restores_the_best_weights_in_fit():
    x, y = data()
    p = prog(epochs=8)
    seen = []

    class Keep(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((logs["val_loss"], self.model.get_weights()))

    h = p.fit(x, y, validation_split=0.3, verbose=0, callbacks=[
        EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True), Keep()])
    best = int(np.argmin(h.history["val_loss"]))
    for a, b in zip(p.get_weights(), seen[best][1]):
        np.testing.assert_array_equal(a, b)


def test_reduce_lr_on_plateau_follows_keras():
    cb = ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2, min_lr=0.2)
    m = FakeModel()
    cb.set_model(m)
    cb.on_train_begin({})
    lrs, logged = [], []
    for e, v in enumerate([5, 5, 5, 5, 5, 5, 4, 4]):
        logs = {"val_loss": v}
        cb.on_epoch_end(e, logs)
        logged.append(logs["learning_rate"])
        lrs.append(m.optimizer.learning_rate)
    # wait 1 -> reduce (epoch 1); the cooldown counts down at 2 and 3 (Keras decrements it before it
    # checks, so epoch 3 already counts); reduce at 3, again at 5 down to min_lr, then no more
    assert lrs == [1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2]
    assert logged == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2]   # the rate the epoch ran with
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(factor=1.0)


def test_reduce_lr_on_plateau_sets_the_trainers_rate_in_fit():
    x, y = data()
    p = prog(epochs=4)
    h = p.fit(x, y, verbose=0, callbacks=[ReduceLROnPlateau(monitor="loss", patience=0, min_delta=10.0,
                                                            factor=0.5)])
    # epoch 0 sets the best; each later one is no better by 10 and halves the rate (logged: the epoch's own)
    assert h.history["learning_rate"] == [0.01, 0.01, 0.005, 0.0025]
    assert p.optimizer.learning_rate == 0.00125


def test_terminate_on_nan_sets_stop_training():
    cb = TerminateOnNaN()
    m = FakeModel()
    cb.set_model(m)
    cb.on_batch_end(0, {"loss": 1.0})
    assert not m.stop_training
    cb.on_train_batch_end(1, {"loss": float("nan")})
    assert m.stop_training


def test_csv_logger_writes_kerass_columns(tmp_path):
    x, y = data()
    path = tmp_path / "log.csv"
    h = prog(epochs=2).fit(x, y, validation_split=0.2, verbose=0, callbacks=[CSVLogger(str(path))])
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["epoch", *sorted(h.history)]
    assert [r[0] for r in rows[1:]] == ["0", "1"]
    assert float(rows[2][rows[0].index("val_loss")]) == h.history["val_loss"][1]
    prog(epochs=1).fit(x, y, verbose=0, callbacks=[CSVLogger(str(path), separator=";", append=True)])
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and lines[3].startswith("0;")


def test_model_checkpoint_saves_weights_that_load_back(tmp_path):
    x, y = data()
    p = prog(epochs=4)
    vals = []

    class Keep(Callback):
        def on_epoch_end(self, epoch, logs=None):
            vals.append(self.model.predict(x[:5]))

    pattern = str(tmp_path / "ck-{epoch:02d}-{loss:.3f}.npz")
    h = p.fit(x, y, verbose=0, callbacks=[ModelCheckpoint(pattern, monitor="loss", save_best_only=True), Keep()])
    losses = h.history["loss"]
    improved = [e for e in range(4) if losses[e] < min(losses[:e], default=math.inf)]
    names = sorted(f.name for f in tmp_path.iterdir())
    assert names == [f"ck-{e + 1:02d}-{losses[e]:.3f}.npz" for e in improved]
    q = prog()
    q.load_weights(str(tmp_path / names[0]))
    np.testing.assert_allclose(q.predict(x[:5]), vals[improved[0]], rtol=1e-6)


def test_an_object_that_is_no_callback_is_refused():
    with pytest.raises(TypeError, match="not a callback"):
        prog().fit(*data(), verbose=0, callbacks=[object()])


def test_a_monitor_whose_direction_is_unknown_needs_a_mode():
    with pytest.raises(ValueError, match="mode='max'"):
        drive(EarlyStopping(monitor="val_custom"), [1.0], key="val_custom")
    assert drive(EarlyStopping(monitor="val_custom", mode="max", patience=0), [1.0, 2.0, 1.5],
                 key="val_custom")[0] == 3
    with pytest.raises(ValueError, match="mode"):
        ModelCheckpoint("w.npz", mode="up")
