"""Every example, on the Triton backend under the interpreter, against the NumPy
backend: losses and gradients of a batch, then losses, parameters and optimizer
state after three training steps (the --check-backend cross-check)."""
import glob
import os

import pytest

from nncompile.crosscheck import cross_check

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "*.nn")))


@pytest.mark.parametrize("path", EXAMPLES, ids=[os.path.basename(p) for p in EXAMPLES])
def test_example_matches_numpy_backend(path):
    res = cross_check(path, steps=3)
    assert res.ok, res.text()
    assert len(res.rows) > 5
