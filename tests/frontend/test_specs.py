"""The declarative frontend: one spec row (or one layer definition) is all it
takes for an argument or a layer kind to be checked, defaulted, documented,
reported in errors, lowered and shown; and the docs tables are the specs'."""
import os
from dataclasses import replace

import numpy as np
import pytest

from nncompile.compiler import Program
from nncompile.errors import CompileError, SourceLoc, expected_one_of
from nncompile.frontend import parse_source
from nncompile.frontend.checks import data_file_spec
from nncompile.frontend.layers import LAYERS, LayerKind, Shaped
from nncompile.frontend.raw import RArg, RName, RNum
from nncompile.frontend.specs import Arg, ArgType, Bool, Derived, Float, Int, Scope, Spec
from nncompile.frontend.specs.docs import blocks, markdown_tables, update_doc
from nncompile.frontend.specs.training import ADAM, OPTIMIZERS
from nncompile.frontend.values import Reader
from nncompile.graphviz import render

HERE = os.path.dirname(os.path.abspath(__file__))
LANGUAGE_MD = os.path.join(HERE, "..", "..", "docs", "language.md")


def error(src: str) -> CompileError:
    with pytest.raises(CompileError) as ei:
        parse_source(src, "m.nn")
    return ei.value


# ------------------------------------------------------------------ docs

def test_language_reference_tables_are_the_specs():
    with open(LANGUAGE_MD, encoding="utf-8") as f:
        text = f.read()
    assert blocks(text) == list(markdown_tables()), "docs/language.md lacks a generated table"
    assert update_doc(text) == text, \
        "docs/language.md differs from the specs: run  python -m nncompile.frontend.specs --write docs/language.md"


# ------------------------------------------------------------------ a new optimizer argument

TRAIN = """model m {{
  input x: f32[4]
  dense out(2, softmax)
}}
train {{
  loss = sparse_categorical_crossentropy
  optimizer = {opt}
}}
"""


@pytest.fixture
def amsgrad(monkeypatch):
    """adam with one more row: what adding an optimizer argument takes."""
    row = Arg("amsgrad", Bool(), False, "use the maximum of past second moments", aliases=("ams",))
    monkeypatch.setitem(OPTIMIZERS, "adam", ADAM.extend("adam", row))


def test_new_optimizer_argument_is_defaulted_checked_and_documented(amsgrad):
    params = parse_source(TRAIN.format(opt="adam")).train.optimizer.params
    assert params == {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "clipnorm": None,
                      "global_clipnorm": None, "clipvalue": None, "amsgrad": False}
    assert parse_source(TRAIN.format(opt="adam(ams=true)")).train.optimizer.params["amsgrad"] is True
    e = error(TRAIN.format(opt="adam(amsgrad=2)"))
    assert e.message == "amsgrad must be true or false, got the integer 2" and (e.line, e.column) == (7, 28)
    e = error(TRAIN.format(opt="adam(amsgrd=true)"))
    assert e.message == "unknown argument 'amsgrd' for optimizer adam"
    assert e.hint == ("expected one of: lr, beta1, beta2, eps, clipnorm, global_clipnorm, clipvalue, amsgrad, "
                      "learning_rate, beta_1, beta_2, epsilon, "
                      "ams; did you mean 'amsgrad'?")
    assert "|  | `amsgrad` (alias `ams`) | bool | `false` | use the maximum of past second moments |" \
        in markdown_tables()["optimizers"]


# ------------------------------------------------------------------ a new layer kind

class Scale(LayerKind):
    """x * factor: a made-up kind, defined in one place like the real ones."""
    name = "scale"
    doc = "multiplies by a constant"
    spec = Spec("scale", (Arg("factor", Float(0.0, lo_open=True), 2.0, "the constant", positional=True),))

    def label(self, layer):
        return f"scale {layer.args['factor']:g}"

    def shape(self, layer, shape, fail):
        if len(shape) != 1:
            raise fail(f"scale layer '{layer.name}' needs a flat input", "add a `flatten` layer before it")
        return Shaped(shape, flops=shape[0])

    def lower(self, low, info, h):
        return low.g.emit("mul", h, low.g.const(info.layer.args["factor"]))


@pytest.fixture
def scale(monkeypatch):
    monkeypatch.setitem(LAYERS, "scale", Scale())


MODEL = """model m {{
  input x: f32[{shape}]
  {layer}
  dense out(2)
}}
"""


