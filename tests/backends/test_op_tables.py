"""Every op of the IR table is lowered by every backend, or sits in that
backend's explicit fallback set; and the emitters keep the promises the IR
rows make (in-place aliasing, matmul epilogues)."""
import numpy as np
import pytest

from nncompile.backends.numpy import support
from nncompile.backends.numpy import lowering as np_lowering
from nncompile.backends.triton import lowering as tr_lowering
from nncompile.ir.graph import Graph
from nncompile.ir.ops import OPS, reference


def test_every_op_is_covered_by_the_numpy_backend():
    covered = set(np_lowering.EMITTERS) | set(np_lowering.VIEWS) | np_lowering.STRUCTURAL | np_lowering.FALLBACK
    assert not set(OPS) - covered, f"no NumPy lowering and not in FALLBACK: {sorted(set(OPS) - covered)}"
    assert not (set(np_lowering.EMITTERS) & np_lowering.FALLBACK)
    for op in np_lowering.FALLBACK:
        assert OPS[op].ref is not None, f"{op} falls back to a reference it does not have"


def test_every_op_is_covered_by_the_triton_backend():
    covered = (set(tr_lowering.POINTWISE) | set(tr_lowering.KERNELS) | set(tr_lowering.GROUP_OPS)
               | set(tr_lowering.VIEWS) | tr_lowering.STRUCTURAL | tr_lowering.FALLBACK)
    assert not set(OPS) - covered, f"no Triton lowering and not in FALLBACK: {sorted(set(OPS) - covered)}"
    # a pointwise op is computed inside a fused kernel: it must have an expression
    missing = [name for name, d in OPS.items() if d.pointwise and name not in tr_lowering.POINTWISE]
    assert not missing, f"pointwise ops without a Triton expression: {missing}"


def test_views_are_views_in_both_backends():
    views = {name for name, d in OPS.items() if d.view}
    assert views == set(np_lowering.VIEWS) == set(tr_lowering.VIEWS)


def test_the_triton_matmul_epilogue_applies_every_epilogue_activation():
    pytest.importorskip("triton")
    from nncompile.backends.triton.kernels.gemm import ACTIVATIONS
    acts = {name for name, d in OPS.items() if d.epilogue == "activation"}
    assert acts <= set(ACTIVATIONS), acts - set(ACTIVATIONS)


class _Ctx:
    """The bits of the NumPy generator an emitter may ask for, for one line."""

    def __init__(self):
        self.make, self.env, self.probs, self.plan = [], {"np": np, "_s": support}, {}, None

    def scratch(self, n, k, shape, dtype=None):
        name = f"s{n.id}_{k}"
        self.env[name] = np.empty(shape, np.bool_ if dtype == "bool" else np.float64)
        return name

    def make_value(self, n, prefix, expr):
        name = f"{prefix}{n.id}"
        self.env[name] = eval(expr, self.env)
        return name

    def arange(self, d):
        self.env[f"ar_{d}"] = np.arange(d)
        return f"ar_{d}"


INPLACE_ELEMENTWISE = sorted(name for name, d in OPS.items()
                             if d.inplace and d.kind == "elementwise" and name in np_lowering.EMITTERS)


@pytest.mark.parametrize("op", INPLACE_ELEMENTWISE)
def test_numpy_emitters_of_inplace_ops_allow_out_to_alias_an_input(op):
    """The IR row says `inplace`: the memory plan may make `out` any same-shaped
    input. Run each emitter with out aliasing each input in turn."""
    d = OPS[op]
    attrs = {"alpha": 0.2, "lo": -0.5, "hi": 0.5, "dtype": "f64", "precision": "bf16"}
    attrs = {k: v for k, v in attrs.items() if k in d.attrs}
    rng = np.random.default_rng(0)
    arity = 1 if d.infer.__name__ == "same" else 2
    g = Graph("t", "f64")
    ins = [g.input(f"x{i}", (4, 5)) for i in range(arity)]
    n = g.emit(op, *ins, **attrs)
    vals = [rng.uniform(0.1, 2.0, (4, 5)) * rng.choice([-1, 1], (4, 5)) for _ in range(arity)]
    with np.errstate(all="ignore"):
        want = reference(n, [v.copy() for v in vals])
    for alias in range(arity):
        ctx = _Ctx()
        arrays = [v.copy() for v in vals]
        for i, a in enumerate(arrays):
            ctx.env[f"x{i}"] = a
        ctx.env["out"] = arrays[alias]
        line = np_lowering.emit(ctx, n, [f"x{i}" for i in range(arity)], "out")
        with np.errstate(all="ignore"):
            exec(line, ctx.env)
        np.testing.assert_allclose(arrays[alias], want, rtol=1e-12, err_msg=f"{op}: {line}")
