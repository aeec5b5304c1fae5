"""linear: the C kernel (over dlkern's GEMM) against the NumPy reference, float64 loops and PyTorch."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dlkern
from dlkern import functional as F
from dlkern import reference as R
from dlkern.testing import assert_close, numerical_gradient

DTYPES = [np.float32, np.float64]
BACKENDS = [F, R]

# (x shape, out_features): 2-D, 3-D, 1-D x, batch 1, in_features 1, out_features 1.
CASES = [
    ((7, 5), 3),
    ((1, 5), 4),       # batch 1
    ((2, 3, 6), 5),    # 3-D x
    ((6,), 4),         # 1-D x
    ((9, 1), 3),       # in_features 1
    ((4, 8), 1),       # out_features 1
    ((2, 2, 2, 3), 2),  # 4-D x
    ((33, 70), 65),
]


def make(xshape, out_f, dtype, seed=0, bias=True):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xshape).astype(dtype)
    w = rng.standard_normal((out_f, xshape[-1])).astype(dtype)
    b = rng.standard_normal(out_f).astype(dtype) if bias else None
    g = rng.standard_normal(xshape[:-1] + (out_f,)).astype(dtype)
    return x, w, b, g


def einsum_oracle(x, w, b):
    """Independent float64 oracle (einsum, not matmul)."""
    out = np.einsum("...i,oi->...o", x.astype(np.float64), w.astype(np.float64))
    return out if b is None else out + b.astype(np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xshape,out_f", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_oracle(xshape, out_f, dtype, bias):
    x, w, b, _ = make(xshape, out_f, dtype, bias=bias)
    for mod in BACKENDS:
        out = mod.linear(x, w, b)
        assert out.dtype == dtype and out.shape == xshape[:-1] + (out_f,)
        assert_close(out, einsum_oracle(x, w, b), dtype=dtype, err_msg=mod.__name__)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xshape,out_f", CASES)
def test_backward_matches_oracle(xshape, out_f, dtype):
    x, w, _, g = make(xshape, out_f, dtype, seed=1)
    g64, x64, w64 = (a.astype(np.float64) for a in (g, x, w))
    want = (np.einsum("...o,oi->...i", g64, w64),
            np.einsum("no,ni->oi", g64.reshape(-1, out_f), x64.reshape(-1, xshape[-1])),
            g64.reshape(-1, out_f).sum(axis=0))
    for mod in BACKENDS:
        got = mod.linear_backward(g, x, w)
        for name, a, e in zip(("grad_x", "grad_weight", "grad_bias"), got, want):
            assert a.dtype == dtype, name
            assert_close(a, e, dtype=dtype, err_msg=f"{mod.__name__} {name}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xshape,out_f", CASES)
def test_matches_torch(xshape, out_f, dtype):
    torch = pytest.importorskip("torch")
    x, w, b, g = make(xshape, out_f, dtype, seed=2)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.linear(xt, wt, bt)
    yt.backward(torch.tensor(g))
    for mod in BACKENDS:
        assert_close(mod.linear(x, w, b), yt.detach().numpy(), dtype=dtype)
        for a, t in zip(mod.linear_backward(g, x, w), (xt, wt, bt)):
            assert_close(a, t.grad.numpy(), dtype=dtype, err_msg=mod.__name__)


@settings(max_examples=25, deadline=None)
@given(lead=st.lists(st.integers(1, 6), min_size=0, max_size=3), in_f=st.integers(1, 40),
       out_f=st.integers(1, 40), dtype=st.sampled_from(DTYPES), bias=st.booleans(),
       seed=st.integers(0, 2**16))
def test_hypothesis_shapes_against_reference(lead, in_f, out_f, dtype, bias, seed):
    x, w, b, g = make(tuple(lead) + (in_f,), out_f, dtype, seed=seed, bias=bias)
    assert_close(F.linear(x, w, b), R.linear(x, w, b), dtype=dtype)
    for a, e in zip(F.linear_backward(g, x, w), R.linear_backward(g, x, w)):
        assert_close(a, e, dtype=dtype)


@pytest.mark.parametrize("mod", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("xshape,out_f", [((3, 4), 2), ((2, 2, 3), 3), ((3,), 2)])
def test_finite_difference_gradients(mod, xshape, out_f):
    x, w, b, g = make(xshape, out_f, np.float64, seed=3)

    def loss():
        return float(np.sum(g * mod.linear(x, w, b)))

    gx, gw, gb = mod.linear_backward(g, x, w)
    assert_close(gx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-7)
    assert_close(gw, numerical_gradient(loss, w), rtol=1e-6, atol=1e-7)
    assert_close(gb, numerical_gradient(loss, b), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mod", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("xshape,out_f", [((0, 4), 3), ((5, 0), 3), ((5, 4), 0), ((2, 0, 4), 3),
                                          ((0,), 2)])
def test_zero_size_dimensions(mod, xshape, out_f):
    x = np.ones(xshape)
    w = np.ones((out_f, xshape[-1]))
    b = np.arange(out_f, dtype=np.float64)
    out = mod.linear(x, w, b)
    assert out.shape == xshape[:-1] + (out_f,)
    np.testing.assert_array_equal(out, np.broadcast_to(b, out.shape))  # in_features 0: bias only
    g = np.ones(out.shape)
    gx, gw, gb = mod.linear_backward(g, x, w)
    assert gx.shape == x.shape and gw.shape == w.shape and gb.shape == (out_f,)
    rows = int(np.prod(xshape[:-1]))
    np.testing.assert_array_equal(gb, np.full(out_f, rows, dtype=float))
    np.testing.assert_array_equal(gw, np.full(w.shape, rows, dtype=float))
    np.testing.assert_array_equal(gx, np.full(x.shape, out_f, dtype=float))


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_and_fortran_inputs(dtype):
    x, w, b, g = make((6, 3, 10), 7, dtype, seed=5)
    xs = np.asfortranarray(x)
    ws = np.asfortranarray(w)
    bs = np.repeat(b, 2)[::2]
    gs = np.ascontiguousarray(np.swapaxes(g, 0, 1)).swapaxes(0, 1)
    assert not (xs.flags.c_contiguous or ws.flags.c_contiguous or bs.flags.c_contiguous
                or gs.flags.c_contiguous)
    for mod in BACKENDS:
        assert_close(mod.linear(xs, ws, bs), R.linear(x, w, b), dtype=dtype)
        for a, e in zip(mod.linear_backward(gs, xs, ws), R.linear_backward(g, x, w)):
            assert_close(a, e, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_and_two_threads_bit_identical(dtype):
    x, w, b, g = make((300, 130), 90, dtype, seed=9)
    results = []
    try:
        for n in (1, 2):
            dlkern.set_num_threads(n)
            results.append((F.linear(x, w, b),) + F.linear_backward(g, x, w))
    finally:
        dlkern.set_num_threads(None)
    for a, e in zip(*results):
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_odd_shape_any_thread_count(dtype):
    # Past every blocking edge of dlk_gemm in all three products: in_features and the
    # batch exceed its K block (256), partial register tiles in M and N; threads
    # never change a bit.
    x, w, b, g = make((523, 301), 261, dtype, seed=10)
    results = []
    try:
        for n in (1, 2, 3):
            dlkern.set_num_threads(n)
            results.append((F.linear(x, w, b),) + F.linear_backward(g, x, w))
    finally:
        dlkern.set_num_threads(None)
    g64, x64, w64 = (a.astype(np.float64) for a in (g, x, w))
    want = (einsum_oracle(x, w, b), g64 @ w64, g64.T @ x64, g64.sum(axis=0))
    rtol = 4e-4 if dtype == np.float32 else None
    for a, e in zip(results[0], want):
        assert_close(a, e, dtype=dtype, rtol=rtol)
    for other in results[1:]:
        for a, e in zip(results[0], other):
            np.testing.assert_array_equal(a, e)


X = np.zeros((2, 3))
W = np.zeros((4, 3))
G = np.zeros((2, 4))


@pytest.mark.parametrize("mod", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("args,exc,msg", [
    ((X.tolist(), W), TypeError, r"linear: x must be a NumPy array"),
    ((X.astype(np.int32), W), TypeError, r"linear: x must be float32 or float64"),
    ((X, W.astype(np.float32)), TypeError, r"linear: weight has dtype float32 but x has dtype float64"),
    ((X, W, np.zeros(4, np.float32)), TypeError, r"linear: bias has dtype float32"),
    ((X, W, np.zeros(4, np.int64)), TypeError, r"linear: bias must be float32 or float64"),
    ((np.zeros(()), W), ValueError, r"linear: x must have at least 1 dimension"),
    ((X, W[0]), ValueError, r"linear: weight must be 2-D \(out_features, in_features\)"),
    ((X, np.zeros((4, 5))), ValueError, r"linear: weight has 5 in_features but x has 3 features"),
    ((X, W, np.zeros(3)), ValueError, r"linear: bias must have shape \(4,\)"),
    ((X, W, np.zeros((1, 4))), ValueError, r"linear: bias must have shape \(4,\)"),
])
def test_forward_bad_inputs(mod, args, exc, msg):
    with pytest.raises(exc, match=msg):
        mod.linear(*args)


@pytest.mark.parametrize("mod", BACKENDS, ids=["C", "reference"])
@pytest.mark.parametrize("args,exc,msg", [
    ((G[:, :3], X, W), ValueError, r"linear_backward: grad_out must have shape \(2, 4\)"),
    ((G[:1], X, W), ValueError, r"linear_backward: grad_out must have shape \(2, 4\)"),
    ((G.reshape(2, 2, 2), X, W), ValueError, r"linear_backward: grad_out must have shape"),
    ((G.astype(np.float32), X, W), TypeError, r"linear_backward: grad_out has dtype float32"),
    ((G, X, np.zeros((4, 2))), ValueError, r"linear_backward: weight has 2 in_features but x has 3"),
])
def test_backward_bad_inputs(mod, args, exc, msg):
    with pytest.raises(exc, match=msg):
        mod.linear_backward(*args)
