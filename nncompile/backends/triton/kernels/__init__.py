"""The Triton backend's kernel library: every hand-written `@triton.jit` kernel,
each with a thin launcher and a test against torch (tests/triton_backend/).

    gemm.py       the tiled GEMM with its bias / activation / ReLU-mask epilogue
    rows.py       softmax, log-softmax, softmax cross-entropy (+ gradient),
                  argmax, label gather, one-hot, last-axis reductions
    columns.py    leading-axis reductions (bias gradients, batch statistics)
    conv.py       implicit-GEMM convolution, its input and filter gradients
    pool.py       max / average pooling and their gradients
    functions.py  device functions (tanh, gelu) the kernels share

The code generator calls these kernels for the non-pointwise ops and writes
only the pointwise kernels of fusion groups itself (backends/triton/codegen.py).
Launch heuristics are in backends/triton/launch.py. Every kernel computes
offsets in int64.
"""
from ..launch import MATMUL_CONFIGS_16BIT, MATMUL_CONFIGS_32BIT, SMEM_LIMIT, interpreting
from .columns import reduce_cols, reduce_cols_kernel
from .conv import (conv2d, conv2d_grad_filter, conv2d_grad_filter_kernel, conv2d_grad_input,
                   conv2d_grad_input_kernel, conv2d_kernel, filter_split)
from .functions import gelu, gelu_grad, gelu_tanh, gelu_tanh_grad, tanh
from .gemm import ACTIVATIONS, clear_autotune_cache, matmul, matmul_kernel
from .pool import pool, pool_grad, pool_grad_kernel, pool_kernel
from .rows import (MAX, SUM, argmax, argmax_kernel, onehot, onehot_kernel, reduce_rows,
                   reduce_rows_kernel, softmax, softmax_kernel, softmax_xent, softmax_xent_grad,
                   softmax_xent_kernel, take_kernel, take_label)

__all__ = ["interpreting", "matmul", "clear_autotune_cache", "softmax", "softmax_xent",
           "softmax_xent_grad", "argmax", "take_label", "onehot", "reduce_rows", "reduce_cols", "SUM", "MAX",
           "aot_specs", "ACTIVATIONS", "tanh", "gelu", "gelu_grad", "gelu_tanh", "gelu_tanh_grad", "matmul_kernel", "softmax_kernel",
           "softmax_xent_kernel", "argmax_kernel", "take_kernel", "onehot_kernel", "reduce_rows_kernel",
           "reduce_cols_kernel", "conv2d", "conv2d_grad_input", "conv2d_grad_filter", "conv2d_kernel",
           "conv2d_grad_input_kernel", "conv2d_grad_filter_kernel", "filter_split", "pool", "pool_grad",
           "pool_kernel", "pool_grad_kernel"]

_MM_SIG = {"a_ptr": "*fp32", "b_ptr": "*fp32", "c_ptr": "*fp32", "bias_ptr": "*fp32", "mask_ptr": "*fp32",
           "M": "i32", "N": "i32", "K": "i32", "stride_am": "i32", "stride_ak": "i32", "stride_bk": "i32",
           "stride_bn": "i32", "stride_cm": "i32", "stride_cn": "i32", "stride_mm": "i32", "stride_mn": "i32"}


def matmul_aot_specs() -> list[dict]:
    """Every matmul tile the autotuner may pick on a GPU, for fp32 (ieee and
    tf32) and bf16 operands, with the full epilogue."""
    specs = []
    for dt, cfgs, prec, dot in (("fp32", MATMUL_CONFIGS_32BIT, "tf32", 0), ("fp32", MATMUL_CONFIGS_32BIT[:1], "ieee", 0),
                                ("bf16", MATMUL_CONFIGS_16BIT, "ieee", 0),
                                # a mixed-precision step's: fp32 operands holding bf16 / fp16 values
                                ("fp32", MATMUL_CONFIGS_32BIT, "ieee", 1), ("fp32", MATMUL_CONFIGS_32BIT, "ieee", 2)):
        esz = 4 if dt == "fp32" else 2
        for cf in cfgs:
            if cf.smem_bytes(esz) > SMEM_LIMIT:
                continue
            bm, bn, bk, gm, w, st = cf
            specs.append(dict(
                name=f"matmul_{dt}_{prec}_dot{dot}_{bm}x{bn}x{bk}_w{w}s{st}", kernel=matmul_kernel,
                signature=dict(_MM_SIG, a_ptr=f"*{dt}", b_ptr=f"*{dt}"),
                constexprs=dict(HAS_BIAS=True, ACTIVATION=3, HAS_MASK=True, UPCAST=False, PRECISION=prec, DOT=dot,
                                BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=gm),
                num_warps=w, num_stages=st))
    return specs


