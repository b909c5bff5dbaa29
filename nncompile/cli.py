"""`nncompile` command line: run | check | summary | dump | predict | evaluate | export | import.

Every mistake in the user's input is printed as `file:line:col: error: ...`
with the source line and a caret, and exits with status 2; no traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
from typing import Optional, Sequence

from .errors import NNError

STAGES = ("ast", "ir", "train", "grads", "evaluate", "predict", "code", "kernels")


def _parser() -> argparse.ArgumentParser:
    from . import __version__
    p = argparse.ArgumentParser(prog="nncompile", description="Compile and train .nn models.")
    p.add_argument("--version", action="version", version=f"nncompile {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def add(name, help):
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("file", help="the .nn program")
        sp.add_argument("--backend", choices=("numpy", "triton"), default="numpy",
                        help="numpy: the CPU (default); triton: Triton kernels on a CUDA GPU "
                             "(pip install 'nncompile[triton]')")
        sp.add_argument("--cpu-kernels", choices=("auto", "native", "numpy"), default=None,
                        help="the NumPy backend's fused loops: native (C, compiled once and cached), numpy "
                             "(NumPy alone), auto (native when a C compiler is found; the default, or "
                             "$NNCOMPILE_CPU_KERNELS)")
        sp.add_argument("--precision", metavar="P",
                        help="override the train block's precision: f32, mixed_bf16 or mixed_f16 (Keras's "
                             "float32, mixed_bfloat16, mixed_float16 too); see docs/mixed-precision.md")
        return sp

    r = add("run", "compile and train the model as the file says")
    r.add_argument("--epochs", type=int, help="override the number of epochs")
    r.add_argument("--seed", type=int, help="override the seed")
    loud = r.add_mutually_exclusive_group()
    loud.add_argument("--quiet", action="store_true", help="print only the final summary line")
    loud.add_argument("--verbose", action="store_true",
                      help="print the chapter's 'Epoch: N Loss: X' line for every epoch (default: every "
                           "log_every epochs, with a live bar on a terminal)")
    r.add_argument("--out", metavar="DIR", help="the run folder to write (default runs/<model>-<YYYYmmdd-HHMMSS>)")
    r.add_argument("--no-record", action="store_true", help="write no run folder (no weights, no checkpoint)")
    r.add_argument("--checkpoint-every", default="0", metavar="N|Nsteps",
                   help="write a checkpoint every N epochs (and on each best epoch with early stopping), or "
                        "with Nsteps every N optimizer steps, inside epochs too")
    r.add_argument("--resume", metavar="RUN_DIR", help="continue the run saved in RUN_DIR exactly")
    r.add_argument("--on-nan", choices=("stop", "rollback"), default="stop",
                   help="on a NaN/Inf loss: stop (default), or restore the last good epoch and stop")
    r.add_argument("--curves", choices=("svg", "png", "none"), default="svg",
                   help="the run folder's curve picture: curves.svg (default, needs nothing), curves.png "
                        "(needs matplotlib), or none")
    r.add_argument("--workers", type=int, default=None, metavar="N",
                   help="train data-parallel on N local worker processes (torch.distributed, gloo); "
                        "docs/distributed.md")
    r.add_argument("--check-backend", action="store_true",
                   help="run a few steps on the NumPy and Triton backends and compare them (no training)")
    gr = add("graph", "draw the layer graph (or, with --kernels, the fused kernel graph) as SVG or HTML")
    gr.add_argument("-o", "--output", required=True, metavar="OUT",
                    help="out.svg, out.html, or out.png / out.pdf (with matplotlib or cairosvg installed)")
    gr.add_argument("--kernels", action="store_true", help="the IR of the training step, by fusion group")
    add("check", "parse and check the program, build and verify its graphs")
    add("summary", "print a Keras-style table of layers, output shapes and parameters")
    d = add("dump", "print the program at a stage of the pipeline")
    d.add_argument("--stage", choices=STAGES, default="ir",
                   help="ast | ir (the forward graph) | train (the whole training step) | grads | "
                        "evaluate | predict | code (the generated module)")
    d.add_argument("--graph", choices=("train_step", "loss_and_grads", "evaluate", "predict"),
                   help="with --stage code or --after: which graph (default train_step)")
    d.add_argument("--after", metavar="PASS",
                   help="print the graph after this pass ('all': after every pass)")
    d.add_argument("--no-opt", action="store_true", help="show the graph before optimisation")
    pr = add("predict", "predict with trained weights")
    pr.add_argument("--weights", required=True, metavar="W", help="a weights_*.npz file or a run folder")
    pr.add_argument("--input", required=True, metavar="DATA",
                    help="features: a CSV file with a header (feature columns only) or an .npz with x")
    pr.add_argument("--output", metavar="CSV", help="write the predictions here (default: stdout)")
    ev = add("evaluate", "loss and metrics of trained weights on a data set")
    ev.add_argument("--weights", required=True, metavar="W", help="a weights_*.npz file or a run folder")
    ev.add_argument("--data", metavar="DATA",
                    help="a .csv (header; target columns as in the train block, or --target) or .npz (x, y); "
                         "default: the train block's data")
    ev.add_argument("--target", metavar="COLS", help="with a CSV: the target column(s), comma-separated")
    ex = add("export", "write the inference graph with trained weights as an ONNX model (docs/onnx.md)")
    ex.add_argument("--weights", required=True, metavar="W", help="a weights_*.npz file or a run folder")
    ex.add_argument("-o", "--output", required=True, metavar="OUT", help="the .onnx file to write")
    ex.add_argument("--force", action="store_true",
                    help="replace OUT even if it is not an ONNX model that nncompile wrote")
    im = sub.add_parser("import", help="write an ONNX model that is a layer graph as a .nn program and weights",
                        description="write an ONNX model that is a layer graph as a .nn program and weights "
                                    "(docs/onnx.md)")
    im.add_argument("file", help="the .onnx model")
    im.add_argument("-o", "--output", required=True, metavar="OUT.nn", help="the .nn program to write")
    im.add_argument("--weights-out", metavar="W.npz", help="the weights file (default: OUT.npz beside OUT.nn)")
    im.add_argument("--force", action="store_true", help="replace files that nncompile import did not write")
    return p


class StopSignal(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, as Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _stop_signals():
    """SIGTERM (a scheduler's preemption) and SIGHUP (a closed terminal) stop a
    command as Ctrl-C does: a run saves its checkpoint. A signal the process
    ignores (nohup) stays ignored; after the first, further ones are ignored,
    so that they cannot cut the checkpoint's write short."""
    from .runtime.signals import handled

    def handler(signum, frame):
        for s in installed:
            signal.signal(s, signal.SIG_IGN)
        raise StopSignal(signum)
    with handled(("SIGTERM", "SIGHUP"), handler) as installed:
        yield


def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):   # the terminal is gone (SIGHUP)
        pass


