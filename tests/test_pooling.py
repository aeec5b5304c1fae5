"""Pooling: C kernels vs the NumPy reference vs PyTorch, forward and backward."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dlkern.functional as F
import dlkern.reference as R
from dlkern.testing import (assert_close, assert_same_bits_on_one_and_two_threads,
                            numerical_gradient)

DTYPES = [np.float32, np.float64]
BACKENDS = [F, R]

# (x shape, kwargs): non-square kernels, stride > and < kernel (overlap), padding,
# dilation, ceil_mode where it adds a window and where its last window is dropped,
# a 1x1 input, batch 1
MAX_CASES = [
    ((2, 3, 8, 8), dict(kernel_size=2)),
    ((2, 3, 9, 11), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 2, 7, 10), dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1))),
    ((2, 2, 10, 9), dict(kernel_size=(3, 2), stride=(4, 3))),                 # stride > kernel
    ((1, 3, 9, 9), dict(kernel_size=3, stride=1, padding=1)),                 # heavy overlap
    ((2, 2, 11, 13), dict(kernel_size=3, stride=2, dilation=2, padding=1)),
    ((2, 2, 10, 12), dict(kernel_size=(2, 3), dilation=(3, 2), stride=(2, 1))),
    ((2, 2, 8, 8), dict(kernel_size=3, stride=2, ceil_mode=True)),
    ((1, 2, 6, 6), dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)),  # last dropped
    ((2, 1, 5, 7), dict(kernel_size=2, stride=3, padding=1, ceil_mode=True)),
    ((1, 1, 1, 1), dict(kernel_size=1)),
    ((1, 1, 1, 1), dict(kernel_size=2, padding=1)),
    ((1, 2, 40, 37), dict(kernel_size=(3, 5), stride=(2, 3), padding=(1, 2))),
]
AVG_CASES = [
    ((2, 3, 8, 8), dict(kernel_size=2)),
    ((2, 3, 9, 11), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 2, 7, 10), dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1))),
    ((2, 2, 10, 9), dict(kernel_size=(3, 2), stride=(4, 3))),
    ((1, 3, 9, 9), dict(kernel_size=3, stride=1, padding=1)),
    ((2, 2, 8, 8), dict(kernel_size=3, stride=2, ceil_mode=True)),
    ((1, 2, 6, 6), dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)),
    ((2, 1, 5, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((2, 1, 5, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                        count_include_pad=False)),
    ((2, 2, 7, 9), dict(kernel_size=(3, 2), stride=2, padding=1, count_include_pad=False)),
    ((2, 2, 7, 9), dict(kernel_size=3, stride=2, padding=1, divisor_override=5)),
    ((1, 1, 1, 1), dict(kernel_size=1)),
    ((1, 1, 1, 1), dict(kernel_size=2, padding=1, count_include_pad=False)),
    ((1, 2, 40, 37), dict(kernel_size=(3, 5), stride=(2, 3), padding=(1, 2))),
]
ADAPTIVE_CASES = [
    ((2, 3, 7, 7), 1),
    ((2, 3, 8, 8), 2),
    ((2, 3, 10, 7), (3, 4)),        # overlapping windows (sizes do not divide)
    ((1, 2, 5, 9), (None, 4)),
    ((1, 2, 3, 3), (5, 6)),         # output larger than input
    ((1, 1, 1, 1), 1),
    ((2, 1, 6, 5), (6, None)),
]


def _ids(case):
    shape, kw = case
    return "x".join(map(str, shape)) + "-" + ",".join(f"{k}={v}" for k, v in kw.items())


def _rand(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _ties(shape, dtype, seed=0):
    """Few distinct values, so windows hold repeated maxima."""
    return np.random.default_rng(seed).integers(-2, 3, size=shape).astype(dtype)


def _torch_pool(name, x, g=None, **kw):
    """torch's forward (and x.grad for grad_out g) through F.<name> autograd."""
    torch = pytest.importorskip("torch")
    fn = getattr(torch.nn.functional, name)
    xt = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(g is not None)
    out = fn(xt, **kw)
    if g is None:
        return out if isinstance(out, tuple) else out.detach().numpy()
    out.backward(torch.from_numpy(g))
    return out.detach().numpy(), xt.grad.numpy()


# ---------------------------------------------------------------- C vs reference

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MAX_CASES, ids=_ids)
def test_max_pool2d_matches_reference(case, dtype):
    shape, kw = case
    for x in (_rand(shape, dtype), _ties(shape, dtype)):
        out, ind = F.max_pool2d(x, **kw, return_indices=True)
        rout, rind = R.max_pool2d(x, **kw, return_indices=True)
        assert out.dtype == dtype and ind.dtype == np.int64
        np.testing.assert_array_equal(out, rout)
        np.testing.assert_array_equal(ind, rind)
        np.testing.assert_array_equal(F.max_pool2d(x, **kw), out)
        g = _rand(out.shape, dtype, seed=1)
        want = R.max_pool2d_backward(g, x, **kw)
        assert_close(F.max_pool2d_backward(g, x, **kw), want)
        assert_close(F.max_pool2d_backward(g, x, **kw, indices=ind), want)
        assert_close(R.max_pool2d_backward(g, x, **kw, indices=ind), want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", AVG_CASES, ids=_ids)
def test_avg_pool2d_matches_reference(case, dtype):
    shape, kw = case
    x = _rand(shape, dtype)
    out = F.avg_pool2d(x, **kw)
    assert out.dtype == dtype
    assert_close(out, R.avg_pool2d(x, **kw))
    g = _rand(out.shape, dtype, seed=1)
    gx = F.avg_pool2d_backward(g, x, **kw)
    assert gx.dtype == dtype
    assert_close(gx, R.avg_pool2d_backward(g, x, **kw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,output_size", ADAPTIVE_CASES)
def test_adaptive_avg_pool2d_matches_reference(shape, output_size, dtype):
    x = _rand(shape, dtype)
    out = F.adaptive_avg_pool2d(x, output_size)
    assert out.dtype == dtype
    assert_close(out, R.adaptive_avg_pool2d(x, output_size))
    g = _rand(out.shape, dtype, seed=1)
    assert_close(F.adaptive_avg_pool2d_backward(g, x, output_size),
                 R.adaptive_avg_pool2d_backward(g, x, output_size))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 19), w=st.integers(1, 19),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 4), sw=st.integers(1, 4),
       ph=st.integers(0, 2), pw=st.integers(0, 2), dh=st.integers(1, 3), dw=st.integers(1, 3),
       ceil_mode=st.booleans(), cip=st.booleans(), seed=st.integers(0, 2**16),
       dtype=st.sampled_from(DTYPES))
