"""Data loading: CSV, .npz, the built-in digits set and synthetic problems
(Gaussian classes, a noisy linear regression, shapes in images).

``load_data`` turns a checked :class:`~nncompile.frontend.ast.DataSpec` into a
:class:`Dataset` (float32 features, int64 class labels or float32 targets);
``split`` carves a seeded validation part out of it and ``batches`` yields the
index arrays of one epoch.

Every problem with the data is a :class:`~nncompile.errors.DataError` that
carries the ``.nn`` location of the data setting as ``loc`` and names the file,
the row (1-based line number in the file) and the column in its message::

    model.nn:12:10: error: data/train.csv: row 17, column 'x3': 'abc' is not a number

Images are channels-last, [N, H, W, C]; ``fits_input`` is the one rule by
which a source's samples are reshaped to the model's input (flat rows read
row-major, axes of size 1 free, any other layout an error naming both shapes).

The DataSpec's args are the checked arguments of its source (defaults and
ranges: `frontend/specs/sources.py`); a DataSpec made by hand gets the
missing defaults from the same rows. No pickle is ever loaded and
scikit-learn is not needed at run time.
"""
from __future__ import annotations

import codecs
import csv
import io
import math
import os
import zipfile
from dataclasses import dataclass, replace
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from ..errors import DataError, SourceLoc, did_you_mean, expected_one_of, fmt_bytes, physical_memory
from ..frontend.specs.sources import BUILTIN_DATASETS as BUILTINS
from ..frontend.specs.sources import DATA_SOURCES, IMAGE_SHAPES

__all__ = ["Dataset", "load_data", "split", "batches", "one_hot", "fits_input", "fit_to_input", "BUILTINS",
           "LABEL_KINDS", "with_label_names"]
LABEL_KINDS = ("class", "float", "auto")
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass(eq=False)
class Dataset:
    """x: float32 [N, *feature_shape], C-contiguous.
    y: int64 [N] (class labels) or float32 [N, k] (regression / one-hot targets).
    name: for messages ("data/train.csv", "builtin digits", ...)."""

    x: np.ndarray
    y: np.ndarray
    name: str
    # the names of x's columns, in order, when the file had a header (CSV); else None
    columns: Optional[tuple[str, ...]] = None
    # the file row of each sample (1-based, the header counted), for a CSV; else None
    rows: Optional[np.ndarray] = None
    # text class labels ("cat", "dog"): the name of each class index, sorted; else None
    label_names: Optional[tuple[str, ...]] = None
    # float [N] sample weights (fit's sample_weight / class_weight), or None: all 1
    w: Optional[np.ndarray] = None

    def part(self, idx, what: str) -> "Dataset":
        """The samples `idx` (an index array or a slice), as "<name> (<what>)"."""
        cut = (lambda a: None if a is None else np.ascontiguousarray(a[idx]))
        return Dataset(np.ascontiguousarray(self.x[idx]), np.ascontiguousarray(self.y[idx]),
                       f"{self.name} ({what})", self.columns, cut(self.rows), label_names=self.label_names,
                       w=cut(self.w))

    def where(self, i: int) -> str:
        """How messages name sample i: "row N" of the file for a CSV, else "sample i"
        (0-based, as an index into the arrays)."""
        return f"row {int(self.rows[i])}" if self.rows is not None else f"sample {i}"

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x.shape[1:])

    @property
    def label_kind(self) -> str:
        """"class" when y holds int64 class labels, else "float"."""
        return "class" if self.y.ndim == 1 else "float"

    @property
    def num_classes(self) -> Optional[int]:
        """max label + 1 for class labels, None for float targets."""
        if self.y.ndim != 1 or len(self.y) == 0:
            return None
        return int(self.y.max()) + 1


# --------------------------------------------------------------------------- helpers

class _Ctx:
    """Raises DataErrors that point at the data setting of the .nn file."""

    def __init__(self, loc: Optional[SourceLoc], name: str = ""):
        self.loc = loc
        self.name = name

    def fail(self, message: str, hint: Optional[str] = None):
        raise DataError(f"{self.name}: {message}" if self.name else message, self.loc, hint=hint)


def _display_path(path: str, loc: Optional[SourceLoc]) -> str:
    """The path as the user likely wrote it: relative to the .nn file's folder
    when it lies below it, else as given."""
    try:
        p = os.path.abspath(path)
        if loc is not None and loc.file:
            base = os.path.dirname(os.path.abspath(loc.file))
            if os.path.commonpath([p, base]) == base:
                return os.path.relpath(p, base)
    except (ValueError, OSError):
        pass
    return str(path)


def _list_names(names: Sequence[str], limit: int = 20) -> str:
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... ({len(names)} in all)"


def _read_bytes(path: str, ctx: _Ctx) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        ctx.fail("file not found", hint=f"looked for {os.path.abspath(path)}")
    except IsADirectoryError:
        ctx.fail("is a directory, not a file")
    except PermissionError:
        ctx.fail("cannot be read (permission denied)")
    except OSError as e:
        ctx.fail(f"cannot be read ({e.strerror or e})")
    raise AssertionError("unreachable")


def _check_readable(path: str, ctx: _Ctx) -> None:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except FileNotFoundError:
        ctx.fail("file not found", hint=f"looked for {os.path.abspath(path)}")
    except IsADirectoryError:
        ctx.fail("is a directory, not a file")
    except PermissionError:
        ctx.fail("cannot be read (permission denied)")
    except OSError as e:
        ctx.fail(f"cannot be read ({e.strerror or e})")


