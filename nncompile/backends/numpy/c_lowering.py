"""The native path's op table: how each pointwise IR op is written in C.

`C_EXPR[op]` is a template over the operands' C expressions (`{0}`, `{1}`),
the element type `{T}` and the math-function suffix `{f}` ("f" for float, ""
for double); or a function `(ctx, node, args) -> expression` for ops that need
their attributes or the element's flat index. Each expression matches the
NumPy emitter's arithmetic: the same operations in the same order in the
element type (compiled with -ffp-contract=off, so no FMA changes the last
bits), and NumPy's NaN behaviour (maximum and relu propagate NaN, relu_grad
is a multiply by the mask, so NaN * 0 stays NaN). Transcendentals (exp, log,
tanh) come from the C library and may differ from NumPy's in the last bit.

Pointwise ops missing here keep their group on the NumPy path.
"""
from __future__ import annotations

from ..common import literal, numel_src


def _dropout(ctx, n, a):
    rate = float(n.attrs["rate"])
    scale = 0.0 if rate >= 1.0 else 1.0 / (1.0 - rate)
    key = ctx.seed(n.inputs[1], int(n.attrs["stream"]))
    counter = ctx.flat()
    if n.inputs[1].shape == (3,):     # a data-parallel shard: counted from its first global row
        counter = f"({ctx.first(n.inputs[1], n)} + {counter})"
    return f"(nnc_uniform({key}, {counter}) >= (float){literal(rate)} ? ({ctx.T}){literal(scale)} : ({ctx.T})0)"


def _gelu(ctx, n, a):
    # x * Phi(x) with Phi(x) = erfc(-x / sqrt 2) / 2 (libm's erfc: no cancellation in the tail)
    T, f = ctx.T, ctx.f
    return f"(({T})0.5 * {a[0]} * erfc{f}(-{a[0]} * ({T})0.7071067811865476))"


def _gelu_grad(ctx, n, a):
    T, f = ctx.T, ctx.f
    dy, x = a
    return (f"({dy} * (({T})0.5 * erfc{f}(-{x} * ({T})0.7071067811865476) + "
            f"{x} * exp{f}(({T})-0.5 * {x} * {x}) * ({T})0.3989422804014327))")


def _gelu_tanh_grad(ctx, n, a):
    T, f = ctx.T, ctx.f
    dy, x = a
    t = f"tanh{f}(({T})0.7978845608028654 * ({x} + ({T})0.044715 * ({x} * {x} * {x})))"
    return (f"({dy} * ((({T})0.5 * (({T})1 + {t})) + ({T})0.5 * {x} * (({T})1 - {t} * {t}) * "
            f"({T})0.7978845608028654 * (({T})1 + ({T})(3 * 0.044715) * {x} * {x})))")


def _unreduce(ctx, n, a):
    if not n.attrs["mean"]:
        return a[0]
    x = n.inputs[1]
    axes = sorted(k % len(x.shape) for k in n.attrs["axes"])
    count = numel_src([x.shape[k] for k in axes]) if axes else "1"
    return f"({a[0]} * ({ctx.T}){ctx.python_scalar(f'1.0 / max(1, {count})')})"


