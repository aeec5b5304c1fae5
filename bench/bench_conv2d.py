"""conv2d: direct, im2col and auto against the NumPy reference and PyTorch.

One group per shape and pass ("fwd" or "fwd+bwd"); GFLOP/s in extra_info count
2*N*OC*OH*OW*(C/groups)*kH*kW per forward and three times that for forward plus
backward (grad_x and grad_weight each cost one forward); the GEMM-bound shapes also
time grad_x and grad_weight alone (output_mask; torch's convolution_backward with
the same mask), one forward's FLOPs each. Every benchmarked result
is checked against the reference. With --benchmark-disable (the ordinary test run)
the batch is cut to 2 so the smoke test stays fast.
"""
import functools

import numpy as np
import pytest

import dlkern
import dlkern.functional as F
import dlkern.reference as R
from dlkern.testing import assert_close, record_rate, torch_or_none

# name, (N, C, H, W), (OC, kH, kW), stride, padding, groups
SHAPES = [
    ("lenet1", (64, 1, 28, 28), (6, 5, 5), 1, 0, 1),
    ("cifar1", (32, 3, 32, 32), (32, 3, 3), 1, 1, 1),
    ("resnet3x3", (16, 64, 32, 32), (64, 3, 3), 1, 1, 1),
    ("strided3x3", (16, 64, 32, 32), (128, 3, 3), 2, 1, 1),
    ("pointwise1x1", (16, 128, 16, 16), (256, 1, 1), 1, 0, 1),
    ("depthwise3x3", (16, 64, 32, 32), (64, 3, 3), 1, 1, 64),
]
IMPLS = ["direct", "im2col", "auto", "reference", "torch"]
DTYPE = np.float32


@functools.lru_cache(maxsize=None)
def _group(what, spec, n):
    """The pytest-benchmark group of one SHAPES entry at batch n."""
    shape, xs, (oc, kh, kw), stride, padding, groups = spec
    return (f"conv2d {what} {shape} N{n} {xs[1]}->{oc} {xs[2]}x{xs[3]} k{kh}x{kw} "
            f"s{stride} p{padding} g{groups} float32")


def _case(name, n):
    _, xs, (oc, kh, kw), stride, padding, groups = next(s for s in SHAPES if s[0] == name)
    xs = (n,) + xs[1:]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(DTYPE)
    w = (rng.standard_normal((oc, xs[1] // groups, kh, kw)) / np.sqrt(xs[1] // groups * kh * kw)).astype(DTYPE)
    b = rng.standard_normal(oc).astype(DTYPE)
    kw_args = dict(stride=stride, padding=padding, groups=groups)
    y = R.conv2d(x, w, b, **kw_args)
    gy = rng.standard_normal(y.shape).astype(DTYPE)
    grads = R.conv2d_backward(gy, x, w, **kw_args)
    flops = 2.0 * y.size * (xs[1] // groups) * kh * kw
    return x, w, b, gy, kw_args, (y,) + tuple(grads), flops


def _runner(impl, x, w, b, gy, kw_args, backward):
    if impl == "torch":
        torch = torch_or_none()
        if torch is None:
            pytest.skip("torch not installed")
        torch.set_num_threads(dlkern.get_num_threads())
        tf = torch.nn.functional
        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
        tgy = torch.from_numpy(gy)
        if not backward:
            def run():
                with torch.no_grad():
                    return (tf.conv2d(tx, tw, tb, **kw_args).numpy(),)
        else:
            tx.requires_grad_(True), tw.requires_grad_(True), tb.requires_grad_(True)

            def run():
                y = tf.conv2d(tx, tw, tb, **kw_args)
                grads = torch.autograd.grad(y, (tx, tw, tb), tgy)
                return (y.detach().numpy(),) + tuple(g.numpy() for g in grads)
        return run
    mod, algo = (R, "auto") if impl == "reference" else (F, impl)

    def run():
        y = mod.conv2d(x, w, b, algo=algo, **kw_args)
        if not backward:
            return (y,)
        return (y,) + tuple(mod.conv2d_backward(gy, x, w, algo=algo, **kw_args))
    return run


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwdbwd"])
@pytest.mark.parametrize("shape", [s[0] for s in SHAPES])
def test_conv2d(benchmark, shape, backward, impl):
    spec = next(s for s in SHAPES if s[0] == shape)
    n = 2 if benchmark.disabled else spec[1][0]
    x, w, b, gy, kw_args, expected, flops = _case(shape, n)
    benchmark.group = _group("fwd+bwd" if backward else "fwd", spec, n)
    run = _runner(impl, x, w, b, gy, kw_args, backward)
    if not benchmark.disabled:
        run()  # warm-up (allocations, BLAS and OpenMP pools, torch's first-call setup)
    got = benchmark(run)
    for a, e in zip(got, expected if backward else expected[:1]):
        assert_close(a, e, dtype=DTYPE)
    record_rate(benchmark, flops=flops * (3 if backward else 1))


def _part_runner(impl, x, w, gy, kw_args, part):
    """One gradient alone (output_mask), so that a backward's two GEMM-sized
    halves are timed apart: "grad_x" or "grad_weight" (with grad_bias, which
    the kernels compute in the same pass)."""
    mask = (part == "grad_x", part == "grad_weight", part == "grad_weight")
    if impl == "torch":
        torch = torch_or_none()
        if torch is None:
            pytest.skip("torch not installed")
        torch.set_num_threads(dlkern.get_num_threads())
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        tgy = torch.from_numpy(gy)

        def run():
            grads = torch.ops.aten.convolution_backward(
                tgy, tx, tw, [w.shape[0]], [kw_args["stride"]] * 2, [kw_args["padding"]] * 2,
                [1, 1], False, [0, 0], kw_args["groups"], list(mask))
            return tuple(None if g is None else g.numpy() for g in grads)
        return run
    mod, algo = (R, "auto") if impl == "reference" else (F, impl)
    return lambda: mod.conv2d_backward(gy, x, w, algo=algo, output_mask=mask, **kw_args)


@pytest.mark.parametrize("impl", ["im2col", "reference", "torch"])
@pytest.mark.parametrize("part", ["grad_x", "grad_weight"])
@pytest.mark.parametrize("shape", ["resnet3x3", "strided3x3", "pointwise1x1"])
def test_conv2d_backward_part(benchmark, shape, part, impl):
    spec = next(s for s in SHAPES if s[0] == shape)
    n = 2 if benchmark.disabled else spec[1][0]
    x, w, b, gy, kw_args, expected, flops = _case(shape, n)
    benchmark.group = _group(part, spec, n)
    run = _part_runner(impl, x, w, gy, kw_args, part)
    if not benchmark.disabled:
        run()
    got = benchmark(run)
    index = 0 if part == "grad_x" else 1
    assert_close(got[index], expected[1 + index], dtype=DTYPE)
    record_rate(benchmark, flops=flops)
