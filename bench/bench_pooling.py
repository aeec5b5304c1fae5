"""Pooling: dlkern's C kernels vs the NumPy reference vs PyTorch (when installed).

Memory-bound kernels, so the rate is GB/s of bytes read and written (input read
once, output written once; forward+backward also reads grad_out (and the saved
indices) and writes grad_x). Read them against a memory copy's bandwidth.
"""
import numpy as np
import pytest

import dlkern
import dlkern.functional as F
import dlkern.reference as R
from dlkern.testing import assert_close, record_rate, torch_or_none

torch = torch_or_none()
IMPLS = ["dlkern", "reference"] + (["torch"] if torch is not None else [])

# (name, shape, kwargs)
CASES = [
    ("max_pool2d", (32, 64, 32, 32), dict(kernel_size=2, stride=2)),
    ("max_pool2d", (32, 64, 32, 32), dict(kernel_size=3, stride=2, padding=1)),
    ("avg_pool2d", (32, 64, 32, 32), dict(kernel_size=2, stride=2)),
    ("avg_pool2d", (32, 64, 32, 32), dict(kernel_size=3, stride=2, padding=1)),
    ("adaptive_avg_pool2d", (32, 512, 7, 7), dict(output_size=1)),
]


def _label(name, shape, kw):
    n, c, h, w = shape
    if name == "adaptive_avg_pool2d":
        geo = f"out {kw['output_size']}"
    else:
        geo = f"k{kw['kernel_size']} s{kw['stride']} p{kw.get('padding', 0)}"
    return f"{name} N{n} C{c} {h}x{w} {geo}"


def _dlkern_step(mod, name, x, kw, backward, g):
    fwd = getattr(mod, name)
    bwd = getattr(mod, name + "_backward")
    if not backward:
        return lambda: fwd(x, **kw)
    if name == "max_pool2d":
        def step():
            out, ind = fwd(x, **kw, return_indices=True)
            return out, bwd(g, x, **kw, indices=ind)
        return step
    return lambda: (fwd(x, **kw), bwd(g, x, **kw))


def _torch_step(name, x, kw, backward, g):
    fwd = getattr(torch.nn.functional, name)
    xt = torch.from_numpy(x)
    gt = torch.from_numpy(g)
    if not backward:
        def step():
            with torch.no_grad():
                return fwd(xt, **kw).numpy()
        return step

    def step():
        xg = xt.detach().requires_grad_()
        out = fwd(xg, **kw)
        out.backward(gt)
        return out.detach().numpy(), xg.grad.numpy()
    return step


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: _label(*c))
def test_pooling(benchmark, case, backward, impl):
    name, shape, kw = case
    dtype = np.float32
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    ref_out = getattr(R, name)(x, **kw)
    g = rng.standard_normal(ref_out.shape).astype(dtype)
    ref_gx = getattr(R, name + "_backward")(g, x, **kw) if backward else None
    benchmark.group = f"{_label(name, shape, kw)} {'fwd+bwd' if backward else 'fwd'} float32"
    if impl == "torch":
        torch.set_num_threads(dlkern.get_num_threads())
        step = _torch_step(name, x, kw, backward, g)
    else:
        step = _dlkern_step(F if impl == "dlkern" else R, name, x, kw, backward, g)
    result = benchmark(step)
    if backward:
        out, gx = result
        assert_close(gx, ref_gx, dtype=dtype)
    else:
        out = result
    assert_close(out, ref_out, dtype=dtype)
    nbytes = x.nbytes + ref_out.nbytes
    if backward:
        nbytes += ref_out.nbytes + x.nbytes  # read grad_out, write grad_x
        if name == "max_pool2d" and impl != "reference":
            nbytes += 2 * ref_out.size * 8  # indices written then read
    record_rate(benchmark, nbytes=nbytes)


def test_memory_copy_ceiling(benchmark):
    """The bandwidth ceiling the pooling GB/s read against: a large copy (read + write)."""
    src = np.random.default_rng(0).standard_normal(8 * 2**20 // 4).astype(np.float32)
    dst = np.empty_like(src)
    benchmark.group = "ceiling: memory copy 8 MB float32"
    benchmark(np.copyto, dst, src)
    np.testing.assert_array_equal(dst, src)
    record_rate(benchmark, nbytes=2 * src.nbytes)