def test_hypothesis_configurations(n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode,
                                   cip, seed, dtype):
    ph, pw = min(ph, kh // 2), min(pw, kw // 2)
    x = _ties((n, c, h, w), dtype, seed) if seed % 2 else _rand((n, c, h, w), dtype, seed)
    common = dict(kernel_size=(kh, kw), stride=(sh, sw), padding=(ph, pw), ceil_mode=ceil_mode)
    try:
        out, ind = F.max_pool2d(x, **common, dilation=(dh, dw), return_indices=True)
    except ValueError as e:
        assert "output would be empty" in str(e)
    else:
        rout, rind = R.max_pool2d(x, **common, dilation=(dh, dw), return_indices=True)
        np.testing.assert_array_equal(out, rout)
        np.testing.assert_array_equal(ind, rind)
        g = _rand(out.shape, dtype, seed + 1)
        assert_close(F.max_pool2d_backward(g, x, **common, dilation=(dh, dw)),
                     R.max_pool2d_backward(g, x, **common, dilation=(dh, dw)))
    try:
        out = F.avg_pool2d(x, **common, count_include_pad=cip)
    except ValueError as e:
        assert "output would be empty" in str(e)
    else:
        assert_close(out, R.avg_pool2d(x, **common, count_include_pad=cip))
        g = _rand(out.shape, dtype, seed + 1)
        assert_close(F.avg_pool2d_backward(g, x, **common, count_include_pad=cip),
                     R.avg_pool2d_backward(g, x, **common, count_include_pad=cip))
    oh, ow = 1 + seed % 7, 1 + (seed // 7) % 7
    assert_close(F.adaptive_avg_pool2d(x, (oh, ow)), R.adaptive_avg_pool2d(x, (oh, ow)))
    g = _rand((n, c, oh, ow), dtype, seed + 2)
    assert_close(F.adaptive_avg_pool2d_backward(g, x, (oh, ow)),
                 R.adaptive_avg_pool2d_backward(g, x, (oh, ow)))


# ---------------------------------------------------------------- PyTorch oracle

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MAX_CASES, ids=_ids)
@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "reference"])
def test_max_pool2d_matches_torch(backend, case, dtype):
    shape, kw = case
    for x in (_rand(shape, dtype), _ties(shape, dtype)):
        tout, tind = _torch_pool("max_pool2d", x, **kw, return_indices=True)
        out, ind = backend.max_pool2d(x, **kw, return_indices=True)
        np.testing.assert_array_equal(out, tout.detach().numpy())
        np.testing.assert_array_equal(ind, tind.numpy())
        g = _rand(out.shape, dtype, seed=1)
        _, tgx = _torch_pool("max_pool2d", x, g, **kw)
        assert_close(backend.max_pool2d_backward(g, x, **kw), tgx)
        assert_close(backend.max_pool2d_backward(g, x, **kw, indices=ind), tgx)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", AVG_CASES, ids=_ids)
@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "reference"])
def test_avg_pool2d_matches_torch(backend, case, dtype):
    shape, kw = case
    x = _rand(shape, dtype)
    g = _rand(backend.avg_pool2d(x, **kw).shape, dtype, seed=1)
    tout, tgx = _torch_pool("avg_pool2d", x, g, **kw)
    assert_close(backend.avg_pool2d(x, **kw), tout)
    assert_close(backend.avg_pool2d_backward(g, x, **kw), tgx)


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("cip", [True, False])
@pytest.mark.parametrize("size,k,s,p", [(5, 3, 2, 1), (6, 2, 2, 1), (7, 3, 3, 1), (4, 3, 2, 0),
                                        (8, 4, 3, 2), (1, 2, 2, 1)])
def test_avg_pool2d_ceil_mode_count_include_pad_corner(backend, cip, size, k, s, p):
    """ceil_mode windows reaching past the right padding: PyTorch counts the padded
    cells inside [-p, H + p) but not the cells only ceil_mode added."""
    x = _rand((1, 2, size, size + 1), np.float64)
    kw = dict(kernel_size=k, stride=s, padding=p, ceil_mode=True, count_include_pad=cip)
    g = _rand(backend.avg_pool2d(x, **kw).shape, np.float64, seed=1)
    tout, tgx = _torch_pool("avg_pool2d", x, g, **kw)
    assert_close(backend.avg_pool2d(x, **kw), tout)
    assert_close(backend.avg_pool2d_backward(g, x, **kw), tgx)


