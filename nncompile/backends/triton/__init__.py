"""The Triton backend: `compile_graph(graph)` -> TritonProgram (see codegen.py).

Imported lazily so that `import nncompile` works without torch/triton."""


def compile_graph(graph):
    from .codegen import compile_graph as _compile
    return _compile(graph)
