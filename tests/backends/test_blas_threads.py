"""The BLAS thread policy of the NumPy backend (backends/numpy/blas.py): a step of
small contractions runs on one OpenBLAS thread, a step of large ones on the
process's count; the library's own getter is the oracle."""
import os

import numpy as np
import pytest

import nncompile
from nncompile.backends.numpy import blas

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

needs_openblas = pytest.mark.skipif(blas._LIB is None or blas._USER_CHOSE or (blas.DEFAULT or 1) < 2,
                                    reason="needs NumPy's OpenBLAS with more than one thread, "
                                           "and OPENBLAS_NUM_THREADS/OMP_NUM_THREADS unset")


def _size(path):
    prog = nncompile.compile(os.path.join(ROOT, path))
    return blas.contraction_size(prog.graphs.train_step, prog.ast.train.batch_size)


def test_contraction_size_is_mnk_for_matmuls():
    # w1: 784-512-256-10 at batch 128; the largest GEMM is 128x784x512 (forward and both gradients)
    assert _size("benchmarks/w1.nn") == 128 * 784 * 512
    assert _size("examples/digits.nn") == 64 * 64 * 128


def _step(path):
    prog = nncompile.compile(os.path.join(ROOT, path))
    tr = prog.trainer(seed=0)
    shape = (prog.ast.train.batch_size,) + tuple(prog.graphs.train_step.inputs[tr.x_name].shape[1:])
    y = np.zeros(prog.ast.train.batch_size, np.int64)
    tr.step(np.random.default_rng(0).random(shape, np.float32), y)


@needs_openblas
def test_small_models_step_on_one_blas_thread_and_large_ones_on_all():
    get = blas._LIB[1]
    try:
        _step("examples/digits.nn")
        assert get() == 1
        _step("benchmarks/w1.nn")
        assert get() == blas.DEFAULT
    finally:
        blas.set_threads(None)
    assert get() == blas.DEFAULT
