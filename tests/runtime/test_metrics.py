"""The metrics against scikit-learn on random labels and predictions, and AUC
against Keras's documented formula (its thresholds, `>`, the trapezoid rule):
over several batches (the statistics are summed, not the batch values
averaged), on training and validation data, and as monitors."""
import numpy as np
import pytest

import nncompile
from nncompile.errors import CompileError
from nncompile.frontend.metrics import auc_from_histograms



@pytest.fixture
def skm():
    return pytest.importorskip("sklearn.metrics", reason="scikit-learn is the metrics' reference: "
                                                         "pip install scikit-learn")


BINARY = """model m {{
  input x: f32[5]
  dense h(6, tanh)
  dense out({units}, sigmoid)
}}
train {{
  loss = binary_crossentropy
  optimizer = sgd(lr={lr})
  metrics = [{metrics}]
  batch_size = 7
  {extra}
}}
"""
SOFTMAX = """model m {{
  input x: f32[5]
  dense h(6, tanh)
  dense out(4{act})
}}
train {{
  loss = {loss}
  optimizer = sgd(lr=1e-30)
  metrics = [{metrics}]
  batch_size = 7
}}
"""
ALL_BINARY = "accuracy, precision, recall, f1_score, auc, binary_accuracy(0.3), rmse, mse, mae"


def keras_auc(y, p, n=200):
    """Keras 3's AUC(num_thresholds=n) (ROC, interpolation), written from its docs:
    thresholds i/(n-1) with the ends moved by 1e-7, positives where p > t."""
    eps = 1e-7
    t = np.array([0.0 - eps] + [(i + 1) / (n - 1) for i in range(n - 2)] + [1.0 + eps], np.float32)
    y, p = np.asarray(y, bool).ravel(), np.asarray(p, np.float32).ravel()
    above = p[:, None] > t[None, :]
    tp, fp = (above & y[:, None]).sum(0), (above & ~y[:, None]).sum(0)
    fn, tn = y.sum() - tp, (~y).sum() - fp
    tpr = np.divide(tp, tp + fn, out=np.zeros(n), where=(tp + fn) > 0)
    fpr = np.divide(fp, fp + tn, out=np.zeros(n), where=(fp + tn) > 0)
    return float(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2))


def data(n=101, units=1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32) * 2
    y = (rng.random((n, units)) < 0.4).astype(np.float32)
    return x, y


def test_binary_metrics_match_sklearn_over_uneven_batches(skm):
    prog = nncompile.compile(BINARY.format(units=1, lr=0.1, metrics=ALL_BINARY, extra=""))
    x, y = data()
    got = prog.evaluate(x, y, batch_size=7, return_dict=True)   # 15 batches, the last of 3
    assert list(got) == ["loss", "accuracy", "precision", "recall", "f1_score", "auc", "binary_accuracy", "rmse",
                         "mse", "mae"]
    p = prog.predict(x)[:, 0]
    t = y[:, 0]
    want = {"accuracy": skm.accuracy_score(t, p > 0.5), "precision": skm.precision_score(t, p > 0.5),
            "recall": skm.recall_score(t, p > 0.5), "f1_score": skm.f1_score(t, p > 0.5),
            "binary_accuracy": skm.accuracy_score(t, p > 0.3), "rmse": np.sqrt(skm.mean_squared_error(t, p)),
            "mse": skm.mean_squared_error(t, p), "mae": skm.mean_absolute_error(t, p)}
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
    assert got["auc"] == pytest.approx(keras_auc(t, p), abs=1e-6)
    assert got["auc"] == pytest.approx(skm.roc_auc_score(t, p), abs=0.01)   # 200 thresholds: close, not equal
    # the same numbers whatever the batching: the statistics are summed over the batches
    one = prog.evaluate(x, y, batch_size=1000, return_dict=True)
    assert one == pytest.approx(got, rel=1e-5)


def test_a_metric_listed_with_arguments_is_logged_under_its_name(skm):
    prog = nncompile.compile(BINARY.format(units=1, lr=0.1, metrics="precision(thresholds=0.7), auc(50)",
                                           extra=""))
    x, y = data()
    got = prog.evaluate(x, y, return_dict=True)
    p = prog.predict(x)[:, 0]
    assert list(got) == ["loss", "precision", "auc"]
    assert got["precision"] == pytest.approx(skm.precision_score(y[:, 0], p > 0.7), rel=1e-5)
    assert got["auc"] == pytest.approx(keras_auc(y[:, 0], p, 50), abs=1e-6)


