"""The training loop: epochs, batches, validation, and callbacks around them.

`fit` opens the run (session.py: the run folder, resume), loads and checks
the data, builds the trainer and the callbacks, and runs a `Loop`. The loop
itself only shuffles, steps, averages and validates; everything else is a
callback (callbacks/): the non-finite policy, the learning-rate schedule,
early stopping, progress output, the run record, checkpoints, the caller's.

After every good epoch the loop commits one snapshot of its state, a
LoopState (the trainer's arrays, step counter, shuffle RNG, history, each
resumable callback's state, the trainer snapshots callbacks keep). That
snapshot is what a checkpoint holds, what Ctrl-C saves, what
`--on-nan rollback` restores and where the NaN replay starts; resume
restores it. With `--checkpoint-every Nsteps` the loop also hands out its
state between two batches (`batch_state`: the epoch's position, shuffle
state at its start, partial sums and augmentation stream), and a resumed
run continues that epoch at the next batch. See docs/runtime.md."""
from __future__ import annotations

import contextlib
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, TextIO

import numpy as np

from ..errors import NNError, TrainingError
from . import data as datamod
from .augment import make_augment
from .callbacks import (Callback, CallbackList, Checkpointer, EarlyStopping, LearningRateScheduler,
                        NonFinitePolicy, ProgressLogger, RunRecorder)
from .callbacks.checkpointer import parse_every
from .callbacks.keras import KerasHooks, split_callbacks
from .checkpoint import LoopState, check_compatible, data_fingerprint
from .evaluation import class_weights, evaluate, load_datasets  # noqa: F401  (the CLI and crosscheck import them)
from .nonfinite import NonFiniteReport
from .preflight import preflight
from .progress import make_progress
from .schedules import make_schedule
from .session import Session, open_session
from .transfer import load_initial_weights


