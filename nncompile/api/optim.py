"""Optimizers as functions of (params, grads, state), traceable in a jitted step.

    opt = nc.optim.adam(lr=1e-3)
    state = opt.init(params)                          # NumPy zeros (or specs, given specs)
    params, state = opt.update(params, grads, state)  # inside the traced step

The update is the IR the `optimizer` pass writes for `.nn` programs
(`passes.optimizer.update_param` and `bias_corrected_lr`: Keras semantics,
epsilon outside the square root, Adam's bias-corrected learning rate), applied
to each leaf of `params`. The state holds the step counter `step` (f32, 0
before the first update; Adam's t) and one tree like `params` per slot
(`m`, `v` for Adam; `velocity` for SGD with momentum; `v`, `momentum` for
RMSprop). Defaults and ranges are the `.nn` language's rows
(`frontend/specs/training.py: OPTIMIZERS`), the gradient clipping
(`clipnorm`, `global_clipnorm`, `clipvalue`) included.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..errors import did_you_mean
from ..frontend.specs import types as T
from ..frontend.specs.training import CLIPPING, OPTIMIZERS
from ..passes.optimizer import bias_corrected_lr, clip_gradients, slots_for, update_param
from . import tree
from .tensor import Tensor, TensorSpec, api, as_tensor, current_trace, fail

__all__ = ["Optimizer", "sgd", "adam", "adamw", "rmsprop"]


class Optimizer:
    """An optimizer with fixed hyperparameters (`hparams`, Keras names and defaults)."""

    def __init__(self, name: str, **hparams: Any):
        spec = OPTIMIZERS[name]
        values: dict[str, Any] = {}
        for k, v in hparams.items():
            key = spec.aliases.get(k, k)
            if key not in spec.keys:
                raise TypeError(f"nc.optim.{name}: unknown argument '{k}'{did_you_mean(k, spec.keys)}; "
                                f"expected {', '.join(spec.keys)}")
            values[key] = v
        self.name = name
        self.hparams = spec.complete(values)
        for a in spec.args:
            _check(name, a, self.hparams[a.name])
        if name == "sgd" and self.hparams["nesterov"] and not self.hparams["momentum"] > 0:
            raise ValueError("nc.optim.sgd: nesterov=True needs momentum > 0")
        given = [k for k in CLIPPING if self.hparams[k] is not None]
        if len(given) > 1:
            raise ValueError(f"nc.optim.{name}: {given[0]} and {given[1]} are both set; gradients are clipped "
                             f"one way (keep one of {', '.join(CLIPPING)})")
        self.slots = slots_for(name, self.hparams)

    def __repr__(self) -> str:
        return f"nc.optim.{self.name}({', '.join(f'{k}={v!r}' for k, v in self.hparams.items())})"

    def init(self, params) -> dict:
        """The state before the first step: {"step": 0, slot: zeros like params, ...}.
        `params` may hold arrays (the state holds arrays) or specs (it holds specs)."""
        leaves, td = tree.flatten(params, is_leaf=lambda v: isinstance(v, TensorSpec))
        state: dict[str, Any] = {}
        dtypes = [v.dtype if isinstance(v, TensorSpec) else np.asarray(v).dtype.name for _, v in leaves]
        step_dtype = "f64" if dtypes and all(d in ("f64", "float64") for d in dtypes) else "f32"
        if leaves and all(isinstance(v, TensorSpec) for _, v in leaves):
            state["step"] = TensorSpec(step_dtype, ())
            for s in self.slots:
                state[s] = td.unflatten(list(v for _, v in leaves))
            return state
        state["step"] = np.zeros((), np.float64 if step_dtype == "f64" else np.float32)
        for s in self.slots:
            state[s] = td.unflatten([np.zeros(np.shape(v), np.asarray(v).dtype) for _, v in leaves])
        return state

    def update(self, params, grads, state, lr=None):
        """(new params, new state) after one step. Traced: call it inside the jitted
        step. `lr` overrides the learning rate (a number, or a scalar tensor for a
        schedule computed in the step)."""
        return _update(self, params, grads, state, lr)


@api("optim.update")
def _update(opt: Optimizer, params, grads, state, lr):
    t = current_trace((params, grads))
    g = t.graph
    is_t = lambda v: isinstance(v, Tensor)  # noqa: E731
    pl, td = tree.flatten(params, is_leaf=is_t)
    try:
        gl = tree.leaves_like(td, grads, "the gradients")
        if not isinstance(state, dict) or "step" not in state:
            raise ValueError("the state is the dict opt.init(params) gives, with 'step' and "
                             + (", ".join(f"'{s}'" for s in opt.slots) or "no slots"))
        missing = [s for s in opt.slots if s not in state]
        if missing:
            raise ValueError(f"the state has no {missing} (made by another optimizer?)")
        sl = {s: tree.leaves_like(td, state[s], f"state['{s}']") for s in opt.slots}
    except ValueError as e:
        raise fail(f"nc.optim.{opt.name}.update: {e}", hint="grads and each state slot have the structure of "
                   "params") from None
    ps = [as_tensor(v, t) for _, v in pl]
    gs = [as_tensor(v, t) for v in gl]
    for (path, p), gr in zip(pl, gs):
        if (p.dtype, p.shape) != (gr.dtype, gr.shape):
            raise fail(f"nc.optim.{opt.name}.update: the gradient of {path or 'the parameter'} is "
                       f"{gr.node.type_str}, the parameter {as_tensor(p, t).node.type_str}")
    dtypes = {p.dtype for p in ps}
    if len(dtypes) > 1:
        raise fail(f"nc.optim.{opt.name}.update: the parameters mix dtypes {sorted(dtypes)}; one float dtype "
                   "is updated at a time")
    dtype = dtypes.pop() if dtypes else g.float_dtype
    step = as_tensor(state["step"], t, dtype)
    step = Tensor(g.emit("add", step.node, g.const(1.0, step.dtype)), t)
    if step.dtype != dtype:
        raise fail(f"nc.optim.{opt.name}.update: the step counter is {step.node.type_str}, the parameters "
                   f"{dtype}", hint="make the state with opt.init(params)")
    lr_t_ = as_tensor(opt.hparams["lr"] if lr is None else lr, t, dtype)
    if lr_t_.dtype != dtype:
        lr_t_ = Tensor(g.emit("cast", lr_t_.node, dtype=dtype), t)
    lr_node = lr_t_.node
    lr_t = bias_corrected_lr(g, opt.name, opt.hparams, step.node, lr_node)
    new_p, new_s = [], {s: [] for s in opt.slots}
    clipped = clip_gradients(g, opt.hparams, [gr.node for gr in gs])
    for i, (p, gr) in enumerate(zip(ps, clipped)):
        slots = {s: as_tensor(sl[s][i], t).node for s in opt.slots}
        p2, s2 = update_param(g, opt.name, opt.hparams, p.node, gr, slots, lr_node, lr_t)
        new_p.append(Tensor(p2, t))
        for s in opt.slots:
            new_s[s].append(Tensor(s2[s], t))
    out_state = {"step": step, **{s: td.unflatten(new_s[s]) for s in opt.slots}}
    return td.unflatten(new_p), out_state


def _check(name: str, arg, v) -> None:
    typ = arg.type
    if v is None and arg.default is None:   # an argument that is off unless given (clipnorm, ...)
        return
    if isinstance(typ, T.Bool):
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"nc.optim.{name}: {arg.name} is a bool, not {v!r}")
        return
    if isinstance(typ, T.Float):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
            raise TypeError(f"nc.optim.{name}: {arg.name} is a number, not {v!r}")
        lo, hi = typ.lo, typ.hi
        if (lo is not None and (v < lo or (typ.lo_open and v == lo))) or \
                (hi is not None and (v > hi or (typ.hi_open and v == hi))):
            raise ValueError(f"nc.optim.{name}: {arg.name}={v} is out of range: expected a {typ.describe()}")


def sgd(lr: Optional[float] = None, **kw) -> Optimizer:
    """SGD (Keras): momentum (0: none), nesterov."""
    return Optimizer("sgd", **({"lr": lr} if lr is not None else {}), **kw)


def adam(lr: Optional[float] = None, **kw) -> Optimizer:
    """Adam (Keras): beta1, beta2, eps (outside the square root), bias-corrected lr."""
    return Optimizer("adam", **({"lr": lr} if lr is not None else {}), **kw)


def adamw(lr: Optional[float] = None, **kw) -> Optimizer:
    """Adam with decoupled weight decay (weight_decay, scaled by lr)."""
    return Optimizer("adamw", **({"lr": lr} if lr is not None else {}), **kw)


def rmsprop(lr: Optional[float] = None, **kw) -> Optimizer:
    """RMSprop (Keras): rho, momentum, eps."""
    return Optimizer("rmsprop", **({"lr": lr} if lr is not None else {}), **kw)
