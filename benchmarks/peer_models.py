"""The benchmarks' peers of an nncompile model: one description of its layers,
read from the compiled program, and the PyTorch module built from it with
nncompile's initial weights (used by cpu_step.py and gpu_step.py).

Only NumPy is imported here; torch is imported by the functions that need it,
so that cpu_step.py can settle its thread environment first.

Layouts: nncompile images are channels-last [B, H, W, C], kernels
(kh, kw, C/groups, F), dense weights (in, out). The torch modules take NCHW
images (`torch_input`), kernels (F, C/groups, kh, kw) and Linear weights
(out, in); a dense layer after a flatten of an image gets its input rows
permuted from nncompile's (h, w, c) order to torch's (c, h, w).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

# the layer kinds the peers implement (the torch builder; cpu_step's JAX side a subset)
PEER_LAYERS = ("dense", "conv2d", "maxpool2d", "flatten", "batchnorm", "activation",
               "global_avgpool2d", "global_maxpool2d")
PEER_ACTIVATIONS = ("relu", "linear", "sigmoid", "tanh")
TORCH_FORMATS = ("NCHW", "channels_last")


class Layer:
    """One layer as the peers build it: kind, name, activation (applied after it;
    "linear" for none), the per-sample shapes it maps (channels-last for images,
    as nncompile), and per kind: kernel, strides, dilation, groups, explicit
    Keras padding ((top, bottom), (left, right)), use_bias, and for batchnorm
    Keras's momentum and epsilon."""

    def __init__(self, kind, name, act, in_shape, out_shape, **kw):
        self.kind, self.name, self.act = kind, name, act
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        self.use_bias = False
        self.__dict__.update(kw)

    @property
    def params(self):
        """The parameter names nncompile gives this layer."""
        if self.kind in ("dense", "conv2d"):
            return [f"{self.name}.weight"] + ([f"{self.name}.bias"] if self.use_bias else [])
        if self.kind == "batchnorm":
            return [f"{self.name}.gamma", f"{self.name}.beta"]
        return []

    @property
    def has_weight(self):
        return self.kind in ("dense", "conv2d")