def _squeezed(shape) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def fits_input(have: Sequence[int], want: Sequence[int]) -> bool:
    """Whether samples of shape `have` can feed an input of shape `want` by a
    row-major reshape that keeps what each axis means: as many values, and one
    side flat (features read row-major into an image, or an image flattened for
    a dense net), or both the same once axes of size 1 are dropped ([H, W] for
    [H, W, 1]). Images in another layout (channels-first [C, H, W] for
    [H, W, C], [W, H] for [H, W]) do not fit."""
    have, want = tuple(int(d) for d in have), tuple(int(d) for d in want)
    if math.prod(have) != math.prod(want):
        return False
    h, w = _squeezed(have), _squeezed(want)
    return len(h) <= 1 or len(w) <= 1 or h == w


def _transpose_hint(have: tuple[int, ...], want: tuple[int, ...]) -> Optional[str]:
    """A transpose that turns samples of shape `have` into `want`, when the dims are a permutation."""
    if len(have) != len(want) or sorted(have) != sorted(want):
        return None
    perm, used = [], set()
    for d in want:
        i = next(i for i, h in enumerate(have) if h == d and i not in used)
        used.add(i)
        perm.append(i)
    axes = ", ".join(str(i + 1) for i in perm)
    return (f"the array holds the same values in another axis order; images are channels-last "
            f"[H, W, C]: save x.transpose(0, {axes}) (shape [N, {', '.join(map(str, want))}])")


def _check_shape(x: np.ndarray, feature_shape: Optional[tuple[int, ...]], ctx: _Ctx,
                 what: str, hint: Optional[str] = None) -> np.ndarray:
    """Reshape x [N, ...] to [N, *feature_shape] (the rule of `fits_input`) or fail
    with a message that names both shapes."""
    if feature_shape is None:
        return x
    feature_shape = tuple(int(d) for d in feature_shape)
    have_shape = tuple(int(d) for d in x.shape[1:])
    if have_shape == feature_shape:
        return x
    if fits_input(have_shape, feature_shape):
        return x.reshape((x.shape[0],) + feature_shape)
    have = math.prod(have_shape)
    want = math.prod(feature_shape)
    shape_txt = "[" + ", ".join(str(d) for d in feature_shape) + "]"
    if have == want:
        ctx.fail(f"{what}, but the model's input has shape {shape_txt}: as many values per sample, "
                 "in another layout", hint=_transpose_hint(have_shape, feature_shape) or
                 f"declare the input as f32[{', '.join(map(str, have_shape))}], or reshape the data "
                 f"to [N, {', '.join(map(str, feature_shape))}]")
    ctx.fail(f"{what}, but the model's input has shape {shape_txt} ({want} value{'s' if want != 1 else ''} "
             "per sample)", hint=hint)
    raise AssertionError("unreachable")


def fit_to_input(x: np.ndarray, feature_shape: Sequence[int], name: str,
                 loc: Optional[SourceLoc] = None) -> np.ndarray:
    """x [N, ...] reshaped to [N, *feature_shape] by the rule of `fits_input`, else a
    DataError (naming `name` and both shapes)."""
    x = np.asarray(x)
    return _check_shape(x, tuple(feature_shape), _Ctx(loc, name),
                        f"the samples have shape {list(x.shape[1:])}")


def _finish(x: np.ndarray, y: np.ndarray, name: str) -> Dataset:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if y.ndim == 1:
        y = np.ascontiguousarray(y, dtype=np.int64)
    else:
        y = np.ascontiguousarray(y, dtype=np.float32)
    return Dataset(x=x, y=y, name=name)


