"""The Triton backend's part of data-parallel training: dropout keyed by the
global row (the NumPy backend's test, tests/runtime/test_distributed_setup.py)."""
import os
import sys

import pytest

pytest.importorskip("triton", reason="needs torch and triton: pip install -e '.[triton]'")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "runtime"))
from test_distributed_setup import check_shard_masks, dropout_graph  # noqa: E402

from nncompile.backends.triton import compile_graph  # noqa: E402


def test_a_shard_draws_its_rows_of_the_global_batch_mask():
    check_shard_masks(compile_graph(dropout_graph()))
