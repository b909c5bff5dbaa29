"""The ONNX commands: `nncompile export` and `nncompile import` (docs/onnx.md)."""
from __future__ import annotations

import sys


def export_command(args, program) -> int:
    from ..runtime.weights import load_weights, resolve
    from .export import export_program, write_model
    weights = load_weights(args.weights, program)
    model = export_program(program, weights)
    write_model(model, args.output, sources=[args.file, resolve(args.weights)], force=args.force)
    n = sum(1 for nd in model.graph.node if nd.op_type != "Identity")
    print(f"wrote {args.output} (ONNX opset {model.opset_import[0].version}, {n} nodes, "
          f"weights from {resolve(args.weights)})", file=sys.stderr)
    return 0