@dataclass
class History:
    """What fit() returns. Keras-style: history[metric] is the list of per-epoch values."""

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
    params: dict = field(default_factory=dict)      # Keras's: verbose, epochs, steps (per epoch)
    model: object = None                            # the Program trained (Keras's History.model)

    @property
    def epoch(self) -> list[int]:
        return list(range(self.epochs_run))

    @property
    def final_epoch(self) -> int:
        """The epoch whose weights the run ends with: the best one when they were restored."""
        return self.best_epoch if self.restored else self.epochs_run - 1

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        self.epochs_run = epoch + 1


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM / SIGHUP, through the CLI) during fit(): the latest
    complete loop state was saved to `checkpoint` (None when no run record is
    written): `epoch` and `batch` say where it is (batch 0: the end of epoch
    `epoch - 1`); `signum` is the signal that stopped the run."""

    def __init__(self, epoch: int, checkpoint: Optional[str], history: "History", signum: int = signal.SIGINT,
                 batch: int = 0):
        super().__init__(f"interrupted after {epoch} epoch(s)")
        self.epoch = epoch
        self.batch = batch
        self.checkpoint = checkpoint
        self.history = history
        self.signum = int(signum)


class Loop:
    """The running fit loop, as callbacks see it (`self.loop`)."""

    def __init__(self, program, trainer, train, val, session: Session, augment, *,
                 batch_size: Optional[int] = None, shuffle: bool = True):
        self.program, self.trainer, self.train, self.val = program, trainer, train, val
        self.session = session
        self.epochs, self.seed = session.epochs, session.seed
        self.batch_size = program.ast.train.batch_size if batch_size is None else int(batch_size)
        self.augment = augment
        self.history = History(trainer=trainer, record=session.record, model=program)
        self.shuffle_rng = np.random.default_rng([self.seed, 0x5EED])
        self.shuffle = shuffle
        self.snapshots: dict[str, dict] = {}   # trainer snapshots callbacks keep ("best"), by name
        self.summary: list[str] = []           # parts of the final summary line callbacks add
        self.epoch: Optional[int] = None
        self.batches: list = []                # this epoch's batches (sample indices), in order
        self.stop_training = False
        self.failed = False                    # this epoch is not finite: logged, not committed
        self.rolled_back = False               # ... and the trainer was put back to the committed state
        self._drop_batch = False
        self.batch = 0                         # batches of this epoch done
        self._sums: dict[str, float] = {}      # this epoch's batch-size-weighted sums so far
        self._seen = 0
        self._epoch_rng: dict = {}             # the shuffle state at this epoch's start
        self._aug_rng: Optional[np.random.Generator] = None
        self.after_batch: list[Callable[[int], None]] = []   # called once a batch is in the sums
        self.saved: Optional[LoopState] = None  # the latest state a checkpoint holds (Checkpointer)
        self.state: Optional[LoopState] = None  # the last committed snapshot
        self.callbacks = CallbackList([])

    # --- what callbacks may ask -----------------------------------------------------
    def stop(self, reason: str) -> None:
        """Stop after this batch (from on_batch_end) or epoch; the first reason given is kept."""
        self.stop_training = True
        if self.history.stop_reason is None:
            self.history.stop_reason, self.history.stopped_epoch = reason, self.epoch

    def fail(self, *, drop_batch: bool = False) -> None:
        """The epoch produced a non-finite value: end it after this batch (left out of
        its means when `drop_batch`), skip validation, log it but commit nothing."""
        self.failed, self._drop_batch, self.stop_training = True, drop_batch, True

    def rollback(self) -> None:
        """Put the trainer back to the last committed state (a failed epoch rolled
        back is not a history row)."""
        self.trainer.restore(self.state.trainer_snapshot())
        self.rolled_back = True

    def keep_snapshot(self, name: str) -> None:
        """Keep a copy of the trainer now (committed with the state, saved as
        <name>/ in checkpoints and as weights_<name>.npz)."""
        self.snapshots[name] = {**self.trainer.snapshot(), "epoch": self.epoch}

    def commit(self, next_epoch: int, **position) -> None:
        """Take the snapshot of the loop now, as the state to continue from at `next_epoch`
        (`position`: batch, sums, seen, aug_rng of a state inside that epoch)."""
        snap = self.trainer.snapshot()
        self.state = LoopState(epoch=next_epoch, step=snap["step"], seed=self.seed, arrays=snap["arrays"],
                               rng=dict(self.shuffle_rng.bit_generator.state),
                               history={k: list(v) for k, v in self.history.history.items()},
                               callbacks=self.callbacks.states(), snapshots=dict(self.snapshots),
                               settings=self.session.settings, data=self.session.data, **position)

    def batch_state(self) -> LoopState:
        """The loop now, between two batches of the current epoch, with NumPy copies
        of the arrays: what a mid-epoch checkpoint holds. Resuming from it draws
        the epoch's order again from `rng` (the shuffle state at the epoch's
        start), skips the `batch` batches done and continues the sums and the
        augmentation stream, so nothing is skipped or repeated."""
        return LoopState(epoch=self.epoch, step=self.trainer.step_count, seed=self.seed,
                         arrays=self.trainer.host("arrays"), rng=dict(self._epoch_rng),
                         history={k: list(v) for k, v in self.history.history.items()},
                         callbacks=self.callbacks.states(),
                         snapshots={n: {**s, "arrays": self.trainer.to_host(s["arrays"])}
                                    for n, s in self.snapshots.items()},
                         settings=self.session.settings, data=self.session.data, batch=self.batch,
                         sums=dict(self._sums), seen=self._seen,
                         aug_rng=(dict(self._aug_rng.bit_generator.state) if self._aug_rng is not None else None))

    def running_logs(self, batch: int) -> dict[str, float]:
        """The epoch's logs so far, batch `batch` included (what Keras 3 passes to
        on_train_batch_end: the running means since the epoch began)."""
        n = len(self.batches[batch])
        sums = dict(self._sums)
        for k, v in self.trainer.last_stats.items():
            sums[k] = sums.get(k, 0.0) + v * n
        return self.program.metric_logs({k: v / (self._seen + n) for k, v in sums.items()})

    def host_state(self, finished: bool = False) -> LoopState:
        """The committed state with NumPy copies of its arrays: what a checkpoint writes."""
        return self.state.converted(self.trainer.to_host, finished=finished)

    # --- running ----------------------------------------------------------------------
    def run(self, callbacks: CallbackList) -> History:
        self.callbacks = callbacks.bind(self)
        start = self.session.resume
        if start is not None:
            self._restore(start)
        if start is not None and start.batch:
            self.commit(start.epoch, batch=start.batch, sums=dict(start.sums), seen=start.seen,
                        aug_rng=start.aug_rng)
        else:
            self.commit(start.epoch if start is not None else 0)
        callbacks.on_train_begin(self.state)
        t0 = time.perf_counter()
        try:
            with np.errstate(all="ignore"):
                for epoch in range(self.state.epoch, self.epochs):
                    self.epoch = epoch
                    callbacks.on_epoch_begin(epoch)
                    callbacks.on_epoch_end(epoch, self._train_epoch(epoch))
                    if self.stop_training:
                        break
        except KeyboardInterrupt as e:
            self.history.seconds = time.perf_counter() - t0
            callbacks.on_interrupt()
            at = self.saved if self.saved is not None else self.state
            raise TrainingInterrupted(at.epoch, self.history.checkpoint, self.history,
                                      getattr(e, "signum", signal.SIGINT), at.batch) from None
        self.history.seconds = time.perf_counter() - t0
        callbacks.on_train_end()
        return self.history

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        """The epoch's batches, with hooks around each step, then validation: the epoch's logs."""
        x, y, w, cbs = self.train.x, self.train.y, self.train.w, self.callbacks
        st = self.state
        inside = st.batch if st.epoch == epoch else 0    # resumed from a checkpoint inside this epoch
        # augmentation draws from its own stream per epoch, so a resumed run draws the same
        aug_rng = np.random.default_rng([self.seed, 0xA06, epoch]) if self.augment.active else None
        if inside and aug_rng is not None and st.aug_rng is not None:
            aug_rng.bit_generator.state = st.aug_rng
        self._aug_rng = aug_rng
        self._epoch_rng = dict(self.shuffle_rng.bit_generator.state)
        self.batches = list(datamod.batches(len(x), self.batch_size, self.shuffle_rng if self.shuffle else None))
        self._sums = sums = dict(st.sums) if inside else {}
        self._seen = seen = st.seen if inside else 0
        self.batch = inside
        for i in range(inside, len(self.batches)):
            idx = self.batches[i]
            cbs.on_batch_begin(i)
            xb = x[idx] if aug_rng is None else self.augment(x[idx], aug_rng)
            logs = self.trainer.train_batch(xb, y[idx]) if w is None else self.trainer.train_batch(xb, y[idx], w[idx])
            cbs.on_batch_end(i, logs)
            if not (self.failed and self._drop_batch):
                for k, v in self.trainer.last_stats.items():
                    sums[k] = sums.get(k, 0.0) + v * len(idx)
                seen += len(idx)
            self._seen, self.batch = seen, i + 1
            if self.stop_training:
                break
            for hook in self.after_batch:
                hook(i)
        logs = self.program.metric_logs({k: v / seen for k, v in sums.items()}) if seen else {}
        if self.val is not None and not self.failed:
            size = max(self.batch_size, 256)
            val = (self.trainer.evaluate(self.val.x, self.val.y, size) if self.val.w is None
                   else self.trainer.evaluate(self.val.x, self.val.y, size, self.val.w))
            logs.update({f"val_{k}": v for k, v in val.items()})
        return logs

    def _restore(self, st: LoopState) -> None:
        check_compatible(self.session.resume_from or "the checkpoint", st, self.trainer)
        st = st.converted(self.trainer.to_device)
        self.trainer.restore(st.trainer_snapshot())
        self.shuffle_rng.bit_generator.state = st.rng
        self.history.history = {k: list(v) for k, v in st.history.items()}
        self.history.epochs_run = self.history.resumed_from = st.epoch
        self.history.resume_changes = self.session.changes
        self.snapshots = dict(st.snapshots)
        self.callbacks.load_states(st.callbacks)


class _Commit(Callback):
    """Appends the epoch's logs to the history and, after a good epoch, commits
    the loop's state. It runs after every callback that may change the logs or
    the state, and before those that write them out."""

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.loop.failed and self.loop.rolled_back:
            return   # the trainer is back at the last committed state: this epoch did not happen
        self.loop.history.append(epoch, logs)
        if not self.loop.failed:
            self.loop.commit(epoch + 1)


class _OnEpoch(Callback):
    """fit(on_epoch=fn): fn(epoch, logs, trainer) after each epoch, last of all."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.fn(epoch, logs, self.loop.trainer)


