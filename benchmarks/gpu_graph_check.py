"""On a CUDA GPU: the CUDA-graph replay of a training step gives the same
parameters as eager kernel launches (W1, 12 steps), and how long each takes.

    python benchmarks/gpu_graph_check.py
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import nncompile  # noqa: E402


def run(path, graphs, steps=12):
    os.environ["NNCOMPILE_CUDA_GRAPHS"] = "1" if graphs else "0"
    prog = nncompile.compile(path, backend="triton")
    params = prog.init_params(0)
    tr = prog.trainer(seed=0, params=params)
    assert prog.compiled("train_step").cuda_graphs == graphs
    rng = np.random.default_rng(0)
    shape = tuple(prog.graphs.train_step.inputs[prog.ast.model.input.name].shape[1:])
    bs = prog.ast.train.batch_size
    dev = prog.compiled("train_step").to_device
    xs = [dev(rng.normal(size=(bs,) + shape).astype(np.float32)) for _ in range(4)]
    ys = [dev(rng.integers(0, 10, bs), np.int64) for _ in range(4)]
    losses = [tr.step(xs[i % 4], ys[i % 4]) for i in range(steps)]
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    n = 200
    for i in range(n):
        tr.step(xs[i % 4], ys[i % 4])
    torch.cuda.synchronize()
    return losses, tr.host(), (time.perf_counter() - t0) / n * 1e3


for w in ("w1", "w2"):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{w}.nn")
    le, pe, te = run(path, False)
    lg, pg, tg = run(path, True)
    d = max(float(np.max(np.abs(pe[k] - pg[k]) / (np.abs(pe[k]).max() + 1e-12))) for k in pe)
    print(f"{w}: eager {te:.3f} ms/step, CUDA graph {tg:.3f} ms/step ({te / tg:.2f}x); "
          f"losses max rel diff {max(abs(a - b) / abs(a) for a, b in zip(le, lg)):.2e}; "
          f"params after {len(le)} + 200 steps max rel diff {d:.2e}", flush=True)
