"""Opening a run: the one place that turns fit()'s `record=` and `resume=`
(the CLI's --out / --no-record / --resume) into a run folder, the state to
start from, the seed and the resolved settings.

`open_session` only reads: it loads the checkpoint and checks what can be
checked without the data. fit() then loads the data, builds the trainer and
checks the rest (`check_data`, the tensors), and only then calls `begin`: the
first write (the folder claimed, the .nn copy, settings.json with the log of
resumes). A refused run changes nothing on disk. `close` releases the folder,
however the run ended."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Optional

from ..errors import TrainingError
from .checkpoint import LoopState, check_same_data, diff_settings, load_checkpoint
from .records import RunFolder, RunRecord, resolved_settings


@dataclass
class Session:
    epochs: int                                  # the total to train (after any override)
    seed: int
    settings: dict                               # resolved settings (records.resolved_settings)
    record: Optional[RunFolder] = None           # the run folder, if one is written
    resume: Optional[LoopState] = None           # the state to continue from
    resume_from: str = ""                        # the checkpoint as the caller named it
    changes: list[str] = field(default_factory=list)   # settings changed since the checkpoint
    restart: bool = False                        # --resume of a run that saved no checkpoint: from epoch 0
    messages: list[str] = field(default_factory=list)  # said before training starts
    command: Optional[list[str]] = None
    data: Optional[dict] = None                  # the data's fingerprint (check_data)

    def check_data(self, fingerprint: dict) -> None:
        """Remember the data's fingerprint; refuse a resume on other data."""
        self.data = fingerprint
        if self.resume is not None:
            check_same_data(self.resume_from or "the checkpoint", self.resume, fingerprint)

    def begin(self) -> None:
        """The run's first write: claim the folder, write the .nn copy and settings.json."""
        rec = self.record
        if rec is None:
            return
        rec.claim()
        resumes = None
        if self.resume is not None or self.restart:
            old = rec.read_settings_doc() or {}
            entry = {"epoch": self.resume.epoch if self.resume is not None else 0,
                     "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "changes": self.changes}
            if self.resume is not None and self.resume.batch:
                entry["batch"] = self.resume.batch
            if self.restart:
                entry["restart"] = "no checkpoint: started again from epoch 0"
            resumes = list(old.get("resumes", [])) + [entry]
        rec.write_start(self.settings, self.seed, self.command, resumes, self.data)

    def close(self) -> None:
        if self.record is not None:
            self.record.release()


def open_session(program, *, epochs: Optional[int] = None, seed: Optional[int] = None, record=None,
                 resume=None, command: Optional[list[str]] = None, curves: str = "svg") -> Session:
    """`record`: None or False (no folder), True (a new runs/<model>-<time>/ folder;
    when resuming a run folder, that folder), a path (a new folder there), or a
    RunFolder. `resume`: a run folder, its checkpoint.npz, or a LoopState.
    `command` is recorded in settings.json; `curves`: "svg", "png" or "none".
    Writes nothing."""
    t = program.ast.train
    epochs = t.epochs if epochs is None else int(epochs)
    if curves == "png":
        import importlib.util
        if importlib.util.find_spec("matplotlib") is None:
            raise TrainingError("--curves png needs matplotlib, which is not installed",
                                hint="pip install matplotlib (or nncompile[plots]); the default, "
                                     "curves.svg, needs nothing")
    state, folder, restart_doc = _load(resume)
    rec = _record(program, record, folder, curves)
    messages = []
    old_settings = state.settings if state is not None else None
    if state is not None or restart_doc is not None:
        was = state.seed if state is not None else restart_doc.get("seed")
        if seed is not None and was is not None and int(seed) != int(was):
            raise TrainingError(f"--seed {seed} differs from the seed of the run being resumed ({was})",
                                hint="a resumed run keeps its seed; leave --seed out")
        seed = was if was is not None else seed
    if restart_doc is not None:
        old_settings = restart_doc.get("settings")
        messages.append(f"{folder} holds no checkpoint (the run stopped before its first one): starting it "
                        f"again from epoch 0 with its seed {seed}")
    seed = t.seed if seed is None else int(seed)
    settings = resolved_settings(program, epochs=epochs, seed=seed)
    changes = diff_settings(old_settings, settings) if old_settings else []
    named = os.fspath(resume) if isinstance(resume, (str, os.PathLike)) else ""
    return Session(epochs, seed, settings, rec, state, named, changes, restart=restart_doc is not None,
                   messages=messages, command=command)


def _load(resume) -> tuple[Optional[LoopState], Optional[str], Optional[dict]]:
    """The state to resume from, the run folder it was read from (None for a
    LoopState), and for a run folder without a checkpoint its settings.json
    (the run starts again from epoch 0 with its seed)."""
    if resume is None or isinstance(resume, LoopState):
        return resume, None, None
    run_dir = os.fspath(resume)
    path = os.path.join(run_dir, "checkpoint.npz") if os.path.isdir(run_dir) else run_dir
    if os.path.isdir(run_dir) and not os.path.exists(path):
        doc = RunFolder(run_dir, None).read_settings_doc()
        if doc is None or "settings" not in doc:
            raise TrainingError(f"--resume {run_dir}: the folder holds no run (no checkpoint.npz, no settings.json)",
                                hint=f"start a new run there with --out {run_dir}")
        return None, run_dir, doc
    return load_checkpoint(path), os.path.dirname(path) or ".", None


def _record(program, record, resumed_folder: Optional[str], curves: str) -> Optional[RunFolder]:
    if record is None or record is False:
        return None
    if isinstance(record, RunFolder):
        return record
    if resumed_folder is not None:
        if record is not True:
            raise TrainingError("--resume continues in the run's own folder; leave --out out")
        return RunFolder(resumed_folder, program, curves=curves)
    return RunFolder.create(program, None if record is True else os.fspath(record), curves=curves)


__all__ = ["Session", "open_session", "RunFolder", "RunRecord"]
