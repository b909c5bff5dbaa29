"""The optimizer lowered to IR, run through the generated NumPy code, over
several steps: against torch.optim (same formulas where Keras and PyTorch
agree; skipped without torch) and against a float64 NumPy transcription of the
Keras update rules (tests/reference.py, also the Triton kernels' reference)."""
import numpy as np
import pytest

import reference
from extras import needs_torch, torch
from nncompile.backends.numpy.codegen import generate
from nncompile.ir.graph import Graph
from nncompile.passes.optimizer import apply_optimizer, slots_for


def _run_ours(name, params, p0, grads_seq, lr):
    g = Graph("opt", "f64")
    p = g.input("w", p0.shape, role="param")
    gr = g.input("g", p0.shape)
    apply_optimizer(g, name, params, {"w": gr})
    prog = generate(g)
    state = {f"{name}.{s}.w": np.zeros_like(p0) for s in slots_for(name, params)}
    w = p0.copy()
    for t, gv in enumerate(grads_seq, start=1):
        prog({"w": w, "g": gv, "step": np.array(float(t)), "lr": np.array(lr), **state})
    return w


def _run_torch(make_opt, p0, grads_seq):
    w = torch.tensor(p0.copy(), requires_grad=True)
    opt = make_opt([w])
    for gv in grads_seq:
        opt.zero_grad()
        w.grad = torch.tensor(gv)
        opt.step()
    return w.detach().numpy()


CASES = [
    ("sgd", {"lr": 0.1, "momentum": 0.0, "nesterov": False},
     lambda ps: torch.optim.SGD(ps, lr=0.1)),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": False},
     lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True},
     lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)),
    # with eps = 0 the Keras and PyTorch forms of Adam are the same function
    ("adam", {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 0.0},
     lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.999), eps=0.0)),
    ("adamw", {"lr": 0.01, "beta1": 0.9, "beta2": 0.99, "eps": 0.0, "weight_decay": 0.1},
     lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.9, 0.99), eps=0.0, weight_decay=0.1)),
    # with eps = 0 Keras's rmsprop (eps inside the square root) and torch's (outside) agree
    ("rmsprop", {"lr": 0.01, "rho": 0.9, "momentum": 0.0, "eps": 0.0},
     lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=0.0)),
    ("rmsprop", {"lr": 0.01, "rho": 0.8, "momentum": 0.5, "eps": 0.0},
     lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.8, eps=0.0, momentum=0.5)),
]


@needs_torch
@pytest.mark.parametrize("name,params,make_opt", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_optimizer_matches_torch(name, params, make_opt):
    rng = np.random.default_rng(1)
    p0 = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) for _ in range(6)]
    ours = _run_ours(name, params, p0, grads, params["lr"])
    theirs = _run_torch(make_opt, p0, grads)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


KERAS_CASES = [(name, params) for name, params, _ in CASES] + [
    # eps > 0, where Keras and torch differ (eps outside sqrt(v) with the bias-corrected lr)
    ("adam", {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-3}),
    ("adamw", {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-2, "weight_decay": 0.04}),
    ("sgd", {"lr": 0.05, "momentum": 0.5, "nesterov": True}),
    ("rmsprop", {"lr": 0.01, "rho": 0.9, "momentum": 0.0, "eps": 1e-2}),
    ("rmsprop", {"lr": 0.01, "rho": 0.8, "momentum": 0.5, "eps": 1e-2}),
]


@pytest.mark.parametrize("name,params", KERAS_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(KERAS_CASES)])
def test_optimizer_matches_the_keras_update_rules(name, params):
    rng = np.random.default_rng(1)
    p0 = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) for _ in range(6)]
    ours = _run_ours(name, params, p0, grads, params["lr"])
    want, _, _ = reference.optimizer_steps(name, p0, grads, params)
    np.testing.assert_allclose(ours, want, rtol=1e-10, atol=1e-12)


def test_adam_keras_epsilon_placement():
    """Keras puts eps outside sqrt(v) with the bias-corrected learning rate."""
    p0 = np.array([1.0, -2.0])
    gv = np.array([0.5, 1e-4])
    ours = _run_ours("adam", {"lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-3}, p0, [gv], 0.1)
    m, v = 0.1 * gv, 0.001 * gv ** 2
    lr_t = 0.1 * np.sqrt(1 - 0.999) / (1 - 0.9)
    np.testing.assert_allclose(ours, p0 - lr_t * m / (np.sqrt(v) + 1e-3), rtol=1e-12)


def test_rmsprop_keras_epsilon_placement():
    """Keras 3: p -= lr * g / sqrt(v + eps); torch's sqrt(v) + eps gives another step
    (here, for the small gradient, 10x larger)."""
    p0 = np.array([1.0, -2.0])
    gv = np.array([0.5, 1e-4])
    ours = _run_ours("rmsprop", {"lr": 0.1, "rho": 0.9, "momentum": 0.0, "eps": 1e-7}, p0, [gv], 0.1)
    v = 0.1 * gv ** 2
    np.testing.assert_allclose(ours, p0 - 0.1 * gv / np.sqrt(v + 1e-7), rtol=1e-12)
    torch_form = p0 - 0.1 * gv / (np.sqrt(v) + 1e-7)
    assert abs(ours[1] - torch_form[1]) > 1e-3


def test_parameters_are_updated_in_place():
    g = Graph("opt", "f32")
    p = g.input("w", (4,), role="param")
    gr = g.input("g", (4,))
    apply_optimizer(g, "sgd", {"lr": 0.5, "momentum": 0.0}, {"w": gr})
    prog = generate(g)
    w = np.ones(4, np.float32)
    prog({"w": w, "g": np.ones(4, np.float32), "step": np.float32(1), "lr": np.float32(0.5)})
    np.testing.assert_array_equal(w, np.full(4, 0.5, np.float32))
