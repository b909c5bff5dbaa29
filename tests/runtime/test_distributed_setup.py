"""The parts of data-parallel training that need no second process (and no
torch): shards, dropout keyed by the global row in every backend, the
data-parallel graph in one process, and the setup errors."""
import builtins
import os

import numpy as np
import pytest

import nncompile
from nncompile.backends.numpy.codegen import generate
from nncompile.ir import collective
from nncompile.ir.graph import B, Graph
from nncompile.passes.manager import PIPELINE, run_passes
from nncompile.runtime import distributed
from nncompile.runtime.distributed import DistributedError, need_torch, shard, threads_per_worker
from nncompile.runtime.launcher import check_port, check_workers, free_port
from nncompile.runtime.trainer import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("n,world", [(10, 2), (9, 2), (1, 2), (7, 3), (2, 3)])
def test_shards_cover_the_batch_once(n, world):
    bounds = [shard(n, r, world) for r in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1


def dropout_graph():
    g = Graph("t")
    x = g.input("x", (B, 7, 3))
    rng = g.input("rng", (3,), "i64", role="scalar")
    g.output("y", g.emit("mul", g.emit("relu", x), g.emit("dropout_mask", x, rng, rate=0.4, stream=2)))
    return run_passes(g, pipeline=[p for p in PIPELINE if p[0] != "autodiff"])[0]


def check_shard_masks(run):
    """rng (seed, step, lo) on rows lo:hi gives rows lo:hi of the mask of the whole
    batch: a sample's dropout does not depend on the number of workers."""
    x = np.abs(np.random.default_rng(0).normal(size=(11, 7, 3))).astype(np.float32) + 0.1
    whole = np.asarray(run.to_host(run({"x": run.to_device(x), "rng": np.array([9, 4, 0])})["y"]))
    assert 0.3 < (whole == 0).mean() < 0.5
    for lo, hi in [(0, 6), (6, 11), (10, 11)]:
        part = np.asarray(run.to_host(run({"x": run.to_device(x[lo:hi]), "rng": np.array([9, 4, lo])})["y"]))
        np.testing.assert_array_equal(part, whole[lo:hi], err_msg=f"rows {lo}:{hi}")


@pytest.mark.parametrize("kernels", ["numpy", "auto"])
def test_a_shard_draws_its_rows_of_the_global_batch_mask(kernels):
    check_shard_masks(generate(dropout_graph(), kernels))   # (the Triton backend: tests/triton_backend)


SRC = os.path.join(ROOT, "examples", "digits.nn")


def test_the_data_parallel_step_alone_is_the_plain_step():
    """With no process group (one worker), shard_mean is the identity and the
    shard is the batch: the data-parallel program trains bit for bit as the plain one."""
    x = np.random.default_rng(1).normal(size=(70, 64)).astype(np.float32)
    y = np.arange(70) % 10
    a, b = nncompile.compile(SRC), nncompile.compile(SRC, data_parallel=True)
    assert any(n.op == "shard_mean" for n in b.graphs.train_step.nodes)
    assert not any(n.op == "shard_mean" for n in a.graphs.train_step.nodes)
    with pytest.raises(nncompile.NNError, match="has none"):
        b.trainer()                                    # a WorkerTrainer needs its process group
    ta, tb = Trainer(a, seed=3), Trainer(b, seed=3)   # b's step alone, with no group
    for i in range(0, 70, 32):
        assert ta.train_batch(x[i:i + 32], y[i:i + 32]) == tb.train_batch(x[i:i + 32], y[i:i + 32])
    for k, v in ta.host("arrays").items():
        np.testing.assert_array_equal(tb.host("arrays")[k], v, err_msg=k)


def test_shard_mean_calls_the_installed_reduction():
    seen = []
    collective.install(lambda buf: (seen.append(buf.copy()), buf.__imul__(2)))
    try:
        assert collective.shard_mean(np.ones(3)).tolist() == [2.0, 2.0, 2.0]
        with collective.local():
            assert collective.shard_mean(np.ones(2)).tolist() == [1.0, 1.0]
    finally:
        collective.install(None)
    assert len(seen) == 1


def test_without_torch_the_error_says_how_to_install_it(monkeypatch):
    real = builtins.__import__

    def no_torch(name, *a, **kw):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(DistributedError) as e:
        need_torch()
    assert "pip install 'nncompile[distributed]'" in str(e.value)


def test_a_worker_without_rank_0s_address_is_told(monkeypatch):
    pytest.importorskip("torch", reason="needs torch.distributed: pip install 'nncompile[distributed]'")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(DistributedError, match="MASTER_ADDR is not set"):
        distributed.Group()


def test_rank_0_on_a_port_in_use_says_so(monkeypatch):
    """As under torchrun with a MASTER_PORT taken: a clear error, and the status
    that makes the --workers launcher try another port."""
    pytest.importorskip("torch", reason="needs torch.distributed: pip install 'nncompile[distributed]'")
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        for k, v in dict(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                         NNCOMPILE_DIST_TIMEOUT="20").items():
            monkeypatch.setenv(k, v)
        with pytest.raises(DistributedError, match=f"MASTER_PORT {port} is in use on 127.0.0.1") as e:
            distributed.Group()
    assert e.value.status == distributed.PORT_IN_USE


def test_worker_counts_and_ports_are_checked(monkeypatch):
    with pytest.raises(DistributedError, match="expected 1 or more"):
        check_workers(0, False)
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(DistributedError, match="WORLD_SIZE=3"):
        check_workers(2, True)
    check_workers(3, True)
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(DistributedError, match="is in use"):
            check_port("127.0.0.1", s.getsockname()[1])
    check_port("127.0.0.1", free_port())


def test_threads_divide_the_cores_unless_omp_num_threads_says(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = len(os.sched_getaffinity(0))
    assert threads_per_worker(1) == cores
    assert threads_per_worker(cores * 2) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads_per_worker(8) == 3


def test_fit_workers_refuses_what_cannot_cross_to_a_process(tmp_path):
    p = nncompile.compile(SRC)
    with pytest.raises(nncompile.NNError, match="cannot pass callbacks, data"):
        p.fit(workers=2, data=(np.zeros((4, 64)), np.zeros(4)), callbacks=[object()])
    with pytest.raises(nncompile.NNError, match="needs the program as a .nn file"):
        nncompile.compile(open(SRC).read()).fit(workers=2)
