"""Float64 NumPy transcriptions of the rules the product implements, for tests
that must not depend on torch: the optimizers' update rules as Keras writes
them (docs/architecture.md: epsilon outside the square root, bias-corrected
learning rate; decoupled weight decay for adamw)."""
import numpy as np


def optimizer_steps(kind: str, p, grads, hp: dict):
    """Apply the gradients in `grads` one step each from `p`; returns
    (p, slot1, slot2) in float64. hp: lr, and momentum / nesterov (sgd),
    beta1 / beta2 / eps (adam, adamw), weight_decay (adamw), rho / eps /
    momentum (rmsprop)."""
    p = np.asarray(p, np.float64).copy()
    s1 = np.zeros_like(p)
    s2 = np.zeros_like(p)
    lr, mom, wd = hp["lr"], hp.get("momentum", 0.0), hp.get("weight_decay", 0.0)
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, np.float64)
        p = p - lr * wd * p
        if kind == "sgd":
            if mom:
                s1 = mom * s1 - lr * g
                p = p + (mom * s1 - lr * g if hp.get("nesterov") else s1)
            else:
                p = p - lr * g
        elif kind in ("adam", "adamw"):
            b1, b2, eps = hp["beta1"], hp["beta2"], hp["eps"]
            s1 = b1 * s1 + (1 - b1) * g
            s2 = b2 * s2 + (1 - b2) * g * g
            p = p - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * s1 / (np.sqrt(s2) + eps)
        elif kind == "rmsprop":
            rho, eps = hp["rho"], hp["eps"]
            s1 = rho * s1 + (1 - rho) * g * g
            inc = lr * g / np.sqrt(s1 + eps)     # Keras 3 (torch: np.sqrt(s1) + eps)
            if mom:
                s2 = mom * s2 + inc
                p = p - s2
            else:
                p = p - inc
        else:
            raise ValueError(f"unknown optimizer {kind!r}")
    return p, s1, s2
