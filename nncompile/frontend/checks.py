"""Semantic checks: raw tree -> the checked AST of `ast.py`.

This module checks the shape of a program (one model block with an input
and layers, at most one train block, names unique, Keras-style names for
unnamed layers) and hands every argument list to the specs: a layer's to its
kind's spec (`layers/`), the train block's settings to `specs.training.TRAIN`.
The specs decide which arguments exist, their types, ranges and defaults;
every mistake is a `CompileError` pointing at the offending token, with a
hint saying what was expected.
"""
from __future__ import annotations

import functools
import os
from typing import Optional, Sequence

from ..errors import SourceLoc, expected_one_of
from .ast import DataSpec, InputDecl, Layer, ModelDef, Program, TrainDef
from .layers import FROM, LAYERS, TRANSFER, LayerKind, with_params
from .raw import MAX_DIM, RArg, RLayer, RList, RSection, RSetting, RStr, short
from .specs import Scope, Spec
from .specs.sources import DATA_SOURCES, FEATURE_FILES
from .specs.training import TRAIN
from .values import Reader

BLOCKS = ("model", "train")
DTYPES = ("f32",)


def layer_kinds() -> tuple[str, ...]:
    """What may start a model statement: `input`, then every layer kind."""
    return ("input",) + tuple(LAYERS)


