"""Generated valid programs compile and train.

Hypothesis draws random programs from the shared generator
(`programs.program_specs`, tests/programs.py): image-shaped or flat inputs,
stacks of dense / dropout / batchnorm / layernorm / activation / flatten layers
written with positional or keyword arguments (some frozen or with lr_mult),
every loss with a matching output (softmax, sigmoid, logits), every optimizer
with random hyper-parameters, metrics (with arguments), class weights (a step
with them too), validation, early stopping, schedules,
augmentation, comments and blank lines, blocks in either order. Every one must
parse, compile, and run: one training step on random data of the right shape
(a batch of 1 too), the loss and gradients, and predictions, all finite; a
sample also runs `fit` on synthetic data.
"""
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nncompile
import programs as P
from nncompile.frontend import parse_source
from nncompile.runtime.evaluation import class_weights

CORPUS = Path(__file__).resolve().parent / "corpus"

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _finite_dict(d, what):
    for k, v in d.items():
        assert np.all(np.isfinite(v)), f"{what} {k} is not finite"


def _run_program(spec, n, seed):
    ast = parse_source(spec.source, filename="gen.nn")
    assert len(ast.model.layers) == len(spec.layers)
    prog = nncompile.Program(ast)
    rng = np.random.default_rng(seed)
    x, y = P.random_batch(spec, n, rng)

    params = prog.init_params(seed=seed)
    loss, grads = prog.loss_and_grads(params, x, y)
    assert math.isfinite(loss), spec.source
    fixed = {k for k in params for L in ast.model.layers
             if k.startswith(L.name + ".") and (L.frozen or L.lr_mult == 0)}
    frozen = {k for k in params for L in ast.model.layers if k.startswith(L.name + ".") and L.frozen}
    assert set(grads) == set(params) - frozen      # frozen layers get no gradient
    for k in grads:
        assert grads[k].shape == params[k].shape, k
    _finite_dict(grads, "gradient")

    tr = prog.trainer(seed=seed)
    out = tr.train_batch(x, y)
    assert math.isfinite(out["loss"]), spec.source
    for m in spec.metrics:
        assert math.isfinite(out[m]), m
    if "class_weight" in spec.settings:    # a step with the class weights the loop would give
        w = class_weights(y, spec.settings["class_weight"])
        assert math.isfinite(tr.train_batch(x, y, w)["loss"]), spec.source
    after = tr.host("params")
    _finite_dict(after, "parameter")
    _finite_dict(tr.host("state"), "state")
    for k in fixed:                                 # frozen, or lr_mult=0: not moved
        np.testing.assert_array_equal(after[k], params[k], err_msg=k)

    y_hat = prog.predict(tr.host("model_state"), x)
    assert y_hat.shape == (n,) + spec.out_shape
    assert np.all(np.isfinite(y_hat))
    last = [L for L in ast.model.layers if L.kind != "dropout"][-1]
    last_act = last.args.get("activation", last.args.get("fn"))
    if last_act == "softmax" and ast.model.layers[-1].kind != "dropout":
        np.testing.assert_allclose(y_hat.sum(-1), 1.0, rtol=1e-4)
    return prog


@settings(max_examples=P.examples(60), **SETTINGS)
@given(P.program_specs(), st.integers(1, 6), st.integers(0, 2**16))
def test_generated_programs_compile_and_step(spec, n, seed):
    _run_program(spec, n, seed)


@settings(max_examples=P.examples(25), **SETTINGS)
@given(P.program_specs(image=False, max_hidden=5), st.integers(0, 2**16))
def test_batch_of_one_with_deeper_flat_stacks(spec, seed):
    """A batch of one: batch norm sees variance 0 and must stay finite (epsilon)."""
    _run_program(spec, 1, seed)


@settings(max_examples=P.examples(15), **SETTINGS)
@given(P.program_specs().filter(lambda s: "data" in s.settings))
def test_generated_programs_fit(spec):
    """`fit` on the synthetic data the program names trains: the generator only
    writes data and splits that fit the model (8..40 samples, every split leaves
    samples on both sides), so any error here is a bug."""
    prog = nncompile.Program(parse_source(spec.source, filename="gen.nn"))
    hist = prog.fit(quiet=True)
    losses = hist.history["loss"]
    assert 1 <= len(losses) <= spec.settings.get("epochs", 1), spec.source
    assert all(math.isfinite(v) for v in losses), spec.source
    if spec.settings["validation"]:
        assert len(hist.history["val_loss"]) == len(losses)
    for k, v in hist.trainer.host().items():
        assert np.all(np.isfinite(v)), k


# was a bug (fixed): batch norm on a multi-dimensional input raised IRError
def test_batchnorm_before_flatten_compiles_and_trains():
    """Batch norm on [4, 3] activations normalises each channel (the last axis)
    over the batch and the other axes, as Keras does; the program compiles and
    trains (its loss goes down on a fixed batch)."""
    src = (CORPUS / "batchnorm-before-flatten.nn").read_text()
    prog = nncompile.compile(src)
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(5, 4, 3)) * [1.0, 3.0, 0.5] + [0.0, 2.0, -1.0]).astype(np.float32)
    y = np.array([0, 1, 0, 1, 1])
    params = prog.init_params(0)
    assert params["bn.gamma"].shape == params["bn.beta"].shape == (3,)
    # the loss against NumPy: per-channel batch statistics, biased variance, eps 1e-3
    mean, var = x.mean((0, 1)), x.var((0, 1))
    h = ((x - mean) / np.sqrt(var + 1e-3) * params["bn.gamma"] + params["bn.beta"]).reshape(5, 12)
    z = h @ params["out.weight"] + params["out.bias"]
    want = np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(5), y])
    loss, grads = prog.loss_and_grads(params, x, y)
    assert loss == pytest.approx(want, rel=1e-5)
    assert set(grads) == set(params) and all(np.all(np.isfinite(g)) for g in grads.values())
    tr = prog.trainer(params=params)
    losses = [tr.step(x, y) for _ in range(20)]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert losses[0] == pytest.approx(want, rel=1e-5)
    # the running statistics move towards the per-channel ones (momentum 0.99)
    st = tr.host("state")
    np.testing.assert_allclose(st["bn.moving_mean"], (1 - 0.99 ** 20) * mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(st["bn.moving_variance"], 0.99 ** 20 + (1 - 0.99 ** 20) * var, rtol=1e-4)


@settings(max_examples=P.examples(10), **SETTINGS)
@given(P.program_specs().filter(
    lambda s: len(s.input_shape) > 1 and any(
        L.kind == "batchnorm" for L in s.layers[:[L.kind for L in s.layers].index("flatten")])),
    st.integers(1, 4))
def test_generated_programs_with_image_batchnorm(spec, n):
    _run_program(spec, n, 0)
