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
