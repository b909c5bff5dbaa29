"""`nncompile` command line: run | check | summary | dump.

Every mistake in the user's input is printed as `file:line:col: error: ...`
with the source line and a caret, and exits with status 2; no traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from .errors import NNError

STAGES = ("ast", "ir", "train", "grads", "evaluate", "predict", "code")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nncompile", description="Compile and train .nn models.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def add(name, help):
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("file", help="the .nn program")
        sp.add_argument("--backend", choices=("numpy", "triton"), default="numpy")
        return sp

    r = add("run", "compile and train the model as the file says")
    r.add_argument("--epochs", type=int, help="override the number of epochs")
    r.add_argument("--seed", type=int, help="override the seed")
    r.add_argument("--quiet", action="store_true", help="print only the final summary line")
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
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except NNError as e:
        print(str(e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a compiler bug: say so plainly, traceback only on request
        if os.environ.get("NNCOMPILE_DEBUG"):
            raise
        print(f"internal compiler error: {type(e).__name__}: {e}\n"
              f"(this is a bug in nncompile; set NNCOMPILE_DEBUG=1 for a traceback)", file=sys.stderr)
        return 3


def _load(args):
    from .compiler import Program
    from .frontend.parser import parse_file
    prog = parse_file(args.file)
    return prog, Program(prog, args.backend, optimize=not getattr(args, "no_opt", False))


def _dispatch(args) -> int:
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
        print(f"{prog.filename}: ok ({len(prog.model.layers)} layers, "
              f"{sum(1 for _ in program.param_specs())} parameter tensors, {n} IR nodes)")
        return 0
    if args.cmd == "summary":
        print(program.summary())
        return 0
    if args.cmd == "dump":
        return _dump(args, program)
    if args.cmd == "run":
        hist = program.fit(epochs=args.epochs, seed=args.seed, quiet=args.quiet)
        if args.quiet:
            print(hist.message)
        return 1 if hist.stop_reason and hist.stop_reason != "early stopping" else 0
    return 2


def _dump(args, program) -> int:
    stage_graph = {"ir": "predict", "train": "train_step", "grads": "loss_and_grads",
                   "evaluate": "evaluate", "predict": "predict", "code": "train_step"}
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
        return 0
    g = program.graphs.unoptimized[name] if args.no_opt else getattr(program.graphs, name)
    if g is None:
        from .errors import CompileError
        raise CompileError(f"the program has no '{name}' graph (it has no train block)")
    if args.stage == "code":
        if program.backend == "numpy":
            from .backends.numpy.codegen import generate
            print(generate(g).source)
        else:
            print(program.compiled(name).source)
        return 0
    print(g)
    return 0


if __name__ == "__main__":
    sys.exit(main())
