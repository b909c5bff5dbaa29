"""The training loop: epochs, seeded shuffling, batches, validation, metrics,
early stopping, the chapter's "Epoch: N Loss: X" lines and a final summary;
run records, checkpoints and exact resume, and the non-finite-value report.

At the end of every epoch the loop "commits" a snapshot of the whole loop state
(the trainer's arrays, the step counter, the shuffle RNG's state, the history
length, early stopping's state). That snapshot is what a checkpoint holds, what
Ctrl-C saves, what `--on-nan rollback` restores and where the NaN replay starts
from. See docs/runtime.md."""
from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, TextIO

import numpy as np

from ..errors import NNError, TrainingError
from . import data as datamod
from .callbacks import EarlyStopping
from .checkpoint import LoopState, check_compatible, diff_settings, save_checkpoint
from .evaluation import evaluate, load_datasets  # noqa: F401  (the CLI and crosscheck import them from here)
from .nonfinite import NonFiniteReport, all_finite, first_bad, locate_train_step
from .augment import make_augment
from .preflight import preflight
from .progress import make_progress
from .schedules import make_schedule
from .transfer import load_initial_weights


@dataclass
class History:
    """Keras-style: history[metric] is the list of per-epoch values."""

    history: dict[str, list[float]] = field(default_factory=dict)
    epochs_run: int = 0
    stopped_epoch: Optional[int] = None
    best_epoch: Optional[int] = None
    best_value: Optional[float] = None
    restored: bool = False
    message: str = ""
    stop_reason: Optional[str] = None
    trainer: object = None
    seconds: float = 0.0
    nonfinite: Optional[NonFiniteReport] = None   # why a non-finite stop happened
    report: str = ""                               # the rendered non-finite report
    record: object = None                          # the RunRecord, when one was written
    checkpoint: Optional[str] = None               # the last checkpoint written
    resumed_from: Optional[int] = None             # the epoch a resumed run started at
    resume_changes: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    warnings: list = field(default_factory=list)    # pre-flight warnings, as printed

    @property
    def epoch(self) -> list[int]:
        return list(range(self.epochs_run))


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during fit(): the loop state of the last finished epoch was saved
    to `checkpoint` (None when no run record is written)."""

    def __init__(self, epoch: int, checkpoint: Optional[str], history: "History"):
        super().__init__(f"interrupted after {epoch} epoch(s)")
        self.epoch = epoch
        self.checkpoint = checkpoint
        self.history = history


@contextlib.contextmanager
def _source_of(program):
    """Give located errors raised without the source text (by the data layer) the
    program's source, so they print the line and a caret."""
    try:
        yield
    except NNError as e:
        if e.source is None and e.loc is not None and e.loc.file == program.ast.filename:
            e.source = program.ast.source
        raise


def _fmt(v: float) -> str:
    return f"{v:.6g}" if math.isfinite(v) else str(v)


@dataclass
class _Commit:
    """The loop state at an epoch boundary, in memory (device copies)."""

    epoch: int                 # the next epoch to run
    snap: dict                 # Trainer.snapshot()
    rng: dict                  # the shuffle Generator's bit_generator.state
    n_history: int             # epochs recorded in the history
    es: Optional[dict]
    best: Optional[dict]       # the best epoch's snapshot at that point
    schedule: Optional[dict] = None   # the learning-rate schedule's state


def _host(trainer, arrays: dict) -> dict:
    to_host = trainer._step_fn.to_host
    return {k: np.array(to_host(v)) for k, v in arrays.items()}