def test_avg_pool2d_ceil_mode_divisor_by_hand():
    """The same corner without torch: 5 wide, k3 s2 p1 ceil: windows [-1,2), [1,4),
    [3,6) with the last clipped to H + p = 6, so divisors 3, 3, 3 (row), none 2."""
    x = np.ones((1, 1, 1, 5))
    for mod in BACKENDS:
        out = mod.avg_pool2d(x, kernel_size=(1, 3), stride=(1, 2), padding=(0, 1),
                             ceil_mode=True)
        np.testing.assert_allclose(out[0, 0, 0], [2 / 3, 1.0, 2 / 3])
        out = mod.avg_pool2d(np.ones((1, 1, 1, 4)), kernel_size=(1, 3), stride=(1, 2),
                             padding=(0, 1), ceil_mode=True)
        # windows [-1,2), [1,4), [3,5->clipped to 5): divisors 3, 3, 2 (cell 5 not counted)
        np.testing.assert_allclose(out[0, 0, 0], [2 / 3, 1.0, 1 / 2])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,output_size", ADAPTIVE_CASES)
@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "reference"])
def test_adaptive_avg_pool2d_matches_torch(backend, shape, output_size, dtype):
    x = _rand(shape, dtype)
    g = _rand(backend.adaptive_avg_pool2d(x, output_size).shape, dtype, seed=1)
    tout, tgx = _torch_pool("adaptive_avg_pool2d", x, g, output_size=output_size)
    assert_close(backend.adaptive_avg_pool2d(x, output_size), tout)
    assert_close(backend.adaptive_avg_pool2d_backward(g, x, output_size), tgx)


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_nan_and_inf_like_torch(backend, dtype):
    x = _rand((2, 2, 9, 9), dtype)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 1, 2] = np.nan                  # two NaNs in a window: the last one wins
    x[0, 1, 4:7, 4:7] = -np.inf             # an all -inf window: first in-range cell
    x[1, 0, 0, :] = -np.inf
    x[1, 1, 3, 3] = np.inf
    for kw in (dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2),
               dict(kernel_size=3, stride=1, padding=1, ceil_mode=True),
               dict(kernel_size=(2, 3), stride=(2, 1), dilation=(1, 2))):
        tout, tind = _torch_pool("max_pool2d", x, **kw, return_indices=True)
        out, ind = backend.max_pool2d(x, **kw, return_indices=True)
        np.testing.assert_array_equal(out, tout.detach().numpy())  # NaN == NaN here
        np.testing.assert_array_equal(ind, tind.numpy())
        g = _rand(out.shape, dtype, seed=1)
        _, tgx = _torch_pool("max_pool2d", x, g, **kw)
        assert_close(backend.max_pool2d_backward(g, x, **kw), tgx)


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "reference"])
def test_max_pool2d_constant_input_and_window_in_padding_like_torch(backend):
    # constant input: every window ties, the first cell in row-major order wins
    x = np.full((1, 2, 6, 7), 0.5, np.float32)
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    tout, tind = _torch_pool("max_pool2d", x, **kw, return_indices=True)
    out, ind = backend.max_pool2d(x, **kw, return_indices=True)
    np.testing.assert_array_equal(out, tout.detach().numpy())
    np.testing.assert_array_equal(ind, tind.numpy())
    # dilation: a window with every tap in the padding is -inf, and PyTorch reports
    # an index outside the plane, which the backward ignores
    x = _rand((1, 1, 3, 3), np.float32)
    kw = dict(kernel_size=2, stride=1, padding=1, dilation=4)
    tout, tind = _torch_pool("max_pool2d", x, **kw, return_indices=True)
    out, ind = backend.max_pool2d(x, **kw, return_indices=True)
    np.testing.assert_array_equal(out, tout.detach().numpy())
    np.testing.assert_array_equal(ind, tind.numpy())
    assert ind.max() >= 9
    g = np.ones_like(out)
    np.testing.assert_array_equal(backend.max_pool2d_backward(g, x, **kw, indices=ind),
                                  np.zeros_like(x))


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "reference"])
def test_unbatched_input_like_torch(backend):
    x = _rand((3, 8, 9), np.float32)
    tout, tind = _torch_pool("max_pool2d", x, kernel_size=3, stride=2, return_indices=True)
    out, ind = backend.max_pool2d(x, 3, 2, return_indices=True)
    assert out.shape == (3, 3, 4) and ind.shape == (3, 3, 4)
    np.testing.assert_array_equal(out, tout.detach().numpy())
    np.testing.assert_array_equal(ind, tind.numpy())
    g = _rand(out.shape, np.float32, seed=1)
    assert backend.max_pool2d_backward(g, x, 3, 2, indices=ind).shape == x.shape
    _, tgx = _torch_pool("avg_pool2d", x, g, kernel_size=3, stride=2)
    assert_close(backend.avg_pool2d_backward(g, x, 3, 2), tgx)
    g = _rand((3, 2, 5), np.float32, seed=2)
    tout, tgx = _torch_pool("adaptive_avg_pool2d", x, g, output_size=(2, 5))
    assert_close(backend.adaptive_avg_pool2d(x, (2, 5)), tout)
    assert_close(backend.adaptive_avg_pool2d_backward(g, x, (2, 5)), tgx)


# ---------------------------------------------------------------- gradient checks

