"""linear: dlkern (C over its own GEMM) vs the NumPy reference vs torch.nn.functional.linear,
forward and forward+backward. GFLOP/s count 2*M*in*out per GEMM (three for fwd+bwd);
read them against the sgemm ceiling of bench_blas.py in the same run."""
import numpy as np
import pytest

import dlkern
from dlkern import functional as F
from dlkern import reference as R
from dlkern.testing import assert_close, record_rate

# (batch, in_features, out_features): an ImageNet-style classifier head, a small CNN's
# head on flattened 64x4x4 features, and a square hidden layer.
SHAPES = [(256, 512, 1000), (64, 64 * 4 * 4, 10), (512, 1024, 1024)]
IMPLS = ["dlkern", "reference", "torch"]
_EXPECTED = {}


def _inputs(shape, dtype):
    m, n_in, n_out = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, n_in)).astype(dtype)
    w = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    g = rng.standard_normal((m, n_out)).astype(dtype)
    return x, w, b, g


def _expected(shape, dtype, which):
    key = (shape, np.dtype(dtype).name, which)
    if key not in _EXPECTED:
        x, w, b, g = _inputs(shape, dtype)
        out = R.linear(x, w, b)
        _EXPECTED[key] = out if which == "fwd" else (out,) + R.linear_backward(g, x, w)
    return _EXPECTED[key]


def _fns(impl, x, w, b, g):
    if impl == "torch":
        torch = pytest.importorskip("torch")
        torch.set_num_threads(dlkern.get_num_threads())
        xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
        gt = torch.from_numpy(g)

        def forward():
            with torch.no_grad():
                return torch.nn.functional.linear(xt, wt, bt).numpy()

        def forward_backward():
            y = torch.nn.functional.linear(xt, wt, bt)
            grads = torch.autograd.grad(y, (xt, wt, bt), gt)
            return (y.detach().numpy(),) + tuple(t.numpy() for t in grads)

        return forward, forward_backward
    mod = F if impl == "dlkern" else R
    return (lambda: mod.linear(x, w, b),
            lambda: (mod.linear(x, w, b),) + mod.linear_backward(g, x, w))


def _name(shape, dtype):
    m, n_in, n_out = shape
    return f"N{m} {n_in}->{n_out} {np.dtype(dtype).name}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("impl", IMPLS)
def test_linear_forward(benchmark, impl, shape, dtype):
    x, w, b, g = _inputs(shape, dtype)
    forward, _ = _fns(impl, x, w, b, g)
    benchmark.group = "linear fwd " + _name(shape, dtype)
    out = benchmark(forward)
    assert_close(out, _expected(shape, dtype, "fwd"), dtype=dtype)
    record_rate(benchmark, flops=2.0 * np.prod(shape))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("impl", IMPLS)
def test_linear_forward_backward(benchmark, impl, shape, dtype):
    x, w, b, g = _inputs(shape, dtype)
    _, forward_backward = _fns(impl, x, w, b, g)
    benchmark.group = "linear fwd+bwd " + _name(shape, dtype)
    got = benchmark(forward_backward)
    for a, e in zip(got, _expected(shape, dtype, "fwd+bwd")):
        assert_close(a, e, dtype=dtype)
    record_rate(benchmark, flops=3 * 2.0 * np.prod(shape))
