"""`nc.grad` and `nc.value_and_grad`: reverse-mode differentiation of traced functions.

`value_and_grad(f, argnums)(*args)` traces `f` into the graph being traced (its
arguments bound to fresh aliases of the chosen arguments, so each is a
variable of its own and values computed outside `f` are constants) and
appends the gradient with `passes.autodiff.gradients`: the op table's rules,
the same code the `autodiff` pass runs for `.nn` programs. Gradient nodes
keep the source locations of the forward nodes they differentiate.

Called with arrays instead of traced tensors, the transformed function is
jitted for those arrays' specs and run (once per distinct set of specs).
Higher-order gradients are not supported (the backward helper ops have no
gradient rules).
"""
from __future__ import annotations

import functools
from dataclasses import replace
from typing import Callable, Sequence, Union

from ..ir.ops import IRError
from ..passes.autodiff import gradients
from . import tree
from .tensor import Tensor, api, current_trace, fail, is_float

__all__ = ["grad", "value_and_grad"]


def value_and_grad(fn: Callable, argnums: Union[int, Sequence[int]] = 0, has_aux: bool = False) -> Callable:
    """A function that returns (f(*args), gradients of f w.r.t. args[argnums]).

    `f` must return a float scalar (with has_aux=True: a pair (scalar, aux),
    and the result is ((value, aux), grads)). The gradient of a nested argument
    (a dict or tuple of tensors) has its structure; with a tuple `argnums` the
    gradients are a tuple, one per argument."""
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums:
        raise TypeError("value_and_grad: argnums names no argument")

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        if current_trace(args) is None:
            return _eager(wrapped, args, kwargs)
        return _value_and_grad(fn, nums, isinstance(argnums, int), has_aux, args, kwargs)

    wrapped.transform = ("value_and_grad", fn, argnums, has_aux)
    return wrapped


def grad(fn: Callable, argnums: Union[int, Sequence[int]] = 0, has_aux: bool = False) -> Callable:
    """A function that returns the gradients of f w.r.t. args[argnums] (with
    has_aux=True: (gradients, aux)); see value_and_grad."""
    vg = value_and_grad(fn, argnums, has_aux)

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        if current_trace(args) is None:
            return _eager(wrapped, args, kwargs)
        value, grads = vg(*args, **kwargs)
        return (grads, value[1]) if has_aux else grads

    wrapped.transform = ("grad", fn, argnums, has_aux)
    return wrapped


@api("value_and_grad")
def _value_and_grad(fn, nums, single: bool, has_aux: bool, args, kwargs):
    t = current_trace(args)
    name = getattr(fn, "__name__", "the function")
    for i in nums:
        if not -len(args) <= i < len(args):
            raise fail(f"nc.grad of {name}: argnums {i} is out of range for {len(args)} arguments")
    args = list(args)
    wrt: list[Tensor] = []
    trees = []
    for i in nums:
        leaves, td = tree.flatten(args[i], is_leaf=lambda v: isinstance(v, Tensor))
        aliases = []
        for path, v in leaves:
            if not isinstance(v, Tensor):
                raise fail(f"nc.grad of {name}: argument {i}{' at ' + path if path else ''} is a "
                           f"{type(v).__name__}, not a traced tensor: there is nothing to differentiate")
            if not is_float(v.dtype):
                raise fail(f"nc.grad of {name}: argument {i}{' at ' + path if path else ''} is "
                           f"{v.node.type_str}: gradients need a float tensor")
            if v.node.op == "input":      # a graph input differentiated: say so in the IR
                spec = t.graph.input_specs[v.node.attrs["name"]]
                if spec.role == "data":
                    t.graph.input_specs[spec.name] = replace(spec, role="param")
            # a fresh alias: the argument is a variable of its own inside fn
            alias = Tensor(t.graph.emit("reshape", v.node, shape=v.shape), t)
            aliases.append(alias)
        wrt += aliases
        trees.append(td)
        args[i] = td.unflatten(aliases)
    out = fn(*args, **kwargs)
    if has_aux:
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise fail(f"nc.grad of {name} with has_aux=True: the function must return (loss, aux), "
                       f"it returned a {type(out).__name__}")
        value, aux = out
    else:
        value, aux = out, None
    if not isinstance(value, Tensor) or value.trace is not t:
        raise fail(f"nc.grad of {name}: the function must return a traced scalar tensor, it returned "
                   f"{type(value).__name__}" + (" (a tuple: pass has_aux=True to return extra values)"
                                                  if isinstance(value, tuple) else ""))
    if value.shape != () or not is_float(value.dtype):
        raise fail(f"nc.grad of {name}: the function must return a float scalar, it returned "
                   f"{value.node.type_str}", hint="reduce it first, e.g. nc.mean(...) or nc.sum(...)")
    try:
        gnodes = gradients(t.graph, value.node, [w.node for w in wrt])
    except IRError as e:
        raise fail(f"nc.grad of {name}: {e}",
                   hint="higher-order gradients (a gradient of a gradient) are not supported"
                   if "has no gradient rule" in str(e) else None) from None
    gs = [Tensor(n, t) for n in gnodes]
    results, k = [], 0
    for td in trees:
        results.append(td.unflatten(gs[k:k + td.num_leaves]))
        k += td.num_leaves
    grads = results[0] if single else tuple(results)
    return ((value, aux) if has_aux else value), grads


_EAGER_CACHE: dict = {}


def _eager(fn, args, kwargs):
    """Run a transformed function on arrays: jit it for their specs (cached) and call."""
    from .jit import jit
    from .tensor import spec_of
    if kwargs:
        fn = functools.partial(fn, **kwargs)
        return jit(fn, *[_specs(a, spec_of) for a in args])(*args)
    specs = tuple(_specs(a, spec_of) for a in args)
    key = (fn, repr(specs))
    j = _EAGER_CACHE.get(key)
    if j is None:
        j = _EAGER_CACHE[key] = jit(fn, *specs)
    return j(*args)


def _specs(value, spec_of):
    leaves, td = tree.flatten(value)
    return td.unflatten([spec_of(v) for _, v in leaves])
