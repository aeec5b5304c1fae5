"""Dilated causal conv1d (TCN block): dlkern (C over its own GEMM) vs the NumPy reference vs
PyTorch's conv1d on a left-padded input, forward and forward+backward.

GFLOP/s count 2*N*C_out*C_in*k*L per pass (forward; forward+backward is three passes).
Read them against the sgemm ceiling of bench_blas.py in the same run."""
import numpy as np
import pytest

import dlkern
from dlkern import functional as F
from dlkern import reference as R
from dlkern.testing import assert_close, record_rate

# (N, C_in, L, C_out, k, dilation): the TCN shape, and a small TCN-layer one.
SHAPES = [(32, 64, 1024, 64, 3, 4), (64, 32, 200, 32, 7, 2)]
# float64 only on the small shape: the large one's float64 reference and torch runs
# take seconds even untimed, and float32 is what the performance report compares.
CASES = [(SHAPES[0], np.float32), (SHAPES[1], np.float32), (SHAPES[1], np.float64)]
IMPLS = ["dlkern", "reference", "torch"]


def _id(value):
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return np.dtype(value).name


def _name(shape, dtype):
    n, c_in, length, c_out, k, d = shape
    return f"N{n} {c_in}->{c_out} L{length} k{k} d{d} {np.dtype(dtype).name}"


_EXPECTED = {}  # (shape, dtype, pass) -> reference result, computed once per run


def _expected(shape, dtype, which):
    key = (shape, np.dtype(dtype).name, which)
    if key not in _EXPECTED:
        x, w, b, g, d = _inputs(shape, dtype)
        out = R.causal_conv1d(x, w, b, d)
        _EXPECTED[key] = out if which == "fwd" else (out,) + R.causal_conv1d_backward(g, x, w, d)
    return _EXPECTED[key]


def _inputs(shape, dtype):
    n, c_in, length, c_out, k, d = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c_in, length)).astype(dtype)
    w = (rng.standard_normal((c_out, c_in, k)) / np.sqrt(c_in * k)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    g = rng.standard_normal((n, c_out, length)).astype(dtype)
    return x, w, b, g, d


def _torch_fns(x, w, b, g, d):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(dlkern.get_num_threads())
    tf = torch.nn.functional
    k = w.shape[2]
    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    gt = torch.from_numpy(g)

    def forward():
        with torch.no_grad():
            return tf.conv1d(tf.pad(xt, ((k - 1) * d, 0)), wt, bt, dilation=d).numpy()

    def forward_backward():
        y = tf.conv1d(tf.pad(xt, ((k - 1) * d, 0)), wt, bt, dilation=d)
        grads = torch.autograd.grad(y, (xt, wt, bt), gt)
        return (y.detach().numpy(),) + tuple(t.numpy() for t in grads)

    return forward, forward_backward


def _fns(impl, x, w, b, g, d):
    if impl == "torch":
        return _torch_fns(x, w, b, g, d)
    mod = F if impl == "dlkern" else R

    def forward():
        return mod.causal_conv1d(x, w, b, d)

    def forward_backward():
        return (mod.causal_conv1d(x, w, b, d),) + mod.causal_conv1d_backward(g, x, w, d)

    return forward, forward_backward


def _flops(shape):
    n, c_in, length, c_out, k, _ = shape
    return 2.0 * n * c_out * c_in * k * length


@pytest.mark.parametrize("shape,dtype", CASES, ids=lambda c: _id(c))
@pytest.mark.parametrize("impl", IMPLS)
def test_causal_conv1d_forward(benchmark, impl, shape, dtype):
    x, w, b, g, d = _inputs(shape, dtype)
    forward, _ = _fns(impl, x, w, b, g, d)
    benchmark.group = "causal_conv1d fwd " + _name(shape, dtype)
    out = benchmark(forward)
    assert_close(out, _expected(shape, dtype, "fwd"), dtype=dtype)
    record_rate(benchmark, flops=_flops(shape))


@pytest.mark.parametrize("shape,dtype", CASES, ids=lambda c: _id(c))
@pytest.mark.parametrize("impl", IMPLS)
def test_causal_conv1d_forward_backward(benchmark, impl, shape, dtype):
    x, w, b, g, d = _inputs(shape, dtype)
    _, forward_backward = _fns(impl, x, w, b, g, d)
    benchmark.group = "causal_conv1d fwd+bwd " + _name(shape, dtype)
    got = benchmark(forward_backward)
    for a, e in zip(got, _expected(shape, dtype, "fwd+bwd")):
        assert_close(a, e, dtype=dtype)
    record_rate(benchmark, flops=3 * _flops(shape))
