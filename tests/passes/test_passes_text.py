"""Passes as "this IR in, that IR out", through the IR text form."""
import textwrap

import numpy as np
import pytest

import nncompile
from nncompile.ir.interpret import interpret
from nncompile.ir.parser import IRParseError, parse_graph
from nncompile.ir.printer import print_graph
from nncompile.ir.verify import VerifyError, verify
from nncompile.passes.cleanup import cse, dce
from nncompile.passes.fuse_xent import fuse_softmax_xent
from nncompile.passes.memory import plan_memory
from nncompile.passes.simplify import simplify


def ir(text):
    return textwrap.dedent(text).strip()


def body(g):
    """The printed graph without the location comments (they are tested elsewhere)."""
    return "\n".join(l.split("  #")[0].rstrip() for l in print_graph(g).splitlines())


def test_round_trip_of_a_real_training_graph():
    prog = nncompile.compile("examples/digits.nn")
    for g in (prog.graphs.train_step, prog.graphs.evaluate, prog.graphs.predict):
        text = print_graph(g)
        g2 = parse_graph(text)
        verify(g2)
        assert print_graph(g2) == text


def test_simplify_removes_exact_identities_only():
    g = parse_graph(ir("""
        graph t {
          %0: f32[B,4] = input {name="x", role="data"}
          %1: f32[] = const {value=1.0, dtype="f32"}
          %2: f32[B,4] = mul %0, %1
          %3: f32[] = const {value=0.0, dtype="f32"}
          %4: f32[B,4] = mul %2, %3
          %5: f32[B,4] = add %4, %3
          %6: f32[B,4] = neg %5
          %7: f32[B,4] = neg %6
          %8: f32[] = const {value=2.0, dtype="f32"}
          %9: f32[] = mul %8, %8
          %10: f32[B,4] = div %7, %9
          return "y"=%10
        }"""))
    # x*1 -> x and neg(neg(.)) -> . go; x*0 and x+0 stay (NaN and -0.0); 2*2 folds to 4
    assert body(simplify(g)) == ir("""
        graph t {
          %0: f32[B,4] = input {name="x", role="data"}
          %1: f32[] = const {value=0.0, dtype="f32"}
          %2: f32[B,4] = mul %0, %1
          %3: f32[B,4] = add %2, %1
          %4: f32[] = const {value=4.0, dtype="f32"}
          %5: f32[B,4] = div %3, %4
          return "y"=%5
        }""")


def test_simplify_keeps_nan_and_signed_zero_semantics():
    g = parse_graph(ir("""
        graph t {
          %0: f32[3] = input {name="x", role="data"}
          %1: f32[] = const {value=0.0, dtype="f32"}
          %2: f32[3] = mul %0, %1
          %3: f32[3] = add %2, %1
          %4: f32[] = const {value=-0.0, dtype="f32"}
          %5: f32[3] = add %0, %4
          return "a"=%3, "b"=%5
        }"""))
    x = np.array([np.nan, -1.0, -0.0], np.float32)
    before, after = interpret(g, {"x": x}), interpret(simplify(g), {"x": x})
    for k in before:
        np.testing.assert_array_equal(np.signbit(before[k]), np.signbit(after[k]))
        np.testing.assert_array_equal(np.isnan(before[k]), np.isnan(after[k]))


def test_cse_merges_equal_nodes_but_not_random_ones():
    g = parse_graph(ir("""
        graph t {
          %0: f32[B,4] = input {name="x", role="data"}
          %1: i64[2] = input {name="rng", role="scalar"}
          %2: f32[B,4] = exp %0
          %3: f32[B,4] = exp %0
          %4: f32[B,4] = add %2, %3
          %5: f32[B,4] = dropout_mask %0, %1 {rate=0.5, stream=0}
          %6: f32[B,4] = dropout_mask %0, %1 {rate=0.5, stream=0}
          %7: f32[B,4] = add %5, %6
          return "a"=%4, "b"=%7
        }"""))
    assert body(cse(g)) == ir("""
        graph t {
          %0: f32[B,4] = input {name="x", role="data"}
          %1: i64[2] = input {name="rng", role="scalar"}
          %2: f32[B,4] = exp %0
          %3: f32[B,4] = add %2, %2
          %4: f32[B,4] = dropout_mask %0, %1 {rate=0.5, stream=0}
          %5: f32[B,4] = dropout_mask %0, %1 {rate=0.5, stream=0}
          %6: f32[B,4] = add %4, %5
          return "a"=%3, "b"=%6
        }""")


