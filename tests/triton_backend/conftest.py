"""Run every test in this folder on the CPU through the Triton interpreter.

TRITON_INTERPRET must be set before triton is imported (it is read when
``@triton.jit`` decorators run), hence at conftest import time.  If triton or
torch is missing, every module here skips itself (pytest.importorskip at its top,
with the reason), so a CPU-only install reports them as skipped."""

import os
import sys

os.environ["TRITON_INTERPRET"] = "1"
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # silence a Triton 3.9 deprecation warning

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import importlib.util  # noqa: E402

if all(importlib.util.find_spec(m) is not None for m in ("torch", "triton")):
    import triton  # noqa: E402

    if "triton" in sys.modules and not triton.knobs.runtime.interpret:
        # triton was imported (e.g. by another conftest) before we could set the
        # variable: kernels would be compiled for a GPU we don't have.
        triton.knobs.runtime.interpret = True
