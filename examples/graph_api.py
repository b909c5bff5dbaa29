"""Train an MLP on the built-in handwritten digits with the graph API: the model,
the loss, the gradient and the Adam update are plain Python, traced once into
one graph by nc.jit and compiled (NumPy on the CPU, or Triton).

    python examples/graph_api.py                      # 20 epochs, NumPy backend
    python examples/graph_api.py --epochs 3 --backend triton --show-ir
"""
from __future__ import annotations

import argparse

import numpy as np

import nncompile as nc
from nncompile.frontend.ast import DataSpec
from nncompile.runtime.data import batches, load_data, split
from nncompile.runtime.init import initialize
from nncompile.runtime.progress import chapter_line


def model(params, x, key=None, rate=0.0):
    h = nc.relu(x @ params["h1.weight"] + params["h1.bias"])
    if key is not None and rate > 0:
        h = nc.dropout(h, rate, key)                 # Philox masks keyed by (seed, step)
    return h @ params["out.weight"] + params["out.bias"]     # logits


def loss_fn(params, x, y, key):
    logits = model(params, x, key, rate=0.1)
    loss = nc.mean(nc.sparse_categorical_crossentropy(y, logits, from_logits=True))
    return loss, nc.mean(nc.argmax(logits) == y)     # (loss, accuracy): the accuracy is aux


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", choices=["numpy", "triton"], default="numpy")
    ap.add_argument("--show-ir", action="store_true", help="print the training step's IR after the passes")
    args = ap.parse_args(argv)

    data = load_data(DataSpec("builtin", {"name": "digits"}, None), label_kind="class")   # x: [N, 64] in [0, 1]
    train, val = split(data, 0.2, seed=args.seed, stratify=True)
    params = initialize([("h1.weight", (64, args.hidden), "glorot_uniform"), ("h1.bias", (args.hidden,), "zeros"),
                         ("out.weight", (args.hidden, 10), "glorot_uniform"), ("out.bias", (10,), "zeros")],
                        args.seed)
    opt = nc.optim.adam(lr=args.lr)
    state = opt.init(params)

    def train_step(params, state, x, y, key):
        (loss, acc), grads = nc.value_and_grad(loss_fn, has_aux=True)(params, x, y, key)
        params, state = opt.update(params, grads, state)
        return params, state, loss, acc

    def evaluate(params, x, y):
        logits = model(params, x)
        return (nc.mean(nc.sparse_categorical_crossentropy(y, logits, from_logits=True)),
                nc.mean(nc.argmax(logits) == y))

    # specs: the parameters and state as they are (static shapes), the batch with a free B
    batch = (nc.f32[nc.B, 64], nc.i64[nc.B])
    step = nc.jit(train_step, params, state, *batch, nc.i64[2], backend=args.backend)
    score = nc.jit(evaluate, params, *batch, backend=args.backend)
    if args.show_ir:
        print(step.ir())

    rng = np.random.default_rng(args.seed)
    n_step = 0
    for epoch in range(args.epochs):
        total, seen, hits = 0.0, 0, 0.0
        for idx in batches(len(train), args.batch_size, rng):
            n_step += 1
            params, state, loss, acc = step(params, state, train.x[idx], train.y[idx],
                                            np.array([args.seed, n_step]))
            total += float(loss) * len(idx)
            hits += float(acc) * len(idx)
            seen += len(idx)
        val_loss, val_acc = score(params, val.x, val.y)
        print(chapter_line(epoch, {"loss": total / seen, "accuracy": hits / seen,
                                   "val_loss": float(val_loss), "val_accuracy": float(val_acc)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