def _gradcheck(fwd, bwd, x, seed=3):
    """Centered differences of sum(fwd(x) * g) against bwd(g, x), float64."""
    g = _rand(fwd(x).shape, np.float64, seed)
    num = numerical_gradient(lambda: float(np.sum(fwd(x) * g)), x)
    assert_close(bwd(g, x), num, dtype=np.float64, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("kw", [dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
                                dict(kernel_size=(2, 3), stride=1, padding=(1, 1),
                                     count_include_pad=False),
                                dict(kernel_size=2, stride=1, divisor_override=3)])
def test_avg_pool2d_gradcheck(backend, kw):
    x = _rand((1, 2, 5, 6), np.float64)
    _gradcheck(lambda a: backend.avg_pool2d(a, **kw),
               lambda g, a: backend.avg_pool2d_backward(g, a, **kw), x)


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("kw", [dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=(2, 3), stride=1, dilation=(1, 2))])
def test_max_pool2d_gradcheck(backend, kw):
    # distinct values far apart (no ties within the finite-difference step)
    x = np.random.default_rng(5).permutation(60).astype(np.float64).reshape(1, 2, 5, 6)
    _gradcheck(lambda a: backend.max_pool2d(a, **kw),
               lambda g, a: backend.max_pool2d_backward(g, a, **kw), x)


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("output_size", [1, (2, 3), (4, 4)])
def test_adaptive_avg_pool2d_gradcheck(backend, output_size):
    x = _rand((1, 2, 5, 6), np.float64)
    _gradcheck(lambda a: backend.adaptive_avg_pool2d(a, output_size),
               lambda g, a: backend.adaptive_avg_pool2d_backward(g, a, output_size), x)


def test_overlapping_backward_accumulates():
    # stride 1, kernel 2 on a constant-gradient: the centre cell is in 4 windows
    x = np.zeros((1, 1, 3, 3))
    g = np.ones((1, 1, 2, 2))
    for mod in BACKENDS:
        gx = mod.avg_pool2d_backward(g, x, 2, 1)
        np.testing.assert_allclose(gx[0, 0], [[.25, .5, .25], [.5, 1, .5], [.25, .5, .25]])
        xm = np.zeros((1, 1, 3, 3))
        xm[0, 0, 1, 1] = 1.0
        np.testing.assert_allclose(mod.max_pool2d_backward(g, xm, 2, 1)[0, 0, 1, 1], 4.0)


# ---------------------------------------------------------------- layout and threads

@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_and_fortran_inputs(dtype):
    base = _rand((2, 3, 12, 14), dtype)
    views = [base[:, :, ::2, 1::2], np.asfortranarray(base), base.transpose(0, 1, 3, 2)]
    for x in views:
        xc = np.ascontiguousarray(x)
        kw = dict(kernel_size=3, stride=2, padding=1)
        np.testing.assert_array_equal(F.max_pool2d(x, **kw), F.max_pool2d(xc, **kw))
        out, ind = F.max_pool2d(x, **kw, return_indices=True)
        g = _rand(out.shape, dtype, 1)
        gf = np.asfortranarray(g)
        np.testing.assert_array_equal(
            F.max_pool2d_backward(gf, x, **kw, indices=np.asfortranarray(ind)),
            F.max_pool2d_backward(g, xc, **kw, indices=ind))
        np.testing.assert_array_equal(F.max_pool2d_backward(gf, x, **kw),
                                      F.max_pool2d_backward(g, xc, **kw))
        np.testing.assert_array_equal(F.avg_pool2d(x, **kw), F.avg_pool2d(xc, **kw))
        np.testing.assert_array_equal(F.avg_pool2d_backward(gf, x, **kw),
                                      F.avg_pool2d_backward(g, xc, **kw))
        np.testing.assert_array_equal(F.adaptive_avg_pool2d(x, (2, 3)),
                                      F.adaptive_avg_pool2d(xc, (2, 3)))
        assert_close(F.avg_pool2d(x, **kw), R.avg_pool2d(x, **kw))


def test_one_and_two_threads_bit_identical():
    x = _rand((3, 5, 17, 19), np.float32)
    kw = dict(kernel_size=3, stride=2, padding=1)
    g = _rand((3, 5, 9, 10), np.float32, 1)
    ga = _rand((3, 5, 3, 4), np.float32, 2)
    g1 = _rand((3, 5, 1, 1), np.float32, 3)

    def run():
        out, ind = F.max_pool2d(x, **kw, return_indices=True)
        return [out, ind, F.max_pool2d_backward(g, x, **kw),
                F.max_pool2d_backward(g, x, **kw, indices=ind),
                F.avg_pool2d(x, **kw), F.avg_pool2d_backward(g, x, **kw),
                F.adaptive_avg_pool2d(x, (3, 4)), F.adaptive_avg_pool2d_backward(ga, x, (3, 4)),
                F.adaptive_avg_pool2d(x, 1), F.adaptive_avg_pool2d_backward(g1, x, 1)]
    assert_same_bits_on_one_and_two_threads(run)


# ---------------------------------------------------------------- bad input

def _all_raise(exc, match, call):
    for mod in BACKENDS:
        with pytest.raises(exc, match=match):
            call(mod)


