"""Sparse labels outside the output's classes are refused before a step (a label
indexes a row of the output: the native kernels would read and write outside
it), through every API path that takes labels."""
import os

import numpy as np
import pytest

import nncompile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def prog():
    return nncompile.compile(os.path.join(ROOT, "examples", "digits.nn"))


def _batch(label_at_3):
    x = np.random.default_rng(0).random((8, 64), np.float32)
    y = np.arange(8, dtype=np.int64) % 10
    y[3] = label_at_3
    return x, y


@pytest.mark.parametrize("bad", [10, 11, -1, 2 ** 40])
def test_trainer_step_refuses_a_label_outside_the_classes(prog, bad):
    tr = prog.trainer(seed=0)
    before = tr.host("model_state")
    x, y = _batch(bad)
    with pytest.raises(ValueError, match=rf"y\[3\] = {bad} is not a class index: expected 0\.\.9"):
        tr.step(x, y)
    after = tr.host("model_state")
    assert all(np.array_equal(before[k], after[k]) for k in before)   # nothing was updated
    assert np.isfinite(tr.step(*_batch(9)))                          # and the trainer still works


def test_loss_and_grads_refuses_a_label_outside_the_classes(prog):
    params = prog.trainer(seed=0).host("params")
    with pytest.raises(ValueError, match=r"y\[3\] = 12 is not a class index"):
        prog.loss_and_grads(params, *_batch(12))
