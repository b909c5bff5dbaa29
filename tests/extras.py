"""The optional extras a test may need, and markers that skip it (with the
reason) where they are not installed. The suite passes on a CPU-only install
(`pip install -e . pytest hypothesis`: no torch, no triton, no matplotlib).

    from extras import needs_torch, torch     # torch: the module, or None

    @needs_torch
    def test_against_torch(): ...

Nothing here imports triton: tests/triton_backend/conftest.py must set
TRITON_INTERPRET before triton is first imported. A test module that needs an
extra throughout skips itself with `pytest.importorskip(name, reason=...)`.
"""
import importlib
import importlib.util

import pytest


def installed(*modules: str) -> bool:
    """Whether every module can be imported (found without importing it)."""
    return all(importlib.util.find_spec(m) is not None for m in modules)


HAVE_TORCH = installed("torch")
HAVE_TRITON = installed("torch", "triton")
HAVE_MATPLOTLIB = installed("matplotlib")

TORCH_REASON = "needs torch (the reference for gradients and optimizers): pip install -e '.[test]'"
TRITON_REASON = "needs torch and triton (the GPU backend, run here under the interpreter): pip install -e '.[triton]'"
MATPLOTLIB_REASON = "needs matplotlib (the curves.png plot): pip install -e '.[plots]'"
ONNX_REASON = "needs onnx and onnxruntime (ONNX export and import): pip install -e '.[onnx]'"

needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason=TORCH_REASON)
needs_triton = pytest.mark.skipif(not HAVE_TRITON, reason=TRITON_REASON)
needs_matplotlib = pytest.mark.skipif(not HAVE_MATPLOTLIB, reason=MATPLOTLIB_REASON)

torch = importlib.import_module("torch") if HAVE_TORCH else None
