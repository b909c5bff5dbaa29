"""Early stopping on scripted validation curves."""
import math

import pytest

from nncompile.runtime.callbacks import EarlyStopping


def run(curve, **kw):
    es = EarlyStopping("val_loss", **kw)
    for epoch, v in enumerate(curve):
        _, stop = es.update(epoch, v)
        if stop:
            return es, epoch
    return es, None


def test_stops_after_patience_epochs_without_improvement():
    es, stopped = run([1.0, 0.8, 0.7, 0.71, 0.72, 0.69, 0.75, 0.76, 0.77], patience=3)
    assert (es.best_epoch, es.best, stopped) == (5, 0.69, 8)


def test_patience_zero_stops_at_the_first_non_improving_epoch():
    es, stopped = run([1.0, 0.9, 0.95, 0.5], patience=0)
    assert (es.best_epoch, stopped) == (1, 2)


def test_min_delta_requires_a_real_improvement():
    es, stopped = run([1.0, 0.9995, 0.999, 0.9985], patience=2, min_delta=1e-2)
    assert (es.best_epoch, stopped) == (0, 2)


def test_max_mode_for_accuracy():
    es = EarlyStopping("val_accuracy", mode="max", patience=1)
    results = [es.update(e, v) for e, v in enumerate([0.5, 0.7, 0.69, 0.8, 0.8, 0.79])]
    assert es.best_epoch == 3 and results[-1] == (False, True)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_never_improve(bad):
    es, stopped = run([1.0, bad, bad, 0.9], patience=5)
    assert es.best_epoch == 3 and es.best == 0.9
    es, stopped = run([bad, bad], patience=1)
    assert es.best is None and stopped == 0  # one epoch without improvement = patience 1


def test_start_from_epoch_ignores_early_epochs():
    es, stopped = run([0.1, 0.2, 0.3, 0.25, 0.26, 0.27], patience=1, start_from_epoch=2)
    assert (es.best_epoch, stopped) == (3, 4)


def test_state_round_trips():
    es, _ = run([1.0, 0.5, 0.6], patience=5)
    es2 = EarlyStopping("val_loss", patience=5)
    es2.load_state_dict(es.state_dict())
    assert es2.update(3, 0.55) == es.update(3, 0.55)


@pytest.mark.parametrize("curve,stopped,reason", [
    ([1.0, 0.8, 0.6, 0.65, 0.7, 0.5], 4, "early stopping"),
    ([1.0, 0.8, 0.6, float("nan"), 0.5], 3, "non-finite val_loss at epoch 3"),
])
def test_fit_restores_the_weights_of_the_best_epoch(monkeypatch, curve, stopped, reason):
    """A scripted validation curve through the real fit loop: training stops at the
    right epoch and the trainer ends with exactly the weights of the best epoch."""
    import numpy as np
    import nncompile
    from nncompile.runtime.trainer import Trainer

    src = """
model m {
  input x: f32[4]
  dense o(2, softmax)
}
train {
  data = synthetic.classification(samples=64, features=4, classes=2, seed=0)
  loss = sparse_categorical_crossentropy
  optimizer = sgd(lr=0.1)
  epochs = 50
  validation = split(0.25)
  early_stopping = { monitor: val_loss, patience: 2 }
}
"""
    values = iter(curve)
    monkeypatch.setattr(Trainer, "evaluate", lambda self, x, y, bs=1024: {"loss": next(values)})
    snapshots = []
    prog = nncompile.compile(src)
    hist = prog.fit(quiet=True, on_epoch=lambda epoch, logs, trainer: snapshots.append(trainer.host()))
    assert hist.stopped_epoch == stopped and hist.best_epoch == 2 and hist.restored
    assert hist.stop_reason == reason
    assert "best epoch 2, val_loss 0.6; weights restored" in hist.message
    final = hist.trainer.host()
    for k in final:
        np.testing.assert_array_equal(final[k], snapshots[2][k])
        assert not np.array_equal(final[k], snapshots[stopped][k])
