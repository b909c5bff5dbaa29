"""Every traced operation of the graph API, forward and gradient, against PyTorch
autograd in float64: nc.jit(nc.value_and_grad(sum(op(inputs) * R))) on the
NumPy backend, optimized and not, against torch's value and gradients."""
import numpy as np
import pytest

from extras import TORCH_REASON

torch = pytest.importorskip("torch", reason=TORCH_REASON)

import nncompile as nc  # noqa: E402
from nncompile.ir.philox import dropout_keep_mask  # noqa: E402

F = torch.nn.functional
T = torch


def _any(rng, shape):
    x = rng.normal(size=shape)
    return np.where(np.abs(x) < 0.05, 0.3, x)     # away from the kinks of relu, abs, clip


def _pos(rng, shape):
    return rng.uniform(0.5, 2.0, size=shape)


def _probs(rng, shape):
    e = np.exp(rng.normal(size=shape))
    return e / e.sum(-1, keepdims=True)


def _labels(rng, shape, classes):
    return rng.integers(0, classes, size=shape)


def check(fn, tfn, inputs, *, batch=(), rtol=1e-7, atol=1e-9, grad=True, optimize=(True, False)):
    """inputs: name -> array (float64 or int64). batch: names whose first axis is B."""
    names = list(inputs)
    specs = [nc.f64[(nc.B,) + a.shape[1:]] if k in batch and a.dtype == np.float64 else
             nc.i64[(nc.B,) + a.shape[1:]] if k in batch else nc.spec_of(a) for k, a in inputs.items()]
    arrays = [inputs[k] for k in names]
    tin = [torch.tensor(a, requires_grad=a.dtype == np.float64 and grad) for a in arrays]
    want = tfn(*tin)
    out_shape = None
    for opt in optimize:
        f = nc.jit(fn, *specs, optimize=opt)
        out_shape = f.graph.outputs["out"].shape
        np.testing.assert_allclose(f(*arrays), want.detach().numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"forward opt={opt}")
    if not grad:
        return
    rng = np.random.default_rng(1)
    r = rng.normal(size=want.shape)
    (want * torch.tensor(r)).sum().backward()
    wrt = tuple(i for i, a in enumerate(arrays) if a.dtype == np.float64)

    def loss(*args):
        *xs, rr = args
        return nc.sum(fn(*xs) * rr)

    r_spec = nc.f64[out_shape]
    for opt in optimize:
        step = nc.jit(nc.value_and_grad(loss, argnums=wrt), *specs, r_spec, optimize=opt)
        value, grads = step(*arrays, r)
        np.testing.assert_allclose(value, float((want * torch.tensor(r)).sum().detach()), rtol=rtol, atol=atol)
        for i, gi in zip(wrt, grads):
            np.testing.assert_allclose(gi, tin[i].grad.numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"d/d{names[i]} opt={opt}")


rng0 = np.random.default_rng(0)

UNARY = {
    "relu": (nc.relu, T.relu, _any), "sigmoid": (nc.sigmoid, T.sigmoid, _any), "tanh": (nc.tanh, T.tanh, _any),
    "exp": (nc.exp, T.exp, _any), "log": (nc.log, T.log, _pos), "sqrt": (nc.sqrt, T.sqrt, _pos),
    "square": (nc.square, T.square, _any), "abs": (nc.abs, T.abs, _any), "softplus": (nc.softplus, F.softplus, _any),
    "leaky_relu": (lambda a: nc.leaky_relu(a, 0.3), lambda a: F.leaky_relu(a, 0.3), _any),
    "gelu": (nc.gelu, F.gelu, _any),
    "elu": (lambda a: nc.elu(a, alpha=0.7), lambda a: F.elu(a, 0.7), _any), "selu": (nc.selu, F.selu, _any),
    "silu": (nc.silu, F.silu, _any), "swish": (nc.swish, F.silu, _any), "softsign": (nc.softsign, F.softsign, _any),
    "hard_sigmoid": (nc.hard_sigmoid, lambda a: F.relu6(a + 3) / 6, _any),
    "gelu_tanh": (lambda a: nc.gelu(a, approximate=True), lambda a: F.gelu(a, approximate="tanh"), _any),
    "clip": (lambda a: nc.clip(a, -0.5, 0.7), lambda a: T.clamp(a, -0.5, 0.7), _any),
    "negative": (lambda a: -a, lambda a: -a, _any),
    "softmax": (nc.softmax, lambda a: T.softmax(a, -1), _any),
    "softmax_axis0": (lambda a: nc.softmax(a, axis=0), lambda a: T.softmax(a, 0), _any),
    "log_softmax": (nc.log_softmax, lambda a: T.log_softmax(a, -1), _any),
    "pow2": (lambda a: a ** 2, lambda a: a ** 2, _any),
    "pow3": (lambda a: a ** 3, lambda a: a ** 3, _any),
    "pow5": (lambda a: nc.power(a, 5), lambda a: a ** 5, _any),
    "pow_neg2": (lambda a: a ** -2, lambda a: a ** -2, _pos),
    "pow_half": (lambda a: a ** 0.5, lambda a: a ** 0.5, _pos),
    "pow_float": (lambda a: a ** 1.7, lambda a: a ** 1.7, _pos),
    "rpow": (lambda a: 2.0 ** a, lambda a: 2.0 ** a, _any),
    "scalar_ops": (lambda a: (3.0 - a) * 2 / 4 + 1, lambda a: (3.0 - a) * 2 / 4 + 1, _any),
    "rdiv": (lambda a: 1.0 / a, lambda a: 1.0 / a, _pos),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name):
    fn, tfn, make = UNARY[name]
    check(fn, tfn, {"x": make(rng0, (5, 4))}, batch=("x",))


