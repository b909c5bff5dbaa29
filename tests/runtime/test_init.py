"""Initialisers: Keras's distributions, drawn in the parameter's dtype, seeded."""
import math

import numpy as np
import pytest

from nncompile.runtime.init import initialize


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_distributions_and_dtype(dtype):
    shape = (400, 300)
    d = initialize([("gu", shape, "glorot_uniform"), ("gn", shape, "glorot_normal"),
                    ("hu", shape, "he_uniform"), ("hn", shape, "he_normal"),
                    ("z", (7,), "zeros"), ("o", (7,), "ones")], seed=3, dtype=dtype)
    assert all(v.dtype == dtype for v in d.values())
    lim = math.sqrt(6 / 700)
    assert np.abs(d["gu"]).max() <= lim and d["gu"].std() == pytest.approx(lim / math.sqrt(3), rel=0.02)
    assert d["hu"].std() == pytest.approx(math.sqrt(6 / 400) / math.sqrt(3), rel=0.02)
    # truncated at 2 std of the underlying normal, rescaled so the std is the target
    for k, std in (("gn", math.sqrt(2 / 700)), ("hn", math.sqrt(2 / 400))):
        assert d[k].std() == pytest.approx(std, rel=0.02)
        assert np.abs(d[k]).max() <= 2 * std / 0.87962566103423978 * (1 + 1e-6)
    assert not d["z"].any() and (d["o"] == 1).all()


def test_seeded_and_independent_of_other_parameters():
    a = initialize([("a.weight", (5, 4), "glorot_uniform")], seed=1)
    b = initialize([("x.weight", (9, 9), "he_normal"), ("a.weight", (5, 4), "glorot_uniform")], seed=1)
    c = initialize([("a.weight", (5, 4), "glorot_uniform")], seed=2)
    assert np.array_equal(a["a.weight"], b["a.weight"]) and not np.array_equal(a["a.weight"], c["a.weight"])
