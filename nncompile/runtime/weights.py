"""Weight and checkpoint files: plain `.npz` archives, never pickled.

A file holds one float (or int) array per named tensor plus ``__meta__``: a
uint8 array of UTF-8 JSON with a format marker and version, the kind of file
("weights" or "checkpoint"), the model's name and the name and shape of every
parameter it was saved for. Loading uses ``allow_pickle=False`` and checks the
marker, the version and every name and shape against the model, so a file for
another model is refused with a clear `WeightsError`, and a truncated or
corrupted file is reported as such, naming the file.

Writes are atomic: the archive is written to a temporary file in the target's
folder (with the mode a new file gets under the umask), flushed and fsync'ed,
then moved over the target with ``os.replace`` and the folder fsync'ed. A kill
at any moment leaves either the old file or the new one, never half of one.
(In a run folder every write goes through records.RunFolder, which also
refuses to write over a file the run did not create.)
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import Any, Mapping, Optional

import numpy as np

from ..errors import WeightsError

FORMAT = "nncompile"
VERSION = 1
META_KEY = "__meta__"


def umask() -> int:
    """The process's umask, read without changing it where the system allows
    (Linux: /proc/self/status), else by setting and restoring it."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def new_file_mode() -> int:
    """The mode an ordinary new file gets (0666 less the umask: 0644 under umask 022)."""
    return 0o666 & ~umask()


def fsync_folder(folder: str) -> None:
    """Make a rename or a new file in `folder` durable (where the system allows)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def write_atomic(path: str, write, *, mode: Optional[int] = None) -> None:
    """Call write(fileobj) on a temp file beside `path`, fsync it, give it the mode
    a new file gets under the umask (or `mode`), os.replace it over `path`, and
    fsync the folder. A kill at any moment leaves the old file or the new one."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):   # mkstemp makes 0600
                os.fchmod(f.fileno(), new_file_mode() if mode is None else mode)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_folder(folder)   # make the rename itself durable


