#!/usr/bin/env python
"""Benchmark nncompile's Triton kernels against torch on a CUDA GPU: the library's
matmul, row and column kernels, and the generated Adam-update and dropout kernels.

Usage:  python benchmarks/gpu_kernels.py [--quick]

Prints, per kernel: our time, torch's time (ms), achieved GB/s (compulsory
DRAM bytes / time) or TFLOP/s, and our speed as % of torch (>100% = faster).
Each case is also checked for correctness against torch (OK / MISMATCH), and
the dropout keep-mask is checked bit-for-bit against nncompile.ir.philox.
Runs in well under 2 minutes on an H100 (most of it is Triton compiling the
matmul autotuning candidates).  Exit status: 0 all good, 1 a case failed or
mismatched, 2 no CUDA.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer/smaller cases")
    args = ap.parse_args()

    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("ERROR: unset TRITON_INTERPRET to benchmark on the GPU", file=sys.stderr)
        return 2
    try:
        import torch
    except ImportError:
        print("ERROR: torch is not installed", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("ERROR: no CUDA device visible (torch.cuda.is_available() is False); "
              "this benchmark needs an NVIDIA GPU.", file=sys.stderr)
        return 2
    import numpy as np
    import triton
    from triton.testing import do_bench

    from nncompile.backends.triton import kernels as K
    from nncompile.backends.triton.kernels import gemm
    from nncompile.ir import philox

    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    print(f"device: {props.name}  SMs={props.multi_processor_count}  "
          f"torch {torch.__version__}  triton {triton.__version__}")
    t_start = time.time()
    rows = []
    failures = []

    def bench(fn):
        return do_bench(fn, warmup=10, rep=50)

    def record(name, ours_ms, torch_ms, nbytes=None, flops=None, ok=True, note=""):
        gbs = nbytes / ours_ms / 1e6 if nbytes else None
        tfl = flops / ours_ms / 1e9 if flops else None
        pct = 100.0 * torch_ms / ours_ms if torch_ms else None
        rows.append((name, ours_ms, torch_ms, gbs, tfl, pct, "OK" if ok else "MISMATCH", note))
        if not ok:
            failures.append(name)
        print(f"  {name:<44s} ours {ours_ms:8.3f} ms  torch {torch_ms:8.3f} ms  "
              + (f"{gbs:7.0f} GB/s  " if gbs else "")
              + (f"{tfl:7.1f} TFLOP/s  " if tfl else "")
              + f"{pct:6.1f}% of torch  {'OK' if ok else 'MISMATCH'} {note}", flush=True)

    def case(title):
        def deco(f):
            print(f"[{title}]", flush=True)
            t0 = time.time()
            try:
                f()
            except Exception as e:  # keep going: report every case
                failures.append(title)
                print(f"  FAILED: {type(e).__name__}: {e}")
                traceback.print_exc(limit=3)
            print(f"  ({time.time() - t0:.1f} s)", flush=True)
            return f
        return deco

    # ------------------------------------------------------------------ matmul
    mm_shapes = [(4096, 4096, 4096)] if args.quick else [(4096, 4096, 4096), (8192, 2048, 1024)]

    @case("matmul (autotune on first call, timed after)")
    def _():
        for (M, N, Kd) in mm_shapes:
            flops = 2.0 * M * N * Kd
            a32 = torch.randn(M, Kd, device=dev)
            b32 = torch.randn(Kd, N, device=dev)
            for label, dt, prec, tf32 in (("fp32 ieee", torch.float32, "ieee", False),
                                          ("tf32 (B N-major, auto K-major copy)", torch.float32, "tf32", True),
                                          ("bf16 in/fp32 acc", torch.bfloat16, "ieee", False)):
                if label == "fp32 ieee" and (M, N, Kd) != mm_shapes[0]:
                    continue  # slow CUDA-core path: one shape is enough
                a, b = a32.to(dt), b32.to(dt)
                torch.backends.cuda.matmul.allow_tf32 = tf32
                t0 = time.time()
                c = K.matmul(a, b, precision=prec, out_dtype=torch.float32)
                torch.cuda.synchronize()
                tune_s = time.time() - t0
                ref = torch.matmul(a, b).float()
                tol = 1e-2 if dt == torch.float32 and not tf32 else 5e-2
                ok = torch.allclose(c, ref, rtol=tol, atol=tol * Kd ** 0.5)
                t_ours = bench(lambda: K.matmul(a, b, precision=prec, out=c))
                t_torch = bench(lambda: torch.matmul(a, b))
                record(f"{M}x{N}x{Kd} {label}"[:44], t_ours, t_torch, flops=flops, ok=ok,
                       note=f"(tune+compile {tune_s:.1f} s)")
                if tf32:
                    # tf32 wgmma wants both operands K-major: give B as (N, K) and use trans_b.
                    bt = b.t().contiguous()
                    c2 = K.matmul(a, bt, trans_b=True, precision=prec)
                    ok2 = torch.allclose(c2, ref, rtol=tol, atol=tol * Kd ** 0.5)
                    t2 = bench(lambda: K.matmul(a, bt, trans_b=True, precision=prec, out=c2))
                    record(f"{M}x{N}x{Kd} tf32, B K-major (trans_b)", t2, t_torch, flops=flops, ok=ok2)
            # fused epilogue vs torch's unfused addmm + relu (bf16)
            a, b = a32.bfloat16(), b32.bfloat16()
            bias = torch.randn(N, device=dev)
            cfg = gemm._AUTOTUNE.get("|".join(str(x) for x in (
                torch.cuda.get_device_name(dev), triton.__version__, a.dtype, torch.float32, "ieee",
                M, N, Kd, False, False, False, 0, False)), disk=True)
            c = K.matmul(a, b, bias=bias, activation="relu", out_dtype=torch.float32, config=cfg)
            ref = torch.relu(torch.matmul(a, b).float() + bias)
            ok = torch.allclose(c, ref, rtol=5e-2, atol=5e-2 * Kd ** 0.5)
            t_ours = bench(lambda: K.matmul(a, b, bias=bias, activation="relu", out=c, config=cfg))
            t_torch = bench(lambda: torch.relu(torch.matmul(a, b).float() + bias))
            record(f"{M}x{N}x{Kd} bf16 +bias+relu fused", t_ours, t_torch, flops=flops, ok=ok)
        torch.backends.cuda.matmul.allow_tf32 = False

    # ------------------------------------------------------- fused optimizer
    @case("the generated Adam update: one pointwise kernel over a flat fp32 buffer")
    def _():
        from nncompile.backends.triton.codegen import compile_graph
        from nncompile.ir.graph import Graph
        from nncompile.passes.fusion import fuse_elementwise
        from nncompile.passes.memory import plan_memory
        from nncompile.passes.optimizer import apply_optimizer
        n_tensors = 200
        rng = np.random.default_rng(0)
        sizes = rng.integers(1, 1 << 19, n_tensors)
        sizes = (sizes * ((32 << 20) / sizes.sum())).astype(np.int64) + 1  # ~32M params total
        n = int(sizes.sum())
        g = Graph("adam")
        g.input("p", (n,), role="param")
        grad = g.input("g", (n,))
        apply_optimizer(g, "adam", {"beta1": 0.9, "beta2": 0.999, "eps": 1e-7}, {"p": grad})
        step_fn = compile_graph(plan_memory(fuse_elementwise(g)))
        flat_p = torch.randn(n, device=dev)
        flat_g = torch.randn(n, device=dev) * 1e-2
        m = torch.zeros(n, device=dev)
        v = torch.zeros(n, device=dev)
        scal = lambda x: torch.tensor(float(x), device=dev)  # noqa: E731
        feed = {"p": flat_p.clone(), "g": flat_g, "adam.m.p": m.clone(), "adam.v.p": v.clone(),
                "step": scal(1), "lr": scal(1e-3)}
        # correctness: 2 steps vs the Keras formula evaluated in float64 by torch
        pr, mr, vr, gd = flat_p.double(), m.double(), v.double(), flat_g.double()
        for t in (1, 2):
            feed["step"] = scal(t)
            step_fn(feed)
            mr = 0.9 * mr + 0.1 * gd
            vr = 0.999 * vr + 0.001 * gd * gd
            pr = pr - 1e-3 * (1 - 0.999 ** t) ** 0.5 / (1 - 0.9 ** t) * mr / (vr.sqrt() + 1e-7)
        err = (feed["p"].double() - pr).abs().max().item()
        ok = err < 1e-6
        print(f"  adam vs float64 Keras reference: max abs err {err:.2e}")
        del pr, mr, vr, gd
        run = step_fn.runner(1)
        args = [feed[k] for k in step_fn.input_names]
        t_ours = bench(lambda: run(*args))
        params = [torch.nn.Parameter(t) for t in torch.randn(n, device=dev).split(sizes.tolist())]
        for prm, gr in zip(params, flat_g.split(sizes.tolist())):
            prm.grad = gr.clone()
        for flavour, kw in (("foreach", dict(foreach=True)), ("fused", dict(fused=True))):
            opt = torch.optim.Adam(params, lr=1e-3, **kw)
            opt.step()
            record(f"adam {n / 1e6:.1f}M params vs torch {flavour} ({n_tensors} tensors)", t_ours,
                   bench(opt.step), nbytes=28 * n, ok=ok)
            del opt

    # ------------------------------------------------------- softmax xent
    @case("softmax_xent + its gradient (2 row kernels) vs torch cross_entropy fwd+bwd")
    def _():
        import torch.nn.functional as F
        for (M, C) in ([(16384, 1000)] if args.quick else [(16384, 1000), (4096, 8192), (65536, 10)]):
            x = torch.randn(M, C, device=dev) * 3
            y = torch.randint(0, C, (M,), device=dev)
            dy = torch.full((M,), 1.0 / M, device=dev)
            loss, grad = K.softmax_xent(x, y), K.softmax_xent_grad(x, y, dy)
            xr = x.clone().requires_grad_(True)
            lr_ = F.cross_entropy(xr, y, reduction="none")
            lr_.mean().backward()
            ok = torch.allclose(loss, lr_.detach(), rtol=1e-4, atol=1e-5) and \
                torch.allclose(grad, xr.grad, rtol=1e-4, atol=1e-7)

            def torch_fb():
                xr.grad = None
                F.cross_entropy(xr, y).backward()

            def ours():
                K.softmax_xent(x, y, out=loss)
                K.softmax_xent_grad(x, y, dy, out=grad)
            record(f"xent M={M} C={C}", bench(ours), bench(torch_fb), nbytes=12 * M * C + 16 * M, ok=ok)

    # ------------------------------------------------------- reductions
    @case("column reductions (bias gradients, batch statistics) vs torch")
    def _():
        for (M, N) in ((16384, 4096), (262144, 64)):
            x = torch.randn(M, N, device=dev) + 3.0
            s = K.reduce_cols(x, M, N)
            ok = torch.allclose(s, x.sum(0), rtol=1e-4, atol=1e-2)
            record(f"sum over rows {M}x{N}", bench(lambda: K.reduce_cols(x, M, N, out=s)), bench(lambda: x.sum(0)),
                   nbytes=4 * M * N, ok=ok)
            mean = K.reduce_cols(x, M, N, scale=1.0 / M)
            ok = torch.allclose(mean, x.mean(0), rtol=1e-4, atol=1e-4)
            record(f"mean over rows {M}x{N}", bench(lambda: K.reduce_cols(x, M, N, scale=1.0 / M, out=mean)),
                   bench(lambda: x.mean(0)), nbytes=4 * M * N, ok=ok)

    # ------------------------------------------------------- dropout
    @case("the generated dropout kernel vs torch dropout (+ Philox bit-exactness on GPU)")
    def _():
        from nncompile.backends.triton.codegen import compile_graph
        from nncompile.ir.graph import Graph
        n = 64 << 20
        g = Graph("dropout")
        xin = g.input("x", (n,))
        rng_in = g.input("rng", (2,), "i64", role="scalar")
        g.output("y", g.emit("mul", xin, g.emit("dropout_mask", xin, rng_in, rate=0.3, stream=6)))
        drop = compile_graph(g)
        x = torch.ones(n, device=dev)
        rng_t = np.array([123, 45])
        keep = philox.dropout_keep_mask(123, 45, 6, (1 << 20,), 0.3)
        out = drop({"x": x, "rng": rng_t})["y"]
        ok = bool(((out[:1 << 20] != 0).cpu().numpy() == keep).all())
        print(f"  Philox keep-mask GPU vs NumPy bit-exact (first 1M): {ok}")
        run = drop.runner(1)
        record(f"dropout {n / 1e6:.0f}M fp32 p=0.3", bench(lambda: run(x, rng_t)),
               bench(lambda: torch.nn.functional.dropout(x, 0.3, training=True)), nbytes=8 * n, ok=ok)

    # ------------------------------------------------------- summary
    print("\nsummary (% of torch: >100 means faster than torch)")
    print(f"{'case':<46s}{'ours ms':>10s}{'torch ms':>10s}{'GB/s':>8s}{'TFLOP/s':>9s}{'%torch':>8s}  check")
    for name, o, t, g, f, p, st, _ in rows:
        print(f"{name:<46s}{o:10.3f}{t:10.3f}{(f'{g:.0f}' if g else '-'):>8s}"
              f"{(f'{f:.1f}' if f else '-'):>9s}{p:8.1f}  {st}")
    print(f"total wall time {time.time() - t_start:.1f} s")
    if failures:
        print("FAILED/MISMATCH: " + ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
