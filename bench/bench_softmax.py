"""softmax, log_softmax and cross-entropy: dlkern (C) vs the NumPy reference vs PyTorch.

One group per kernel, pass and shape; every benchmarked result is asserted against the
reference. GB/s counts the bytes a single pass must move: forward reads x and writes y;
the backward of (log_)softmax reads grad_out and y and writes grad_in; cross-entropy's
forward reads the logits (and targets), its backward reads them again and writes the
gradient. Two copy groups give the bandwidth ceilings (cache-resident and DRAM).
torch's softmax backward is timed at the kernel level (aten._softmax_backward_data, which
also takes the forward output); its cross-entropy backward goes through autograd (there is
no fused kernel to call)."""
import numpy as np
import pytest

import dlkern
import dlkern.functional as F
import dlkern.reference as R
from dlkern.benchmarks.ceilings import copy_benchmark
from dlkern.testing import assert_close, record_rate, torch_or_none

SHAPES = [(256, 1000), (4096, 10)]
IMPLS = ["dlkern", "reference", "torch"]


def _torch(impl):
    if impl != "torch":
        return None
    torch = torch_or_none()
    if torch is None:
        pytest.skip("torch not installed")
    torch.set_num_threads(dlkern.get_num_threads())
    return torch


def _data(shape, dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    t = rng.integers(0, shape[1], shape[0])
    return x, g, t


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax(benchmark, dtype, shape, name, pass_, impl):
    torch = _torch(impl)
    x, g, _ = _data(shape, dtype)
    benchmark.group = f"{name} {pass_} {shape} {np.dtype(dtype).name}"
    want = getattr(R, name)(x)
    want_grad = getattr(R, name + "_backward")(g, want)
    if impl == "torch":
        tx, tg = torch.from_numpy(x), torch.from_numpy(g)
        fwd = getattr(torch, name)
        bwd = getattr(torch.ops.aten, f"_{name}_backward_data")
        run = ((lambda: fwd(tx, -1).numpy()) if pass_ == "fwd" else
               (lambda: bwd(tg, fwd(tx, -1), -1, tx.dtype).numpy()))
    else:
        B = F if impl == "dlkern" else R
        f, b = getattr(B, name), getattr(B, name + "_backward")
        run = (lambda: f(x)) if pass_ == "fwd" else (lambda: b(g, f(x)))
    out = benchmark(run)
    assert_close(out, want if pass_ == "fwd" else want_grad, dtype=dtype)
    record_rate(benchmark, nbytes=x.nbytes * (2 if pass_ == "fwd" else 5))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy(benchmark, dtype, shape, pass_, impl):
    torch = _torch(impl)
    x, _, t = _data(shape, dtype)
    benchmark.group = f"cross_entropy {pass_} {shape} {np.dtype(dtype).name}"
    want = R.cross_entropy(x, t)
    want_grad = R.cross_entropy_backward(1.0, x, t)
    if impl == "torch":
        tt = torch.from_numpy(t)

        def run():
            tx = torch.from_numpy(x)
            if pass_ == "fwd":
                return torch.nn.functional.cross_entropy(tx, tt).numpy()
            tx.requires_grad_()
            torch.nn.functional.cross_entropy(tx, tt).backward()
            return tx.grad.numpy()
    else:
        B = F if impl == "dlkern" else R

        def run():
            loss = B.cross_entropy(x, t)
            if pass_ == "fwd":
                return loss
            return B.cross_entropy_backward(1.0, x, t)
    out = benchmark(run)
    assert_close(out, want if pass_ == "fwd" else want_grad, dtype=dtype)
    record_rate(benchmark, nbytes=x.nbytes * (1 if pass_ == "fwd" else 3) + t.nbytes)


@pytest.mark.parametrize("n", [256 * 1000, 16 * 1024 * 1024], ids=["1MB", "64MB"])
def test_copy_ceiling(benchmark, n):
    """Memory-copy bandwidth (read + write) moving the bytes of a (256, 1000) float32
    forward (cache-resident) and of a 64 MB array (DRAM), from the shared helper
    `dlkern bench` uses."""
    benchmark.group = f"ceiling: copy {4 * n // 1024} KiB float32"
    copy_benchmark(benchmark, 2 * 4 * n, dlkern.get_num_threads(), torch_or_none())