def _callbacks(program, session: Session, val, display, *, policy: NonFinitePolicy, checkpoint_every,
               user: Sequence, on_epoch: Optional[Callable]) -> CallbackList:
    """The run's callbacks in the order they run (docs/runtime.md, "Callbacks").
    `user`: the loop's own Callbacks and Keras-shaped ones (callbacks/keras.py),
    which run together, as one, after the loop's."""
    t = program.ast.train
    # without a schedule nothing sets the rate each epoch, so a Keras callback's change
    # (ReduceLROnPlateau, model.optimizer.learning_rate = ...) stays
    shaping: list[Callback] = [] if t.schedule is None else [
        LearningRateScheduler(make_schedule(t.schedule, float(t.optimizer.params["lr"]), session.epochs))]
    shaping.append(policy)
    e = t.early_stopping
    if e is not None:
        if e.monitor.startswith("val_") and val is None:
            raise TrainingError(f"early stopping monitors '{e.monitor}' but there is no validation data",
                                e.loc, source=program.ast.source)
        shaping.append(EarlyStopping(e.monitor, e.mode, e.patience, e.min_delta, e.start_from_epoch,
                                     restore_best=e.restore_best, keep_best=session.record is not None))
    writing: list[Callback] = [ProgressLogger(display, t.log_every)]
    if session.record is not None:
        writing += [RunRecorder(session.record), Checkpointer(session.record, checkpoint_every)]
    if on_epoch is not None:
        writing.append(_OnEpoch(on_epoch))
    own, keras = split_callbacks(user)
    if keras:
        own.append(KerasHooks(keras, program))
    return CallbackList(shaping + own + [_Commit()] + writing)


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