def test_rejects_bad_x():
    _all_raise(TypeError, "max_pool2d: x must be float32 or float64, got dtype int64",
               lambda m: m.max_pool2d(np.zeros((1, 1, 4, 4), np.int64), 2))
    _all_raise(TypeError, "avg_pool2d: x must be a NumPy array",
               lambda m: m.avg_pool2d([[1.0]], 2))
    _all_raise(ValueError, r"max_pool2d: x must be 3-D or 4-D .*got shape \(4, 4\)",
               lambda m: m.max_pool2d(np.zeros((4, 4)), 2))
    _all_raise(ValueError, r"adaptive_avg_pool2d: x must be 3-D or 4-D",
               lambda m: m.adaptive_avg_pool2d(np.zeros((1, 1, 1, 4, 4)), 2))
    _all_raise(ValueError, "non-empty", lambda m: m.avg_pool2d(np.zeros((1, 0, 4, 4)), 2))


def test_rejects_bad_window_arguments():
    x = np.zeros((1, 1, 5, 5), np.float32)
    _all_raise(ValueError, r"kernel_size must be >= 1", lambda m: m.max_pool2d(x, 0))
    _all_raise(ValueError, r"stride must be >= 1", lambda m: m.avg_pool2d(x, 2, (1, 0)))
    _all_raise(ValueError, r"dilation must be >= 1", lambda m: m.max_pool2d(x, 2, dilation=0))
    _all_raise(ValueError, r"padding must be >= 0", lambda m: m.max_pool2d(x, 2, padding=-1))
    _all_raise(ValueError, r"max_pool2d: padding must be at most half of kernel_size",
               lambda m: m.max_pool2d(x, 3, padding=2))
    _all_raise(ValueError, r"avg_pool2d: padding must be at most half of kernel_size",
               lambda m: m.avg_pool2d(x, (2, 4), padding=(1, 3)))
    _all_raise(ValueError, r"output would be empty: input 5x5 .* gives output 0x0",
               lambda m: m.max_pool2d(x, 6))
    _all_raise(ValueError, r"output would be empty",
               lambda m: m.max_pool2d(x, 3, dilation=3))
    _all_raise(TypeError, r"kernel_size must be an int", lambda m: m.max_pool2d(x, 2.0))
    _all_raise(ValueError, r"kernel_size must be an int or a sequence of 2",
               lambda m: m.max_pool2d(x, (2, 2, 2)))
    _all_raise(TypeError, r"ceil_mode must be a bool", lambda m: m.max_pool2d(x, 2, ceil_mode=1))
    _all_raise(ValueError, r"divisor_override must be >= 1",
               lambda m: m.avg_pool2d(x, 2, divisor_override=0))
    _all_raise(TypeError, r"count_include_pad must be a bool",
               lambda m: m.avg_pool2d(x, 2, count_include_pad=None))
    _all_raise(ValueError, r"output_size must be >= 1",
               lambda m: m.adaptive_avg_pool2d(x, (0, 2)))
    _all_raise(ValueError, r"output_size must be an int or a pair",
               lambda m: m.adaptive_avg_pool2d(x, (1, 2, 3)))


def test_rejects_bad_gradients_and_indices():
    x = np.zeros((2, 3, 6, 6), np.float32)
    g = np.zeros((2, 3, 3, 3), np.float32)
    ind = np.zeros((2, 3, 3, 3), np.int64)
    _all_raise(ValueError, r"max_pool2d_backward: grad_out must have shape \(2, 3, 3, 3\)",
               lambda m: m.max_pool2d_backward(g[:, :, :2], x, 2))
    _all_raise(TypeError, r"grad_out has dtype float64 but x has dtype float32",
               lambda m: m.avg_pool2d_backward(g.astype(np.float64), x, 2))
    _all_raise(ValueError, r"adaptive_avg_pool2d_backward: grad_out must have shape",
               lambda m: m.adaptive_avg_pool2d_backward(g, x, 2))
    _all_raise(TypeError, r"indices must be int64", lambda m: m.max_pool2d_backward(
        g, x, 2, indices=ind.astype(np.int32)))
    _all_raise(TypeError, r"indices must be a NumPy array", lambda m: m.max_pool2d_backward(
        g, x, 2, indices=ind.tolist()))
    _all_raise(ValueError, r"indices must have shape \(2, 3, 3, 3\)",
               lambda m: m.max_pool2d_backward(g, x, 2, indices=ind[:1]))


def test_reference_and_functional_export_the_same_names():
    from dlkern.functional import pooling as fp
    from dlkern.reference import pooling as rp
    assert fp.__all__ == rp.__all__
    for name in fp.__all__:
        assert getattr(F, name) is getattr(fp, name)
        assert getattr(R, name) is getattr(rp, name)


def test_all_geometries_small_grid_against_reference():
    """An exhaustive small grid (C vs reference, indices included) to catch any
    border/interior split error the named cases miss."""
    rng = np.random.default_rng(11)
    for h, w, k, s, p, d, cm in itertools.product([1, 4, 7], [3, 18], [(1, 3), (3, 2)],
                                                  [(1, 1), (2, 3)], [(0, 1), (1, 0)],
                                                  [(1, 1), (2, 1)], [False, True]):
        if p[0] > k[0] // 2 or p[1] > k[1] // 2:
            continue
        x = rng.integers(-3, 4, size=(1, 2, h, w)).astype(np.float32)
        kw = dict(kernel_size=k, stride=s, padding=p, ceil_mode=cm)
        try:
            out, ind = F.max_pool2d(x, **kw, dilation=d, return_indices=True)
        except ValueError:
            continue
        rout, rind = R.max_pool2d(x, **kw, dilation=d, return_indices=True)
        np.testing.assert_array_equal(out, rout)
        np.testing.assert_array_equal(ind, rind)
        assert_close(F.avg_pool2d(x, **kw), R.avg_pool2d(x, **kw))


