#!/usr/bin/env python3
"""CPU benchmark: one training step of nncompile (NumPy backend) against its peers.

One step = forward, softmax cross-entropy on sparse int labels, backward, Adam
(lr 1e-3, eps 1e-7) update, float32, for the workloads benchmarks/w1.nn (MLP
784-512-256-10, batch 128), w2.nn (the same, batch 1024), w3.nn (the textbook
10-10-2, batch 32) and w5.nn (a convnet on 28x28x1 images: conv 32 3x3 same relu,
maxpool 2, conv 64 3x3 same relu, maxpool 2, flatten, dense 128 relu, dense 10;
batch 64). The sides, all in this process, from the same initial weights and the
same data:

  nncompile   prog = nncompile.compile(path); tr = prog.trainer(seed=0, params=init); tr.step(x, y)
  torch       PyTorch eager: nn.Linear / nn.Conv2d / nn.MaxPool2d layers (benchmarks/peer_models.py),
              F.cross_entropy, torch.optim.Adam(eps=1e-7); on images timed in NCHW and in
              channels_last, reported as the faster of the two
  torch.compile   torch.compile of the whole step function (forward + backward + Adam), as torch
  jax         jax.jit of the whole step (value_and_grad + a hand-written Keras Adam, donated buffers);
              convolutions by lax.conv_general_dilated in NHWC / HWIO
  numpy       a hand-written NumPy step (preallocated buffers, out= arguments, fused
              softmax-CE gradient, Adam on one flat buffer in 10 passes); MLPs only

Every side runs with 2 threads. See benchmarks/README.md for the options and
what every column means.
"""
import os
import sys

# --- environment: must be settled before numpy / torch / jax are imported -------------
_OPENBLAS_TUNING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
if "--unset-openblas-env" in sys.argv and os.environ.get("_CPU_STEP_REEXEC") != "1":
    # re-execute with the OpenBLAS tuning variables gone, so every side (and every
    # child process this script starts) sees the same, unset, environment
    env = {k: v for k, v in os.environ.items() if k not in _OPENBLAS_TUNING}
    env["_CPU_STEP_REEXEC"] = "1"
    os.execve(sys.executable, [sys.executable] + sys.argv, env)
def _early_threads(argv) -> int:
    """--threads N (default 2), read before argparse: it must be in the environment
    before NumPy, torch or JAX start their thread pools."""
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv) and argv[i + 1].isdigit():
            return max(1, int(argv[i + 1]))
        if a.startswith("--threads=") and a.split("=", 1)[1].isdigit():
            return max(1, int(a.split("=", 1)[1]))
    return 2


THREADS = _early_threads(sys.argv)
for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
           "VECLIB_MAXIMUM_THREADS"):
    os.environ[_k] = str(THREADS)
_xla = os.environ.get("XLA_FLAGS", "")
if "xla_cpu_multi_thread_eigen" not in _xla:
    os.environ["XLA_FLAGS"] = (_xla + f" --xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={THREADS}").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from typing import Optional  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)
import peer_models  # noqa: E402  (benchmarks/peer_models.py: NumPy only; torch imported lazily)

SIDES = ("nncompile", "torch", "torch.compile", "jax", "numpy")
WORKLOADS = ("w1", "w2", "w3", "w5")
LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-7
TORCH_COMPILE_LIMIT_S = 120.0


class Skip(Exception):
    """A side that cannot run here (missing package, failed compile): reported, not fatal."""


# --- workloads ---------------------------------------------------------------------------
class Workload:
    def __init__(self, name: str):
        import nncompile
        self.name = name
        self.path = os.path.join(HERE, f"{name}.nn")
        prog = nncompile.compile(self.path)
        self.batch = int(prog.ast.train.batch_size)
        self.init = prog.init_params(seed=0)   # dense "<l>.weight" (in, out); conv2d (kh, kw, in/groups, out)
        self.in_shape, self.layers = peer_models.model_layers(prog, name)     # [Layer] in model order
        self.param_layers = [l for l in self.layers if l.has_weight]
        self.is_image = len(self.in_shape) == 3
        self.is_mlp = all(l.kind == "dense" for l in self.layers)
        self.n_in = int(np.prod(self.in_shape))
        self.n_out = self.layers[-1].out_shape[0]
        rng = np.random.default_rng(1234)
        if self.n_in >= 100:   # image-like input in [0, 1)
            self.x = rng.random((self.batch,) + self.in_shape, dtype=np.float32)
        else:
            self.x = rng.standard_normal((self.batch,) + self.in_shape, dtype=np.float32)
        self.y = rng.integers(0, self.n_out, self.batch).astype(np.int64)
        self.arch = peer_models.describe(self.in_shape, self.layers)
        self.kind = "MLP" if self.is_mlp else "convnet"
        self.n_params = sum(v.size for v in self.init.values())

    def weights(self):
        """[(W, b or None)] float32 copies in nncompile's layouts, one per dense / conv2d layer."""
        return [(self.init[f"{l.name}.weight"].copy(),
                 self.init[f"{l.name}.bias"].copy() if l.use_bias else None) for l in self.param_layers]


# --- side 1: nncompile --------------------------------------------------------------------
def make_nncompile(wl: Workload):
    import nncompile
    prog = nncompile.compile(wl.path)
    tr = prog.trainer(seed=0, params={k: v.copy() for k, v in wl.init.items()})
    x, y = wl.x, wl.y
    step = tr.step

    def run():
        return step(x, y)
    return run