def csv_columns(path: str) -> Optional[list[str]]:
    """The header of a CSV file (its first non-blank row), or None when it cannot be read."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            for row in csv.reader(f):
                if row and any(c.strip() for c in row):
                    return [c.strip() for c in row]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None


def training_features(spec) -> Optional[list[str]]:
    """The feature column names a CSV data source trains on, in order: its
    `features`, else every column of its header but the targets; None for
    other sources, header-less files, or a file that cannot be read."""
    if spec is None or spec.kind != "csv" or not spec.args["header"]:
        return None
    if spec.args["features"] is not None:
        return list(spec.args["features"])
    columns = csv_columns(spec.args["path"])
    return None if columns is None else [c for c in columns if c not in spec.args["target"]]


def select_columns(ds: "Dataset", wanted: Sequence[str], ignore: Sequence[str] = ()) -> "Dataset":
    """x's columns reordered to `wanted` by name (the training order). A file
    without some wanted column, or with columns the model does not know (other
    than `ignore`, the targets), is refused with the names listed."""
    if ds.columns is None:
        return ds
    have = list(ds.columns)
    missing = [c for c in wanted if c not in have]
    unknown = [c for c in have if c not in wanted and c not in ignore]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"lacks the model's feature column{'s' if len(missing) > 1 else ''} {_list_names(missing, 8)}")
        if unknown:
            parts.append(f"has column{'s' if len(unknown) > 1 else ''} the model was not trained on: "
                         f"{_list_names(unknown, 8)}")
        raise DataError(f"{ds.name}: the header {' and '.join(parts)}",
                        hint=f"the model's features, in order: {_list_names(list(wanted), 20)}")
    order = [have.index(c) for c in wanted]
    if order == list(range(len(have))):
        return ds
    x = np.ascontiguousarray(ds.x.reshape(len(ds.x), -1)[:, order])
    return replace(ds, x=x, columns=tuple(wanted))


def one_hot(y: np.ndarray, classes: int) -> np.ndarray:
    """int labels [N] -> float32 one-hot [N, classes] (labels must be < classes)."""
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    out = np.zeros((y.shape[0], int(classes)), dtype=np.float32)
    out[np.arange(y.shape[0]), y] = 1.0
    return out


# --------------------------------------------------------------------------- entry point

def load_data(spec, *, feature_shape: Optional[tuple[int, ...]] = None,
              label_kind: str = "auto") -> Dataset:
    """Load the data a checked DataSpec names.

    label_kind: "class": y must be integers >= 0 (a float column holding integral
    values is accepted) and comes back int64 [N]; needs exactly one target.
    "float": y comes back float32 [N, k] (the target values as they are; class
    labels become one float column -- use ``one_hot`` for one-hot targets).
    "auto": class labels when the source says so (integer npz array, builtin
    digits, synthetic.classification, a single CSV column of integers >= 0),
    else float. Callers that know the loss should pass "class" or "float".
    A file of features only (csv target=[], npz y=None) gives y float32 [N, 0].

    feature_shape: the model's input shape; x is checked against it and reshaped.
    """
    if label_kind not in LABEL_KINDS:
        raise ValueError(f"label_kind must be one of {LABEL_KINDS}, not {label_kind!r}")
    kind = spec.kind
    loc = getattr(spec, "loc", None)
    if kind not in _LOADERS:
        raise DataError(f"unknown data source '{kind}'", loc, hint=expected_one_of(str(kind), DATA_SOURCES))
    args = DATA_SOURCES[kind].complete(spec.args or {})
    if feature_shape is not None:
        feature_shape = tuple(int(d) for d in feature_shape)
    return _LOADERS[kind](args, loc, feature_shape, label_kind)


# --------------------------------------------------------------------------- labels

def _labels_from_float(values: np.ndarray, label_kind: str, ctx: _Ctx, where,
                       auto_class: bool) -> np.ndarray:
    """values: float64 [N, k]. Returns int64 [N] or float32 [N, k].

    where(i, j) -> "row 5, column 'y'" locating sample i, target j."""
    if label_kind == "auto":
        label_kind = "class" if auto_class else "float"
    if label_kind == "float":
        big = np.abs(values) > _F32_MAX
        if big.any():
            i, j = np.argwhere(big)[0]
            ctx.fail(f"{where(i, j)}: {values[i, j]!r} is too large for float32")
        return values.astype(np.float32)
    # class labels
    if values.shape[1] != 1:
        ctx.fail(f"class labels need exactly one target column, but there are {values.shape[1]}",
                 hint="one-hot or multi-output targets need a loss that takes float targets "
                      "(e.g. categorical_crossentropy or mse)")
    v = values[:, 0]
    neg = v < 0
    if neg.any():
        i = int(np.argmax(neg))
        ctx.fail(f"{where(i, 0)}: class label {_num(v[i])} is negative",
                 hint="class labels must be integers 0, 1, 2, ...")
    frac = v != np.floor(v)
    if frac.any():
        i = int(np.argmax(frac))
        ctx.fail(f"{where(i, 0)}: class label {_num(v[i])} is not an integer",
                 hint="class labels must be integers 0, 1, 2, ...; for continuous targets "
                      "use a regression loss such as mse")
    if (v > 2**31).any():
        i = int(np.argmax(v > 2**31))
        ctx.fail(f"{where(i, 0)}: class label {_num(v[i])} is too large")
    return v.astype(np.int64)


def _num(v: float) -> str:
    v = float(v)
    return str(int(v)) if v == math.floor(v) and abs(v) < 1e15 else repr(v)


def _is_class_column(values: np.ndarray) -> bool:
    return (values.shape[1] == 1 and values.shape[0] > 0 and bool((values >= 0).all())
            and bool((values == np.floor(values)).all()))


# --------------------------------------------------------------------------- csv

def _load_csv(args: dict[str, Any], loc, feature_shape, label_kind) -> Dataset:
    path, header, target, features = args["path"], args["header"], list(args["target"]), args["features"]
    name = _display_path(path, loc)
    ctx = _Ctx(loc, name)

    data = _read_bytes(path, ctx)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        _fail_decode(data, e, header, ctx)
        raise AssertionError("unreachable")
    if not text.strip():
        ctx.fail("the file is empty", hint="expected a header line and rows of comma-separated numbers"
                 if header else "expected rows of comma-separated numbers")

    # Parse everything with the csv module, remembering the line each row starts on.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[list[str]] = []
    lines: list[int] = []
    prev = 0
    try:
        for row in reader:
            start = prev + 1
            prev = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            rows.append(row)
            lines.append(start)
    except csv.Error as e:
        ctx.fail(f"row {prev + 1}: not valid CSV ({e})")
    if not rows:
        ctx.fail("the file is empty")

    if header:
        columns = [c.strip() for c in rows[0]]
        header_line = lines[0]
        rows, lines = rows[1:], lines[1:]
        seen: dict[str, int] = {}
        for i, c in enumerate(columns):
            if c in seen:
                shown = f"'{c}'" if c else "an empty name"
                ctx.fail(f"row {header_line} (header): column {i + 1} has {shown}, like column {seen[c] + 1}",
                         hint="column names must be unique")
            seen[c] = i
        if not rows:
            ctx.fail(f"the file has a header (row {header_line}) but no data rows")
        if not target and all(_is_number(c) for c in columns):  # nothing else would notice
            ctx.fail("the first row is numbers, not a header", hint="the first line must name the feature columns")
    else:
        columns = [f"c{i}" for i in range(len(rows[0]))]
        header_line = None
    ncols = len(columns)
    index = {c: i for i, c in enumerate(columns)}

    # Resolve the target and feature columns (no target: a file of features only).
    for group, names in (("target", target), ("feature", features or [])):
        for c in names:
            if c not in index:
                _fail_missing_column(c, group, columns, header, header_line, rows, ctx)
    if features is None:
        features = [c for c in columns if c not in target]
    else:
        both = [f for f in features if f in target]
        if both:
            ctx.fail(f"column '{both[0]}' is both a feature and a target")
    if not features:
        ctx.fail(f"no feature columns: the file's only column{'s are' if ncols > 1 else ' is'} "
                 f"the target ({_list_names(columns)})")

    # Check every row's cell count, then parse the used columns.
    for row, line in zip(rows, lines):
        if len(row) != ncols:
            ctx.fail(_cell_count_message(row, line, columns, header))
    fidx = [index[c] for c in features]
    tidx = [index[c] for c in target]
    x = _parse_cells(rows, lines, fidx, columns, ctx)
    cells = [row[tidx[0]].strip() for row in rows] if len(tidx) == 1 else []
    label_names = None
    if cells and not any(_is_number(c) for c in cells):
        if label_kind == "float":
            ctx.fail(f"row {lines[0]}, column '{target[0]}': {cells[0][:40]!r} is not a number",
                     hint="text class labels ('cat', 'dog') need loss = sparse_categorical_crossentropy")
        label_names, t = _text_labels(cells, lines, target[0], ctx)
    else:
        t = _parse_cells(rows, lines, tidx, columns, ctx)

    big = np.abs(x) > _F32_MAX
    if big.any():
        i, j = np.argwhere(big)[0]
        ctx.fail(f"row {lines[i]}, column '{features[j]}': {rows[i][fidx[j]].strip()!r} is too large for float32")

    def where(i, j):
        return f"row {lines[i]}, column '{target[j]}'"

    y = _labels_from_float(t, label_kind, ctx, where, auto_class=_is_class_column(t))
    feat_txt = (f"{len(features)} feature column{'s' if len(features) != 1 else ''} "
                f"({_list_names(features, 8)})")
    x = _check_shape(x, feature_shape, ctx, f"the file has {feat_txt}",
                     hint="pick the feature columns with `features`, or change the model's input shape")
    ds = _finish(x, y, name)
    ds.columns = tuple(features) if header else None
    ds.rows = np.asarray(lines, np.int64)
    ds.label_names = label_names
    return ds


def _text_labels(cells: list[str], lines, column: str, ctx: _Ctx) -> tuple[tuple[str, ...], np.ndarray]:
    """Class names in a target column of text: (the sorted names, each row's index as
    a float64 [N, 1] column)."""
    for i, c in enumerate(cells):
        if not c:
            ctx.fail(f"row {lines[i]}, column '{column}': the label is empty",
                     hint="fill in missing labels or remove the row")
    names = tuple(sorted(set(cells)))
    index = {n: k for k, n in enumerate(names)}
    return names, np.array([[index[c]] for c in cells], np.float64)


def with_label_names(ds: Dataset, names: Optional[tuple[str, ...]], of: str) -> Dataset:
    """`ds` with its text labels numbered as `names` (the training data's, `of` names
    that data) rather than its own; a label the training data lacks, or numbers
    where the training labels are text (or the reverse), is a DataError."""
    if ds.label_names == names:
        return ds
    if names is None or ds.label_names is None:
        text, nums = (ds.name, of) if names is None else (of, ds.name)
        raise DataError(f"{ds.name}: the class labels of {text} are text, those of {nums} numbers",
                        hint="write the labels the same way in both")
    index = {n: k for k, n in enumerate(names)}
    for k, n in enumerate(ds.label_names):
        if n not in index:
            i = int(np.flatnonzero(ds.y == k)[0])
            raise DataError(f"{ds.name}: {ds.where(i)} has label {n!r}, which {of} does not have",
                            hint="the classes: " + _list_names(list(names)))
    remap = np.array([index[n] for n in ds.label_names], np.int64)
    return replace(ds, y=remap[ds.y], label_names=names)


def _parse_cells(rows, lines, cols, columns, ctx: _Ctx) -> np.ndarray:
    out = np.empty((len(rows), len(cols)), dtype=np.float64)
    for i, row in enumerate(rows):
        for j, c in enumerate(cols):
            cell = row[c].strip()
            try:
                v = float(cell)
            except ValueError:
                if not cell:
                    ctx.fail(f"row {lines[i]}, column '{columns[c]}': the cell is empty",
                             hint="fill in missing values or remove the row")
                shown = cell if len(cell) <= 40 else cell[:37] + "..."
                ctx.fail(f"row {lines[i]}, column '{columns[c]}': {shown!r} is not a number")
            if not math.isfinite(v):
                what = "NaN" if math.isnan(v) else "an infinite value"
                ctx.fail(f"row {lines[i]}, column '{columns[c]}': {cell!r} is {what}; "
                         "only finite numbers are allowed",
                         hint="fill in missing values or remove the row")
            out[i, j] = v
    return out


def _cell_count_message(row, line, columns, header) -> str:
    n, ncols = len(row), len(columns)
    src = "the header has" if header else "the first row has"
    if n < ncols:
        missing = columns[n]
        return (f"row {line}, column '{missing}': the cell is missing (the row has {n} cell"
                f"{'s' if n != 1 else ''}, {src} {ncols} columns)")
    extra = row[ncols].strip()
    shown = extra if len(extra) <= 20 else extra[:17] + "..."
    return (f"row {line}: {n} cells, but {src} {ncols} columns (extra cell {shown!r} after column "
            f"'{columns[-1]}')")


def _fail_missing_column(c, group, columns, header, header_line, rows, ctx: _Ctx):
    msg = (f"row {header_line} (header): no {group} column '{c}'" if header
           else f"no {group} column '{c}'")
    hint = f"the columns are: {_list_names(columns)}{did_you_mean(c, columns)}"
    sep = _other_separator(columns)
    if sep:
        hint += (f"\nthe file looks separated by {sep!r}, not commas (the header is one column): save it "
                 f"comma-separated (e.g. `tr '{sep}' ',' < in.csv > out.csv`)")
    if header:
        if columns and all(_is_number(h) for h in columns):
            hint += "\nthe first row looks like data, not names: set header=false"
    else:
        hint = ("the file has no header (header=false), so its columns are named "
                f"c0..c{len(columns) - 1}")
    ctx.fail(msg, hint=hint)


def _other_separator(columns) -> Optional[str]:
    """';', tab or '|' when a one-column header holds it (a file in another dialect)."""
    if len(columns) != 1:
        return None
    return next((c for c in (";", "\t", "|") if c in columns[0]), None)


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _fail_decode(data: bytes, e: UnicodeDecodeError, header: bool, ctx: _Ctx):
    line = data.count(b"\n", 0, e.start) + 1
    line_start = data.rfind(b"\n", 0, e.start) + 1
    bad = data[e.start:e.end]
    column = ""
    try:
        prefix = data[line_start:e.start].decode("utf-8")
        cells = next(csv.reader([prefix])) if prefix else [""]
        col = len(cells) - 1
        if header and line > 1:
            first = data[:data.find(b"\n")] if b"\n" in data else data
            names = next(csv.reader([first.decode("utf-8", "replace").rstrip("\r")]))
            if col < len(names):
                column = f", column '{names[col].strip()}'"
        elif not header:
            column = f", column 'c{col}'"
    except Exception:  # the column is a nicety; the row is what matters
        column = ""
    where = f"row {line} (header)" if header and line == 1 else f"row {line}"
    ctx.fail(f"{where}{column}: bytes {bad!r} are not valid UTF-8",
             hint="save the file as UTF-8 text")


# --------------------------------------------------------------------------- npz

_NUMERIC_KINDS = "biuf"


def _npz_dtype(zf: zipfile.ZipFile, key: str) -> Optional[np.dtype]:
    """Read the dtype from an .npz member's header without loading (or unpickling) it."""
    member = key + ".npy"
    if member not in zf.namelist():
        return None
    try:
        with zf.open(member) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                _, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                _, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                return None
            return np.dtype(dtype)
    except Exception:
        return None


