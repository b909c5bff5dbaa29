"""Argument rows and lowering pieces shared by layer kinds: those of a
kernel (dense today; conv2d would reuse them as they are) and of the
normalisations."""
from __future__ import annotations

from ..specs import Arg, Bool, Choice, Float
from ..specs.initializers import INITIALIZER
from .activations import ACTIVATION

BIAS_INITS = ("zeros",)

ACTIVATION_ARG = Arg("activation", ACTIVATION, "linear", "applied to the output", positional=True)
USE_BIAS = Arg("use_bias", Bool(), True, "add a bias vector")
L1 = Arg("l1", Float(0.0), 0.0, "L1 penalty on the kernel, `l1 * sum(abs(w))`, added to the loss")
L2 = Arg("l2", Float(0.0), 0.0, "L2 penalty on the kernel, `l2 * sum(w^2)`, added to the loss")
INIT = Arg("init", INITIALIZER, "glorot_uniform", "the kernel's initializer (a name, or a call: the table below)",
           aliases=("kernel_initializer",))
BIAS_INIT = Arg("bias_init", Choice(BIAS_INITS, noun="bias initializer"), "zeros", "the bias's initializer",
                aliases=("bias_initializer",))
KERNEL_ARGS = (USE_BIAS, L1, L2, INIT, BIAS_INIT)

EPSILON = Arg("epsilon", Float(0.0, lo_open=True), 1e-3, "added to the variance", positional=True,
              aliases=("eps",))


def add_penalties(low, kernel, args) -> None:
    """The L2 and L1 penalties of a kernel (as the `l1` / `l2` arguments say)."""
    g = low.g
    axes = tuple(range(len(kernel.shape)))
    for key, op in (("l2", "square"), ("l1", "abs")):
        if args[key] > 0:
            total = g.emit("sum", g.emit(op, kernel), axes=axes, keepdims=False)
            low.out.penalties.append(g.emit("mul", total, g.const(args[key])))