BINARY = {
    "add": (lambda a, b: a + b, _any), "sub": (lambda a, b: a - b, _any), "mul": (lambda a, b: a * b, _any),
    "div": (lambda a, b: a / b, _pos), "pow": (lambda a, b: a ** b, _pos),
    "maximum": ((nc.maximum, T.maximum), _any), "minimum": ((nc.minimum, T.minimum), _any),
}


@pytest.mark.parametrize("bshape", [(5, 4), (4,), (1, 4), (5, 1), ()])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_with_broadcasting(name, bshape):
    fns, make = BINARY[name]
    fn, tfn = fns if isinstance(fns, tuple) else (fns, fns)
    a = _pos(rng0, (5, 4)) if name == "pow" else _any(rng0, (5, 4))
    check(fn, tfn, {"a": a, "b": make(rng0, bshape)}, batch=("a", "b") if bshape[:1] == (5,) else ("a",))


def test_maximum_and_max_split_ties_as_torch():
    a = np.array([[1.0, 2.0, 2.0], [3.0, 3.0, 0.0]])
    check(nc.maximum, T.maximum, {"a": a, "b": np.array([2.0, 1.0, 2.0])})
    check(lambda x: nc.max(x, axis=1), lambda x: T.amax(x, 1), {"a": a})
    check(lambda x: nc.min(x), lambda x: T.amin(x), {"a": a})


COMPARE = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


@pytest.mark.parametrize("op", sorted(COMPARE))
def test_comparisons_give_zero_or_one(op):
    a = rng0.integers(0, 3, (6, 3)).astype(np.float64)
    b = rng0.integers(0, 3, (3,)).astype(np.float64)
    f = COMPARE[op]
    check(f, lambda x, y: f(x, y).double(), {"a": a, "b": b}, grad=False)
    check(lambda x: f(x, 1.0), lambda x: f(x, 1.0).double(), {"a": a}, grad=False)


def test_where():
    c = (rng0.random((5, 1)) > 0.5).astype(np.int64)
    check(lambda x, y: nc.where(x > 0, x, y * 2), lambda x, y: T.where(x > 0, x, y * 2),
          {"a": _any(rng0, (5, 4)), "b": _any(rng0, (4,))})
    check(lambda cc, x: nc.where(cc, x, 0.0), lambda cc, x: T.where(cc != 0, x, T.zeros(())),
          {"c": c, "x": _any(rng0, (5, 4))})


REDUCE = [
    ("sum", None, False), ("sum", 1, True), ("sum", (0, 2), False), ("mean", None, False), ("mean", -1, False),
    ("mean", (1, 2), True), ("max", 0, False), ("max", (1, 2), True), ("min", -1, False),
]


