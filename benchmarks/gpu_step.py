"""Training-step time on one CUDA GPU: nncompile (Triton backend) vs PyTorch
eager vs torch.compile, same initial weights and the same batch.

Workloads (softmax + sparse cross-entropy, Adam lr 1e-3, eps 1e-7):
  W1  MLP 784-512-256-10 relu, batch 128
  W2  the same, batch 1024
  W4  MLP 4096-4096-4096-10 relu, batch 4096
  W6  convnet benchmarks/w6.nn: 32x32x3 images, three blocks of conv 3x3 same (64, 128,
      256 filters, no bias) -> batchnorm -> relu -> maxpool 2, then flatten -> dense 10;
      batch 256

Prints, as it goes, the median ms/step of each side, the ratios to nncompile,
the achieved matmul / convolution TFLOP/s (6 * M * K * N flops per step and
layer with parameters: the forward GEMM, its input gradient and its weight
gradient; a convolution counted as its im2col GEMM) and the peak GPU memory
of the side (torch's caching allocator, which both nncompile and torch use).
On an image workload torch runs in NCHW and in channels_last, each timed
(`[channels_last]` rows), and nncompile is compared with the faster of each.
Every step of every side ends with `float(loss)` (what a training loop that
reports the loss does; nncompile's Trainer.step returns a float). Every side
runs the same number of steps from the same start, so the first and the last
loss are compared too. A side that fails prints its error and the run goes on.
No network needed.

    python benchmarks/gpu_step.py            # W1, W2, W4, W6: ~4-5 minutes on an H100
    python benchmarks/gpu_step.py --quick    # fewer steps, W1 + W4 + W6 only
    python benchmarks/gpu_step.py --tf32     # tf32 matmuls and convolutions on every side
    python benchmarks/gpu_step.py --smoke    # no GPU: a tiny MLP and a tiny convnet (batchnorm too) on
                                             # the CPU through the Triton interpreter; checks the script
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)
import peer_models  # noqa: E402  (benchmarks/peer_models.py)

# a workload: an MLP (dims, batch; its .nn source generated) or a .nn file (its batch_size)
SMOKE_CONV = """model smoke_conv {
  input x: f32[8, 8, 3]
  conv2d     c1(4, 3, padding=same, use_bias=false)
  batchnorm  bn1
  activation r1(relu)
  maxpool2d  p1(2)
  conv2d     c2(8, 3, relu, padding=same)
  maxpool2d  p2(2)
  flatten
  dense      out(5, softmax)
}
train {
  loss = sparse_categorical_crossentropy
  optimizer = adam(lr=0.001, eps=1e-7)
  batch_size = 4
}
"""

WORKLOADS = {
    "W1": dict(dims=[784, 512, 256, 10], batch=128),
    "W2": dict(dims=[784, 512, 256, 10], batch=1024),
    "W4": dict(dims=[4096, 4096, 4096, 10], batch=4096),
    "W6": dict(file=os.path.join(HERE, "w6.nn")),
    # --smoke: CPU + Triton interpreter, checks the script only (an MLP, and a convnet with batchnorm)
    "smoke": dict(dims=[8, 16, 4], batch=8),
    "smoke-conv": dict(source=SMOKE_CONV),
}


DEV = "cuda"


def say(*a):
    print(*a, flush=True)


def nn_source(dims, batch):
    layers = "\n".join(f"  dense h{i}({d}, relu)" for i, d in enumerate(dims[1:-1]))
    return (f"model mlp {{\n  input x: f32[{dims[0]}]\n{layers}\n  dense out({dims[-1]}, softmax)\n}}\n"
            f"train {{\n  loss = sparse_categorical_crossentropy\n  optimizer = adam(lr=0.001)\n"
            f"  batch_size = {batch}\n}}\n")


class Workload:
    """The program's source (a generated MLP or a .nn file), its batch, its
    layers as the peers build them, nncompile's initial weights and the data."""

    def __init__(self, name: str):
        import nncompile
        w = WORKLOADS[name]
        self.name = name
        if "dims" in w:
            self.source = nn_source(w["dims"], w["batch"])
        elif "file" in w:
            self.source = w["file"]              # nncompile.compile takes a path or source text
        else:
            self.source = w["source"]
        prog = nncompile.compile(self.source, backend="numpy")
        self.batch = int(prog.ast.train.batch_size)
        self.init = prog.init_params(0)
        self.in_shape, self.layers = peer_models.model_layers(prog, name)
        self.is_image = len(self.in_shape) == 3
        self.arch = peer_models.describe(self.in_shape, self.layers)
        self.kind = "MLP" if all(l.kind == "dense" for l in self.layers) else "convnet"
        rng = np.random.default_rng(0)
        if self.is_image:                         # images uniform in [0, 1), channels-last
            self.x = rng.random((self.batch,) + self.in_shape, dtype=np.float32)
        else:
            self.x = rng.normal(size=(self.batch,) + self.in_shape).astype(np.float32)
        self.y = rng.integers(0, self.layers[-1].out_shape[0], self.batch).astype(np.int64)

    def flops_per_step(self):
        """6 * M * K * N per dense / conv2d layer (forward, input and weight gradients;
        a convolution as its im2col GEMM, M = batch * Ho * Wo, K = kh * kw * C / groups)."""
        total = 0.0
        for l in self.layers:
            if l.kind == "dense":
                total += 6.0 * self.batch * l.in_shape[0] * l.out_shape[0]
            elif l.kind == "conv2d":
                ho, wo, f = l.out_shape
                total += 6.0 * self.batch * ho * wo * l.kernel[0] * l.kernel[1] * l.in_shape[2] // l.groups * f
        return total


