"""Shared pieces of the fuzz tests: example counts, a generator of valid `.nn`
programs (with the spec it rendered, for the torch reference), random data of
the right shape, and the time bound.

Example counts are small so that the folder runs in CI in about a minute.
NNCOMPILE_FUZZ_EXAMPLES raises them locally: its value replaces the base count
of every hypothesis test here (the fixed-size CLI sample scales by value/base
too), e.g.

    NNCOMPILE_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/fuzz -q

The test modules import this file by path (`shared()`), since the test folders
are not packages.
"""
from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"


def shared():
    """This module, imported once under a name of its own."""
    name = "nncompile_fuzz_shared"
    mod = sys.modules.get(name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(name, Path(__file__))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return mod


def fuzz_examples(base: int) -> int:
    """`base` in CI; the value of NNCOMPILE_FUZZ_EXAMPLES when it is set."""
    env = os.environ.get("NNCOMPILE_FUZZ_EXAMPLES")
    return max(1, int(env)) if env else base


def fuzz_scale(base: int) -> int:
    """A non-hypothesis count: `base` in CI, scaled like the hypothesis counts."""
    env = os.environ.get("NNCOMPILE_FUZZ_EXAMPLES")
    return max(base, base * int(env) // 100) if env else base


class TimeBound(Exception):
    pass


@contextlib.contextmanager
def time_bound(seconds: float):
    """Raise TimeBound in the main thread after `seconds` (wall clock).

    The alarm interrupts a runaway computation; if it lands somewhere that
    swallows exceptions (a gc callback), the overrun is still reported at exit."""
    expired = []

    def on_alarm(signum, frame):
        expired.append(True)
        raise TimeBound(f"took longer than {seconds} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    if expired:
        raise TimeBound(f"took longer than {seconds} s")


# ------------------------------------------------------------- the program space

ACTS = ("relu", "sigmoid", "tanh", "softmax", "linear", "gelu", "leaky_relu")
HIDDEN_ACTS = ("relu", "sigmoid", "tanh", "linear", "gelu", "leaky_relu", "none")


@dataclass
class LayerSpec:
    kind: str
    name: Optional[str]
    args: dict                 # canonical values (what the checked AST will hold)
    text: str = ""             # how it is written


@dataclass
class ProgramSpec:
    input_shape: tuple
    layers: list
    loss: str
    from_logits: bool
    out_units: int
    out_shape: tuple           # the model's output shape without the batch dim
    optimizer: str
    opt_params: dict
    metrics: list
    settings: dict = field(default_factory=dict)
    source: str = ""

    @property
    def features(self) -> int:
        return math.prod(self.input_shape)


def _num(draw, lo, hi, log=False):
    if log:
        v = 10 ** draw(st.floats(math.log10(lo), math.log10(hi)))
    else:
        v = draw(st.floats(lo, hi))
    return min(max(float(f"{v:.3g}"), lo), hi)  # rounding stays inside [lo, hi]


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def _call(draw, positional: list, keyword: list) -> str:
    """Write an argument list: some leading arguments by position, the rest by key."""
    npos = draw(st.integers(0, len(positional)))
    parts = [_fmt(v) if not isinstance(v, str) else draw(st.sampled_from([v, f'"{v}"']))
             for _, v in positional[:npos]]
    rest = positional[npos:] + keyword
    rest = draw(st.permutations(rest)) if rest else rest
    for k, v in rest:
        parts.append(f"{k}={_fmt(v) if not isinstance(v, str) else v}")
    if parts and draw(st.booleans()) and draw(st.booleans()):
        parts.append("")  # a trailing comma
    return "(" + ", ".join(parts) + ")"


@st.composite
def layer_specs(draw, kind: str, flat: bool, *, units=None, act=None, allow_dropout=True):
    a: dict = {}
    pos: list = []
    kw: list = []
    if kind == "dense":
        u = units if units is not None else draw(st.integers(1, 6))
        act = act if act is not None else draw(st.sampled_from(HIDDEN_ACTS))
        a = dict(units=u, activation="linear" if act == "none" else act)
        pos = [("units", u)]
        if act != "linear" or draw(st.booleans()):
            pos.append(("activation", act))
        if draw(st.booleans()):
            l1 = draw(st.sampled_from([0.0, 1e-4, 0.01]))
            l2 = draw(st.sampled_from([0.0, 1e-3, 0.1]))
            kw += [("l1", l1), ("l2", l2)]
            a.update(l1=l1, l2=l2)
        if draw(st.booleans()):
            init = draw(st.sampled_from(["glorot_uniform", "glorot_normal", "he_uniform", "he_normal"]))
            kw.append((draw(st.sampled_from(["init", "kernel_initializer"])), init))
        if draw(st.integers(0, 4)) == 0:
            kw.append(("use_bias", False))
            a["use_bias"] = False
    elif kind == "dropout":
        r = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9])) if allow_dropout else 0.0
        a = dict(rate=r)
        pos = [("rate", r)]
    elif kind == "batchnorm":
        if draw(st.booleans()):
            m = draw(st.sampled_from([0.0, 0.5, 0.99]))
            e = draw(st.sampled_from([1e-5, 1e-3, 0.1]))
            pos = [("momentum", m), ("epsilon", e)]
            a = dict(momentum=m, epsilon=e)
        else:
            a = dict(momentum=0.99, epsilon=1e-3)
    elif kind == "layernorm":
        if draw(st.booleans()):
            e = draw(st.sampled_from([1e-5, 1e-3, 0.1]))
            kw = [(draw(st.sampled_from(["epsilon", "eps"])), e)]
            a = dict(epsilon=e)
        else:
            a = dict(epsilon=1e-3)
    elif kind == "activation":
        fn = act if act is not None else draw(st.sampled_from(HIDDEN_ACTS))
        a = dict(fn="linear" if fn == "none" else fn)
        pos = [("fn", fn)]
    name = draw(st.sampled_from([None, f"{kind[:2]}{draw(st.integers(0, 10**6))}"]))
    if kind == "flatten":
        args = draw(st.sampled_from(["", "()"]))
    elif not pos and not kw:
        args = draw(st.sampled_from(["", "()"]))
    else:
        args = _call(draw, pos, kw)
    text = f"{kind}{' ' + name if name else ''}{args}" if args.startswith("(") else \
        f"{kind}{' ' + name if name else ''}"
    return LayerSpec(kind, name, a, text)


