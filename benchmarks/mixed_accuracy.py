"""Does mixed precision train as well? digits and digits_cnn (examples/) in
`mixed_bf16` against `f32`, on the NumPy backend's emulation of the casts (the
CPU oracle of the GPU's numbers), over several seeds (the seed draws the
initial weights, the shuffling and dropout; the validation split is fixed).

For each run: the validation accuracy at the epoch early stopping restores
(the best val_loss) and the epochs run. Then per precision the mean and the
standard deviation over seeds, and the mean of the per-seed differences: "the
same accuracy within seed noise" means that difference is within about one
standard deviation of the f32 runs.

    python benchmarks/mixed_accuracy.py                      # both models, seeds 0-2
    python benchmarks/mixed_accuracy.py --models digits --seeds 0,1,2,3,4
    python benchmarks/mixed_accuracy.py --precisions f32,mixed_bf16,mixed_f16
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def run(path: str, precision: str, seed: int) -> tuple[float, int, float]:
    from nncompile.compiler import Program
    from nncompile.frontend.parser import parse_file, with_overrides
    from nncompile.runtime.loop import fit
    program = Program(with_overrides(parse_file(path), precision=precision, seed=seed))
    t0 = time.perf_counter()
    res = fit(program, quiet=True)
    best = res.best_epoch if res.best_epoch is not None else len(res.history["val_accuracy"]) - 1
    return res.history["val_accuracy"][best], len(res.history["val_accuracy"]), time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="digits,digits_cnn")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--precisions", default="f32,mixed_bf16")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    precisions = args.precisions.split(",")
    for model in args.models.split(","):
        path = os.path.join(ROOT, "examples", f"{model}.nn")
        acc: dict[str, list[float]] = {p: [] for p in precisions}
        for seed in seeds:
            for p in precisions:
                a, epochs, secs = run(path, p, seed)
                acc[p].append(a)
                print(f"{model:10s} seed {seed}  {p:10s}  val_accuracy {a:.4f}  ({epochs} epochs, {secs:.0f} s)",
                      flush=True)
        for p in precisions:
            sd = statistics.stdev(acc[p]) if len(acc[p]) > 1 else float("nan")
            print(f"{model:10s} {p:10s}  mean {statistics.mean(acc[p]):.4f}  sd {sd:.4f}  over {len(seeds)} seeds")
        for p in precisions[1:]:
            d = [a - b for a, b in zip(acc[p], acc[precisions[0]])]
            print(f"{model:10s} {p} - {precisions[0]}: mean {statistics.mean(d):+.4f} per seed "
                  f"({', '.join(f'{x:+.4f}' for x in d)})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