def time_steps(step, n_warm, n_steps, sync):
    """Median ms of n_steps timed steps after n_warm; and the last step's loss."""
    for _ in range(n_warm):
        step()
    sync()
    ts = []
    last = None
    for _ in range(n_steps):
        t0 = time.perf_counter()
        last = step()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3, last


def run_nncompile(wl, n_warm, n_steps, sync, fmt=None):
    import nncompile
    t0 = time.perf_counter()
    prog = nncompile.compile(wl.source, backend="triton")
    tr = prog.trainer(seed=0, params={k: v.copy() for k, v in wl.init.items()})
    fn = tr._step_fn
    xd, yd = fn.to_device(wl.x, np.float32), fn.to_device(wl.y, np.int64)
    first = tr.step(xd, yd)          # compiles the kernels (and tunes the matmuls) on first use
    sync()
    say(f"    nncompile: first step (compile + tune) {time.perf_counter() - t0:.1f} s, "
        f"loss {first:.6f}, {len(fn.kernels)} generated kernels, fallbacks {fn.fallbacks or 'none'}")
    ms, last = time_steps(lambda: tr.step(xd, yd), n_warm, n_steps, sync)
    return ms, first, last


def run_torch(wl, n_warm, n_steps, sync, compiled, fmt=None):
    """torch eager (or torch.compile of the model's forward) from nncompile's weights;
    images in NCHW, or with the model and input in channels_last for fmt="channels_last"."""
    import torch
    import torch.nn.functional as F
    model = peer_models.torch_sequential(wl.layers, wl.init).to(DEV)
    if fmt == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    fwd = torch.compile(model) if compiled else model
    xd = peer_models.torch_input(wl.x, fmt).to(DEV)
    if fmt == "channels_last":
        xd = xd.contiguous(memory_format=torch.channels_last)   # .to(device) keeps it; be explicit
    yd = torch.from_numpy(wl.y).to(DEV)

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
        say(f"    torch.compile{f'[{fmt}]' if fmt else ''}: first step (compile) {time.perf_counter() - t0:.1f} s")
    ms, last = time_steps(step, n_warm, n_steps, sync)
    return ms, first, last