def aot_specs() -> list[dict]:
    """Representative GPU instantiations of every library kernel (the matmul
    tiles, and the row and column kernels at their largest blocks), for
    `aot.compile_all`; the code generator adds the exact ones a graph uses."""
    rows = {"R": "i32", "C": "i32"}
    f32 = "*fp32"
    specs = matmul_aot_specs()
    for log in (False, True):
        specs.append(dict(name=f"softmax_log{int(log)}_4x1024", kernel=softmax_kernel,
                          signature=dict(rows, x_ptr=f32, out_ptr=f32),
                          constexprs=dict(LOG=log, BLOCK_R=4, BLOCK_C=1024), num_warps=8))
    for grad in (False, True):
        specs.append(dict(name=f"softmax_xent_grad{int(grad)}_16x256", kernel=softmax_xent_kernel,
                          signature=dict(rows, z_ptr=f32, y_ptr="*i64", dy_ptr=f32, out_ptr=f32),
                          constexprs=dict(GRAD=grad, BLOCK_R=16, BLOCK_C=256), num_warps=8))
    specs.append(dict(name="argmax_64x64", kernel=argmax_kernel, signature=dict(rows, x_ptr=f32, out_ptr="*i64"),
                      constexprs=dict(BLOCK_R=64, BLOCK_C=64), num_warps=8))
    specs.append(dict(name="take_64", kernel=take_kernel, signature=dict(rows, p_ptr=f32, y_ptr="*i64",
                                                                          out_ptr=f32),
                      constexprs=dict(BLOCK_R=64), num_warps=4))
    specs.append(dict(name="onehot_64x64", kernel=onehot_kernel, signature=dict(rows, y_ptr="*i64", out_ptr=f32),
                      constexprs=dict(BLOCK_R=64, BLOCK_C=64), num_warps=8))
    for red in (SUM, MAX):
        specs.append(dict(name=f"reduce_rows_{red}_4x1024", kernel=reduce_rows_kernel,
                          signature=dict(rows, x_ptr=f32, out_ptr=f32, scale="fp32"),
                          constexprs=dict(REDUCE=red, BLOCK_R=4, BLOCK_C=1024), num_warps=4))
        specs.append(dict(name=f"reduce_cols_{red}_32x128", kernel=reduce_cols_kernel,
                          signature={"x_ptr": f32, "out_ptr": f32, "M": "i32", "N": "i32", "ROWS": "i32",
                                     "scale": "fp32"},
                          constexprs=dict(REDUCE=red, BLOCK_M=32, BLOCK_N=128), num_warps=4))
    conv_ints = {a: "i32" for a in ("B", "H", "W", "C", "HO", "WO", "F", "KH", "KW", "SH", "SW", "PT", "PL", "DH",
                                     "DW", "CG", "FG")}
    for name, kernel, ptrs in (("conv2d", conv2d_kernel, ("x_ptr", "w_ptr", "out_ptr", "bias_ptr", "mask_ptr")),
                               ("conv2d_grad_input", conv2d_grad_input_kernel,
                                ("dy_ptr", "w_ptr", "out_ptr", "bias_ptr", "mask_ptr"))):
        specs.append(dict(name=f"{name}_128x64x32", kernel=kernel, signature=dict(conv_ints, **{p: f32 for p in ptrs}),
                          constexprs=dict(HAS_BIAS=True, ACTIVATION=1, HAS_MASK=True, PRECISION="ieee", DOT=0,
                                          BLOCK_M=128, BLOCK_N=64, BLOCK_K=32), num_warps=4))
    specs.append(dict(name="conv2d_grad_filter_128x64x32", kernel=conv2d_grad_filter_kernel,
                      signature=dict(conv_ints, x_ptr=f32, dy_ptr=f32, out_ptr=f32, SPLIT="i32", K_PER_SPLIT="i32"),
                      constexprs=dict(PRECISION="ieee", DOT=0, BLOCK_M=128, BLOCK_N=64, BLOCK_K=32), num_warps=4))
    pool_ints = {a: "i32" for a in ("n", "H", "W", "C", "HO", "WO", "KH", "KW", "SH", "SW", "PT", "PL")}
    for is_max in (True, False):
        specs.append(dict(name=f"pool_max{int(is_max)}_1024", kernel=pool_kernel,
                          signature=dict(pool_ints, x_ptr=f32, out_ptr=f32),
                          constexprs=dict(MAX=is_max, BLOCK=1024), num_warps=4))
        specs.append(dict(name=f"pool_grad_max{int(is_max)}_1024", kernel=pool_grad_kernel,
                          signature=dict(pool_ints, dy_ptr=f32, x_ptr=f32, out_ptr=f32),
                          constexprs=dict(MAX=is_max, BLOCK=1024), num_warps=4))
    for s in specs:
        s.setdefault("num_stages", 3)
    return specs
