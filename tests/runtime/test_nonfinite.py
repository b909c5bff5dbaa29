"""A NaN/Inf batch stops training with a report naming the first IR node that
produced it and its place in the .nn file; --on-nan rollback restores the last
good epoch."""
import os
import subprocess
import sys

import numpy as np
import pytest

import nncompile
from nncompile.runtime.data import Dataset
from nncompile.runtime.loop import fit
from nncompile.runtime.weights import load_arrays

SRC = """model m {
  input x: f32[3]
  dense h(8, relu)
  dense o(1, linear)
}
train {
  loss = mse
  optimizer = sgd(lr=0.01)
  epochs = 6
  batch_size = 8
}
"""


def _data():
    rng = np.random.default_rng(0)
    return Dataset(rng.normal(size=(64, 3)).astype(np.float32), rng.normal(size=(64, 1)).astype(np.float32), "t")


@pytest.mark.parametrize("on_nan", ["stop", "rollback"])
def test_a_bad_batch_in_epoch_3_is_found_and_reported(on_nan):
    prog = nncompile.compile(SRC)
    ds = _data()
    states = []

    def hook(epoch, logs, trainer):
        states.append(trainer.host("arrays"))
        if epoch == 2:
            ds.y[5] = 1e20      # (y_hat - y)^2 overflows float32 from epoch 3 on

    h = fit(prog, data=ds, on_epoch=hook, on_nan=on_nan, quiet=True)
    rep = h.nonfinite
    assert h.stop_reason.startswith("non-finite loss at epoch 3, batch ")
    assert (rep.epoch, rep.what, rep.value) == (3, "loss", float("inf"))
    n = rep.node
    assert n.op == "square" and n.layer == "loss" and (n.loc.line, n.loc.column) == (7, 10)
    assert rep.step == 3 * 8 + rep.batch + 1
    assert "<string>:7:10: error: the first non-finite value is" in h.report and "layer 'loss'" in h.report
    assert " 7 |   loss = mse" in h.report
    if on_nan == "rollback":   # the rolled-back epoch never happened: it is not a history row
        assert len(h.history["loss"]) == 3 and h.epochs_run == 3
        assert all(np.isfinite(v) for v in h.history["loss"])
    else:                      # the epoch stopped inside: its row shows the value
        assert len(h.history["loss"]) == 4 and h.history["loss"][3] == float("inf")
    final = h.trainer.host("arrays")
    assert all(np.all(np.isfinite(v)) for v in final.values())
    if on_nan == "rollback":   # exactly the end of epoch 2
        assert "rolled back to the state at the end of epoch 2; epoch 3 is not in the history" in h.report
        for k in final:
            assert final[k].tobytes() == states[2][k].tobytes()
        assert h.trainer.step_count == 3 * 8
    else:                      # the state just before the step that produced it
        assert f"the weights are those before step {rep.step}" in h.report
        assert h.trainer.step_count == rep.step - 1


def test_nan_never_counts_as_a_batch_loss_average():
    """Training stops at the first non-finite batch, not at the end of the epoch."""
    prog = nncompile.compile(SRC)
    ds = _data()
    ds.y[:] = 1e30  # finite targets whose squared error overflows (NaN targets are refused before training)
    h = fit(prog, data=ds, quiet=True)
    assert h.nonfinite.batch == 0 and h.nonfinite.step == 1 and h.trainer.step_count == 0
    assert h.nonfinite.node is not None


def test_cli_nan_exits_1_with_the_report_on_stderr(tmp_path):
    rows = ["a,b,c,y"] + [f"{i % 5},{i % 3},{i % 7},{i % 4}" for i in range(40)]
    rows[17] = "1,2,3,1e30"
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "m.nn").write_text(SRC.replace("  loss = mse", '  data = csv("d.csv", target=["y"])\n  loss = mse'))
    env = {k: v for k, v in os.environ.items() if k != "NNCOMPILE_DEBUG"}
    r = subprocess.run([sys.executable, "-m", "nncompile", "run", "m.nn", "--out", "run", "--on-nan", "rollback"],
                       cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "Training stopped: non-finite loss (inf) at epoch 0" in r.stderr
    assert "m.nn:8:10: error: the first non-finite value is" in r.stderr and "square" in r.stderr
    assert "rolled back to the initial state" in r.stderr
    # the run folder still has a checkpoint to resume from and the (rolled back) weights
    w, _ = load_arrays(str(tmp_path / "run" / "weights_final.npz"))
    init = nncompile.compile(str(tmp_path / "m.nn")).init_params(0)
    for k in init:
        np.testing.assert_array_equal(w[k], init[k])
    assert (tmp_path / "run" / "checkpoint.npz").exists()