def fit(program, *, epochs: Optional[int] = None, seed: Optional[int] = None, out: Optional[TextIO] = None,
        quiet: bool = False, verbose: Optional[int] = None, data=None, validation_data=None,
        on_epoch: Optional[Callable[[int, dict, object], None]] = None, callbacks: Sequence[Callback] = (),
        record=None, resume=None, checkpoint_every=0, on_nan: str = "stop", progress=None,
        command: Optional[list[str]] = None, curves: str = "svg", batch_size: Optional[int] = None,
        shuffle: bool = True, validation_split: float = 0.0, trainer=None, class_weight=None,
        sample_weight=None) -> History:
    """Train as the file says. `record`: write a run folder (True: a new one under
    runs/, or the resumed run's own; a path; a RunFolder); `resume`: a run
    folder, its checkpoint.npz or a LoopState to continue exactly;
    `checkpoint_every`: write checkpoint.npz every N epochs (and on each best
    epoch), or "Nsteps" every N optimizer steps (inside epochs too); `on_nan`:
    "stop" or "rollback"; `verbose`: 0 quiet, 1 (default) a bar on a terminal or
    the chapter's line every log_every epochs, 2 that line every epoch;
    `callbacks`: Callback objects, run after the built-in ones that shape an
    epoch; `on_epoch(epoch, logs, trainer)`: called after each epoch, last;
    `progress`: a display
    (progress.make_progress) instead of one for `out`; `command`: recorded in
    settings.json; `curves`: "svg" (curves.svg), "png" (curves.png, needs
    matplotlib) or "none". Keras's fit arguments: `batch_size` (default: the
    file's), `shuffle` (each epoch; False: in order), `validation_split` (the
    last part of `data`, before any shuffling, as Keras), `trainer`: a Trainer
    to continue (a second Program.fit continues the first, as in Keras);
    `sample_weight` [N] (split with the data) or `class_weight` {class: weight}
    (default: the file's; the training data only) weigh the loss and the
    weighted metrics (the program's graphs must take them: use_sample_weights).

    Everything is checked (the checkpoint, the seed, the data, the tensors)
    before the first file is written: a refused run changes nothing."""
    t = program.ast.train
    if t is None:
        raise TrainingError("the program has no train block", program.ast.model.loc, source=program.ast.source)
    every = parse_every(checkpoint_every)
    policy = NonFinitePolicy(on_nan)   # refuses a bad on_nan before any file is written
    session = open_session(program, epochs=epochs, seed=seed, record=record, resume=resume, command=command,
                           curves=curves)
    try:
        display = progress if progress is not None else make_progress(out or sys.stdout, quiet=quiet, verbose=verbose)
        with _source_of(program):  # errors from the data layer get the .nn line and caret
            train, val = load_datasets(program, data, validation_data, validation_split, sample_weight)
            cw = t.class_weight if class_weight is None else class_weight
            if cw is not None and sample_weight is None:
                train.w = class_weights(train.y, cw)
            warnings = [str(w) for w in preflight(program, train, val, epochs=session.epochs)]
            init = transfer = None
            if t.init_from is not None and session.resume is None:
                init, transfer = load_initial_weights(program, t.init_from)
        if session.record is not None or session.resume is not None:
            session.check_data(data_fingerprint(train, val))   # refuses a resume on changed data
        if session.record is not None:
            session.record.labels = train.label_names
        if trainer is None or session.resume is not None or init is not None:
            trainer = program.trainer(seed=session.seed, params=init)
        if session.resume is not None:
            check_compatible(session.resume_from or "the checkpoint", session.resume, trainer)
        else:   # normalization layers: their statistics from the training features (Keras's adapt)
            trainer.load(program.adapted_state(train.x))
        augment = make_augment(t.augment, program.ast.model.input.shape)
        cbs = _callbacks(program, session, val, display, policy=policy, checkpoint_every=every,
                         user=callbacks, on_epoch=on_epoch)
        session.begin()   # the first write
        for w in warnings:
            print(w, file=sys.stderr)
        if transfer is not None:
            display.message(transfer.text())
        loop = Loop(program, trainer, train, val, session, augment, batch_size=batch_size, shuffle=shuffle)
        loop.history.params = {"verbose": 1 if verbose is None else int(verbose), "epochs": session.epochs,
                               "steps": -(-len(train) // loop.batch_size)}
        loop.history.warnings = warnings
        return loop.run(cbs)
    finally:
        session.close()
