"""fp16 dynamic loss scaling (passes/loss_scale.py): Keras's LossScaleOptimizer
constants; an overflowing step is skipped and halves the scale; the steps equal
torch's GradScaler driving torch Adam on a model that rounds the same operands to
fp16; the scale is in the checkpoint, so a resumed run is bit-identical."""
import numpy as np
import pytest

import nncompile
from nncompile.passes.loss_scale import GOOD, GROWTH_STEPS, INITIAL_SCALE, SCALE, SKIPPED
from nncompile.runtime.checkpoint import load_checkpoint
from nncompile.runtime.loop import TrainingInterrupted, fit
from nncompile.runtime.records import RunRecord

SRC = """
model m {{
  input x: f32[5]
  dense h(8, tanh)
  dense out(2)
}}
train {{
  loss = mse
  optimizer = adam(lr=0.01, eps=1e-12)
  batch_size = 4
  precision = {precision}
}}
"""


def _scale(tr):
    st = tr.host("state")
    return float(st[SCALE][0]), float(st[GOOD][0]), float(st[SKIPPED][0])


def test_keras_constants_and_only_f16_scales():
    assert (INITIAL_SCALE, GROWTH_STEPS) == (2.0 ** 15, 2000)   # keras.optimizers.LossScaleOptimizer's
    for precision in ("f32", "mixed_bf16"):
        assert SCALE not in nncompile.compile(SRC.format(precision=precision)).graphs.train_step.inputs
    prog = nncompile.compile(SRC.format(precision="mixed_f16"))
    assert SCALE in prog.graphs.train_step.inputs
    assert _scale(prog.trainer(seed=0)) == (2.0 ** 15, 0.0, 0.0)
    assert SCALE not in prog.graphs.loss_and_grads.inputs       # only the training step scales


def test_an_overflowing_step_is_skipped_and_halves_the_scale():
    prog = nncompile.compile(SRC.format(precision="mixed_f16"))
    tr = prog.trainer(seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    big = np.full((4, 2), 30.0, np.float32)      # dy ~ 2 * 30 / 8 * 2^15 > 65504: inf in fp16
    before = tr.host("arrays")
    loss = tr.step(x, big)
    assert np.isfinite(loss)                     # the forward is fine; the scaled gradient overflows
    after = tr.host("arrays")
    assert _scale(tr) == (2.0 ** 14, 0.0, 1.0)
    for k in before:
        if not k.startswith("loss_scale."):
            np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    while _scale(tr)[2] < 3:                     # 2^14 and 2^13 still overflow
        tr.step(x, big)
    assert _scale(tr) == (2.0 ** 12, 0.0, 3.0)
    tr.step(x, big)                              # 2 * 30 / 8 * 2^12 = 30720: finite
    assert _scale(tr) == (2.0 ** 12, 1.0, 3.0)
    assert not np.array_equal(tr.host("params")["h.weight"], before["h.weight"])


def test_the_scale_doubles_after_2000_finite_steps():
    tr = nncompile.compile(SRC.format(precision="mixed_f16")).trainer(seed=0)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal((4, 2)).astype(np.float32) * 0.1
    for _ in range(GROWTH_STEPS - 1):
        tr.step(x, y)
    assert _scale(tr) == (2.0 ** 15, GROWTH_STEPS - 1, 0.0)
    tr.step(x, y)
    assert _scale(tr) == (2.0 ** 16, 0.0, 0.0)


def test_steps_equal_torch_gradscaler_with_adam():
    """torch.amp.GradScaler (set to Keras's initial scale) around torch.optim.Adam,
    on the same model with each matmul's operands and dy rounded to fp16 in float64:
    the same skipped steps and scales, the same parameters (Adam's step count skips
    the skipped steps in both)."""
    torch = pytest.importorskip("torch", reason="needs torch (GradScaler, the oracle)")
    from rounded import rounded_matmul
    mm = rounded_matmul("f16")
    prog = nncompile.compile(SRC.format(precision="mixed_f16"), float_dtype="f64")
    tr = prog.trainer(seed=0)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in tr.host("params").items()}
    opt = torch.optim.Adam(list(p.values()), lr=0.01, eps=1e-12)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 15, growth_factor=2.0, backoff_factor=0.5,
                                  growth_interval=2000)
    rng = np.random.default_rng(2)
    for i in range(10):
        x = rng.standard_normal((4, 5))
        y = rng.standard_normal((4, 2)) * (40.0 if i in (0, 1, 5) else 1.0)    # steps 0, 1, 5 overflow
        ours = tr.step(x, y)
        opt.zero_grad()
        h = torch.tanh(mm(torch.tensor(x), p["h.weight"]) + p["h.bias"])
        loss = ((mm(h, p["out.weight"]) + p["out.bias"] - torch.tensor(y)) ** 2).mean()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        assert ours == pytest.approx(loss.item(), rel=1e-10)
        assert _scale(tr)[0] == scaler.get_scale(), i
    assert _scale(tr)[2] >= 3
    for k, v in tr.host("params").items():
        np.testing.assert_allclose(v, p[k].detach().numpy(), rtol=1e-7, atol=1e-12, err_msg=k)   # Keras's and torch's eps placements


RUN = """model m {
  input x: f32[6]
  dense h(16, relu)
  dense o(1)
}
train {
  data = synthetic.regression(samples=96, features=6, noise=300, seed=4)
  loss = mse
  optimizer = adam(lr=0.01)
  epochs = 6
  batch_size = 8
  seed = 7
  precision = mixed_f16
  log_every = 100
}
"""


def test_resume_is_exact_with_the_scale_in_the_checkpoint(tmp_path):
    prog = nncompile.compile(RUN)
    ref = fit(prog, quiet=True, record=RunRecord.create(prog, str(tmp_path / "ref")))
    assert _scale(ref.trainer)[2] > 0           # some steps overflowed: the scale moved

    rec = RunRecord.create(prog, str(tmp_path / "run"))

    def stop_at_2(epoch, logs, trainer):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        fit(prog, quiet=True, record=rec, on_epoch=stop_at_2)
    st = load_checkpoint(rec.checkpoint_path)
    assert SCALE in st.arrays and st.arrays[SKIPPED][0] > 0
    prog2 = nncompile.compile(RUN)
    res = fit(prog2, quiet=True, record=RunRecord(rec.path, prog2), resume=st)
    assert res.history == ref.history
    a, b = res.trainer.host("arrays"), ref.trainer.host("arrays")
    assert set(a) == set(b)
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), k
