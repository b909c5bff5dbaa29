"""Random valid `.nn` programs, and random batches for them: the one generator
the fuzz tests (tests/fuzz), the differential test (tests/passes) and the
Triton tests (tests/triton_backend) draw from.

    import programs as P          # tests/ is on sys.path (pyproject: pythonpath)

    @given(P.program_specs())
    def test_something(spec):
        prog = nncompile.compile(spec.source)
        x, y = P.random_batch(spec, 4, np.random.default_rng(0))

`program_specs()` is a hypothesis strategy of `ProgramSpec`s: the source text
and what it means (input shape, layers with their canonical arguments, loss,
optimizer, metrics, the train settings), so that a test can build a reference
(torch, finite differences) or data of the right shape without parsing.

What is drawn:

* an input of 1 to 3 dimensions (each 1..4); on image-shaped activations the
  layer kinds that accept them, then `flatten`;
* now and then a `normalization` first (it reads the input);
* 0..`max_hidden` hidden layers (dense / dropout / batchnorm / layernorm /
  activation / flatten; every activation but exponential), each written with random positional and key arguments
  (aliases, `none`, quoted strings, trailing commas, explicit or automatic
  names), L1/L2, initializers (with arguments too), `use_bias`, and on layers with parameters now
  and then `frozen=true` or `lr_mult`;
* an output that matches the loss (softmax, sigmoid or logits with
  `from_logits=true`, for each of the five losses; a cross-entropy now and then
  with `label_smoothing`), optionally as a separate `activation` layer and with
  a trailing dropout;
* a train block: every optimizer with random in-range hyper-parameters (lr by
  position or key) and now and then one way of gradient clipping, metrics (a list or a bare name; each
  of METRIC_TEXTS, with or without arguments), class_weight for a cross-entropy, epochs, batch size,
  log_every, seed, validation (`split(...)` or a number), early stopping with a
  monitor drawn from the logged metrics, a learning-rate schedule, augmentation
  (noise; flip and crop on image inputs), synthetic data of the right size;
  settings in random order, comments and blank lines, blocks in either order.

Layer kinds live in one table, `LAYER_KINDS`. A new kind (conv2d, pooling, ...)
is one `@layer_kind(...)` function below: it says which activation shapes the
layer accepts, the shape it produces, whether it has parameters, how often it
is drawn in a flat stack and on image-shaped activations, and draws its
arguments. Every test that uses `program_specs()` then draws it; a test whose
reference does not know the kind yet restricts itself with `kinds=` (as the
torch reference of tests/fuzz/test_numerics.py does). Each `LayerSpec` records
its input and output shapes and names its input layer (`inputs`), so branches
(`from=`) and merge layers can be added the same way.

Example counts: `examples(base)` is `base` in CI; NNCOMPILE_FUZZ_EXAMPLES
replaces it (every hypothesis test over generated programs), e.g.

    NNCOMPILE_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/fuzz -q

`scale(base)` scales a non-hypothesis count (a CLI sample) by value/100.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Callable, Collection, Optional

import numpy as np
from hypothesis import strategies as st

# ------------------------------------------------------------------ example counts


def examples(base: int) -> int:
    """`base` in CI; the value of NNCOMPILE_FUZZ_EXAMPLES when it is set."""
    env = os.environ.get("NNCOMPILE_FUZZ_EXAMPLES")
    return max(1, int(env)) if env else base


def scale(base: int) -> int:
    """A non-hypothesis count: `base` in CI, scaled by NNCOMPILE_FUZZ_EXAMPLES / 100."""
    env = os.environ.get("NNCOMPILE_FUZZ_EXAMPLES")
    return max(base, base * int(env) // 100) if env else base


# ------------------------------------------------------------------ the program space

ACTS = ("relu", "sigmoid", "tanh", "softmax", "linear", "gelu", "leaky_relu")
# as written; the checked value of the last two is the canonical call text (activations.resolve)
# (exponential is left out: stacked, it overflows float32 on random data)
HIDDEN_ACTS = ("relu", "sigmoid", "tanh", "linear", "gelu", "leaky_relu", "none", "gelu(approximate=true)",
               "leaky_relu(0.05)", "elu", "elu(0.5)", "selu", "silu", "swish", "softplus", "softsign", "hard_sigmoid")
CANONICAL_ACT = {"none": "linear", "leaky_relu(0.05)": "leaky_relu(negative_slope=0.05)", "elu(0.5)": "elu(alpha=0.5)",
                 "swish": "silu"}


# kernel initializers as written -> their checked value
INITS = {i: i for i in ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "zeros", "lecun_uniform",
                        "lecun_normal", "orthogonal", "variance_scaling")}
INITS.update({"truncated_normal(stddev=0.1)": "truncated_normal(stddev=0.1)", "orthogonal(0.5)": "orthogonal(gain=0.5)",
              "variance_scaling(2.0, mode=fan_out, distribution=uniform)":
              "variance_scaling(scale=2, mode=fan_out, distribution=uniform)"})


def canonical_act(act: str) -> str:
    return CANONICAL_ACT.get(act, act)
LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy", "mse", "mae")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
DEFAULT_LR = {"sgd": 0.01, "adam": 0.001, "adamw": 0.001, "rmsprop": 0.001}
SCHEDULES = ("step", "exponential", "cosine", "reduce_on_plateau")


@dataclass
class LayerSpec:
    kind: str
    name: Optional[str]        # None: the automatic name
    args: dict                 # canonical values (what the checked AST will hold)
    text: str = ""             # how it is written
    in_shape: tuple = ()       # activation shapes without the batch dimension
    out_shape: tuple = ()
    inputs: tuple = ()         # the layers it reads (names); () = the previous layer
    frozen: bool = False
    lr_mult: float = 1.0


@dataclass
class ProgramSpec:
    input_shape: tuple
    layers: list
    loss: str
    from_logits: bool
    out_units: int
    out_shape: tuple           # the model's output shape without the batch dim
    optimizer: str
    opt_params: dict           # the parameters written (defaults not filled)
    metrics: list
    settings: dict = field(default_factory=dict)   # epochs, batch_size, ..., data, schedule, augment
    source: str = ""
    label_smoothing: float = 0.0                   # cross-entropies

    @property
    def features(self) -> int:
        return math.prod(self.input_shape)

    @property
    def lr(self) -> float:
        return self.opt_params.get("lr", DEFAULT_LR[self.optimizer])

    @property
    def kinds(self) -> set:
        return {L.kind for L in self.layers}


# ------------------------------------------------------------------ layer kinds


@dataclass(frozen=True)
class LayerKind:
    """One layer kind of the language, as the generator sees it.

    draw(draw, shape, **fixed) -> (args, positional, keyword): the canonical
    arguments (as the checked AST holds them) and how to write them: lists of
    (key, value) pairs for the positional order and for key-only arguments.
    `fixed` pins arguments (the output layer's units and activation)."""
    name: str
    draw: Callable
    accepts: Callable[[tuple], bool] = lambda shape: True
    out_shape: Callable[[tuple, dict], tuple] = lambda shape, args: shape
    params: bool = False       # has parameters: may be frozen=true or take lr_mult
    flat_weight: int = 1       # how often it is drawn in a flat hidden stack (0: never)
    image_weight: int = 0      # how often it is drawn on image-shaped activations (0: never)


LAYER_KINDS: dict[str, LayerKind] = {}


def layer_kind(name: str, **properties):
    """Register the decorated argument drawer as layer kind `name`."""
    def register(fn):
        LAYER_KINDS[name] = LayerKind(name, fn, **properties)
        return fn
    return register


def _flat(shape):
    return len(shape) == 1


@layer_kind("dense", accepts=_flat, out_shape=lambda shape, a: (a["units"],), params=True, flat_weight=2)
def _dense(draw, shape, *, units=None, act=None, **_):
    u = units if units is not None else draw(st.integers(1, 6))
    act = act if act is not None else draw(st.sampled_from(HIDDEN_ACTS))
    a = dict(units=u, activation=canonical_act(act))
    pos, kw = [("units", u)], []
    if act != "linear" or draw(st.booleans()):
        pos.append(("activation", act))
    if draw(st.booleans()):
        l1 = draw(st.sampled_from([0.0, 1e-4, 0.01]))
        l2 = draw(st.sampled_from([0.0, 1e-3, 0.1]))
        kw += [("l1", l1), ("l2", l2)]
        a.update(l1=l1, l2=l2)
    if draw(st.booleans()):
        init = draw(st.sampled_from(sorted(INITS)))
        kw.append((draw(st.sampled_from(["init", "kernel_initializer"])), init))
        a["init"] = INITS[init]
    if draw(st.integers(0, 4)) == 0:
        kw.append(("use_bias", False))
        a["use_bias"] = False
    return a, pos, kw


@layer_kind("dropout", flat_weight=1, image_weight=1)
def _dropout(draw, shape, *, allow_dropout=True, **_):
    r = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9])) if allow_dropout else 0.0
    return dict(rate=r), [("rate", r)], []


