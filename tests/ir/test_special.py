"""erf / erfc of ir/special.py (the exact GELU's) against math.erf / math.erfc."""
import math

import numpy as np
import pytest

from nncompile.ir.special import erf, erfc


def _grid():
    return np.concatenate([np.linspace(-30, 30, 60001), np.geomspace(1e-300, 1, 200),
                           -np.geomspace(1e-300, 1, 200), [0.0, -0.0, 26.9, 27.0, 27.5, 1e300, -1e300]])


def test_float64_erfc_is_accurate_to_2e_13_relative_and_erf_to_4e_15_absolute():
    x = _grid()
    ref_c = np.array([math.erfc(v) for v in x])
    ref = np.array([math.erf(v) for v in x])
    c = erfc(x)
    tiny = ref_c > 1e-300
    assert np.max(np.abs(c - ref_c)[tiny] / ref_c[tiny]) < 2e-13
    assert np.max(np.abs(c - ref_c)) < 4e-15
    assert np.max(np.abs(erf(x) - ref)) < 4e-15
    assert c.dtype == np.float64


def test_float32_in_float32_out_to_the_dtype_precision():
    x = np.linspace(-12, 12, 20001).astype(np.float32)
    ref = np.array([math.erf(float(v)) for v in x])
    e = erf(x)
    assert e.dtype == np.float32 and np.max(np.abs(e - ref)) < 5e-7
    assert erfc(x).dtype == np.float32


@pytest.mark.parametrize("f, at, want", [(erf, np.inf, 1.0), (erf, -np.inf, -1.0), (erfc, np.inf, 0.0),
                                         (erfc, -np.inf, 2.0), (erf, 0.0, 0.0), (erfc, 0.0, 1.0)])
def test_limits(f, at, want):
    assert float(f(np.array([at]))[0]) == want


def test_nan_stays_nan():
    assert np.isnan(erf(np.array([np.nan]))).all() and np.isnan(erfc(np.array([np.nan]))).all()


def test_erf_keeps_its_relative_accuracy_near_zero():
    x = np.concatenate([np.geomspace(1e-300, 0.5, 400), -np.geomspace(1e-300, 0.5, 400)])
    ref = np.array([math.erf(v) for v in x])
    assert np.max(np.abs(erf(x) - ref) / np.abs(ref)) < 1e-15