class Checker(Reader):
    # -- program ---------------------------------------------------------------
    def program(self, sections: list[RSection]) -> Program:
        model_sec = train_sec = None
        for s in sections:
            if s.kind == "model":
                if model_sec is not None:
                    raise self.err("a second model block", s.kind_loc,
                                   hint=f"a file holds exactly one model; the first is at line {model_sec.kind_loc.line}")
                model_sec = s
            elif s.kind == "train":
                if train_sec is not None:
                    raise self.err("a second train block", s.kind_loc,
                                   hint=f"a file holds at most one train block; the first is at line {train_sec.kind_loc.line}")
                train_sec = s
            else:
                raise self.err(f"unknown block '{short(s.kind)}'", s.kind_loc, hint=expected_one_of(s.kind, BLOCKS))
        if model_sec is None:
            loc = train_sec.kind_loc if train_sec else SourceLoc(self.filename, 1, 1)
            raise self.err("no model block in the file", loc,
                           hint="expected a model block: model NAME { ... } with an input line and layers, one per line")
        model = self.model(model_sec)
        train = self.train(train_sec, model) if train_sec is not None else None
        return Program(model=model, train=train, filename=self.filename, source=self.source)

    # -- model -----------------------------------------------------------------
    def model(self, sec: RSection) -> ModelDef:
        if sec.name is None:
            raise self.err("the model block needs a name", sec.kind_loc, hint="expected e.g.  model classifier { ... }")
        loc = self.span(sec.kind_loc, sec.name_loc)
        stmts = sec.stmts
        if not stmts:
            raise self.err(f"model '{sec.name}' is empty", loc,
                           hint="expected an input line first, e.g.  input x: f32[10]")
        for st in stmts:
            if isinstance(st, RSetting):
                raise self.err(f"'{short(st.key)} = ...' is a train setting, not a layer", st.key_loc,
                               hint="the model block holds layers (KIND [NAME] [(args)]); settings go in the train block")
        first = stmts[0]
        if first.kind != "input":
            self.layer_kind(first)  # unknown kind: report that first
            raise self.err(f"model '{sec.name}' must start with an input line", first.kind_loc,
                           hint="expected e.g.  input x: f32[10]")
        inp = self.input_decl(first)
        used = self.layer_names(stmts[1:], inp, first)
        if len(stmts) == 1:
            raise self.err(f"model '{sec.name}' has no layers", loc,
                           hint="expected layers after the input, e.g.  dense out(1)")
        layers = []
        earlier = [inp.name]      # what the next layer's arguments may refer to
        for st, name in zip(stmts[1:], self.auto_names(stmts[1:], used)):
            layers.append(self.layer(st, name, earlier))
            earlier.append(name)
        return ModelDef(name=sec.name, input=inp, layers=tuple(layers), loc=loc)

    def layer_names(self, stmts: Sequence[RLayer], inp: InputDecl, first: RLayer) -> set[str]:
        """Check the kinds and the explicit names (unique, also against the input's)."""
        used: dict[str, SourceLoc] = {inp.name: first.name_loc}
        for st in stmts:
            if st.kind == "input":
                raise self.err("a model has exactly one input, already declared at line "
                               f"{first.kind_loc.line}", st.kind_loc)
            self.layer_kind(st)
            if st.name is not None:
                if st.name in used:
                    what = "the input" if st.name == inp.name else "a layer"
                    raise self.err(f"duplicate name '{st.name}': already used by {what} at line "
                                   f"{used[st.name].line}", st.name_loc, hint="layer names must be unique")
                used[st.name] = st.name_loc
        return set(used)

    @staticmethod
    def auto_names(stmts: Sequence[RLayer], taken: set[str]) -> list[str]:
        """Each layer's name: its own, or KIND_N (N counting that kind so far,
        skipping names used anywhere), as Keras names them."""
        counts: dict[str, int] = {}
        names = []
        for st in stmts:
            counts[st.kind] = counts.get(st.kind, 0) + 1
            name = st.name
            if name is None:
                n = counts[st.kind]
                name = f"{st.kind}_{n}"
                while name in taken:
                    n += 1
                    name = f"{st.kind}_{n}"
                taken.add(name)
            names.append(name)
        return names

    def layer_kind(self, st: RLayer) -> None:
        if st.kind not in layer_kinds():
            raise self.err(f"unknown layer kind '{short(st.kind)}'", st.kind_loc,
                           hint=expected_one_of(st.kind, layer_kinds()))

    def input_decl(self, st: RLayer) -> InputDecl:
        if st.name is None:
            raise self.err("the input needs a name", st.kind_loc, hint="expected e.g.  input x: f32[10]")
        if st.args is not None:
            raise self.err("input takes no arguments", st.args_loc, hint="expected e.g.  input x: f32[10]")
        if st.type is None:
            raise self.err(f"input '{st.name}' needs a type", st.name_loc,
                           hint=f"expected e.g.  input {st.name}: f32[10]")
        t = st.type
        if t.name not in DTYPES:
            raise self.err(f"unknown element type '{short(t.name)}'", t.name_loc, hint=expected_one_of(t.name, DTYPES))
        if not t.dims:
            raise self.err(f"input '{st.name}' needs its shape", t.dims_loc or t.name_loc,
                           hint=f"expected e.g.  {t.name}[10]  (the feature shape, without the batch dimension)")
        dims = tuple(self.get_int(d, "an input dimension", 1, MAX_DIM) for d in t.dims)
        return InputDecl(name=st.name, dtype=t.name, shape=dims, loc=st.loc)

    def layer(self, st: RLayer, name: str, earlier: Sequence[str]) -> Layer:
        """A layer's arguments against its kind's spec; the transfer options
        (frozen=, lr_mult=) are read first, for layers with parameters only.
        `earlier`: the names its arguments may refer to."""
        kind = LAYERS[st.kind]
        if st.type is not None:
            raise self.err(f"only the input has a type; a {st.kind} layer does not", st.type.loc)
        what = f"{st.kind} layer '{name}'"
        spec = _accepted(kind)
        if not kind.has_params:
            for arg in st.args or ():
                if arg.key in TRANSFER.keys:
                    keys = " and ".join(f"{k}=" for k in TRANSFER.keys)
                    raise self.err(f"{what} has no parameters, so '{arg.key}' does not apply", arg.key_loc,
                                   hint=f"{keys} apply to {_and(with_params())} layers")
        raw = spec.bind(self, st.args, what, st.loc)
        transfer = {k: v for k, v in raw.items() if k in TRANSFER.keys}
        source = {k: v for k, v in raw.items() if k in FROM.keys and not kind.merges}
        own = {k: v for k, v in raw.items() if k not in TRANSFER.keys and k not in source}
        options = TRANSFER.validate(Scope(self, layers=earlier, spec=TRANSFER, loc=st.loc, what=what, raw=transfer))
        args = kind.spec.validate(Scope(self, layers=earlier, spec=kind.spec, loc=st.loc, what=what, raw=own))
        values = dict(args.values)
        if source:   # from= given (a stack's layers carry no "from": their settings stay as they were)
            values.update(FROM.validate(Scope(self, layers=earlier, spec=FROM, loc=st.loc, what=what,
                                              raw=source)).values)
        return Layer(kind=st.kind, name=name, args=values, loc=st.loc,
                     arg_locs={k: v.loc for k, v in raw.items()},
                     frozen=options.values["frozen"], lr_mult=options.values["lr_mult"])

    # -- train -------------------------------------------------------------------
    def train(self, sec: RSection, model: ModelDef) -> TrainDef:
        if sec.name is not None:
            raise self.err("the train block takes no name", sec.name_loc, hint="expected  train {")
        settings: dict[str, RSetting] = {}
        for st in sec.stmts:
            if isinstance(st, RLayer):
                hint = "expected  key = value"
                if st.kind in layer_kinds():
                    hint = "layers go in the model block; the train block holds  key = value  settings"
                raise self.err(f"expected a setting (key = value), got '{short(st.kind)}'", st.kind_loc, hint=hint)
            if st.key not in TRAIN.keys:
                raise self.err(f"unknown train setting '{short(st.key)}'", st.key_loc,
                               hint=expected_one_of(st.key, TRAIN.keys))
            if st.key in settings:
                raise self.err(f"'{st.key}' is set twice (first at line {settings[st.key].key_loc.line})",
                               st.key_loc)
            settings[st.key] = st
        loc = sec.kind_loc
        for arg in TRAIN.args:
            if arg.required and arg.name not in settings:
                article = "an" if arg.name[0] in "aeiou" else "a"
                raise self.err(f"the train block needs {article} '{arg.name}' setting", loc, hint=arg.example)
        values: dict = {}   # each setting's check sees the settings checked before it
        scope = Scope(self, model, settings=values, spec=TRAIN, loc=loc, what="train", values=values,
                      raw={k: s.value for k, s in settings.items()})
        TRAIN.validate(scope)
        return TrainDef(**values, loc=loc, setting_locs={k: s.value.loc for k, s in settings.items()})