# adapted to the training data, so it reads the input: drawn only as the first layer
@layer_kind("normalization", flat_weight=0)
def _normalization(draw, shape, **_):
    return {}, [], []


@layer_kind("batchnorm", params=True, flat_weight=1, image_weight=1)
def _batchnorm(draw, shape, **_):
    if draw(st.booleans()):
        m = draw(st.sampled_from([0.0, 0.5, 0.99]))
        e = draw(st.sampled_from([1e-5, 1e-3, 0.1]))
        return dict(momentum=m, epsilon=e), [("momentum", m), ("epsilon", e)], []
    return dict(momentum=0.99, epsilon=1e-3), [], []


@layer_kind("layernorm", params=True, flat_weight=1, image_weight=1)
def _layernorm(draw, shape, **_):
    if draw(st.booleans()):
        e = draw(st.sampled_from([1e-5, 1e-3, 0.1]))
        return dict(epsilon=e), [], [(draw(st.sampled_from(["epsilon", "eps"])), e)]
    return dict(epsilon=1e-3), [], []


@layer_kind("activation", flat_weight=1, image_weight=1)
def _activation(draw, shape, *, act=None, **_):
    fn = act if act is not None else draw(st.sampled_from(HIDDEN_ACTS))
    return dict(fn=canonical_act(fn)), [("fn", fn)], []