# --- side 2 and 3: PyTorch eager and torch.compile ----------------------------------------
# Image workloads run torch in two memory formats, each timed as its own variant;
# the side's row reports the faster one (both are printed).
TORCH_FORMATS = peer_models.TORCH_FORMATS


def side_variants(side: str, wl: Workload) -> list:
    """[(label, variant)]: the timed runs of one side on one workload."""
    if side in ("torch", "torch.compile") and wl.is_image:
        return [(f"{side}[{f}]", f) for f in TORCH_FORMATS]
    return [(side, None)]


def _torch_model(wl: Workload, fmt: Optional[str] = None):
    """The workload as an nn.Sequential from its initial weights (peer_models:
    NCHW, weights transposed to torch's layouts); images go in as NCHW, converted
    once before timing. fmt "channels_last" converts the model and the input to
    that memory format."""
    import torch
    torch.set_num_threads(THREADS)
    model = peer_models.torch_sequential(wl.layers, wl.init)
    if fmt == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    x = peer_models.torch_input(wl.x, fmt)
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(B1, B2), eps=EPS)
    return model, opt, x, torch.from_numpy(wl.y)


def make_torch(wl: Workload, fmt: Optional[str] = None):
    import torch.nn.functional as F
    model, opt, x, y = _torch_model(wl, fmt)

    def run():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    return run


KERAS_EPS_TORCH = "torch+Keras-eps"


def torch_keras_eps_losses(wl: Workload, steps: int) -> list:
    """Agreement diagnostic (not timed): torch eager whose Adam eps is set before
    step t to eps / sqrt(1 - b2^t). torch computes m_hat / (sqrt(v_hat) + eps');
    with that eps' it equals Keras' lr_t * m / (sqrt(v) + eps)."""
    import torch.nn.functional as F
    model, opt, x, y = _torch_model(wl)
    out = []
    for t in range(1, steps + 1):
        opt.param_groups[0]["eps"] = EPS / math.sqrt(1.0 - B2 ** t)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out


