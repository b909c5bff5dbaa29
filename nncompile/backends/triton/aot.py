"""Ahead-of-time compilation of Triton kernels for an H100 (sm_90) without a GPU.

``triton.compile`` with an explicit ``GPUTarget("cuda", 90, 32)`` runs the full
pipeline (TTIR -> TTGIR -> LLVM IR -> PTX -> cubin via ptxas) on a CPU-only
machine; the resulting metadata reports the kernel's shared-memory use, which
we check against the H100 per-block limit.

NOTE: kernels must be real ``JITFunction`` objects.  When ``TRITON_INTERPRET=1``
was set before importing triton, every ``@triton.jit`` (including the
``tl.rand`` helpers inside triton.language) is an interpreter object and cannot
be compiled; run AOT checks in a separate process without that variable, e.g.
``python -m nncompile.backends.triton.aot`` (prints a JSON report of
:func:`nncompile.backends.triton.kernels.aot_specs`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field

H100_MAX_SMEM = 232448  # 227 KB: max dynamic shared memory per block on sm_90


@dataclass
class AOTInfo:
    name: str
    shared: int  # bytes of shared memory per block (static + dynamic)
    num_warps: int
    num_stages: int
    has_ptx: bool
    has_cubin: bool
    n_regs: int | None = None
    ttir_lines: int = 0
    extra: dict = field(default_factory=dict)

    def as_dict(self):
        return asdict(self)


def _is_interpreted(kernel) -> bool:
    return type(kernel).__name__ == "InterpretedFunction"


def compile_for_h100(kernel, signature: dict, constexprs: dict | None = None, *,
                     num_warps: int = 4, num_stages: int = 3, name: str | None = None) -> AOTInfo:
    """Compile ``kernel`` (a ``@triton.jit`` function) for sm_90.

    signature: {arg_name: type string} for the runtime arguments, e.g.
    ``{"x_ptr": "*fp32", "n": "i32", "scale": "fp32"}``; constexpr arguments
    may be omitted (they are filled in as "constexpr").  constexprs:
    {arg_name: value}.  Returns an :class:`AOTInfo`."""
    import triton
    from triton.backends.compiler import GPUTarget

    if _is_interpreted(kernel):
        raise RuntimeError(
            "compile_for_h100: kernel is a Triton *interpreter* function (TRITON_INTERPRET=1 was set "
            "before importing triton); run the AOT compile in a process without TRITON_INTERPRET, "
            "e.g. `python -m nncompile.backends.triton.aot`")
    constexprs = dict(constexprs or {})
    sig = {}
    for arg in kernel.arg_names:
        if arg in constexprs:
            sig[arg] = "constexpr"
        elif arg in signature:
            sig[arg] = signature[arg]
        else:
            raise ValueError(f"compile_for_h100: no type given for argument {arg!r}")
    src = triton.compiler.ASTSource(fn=kernel, signature=sig, constexprs=constexprs)
    target = GPUTarget("cuda", 90, 32)
    ck = triton.compile(src, target=target, options={"num_warps": num_warps, "num_stages": num_stages})
    md = ck.metadata
    asm = ck.asm
    ptx = asm.get("ptx")
    n_regs = None
    if ptx:
        # ptxas register count is only known after loading; report the max .reg
        # declared in the PTX as a rough proxy is not meaningful -> leave None.
        pass
    return AOTInfo(
        name=name or kernel.__name__,
        shared=int(getattr(md, "shared", 0) or 0),
        num_warps=int(md.num_warps),
        num_stages=int(getattr(md, "num_stages", num_stages)),
        has_ptx=bool(ptx),
        has_cubin=bool(asm.get("cubin")),
        n_regs=n_regs,
        ttir_lines=len(str(asm.get("ttir", "")).splitlines()),
    )


def check_shared_memory(info: AOTInfo | dict, limit: int = H100_MAX_SMEM) -> bool:
    """True if the kernel's shared memory fits in ``limit`` bytes (H100: 227 KB)."""
    shared = info["shared"] if isinstance(info, dict) else info.shared
    return int(shared) <= int(limit)


def compile_all(specs=None) -> list[dict]:
    """AOT-compile every spec (default: kernels.aot_specs()); returns dicts with
    the AOTInfo fields plus ``smem_ok`` and ``error`` (None on success)."""
    if specs is None:
        from nncompile.backends.triton.kernels import aot_specs
        specs = aot_specs()
    out = []
    for s in specs:
        try:
            info = compile_for_h100(s["kernel"], s["signature"], s.get("constexprs"),
                                    num_warps=s.get("num_warps", 4), num_stages=s.get("num_stages", 3),
                                    name=s["name"])
            d = info.as_dict()
            d["smem_ok"] = check_shared_memory(info)
            d["error"] = None
        except Exception as e:  # report, don't stop: one bad config shouldn't hide the rest
            d = dict(name=s["name"], error=f"{type(e).__name__}: {e}"[:2000], smem_ok=False)
        out.append(d)
    return out


def main(argv=None) -> int:
    res = compile_all()
    json.dump(res, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0 if all(r["error"] is None and r["smem_ok"] for r in res) else 1


if __name__ == "__main__":
    sys.exit(main())
