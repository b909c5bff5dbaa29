"""Data-parallel training (docs/distributed.md): 2 workers over gloo on
localhost train what 1 worker trains (the oracle: the plain one-process fit,
with the same global batch), and a failing worker ends the run, never hangs.

The workers are real processes (torchrun's variables, a free port picked at
run time, bounded timeouts); one spawn trains every case of the equality
table (tests/runtime/dist_worker.py)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch.distributed: pip install 'nncompile[distributed]'")

import nncompile  # noqa: E402
from nncompile.runtime.distributed import PEER_LOST, PORT_IN_USE  # noqa: E402
from nncompile.runtime.launcher import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("dist_worker.py")
SPAWN_TIMEOUT_S = 240   # two fresh processes importing torch and compiling every case, on a busy machine

MODEL = """model m {{
  input x: f32[6]
  dense h({units}, relu, l2=1e-3)
  {norm}
  dropout d(0.3)
  dense o(3, softmax, l1=1e-4)
}}
train {{
  loss = sparse_categorical_crossentropy
  optimizer = {opt}
  metrics = {metrics}
  {extra}
  epochs = 3
  batch_size = 9
  seed = 5
}}
"""

# batch 9 of 41 rows: every batch splits 5/4 and the last (5 rows) 3/2; of 37
# rows the last batch has one row, so worker 1's shard of it is empty
CASES = {
    "adam-batchnorm-dropout": dict(opt="adam(lr=0.01)"),
    "adam-numpy-kernels": dict(opt="adam(lr=0.01)", cpu_kernels="numpy"),
    "adam-empty-shard": dict(opt="adam(lr=0.01)", rows=37),
    "sgd": dict(opt="sgd(lr=0.05)"),
    "sgd-nesterov": dict(opt="sgd(lr=0.05, momentum=0.9, nesterov=true)"),
    "adamw": dict(opt="adamw(lr=0.01, weight_decay=0.01)"),
    "rmsprop": dict(opt="rmsprop(lr=0.01)"),
    "rmsprop-momentum": dict(opt="rmsprop(lr=0.005, momentum=0.5)"),
    "dense-only": dict(opt="adam(lr=0.01)", norm="", units=8),
    # metrics that are not batch means (their statistics are averaged over the shards,
    # then finished) and class weights in the loss
    "keras-metrics-class-weight": dict(opt="adam(lr=0.01)", extra="class_weight = {0: 1, 2: 3}",
                                       metrics="[accuracy, precision, recall, f1_score, auc, rmse]"),
}


def source(case: dict) -> str:
    return MODEL.format(opt=case["opt"], norm=case.get("norm", "batchnorm bn"), units=case.get("units", 16),
                        metrics=case.get("metrics", "[accuracy]"), extra=case.get("extra", ""))


def data(path: Path) -> dict:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(54, 6)).astype(np.float32)
    y = (x[:, :3] + 0.3 * rng.normal(size=(54, 3))).argmax(1)
    d = dict(x=x[:41], y=y[:41], xv=x[41:], yv=y[41:])
    np.savez(path, **d)
    return d


def worker_env(rank: int, world: int, port: int) -> dict:
    env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
               LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
               NNCOMPILE_DIST_TIMEOUT="60", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def spawn(spec: dict, out: Path, world: int = 2) -> list[int]:
    """Run tests/runtime/dist_worker.py as `world` workers; their exit statuses
    (again on another port if the free one picked was taken meanwhile)."""
    for _ in range(3):
        codes = _spawn(spec, out, world)
        if codes[0] != PORT_IN_USE:
            return codes
    return codes


def _spawn(spec: dict, out: Path, world: int) -> list[int]:
    out.mkdir(exist_ok=True)
    spec_path = out / "spec.json"
    spec_path.write_text(json.dumps(spec))
    port = free_port()
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(spec_path), str(out)], env=worker_env(r, world, port),
                              stdout=subprocess.DEVNULL, stderr=open(out / f"stderr{r}.txt", "w"))
             for r in range(world)]
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [p.returncode for p in procs]


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dp")
    d = data(tmp / "d.npz")
    cases = [dict(source=source(c), cpu_kernels=c.get("cpu_kernels"), rows=c.get("rows", 41)) for c in CASES.values()]
    codes = spawn({"data": str(tmp / "d.npz"), "cases": cases}, tmp / "out")
    assert codes == [0, 0], (tmp / "out" / "stderr0.txt").read_text() + (tmp / "out" / "stderr1.txt").read_text()
    return tmp / "out", d


@pytest.mark.parametrize("name", list(CASES))
def test_two_workers_train_what_one_trains(two_workers, name):
    out, d = two_workers
    i = list(CASES).index(name)
    case = CASES[name]
    n = case.get("rows", 41)
    p = nncompile.compile(source(case), cpu_kernels=case.get("cpu_kernels"))
    h = p.fit(data=(d["x"][:n], d["y"][:n]), validation_data=(d["xv"], d["yv"]), quiet=True)
    one = h.trainer.host("arrays")
    two = dict(np.load(out / f"{i}.npz"))
    assert set(one) == set(two)
    for k in one:   # float32 reduction order: the sums over shards are added in another order
        np.testing.assert_allclose(two[k], one[k], rtol=1e-4, atol=2e-6, err_msg=k)
    hist = json.loads((out / f"{i}.json").read_text())
    assert set(hist) == set(h.history)
    for k, v in h.history.items():
        np.testing.assert_allclose(hist[k], v, rtol=1e-5, atol=1e-6, err_msg=k)


def test_a_raising_worker_stops_the_others(tmp_path):
    """Worker 1 raises at its 4th step: worker 0's next collective fails at once
    (not after the 60 s timeout) with an error naming its rank."""
    data(tmp_path / "d.npz")
    case = {"source": source(CASES["adam-batchnorm-dropout"]), "raise": {"rank": 1, "step": 4}}
    t0 = time.monotonic()
    codes = spawn({"data": str(tmp_path / "d.npz"), "cases": [case]}, tmp_path / "out")
    assert time.monotonic() - t0 < 50
    assert codes[1] != 0 and "injected failure at step 4" in (tmp_path / "out" / "stderr1.txt").read_text()
    assert codes[0] == PEER_LOST
    msg = (tmp_path / "out" / "rank0.err").read_text()
    assert "worker rank 0: another worker stopped or stopped answering (" in msg, msg
    assert "by peer" in msg, msg     # gloo's "Connection closed by peer" or "... reset by peer"