def make_torch_compile(wl: Workload, info: dict, fmt: Optional[str] = None):
    import torch
    import torch.nn.functional as F
    model, opt, x, y = _torch_model(wl, fmt)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    try:
        cstep = torch.compile(step)
    except Exception as e:  # pragma: no cover - depends on the installation
        raise Skip(f"torch.compile failed: {type(e).__name__}: {e}")
    # the first call compiles; run it in a worker thread so that a compile over the
    # limit can be abandoned (the thread is left to finish; the side is skipped)
    import threading
    box = {}

    def first():
        try:
            t0 = time.perf_counter()
            box["loss"] = cstep().item()
            box["t"] = time.perf_counter() - t0
        except BaseException as e:  # noqa: BLE001
            box["err"] = e
    th = threading.Thread(target=first, daemon=True)
    th.start()
    th.join(TORCH_COMPILE_LIMIT_S)
    if th.is_alive():
        raise Skip(f"torch.compile took more than {TORCH_COMPILE_LIMIT_S:.0f} s to compile; skipped")
    if "err" in box:
        e = box["err"]
        raise Skip(f"torch.compile failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    info["compile_s"] = box["t"]
    first_loss = [box["loss"]]

    def run():
        if first_loss:          # the compiling call already took step 1
            return first_loss.pop()
        return cstep().item()
    return run


# --- side 4: JAX --------------------------------------------------------------------------
JAX_LAYERS = ("dense", "conv2d", "maxpool2d", "flatten", "activation")


def make_jax(wl: Workload, info: dict):
    try:
        import jax
        import jax.numpy as jnp
    except Exception as e:
        raise Skip(f"JAX is not installed ({type(e).__name__}: {e}); pip install jax jaxlib")

    layers = wl.layers
    n_layers = len(layers)
    odd = [l.kind for l in layers if l.kind not in JAX_LAYERS]
    if odd:
        raise Skip(f"the JAX side implements {', '.join(JAX_LAYERS)}, not {', '.join(sorted(set(odd)))}")
    acts = {"relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh}

    def loss_fn(params, x, y):
        h = x                                  # NHWC images, HWIO kernels: nncompile's layouts
        ps = iter(params)
        for i, l in enumerate(layers):
            if l.kind == "activation":
                pass
            elif l.kind == "flatten":
                h = h.reshape(h.shape[0], -1)  # row-major over (h, w, c), as nncompile
            elif l.kind == "maxpool2d":
                h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1,) + l.kernel + (1,),
                                          (1,) + l.strides + (1,), "VALID")
            else:
                W, b = next(ps)
                if l.kind == "conv2d":
                    h = jax.lax.conv_general_dilated(h, W, l.strides, list(l.pads), rhs_dilation=l.dilation,
                                                     dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                                     feature_group_count=l.groups)
                else:
                    h = h @ W
                if b is not None:
                    h = h + b
            if l.act != "linear" and i < n_layers - 1:
                h = acts[l.act](h)
        logp = jax.nn.log_softmax(h, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def step(params, m, v, t, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        t = t + 1.0
        lr_t = LR * jnp.sqrt(1.0 - B2 ** t) / (1.0 - B1 ** t)      # Keras Adam
        m = jax.tree_util.tree_map(lambda m_, g: B1 * m_ + (1.0 - B1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda v_, g: B2 * v_ + (1.0 - B2) * g * g, v, grads)
        params = jax.tree_util.tree_map(lambda p, m_, v_: p - lr_t * m_ / (jnp.sqrt(v_) + EPS), params, m, v)
        return params, m, v, t, loss

    jstep = jax.jit(step, donate_argnums=(0, 1, 2))
    params = [(jnp.asarray(W), None if b is None else jnp.asarray(b)) for W, b in wl.weights()]
    zeros = lambda: jax.tree_util.tree_map(jnp.zeros_like, params)  # noqa: E731
    st = {"p": params, "m": zeros(), "v": zeros(), "t": jnp.zeros((), jnp.float32)}
    x = jnp.asarray(wl.x)
    y = jnp.asarray(wl.y.astype(np.int32))    # JAX runs without x64: int32 labels
    t0 = time.perf_counter()
    compiled = jstep.lower(st["p"], st["m"], st["v"], st["t"], x, y).compile()
    info["compile_s"] = time.perf_counter() - t0

    def run():
        st["p"], st["m"], st["v"], st["t"], loss = compiled(st["p"], st["m"], st["v"], st["t"], x, y)
        jax.block_until_ready((st["p"], loss))
        return float(loss)
    return run


# --- side 5: hand-written NumPy -----------------------------------------------------------
def make_numpy(wl: Workload):
    """A careful NumPy step. Every parameter, gradient and Adam moment lives in one
    flat float32 buffer (the layers' arrays are views into it), so Adam is 10
    whole-buffer passes whatever the layer count. The moments are kept scaled,
    m' = m / (1 - b1) and v' = v / (1 - b2), so their updates need no multiply by
    (1 - b):  m' = b1 m' + g,  v' = b2 v' + g²,  and
    p -= lr_t (1 - b1)/sqrt(1 - b2) · m' / (sqrt(v') + eps/sqrt(1 - b2)),
    which is the Keras update exactly (in exact arithmetic). Written for MLPs
    (dense layers with biases, relu between them); other workloads skip it."""
    if not wl.is_mlp or any(b is None for _, b in wl.weights()) \
            or any(l.act != "relu" for l in wl.layers[:-1]):   # pragma: no cover - the MLP workloads fit
        raise Skip("the hand-written NumPy step is written for MLPs (dense + relu) only")
    f32 = np.float32
    ws = wl.weights()
    n = sum(W.size + b.size for W, b in ws)
    flat_p = np.empty(n, f32)
    flat_g = np.empty(n, f32)
    m = np.zeros(n, f32)
    v = np.zeros(n, f32)
    tmp = np.empty(n, f32)
    P, G = [], []
    off = 0
    for W, b in ws:
        views_p, views_g = [], []
        for a in (W, b):
            vp = flat_p[off:off + a.size].reshape(a.shape)
            vp[...] = a
            views_p.append(vp)
            views_g.append(flat_g[off:off + a.size].reshape(a.shape))
            off += a.size
        P.append(tuple(views_p))
        G.append(tuple(views_g))
    B = wl.batch
    x, y = wl.x, wl.y
    L = len(ws)
    acts = [np.empty((B, W.shape[1]), f32) for W, _ in ws]       # post-activation (logits for the last)
    masks = [np.empty((B, W.shape[1]), np.bool_) for W, _ in ws[:-1]]
    deltas = [np.empty((B, W.shape[1]), f32) for W, _ in ws]
    rows = np.arange(B)
    mx = np.empty((B, 1), f32)
    se = np.empty((B, 1), f32)
    inv_b = f32(1.0 / B)
    eps_s = f32(EPS / math.sqrt(1.0 - B2))
    b1, b2 = f32(B1), f32(B2)
    t = [0]

    def run():
        # forward
        h = x
        for i in range(L):
            W, b = P[i]
            a = acts[i]
            np.matmul(h, W, out=a)
            a += b
            if i < L - 1:
                np.maximum(a, 0.0, out=a)
                np.greater(a, 0.0, out=masks[i])
            h = a
        # fused softmax + cross-entropy, gradient (softmax - onehot) / B written into deltas[-1]
        z = acts[-1]
        np.max(z, axis=1, keepdims=True, out=mx)
        d = deltas[-1]
        np.subtract(z, mx, out=d)
        zy = d[rows, y]                  # a copy (fancy indexing), taken before the exp
        np.exp(d, out=d)
        np.sum(d, axis=1, keepdims=True, out=se)
        loss = float(np.mean(np.log(se[:, 0]) - zy))
        np.reciprocal(se, out=se)
        np.multiply(se, inv_b, out=se)
        np.multiply(d, se, out=d)
        d[rows, y] -= inv_b
        # backward: 2 GEMMs per layer (one for the first) + bias sums
        for i in range(L - 1, -1, -1):
            W, _ = P[i]
            gW, gb = G[i]
            d = deltas[i]
            np.matmul((acts[i - 1] if i else x).T, d, out=gW)
            np.sum(d, axis=0, out=gb)
            if i:
                dp = deltas[i - 1]
                np.matmul(d, W.T, out=dp)
                np.multiply(dp, masks[i - 1], out=dp)
        # Adam (Keras semantics) on the flat buffers: 10 passes
        t[0] += 1
        k = t[0]
        c = f32(LR * math.sqrt(1.0 - B2 ** k) / (1.0 - B1 ** k) * (1.0 - B1) / math.sqrt(1.0 - B2))
        np.multiply(m, b1, out=m)
        np.add(m, flat_g, out=m)
        np.multiply(v, b2, out=v)
        np.multiply(flat_g, flat_g, out=flat_g)
        np.add(v, flat_g, out=v)
        np.sqrt(v, out=tmp)
        np.add(tmp, eps_s, out=tmp)
        np.divide(m, tmp, out=tmp)
        np.multiply(tmp, c, out=tmp)
        np.subtract(flat_p, tmp, out=flat_p)
        return loss
    return run


MAKERS = {"nncompile": make_nncompile, "numpy": make_numpy}


def make_side(side: str, wl: Workload, info: dict, variant: Optional[str] = None):
    """Build one side (variant: torch's memory format on an image workload)."""
    if side in ("torch", "torch.compile"):
        try:
            import torch  # noqa: F401
        except Exception as e:
            raise Skip(f"PyTorch is not installed ({type(e).__name__}: {e})")
        if side == "torch.compile":
            return make_torch_compile(wl, info, variant)
        return make_torch(wl, variant)
    if side == "jax":
        return make_jax(wl, info)
    return MAKERS[side](wl)


def split_label(label: str):
    """'torch[channels_last]' -> ('torch', 'channels_last'); 'jax' -> ('jax', None)."""
    if label.endswith("]") and "[" in label:
        side, _, v = label[:-1].partition("[")
        return side, v
    return label, None


# --- the GEMM-only bound -------------------------------------------------------------------
def gemm_shapes(wl: Workload) -> list:
    """[(M, K, N, groups)] of every layer with parameters, as the GEMM of its forward:
    dense (batch, in) x (in, out); conv2d by im2col, (B*Ho*Wo, kh*kw*C/g) x (kh*kw*C/g, F/g)
    once per group g."""
    out = []
    for l in wl.param_layers:
        if l.kind == "dense":
            out.append((wl.batch, l.in_shape[0], l.out_shape[0], 1))
        else:
            ho, wo, f = l.out_shape
            g = l.groups
            out.append((wl.batch * ho * wo, l.kernel[0] * l.kernel[1] * l.in_shape[2] // g, f // g, g))
    return out


def gemm_bound(wl: Workload):
    """Median time of just the matmuls of one step, same shapes, out=: forward (one
    per layer and group) and backward (dW per layer, dX for every layer but the
    first). For a convnet these are the im2col GEMMs: the column copies, the
    scatter-add of the input gradient, pooling and every elementwise pass are
    left out, so the bound is looser there than for an MLP."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    bufs = []
    for i, (M, K, N, g) in enumerate(gemm_shapes(wl)):
        bufs.append(dict(A=rng.standard_normal((M, K), dtype=f32), W=rng.standard_normal((K, N), dtype=f32),
                         O=np.empty((M, N), f32), D=rng.standard_normal((M, N), dtype=f32),
                         gW=np.empty((K, N), f32), dA=np.empty((M, K), f32) if i else None, g=g))

    def run():
        for b in bufs:
            for _ in range(b["g"]):
                np.matmul(b["A"], b["W"], out=b["O"])
        for b in reversed(bufs):
            for _ in range(b["g"]):
                np.matmul(b["A"].T, b["D"], out=b["gW"])
                if b["dA"] is not None:
                    np.matmul(b["D"], b["W"].T, out=b["dA"])
        return 0.0
    shapes = gemm_shapes(wl)
    n_gemm = sum(g * (3 if i else 2) for i, (_, _, _, g) in enumerate(shapes))
    flops = sum(2 * M * K * N * g * (3 if i else 2) for i, (M, K, N, g) in enumerate(shapes))
    return run, n_gemm, flops


# --- timing ----------------------------------------------------------------------------------
ROUNDS = 5


def calibrate(run, target_s: float, warmup: int = 3) -> int:
    """Warm up, then pick the number of timed steps that takes about target_s."""
    for _ in range(warmup):
        run()
    t0 = time.perf_counter()
    k = 0
    while True:                      # estimate the step cost from at least 0.05 s of steps
        run()
        k += 1
        el = time.perf_counter() - t0
        if el > 0.05 or k >= 50:
            break
    est = el / k
    return int(min(20000, max(5 * ROUNDS, target_s / max(est, 1e-7))))


def time_chunk(run, n: int, into: list):
    pc = time.perf_counter
    for _ in range(n):
        t = pc()
        run()
        into.append(pc() - t)


def summarize(ts) -> dict:
    ts = np.asarray(ts) * 1e3
    return {"median": float(np.median(ts)), "p10": float(np.percentile(ts, 10)),
            "p90": float(np.percentile(ts, 90)), "n": int(ts.size)}


SETTLE_S = 0.15


def _cpu_busy_s():
    """Busy CPU seconds of the whole machine so far (all cores, from /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except Exception:
        return None


def time_interleaved(runs: dict, target_s: float, load: Optional[dict] = None) -> dict:
    """Time every side in ROUNDS interleaved rounds (side A, B, C, A, B, C, ...), so
    that a burst of load from another process hits all sides alike rather than one.
    Between chunks the script sleeps SETTLE_S, so that the spinning worker threads
    of the side before (OpenBLAS, OpenMP, XLA) park before the next side starts.
    `load` receives the mean number of cores that *other* processes kept busy."""
    ns = {k: calibrate(r, target_s) for k, r in runs.items()}
    samples = {k: [] for k in runs}
    busy0, own0, wall0 = _cpu_busy_s(), os.times(), time.perf_counter()
    for i in range(ROUNDS):
        for k, r in runs.items():
            n = ns[k] // ROUNDS + (1 if i < ns[k] % ROUNDS else 0)
            time.sleep(SETTLE_S)
            time_chunk(r, n, samples[k])
    busy1, own1, wall1 = _cpu_busy_s(), os.times(), time.perf_counter()
    if load is not None and busy0 is not None and busy1 is not None:
        own = (own1.user + own1.system) - (own0.user + own0.system)
        load["other_cores"] = max(0.0, (busy1 - busy0) - own) / (wall1 - wall0)
    return {k: summarize(v) for k, v in samples.items()}


def time_steps(run, target_s: float) -> dict:
    return time_interleaved({"_": run}, target_s)["_"]


# --- children: cold compile time and peak memory, one fresh process each -----------------------
def _maxrss_mb():
    """Peak resident set size of this process image, in MB: VmHWM from
    /proc/self/status (reset by exec, unlike getrusage's ru_maxrss, which a child
    inherits from the parent that forked it); ru_maxrss where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0     # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB


def child_main(side: str, target: str, steps: int):
    """In a fresh process: import what the side needs, build it, time the first
    step (compiles) and run `steps` more; print JSON with peak RSS (ru_maxrss)."""
    out = {"side": side, "target": target}
    side, variant = split_label(side)
    t0 = time.perf_counter()
    if side in ("torch", "torch.compile"):
        import torch  # noqa: F401
        torch.set_num_threads(THREADS)
    elif side == "jax":
        import jax  # noqa: F401
    import nncompile  # noqa: F401  (every side reads the workload through nncompile)
    out["import_s"] = time.perf_counter() - t0
    out["rss_after_import_mb"] = _maxrss_mb()
    if target.endswith(".nn") and side == "nncompile-file":
        # cold nncompile: compile + first trainer + first step of an arbitrary program
        t0 = time.perf_counter()
        prog = nncompile.compile(target)
        out["compile_s"] = time.perf_counter() - t0
        bs = int(prog.ast.train.batch_size) if prog.ast.train is not None else 32
        t1 = time.perf_counter()
        tr = prog.trainer(seed=0)
        out["trainer_s"] = time.perf_counter() - t1
        g = prog.graphs.train_step
        xn = prog.ast.model.input.name
        xs = (bs,) + tuple(int(d) for d in g.inputs[xn].shape[1:])
        rng = np.random.default_rng(0)
        x = rng.random(xs, dtype=np.float32)
        ynode = g.inputs["y"]
        if ynode.dtype == "i64":
            n_cls = int(prog.init_params(0)[[k for k in prog.init_params(0) if k.endswith(".weight")][-1]].shape[-1])
            y = rng.integers(0, n_cls, (bs,) + tuple(int(d) for d in ynode.shape[1:])).astype(np.int64)
        else:
            y = rng.random((bs,) + tuple(int(d) for d in ynode.shape[1:]), dtype=np.float32)
        t2 = time.perf_counter()
        tr.step(x, y)
        out["first_step_s"] = time.perf_counter() - t2
        out["total_s"] = time.perf_counter() - t0
        ts = []
        for _ in range(10):
            t3 = time.perf_counter()
            tr.step(x, y)
            ts.append(time.perf_counter() - t3)
        out["second_step_s"] = ts[0]
        out["next_steps_median_s"] = float(np.median(ts))
    else:
        wl = Workload(target)
        info = {}
        t0 = time.perf_counter()
        run = make_side(side, wl, info, variant)
        run()
        out["first_step_s"] = time.perf_counter() - t0   # build + compile + first step
        if "compile_s" in info:
            out["compile_s"] = info["compile_s"]
        for _ in range(steps):
            run()
    out["rss_peak_mb"] = _maxrss_mb()
    print("CHILD_JSON " + json.dumps(out), flush=True)


def run_child(side: str, target: str, steps: int = 20, timeout: float = 200.0, cold_inductor: bool = True):
    env = dict(os.environ)
    if cold_inductor:
        env["TORCHINDUCTOR_FORCE_DISABLE_CACHES"] = "1"     # a truly cold torch.compile
    cmd = [sys.executable, os.path.abspath(__file__), "--threads", str(THREADS), "--_child", side, target, str(steps)]
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in p.stdout.splitlines():
        if line.startswith("CHILD_JSON "):
            return json.loads(line[len("CHILD_JSON "):])
    tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
    return {"error": f"exit {p.returncode}: {tail[:200]}"}


# --- the report ----------------------------------------------------------------------------------
def fmt_ms(v):
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="comma list of " + ",".join(WORKLOADS))
    ap.add_argument("--sides", default=",".join(SIDES), help="comma list of " + ",".join(SIDES))
    ap.add_argument("--quick", action="store_true", help="fewer repeats (~0.3 s of timing per side and workload)")
    ap.add_argument("--markdown", action="store_true", help="also print markdown tables for docs/performance.md")
    ap.add_argument("--unset-openblas-env", action="store_true",
                    help="re-execute with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (for every side)")
    ap.add_argument("--no-subprocess", action="store_true",
                    help="skip the cold-compile and peak-memory child processes")
    ap.add_argument("--check-steps", type=int, default=5, help="steps of the loss agreement check")
    ap.add_argument("--threads", type=int, default=2,
                    help="threads per side (default 2); set in the environment before anything is imported")
    ap.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._child:
        child_main(a._child[0], a._child[1], int(a._child[2]))
        return 0

    workloads = [w.strip() for w in a.workloads.split(",") if w.strip()]
    sides = [s.strip() for s in a.sides.split(",") if s.strip()]
    for w in workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r}; expected some of {','.join(WORKLOADS)}")
    for s in sides:
        if s not in SIDES:
            ap.error(f"unknown side {s!r}; expected some of {','.join(SIDES)}")
    target_s = 0.3 if a.quick else 1.5

    print("# nncompile CPU training-step benchmark")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, threads {THREADS}, cores {os.cpu_count()}")
    vers = []
    for mod in ("torch", "jax", "jaxlib"):
        try:
            vers.append(f"{mod} {__import__(mod).__version__}")
        except Exception:
            vers.append(f"{mod} missing")
    print(", ".join(vers))
    ob = {k: os.environ.get(k) for k in _OPENBLAS_TUNING}
    print("OpenBLAS env: " + ", ".join(f"{k}={v if v is not None else '(unset)'}" for k, v in ob.items())
          + ("  [--unset-openblas-env]" if a.unset_openblas_env else ""))
    print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS')!r}; timing target {target_s} s per side and workload, "
          f"in {ROUNDS} interleaved rounds")
    print("load average at start (1/5/15 min): " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    if "torch" in sides or "torch.compile" in sides:
        try:
            import torch
            torch.set_num_threads(THREADS)
        except Exception:
            pass
    print()

    results = {}     # (w, side) -> timing dict
    losses = {}      # (w, side) -> [loss per step]
    notes = []
    compile_info = {}
    bounds = {}
    wls = {}
    other_load = {}
    for w in workloads:
        wl = Workload(w)
        wls[w] = wl
        print(f"## {w}: {wl.kind} {wl.arch}, batch {wl.batch}, {wl.n_params} parameters", flush=True)
        runs = {}
        variants = {}    # side -> the labels of its timed variants on this workload
        for side in sides:
            for label, variant in side_variants(side, wl):
                info = {}
                try:
                    run = make_side(side, wl, info, variant)
                    losses[(w, label)] = [run() for _ in range(a.check_steps + 1)]
                    runs[label] = run
                    variants.setdefault(side, []).append(label)
                    if "compile_s" in info:
                        compile_info[(w, label)] = info["compile_s"]
                        print(f"  {label:14s} compiled in {info['compile_s']:.2f} s", flush=True)
                except Skip as e:
                    notes.append(f"{w} {label}: skipped: {e}")
                    print(f"  {label:14s} SKIPPED: {e}", flush=True)
                except Exception as e:  # a side failing must not stop the others
                    notes.append(f"{w} {label}: failed: {type(e).__name__}: {e}")
                    print(f"  {label:14s} FAILED: {type(e).__name__}: {e}", flush=True)
                    traceback.print_exc(limit=3)
        if "torch" in variants:
            try:
                losses[(w, KERAS_EPS_TORCH)] = torch_keras_eps_losses(wl, a.check_steps + 1)
            except Exception as e:  # diagnostic only
                notes.append(f"{w} torch with Keras eps (agreement diagnostic) failed: {e}")
        grun, n_gemm, flops = gemm_bound(wl)
        runs["GEMM-only"] = grun
        load = {}
        timed = time_interleaved(runs, target_s, load)
        other_load[w] = load.get("other_cores")
        gb = timed.pop("GEMM-only")
        bounds[w] = (gb, n_gemm, flops)
        for label, r in timed.items():
            results[(w, label)] = r
            print(f"  {label:14s} median {fmt_ms(r['median']):>8} ms  p10 {fmt_ms(r['p10']):>8}  "
                  f"p90 {fmt_ms(r['p90']):>8}  (n={r['n']})", flush=True)
        for side, labels in variants.items():      # a side with variants: its fastest one
            if labels != [side]:
                best = min(labels, key=lambda k: results[(w, k)]["median"])
                results[(w, side)] = dict(results[(w, best)], label=best)
                losses[(w, side)] = losses[(w, best)]
                print(f"  {side:14s} = {best} (the faster of {', '.join(labels)})", flush=True)
        print(f"  {'GEMM-only':14s} median {fmt_ms(gb['median']):>8} ms  p10 {fmt_ms(gb['p10']):>8}  "
              f"p90 {fmt_ms(gb['p90']):>8}  (n={gb['n']}; {n_gemm} GEMMs, {flops / 1e6:.1f} MFLOP, "
              f"{flops / gb['median'] / 1e6:.1f} GFLOP/s)", flush=True)
        if other_load[w] is not None:
            print(f"  other processes kept {other_load[w]:.2f} of {os.cpu_count()} cores busy while {w} was timed"
                  + ("  <-- NOISY: numbers unreliable, rerun on a quiet machine" if other_load[w] > 0.25 else ""),
                  flush=True)
        print(flush=True)

    # --- the summary table ---
    print("## Median ms per step (ratio = peer time / nncompile time; > 1: nncompile is faster)")
    hdr = ["side"] + workloads
    trows = table_rows(sides, workloads, results)
    rows = []
    for name, key in trows:
        row = [name]
        for w in workloads:
            r = results.get((w, key))
            base = results.get((w, "nncompile"))
            if r is None:
                row.append("skipped" if key == name else "-")
            elif key == "nncompile" or base is None:
                row.append(f"{fmt_ms(r['median'])}")
            else:
                row.append(f"{fmt_ms(r['median'])} ({r['median'] / base['median']:.2f}x)"
                           + (f" {split_label(r['label'])[1]}" if "label" in r else ""))
        rows.append(row)
    row = ["GEMM-only bound"]
    for w in workloads:
        base = results.get((w, "nncompile"))
        gb = bounds[w][0]["median"]
        row.append(f"{fmt_ms(gb)}" + (f" (nncompile reaches {100 * gb / base['median']:.0f}%)" if base else ""))
    rows.append(row)
    _print_table(hdr, rows)
    if any(k != n for n, k in trows):
        print("(torch on an image workload: the best of its NCHW and channels_last memory formats, named in the"
              " cell;\n both are timed and listed below it)")
    if any(not wls[w].is_mlp for w in workloads):
        print("(GEMM-only bound of a convnet: its im2col GEMMs only, without the column copies, pooling and"
              " elementwise passes)")
    print()
    print("## p10 / p90 ms per step")
    rows = []
    for name, key in trows:
        rows.append([name] + [f"{fmt_ms(results[(w, key)]['p10'])} / {fmt_ms(results[(w, key)]['p90'])}"
                              if (w, key) in results else "-" for w in workloads])
    _print_table(hdr, rows)
    print()

    # --- loss agreement ---
    print(f"## Loss agreement: {a.check_steps + 1} steps from the same weights and data "
          f"(loss before each update; max |rel diff| vs nncompile over the steps)")
    rows = []
    check_rows = trows + ([(KERAS_EPS_TORCH, KERAS_EPS_TORCH)] if any(k[1] == KERAS_EPS_TORCH for k in losses)
                          else [])
    for name, side in check_rows:
        row = [name]
        for w in workloads:
            ref = losses.get((w, "nncompile"))
            ls = losses.get((w, side))
            if ls is None:
                row.append("skipped" if name == side else "-")
            elif side == "nncompile" or ref is None:
                row.append(f"loss {ls[0]:.6f} -> {ls[-1]:.6f}")
            else:
                rel = max(abs(p - q) / max(abs(q), 1e-12) for p, q in zip(ls, ref))
                row.append(f"{rel:.2e}")
        rows.append(row)
    _print_table(hdr, rows)
    worst = [(w, s) for (w, s), ls in losses.items()
             if s not in ("nncompile", KERAS_EPS_TORCH) and (w, "nncompile") in losses
             and "label" not in results.get((w, s), {})      # a side's best variant is checked as itself
             and max(abs(p - q) / max(abs(q), 1e-12) for p, q in zip(ls, losses[(w, "nncompile")])) > 1e-3]
    print("agreement: " + ("all sides within 1e-3 relative" if not worst else
                           "DISAGREEMENT > 1e-3: " + ", ".join(f"{w}/{s}" for w, s in worst)))
    if any(s == KERAS_EPS_TORCH for _, s in check_rows):
        print(f"('{KERAS_EPS_TORCH}': torch eager with eps set before each step to eps/sqrt(1-b2^t), which is the\n"
              " Keras update exactly; where it agrees and plain torch does not, the difference is torch's eps placement)")
    print()

    # --- cold compile and peak memory (fresh processes) ---
    child = {}
    if not a.no_subprocess:
        print("## Cold start and peak memory (one fresh process each; peak RSS = VmHWM)", flush=True)
        digits = os.path.join(ROOT, "examples", "digits.nn")
        if os.path.exists(digits) and "nncompile" in sides:
            r = run_child("nncompile-file", digits, 0, timeout=120)
            child[("digits", "nncompile")] = r
            if "error" in r:
                print(f"  nncompile examples/digits.nn: {r['error']}")
            else:
                print(f"  nncompile examples/digits.nn cold: compile {r['compile_s']:.3f} s + trainer "
                      f"{r['trainer_s']:.3f} s + first step {r['first_step_s']:.3f} s = {r['total_s']:.3f} s "
                      f"(import {r['import_s']:.2f} s; second step {1e3 * r['second_step_s']:.2f} ms, "
                      f"median of steps 2-11 {1e3 * r['next_steps_median_s']:.2f} ms)", flush=True)
        for w in workloads:
            for side in sides:
                if (w, side) not in results:
                    continue
                # the slow cold torch.compile: for the first workload only (it is per-shape anyway)
                if side == "torch.compile" and w != workloads[0]:
                    continue
                label = results[(w, side)].get("label", side)    # a side in variants: its fastest
                r = run_child(label, w, 20, timeout=TORCH_COMPILE_LIMIT_S + 60)
                child[(w, side)] = r
                if "error" in r:
                    print(f"  {w} {label:14s} {r['error']}", flush=True)
                    continue
                extra = f", of which compile {r['compile_s']:.2f} s" if "compile_s" in r else ""
                print(f"  {w} {label:14s} import {r['import_s']:.2f} s; build + first step {r['first_step_s']:.3f} s"
                      f"{extra}; peak RSS {r['rss_peak_mb']:.0f} MB (after imports {r['rss_after_import_mb']:.0f} MB,"
                      f" +{r['rss_peak_mb'] - r['rss_after_import_mb']:.0f} MB)", flush=True)
        print()
        print("## Compile time (s)")
        rows = []
        d = child.get(("digits", "nncompile"))
        if d and "error" not in d:
            rows.append(["nncompile examples/digits.nn (cold process: compile + trainer + first step)",
                         f"{d['total_s']:.3f}"])
        for w in workloads:
            d = child.get((w, "nncompile"))
            if d and "error" not in d:
                rows.append([f"nncompile {w} (cold process: compile + trainer + first step)", f"{d['first_step_s']:.3f}"])
        for side in ("jax", "torch.compile"):
            for w in workloads:
                d = child.get((w, side))
                if d and "error" not in d and "compile_s" in d:
                    what = "jax.jit lower + compile" if side == "jax" else "torch.compile first call, caches off"
                    rows.append([f"{side} {w} (cold process: {what})", f"{d['compile_s']:.3f}"])
                for (w2, label), s in compile_info.items():
                    if w2 == w and split_label(label)[0] == side:
                        what = "jax.jit lower + compile" if side == "jax" else "torch.compile first call"
                        rows.append([f"{label} {w} (in the benchmark process: {what})", f"{s:.3f}"])
        _print_table(["what", "seconds"], rows)
        print()
        print("## Peak memory: peak RSS (VmHWM) of a fresh process that builds the side and runs 21 steps (MB)")
        rows = []
        for side in sides:
            row = [side]
            for w in workloads:
                d = child.get((w, side))
                lab = split_label(results.get((w, side), {}).get("label", side))[1]
                row.append("-" if not d or "error" in d else
                           f"{d['rss_peak_mb']:.0f} (+{d['rss_peak_mb'] - d['rss_after_import_mb']:.0f})"
                           + (f" {lab}" if lab else ""))
            rows.append(row)
        _print_table(hdr, rows)
        print("(+N: growth over the same process right after its imports; a side timed in variants is measured"
              " in its fastest)")
        print()

    print("load average at end (1/5/15 min): " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    print()
    if notes:
        print("## Notes")
        for n in notes:
            print("  - " + n)
        print()

    if a.markdown:
        print_markdown(a, workloads, sides, wls, results, bounds, losses, child, compile_info)
    return 0


def table_rows(sides, workloads, results) -> list:
    """[(row name, results key)]: every side, and under a side timed in variants
    (torch's memory formats) one row per variant."""
    out = []
    for side in sides:
        out.append((side, side))
        labels = []
        for w in workloads:
            for (w2, k) in results:
                if w2 == w and k != side and split_label(k)[0] == side and k not in labels:
                    labels.append(k)
        out.extend((f"  {k}", k) for k in labels)
    return out


def _print_table(hdr, rows):
    cols = [hdr] + rows
    widths = [max(len(str(r[i])) for r in cols) for i in range(len(hdr))]
    print("  ".join(str(h).ljust(wd) for h, wd in zip(hdr, widths)))
    print("  ".join("-" * wd for wd in widths))
    for r in rows:
        print("  ".join(str(c).ljust(wd) for c, wd in zip(r, widths)))


def print_markdown(a, workloads, sides, wls, results, bounds, losses, child, compile_info):
    print("## Markdown (for docs/performance.md)")
    print()
    ob = ", ".join(f"{k}={os.environ.get(k) or 'unset'}" for k in _OPENBLAS_TUNING)
    print(f"CPU, {THREADS} threads per side, float32; {ob}. Median ms per step "
          f"(p10-p90); in brackets, the peer's time over nncompile's.")
    print()
    head = "| side | " + " | ".join(f"{w}: {wls[w].arch}, batch {wls[w].batch}" for w in workloads) + " |"
    print(head)
    print("|" + "---|" * (len(workloads) + 1))
    for name, side in table_rows(sides, workloads, results):
        cells = []
        for w in workloads:
            r = results.get((w, side))
            base = results.get((w, "nncompile"))
            if r is None:
                cells.append("skipped" if name == side else "-")
                continue
            c = f"{fmt_ms(r['median'])} ({fmt_ms(r['p10'])}-{fmt_ms(r['p90'])})"
            if side != "nncompile" and base:
                c += f" [{r['median'] / base['median']:.2f}x]"
            if "label" in r:
                c += f" {split_label(r['label'])[1]}"
            cells.append(c)
        print(f"| {name.strip()} | " + " | ".join(cells) + " |")
    cells = []
    for w in workloads:
        gb = bounds[w][0]["median"]
        base = results.get((w, "nncompile"))
        cells.append(f"{fmt_ms(gb)}" + (f" (nncompile at {100 * gb / base['median']:.0f}%)" if base else ""))
    print("| GEMM-only bound | " + " | ".join(cells) + " |")
    print()
    if child:
        print("| cold start (fresh process) | seconds |")
        print("|---|---|")
        d = child.get(("digits", "nncompile"))
        if d and "error" not in d:
            print(f"| nncompile examples/digits.nn: compile + trainer + first step | {d['total_s']:.3f} |")
        for side in ("jax", "torch.compile"):
            w = workloads[0]
            d = child.get((w, side))
            if d and "error" not in d and "compile_s" in d:
                print(f"| {side} {w}: {'jit compile' if side == 'jax' else 'first call (compile), caches off'} "
                      f"| {d['compile_s']:.3f} |")
        print()
        print("| peak RSS, MB (growth after imports) | " + " | ".join(workloads) + " |")
        print("|" + "---|" * (len(workloads) + 1))
        for side in sides:
            cells = []
            for w in workloads:
                d = child.get((w, side))
                cells.append("-" if not d or "error" in d else
                             f"{d['rss_peak_mb']:.0f} (+{d['rss_peak_mb'] - d['rss_after_import_mb']:.0f})")
            print(f"| {side} | " + " | ".join(cells) + " |")
        print()


if __name__ == "__main__":
    sys.exit(main())