C_EXPR = {
    "add": "({0} + {1})", "sub": "({0} - {1})", "mul": "({0} * {1})", "div": "({0} / {1})",
    "maximum": "(({0} > {1} || {0} != {0}) ? {0} : {1})",
    "neg": "(-{0})", "exp": "exp{f}({0})", "log": "log{f}({0})", "sqrt": "sqrt{f}({0})",
    "square": "({0} * {0})", "abs": "fabs{f}({0})",
    "sign": "({0} != {0} ? {0} : ({T})(({0} > 0) - ({0} < 0)))",
    "relu": "(({0} > 0 || {0} != {0}) ? {0} : ({T})0)",
    "sigmoid": "(({T})0.5 * tanh{f}(({T})0.5 * {0}) + ({T})0.5)",
    "tanh": "tanh{f}({0})",
    "softplus": "(fmax{f}({0}, ({T})0) + log1p{f}(exp{f}(-fabs{f}({0}))))",
    "silu": "({0} * (({T})0.5 * tanh{f}(({T})0.5 * {0}) + ({T})0.5))",
    "softsign": "({0} / (({T})1 + fabs{f}({0})))",
    "elu": lambda c, n, a: f"({a[0]} > 0 ? {a[0]} : ({c.T}){literal(n.attrs['alpha'])} * expm1{c.f}({a[0]}))",
    "relu_grad": "({0} * ({T})({1} > 0))",
    "equal": "(({T})({0} == {1}))", "greater": "(({T})({0} > {1}))",
    "greater_equal": "(({T})({0} >= {1}))", "not_equal": "(({T})({0} != {1}))",
    "where": "({0} != 0 ? {1} : {2})",
    "cast": "(({T}){0})",
    "leaky_relu": lambda c, n, a: f"({a[0]} > 0 ? {a[0]} : {a[0]} * ({c.T}){literal(n.attrs['alpha'])})",
    "leaky_grad": lambda c, n, a: f"({a[1]} > 0 ? {a[0]} : {a[0]} * ({c.T}){literal(n.attrs['alpha'])})",
    "clip": lambda c, n, a: (f"({a[0]} < ({c.T}){literal(n.attrs['lo'])} ? ({c.T}){literal(n.attrs['lo'])} : "
                             f"({a[0]} > ({c.T}){literal(n.attrs['hi'])} ? ({c.T}){literal(n.attrs['hi'])} : {a[0]}))"),
    "clip_grad": lambda c, n, a: (f"(({a[1]} >= ({c.T}){literal(n.attrs['lo'])} && {a[1]} <= "
                                  f"({c.T}){literal(n.attrs['hi'])}) ? {a[0]} : ({c.T})0)"),
    "gelu": _gelu,
    "gelu_grad": _gelu_grad,
    "gelu_tanh": lambda c, n, a: (f"(({c.T})0.5 * {a[0]} * (({c.T})1 + tanh{c.f}(({c.T})0.7978845608028654 * "
                             f"({a[0]} + ({c.T})0.044715 * ({a[0]} * {a[0]} * {a[0]})))))"),
    "gelu_tanh_grad": _gelu_tanh_grad,
    "unreduce": _unreduce,
    "dropout_mask": _dropout,
    "round_to": lambda c, n, a: f"(({c.T})nnc_round_{n.attrs['precision']}((float){a[0]}))",
}


def c_expr(ctx, n, args: list[str]) -> str:
    e = C_EXPR[n.op]
    if isinstance(e, str):
        return e.format(*args, T=ctx.T, f=ctx.f)
    return e(ctx, n, args)


# Philox 4x32-10 and its uniform draw, bit-exact with ir/philox.py (and tl.rand)
PHILOX = r"""
static inline uint32_t nnc_philox(uint32_t k0, uint64_t offset) {
    uint32_t c0 = (uint32_t)offset, c1 = (uint32_t)(offset >> 32), c2 = 0, c3 = 0, k1 = 0;
    for (int r = 0; r < 10; r++) {
        uint64_t pa = (uint64_t)0xD2511F53u * c0, pb = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(pb >> 32) ^ c1 ^ k0, n2 = (uint32_t)(pa >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)pb; c3 = (uint32_t)pa; c0 = n0; c2 = n2;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    return c0;
}

static inline float nnc_uniform(uint32_t key, uint64_t offset) {
    int32_t x = (int32_t)nnc_philox(key, offset);
    if (x < 0) x = ~x;
    return (float)x * 4.6566127342e-10f;
}
"""


# round to the nearest bf16 / fp16 (ties to even) and back, bit-exact with ir/precision.py:
# drop the low mantissa bits after adding just under half of the kept ulp (plus the kept
# part's last bit, for ties to even); fp16 subnormals have a fixed quantum of 2^-24
ROUNDING = r"""
static inline float nnc_round_bf16(float x) {
    uint32_t u;
    if (x != x) return x;
    memcpy(&u, &x, 4);
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    memcpy(&x, &u, 4);
    return x;
}

static inline float nnc_round_f16(float x) {
    uint32_t u, a;
    if (x != x) return x;
    memcpy(&u, &x, 4);
    a = u & 0x7FFFFFFFu;
    if (a < 0x38800000u) return rintf(x * 16777216.0f) * 5.9604644775390625e-8f;   /* |x| < 2^-14 */
    u = (u + 0xFFFu + ((u >> 13) & 1u)) & 0xFFFFE000u;
    if ((u & 0x7FFFFFFFu) >= 0x47800000u) u = (u & 0x80000000u) | 0x7F800000u;   /* past 65504: inf */
    memcpy(&x, &u, 4);
    return x;
}
"""
