#!/usr/bin/env python3
"""Data-parallel step time: 1 and 2 workers over gloo on this machine, W1 and W2.

For each workload (benchmarks/w1.nn: MLP 784-512-256-10, global batch 128;
w2.nn: the same, batch 1024) and each worker count N, the script starts N
worker processes with torchrun's variables (as `nncompile run --workers N`),
each training on its shard of random global batches through the fit loop's
trainer (`WorkerTrainer.train_batch`), and reports from rank 0:

  step ms        the wall time of one global step (median of the timed steps)
  all-reduce ms  the part of it spent in torch.distributed.all_reduce: the flat
                 gradient (W1/W2: 535,818 floats, 2.1 MB), and the batch's loss
                 and metrics (one small reduction)
  plain ms       (N=1 only) the plain one-process Trainer on the same batches:
                 the cost of the data-parallel step itself with no peer

Each worker gets OMP_NUM_THREADS = cores / N (the launcher's choice), so the
1- and 2-worker runs use the same cores. On the 2-core development machine,
shared with other jobs, the numbers say little: 2 workers cannot be faster
than 1 worker with 2 threads there (the same cores, plus the all-reduce), and
the timings move with the other load. Run it on a quiet machine with more
cores for numbers; check it runs with --steps 3.

  python benchmarks/distributed_step.py [--workloads w1,w2] [--workers 1,2] [--steps 30]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def worker(workload: str, steps: int, out_path: str) -> None:
    import numpy as np

    import nncompile
    from nncompile.runtime.distributed import Group
    group = Group()
    path = os.path.join(HERE, f"{workload}.nn")
    program = nncompile.compile(path, data_parallel=True)
    program.group = group
    trainer = program.trainer(seed=0)
    batch = program.ast.train.batch_size
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=batch)
    spent = [0.0]
    reduce = group._all_reduce

    def timed(t):
        t0 = time.perf_counter()
        reduce(t)
        spent[0] += time.perf_counter() - t0

    group._all_reduce = timed
    for _ in range(3):       # warm-up: buffers, native kernels, gloo connections
        trainer.train_batch(x, y)
    step_s, reduce_s = [], []
    for _ in range(steps):
        spent[0] = 0.0
        t0 = time.perf_counter()
        trainer.train_batch(x, y)
        step_s.append(time.perf_counter() - t0)
        reduce_s.append(spent[0])
    result = {"step_ms": 1e3 * statistics.median(step_s), "allreduce_ms": 1e3 * statistics.median(reduce_s)}
    if group.world == 1:
        plain = nncompile.compile(path).trainer(seed=0)
        for _ in range(3):
            plain.train_batch(x, y)
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            plain.train_batch(x, y)
            times.append(time.perf_counter() - t0)
        result["plain_ms"] = 1e3 * statistics.median(times)
    group.close()
    if group.rank == 0:
        with open(out_path, "w") as f:
            json.dump(result, f)


def run(workload: str, workers: int, steps: int, timeout: float) -> dict:
    import tempfile

    from nncompile.runtime.launcher import free_port, worker_env
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        procs = []
        for r in range(workers):
            env = worker_env(r, workers, "127.0.0.1", port)
            env["PYTHONPATH"] = os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])
            procs.append(subprocess.Popen([sys.executable, __file__, "--worker", workload, str(steps), out], env=env))
        deadline = time.monotonic() + timeout
        for p in procs:
            try:
                p.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                for q in procs:
                    q.kill()
                raise SystemExit(f"{workload} with {workers} workers did not finish in {timeout:.0f} s")
        if any(p.returncode for p in procs):
            raise SystemExit(f"{workload} with {workers} workers failed: exit statuses {[p.returncode for p in procs]}")
        with open(out) as f:
            return json.load(f)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workloads", default="w1,w2")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    print(f"cores: {len(os.sched_getaffinity(0))}; threads per worker: cores / N unless OMP_NUM_THREADS is set")
    print(f"{'workload':8} {'workers':>7} {'step ms':>9} {'all-reduce ms':>14} {'plain ms':>9}")
    for w in args.workloads.split(","):
        for n in (int(v) for v in args.workers.split(",")):
            r = run(w, n, args.steps, args.timeout)
            plain = f"{r['plain_ms']:9.2f}" if "plain_ms" in r else f"{'':9}"
            print(f"{w:8} {n:7d} {r['step_ms']:9.2f} {r['allreduce_ms']:14.2f} {plain}", flush=True)


if __name__ == "__main__":
    main()