def fit(program, *, epochs: Optional[int] = None, seed: Optional[int] = None, out: Optional[TextIO] = None,
        quiet: bool = False, data=None, validation_data=None,
        on_epoch: Optional[Callable[[int, dict, object], None]] = None,
        record=None, resume: Optional[LoopState] = None, resume_from: str = "", checkpoint_every: int = 0,
        on_nan: str = "stop", progress=None, settings: Optional[dict] = None) -> History:
    """Train as the file says. `record`: a RunRecord to write files into;
    `resume`: a LoopState (a loaded checkpoint) to continue; `checkpoint_every`:
    write record/checkpoint.npz every N epochs (and on each best epoch);
    `on_nan`: "stop" or "rollback"."""
    t = program.ast.train
    if t is None:
        raise TrainingError("the program has no train block", program.ast.model.loc, source=program.ast.source)
    if on_nan not in ("stop", "rollback"):
        raise ValueError(f"on_nan must be 'stop' or 'rollback', not {on_nan!r}")
    epochs = t.epochs if epochs is None else int(epochs)
    if resume is not None:
        if seed is not None and int(seed) != resume.seed:
            raise TrainingError(f"--seed {seed} differs from the seed of the run being resumed ({resume.seed})",
                                hint="a resumed run keeps its seed; leave --seed out")
        seed = resume.seed
    seed = t.seed if seed is None else int(seed)
    out = out or sys.stdout
    if progress is None:
        progress = make_progress(out, quiet=quiet)
    say = progress.message
    if settings is None and (record is not None or resume is not None):
        from .records import resolved_settings
        settings = resolved_settings(program, epochs=epochs, seed=seed)
    with _source_of(program):  # errors from the data layer get the .nn line and caret
        train, val = load_datasets(program, data, validation_data)
        hist_warnings = [str(w) for w in preflight(program, train, val, epochs=epochs)]
        init = None
        if t.init_from is not None and resume is None:
            init, transfer_report = load_initial_weights(program, t.init_from)
    for w in hist_warnings:
        print(w, file=sys.stderr)
    if init is not None:
        say(transfer_report.text())
    trainer = program.trainer(seed=seed, params=init)
    sched = make_schedule(t.schedule, float(t.optimizer.params["lr"]), epochs)
    augment = make_augment(t.augment, program.ast.model.input.shape)
    es = None
    if t.early_stopping is not None:
        e = t.early_stopping
        if e.monitor.startswith("val_") and val is None:
            raise TrainingError(f"early stopping monitors '{e.monitor}' but there is no validation data",
                                e.loc, source=program.ast.source)
        es = EarlyStopping(e.monitor, e.mode, e.patience, e.min_delta, e.start_from_epoch)
    restore_best = bool(t.early_stopping and t.early_stopping.restore_best)
    keep_best = es is not None and (restore_best or record is not None)
    best_snapshot = None
    hist = History(trainer=trainer, record=record)
    hist.warnings = hist_warnings
    shuffle_rng = np.random.default_rng([seed, 0x5EED])
    dev = trainer._step_fn.to_device
    start_epoch = 0
    if resume is not None:
        check_compatible(resume_from or "the checkpoint", resume, trainer)
        trainer.restore({"arrays": {k: dev(v) for k, v in resume.arrays.items()}, "step": resume.step})
        shuffle_rng.bit_generator.state = resume.rng
        hist.history = {k: list(v) for k, v in resume.history.items()}
        hist.epochs_run = start_epoch = resume.epoch
        hist.resumed_from = resume.epoch
        if es is not None and resume.early_stopping is not None:
            es.load_state_dict(resume.early_stopping)
        if resume.schedule is not None:
            sched.load_state_dict(resume.schedule)
        if resume.best_arrays is not None and keep_best:
            best_snapshot = {"arrays": {k: dev(v) for k, v in resume.best_arrays.items()},
                             "step": resume.best_step if resume.best_step is not None else resume.step}
        if resume.settings is not None and settings is not None:
            hist.resume_changes = diff_settings(resume.settings, settings)
    x, y = train.x, train.y

    def commit(next_epoch: int) -> _Commit:
        return _Commit(next_epoch, trainer.snapshot(), dict(shuffle_rng.bit_generator.state),
                       len(next(iter(hist.history.values()))) if hist.history else 0,
                       es.state_dict() if es is not None else None, best_snapshot, sched.state_dict())

    def loop_state(c: _Commit, finished: bool = False) -> LoopState:
        best = _host(trainer, c.best["arrays"]) if c.best is not None else None
        return LoopState(epoch=c.epoch, step=c.snap["step"], seed=seed, arrays=_host(trainer, c.snap["arrays"]),
                         rng=c.rng, history={k: v[:c.n_history] for k, v in hist.history.items()},
                         early_stopping=c.es, best_epoch=c.es["best_epoch"] if c.es else None,
                         best_step=c.best["step"] if c.best is not None else None,
                         best_arrays=best, settings=settings, finished=finished, schedule=c.schedule)

    def save_ckpt(c: _Commit, finished: bool = False) -> None:
        if record is not None:
            save_checkpoint(record.checkpoint_path, program, loop_state(c, finished))
            hist.checkpoint = record.checkpoint_path

    last_good = commit(start_epoch)
    if record is not None:
        if resume is not None:
            record.write_history(hist.history)
        else:
            record.write_history({})
    t0 = time.perf_counter()
    if resume is not None:
        say(f"Resuming {program.ast.model.name} at epoch {start_epoch} (step {resume.step}) of {epochs}"
            + (f" from {resume_from}" if resume_from else ""))
        if hist.resume_changes:
            say("Settings changed since the checkpoint:\n" + "\n".join(f"  {c}" for c in hist.resume_changes))
    say(f"Training {program.ast.model.name}: {len(train)} samples"
        + (f", {len(val)} for validation" if val is not None else "")
        + f", {epochs} epochs, batch size {t.batch_size}")
    stop_reason = None
    n_batches = (len(x) + t.batch_size - 1) // t.batch_size
    progress.start(epochs, n_batches, start_epoch)
    try:
        with np.errstate(all="ignore"):
            for epoch in range(start_epoch, epochs):
                epoch_start = last_good.snap
                trainer.lr = sched.lr_for_epoch(epoch)
                # augmentation draws from its own stream per epoch, so a resumed run draws the same
                aug_rng = np.random.default_rng([seed, 0xA06, epoch]) if augment.active else None
                order = list(datamod.batches(len(x), t.batch_size, shuffle_rng))
                sums: dict[str, float] = {}
                seen = 0
                bad = None
                for i, idx in enumerate(order):
                    m = trainer.train_batch(augment(x[idx], aug_rng) if aug_rng is not None else x[idx], y[idx])
                    k_bad = first_bad(m)
                    if k_bad is not None:
                        bad = (i, k_bad, m[k_bad])
                        break
                    for k, v in m.items():
                        sums[k] = sums.get(k, 0.0) + v * len(idx)
                    seen += len(idx)
                    progress.batch(epoch, i, m["loss"])
                if bad is None and not all_finite(_host(trainer, trainer.arrays)):
                    bad = (len(order), "parameters", float("nan"))
                if bad is not None:
                    i, k_bad, value = bad
                    logs = {k: v / seen for k, v in sums.items()} if seen else {}
                    if k_bad in m:
                        logs[k_bad] = value
                    logs = {k: logs.get(k, float("nan")) for k in (hist.history or m)}
                    rep = NonFiniteReport(k_bad, value, epoch, batch=min(i, len(order) - 1), action=on_nan)
                    node, j, step = locate_train_step(trainer, epoch_start, order, i, x, y)
                    rep.node, rep.batch, rep.step = node, j, step
                    if node is None:
                        rep.note = ("the reference interpreter did not reproduce the non-finite value "
                                    "(the backend's arithmetic differs from the reference here)")
                    # the trainer now holds the state before the step found (see locate_train_step)
                    if on_nan == "rollback":
                        trainer.restore(last_good.snap)
                        rep.note += (f"\nrolled back to the state at the end of epoch {last_good.epoch - 1}"
                                     if last_good.epoch > 0 else "\nrolled back to the initial state")
                    else:
                        rep.note += f"\nthe weights are those before step {step}"
                    rep.note = rep.note.strip()
                    for k in logs:
                        hist.history.setdefault(k, []).append(logs[k])
                    hist.epochs_run = epoch + 1
                    hist.stopped_epoch = epoch
                    hist.nonfinite = rep
                    stop_reason = f"non-finite {k_bad} at epoch {epoch}, batch {rep.batch}"
                    if record is not None:
                        record.append_epoch(epoch, logs)
                    progress.epoch_end(epoch, logs, True, time.perf_counter() - t0)
                    if on_epoch:
                        on_epoch(epoch, logs, trainer)
                    break
                logs = {k: v / len(x) for k, v in sums.items()}
                if val is not None:
                    logs.update({f"val_{k}": v for k, v in
                                 trainer.evaluate(val.x, val.y, max(t.batch_size, 256)).items()})
                if t.schedule is not None:
                    logs["lr"] = trainer.lr
                for k, v in logs.items():
                    hist.history.setdefault(k, []).append(v)
                hist.epochs_run = epoch + 1
                if record is not None:
                    record.append_epoch(epoch, logs)
                finite = all(math.isfinite(v) for v in logs.values())
                if finite:
                    sched.on_epoch_end(epoch, logs)
                improved = stop = False
                if finite:
                    if es is not None:
                        improved, stop = es.update(epoch, logs.get(es.monitor, float("nan")))
                        if improved and keep_best:
                            best_snapshot = trainer.snapshot()
                    last_good = commit(epoch + 1)
                progress.epoch_end(epoch, logs, epoch % t.log_every == 0 or epoch == epochs - 1 or not finite,
                                   time.perf_counter() - t0)
                if finite and record is not None and checkpoint_every and (
                        (epoch + 1) % checkpoint_every == 0 or improved):
                    save_ckpt(last_good)
                    if improved:
                        record.save_best(best_snapshot, trainer, epoch)
                if on_epoch:
                    on_epoch(epoch, logs, trainer)
                if not finite:
                    bad_keys = [k for k, v in logs.items() if not math.isfinite(v)]
                    stop_reason = f"non-finite {', '.join(bad_keys)} at epoch {epoch}"
                    hist.stopped_epoch = epoch
                    hist.nonfinite = NonFiniteReport(bad_keys[0], logs[bad_keys[0]], epoch, graph="evaluate",
                                                     action=on_nan, note=_locate_eval(program, trainer, val,
                                                                                      bad_keys[0]))
                    if on_nan == "rollback":
                        trainer.restore(last_good.snap)
                        hist.nonfinite.note += f"\nrolled back to the state at the end of epoch {last_good.epoch - 1}"
                    break
                if stop:
                    hist.stopped_epoch = epoch
                    stop_reason = "early stopping"
                    break
    except KeyboardInterrupt:
        progress.close()
        hist.seconds = time.perf_counter() - t0
        path = None
        if record is not None:
            save_ckpt(last_good)
            path = record.checkpoint_path
        raise TrainingInterrupted(last_good.epoch, path, hist) from None
    progress.close()
    hist.seconds = time.perf_counter() - t0
    if hist.nonfinite is not None:
        hist.report = hist.nonfinite.render(program)
    parts = []
    if stop_reason == "early stopping":
        parts.append(f"Early stopping: stopped at epoch {hist.stopped_epoch}")
    elif stop_reason:
        parts.append(f"Training stopped: {stop_reason}")
    else:
        parts.append(f"Finished {hist.epochs_run} epochs")
    if es is not None and es.best_epoch is not None:
        hist.best_epoch, hist.best_value = es.best_epoch, es.best
        parts.append(f"best epoch {es.best_epoch}, {es.monitor} {_fmt(es.best)}")
    # the checkpoint holds the last good epoch's state, before any restore of the best weights
    save_ckpt(last_good, finished=True)
    if es is not None and es.best_epoch is not None:
        if restore_best and best_snapshot is not None and es.best_epoch != hist.epochs_run - 1:
            trainer.restore(best_snapshot)
            hist.restored = True
            parts.append("weights restored")
    hist.message = "; ".join(parts) + f" ({hist.seconds:.1f} s)"
    say(hist.message)
    at = hist.best_epoch if hist.restored else hist.epochs_run - 1
    final = {k: v[at] for k, v in hist.history.items()} if hist.history and at is not None and at >= 0 else {}
    if final:
        label = f"Final (epoch {at}, restored weights)" if hist.restored else "Final"
        say(f"{label}: " + " ".join(f"{k}: {_fmt(v)}" for k, v in final.items()))
    hist.stop_reason = stop_reason
    if record is not None:
        from .weights import save_weights
        save_weights(record.file("weights_final.npz"), program, trainer.host("model_state"),
                     epoch=at if at is not None else -1, seed=seed)
        if best_snapshot is not None and es is not None and es.best_epoch is not None:
            record.save_best(best_snapshot, trainer, es.best_epoch)
        note = record.plot(hist.history)
        if note:
            hist.notes.append(note)
    return hist


def _locate_eval(program, trainer, val, key: str) -> str:
    """For a non-finite validation value: the first node of the evaluate graph
    that is not finite on the first validation batch that shows it."""
    if val is None:
        return ""
    from ..ir.interpret import first_nonfinite
    g = program.graphs.unoptimized.get("evaluate")
    if g is None:
        return ""
    state = trainer.host("model_state")
    for i in range(0, len(val.x), 256):
        feed = {**state, trainer.x_name: val.x[i:i + 256], "y": val.y[i:i + 256]}
        node = first_nonfinite(g, feed)
        if node is not None:
            where = f" at {node.loc}" if node.loc else ""
            layer = f", layer '{node.layer}'" if node.layer else ""
            return (f"the first non-finite value on validation samples {i}..{min(i + 256, len(val.x)) - 1} is "
                    f"{node.name}: {node.type_str} = {node.op} in the evaluate graph{layer}{where}")
    return "the reference interpreter did not reproduce the non-finite validation value"
