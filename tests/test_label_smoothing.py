"""Label smoothing and from_logits on the three cross-entropies: the `.nn` loss
and its gradients against PyTorch (F.cross_entropy's label_smoothing, which
smooths as Keras; BCE with logits on Keras's smoothed targets) and against
Keras's formulas in NumPy; nc's loss functions likewise; the metrics read the
targets as given."""
import numpy as np
import pytest

import nncompile
import nncompile as nc
from extras import TORCH_REASON
from nncompile.errors import CompileError

torch = pytest.importorskip("torch", reason=TORCH_REASON)
F = torch.nn.functional
K = 4


def _program(out_act, loss):
    src = (f"model m {{\n  input x: f32[5]\n  dense o({K}, {out_act})\n}}\n"
           f"train {{\n  loss = {loss}\n  optimizer = sgd\n  metrics = [accuracy]\n}}\n")
    return nncompile.compile(src, float_dtype="f64")


def _data(kind, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(7, 5))
    if kind == "sparse":
        return x, rng.integers(0, K, 7)
    if kind == "categorical":
        y = rng.random((7, K))
        return x, y / y.sum(1, keepdims=True)        # probability rows
    return x, (rng.random((7, K)) > 0.5).astype(np.float64)


def _torch_loss_and_grads(params, x, loss_fn):
    w = torch.tensor(params["o.weight"], requires_grad=True)
    b = torch.tensor(params["o.bias"], requires_grad=True)
    loss = loss_fn(torch.tensor(x) @ w + b)
    loss.backward()
    return loss.item(), {"o.weight": w.grad.numpy(), "o.bias": b.grad.numpy()}


def _log_softmax(z):
    s = z - z.max(1, keepdims=True)
    return s - np.log(np.exp(s).sum(1, keepdims=True))


CASES = [   # kind, output activation, loss arguments
    ("sparse", "softmax", ""), ("sparse", "linear", "from_logits=true, "),
    ("categorical", "softmax", ""), ("categorical", "linear", "from_logits=true, "),
    ("binary", "sigmoid", ""), ("binary", "linear", "from_logits=true, "),
]


@pytest.mark.parametrize("kind, act, args", CASES)
@pytest.mark.parametrize("ls", [0.0, 0.1, 0.35])
def test_smoothed_crossentropy_matches_torch_and_keras(kind, act, args, ls):
    loss = {"sparse": "sparse_categorical_crossentropy", "categorical": "categorical_crossentropy",
            "binary": "binary_crossentropy"}[kind]
    p = _program(act, f"{loss}({args}label_smoothing={ls})")
    params = p.init_params(0)
    x, y = _data(kind)
    got, grads = p.loss_and_grads(params, x, y)
    if kind == "sparse":
        fn = lambda z: F.cross_entropy(z, torch.tensor(y), label_smoothing=ls)  # noqa: E731
    elif kind == "categorical":
        fn = lambda z: F.cross_entropy(z, torch.tensor(y), label_smoothing=ls)  # noqa: E731
    else:   # torch has no smoothing for BCE: Keras's targets y (1 - ls) + ls / 2
        fn = lambda z: F.binary_cross_entropy_with_logits(z, torch.tensor(y * (1 - ls) + 0.5 * ls))  # noqa: E731
    want, want_g = _torch_loss_and_grads(params, x, fn)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    for k in grads:
        np.testing.assert_allclose(grads[k], want_g[k], rtol=1e-10, atol=1e-13, err_msg=k)
    # Keras's formulas, in NumPy
    z = x @ params["o.weight"] + params["o.bias"]
    if kind == "binary":
        ys = y * (1 - ls) + 0.5 * ls
        keras = np.mean(np.logaddexp(0, z) - z * ys)
    else:
        onehot = np.eye(K)[y] if kind == "sparse" else y
        keras = -np.mean(np.sum((onehot * (1 - ls) + ls / K) * _log_softmax(z), 1))
    np.testing.assert_allclose(got, keras, rtol=1e-12)