# ---------------------------------------------------------------- vector paths
# The common geometries (3x3 and 2x2 windows, stride 2 or 1, dilation 1) run
# explicit-vector kernels over a plane padded on all sides: whole 16-column
# blocks, a padded tail (W = 1, 2, 3, 17, 33 -> ow not a multiple of the block),
# rows of whole blocks (W = 32, and W = 17 at stride 1 -> ow = 16: the argmax
# indices are formed in vectors there), bottom rows added by padding or ceil_mode,
# odd heights. Each window is folded
# in PyTorch's order and each backward cell accumulates in PyTorch's order, so
# these compare bit for bit (the backward for the stride-2 geometries too).
VECTOR_GEOMETRIES = [
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=2, stride=2),
    dict(kernel_size=2, stride=2, padding=1),
    dict(kernel_size=2, stride=2, ceil_mode=True),
    dict(kernel_size=3, stride=1, padding=1),
    dict(kernel_size=2, stride=1),
    dict(kernel_size=3, stride=(1, 2), padding=(0, 1)),   # row stride != column stride
    dict(kernel_size=3, stride=(3, 2), padding=1),
]
VECTOR_SHAPES = [(1, 2, 5, 1), (2, 1, 3, 2), (1, 2, 7, 3), (2, 3, 9, 17), (1, 2, 16, 33),
                 (1, 1, 1, 1), (1, 2, 6, 70), (1, 2, 6, 32), (2, 1, 5, 17)]


def _valid(shape, kw):
    try:
        R.max_pool2d(np.zeros(shape, np.float32), **kw)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", VECTOR_GEOMETRIES, ids=str)
def test_vector_paths_bit_identical_to_torch(kw, dtype):
    pytest.importorskip("torch")
    stride2 = kw["stride"] in (2, (1, 2), (3, 2))
    for shape in VECTOR_SHAPES:
        if not _valid(shape, kw):
            continue
        for x in (_rand(shape, dtype), _ties(shape, dtype)):
            g = _rand(F.max_pool2d(x, **kw).shape, dtype, seed=1)
            tout, tgx = _torch_pool("max_pool2d", x, g, **kw)
            tout2, tind = _torch_pool("max_pool2d", x, **kw, return_indices=True)
            np.testing.assert_array_equal(F.max_pool2d(x, **kw), tout)
            out, ind = F.max_pool2d(x, **kw, return_indices=True)
            np.testing.assert_array_equal(ind, tind.numpy())
            gx = F.max_pool2d_backward(g, x, **kw)
            if stride2:
                np.testing.assert_array_equal(gx, tgx)
            else:
                assert_close(gx, tgx)
            assert_close(F.max_pool2d_backward(g, x, **kw, indices=ind), tgx)
            for cip in (True, False):
                akw = dict(kw, count_include_pad=cip)
                tout, tgx = _torch_pool("avg_pool2d", x, g, **akw)
                np.testing.assert_array_equal(F.avg_pool2d(x, **akw), tout)
                gx = F.avg_pool2d_backward(g, x, **akw)
                if stride2:
                    np.testing.assert_array_equal(gx, tgx)
                else:
                    assert_close(gx, tgx)


@pytest.mark.parametrize("dtype", DTYPES)
def test_vector_paths_nan_inf_and_signed_zero_like_torch(dtype):
    """The value-only forward and the recomputing backward fold each window row
    separately: NaN (the last one wins), -inf windows (the first in-range cell
    takes the gradient) and +0/-0 ties (the first one wins) must still match."""
    pytest.importorskip("torch")
    x = _rand((2, 2, 9, 35), dtype)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 2, 2] = np.nan
    x[0, 0, 5, 20] = np.nan
    x[0, 1, :4, :5] = -np.inf                # windows at the top-left corner all -inf
    x[0, 1, 4:7, 20:27] = -np.inf
    x[1, 0] = 0.0
    x[1, 0, ::2, 1::3] = -0.0                # ties between +0 and -0
    x[1, 1] = -0.0
    x[1, 1, 1::2, ::2] = 0.0
    for kw in (dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2),
               dict(kernel_size=3, stride=1, padding=1), dict(kernel_size=2, stride=1),
               dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)):
        out = F.max_pool2d(x, **kw)
        g = _rand(out.shape, dtype, seed=1)
        tout, tgx = _torch_pool("max_pool2d", x, g, **kw)
        np.testing.assert_array_equal(out, tout)
        np.testing.assert_array_equal(np.signbit(out), np.signbit(tout))
        gx = F.max_pool2d_backward(g, x, **kw)
        if kw.get("stride", 2) == 2:
            np.testing.assert_array_equal(gx, tgx)
        else:
            assert_close(gx, tgx)
        avg = F.avg_pool2d(x, **kw)
        tavg = _torch_pool("avg_pool2d", x, **kw)
        np.testing.assert_array_equal(avg, tavg)
        np.testing.assert_array_equal(np.signbit(avg), np.signbit(tavg))


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=3, stride=1, padding=1)], ids=str)
def test_vector_paths_one_and_two_threads_bit_identical(kw):
    x = _rand((3, 7, 18, 37), np.float32)
    g = _rand(F.max_pool2d(x, **kw).shape, np.float32, 1)

    def run():
        return [F.max_pool2d(x, **kw), F.max_pool2d_backward(g, x, **kw),
                F.avg_pool2d(x, **kw), F.avg_pool2d_backward(g, x, **kw)]
    assert_same_bits_on_one_and_two_threads(run)


