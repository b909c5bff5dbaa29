"""`nncompile graph`: the SVG/HTML pictures of nncompile.graphviz."""
import os
import xml.etree.ElementTree as ET

import pytest

from nncompile.compiler import Program, compile
from nncompile.frontend import parse_source
from nncompile.graphviz import render

HERE = os.path.dirname(os.path.abspath(__file__))
DIGITS = os.path.join(HERE, "..", "examples", "digits.nn")
SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str):
    assert svg.startswith("<?xml")
    return ET.fromstring(svg.split("\n", 1)[1])


def boxes(root):
    return [g for g in root.iter(SVG + "g") if g.get("class") == "box"]


def texts(g):
    return [t.text for t in g.iter(SVG + "text")]


def test_layers_svg_has_a_box_per_layer_with_shape_params_and_line():
    p = compile(DIGITS)
    root = parse(render(p))
    bs = boxes(root)
    assert [b.get("id") for b in bs] == ["input", "layer-h1", "layer-bn1", "layer-drop1", "layer-h2", "layer-out"]
    h1 = texts(bs[1])
    assert h1 == ["h1  (dense, relu)", "output (None, 128)", "params 8,320", "line 4"]
    assert texts(bs[2])[2] == "params 512"            # gamma, beta, moving mean and variance
    assert texts(bs[0])[:2] == ["x  (input)", "output (None, 64)"]
    edges = [e for e in root.iter(SVG + "path") if e.get("marker-end")]
    assert len(edges) == 5
    # every box lies inside the picture
    W, H = float(root.get("width")), float(root.get("height"))
    for b in bs:
        r = b.find(SVG + "rect")
        assert 0 <= float(r.get("x")) and float(r.get("x")) + float(r.get("width")) <= W
        assert 0 <= float(r.get("y")) and float(r.get("y")) + float(r.get("height")) <= H


def test_frozen_and_lr_mult_are_shown_and_names_escaped():
    src = """model m {
  input x: f32[4]
  dense h(3, relu, frozen=true)
  dense out(2, lr_mult=0.5)
}
"""
    p = Program(parse_source(src, "a<b>&.nn"))
    svg = render(p)
    root = parse(svg)
    bs = boxes(root)
    assert "[frozen]" in texts(bs[1])[2] and "[lr x0.5]" in texts(bs[2])[2]
    assert "a&lt;b&gt;&amp;.nn" in svg


def test_kernels_one_box_per_ir_node_without_groups():
    p = compile(DIGITS)
    g = p.graphs.train_step
    g.meta.pop("groups", None)
    root = parse(render(p, "kernels"))
    bs = boxes(root)
    live = g.live_nodes()
    computed = [n for n in live if n.op not in ("input", "const")]
    inputs = [n for n in live if n.op == "input"]
    assert len([b for b in bs if b.get("id").startswith("node-")]) == len(computed)
    assert len([b for b in bs if b.get("id").startswith("in-")]) == len(inputs)
    mm = [b for b in bs if texts(b)[0].endswith(" matmul")]
    assert mm and any("line 4" in texts(b)[2] for b in mm)
    fills = {b.find(SVG + "rect").get("fill") for b in mm}
    assert fills == {"#fde68a"}
    # one edge per (input, node) pair, constants left out
    pairs = {(i.id, n.id) for n in computed for i in n.inputs if i.op != "const"}
    assert len([e for e in root.iter(SVG + "path") if e.get("marker-end")]) == len(pairs)


def test_kernels_grouped_by_fusion_groups():
    p = compile(DIGITS)
    g = p.graphs.train_step
    live = [n for n in g.live_nodes() if n.op not in ("input", "const")]
    # a hand-made grouping: pairs of consecutive nodes
    groups = [{"id": i, "kind": "elementwise", "nodes": [n.id for n in live[j:j + 2]], "root": live[j:j + 2][-1].id}
              for i, j in enumerate(range(0, len(live), 2))]
    g.meta["groups"] = groups
    root = parse(render(p, "kernels"))
    bs = [b for b in boxes(root) if b.get("id").startswith("group-")]
    assert len(bs) == len(groups)
    assert not [b for b in boxes(root) if b.get("id").startswith("node-")]
    assert texts(bs[0])[0].startswith("group 0: elementwise (")


def test_html_is_self_contained_and_bad_arguments_raise():
    p = compile(DIGITS)
    page = render(p, "layers", "html")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "legend" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "<script" not in page
    kpage = render(p, "kernels", "html")
    assert "matmul" in kpage
    with pytest.raises(ValueError):
        render(p, "nodes")
    with pytest.raises(ValueError):
        render(p, "layers", "png")


def test_program_without_train_block_draws_predict_kernels():
    p = Program(parse_source("model m {\n  input x: f32[4]\n  dense o(2, softmax)\n}\n", "m.nn"))
    root = parse(render(p, "kernels"))
    assert any("softmax" in " ".join(texts(b)) for b in boxes(root))  # a node box or a fusion group box
