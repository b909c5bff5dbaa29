#!/usr/bin/env python3
"""Where a compiled step spends its time: the NumPy backend's generated `run`,
timed line by line (each statement of the straight-line step runs alone).

    python benchmarks/line_times.py model.nn [--graph train_step] [--steps 50] [--top 25]
        [--cpu-kernels auto|native|numpy]

Prints the slowest lines with their share of the step, and the total. The
timers add about a microsecond a line, so small lines read high.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def random_batch(prog, b):
    """x uniform in [0, 1) of the input's shape; y integer classes (sparse labels, from
    the last layer's width) or uniform floats, as the train graph declares them."""
    g = prog.graphs.train_step
    rng = np.random.default_rng(0)
    xs = (b,) + tuple(int(d) for d in g.inputs[prog.ast.model.input.name].shape[1:])
    ynode = g.inputs["y"]
    ys = (b,) + tuple(int(d) for d in ynode.shape[1:])
    x = rng.random(xs, dtype=np.float32)
    if ynode.dtype == "i64":
        init = prog.init_params(0)
        n_cls = int(init[[k for k in init if k.endswith(".weight")][-1]].shape[-1])
        return x, rng.integers(0, n_cls, ys).astype(np.int64)
    return x, rng.random(ys, dtype=np.float32)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--graph", default="train_step")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--cpu-kernels", default=None)
    args = ap.parse_args()
    import nncompile
    from nncompile.runtime.loop import load_datasets
    prog = nncompile.compile(args.file, cpu_kernels=args.cpu_kernels)
    run = prog.compiled(args.graph)
    lines = run.source.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("    def run("))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("        return "))
    body = lines[start + 1:end]
    timed = []
    for k, line in enumerate(body):
        if line.startswith("        ") and not line.startswith("         ") and not line.strip().startswith("#"):
            code = line.strip().split("  # ")[0]      # the trailing comment would swallow the timer
            timed.append(f"        _t0 = _pc(); {code}; _T[{k}] += _pc() - _t0")
        else:
            timed.append(line)
    src = "\n".join(lines[:start + 1] + timed + lines[end:])
    T = np.zeros(len(body))
    ns = {**run._make.__globals__, "_pc": time.perf_counter, "_T": T}
    exec(compile(src, "<timed>", "exec"), ns)
    tr = prog.trainer(seed=0)
    b = prog.ast.train.batch_size
    if prog.ast.train.data is not None:
        train, _ = load_datasets(prog)
        x, y = train.x[:b], train.y[:b]
    else:       # a program without data (the benchmark workloads): seeded random data of its shapes
        x, y = random_batch(prog, b)
    tr._step_fn._runs[b] = ns["make"](b)
    for _ in range(5):
        tr.step(x, y)
    T[:] = 0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        tr.step(x, y)
    total = (time.perf_counter() - t0) / args.steps
    per = T / args.steps
    order = np.argsort(-per)[:args.top]
    print(f"{args.file} {args.graph}: {total * 1e3:.3f} ms a step (lines sum to {per.sum() * 1e3:.3f} ms)")
    for k in order:
        if per[k] > 0:
            print(f"{per[k] * 1e6:9.1f} us {100 * per[k] / per.sum():5.1f}%  {body[k].strip()[:150]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
