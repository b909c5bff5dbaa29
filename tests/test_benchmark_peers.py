"""The benchmarks' PyTorch peers (benchmarks/peer_models.py) compute what nncompile
computes: the same losses over a few Adam steps from nncompile's initial weights,
for the convnet workloads (channels-last images, HWIO kernels, a channels-last
flatten before a dense layer, batchnorm), in both torch memory formats."""
import math
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import nncompile  # noqa: E402

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)
import gpu_step  # noqa: E402
import peer_models  # noqa: E402

B2, EPS = 0.999, 1e-7


def _losses_nncompile(prog, init, x, y, steps):
    tr = prog.trainer(seed=0, params={k: v.copy() for k, v in init.items()})
    return [tr.step(x, y) for _ in range(steps)]


def _losses_torch(layers, init, x, y, steps, fmt):
    model = peer_models.torch_sequential(layers, init)
    if fmt == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=EPS)
    xt, yt = peer_models.torch_input(x, fmt), torch.from_numpy(y)
    out = []
    for t in range(1, steps + 1):
        # torch's eps sits on sqrt(v_hat); this eps makes it Keras's (nncompile's) update exactly
        opt.param_groups[0]["eps"] = EPS / math.sqrt(1.0 - B2 ** t)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out


@pytest.mark.parametrize("source", [os.path.join(BENCH, "w5.nn"), gpu_step.SMOKE_CONV],
                         ids=["w5", "smoke-conv-batchnorm"])
@pytest.mark.parametrize("fmt", ["NCHW", "channels_last"])
def test_torch_peer_matches_nncompile(source, fmt):
    torch.manual_seed(0)
    prog = nncompile.compile(source)
    init = prog.init_params(seed=0)
    in_shape, layers = peer_models.model_layers(prog)
    rng = np.random.default_rng(0)
    x = rng.random((6,) + in_shape, dtype=np.float32)
    y = rng.integers(0, layers[-1].out_shape[0], 6).astype(np.int64)
    ref = _losses_nncompile(prog, init, x, y, 4)
    got = _losses_torch(layers, init, x, y, 4, fmt)
    assert np.allclose(got, ref, rtol=2e-5, atol=0), (got, ref)


def test_workload_files_describe():
    w5 = nncompile.compile(os.path.join(BENCH, "w5.nn"))
    assert peer_models.describe(*peer_models.model_layers(w5)) == (
        "28x28x1 > conv32 3x3 same relu > maxpool2 > conv64 3x3 same relu > maxpool2 > flatten > dense128 > dense10")
    assert w5.ast.train.batch_size == 64
    w6 = nncompile.compile(os.path.join(BENCH, "w6.nn"))
    shape, layers = peer_models.model_layers(w6)
    assert shape == (32, 32, 3) and w6.ast.train.batch_size == 256
    assert [l.out_shape for l in layers if l.kind == "maxpool2d"] == [(16, 16, 64), (8, 8, 128), (4, 4, 256)]
    assert layers[-1].in_shape == (4096,)