def test_dce_keeps_inputs_and_what_outputs_need():
    g = parse_graph(ir("""
        graph t {
          %0: f32[B,4] = input {name="x", role="data"}
          %1: f32[B,4] = input {name="unused", role="data"}
          %2: f32[B,4] = exp %0
          %3: f32[B,4] = tanh %0
          return "a"=%3
        }"""))
    assert body(dce(g)) == ir("""
        graph t {
          %0: f32[B,4] = input {name="x", role="data"}
          %1: f32[B,4] = input {name="unused", role="data"}
          %2: f32[B,4] = tanh %0
          return "a"=%2
        }""")


FWD = """
    graph t {
      %0: f32[B,3] = input {name="z", role="data"}
      %1: i64[B] = input {name="y", role="data"}
      %2: f32[B,3] = log_softmax %0
      %3: f32[B] = take_label %2, %1
      %4: f32[B] = neg %3
      %5: f32[] = mean %4 {axes=(0,), keepdims=false}
      return "loss"=%5
    }"""


def test_fuse_softmax_xent():
    assert body(fuse_softmax_xent(parse_graph(ir(FWD)))) == ir("""
        graph t {
          %0: f32[B,3] = input {name="z", role="data"}
          %1: i64[B] = input {name="y", role="data"}
          %2: f32[B] = softmax_xent %0, %1
          %3: f32[] = mean %2 {axes=(0,), keepdims=false}
          return "loss"=%3
        }""")


def test_fuse_softmax_xent_refuses_when_log_probs_are_used_elsewhere():
    g = parse_graph(ir(FWD).replace('return "loss"=%5', 'return "loss"=%5, "logp"=%2'))
    out = fuse_softmax_xent(g)
    assert "softmax_xent" not in body(out)
    assert any("other users" in r for r in out.meta["fusion_refused"])


def test_memory_plan_reuses_buffers_and_works_in_place():
    g = parse_graph(ir("""
        graph t {
          %0: f32[B,8] = input {name="x", role="data"}
          %1: f32[B,8] = exp %0
          %2: f32[B,8] = tanh %1
          %3: f32[B,8] = neg %2
          %4: f32[B,1] = sum %3 {axes=(1,), keepdims=true}
          %5: f32[B,8] = exp %0
          %6: f32[B,8] = mul %5, %4
          return "y"=%6
        }"""))
    plan = plan_memory(g).meta["memory_plan"]
    rep = plan.report(batch=16)
    # %1 -> %2 -> %3 in one buffer (in place), %5 reuses it after %4 read %3, %6 in place over %5
    assert rep["values"] == 6 and rep["buffers"] == 2 and rep["in_place"] == 3
    assert rep["bytes_before"] == 16 * 4 * (5 * 8 + 1) and rep["bytes_after"] == 16 * 4 * (8 + 1)


def test_the_parser_rejects_wrong_types_and_unknown_values():
    with pytest.raises(IRParseError, match="line 3"):
        parse_graph('graph t {\n  %0: f32[4] = input {name="x", role="data"}\n  %1: f32[5] = exp %0\n}')
    with pytest.raises(IRParseError, match="unknown operand"):
        parse_graph('graph t {\n  %0: f32[4] = input {name="x", role="data"}\n  %1: f32[4] = exp %7\n}')
    with pytest.raises(IRParseError, match="unknown op"):
        parse_graph('graph t {\n  %0: f32[4] = input {name="x", role="data"}\n  %1: f32[4] = frob %0\n}')


def test_the_verifier_catches_a_broken_graph():
    g = parse_graph(ir(FWD))
    g.nodes[3].shape = ("B", 7)
    with pytest.raises(VerifyError, match="recorded type"):
        verify(g)
