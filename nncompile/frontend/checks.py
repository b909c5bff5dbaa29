"""Semantic checks: raw tree -> the checked AST of `ast.py`.

The parser hands over a small "raw" tree (the classes `R*` below): blocks,
statements and generic values, each with its `SourceLoc`. This module decides
what they mean: which blocks, layer kinds, arguments and settings exist, what
type and range each value must have, and what the defaults are. Every mistake
becomes a `CompileError` pointing at the offending token, with a hint saying
what was expected.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

from ..errors import CompileError, SourceLoc, did_you_mean, expected_one_of
from .ast import final_activation
from .ast import (ACTIVATIONS, AUGMENTS, LOSSES, METRICS, OPTIMIZERS, SCHEDULES, AugmentSpec,
                  DataSpec, EarlyStoppingSpec, InitFromSpec, InputDecl, Layer, LossSpec, ModelDef,
                  OptimizerSpec, Program, ScheduleSpec, TrainDef, ValidationSpec)

MAX_DEPTH = 32                 # nesting of brackets in a value
MAX_INT = 2 ** 63 - 1          # largest integer literal
MAX_DIM = 2 ** 31 - 1          # largest units / dimension / batch size

# ------------------------------------------------------------------ raw tree


@dataclass
class RNum:
    value: Union[int, float]
    is_int: bool
    text: str
    loc: SourceLoc


@dataclass
class RStr:
    value: str
    loc: SourceLoc


@dataclass
class RName:
    parts: tuple[str, ...]
    loc: SourceLoc

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass
class RArg:
    key: Optional[str]
    key_loc: Optional[SourceLoc]
    value: Any


@dataclass
class RCall:
    name: RName
    args: list[RArg]
    loc: SourceLoc


@dataclass
class RList:
    items: list
    loc: SourceLoc


@dataclass
class RDict:
    entries: list[tuple[str, SourceLoc, Any]]
    loc: SourceLoc


@dataclass
class RType:
    name: str
    name_loc: SourceLoc
    dims: Optional[list]
    loc: SourceLoc
    dims_loc: Optional[SourceLoc] = None


@dataclass
class RLayer:
    kind: str
    kind_loc: SourceLoc
    name: Optional[str]
    name_loc: Optional[SourceLoc]
    args: Optional[list[RArg]]
    args_loc: Optional[SourceLoc]
    type: Optional[RType]
    loc: SourceLoc


@dataclass
class RSetting:
    key: str
    key_loc: SourceLoc
    value: Any
    loc: SourceLoc


@dataclass
class RSection:
    kind: str
    kind_loc: SourceLoc
    name: Optional[str]
    name_loc: Optional[SourceLoc]
    stmts: list = field(default_factory=list)
    loc: Optional[SourceLoc] = None


# ------------------------------------------------------------------ tables

BLOCKS = ("model", "train")
DTYPES = ("f32",)
INITS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "zeros")
BIAS_INITS = ("zeros",)
ACTIVATION_ALIASES = {"none": "linear"}


@dataclass(frozen=True)
class _Sig:
    """The arguments a call or layer accepts."""
    positional: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()                      # every accepted key (canonical)
    aliases: tuple[tuple[str, str], ...] = ()       # (alias, canonical)
    required: tuple[str, ...] = ()


LAYER_SIGS = {
    "dense": _Sig(("units", "activation"),
                  ("units", "activation", "use_bias", "l1", "l2", "init", "bias_init"),
                  (("kernel_initializer", "init"), ("bias_initializer", "bias_init")),
                  ("units",)),
    "dropout": _Sig(("rate",), ("rate",), (), ("rate",)),
    "batchnorm": _Sig(("momentum", "epsilon"), ("momentum", "epsilon"), (("eps", "epsilon"),)),
    "layernorm": _Sig(("epsilon",), ("epsilon",), (("eps", "epsilon"),)),
    "activation": _Sig(("fn",), ("fn",), (("activation", "fn"),), ("fn",)),
    "flatten": _Sig(),
}
LAYER_KINDS = ("input",) + tuple(LAYER_SIGS)

DATA_SIGS = {
    "csv": _Sig(("path",), ("path", "target", "features", "header"), (("targets", "target"),),
                ("path", "target")),
    "npz": _Sig(("path",), ("path", "x", "y"), (), ("path",)),
    "builtin": _Sig(("name",), ("name",), (), ("name",)),
    "synthetic.classification": _Sig(("samples", "features", "classes", "seed"),
                                     ("samples", "features", "classes", "seed"), (),
                                     ("samples", "features", "classes")),
    "synthetic.regression": _Sig(("samples", "features", "targets", "noise", "seed"),
                                 ("samples", "features", "targets", "noise", "seed"), (),
                                 ("samples", "features")),
}
BUILTIN_DATASETS = ("digits",)

OPT_DEFAULTS = {
    "sgd": {"lr": 0.01, "momentum": 0.0, "nesterov": False},
    "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7},
    "adamw": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "weight_decay": 0.004},
    "rmsprop": {"lr": 0.001, "rho": 0.9, "momentum": 0.0, "eps": 1e-7},
}
OPT_ALIASES = (("learning_rate", "lr"), ("beta_1", "beta1"), ("beta_2", "beta2"),
               ("epsilon", "eps"))

TRAIN_KEYS = ("data", "loss", "optimizer", "metrics", "epochs", "batch_size", "validation",
              "early_stopping", "log_every", "seed", "schedule", "init_from", "augment")
SPLIT_SIG = _Sig(("fraction", "seed", "stratify", "shuffle"),
                 ("fraction", "seed", "stratify", "shuffle"), (), ("fraction",))
ES_KEYS = ("monitor", "mode", "patience", "min_delta", "restore_best", "start_from_epoch")
ES_ALIASES = {"restore_best_weights": "restore_best"}
# Layers with parameters take the transfer-learning options frozen= and lr_mult=.
PARAM_LAYERS = ("dense", "batchnorm", "layernorm")
TRANSFER_KEYS = ("frozen", "lr_mult")

SCHEDULE_SIGS = {
    "step": _Sig(("every", "factor"), ("every", "factor")),
    "exponential": _Sig(("rate", "every"), ("rate", "every")),
    "cosine": _Sig(("warmup", "min_lr"), ("warmup", "min_lr")),
    "reduce_on_plateau": _Sig(("monitor", "factor", "patience"),
                              ("monitor", "mode", "factor", "patience", "min_delta", "min_lr", "cooldown")),
}
SCHEDULE_DEFAULTS = {
    "step": {"every": 10, "factor": 0.5},
    "exponential": {"rate": 0.96, "every": 1},
    "cosine": {"warmup": 0, "min_lr": 0.0},
    "reduce_on_plateau": {"factor": 0.1, "patience": 10, "min_delta": 1e-4, "min_lr": 0.0, "cooldown": 0},
}
WEIGHTS_SIG = _Sig(("path", "layers"), ("path", "layers"), (), ("path",))
AUGMENT_SIGS = {
    "noise": _Sig(("std",), ("std",), (("stddev", "std"),), ("std",)),
    "flip": _Sig(("axis", "p"), ("axis", "p")),
    "crop": _Sig(("padding",), ("padding",)),
}
FLIP_AXES = ("horizontal", "vertical")
IMAGE_AUGMENTS = ("flip", "crop")

CROSSENTROPY = ("binary_crossentropy", "categorical_crossentropy",
                "sparse_categorical_crossentropy")


_REQUIRED_HINTS = {
    "units": "expected e.g.  dense hidden(10, relu)",
    "rate": "expected e.g.  dropout drop1(0.2)",
    "fn": "expected e.g.  activation act(relu)",
    "target": 'name the target column(s), e.g. target="label" or target=["y0", "y1"]',
    "fraction": "expected e.g.  split(0.2)",
    "std": "expected e.g.  noise(0.05)",
    "path": 'expected e.g.  weights("pretrained.npz")',
}


def describe(v) -> str:
    """A short phrase naming what a raw value is, for "expected X, got Y"."""
    if isinstance(v, RNum):
        return f"the {'integer' if v.is_int else 'number'} {_short(v.text)}"
    if isinstance(v, RStr):
        return f'the string "{_short(v.value)}"'
    if isinstance(v, RName):
        return f"the name {_short(v.dotted)}"
    if isinstance(v, RCall):
        return f"a call {_short(v.name.dotted)}(...)"
    if isinstance(v, RList):
        return "a list"
    if isinstance(v, RDict):
        return "a dict"
    return "a value"


def _short(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[:n - 3] + "..."


def _fmt(x) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x) if isinstance(x, float) else str(x)


# ------------------------------------------------------------------ checker


class Checker:
    def __init__(self, filename: str, source: str, base_dir: str):
        self.filename = filename
        self.source = source
        self.base_dir = base_dir

    # -- errors -------------------------------------------------------------
    def err(self, msg: str, loc: Optional[SourceLoc], hint: Optional[str] = None) -> CompileError:
        return CompileError(msg, loc, source=self.source, hint=hint)

    def span(self, a: SourceLoc, b: Optional[SourceLoc]) -> SourceLoc:
        if b is None:
            return a
        return SourceLoc(self.filename, a.line, a.column, b.end_line, b.end_column)

    # -- values -------------------------------------------------------------
    def get_int(self, v, what: str, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
        if isinstance(v, RNum) and not v.is_int and float(v.value).is_integer():
            raise self.err(f"{what} must be an integer, got {v.text}", v.loc,
                           hint=f"write it without a decimal point or exponent: {_fmt(int(v.value)) if abs(v.value) < 1e18 else 'an integer'}")
        if not (isinstance(v, RNum) and v.is_int):
            raise self.err(f"{what} must be an integer, got {describe(v)}", v.loc,
                           hint=self._range_text(lo, hi, "an integer"))
        x = int(v.value)
        if (lo is not None and x < lo) or (hi is not None and x > hi):
            raise self.err(f"{what} must be {self._range_text(lo, hi, 'an integer', bare=True)}, got {v.text}",
                           v.loc)
        return x

    @staticmethod
    def _range_text(lo, hi, noun, bare=False) -> str:
        if lo is not None and hi is not None:
            r = f"{noun} in [{lo}, {hi}]"
        elif lo is not None:
            r = f"{noun} >= {lo}"
        elif hi is not None:
            r = f"{noun} <= {hi}"
        else:
            r = noun
        return r if bare else f"expected {r}"

    def get_float(self, v, what: str, lo: Optional[float] = None, hi: Optional[float] = None,
                  lo_open: bool = False, hi_open: bool = False) -> float:
        rng = self._float_range(lo, hi, lo_open, hi_open)
        if not isinstance(v, RNum):
            hint = f"expected a number{(' ' + rng) if rng else ''}"
            if isinstance(v, RStr):
                hint += "; write numbers without quotes"
            raise self.err(f"{what} must be a number, got {describe(v)}", v.loc, hint=hint)
        try:
            x = float(v.value)
        except OverflowError:  # only for huge integers; the parser bounds them, but be safe
            raise self.err(f"{what}: {_short(v.text)} is too large", v.loc) from None
        bad = ((lo is not None and (x <= lo if lo_open else x < lo)) or
               (hi is not None and (x >= hi if hi_open else x > hi)))
        if bad:
            raise self.err(f"{what} must be {rng}, got {v.text}", v.loc)
        return x

    @staticmethod
    def _float_range(lo, hi, lo_open, hi_open) -> str:
        if lo is not None and hi is not None:
            return f"in {'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if hi_open else ']'}"
        if lo is not None:
            return f"{'>' if lo_open else '>='} {_fmt(lo)}"
        if hi is not None:
            return f"{'<' if hi_open else '<='} {_fmt(hi)}"
        return ""

    def get_bool(self, v, what: str) -> bool:
        if isinstance(v, RName) and len(v.parts) == 1 and v.parts[0] in ("true", "false"):
            return v.parts[0] == "true"
        hint = "expected true or false"
        if isinstance(v, RName):
            hint += did_you_mean(v.dotted.lower(), ("true", "false"))
        elif isinstance(v, RNum) and v.is_int and v.value in (0, 1):
            hint += f"; did you mean '{'true' if v.value else 'false'}'?"
        raise self.err(f"{what} must be true or false, got {describe(v)}", v.loc, hint=hint)

    def get_str(self, v, what: str, allow_empty: bool = False) -> str:
        if isinstance(v, RStr):
            if not allow_empty and not v.value:
                raise self.err(f"{what} must not be empty", v.loc)
            return v.value
        hint = "expected a string in double quotes"
        if isinstance(v, RName):
            hint += f', e.g. "{_short(v.dotted)}"'
        raise self.err(f"{what} must be a string, got {describe(v)}", v.loc, hint=hint)

    def get_choice(self, v, what: str, choices: Sequence[str],
                   aliases: Optional[dict] = None, noun: Optional[str] = None) -> str:
        """A name from a fixed set, written bare (relu) or quoted ("relu")."""
        aliases = aliases or {}
        noun = noun or what
        if isinstance(v, RName):
            name = v.dotted
        elif isinstance(v, RStr):
            name = v.value
        else:
            raise self.err(f"{what} must be a name, got {describe(v)}", v.loc,
                           hint="expected one of: " + ", ".join(choices))
        if name in choices:
            return name
        if name in aliases:
            return aliases[name]
        lowered = name.lower()
        if lowered != name and (lowered in choices or lowered in aliases):
            raise self.err(f"unknown {noun} '{_short(name)}'", v.loc,
                           hint=f"names are case-sensitive; did you mean '{lowered}'?")
        raise self.err(f"unknown {noun} '{_short(name)}'", v.loc,
                       hint=expected_one_of(name, choices))

    def get_str_list(self, v, what: str, allow_single: bool = True) -> list[str]:
        if isinstance(v, RStr) and allow_single:
            items = [v]
        elif isinstance(v, RList):
            items = v.items
            if not items:
                raise self.err(f"{what} must not be an empty list", v.loc)
        else:
            raise self.err(f"{what} must be a list of strings, got {describe(v)}", v.loc,
                           hint='expected e.g. ["y0", "y1"]')
        out: list[str] = []
        for it in items:
            s = self.get_str(it, f"each entry of {what}")
            if s in out:
                raise self.err(f"{what} names '{_short(s)}' twice", it.loc)
            out.append(s)
        return out

    # -- argument binding ----------------------------------------------------
    def bind(self, args: Optional[list[RArg]], sig: _Sig, what: str, where: SourceLoc) -> dict[str, Any]:
        """Match positional and key=value arguments against `sig`.
        Returns canonical key -> raw value; checks unknown, duplicate and
        missing required arguments."""
        args = args or []
        aliases = dict(sig.aliases)
        out: dict[str, Any] = {}
        seen_kw = False
        npos = 0
        for a in args:
            if a.key is None:
                if seen_kw:
                    raise self.err(f"positional argument after key=value arguments in {what}", a.value.loc,
                                   hint="put positional arguments first, or name this one")
                if npos >= len(sig.positional):
                    if not sig.positional:
                        msg = f"{what} takes no positional arguments"
                        hint = (f"name the argument: one of {', '.join(sig.keys)}" if sig.keys
                                else f"{what} takes no arguments")
                    else:
                        msg = (f"too many positional arguments for {what}: it takes at most "
                               f"{len(sig.positional)} ({', '.join(sig.positional)})")
                        others = [k for k in sig.keys if k not in sig.positional]
                        hint = f"give the others as key=value: {', '.join(others)}" if others else None
                    raise self.err(msg, a.value.loc, hint=hint)
                key = sig.positional[npos]
                npos += 1
                out[key] = a.value
                continue
            seen_kw = True
            key = aliases.get(a.key, a.key)
            if key not in sig.keys:
                if not sig.keys:
                    raise self.err(f"{what} takes no arguments", a.key_loc)
                raise self.err(f"unknown argument '{a.key}' for {what}", a.key_loc,
                               hint=expected_one_of(a.key, list(sig.keys) + [k for k, c in sig.aliases if c in sig.keys]))
            if key in out:
                raise self.err(f"argument '{key}' given twice in {what}", a.key_loc,
                               hint="each argument may be given once (by position or by key=value)")
            out[key] = a.value
        for r in sig.required:
            if r not in out:
                pos = ""
                if r in sig.positional:
                    pos = f" (argument {sig.positional.index(r) + 1}, or {r}=...)"
                raise self.err(f"{what} needs '{r}'{pos}", where,
                               hint=_REQUIRED_HINTS.get(r))
        return out

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
                raise self.err(f"unknown block '{_short(s.kind)}'", s.kind_loc,
                               hint=expected_one_of(s.kind, BLOCKS))
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
                raise self.err(f"'{_short(st.key)} = ...' is a train setting, not a layer", st.key_loc,
                               hint="the model block holds layers (KIND [NAME] [(args)]); settings go in the train block")
        first = stmts[0]
        if first.kind != "input":
            if first.kind not in LAYER_KINDS:
                self.layer_kind(first)  # unknown kind: report that first
            raise self.err(f"model '{sec.name}' must start with an input line", first.kind_loc,
                           hint="expected e.g.  input x: f32[10]")
        inp = self.input_decl(first)
        # explicit names, for uniqueness and to keep auto names clear of them
        used: dict[str, SourceLoc] = {inp.name: first.name_loc}
        for st in stmts[1:]:
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
        if len(stmts) == 1:
            raise self.err(f"model '{sec.name}' has no layers", loc,
                           hint="expected layers after the input, e.g.  dense out(1)")
        counts: dict[str, int] = {}
        taken = set(used)
        layers = []
        for st in stmts[1:]:
            counts[st.kind] = counts.get(st.kind, 0) + 1
            name = st.name
            if name is None:
                n = counts[st.kind]
                name = f"{st.kind}_{n}"
                while name in taken:
                    n += 1
                    name = f"{st.kind}_{n}"
                taken.add(name)
            layers.append(self.layer(st, name))
        return ModelDef(name=sec.name, input=inp, layers=tuple(layers), loc=loc)

    def layer_kind(self, st: RLayer) -> None:
        if st.kind not in LAYER_KINDS:
            raise self.err(f"unknown layer kind '{_short(st.kind)}'", st.kind_loc,
                           hint=expected_one_of(st.kind, LAYER_KINDS))

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
            raise self.err(f"unknown element type '{_short(t.name)}'", t.name_loc,
                           hint=expected_one_of(t.name, DTYPES))
        if not t.dims:
            raise self.err(f"input '{st.name}' needs its shape", t.dims_loc or t.name_loc,
                           hint=f"expected e.g.  {t.name}[10]  (the feature shape, without the batch dimension)")
        dims = tuple(self.get_int(d, "an input dimension", 1, MAX_DIM) for d in t.dims)
        return InputDecl(name=st.name, dtype=t.name, shape=dims, loc=st.loc)

    def layer(self, st: RLayer, name: str) -> Layer:
        kind = st.kind
        if st.type is not None:
            raise self.err(f"only the input has a type; a {kind} layer does not", st.type.loc)
        what = f"{kind} layer '{name}'"
        sig = LAYER_SIGS[kind]
        if kind in PARAM_LAYERS:
            sig = _Sig(sig.positional, sig.keys + TRANSFER_KEYS, sig.aliases, sig.required)
        else:
            for arg in st.args or ():
                if arg.key in TRANSFER_KEYS:
                    raise self.err(f"{what} has no parameters, so '{arg.key}' does not apply", arg.key_loc,
                                   hint="frozen= and lr_mult= apply to dense, batchnorm and layernorm layers")
        raw = self.bind(st.args, sig, what, st.loc)
        frozen = self.get_bool(raw["frozen"], "frozen") if "frozen" in raw else False
        lr_mult = self.get_float(raw["lr_mult"], "lr_mult", 0.0) if "lr_mult" in raw else 1.0
        if frozen and "lr_mult" in raw:
            raise self.err(f"{what} is frozen, so lr_mult has no effect", raw["lr_mult"].loc,
                           hint="drop lr_mult, or drop frozen=true to fine-tune the layer at a scaled learning rate")
        a: dict[str, Any] = {}
        if kind == "dense":
            a["units"] = self.get_int(raw["units"], "units", 1, MAX_DIM)
            a["activation"] = self.activation(raw.get("activation"))
            a["use_bias"] = self.get_bool(raw["use_bias"], "use_bias") if "use_bias" in raw else True
            a["l1"] = self.get_float(raw["l1"], "l1", 0.0) if "l1" in raw else 0.0
            a["l2"] = self.get_float(raw["l2"], "l2", 0.0) if "l2" in raw else 0.0
            a["init"] = (self.get_choice(raw["init"], "init", INITS, noun="initializer")
                         if "init" in raw else "glorot_uniform")
            a["bias_init"] = (self.get_choice(raw["bias_init"], "bias_init", BIAS_INITS, noun="bias initializer")
                              if "bias_init" in raw else "zeros")
        elif kind == "dropout":
            a["rate"] = self.get_float(raw["rate"], "dropout rate", 0.0, 1.0, hi_open=True)
        elif kind == "batchnorm":
            a["momentum"] = (self.get_float(raw["momentum"], "batchnorm momentum", 0.0, 1.0, hi_open=True)
                             if "momentum" in raw else 0.99)
            a["epsilon"] = (self.get_float(raw["epsilon"], "epsilon", 0.0, lo_open=True)
                            if "epsilon" in raw else 1e-3)
        elif kind == "layernorm":
            a["epsilon"] = (self.get_float(raw["epsilon"], "epsilon", 0.0, lo_open=True)
                            if "epsilon" in raw else 1e-3)
        elif kind == "activation":
            a["fn"] = self.activation(raw["fn"])
        arg_locs = {k: v.loc for k, v in raw.items()}
        return Layer(kind=kind, name=name, args=a, loc=st.loc, arg_locs=arg_locs,
                     frozen=frozen, lr_mult=lr_mult)

    def activation(self, v) -> str:
        if v is None:
            return "linear"
        return self.get_choice(v, "activation", ACTIVATIONS, ACTIVATION_ALIASES)

    # -- train -------------------------------------------------------------------
    def train(self, sec: RSection, model: ModelDef) -> TrainDef:
        if sec.name is not None:
            raise self.err("the train block takes no name", sec.name_loc, hint="expected  train {")
        settings: dict[str, RSetting] = {}
        for st in sec.stmts:
            if isinstance(st, RLayer):
                hint = "expected  key = value"
                if st.kind in LAYER_SIGS or st.kind == "input":
                    hint = "layers go in the model block; the train block holds  key = value  settings"
                raise self.err(f"expected a setting (key = value), got '{_short(st.kind)}'", st.kind_loc, hint=hint)
            if st.key not in TRAIN_KEYS:
                raise self.err(f"unknown train setting '{_short(st.key)}'", st.key_loc,
                               hint=expected_one_of(st.key, TRAIN_KEYS))
            if st.key in settings:
                raise self.err(f"'{st.key}' is set twice (first at line {settings[st.key].key_loc.line})",
                               st.key_loc)
            settings[st.key] = st
        loc = sec.kind_loc
        for req, example in (("loss", "loss = mse"), ("optimizer", "optimizer = adam(lr=0.001)")):
            if req not in settings:
                raise self.err(f"the train block needs {'an' if req[0] in 'aeiou' else 'a'} '{req}' setting", loc,
                               hint=f"add e.g.  {example}")
        val = lambda k: settings[k].value  # noqa: E731

        data = self.data(val("data"), "data", model) if "data" in settings else None
        loss = self.loss(val("loss"), model)
        optimizer = self.optimizer(val("optimizer"))
        metrics = self.metrics(val("metrics")) if "metrics" in settings else ()
        epochs = self.get_int(val("epochs"), "epochs", 1) if "epochs" in settings else 1
        batch_size = self.get_int(val("batch_size"), "batch_size", 1, MAX_DIM) if "batch_size" in settings else 32
        validation = self.validation(val("validation"), model) if "validation" in settings else None
        log_every = self.get_int(val("log_every"), "log_every", 1) if "log_every" in settings else 1
        seed = self.get_int(val("seed"), "seed", 0) if "seed" in settings else 0
        es = (self.early_stopping(val("early_stopping"), metrics, validation is not None)
              if "early_stopping" in settings else None)
        schedule = (self.schedule(val("schedule"), metrics, validation is not None, epochs,
                                  optimizer.params["lr"]) if "schedule" in settings else None)
        init_from = self.init_from(val("init_from"), model) if "init_from" in settings else None
        augment = self.augment(val("augment"), model) if "augment" in settings else ()
        setting_locs = {k: s.value.loc for k, s in settings.items()}
        return TrainDef(data=data, loss=loss, optimizer=optimizer, metrics=metrics, epochs=epochs,
                        batch_size=batch_size, validation=validation, early_stopping=es,
                        log_every=log_every, seed=seed, loc=loc, setting_locs=setting_locs,
                        schedule=schedule, init_from=init_from, augment=augment)

    # data ------------------------------------------------------------------
    def data(self, v, what: str, model: ModelDef) -> DataSpec:
        if not isinstance(v, RCall):
            hint = 'expected a data source: csv("file.csv", target="y"), npz("file.npz"), builtin("digits"), ' \
                   "synthetic.classification(...) or synthetic.regression(...)"
            if isinstance(v, RName) and v.dotted in DATA_SIGS:
                hint = f"{v.dotted} needs arguments, e.g. {v.dotted}(...)"
            elif isinstance(v, RName) and v.dotted in BUILTIN_DATASETS:
                hint = f'did you mean builtin("{v.dotted}")?'
            raise self.err(f"{what} must be a data source, got {describe(v)}", v.loc, hint=hint)
        kind = v.name.dotted
        if kind not in DATA_SIGS:
            raise self.err(f"unknown data source '{_short(kind)}'", v.name.loc,
                           hint=expected_one_of(kind, DATA_SIGS))
        raw = self.bind(v.args, DATA_SIGS[kind], kind, v.loc)
        a: dict[str, Any] = {}
        if kind == "csv":
            a["path"] = self.path(raw["path"])
            a["target"] = self.get_str_list(raw["target"], "target")
            if "features" in raw:
                feats = self.get_str_list(raw["features"], "features")
                for f in feats:
                    if f in a["target"]:
                        raise self.err(f"column '{_short(f)}' is both a feature and a target", raw["features"].loc)
                a["features"] = feats
            else:
                a["features"] = None
            a["header"] = self.get_bool(raw["header"], "header") if "header" in raw else True
        elif kind == "npz":
            a["path"] = self.path(raw["path"])
            a["x"] = self.get_str(raw["x"], "x (the array name)") if "x" in raw else "x"
            a["y"] = self.get_str(raw["y"], "y (the array name)") if "y" in raw else "y"
        elif kind == "builtin":
            n = raw["name"]
            name = self.get_str(n, "the builtin dataset name") if isinstance(n, RStr) or not isinstance(n, RName) \
                else n.dotted
            if name not in BUILTIN_DATASETS:
                raise self.err(f"unknown builtin dataset '{_short(name)}'", n.loc,
                               hint=expected_one_of(name, BUILTIN_DATASETS))
            a["name"] = name
        else:
            a["samples"] = self.get_int(raw["samples"], "samples", 1, MAX_DIM)
            a["features"] = self.get_int(raw["features"], "features", 1, MAX_DIM)
            if kind == "synthetic.classification":
                a["classes"] = self.get_int(raw["classes"], "classes", 2, MAX_DIM)
            else:
                a["targets"] = self.get_int(raw["targets"], "targets", 1, MAX_DIM) if "targets" in raw else 1
                a["noise"] = self.get_float(raw["noise"], "noise", 0.0) if "noise" in raw else 0.1
            a["seed"] = self.get_int(raw["seed"], "seed", 0) if "seed" in raw else 0
            n_in = math.prod(model.input.shape)
            if a["features"] != n_in:
                raise self.err(f"{kind} makes {a['features']} features but input '{model.input.name}' has "
                               f"{n_in} (f32[{', '.join(map(str, model.input.shape))}])", raw["features"].loc,
                               hint=f"expected features={n_in}")
        return DataSpec(kind=kind, args=a, loc=v.loc)

    def path(self, v) -> str:
        p = self.get_str(v, "the file path")
        if "\0" in p:
            raise self.err("the file path contains a NUL character", v.loc)
        if not os.path.isabs(p):
            p = os.path.join(self.base_dir, p)
        return os.path.normpath(p)

    # loss ------------------------------------------------------------------
    def loss(self, v, model: ModelDef) -> LossSpec:
        if isinstance(v, RCall):
            name = self.get_choice(v.name, "loss", LOSSES)
            raw = self.bind(v.args, _Sig((), ("from_logits",)), f"loss {name}", v.loc)
            from_logits = self.get_bool(raw["from_logits"], "from_logits") if "from_logits" in raw else False
            if from_logits and name not in CROSSENTROPY:
                raise self.err(f"from_logits only applies to cross-entropy losses, not {name}",
                               raw["from_logits"].loc)
            if from_logits:
                last = final_activation(model)
                if last in ("softmax", "sigmoid"):
                    raise self.err(f"from_logits=true but the model's last layer already applies {last}",
                                   raw["from_logits"].loc,
                                   hint="either drop from_logits=true, or make the last layer linear")
        else:
            name = self.get_choice(v, "loss", LOSSES)
            from_logits = False
        return LossSpec(name=name, from_logits=from_logits, loc=v.loc)

    # optimizer ---------------------------------------------------------------
    def optimizer(self, v) -> OptimizerSpec:
        if isinstance(v, RCall):
            name = self.get_choice(v.name, "optimizer", OPTIMIZERS)
            args = v.args
        else:
            name = self.get_choice(v, "optimizer", OPTIMIZERS)
            args = []
        defaults = OPT_DEFAULTS[name]
        sig = _Sig(("lr",), tuple(defaults), OPT_ALIASES)
        raw = self.bind(args, sig, f"optimizer {name}", v.loc)
        p = dict(defaults)
        for k, rv in raw.items():
            if k == "lr":
                p[k] = self.get_float(rv, "lr (learning rate)", 0.0, lo_open=True)
            elif k in ("beta1", "beta2", "rho"):
                p[k] = self.get_float(rv, k, 0.0, 1.0, hi_open=True)
            elif k == "momentum":
                p[k] = self.get_float(rv, "momentum", 0.0, 1.0, hi_open=True)
            elif k == "eps":
                p[k] = self.get_float(rv, "eps", 0.0, lo_open=True)
            elif k == "weight_decay":
                p[k] = self.get_float(rv, "weight_decay", 0.0)
            elif k == "nesterov":
                p[k] = self.get_bool(rv, "nesterov")
        if name == "sgd" and p["nesterov"] and p["momentum"] <= 0:
            raise self.err("nesterov=true needs momentum > 0", raw["nesterov"].loc,
                           hint="add e.g. momentum=0.9")
        return OptimizerSpec(name=name, params=p, loc=v.loc)

    # metrics ---------------------------------------------------------------------
    def metrics(self, v) -> tuple[str, ...]:
        if isinstance(v, (RName, RStr)):
            items = [v]
        elif isinstance(v, RList):
            items = v.items
        else:
            raise self.err(f"metrics must be a list of metric names, got {describe(v)}", v.loc,
                           hint="expected e.g. [accuracy]; " + "metrics: " + ", ".join(METRICS))
        out: list[str] = []
        for it in items:
            m = self.get_choice(it, "metric", METRICS)
            if m in out:
                raise self.err(f"metric '{m}' listed twice", it.loc)
            out.append(m)
        return tuple(out)

    # validation -------------------------------------------------------------------
    def validation(self, v, model: ModelDef) -> ValidationSpec:
        if isinstance(v, RNum):
            frac = self.get_float(v, "validation fraction", 0.0, 1.0, lo_open=True, hi_open=True)
            return ValidationSpec(fraction=frac, seed=0, stratify=False, shuffle=True, data=None, loc=v.loc)
        if isinstance(v, RCall) and v.name.dotted == "split":
            raw = self.bind(v.args, SPLIT_SIG, "split", v.loc)
            frac = self.get_float(raw["fraction"], "validation fraction", 0.0, 1.0, lo_open=True, hi_open=True)
            seed = self.get_int(raw["seed"], "seed", 0) if "seed" in raw else 0
            strat = self.get_bool(raw["stratify"], "stratify") if "stratify" in raw else False
            shuffle = self.get_bool(raw["shuffle"], "shuffle") if "shuffle" in raw else True
            return ValidationSpec(fraction=frac, seed=seed, stratify=strat, shuffle=shuffle, data=None, loc=v.loc)
        if isinstance(v, RCall) and v.name.dotted in DATA_SIGS:
            d = self.data(v, "validation", model)
            return ValidationSpec(fraction=None, seed=0, stratify=False, shuffle=False, data=d, loc=v.loc)
        if isinstance(v, RCall):
            raise self.err(f"unknown validation source '{_short(v.name.dotted)}'", v.name.loc,
                           hint=expected_one_of(v.name.dotted, ("split",) + tuple(DATA_SIGS)))
        raise self.err(f"validation must be split(fraction) or a data source, got {describe(v)}", v.loc,
                       hint='expected e.g. split(0.2) or csv("val.csv", target="y")')

    # early stopping ------------------------------------------------------------------
    def early_stopping(self, v, metrics: tuple[str, ...], has_val: bool) -> EarlyStoppingSpec:
        if not isinstance(v, RDict):
            raise self.err(f"early_stopping must be a dict, got {describe(v)}", v.loc,
                           hint="expected e.g. { monitor: val_loss, patience: 10 }")
        raw: dict[str, Any] = {}
        for key, kloc, val in v.entries:
            k = ES_ALIASES.get(key, key)
            if k not in ES_KEYS:
                raise self.err(f"unknown early_stopping key '{_short(key)}'", kloc,
                               hint=expected_one_of(key, ES_KEYS))
            if k in raw:
                raise self.err(f"early_stopping key '{k}' given twice", kloc)
            raw[k] = val
        mon = self.monitor(raw.get("monitor"), metrics, has_val)
        mode = self.mode(raw.get("mode"), mon)
        patience = self.get_int(raw["patience"], "patience", 0) if "patience" in raw else 0
        min_delta = self.get_float(raw["min_delta"], "min_delta", 0.0) if "min_delta" in raw else 0.0
        restore = self.get_bool(raw["restore_best"], "restore_best") if "restore_best" in raw else True
        start = self.get_int(raw["start_from_epoch"], "start_from_epoch", 0) if "start_from_epoch" in raw else 0
        return EarlyStoppingSpec(monitor=mon, mode=mode, patience=patience, min_delta=min_delta,
                                 restore_best=restore, start_from_epoch=start, loc=v.loc)


    # monitored metrics (early stopping, reduce_on_plateau) ---------------------------
    @staticmethod
    def logged_metrics(metrics: tuple[str, ...], has_val: bool) -> list[str]:
        logged = ["loss", *metrics]
        if has_val:
            logged += ["val_loss", *[f"val_{m}" for m in metrics]]
        return logged

    def monitor(self, mv, metrics: tuple[str, ...], has_val: bool) -> str:
        """A logged metric's name (default: val_loss with validation, else loss)."""
        if mv is None:
            return "val_loss" if has_val else "loss"
        logged = self.logged_metrics(metrics, has_val)
        if isinstance(mv, RName):
            mon = mv.dotted
        elif isinstance(mv, RStr):
            mon = mv.value
        else:
            raise self.err(f"monitor must name a logged metric, got {describe(mv)}", mv.loc,
                           hint="the logged metrics are: " + ", ".join(logged))
        if mon not in logged:
            why = ""
            if mon.startswith("val_") and not has_val:
                why = " (there is no validation setting, so nothing val_* is logged)"
            elif mon.startswith("val_") and mon[4:] in METRICS or mon in METRICS:
                why = f" ('{mon.removeprefix('val_')}' is not in metrics)"
            raise self.err(f"monitor '{_short(mon)}' is not a logged metric{why}", mv.loc,
                           hint="the logged metrics are: " + ", ".join(logged) + did_you_mean(mon, logged))
        return mon

    def mode(self, v, monitor: str) -> str:
        mode = self.get_choice(v, "mode", ("auto", "min", "max")) if v is not None else "auto"
        if mode == "auto":
            mode = "max" if monitor.removeprefix("val_") == "accuracy" else "min"
        return mode

    # schedule -------------------------------------------------------------------------
    def schedule(self, v, metrics: tuple[str, ...], has_val: bool, epochs: int, lr: float) -> ScheduleSpec:
        if isinstance(v, RCall):
            name_v, args = v.name, v.args
        elif isinstance(v, (RName, RStr)):
            name_v, args = v, []
        else:
            raise self.err(f"schedule must be a schedule call, got {describe(v)}", v.loc,
                           hint="expected e.g. step(every=10, factor=0.5), exponential(rate=0.96), "
                                "cosine(warmup=5) or reduce_on_plateau(monitor=val_loss)")
        kind = self.get_choice(name_v, "schedule", SCHEDULES)
        raw = self.bind(args, SCHEDULE_SIGS[kind], f"schedule {kind}", v.loc)
        p: dict[str, Any] = dict(SCHEDULE_DEFAULTS[kind])
        if kind == "step":
            if "every" in raw:
                p["every"] = self.get_int(raw["every"], "every (epochs)", 1)
            if "factor" in raw:
                p["factor"] = self.get_float(raw["factor"], "factor", 0.0, 1.0, lo_open=True)
        elif kind == "exponential":
            if "rate" in raw:
                p["rate"] = self.get_float(raw["rate"], "rate", 0.0, 1.0, lo_open=True)
            if "every" in raw:
                p["every"] = self.get_int(raw["every"], "every (epochs)", 1)
        elif kind == "cosine":
            if "warmup" in raw:
                p["warmup"] = self.get_int(raw["warmup"], "warmup (epochs)", 0)
                if p["warmup"] >= epochs:
                    raise self.err(f"warmup ({p['warmup']} epochs) must be less than epochs ({epochs})",
                                   raw["warmup"].loc, hint=f"expected an integer in [0, {epochs - 1}]")
            if "min_lr" in raw:
                p["min_lr"] = self.get_float(raw["min_lr"], "min_lr", 0.0)
                if p["min_lr"] >= lr:
                    raise self.err(f"min_lr ({_fmt(p['min_lr'])}) must be less than the optimizer's "
                                   f"lr ({_fmt(lr)})", raw["min_lr"].loc)
        else:
            p["monitor"] = self.monitor(raw.get("monitor"), metrics, has_val)
            p["mode"] = self.mode(raw.get("mode"), p["monitor"])
            if "factor" in raw:
                p["factor"] = self.get_float(raw["factor"], "factor", 0.0, 1.0, lo_open=True, hi_open=True)
            if "patience" in raw:
                p["patience"] = self.get_int(raw["patience"], "patience", 0)
            if "min_delta" in raw:
                p["min_delta"] = self.get_float(raw["min_delta"], "min_delta", 0.0)
            if "min_lr" in raw:
                p["min_lr"] = self.get_float(raw["min_lr"], "min_lr", 0.0)
                if p["min_lr"] >= lr:
                    raise self.err(f"min_lr ({_fmt(p['min_lr'])}) must be less than the optimizer's "
                                   f"lr ({_fmt(lr)})", raw["min_lr"].loc)
            if "cooldown" in raw:
                p["cooldown"] = self.get_int(raw["cooldown"], "cooldown", 0)
        return ScheduleSpec(kind=kind, params=p, loc=v.loc, param_locs={k: rv.loc for k, rv in raw.items()})

    # transfer learning ------------------------------------------------------------------
    def init_from(self, v, model: ModelDef) -> InitFromSpec:
        if not (isinstance(v, RCall) and v.name.dotted == "weights"):
            raise self.err(f"init_from must be weights(\"file.npz\", ...), got {describe(v)}", v.loc,
                           hint='expected e.g.  init_from = weights("pretrained.npz", layers=[h1, h2])')
        raw = self.bind(v.args, WEIGHTS_SIG, "weights", v.loc)
        path = self.path(raw["path"])
        layers = None
        if "layers" in raw:
            lv = raw["layers"]
            items = lv.items if isinstance(lv, RList) else [lv] if isinstance(lv, (RName, RStr)) else None
            if items is None:
                raise self.err(f"layers must be a list of layer names, got {describe(lv)}", lv.loc,
                               hint="expected e.g. layers=[h1, h2]")
            if not items:
                raise self.err("layers must not be an empty list", lv.loc,
                               hint="leave out layers= to load every layer found in the file")
            by_name = {L.name: L for L in model.layers}
            with_params = [L.name for L in model.layers if L.kind in PARAM_LAYERS]
            names: list[str] = []
            for it in items:
                if isinstance(it, RName) and len(it.parts) == 1:
                    n = it.parts[0]
                elif isinstance(it, RStr):
                    n = it.value
                else:
                    raise self.err(f"each entry of layers must be a layer name, got {describe(it)}", it.loc)
                if n not in by_name:
                    raise self.err(f"model '{model.name}' has no layer '{_short(n)}'", it.loc,
                                   hint="layers with parameters: " + ", ".join(with_params) + did_you_mean(n, by_name))
                if by_name[n].kind not in PARAM_LAYERS:
                    raise self.err(f"{by_name[n].kind} layer '{n}' has no weights to load", it.loc,
                                   hint="layers with parameters: " + ", ".join(with_params))
                if n in names:
                    raise self.err(f"layers= names '{n}' twice", it.loc)
                names.append(n)
            layers = tuple(names)
        return InitFromSpec(path=path, layers=layers, loc=v.loc)

    # augmentation ---------------------------------------------------------------------
    def augment(self, v, model: ModelDef) -> tuple[AugmentSpec, ...]:
        if isinstance(v, RList):
            items = v.items
        elif isinstance(v, (RCall, RName)):
            items = [v]
        else:
            raise self.err(f"augment must be a list of augmentations, got {describe(v)}", v.loc,
                           hint="expected e.g. [noise(0.05), flip(horizontal), crop(padding=2)]")
        shape = model.input.shape
        image = len(shape) in (2, 3)
        out: list[AugmentSpec] = []
        for it in items:
            if isinstance(it, RCall):
                name_v, args = it.name, it.args
            elif isinstance(it, RName):
                name_v, args = it, []
            else:
                raise self.err(f"each augmentation must be a call, got {describe(it)}", it.loc,
                               hint="expected one of: noise(std), flip(horizontal), crop(padding=2)")
            kind = self.get_choice(name_v, "augmentation", AUGMENTS)
            if any(a.kind == kind for a in out):
                raise self.err(f"augmentation '{kind}' listed twice", it.loc)
            if kind in IMAGE_AUGMENTS and not image:
                raise self.err(f"{kind} needs an image input, but input '{model.input.name}' is "
                               f"f32[{', '.join(map(str, shape))}]", it.loc,
                               hint="flip and crop apply to inputs f32[H, W] or f32[H, W, C]; "
                                    "for flat features use noise(std)")
            raw = self.bind(args, AUGMENT_SIGS[kind], kind, it.loc)
            p: dict[str, Any] = {}
            if kind == "noise":
                p["std"] = self.get_float(raw["std"], "noise std", 0.0, lo_open=True)
            elif kind == "flip":
                p["axis"] = (self.get_choice(raw["axis"], "flip axis", FLIP_AXES, noun="flip axis")
                             if "axis" in raw else "horizontal")
                p["p"] = self.get_float(raw["p"], "flip probability p", 0.0, 1.0) if "p" in raw else 0.5
            else:
                lim = min(shape[0], shape[1])
                p["padding"] = self.get_int(raw["padding"], "crop padding", 1, lim) if "padding" in raw \
                    else min(2, lim)
            out.append(AugmentSpec(kind=kind, params=p, loc=it.loc))
        return tuple(out)


def check_program(sections: list[RSection], *, filename: str, source: str, base_dir: str) -> Program:
    """Validate the raw sections and build the checked `Program`."""
    return Checker(filename, source, base_dir).program(sections)
