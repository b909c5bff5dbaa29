"""Class and sample weights as Keras 3 defines them: the loss is sum(w_i l_i) / N
over a batch ("sum_over_batch_size"), the weighted metrics are weighted means /
weighted counts (checked against scikit-learn's sample_weight), metrics= stay
unweighted, class_weight becomes per-sample weights of the training data only."""
import numpy as np
import pytest

import nncompile
from nncompile.errors import CompileError



@pytest.fixture
def skm():
    return pytest.importorskip("sklearn.metrics", reason="scikit-learn is the weighted metrics' reference: "
                                                         "pip install scikit-learn")


SRC = """model m {{
  input x: f32[4]
  dense h(6, tanh)
  dense o({units}{act})
}}
train {{
  loss = {loss}
  optimizer = sgd(lr=0.05)
  metrics = [{metrics}]
  {extra}
  epochs = 2
  batch_size = 8
}}
"""


def prog(loss="sparse_categorical_crossentropy", units=3, act=", softmax", metrics="accuracy", extra=""):
    return nncompile.compile(SRC.format(loss=loss, units=units, act=act, metrics=metrics, extra=extra))


def data(n=50, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, classes, n), rng.random(n) * 3


def test_weighted_loss_is_kerass_sum_over_batch_size():
    p = prog()
    x, y, w = data()
    probs = p.predict(x).astype(np.float64)
    per = -np.log(probs[np.arange(len(y)), y])
    got = p.evaluate(x, y, sample_weight=w, batch_size=7)
    assert got[0] == pytest.approx(np.sum(w * per) / len(y), rel=1e-5)   # not / sum(w)
    assert got[1] == pytest.approx(np.mean(probs.argmax(1) == y))      # metrics= are not weighted (Keras 3)
    q = prog(loss="mse", units=2, act="", metrics="mae")
    t = np.random.default_rng(1).normal(size=(50, 2)).astype(np.float32)
    out = q.predict(x).astype(np.float64)
    assert q.evaluate(x, t, sample_weight=w)[0] == pytest.approx(np.sum(w * ((out - t) ** 2).mean(1)) / 50, rel=1e-5)


def test_weighted_gradient_is_the_weighted_sum_of_per_sample_gradients():
    p = prog()
    x, y, w = data(n=6)
    params = p.init_params(0)
    loss, grads = p.loss_and_grads(params, x, y, sample_weight=w)
    singles = [p.loss_and_grads(params, x[i:i + 1], y[i:i + 1]) for i in range(6)]
    assert loss == pytest.approx(sum(wi * l for wi, (l, _) in zip(w, singles)) / 6, rel=1e-5)
    for k, g in grads.items():
        want = sum(wi * gi[k] for wi, (_, gi) in zip(w, singles)) / 6
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-6)
    # without weights the weighted graphs give the plain mean
    assert p.loss_and_grads(params, x, y)[0] == pytest.approx(np.mean([l for l, _ in singles]), rel=1e-5)


def test_weighted_metrics_match_sklearn_and_take_kerass_names(skm):
    p = prog(loss="binary_crossentropy", units=1, act=", sigmoid", metrics="accuracy, precision",
             extra="weighted_metrics = [accuracy, precision, recall, auc, mse]")
    assert list(map(str, p.ast.train.weighted_metrics)) == ["weighted_accuracy", "weighted_precision", "recall",
                                                            "auc", "mse"]
    x, _, w = data(n=90)
    y = (np.random.default_rng(2).random(90) < 0.4).astype(np.float32)
    got = p.evaluate(x, y, sample_weight=w, batch_size=7, return_dict=True)
    q = p.predict(x)[:, 0]
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, q > 0.5), rel=1e-6)
    assert got["precision"] == pytest.approx(skm.precision_score(y, q > 0.5), rel=1e-5)
    assert got["weighted_accuracy"] == pytest.approx(skm.accuracy_score(y, q > 0.5, sample_weight=w), rel=1e-5)
    assert got["weighted_precision"] == pytest.approx(skm.precision_score(y, q > 0.5, sample_weight=w), rel=1e-5)
    assert got["recall"] == pytest.approx(skm.recall_score(y, q > 0.5, sample_weight=w), rel=1e-5)
    assert got["mse"] == pytest.approx(skm.mean_squared_error(y, q, sample_weight=w), rel=1e-5)
    # the weighted ROC over Keras's 200 thresholds is close to the exact weighted area
    assert got["auc"] == pytest.approx(skm.roc_auc_score(y, q, sample_weight=w), abs=0.01)


