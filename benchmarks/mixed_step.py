"""Mixed-precision training-step time on one CUDA GPU (issue 17): nncompile's
Triton backend in `precision = mixed_bf16` against its fp32 step, and against
torch.autocast(bfloat16) + torch.compile (and eager autocast), on the
workloads of benchmarks/gpu_step.py (W1, W2, W4, W6), from the same weights on
the same batch.

For each side: the median ms/step, the TFLOP/s of the contractions, the loss
of the first step and after all timed steps (mixed precision changes the
numbers: the losses should stay close, not equal). Then the ratios the issue
asks for: nncompile bf16 over nncompile fp32 (target: >= 1.5x faster on W4 and
W6) and over torch.compile + autocast (target: at least as fast).

    python benchmarks/mixed_step.py              # W1, W2, W4, W6
    python benchmarks/mixed_step.py --quick      # fewer steps; W1, W4, W6
    python benchmarks/mixed_step.py --smoke      # no GPU: tiny models through the Triton
                                                 # interpreter on the CPU (checks the script)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gpu_step as G  # noqa: E402  (benchmarks/gpu_step.py: workloads, timing, the torch sides)


def run_nncompile(wl, precision, n_warm, n_steps, sync):
    from nncompile.compiler import Program
    from nncompile.frontend.parser import parse_file, parse_source, with_overrides
    prog = parse_file(wl.source) if wl.source.endswith(".nn") else parse_source(wl.source, "<benchmark>")
    program = Program(with_overrides(prog, precision=precision), "triton")
    tr = program.trainer(seed=0, params={k: v.copy() for k, v in wl.init.items()})
    fn = tr._step_fn
    xd, yd = fn.to_device(wl.x, np.float32), fn.to_device(wl.y, np.int64)
    first = tr.step(xd, yd)
    sync()
    ms, last = G.time_steps(lambda: tr.step(xd, yd), n_warm, n_steps, sync)
    return ms, first, last


def run_torch_autocast(wl, n_warm, n_steps, sync, compiled):
    """torch with its forward and loss under torch.autocast(bfloat16), fp32 master weights
    (the standard recipe; bf16 needs no GradScaler)."""
    import torch
    import torch.nn.functional as F
    fmt = "channels_last" if wl.is_image else None
    model = G.peer_models.torch_sequential(wl.layers, wl.init).to(G.DEV)
    if fmt:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    fwd = torch.compile(model) if compiled else model
    xd = G.peer_models.torch_input(wl.x, fmt).to(G.DEV)
    if fmt:
        xd = xd.contiguous(memory_format=torch.channels_last)
    yd = torch.from_numpy(wl.y).to(G.DEV)
    kind = "cuda" if G.DEV == "cuda" else "cpu"

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(kind, dtype=torch.bfloat16):
            loss = F.cross_entropy(fwd(xd), yd)
        loss.backward()
        opt.step()
        return float(loss.detach())

    first = step()
    sync()
    ms, last = G.time_steps(step, n_warm, n_steps, sync)
    return ms, first, last


SIDES = [
    ("nncompile f32", lambda wl, w, n, s: run_nncompile(wl, "f32", w, n, s)),
    ("nncompile mixed_bf16", lambda wl, w, n, s: run_nncompile(wl, "mixed_bf16", w, n, s)),
    ("torch eager autocast bf16", lambda wl, w, n, s: run_torch_autocast(wl, w, n, s, False)),
    ("torch.compile autocast bf16", lambda wl, w, n, s: run_torch_autocast(wl, w, n, s, True)),
    ("torch.compile f32", lambda wl, w, n, s: G.run_torch(wl, w, n, s, True,
                                                          "channels_last" if wl.is_image else None)),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer steps; W1, W4 and W6 only")
    ap.add_argument("--workloads", default=None, help="comma list, e.g. W4,W6")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--smoke", action="store_true", help="no GPU: tiny models through the Triton interpreter")
    args = ap.parse_args(argv)
    if args.smoke:
        os.environ["TRITON_INTERPRET"] = "1"
        G.DEV = "cpu"
    import torch
    if not args.smoke and not torch.cuda.is_available():
        G.say("no CUDA device: this benchmark needs a GPU (--smoke checks the script on the CPU)")
        return 1
    sync = torch.cuda.synchronize if not args.smoke else (lambda: None)
    names = ["smoke", "smoke-conv"] if args.smoke else (
        args.workloads.split(",") if args.workloads else ["W1", "W4", "W6"] if args.quick else ["W1", "W2", "W4", "W6"])
    n_steps = args.steps or (2 if args.smoke else 10 if args.quick else 30)
    n_warm = 1 if args.smoke else 3 if args.quick else 5
    G.say(f"device: {'CPU (Triton interpreter)' if args.smoke else torch.cuda.get_device_name()}  "
          f"torch {torch.__version__}  steps: {n_steps} (median)")
    for wname in names:
        wl = G.Workload(wname)
        fl = wl.flops_per_step()
        G.say(f"\n{wname}: {wl.kind} {wl.arch}, batch {wl.batch}, Adam")
        res = {}
        for label, run in SIDES:
            if args.smoke and label.startswith("torch.compile"):
                continue        # inductor on the CPU compiles for minutes: the GPU run covers it
            try:
                t0 = time.perf_counter()
                ms, first, last = run(wl, n_warm, n_steps, sync)
                res[label] = ms
                G.say(f"  {label:28s} {ms:9.3f} ms/step  {fl / ms / 1e9:8.1f} TFLOP/s  loss first {first:.6f} "
                      f"last {last:.6f}  ({time.perf_counter() - t0:.0f} s)")
            except Exception as e:
                G.say(f"  {label:28s} FAILED: {type(e).__name__}: {str(e)[:300]}")
                traceback.print_exc(limit=3, file=sys.stdout)
        ours = res.get("nncompile mixed_bf16")
        for other in ("nncompile f32", "torch.compile autocast bf16", "torch eager autocast bf16"):
            if ours and other in res:
                G.say(f"  nncompile mixed_bf16 is {res[other] / ours:.2f}x as fast as {other}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