@functools.lru_cache(maxsize=None)
def _accepted(kind: LayerKind) -> Spec:
    """The arguments a layer of `kind` accepts: its own, and for a kind with
    parameters the transfer options after them."""
    spec = kind.spec if kind.merges else kind.spec.extend(kind.name, *FROM.args)
    return spec.extend(kind.name, *TRANSFER.args) if kind.has_params else spec


def _and(names: Sequence[str]) -> str:
    """'a, b and c'."""
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def check_program(sections: list[RSection], *, filename: str, source: str, base_dir: str) -> Program:
    """Validate the raw sections and build the checked `Program`."""
    return Checker(filename, source, base_dir).program(sections)


def data_file_spec(path: str, *, target: Optional[Sequence[str]] = None,
                   features: Optional[Sequence[str]] = None, labelled: bool = True) -> DataSpec:
    """The checked DataSpec of a data file named on the command line: `npz(path)`
    for a .npz file, else `csv(path, target=..., features=...)`, checked and
    defaulted like the same call in a .nn file (relative paths: against the
    current directory). labelled=False: a file of features only (no targets)."""
    kind = "npz" if path.endswith(".npz") else "csv"
    strings = lambda names: RList([RStr(n, None) for n in names], None)  # noqa: E731
    args = [RArg(None, None, RStr(path, None))]
    if kind == "csv" and target is not None:
        args.append(RArg("target", None, strings(target)))
    if kind == "csv" and features is not None:
        args.append(RArg("features", None, strings(features)))
    spec = DATA_SOURCES[kind] if labelled else FEATURE_FILES[kind]
    call = spec.call(Scope(Reader("<command line>", None, os.getcwd())), args, kind, None)
    return DataSpec(kind=kind, args=call.values, loc=None)
