"""The Python API that builds and compiles graphs (docs/api.md).

    import nncompile as nc

    def loss(x, y, w, b):
        return nc.mean(nc.sparse_categorical_crossentropy(y, x @ w + b, from_logits=True))

    step = nc.jit(nc.value_and_grad(loss, argnums=(2, 3)),
                  nc.f32[nc.B, 64], nc.i64[nc.B], nc.f32[64, 10], nc.f32[10])
    value, (gw, gb) = step(x, y, w, b)

Modules: `tensor` (the tracer: Tensor, specs, call sites; imports only `ir`
and `errors`), `functions` (the traced operations), `transforms` (grad,
value_and_grad: the autodiff pass's `gradients`), `optim` (optimizers over
the optimizer pass's update rules), `jit` (the driver: passes and backends),
`tree` (nested arguments).
"""
from . import optim
from .functions import *  # noqa: F401,F403
from .functions import __all__ as _functions
from .jit import CompiledGraph, Jitted, compile_graph, jit, parse_ir, trace
from .tensor import B, DType, Tensor, TensorSpec, f32, f64, i64, spec_of
from .transforms import grad, value_and_grad

__all__ = ["B", "DType", "Tensor", "TensorSpec", "f32", "f64", "i64", "spec_of", "jit", "Jitted",
           "compile_graph", "CompiledGraph", "parse_ir", "trace", "grad", "value_and_grad", "optim",
           *_functions]