def write_text_atomic(path: str, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def model_signature(program) -> dict[str, list[int]]:
    """name -> shape of every tensor inference needs (parameters and batch-norm state)."""
    g = program.graphs.predict
    return {name: [int(d) for d in g.inputs[name].shape] for name, spec in g.input_specs.items()
            if spec.role in ("param", "state")}


def save_arrays(path: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Write `arrays` and `meta` (JSON-serialisable) atomically to `path` (.npz)."""
    out = {}
    for k, v in arrays.items():
        if k == META_KEY:
            raise ValueError(f"reserved array name {k!r}")
        a = np.asarray(v)
        if a.dtype.kind not in "fiub":
            raise ValueError(f"array {k!r} has dtype {a.dtype}; only numeric arrays are saved")
        out[k] = a
    full = {"format": FORMAT, "version": VERSION, **meta}
    out[META_KEY] = np.frombuffer(json.dumps(full, allow_nan=True).encode("utf-8"), np.uint8)
    write_atomic(path, lambda f: np.savez(f, **out))


def load_arrays(path: str, what: str = "weights") -> tuple[dict[str, np.ndarray], dict]:
    """Read an archive written by `save_arrays`: (arrays, meta). Any problem with
    the file is a WeightsError naming it."""
    if os.path.isdir(path):
        raise WeightsError(f"{path} is a folder, not a {what} file")
    if not os.path.exists(path):
        raise WeightsError(f"{path}: no such {what} file")
    if not zipfile.is_zipfile(path):
        raise WeightsError(f"{path}: not a {what} file (not an .npz archive; it may be truncated or corrupted)")
    try:
        with np.load(path, allow_pickle=False) as z:
            if META_KEY not in z.files:
                raise WeightsError(f"{path}: not an nncompile {what} file (no format marker)",
                                   hint="weights files are written by `nncompile run` (weights_final.npz, "
                                        "weights_best.npz)")
            meta = json.loads(bytes(z[META_KEY]).decode("utf-8"))
            arrays = {k: np.array(z[k]) for k in z.files if k != META_KEY}
    except WeightsError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, UnicodeDecodeError,
            json.JSONDecodeError, zlib_error()) as e:
        raise WeightsError(f"{path}: the {what} file is truncated or corrupted ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise WeightsError(f"{path}: not an nncompile {what} file (unknown format marker)")
    if meta.get("version") != VERSION:
        raise WeightsError(f"{path}: {what} file format version {meta.get('version')} is not supported "
                           f"(this nncompile reads version {VERSION})")
    return arrays, meta


def zlib_error():
    import zlib
    return zlib.error


def check_signature(path: str, have: Mapping[str, Any], program, what: str = "weights") -> None:
    """Refuse a file whose tensors do not match the model (names and shapes)."""
    want = model_signature(program)
    have = {k: [int(d) for d in v] for k, v in have.items()}
    missing = [k for k in want if k not in have]
    extra = [k for k in have if k not in want]
    wrong = [k for k in want if k in have and have[k] != want[k]]
    if not (missing or extra or wrong):
        return
    lines = []
    for k in wrong:
        lines.append(f"  {k}: shape {tuple(have[k])} in the file, {tuple(want[k])} in the model")
    for k in missing:
        lines.append(f"  {k}: in the model {tuple(want[k])}, not in the file")
    for k in extra:
        lines.append(f"  {k}: in the file {tuple(have[k])}, not in the model")
    shown = lines[:12] + ([f"  ... and {len(lines) - 12} more"] if len(lines) > 12 else [])
    raise WeightsError(f"{path}: this {what} file does not fit model '{program.ast.model.name}' "
                       f"({program.ast.filename}):\n" + "\n".join(shown),
                       hint="was it saved for another model, or was the .nn file edited since?")


def save_weights(path: str, program, arrays: Mapping[str, np.ndarray], **extra) -> None:
    """Save the model's inference tensors (parameters and batch-norm state)."""
    sig = model_signature(program)
    host = {k: np.asarray(arrays[k]) for k in sig}
    meta = {"kind": "weights", "model": program.ast.model.name,
            "tensors": {k: list(v.shape) for k, v in host.items()}, **extra}
    save_arrays(path, host, meta)


def resolve(path: str) -> str:
    """A weights path from a file or a run folder (weights_final.npz, else
    weights_best.npz, else the checkpoint)."""
    if os.path.isdir(path):
        for name in ("weights_final.npz", "weights_best.npz", "checkpoint.npz"):
            p = os.path.join(path, name)
            if os.path.exists(p):
                return p
        raise WeightsError(f"{path}: the folder holds no weights_final.npz, weights_best.npz or checkpoint.npz")
    return path


def class_names(path: str) -> Optional[list[str]]:
    """The class names of a run trained on text labels ("cat", "dog"), by class index:
    those its weights file records, else its folder's labels.json; None for numbers."""
    path = resolve(path)
    _, meta = load_arrays(path)
    if meta.get("labels") is not None:
        return [str(n) for n in meta["labels"]]
    beside = os.path.join(os.path.dirname(os.path.abspath(path)), "labels.json")
    if os.path.exists(beside):
        try:
            with open(beside, encoding="utf-8") as f:
                return [str(n) for n in json.load(f)["classes"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise WeightsError(f"{beside}: not a labels file ({e})") from None
    return None


def load_weights(path: str, program) -> dict[str, np.ndarray]:
    """The model's inference tensors from a weights file, a checkpoint or a run
    folder, checked against `program`."""
    path = resolve(path)
    arrays, meta = load_arrays(path)
    kind = meta.get("kind")
    sig = model_signature(program)
    if kind == "checkpoint":
        arrays = {k: v for k, v in arrays.items() if k in sig}   # the live tensors, not "best/..." or optimizer state
        tensors = {k: list(v.shape) for k, v in arrays.items()}
    elif kind == "weights":
        tensors = meta.get("tensors", {})
    else:
        raise WeightsError(f"{path}: not a weights file (kind {kind!r})")
    check_signature(path, tensors, program)
    for k, v in arrays.items():
        if list(v.shape) != list(tensors.get(k, v.shape)):
            raise WeightsError(f"{path}: array {k!r} has shape {v.shape} but the file says {tuple(tensors[k])}; "
                               "the file is corrupted")
    check_signature(path, {k: v.shape for k, v in arrays.items()}, program)
    dt = np.float64 if program.float_dtype == "f64" else np.float32
    out = {}
    for k, v in arrays.items():
        if v.dtype.kind != "f":
            raise WeightsError(f"{path}: array {k!r} has dtype {v.dtype}, expected floats")
        bad = ~np.isfinite(v)
        if bad.any():     # predictions from them would be NaN without a word
            raise WeightsError(f"{path}: array {k!r} holds {int(bad.sum())} NaN or infinite value(s) "
                               f"(first at index {tuple(int(i) for i in np.argwhere(bad)[0])})",
                               hint="the run that wrote it diverged; use an earlier checkpoint or "
                                    "weights_best.npz")
        out[k] = np.ascontiguousarray(v, dt)
    return out

