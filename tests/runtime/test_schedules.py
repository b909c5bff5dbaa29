"""Learning-rate schedules: the frontend setting and the runtime values."""
import math

import pytest

from nncompile.errors import CompileError
from nncompile.frontend import parse_source
from nncompile.runtime.schedules import (Constant, CosineDecay, ReduceOnPlateau, make_schedule)

MODEL = """model m {
  input x: f32[4]
  dense h(8, relu)
  dense out(3, softmax)
}
"""


def prog(schedule: str, extra: str = "", epochs: int = 20):
    src = MODEL + f"""train {{
  loss = sparse_categorical_crossentropy
  optimizer = sgd(lr=0.1)
  metrics = [accuracy]
  epochs = {epochs}
  schedule = {schedule}
{extra}}}
"""
    return parse_source(src, "model.nn")


def lrs(spec, epochs=20, base=0.1):
    s = make_schedule(spec, base, epochs)
    return [s.lr_for_epoch(e) for e in range(epochs)]


def test_no_schedule_is_constant():
    s = make_schedule(None, 0.01, 5)
    assert isinstance(s, Constant)
    assert [s.lr_for_epoch(e) for e in range(5)] == [0.01] * 5
    assert s.on_epoch_end(0, {"loss": 1.0}) == 0.01


def test_step_defaults_and_values():
    p = prog("step")
    assert p.train.schedule.kind == "step"
    assert p.train.schedule.params == {"every": 10, "factor": 0.5}
    p = prog("step(every=3, factor=0.5)")
    v = lrs(p.train.schedule, 10)
    assert v[:3] == [0.1] * 3 and v[3:6] == [0.05] * 3 and v[9] == pytest.approx(0.0125)


def test_exponential():
    p = prog("exponential(rate=0.9)")
    assert p.train.schedule.params == {"rate": 0.9, "every": 1}
    v = lrs(p.train.schedule, 5)
    assert v == pytest.approx([0.1 * 0.9 ** e for e in range(5)])
    v = lrs(prog("exponential(0.5, every=2)").train.schedule, 6)
    assert v == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_cosine_with_warmup():
    p = prog("cosine(warmup=5, min_lr=0.001)", epochs=25)
    v = lrs(p.train.schedule, 25)
    # warmup: linear up to the base rate
    assert v[:5] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1])
    assert v[5] == pytest.approx(0.1)
    # then monotone cosine decay towards min_lr, reached at the end of training
    assert all(a >= b for a, b in zip(v[5:], v[6:]))
    assert v[15] == pytest.approx(0.001 + (0.1 - 0.001) * 0.5)
    s = make_schedule(p.train.schedule, 0.1, 25)
    assert s.lr_for_epoch(25) == pytest.approx(0.001)
    assert min(v) > 0.001


def test_cosine_without_warmup_starts_at_base():
    v = lrs(prog("cosine").train.schedule, 20)
    assert v[0] == pytest.approx(0.1) and v[-1] > 0


def test_plateau_reduces_after_patience_and_respects_min_lr():
    p = prog("reduce_on_plateau(monitor=loss, factor=0.5, patience=2, min_delta=0, min_lr=0.02)")
    s = make_schedule(p.train.schedule, 0.1, 20)
    assert isinstance(s, ReduceOnPlateau) and s.mode == "min"
    seen = []
    for e, loss in enumerate([1.0, 0.9, 0.9, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]):
        seen.append(s.on_epoch_end(e, {"loss": loss}))
    assert seen[:3] == [0.1, 0.1, 0.1]
    assert seen[3] == pytest.approx(0.05)       # two epochs without improvement
    assert seen[5] == pytest.approx(0.025)
    assert seen[7] == pytest.approx(0.02)       # clamped at min_lr
    assert seen[9] == pytest.approx(0.02)
    assert s.lr_for_epoch(10) == pytest.approx(0.02)


def test_plateau_nan_never_improves_and_mode_max():
    s = ReduceOnPlateau(1.0, 10, monitor="accuracy", mode="max", factor=0.1, patience=1, min_delta=0)
    assert s.on_epoch_end(0, {"accuracy": 0.5}) == 1.0
    assert s.on_epoch_end(1, {"accuracy": float("nan")}) == pytest.approx(0.1)
    assert s.on_epoch_end(2, {"accuracy": 0.6}) == pytest.approx(0.1)


