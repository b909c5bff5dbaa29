"""Device functions the kernels share (the generated pointwise kernels call them too)."""
import triton
import triton.language as tl

from ..launch import interpreting

# 16-bit tl.dot is wrong in the interpreter (an upstream bug): there the operands stay fp32
_NATIVE_DOT = tl.constexpr(not interpreting())


@triton.jit
def tanh(x):
    # tanh without libdevice (works in the interpreter too):
    #   |x| small : odd Taylor polynomial (avoids 1 - exp(-2|x|) cancellation)
    #   otherwise : sign(x) * (1 - t) / (1 + t), t = exp(-2|x|) in (0, 1]
    ax = tl.abs(x)
    t = tl.exp(-2.0 * ax)
    big = (1.0 - t) / (1.0 + t)
    x2 = x * x
    small = ax * (1.0 + x2 * (-0.333333333333 + x2 * (0.133333333333 + x2 * (-0.053968253968))))
    r = tl.where(ax < 0.0625, small, big)
    return tl.where(x < 0, -r, r)


@triton.jit
def gelu(x):
    # the exact GELU, x * Phi(x) (erf: libdevice on the GPU, math.erf in the interpreter)
    return 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))


@triton.jit
def gelu_grad(dy, x):
    return dy * (0.5 * (1.0 + tl.math.erf(x * 0.7071067811865476))
                 + x * tl.exp(-0.5 * x * x) * 0.3989422804014327)


@triton.jit
def gelu_tanh(x):
    # the tanh approximation
    return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


@triton.jit
def gelu_tanh_grad(dy, x):
    c = 0.7978845608028654
    t = tanh(c * (x + 0.044715 * x * x * x))
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * x * x))


# reductions shared by the row and column kernels (REDUCE: 0 sum, 1 max; fp32 accumulators)
@triton.jit
def reduce_init(BLOCK_A: tl.constexpr, BLOCK_B: tl.constexpr, REDUCE: tl.constexpr):
    if REDUCE == 1:
        return tl.full((BLOCK_A, BLOCK_B), float("-inf"), tl.float32)
    return tl.zeros((BLOCK_A, BLOCK_B), tl.float32)


@triton.jit
def reduce_step(acc, ptrs, m, REDUCE: tl.constexpr):
    if REDUCE == 1:
        return tl.maximum(acc, tl.load(ptrs, mask=m, other=float("-inf")).to(tl.float32))
    return acc + tl.load(ptrs, mask=m, other=0.0).to(tl.float32)


@triton.jit
def reduce_final(acc, scale, AXIS: tl.constexpr, REDUCE: tl.constexpr):
    if REDUCE == 1:
        return tl.max(acc, axis=AXIS)
    return tl.sum(acc, axis=AXIS) * scale


@triton.jit
def round_bf16(x):
    # to the nearest bf16, ties to even, as f32 (ir/precision.py): by bits, because the
    # interpreter's f32 -> bf16 conversion truncates where the GPU's cvt.rn rounds
    x = x.to(tl.float32)
    u = x.to(tl.uint32, bitcast=True)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).to(tl.float32, bitcast=True)
    return tl.where(x != x, x, r)


@triton.jit
def round_f16(x):
    # to the nearest fp16, ties to even (cvt.rn on the GPU, NumPy's in the interpreter)
    return x.to(tl.float32).to(tl.float16).to(tl.float32)


@triton.jit
def dot_operand(x, DOT: tl.constexpr):
    # a tl.dot operand rounded to bf16 (DOT 1) or fp16 (DOT 2), for a mixed-precision
    # contraction: on the GPU a 16-bit operand (cvt.rn rounds; tensor cores, fp32
    # accumulation), in the interpreter the rounded value in fp32 (the same products);
    # DOT 0: fp32
    if DOT == 1:
        if _NATIVE_DOT:
            y = x.to(tl.bfloat16)
        else:
            y = round_bf16(x)
    elif DOT == 2:
        if _NATIVE_DOT:
            y = x.to(tl.float16)
        else:
            y = round_f16(x)
    else:
        y = x.to(tl.float32)
    return y
