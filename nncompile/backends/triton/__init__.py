"""The Triton backend: `compile_graph(graph)` -> TritonProgram (see codegen.py).

Imported lazily so that `import nncompile` works without torch/triton."""
from __future__ import annotations

import importlib.util
import os
from typing import Optional

INSTALL = "pip install 'nncompile[triton]'"


def missing() -> Optional[str]:
    """Why the backend cannot even be compiled here (torch or triton not
    installed), or None."""
    absent = [m for m in ("torch", "triton") if importlib.util.find_spec(m) is None]
    if absent:
        return f"the triton backend needs {' and '.join(absent)}, which {'are' if len(absent) > 1 else 'is'} " \
               f"not installed: {INSTALL}"
    return None


def cannot_run() -> Optional[str]:
    """Why compiled programs cannot run here (nothing installed, or no CUDA GPU
    and no interpreter asked for), or None."""
    why = missing()
    if why is not None:
        return why
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return None
    import torch
    if not torch.cuda.is_available():
        return ("the triton backend needs a CUDA GPU, and torch sees none; on a machine without one, set "
                "TRITON_INTERPRET=1 to run the kernels on the CPU through Triton's interpreter (slow)")
    return None


def compile_graph(graph):
    from ...errors import NNError
    why = missing()
    if why is not None:
        raise NNError(why)
    from .codegen import compile_graph as _compile
    return _compile(graph)
