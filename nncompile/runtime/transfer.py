"""Transfer learning: initial weights from an `.npz` file (`init_from = weights(...)`).

    params, report = load_initial_weights(program, program.ast.train.init_from)
    trainer = program.trainer(seed=seed, params=params)   # state keys included
    say(report.text())

The file is a plain NumPy archive read with ``allow_pickle=False``, one array
per tensor, keyed like the model's parameters: ``<layer>.weight`` (in, out),
``<layer>.bias``, ``<layer>.gamma``, ``<layer>.beta`` and, for batch norm,
``<layer>.moving_mean`` / ``<layer>.moving_variance`` (optional: when absent the
running statistics keep their initial values). Other keys (``__meta__`` of a
saved weights file, layers this model does not have) are ignored and listed
in the report.

A layer is loaded only whole: all of its parameters must be in the file with
the model's shapes. Errors (`WeightsError`, located at the `init_from` setting):
the file is missing, truncated or corrupted (naming the file); a tensor has the
wrong shape (naming the layer and both shapes) or non-finite values; a layer
named in ``layers=[...]`` is not in the file, or only some of its parameters
are; no layer of the model is in the file at all.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import WeightsError
from ..ir.ops import NP_DTYPE

__all__ = ["TransferReport", "load_initial_weights", "read_npz"]


@dataclass
class TransferReport:
    path: str
    loaded: list[str] = field(default_factory=list)        # layers whose weights came from the file
    not_in_file: list[str] = field(default_factory=list)   # layers with parameters the file lacks
    tensors: list[str] = field(default_factory=list)       # the keys loaded
    kept_state: list[str] = field(default_factory=list)    # running statistics not in the file (kept)
    unused: list[str] = field(default_factory=list)        # keys in the file nothing used
    frozen: list[str] = field(default_factory=list)        # loaded layers that are frozen

    def text(self) -> str:
        """A few lines for the run's log."""
        name = os.path.basename(self.path)
        out = [f"Initial weights from {name}: loaded {', '.join(self.loaded) or 'no layers'}"
               + (f" (frozen: {', '.join(self.frozen)})" if self.frozen else "")]
        if self.not_in_file:
            out.append(f"  not in {name} (initialized as usual): {', '.join(self.not_in_file)}")
        if self.kept_state:
            out.append(f"  running statistics not in the file (kept at their initial values): "
                       f"{', '.join(self.kept_state)}")
        if self.unused:
            shown = self.unused[:8] + (["..."] if len(self.unused) > 8 else [])
            out.append(f"  unused tensors in {name}: {', '.join(shown)}")
        return "\n".join(out)


def _err(program, spec, msg: str, hint: Optional[str] = None) -> WeightsError:
    return WeightsError(msg, getattr(spec, "loc", None), source=program.ast.source, hint=hint)


def read_npz(path: str, err) -> dict[str, np.ndarray]:
    """Every array of an `.npz` (no pickles); `err(msg, hint)` makes the exception."""
    if not os.path.exists(path):
        raise err(f"weights file {path} does not exist", None)
    if os.path.isdir(path):
        raise err(f"weights file {path} is a directory", None)
    try:
        z = np.load(path, allow_pickle=False)
        if not hasattr(z, "files"):
            raise err(f"weights file {path} is a single .npy array, not an .npz archive",
                      "save the weights with numpy.savez(path, **{'h1.weight': ..., ...})")
        with z:
            return {k: np.asarray(z[k]) for k in z.files}
    except WeightsError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zipfile.LargeZipFile,
            RuntimeError, MemoryError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "pickle" in why.lower():
            why = "it holds pickled objects, which are never loaded"
        raise err(f"weights file {path} is truncated or corrupted ({why})",
                  "expected an .npz archive of arrays, e.g. written by numpy.savez") from None
    except Exception as e:  # noqa: BLE001 - zlib.error and friends: still the file's fault
        raise err(f"weights file {path} is truncated or corrupted ({type(e).__name__}: {e})",
                  "expected an .npz archive of arrays, e.g. written by numpy.savez") from None