def test_multi_unit_metrics_are_micro_averaged_as_keras(skm):
    prog = nncompile.compile(BINARY.format(units=3, lr=0.1, metrics="precision, recall, f1_score, auc", extra=""))
    x, y = data(units=3)
    got = prog.evaluate(x, y, batch_size=7, return_dict=True)
    p = prog.predict(x)
    assert got["precision"] == pytest.approx(skm.precision_score(y, p > 0.5, average="micro"), rel=1e-5)
    assert got["recall"] == pytest.approx(skm.recall_score(y, p > 0.5, average="micro"), rel=1e-5)
    assert got["f1_score"] == pytest.approx(skm.f1_score(y, p > 0.5, average="micro"), rel=1e-5)
    assert got["auc"] == pytest.approx(keras_auc(y, p), abs=1e-6)


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_top_k_and_one_hot_metrics_on_class_labels(loss, skm):
    prog = nncompile.compile(SOFTMAX.format(act=", softmax", loss=loss,
                                            metrics="accuracy, top_k_categorical_accuracy(k=2), "
                                                    "sparse_top_k_categorical_accuracy(3), precision, auc"))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(90, 5)).astype(np.float32) * 3
    labels = rng.integers(0, 4, 90)
    y = labels if loss.startswith("sparse") else np.eye(4, dtype=np.float32)[labels]
    got = prog.evaluate(x, y, batch_size=7, return_dict=True)
    p = prog.predict(x)
    onehot = np.eye(4)[labels]
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(labels, p.argmax(1)), rel=1e-6)
    assert got["top_k_categorical_accuracy"] == pytest.approx(
        skm.top_k_accuracy_score(labels, p, k=2, labels=range(4)), rel=1e-6)
    assert got["sparse_top_k_categorical_accuracy"] == pytest.approx(
        skm.top_k_accuracy_score(labels, p, k=3, labels=range(4)), rel=1e-6)
    assert got["precision"] == pytest.approx(skm.precision_score(onehot.ravel(), p.ravel() > 0.5), rel=1e-5)
    assert got["auc"] == pytest.approx(keras_auc(onehot, p), abs=1e-6)


def test_top_k_counts_ties_at_the_boundary_as_in():
    # a linear model with zero weights scores every class alike: the true class is in any top k
    prog = nncompile.compile(SOFTMAX.format(act="", loss="sparse_categorical_crossentropy",
                                            metrics="top_k_categorical_accuracy(k=1)"))
    prog.set_weights([np.zeros_like(a) for a in prog.get_weights()])
    x = np.ones((6, 5), np.float32)
    assert prog.evaluate(x, np.arange(6) % 4, return_dict=True)["top_k_categorical_accuracy"] == 1.0


def test_from_logits_metrics_read_probabilities(skm):
    src = BINARY.format(units=1, lr=0.1, metrics="precision, auc, binary_accuracy", extra="").replace(
        "dense out(1, sigmoid)", "dense out(1)").replace("loss = binary_crossentropy",
                                                          "loss = binary_crossentropy(from_logits=true)")
    prog = nncompile.compile(src)
    x, y = data()
    got = prog.evaluate(x, y, return_dict=True)
    p = 1 / (1 + np.exp(-prog.predict(x)[:, 0].astype(np.float64)))
    assert got["precision"] == pytest.approx(skm.precision_score(y[:, 0], p > 0.5), rel=1e-5)
    assert got["binary_accuracy"] == pytest.approx(skm.accuracy_score(y[:, 0], p > 0.5), rel=1e-6)
    assert got["auc"] == pytest.approx(keras_auc(y[:, 0], p), abs=1e-5)


def test_training_and_validation_metrics_are_the_epochs_not_a_mean_of_batches(skm):
    # lr 1e-30 leaves the float32 weights as they are (to ~1e-30): the epoch's training metrics are those of
    # the initial weights on the whole training part
    prog = nncompile.compile(BINARY.format(units=1, lr=1e-30, metrics="precision, recall, auc, rmse",
                                           extra="epochs = 1"))
    x, y = data(n=120)
    w0 = prog.get_weights()
    h = prog.fit(x, y, validation_split=0.25, verbose=0)
    assert all(np.allclose(a, b, rtol=0, atol=1e-20) for a, b in zip(w0, prog.get_weights()))   # biases move by ~1e-30
    p = prog.predict(x)[:, 0]
    tr, va = slice(0, 90), slice(90, None)
    for part, prefix in ((tr, ""), (va, "val_")):
        t, q = y[part, 0], p[part]
        assert h.history[prefix + "precision"][0] == pytest.approx(skm.precision_score(t, q > 0.5), rel=1e-5)
        assert h.history[prefix + "recall"][0] == pytest.approx(skm.recall_score(t, q > 0.5), rel=1e-5)
        assert h.history[prefix + "auc"][0] == pytest.approx(keras_auc(t, q), abs=1e-5)
        assert h.history[prefix + "rmse"][0] == pytest.approx(np.sqrt(np.mean((q - t) ** 2)), rel=1e-5)


