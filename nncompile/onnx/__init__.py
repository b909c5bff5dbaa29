"""ONNX in and out (docs/onnx.md).

    prog.export_onnx(params, "model.onnx")        # the inference graph of a .nn program
    m = nc.onnx.load("model.onnx")                # an ONNX model as a graph-API function
    y = m(x)                                      # compiled on first call (numpy or triton)

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


def load(path, backend: str = "numpy"):
    """An ONNX model file (or ModelProto) as an `OnnxFunction` (see loader.py)."""
    from .loader import load as _load
    return _load(path, backend=backend)


__all__ = ["OPSET", "IR_VERSION", "load", "require_onnx"]
