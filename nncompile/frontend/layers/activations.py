"""The activations a layer may apply, their arguments, and how each is lowered to IR.

An activation is written as a name (`relu`, `gelu`) or, where it takes
arguments, as a call (`gelu(approximate=true)`, `leaky_relu(0.1)`), the
arguments checked against the activation's `Spec` like any call's. The checked
value is a string (`specs/calls.py`): the bare name when every argument has its
default, else the canonical call text (`leaky_relu(negative_slope=0.1)`);
`resolve` turns that string back into the row and its arguments.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..specs import Arg, Bool, Float, Spec
from ..specs.calls import CallChoice, parse_call


def _gelu(g, h, approximate: bool):
    return g.emit("gelu_tanh" if approximate else "gelu", h)


# Keras's selu constants (Klambauer et al. 2017)
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _selu(g, h):
    return g.emit("mul", g.emit("elu", h, alpha=SELU_ALPHA), g.const(SELU_SCALE, h.dtype))


def _hard_sigmoid(g, h):
    # Keras 3: relu6(x + 3) / 6
    return g.emit("div", g.emit("clip", g.emit("add", h, g.const(3.0, h.dtype)), lo=0.0, hi=6.0),
                  g.const(6.0, h.dtype))


@dataclass(frozen=True)
class Activation:
    name: str
    op: Optional[str]                      # the IR op; None for the identity
    keeps_logits: bool = False             # softmax, sigmoid: the loss reads the pre-activation
    args: tuple[Arg, ...] = ()             # what the activation takes as a call
    emit: Optional[Callable] = None        # (g, h, **args) -> node, when op alone does not say
    attr: dict = None                      # IR attribute name of each argument (op's attrs)
    doc: str = ""

    @property
    def spec(self) -> Spec:
        return Spec(self.name, self.args, self.doc)

    def lower(self, g, h, params: dict):
        if self.emit is not None:
            return self.emit(g, h, **params)
        if self.op is None:
            return h
        return g.emit(self.op, h, **{(self.attr or {}).get(k, k): v for k, v in params.items()})


ACTIVATIONS = {a.name: a for a in (
    Activation("relu", "relu", doc="max(x, 0)"),
    Activation("sigmoid", "sigmoid", keeps_logits=True, doc="1 / (1 + exp(-x))"),
    Activation("tanh", "tanh", doc="the hyperbolic tangent"),
    Activation("softmax", "softmax", keeps_logits=True, doc="over the last axis"),
    Activation("linear", None, doc="the identity (`none` is the same)"),
    Activation("gelu", "gelu", args=(
        Arg("approximate", Bool(), False, "the tanh approximation `0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))` "
                                          "instead of the exact `x * Phi(x)`", positional=True),),
        emit=_gelu, doc="`x * Phi(x)`, Phi the normal CDF (exact, as Keras and PyTorch by default)"),
    Activation("leaky_relu", "leaky_relu", args=(
        Arg("negative_slope", Float(0.0), 0.2, "the slope for x < 0", positional=True, aliases=("alpha",)),),
        attr={"negative_slope": "alpha"}, doc="x for x > 0, else negative_slope * x (Keras's default slope 0.2)"),
    Activation("elu", "elu", args=(
        Arg("alpha", Float(), 1.0, "the scale of the negative part", positional=True),),
        doc="x for x > 0, else alpha * (exp(x) - 1)"),
    Activation("selu", None, emit=_selu, doc="`scale * elu(x, alpha)`, alpha = 1.67326, scale = 1.05070 (Keras's)"),
    Activation("silu", "silu", doc="x * sigmoid(x) (`swish` is the same)"),
    Activation("softplus", "softplus", doc="log(1 + exp(x))"),
    Activation("softsign", "softsign", doc="x / (1 + abs(x))"),
    Activation("hard_sigmoid", None, emit=_hard_sigmoid, doc="`relu6(x + 3) / 6` (Keras 3's; Keras 2's slope was 0.2)"),
    Activation("exponential", "exp", doc="exp(x)"),
)}
ALIASES = {"none": "linear", "swish": "silu"}


def resolve(fn: str) -> tuple[Activation, dict]:
    """The row and the arguments of a checked activation value (`gelu`,
    `leaky_relu(negative_slope=0.1)`)."""
    name, given = parse_call(fn)
    act = ACTIVATIONS.get(ALIASES.get(name, name))
    if act is None:
        raise KeyError(f"not an activation: {fn!r}")
    return act, {**{a.name: a.default for a in act.args}, **given}


# the argument type of every `activation` / `fn` argument: a name, or a call of an
# activation that takes arguments
ACTIVATION = CallChoice(lambda: {k: a.spec for k, a in ACTIVATIONS.items()}, ALIASES, "activation")