# ---------------------------------------------------------------- 3x3/2 p1 on even planes
# 3x3 windows, stride 2, padding 1 on planes of even H and a width of whole double
# vectors (with AVX-512 W % 32 == 0 for float32, W % 16 == 0 for float64; half that
# with AVX2, a quarter with SSE2: W = 4, 8, 24, 40 take this path only on the
# narrower vectors of a portable build's v3 and baseline levels) read x in place and
# write grad_x once from registers (src/max_pool2d_k3s2_impl.h,
# src/avg_pool2d_k3s2_impl.h). Shapes: one block
# (W = 32), several blocks (W = 64, 96: the odd cell at a block edge takes the next
# block's tap 0), the smallest height (H = 2: one output row, whose row 1 is the
# last), odd widths and ceil_mode falling back to the general path.
K3S2 = dict(kernel_size=3, stride=2, padding=1)
K3S2_SHAPES = [(2, 3, 32, 32), (1, 2, 2, 32), (1, 1, 4, 64), (2, 1, 6, 96), (1, 2, 10, 16),
               (1, 1, 8, 48), (2, 3, 4, 4), (1, 2, 4, 8), (2, 1, 6, 24), (1, 2, 6, 40)]


def _k3s2_specials(x):
    x = x.copy()
    x[..., 0, :5] = -np.inf                  # top-left windows of only -inf
    x[..., :3, :3] = -np.inf
    x[..., 1, 16:] = -np.inf                 # a -inf run across a block edge
    x[..., -2:, -3:] = -np.inf               # bottom-right corner window
    x.flat[7] = np.nan
    x.flat[40] = x.flat[41] = np.nan         # two NaN in one window: the last wins
    if x.shape[2] > 4:
        x[..., 3, 30:34] = -0.0              # +0/-0 ties
        x[..., 4, 31:33] = 0.0
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", K3S2_SHAPES, ids=str)
def test_k3s2_even_planes_bit_identical_to_torch(shape, dtype):
    pytest.importorskip("torch")
    for x in (_rand(shape, dtype), _ties(shape, dtype), _k3s2_specials(_rand(shape, dtype))):
        g = _rand(F.max_pool2d(x, **K3S2).shape, dtype, seed=1)
        g.flat[::5] = -0.0                   # a lone -0.0 share lands as +0.0
        tout, tgx = _torch_pool("max_pool2d", x, g, **K3S2)
        _, tind = _torch_pool("max_pool2d", x, **K3S2, return_indices=True)
        out = F.max_pool2d(x, **K3S2)
        np.testing.assert_array_equal(out, tout)
        np.testing.assert_array_equal(np.signbit(out), np.signbit(tout))
        out, ind = F.max_pool2d(x, **K3S2, return_indices=True)
        np.testing.assert_array_equal(out, tout)
        np.testing.assert_array_equal(ind, tind.numpy())
        gx = F.max_pool2d_backward(g, x, **K3S2)
        np.testing.assert_array_equal(gx, tgx)
        np.testing.assert_array_equal(np.signbit(gx), np.signbit(tgx))
        np.testing.assert_array_equal(F.max_pool2d_backward(g, x, **K3S2, indices=ind), tgx)


