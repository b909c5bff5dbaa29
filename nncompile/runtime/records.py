"""Run folders: what every `nncompile run` leaves behind, and the one way to
write into one (`RunFolder`).

    runs/<model>-<YYYYmmdd-HHMMSS>/
      <file>.nn            a copy of the program as it was run (left out when the
                           program itself lives there under that name)
      settings.json        resolved settings (every default explicit), seed, versions,
                           the data's fingerprint, the log of resumes
      history.csv          epoch, loss, metrics, val_* (one row per epoch, written as it goes)
      curves.svg           loss and metric curves (hand-written SVG; curves.png with --curves png)
      weights_final.npz    the weights the run ended with
      weights_best.npz     the best epoch's weights (when early stopping found one)
      checkpoint.npz       the state to resume from (see checkpoint.py)
      .nncompile.lock      held (fcntl.flock) while a run writes; holds its PID
      .nncompile-files.json  the names of the files the run created

A RunFolder claims its folder (an exclusive lock that a crashed run's successor
recognises as stale), knows which files the run created (the manifest, kept on
disk so a resumed run knows them too), writes every file atomically with the
mode the umask gives, and refuses to write over a file it did not create. See
docs/runtime.md and docs/reliability.md ("What a run folder guarantees").
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import platform
import re
import sys
import time
from typing import Any, Callable, Optional

from ..errors import TrainingError
from .weights import new_file_mode, write_atomic

_SKIP_FIELDS = ("loc", "arg_locs", "setting_locs")


def to_plain(v: Any) -> Any:
    """Dataclasses -> dicts (without source locations), tuples -> lists."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: to_plain(getattr(v, f.name)) for f in dataclasses.fields(v) if f.name not in _SKIP_FIELDS}
    if isinstance(v, dict):
        return {str(k): to_plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_plain(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if hasattr(v, "item") and callable(v.item):   # numpy scalars
        return v.item()
    return v


def resolved_settings(program, *, epochs: Optional[int] = None, seed: Optional[int] = None) -> dict:
    """The program's checked model and train block, every default explicit, with
    the command line's overrides applied."""
    t = program.ast.train
    if t is not None and (epochs is not None or seed is not None):
        t = dataclasses.replace(t, epochs=t.epochs if epochs is None else int(epochs),
                                seed=t.seed if seed is None else int(seed))
    return {"model": to_plain(program.ast.model), "train": to_plain(t),
            "backend": program.backend, "float_dtype": program.float_dtype}


def versions() -> dict:
    import numpy as np
    try:
        from importlib.metadata import version
        nnc = version("nncompile")
    except Exception:  # not installed as a distribution
        nnc = "unknown"
    return {"nncompile": nnc, "numpy": np.__version__, "python": sys.version.split()[0],
            "platform": platform.platform()}


LOCK_NAME = ".nncompile.lock"
MANIFEST_NAME = ".nncompile-files.json"
CURVES = ("svg", "png", "none")
# the files a run writes under fixed names (besides its .nn copy and weights_<snapshot>.npz)
RUN_FILES = ("settings.json", "history.csv", "curves.svg", "curves.png", "weights_final.npz",
             "weights_best.npz", "checkpoint.npz")


class FolderLock:
    """An exclusive claim on a folder: `.nncompile.lock`, locked with
    fcntl.flock and holding the PID of the holder. The kernel drops a flock
    when its process dies however it dies, so a lock file left by a crashed
    (or kill -9'ed) run is simply taken over by the next one: `stale` is then
    the PID it held. Where fcntl is missing, an O_EXCL lock file whose PID is
    no longer alive counts as stale."""

    def __init__(self, folder: str):
        self.folder = folder
        self.path = os.path.join(folder, LOCK_NAME)
        self.fd: Optional[int] = None
        self.stale: Optional[str] = None

    @staticmethod
    def _pid_in(fd: int) -> str:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            return os.read(fd, 64).decode("ascii", "replace").strip()
        except OSError:
            return ""

    def _busy(self, pid: str) -> TrainingError:
        who = f"another run (pid {pid})" if pid else "another run"
        return TrainingError(f"{self.folder} is in use by {who}: two runs cannot write one run folder",
                             hint="wait for that run to finish, or choose another --out folder")

    def acquire(self) -> "FolderLock":
        try:
            import fcntl
        except ImportError:   # not POSIX
            return self._acquire_excl()
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, new_file_mode())
            for wait in (0.0, 0.02, 0.05, 0.1):   # another run's holder() probe holds it for microseconds
                time.sleep(wait)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    pass
            else:
                pid = self._pid_in(fd)
                os.close(fd)
                raise self._busy(pid)
            # a run releasing the lock unlinks the file: make sure ours is still the one at the path
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            self.stale = self._pid_in(fd) or None
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
            self.fd = fd
            return self
        raise self._busy("")

    @classmethod
    def holder(cls, folder: str) -> Optional[str]:
        """The PID of the run holding `folder` now ("" when unknown), or None when no
        run holds it. Creates nothing."""
        lock = cls(folder)
        try:
            fd = os.open(lock.path, os.O_RDWR)
        except OSError:
            return None
        try:
            try:
                import fcntl
            except ImportError:
                pid = cls._pid_in(fd)
                return pid if pid.isdigit() and _alive(int(pid)) else None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return cls._pid_in(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def _acquire_excl(self) -> "FolderLock":
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, new_file_mode())
            except FileExistsError:
                with open(self.path, "rb") as f:
                    pid = f.read(64).decode("ascii", "replace").strip()
                if pid.isdigit() and _alive(int(pid)):
                    raise self._busy(pid) from None
                self.stale = pid or None
                os.unlink(self.path)
                continue
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
            self.fd = fd
            return self
        raise self._busy("")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)   # while still holding it; a waiting run then retries on a new file
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _normalized(text: str) -> str:
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