def _check_finite(a: np.ndarray, key: str, ctx: _Ctx) -> None:
    """Refuse NaN/Inf in a float array, naming the first bad index."""
    if a.dtype.kind != "f":
        return
    bad = ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        v = a[idx]
        ctx.fail(f"array '{key}' has {'NaN' if np.isnan(v) else 'an infinite value'} at index "
                 f"{list(idx)} (sample {idx[0]}); only finite numbers are allowed")


def _load_npz(args: dict[str, Any], loc, feature_shape, label_kind) -> Dataset:
    path, xkey, ykey = args["path"], args["x"], args["y"]     # ykey None: features only
    name = _display_path(path, loc)
    ctx = _Ctx(loc, name)
    wanted = [(xkey, "features")] + ([(ykey, "targets")] if ykey is not None else [])
    _check_readable(path, ctx)
    if os.path.getsize(path) == 0:
        ctx.fail("the file is empty, not an .npz archive")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            magic = f.read(6)
        if magic == b"\x93NUMPY":
            ctx.fail("is a single .npy array, not an .npz archive",
                     hint="save with np.savez(path, x=..., y=...)")
        ctx.fail("is not an .npz archive (it is not a zip file; it may be truncated or corrupted)",
                 hint="save with np.savez(path, x=..., y=...)")
    arrays = {}
    try:
        with zipfile.ZipFile(path) as zf:
            dtypes = {k: _npz_dtype(zf, k) for k, _ in wanted}
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.files)
            for key, role in wanted:
                if key not in keys:
                    ctx.fail(f"no array '{key}' (the {role})",
                             hint=(f"the file holds: {_list_names(keys) or 'no arrays'}"
                                   f"{did_you_mean(key, keys)}"))
                dt = dtypes.get(key)
                if dt is not None and dt.hasobject:
                    ctx.fail(f"array '{key}' holds Python objects (dtype object); nncompile never "
                             "unpickles data", hint="save numeric arrays (e.g. x.astype(np.float32))")
                try:
                    arrays[key] = np.asarray(z[key])
                except DataError:
                    raise
                except ValueError as e:
                    if "allow_pickle" in str(e) or "bject" in str(e):
                        ctx.fail(f"array '{key}' holds Python objects (dtype object); nncompile never "
                                 "unpickles data", hint="save numeric arrays (e.g. x.astype(np.float32))")
                    ctx.fail(f"array '{key}' cannot be read (the file may be truncated or corrupted: {e})")
                except Exception as e:
                    ctx.fail(f"array '{key}' cannot be read (the file may be truncated or corrupted: "
                             f"{type(e).__name__}: {e})")
    except DataError:
        raise
    except Exception as e:
        ctx.fail(f"is not a readable .npz archive (it may be truncated or corrupted: {type(e).__name__}: {e})")

    x = arrays[xkey]
    y = arrays[ykey] if ykey is not None else np.zeros((x.shape[0] if x.ndim else 0, 0), np.float32)
    for key, a in ((xkey, x), (ykey, y)):
        if a.dtype.hasobject:
            ctx.fail(f"array '{key}' holds Python objects (dtype object); nncompile never unpickles data")
        if a.dtype.kind not in _NUMERIC_KINDS:
            ctx.fail(f"array '{key}' has dtype {a.dtype}, which is not numeric",
                     hint="features and targets must be integer, float or bool arrays")
        if a.ndim == 0:
            ctx.fail(f"array '{key}' is a single number (shape ()), not one entry per sample")
    if x.shape[0] != y.shape[0]:
        ctx.fail(f"array '{xkey}' has {x.shape[0]} samples but array '{ykey}' has {y.shape[0]}",
                 hint="the first dimension of x and y is the sample count; they must match")
    if x.shape[0] == 0:
        ctx.fail(f"array '{xkey}' has no samples")

    _check_finite(x, xkey, ctx)
    if x.dtype.kind == "f":
        big = np.abs(x.astype(np.float64)) > _F32_MAX
        if big.any():
            idx = tuple(int(i) for i in np.argwhere(big)[0])
            ctx.fail(f"array '{xkey}' at index {list(idx)}: {x[idx]!r} is too large for float32")
    _check_finite(y, ykey, ctx)

    if x.ndim == 1:
        x = x.reshape(-1, 1)
    # y as float64 [N, k]
    if y.ndim == 1:
        y2 = y.reshape(-1, 1)
    else:
        y2 = y.reshape(y.shape[0], -1)
    auto_class = y.dtype.kind in "biu" and (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1))
    if label_kind == "class" and y2.shape[1] != 1:
        ctx.fail(f"class labels need one label per sample, but array '{ykey}' has shape "
                 f"{list(y.shape)}", hint="one-hot targets need a loss that takes float targets "
                                          "(e.g. categorical_crossentropy)")

    def where(i, j):
        return f"array '{ykey}' at index {i}"

    yv = _labels_from_float(y2.astype(np.float64), label_kind, ctx, where, auto_class=auto_class)
    x = _check_shape(x, feature_shape, ctx,
                     f"array '{xkey}' has shape {list(x.shape)} ({int(np.prod(x.shape[1:]))} values per sample)")
    return _finish(x, yv, name)