def test_class_weight_in_the_file_is_sample_weights_of_the_labels_on_training_data_only():
    x, y, _ = data(n=60)
    filed = prog(extra="class_weight = {0: 1, 2: 5}\n  validation = split(0.25)").fit(x, y, verbose=0)
    cw = np.array([1.0, 1.0, 5.0], np.float32)[y]
    a = prog(extra="validation = split(0.25)")
    # the split draws the same samples, and carries their weights with them
    given = a.fit(x, y, sample_weight=cw, verbose=0)
    assert filed.history["loss"] == given.history["loss"]
    by_arg = prog(extra="validation = split(0.25)").fit(x, y, class_weight={0: 1, 2: 5}, verbose=0)
    assert by_arg.history == filed.history
    # validation is not weighted by class_weight (Keras): val_loss is the plain mean there
    plain = prog(extra="validation = split(0.25)")
    plain_h = plain.fit(x, y, verbose=0)
    assert plain_h.history["loss"] != filed.history["loss"]
    from nncompile.runtime.data import Dataset, split
    _, val = split(Dataset(x, y, "d"), 0.25, seed=0)
    tr = filed.trainer
    assert filed.history["val_loss"][-1] == pytest.approx(tr.evaluate(val.x, val.y)["loss"], rel=1e-6)


def test_class_weight_of_one_hot_and_binary_targets():
    from nncompile.runtime.evaluation import class_weights
    np.testing.assert_array_equal(class_weights(np.eye(3)[[0, 2, 1]], {2: 4.0}), [1, 4, 1])
    np.testing.assert_array_equal(class_weights(np.array([[0.0], [1.0], [1.0]]), {1: 3}), [1, 3, 3])
    with pytest.raises(ValueError, match="class index"):
        class_weights(np.array([0, 1]), {"a": 1})


def test_validation_data_with_weights_weighs_val_loss():
    x, y, w = data(n=40)
    p = prog()
    h = p.fit(x[:30], y[:30], validation_data=(x[30:], y[30:], w[30:]), verbose=0, epochs=1)
    weighted, plain = p.evaluate(x[30:], y[30:], sample_weight=w[30:])[0], p.evaluate(x[30:], y[30:])[0]
    assert h.history["val_loss"][0] == pytest.approx(weighted, rel=1e-6) and weighted != pytest.approx(plain)


def test_fit_with_weights_on_an_unweighted_program_continues_its_state():
    x, y, w = data()
    p = prog()
    assert not p.weighted
    p.fit(x, y, verbose=0)
    before = p.get_weights()
    rec = []

    class Start(nncompile.callbacks.Callback):
        def on_train_begin(self, logs=None):
            rec.extend(self.model.get_weights())

    p.fit(x, y, sample_weight=w, verbose=0, callbacks=[Start()])
    assert p.weighted
    for a, b in zip(before, rec):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="at the same time"):
        p.fit(x, y, sample_weight=w, class_weight={0: 2})
    with pytest.raises(ValueError, match="one weight per sample"):
        p.fit(x, y, sample_weight=w[:-1], verbose=0)


@pytest.mark.parametrize("setting, message", [
    ("class_weight = {a: 1}", "class indices"),
    ("class_weight = {0: -1}", ">= 0"),
    ("class_weight = {0: 1, 0: 2}", "twice"),
    ("class_weight = [1, 2]", "must be a dict"),
    ("weighted_metrics = [accuracy, accuracy]", "listed twice"),
])
def test_bad_weight_settings_point_at_them(setting, message):
    with pytest.raises(CompileError) as e:
        prog(extra=setting)
    assert message in str(e.value) and "^" in str(e.value)


def test_class_weight_needs_a_classification_loss():
    with pytest.raises(CompileError, match="regression loss"):
        prog(loss="mse", units=2, act="", metrics="mae", extra="class_weight = {0: 2}")


def test_a_non_finite_step_of_a_weighted_program_is_located():
    # the replay through the interpreter feeds the batch's weights too
    src = SRC.format(loss="sparse_categorical_crossentropy", units=3, act=", softmax", metrics="auc",
                     extra="class_weight = {1: 3}").replace("sgd(lr=0.05)", "sgd(lr=1e30)")
    x, y, _ = data(n=64)
    h = nncompile.compile(src).fit(x * 100, y, verbose=0)
    assert h.stop_reason.startswith("non-finite loss")
    assert "the first non-finite value is" in h.report and "in the train_step graph" in h.report
