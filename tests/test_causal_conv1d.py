"""Dilated causal conv1d: the C kernel against the NumPy reference and PyTorch."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dlkern
from dlkern import functional as F
from dlkern import reference as R
from dlkern.testing import (assert_close, assert_same_bits_on_one_and_two_threads,
                            numerical_gradient)

DTYPES = [np.float32, np.float64]
BACKENDS = [F, R]

# (N, C_in, L, C_out, k, dilation): awkward on purpose.
CASES = [
    (2, 3, 10, 4, 3, 2),     # C_in != C_out
    (1, 1, 1, 1, 1, 1),      # L = 1, k = 1
    (2, 3, 7, 5, 1, 3),      # k = 1 (pointwise; dilation irrelevant)
    (1, 2, 4, 3, 6, 1),      # k > L
    (2, 2, 9, 2, 3, 5),      # receptive field (k-1)*d+1 = 11 > L
    (3, 4, 6, 2, 2, 50),     # every shifted tap off the end
    (1, 5, 1, 3, 4, 2),      # batch 1, L = 1, k > 1
    (4, 6, 33, 7, 5, 3),
    (2, 3, 5, 2, 3, 10**12),  # huge dilation: no overflow, no giant padding
    (1, 2, 4, 2, 2, 10**30),  # beyond 64 bits
    (1, 3, 2500, 2, 3, 700),  # several 1024-step time blocks; taps cross block edges
    (2, 2, 2049, 3, 4, 1),    # last time block of one step
    (2, 40, 1030, 24, 6, 3),  # stacked taps C_in*k = 240 past one GEMM K block; 2 blocks
    (2, 16, 1100, 8, 3, 2),   # C_in a multiple of the vector: grad_W reads x^T in place
    (1, 48, 300, 20, 4, 300),  # dilation >= time block: each tap its own rows of x^T
    (3, 8, 77, 5, 2, 1),      # C_in = 8: in place for float64's 8 lanes, packed for float32
    (2, 32, 1500, 17, 5, 90),  # x^T window spans time blocks; odd C_out (partial tiles)
]


def make(case, dtype, seed=0, bias=True):
    n, c_in, length, c_out, k, d = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c_in, length)).astype(dtype)
    w = rng.standard_normal((c_out, c_in, k)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype) if bias else None
    g = rng.standard_normal((n, c_out, length)).astype(dtype)
    return x, w, b, g, d


def loop_conv(x, w, b, d):
    """Independent, obviously-correct oracle: explicit loops over taps and times (float64)."""
    n, c_in, length = x.shape
    c_out, _, k = w.shape
    out = np.zeros((n, c_out, length)) + (0 if b is None else b.astype(np.float64)[:, None])
    for j in range(k):
        s = (k - 1 - j) * d
        for t in range(s, length):
            out[:, :, t] += x[:, :, t - s].astype(np.float64) @ w[:, :, j].astype(np.float64).T
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_loop_oracle(case, dtype, bias):
    x, w, b, _, d = make(case, dtype, bias=bias)
    want = loop_conv(x, w, b, d)
    for mod in BACKENDS:
        out = mod.causal_conv1d(x, w, b, dilation=d)
        assert out.dtype == dtype and out.flags.c_contiguous
        assert_close(out, want, dtype=dtype, err_msg=mod.__name__)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_backward_c_matches_reference(case, dtype):
    x, w, _, g, d = make(case, dtype)
    got = F.causal_conv1d_backward(g, x, w, dilation=d)
    want = R.causal_conv1d_backward(g, x, w, dilation=d)
    likes = (x, w, w[:, 0, 0])
    for name, a, e, like in zip(("grad_x", "grad_weight", "grad_bias"), got, want, likes):
        assert a.dtype == dtype and a.shape == like.shape, name
        assert_close(a, e, dtype=dtype, err_msg=name)


def test_backward_is_the_adjoint_of_forward():
    # <g, conv(x)> = <grad_x, x> and = <grad_w, w> (no bias): ties backward to forward
    # independently of the reference.
    x, w, _, g, d = make((3, 4, 17, 5, 3, 3), np.float64, seed=7)
    y = F.causal_conv1d(x, w, None, d)
    gx, gw, gb = F.causal_conv1d_backward(g, x, w, d)
    lhs = np.sum(g * y)
    assert np.isclose(lhs, np.sum(gx * x), rtol=1e-12)
    assert np.isclose(lhs, np.sum(gw * w), rtol=1e-12)
    assert_close(gb, g.sum(axis=(0, 2)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_matches_torch(case, dtype):
    torch = pytest.importorskip("torch")
    x, w, b, g, d = make(case, dtype)
    if d > 1000:
        pytest.skip("torch would materialize the (k-1)*dilation padding")
    k = w.shape[2]
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv1d(torch.nn.functional.pad(xt, ((k - 1) * d, 0)), wt, bt,
                                    dilation=d)
    yt.backward(torch.tensor(g))
    for mod in BACKENDS:
        assert_close(mod.causal_conv1d(x, w, b, d), yt.detach().numpy(), dtype=dtype)
        for a, t in zip(mod.causal_conv1d_backward(g, x, w, d), (xt, wt, bt)):
            assert_close(a, t.grad.numpy(), dtype=dtype, err_msg=mod.__name__)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), c_in=st.integers(1, 5), length=st.integers(1, 40),
       c_out=st.integers(1, 5), k=st.integers(1, 5), d=st.integers(1, 9),
       dtype=st.sampled_from(DTYPES), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_hypothesis_shapes_against_reference(n, c_in, length, c_out, k, d, dtype, bias, seed):
    x, w, b, g, d = make((n, c_in, length, c_out, k, d), dtype, seed=seed, bias=bias)
    assert_close(F.causal_conv1d(x, w, b, d), R.causal_conv1d(x, w, b, d), dtype=dtype)
    for a, e in zip(F.causal_conv1d_backward(g, x, w, d), R.causal_conv1d_backward(g, x, w, d)):
        assert_close(a, e, dtype=dtype)


@pytest.mark.parametrize("mod", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("case", [(2, 2, 5, 3, 3, 2), (1, 2, 3, 2, 4, 1)])
def test_finite_difference_gradients(mod, case):
    x, w, b, g, d = make(case, np.float64, seed=3)

    def loss():
        return float(np.sum(g * mod.causal_conv1d(x, w, b, d)))

    gx, gw, gb = mod.causal_conv1d_backward(g, x, w, d)
    assert_close(gx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-7)
    assert_close(gw, numerical_gradient(loss, w), rtol=1e-6, atol=1e-7)
    assert_close(gb, numerical_gradient(loss, b), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mod", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("k,d", [(3, 1), (3, 4), (2, 7), (5, 2)])
def test_causality(mod, k, d):
    """Perturbing x at times > t never changes out[..., :t+1], and does change later outputs."""
    x, w, b, _, _ = make((2, 3, 30, 4, k, d), np.float64, seed=11)
    base = mod.causal_conv1d(x, w, b, d)
    for t in (0, 5, 17, 28):
        x2 = x.copy()
        x2[:, :, t + 1:] += np.random.default_rng(t).standard_normal(x2[:, :, t + 1:].shape)
        out = mod.causal_conv1d(x2, w, b, d)
        np.testing.assert_array_equal(out[:, :, :t + 1], base[:, :, :t + 1])
        assert np.all(np.abs(out[:, :, t + 1] - base[:, :, t + 1]) > 0)  # tap s=0 sees t+1
        # and the receptive field reaches (k-1)*d steps into the future of a change
        reach = min(t + 1 + (k - 1) * d, 29)
        assert np.any(out[:, :, reach] != base[:, :, reach])
    # Single impulse at time p: output nonzero exactly at p + s_j for the taps.
    x1 = np.zeros((1, 1, 30))
    x1[0, 0, 4] = 1.0
    w1 = np.arange(1.0, k + 1).reshape(1, 1, k)
    y = mod.causal_conv1d(x1, w1, None, d)[0, 0]
    expect = np.zeros(30)
    for j in range(k):
        if 4 + (k - 1 - j) * d < 30:
            expect[4 + (k - 1 - j) * d] += w1[0, 0, j]
    np.testing.assert_array_equal(y, expect)


@pytest.mark.parametrize("mod", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("shape,c_out", [((0, 3, 5), 2), ((2, 3, 0), 2), ((2, 0, 5), 3),
                                         ((2, 3, 5), 0)])
def test_zero_size_dimensions(mod, shape, c_out):
    x = np.ones(shape)
    w = np.ones((c_out, shape[1], 3))
    b = np.arange(c_out, dtype=np.float64)
    out = mod.causal_conv1d(x, w, b, 2)
    assert out.shape == (shape[0], c_out, shape[2])
    np.testing.assert_array_equal(out, np.broadcast_to(b[:, None], out.shape))  # C_in=0: bias only
    g = np.ones(out.shape)
    gx, gw, gb = mod.causal_conv1d_backward(g, x, w, 2)
    assert gx.shape == x.shape and gw.shape == w.shape and gb.shape == (c_out,)
    np.testing.assert_array_equal(gb, np.full(c_out, shape[0] * shape[2], dtype=float))
    if shape[0] == 0 or shape[2] == 0:
        np.testing.assert_array_equal(gw, 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_and_fortran_inputs(dtype):
    x, w, b, g, d = make((3, 4, 20, 5, 3, 2), dtype, seed=5)
    xs = np.asfortranarray(x)
    ws = np.ascontiguousarray(np.swapaxes(w, 0, 2)).swapaxes(0, 2)  # same values, strided
    big_b = np.repeat(b, 2)[::2]
    gs = np.asfortranarray(g)
    assert not xs.flags.c_contiguous and not ws.flags.c_contiguous
    assert not big_b.flags.c_contiguous
    for mod in BACKENDS:
        assert_close(mod.causal_conv1d(xs, ws, big_b, d), R.causal_conv1d(x, w, b, d), dtype=dtype)
        for a, e in zip(mod.causal_conv1d_backward(gs, xs, ws, d),
                        R.causal_conv1d_backward(g, x, w, d)):
            assert_close(a, e, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_and_two_threads_bit_identical(dtype):
    # Tasks run on any thread and grad_W is summed in fixed chunks: any thread count
    # must give the same bits.
    # The batch-of-one case splits one long sequence into time blocks across threads.
    for shape in [(4, 64, 1024, 64, 3, 4), (1, 32, 3000, 48, 3, 5)]:
        x, w, b, g, d = make(shape, dtype, seed=9)
        results = []
        try:
            for n in (1, 2, 3):
                dlkern.set_num_threads(n)
                results.append((F.causal_conv1d(x, w, b, d),)
                               + F.causal_conv1d_backward(g, x, w, d))
        finally:
            dlkern.set_num_threads(None)
        for other in results[1:]:
            for a, e in zip(results[0], other):
                np.testing.assert_array_equal(a, e)


X = np.zeros((2, 3, 8))
W = np.zeros((4, 3, 2))
G = np.zeros((2, 4, 8))


@pytest.mark.parametrize("mod", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("args,kwargs,exc,msg", [
    ((X.tolist(), W), {}, TypeError, r"causal_conv1d: x must be a NumPy array"),
    ((X.astype(np.int64), W), {}, TypeError, r"causal_conv1d: x must be float32 or float64"),
    ((X, W.astype(np.float32)), {}, TypeError, r"causal_conv1d: weight has dtype float32 but x has dtype float64"),
    ((X, W, np.zeros(4, np.float32)), {}, TypeError, r"causal_conv1d: bias has dtype float32"),
    ((X[0], W), {}, ValueError, r"causal_conv1d: x must be 3-D \(N, C_in, L\), got shape \(3, 8\)"),
    ((X, W[:, :, 0]), {}, ValueError, r"causal_conv1d: weight must be 3-D \(C_out, C_in, k\)"),
    ((X, np.zeros((4, 2, 2))), {}, ValueError, r"causal_conv1d: weight has 2 input channels but x has 3 channels"),
    ((X, np.zeros((4, 3, 0))), {}, ValueError, r"causal_conv1d: weight must have kernel size k >= 1"),
    ((X, W, np.zeros(3)), {}, ValueError, r"causal_conv1d: bias must have shape \(4,\)"),
    ((X, W, np.zeros((4, 1))), {}, ValueError, r"causal_conv1d: bias must have shape \(4,\)"),
    ((X, W), {"dilation": 0}, ValueError, r"causal_conv1d: dilation must be >= 1, got 0"),
    ((X, W), {"dilation": 1.5}, TypeError, r"causal_conv1d: dilation must be an int"),
])
def test_forward_bad_inputs(mod, args, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        mod.causal_conv1d(*args, **kwargs)


@pytest.mark.parametrize("mod", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("args,kwargs,exc,msg", [
    ((G[:, :3], X, W), {}, ValueError, r"causal_conv1d_backward: grad_out must have shape \(2, 4, 8\)"),
    ((G[:, :, :7], X, W), {}, ValueError, r"causal_conv1d_backward: grad_out must have shape"),
    ((G.astype(np.float32), X, W), {}, TypeError, r"causal_conv1d_backward: grad_out has dtype float32"),
    ((G.astype(np.int32), X, W), {}, TypeError, r"causal_conv1d_backward: grad_out must be float32 or float64"),
    ((G, X, np.zeros((4, 5, 2))), {}, ValueError, r"causal_conv1d_backward: weight has 5 input channels but x has 3"),
    ((G, X, W), {"dilation": -1}, ValueError, r"causal_conv1d_backward: dilation must be >= 1"),
])
def test_backward_bad_inputs(mod, args, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        mod.causal_conv1d_backward(*args, **kwargs)


MASKS = list(np.ndindex(2, 2, 2))


@pytest.mark.parametrize("mask", MASKS, ids=lambda m: "".join(map(str, m)))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [CASES[0], CASES[5], CASES[10], CASES[12],
                                  (3, 8, 1500, 6, 3, 4)])
def test_output_mask_computes_exactly_the_requested_gradients(case, dtype, mask):
    # Every subset: the requested gradients equal (bit for bit) those of the full
    # backward, the others come back as None, for C and reference alike.
    mask = tuple(bool(m) for m in mask)
    x, w, _, g, d = make(case, dtype, seed=4)
    for mod in BACKENDS:
        full = mod.causal_conv1d_backward(g, x, w, d)
        got = mod.causal_conv1d_backward(g, x, w, d, output_mask=mask)
        assert isinstance(got, tuple) and len(got) == 3
        for want, a, e in zip(mask, got, full):
            if want:
                assert a.dtype == dtype and a.flags.c_contiguous
                np.testing.assert_array_equal(a, e)
            else:
                assert a is None


@pytest.mark.parametrize("mod", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("shape", [(0, 3, 5), (2, 3, 0)])
def test_output_mask_zero_size(mod, shape):
    x = np.ones(shape)
    w = np.ones((2, 3, 3))
    g = np.ones((shape[0], 2, shape[2]))
    for mask in [(True, False, False), (False, True, False), (False, False, True)]:
        got = mod.causal_conv1d_backward(g, x, w, 2, output_mask=mask)
        for want, a, like in zip(mask, got, (x, w, w[:, 0, 0])):
            if want:
                assert a.shape == like.shape
                np.testing.assert_array_equal(a, 0)
            else:
                assert a is None


@pytest.mark.parametrize("dtype", DTYPES)
def test_output_mask_one_and_two_threads_bit_identical(dtype):
    x, w, _, g, d = make((1, 32, 3000, 48, 3, 5), dtype, seed=9)
    for mask in [(True, False, False), (False, True, False), (False, True, True)]:
        assert_same_bits_on_one_and_two_threads(
            lambda: F.causal_conv1d_backward(g, x, w, d, output_mask=mask))


@pytest.mark.parametrize("mod", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("mask,exc,msg", [
    (None, TypeError, r"causal_conv1d_backward: output_mask must be a sequence of 3 bools"),
    (True, TypeError, r"causal_conv1d_backward: output_mask must be a sequence of 3 bools"),
    ("yes", TypeError, r"causal_conv1d_backward: output_mask must be a sequence of 3 bools"),
    ((True, True), ValueError, r"causal_conv1d_backward: output_mask must have 3 entries"),
    ([True] * 4, ValueError, r"causal_conv1d_backward: output_mask must have 3 entries"),
    ((1, 0, 1), TypeError, r"causal_conv1d_backward: output_mask must be a sequence of 3 bools"),
    ((True, None, True), TypeError, r"causal_conv1d_backward: output_mask must be a sequence"),
])
def test_output_mask_bad_values(mod, mask, exc, msg):
    with pytest.raises(exc, match=msg):
        mod.causal_conv1d_backward(G, X, W, output_mask=mask)


def test_output_mask_is_keyword_only_and_accepts_numpy_bools():
    for mod in BACKENDS:
        with pytest.raises(TypeError):
            mod.causal_conv1d_backward(G, X, W, 1, (True, True, True))
        got = mod.causal_conv1d_backward(G, X, W, output_mask=np.array([True, False, True]))
        assert got[0] is not None and got[1] is None and got[2] is not None
        got = mod.causal_conv1d_backward(G, X, W, output_mask=[False, True, False])
        assert got[0] is None and got[1] is not None and got[2] is None