# avg_pool2d on the same planes: each window summed whole in PyTorch's order (no
# row sums reused), each grad_x cell built from its up to four shares in PyTorch's
# order and written once (src/avg_pool2d_k3s2_impl.h). The divisor differs on row 0
# and column 0 without count_include_pad, and is constant with divisor_override.
AVG_K3S2_KW = [dict(), dict(count_include_pad=False), dict(divisor_override=5),
               dict(divisor_override=7, count_include_pad=False)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", K3S2_SHAPES, ids=str)
def test_k3s2_avg_even_planes_bit_identical_to_torch(shape, dtype):
    pytest.importorskip("torch")
    for x in (_rand(shape, dtype), _ties(shape, dtype), _k3s2_specials(_rand(shape, dtype))):
        x = x.copy()
        x.flat[3::11] = -0.0                 # -0.0 inputs: a window of them sums to +0
        for extra in AVG_K3S2_KW:
            kw = dict(K3S2, **extra)
            g = _rand(F.avg_pool2d(x, **kw).shape, dtype, seed=1)
            g.flat[::5] = -0.0               # a lone -0.0 share lands as +0.0
            g.flat[7::13] = np.inf           # inf and NaN shares travel like torch's
            g.flat[9::17] = np.nan
            tout, tgx = _torch_pool("avg_pool2d", x, g, **kw)
            out = F.avg_pool2d(x, **kw)
            np.testing.assert_array_equal(out, tout)
            np.testing.assert_array_equal(np.signbit(out), np.signbit(tout))
            gx = F.avg_pool2d_backward(g, x, **kw)
            np.testing.assert_array_equal(gx, tgx)
            np.testing.assert_array_equal(np.signbit(gx), np.signbit(tgx))


@pytest.mark.parametrize("shape", [(1, 2, 8, 31), (1, 2, 7, 32), (1, 1, 6, 40)], ids=str)
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_k3s2_fallback_shapes_match_reference(shape, ceil_mode):
    kw = dict(K3S2, ceil_mode=ceil_mode)
    for dtype in DTYPES:
        x = _ties(shape, dtype)
        g = _rand(R.max_pool2d(x, **kw).shape, dtype, seed=1)
        assert_close(F.max_pool2d(x, **kw), R.max_pool2d(x, **kw))
        assert_close(F.max_pool2d_backward(g, x, **kw), R.max_pool2d_backward(g, x, **kw))
        for extra in AVG_K3S2_KW:
            akw = dict(kw, **extra)
            assert_close(F.avg_pool2d(x, **akw), R.avg_pool2d(x, **akw))
            assert_close(F.avg_pool2d_backward(g, x, **akw), R.avg_pool2d_backward(g, x, **akw))


def test_k3s2_one_and_two_threads_bit_identical():
    x = _ties((3, 5, 12, 64), np.float32)
    g = _rand(F.max_pool2d(x, **K3S2).shape, np.float32, 1)

    def run():
        return [F.max_pool2d(x, **K3S2), *F.max_pool2d(x, **K3S2, return_indices=True),
                F.max_pool2d_backward(g, x, **K3S2)] + [
                    r for extra in AVG_K3S2_KW
                    for r in (F.avg_pool2d(x, **K3S2, **extra),
                              F.avg_pool2d_backward(g, x, **K3S2, **extra))]
    assert_same_bits_on_one_and_two_threads(run)


# ---------------------------------------------------------------- backward through indices
# On 3x3/2 p1 even planes and on tiling 2x2/2 rows of whole vectors the saved indices
# are turned back into each window's winning tap and grad_x is written once from
# registers (the forward's indices are always taps of their own windows); a plane
# holding any other index (another window's cell, a cell left of or above the
# window's padding, out of range) is scattered as PyTorch does. Widths 4, 8, 16
# and 24 take the vector paths only with the narrower vectors of AVX2 and SSE2,
# whose indices are decoded in more, narrower pieces.
INDEX_PATHS = [(K3S2, (2, 3, 8, 32)), (K3S2, (1, 2, 2, 64)), (dict(kernel_size=2), (2, 3, 6, 32)),
               (dict(kernel_size=2), (1, 2, 7, 33)), (dict(kernel_size=2, stride=2), (1, 1, 2, 64)),
               (K3S2, (2, 3, 6, 8)), (K3S2, (2, 3, 4, 24)), (dict(kernel_size=2), (2, 3, 4, 8)),
               (dict(kernel_size=2), (2, 3, 6, 16)), (dict(kernel_size=2), (2, 3, 4, 4))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw,shape", INDEX_PATHS, ids=str)
def test_max_backward_from_indices_bit_identical_to_torch(kw, shape, dtype):
    pytest.importorskip("torch")
    for x in (_rand(shape, dtype), _ties(shape, dtype), _k3s2_specials(_rand(shape, dtype))):
        out, ind = F.max_pool2d(x, **kw, return_indices=True)
        g = _rand(out.shape, dtype, seed=1)
        g.flat[::5] = -0.0                   # a lone -0.0 share lands as +0.0
        _, tgx = _torch_pool("max_pool2d", x, g, **kw)
        gx = F.max_pool2d_backward(g, x, **kw, indices=ind)
        np.testing.assert_array_equal(gx, tgx)
        np.testing.assert_array_equal(np.signbit(gx), np.signbit(tgx))
        np.testing.assert_array_equal(F.max_pool2d_backward(g, x, **kw), tgx)
        np.testing.assert_array_equal(np.signbit(F.max_pool2d_backward(g, x, **kw)),
                                      np.signbit(tgx))


def _scatter(g, ind, x_shape):
    n, c, h, w = x_shape
    gx = np.zeros((n * c, h * w), g.dtype)
    for p, (gp, ip) in enumerate(zip(g.reshape(n * c, -1), ind.reshape(n * c, -1))):
        keep = (ip >= 0) & (ip < h * w)
        np.add.at(gx[p], ip[keep], gp[keep])  # in order, like a scalar loop
    return gx.reshape(x_shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw,shape", INDEX_PATHS, ids=str)
def test_max_backward_from_foreign_indices_scatters(kw, shape, dtype):
    n, c, h, w = shape
    x = _rand(shape, dtype)
    out, ind = F.max_pool2d(x, **kw, return_indices=True)
    g = _rand(out.shape, dtype, seed=1)
    oh, ow = out.shape[2:]
    planes = [ind[a, b] for a in range(n) for b in range(c)]
    planes[0][0, 0] = planes[0][oh - 1, ow - 1]      # another window's cell
    if len(planes) > 1:
        planes[1][0, 1] = 2 * w + 3 if 2 * w + 3 < h * w else 0  # near, not in, window (0, 1)
    if len(planes) > 2:
        planes[2][oh - 1, 0] = -1                   # out of range: contributes nothing
    if len(planes) > 3:
        planes[3][0, ow - 1] = h * w
    if len(planes) > 4:
        planes[4][oh // 2, 0] = (2 * (oh // 2)) * w - 1  # the previous row's last cell
    if len(planes) > 5:
        planes[5][oh - 1, ow - 1] += 2**32          # a tap's low word, not its high word
    gx = F.max_pool2d_backward(g, x, **kw, indices=ind)
    np.testing.assert_array_equal(gx, _scatter(g, ind, shape))


def test_max_backward_from_indices_one_and_two_threads_bit_identical():
    def run():
        res = []
        for kw, shape in INDEX_PATHS:
            x = _ties(shape, np.float32)
            out, ind = F.max_pool2d(x, **kw, return_indices=True)
            g = _rand(out.shape, np.float32, 1)
            res += [out, ind, F.max_pool2d_backward(g, x, **kw, indices=ind)]
        return res
    assert_same_bits_on_one_and_two_threads(run)
