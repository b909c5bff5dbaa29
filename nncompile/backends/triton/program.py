"""A compiled graph on the Triton backend, and the CUDA-graph replay of its step.

`TritonProgram` has the interface of the NumPy backend's program (the runtime
holds state through it): inputs by name, torch tensors on the device (CUDA,
or the CPU under TRITON_INTERPRET=1), parameters and state updated in place.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Mapping, Optional

import numpy as np

from ...ir.graph import Graph, batch_size


# --- CUDA graphs -------------------------------------------------------------------------

class _GraphedStep:
    """Run a step eagerly once (Triton compiles, matmuls autotune), then capture
    it in a CUDA graph and replay it: inputs are copied into the captured
    tensors, state tensors must be the same objects every call (the trainer's
    are). Anything unexpected falls back to eager launches, said once."""

    def __init__(self, inner: Callable, program: "TritonProgram"):
        self.inner, self.program = inner, program
        self.calls = 0
        self.graph = None
        self.static: list = []
        self.outs = None
        self.failed: Optional[str] = None

    def __call__(self, *args):
        import torch
        self.calls += 1
        if self.failed or self.calls < 3:      # two warm-up calls: compile, autotune
            return self.inner(*args)
        if self.graph is None:
            try:
                self._capture(args)
            except Exception as e:  # noqa: BLE001 - any capture problem means: stay eager
                self.failed = f"{type(e).__name__}: {e}"
                self.graph = None
                torch.cuda.synchronize()
                print(f"nncompile: CUDA graph capture failed ({self.failed}); running kernels eagerly",
                      file=sys.stderr)
                return self.inner(*args)
        copy_back = []
        for i, (st, a) in enumerate(zip(self.static, args)):
            if st is a or (isinstance(a, torch.Tensor) and a.data_ptr() == st.data_ptr()):
                continue
            if isinstance(a, torch.Tensor) and a.shape == st.shape:
                st.copy_(a, non_blocking=True)
            else:
                st.copy_(torch.as_tensor(np.asarray(a), dtype=st.dtype).reshape(st.shape), non_blocking=True)
            if self.program.input_names[i] in self.program._updated and isinstance(a, torch.Tensor):
                copy_back.append((a, st))        # state passed as another tensor: give it its new value
        self.graph.replay()
        for a, st in copy_back:
            a.copy_(st)
        return self.outs

    def _capture(self, args):
        import torch
        # no extra warm-up here: a step updates the state in place, so running one
        # more would apply an update twice (the eager calls before were the warm-up)
        self.static = [a.clone() if self._is_data(i) else a for i, a in enumerate(args)]
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            self.outs = self.inner(*self.static)
        self.graph = g

    def _is_data(self, i: int) -> bool:
        """Inputs that change every call (data and scalars), copied into the
        graph's own tensors; state (parameters, optimizer, batch norm) is used in place."""
        name = self.program.input_names[i]
        return self.program.graph.input_specs[name].role in ("data", "scalar")


# --- the program object ------------------------------------------------------------------

class TritonProgram:
    """A compiled graph on the Triton backend; same interface as NumpyProgram.
    Arrays are torch tensors on `device` (CUDA, or CPU under TRITON_INTERPRET=1)."""

    def __init__(self, graph: Graph, source: str, namespace: dict[str, Any], fallbacks: list[str],
                 kernels: list[str], host_scalars: dict[str, str]):
        from . import rt
        self.graph = graph
        self.source = source
        self.input_names = list(graph.inputs)
        self.output_names = list(graph.outputs)
        self.fallbacks = fallbacks
        self.kernels = kernels
        self._device = None          # resolved on first use: dumping source needs no GPU
        self._make: Callable = namespace["make"]
        self._runs: dict[int, Callable] = {}
        self._rt = rt
        self._updated = set(graph.updates.values())
        self._slots = []
        for name, node in graph.inputs.items():
            kind = host_scalars.get(name, "tensor")
            self._slots.append((name, kind, rt.TORCH_DTYPE[node.dtype]))

    @property
    def device(self):
        if self._device is None:
            self._device = self._rt.device()
        return self._device

    cuda_graphs = False

    def runner(self, batch: int) -> Callable:
        run = self._runs.get(batch)
        if run is not None:
            return run
        inner = self._make(int(batch), self.device)
        if self.cuda_graphs and self.device.type == "cuda":
            inner = _GraphedStep(inner, self)
        rt, dev, slots = self._rt, self.device, self._slots
        torch = rt.torch

        def run(*args):
            conv = list(args)
            back = []
            for i, (name, kind, dt) in enumerate(slots):
                a = args[i]
                if kind == "float":
                    conv[i] = float(a)
                elif kind == "ints":
                    conv[i] = rt.host_ints(a)
                elif not (type(a) is torch.Tensor and a.device == dev and a.dtype == dt
                          and a.is_contiguous()):
                    conv[i] = rt.to_torch(a, dt, dev)
                    if name in self._updated and isinstance(a, np.ndarray):
                        back.append((a, conv[i]))
            outs = inner(*conv)
            for arr, t in back:       # a NumPy state array gets its new value too
                np.copyto(arr, t.detach().cpu().numpy().reshape(arr.shape))
            return outs

        self._runs[batch] = run
        return run

    def to_device(self, a, dtype=None):
        rt = self._rt
        if dtype is None:
            dt = a.dtype if isinstance(a, rt.torch.Tensor) else rt._NP_TO_TORCH.get(np.asarray(a).dtype,
                                                                                    rt.torch.float32)
        else:
            dt = rt._NP_TO_TORCH[np.dtype(dtype)] if not isinstance(dtype, rt.torch.dtype) else dtype
        return rt.to_torch(a, dt, self.device)

    @staticmethod
    def to_host(a) -> np.ndarray:
        import torch
        if isinstance(a, torch.Tensor):
            return a.detach().cpu().numpy()
        return np.asarray(a)

    @staticmethod
    def copy(a):
        import torch
        return a.clone() if isinstance(a, torch.Tensor) else np.array(a)

    @staticmethod
    def copyto(dst, src) -> None:
        import torch
        if isinstance(src, torch.Tensor):
            dst.copy_(src.to(dst.device))
        else:
            dst.copy_(torch.from_numpy(np.ascontiguousarray(src)).to(dst.device, dst.dtype))

    def __call__(self, inputs: Mapping[str, Any], batch: Optional[int] = None) -> dict[str, Any]:
        if batch is None:
            batch = batch_size(self.graph, inputs)
        outs = self.runner(batch)(*[inputs[n] for n in self.input_names])
        return dict(zip(self.output_names, outs))
