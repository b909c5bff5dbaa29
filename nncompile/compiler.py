"""The driver: source text → checked AST → IR graphs → passes → a backend.

`compile()` returns a `Program`, the object behind the public Python API. It
holds four graphs built from the same model:

  train_step      forward (dropout on, batch statistics), loss + penalties,
                  metrics, gradients (autodiff pass) and the optimizer update;
                  updates parameters and state in place
  loss_and_grads  forward without dropout, loss + penalties, gradients
  evaluate        inference forward (running statistics), loss + metrics
  predict         inference forward only

Graphs are compiled lazily by the chosen backend, once each.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np

from .errors import CompileError, NNError
from .frontend import ast
from .frontend.lower import (LayerInfo, build_loss, build_metrics, build_model, declare_params,
                             label_type, layer_infos)
from .ir.graph import B, Graph
from .ir.ops import NP_DTYPE
from .passes.manager import REQUIRED, run_passes

BACKENDS = ("numpy", "triton")


@dataclass
class Graphs:
    infos: list[LayerInfo]
    predict: Graph
    evaluate: Optional[Graph] = None
    loss_and_grads: Optional[Graph] = None
    train_step: Optional[Graph] = None
    lowered: dict[str, Graph] = field(default_factory=dict)       # before any pass
    unoptimized: dict[str, Graph] = field(default_factory=dict)   # after the REQUIRED passes only


def _model_graph(prog: ast.Program, infos, name: str, float_dtype: str):
    g = Graph(name, float_dtype)
    inp = prog.model.input
    with g.at(inp.loc, inp.name):
        x = g.input(inp.name, (B,) + tuple(inp.shape))
    declare_params(g, infos)
    return g, x


def _label_input(g: Graph, prog: ast.Program, infos) -> Any:
    dtype, shape = label_type(prog, infos)
    with g.at(prog.train.loss.loc, "y"):
        return g.input("y", shape, dtype if dtype == "i64" else g.float_dtype)


def _weights_input(g: Graph, prog: ast.Program, weighted: bool):
    if not weighted:
        return None
    with g.at(prog.train.loc, "sample_weight"):
        return g.input("sample_weight", (B,), g.float_dtype)


def build_graphs(prog: ast.Program, float_dtype: str = "f32", data_parallel: bool = False,
                 weighted: bool = False) -> Graphs:
    """Lower a checked program to its graphs. The gradient and optimizer update
    are added by the `autodiff` and `optimizer` passes, as `meta` asks. A
    `data_parallel` train_step runs on one worker's shard of the global batch:
    its rng input is (seed, step, first row of the shard), batch-norm
    statistics and the gradient are `shard_mean`s (docs/distributed.md).
    `weighted`: the graphs with a loss take a "sample_weight" input [B] that
    weighs the loss and the weighted metrics (Keras's sample_weight)."""
    infos = layer_infos(prog)
    gp, x = _model_graph(prog, infos, "predict", float_dtype)
    mo = build_model(gp, prog, infos, x, training=False)
    gp.output("y_hat", mo.out)
    graphs = Graphs(infos, gp)
    if prog.train is None:
        return graphs

    ge, x = _model_graph(prog, infos, "evaluate", float_dtype)
    y = _label_input(ge, prog, infos)
    w = _weights_input(ge, prog, weighted)
    mo = build_model(ge, prog, infos, x, training=False)
    ge.output("loss", build_loss(ge, prog, mo, y, w))
    for k, v in build_metrics(ge, prog, mo, y, w).items():
        ge.output(k, v)
    graphs.evaluate = ge

    gg, x = _model_graph(prog, infos, "loss_and_grads", float_dtype)
    y = _label_input(gg, prog, infos)
    w = _weights_input(gg, prog, weighted)
    mo = build_model(gg, prog, infos, x, training=True)
    gg.output("loss", build_loss(gg, prog, mo, y, w))
    gg.meta["differentiate"] = "loss"
    graphs.loss_and_grads = gg

    gt, x = _model_graph(prog, infos, "train_step", float_dtype)
    if data_parallel:
        gt.meta["data_parallel"] = True
    y = _label_input(gt, prog, infos)
    w = _weights_input(gt, prog, weighted)
    with gt.at(prog.train.loc, "rng"):
        rng = gt.input("rng", (3 if data_parallel else 2,), "i64", role="scalar")
    mo = build_model(gt, prog, infos, x, training=True, rng=rng)
    gt.output("loss", build_loss(gt, prog, mo, y, w))
    for k, v in build_metrics(gt, prog, mo, y, w).items():
        gt.output(k, v)
    for name, node in mo.state_updates.items():
        gt.output(name, node, updates=name)
    opt = prog.train.optimizer
    gt.meta["differentiate"] = "loss"
    gt.meta["optimizer"] = (opt.name, dict(opt.params), opt.loc)
    graphs.train_step = gt
    for g in (gp, ge, gg, gt):      # inference too runs the contractions in the step's precision
        g.meta["precision"] = prog.train.precision
    return graphs


class Program:
    """A compiled `.nn` program: its graphs, compiled steps and the training API."""

    def __init__(self, source_ast: ast.Program, backend: str = "numpy", *, optimize: bool = True,
                 float_dtype: str = "f32", verify: Optional[bool] = None, cpu_kernels: Optional[str] = None,
                 data_parallel: bool = False):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        self.ast = source_ast
        self.backend = backend
        # the NumPy backend's native loops: "auto" (when a C compiler is found), "native" or
        # "numpy" (default: $NNCOMPILE_CPU_KERNELS or auto); see backends/numpy/native.py
        self.cpu_kernels = cpu_kernels
        self.float_dtype = float_dtype
        self.data_parallel = data_parallel   # a worker's step of a data-parallel run (runtime/distributed.py)
        self.group = None                    # ... and its process group, once the worker has joined it
        if verify is None:
            verify = os.environ.get("NNCOMPILE_VERIFY", "") not in ("", "0")
        self._optimize, self._verify = optimize, verify
        t = source_ast.train
        self._build(t is not None and (t.class_weight is not None or bool(t.weighted_metrics)))
        self._trainer = None          # the state fit() trains and continues (runtime/keras_api.py)
        self.stop_training = False    # a Keras callback sets it to stop fit()

    def _build(self, weighted: bool) -> None:
        optimize, verify = self._optimize, self._verify
        self.weighted = weighted      # the graphs take sample weights (build_graphs)
        self.graphs = build_graphs(self.ast, self.float_dtype, self.data_parallel, weighted)
        self.pass_log: dict[str, list] = {}
        for name in ("predict", "evaluate", "loss_and_grads", "train_step"):
            g = getattr(self.graphs, name)
            if g is None:
                continue
            self.graphs.lowered[name] = g
            self.graphs.unoptimized[name], _ = run_passes(g, verify=verify, pipeline=REQUIRED)
            if optimize:
                g2, log = run_passes(g, verify=verify)
                self.pass_log[name] = log
            else:
                g2 = self.graphs.unoptimized[name]
            setattr(self.graphs, name, g2)
        self._compiled: dict[str, Any] = {}

    def use_sample_weights(self) -> None:
        """Rebuild the graphs with the sample-weight input, once, when fit or evaluate
        is given weights for a program whose file asks for none. A trainer of the
        old graphs (an earlier fit) moves over with its parameters and statistics;
        its optimizer state starts again."""
        if self.weighted:
            return
        old = self._trainer
        self._build(True)
        if old is not None:
            self._trainer = self.trainer(seed=old.seed, params=old.host("model_state"))

    def _check_size(self) -> None:
        """Refuse a model whose parameters (with optimizer state) cannot fit in memory,
        pointing at its largest layer, instead of failing at the first allocation."""
        import math
        from .errors import fmt_bytes, physical_memory
        # per layer, every tensor counted (weight and bias, gamma and beta, ...)
        sizes = [(sum(math.prod(p.shape) for p in info.params), info.layer) for info in self.graphs.infos
                 if info.params]
        if not sizes:
            return
        itemsize = NP_DTYPE[self.float_dtype]().itemsize
        total = sum(n for n, _ in sizes) * itemsize * 4   # params, gradients, two optimizer slots
        if total > physical_memory() // 2:
            n, layer = max(sizes, key=lambda t: t[0])
            raise CompileError(f"the model's parameters need about {fmt_bytes(total)} to train (with gradients "
                               f"and optimizer state), more than this machine can hold "
                               f"({fmt_bytes(physical_memory())}); layer '{layer.name}' alone has {n:,} "
                               f"parameters", layer.loc, source=self.ast.source)

    # --- compiled graphs ---------------------------------------------------------
    def compiled(self, name: str):
        fn = self._compiled.get(name)
        if fn is None:
            g = getattr(self.graphs, name)
            if g is None:
                raise CompileError(f"the program has no train block, so it has no '{name}' step")
            if self.backend == "numpy":
                from .backends.numpy.codegen import generate
                fn = generate(g, self.cpu_kernels)
            else:
                try:
                    import torch  # noqa: F401  (the backend's arrays)
                    import triton  # noqa: F401
                except ImportError as e:
                    raise NNError(f"the triton backend needs torch and triton, and {e.name} is not installed",
                                  hint="pip install 'nncompile[triton]'") from None
                from .backends.triton import compile_graph
                fn = compile_graph(g)
            self._compiled[name] = fn
        return fn

    # --- parameters ----------------------------------------------------------------
    def param_specs(self, role: str = "param") -> list[tuple[str, tuple[int, ...], str]]:
        return [(p.name, p.shape, p.init) for info in self.graphs.infos for p in info.params
                if p.role == role]

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Initial trainable parameters: "<layer>.weight" (in, out), "<layer>.bias",
        batch/layer norm "<layer>.gamma", "<layer>.beta"."""
        from .runtime.init import initialize
        self._check_size()
        return initialize(self.param_specs("param"), seed, NP_DTYPE[self.float_dtype])

    def init_state(self) -> dict[str, np.ndarray]:
        """Initial non-trainable model state (batch norm running statistics)."""
        from .runtime.init import initialize
        return initialize(self.param_specs("state"), 0, NP_DTYPE[self.float_dtype])

    def adapted_state(self, x) -> dict[str, np.ndarray]:
        """The state of the layers adapted to the training data (a normalization's mean
        and variance, Keras's `adapt`) from its features x [N, *input shape]."""
        from .frontend.layers import LAYERS
        out = {}
        for info in self.graphs.infos:
            kind = LAYERS[info.layer.kind]
            if kind.adapts:
                for k, v in kind.adapt(info.layer, np.asarray(x)).items():
                    out[f"{info.layer.name}.{k}"] = np.asarray(v, NP_DTYPE[self.float_dtype])
        return out

    def _inputs(self, name: str, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        g = getattr(self.graphs, name)
        out = {}
        state = None
        for k, node in g.inputs.items():
            if k in values:
                out[k] = np.ascontiguousarray(values[k], NP_DTYPE[node.dtype])
            elif g.input_specs[k].role == "state":
                state = state if state is not None else self.init_state()
                out[k] = state[k]
            else:
                raise ValueError(f"missing input {k!r} for graph {name}")
        return out

    # --- the API ---------------------------------------------------------------------
    def loss_and_grads(self, params: Mapping[str, np.ndarray], x, y,
                       sample_weight=None) -> tuple[float, dict[str, np.ndarray]]:
        """Training loss (with L1/L2 penalties; dropout off; batch norm on batch
        statistics) and its gradient for every parameter, keyed like `params`;
        `sample_weight` [N] weighs the samples' losses (Keras 3: sum(w l) / N)."""
        from .runtime.evaluation import check_batch, check_weights
        x, y = check_batch(self, x, y, "loss_and_grads")
        feed = {**params, self.ast.model.input.name: x, "y": y}
        if sample_weight is not None:
            self.use_sample_weights()
        if self.weighted:
            feed["sample_weight"] = (np.ones(len(x)) if sample_weight is None
                                     else check_weights(sample_weight, len(x), "sample_weight"))
        run = self.compiled("loss_and_grads")
        inputs = self._inputs("loss_and_grads", feed)
        out = run({k: run.to_device(v) for k, v in inputs.items()})
        grads = {k[len("grad."):]: np.array(run.to_host(v)) for k, v in out.items() if k.startswith("grad.")}
        return float(out["loss"]), grads

    def predict(self, x, *args, batch_size: Optional[int] = None, verbose="auto") -> np.ndarray:
        """The model's outputs for x, as Keras's `model.predict(x, batch_size)`: with the
        trained state (before any fit: the initial weights). `predict(params, x)`
        uses the weights given (name -> array)."""
        if isinstance(x, Mapping):
            params, x = x, args[0]
            args = args[1:]
        else:
            from .runtime.keras_api import weights
            params = weights(self)
        if args:
            batch_size = args[0]
        return self._predict(params, x, int(batch_size or 1024))

    def _predict(self, params: Mapping[str, np.ndarray], x, batch_size: int) -> np.ndarray:
        from .runtime.evaluation import check_batch
        x, _ = check_batch(self, x, None, "predict")
        run = self.compiled("predict")
        outs = []
        for i in range(0, max(1, len(x)), batch_size):
            inputs = self._inputs("predict", {**params, self.ast.model.input.name: x[i:i + batch_size]})
            outs.append(np.array(run.to_host(run({k: run.to_device(v) for k, v in inputs.items()})["y_hat"])))
        return np.concatenate(outs) if outs else np.zeros((0,))

    def trainer(self, seed: Optional[int] = None, params: Optional[Mapping[str, np.ndarray]] = None):
        """The compiled training step with its state (parameters, optimizer and
        batch-norm state, step counter)."""
        from .runtime.trainer import Trainer
        if self.ast.train is None:
            raise CompileError("the program has no train block", self.ast.model.loc, source=self.ast.source)
        seed = self.ast.train.seed if seed is None else seed
        if self.data_parallel:
            from .runtime.distributed import WorkerTrainer
            if self.group is None:
                raise NNError("a data-parallel program trains in a worker of a process group, and this one "
                              "has none", hint="set program.group = runtime.distributed.Group() in each worker, "
                              "or use fit(workers=N) / --workers N")
            return WorkerTrainer(self, self.group, seed=seed, params=params)
        return Trainer(self, seed=seed, params=params)

    def fit(self, x=None, y=None, batch_size: Optional[int] = None, epochs: Optional[int] = None,
            verbose="auto", callbacks=None, validation_split: float = 0.0, validation_data=None,
            shuffle: bool = True, class_weight=None, sample_weight=None, *, seed: Optional[int] = None, out=None,
            quiet: bool = False, data=None, on_epoch=None, **options):
        """Train, as Keras's `model.fit`: x, y NumPy arrays (or `data=(x, y)`, else the
        file's data); batch_size, epochs (default: the file's), verbose ("auto", 0, 1,
        2), callbacks (Keras-shaped ones, nncompile.callbacks, or the loop's own
        runtime.callbacks.Callback), validation_split (the last part of x, y),
        validation_data=(xv, yv) or (xv, yv, wv) (default: the file's validation),
        shuffle, class_weight={class: weight} (default: the file's) or
        sample_weight=[N] (the loss as Keras 3: sum(w_i l_i) / batch size).
        Returns a History (`.history`: name -> per-epoch values, `.epoch`). A second
        fit continues from the first's state, as in Keras. `on_epoch(epoch, logs,
        trainer)` is called after each epoch. `options` are those of
        `runtime.loop.fit`: record (True, a folder or a RunRecord: write a run
        folder), resume, checkpoint_every, on_nan, progress. `workers=N` trains
        data-parallel on N local processes, as `nncompile run FILE --workers N`
        (runtime/launcher.py: fit_workers; docs/distributed.md)."""
        workers = options.pop("workers", None)
        if workers is not None and workers != 1:
            from .frontend.parser import with_overrides
            from .runtime.launcher import fit_workers
            if x is not None or y is not None or class_weight is not None or sample_weight is not None \
                    or validation_split or batch_size is not None:
                raise ValueError("fit(workers=N) trains on the file's data and settings: x, y, batch_size, "
                                 "validation_split, class_weight and sample_weight are for one process")
            if self.ast.train is not None:     # the values are checked as if the file said them
                with_overrides(self.ast, epochs=epochs, seed=seed)
            return fit_workers(self, workers, epochs=epochs, seed=seed, quiet=quiet, data=data,
                               validation_data=validation_data, on_epoch=on_epoch, callbacks=callbacks or (),
                               out=out, **options)
        from .runtime.keras_api import fit
        return fit(self, x, y, batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks,
                   validation_split=validation_split, validation_data=validation_data, shuffle=shuffle,
                   class_weight=class_weight, sample_weight=sample_weight, seed=seed, data=data, out=out, quiet=quiet, on_epoch=on_epoch, **options)

    def evaluate(self, x, y, batch_size: Optional[int] = None, verbose="auto", sample_weight=None,
                 return_dict: bool = False):
        """Loss and metrics of the trained state on x, y in inference mode, as Keras:
        the loss alone without metrics, else [loss, *metrics]; `return_dict`: by name."""
        from .runtime.keras_api import evaluate
        return evaluate(self, x, y, batch_size=batch_size, sample_weight=sample_weight, return_dict=return_dict)

    # --- what a Keras callback asks of `self.model` ------------------------------------
    @property
    def optimizer(self):
        from .runtime.keras_api import OptimizerView
        return OptimizerView(self)

    def get_weights(self) -> list:
        from .runtime.keras_api import get_weights
        return get_weights(self)

    def set_weights(self, weights) -> None:
        from .runtime.keras_api import set_weights
        set_weights(self, weights)

    def save_weights(self, path) -> None:
        """The trained state as a weights .npz (what init_from and `nncompile predict` read)."""
        from .runtime.keras_api import save_weights
        save_weights(self, path)

    def load_weights(self, path) -> None:
        from .runtime.keras_api import load_weights
        load_weights(self, path)

    def metric_logs(self, means: Mapping[str, Any]) -> dict[str, float]:
        """Loss and metrics by their logged names, from the means over samples of
        the evaluate / train_step outputs (a metric's statistics: frontend/metrics.py)."""
        from .frontend.metrics import finish
        t = self.ast.train
        return finish((*t.metrics, *t.weighted_metrics) if t is not None else (), means)

    def summary(self) -> str:
        from .runtime.report import summary
        return summary(self)

    def export_onnx(self, params: Mapping[str, np.ndarray], path=None, *, force: bool = False):
        """The inference graph (batch norm on the running statistics, no dropout) as an
        ONNX model; written atomically to `path` when given. `params` holds the
        parameters and the batch-norm state (as `load_weights` returns them). Needs
        `pip install 'nncompile[onnx]'` (docs/onnx.md). An existing file at `path` is
        replaced only if nncompile wrote it, or with force=True."""
        from .onnx.exporter import export_program
        return export_program(self, params, path, force=force)


def compile(path_or_source: str, backend: str = "numpy", **kwargs) -> Program:
    """Compile a `.nn` file (a path) or `.nn` source text into a Program."""
    from .frontend.parser import parse_file, parse_source
    if "\n" not in path_or_source and (path_or_source.endswith(".nn") or os.path.exists(path_or_source)):
        prog = parse_file(path_or_source)
    else:
        prog = parse_source(path_or_source, "<string>")
    return Program(prog, backend, **kwargs)
