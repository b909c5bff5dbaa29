"""The metrics' statistics (AUC's histograms, confusion counts, top-k) and the
sample-weight input on the Triton backend (under the interpreter) against the
NumPy backend: a fit's history and a weighted evaluate."""
import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch and triton (the GPU backend, run here under the interpreter): "
                                    "pip install -e '.[triton]'")
pytest.importorskip("triton", reason="needs torch and triton (the GPU backend, run here under the interpreter): "
                                     "pip install -e '.[triton]'")

import nncompile  # noqa: E402

SRC = """model m {
  input x: f32[4]
  dense h(8, relu)
  dense out(3, softmax)
}
train {
  loss = sparse_categorical_crossentropy
  optimizer = adam(lr=0.01)
  metrics = [accuracy, precision, auc(20), top_k_categorical_accuracy(2), rmse]
  weighted_metrics = [recall]
  class_weight = {1: 3}
  batch_size = 16
}
"""


def test_metrics_and_weights_agree_with_the_numpy_backend():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)).astype(np.float32), rng.integers(0, 3, 40)
    w = np.linspace(0, 2, 40)
    got = {}
    for backend in ("numpy", "triton"):
        p = nncompile.compile(SRC, backend=backend)
        h = p.fit(x, y, verbose=0, shuffle=False)
        got[backend] = {**{k: v[0] for k, v in h.history.items()},
                        **{"eval_" + k: v for k, v in p.evaluate(x, y, sample_weight=w, return_dict=True).items()}}
    assert got["triton"] == pytest.approx(got["numpy"], rel=1e-5)
