"""The machine's practical FLOP ceiling: a large GEMM through the same BLAS the kernels use.

Other benchmarks' GFLOP/s read against this one, taken in the same run."""
import numpy as np
import pytest

from dlkern import _blas
from dlkern.testing import assert_close, record_rate


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_gemm_ceiling(benchmark, dtype):
    n = 1536
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    benchmark.group = f"ceiling: gemm {n}x{n}x{n}"
    out = benchmark(_blas.gemm, a, b)
    assert_close(out[:4], (a[:4].astype(np.float64) @ b.astype(np.float64)), dtype=dtype)
    record_rate(benchmark, flops=2.0 * n**3)
