"""The Triton backend's part of data-parallel training: dropout keyed by the
global row, and 2 workers against 1 (the NumPy backend's tests are
tests/runtime/test_distributed*.py, whose helpers these reuse)."""
import os
import sys

import pytest

pytest.importorskip("triton", reason="needs torch and triton: pip install -e '.[triton]'")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "runtime"))
from test_distributed_setup import check_shard_masks, dropout_graph  # noqa: E402

from nncompile.backends.triton import compile_graph  # noqa: E402


def test_a_shard_draws_its_rows_of_the_global_batch_mask():
    check_shard_masks(compile_graph(dropout_graph()))


def test_two_workers_on_the_triton_backend_train_what_one_trains(tmp_path):
    """The Triton lowering of shard_mean (here over gloo, under the interpreter;
    NCCL on a GPU is untested): batch norm, dropout, L2, an uneven last batch."""
    pytest.importorskip("torch", reason="needs torch.distributed: pip install 'nncompile[distributed]'")
    from test_distributed_cli import assert_same_run, model, nncompile
    m = model(tmp_path, epochs=1)
    for out, extra in (("one", []), ("two", ["--workers", "2"])):
        r = nncompile("run", m, "--backend", "triton", "--out", out, "--quiet", *extra, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    assert_same_run(tmp_path / "one", tmp_path / "two")
