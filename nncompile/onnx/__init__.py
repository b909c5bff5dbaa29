"""ONNX in and out (docs/onnx.md).

    prog.export_onnx(params, "model.onnx")        # the inference graph of a .nn program
    m = nc.onnx.load("model.onnx")                # an ONNX model as a graph-API function
    y = m(x)                                      # compiled on first call (numpy or triton)
    nc.onnx.export(fn, params, nc.f32[nc.B, 64], path="f.onnx")   # a graph-API function

`export` turns an IR inference graph into an ONNX model through one table
(IR op -> ONNX nodes), the way each backend lowers ops through its own;
`load` rebuilds an ONNX graph with the graph API's functions (one table,
ONNX op_type -> function), so the result compiles like any traced function;
`layers` turns an ONNX model that is a layer graph into a `.nn` program and
its weights (`nncompile import`). onnx itself is imported only when one of
them runs: the core install works without it.
"""
from __future__ import annotations

from ..errors import NNError

OPSET = 20          # Gelu (with approximate="tanh") is an ONNX op from opset 20
IR_VERSION = 9      # the IR version of opset 20 (onnx 1.15); onnxruntime >= 1.16 reads it


def require_onnx(what: str = "ONNX"):
    """The onnx module, or the error that says how to install it."""
    try:
        import onnx
    except ImportError:
        raise NNError(f"{what} needs the onnx package, which is not installed",
                      hint="pip install 'nncompile[onnx]'") from None
    return onnx


def export(fn, params, *specs, path=None, name=None, force: bool = False):
    """A graph-API function `fn(params, *inputs)` as an ONNX model: traced with
    `params` (a dict, or nested structure, of arrays) stored as initializers and
    the inputs of these specs (`nc.f32[nc.B, 784]`) as graph inputs. Written
    atomically to `path` when given (replacing only nncompile's own files unless
    `force`). An imported model re-exports with `m.export(params, path)`."""
    import numpy as np

    from ..api import trace, tree
    from .exporter import export_graph, write_model
    g, _, _ = trace(fn, params, *specs, name=name)
    leaves, _ = tree.flatten(params)
    stored = {k: np.asarray(v) for k, (_, v) in zip(list(g.inputs)[:len(leaves)], leaves)}
    model = export_graph(g, stored, name=g.name, doc=f"function '{g.name}', exported by nncompile")
    require_onnx().checker.check_model(model, full_check=True)
    if path is not None:
        write_model(model, path, force=force)
    return model


def load(path, backend: str = "numpy"):
    """An ONNX model file (or ModelProto) as an `OnnxFunction` (see loader.py)."""
    from .loader import load as _load
    return _load(path, backend=backend)


__all__ = ["OPSET", "IR_VERSION", "export", "load", "require_onnx"]