def sides_of(wl, no_compile):
    """[(label, group, (compiled, memory format))]: a group is what nncompile is
    compared with (the faster of its memory formats, on an image workload)."""
    fmts = list(peer_models.TORCH_FORMATS) if wl.is_image else [None]
    out = [("nncompile-triton", "nncompile-triton", None)]
    groups = [("torch eager", False)] + ([] if no_compile else [("torch.compile", True)])
    for group, compiled in groups:
        for f in fmts:
            label = group if f is None else f"{group}[{f}]"
            out.append((label, group, (compiled, f)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer steps; W1, W4 and W6 only")
    ap.add_argument("--workloads", default=None, help="comma list, e.g. W1,W4,W6")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--tf32", action="store_true", help="tf32 matmuls and convolutions on every side")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--budget", type=float, default=215.0,
                    help="seconds: sides not started by then are skipped (default 215, under 4 minutes in all)")
    ap.add_argument("--smoke", action="store_true",
                    help="no GPU: a tiny MLP and a tiny convnet on the CPU through the Triton interpreter "
                         "(tests the script)")
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
    gpu = not args.smoke
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    names = (args.workloads.split(",") if args.workloads
             else (["W1", "W4", "W6"] if args.quick else ["W1", "W2", "W4", "W6"]))
    if args.smoke:
        names = ["smoke", "smoke-conv"]
    for n in names:
        if n not in WORKLOADS:
            ap.error(f"unknown workload {n!r}; expected some of {','.join(WORKLOADS)}")
    n_steps = args.steps or (2 if args.smoke else 10 if args.quick else 30)
    n_warm = 1 if args.smoke else 3 if args.quick else 5
    dev_name = "CPU (Triton interpreter)" if args.smoke else torch.cuda.get_device_name()
    say(f"device: {dev_name}  torch {torch.__version__}  "
        f"precision: {'tf32' if args.tf32 else 'fp32 (ieee)'}  steps: {n_steps} (median)")
    t_all = time.perf_counter()
    summary = []
    for wname in names:
        wl = Workload(wname)
        say(f"\n{wname}: {wl.kind} {wl.arch}, batch {wl.batch}, Adam")
        fl = wl.flops_per_step()
        res = {}       # label -> (ms, first loss, last loss, peak MB)
        groups = {}    # group -> [labels]
        for label, group, what in sides_of(wl, args.no_compile):
            if time.perf_counter() - t_all > args.budget:
                say(f"  {label:28s} SKIPPED: time budget ({args.budget:.0f} s) spent")
                continue
            try:
                if gpu:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                if label == "nncompile-triton":
                    ms, first, last = run_nncompile(wl, n_warm, n_steps, sync)
                else:
                    compiled, fmt = what
                    ms, first, last = run_torch(wl, n_warm, n_steps, sync, compiled, fmt)
                peak = torch.cuda.max_memory_allocated() / 2 ** 20 if gpu else float("nan")
                res[label] = (ms, first, last, peak)
                groups.setdefault(group, []).append(label)
                say(f"  {label:28s} {ms:9.3f} ms/step  {fl / ms / 1e9:8.1f} TFLOP/s  "
                    + ("" if np.isnan(peak) else f"peak {peak:8.1f} MB  ")
                    + f"loss first {first:.6f} last {last:.6f}")
            except Exception as e:
                say(f"  {label:28s} FAILED: {type(e).__name__}: {str(e)[:300]}")
                traceback.print_exc(limit=3, file=sys.stdout)
                sys.stdout.flush()
        best = {}      # group -> its fastest label
        for group, labels in groups.items():
            best[group] = min(labels, key=lambda k: res[k][0])
        if "nncompile-triton" in res:
            base = res["nncompile-triton"]
            for group, label in best.items():
                if group == "nncompile-triton":
                    continue
                ms, first, last, _ = res[label]
                of = f" (the faster of {', '.join(groups[group])})" if len(groups[group]) > 1 else ""
                say(f"  nncompile / {label}{of}: {base[0] / ms:.2f}x time "
                    f"(loss diff: first step {abs(base[1] - first):.2e}, "
                    f"after {n_warm + n_steps} more {abs(base[2] - last) / max(abs(last), 1e-12):.2e} relative)")
        summary.append((wname, res, best))
        say(f"  [{time.perf_counter() - t_all:.0f} s elapsed]")
    say("\nsummary (median ms/step; peak MB):")
    for wname, res, best in summary:
        say(f"  {wname}: " + ", ".join(f"{k} {v[0]:.3f}" + ("" if np.isnan(v[3]) else f" ({v[3]:.0f} MB)")
                                       for k, v in res.items()))
        if "nncompile-triton" in res:
            for group, label in best.items():
                if group != "nncompile-triton":
                    say(f"    nncompile / {group} (best: {label}): {res['nncompile-triton'][0] / res[label][0]:.2f}x time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
