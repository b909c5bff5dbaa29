"""Run every test in this folder on the CPU through the Triton interpreter.

TRITON_INTERPRET must be set before triton is imported (it is read when
``@triton.jit`` decorators run), hence at conftest import time.  If triton or
torch is missing the whole folder is skipped."""

import os
import sys

os.environ["TRITON_INTERPRET"] = "1"
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # silence a Triton 3.9 deprecation warning

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import importlib.util  # noqa: E402

_missing = [m for m in ("torch", "triton") if importlib.util.find_spec(m) is None]
collect_ignore_glob = ["test_*.py"] if _missing else []

if not _missing:
    import triton  # noqa: E402

    if "triton" in sys.modules and not triton.knobs.runtime.interpret:
        # triton was imported (e.g. by another conftest) before we could set the
        # variable: kernels would be compiled for a GPU we don't have.
        triton.knobs.runtime.interpret = True