# --------------------------------------------------------------------------- builtin

def _builtin_path():
    from importlib import resources
    return resources.files("nncompile.runtime").joinpath("datasets", "digits.npz")


def _load_builtin(args: dict[str, Any], loc, feature_shape, label_kind) -> Dataset:
    bname = args["name"]
    if bname not in BUILTINS:   # a DataSpec made by hand may name anything
        raise DataError(f"unknown built-in dataset '{bname}'", loc, hint=expected_one_of(bname, BUILTINS))
    name = f"builtin {bname}"
    ctx = _Ctx(loc, name)
    try:
        from importlib import resources
        with resources.as_file(_builtin_path()) as p, np.load(p, allow_pickle=False) as z:
            xr = np.asarray(z["x"])
            yr = np.asarray(z["y"])
    except Exception as e:  # a broken installation
        ctx.fail(f"the shipped data file cannot be read ({type(e).__name__}: {e})",
                 hint="reinstall nncompile")
    x = xr.astype(np.float32) / np.float32(16.0)              # [N, 64]: 8x8 images, row-major
    if feature_shape is not None:                              # checked as the images they are
        x = x.reshape(-1, 8, 8)
    if label_kind == "float":
        y = yr.astype(np.float32).reshape(-1, 1)
    else:
        y = yr.astype(np.int64)
    x = _check_shape(x, feature_shape, ctx, "the digits are 8x8 images (64 values per sample)",
                     hint="declare the input as f32[64] or f32[8, 8, 1]")
    return _finish(x, y, name)


