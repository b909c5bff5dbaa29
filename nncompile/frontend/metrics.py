"""How each metric is computed: its statistics in the graph and its value from them.

A metric that is not a plain mean over samples (precision, recall, F1, AUC,
RMSE) cannot be averaged batch by batch. Its graph outputs are *statistics*
named "<metric>/<stat>", each a sum over the batch's samples divided by the
batch size (a true positive count per sample, a histogram per sample, ...).
The fit loop and `evaluate` average every output over the batches weighted by
their sizes, as they do the loss, which gives the statistic's mean over the
whole epoch or data set; `result` turns those means into the metric's value
(Keras keeps the same counts in its metric variables). A plain mean metric
(accuracy, mse, ...) is one output under its own name and needs no `result`.

The rows' arguments, defaults and checks are in specs/training.py (METRIC_SPECS).
Metrics read probabilities: with `from_logits` the output goes through the
sigmoid (or softmax) first, so thresholds are on probabilities (Keras's AUC
does the same with its own from_logits)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

import numpy as np

from ..ir.graph import B, Graph, Node


@dataclass
class MetricInputs:
    g: Graph
    out: Node                  # the model's output [B, C]
    y: Node                    # the targets as the loss takes them (i64 [B] labels, or f [B, C])
    loss: str                  # the loss's name
    from_logits: bool
    w: Optional[Node] = None   # sample weights [B] (weighted metrics), or None

    @functools.cached_property
    def targets(self) -> Node:
        """f [B, C]: the targets, one-hot for class labels."""
        if self.y.dtype != "i64":
            return self.y
        return self.g.emit("onehot", self.y, depth=self.out.shape[-1], dtype=self.out.dtype)

    @functools.cached_property
    def probs(self) -> Node:
        """The output as probabilities: through the sigmoid (softmax) with from_logits."""
        if not self.from_logits:
            return self.out
        softmax = self.loss != "binary_crossentropy" and self.out.shape[-1] > 1
        return self.g.emit("softmax" if softmax else "sigmoid", self.out)

    def per_sample(self, v: Node) -> Node:
        """v [B, ...] summed over everything but the batch axis, times the sample weight."""
        E = self.g.emit
        if len(v.shape) > 1:
            v = E("sum", v, axes=tuple(range(1, len(v.shape))), keepdims=False)
        return v if self.w is None else E("mul", v, self.w)

    def stat(self, v: Node) -> Node:
        """The batch's per-sample mean of v [B, ...] (summed over the other axes)."""
        return self.g.emit("mean", self.per_sample(v), axes=(0,), keepdims=False)

    def mean(self, v: Node, name: str) -> dict[str, Node]:
        """A mean metric of per-element values v [B, ...]: its mean over the elements
        (weighted: sum(w * v) / sum(w), Keras's weighted Mean, as two statistics)."""
        E = self.g.emit
        if self.w is None:
            return {name: E("mean", v, axes=tuple(range(len(v.shape))), keepdims=False)}
        per = E("mean", v, axes=tuple(range(1, len(v.shape))), keepdims=False) if len(v.shape) > 1 else v
        return {f"{name}/sum": self.stat(per), f"{name}/count": E("mean", self.w, axes=(0,), keepdims=False)}


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0     # Keras's divide_no_nan


def _confusion(m: MetricInputs, threshold: float) -> dict[str, Node]:
    """tp, fp, fn of `probs > threshold` against the targets, element by element (micro)."""
    E, c = m.g.emit, m.g.const
    pred = E("greater", m.probs, c(threshold))
    t = m.targets
    return {"tp": m.stat(E("mul", pred, t)),
            "fp": m.stat(E("mul", pred, E("sub", c(1.0), t))),
            "fn": m.stat(E("mul", E("sub", c(1.0), pred), t))}


def _precision(m, name, p):
    s = _confusion(m, p["thresholds"])
    return {f"{name}/tp": s["tp"], f"{name}/fp": s["fp"]}


def _recall(m, name, p):
    s = _confusion(m, p["thresholds"])
    return {f"{name}/tp": s["tp"], f"{name}/fn": s["fn"]}


def _f1(m, name, p):
    return {f"{name}/{k}": v for k, v in _confusion(m, p["threshold"]).items()}


def _auc(m: MetricInputs, name, p):
    """Keras's evenly spaced thresholds t_i = i / (n - 1) (t_0 = -eps, t_{n-1} = 1 + eps):
    a prediction is above t_i iff its bucket ceil(p (n - 1)) - 1, at least 0, is >= i.
    The statistics are the histograms of positives and negatives over the buckets."""
    E, c, g = m.g.emit, m.g.const, m.g
    n = p["num_thresholds"]
    scaled = E("mul", E("clip", m.probs, lo=0.0, hi=1.0), c(float(n - 1)))
    floor = E("cast", scaled, dtype="i64")                       # >= 0: truncation is floor
    frac = E("greater", scaled, E("cast", floor, dtype=g.float_dtype))
    ceil = E("add", E("cast", floor, dtype=g.float_dtype), frac)
    bucket = E("cast", E("maximum", E("sub", ceil, c(1.0)), c(0.0)), dtype="i64")
    onehot = E("onehot", bucket, depth=n, dtype=g.float_dtype)   # [B, C, n]
    t = E("reshape", m.targets, shape=tuple(m.targets.shape) + (1,))
    pos = E("sum", E("mul", onehot, t), axes=(1,), keepdims=False)                       # [B, n]
    neg = E("sum", E("mul", onehot, E("sub", c(1.0), t)), axes=(1,), keepdims=False)
    w = m.w
    if w is not None:
        w2 = E("reshape", w, shape=(B, 1))
        pos, neg = E("mul", pos, w2), E("mul", neg, w2)
    return {f"{name}/pos": E("mean", pos, axes=(0,), keepdims=False),
            f"{name}/neg": E("mean", neg, axes=(0,), keepdims=False)}


