"""The ONNX commands: `nncompile export` and `nncompile import` (docs/onnx.md)."""
from __future__ import annotations

import sys

import numpy as np


def export_command(args, program) -> int:
    from ..runtime.weights import load_weights, resolve
    from .exporter import export_program, write_model
    weights = load_weights(args.weights, program)
    model = export_program(program, weights)
    write_model(model, args.output, sources=[args.file, resolve(args.weights)], force=args.force)
    n = sum(1 for nd in model.graph.node if nd.op_type != "Identity")
    print(f"wrote {args.output} (ONNX opset {model.opset_import[0].version}, {n} nodes, "
          f"weights from {resolve(args.weights)})", file=sys.stderr)
    return 0


def import_command(args) -> int:
    import os

    from ..errors import NNError
    from .layers import HEADER, check_program, to_program
    from .loader import read_model
    out = args.output
    weights_out = args.weights_out or os.path.splitext(out)[0] + ".npz"
    for flag, path in (("-o", out), ("--weights-out", weights_out)):
        _check_target(flag, path, args.file, args.force, HEADER)
    if os.path.abspath(out) == os.path.abspath(weights_out):
        raise NNError(f"-o and --weights-out name the same file {out}")
    model, source = read_model(args.file)
    rel = os.path.relpath(os.path.abspath(weights_out), os.path.dirname(os.path.abspath(out)))
    text, weights = to_program(model, source, rel)
    program, diff = check_program(text, weights, model)
    from ..runtime.weights import save_weights, write_text_atomic
    save_weights(weights_out, program, weights, imported_from=os.path.basename(source))
    write_text_atomic(out, text)
    n = sum(int(np.prod(v.shape)) for v in weights.values())
    print(f"wrote {out} ({len(program.ast.model.layers)} layers) and {weights_out} ({len(weights)} tensors, "
          f"{n:,} values); its predictions agree with the ONNX graph's to {diff:.1e}", file=sys.stderr)
    return 0


def _check_target(flag: str, path: str, source: str, force: bool, header: str) -> None:
    """Refuse a folder, a missing folder, the input itself, and (unless --force) a
    file that `nncompile import` did not write."""
    import os

    from ..errors import NNError
    if os.path.isdir(path):
        raise NNError(f"{flag} {path}: is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise NNError(f"{flag} {path}: the folder {folder} does not exist")
    if not os.path.exists(path):
        return
    if os.path.exists(source) and os.path.samefile(source, path):
        raise NNError(f"{flag} {path}: that is the ONNX model itself; it is never written over")
    if not force and not _ours(path, header):
        raise NNError(f"{flag} {path}: the file exists and was not written by nncompile import; it is not "
                      "written over", hint="choose another name, or pass --force to replace it")


def _ours(path: str, header: str) -> bool:
    if path.endswith(".nn"):
        try:
            with open(path, encoding="utf-8") as f:
                return f.readline().rstrip("\n") == header
        except (OSError, UnicodeDecodeError):
            return False
    try:
        from ..runtime.weights import load_arrays
        return "imported_from" in load_arrays(path)[1]
    except Exception:  # noqa: BLE001 - unreadable: not ours
        return False