@layer_kind("flatten", out_shape=lambda shape, a: (math.prod(shape),), flat_weight=1)
def _flatten(draw, shape, **_):
    return {}, [], []


def _image(shape):
    return len(shape) == 3


def _window_out(n, k, s, d, padding):
    if padding == "same":
        return -(-n // s)
    return (n - d * (k - 1) - 1) // s + 1


def _fits(shape, k, d=1):
    return all(n >= d * (kk - 1) + 1 for n, kk in zip(shape[:2], k))


def _conv_shape(shape, a):
    k, s, d = a["kernel_size"], a["strides"], a["dilation"]
    return tuple(_window_out(n, kk, ss, dd, a["padding"]) for n, kk, ss, dd in zip(shape[:2], k, s, d)) + (a["filters"],)


def _pool_shape(shape, a):
    k, s = a["pool_size"], a["strides"]
    return tuple(_window_out(n, kk, ss, 1, a["padding"]) for n, kk, ss in zip(shape[:2], k, s)) + (shape[2],)


def _pair(draw, key, v, pos, kw):
    """An int-or-pair argument, written either way."""
    if v[0] == v[1] and draw(st.booleans()):
        pos.append((key, v[0]))
    else:
        kw.append((key, f"[{v[0]}, {v[1]}]"))


@layer_kind("conv2d", accepts=_image, out_shape=_conv_shape, params=True, image_weight=3)
def _conv2d(draw, shape, **_):
    c = shape[2]
    groups = draw(st.sampled_from([g for g in (1, 1, 2, c) if c % g == 0]))
    filters = groups * draw(st.integers(1, 3))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    strides = (draw(st.integers(1, 2)),) * 2 if draw(st.booleans()) else (1, 1)
    dilation = (2, 2) if strides == (1, 1) and draw(st.integers(0, 3)) == 0 else (1, 1)
    padding = "valid" if _fits(shape, k, dilation[0]) and draw(st.booleans()) else "same"
    act = draw(st.sampled_from(HIDDEN_ACTS))
    a = dict(filters=filters, kernel_size=k, activation=canonical_act(act), strides=strides,
             padding=padding, dilation=dilation, groups=groups)
    pos, kw = [("filters", filters)], []
    if k[0] == k[1] and draw(st.booleans()):
        pos += [("kernel_size", k[0]), ("activation", act)]
    else:
        kw += [("kernel_size", f"[{k[0]}, {k[1]}]"), ("activation", act)]
    if strides != (1, 1) or draw(st.booleans()):
        kw.append(("strides", strides[0]))
    kw.append(("padding", padding))
    if dilation != (1, 1):
        kw.append((draw(st.sampled_from(["dilation", "dilation_rate"])), dilation[0]))
    if groups != 1:
        kw.append(("groups", groups))
    if draw(st.integers(0, 3)) == 0:
        l2 = draw(st.sampled_from([1e-4, 1e-2]))
        kw.append(("l2", l2))
        a["l2"] = l2
    return a, pos, kw


def _pool_args(draw, shape):
    k = (draw(st.integers(1, 2)),) * 2
    strides = k if draw(st.booleans()) else (1, 1)
    padding = "valid" if _fits(shape, k) and draw(st.booleans()) else "same"
    pos, kw = [("pool_size", k[0])], [("padding", padding)]
    if strides != k:
        kw.append(("strides", strides[0]))
    return dict(pool_size=k, strides=strides, padding=padding), pos, kw


@layer_kind("maxpool2d", accepts=_image, out_shape=_pool_shape, image_weight=1)
def _maxpool(draw, shape, **_):
    return _pool_args(draw, shape)


@layer_kind("avgpool2d", accepts=_image, out_shape=_pool_shape, image_weight=1)
def _avgpool(draw, shape, **_):
    return _pool_args(draw, shape)


@layer_kind("global_avgpool2d", accepts=_image, out_shape=lambda shape, a: (shape[2],), image_weight=1)
def _gap(draw, shape, **_):
    return {}, [], []


@layer_kind("global_maxpool2d", accepts=_image, out_shape=lambda shape, a: (shape[2],), image_weight=1)
def _gmp(draw, shape, **_):
    return {}, [], []


# merge layers: drawn by program_specs over two earlier layers of fitting shapes
MERGES = ("add", "multiply", "concat")


# ------------------------------------------------------------------ writing


def _num(draw, lo, hi, log=False):
    if log:
        v = 10 ** draw(st.floats(math.log10(lo), math.log10(hi)))
    else:
        v = draw(st.floats(lo, hi))
    return min(max(float(f"{v:.3g}"), lo), hi)  # rounding stays inside [lo, hi]


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def _call(draw, positional: list, keyword: list) -> str:
    """Write an argument list: some leading arguments by position, the rest by key."""
    npos = draw(st.integers(0, len(positional)))
    # a name may be quoted; a call (gelu(approximate=true)) may not
    parts = [_fmt(v) if not isinstance(v, str) else v if "(" in v else draw(st.sampled_from([v, f'"{v}"']))
             for _, v in positional[:npos]]
    rest = positional[npos:] + keyword
    rest = draw(st.permutations(rest)) if rest else rest
    for k, v in rest:
        parts.append(f"{k}={_fmt(v) if not isinstance(v, str) else v}")
    if parts and draw(st.booleans()) and draw(st.booleans()):
        parts.append("")  # a trailing comma
    return "(" + ", ".join(parts) + ")"


def _render(kind: str, name: Optional[str], args: str) -> str:
    return f"{kind}{' ' + name if name else ''}{args}"


@st.composite
def layer_specs(draw, kind: str, shape: tuple = (4,), *, transfer: bool = False, **fixed):
    """One layer of `kind` on activations of `shape` (without the batch dim).
    `fixed` pins arguments: units=, act= (dense, activation), allow_dropout=.
    `transfer`: a layer with parameters may be frozen or take lr_mult."""
    k = LAYER_KINDS[kind]
    a, pos, kw = k.draw(draw, shape, **fixed)
    frozen, lr_mult = False, 1.0
    if transfer and k.params and draw(st.integers(0, 7)) == 0:
        if draw(st.booleans()):
            frozen = True
            kw = kw + [("frozen", True)]
        else:
            lr_mult = draw(st.sampled_from([0.0, 0.1, 0.5, 2.0]))
            kw = kw + [("lr_mult", lr_mult)]
    name = draw(st.sampled_from([None, f"{kind[:2]}{draw(st.integers(0, 10**6))}"]))
    args = draw(st.sampled_from(["", "()"])) if not pos and not kw else _call(draw, pos, kw)
    return LayerSpec(kind, name, a, _render(kind, name, args), tuple(shape), tuple(k.out_shape(shape, a)),
                     frozen=frozen, lr_mult=lr_mult)


def _merge(draw, layers: list, input_shape: tuple, names_used: set) -> None:
    """Append a merge layer joining the last layer's output with an earlier
    named one (or the input) of the same shape (add, multiply) or rank (concat)."""
    last = layers[-1]
    if last.name is None:       # merges read explicit names: name the last layer
        last.name = f"b{len(layers)}_{draw(st.integers(0, 10**6))}"
        if last.name in names_used:
            return
        names_used.add(last.name)
        last.text = last.text.replace(last.kind, f"{last.kind} {last.name}", 1)
    cands = [("x", input_shape)] + [(L.name, L.out_shape) for L in layers[:-1] if L.name is not None]
    same = [n for n, sh in cands if sh == last.out_shape]
    rank = [n for n, sh in cands if len(sh) == len(last.out_shape) == 1]
    kind = draw(st.sampled_from([k for k in MERGES if (same if k != "concat" else rank)]
                                or ["none"]))
    if kind == "none":
        return
    other = draw(st.sampled_from(same if kind != "concat" else rank))
    order = [last.name, other] if draw(st.booleans()) else [other, last.name]
    shape = last.out_shape if kind != "concat" else \
        (sum(sh[0] for n, sh in cands + [(last.name, last.out_shape)] if n in order),)
    args = dict(**{"from": tuple(order)})
    text = f"{kind}({draw(st.sampled_from(['from=', '']))}[{', '.join(order)}])"
    layers.append(LayerSpec(kind, None, args, text, last.out_shape, shape, inputs=tuple(order)))


def _weighted(kinds, weight: str) -> list:
    return [k for k in kinds for _ in range(getattr(LAYER_KINDS[k], weight))]


@st.composite
def program_specs(draw, *, image: bool = True, max_hidden: int = 3, allow_dropout: bool = True,
                  train: bool = True, kinds: Optional[Collection[str]] = None, transfer: bool = True,
                  branches: bool = True):
    """A valid program (see the module docstring).

    image: inputs of 1 to 3 dimensions (else flat); max_hidden: the most hidden
    layers in the flat stack; allow_dropout=False: every dropout rate is 0;
    train: with a train block; kinds: the layer kinds that may be drawn in the
    hidden stacks (default all of LAYER_KINDS; flatten still closes an image
    stack, and the output head is dense, activation and dropout); transfer:
    layers with parameters may be frozen or take lr_mult; branches: now and then
    a merge layer (add / multiply / concat) joins the output so far with an
    earlier named layer (or the input) of a fitting shape, through from=."""
    allowed = set(LAYER_KINDS) if kinds is None else set(kinds) & set(LAYER_KINDS)
    ndim = draw(st.integers(1, 3)) if image else 1
    shape = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    layers: list = []
    names_used: set = set()
    cur = shape

    def add(kind, **fixed):
        nonlocal cur
        spec = draw(layer_specs(kind, cur, transfer=transfer, allow_dropout=allow_dropout, **fixed))
        if spec.name is not None:
            if spec.name in names_used or spec.name == "x":
                spec.name, spec.text = None, _strip_name(spec)
            else:
                names_used.add(spec.name)
        layers.append(spec)
        cur = spec.out_shape

    if "normalization" in allowed and draw(st.integers(0, 5)) == 0:
        add("normalization")
    # image-shaped activations: the kinds that take them, then flatten
    while len(cur) > 1:
        for _ in range(draw(st.integers(0, 2))):
            choice = [k for k in _weighted(sorted(allowed), "image_weight") if LAYER_KINDS[k].accepts(cur)]
            if not choice:
                break
            add(draw(st.sampled_from(choice)))
        add("flatten")
    for _ in range(draw(st.integers(0, max_hidden))):
        choice = [k for k in _weighted(sorted(allowed), "flat_weight") if LAYER_KINDS[k].accepts(cur)]
        if choice:
            add(draw(st.sampled_from(choice)))
        if branches and draw(st.integers(0, 3)) == 0:
            _merge(draw, layers, shape, names_used)
            cur = layers[-1].out_shape

    loss = draw(st.sampled_from(LOSSES))
    from_logits = False
    if loss in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
        units = draw(st.integers(2, 5))
        out_act = draw(st.sampled_from(["softmax", "softmax", "logits", "sigmoid"]))
    elif loss == "binary_crossentropy":
        units = draw(st.integers(1, 3))
        out_act = draw(st.sampled_from(["sigmoid", "sigmoid", "logits"]))
    else:
        units = draw(st.integers(1, 3))
        out_act = draw(st.sampled_from(["linear", "tanh", "sigmoid", "relu", "gelu", "leaky_relu"]))
    if out_act == "logits":
        from_logits, out_act = True, "linear"
    if draw(st.booleans()):
        add("dense", units=units, act=out_act)
    else:  # a linear dense layer, then a separate activation layer
        add("dense", units=units, act="linear")
        if out_act != "linear" or draw(st.booleans()):
            add("activation", act=out_act)
    if out_act in ("linear",) and draw(st.integers(0, 3)) == 0:
        add("dropout")

    opt = draw(st.sampled_from(OPTIMIZERS))
    params: dict = {}
    if draw(st.booleans()):
        params["lr"] = _num(draw, 1e-5, 0.5, log=True)
        if opt == "sgd" and draw(st.booleans()):
            params["momentum"] = _num(draw, 0.0, 0.95)
            if params["momentum"] > 0 and draw(st.booleans()):
                params["nesterov"] = True
        if opt in ("adam", "adamw") and draw(st.booleans()):
            params["beta1"] = _num(draw, 0.0, 0.99)
            params["beta2"] = _num(draw, 0.5, 0.999)
        if opt == "adamw" and draw(st.booleans()):
            params["weight_decay"] = _num(draw, 0.0, 0.1)
        if opt == "rmsprop" and draw(st.booleans()):
            params["rho"] = _num(draw, 0.0, 0.99)
        if opt == "rmsprop" and draw(st.booleans()):
            params["momentum"] = _num(draw, 0.0, 0.9)
        if opt != "sgd" and draw(st.booleans()):
            params["eps"] = _num(draw, 1e-10, 1e-3, log=True)
    if draw(st.integers(0, 3)) == 0:   # gradient clipping: one way at most (Keras)
        params[draw(st.sampled_from(("clipnorm", "global_clipnorm", "clipvalue")))] = _num(draw, 0.01, 2.0, log=True)
    metrics = draw(st.lists(st.sampled_from(list(METRIC_TEXTS)), unique=True, max_size=3))
    spec = ProgramSpec(shape, layers, loss, from_logits, units, (units,), opt, params, metrics)
    if loss.endswith("crossentropy") and draw(st.integers(0, 3)) == 0:
        spec.label_smoothing = _num(draw, 0.0, 0.5)

    lines = [f"model {draw(st.sampled_from(['m', 'net', 'model_1']))} {{",
             f"  input x: f32[{', '.join(map(str, shape))}]"]
    for L in layers:
        lines.append("  " + L.text + draw(st.sampled_from(["", "", "  # a comment"])))
        if draw(st.integers(0, 6)) == 0:
            lines.append(draw(st.sampled_from(["", "  # note", "   "])))
    lines.append("}")
    if train:
        tl = _train_block(draw, spec)
        blocks = ["\n".join(lines), "\n".join(tl)]
        if draw(st.integers(0, 4)) == 0:
            blocks.reverse()
        lines = ["\n\n".join(blocks)]
    spec.source = "\n".join(lines) + "\n"
    return spec


# the metrics a program may list, each with the ways to write it (defaults or arguments)
METRIC_TEXTS = {
    "accuracy": ["accuracy"], "mse": ["mse"], "mae": ["mae"], "rmse": ["rmse"],
    "precision": ["precision", "precision(0.3)"], "recall": ["recall", "recall(thresholds=0.7)"],
    "f1_score": ["f1_score"], "auc": ["auc", "auc(num_thresholds=17)"],
    "binary_accuracy": ["binary_accuracy", "binary_accuracy(threshold=0.4)"],
    "top_k_categorical_accuracy": ["top_k_categorical_accuracy(k=2)"],
}


def _train_block(draw, spec: ProgramSpec) -> list:
    opt, params, metrics, loss, units = spec.optimizer, spec.opt_params, spec.metrics, spec.loss, spec.out_units
    largs = (["from_logits=true"] if spec.from_logits else []) + (
        [f"label_smoothing={_fmt(spec.label_smoothing)}"] if spec.label_smoothing else [])
    tl = [f"  loss = {loss}" + (f"({', '.join(largs)})" if largs else "")]
    if params:
        items = [f"{k}={_fmt(v)}" for k, v in params.items()]
        if "lr" in params and draw(st.booleans()):
            items[0] = _fmt(params["lr"])  # lr by position
        opt_text = f"{opt}({', '.join(items)})"
    else:
        opt_text = draw(st.sampled_from([opt, f"{opt}()", f'"{opt}"']))
    tl.append(f"  optimizer = {opt_text}")
    if metrics or draw(st.booleans()):
        texts = [draw(st.sampled_from(METRIC_TEXTS[m])) for m in metrics]
        tl.append(f"  metrics = [{', '.join(texts)}]" if len(metrics) != 1 or draw(st.booleans())
                  else f"  metrics = {texts[0]}")
    if loss in ("binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy") \
            and draw(st.integers(0, 3)) == 0:
        weights = {c: draw(st.sampled_from([0, 0.5, 1, 5])) for c in draw(
            st.lists(st.integers(0, max(units, 2) - 1), unique=True, min_size=1, max_size=3))}
        tl.append("  class_weight = {" + ", ".join(f"{c}: {_fmt(v)}" for c, v in weights.items()) + "}")
        spec.settings["class_weight"] = weights
    settings: dict = spec.settings
    for key, strat in (("epochs", st.integers(1, 3)), ("batch_size", st.integers(1, 64)),
                       ("log_every", st.integers(1, 5)), ("seed", st.integers(0, 2**31))):
        if draw(st.booleans()):
            settings[key] = draw(strat)
            tl.append(f"  {key} = {settings[key]}")
    epochs = settings.get("epochs", 1)
    val = draw(st.sampled_from([None, "split", "number"]))
    if val == "split":
        frac = draw(st.sampled_from([0.1, 0.2, 0.5]))
        tl.append(f"  validation = split({frac}, seed={draw(st.integers(0, 9))}, "
                  f"shuffle={_fmt(draw(st.booleans()))})")
    elif val == "number":
        tl.append(f"  validation = {draw(st.sampled_from([0.1, 0.25]))}")
    settings["validation"] = val
    classification = loss == "sparse_categorical_crossentropy"
    if classification or loss in ("mse", "mae"):
        if draw(st.booleans()):
            n = draw(st.integers(8, 40))
            if classification:
                tl.append(f"  data = synthetic.classification(samples={n}, features={spec.features}, "
                          f"classes={units}, seed={draw(st.integers(0, 5))})")
            else:
                tl.append(f"  data = synthetic.regression(samples={n}, features={spec.features}, "
                          f"targets={units}, noise=0.1)")
            settings["data"] = n
    logged = ["loss"] + metrics + (["val_loss"] + [f"val_{m}" for m in metrics] if val else [])
    if draw(st.booleans()):
        es = {"monitor": draw(st.sampled_from(logged)), "patience": draw(st.integers(0, 3))}
        if draw(st.booleans()):
            es["min_delta"] = draw(st.sampled_from([0, 1e-4, 0.5]))
        if draw(st.booleans()):
            es["mode"] = draw(st.sampled_from(["auto", "min", "max"]))
        if draw(st.booleans()):
            es["restore_best"] = draw(st.booleans())
        tl.append("  early_stopping = {" + ", ".join(f"{k}: {_fmt(v)}" for k, v in es.items()) + "}")
    if draw(st.integers(0, 2)) == 0:
        kind, text = _schedule(draw, spec, epochs, logged)
        settings["schedule"] = kind
        tl.append(f"  schedule = {text}")
    if draw(st.integers(0, 3)) == 0:
        kinds, text = _augment(draw, spec.input_shape)
        settings["augment"] = kinds
        tl.append(f"  augment = {text}")
    spec.settings = settings
    return ["train {"] + list(draw(st.permutations(tl))) + ["}"]


def _schedule(draw, spec: ProgramSpec, epochs: int, logged: list) -> tuple:
    kind = draw(st.sampled_from(SCHEDULES))
    below_lr = lambda: spec.lr * draw(st.sampled_from([0.0, 0.1, 0.5]))   # min_lr < lr
    if kind == "step":
        pos, kw = [("every", draw(st.integers(1, 3))), ("factor", draw(st.sampled_from([0.1, 0.5, 1.0])))], []
    elif kind == "exponential":
        pos, kw = [("rate", draw(st.sampled_from([0.5, 0.9, 1.0]))), ("every", draw(st.integers(1, 2)))], []
    elif kind == "cosine":
        pos, kw = [("warmup", draw(st.integers(0, epochs - 1))), ("min_lr", below_lr())], []
    else:
        pos = [("monitor", draw(st.sampled_from(logged))), ("factor", draw(st.sampled_from([0.1, 0.5]))),
               ("patience", draw(st.integers(0, 3)))][:draw(st.integers(0, 3))]
        kw = [("mode", draw(st.sampled_from(["auto", "min", "max"]))), ("cooldown", draw(st.integers(0, 1))),
              ("min_lr", below_lr()), ("min_delta", draw(st.sampled_from([0, 1e-4])))]
        kw = draw(st.lists(st.sampled_from(kw), unique_by=lambda kv: kv[0]))
    if not pos and not kw and draw(st.booleans()):
        return kind, kind                       # a bare name: all defaults
    return kind, kind + _call(draw, pos, kw)


def _augment(draw, input_shape: tuple) -> tuple:
    image = len(input_shape) in (2, 3)
    pool = ["noise"] + (["flip", "crop"] if image else [])
    kinds = draw(st.lists(st.sampled_from(pool), unique=True, min_size=1, max_size=len(pool)))
    texts = []
    for k in kinds:
        if k == "noise":
            texts.append("noise" + _call(draw, [("std", draw(st.sampled_from([0.01, 0.1, 1.0])))], []))
        elif k == "flip":
            pos = [("axis", draw(st.sampled_from(["horizontal", "vertical"]))),
                   ("p", draw(st.sampled_from([0.0, 0.5, 1.0])))]
            texts.append(draw(st.sampled_from(["flip", "flip" + _call(draw, pos, [])])))
        else:
            pad = draw(st.integers(1, min(input_shape[:2])))
            texts.append("crop" + _call(draw, [], [("padding", pad)]))
    if len(texts) == 1 and draw(st.booleans()):
        return kinds, texts[0]                   # a single augmentation without the list
    return kinds, "[" + ", ".join(texts) + "]"


def _strip_name(spec: LayerSpec) -> str:
    rest = spec.text[len(spec.kind):].lstrip()
    rest = rest.split("(", 1)
    return spec.kind + ("(" + rest[1] if len(rest) > 1 else "")


# ------------------------------------------------------------------ random batches


def batch(input_shape, loss: str, units: int, n: int, rng: np.random.Generator, dtype=np.float32):
    """Inputs (n, *input_shape) and targets of the right shape and kind for `loss`
    with `units` outputs."""
    x = rng.normal(size=(n,) + tuple(input_shape)).astype(dtype)
    if loss == "sparse_categorical_crossentropy":
        return x, rng.integers(0, units, size=n)
    if loss == "categorical_crossentropy":
        return x, np.eye(units, dtype=dtype)[rng.integers(0, units, size=n)]
    if loss == "binary_crossentropy":
        return x, rng.integers(0, 2, size=(n, units)).astype(dtype)
    return x, rng.normal(size=(n, units)).astype(dtype)


def random_batch(spec: ProgramSpec, n: int, rng: np.random.Generator, dtype=np.float32):
    """A random batch for a generated program."""
    return batch(spec.input_shape, spec.loss, spec.out_units, n, rng, dtype)


def program_batch(prog, n: int, rng, dtype=np.float32):
    """A random batch for a compiled program (any `.nn` source, generated or not).
    `rng` may be a seed."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    units = prog.graphs.predict.outputs["y_hat"].shape[-1]
    return batch(prog.ast.model.input.shape, prog.ast.train.loss.name, units, n, rng, dtype)


def trainable(prog) -> set:
    """The parameters of a compiled program that get a gradient (those of layers
    that are not frozen)."""
    g = prog.graphs.loss_and_grads
    return {k for k, s in g.input_specs.items() if s.role == "param" and s.trainable}


# ------------------------------------------------------------------ two compilations, side by side

ADAPTIVE = ("adam", "adamw", "rmsprop")


def compare_training(pa, pb, spec: ProgramSpec, params: dict, batches, close, *, seed: int = 0):
    """Train two compilations of one program (optimized and not, NumPy and
    Triton, ...) side by side from `params` on `batches`, comparing with
    `close(got, want, what)`: each step's loss and metrics, the state after the
    first step (batch-norm statistics and optimizer slots, from identical
    parameters), the parameters after the last and, unless adaptive, the state.

    An adaptive optimizer (adam, adamw, rmsprop) divides by the gradient's own
    size, so an element's step follows its gradient's *relative* rounding error:
    a gradient that is zero up to rounding (a bias before batch norm) becomes a
    full-size step of arbitrary sign, and a small one that the two compilations
    round differently (batch norm over a batch of 3 with eps 1e-5) a step that
    differs by lr times that relative error. Such elements are left out: an
    element is compared only if in every step its gradient exceeds 1e-4 and
    1e5 * lr times the largest difference between the two compilations'
    gradients at the same parameters (so rounding moves its step by at most about
    lr * noise / |g| <= 1e-5)."""
    ta, tb = pa.trainer(seed=seed, params=params), pb.trainer(seed=seed, params=params)
    adaptive = spec.optimizer in ADAPTIVE
    lr = spec.lr * max([1.0] + [L.lr_mult for L in spec.layers])
    significant = {k: np.ones(np.shape(v), bool) for k, v in params.items()}

    def param_of(name):   # the parameter an optimizer slot belongs to ("adam.m.h.weight" -> "h.weight")
        return next((q for q in params if name.endswith("." + q) and name != q), None)

    for i, (x, y) in enumerate(batches):
        if adaptive:
            _, ga = pa.loss_and_grads(ta.host(), x, y)
            _, gb = pb.loss_and_grads(ta.host(), x, y)
            noise = max([float(np.max(np.abs(ga[k] - gb[k]), initial=0.0)) for k in ga] + [0.0])
            for k in ga:
                significant[k] &= (np.abs(ga[k]) > 1e-4) & (np.abs(ga[k]) >= 1e5 * lr * noise)
        a, b = ta.train_batch(x, y), tb.train_batch(x, y)
        assert a.keys() == b.keys()
        for k in a:
            close(b[k], a[k], f"step {i} {k}\n{spec.source}")
        if i == 0:
            sa, sb = ta.host("state"), tb.host("state")
            assert sa.keys() == sb.keys()
            for k in sa:
                p = param_of(k)
                m = significant[p] if (adaptive and p) else np.ones(sa[k].shape, bool)
                close(sb[k][m], sa[k][m], f"state {k} after 1 step\n{spec.source}")
    ha, hb = ta.host("params"), tb.host("params")
    for k in ha:
        m = significant[k] if adaptive else np.ones(ha[k].shape, bool)
        close(hb[k][m], ha[k][m], f"param {k} after {len(batches)} steps\n{spec.source}")
    if not adaptive:
        sa, sb = ta.host("state"), tb.host("state")
        for k in sa:
            close(sb[k], sa[k], f"state {k} after {len(batches)} steps\n{spec.source}")
    return significant