@st.composite
def program_specs(draw, *, image: bool = True, max_hidden: int = 3, allow_dropout: bool = True,
                  multi_dim_batchnorm: bool = False, train: bool = True):
    """A valid program. `multi_dim_batchnorm=False` keeps batch norm on flat
    inputs only (batch norm before `flatten` is a known bug, see the xfail)."""
    ndim = draw(st.integers(1, 3)) if image else 1
    shape = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    layers: list = []
    names_used: set = set()

    def add(spec):
        if spec.name is not None:
            if spec.name in names_used or spec.name == "x":
                spec.name, spec.text = None, _strip_name(spec)
            else:
                names_used.add(spec.name)
        layers.append(spec)

    if ndim > 1:
        kinds = ["dropout", "layernorm", "activation"] + (["batchnorm"] if multi_dim_batchnorm else [])
        for _ in range(draw(st.integers(0, 2))):
            add(draw(layer_specs(draw(st.sampled_from(kinds)), False, allow_dropout=allow_dropout)))
        add(draw(layer_specs("flatten", False)))
    for _ in range(draw(st.integers(0, max_hidden))):
        kind = draw(st.sampled_from(["dense", "dense", "dropout", "batchnorm", "layernorm",
                                     "activation", "flatten"]))
        add(draw(layer_specs(kind, True, allow_dropout=allow_dropout)))

    loss = draw(st.sampled_from(["sparse_categorical_crossentropy", "categorical_crossentropy",
                                 "binary_crossentropy", "mse", "mae"]))
    from_logits = False
    if loss in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
        units = draw(st.integers(2, 5))
        out_act = draw(st.sampled_from(["softmax", "softmax", "logits", "sigmoid"]))
    elif loss == "binary_crossentropy":
        units = draw(st.integers(1, 3))
        out_act = draw(st.sampled_from(["sigmoid", "sigmoid", "logits"]))
    else:
        units = draw(st.integers(1, 3))
        out_act = draw(st.sampled_from(["linear", "tanh", "sigmoid", "relu", "gelu", "leaky_relu"]))
    if out_act == "logits":
        from_logits, out_act = True, "linear"
    if draw(st.booleans()):
        add(draw(layer_specs("dense", True, units=units, act=out_act)))
    else:  # a linear dense layer, then a separate activation layer
        add(draw(layer_specs("dense", True, units=units, act="linear")))
        if out_act != "linear" or draw(st.booleans()):
            add(draw(layer_specs("activation", True, act=out_act)))
    if out_act in ("linear",) and draw(st.integers(0, 3)) == 0:
        add(draw(layer_specs("dropout", True, allow_dropout=allow_dropout)))

    opt = draw(st.sampled_from(["sgd", "adam", "adamw", "rmsprop"]))
    params: dict = {}
    if draw(st.booleans()):
        params["lr"] = _num(draw, 1e-5, 0.5, log=True)
        if opt == "sgd" and draw(st.booleans()):
            params["momentum"] = _num(draw, 0.0, 0.95)
            if params["momentum"] > 0 and draw(st.booleans()):
                params["nesterov"] = True
        if opt in ("adam", "adamw") and draw(st.booleans()):
            params["beta1"] = _num(draw, 0.0, 0.99)
            params["beta2"] = _num(draw, 0.5, 0.999)
        if opt == "adamw" and draw(st.booleans()):
            params["weight_decay"] = _num(draw, 0.0, 0.1)
        if opt == "rmsprop" and draw(st.booleans()):
            params["rho"] = _num(draw, 0.0, 0.99)
        if opt != "sgd" and draw(st.booleans()):
            params["eps"] = _num(draw, 1e-10, 1e-3, log=True)
    metrics = draw(st.lists(st.sampled_from(["accuracy", "mse", "mae"]), unique=True, max_size=3))
    out_shape = (units,)
    spec = ProgramSpec(shape, layers, loss, from_logits, units, out_shape, opt, params, metrics)

    lines = [f"model {draw(st.sampled_from(['m', 'net', 'model_1']))} {{",
             f"  input x: f32[{', '.join(map(str, shape))}]"]
    for L in layers:
        lines.append("  " + L.text + draw(st.sampled_from(["", "", "  # a comment"])))
        if draw(st.integers(0, 6)) == 0:
            lines.append(draw(st.sampled_from(["", "  # note", "   "])))
    lines.append("}")
    if train:
        tl = ["train {"]
        loss_text = loss + ("(from_logits=true)" if from_logits else "")
        tl.append(f"  loss = {loss_text}")
        if params:
            items = [f"{k}={_fmt(v)}" for k, v in params.items()]
            if "lr" in params and draw(st.booleans()):
                items[0] = _fmt(params["lr"])  # lr by position
            opt_text = f"{opt}({', '.join(items)})"
        else:
            opt_text = draw(st.sampled_from([opt, f"{opt}()", f'"{opt}"']))
        tl.append(f"  optimizer = {opt_text}")
        if metrics or draw(st.booleans()):
            tl.append(f"  metrics = [{', '.join(metrics)}]" if len(metrics) != 1 or draw(st.booleans())
                      else f"  metrics = {metrics[0]}")
        settings = {}
        for key, strat in (("epochs", st.integers(1, 3)), ("batch_size", st.integers(1, 64)),
                           ("log_every", st.integers(1, 5)), ("seed", st.integers(0, 2**31))):
            if draw(st.booleans()):
                settings[key] = draw(strat)
                tl.append(f"  {key} = {settings[key]}")
        val = draw(st.sampled_from([None, "split", "number"]))
        if val == "split":
            frac = draw(st.sampled_from([0.1, 0.2, 0.5]))
            tl.append(f"  validation = split({frac}, seed={draw(st.integers(0, 9))}, "
                      f"shuffle={_fmt(draw(st.booleans()))})")
        elif val == "number":
            tl.append(f"  validation = {draw(st.sampled_from([0.1, 0.25]))}")
        settings["validation"] = val
        classification = loss == "sparse_categorical_crossentropy"
        if classification or loss in ("mse", "mae"):
            if draw(st.booleans()):
                n = draw(st.integers(8, 40))
                if classification:
                    tl.append(f"  data = synthetic.classification(samples={n}, features={spec.features}, "
                              f"classes={units}, seed={draw(st.integers(0, 5))})")
                else:
                    tl.append(f"  data = synthetic.regression(samples={n}, features={spec.features}, "
                              f"targets={units}, noise=0.1)")
                settings["data"] = n
        if draw(st.booleans()):
            logged = ["loss"] + metrics
            if val:
                logged += ["val_loss"] + [f"val_{m}" for m in metrics]
            es = {"monitor": draw(st.sampled_from(logged)), "patience": draw(st.integers(0, 3))}
            if draw(st.booleans()):
                es["min_delta"] = draw(st.sampled_from([0, 1e-4, 0.5]))
            if draw(st.booleans()):
                es["mode"] = draw(st.sampled_from(["auto", "min", "max"]))
            if draw(st.booleans()):
                es["restore_best"] = draw(st.booleans())
            tl.append("  early_stopping = {" + ", ".join(f"{k}: {_fmt(v)}" for k, v in es.items()) + "}")
        spec.settings = settings
        body = tl[1:]
        body = draw(st.permutations(body))
        tl = [tl[0]] + list(body) + ["}"]
        blocks = ["\n".join(lines), "\n".join(tl)]
        if draw(st.integers(0, 4)) == 0:
            blocks.reverse()
        lines = ["\n\n".join(blocks)]
    spec.source = "\n".join(lines) + "\n"
    return spec


def _strip_name(spec: LayerSpec) -> str:
    rest = spec.text[len(spec.kind):].lstrip()
    rest = rest.split("(", 1)
    return spec.kind + ("(" + rest[1] if len(rest) > 1 else "")


def random_batch(spec: ProgramSpec, n: int, rng: np.random.Generator, dtype=np.float32):
    """Inputs and targets of the right shape and kind for `spec`'s loss."""
    x = rng.normal(size=(n,) + tuple(spec.input_shape)).astype(dtype)
    k = spec.out_units
    if spec.loss == "sparse_categorical_crossentropy":
        return x, rng.integers(0, k, size=n)
    if spec.loss == "categorical_crossentropy":
        return x, np.eye(k, dtype=dtype)[rng.integers(0, k, size=n)]
    if spec.loss == "binary_crossentropy":
        return x, rng.integers(0, 2, size=(n, k)).astype(dtype)
    return x, rng.normal(size=(n, k)).astype(dtype)
