"""GEMM: dlkern's own (src/gemm.c) beside NumPy's matmul (its bundled OpenBLAS, which
the NumPy reference backend uses) and torch.mm when installed, on the large square problem that is the machine's practical
FLOP ceiling and on the shapes the kernels run.

Other benchmarks' GFLOP/s read against the large-GEMM group, taken in the same run.
Every call checks its result against a float64 product of a few rows."""
import numpy as np
import pytest

import dlkern
from dlkern import _gemm
from dlkern.testing import assert_close, record_rate

IMPLS = ["dlkern", "numpy", "torch"]

# (name, M, N, K, trans_a, trans_b): the GEMMs inside the kernels, per call.
KERNEL_SHAPES = [
    ("conv2d im2col fwd W@col", 64, 1024, 576, False, False),
    ("conv2d grad_weight gy@col^T", 64, 576, 1024, False, True),
    ("conv2d grad_col W^T@gy", 576, 1024, 64, True, False),
    ("conv2d 1x1 fwd", 256, 1024, 64, False, False),
    ("linear fwd x@W^T", 256, 1000, 512, False, True),
    ("linear grad_x g@W", 256, 512, 1000, False, False),
    ("linear grad_W g^T@x", 1000, 512, 256, True, False),
    ("causal_conv1d tap W_j@x", 64, 1024, 64, False, False),
]


def _operands(M, N, K, ta, tb, dtype):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    return a, b


def _fn(impl, a, b, ta, tb):
    if impl == "dlkern":
        nthreads = dlkern.get_num_threads()
        return lambda: _gemm.gemm(a, b, ta, tb, nthreads=nthreads)
    if impl == "torch":
        torch = pytest.importorskip("torch")
        torch.set_num_threads(dlkern.get_num_threads())
        ta_, tb_ = torch.from_numpy(a), torch.from_numpy(b)
        opa, opb = (ta_.T if ta else ta_), (tb_.T if tb else tb_)
        return lambda: (opa @ opb).numpy()
    opa, opb = (a.T if ta else a), (b.T if tb else b)
    return lambda: opa @ opb


def _check(out, a, b, ta, tb, dtype):
    a64 = (a.T if ta else a)[:4].astype(np.float64)
    b64 = (b.T if tb else b).astype(np.float64)
    K = a64.shape[1]
    rtol = 2e-4 * max(1.0, np.sqrt(K / 256)) if dtype == np.float32 else None
    assert_close(out[:4], a64 @ b64, dtype=dtype, rtol=rtol)


@pytest.mark.parametrize("n,dtype", [(1536, np.float32), (2048, np.float32),
                                     (1536, np.float64)],
                         ids=["1536-float32", "2048-float32", "1536-float64"])
@pytest.mark.parametrize("impl", IMPLS)
def test_large_gemm_ceiling(benchmark, impl, n, dtype):
    a, b = _operands(n, n, n, False, False, dtype)
    benchmark.group = f"ceiling: gemm {n}x{n}x{n} {np.dtype(dtype).name}"
    out = benchmark(_fn(impl, a, b, False, False))
    _check(out, a, b, False, False, dtype)
    record_rate(benchmark, flops=2.0 * n**3)


@pytest.mark.parametrize("case", KERNEL_SHAPES, ids=lambda c: c[0].split()[0] + "-" +
                         "x".join(map(str, c[1:4])) + ("-T" if c[4] else "-N") +
                         ("T" if c[5] else "N"))
@pytest.mark.parametrize("impl", IMPLS)
def test_kernel_shape_gemm(benchmark, impl, case):
    name, M, N, K, ta, tb = case
    a, b = _operands(M, N, K, ta, tb, np.float32)
    benchmark.group = f"gemm {name} {M}x{N}x{K} float32"
    out = benchmark(_fn(impl, a, b, ta, tb))
    _check(out, a, b, ta, tb, np.float32)
    record_rate(benchmark, flops=2.0 * M * N * K)