def test_new_layer_kind_is_checked_defaulted_and_reported(scale):
    layers = parse_source(MODEL.format(shape=4, layer="scale")).model.layers
    assert (layers[0].name, layers[0].args) == ("scale_1", {"factor": 2.0})
    assert parse_source(MODEL.format(shape=4, layer="scale s(3)")).model.layers[0].args == {"factor": 3.0}
    e = error(MODEL.format(shape=4, layer="scale s(0)"))
    assert e.message == "factor must be > 0, got 0" and (e.line, e.column) == (3, 11)
    e = error(MODEL.format(shape=4, layer="scle s(3)"))
    assert e.message == "unknown layer kind 'scle'" and "did you mean 'scale'" in e.hint and "scale" in e.hint
    e = error(MODEL.format(shape=4, layer="scale s(3, frozen=true)"))
    assert e.message == "scale layer 's' has no parameters, so 'frozen' does not apply"
    assert "`scale(factor)` | `factor` | number > 0 | `2` | the constant |" in markdown_tables()["layers"]


def test_new_layer_kind_is_lowered_shaped_and_shown(scale):
    p = Program(parse_source(MODEL.format(shape=4, layer="scale s(3)"), "m.nn"))
    params = p.init_params(seed=0)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    want = (3 * x) @ params["out.weight"] + params["out.bias"]
    np.testing.assert_allclose(p.predict(params, x), want, rtol=1e-6)
    assert "s (scale 3)" in p.summary() and "Forward FLOPs per sample: 20" in p.summary()
    assert "s  (scale 3)" in render(p)
    with pytest.raises(CompileError) as ei:
        Program(parse_source(MODEL.format(shape="2, 2", layer="scale s(3)"), "m.nn"))
    assert ei.value.message == "scale layer 's' needs a flat input" and ei.value.line == 3


class LayerRefs(ArgType):
    """Names of earlier layers (what a merge layer's from= would take)."""

    def read(self, scope, v, label):
        out = []
        for it in v.items:
            name = it.dotted
            if name not in scope.layers:
                raise scope.err(f"no layer '{name}' before this one", it.loc,
                                hint=expected_one_of(name, scope.layers))
            out.append(name)
        return tuple(out)

    def describe(self):
        return "list of earlier layer names"


class Sum(LayerKind):
    """The sum of named earlier layers: a made-up merge kind, also one definition."""
    name = "sum"
    merges = True
    spec = Spec("sum", (Arg("from", LayerRefs(), doc="the layers to add", positional=True),))

    def inputs(self, layer):
        return layer.args["from"]

    def infer(self, layer, shapes, fail):
        if len(set(shapes)) != 1:
            raise fail(f"sum layer '{layer.name}' adds shapes {[list(s) for s in shapes]}")
        return Shaped(shapes[0], flops=(len(shapes) - 1) * shapes[0][0])

    def emit(self, low, info, hs):
        h = hs[0]
        for other in hs[1:]:
            h = low.g.emit("add", h, other)
        return h


MERGE = """model m {{
  input x: f32[4]
  dense a(3)
  dense b(3)
  sum s({refs})
  dense out(2)
}}
"""


def test_merge_layer_kind_reads_named_inputs(monkeypatch):
    monkeypatch.setitem(LAYERS, "sum", Sum())
    p = Program(parse_source(MERGE.format(refs="from=[a, b]"), "m.nn"))
    w = p.init_params(seed=0)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    a = x @ w["a.weight"] + w["a.bias"]
    b = a @ w["b.weight"] + w["b.bias"]
    np.testing.assert_allclose(p.predict(w, x), (a + b) @ w["out.weight"] + w["out.bias"], rtol=1e-5)
    svg = render(p)
    assert svg.count("marker-end") == 5          # x->a, a->b, a->s, b->s, s->out
    e = error(MERGE.format(refs="[a, out]"))
    assert e.message == "no layer 'out' before this one" and e.hint.startswith("expected one of: x, a, b")
    with pytest.raises(CompileError, match=r"sum layer 's' adds shapes \[\[4\], \[3\]\]"):
        Program(parse_source(MERGE.format(refs="[x, a]"), "m.nn"))


# ------------------------------------------------------------------ the binder

def _raw(*args):
    """Raw arguments: values positional, (key, value) pairs by key."""
    loc = SourceLoc("t.nn", 1, 1)
    wrap = lambda v: RNum(v, isinstance(v, int), str(v), loc) if not isinstance(v, str) else RName((v,), loc)
    return [RArg(a[0], loc, wrap(a[1])) if isinstance(a, tuple) else RArg(None, None, wrap(a)) for a in args]


def _below_ten(scope, value, raw):
    if value + scope.values["a"] >= 10:
        raise scope.err("a + b must be below 10", raw.loc)


THING = Spec("thing", (
    Arg("a", Int(1), positional=True, example="expected e.g.  thing(3)"),
    Arg("b", Float(0.0, 10.0), 0.5, positional=True, aliases=("bee",), check=_below_ten),
    Arg("c", Bool(), Derived(lambda s: s.values["a"] > 2, "a > 2")),
))


