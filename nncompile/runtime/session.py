"""Opening a run: the one place that turns fit()'s `record=` and `resume=`
(the CLI's --out / --no-record / --resume) into a run folder, the state to
start from, the seed and the resolved settings, and writes the folder's
settings.json (with the log of resumes) and the copy of the .nn file."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Optional

from ..errors import TrainingError
from .checkpoint import LoopState, diff_settings, load_checkpoint
from .records import RunRecord, resolved_settings


@dataclass
class Session:
    epochs: int                                  # the total to train (after any override)
    seed: int
    settings: dict                               # resolved settings (records.resolved_settings)
    record: Optional[RunRecord] = None           # the run folder, if one is written
    resume: Optional[LoopState] = None           # the state to continue from
    resume_from: str = ""                        # the checkpoint as the caller named it
    changes: list[str] = field(default_factory=list)   # settings changed since the checkpoint


def open_session(program, *, epochs: Optional[int] = None, seed: Optional[int] = None, record=None,
                 resume=None, command: Optional[list[str]] = None) -> Session:
    """`record`: None or False (no folder), True (a new runs/<model>-<time>/ folder;
    when resuming a run folder, that folder), a path (a new folder there), or a
    RunRecord. `resume`: a run folder, its checkpoint.npz, or a LoopState.
    `command` is recorded in settings.json."""
    t = program.ast.train
    epochs = t.epochs if epochs is None else int(epochs)
    state, folder = _load(resume)
    rec = _record(program, record, folder)
    if state is not None:
        if seed is not None and int(seed) != state.seed:
            raise TrainingError(f"--seed {seed} differs from the seed of the run being resumed ({state.seed})",
                                hint="a resumed run keeps its seed; leave --seed out")
        seed = state.seed
    seed = t.seed if seed is None else int(seed)
    settings = resolved_settings(program, epochs=epochs, seed=seed)
    changes = diff_settings(state.settings, settings) if state is not None and state.settings else []
    if rec is not None:
        resumes = None
        if state is not None:
            old = rec.read_settings_doc() or {}
            resumes = list(old.get("resumes", [])) + [
                {"epoch": state.epoch, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "changes": changes}]
        rec.write_start(settings, seed, command, resumes)
    named = os.fspath(resume) if isinstance(resume, (str, os.PathLike)) else ""
    return Session(epochs, seed, settings, rec, state, named, changes)


def _load(resume) -> tuple[Optional[LoopState], Optional[str]]:
    """The state to resume from, and the run folder it was read from (None for a LoopState)."""
    if resume is None or isinstance(resume, LoopState):
        return resume, None
    run_dir = os.fspath(resume)
    path = os.path.join(run_dir, "checkpoint.npz") if os.path.isdir(run_dir) else run_dir
    if os.path.isdir(run_dir) and not os.path.exists(path):
        raise TrainingError(f"--resume {run_dir}: the folder holds no checkpoint.npz",
                            hint="checkpoints are written on Ctrl-C, at the end of a run, and with "
                                 "--checkpoint-every N")
    return load_checkpoint(path), os.path.dirname(os.path.abspath(path))


def _record(program, record, resumed_folder: Optional[str]) -> Optional[RunRecord]:
    if record is None or record is False:
        return None
    if isinstance(record, RunRecord):
        return record
    if resumed_folder is not None:
        if record is not True:
            raise TrainingError("--resume continues in the run's own folder; leave --out out")
        return RunRecord(resumed_folder, program)
    return RunRecord.create(program, None if record is True else os.fspath(record))
