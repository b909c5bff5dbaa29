"""Training-step time on one CUDA GPU: nncompile (Triton backend) vs PyTorch
eager vs torch.compile, same initial weights and the same batch.

Workloads (softmax + sparse cross-entropy, Adam lr 1e-3):
  W1  MLP 784-512-256-10 relu, batch 128
  W2  the same, batch 1024
  W4  MLP 4096-4096-4096-10 relu, batch 4096

Prints, as it goes, the median ms/step of each side, the ratios to nncompile,
and the achieved matmul TFLOP/s (6 * batch * sum(in*out) flops per step).
Every step of every side ends with `float(loss)` (what a training loop that
reports the loss does; nncompile's Trainer.step returns a float).
A side that fails prints its error and the run goes on. No network needed.

    python benchmarks/gpu_step.py            # ~2-3 minutes on an H100
    python benchmarks/gpu_step.py --quick    # fewer steps, W1 + W4 only
    python benchmarks/gpu_step.py --tf32     # tf32 matmuls on every side
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import traceback

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

WORKLOADS = {
    "W1": dict(dims=[784, 512, 256, 10], batch=128),
    "W2": dict(dims=[784, 512, 256, 10], batch=1024),
    "W4": dict(dims=[4096, 4096, 4096, 10], batch=4096),
    "smoke": dict(dims=[8, 16, 4], batch=8),   # --smoke: CPU + Triton interpreter, checks the script only
}


DEV = "cuda"


def say(*a):
    print(*a, flush=True)


def nn_source(dims, batch):
    layers = "\n".join(f"  dense h{i}({d}, relu)" for i, d in enumerate(dims[1:-1]))
    return (f"model mlp {{\n  input x: f32[{dims[0]}]\n{layers}\n  dense out({dims[-1]}, softmax)\n}}\n"
            f"train {{\n  loss = sparse_categorical_crossentropy\n  optimizer = adam(lr=0.001)\n"
            f"  batch_size = {batch}\n}}\n")


def flops_per_step(dims, batch):
    return 6.0 * batch * sum(a * b for a, b in zip(dims[:-1], dims[1:]))


def time_steps(step, n_warm, n_steps, sync):
    for _ in range(n_warm):
        step()
    sync()
    ts = []
    for _ in range(n_steps):
        t0 = time.perf_counter()
        step()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def run_nncompile(dims, batch, init, x, y, n_warm, n_steps, sync):
    import nncompile
    t0 = time.perf_counter()
    prog = nncompile.compile(nn_source(dims, batch), backend="triton")
    tr = prog.trainer(seed=0, params=init)
    fn = tr._step_fn
    xd, yd = fn.to_device(x, np.float32), fn.to_device(y, np.int64)
    first = tr.step(xd, yd)          # compiles the kernels (and tunes the matmuls) on first use
    sync()
    say(f"    nncompile: first step (compile + tune) {time.perf_counter() - t0:.1f} s, "
        f"loss {first:.6f}, {len(fn.kernels)} generated kernels, fallbacks {fn.fallbacks or 'none'}")
    ms = time_steps(lambda: tr.step(xd, yd), n_warm, n_steps, sync)
    return ms, first


def torch_setup(dims, init, tf32):
    import torch
    layers = []
    names = [f"h{i}" for i in range(len(dims) - 2)] + ["out"]
    for i, name in enumerate(names):
        lin = torch.nn.Linear(dims[i], dims[i + 1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(init[f"{name}.weight"].T)))
            lin.bias.copy_(torch.from_numpy(init[f"{name}.bias"]))
        layers.append(lin)
        if i < len(names) - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(DEV)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    return model, opt


def run_torch(dims, init, x, y, n_warm, n_steps, sync, compiled, tf32):
    import torch
    import torch.nn.functional as F
    model, opt = torch_setup(dims, init, tf32)
    fwd = torch.compile(model) if compiled else model
    xd, yd = torch.from_numpy(x).to(DEV), torch.from_numpy(y).to(DEV)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(fwd(xd), yd)
        loss.backward()
        opt.step()
        return float(loss.detach())

    t0 = time.perf_counter()
    first = step()
    sync()
    if compiled:
        say(f"    torch.compile: first step (compile) {time.perf_counter() - t0:.1f} s")
    return time_steps(step, n_warm, n_steps, sync), first


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer steps; W1 and W4 only")
    ap.add_argument("--workloads", default=None, help="comma list, e.g. W1,W4")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--tf32", action="store_true", help="tf32 matmuls on every side")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--budget", type=float, default=215.0,
                    help="seconds: sides not started by then are skipped (default 215, under 4 minutes in all)")
    ap.add_argument("--smoke", action="store_true",
                    help="no GPU: a tiny model on the CPU through the Triton interpreter (tests the script)")
    args = ap.parse_args(argv)
    global DEV
    if args.smoke:
        os.environ["TRITON_INTERPRET"] = "1"
        DEV = "cpu"
    if args.tf32:
        os.environ["NNCOMPILE_TF32"] = "1"
    try:
        import torch
    except Exception as e:  # pragma: no cover
        say(f"torch is not importable: {e}")
        return 1
    if not args.smoke and not torch.cuda.is_available():
        say("no CUDA device: this benchmark needs a GPU (the Triton backend runs on the CPU only "
            "through the interpreter, far too slow to time)")
        return 1
    torch.backends.cuda.matmul.allow_tf32 = bool(args.tf32)
    torch.backends.cudnn.allow_tf32 = bool(args.tf32)
    sync = torch.cuda.synchronize if not args.smoke else (lambda: None)
    names = (args.workloads.split(",") if args.workloads else (["W1", "W4"] if args.quick else ["W1", "W2", "W4"]))
    if args.smoke:
        names = ["smoke"]
    n_steps = args.steps or (2 if args.smoke else 10 if args.quick else 30)
    n_warm = 1 if args.smoke else 3 if args.quick else 5
    dev_name = "CPU (Triton interpreter)" if args.smoke else torch.cuda.get_device_name()
    say(f"device: {dev_name}  torch {torch.__version__}  "
        f"precision: {'tf32' if args.tf32 else 'fp32 (ieee)'}  steps: {n_steps} (median)")
    t_all = time.perf_counter()
    summary = []
    for wname in names:
        w = WORKLOADS[wname]
        dims, batch = w["dims"], w["batch"]
        say(f"\n{wname}: MLP {'-'.join(map(str, dims))}, batch {batch}, Adam")
        import nncompile
        init = nncompile.compile(nn_source(dims, batch), backend="numpy").init_params(0)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(batch, dims[0])).astype(np.float32)
        y = rng.integers(0, dims[-1], batch).astype(np.int64)
        fl = flops_per_step(dims, batch)
        res = {}
        sides = [("nncompile-triton", lambda: run_nncompile(dims, batch, init, x, y, n_warm, n_steps, sync)),
                 ("torch eager", lambda: run_torch(dims, init, x, y, n_warm, n_steps, sync, False, args.tf32))]
        if not args.no_compile:
            sides.append(("torch.compile",
                          lambda: run_torch(dims, init, x, y, n_warm, n_steps, sync, True, args.tf32)))
        for side, fn in sides:
            if time.perf_counter() - t_all > args.budget:
                say(f"  {side:17s} SKIPPED: time budget ({args.budget:.0f} s) spent")
                continue
            try:
                ms, first = fn()
                res[side] = (ms, first)
                say(f"  {side:17s} {ms:9.3f} ms/step  {fl / ms / 1e9:8.1f} TFLOP/s (matmul)  "
                    f"first loss {first:.6f}")
            except Exception as e:
                say(f"  {side:17s} FAILED: {type(e).__name__}: {str(e)[:300]}")
                traceback.print_exc(limit=3, file=sys.stdout)
                sys.stdout.flush()
            if not args.smoke:
                torch.cuda.empty_cache()
        if "nncompile-triton" in res:
            base = res["nncompile-triton"][0]
            for side, (ms, first) in res.items():
                if side != "nncompile-triton":
                    say(f"  nncompile / {side}: {base / ms:.2f}x time "
                        f"(first-step loss diff {abs(res['nncompile-triton'][1] - first):.2e})")
        summary.append((wname, res))
        say(f"  [{time.perf_counter() - t_all:.0f} s elapsed]")
    say("\nsummary (median ms/step):")
    for wname, res in summary:
        say(f"  {wname}: " + ", ".join(f"{k} {v[0]:.3f}" for k, v in res.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