# --------------------------------------------------------------------------- synthetic

def _inv_norm_cdf(p: float) -> float:
    """Inverse of the standard normal CDF (bisection; no scipy)."""
    lo, hi = -10.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _check_fits(nbytes: int, ctx: _Ctx) -> None:
    """Refuse a generated data set that cannot fit in this machine's memory."""
    if nbytes > physical_memory() // 2:
        ctx.fail(f"generating it needs about {fmt_bytes(nbytes)}, more than this machine can hold "
                 f"({fmt_bytes(physical_memory())} of memory)", hint="use fewer samples or features")


def _synthetic_classification(args, loc, feature_shape, label_kind) -> Dataset:
    n_s, n_f, n_c, seed = args["samples"], args["features"], args["classes"], args["seed"]
    name = f"synthetic.classification(samples={n_s}, features={n_f}, classes={n_c}, seed={seed})"
    ctx = _Ctx(loc, name)
    _check_fits(n_s * (n_f + 1) * 8, ctx)
    rng = np.random.default_rng(seed)
    centroids = rng.standard_normal((n_c, n_f))
    if n_c >= 2:
        # Moderate overlap: scale so the mean distance between centroids makes the
        # Bayes error about 10% (pairwise error Phi(-d/2) ~ 0.1 / (classes - 1)).
        diff = centroids[:, None, :] - centroids[None, :, :]
        dist = np.sqrt((diff ** 2).sum(-1))
        mean_d = dist[np.triu_indices(n_c, 1)].mean()
        target_d = 2.0 * _inv_norm_cdf(1.0 - 0.1 / (n_c - 1))
        centroids *= target_d / max(mean_d, 1e-12)
    y = np.arange(n_s, dtype=np.int64) % n_c
    y = y[rng.permutation(n_s)]
    x = centroids[y] + rng.standard_normal((n_s, n_f))
    if label_kind == "float":
        yv = y.astype(np.float32).reshape(-1, 1)
    else:
        yv = y
    x = _check_shape(x, feature_shape, ctx, f"it has {n_f} feature{'s' if n_f != 1 else ''}",
                     hint="make `features` match the model's input size")
    return _finish(x, yv, name)


