"""The elementwise fusion pass: IR in, fusion groups out (what the Triton
backend turns into kernels). Pure IR: no torch or triton needed."""
from nncompile.ir.graph import B, Graph
from nncompile.passes.fusion import fuse_elementwise


def _groups(g):
    fuse_elementwise(g)
    return [(gr["kind"], [g.nodes[i].op for i in gr["nodes"]]) for gr in g.meta["groups"]]


def test_fusion_matmul_epilogue_and_chain():
    g = Graph("t")
    x = g.input("x", (B, 4))
    w = g.input("w", (4, 3), role="param")
    b = g.input("b", (3,), role="param")
    h = g.emit("relu", g.emit("add", g.emit("matmul", x, w), b))
    two = g.const(2.0)
    e = g.emit("exp", g.emit("neg", g.emit("mul", h, two)))
    g.output("y", e)
    assert _groups(g) == [("matmul", ["matmul", "add", "relu"]), ("elementwise", ["mul", "neg", "exp"])]
    gr = g.meta["groups"]
    assert gr[0]["epilogue"] == {"bias": b.id, "activation": "relu", "mask": None}
    assert gr[1]["inputs"] == [h.id, two.id]


def test_fusion_refuses_multi_user_and_broadcast():
    g = Graph("t")
    x = g.input("x", (B, 4))
    c = g.input("c", (4,))
    s = g.emit("square", c)             # [4]: broadcast into the [B,4] group, not fused
    a = g.emit("add", x, s)
    t = g.emit("tanh", a)               # 2 users in 2 groups
    g.output("u", g.emit("exp", t))
    g.output("v", g.emit("sum", t, axes=(1,), keepdims=False))
    kinds = _groups(g)
    assert ("elementwise", ["square"]) in kinds
    assert ("elementwise", ["add", "tanh"]) in kinds
    assert ("elementwise", ["exp"]) in kinds
    ref = " ".join(g.meta["fusion_refused"])
    assert f"%{s.id} square" in ref and "shape" in ref
    assert f"%{t.id} tanh" in ref and "2 users" in ref


def test_fusion_multi_output_update_and_relu_grad_mask():
    g = Graph("t")
    gz = g.input("g", (B, 3))
    w = g.input("w", (4, 3), role="param")
    hid = g.input("h", (B, 4))
    m = g.input("m", (4, 3), role="state")
    d = g.emit("relu_grad", g.emit("matmul", gz, w, tb=True), hid)
    gw = g.emit("matmul", hid, gz, ta=True)
    m2 = g.emit("add", g.emit("mul", m, g.const(0.9)), gw)   # used by p2 and an output
    p2 = g.emit("sub", w, g.emit("mul", m2, g.const(0.1)))
    g.output("d", d)
    g.output("w", p2, updates="w")
    g.output("m", m2, updates="m")
    kinds = _groups(g)
    assert kinds[0] == ("matmul", ["matmul", "relu_grad"])
    assert g.meta["groups"][0]["epilogue"]["mask"] == hid.id
    upd = g.meta["groups"][-1]
    assert upd["kind"] == "elementwise" and set(upd["outputs"]) == {m2.id, p2.id}


def test_fusion_keeps_returned_values():
    g = Graph("t")
    x = g.input("x", (B, 4))
    w = g.input("w", (4, 3), role="param")
    b = g.input("b", (3,), role="param")
    m = g.emit("matmul", x, w)
    a = g.emit("add", m, b)
    g.output("m", m)          # the matmul's own value is returned: no epilogue after it
    g.output("r", g.emit("relu", a))
    assert _groups(g)[0] == ("matmul", ["matmul"])
    assert m.id in g.meta["groups"][0]["outputs"]