def call(*args) -> dict:
    return THING.call(Scope(Reader("t.nn", None, "/")), _raw(*args), "thing", SourceLoc("t.nn", 1, 1)).values


def test_binder_positions_aliases_defaults_and_checks():
    assert call(1) == {"a": 1, "b": 0.5, "c": False}
    assert call(3, ("bee", 2)) == {"a": 3, "b": 2.0, "c": True}
    assert call(("c", "false"), ("a", 5)) == {"a": 5, "b": 0.5, "c": False}
    for args, message, hint in [
        ((), "thing needs 'a' (argument 1, or a=...)", "expected e.g.  thing(3)"),
        ((1, 2, 3), "too many positional arguments for thing: it takes at most 2 (a, b)",
         "give the others as key=value: c"),
        ((("a", 1), 2), "positional argument after key=value arguments in thing", None),
        ((1, ("d", 1)), "unknown argument 'd' for thing", "expected one of: a, b, c, bee"),
        ((1, ("bee", 1), ("b", 2)), "argument 'b' given twice in thing", None),
        ((0,), "a must be an integer >= 1, got 0", None),
        ((6, 4), "a + b must be below 10", None),
    ]:
        with pytest.raises(CompileError) as ei:
            call(*args)
        assert ei.value.message == message and (hint is None or ei.value.hint == hint)


def test_complete_fills_only_fixed_defaults():
    assert THING.complete({"a": 4}) == {"b": 0.5, "a": 4}
    assert replace(THING, args=THING.args[:1]).defaults() == {}


# ------------------------------------------------------------------ command-line data files

def test_data_file_specs_are_checked_and_defaulted_like_the_language(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    npz = data_file_spec("d.npz")
    assert (npz.kind, npz.args) == ("npz", {"path": str(tmp_path / "d.npz"), "x": "x", "y": "y"})
    csv = data_file_spec("d.csv", target=["y"])
    assert csv.args == {"path": str(tmp_path / "d.csv"), "target": ["y"], "features": None, "header": True}
    assert data_file_spec("d.csv", labelled=False).args["target"] == []
    assert data_file_spec("d.npz", labelled=False).args["y"] is None
    for kw, message in [({"target": []}, "target must not be an empty list"),
                        ({"target": ["y", "y"]}, "target names 'y' twice"),
                        ({"target": ["y"], "features": ["a", "y"]}, "column 'y' is both a feature and a target"),
                        ({}, "csv needs 'target'")]:
        with pytest.raises(CompileError) as ei:
            data_file_spec("d.csv", **kw)
        assert ei.value.message == message


def test_predict_input_reads_through_the_data_loader(tmp_path):
    from nncompile.cli import _read_features
    from nncompile.errors import DataError
    p = Program(parse_source("model m {\n  input x: f32[2, 2]\n  flatten\n  dense o(1)\n}\n"))
    (tmp_path / "x.csv").write_text("a,b,c,d\n1,2,3,4\n5,6,7,8\n")
    assert _read_features(str(tmp_path / "x.csv"), p).shape == (2, 2, 2)
    np.savez(tmp_path / "x.npz", x=np.ones((3, 4), np.float32))
    assert _read_features(str(tmp_path / "x.npz"), p).shape == (3, 2, 2)
    (tmp_path / "bad.csv").write_text("1,2,3,4\n5,6,7,8\n")
    with pytest.raises(DataError, match="the first row is numbers, not a header"):
        _read_features(str(tmp_path / "bad.csv"), p)
    np.savez(tmp_path / "hw.npz", x=np.arange(12, dtype=np.float32).reshape(3, 2, 2))
    np.testing.assert_array_equal(_read_features(str(tmp_path / "hw.npz"), p),
                                  np.arange(12).reshape(3, 2, 2))
    img = Program(parse_source("model m {\n  input x: f32[3, 2, 1]\n  flatten\n  dense o(1)\n}\n"))
    np.savez(tmp_path / "hwc.npz", x=np.zeros((4, 3, 2), np.float32))          # (N, H, W) for C = 1
    assert _read_features(str(tmp_path / "hwc.npz"), img).shape == (4, 3, 2, 1)
    np.savez(tmp_path / "wh.npz", x=np.zeros((4, 2, 3), np.float32))           # height and width swapped
    with pytest.raises(DataError, match=r"the samples have shape \[2, 3\], but the model's input has shape "
                                        r"\[3, 2, 1\]: as many values per sample, in another layout"):
        _read_features(str(tmp_path / "wh.npz"), img)
    (tmp_path / "three.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match=r"3 feature value\(s\) per row, but the model's input 'x' takes 4"):
        _read_features(str(tmp_path / "three.csv"), p)
