"""The trainer: a compiled training step and the state it updates.

`Trainer.step(x, y)` runs one optimizer step on one batch. Parameters,
optimizer state and batch-norm statistics are NumPy arrays that the compiled
step updates in place; `params` / `state` return them by name.
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

from ..ir.ops import NP_DTYPE
from ..frontend.metrics import derived
from .data import Dataset
from .evaluation import evaluate_means, first_bad_label
from .init import initial_value


class Trainer:
    def __init__(self, program, *, seed: int = 0, params: Optional[Mapping[str, np.ndarray]] = None):
        self.program = program
        self.seed = int(seed)
        g = program.graphs.train_step
        self.graph = g
        self._step_fn = program.compiled("train_step")
        init = program.init_params(seed)
        state = program.init_state()
        if params is not None:  # parameters, and model state (batch-norm statistics) by name
            for k, v in params.items():
                dst = init if k in init else state if k in state else None
                if dst is None:
                    raise KeyError(f"unknown parameter {k!r}")
                if np.shape(v) != dst[k].shape:
                    raise ValueError(f"parameter {k!r}: shape {np.shape(v)} != {dst[k].shape}")
                dst[k] = np.array(v, dtype=dst[k].dtype)
        dt = NP_DTYPE[program.float_dtype]
        dev = self._step_fn.to_device
        # name -> the backend's array (NumPy, or a torch tensor on the device). With a
        # flat parameter buffer (the flatten_params pass), parameters and their optimizer
        # slots are views into flat buffers, still listed here under their own names.
        self.arrays = {}
        self._roles: dict[str, str] = {}
        self._flat: dict[str, object] = {}
        flat = g.meta.get("flat_params")
        for name, spec in g.input_specs.items():
            if flat and name.endswith(flat["input"]):
                prefix = name[:-len(flat["input"])]
                buf = dev(np.zeros(tuple(g.inputs[name].shape), dt))
                self._flat[name] = buf
                for pname, off, shape in flat["layout"]:
                    view = buf[off:off + int(np.prod(shape))].reshape(shape)
                    self._step_fn.copyto(view, dev(init[pname]) if not prefix else dev(np.zeros(shape, dt)))
                    self.arrays[prefix + pname] = view
                    self._roles[prefix + pname] = spec.role
            elif spec.role == "param":
                self.arrays[name] = dev(init[name])
            elif spec.role == "state":
                self.arrays[name] = dev(state[name] if name in state else initial_value(
                    spec.init or "zeros", tuple(g.inputs[name].shape), None, dt))
            if name in self.arrays:
                self._roles[name] = spec.role
        self.x_name = program.ast.model.input.name
        self.step_count = 0
        self.lr = float(program.ast.train.optimizer.params["lr"])
        self._rng = np.zeros(tuple(g.inputs["rng"].shape), np.int64)   # seed, step (, shard's first row)
        self._step = np.zeros((), dt)
        self._lr = np.zeros((), dt)
        self._x_dtype = NP_DTYPE[g.inputs[self.x_name].dtype]
        self._x_shape = tuple(g.inputs[self.x_name].shape[1:])
        self._y_shape = tuple(g.inputs["y"].shape[1:])
        self._y_dtype = NP_DTYPE[g.inputs["y"].dtype]
        # sparse labels index the output's units: each batch's are checked (evaluation.first_bad_label)
        self._units = program.graphs.infos[-1].out_shape[-1] \
            if self._y_dtype == np.int64 and program.graphs.infos else None
        # the argument list of the compiled step, in its order; data slots filled per call
        self._names = list(g.inputs)
        self._args = [self._flat.get(n, self.arrays.get(n)) for n in self._names]
        self._slot = {n: i for i, n in enumerate(self._names)}
        self._outs = list(g.outputs)
        # the scalar outputs (loss, metrics) by position, read back as floats each step
        self._scalars = [(i, k) for i, (k, n) in enumerate(g.outputs.items()) if n.shape == ()]
        # a metric's vector statistics (AUC's histograms), read back as arrays
        self._vectors = [(i, k) for i, (k, n) in enumerate(g.outputs.items())
                         if n.shape != () and k not in g.updates]
        self._derived = any("/" in k for k in g.outputs) or derived((*program.ast.train.metrics,
                                                                          *program.ast.train.weighted_metrics))
        self.last: dict[str, float] = {}
        # a loss-scaled fp16 step overflows now and then on purpose (passes/loss_scale.py): it is skipped
        self._overflow_expected = "loss_scale.scale" in g.inputs
        self.last_stats: dict = {}   # the batch's outputs as the loop averages them (metrics.py)

    # --- state ---------------------------------------------------------------------
    @property
    def params(self) -> dict[str, np.ndarray]:
        """Current trainable parameters (live arrays: copy them to keep a snapshot)."""
        return {k: v for k, v in self.arrays.items() if self._roles[k] == "param"}

    @property
    def state(self) -> dict[str, np.ndarray]:
        """Optimizer state and batch-norm running statistics (live arrays)."""
        return {k: v for k, v in self.arrays.items() if self._roles[k] == "state"}

    @property
    def model_state(self) -> dict[str, np.ndarray]:
        """Everything inference needs: parameters and batch-norm statistics."""
        needed = set(self.program.graphs.predict.inputs)
        return {k: v for k, v in self.arrays.items() if k in needed}

    def snapshot(self) -> dict:
        copy = self._step_fn.copy
        return {"arrays": {k: copy(v) for k, v in self.arrays.items()}, "step": self.step_count}

    def restore(self, snap: dict) -> None:
        for k, v in snap["arrays"].items():
            self._step_fn.copyto(self.arrays[k], v)
        self.step_count = snap["step"]

    def load(self, values: Mapping[str, np.ndarray]) -> None:
        """Copy host arrays into the live ones of the same names (adapted state, say)."""
        for k, v in values.items():
            self._step_fn.copyto(self.arrays[k], self._step_fn.to_device(np.asarray(v)))

    def host(self, which: str = "params") -> dict[str, np.ndarray]:
        """Copies on the host (NumPy) of `params`, `state`, `model_state` or `arrays`."""
        return self.to_host(getattr(self, which))

    def to_host(self, arrays: Mapping[str, object]) -> dict[str, np.ndarray]:
        """NumPy copies of arrays of this trainer's backend (a snapshot's, say)."""
        return {k: np.array(self._step_fn.to_host(v)) for k, v in arrays.items()}

    def to_device(self, arrays: Mapping[str, np.ndarray]) -> dict[str, object]:
        """The backend's arrays for host arrays (a loaded checkpoint's, say)."""
        return {k: self._step_fn.to_device(v) for k, v in arrays.items()}

    # --- running -------------------------------------------------------------------
    def train_batch(self, x, y, w=None) -> dict[str, float]:
        """One optimizer step (`w`: the batch's sample weights, when the graphs take
        them); returns the batch's loss and metrics (before the update);
        `last_stats` keeps the outputs they come from, which the fit loop averages."""
        if isinstance(x, np.ndarray) and x.shape[1:] == self._x_shape and isinstance(y, np.ndarray) \
                and y.shape[1:] == self._y_shape and len(y) == len(x) \
                and not (self._units is not None and y.dtype == np.int64 and first_bad_label(y, self._units) is not None):
            pass    # the fit loop's batches: already checked (a label out of range would write out of bounds)
        else:
            from .evaluation import check_batch
            x, y = check_batch(self.program, x, y, "Trainer.step")
        dev = self._step_fn.to_device
        x = dev(x, self._x_dtype)
        y = dev(y, self._y_dtype)
        self.step_count += 1
        self._rng[0], self._rng[1] = self.seed, self.step_count
        self._step[()] = self.step_count
        self._lr[()] = self.lr
        args = self._args
        s = self._slot
        args[s[self.x_name]] = x
        args[s["y"]] = y
        args[s["rng"]] = self._rng
        args[s["step"]] = self._step
        args[s["lr"]] = self._lr
        if "sample_weight" in s:   # the program's graphs take sample weights: 1 where none are given
            args[s["sample_weight"]] = dev(np.ones(len(x), self._x_dtype) if w is None else w, self._x_dtype)
        if self._overflow_expected:
            with np.errstate(over="ignore", invalid="ignore"):
                outs = self._step_fn.runner(len(x))(*args)
        else:
            outs = self._step_fn.runner(len(x))(*args)
        stats = {k: float(outs[i]) for i, k in self._scalars}
        if self._vectors:
            stats.update({k: np.array(self._step_fn.to_host(outs[i]), np.float64) for i, k in self._vectors})
        self.last_stats = stats
        self.last = self.program.metric_logs(stats) if self._derived else stats
        return self.last

    def step(self, x, y) -> float:
        """One optimizer step on one batch; returns that batch's loss."""
        return self.train_batch(x, y)["loss"]

    def evaluate(self, x, y, batch_size: int = 1024, sample_weight=None) -> dict[str, float]:
        """Loss and metrics of the current weights over a dataset in inference mode
        (batch-size weighted); see evaluation.evaluate."""
        return self.program.metric_logs(self.evaluate_means(x, y, batch_size, sample_weight))

    def evaluate_means(self, x, y, batch_size: int = 1024, sample_weight=None) -> dict:
        """The evaluate graph's outputs as means over the samples (evaluation.evaluate_means)."""
        return evaluate_means(self.program, self.model_state, Dataset(x, y, "the evaluated data", w=sample_weight),
                              batch_size)

    def predict(self, x, batch_size: int = 1024) -> np.ndarray:
        return self.program.predict(self.host("model_state"), x, batch_size=batch_size)