def test_plateau_cooldown():
    s = ReduceOnPlateau(1.0, 10, monitor="loss", factor=0.5, patience=1, min_delta=0, cooldown=2)
    out = [s.on_epoch_end(e, {"loss": 1.0}) for e in range(6)]
    # Keras's counting: the cooldown counter runs down from the epoch after a
    # reduction and reaches 0 within the epoch that may reduce again
    assert out == pytest.approx([1.0, 0.5, 0.5, 0.25, 0.25, 0.125])


def test_plateau_state_round_trip():
    s = ReduceOnPlateau(1.0, 10, monitor="loss", factor=0.5, patience=1, min_delta=0)
    for e, v in enumerate([1.0, 1.0, 0.5]):
        s.on_epoch_end(e, {"loss": v})
    d = s.state_dict()
    import json
    d = json.loads(json.dumps(d))
    t = ReduceOnPlateau(1.0, 10, monitor="loss", factor=0.5, patience=1, min_delta=0)
    t.load_state_dict(d)
    assert (t.lr, t.best, t.wait) == (s.lr, s.best, s.wait)
    assert t.on_epoch_end(3, {"loss": 0.7}) == s.on_epoch_end(3, {"loss": 0.7})
    with pytest.raises(ValueError):
        CosineDecay(1.0, 10).load_state_dict(d)


def test_plateau_default_monitor():
    p = prog("reduce_on_plateau")
    assert p.train.schedule.params["monitor"] == "loss"
    p = prog("reduce_on_plateau", extra="  validation = split(0.2)\n")
    assert p.train.schedule.params["monitor"] == "val_loss"
    assert p.train.schedule.params["patience"] == 10
    p = prog("reduce_on_plateau(monitor=val_accuracy)", extra="  validation = split(0.2)\n")
    assert p.train.schedule.params["mode"] == "max"


@pytest.mark.parametrize("schedule,phrase,col", [
    ("stpe(3)", "unknown schedule 'stpe'", 14),
    ("step(every=0)", "every (epochs) must be an integer >= 1", 25),
    ("step(factor=1.5)", "factor must be in (0, 1]", 26),
    ("exponential(rate=0)", "rate must be in (0, 1]", 31),
    ("cosine(warmup=20)", "warmup (20 epochs) must be less than epochs (20)", 28),
    ("cosine(min_lr=0.5)", "min_lr (0.5) must be less than the optimizer's lr (0.1)", 28),
    ("reduce_on_plateau(monitor=val_loss)", "monitor 'val_loss' is not a logged metric (there is no validation", 40),
    ("reduce_on_plateau(monitor=acuracy)", "monitor 'acuracy' is not a logged metric", 40),
    ("reduce_on_plateau(factor=1)", "factor must be in (0, 1)", 39),
    ("reduce_on_plateau(patience=-1)", "patience must be an integer >= 0", 41),
    ("step(every=2, gamma=0.1)", "unknown argument 'gamma'", 28),
    ("0.1", "schedule must be a schedule call", 14),
])
def test_schedule_errors(schedule, phrase, col):
    with pytest.raises(CompileError) as e:
        prog(schedule)
    assert phrase in e.value.message, str(e.value)
    assert (e.value.loc.line, e.value.loc.column) == (11, col), str(e.value)
    assert str(e.value).startswith("model.nn:11:")


def test_the_trainer_takes_the_scheduled_rate_without_recompiling():
    import numpy as np
    from nncompile.compiler import Program
    p = Program(prog("step(every=1, factor=0.5)"))
    t = p.trainer()
    sched = make_schedule(p.ast.train.schedule, p.ast.train.optimizer.params["lr"], p.ast.train.epochs)
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    y = np.arange(8) % 3
    for epoch, lr in enumerate([0.1, 0.05, 0.025]):
        t.lr = sched.lr_for_epoch(epoch)
        assert t.lr == pytest.approx(lr)
        w = t.host("params")["out.weight"]
        _, g = p.loss_and_grads(t.host("params"), x, y)
        t.train_batch(x, y)
        # plain sgd: the step is lr * grad, with this epoch's lr
        np.testing.assert_allclose(w - t.host("params")["out.weight"], lr * g["out.weight"], rtol=1e-4, atol=1e-7)
        sched.on_epoch_end(epoch, {"loss": 1.0})
