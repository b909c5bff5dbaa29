"""The IR: a typed SSA dataflow graph.

A `Graph` is a list of `Node`s in a valid execution order. Each node is one
value: an op applied to earlier nodes, with static attributes, a dtype and a
shape. Shapes may contain the symbol `B` (the batch dimension), so one graph
(and one compiled step) serves every batch size.

Every node carries the `SourceLoc` of the `.nn` construct it came from and the
layer's name; autodiff and the passes keep them, so a gradient node points at
the layer whose forward computation it differentiates.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Optional, Union

from ..errors import SourceLoc

B = "B"                                  # the symbolic batch dimension
Dim = Union[int, str]
Shape = tuple[Dim, ...]
DTYPES = ("f32", "f64", "i64")
FLOAT_DTYPES = ("f32", "f64")


def concrete(shape: Shape, batch: int) -> tuple[int, ...]:
    """The shape with B replaced by an actual batch size."""
    return tuple(batch if d == B else d for d in shape)


def fmt_shape(dtype: str, shape: Shape) -> str:
    return f"{dtype}[{','.join(str(d) for d in shape)}]"


class Node:
    """One SSA value. Identity is the object; `id` orders and names it (`%id`)."""

    __slots__ = ("id", "op", "inputs", "attrs", "dtype", "shape", "loc", "layer")

    def __init__(self, id: int, op: str, inputs: tuple["Node", ...], attrs: dict[str, Any],
                 dtype: str, shape: Shape, loc: Optional[SourceLoc], layer: Optional[str]):
        self.id = id
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.dtype = dtype
        self.shape = shape
        self.loc = loc
        self.layer = layer

    @property
    def name(self) -> str:
        return f"%{self.id}"

    @property
    def type_str(self) -> str:
        return fmt_shape(self.dtype, self.shape)

    def __repr__(self) -> str:
        return f"<{self.name}: {self.type_str} = {self.op}>"


@dataclass(frozen=True)
class InputSpec:
    """What a graph input is, beyond its shape: its role and how to initialise it.

    role: "param" (trainable weights), "state" (optimizer or batch-norm state,
    updated by the step), "data" (x, y), "scalar" (step counter, seed, lr).
    """

    name: str
    role: str
    init: Optional[str] = None
    trainable: bool = True


class Graph:
    """A graph under construction or finished. Nodes are appended in order."""

    def __init__(self, name: str, float_dtype: str = "f32"):
        self.name = name
        self.float_dtype = float_dtype
        self.nodes: list[Node] = []
        self.inputs: dict[str, Node] = {}
        self.input_specs: dict[str, InputSpec] = {}
        self.outputs: dict[str, Node] = {}
        # Outputs that are the next value of an input ("param.w" -> "param.w"):
        # backends may write them in place of the input.
        self.updates: dict[str, str] = {}
        # Instructions for the passes that turn a forward graph into a training
        # step: {"differentiate": output name, "optimizer": (name, params, loc)}.
        self.meta: dict[str, Any] = {}
        self._next_id = 0
        self._loc: Optional[SourceLoc] = None
        self._layer: Optional[str] = None

    # --- construction -------------------------------------------------------
    @contextlib.contextmanager
    def at(self, loc: Optional[SourceLoc], layer: Optional[str]) -> Iterator[None]:
        """Nodes emitted inside this block carry `loc` and `layer`."""
        saved = self._loc, self._layer
        self._loc, self._layer = loc, layer
        try:
            yield
        finally:
            self._loc, self._layer = saved

    def input(self, name: str, shape: Shape, dtype: Optional[str] = None, *, role: str = "data",
              init: Optional[str] = None, trainable: bool = True) -> Node:
        if name in self.inputs:
            raise ValueError(f"graph {self.name}: input {name!r} declared twice")
        node = self._append("input", (), {"name": name}, dtype or self.float_dtype, tuple(shape))
        self.inputs[name] = node
        self.input_specs[name] = InputSpec(name, role, init, trainable)
        return node

    def emit(self, op: str, *inputs: Node, **attrs: Any) -> Node:
        """Append `op(inputs, attrs)`, inferring its dtype and shape from the op table."""
        from .ops import OPS  # the table imports this module
        opdef = OPS[op]
        dtype, shape = opdef.infer(inputs, attrs, self)
        return self._append(op, tuple(inputs), attrs, dtype, shape)

    def const(self, value: float, dtype: Optional[str] = None) -> Node:
        return self.emit("const", value=float(value), dtype=dtype or self.float_dtype)

    def _append(self, op: str, inputs: tuple[Node, ...], attrs: dict[str, Any], dtype: str,
                shape: Shape) -> Node:
        node = Node(self._next_id, op, inputs, dict(attrs), dtype, tuple(shape), self._loc, self._layer)
        self._next_id += 1
        self.nodes.append(node)
        return node

    def output(self, name: str, node: Node, *, updates: Optional[str] = None) -> None:
        self.outputs[name] = node
        if updates is not None:
            self.updates[name] = updates

    # --- queries ------------------------------------------------------------
    def users(self, live_only: bool = False) -> dict[int, list[Node]]:
        """Node id -> the nodes that read it (see `users`)."""
        return users(self.live_nodes() if live_only else self.nodes)

    def params(self) -> list[str]:
        return [k for k, s in self.input_specs.items() if s.role == "param"]

    def live_nodes(self) -> list[Node]:
        """Nodes that some output depends on, in graph order (inputs always kept)."""
        seen: set[int] = set()
        stack = list(self.outputs.values())
        while stack:
            n = stack.pop()
            if n.id in seen:
                continue
            seen.add(n.id)
            stack.extend(n.inputs)
        return [n for n in self.nodes if n.id in seen or n.op == "input"]

    def copy_structure(self, name: Optional[str] = None) -> "Graph":
        """A new empty graph with the same name/dtype (passes build into it)."""
        g = Graph(name or self.name, self.float_dtype)
        # lists in meta (refusal logs) are per graph: copy them, so that a pass's
        # notes never leak into the graph it started from
        g.meta = {k: list(v) if isinstance(v, list) else v for k, v in self.meta.items()}
        return g

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __str__(self) -> str:
        from .printer import print_graph
        return print_graph(self)


def users(nodes: Iterable[Node]) -> dict[int, list[Node]]:
    """For every node of `nodes`, by id: the nodes of `nodes` that read it, in
    order, each listed once however many of its inputs it is."""
    nodes = list(nodes)
    out: dict[int, list[Node]] = {n.id: [] for n in nodes}
    for n in nodes:
        for i in dict.fromkeys(n.inputs):
            if i.id in out:
                out[i.id].append(n)
    return out


def batch_size(g: "Graph", inputs: Mapping[str, Any]) -> int:
    """The batch size B of a call of `g` with `inputs` (name -> array or tensor):
    read off the first input whose shape holds B; 1 when none does."""
    import numpy as np
    for name, node in g.inputs.items():
        if B in node.shape:
            return int(np.shape(inputs[name])[node.shape.index(B)])
    return 1


def topo_order(outputs: Iterable[Node]) -> list[Node]:
    """Nodes reachable from `outputs`, inputs before users, stable by id."""
    seen: set[int] = set()
    order: list[Node] = []
    for root in sorted(outputs, key=lambda n: n.id):
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            n, done = stack.pop()
            if done:
                order.append(n)
                continue
            if n.id in seen:
                continue
            seen.add(n.id)
            stack.append((n, True))
            for i in sorted(n.inputs, key=lambda x: -x.id):
                if i.id not in seen:
                    stack.append((i, False))
    return order