@pytest.mark.parametrize("op,axis,keep", REDUCE)
def test_reductions(op, axis, keep):
    x = _any(rng0, (3, 4, 5))
    dims = tuple(range(3)) if axis is None else axis
    tf = {"sum": lambda t: t.sum(dim=dims, keepdim=keep), "mean": lambda t: t.mean(dim=dims, keepdim=keep),
          "max": lambda t: T.amax(t, dim=dims, keepdim=keep), "min": lambda t: T.amin(t, dim=dims, keepdim=keep)}[op]
    check(lambda t: getattr(t, op)(axis=axis, keepdims=keep), tf, {"x": x}, batch=("x",))
    check(lambda t: getattr(nc, op)(t, axis, keep), tf, {"x": x})


def test_logsumexp_and_argmax():
    x = _any(rng0, (4, 6)) * 30
    check(lambda t: nc.logsumexp(t, axis=-1), lambda t: T.logsumexp(t, -1), {"x": x}, batch=("x",))
    check(lambda t: nc.logsumexp(t, axis=(0, 1), keepdims=True), lambda t: T.logsumexp(t, (0, 1), keepdim=True),
          {"x": x})
    check(lambda t: nc.argmax(t), lambda t: T.argmax(t, -1), {"x": x}, grad=False)
    check(lambda t: nc.argmax(t, axis=0), lambda t: T.argmax(t, 0), {"x": x}, grad=False)


MOVE = {
    "T": (lambda a: a.T, lambda a: a.T, (3, 4)),
    "T3": (lambda a: a.T, lambda a: a.permute(2, 1, 0), (2, 3, 4)),
    "transpose": (lambda a: nc.transpose(a, (1, 2, 0)), lambda a: a.permute(1, 2, 0), (2, 3, 4)),
    "reshape": (lambda a: a.reshape(2, -1), lambda a: a.reshape(2, -1), (2, 3, 4)),   # (no B: static)
    "reshape_B": (lambda a: a.reshape(nc.B, 12), lambda a: a.reshape(-1, 12), (2, 3, 4)),
    "reshape_minus1_B": (lambda a: a.reshape(-1, 4, 3), lambda a: a.reshape(-1, 4, 3), (2, 3, 4)),
    "flatten": (nc.flatten, lambda a: a.reshape(a.shape[0], -1), (2, 3, 4)),
    "slice": (lambda a: a[:, 1:3], lambda a: a[:, 1:3], (2, 3, 4)),
    "slices": (lambda a: a[..., 1:, :-1], lambda a: a[..., 1:, :-1], (2, 3, 4)),
    "int_index": (lambda a: a[:, 0, 2:], lambda a: a[:, 0, 2:], (2, 3, 4)),
    "negative_index": (lambda a: a[:, -1], lambda a: a[:, -1], (2, 3, 4)),
    "newaxis": (lambda a: a[:, None, 1], lambda a: a[:, None, 1], (2, 3, 4)),
    "expand_squeeze": (lambda a: nc.squeeze(nc.expand_dims(a, 1), 1) * 2, lambda a: a * 2, (2, 3)),
    "concatenate": (lambda a: nc.concatenate([a, a * 2, a[:, :1]], axis=1),
                    lambda a: T.cat([a, a * 2, a[:, :1]], 1), (2, 3, 4)),
    "pad": (lambda a: nc.pad(a, ((0, 0), (1, 2), (0, 1))), lambda a: F.pad(a, (0, 1, 1, 2)), (2, 3, 4)),
}


@pytest.mark.parametrize("name", sorted(MOVE))
def test_shapes_and_indexing(name):
    fn, tfn, shape = MOVE[name]
    check(fn, tfn, {"x": _any(rng0, shape)}, batch=() if name.startswith("T") or name in ("transpose", "reshape") else ("x",))


MATMUL = {
    "ab": ((5, 3), (3, 4), lambda a, b: a @ b), "aTb": ((3, 5), (3, 4), lambda a, b: a.T @ b),
    "abT": ((5, 3), (4, 3), lambda a, b: a @ b.T), "aTbT": ((3, 5), (4, 3), lambda a, b: a.T @ b.T),
    "vb": ((3,), (3, 4), lambda a, b: a @ b), "av": ((5, 3), (3,), lambda a, b: a @ b),
    "fn": ((5, 3), (3, 4), lambda a, b: nc.matmul(a, b) if isinstance(a, nc.Tensor) else a @ b),
}


@pytest.mark.parametrize("name", sorted(MATMUL))
def test_matmul(name):
    sa, sb, fn = MATMUL[name]
    check(fn, fn, {"a": _any(rng0, sa), "b": _any(rng0, sb)}, batch=("a",) if name in ("ab", "abT", "av") else ())


