"""`nncompile run model.nn --workers N`: N local worker processes over gloo.

The launcher starts `python -m nncompile run ... --workers N` N times with torchrun's
variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
MASTER_PORT), so a worker is the same whether this launcher or torchrun
started it (runtime/distributed.py), and watches them:

- a worker that exits with an error or is killed ends the run: the others
  are given `GRACE_S` to stop by themselves (their next collective fails at
  once when a peer's connection closes) and are then killed; the launcher
  names the worker that failed first and shows its last messages;
- Ctrl-C, SIGTERM or SIGHUP on the launcher is passed to rank 0 alone, which
  saves its checkpoint and stops as a one-process run does; the other
  workers then stop when their next collective fails (or are killed after
  the grace). The workers run in their own session, so a terminal's Ctrl-C
  reaches the launcher only;
- rank 0 prints as a one-process run does; the other workers' stderr goes to
  a temporary file that is shown only when that worker failed first;
- MASTER_PORT, when set, is used (a port in use is an error before any worker
  starts); otherwise a free port is picked, and picked again if rank 0 finds
  it taken by the time it binds.

Each worker gets OMP_NUM_THREADS (and OPENBLAS_NUM_THREADS, MKL_NUM_THREADS)
= the cores divided by N unless the caller set them (docs/distributed.md).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Optional, Sequence

from .distributed import PEER_LOST, PORT_IN_USE, DistributedError, need_torch, threads_per_worker
from .signals import handled

GRACE_S = 10.0          # how long the other workers may take to stop once one has failed
STOP_GRACE_S = 120.0    # how long rank 0 may take to save its checkpoint after Ctrl-C
POLL_S = 0.05
PORT_TRIES = 3


def free_port(addr: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def check_port(addr: str, port: int) -> None:
    """Refuse a MASTER_PORT that another process already listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((addr, port))
        except OSError as e:
            raise DistributedError(f"MASTER_PORT {port} is in use on {addr} ({e.strerror})",
                                   hint="unset MASTER_PORT to let --workers pick a free port, or choose "
                                        "another") from None


def check_workers(workers: int, in_worker: bool) -> None:
    """Refuse --workers 0, and under torchrun a --workers other than its WORLD_SIZE."""
    if workers < 1:
        raise DistributedError(f"--workers {workers}: expected 1 or more worker processes")
    world = os.environ.get("WORLD_SIZE", "")
    if in_worker and world.isdigit() and int(world) != workers:
        raise DistributedError(f"--workers {workers}, but this worker is one of WORLD_SIZE={world} "
                               "(started by torchrun?)", hint="leave --workers out under torchrun")


def worker_env(rank: int, workers: int, addr: str, port: int) -> dict:
    """The environment of local worker `rank`: torchrun's variables and the thread counts."""
    env = dict(os.environ)
    threads = str(threads_per_worker(workers))
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(k, env.get("OMP_NUM_THREADS", threads))
    env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(workers), LOCAL_WORLD_SIZE=str(workers),
               MASTER_ADDR=addr, MASTER_PORT=str(port))
    return env


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _tail(path: Optional[str], lines: int = 20) -> str:
    if path is None:
        return ""
    try:
        with open(path, errors="replace") as f:
            text = f.read().strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _forward_signals(state: dict):
    """Note Ctrl-C / SIGTERM / SIGHUP instead of dying of them: the watch loop passes them to rank 0."""
    return handled(("SIGINT", "SIGTERM", "SIGHUP"), lambda signum, frame: state.setdefault("signal", signum),
                   only_default=False)


def launch(argv: Sequence[str], workers: int) -> int:
    """Run `nncompile <argv>` as `workers` local workers; the run's exit status."""
    need_torch()   # here, once, rather than in every worker
    addr = os.environ.get("MASTER_ADDR", "127.0.0.1")
    fixed = os.environ.get("MASTER_PORT")
    if fixed is not None:
        if not fixed.isdigit():
            raise DistributedError(f"MASTER_PORT={fixed!r} is not a port number")
        check_port(addr, int(fixed))
    for _ in range(PORT_TRIES):
        code = _run_once(argv, workers, addr, int(fixed) if fixed is not None else free_port(addr))
        if code != PORT_IN_USE or fixed is not None:
            return code
    return code


def _run_once(argv: Sequence[str], workers: int, addr: str, port: int) -> int:
    cmd = [sys.executable, "-m", "nncompile", *argv]   # --workers included: the command a resume repeats
    state: dict = {}
    with tempfile.TemporaryDirectory(prefix="nncompile-workers-") as tmp, _forward_signals(state):
        procs, errs = [], []
        for r in range(workers):
            err_path = None if r == 0 else os.path.join(tmp, f"rank{r}.err")
            err = None if err_path is None else open(err_path, "w")
            errs.append(err_path)
            try:
                procs.append(subprocess.Popen(cmd, env=worker_env(r, workers, addr, port), stderr=err,
                                              stdout=None if r == 0 else subprocess.DEVNULL,
                                              start_new_session=True))
            finally:
                if err is not None:
                    err.close()
        return _watch(procs, errs, state)


