"""The activations a layer may apply, and how each is lowered to IR."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..specs import Choice


@dataclass(frozen=True)
class Activation:
    name: str
    op: Optional[str]                      # the IR op; None for the identity
    attrs: tuple[tuple[str, object], ...] = ()
    keeps_logits: bool = False             # softmax, sigmoid: the loss reads the pre-activation

    def lower(self, g, h):
        return h if self.op is None else g.emit(self.op, h, **dict(self.attrs))


ACTIVATIONS = {a.name: a for a in (
    Activation("relu", "relu"),
    Activation("sigmoid", "sigmoid", keeps_logits=True),
    Activation("tanh", "tanh"),
    Activation("softmax", "softmax", keeps_logits=True),
    Activation("linear", None),
    Activation("gelu", "gelu"),
    Activation("leaky_relu", "leaky_relu", (("alpha", 0.2),)),
)}

# The argument type of every `activation` / `fn` argument.
ACTIVATION = Choice(tuple(ACTIVATIONS), {"none": "linear"}, text="an activation")
