"""The oracle of mixed precision (docs/mixed-precision.md), written in torch: each
matmul's and convolution's operands, and dy in their gradients, rounded with
torch's own `.to(bfloat16 / float16)`, the rest in float64. For tests that have
skipped themselves without torch (`pytest.importorskip("torch")`)."""
import numpy as np
import torch

F = torch.nn.functional
TORCH_DTYPE = {"bf16": torch.bfloat16, "f16": torch.float16}


def rounder(precision):
    return lambda t: t.to(TORCH_DTYPE[precision]).double()


def rounded_matmul(precision):
    r = rounder(precision)

    class RoundedMatmul(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(r(a), r(b))
            return r(a) @ r(b)

        @staticmethod
        def backward(ctx, dy):
            a, b = ctx.saved_tensors
            return r(dy) @ b.T, a.T @ r(dy)
    return RoundedMatmul.apply


def rounded_conv(precision):
    """A 'same' 3x3 convolution (NCHW, OIHW)."""
    r = rounder(precision)

    class RoundedConv(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(r(x), r(w))
            return F.conv2d(r(x), r(w), padding=1)

        @staticmethod
        def backward(ctx, dy):
            x, w = ctx.saved_tensors
            return (torch.nn.grad.conv2d_input(x.shape, w, r(dy), padding=1),
                    torch.nn.grad.conv2d_weight(x, w.shape, r(dy), padding=1))
    return RoundedConv.apply


def assert_same_bits(a, b):
    """Bit-equal float32 arrays, every NaN equal to every NaN."""
    a, b = np.asarray(a), np.asarray(b)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_array_equal(a[~np.isnan(a)].view(np.uint32), b[~np.isnan(b)].view(np.uint32))
