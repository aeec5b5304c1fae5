"""Activations and dropout on (32, 64, 32, 32) float32: dlkern (C) vs NumPy reference vs torch.

GB/s counts each kernel's essential traffic: forward reads x and writes y (8 B/element
in float32), forward+backward adds reading grad_out and x (or y) and writing grad_x
(20 B/element); dropout also writes the 1-byte mask (and its backward reads it); the
uniforms drawn by NumPy are not counted. The memcpy groups give the bandwidth ceiling
of the same run: the best copy (dlkern.benchmarks.ceilings.copy_benchmark) of the same
8 MB (which, with its destination, fits the 32 MB L3) and of 64 MB (DRAM).
"""
import numpy as np
import pytest

import dlkern
import dlkern.functional as F
import dlkern.reference as R
from dlkern.benchmarks.ceilings import copy_benchmark
from dlkern.testing import assert_close, record_rate, torch_or_none

SHAPE = (32, 64, 32, 32)
DTYPE = np.float32
N = int(np.prod(SHAPE))
IMPLS = ["dlkern", "reference", "torch"]

# name -> (kwargs, backward takes the forward output)
OPS = {
    "relu": ({}, False),
    "leaky_relu": ({"negative_slope": 0.01}, False),
    "prelu": ({}, False),
    "rrelu_eval": ({}, False),
    "elu": ({"alpha": 1.0}, False),
    "sigmoid": ({}, True),
    "tanh": ({}, True),
    "softplus": ({"beta": 1.0, "threshold": 20.0}, False),
}


def _data():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(SHAPE) * 3).astype(DTYPE)
    g = rng.standard_normal(SHAPE).astype(DTYPE)
    w = rng.uniform(0, 0.5, SHAPE[1]).astype(DTYPE)
    return x, g, w


def _numpy_fns(backend, name, w):
    """(forward(x), forward_backward(x, g)) for dlkern.functional or dlkern.reference."""
    kw, takes_output = OPS[name]
    if name == "prelu":
        return (lambda x: backend.prelu(x, w),
                lambda x, g: (backend.prelu(x, w), backend.prelu_backward(g, x, w)[0]))
    if name == "rrelu_eval":
        return (lambda x: backend.rrelu(x),
                lambda x, g: (backend.rrelu(x), backend.rrelu_backward(g, x)))
    fwd = getattr(backend, name)
    bwd = getattr(backend, name + "_backward")

    def fwd_bwd(x, g):
        y = fwd(x, **kw)
        return y, bwd(g, y if takes_output else x, **kw)

    return (lambda x: fwd(x, **kw)), fwd_bwd


def _torch_fns(torch, name, w):
    tf = torch.nn.functional
    tw = torch.from_numpy(w)
    f = {
        "relu": tf.relu, "leaky_relu": lambda t: tf.leaky_relu(t, 0.01),
        "prelu": lambda t: tf.prelu(t, tw), "rrelu_eval": lambda t: tf.rrelu(t, training=False),
        "elu": tf.elu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "softplus": tf.softplus,
    }[name]

    def fwd(x):
        with torch.no_grad():
            return f(torch.from_numpy(x)).numpy()

    def fwd_bwd(x, g):
        tx = torch.from_numpy(x).requires_grad_(True)
        y = f(tx)
        (gx,) = torch.autograd.grad(y, tx, torch.from_numpy(g))
        return y.detach().numpy(), gx.numpy()

    return fwd, fwd_bwd


def _impl(impl, name, w):
    if impl == "torch":
        torch = torch_or_none()
        if torch is None:
            pytest.skip("torch not installed")
        torch.set_num_threads(dlkern.get_num_threads())
        return _torch_fns(torch, name, w)
    return _numpy_fns(F if impl == "dlkern" else R, name, w)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", list(OPS))
def test_forward(benchmark, name, impl):
    x, g, w = _data()
    fwd, _ = _impl(impl, name, w)
    benchmark.group = f"{name} fwd {SHAPE} float32"
    y = benchmark(fwd, x)
    assert_close(y, _numpy_fns(R, name, w)[0](x))
    record_rate(benchmark, nbytes=8 * N)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", list(OPS))
def test_forward_backward(benchmark, name, impl):
    x, g, w = _data()
    _, fwd_bwd = _impl(impl, name, w)
    benchmark.group = f"{name} fwd+bwd {SHAPE} float32"
    y, gx = benchmark(fwd_bwd, x, g)
    y_ref, gx_ref = _numpy_fns(R, name, w)[1](x, g)
    assert_close(y, y_ref)
    assert_close(gx, gx_ref)
    record_rate(benchmark, nbytes=20 * N)


def _dropout_impl(impl):
    if impl != "torch":
        backend = F if impl == "dlkern" else R

        def fwd_bwd(x, g):
            y, mask = backend.dropout(x, 0.5, rng=0, return_mask=True)
            return y, backend.dropout_backward(g, mask, 0.5)

        return fwd_bwd
    torch = torch_or_none()
    if torch is None:
        pytest.skip("torch not installed")
    torch.set_num_threads(dlkern.get_num_threads())

    def torch_fwd_bwd(x, g):
        tx = torch.from_numpy(x).requires_grad_(True)
        y = torch.nn.functional.dropout(tx, 0.5)
        (gx,) = torch.autograd.grad(y, tx, torch.from_numpy(g))
        return y.detach().numpy(), gx.numpy()

    return torch_fwd_bwd


@pytest.mark.parametrize("impl", IMPLS)
def test_dropout_forward(benchmark, impl):
    x, g, _ = _data()
    fwd_bwd = _dropout_impl(impl)
    if impl == "torch":
        import torch

        def fwd(x):
            with torch.no_grad():
                return torch.nn.functional.dropout(torch.from_numpy(x), 0.5).numpy()
    else:
        backend = F if impl == "dlkern" else R

        def fwd(x):
            return backend.dropout(x, 0.5, rng=0)
    benchmark.group = f"dropout p=0.5 fwd {SHAPE} float32"
    y = benchmark(fwd, x)
    kept = y != 0
    assert abs(kept.mean() - 0.5) < 0.01
    np.testing.assert_allclose(y[kept], 2 * x[kept], rtol=1e-6)
    if impl == "dlkern":
        np.testing.assert_array_equal(y, R.dropout(x, 0.5, rng=0))
    record_rate(benchmark, nbytes=9 * N)


@pytest.mark.parametrize("impl", IMPLS)
def test_dropout_forward_backward(benchmark, impl):
    x, g, _ = _data()
    fwd_bwd = _dropout_impl(impl)
    benchmark.group = f"dropout p=0.5 fwd+bwd {SHAPE} float32"
    y, gx = benchmark(fwd_bwd, x, g)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 2 * x[kept], rtol=1e-6)
    np.testing.assert_allclose(gx[kept], 2 * g[kept], rtol=1e-6)
    assert np.all(gx[~kept] == 0)
    record_rate(benchmark, nbytes=19 * N)


@pytest.mark.parametrize("mbytes", [8, 64])
def test_memcpy_ceiling(benchmark, mbytes):
    """The best copy of mbytes (NumPy on one and on all threads, torch's copy_), from
    the shared helper `dlkern bench` uses."""
    benchmark.group = f"ceiling: memcpy {mbytes} MB"
    copy_benchmark(benchmark, 2 * mbytes * 2**20, dlkern.get_num_threads(), torch_or_none())