def load_initial_weights(program, spec, path: Optional[str] = None) -> tuple[dict[str, np.ndarray], TransferReport]:
    """Initial values from the file of `spec` (an `InitFromSpec`) for the model of `program`.

    Returns (arrays, report): `arrays` maps parameter names (and batch-norm
    running statistics found in the file) to arrays of the program's float
    dtype, ready for `program.trainer(params=arrays)`. Only the layers in
    `spec.layers` (all layers with parameters when None) are considered.
    `path` overrides the file named in the spec."""
    path = os.fspath(path if path is not None else spec.path)
    err = lambda msg, hint=None: _err(program, spec, msg, hint)  # noqa: E731
    data = read_npz(path, err)
    dt = NP_DTYPE[program.float_dtype]
    infos = [i for i in program.graphs.infos if i.params]
    explicit = getattr(spec, "layers", None) is not None
    wanted = list(spec.layers) if explicit else [i.layer.name for i in infos]
    by_name = {i.layer.name: i for i in infos}
    report = TransferReport(path=path)
    out: dict[str, np.ndarray] = {}
    used: set[str] = set()
    fname = os.path.basename(path)
    for lname in wanted:
        info = by_name.get(lname)
        if info is None:  # the frontend checks layer names; a hand-made spec may not
            raise err(f"the model has no layer '{lname}' with parameters")
        params = [p for p in info.params if p.role == "param"]
        state = [p for p in info.params if p.role == "state"]
        present = [p.name for p in params if p.name in data]
        if not present:
            if explicit:
                raise err(f"layer '{lname}' is not in {fname}",
                          hint=_have_hint(data, lname, [p.name for p in params]))
            report.not_in_file.append(lname)
            continue
        if len(present) < len(params):
            missing = [p.name for p in params if p.name not in data]
            raise err(f"{fname} has {', '.join(present)} but not {', '.join(missing)}: layer '{lname}' "
                      f"can only be loaded whole")
        for p in params + [s for s in state if s.name in data]:
            a = data[p.name]
            if tuple(a.shape) != tuple(p.shape):
                raise err(f"layer '{lname}': {p.name} in {fname} has shape {list(a.shape)}, but the model "
                          f"needs {list(p.shape)}",
                          hint="the file was saved for a different architecture; load only matching "
                               "layers with layers=[...]")
            if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
                raise err(f"layer '{lname}': {p.name} in {fname} has dtype {a.dtype}, expected floats")
            a = np.ascontiguousarray(a, dtype=dt)
            if not np.all(np.isfinite(a)):
                raise err(f"layer '{lname}': {p.name} in {fname} contains NaN or Inf")
            out[p.name] = a
            used.add(p.name)
            report.tensors.append(p.name)
        report.kept_state += [s.name for s in state if s.name not in data]
        report.loaded.append(lname)
        if getattr(info.layer, "frozen", False):
            report.frozen.append(lname)
    if not report.loaded:
        keys = [k for k in data if not k.startswith("__")]
        raise err(f"no layer of model '{program.ast.model.name}' is in {fname}",
                  hint="it holds: " + (", ".join(keys[:10]) + (", ..." if len(keys) > 10 else "") if keys
                                       else "no arrays") + "; expected keys like '<layer>.weight'")
    report.unused = sorted(k for k in data if k not in used and not k.startswith("__"))
    return out, report


def _have_hint(data, lname: str, want: list[str]) -> str:
    keys = [k for k in data if not k.startswith("__")]
    layers = sorted({k.rsplit(".", 1)[0] for k in keys if "." in k})
    return (f"expected {', '.join(want)}; the file has layers: {', '.join(layers[:10]) or 'none'}"
            + ("..." if len(layers) > 10 else ""))