def test_a_transposed_operand_is_the_matmul_flag():
    step = nc.jit(lambda a, b: a.T @ b, nc.f32[3, 5], nc.f32[3, 4])
    assert "transpose" not in step.ir() and "ta=true" in step.ir()


def _nchw(t):
    return t.permute(0, 3, 1, 2)


def _nhwc(t):
    return t.permute(0, 2, 3, 1)


@pytest.mark.parametrize("strides,padding,dilation,groups", [
    (1, "valid", 1, 1), (2, "valid", 1, 1), (1, "same", 1, 1), (2, "same", 1, 2), (1, 1, 2, 1),
    ((1, 2), ((1, 0), (0, 2)), 1, 2)])
def test_conv2d(strides, padding, dilation, groups):
    x, w = _any(rng0, (2, 7, 6, 4)), _any(rng0, (3, 3, 4 // groups, 6))
    st = (strides, strides) if isinstance(strides, int) else strides
    dl = (dilation, dilation)

    def tfn(tx, tw):
        if padding == "same":
            pads = [(0, 0), (0, 0)]
            for k, (n, s) in enumerate(zip(x.shape[1:3], st)):
                total = max((-(-n // s) - 1) * s + 3 - n, 0)
                pads[k] = (total // 2, total - total // 2)
        elif padding == "valid":
            pads = [(0, 0), (0, 0)]
        elif isinstance(padding, int):
            pads = [(padding, padding)] * 2
        else:
            pads = padding
        xi = F.pad(_nchw(tx), (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
        return _nhwc(F.conv2d(xi, tw.permute(3, 2, 0, 1), stride=st, dilation=dl, groups=groups))
    fn = lambda a, b: nc.conv2d(a, b, strides=strides, padding=padding, dilation=dilation, groups=groups)  # noqa
    check(fn, tfn, {"x": x, "w": w}, batch=("x",), optimize=(True,))


def test_pooling():
    x = _any(rng0, (2, 6, 6, 3))
    check(lambda a: nc.max_pool2d(a, 2), lambda a: _nhwc(F.max_pool2d(_nchw(a), 2)), {"x": x}, batch=("x",),
          optimize=(True,))
    check(lambda a: nc.avg_pool2d(a, 3, strides=2), lambda a: _nhwc(F.avg_pool2d(_nchw(a), 3, 2)), {"x": x},
          batch=("x",), optimize=(True,))
    check(nc.global_avg_pool2d, lambda a: a.mean((1, 2)), {"x": x}, batch=("x",), optimize=(True,))
    check(nc.global_max_pool2d, lambda a: T.amax(a, (1, 2)), {"x": x}, batch=("x",), optimize=(True,))


LOSSES = {
    "sparse_logits": (lambda y, z: nc.sparse_categorical_crossentropy(y, z, from_logits=True),
                      lambda y, z: F.cross_entropy(z, y, reduction="none"), "labels", _any),
    "sparse_probs": (nc.sparse_categorical_crossentropy,
                     lambda y, p: -T.log(T.clamp(p, 1e-7, 1 - 1e-7)).gather(1, y[:, None])[:, 0], "labels", _probs),
    "categorical_logits": (lambda y, z: nc.categorical_crossentropy(y, z, from_logits=True),
                           lambda y, z: -(y * T.log_softmax(z, -1)).sum(-1), "probs", _any),
    "categorical_probs": (nc.categorical_crossentropy, lambda y, p: -(y * T.log(T.clamp(p, 1e-7, 1 - 1e-7))).sum(-1),
                          "probs", _probs),
    "binary_logits": (lambda y, z: nc.binary_crossentropy(y, z, from_logits=True),
                      lambda y, z: F.binary_cross_entropy_with_logits(z, y, reduction="none").mean(-1), "bits", _any),
    "binary_probs": (nc.binary_crossentropy,
                     lambda y, p: -(y * T.log(T.clamp(p, 1e-7, 1 - 1e-7))
                                    + (1 - y) * T.log(1 - T.clamp(p, 1e-7, 1 - 1e-7))).mean(-1),
                     "bits", lambda r, s: r.uniform(0.05, 0.95, s)),
    "mse": (nc.mse, lambda y, p: ((p - y) ** 2).mean(-1), "any", _any),
    "mae": (nc.mean_absolute_error, lambda y, p: (p - y).abs().mean(-1), "any", _any),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses(name):
    fn, tfn, targets, make = LOSSES[name]
    y = {"labels": _labels(rng0, (6,), 4), "probs": _probs(rng0, (6, 4)),
         "bits": (rng0.random((6, 4)) > 0.5).astype(np.float64), "any": _any(rng0, (6, 4))}[targets]
    inputs = {"y": y, "p": make(rng0, (6, 4))}
    check(fn, tfn, inputs, batch=("y", "p"))   # float targets are differentiated too


def test_one_hot_take_label_fills():
    y = _labels(rng0, (5,), 3)
    x = _any(rng0, (5, 3))
    check(lambda yy: nc.one_hot(yy, 3, nc.f64), lambda yy: F.one_hot(yy, 3).double(), {"y": y}, grad=False)
    check(lambda a, yy: nc.take_label(a, yy), lambda a, yy: a.gather(1, yy[:, None])[:, 0], {"x": x, "y": y},
          batch=("x", "y"))
    check(lambda a: nc.zeros_like(a) + nc.ones_like(a) * 2 + nc.full_like(a, 0.5) * a,
          lambda a: 2 + 0.5 * a, {"x": x}, batch=("x",))


def test_cast_and_integer_promotion():
    i = rng0.integers(-3, 4, (4, 3))
    x = _any(rng0, (4, 3))
    check(lambda a, b: a.astype(nc.f64) * b + a, lambda a, b: a.double() * b + a, {"i": i, "x": x})
    check(lambda a: a * 2 + 1, lambda a: a * 2 + 1, {"i": i}, grad=False)
    check(lambda a: a / 2, lambda a: a / 2, {"i": i}, grad=False)


def test_dropout_is_the_philox_mask_of_the_key():
    x = _any(rng0, (64, 16)).astype(np.float32)
    key = np.array([7, 3])
    f = nc.jit(lambda a, k: nc.dropout(a, 0.25, k), nc.f32[nc.B, 16], nc.i64[2])
    keep = dropout_keep_mask(7, 3, 0, x.shape, 0.25)
    np.testing.assert_allclose(f(x, key), np.where(keep, x / 0.75, 0), rtol=1e-6)
    assert not np.array_equal(f(x, np.array([7, 4])), f(x, key))
    g = nc.jit(nc.grad(lambda a, k: nc.sum(nc.dropout(a, 0.25, k))), nc.f32[nc.B, 16], nc.i64[2])
    np.testing.assert_allclose(g(x, key), np.where(keep, 1 / 0.75, 0), rtol=1e-6)


def test_value_and_grad_of_nested_arguments_with_aux():
    w = {"a": _any(rng0, (3, 2)), "b": _any(rng0, (2,))}
    x = _any(rng0, (5, 3))

    def f(params, x):
        out = nc.tanh(x @ params["a"] + params["b"])
        return nc.mean(out ** 2), out

    (value, out), grads = nc.jit(nc.value_and_grad(f, has_aux=True), w, nc.f64[nc.B, 3])(w, x)
    tw = {k: torch.tensor(v, requires_grad=True) for k, v in w.items()}
    tout = T.tanh(torch.tensor(x) @ tw["a"] + tw["b"])
    (tout ** 2).mean().backward()
    np.testing.assert_allclose(value, float((tout ** 2).mean().detach()), rtol=1e-10)
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-10)
    assert set(grads) == {"a", "b"}
    for k in w:
        np.testing.assert_allclose(grads[k], tw[k].grad.numpy(), rtol=1e-9, atol=1e-12)
    # grad alone, on arrays (jitted for their specs behind the scenes)
    g = nc.grad(lambda p, x: f(p, x)[0])(w, x)
    np.testing.assert_allclose(g["a"], tw["a"].grad.numpy(), rtol=1e-9, atol=1e-12)


def test_grad_treats_values_from_outside_as_constants_and_repeated_arguments_apart():
    x = np.array([1.5, -0.5])

    def outer(a):
        c = a * 3                                   # computed outside the differentiated function
        return nc.grad(lambda u, v: nc.sum(u * v * c), argnums=(0, 1))(a, a)

    gu, gv = nc.jit(outer, nc.f64[2])(x)
    np.testing.assert_allclose(gu, x * 3 * x)       # d/du (u v c) = v c, with u = v = a
    np.testing.assert_allclose(gv, x * 3 * x)