def auc_from_histograms(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC by Keras's interpolation (trapezoid) over the thresholds, from the
    histograms of positives and negatives over the buckets."""
    tp = np.cumsum(np.asarray(pos, np.float64)[::-1])[::-1]   # above threshold i: buckets >= i
    fp = np.cumsum(np.asarray(neg, np.float64)[::-1])[::-1]
    fn, tn = tp[0] - tp, fp[0] - fp
    with np.errstate(all="ignore"):
        tpr = np.where(tp + fn > 0, tp / np.where(tp + fn > 0, tp + fn, 1), 0.0)
        fpr = np.where(fp + tn > 0, fp / np.where(fp + tn > 0, fp + tn, 1), 0.0)
    return float(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2.0))


def _top_k(m: MetricInputs, name, p):
    """1 when fewer than k classes score strictly above the true class (ties at the
    boundary count as in the top k, as tf.math.in_top_k)."""
    E = m.g.emit
    label = m.y if m.y.dtype == "i64" else E("argmax", m.y)
    true = E("reshape", E("take_label", m.out, label), shape=(B, 1))
    above = E("sum", E("greater", m.out, true), axes=(1,), keepdims=False)
    return m.mean(E("greater", m.g.const(float(p["k"])), above), name)


def _binary_accuracy(m: MetricInputs, name, p):
    E = m.g.emit
    return m.mean(E("equal", E("greater", m.probs, m.g.const(p["threshold"])), m.targets), name)


def _error(kind: str):
    def build(m: MetricInputs, name, p):
        E = m.g.emit
        d = E("sub", m.out, m.targets)
        return m.mean(E("square", d) if kind in ("mse", "rmse") else E("abs", d), name)
    return build


def _mean_result(name: str) -> Callable:
    def result(s, p):
        return _ratio(s[f"{name}/sum"], s[f"{name}/count"]) if f"{name}/sum" in s else float(s[name])
    return result


@dataclass(frozen=True)
class MetricRule:
    direction: str                    # "max" or "min": which way is better (Keras's _direction)
    build: Optional[Callable]         # (MetricInputs, logged name, params) -> {output name: node}
    result: Optional[Callable] = None  # (statistics by output name, params, name) -> the value
    # the loss kinds the metric makes sense for (None: any)
    needs: Optional[str] = None


RULES: dict[str, MetricRule] = {
    "accuracy": MetricRule("max", None),   # lower.build_metrics: argmax / threshold by the loss
    "binary_accuracy": MetricRule("max", _binary_accuracy),
    "top_k_categorical_accuracy": MetricRule("max", _top_k, needs="classes"),
    "sparse_top_k_categorical_accuracy": MetricRule("max", _top_k, needs="classes"),
    "precision": MetricRule("max", _precision, lambda s, p, n: _ratio(s[f"{n}/tp"], s[f"{n}/tp"] + s[f"{n}/fp"])),
    "recall": MetricRule("max", _recall, lambda s, p, n: _ratio(s[f"{n}/tp"], s[f"{n}/tp"] + s[f"{n}/fn"])),
    "f1_score": MetricRule("max", _f1, lambda s, p, n: _ratio(2 * s[f"{n}/tp"],
                                                              2 * s[f"{n}/tp"] + s[f"{n}/fp"] + s[f"{n}/fn"])),
    "auc": MetricRule("max", _auc, lambda s, p, n: auc_from_histograms(s[f"{n}/pos"], s[f"{n}/neg"])),
    "mse": MetricRule("min", _error("mse")),
    "mae": MetricRule("min", _error("mae")),
    "rmse": MetricRule("min", _error("rmse"), lambda s, p, n: float(np.sqrt(_mean_result(n)(s, p)))),
}
RULES["root_mean_squared_error"] = RULES["rmse"]


def direction(monitor: str) -> str:
    """'min' or 'max' for a logged name (Keras 3's mode='auto'): loss and the
    errors go down, the others up. Raises ValueError for a name it cannot tell."""
    name = monitor.removeprefix("val_")
    for prefix in ("weighted_", ""):
        base = name.removeprefix(prefix)
        if base == "loss":
            return "min"
        if base in RULES:
            return RULES[base].direction
    raise ValueError(f"cannot tell whether '{monitor}' should go up or down; pass mode='max' or mode='min'")


def result(kind: str, name: str, stats: Mapping[str, float], params: dict) -> float:
    rule = RULES[kind]
    if rule.result is not None:
        return rule.result(stats, params, name)
    return _mean_result(name)(stats, params)


def finish(metrics, means: Mapping[str, float]) -> dict[str, float]:
    """The logs from the means of a graph's outputs: the loss first, then each
    metric in the order listed, its value from its statistics."""
    if not derived(metrics) and not any("/" in k for k in means):
        return {k: float(v) for k, v in means.items()}
    out = {k: float(v) for k, v in means.items() if "/" not in k and k not in metrics}
    for m in metrics:
        out[str(m)] = result(getattr(m, "kind", m), str(m), means, getattr(m, "params", {}))
    return out


def derived(metrics) -> bool:
    """Whether some metric's value is not its graph output as it is (see `finish`)."""
    return any(RULES[getattr(m, "kind", m)].result is not None for m in metrics if getattr(m, "kind", m) in RULES)