def keras_pads(size: int, k: int, s: int, d: int, padding: str):
    """Output size and (before, after) padding of one spatial axis, as Keras
    ('same': output ceil(size / s), the odd extra row or column after)."""
    eff = (k - 1) * d + 1
    if padding == "valid":
        return (size - eff) // s + 1, (0, 0)
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return out, (total // 2, total - total // 2)


def model_layers(prog, what: str = "model"):
    """(input shape, [Layer]) of a compiled nncompile program. Raises ValueError
    for a layer kind or activation the peers do not implement."""
    in_shape = tuple(int(d) for d in prog.ast.model.input.shape)
    ast_layers = prog.ast.model.layers
    out = []
    shape = in_shape
    for al in ast_layers:
        a = al.args
        if al.kind not in PEER_LAYERS:
            raise ValueError(f"{what}: layer {al.name!r} is a {al.kind}; the peers implement {', '.join(PEER_LAYERS)}")
        if al.kind == "dense":
            if len(shape) != 1:
                raise ValueError(f"{what}: dense {al.name!r} needs a flat input")
            out.append(Layer("dense", al.name, a["activation"], shape, (int(a["units"]),),
                             use_bias=bool(a["use_bias"])))
        elif al.kind == "flatten":
            out.append(Layer("flatten", al.name, "linear", shape, (int(np.prod(shape)),)))
        elif al.kind == "activation":
            out.append(Layer("activation", al.name, a["fn"], shape, shape))
        elif al.kind == "batchnorm":
            out.append(Layer("batchnorm", al.name, "linear", shape, shape,
                             momentum=float(a["momentum"]), epsilon=float(a["epsilon"])))
        elif al.kind in ("global_avgpool2d", "global_maxpool2d"):
            out.append(Layer(al.kind, al.name, "linear", shape, (shape[2],)))
        else:
            h, w, c = shape
            k = tuple(a["kernel_size"] if al.kind == "conv2d" else a["pool_size"])
            s = tuple(a["strides"])
            d = tuple(a.get("dilation", (1, 1)))
            ho, pads_h = keras_pads(h, k[0], s[0], d[0], a["padding"])
            wo, pads_w = keras_pads(w, k[1], s[1], d[1], a["padding"])
            if al.kind == "conv2d":
                out.append(Layer("conv2d", al.name, a["activation"], shape, (ho, wo, int(a["filters"])),
                                 kernel=k, strides=s, dilation=d, pads=(pads_h, pads_w),
                                 groups=int(a["groups"]), use_bias=bool(a["use_bias"])))
            else:
                if a["padding"] != "valid":
                    raise ValueError(f"{what}: maxpool2d {al.name!r}: the peers implement padding=valid")
                out.append(Layer("maxpool2d", al.name, "linear", shape, (ho, wo, c), kernel=k, strides=s))
        if al is not ast_layers[-1] and out[-1].act not in PEER_ACTIVATIONS:
            raise ValueError(f"{what}: {al.name!r}: the peers implement the hidden activations "
                             f"{', '.join(PEER_ACTIVATIONS)}")
        shape = out[-1].out_shape
    last = out[-1]
    if last.kind != "dense" or last.act != "softmax":
        raise ValueError(f"{what}: the peers expect a dense softmax output layer (its logits go to the loss)")
    return in_shape, out


def describe(in_shape, layers) -> str:
    """'784-512-256-10' for an MLP; '28x28x1 > conv32 3x3 same relu > maxpool2 > ...' otherwise."""
    if all(l.kind == "dense" for l in layers):
        return "-".join([str(in_shape[0])] + [str(l.out_shape[0]) for l in layers])
    parts = ["x".join(map(str, in_shape))]
    for l in layers:
        if l.kind == "conv2d":
            p = f"conv{l.out_shape[2]} {l.kernel[0]}x{l.kernel[1]}"
            if l.pads != ((0, 0), (0, 0)):
                p += " same"
            if l.strides != (1, 1):
                p += f" /{l.strides[0]}"
            parts.append(p + ("" if l.act == "linear" else f" {l.act}"))
        elif l.kind == "maxpool2d":
            parts.append(f"maxpool{l.kernel[0]}")
        elif l.kind == "dense":
            parts.append(f"dense{l.out_shape[0]}")
        elif l.kind == "batchnorm":
            parts.append("bn")
        elif l.kind == "activation":
            parts.append(l.act)
        else:
            parts.append(l.kind.replace("global_", "g").replace("pool2d", "pool"))
    return " > ".join(parts)


def _torch_act(act):
    import torch.nn as nn
    return {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[act]() if act != "linear" else None


def torch_sequential(layers, init: dict):
    """nn.Sequential of the layers (NCHW in, pre-softmax logits out: F.cross_entropy
    applies the softmax), with nncompile's initial parameters `init` copied in.
    batchnorm: torch's momentum is 1 - Keras's; its eps is Keras's epsilon; it
    normalises with the biased batch variance in training, as nncompile."""
    import torch
    import torch.nn as nn
    mods = []
    flat_from = None          # (H, W, C) of the image the last flatten flattened
    n = len(layers)

    def load(p, a):
        with torch.no_grad():
            p.copy_(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)))

    for i, l in enumerate(layers):
        if l.kind == "flatten":
            mods.append(nn.Flatten())
            flat_from = l.in_shape if len(l.in_shape) == 3 else None
        elif l.kind == "maxpool2d":
            mods.append(nn.MaxPool2d(l.kernel, l.strides))
        elif l.kind in ("global_avgpool2d", "global_maxpool2d"):
            mods += [nn.AdaptiveAvgPool2d(1) if l.kind == "global_avgpool2d" else nn.AdaptiveMaxPool2d(1),
                     nn.Flatten()]
        elif l.kind == "batchnorm":
            if flat_from is not None:
                raise ValueError(f"batchnorm {l.name!r} between a flatten and a dense: not implemented by the peers")
            c = l.in_shape[-1]
            bn = (nn.BatchNorm2d if len(l.in_shape) == 3 else nn.BatchNorm1d)(c, eps=l.epsilon,
                                                                            momentum=round(1.0 - l.momentum, 12))
            load(bn.weight, init[f"{l.name}.gamma"])
            load(bn.bias, init[f"{l.name}.beta"])
            mods.append(bn)
        elif l.kind == "conv2d":
            (pt, pb), (pl, pr) = l.pads
            if (pt, pl) != (pb, pr):               # Keras's uneven 'same': pad explicitly
                mods.append(nn.ZeroPad2d((pl, pr, pt, pb)))
                pt = pl = 0
            conv = nn.Conv2d(l.in_shape[2], l.out_shape[2], l.kernel, l.strides, padding=(pt, pl),
                             dilation=l.dilation, groups=l.groups, bias=l.use_bias)
            load(conv.weight, init[f"{l.name}.weight"].transpose(3, 2, 0, 1))   # (kh, kw, C, F) -> (F, C, kh, kw)
            if l.use_bias:
                load(conv.bias, init[f"{l.name}.bias"])
            mods.append(conv)
        elif l.kind == "dense":
            W = init[f"{l.name}.weight"]
            lin = nn.Linear(l.in_shape[0], l.out_shape[0], bias=l.use_bias)
            if flat_from is not None:              # rows in (h, w, c) order -> torch's (c, h, w)
                h, w, c = flat_from
                load(lin.weight, W.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(W.shape[1], -1))
                flat_from = None
            else:
                load(lin.weight, W.T)
            if l.use_bias:
                load(lin.bias, init[f"{l.name}.bias"])
            mods.append(lin)
        if i < n - 1:
            act = _torch_act(l.act)
            if act is not None:
                mods.append(act)
    return nn.Sequential(*mods)


def torch_input(x: np.ndarray, fmt: Optional[str] = None):
    """The torch input for nncompile's x: images NHWC -> NCHW (contiguous, or in the
    channels_last memory format for fmt="channels_last"); flat inputs as they are."""
    import torch
    t = torch.from_numpy(x)
    if x.ndim != 4:
        return t
    t = t.permute(0, 3, 1, 2)
    return t.contiguous(memory_format=torch.channels_last) if fmt == "channels_last" else t.contiguous()