def test_probabilities_without_logits_are_smoothed_too():
    """binary_crossentropy on an output that is not a sigmoid (clipped probabilities)."""
    p = _program("hard_sigmoid", "binary_crossentropy(label_smoothing=0.2)")
    params = p.init_params(0)
    x, y = _data("binary")
    got, _ = p.loss_and_grads(params, x, y)
    q = np.clip(np.clip((x @ params["o.weight"] + params["o.bias"]) / 6 + 0.5, 0, 1), 1e-7, 1 - 1e-7)
    ys = y * 0.8 + 0.1
    np.testing.assert_allclose(got, -np.mean(ys * np.log(q) + (1 - ys) * np.log(1 - q)), rtol=1e-12)


def test_metrics_read_the_targets_unsmoothed():
    x, y = _data("sparse")
    plain, smooth = _program("softmax", "sparse_categorical_crossentropy"), \
        _program("softmax", "sparse_categorical_crossentropy(label_smoothing=0.3)")
    params = plain.init_params(0)
    a, b = plain.trainer(params=params), smooth.trainer(params=params)
    ea, eb = a.evaluate(x, y), b.evaluate(x, y)
    assert ea["accuracy"] == eb["accuracy"] and ea["loss"] != eb["loss"]


def test_label_smoothing_is_checked():
    with pytest.raises(CompileError, match="label_smoothing only applies to cross-entropy losses, not mse"):
        _program("linear", "mse(label_smoothing=0.1)")
    with pytest.raises(CompileError, match="label_smoothing"):
        _program("softmax", "categorical_crossentropy(label_smoothing=1.5)")


@pytest.mark.parametrize("kind", ["sparse", "categorical", "binary"])
def test_nc_losses_take_label_smoothing(kind):
    x, y = _data(kind, seed=3)
    z = np.random.default_rng(4).normal(size=(7, K))
    fn = {"sparse": nc.sparse_categorical_crossentropy, "categorical": nc.categorical_crossentropy,
          "binary": nc.binary_crossentropy}[kind]
    ydt = nc.i64[nc.B] if kind == "sparse" else nc.f64[nc.B, K]
    f = nc.jit(lambda yt, zz: nc.mean(fn(yt, zz, from_logits=True, label_smoothing=0.2)), ydt, nc.f64[nc.B, K])
    got = float(f(y, z))
    tz, ty = torch.tensor(z), torch.tensor(y)
    want = (F.binary_cross_entropy_with_logits(tz, ty * 0.8 + 0.1) if kind == "binary"
            else F.cross_entropy(tz, ty, label_smoothing=0.2)).item()
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("kind, loss", [("sparse", "sparse_categorical_crossentropy"),
                                        ("categorical", "categorical_crossentropy")])
def test_smoothed_loss_with_sample_weights_against_torch(kind, loss):
    """Label smoothing and sample weights in one loss: Keras 3's sum_i w_i l_i / N
    over the smoothed cross-entropies (torch: reduction='none', weighted, / N)."""
    p = _program("softmax", f"{loss}(label_smoothing=0.2)")
    x, y = _data(kind, seed=3)
    w = np.random.default_rng(4).uniform(0.0, 3.0, len(x))
    params = p.init_params(seed=1)
    got, grads = p.loss_and_grads(params, x, y, sample_weight=w)
    target = torch.tensor(y) if kind == "sparse" else torch.tensor(y)
    fn = lambda z: (F.cross_entropy(z, target, label_smoothing=0.2, reduction="none")  # noqa: E731
                    * torch.tensor(w)).sum() / len(x)
    want, want_grads = _torch_loss_and_grads(params, x, fn)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    for k in want_grads:
        np.testing.assert_allclose(grads[k], want_grads[k], rtol=1e-8, atol=1e-12, err_msg=k)