def _synthetic_regression(args, loc, feature_shape, label_kind) -> Dataset:
    n_s, n_f, n_t = args["samples"], args["features"], args["targets"]
    noise, seed = args["noise"], args["seed"]
    name = f"synthetic.regression(samples={n_s}, features={n_f}, targets={n_t}, noise={noise}, seed={seed})"
    ctx = _Ctx(loc, name)
    _check_fits(n_s * (n_f + n_t) * 8, ctx)
    if label_kind == "class":
        ctx.fail("regression targets are not class labels",
                 hint="use a regression loss such as mse or mae")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_s, n_f))
    w = rng.standard_normal((n_f, n_t)) / math.sqrt(n_f)
    b = 0.5 * rng.standard_normal(n_t)
    eps = rng.standard_normal((n_s, n_t))
    y = x @ w + b + 0.5 * np.tanh(x[:, :1]) + noise * eps
    x = _check_shape(x, feature_shape, ctx, f"it has {n_f} feature{'s' if n_f != 1 else ''}",
                     hint="make `features` match the model's input size")
    return _finish(x, y.astype(np.float32), name)


def _shape_masks(kind: int, u: np.ndarray, v: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The pixels of shape `kind` (IMAGE_SHAPES order) in its box: u, v are the rows
    and columns relative to the box's top-left corner ([n, H, 1], [n, 1, W]) and
    size its side ([n, 1, 1]); the caller keeps only the pixels inside the box."""
    c = (size - 1) / 2.0                            # the centre, in pixels
    t = np.maximum(1, np.rint(size / 5.0))          # the stroke of the plus
    band = size // 8                                # the half-width of the diagonals
    if kind == 0:                                   # square outline
        return (u == 0) | (u == size - 1) | (v == 0) | (v == size - 1)
    if kind == 1:                                   # filled disk
        return (u - c) ** 2 + (v - c) ** 2 <= (size / 2.0) ** 2
    if kind == 2:                                   # plus
        lo = size // 2 - t // 2
        return ((u >= lo) & (u < lo + t)) | ((v >= lo) & (v < lo + t))
    if kind in (3, 4):                              # horizontal / vertical bar, a third of the box thick
        a = u if kind == 3 else v
        th = np.maximum(2, size // 3)
        lo = (size - th) // 2
        return (a >= lo) & (a < lo + th)
    if kind == 5:                                   # diagonal, top-left to bottom-right
        return np.abs(u - v) <= band
    if kind == 6:                                   # filled triangle, apex up
        return np.abs(v - c) <= u / 2.0 + 0.5
    return (np.abs(u - v) <= band) | (np.abs(u + v - (size - 1)) <= band)   # x


def _synthetic_images(args, loc, feature_shape, label_kind) -> Dataset:
    n_s, h, w, ch = args["samples"], args["height"], args["width"], args["channels"]
    n_c, noise, seed = args["classes"], args["noise"], args["seed"]
    name = (f"synthetic.images(samples={n_s}, height={h}, width={w}, channels={ch}, classes={n_c}, "
            f"noise={noise}, seed={seed})")
    ctx = _Ctx(loc, name)
    if not (2 <= n_c <= len(IMAGE_SHAPES)):     # a DataSpec made by hand: there are no more shapes
        ctx.fail(f"classes must be in [2, {len(IMAGE_SHAPES)}], not {n_c}")
    _check_fits(n_s * h * w * ch * 4 * 3, ctx)
    rng = np.random.default_rng(seed)
    y = (np.arange(n_s, dtype=np.int64) % n_c)[rng.permutation(n_s)]
    side = min(h, w)
    s_lo = min(max(4, side // 4), side)
    s_hi = max(s_lo, side // 2)
    size = rng.integers(s_lo, s_hi + 1, size=n_s)
    top = rng.integers(0, h - size + 1)
    left = rng.integers(0, w - size + 1)
    colour = rng.uniform(0.5, 1.0, size=(n_s, ch)).astype(np.float32)
    x = rng.standard_normal((n_s, h, w, ch), dtype=np.float32)
    x *= np.float32(noise)
    rows, cols = np.arange(h), np.arange(w)
    chunk = max(1, (1 << 22) // (h * w))
    for k in range(n_c):
        idx = np.flatnonzero(y == k)
        for start in range(0, len(idx), chunk):
            i = idx[start:start + chunk]
            sz = size[i][:, None, None]
            u = rows[None, :, None] - top[i][:, None, None]
            v = cols[None, None, :] - left[i][:, None, None]
            inside = (u >= 0) & (u < sz) & (v >= 0) & (v < sz)
            mask = inside & _shape_masks(k, u, v, sz)
            x[i] += mask[..., None].astype(np.float32) * colour[i][:, None, None, :]
    yv = y.astype(np.float32).reshape(-1, 1) if label_kind == "float" else y
    x = _check_shape(x, feature_shape, ctx, f"it makes {h}x{w}x{ch} images",
                     hint="make height, width and channels match the model's input")
    return _finish(x, yv, name)


_LOADERS = {"csv": _load_csv, "npz": _load_npz, "builtin": _load_builtin,
            "synthetic.classification": _synthetic_classification, "synthetic.regression": _synthetic_regression,
            "synthetic.images": _synthetic_images}


# --------------------------------------------------------------------------- split / batches

def _class_ids(ds: Dataset, loc) -> np.ndarray:
    y = ds.y
    if y.ndim == 1:
        return y.astype(np.int64)
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=1).astype(np.int64)  # one-hot targets
    v = y.reshape(-1)
    if y.ndim == 2 and np.all(v == np.round(v)) and np.all(v >= 0):
        return v.astype(np.int64)
    raise DataError(f"{ds.name}: a stratified split needs class labels, but the targets are continuous",
                    loc, hint="set stratify=false")


def _stratified_counts(counts: np.ndarray, n_val: int, n: int) -> Optional[np.ndarray]:
    """Validation count per class: close to its share, each class with >= 2 samples
    on both sides. None when impossible."""
    ideal = counts * (n_val / n)
    lo = np.where(counts >= 2, 1, 0)
    hi = np.where(counts >= 2, counts - 1, counts)
    if lo.sum() > n_val or hi.sum() < n_val:
        return None
    v = np.clip(np.floor(ideal).astype(np.int64), lo, hi)
    while v.sum() < n_val:  # add where the shortfall is largest (ties: lower class id)
        gap = np.where(v < hi, ideal - v, -np.inf)
        v[int(np.argmax(gap))] += 1
    while v.sum() > n_val:  # remove where the excess is largest
        gap = np.where(v > lo, v - ideal, -np.inf)
        v[int(np.argmax(gap))] -= 1
    return v


def split(ds: Dataset, fraction: float, *, seed: int, stratify: bool = False,
          shuffle: bool = True, loc: Optional[SourceLoc] = None) -> tuple[Dataset, Dataset]:
    """(train, val). val has max(1, round(N * fraction)) samples and train keeps at
    least 1, else DataError. shuffle: a seeded random choice (deterministic for a
    seed); without it, val is the last part of the data (per class when
    stratified) and both parts keep the original order. stratify: each class keeps
    its proportion (within one sample) and every class with >= 2 samples appears
    in both parts. loc: the .nn location for errors (optional)."""
    n = len(ds)
    try:
        fraction = float(fraction)
    except (TypeError, ValueError):
        raise DataError(f"validation fraction must be a number in (0, 1), not {fraction!r}", loc)
    if not (0.0 < fraction < 1.0):
        raise DataError(f"validation fraction must be between 0 and 1 (exclusive), not {fraction!r}", loc)
    n_val = max(1, int(round(n * fraction)))
    if n - n_val < 1:
        raise DataError(f"{ds.name}: cannot split {n} sample{'s' if n != 1 else ''} with validation "
                        f"fraction {fraction:g}: {n_val} would go to validation, none to training",
                        loc, hint="use a smaller fraction or more data")
    rng = np.random.default_rng(seed)
    if not stratify:
        order = rng.permutation(n) if shuffle else np.arange(n)
        tr_idx, va_idx = order[:n - n_val], order[n - n_val:]
    else:
        cls = _class_ids(ds, loc)
        classes, inv, counts = np.unique(cls, return_inverse=True, return_counts=True)
        v = _stratified_counts(counts, n_val, n)
        if v is None:
            need = int((counts >= 2).sum())
            raise DataError(f"{ds.name}: a stratified split of {n} samples with fraction {fraction:g} "
                            f"puts {n_val} in validation and {n - n_val} in training, but each of the "
                            f"{need} classes with 2 or more samples must appear in both",
                            loc, hint="use a fraction that leaves at least one sample per class on "
                                      "each side, or set stratify=false")
        va_parts, tr_parts = [], []
        for k in range(len(classes)):
            members = np.flatnonzero(inv == k)
            if shuffle:
                members = members[rng.permutation(len(members))]
            cut = len(members) - int(v[k])
            tr_parts.append(members[:cut])
            va_parts.append(members[cut:])
        tr_idx = np.concatenate(tr_parts)
        va_idx = np.concatenate(va_parts)
        if shuffle:
            tr_idx = tr_idx[rng.permutation(len(tr_idx))]
            va_idx = va_idx[rng.permutation(len(va_idx))]
        else:
            tr_idx.sort()
            va_idx.sort()
    return ds.part(tr_idx, "training part"), ds.part(va_idx, "validation split")


def batches(n: int, batch_size: int, rng: Optional[np.random.Generator]) -> Iterator[np.ndarray]:
    """int64 index arrays covering range(n) once; permuted when rng is given;
    the last, smaller batch included."""
    n = int(n)
    batch_size = int(batch_size)
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, not {batch_size}")
    order = (rng.permutation(max(n, 0)).astype(np.int64) if rng is not None
             else np.arange(max(n, 0), dtype=np.int64))
    return (order[start:start + batch_size] for start in range(0, len(order), batch_size))
