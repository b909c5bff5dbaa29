"""The `normalization` layer: its mean and variance adapted from the training
features before training (Keras's Normalization.adapt: per feature, the
variance biased), saved with the weights, so `predict` on raw features is
right; Keras's formula (x - mean) / max(sqrt(var), 1e-7)."""
import numpy as np
import pytest

import nncompile
from nncompile import cli
from nncompile.errors import CompileError
from nncompile.runtime.weights import load_weights

SRC = """model m {
  input x: f32[3]
  normalization norm
  dense h(8, tanh)
  dense o(2, softmax)
}
train {
  data = csv("train.csv", target=["label"])
  loss = sparse_categorical_crossentropy
  optimizer = adam(lr=0.05)
  metrics = [accuracy]
  epochs = 15
  batch_size = 16
}
"""


def _features(n, seed=0):
    rng = np.random.default_rng(seed)
    # far from standard: a large offset and scale, a tiny scale, a constant column
    return np.c_[rng.normal(100, 20, n), rng.normal(-5, 0.01, n), np.full(n, 3.0)].astype(np.float32)


@pytest.fixture
def trained(tmp_path):
    x = _features(80)
    y = ((x[:, 0] - 100) / 20 + (x[:, 1] + 5) / 0.01 > 0).astype(int)
    (tmp_path / "train.csv").write_text("a,b,c,label\n" + "".join(
        f"{r[0]!r},{r[1]!r},{r[2]!r},{l}\n" for r, l in zip(x.tolist(), y)))
    (tmp_path / "m.nn").write_text(SRC)
    assert cli.main(["run", str(tmp_path / "m.nn"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    return tmp_path, x, y


def _keras_forward(w, x):
    z = (x - w["norm.mean"]) / np.maximum(np.sqrt(w["norm.variance"]), 1e-7)
    h = np.tanh(z @ w["h.weight"] + w["h.bias"])
    o = h @ w["o.weight"] + w["o.bias"]
    e = np.exp(o - o.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_adapted_statistics_are_saved_with_the_weights(trained):
    d, x, y = trained
    prog = nncompile.compile(str(d / "m.nn"))
    w = load_weights(str(d / "run" / "weights_final.npz"), prog)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(w["norm.mean"], x64.mean(0), rtol=1e-6)
    np.testing.assert_allclose(w["norm.variance"], x64.var(0), rtol=1e-5, atol=1e-12)   # biased, as Keras
    assert w["norm.variance"][2] == 0                           # the constant column
    new = _features(6, seed=1)
    np.testing.assert_allclose(prog.predict(w, new), _keras_forward(w, new.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_predict_on_raw_features(trained, capsys):
    d, x, y = trained
    prog = nncompile.compile(str(d / "m.nn"))
    w = load_weights(str(d / "run" / "weights_final.npz"), prog)
    (d / "new.csv").write_text("a,b,c\n" + "".join(f"{r[0]!r},{r[1]!r},{r[2]!r}\n" for r in x[:8].tolist()))
    assert cli.main(["predict", str(d / "m.nn"), "--weights", str(d / "run"), "--input", str(d / "new.csv"),
                     "--output", str(d / "out.csv")]) == 0
    got = np.array([[float(v) for v in l.split(",")[1:]] for l in (d / "out.csv").read_text().splitlines()[1:]])
    np.testing.assert_allclose(got, _keras_forward(w, x[:8].astype(np.float64)), rtol=1e-4, atol=1e-6)
    # the adapted input lets the model learn the problem, though the raw features are far from standard
    assert (got.argmax(1) == y[:8]).mean() >= 0.75


def test_fit_adapts_before_the_first_step(tmp_path):
    x = _features(40)
    (tmp_path / "train.csv").write_text("a,b,c,label\n" + "".join(
        f"{r[0]!r},{r[1]!r},{r[2]!r},{i % 2}\n" for i, r in enumerate(x.tolist())))
    (tmp_path / "m.nn").write_text(SRC.replace("epochs = 15", "epochs = 1"))
    prog = nncompile.compile(str(tmp_path / "m.nn"))
    before = prog.trainer().host("state")
    assert (before["norm.mean"] == 0).all() and (before["norm.variance"] == 1).all()   # untrained: identity
    seen = {}
    h = prog.fit(quiet=True, on_epoch=lambda e, logs, t: seen.update(t.host("state")))
    np.testing.assert_allclose(seen["norm.mean"], x.astype(np.float64).mean(0), rtol=1e-6)
    assert np.isfinite(h.history["loss"]).all()


def test_normalization_reads_the_models_input():
    src = SRC.replace("  normalization norm\n  dense h(8, tanh)\n", "  dense h(8, tanh)\n  normalization norm\n")
    with pytest.raises(CompileError, match="normalization layer 'norm' is adapted to the training data, so it "
                                           "reads the model's input 'x', not 'h'") as e:
        nncompile.compile(src)
    assert e.value.loc.line == 4
    nncompile.compile(SRC.replace("normalization norm", "normalization norm(from=x)"))   # named: the same