def _option_is(token: str, option: str, others: Sequence[str]) -> bool:
    """Whether a command-line token is `option` (or an unambiguous abbreviation of it, as argparse allows)."""
    name = token.split("=", 1)[0]
    if not name.startswith("--") or len(name) < 3 or not option.startswith(name):
        return False
    return name == option or not any(o.startswith(name) for o in others if o != option)


def resume_command(argv: Sequence[str], run_dir: str) -> str:
    """The command that continues a run: the original arguments with `--resume RUN_DIR`
    instead of any --out / --resume."""
    try:
        run = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]
        opts = [o for a in run._actions for o in a.option_strings]
    except (StopIteration, KeyError, AttributeError):
        opts = ["--out", "--resume", "--on-nan"]
    out, it = [], iter(argv)
    for a in it:
        if _option_is(a, "--out", opts) or _option_is(a, "--resume", opts):
            if "=" not in a:
                next(it, None)
            continue
        out.append(a)
    return shlex.join(["nncompile", *out, "--resume", run_dir])


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    try:
        with _stop_signals():
            return _dispatch(args)
    except NNError as e:
        print(str(e), file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        from .runtime.loop import TrainingInterrupted
        signum = int(getattr(e, "signum", signal.SIGINT))
        how = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        if isinstance(e, TrainingInterrupted):
            if e.checkpoint:
                if e.batch:
                    at = f"in epoch {e.epoch}; checkpoint (after batch {e.batch - 1} of epoch {e.epoch})"
                elif e.epoch:
                    at = f"after epoch {e.epoch - 1}; checkpoint"
                else:
                    at = "before the first epoch ended; checkpoint (the initial state)"
                _say(f"{how} {at} saved to {e.checkpoint}\n"
                     f"resume with: {resume_command(args.argv, os.path.dirname(e.checkpoint) or '.')}")
            else:
                _say(f"{how} after {e.epoch} epoch(s); nothing saved (--no-record)")
        else:
            _say(how)
        return 128 + signum
    except BrokenPipeError:
        return 0
    except MemoryError as e:
        print(f"error: out of memory ({e}); the model or its data is too large for this machine",
              file=sys.stderr)
        return 2
    except Exception as e:  # a compiler bug: say so plainly, traceback only on request
        if os.environ.get("NNCOMPILE_DEBUG"):
            raise
        print(f"internal compiler error: {type(e).__name__}: {e}\n"
              f"(this is a bug in nncompile; set NNCOMPILE_DEBUG=1 for a traceback)", file=sys.stderr)
        return 3


def _load(args):
    from .compiler import Program
    from .frontend.parser import parse_file, with_overrides
    prog = with_overrides(parse_file(args.file), precision=args.precision)    # it changes the graphs
    if args.cmd == "run":    # --epochs, --seed: checked as if the file said them
        with_overrides(prog, epochs=args.epochs, seed=args.seed)
    worker = False
    if args.cmd == "run" and not args.check_backend:
        from .runtime.distributed import in_worker
        worker = in_worker()    # under torchrun, or started by --workers N
    return prog, Program(prog, args.backend, optimize=not getattr(args, "no_opt", False),
                         cpu_kernels=args.cpu_kernels, data_parallel=worker)


def _dispatch(args) -> int:
    if args.cmd == "import":
        from .onnx.cli import import_command
        return import_command(args)
    if args.cmd == "dump" and args.stage == "ast":
        from .frontend.parser import parse_file
        from pprint import pformat
        print(pformat(parse_file(args.file), width=100, sort_dicts=False))
        return 0
    prog, program = _load(args)
    if args.cmd == "check":
        from .ir.verify import verify
        n = 0
        for name in ("predict", "evaluate", "loss_and_grads", "train_step"):
            g = getattr(program.graphs, name)
            if g is not None:
                verify(g)
                n += len(g)
        summary = (f"{len(prog.model.layers)} layers, {sum(1 for _ in program.param_specs())} parameter tensors, "
                   f"{n} IR nodes")
        if program.backend == "triton":
            from .backends.triton import cannot_run
            why = cannot_run()
            if why is not None:    # the graphs are fine, but "ok" would promise a run that cannot happen
                print(f"{prog.filename}: the program checks ({summary}), but {why}", file=sys.stderr)
                return 2
        print(f"{prog.filename}: ok ({summary})")
        return 0
    if args.cmd == "summary":
        print(program.summary())
        return 0
    if args.cmd == "dump":
        return _dump(args, program)
    if args.cmd == "run" and args.check_backend:
        from .crosscheck import cross_check
        res = cross_check(args.file, seed=args.seed or 0)
        print(res.text())
        return 0 if res.ok else 1
    if args.cmd == "run" and args.workers is not None:
        from .runtime.launcher import check_workers, launch
        check_workers(args.workers, program.data_parallel)
        if args.workers > 1 and not program.data_parallel:
            return launch(args.argv, args.workers)
    if args.cmd == "run":
        return _run(args, program)
    if args.cmd == "graph":
        from .graphviz import write_picture
        fmt = write_picture(program, args.output, "kernels" if args.kernels else "layers")
        print(f"wrote {args.output} ({fmt.upper()})")
        return 0
    if args.cmd == "predict":
        return _predict(args, program)
    if args.cmd == "evaluate":
        return _evaluate(args, program)
    if args.cmd == "export":
        from .onnx.cli import export_command
        return export_command(args, program)
    return 2


def _run(args, program) -> int:
    from .runtime.loop import fit
    command = ["nncompile", *getattr(args, "argv", sys.argv[1:])]
    options = dict(epochs=args.epochs, seed=args.seed, quiet=args.quiet, verbose=2 if args.verbose else None,
                   record=None if args.no_record else (args.out or True), resume=args.resume,
                   checkpoint_every=args.checkpoint_every, on_nan=args.on_nan, command=command,
                   curves=args.curves)
    if program.data_parallel:
        from .runtime.distributed import run_worker
        return run_worker(program, options, lambda hist: _report(args, hist))
    return _report(args, fit(program, **options))


def _report(args, hist) -> int:
    record = hist.record
    if args.quiet:
        print(hist.message)
    if hist.report:
        print(hist.report, file=sys.stderr)
    if record is not None:
        print(f"run saved to {record.path}/ ({', '.join(record.created_files())})", file=sys.stderr)
        if record.stale_lock:
            hist.notes.append(f"the run before this one in {record.path} (pid {record.stale_lock}) ended without "
                              "releasing the folder (it was killed?)")
        for note in hist.notes:
            print(f"note: {note}", file=sys.stderr)
    return 1 if hist.stop_reason and hist.stop_reason != "early stopping" else 0


def _read_features(path: str, program):
    """x from a features-only CSV (with a header) or an .npz holding x."""
    import numpy as np

    from .errors import DataError
    from .frontend.checks import data_file_spec
    from .runtime.data import fit_to_input, load_data, select_columns, training_features
    shape = tuple(program.ast.model.input.shape)
    n_feat = int(np.prod(shape))
    spec = data_file_spec(path, labelled=False)
    ds = load_data(spec, label_kind="float")
    t = program.ast.train
    names = training_features(t.data) if t is not None else None
    if names is not None:   # by name, in the training order (a header-less file: by position)
        ds = select_columns(ds, names, ignore=t.data.args["target"])
    x = ds.x
    have = int(np.prod(x.shape[1:]))
    if have != n_feat:
        raise DataError(f"{path}: {have} feature value(s) per row, but the model's input "
                        f"'{program.ast.model.input.name}' takes {n_feat} {list(shape)}",
                        hint="give only the feature columns (no target column)" if spec.kind == "csv" else None)
    return np.ascontiguousarray(fit_to_input(x, shape, path), np.float32)


def _writable(path: str, flag: str, sources=()) -> None:
    """Refuse an output path that names a folder, lies in a missing folder, or is
    one of the command's own input files."""
    from .errors import NNError
    if os.path.isdir(path):
        raise NNError(f"{flag} {path}: is a folder; give a file name, e.g. {os.path.join(path, 'predictions.csv')}")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise NNError(f"{flag} {path}: the folder {parent} does not exist")
    if any(os.path.exists(s) and os.path.samefile(s, path) for s in sources if s and os.path.exists(path)):
        raise NNError(f"{flag} {path}: is one of this command's input files; choose another name")


def _predict(args, program) -> int:
    import csv
    import io

    import numpy as np

    from .frontend.ast import final_activation
    from .runtime.weights import class_names, load_weights
    weights = load_weights(args.weights, program)
    labels = class_names(args.weights)     # text labels: the names go back in the class column
    x = _read_features(args.input, program)
    y = np.asarray(program.predict(weights, x))
    y2 = y.reshape(len(y), -1)
    softmax = final_activation(program.ast.model) == "softmax"
    names = None
    t = program.ast.train
    if t is not None and t.data is not None and t.data.kind == "csv" and not softmax:
        if len(t.data.args["target"]) == y2.shape[1]:
            names = t.data.args["target"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if softmax:
        w.writerow(["class"] + ([f"p_{n}" for n in labels] if labels and len(labels) == y2.shape[1]
                                else [f"p{i}" for i in range(y2.shape[1])]))
        for row in y2:
            k = int(np.argmax(row))
            w.writerow([labels[k] if labels and k < len(labels) else k] + [f"{v:.6g}" for v in row])
    else:
        w.writerow(names or [f"y{i}" for i in range(y2.shape[1])])
        for row in y2:
            w.writerow([f"{v:.7g}" for v in row])
    if args.output:
        from .runtime.weights import write_text_atomic
        _writable(args.output, "--output", sources=(args.file, args.input))
        write_text_atomic(args.output, buf.getvalue())
        print(f"wrote {len(y2)} predictions to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(buf.getvalue())
    return 0


def _evaluate(args, program) -> int:
    from .errors import DataError, TrainingError
    from .runtime import data as datamod
    from .runtime.loop import evaluate, load_datasets
    from .runtime.weights import load_weights, resolve
    t = program.ast.train
    if t is None:
        raise TrainingError("evaluate needs the train block's loss and metrics; the program has no train block",
                            program.ast.model.loc, source=program.ast.source)
    weights = load_weights(args.weights, program)
    sparse = t.loss.name == "sparse_categorical_crossentropy"
    kind = "class" if sparse else "float"
    shape = tuple(program.ast.model.input.shape)
    if args.data is None:
        if args.target:
            raise DataError("--target needs --data")
        train, val = load_datasets(program)
        sets = [("train", train)] + ([("validation", val)] if val is not None else [])
    else:
        from .frontend.checks import data_file_spec
        target = features = None
        if not args.data.endswith(".npz"):
            if args.target:
                target = [c.strip() for c in args.target.split(",") if c.strip()]
            elif t.data is not None and t.data.kind == "csv":
                target = t.data.args["target"]
            else:
                raise DataError(f"{args.data}: which column(s) are the targets? give --target COLS")
            if t.data is not None and t.data.kind == "csv":    # the training columns, by name
                features = datamod.training_features(t.data)
                if features is not None and not datamod.csv_columns(args.data):
                    features = None
        spec = data_file_spec(args.data, target=target, features=features)
        ds = datamod.load_data(spec, feature_shape=shape, label_kind=kind)
        if sparse:      # text labels numbered as in training
            from .runtime.weights import class_names
            names = class_names(args.weights)
            ds = datamod.with_label_names(ds, tuple(names) if names else None, "the training data")
        sets = [(args.data, ds)]
    print(f"weights: {resolve(args.weights)}")
    for name, ds in sets:
        res = evaluate(program, weights, ds)
        print(f"{name} ({len(ds)} samples): " + " ".join(f"{k}: {v:.6g}" for k, v in res.items()))
    return 0


def _pass_notes(program, pname: str, g) -> None:
    """What a pass decided, beyond the IR: the memory plan's sizes, refused fusions."""
    if pname == "plan_memory" and "memory_plan" in g.meta:
        batch = program.ast.train.batch_size if program.ast.train else 32
        r = g.meta["memory_plan"].report(batch)
        print(f"// memory plan at batch {batch}: {r['values']} values in {r['buffers']} buffers, "
              f"{r['bytes_before']:,} bytes -> {r['bytes_after']:,} bytes; {r['in_place']} computed in place")
    if pname in ("fuse_softmax_xent", "flatten_params", "fuse_elementwise"):
        for reason in g.meta.get("fusion_refused", []):
            print(f"// refused: {reason}")


def _dump(args, program) -> int:
    stage_graph = {"ir": "predict", "train": "train_step", "grads": "loss_and_grads",
                   "evaluate": "evaluate", "predict": "predict", "code": "train_step",
                   "kernels": "train_step"}
    name = args.graph or stage_graph[args.stage]
    if args.after:
        from .passes.manager import pass_names, run_passes
        names = pass_names()
        if args.after != "all" and args.after not in names:
            from .errors import CompileError, expected_one_of
            raise CompileError(f"unknown pass '{args.after}'", hint=expected_one_of(args.after, names + ["all"]))
        g = program.graphs.lowered.get(name)
        if g is None:
            from .errors import CompileError
            raise CompileError(f"the program has no '{name}' graph (no train block?)")
        print(f"// IR of {name} after lowering")
        print(g)
        _, log = run_passes(g, verify=True, until=None if args.after == "all" else args.after)
        for pname, g2, dt in log:
            if args.after == "all" or pname == args.after:
                print(f"\n// IR of {name} after pass '{pname}' ({len(g2)} nodes, {dt * 1e3:.2f} ms)")
                print(g2)
                _pass_notes(program, pname, g2)
        return 0
    g = program.graphs.unoptimized[name] if args.no_opt else getattr(program.graphs, name)
    if g is None:
        from .errors import CompileError
        raise CompileError(f"the program has no '{name}' graph (it has no train block)")
    if args.stage in ("code", "kernels"):  # the generated module: Python, or Triton kernels
        if program.backend == "numpy":
            from .backends.numpy.codegen import generate
            prog = generate(g, program.cpu_kernels)
            print(prog.source)
            if prog.c_source:
                print(f"// the native kernels (C) the module calls as _k.*\n{prog.c_source}")
        else:
            print(program.compiled(name).source)
        return 0
    print(g)
    return 0


if __name__ == "__main__":
    sys.exit(main())
