"""Differential test: for random programs, the optimized graphs (every pass) and
the unoptimized ones (autodiff + optimizer only) give the same loss, gradients,
predictions and updated parameters within float32 tolerance.

The programs come from the shared generator (tests/programs.py): image and
flat inputs, every layer kind it knows (frozen layers and lr_mult too), every
loss, output form and optimizer with random hyper-parameters, metrics.
NNCOMPILE_FUZZ_EXAMPLES raises the example counts."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import nncompile
import programs as P


def close(a, b, what):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5, err_msg=what)


@settings(max_examples=P.examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=P.program_specs(), seed=st.integers(0, 1000))
def test_optimized_matches_unoptimized(spec, seed):
    """(With a C compiler the optimized side runs the native loops.)"""
    check_against_unoptimized(spec, seed, "auto")


def check_against_unoptimized(spec, seed, cpu_kernels):
    src = spec.source
    opt = nncompile.compile(src, cpu_kernels=cpu_kernels)
    ref = nncompile.compile(src, optimize=False, cpu_kernels="numpy")   # the oracle: NumPy only
    rng = np.random.default_rng(seed)
    params = opt.init_params(seed)
    x, y = P.random_batch(spec, 8, rng)
    l1, g1 = opt.loss_and_grads(params, x, y)
    l2, g2 = ref.loss_and_grads(params, x, y)
    close(l1, l2, f"loss\n{src}")
    # float32 rounding is relative to the largest gradient: an element that is zero in exact
    # arithmetic (a shift before a batch norm) is that rounding, not 0, on either side
    scale = max([1.0] + [float(np.max(np.abs(v))) for v in g2.values() if np.size(v)])
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=2e-4, atol=2e-5 * scale, err_msg=f"grad {k}\n{src}")
    close(opt.predict(params, x), ref.predict(params, x), f"predict\n{src}")
    P.compare_training(ref, opt, spec, params, [P.random_batch(spec, n, rng) for n in (8, 3)], close, seed=seed)


@settings(max_examples=P.examples(15), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(spec=P.program_specs(), seed=st.integers(0, 1000))
def test_tiled_optimizer_chain_matches_unoptimized(monkeypatch, spec, seed):
    """The same check with tiny tiles, so the tiled update path runs."""
    import nncompile.backends.numpy.codegen as cg
    monkeypatch.setattr(cg, "TILE", 8)
    monkeypatch.setattr(cg, "TILE_MIN", 16)
    check_against_unoptimized(spec, seed, "numpy")


@settings(max_examples=P.examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=P.program_specs(), seed=st.integers(0, 1000))
def test_numpy_path_alone_matches_unoptimized(spec, seed):
    """The optimized graphs on the NumPy path alone (no native loops)."""
    check_against_unoptimized(spec, seed, "numpy")


def test_the_adaptive_comparison_is_not_vacuous():
    """compare_training leaves out only the elements whose step is rounding
    noise: on a well-conditioned Adam program it compares nearly every element,
    and it does catch a difference in the updates."""
    src = ("model m {\n  input x: f32[6]\n  dense h(8, tanh)\n  dense o(3, softmax)\n}\n"
           "train {\n  loss = sparse_categorical_crossentropy\n  optimizer = adam(lr=0.01)\n}\n")
    spec = P.ProgramSpec((6,), [], "sparse_categorical_crossentropy", False, 3, (3,), "adam", {"lr": 0.01}, [],
                         source=src)
    ref, opt = nncompile.compile(src, optimize=False), nncompile.compile(src)
    params = ref.init_params(0)
    rng = np.random.default_rng(0)
    batches = [P.random_batch(spec, 16, rng) for _ in range(2)]
    compared = P.compare_training(ref, opt, spec, params, batches, close)
    assert sum(int(m.sum()) for m in compared.values()) >= 0.9 * sum(m.size for m in compared.values())
    other = nncompile.compile(src.replace("lr=0.01", "lr=0.0101"))
    with pytest.raises(AssertionError, match="param"):
        P.compare_training(ref, other, spec, params, batches, close)
