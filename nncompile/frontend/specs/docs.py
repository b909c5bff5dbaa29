"""The argument tables of docs/language.md, rendered from the spec rows.

docs/language.md holds each table between marker comments

    <!-- BEGIN GENERATED: optimizers -->  ...  <!-- END GENERATED: optimizers -->

and `update_doc` rewrites what lies between them; a test checks that the
file equals its update, so the tables never drift from the specs.
`python -m nncompile.frontend.specs --write docs/language.md` updates the file.
"""
from __future__ import annotations

import re
from typing import Iterable

from ..layers import LAYERS, TRANSFER
from ..layers.activations import ACTIVATIONS, ALIASES
from ..values import fmt
from .calls import CallChoice
from .core import REQUIRED, Arg, Derived, Spec
from .initializers import INITIALIZERS
from .sources import AUGMENTATIONS, DATA_SOURCES
from .training import EARLY_STOPPING, LOSSES, METRIC_SPECS, OPTIMIZERS, SCHEDULES, SPLIT, TRAIN, WEIGHTS
from .types import Choice


def _default(a: Arg) -> str:
    d = a.default
    if d is REQUIRED:
        return "required"
    if isinstance(d, Derived):
        return d.text
    if d is None:
        return "none"
    if isinstance(d, bool):
        return f"`{'true' if d else 'false'}`"
    if isinstance(d, str):
        return f"`{d}`" if isinstance(a.type, (Choice, CallChoice)) else f'`"{d}"`'
    if isinstance(d, (tuple, list)):
        return "`[]`" if not d else "`[" + ", ".join(map(str, d)) + "]`"
    return f"`{fmt(d)}`"


def _argument(a: Arg) -> str:
    aliases = ", ".join(f"`{al}`" for al in a.aliases)
    return f"`{a.name}`" + (f" (alias {aliases})" if aliases else "")


def _signature(spec: Spec) -> str:
    return f"`{spec.name}({', '.join(spec.positional)})`" if spec.positional else f"`{spec.name}`"


def spec_table(specs: Iterable[Spec], what: str) -> str:
    """One table for a family of specs (a row per argument), then each spec's doc."""
    lines = [f"| {what} | Argument | Type / range | Default | Meaning |", "|---|---|---|---|---|"]
    notes = []
    for spec in specs:
        first = _signature(spec)
        for a in spec.args:
            lines.append(f"| {first} | {_argument(a)} | {a.type.describe()} | {_default(a)} | {a.doc} |")
            first = ""
        if not spec.args:
            lines.append(f"| {first} | — | | | takes no arguments |")
        if spec.doc:
            notes.append(f"- `{spec.name}`: {spec.doc}")
    return "\n".join(lines + ([""] + notes if notes else []))


def settings_table(spec: Spec, what: str) -> str:
    """A table of keys (train settings, early-stopping keys): no positions."""
    lines = [f"| {what} | Value | Default | Meaning |", "|---|---|---|---|"]
    for a in spec.args:
        lines.append(f"| {_argument(a)} | {a.type.describe()} | {_default(a)} | {a.doc} |")
    return "\n".join(lines)


def _layers() -> str:
    kinds = list(LAYERS.values())
    table = spec_table([k.spec for k in kinds], "Layer")
    docs = "\n".join(f"- `{k.name}`: {k.doc}" for k in kinds)
    with_params = ", ".join(f"`{k.name}`" for k in kinds if k.has_params)
    return (f"{table}\n\n{docs}\n\n{_activations()}\n\n{_initializers()}\n\n"
            f"Layers with parameters ({with_params}) also take these keys (never positional):\n\n"
            + settings_table(TRANSFER, "Key"))


def _activations() -> str:
    """The activations, and (as calls) the arguments of those that take any."""
    lines = ["| Activation | Meaning |", "|---|---|"] + [
        f"| `{a.name}` | {a.doc} |" for a in ACTIVATIONS.values()]
    aliases = "; ".join(f"`{a}` is an alias of `{c}`" for a, c in ALIASES.items())
    with_args = [a.spec for a in ACTIVATIONS.values() if a.args]
    return ("\n".join(lines) + f"\n\n{aliases}. An activation with arguments is written as a call where an "
            "activation is expected (`dense(64, activation=gelu(approximate=true))`, `activation(leaky_relu(0.1))`):"
            "\n\n" + spec_table(with_args, "Activation").split("\n\n")[0])


def _initializers() -> str:
    """The kernel initializers (`init=`), and the arguments of those that take any."""
    lines = ["| Initializer | Meaning |", "|---|---|"] + [f"| `{s.name}` | {s.doc} |" for s in INITIALIZERS.values()]
    with_args = [s for s in INITIALIZERS.values() if s.args]
    return ("\n".join(lines) + "\n\nFans as Keras: a kernel `(..., in, out)` has `fan_in = in * r`, "
            "`fan_out = out * r`, `r` the product of its leading (window) dimensions. An initializer with "
            "arguments is written as a call (`init=variance_scaling(2, mode=fan_out)`, "
            "`init=truncated_normal(stddev=0.02)`):\n\n" + spec_table(with_args, "Initializer").split("\n\n")[0])


def _losses() -> str:
    """Every loss takes the same arguments: one table of losses, one of those."""
    specs = list(LOSSES.values())
    shared = specs[0].args
    assert all(s.args == shared for s in specs), "the losses' arguments differ: render them with spec_table"
    lines = ["| Loss | Meaning |", "|---|---|"] + [f"| `{s.name}` | {s.doc} |" for s in specs]
    return "\n".join(lines) + "\n\nEach takes (as a key):\n\n" + settings_table(specs[0], "Key")


def markdown_tables() -> dict[str, str]:
    """Every generated table of docs/language.md, by marker name."""
    return {
        "layers": _layers(),
        "train": settings_table(TRAIN, "Key"),
        "losses": _losses(),
        "data": spec_table(DATA_SOURCES.values(), "Source"),
        "optimizers": spec_table(OPTIMIZERS.values(), "Optimizer"),
        "split": spec_table([SPLIT], "Call"),
        "early_stopping": settings_table(EARLY_STOPPING, "Key"),
        "schedules": spec_table(SCHEDULES.values(), "Schedule"),
        "weights": spec_table([WEIGHTS], "Call"),
        "augmentations": spec_table(AUGMENTATIONS.values(), "Augmentation"),
        "metrics": spec_table(METRIC_SPECS.values(), "Metric"),
    }


_BLOCK = re.compile(r"(<!-- BEGIN GENERATED: (\w+) -->\n)(?:.*?\n)?(<!-- END GENERATED: \2 -->)", re.S)


def update_doc(text: str) -> str:
    """`text` with every generated block replaced by what the specs render now."""
    tables = markdown_tables()
    return _BLOCK.sub(lambda m: m.group(1) + tables[m.group(2)] + "\n" + m.group(3), text)


def blocks(text: str) -> list[str]:
    """The names of the generated blocks in `text`, in order."""
    return [m.group(2) for m in _BLOCK.finditer(text)]
