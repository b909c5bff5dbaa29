"""The NumPy Philox 4x32-10 stream (nncompile.ir.philox) that both backends'
dropout masks come from: statistics, speed and the seed mixing. Its bit-exact
agreement with Triton's tl.rand is in tests/triton_backend/test_kernels.py."""
import numpy as np

from nncompile.ir import philox


def test_philox_uniform_statistics_and_speed():
    import time
    offs = np.arange(1 << 16)
    philox.philox_uniform(7, offs)
    t = time.perf_counter()
    u = philox.philox_uniform(7, offs)
    dt = time.perf_counter() - t
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.01
    assert dt < 0.1, f"philox_uniform too slow: {dt * 1e3:.1f} ms for 64k"


def test_mix_properties():
    s = {philox.mix(1, step, stream) for step in range(50) for stream in range(4)}
    assert len(s) == 200
    assert all(0 <= v < 2**31 for v in s)
    assert philox.mix(3, 4, 5) == philox.mix(3, 4, 5)
    assert philox.mix(0, 0, 0) != philox.mix(0, 0, 1)
