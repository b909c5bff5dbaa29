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


def test_two_workers_on_the_triton_backend_train_what_one_trains(tmp_path):
    """The Triton lowering of shard_mean (here over gloo, under the interpreter;
    NCCL on a GPU is untested): batch norm, dropout, an uneven last batch."""
    pytest.importorskip("torch", reason="needs torch.distributed: pip install 'nncompile[distributed]'")
    import subprocess

    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=x[:, :2].argmax(1))
    (tmp_path / "m.nn").write_text(f"""model m {{
  input x: f32[4]
  dense h(8, relu, l2=1e-3)
  batchnorm bn
  dropout d(0.3)
  dense o(2, softmax)
}}
train {{
  data = npz("{tmp_path / 'd.npz'}")
  loss = sparse_categorical_crossentropy
  optimizer = adam(lr=0.01)
  epochs = 2
  batch_size = 7
}}
""")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
               NNCOMPILE_DIST_TIMEOUT="120")
    env.pop("MASTER_PORT", None)
    for out, extra in (("one", []), ("two", ["--workers", "2"])):
        r = subprocess.run([sys.executable, "-m", "nncompile", "run", "m.nn", "--backend", "triton", "--out", out,
                            "--quiet", *extra], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    a, b = np.load(tmp_path / "one" / "weights_final.npz"), np.load(tmp_path / "two" / "weights_final.npz")
    for k in a.files:
        if k != "__meta__":
            np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=2e-6, err_msg=k)
