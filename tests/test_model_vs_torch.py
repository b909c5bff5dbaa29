"""Whole programs against PyTorch: the same model written in torch, with the same
weights, gives the same loss (with penalties), gradients, predictions and
parameters after training steps. Skipped without torch (the gradients of
random architectures are also checked against finite differences, without
torch, in tests/fuzz/test_numerics.py)."""
import numpy as np
import pytest

from extras import TORCH_REASON

torch = pytest.importorskip("torch", reason=TORCH_REASON)
F = torch.nn.functional

import nncompile  # noqa: E402
import programs as P  # noqa: E402

SRC = """
model m {{
  input x: f32[6]
  dense h1(8, {act1}, l2={l2})
  batchnorm bn
  dense h2(5, tanh, l1={l1})
  dense out({units}, {act_out})
}}
train {{
  loss = {loss}
  optimizer = {opt}
  batch_size = 16
}}
"""


def torch_forward(p, x, act1, act_out, training=True, bn_state=None):
    h = x @ p["h1.weight"] + p["h1.bias"]
    h = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}[act1](h)
    if training:
        mean, var = h.mean(0), h.var(0, unbiased=False)
    else:
        mean, var = bn_state
    h = (h - mean) / torch.sqrt(var + 1e-3) * p["bn.gamma"] + p["bn.beta"]
    h = torch.tanh(h @ p["h2.weight"] + p["h2.bias"])
    z = h @ p["out.weight"] + p["out.bias"]
    return z


def torch_loss(p, x, y, cfg):
    z = torch_forward(p, x, cfg["act1"], cfg["act_out"])
    loss = cfg["loss"]
    if loss == "sparse_categorical_crossentropy":
        data = F.cross_entropy(z, y)
    elif loss == "categorical_crossentropy":
        data = -(y * torch.log_softmax(z, -1)).sum(-1).mean()
    elif loss == "binary_crossentropy":
        data = F.binary_cross_entropy_with_logits(z, y)
    elif loss == "mse":
        data = ((z - y) ** 2).mean()
    else:
        data = (z - y).abs().mean()
    return data + cfg["l2"] * (p["h1.weight"] ** 2).sum() + cfg["l1"] * p["h2.weight"].abs().sum()


CONFIGS = [
    dict(act1="relu", act_out="softmax", units=4, loss="sparse_categorical_crossentropy", l1=1e-3, l2=1e-2),
    dict(act1="sigmoid", act_out="softmax", units=3, loss="categorical_crossentropy", l1=0.0, l2=1e-3),
    dict(act1="tanh", act_out="sigmoid", units=2, loss="binary_crossentropy", l1=1e-3, l2=0.0),
    dict(act1="relu", act_out="linear", units=3, loss="mse", l1=0.0, l2=0.0),
    dict(act1="relu", act_out="linear", units=2, loss="mae", l1=1e-4, l2=1e-4),
]


def _data(cfg, n, rng):
    return P.batch((6,), cfg["loss"], cfg["units"], n, rng)


def _tensors(params):
    return {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in params.items()}


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c["loss"] for c in CONFIGS])
def test_loss_and_grads_match_torch(cfg):
    prog = nncompile.compile(SRC.format(opt="sgd(lr=0.1)", **cfg), float_dtype="f64")
    rng = np.random.default_rng(0)
    params = prog.init_params(seed=3)
    x, y = _data(cfg, 12, rng)
    loss, grads = prog.loss_and_grads(params, x, y)
    tp = _tensors(params)
    ty = torch.tensor(y) if y.dtype.kind == "i" else torch.tensor(y, dtype=torch.float64)
    tl = torch_loss(tp, torch.tensor(x, dtype=torch.float64), ty, cfg)
    tl.backward()
    assert loss == pytest.approx(tl.item(), rel=1e-10)
    assert set(grads) == set(params)
    for k in params:
        np.testing.assert_allclose(grads[k], tp[k].grad.numpy(), rtol=1e-8, atol=1e-12, err_msg=k)


def test_predict_applies_the_output_activation_and_running_statistics():
    cfg = CONFIGS[0]
    prog = nncompile.compile(SRC.format(opt="sgd(lr=0.1)", **cfg), float_dtype="f64")
    params = prog.init_params(seed=1)
    x, _ = _data(cfg, 7, np.random.default_rng(2))
    state = (torch.zeros(8, dtype=torch.float64), torch.ones(8, dtype=torch.float64))
    z = torch_forward(_tensors(params), torch.tensor(x, dtype=torch.float64), "relu", "softmax", False, state)
    np.testing.assert_allclose(prog.predict(params, x), torch.softmax(z, -1).detach().numpy(), rtol=1e-10)


def test_training_steps_match_torch_adam():
    """Three Adam steps (eps=1e-12: the Keras and torch epsilon placements then agree to ~1e-11) with batch norm:
    parameters and running statistics match."""
    cfg = CONFIGS[0]
    prog = nncompile.compile(SRC.format(opt="adam(lr=0.01, eps=1e-12)", **cfg), float_dtype="f64")
    params = prog.init_params(seed=5)
    tr = prog.trainer(seed=0, params=params)
    tp = _tensors(params)
    opt = torch.optim.Adam(list(tp.values()), lr=0.01, eps=1e-12)
    rng = np.random.default_rng(4)
    mm, mv = torch.zeros(8, dtype=torch.float64), torch.ones(8, dtype=torch.float64)
    for n in (16, 16, 5):  # a last, smaller batch too
        x, y = _data(cfg, n, rng)
        ours = tr.step(x, y)
        opt.zero_grad()
        tx = torch.tensor(x, dtype=torch.float64)
        loss = torch_loss(tp, tx, torch.tensor(y), cfg)
        loss.backward()
        with torch.no_grad():
            h = torch.relu(tx @ tp["h1.weight"] + tp["h1.bias"])
            mm = 0.99 * mm + 0.01 * h.mean(0)
            mv = 0.99 * mv + 0.01 * h.var(0, unbiased=False)
        opt.step()
        assert ours == pytest.approx(loss.item(), rel=1e-10)
    for k, v in tr.params.items():
        np.testing.assert_allclose(v, tp[k].detach().numpy(), rtol=1e-8, atol=1e-7, err_msg=k)  # eps placement: ~1e-9 where g ~ 0
    np.testing.assert_allclose(tr.state["bn.moving_mean"], mm.numpy(), rtol=1e-7)
    np.testing.assert_allclose(tr.state["bn.moving_variance"], mv.numpy(), rtol=1e-7)
