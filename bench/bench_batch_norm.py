"""batch_norm: dlkern (C) vs the NumPy reference vs PyTorch, train forward, train
forward+backward and eval forward, with GB/s of the memory traffic a fused kernel
cannot avoid (forward: read x, write y; backward: read x and grad_out, write
grad_x). A memory copy moving the same bytes is timed in the same run as the
bandwidth ceiling (dlkern.benchmarks.ceilings.copy_benchmark)."""
import numpy as np
import pytest

import dlkern
import dlkern.functional as F
import dlkern.reference as R
from dlkern.benchmarks.ceilings import copy_benchmark
from dlkern.testing import assert_close, record_rate, torch_or_none

SHAPES = [(32, 64, 32, 32), (256, 512)]
DTYPES = [np.float32, np.float64]
IMPLS = ["dlkern", "reference", "torch"]


def _name(shape, dtype):
    return f"{shape} {np.dtype(dtype).name}".replace(" ", "")


def _inputs(shape, dtype):
    rng = np.random.default_rng(0)
    C = shape[1]
    x = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    w = rng.uniform(0.5, 1.5, C).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    rm = np.zeros(C, dtype)
    rv = np.ones(C, dtype)
    return x, g, w, b, rm, rv


def _torch(impl):
    if impl != "torch":
        return None
    torch = torch_or_none()
    if torch is None:
        pytest.skip("torch not installed")
    torch.set_num_threads(dlkern.get_num_threads())
    return torch


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_train_forward(benchmark, shape, dtype, impl):
    x, g, w, b, rm, rv = _inputs(shape, dtype)
    benchmark.group = f"batch_norm train fwd {_name(shape, dtype)}"
    torch = _torch(impl)
    if impl == "torch":
        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
        tm, tv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())

        def run():
            with torch.no_grad():
                return torch.nn.functional.batch_norm(tx, tm, tv, tw, tb, training=True).numpy()
    else:
        be = F if impl == "dlkern" else R
        m, v = rm.copy(), rv.copy()

        def run():
            return be.batch_norm(x, m, v, w, b, training=True)
    y = benchmark(run)
    assert_close(y, R.batch_norm(x, rm.copy(), rv.copy(), w, b, training=True), dtype=dtype)
    record_rate(benchmark, nbytes=2 * x.nbytes)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_train_forward_backward(benchmark, shape, dtype, impl):
    x, g, w, b, rm, rv = _inputs(shape, dtype)
    benchmark.group = f"batch_norm train fwd+bwd {_name(shape, dtype)}"
    torch = _torch(impl)
    if impl == "torch":
        tx = torch.from_numpy(x).requires_grad_()
        tw = torch.from_numpy(w).requires_grad_()
        tb = torch.from_numpy(b).requires_grad_()
        tm, tv, tg = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy()), torch.from_numpy(g)

        def run():
            y = torch.nn.functional.batch_norm(tx, tm, tv, tw, tb, training=True)
            return [t.numpy() for t in torch.autograd.grad(y, (tx, tw, tb), tg)]
    else:
        be = F if impl == "dlkern" else R
        m, v = rm.copy(), rv.copy()

        def run():
            be.batch_norm(x, m, v, w, b, training=True)
            return be.batch_norm_backward(g, x, w, training=True)
    grads = benchmark(run)
    for a, r in zip(grads, R.batch_norm_backward(g, x, w, training=True)):
        assert_close(a, r, dtype=dtype)
    record_rate(benchmark, nbytes=5 * x.nbytes)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_eval_forward(benchmark, shape, dtype, impl):
    x, g, w, b, rm, rv = _inputs(shape, dtype)
    rm = rm + 0.25
    benchmark.group = f"batch_norm eval fwd {_name(shape, dtype)}"
    torch = _torch(impl)
    if impl == "torch":
        tx, tw, tb, tm, tv = (torch.from_numpy(a) for a in (x, w, b, rm, rv))

        def run():
            with torch.no_grad():
                return torch.nn.functional.batch_norm(tx, tm, tv, tw, tb).numpy()
    else:
        be = F if impl == "dlkern" else R

        def run():
            return be.batch_norm(x, rm, rv, w, b)
    y = benchmark(run)
    assert_close(y, R.batch_norm(x, rm, rv, w, b), dtype=dtype)
    record_rate(benchmark, nbytes=2 * x.nbytes)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_copy_ceiling(benchmark, shape, dtype):
    """Bandwidth ceiling for the groups above: the best copy moving the bytes of a
    forward (x read, y written), from the shared helper `dlkern bench` uses."""
    nbytes = 2 * _inputs(shape, dtype)[0].nbytes
    benchmark.group = f"ceiling: copy {_name(shape, dtype)}"
    copy_benchmark(benchmark, nbytes, dlkern.get_num_threads(), torch_or_none())