def _watch(procs: list, errs: list, state: dict) -> int:
    first: Optional[int] = None        # the rank that failed first
    deadline: Optional[float] = None   # when the workers still running are killed
    sent = False
    while True:
        codes = [p.poll() for p in procs]
        if "signal" in state and not sent:
            sent = True
            if codes[0] is None:
                procs[0].send_signal(state["signal"])
            deadline = time.monotonic() + STOP_GRACE_S
        for r, c in enumerate(codes):
            if c not in (None, 0) and first is None and "signal" not in state and c != PEER_LOST:
                first = r
        if first is None and "signal" not in state and any(c == PEER_LOST for c in codes):
            first = next(r for r, c in enumerate(codes) if c == PEER_LOST)
        if (first is not None or codes[0] is not None) and deadline is None:
            deadline = time.monotonic() + GRACE_S    # (rank 0 ends last: it writes the run folder)
        if all(c is not None for c in codes):
            break
        if deadline is not None and time.monotonic() > deadline:
            stalled = [r for r, p in enumerate(procs) if p.poll() is None]
            for r in stalled:
                procs[r].kill()
            for p in procs:
                p.wait()
            if first is None and "signal" not in state:
                print(f"error: worker rank(s) {', '.join(map(str, stalled))} did not stop within {GRACE_S:g} s "
                      "of rank 0; the launcher killed them", file=sys.stderr)
                return 1
            codes = [p.returncode for p in procs]
            break
        time.sleep(POLL_S)
    if "signal" in state:
        return codes[0] if codes[0] is not None and codes[0] > 0 else 128 + state["signal"]
    if first is None:
        return 0
    if len(set(codes)) == 1 and codes[0] > 0 and codes[0] != PEER_LOST:
        return codes[0]    # every worker stopped the same way (a data error, a NaN): rank 0 said why
    code = codes[first]
    if code == PORT_IN_USE or (first == 0 and code > 0):
        return code       # rank 0's own messages are on the terminal already
    tail = _tail(errs[first])
    print(f"error: worker rank {first} {_how(code)}; the run stopped (the other workers were stopped too)"
          + (f"\nworker rank {first} said:\n{tail}" if tail else ""), file=sys.stderr)
    return code if code > 0 else 1


def fit_workers(program, workers: int, *, epochs=None, seed=None, quiet=False, verbose=None, record=None,
                resume=None, checkpoint_every=0, on_nan="stop", curves="svg", **refused):
    """`Program.fit(workers=N)`: the run `nncompile run FILE --workers N` makes, from
    Python. The workers are processes that compile the program's file again, so
    what cannot cross to them is refused (data=, validation_data=, callbacks,
    on_epoch, progress: give the data in the file; write callbacks' work as a
    reader of the run folder). Returns a History with the per-epoch values, the
    run folder (`record`; a temporary one, removed, when record is None) and a
    trainer holding the final weights."""
    import shutil
    from ..errors import TrainingError
    from .checkpoint import load_checkpoint
    from .loop import History, TrainingInterrupted
    from .weights import load_weights
    check_workers(workers, False)
    given = sorted(k for k, v in refused.items() if v not in (None, (), []))
    if given:
        raise TrainingError(f"fit(workers={workers}) cannot pass {', '.join(given)} to worker processes",
                            hint="name the data in the .nn file's train block; callbacks run in one process only")
    path = program.ast.filename
    if not path or not os.path.isfile(path):
        raise TrainingError(f"fit(workers={workers}) needs the program as a .nn file (the workers compile it "
                            f"again), not {path or 'source text'}")
    argv = ["run", path, "--workers", str(workers), "--backend", program.backend, "--on-nan", on_nan,
            "--checkpoint-every", str(checkpoint_every), "--curves", curves]
    argv += [a for k, v in (("--epochs", epochs), ("--seed", seed), ("--resume", resume)) if v is not None
             for a in (k, os.fspath(v))]
    argv += ["--quiet"] if quiet or verbose == 0 else ["--verbose"] if verbose == 2 else []
    if program.cpu_kernels:
        argv += ["--cpu-kernels", program.cpu_kernels]
    tmp = None
    if record is None or record is False:
        if resume is not None:
            raise TrainingError("fit(workers=N, resume=...) continues in the run's own folder: leave record out "
                                "or pass record=True")
        tmp = tempfile.mkdtemp(prefix="nncompile-fit-")
        argv += ["--out", os.path.join(tmp, "run")]
    elif record is not True:
        argv += ["--out", os.fspath(record)]
    try:
        before = set(os.listdir("runs")) if record is True and resume is None and os.path.isdir("runs") else set()
        code = launch(argv, workers)
        folder = (os.path.join(tmp, "run") if tmp else os.fspath(resume) if resume is not None
                  else os.fspath(record) if record is not True else _new_run(before))
        ckpt = os.path.join(folder, "checkpoint.npz")
        state = load_checkpoint(ckpt) if code in (0, 1) or os.path.exists(ckpt) else None
        hist = History(history={k: list(v) for k, v in (state.history if state else {}).items()},
                       epochs_run=len(next(iter(state.history.values()), [])) if state else 0)
        if code - 128 in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):   # Ctrl-C: rank 0 saved its state
            raise TrainingInterrupted(state.epoch if state else 0, None if tmp or state is None else ckpt, hist,
                                      code - 128, state.batch if state else 0)
        if code not in (0, 1):
            raise TrainingError(f"the {workers}-worker run failed (exit status {code}); its workers' messages "
                                "are above")
        hist.trainer = program.trainer(seed=state.seed, params=load_weights(folder, program))
        hist.checkpoint = None if tmp else os.path.join(folder, "checkpoint.npz")
        hist.record = None if tmp else folder
        return hist
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _new_run(before: set) -> str:
    """The runs/ folder a run with the default record=True created."""
    made = sorted(set(os.listdir("runs")) - before, key=lambda n: os.path.getmtime(os.path.join("runs", n)))
    if not made:
        from ..errors import TrainingError
        raise TrainingError("the workers' run folder is not under runs/")
    return os.path.join("runs", made[-1])