class RunFolder:
    """A run folder and every write into it.

    `RunFolder.create(program, out)` is a new run (in `out`, or a new
    runs/<model>-<time>/ when `out` is None); `RunFolder(path, program)` is a
    folder a run continues in (a resume). Nothing touches the disk until
    `claim()`: it makes the folder, takes the lock (refusing a folder another
    run holds), reads the manifest of the files the run created, checks again
    under the lock that a new run's folder holds no run, and refuses a folder
    holding files of the user's that the run would write. `release()` drops the
    lock (fit does, however the run ends).

    Every file goes through `write` / `write_text` / `target` (atomic: a temp
    file beside it, fsync, os.replace, fsync of the folder; the umask's mode)
    or `append_text` (one write(2) per row: history.csv). A name is added to
    the manifest (on disk) before its file is first written, and a name that
    exists but is not in the manifest is refused: a run never writes over a
    file it did not create."""

    def __init__(self, path: Optional[str], program, *, fresh: bool = False, root: str = "runs",
                 curves: str = "svg"):
        if curves not in CURVES:
            raise TrainingError(f"--curves must be one of {', '.join(CURVES)}, not {curves!r}")
        self.path = os.fspath(path) if path is not None else None
        self.program = program
        self.fresh = fresh            # a new run (refuses a folder that holds one)
        self.root = root
        self.curves = curves
        self.model_file: Optional[str] = None
        self.stale_lock: Optional[str] = None   # the PID a crashed run left in the lock file
        self._lock: Optional[FolderLock] = None
        self._created: set[str] = set()
        self._made_folder = False
        self._history_keys: Optional[list[str]] = None
        # the class names of text labels ("cat", "dog"), by index: labels.json and every weights file
        self.labels: Optional[tuple[str, ...]] = None

    @classmethod
    def create(cls, program, out: Optional[str] = None, root: str = "runs", curves: str = "svg") -> "RunFolder":
        """A new run, in `out` or a new runs/<model>-<time>/ folder (made at claim).
        Checks `out` now (nothing is written)."""
        rec = cls(out, program, fresh=True, root=root, curves=curves)
        if out is not None:
            rec.check_new()
        return rec

    def file(self, name: str) -> str:
        if self.path is None:
            raise RuntimeError("the run folder is chosen when it is claimed")
        return os.path.join(self.path, name)

    @property
    def checkpoint_path(self) -> str:
        return self.file("checkpoint.npz")

    @property
    def claimed(self) -> bool:
        return self._lock is not None

    # --- checks (no writes) ---------------------------------------------------------
    def holds_run(self) -> bool:
        return self.path is not None and any(os.path.exists(self.file(n)) for n in ("checkpoint.npz", "settings.json"))

    def check_new(self) -> None:
        """Refuse a new run's `--out` that is a file or already holds a run."""
        if self.path is None:
            return
        if os.path.lexists(self.path) and not os.path.isdir(self.path):
            raise TrainingError(f"--out {self.path}: exists and is not a folder")
        if self._lock is None and os.path.isdir(self.path):
            pid = FolderLock.holder(self.path)
            if pid is not None:
                raise FolderLock(self.path)._busy(pid)
        if self.holds_run():
            if os.path.exists(self.checkpoint_path):
                raise TrainingError(f"{self.path} already holds a run",
                                    hint=f"continue it with --resume {self.path}, or choose another --out folder")
            raise TrainingError(f"{self.path} already holds a run that saved no checkpoint (it stopped before "
                                "its first one)",
                                hint=f"--resume {self.path} starts it again from epoch 0 with its seed; "
                                     "or choose another --out folder")

    def planned(self) -> list[str]:
        """The fixed names this run will write."""
        names = ["settings.json", "history.csv", "weights_final.npz", "checkpoint.npz"]
        if self.curves != "none":
            names.append(f"curves.{self.curves}")
        t = self.program.ast.train
        if t is not None and t.early_stopping is not None:
            names.append("weights_best.npz")
        if self.labels is not None:
            names.append("labels.json")
        return names

    def _foreign(self, names) -> list[str]:
        return [n for n in names if n not in self._created and os.path.lexists(self.file(n))]

    def _refuse_foreign(self, names: list[str]) -> None:
        raise TrainingError(f"{self.path} holds {', '.join(names)}, which this run would write but did not "
                            "create",
                            hint="a run never writes over files it did not create: choose another --out folder, "
                                 "or move those files")

    # --- claim / release ----------------------------------------------------------------
    def claim(self) -> None:
        """Make the folder and take it for this run (see the class doc). Idempotent."""
        if self._lock is not None:
            return
        if self.path is None:
            self._make_default_folder()
        else:
            if not os.path.isdir(self.path):
                if os.path.lexists(self.path):
                    raise TrainingError(f"{self.path}: exists and is not a folder")
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
                try:    # ours only if this mkdir made it: two runs may race to make it
                    os.mkdir(self.path)
                    self._made_folder = True
                except FileExistsError:
                    if not os.path.isdir(self.path):
                        raise TrainingError(f"{self.path}: exists and is not a folder") from None
        try:
            self._lock = FolderLock(self.path).acquire()
        except BaseException:
            if self._made_folder:
                try:
                    os.rmdir(self.path)   # only when empty: another run may have claimed it since
                except OSError:
                    pass
            raise
        try:
            self.stale_lock = self._lock.stale
            if self.fresh:
                self.check_new()   # again, now that no other run can start writing here
            self._created = self._read_manifest()
            foreign = self._foreign(self.planned())
            if foreign:
                self._refuse_foreign(foreign)
            self._remove_stale_temp_files()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        if self._lock is None:
            return
        self._lock.release()
        self._lock = None
        if self._made_folder:
            try:
                os.rmdir(self.path)   # only when empty: a run refused before writing leaves nothing
            except OSError:
                pass

    def _make_default_folder(self) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = os.path.join(self.root, f"{self.program.ast.model.name}-{stamp}")
        os.makedirs(self.root, exist_ok=True)
        path, n = base, 1
        while True:
            try:
                os.mkdir(path)
                break
            except FileExistsError:
                n += 1
                path = f"{base}-{n}"
        self.path = path
        self._made_folder = True

    def _read_manifest(self) -> set[str]:
        try:
            with open(self.file(MANIFEST_NAME), encoding="utf-8") as f:
                doc = json.load(f)
            return {str(n) for n in doc["files"]}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError):
            raise TrainingError(f"{self.file(MANIFEST_NAME)}: the list of the run's files is unreadable",
                                hint="choose another --out folder") from None
        doc = self.read_settings_doc()
        if doc is None:
            return set()
        # a run folder written before the manifest existed: its run's files are the usual names
        names = set(RUN_FILES) | {n for n in os.listdir(self.path) if re.fullmatch(r"weights_\w+\.npz", n)}
        if isinstance(doc.get("model_file"), str):
            names.add(doc["model_file"])
        return {n for n in names if os.path.exists(self.file(n))}

    def _write_manifest(self) -> None:
        doc = {"format": "nncompile-run-files", "files": sorted(self._created)}
        write_atomic(self.file(MANIFEST_NAME), lambda f: f.write((json.dumps(doc, indent=1) + "\n").encode()))

    def _remove_stale_temp_files(self) -> None:
        """Temp files a killed run left (.<name>.XXXX.tmp of the run's own names): nobody
        else can be writing them now that the folder is ours."""
        names = self._created | set(self.planned()) | {MANIFEST_NAME}
        for n in os.listdir(self.path):
            m = re.fullmatch(r"\.(.+)\.[A-Za-z0-9_]+\.tmp", n)
            if m and m.group(1) in names:
                try:
                    os.unlink(self.file(n))
                except OSError:
                    pass

    # --- writing --------------------------------------------------------------------
    def target(self, name: str) -> str:
        """The path to write `name` at, once it is the run's: a name that exists and
        the run did not create is refused; a new name goes into the manifest first."""
        if self._lock is None:
            raise RuntimeError(f"writing {name} into a run folder that was not claimed")
        if name not in self._created:
            if os.path.lexists(self.file(name)):
                self._refuse_foreign([name])
            self._created.add(name)
            self._write_manifest()
        return self.file(name)

    def write(self, name: str, write: Callable) -> None:
        """write(fileobj) into `name`, atomically."""
        write_atomic(self.target(name), write)

    def write_text(self, name: str, text: str) -> None:
        self.write(name, lambda f: f.write(text.encode("utf-8")))

    def append_text(self, name: str, text: str) -> None:
        """Append with one write(2) (a kill leaves whole lines); not fsync'ed."""
        fd = os.open(self.target(name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, new_file_mode())
        try:
            data = text.encode("utf-8")
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)

    def created_files(self) -> list[str]:
        """The run's files that are in the folder now."""
        return sorted(n for n in self._created if os.path.exists(self.file(n)))

    # --- the run's files -----------------------------------------------------------------
    def write_start(self, settings: dict, seed: int, command: Optional[list[str]] = None,
                    resumes: Optional[list] = None, data: Optional[dict] = None) -> None:
        """The .nn copy and settings.json: the run's first writes."""
        old = self.read_settings_doc() if "settings.json" in self._created else None
        self.model_file = self._write_model_copy(old)
        doc = {"model_file": self.model_file, "seed": seed, "settings": settings, "versions": versions(),
               "command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if data is not None:
            doc["data"] = data
        if resumes:
            doc["resumes"] = resumes
        self.write_text("settings.json", json.dumps(doc, indent=2, allow_nan=True) + "\n")
        if self.labels is not None:
            self.write_text("labels.json", json.dumps({"classes": list(self.labels)}, indent=2) + "\n")

    def _write_model_copy(self, old: Optional[dict]) -> str:
        prog = self.program.ast
        named = prog.filename if prog.filename and prog.filename != "<string>" else None
        source = named if named and os.path.isfile(named) else None
        base = os.path.basename(named) if named else "model.nn"
        if not base.endswith(".nn"):
            base += ".nn"
        stem = base[:-3]
        names = [old["model_file"]] if old and old.get("model_file") in self._created else []
        names += [base] + [f"{stem}.run.nn"] + [f"{stem}.run-{i}.nn" for i in range(2, 100)]
        for name in names:
            path = self.file(name)
            if source is not None and os.path.exists(path) and os.path.samefile(path, source):
                return name   # the program itself lives here under this name: it is left alone
            if name in self._created or not os.path.lexists(path):
                data = prog.source.encode("utf-8")
                if source is not None:   # byte for byte, when the file still holds what was parsed
                    try:
                        with open(source, "rb") as f:
                            raw = f.read()
                        if _normalized(raw.decode("utf-8")) == _normalized(prog.source):
                            data = raw
                    except (OSError, UnicodeDecodeError):
                        pass
                self.write(name, lambda f: f.write(data))
                return name
        raise TrainingError(f"{self.path}: no free name for the copy of {base}")

    def read_settings_doc(self) -> Optional[dict]:
        try:
            with open(self.file("settings.json"), encoding="utf-8") as f:
                doc = json.load(f)
            return doc if isinstance(doc, dict) else None
        except (OSError, ValueError):
            return None

    # --- history ----------------------------------------------------------------
    def write_history(self, history: dict[str, list[float]]) -> None:
        """(Re)write history.csv from a whole history (start of a run, a resume, the end)."""
        keys = list(history)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["epoch"] + keys)
        n = len(next(iter(history.values()))) if history else 0
        for i in range(n):
            w.writerow([i] + [repr(float(history[k][i])) for k in keys])
        self.write_text("history.csv", buf.getvalue())
        self._history_keys = keys if keys else None

    def append_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        if self._history_keys is None or not os.path.exists(self.file("history.csv")):
            self._history_keys = list(logs)
            self.write_text("history.csv", ",".join(["epoch"] + self._history_keys) + "\n")
        self.append_text("history.csv", ",".join(
            [str(epoch)] + [repr(float(logs.get(k, math.nan))) for k in self._history_keys]) + "\n")

    # --- curves -----------------------------------------------------------------
    def write_curves(self, history: dict[str, list[float]]) -> Optional[str]:
        """curves.svg (or curves.png with curves="png"); returns a note when it could not."""
        from .curves import render_png, render_svg
        title = self.program.ast.model.name
        if self.curves == "svg":
            svg = render_svg(history, title)
            if svg is not None:
                self.write_text("curves.svg", svg)
        elif self.curves == "png":
            try:
                write = render_png(history, title)
            except ImportError:
                return "matplotlib is not installed: no curves.png (pip install matplotlib)"
            if write is not None:
                self.write("curves.png", write)
        return None

    plot = write_curves

    # --- weights ----------------------------------------------------------------
    def save_weights(self, name: str, arrays, **extra) -> None:
        from .weights import save_weights
        if self.labels is not None:      # predict writes the names back
            extra.setdefault("labels", list(self.labels))
        save_weights(self.target(name), self.program, arrays, **extra)

    def save_snapshot(self, name: str, snapshot: dict, trainer) -> None:
        """weights_<name>.npz (weights_best.npz) from a trainer snapshot the loop keeps."""
        from .weights import model_signature
        names = model_signature(self.program)
        arrays = trainer.to_host({k: v for k, v in snapshot["arrays"].items() if k in names})
        self.save_weights(f"weights_{name}.npz", arrays, epoch=int(snapshot["epoch"]), seed=trainer.seed)

    def save_checkpoint(self, state) -> str:
        from .checkpoint import save_checkpoint
        path = self.target("checkpoint.npz")
        save_checkpoint(path, self.program, state)
        return path


# the name the rest of the code (and older scripts) know it by
RunRecord = RunFolder
