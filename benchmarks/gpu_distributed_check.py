#!/usr/bin/env python3
"""The data-parallel step on the Triton backend against the plain one: one
worker (WORLD_SIZE=1; NCCL on a CUDA GPU, gloo otherwise) and the plain
one-process run train the same model with the same seed; their final weights
and histories must agree within float32 tolerance (the NCCL all-reduce of
one rank is the identity, so any difference is the data-parallel graph's:
the shard weights, the dropout counters, the host calls).

  python benchmarks/gpu_distributed_check.py [--model examples/digits.nn] [--epochs 3]
  TRITON_INTERPRET=1 python benchmarks/gpu_distributed_check.py \\
      --model examples/textbook_classifier.nn --epochs 1       # a check that it runs, on a CPU

Not run on a GPU yet (none was available when it was written).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "examples", "digits.nn"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=500)
    args = ap.parse_args()
    sys.path.insert(0, ROOT)
    from nncompile.runtime.launcher import free_port
    with tempfile.TemporaryDirectory() as tmp:
        base = [sys.executable, "-m", "nncompile", "run", args.model, "--backend", "triton", "--epochs",
                str(args.epochs), "--quiet"]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
        worker = dict(env, RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
        runs = {"plain": env, "worker": worker}
        for name, e in runs.items():
            r = subprocess.run(base + ["--out", os.path.join(tmp, name)], env=e, capture_output=True, text=True,
                               timeout=args.timeout)
            print(f"{name}: exit {r.returncode}: {r.stdout.strip()}")
            if r.returncode != 0:
                print(r.stderr[-3000:])
                return 1
        a = np.load(os.path.join(tmp, "plain", "weights_final.npz"))
        b = np.load(os.path.join(tmp, "worker", "weights_final.npz"))
        worst = max(float(np.max(np.abs(a[k] - b[k]))) for k in a.files if k != "__meta__")
        ha = np.genfromtxt(os.path.join(tmp, "plain", "history.csv"), delimiter=",", names=True)
        hb = np.genfromtxt(os.path.join(tmp, "worker", "history.csv"), delimiter=",", names=True)
        hist = max(float(np.max(np.abs(ha[k] - hb[k]))) for k in ha.dtype.names)
        print(f"largest weight difference {worst:.3g}, largest history difference {hist:.3g}")
        ok = worst < 1e-3 and hist < 1e-4
        print("OK" if ok else "MISMATCH")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
