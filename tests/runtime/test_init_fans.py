"""Fans as Keras's compute_fans: a conv kernel (kh, kw, in, out) needs no initializer of its own."""
import math

import numpy as np
import pytest

from nncompile.runtime.init import _fans, initialize


@pytest.mark.parametrize("shape,fans", [((), (1, 1)), ((7,), (7, 7)), ((5, 4), (5, 4)),
                                        ((3, 3, 4, 8), (36, 72)), ((2, 3, 5, 6, 7), (180, 210))])
def test_fans(shape, fans):
    assert _fans(shape) == fans


def test_conv_kernel_glorot_uniform_limit():
    w = initialize([("c.weight", (3, 3, 16, 32), "glorot_uniform")], seed=0)["c.weight"]
    lim = math.sqrt(6 / (3 * 3 * 16 + 3 * 3 * 32))
    assert np.abs(w).max() <= lim and w.std() == pytest.approx(lim / math.sqrt(3), rel=0.05)