def test_auc_of_the_histograms_is_keras_formula_and_exact_when_classes_do_not_share_a_bucket(skm):
    rng = np.random.default_rng(3)
    y = rng.random(500) < 0.3
    p = rng.random(500).astype(np.float32)
    pos = np.bincount(np.maximum(np.ceil(p[y] * 199) - 1, 0).astype(int), minlength=200)
    neg = np.bincount(np.maximum(np.ceil(p[~y] * 199) - 1, 0).astype(int), minlength=200)
    assert auc_from_histograms(pos, neg) == pytest.approx(keras_auc(y, p), abs=1e-9)
    grid = (np.arange(40) + 0.5) / 40    # every prediction alone in its bucket
    ys = rng.random(40) < 0.5
    b = np.maximum(np.ceil(grid * 199) - 1, 0).astype(int)
    h = lambda m: np.bincount(b[m], minlength=200)
    assert auc_from_histograms(h(ys), h(~ys)) == pytest.approx(skm.roc_auc_score(ys, grid), abs=1e-9)


@pytest.mark.parametrize("monitor, mode", [("val_auc", "max"), ("val_precision", "max"), ("f1_score", "max"),
                                           ("val_rmse", "min"), ("val_loss", "min")])
def test_new_metrics_are_monitors_with_their_direction(monitor, mode):
    prog = nncompile.compile(BINARY.format(units=1, lr=0.1, metrics="auc, precision, f1_score, rmse",
                                           extra="validation = split(0.2)\n  early_stopping = { monitor: "
                                                 + monitor + ", patience: 1 }"))
    assert prog.ast.train.early_stopping.mode == mode


@pytest.mark.parametrize("metrics, message", [
    ("auc(num_thresholds=1)", "num_thresholds"),
    ("top_k_categorical_accuracy(k=0)", "k"),
    ("precision(thresholds=1.5)", "thresholds"),
    ("precision(threshold=0.5)", "threshold"),
    ("precision, precision(0.3)", "listed twice"),
])
def test_bad_metric_arguments_point_at_them(metrics, message):
    with pytest.raises(CompileError) as e:
        nncompile.compile(BINARY.format(units=1, lr=0.1, metrics=metrics, extra=""))
    text = str(e.value)
    assert message in text and "^" in text and ":9:" in text


RESUMABLE = """model m {
  input x: f32[4]
  dense h(8, relu)
  dense o(3, softmax)
}
train {
  data = synthetic.classification(samples=60, features=4, classes=3, seed=2)
  loss = sparse_categorical_crossentropy
  optimizer = adam(lr=0.01)
  metrics = [auc, precision, rmse]
  weighted_metrics = [accuracy]
  class_weight = {1: 4}
  epochs = 3
  batch_size = 8
  validation = split(0.2)
}
"""


def test_a_checkpoint_inside_an_epoch_keeps_the_metrics_statistics(tmp_path, monkeypatch):
    """AUC's histograms are vectors in the epoch's sums: a mid-epoch checkpoint
    saves them and the resumed run ends with the history of an uninterrupted one."""
    from nncompile.runtime.checkpoint import load_checkpoint
    from nncompile.runtime.loop import TrainingInterrupted, fit
    from nncompile.runtime.trainer import Trainer
    ref = fit(nncompile.compile(RESUMABLE), quiet=True)
    real, calls = Trainer.train_batch, {"n": 0}

    def flaky(self, *args):
        calls["n"] += 1
        if calls["n"] == 10:   # the 4th batch of epoch 1 (6 batches an epoch)
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(Trainer, "train_batch", flaky)
    with pytest.raises(TrainingInterrupted):
        fit(nncompile.compile(RESUMABLE), quiet=True, record=str(tmp_path / "run"), checkpoint_every="2steps")
    monkeypatch.setattr(Trainer, "train_batch", real)
    st = load_checkpoint(str(tmp_path / "run" / "checkpoint.npz"))
    assert (st.epoch, st.batch) == (1, 2) and st.sums["auc/pos"].shape == (200,)
    res = fit(nncompile.compile(RESUMABLE), quiet=True, resume=str(tmp_path / "run"), record=True)
    assert res.history == ref.history
