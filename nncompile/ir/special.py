"""erf and erfc over NumPy arrays (NumPy has neither), for the exact GELU.

erfc(x), x >= 0, is written as `t * exp(-x^2 + P(t))` with `t = 2 / (2 + x)`
(the form of Numerical Recipes' `erfcc`): `log(erfc(x) / t) + x^2` is analytic
in t on (0, 1] (its asymptotic series in 1/x is one in t), so a Chebyshev
polynomial P of modest degree fits it to double precision. The coefficients are
fitted here at import, by interpolation at Chebyshev nodes of `math.erfc`
(correctly rounded to about 1 ulp), so nothing is copied from a table:
relative error <= 2e-13 for erfc on [0, 27] (beyond, erfc underflows to 0),
absolute error <= 4e-15 for erf everywhere (tests/ir/test_special.py checks
both against `math.erf` / `math.erfc` on a dense grid).

Negative arguments use erfc(-x) = 2 - erfc(x); |x| < 1/2 uses erf's series
(relative accuracy near 0). The float32 path evaluates the
polynomial of degree 12 in float32 (error ~3e-7 absolute, the dtype's own).
"""
from __future__ import annotations

import math

import numpy as np
from numpy.polynomial import chebyshev as _cheb

_X_MAX = 27.0                       # erfc(27) ~ 5e-319: beyond, float64 erfc is 0
_T_MIN = 2.0 / (2.0 + _X_MAX)
# measured (relative error of erfc in float64): degree 12 -> ~1e-9, 20 -> 2e-13, 24 -> 1.3e-13
# (the floor: exp(-x^2) of a rounded x^2); float32 needs no more than degree 12
_DEGREE = {np.dtype(np.float64): 24, np.dtype(np.float32): 12}


def _fit(degree: int) -> np.ndarray:
    k = np.arange(degree + 1)
    nodes = np.cos(np.pi * (k + 0.5) / (degree + 1))
    t = _T_MIN + (nodes + 1.0) * 0.5 * (1.0 - _T_MIN)
    x = 2.0 / t - 2.0
    f = np.array([math.log(math.erfc(xi) / ti) + xi * xi for xi, ti in zip(x, t)])
    return _cheb.chebfit(nodes, f, degree)


_COEFFS = {dt: _fit(d).astype(dt) for dt, d in _DEGREE.items()}


def _erfc_nonneg(a: np.ndarray) -> np.ndarray:
    """erfc of a >= 0 (float32 or float64), in a's dtype."""
    dt = a.dtype
    x = np.minimum(a, dt.type(_X_MAX))
    t = 2.0 / (2.0 + x)
    u = (t - dt.type(_T_MIN)) * dt.type(2.0 / (1.0 - _T_MIN)) - dt.type(1.0)
    p = _cheb.chebval(u, _COEFFS[dt])
    out = t * np.exp(p - x * x)
    return np.where(a >= _X_MAX, dt.type(0.0), out).astype(dt, copy=False)


# |x| < 1/2: erf's Maclaurin series, 2/sqrt(pi) sum (-1)^n x^(2n+1) / (n! (2n+1)), n <= 12
# (the last term < 3e-17 there), so erf keeps its relative accuracy near 0 and erf(0) = 0
_SERIES = np.array([2.0 / math.sqrt(math.pi) * (-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(13)])
_SMALL = 0.5


def _erf_small(a: np.ndarray) -> np.ndarray:
    z = a * a
    c = _SERIES.astype(a.dtype)
    s = np.full_like(a, c[-1])
    for k in c[-2::-1]:
        s = s * z + k
    return a * s


def _float(a) -> np.ndarray:
    a = np.asarray(a)
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


def erfc(a) -> np.ndarray:
    """The complementary error function, elementwise, in a's float dtype."""
    a = _float(a)
    r = _erfc_nonneg(np.abs(a))
    r = np.where(a < 0, a.dtype.type(2.0) - r, r)
    small = a.dtype.type(1.0) - _erf_small(np.clip(a, -_SMALL, _SMALL))
    return np.where(np.abs(a) < _SMALL, small, r).astype(a.dtype, copy=False)


def erf(a) -> np.ndarray:
    """The error function, elementwise, in a's float dtype."""
    a = _float(a)
    r = a.dtype.type(1.0) - _erfc_nonneg(np.abs(a))
    r = np.where(np.abs(a) < _SMALL, _erf_small(np.clip(a, -_SMALL, _SMALL)), np.copysign(r, a))
    return np.where(np.isnan(a), a, r).astype(a.dtype, copy=False)
