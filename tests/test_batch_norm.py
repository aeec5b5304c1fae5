"""batch_norm and batch_norm_backward: C kernels against the NumPy reference, PyTorch,
finite differences and a float64 re-computation for the numerically hard cases."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dlkern
import dlkern.functional as F
import dlkern.reference as R
from dlkern.testing import assert_close, numerical_gradient

DTYPES = [np.float32, np.float64]
BACKENDS = [F, R]

# (N, C, *spatial): 2-D/3-D/4-D (and 5-D, which torch accepts too), C=1, a single spatial element, S=1 with enough
# channels for several channel blocks, S above a block's span, S longer than the
# kernel's accumulator width (folded), odd channel counts and batch of one.
SHAPES = [
    (5, 3), (2, 1), (64, 300), (3, 37),
    # (N, C) strips: full 128-channel strips plus a partial one; narrower strips of 48
    (40, 600), (5, 130),
    (4, 3, 7), (3, 1, 5), (7, 2, 1), (4, 37, 3), (2, 5, 600), (2, 2, 4500),
    (2, 3, 4, 5), (1, 4, 3, 3), (20, 10, 1, 1), (3, 2, 1, 9), (2, 3, 2, 3, 2),
]


def _data(shape, dtype, seed=0, offset=0.5, spread=2.0):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = (rng.standard_normal(shape) * spread + offset).astype(dtype)
    w = rng.uniform(0.5, 1.5, C).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    rm = rng.standard_normal(C).astype(dtype)
    rv = rng.uniform(0.5, 2.0, C).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    return x, w, b, rm, rv, g


def _float64_batch_norm(x, w, b, eps=1e-5):
    """Training forward recomputed in float64 from scratch (two-pass np.var)."""
    x64 = x.astype(np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = x64.mean(axis=axes)
    var = x64.var(axis=axes)
    y = (x64 - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return y * w.astype(np.float64).reshape(shape) + b.astype(np.float64).reshape(shape)


def _float64_backward(g, x, w, eps=1e-5):
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    M = x.size // x.shape[1]
    mean = x64.mean(axis=axes).reshape(shape)
    invstd = 1.0 / np.sqrt(x64.var(axis=axes).reshape(shape) + eps)
    xhat = (x64 - mean) * invstd
    gb = g64.sum(axis=axes)
    gw = (g64 * xhat).sum(axis=axes)
    gx = w.astype(np.float64).reshape(shape) * invstd / M * (
        M * g64 - gb.reshape(shape) - xhat * gw.reshape(shape))
    return gx, gw, gb


# ---------------------------------------------------------------- forward vs reference

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("track", [False, True])
def test_train_forward_and_running_stats_match_reference(dtype, shape, affine, track):
    if shape[0] * int(np.prod(shape[2:])) < 2:
        pytest.skip("one value per channel cannot be trained on")
    x, w, b, rm, rv, _ = _data(shape, dtype)
    wb = (w, b) if affine else (None, None)
    outs = []
    for be in BACKENDS:
        m, v = (rm.copy(), rv.copy()) if track else (None, None)
        y = be.batch_norm(x, m, v, *wb, training=True, momentum=0.3)
        assert y.dtype == dtype and y.shape == x.shape
        outs.append((y, m, v))
    (y, m, v), (y_ref, m_ref, v_ref) = outs
    assert_close(y, y_ref, dtype=dtype)
    assert_close(y_ref, _float64_batch_norm(x, w if affine else np.ones_like(w),
                                            b if affine else np.zeros_like(b)), dtype=dtype)
    if track:
        assert_close(m, m_ref, dtype=dtype)
        assert_close(v, v_ref, dtype=dtype)
        # the unbiased variance goes into running_var
        axes = (0,) + tuple(range(2, x.ndim))
        x64 = x.astype(np.float64)
        assert_close(v, 0.7 * rv + 0.3 * x64.var(axis=axes, ddof=1), dtype=dtype)
        assert_close(m, 0.7 * rm + 0.3 * x64.mean(axis=axes), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(1, 6), (1, 3, 4), (1, 1, 1, 1)])
@pytest.mark.parametrize("affine", [False, True])
def test_eval_forward_matches_reference(dtype, shape, affine):
    x, w, b, rm, rv, _ = _data(shape, dtype, seed=1)
    wb = (w, b) if affine else (None, None)
    rm0, rv0 = rm.copy(), rv.copy()
    y = F.batch_norm(x, rm, rv, *wb)
    y_ref = R.batch_norm(x, rm, rv, *wb)
    assert_close(y, y_ref, dtype=dtype)
    spatial = (1,) * (x.ndim - 2)
    expect = (x.astype(np.float64) - rm.reshape(1, -1, *spatial)) / np.sqrt(
        rv.astype(np.float64).reshape(1, -1, *spatial) + 1e-5)
    if affine:
        expect = expect * w.reshape(1, -1, *spatial) + b.reshape(1, -1, *spatial)
    assert_close(y, expect, dtype=dtype)
    np.testing.assert_array_equal(rm, rm0)  # eval never touches the running stats
    np.testing.assert_array_equal(rv, rv0)


@pytest.mark.parametrize("momentum", [0.0, 1.0, 1])
def test_momentum_bounds(momentum):
    x, _, _, rm, rv, _ = _data((6, 4, 5), np.float64)
    m, v = rm.copy(), rv.copy()
    F.batch_norm(x, m, v, training=True, momentum=momentum)
    if momentum == 0:
        np.testing.assert_array_equal(m, rm)
        np.testing.assert_array_equal(v, rv)
    else:
        assert_close(m, x.mean(axis=(0, 2)))
        assert_close(v, x.var(axis=(0, 2), ddof=1))


# ---------------------------------------------------------------- backward vs reference

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [False, True])
def test_backward_matches_reference(dtype, shape, training, affine):
    if training and shape[0] * int(np.prod(shape[2:])) < 2:
        pytest.skip("one value per channel cannot be trained on")
    x, w, _, rm, rv, g = _data(shape, dtype, seed=2)
    wt = w if affine else None
    got = F.batch_norm_backward(g, x, wt, rm, rv, training=training)
    ref = R.batch_norm_backward(g, x, wt, rm, rv, training=training)
    for a, r, name in zip(got, ref, ("grad_x", "grad_weight", "grad_bias")):
        assert a.dtype == dtype
        assert_close(a, r, dtype=dtype, err_msg=name)
    if training:
        exact = _float64_backward(g, x, w if affine else np.ones_like(w))
        for a, r, name in zip(got, exact, ("grad_x", "grad_weight", "grad_bias")):
            assert_close(a, r, dtype=dtype, err_msg=name)


def test_backward_running_stats_ignored_in_training():
    x, w, _, rm, rv, g = _data((4, 3, 5), np.float64)
    with_stats = F.batch_norm_backward(g, x, w, rm, rv, training=True)
    without = F.batch_norm_backward(g, x, w, training=True)
    for a, b in zip(with_stats, without):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- (N, C) float32 row blocks

# The float32 (N, C) training kernels reduce blocks of 32 rows in float32 lanes, 16
# channels per vector, inside strips of up to 128 channels (batch_norm_blocked_f32.h).
# N below, at, above and not a multiple of the block; C with partial vectors and strips.
BLOCK_SHAPES = [(2, 16), (3, 5), (31, 17), (32, 128), (33, 130), (64, 48), (65, 300),
                (100, 33), (257, 7)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BLOCK_SHAPES, ids=str)
@pytest.mark.parametrize("affine", [False, True])
def test_row_blocks_match_float64(dtype, shape, affine):
    # a common offset of 1e3 with channel spreads from 0.01 to 10: what the float32
    # sums must keep (x - mean is small next to x)
    rng = np.random.default_rng(31)
    C = shape[1]
    x = (1e3 + rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 1, C)).astype(dtype)
    w = rng.uniform(0.5, 1.5, C).astype(dtype) if affine else None
    b = rng.standard_normal(C).astype(dtype) if affine else None
    g = rng.standard_normal(shape).astype(dtype)
    rm, rv = rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2, C).astype(dtype)
    m, v = rm.copy(), rv.copy()
    y = F.batch_norm(x, m, v, w, b, training=True, momentum=0.3)
    ones, zeros = np.ones(C, dtype), np.zeros(C, dtype)
    wf, bf = (w, b) if affine else (ones, zeros)
    assert_close(y, _float64_batch_norm(x, wf, bf), dtype=dtype)
    x64 = x.astype(np.float64)
    assert_close(m, 0.7 * rm + 0.3 * x64.mean(axis=0), dtype=dtype)
    assert_close(v, 0.7 * rv + 0.3 * x64.var(axis=0, ddof=1), dtype=dtype)
    # momentum 1: the running stats are the batch mean and unbiased variance, each
    # within a few float32 roundings of the float64 values
    m1, v1 = zeros.copy(), ones.copy()
    F.batch_norm(x, m1, v1, training=True, momentum=1.0)
    if dtype == np.float32:
        tol = 4 * np.finfo(np.float32).eps
        assert np.all(np.abs(m1 - x64.mean(axis=0)) <= tol * np.abs(x64.mean(axis=0)))
        assert np.all(np.abs(v1 - x64.var(axis=0, ddof=1)) <= tol * x64.var(axis=0, ddof=1))
    got = F.batch_norm_backward(g, x, w, training=True)
    for a, r, name in zip(got, _float64_backward(g, x, wf), ("grad_x", "grad_weight",
                                                                "grad_bias")):
        assert_close(a, r, dtype=dtype, err_msg=name)


@pytest.mark.parametrize("shape", [(33, 130), (70, 17)], ids=str)
def test_row_blocks_drifting_rows(shape):
    """Rows sorted by value, so every block of rows has its own mean far from the
    others': the per-block centres and the double merge keep the variance exact."""
    rng = np.random.default_rng(32)
    x = np.sort(5e3 + rng.standard_normal(shape), axis=0).astype(np.float32)
    m, v = np.zeros(shape[1], np.float32), np.ones(shape[1], np.float32)
    y = F.batch_norm(x, m, v, training=True, momentum=1.0)
    x64 = x.astype(np.float64)
    assert_close(y, _float64_batch_norm(x, np.ones(shape[1]), np.zeros(shape[1])),
                 dtype=np.float32)
    np.testing.assert_allclose(v, x64.var(axis=0, ddof=1), rtol=4e-7)
    g = rng.standard_normal(shape).astype(np.float32)
    for a, r in zip(F.batch_norm_backward(g, x, None, training=True),
                    _float64_backward(g, x, np.ones(shape[1]))):
        assert_close(a, r, dtype=np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_row_blocks_non_contiguous_and_eval(dtype):
    x, w, b, rm, rv, g = _data((70, 45), dtype, seed=33, offset=50.0)
    xs = np.asfortranarray(x)
    xt = np.ascontiguousarray(x.T).T  # C-ordered data seen transposed
    for xx in (xs, xt, x[:, ::1]):
        m1, v1, m2, v2 = rm.copy(), rv.copy(), rm.copy(), rv.copy()
        np.testing.assert_array_equal(F.batch_norm(xx, m1, v1, w, b, training=True),
                                      F.batch_norm(x, m2, v2, w, b, training=True))
        np.testing.assert_array_equal(m1, m2)
        np.testing.assert_array_equal(v1, v2)
        for a, e in zip(F.batch_norm_backward(np.asfortranarray(g), xx, w, training=True),
                        F.batch_norm_backward(g, x, w, training=True)):
            np.testing.assert_array_equal(a, e)
    # eval mode does not take the blocked path: running statistics, unchanged
    assert_close(F.batch_norm(x, rm, rv, w, b), R.batch_norm(x, rm, rv, w, b), dtype=dtype)


def test_row_blocks_module_momentum_none():
    """BatchNorm1d(momentum=None): a cumulative average of the batch statistics."""
    from dlkern.nn import BatchNorm1d
    rng = np.random.default_rng(34)
    bn = BatchNorm1d(37, momentum=None, affine=False)
    xs = [(rng.standard_normal((45, 37)) * 3 + 1e3).astype(np.float32) for _ in range(3)]
    for x in xs:
        bn(x)
    x64 = [x.astype(np.float64) for x in xs]
    assert_close(bn.running_mean, np.mean([x.mean(axis=0) for x in x64], axis=0),
                 dtype=np.float32)
    assert_close(bn.running_var, np.mean([x.var(axis=0, ddof=1) for x in x64], axis=0),
                 dtype=np.float32)


# ---------------------------------------------------------------- finite differences

@pytest.mark.parametrize("be", BACKENDS, ids=["dlkern", "reference"])
@pytest.mark.parametrize("shape", [(3, 2), (2, 2, 3), (2, 2, 2, 2), (4, 1)])
@pytest.mark.parametrize("training", [True, False])
def test_gradient_matches_finite_differences(be, shape, training):
    x, w, b, rm, rv, g = _data(shape, np.float64, seed=3)

    def loss():
        y = be.batch_norm(x, rm.copy(), rv.copy(), w, b, training=training)
        return float(np.sum(y * g))

    gx, gw, gb = be.batch_norm_backward(g, x, w, rm, rv, training=training)
    assert_close(gx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    assert_close(gw, numerical_gradient(loss, w), rtol=1e-6, atol=1e-8)
    assert_close(gb, numerical_gradient(loss, b), rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------- numerics

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("be", BACKENDS, ids=["dlkern", "reference"])
@pytest.mark.parametrize("shape", [(8, 3, 5, 5), (64, 3)])
def test_zero_variance_channel(dtype, be, shape):
    x, w, b, _, _, g = _data(shape, dtype, seed=4)
    x[:, 1] = 3.25  # a constant channel: var 0, y = bias there
    m, v = np.zeros(shape[1], dtype), np.ones(shape[1], dtype)
    y = be.batch_norm(x, m, v, w, b, training=True)
    assert np.all(np.isfinite(y))
    assert_close(y, _float64_batch_norm(x, w, b), dtype=dtype)
    assert_close(y[:, 1], np.broadcast_to(b[1], y[:, 1].shape), dtype=dtype)
    assert v[1] == pytest.approx(0.9)  # 0.9 * 1 + 0.1 * 0
    grads = be.batch_norm_backward(g, x, w, training=True)
    exact = _float64_backward(g, x, w)
    for a, r in zip(grads, exact):
        assert np.all(np.isfinite(a))
        assert_close(a, r, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("be", BACKENDS, ids=["dlkern", "reference"])
@pytest.mark.parametrize("shape", [(16, 4, 6, 6), (512, 3), (40, 600)])
def test_huge_offset_tiny_spread(dtype, be, shape):
    # values ~1e4 with spread ~1e-2: E[x^2]-E[x]^2 would lose every digit in
    # float32 (and most in float64); the two-pass variance does not.
    rng = np.random.default_rng(5)
    x = (1e4 + rng.standard_normal(shape) * 1e-2).astype(dtype)
    w = rng.uniform(0.5, 1.5, shape[1]).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    # In float64 the answer itself is only defined to ~ eps64 * 1e4 / 1e-2 = 1e-10
    # (the mean is rounded to the grid of values near 1e4), so the absolute
    # tolerance follows that conditioning; float32 keeps its default tolerance,
    # i.e. full float32 accuracy on these exactly representable inputs.
    atol = 1e-9 if dtype == np.float64 else None
    m, v = np.zeros(shape[1], dtype), np.zeros(shape[1], dtype)
    y = be.batch_norm(x, m, v, w, b, training=True, eps=1e-10)
    assert_close(y, _float64_batch_norm(x, w, b, eps=1e-10), dtype=dtype, atol=atol)
    axes = (0,) + tuple(range(2, x.ndim))
    assert_close(v, 0.1 * x.astype(np.float64).var(axis=axes, ddof=1), dtype=dtype,
                 atol=0.0)
    grads = be.batch_norm_backward(g, x, w, training=True, eps=1e-10)
    exact = _float64_backward(g, x, w, eps=1e-10)
    for a, r, name in zip(grads, exact, ("grad_x", "grad_weight", "grad_bias")):
        assert_close(a, r, dtype=dtype, atol=atol, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("be", BACKENDS, ids=["dlkern", "reference"])
@pytest.mark.parametrize("shape", [(1, 5), (1, 3, 4, 4), (1, 2, 20, 20)])
def test_batch_of_one_in_eval(dtype, be, shape):
    x, w, b, rm, rv, g = _data(shape, dtype, seed=6)
    x = (x + 1e4).astype(dtype)
    rm = (rm + 1e4).astype(dtype)
    y = be.batch_norm(x, rm, rv, w, b)
    spatial = (1,) * (x.ndim - 2)
    r = lambda a: a.astype(np.float64).reshape(1, -1, *spatial)  # noqa: E731
    expect = (x.astype(np.float64) - r(rm)) / np.sqrt(r(rv) + 1e-5) * r(w) + r(b)
    assert np.all(np.isfinite(y))
    assert_close(y, expect, dtype=dtype)
    gx, gw, gb = be.batch_norm_backward(g, x, w, rm, rv, training=False)
    assert_close(gx, g * r(w) / np.sqrt(r(rv) + 1e-5), dtype=dtype)
    axes = (0,) + tuple(range(2, x.ndim))
    xhat = (x.astype(np.float64) - r(rm)) / np.sqrt(r(rv) + 1e-5)
    assert_close(gw, (g * xhat).sum(axis=axes), dtype=dtype)
    assert_close(gb, g.astype(np.float64).sum(axis=axes), dtype=dtype)


# ---------------------------------------------------------------- PyTorch oracle

TORCH_SHAPES = [(6, 4), (1, 3, 5), (4, 3, 7), (3, 5, 4, 4), (2, 1, 3, 3), (5, 2, 1, 1),
                (128, 70)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", TORCH_SHAPES)
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("track", [False, True])
def test_train_matches_torch(dtype, shape, affine, track):
    torch = pytest.importorskip("torch")
    x, w, b, rm, rv, g = _data(shape, dtype, seed=7)
    m, v = (rm.copy(), rv.copy()) if track else (None, None)
    y = F.batch_norm(x, m, v, w if affine else None, b if affine else None, training=True,
                     momentum=0.2, eps=1e-3)
    gx, gw, gb = F.batch_norm_backward(g, x, w if affine else None, training=True, eps=1e-3)

    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True) if affine else None
    tb = torch.tensor(b, requires_grad=True) if affine else None
    tm, tv = (torch.tensor(rm), torch.tensor(rv)) if track else (None, None)
    ty = torch.nn.functional.batch_norm(tx, tm, tv, tw, tb, training=True, momentum=0.2,
                                        eps=1e-3)
    ty.backward(torch.tensor(g))
    assert_close(y, ty.detach().numpy(), dtype=dtype)
    assert_close(gx, tx.grad.numpy(), dtype=dtype)
    if affine:
        assert_close(gw, tw.grad.numpy(), dtype=dtype)
        assert_close(gb, tb.grad.numpy(), dtype=dtype)
    if track:
        assert_close(m, tm.numpy(), dtype=dtype)
        assert_close(v, tv.numpy(), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", TORCH_SHAPES + [(1, 4), (1, 3, 2, 2), (1, 2, 20, 20)])
def test_eval_matches_torch(dtype, shape):
    torch = pytest.importorskip("torch")
    x, w, b, rm, rv, g = _data(shape, dtype, seed=8)
    y = F.batch_norm(x, rm, rv, w, b, training=False)
    gx, gw, gb = F.batch_norm_backward(g, x, w, rm, rv, training=False)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    ty = torch.nn.functional.batch_norm(tx, torch.tensor(rm), torch.tensor(rv), tw, tb,
                                        training=False)
    ty.backward(torch.tensor(g))
    assert_close(y, ty.detach().numpy(), dtype=dtype)
    assert_close(gx, tx.grad.numpy(), dtype=dtype)
    assert_close(gw, tw.grad.numpy(), dtype=dtype)
    assert_close(gb, tb.grad.numpy(), dtype=dtype)


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1), (1, 2, 1, 1)])
def test_one_value_per_channel_in_training_raises_like_torch(shape):
    torch = pytest.importorskip("torch")
    x = np.ones(shape)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        torch.nn.functional.batch_norm(torch.tensor(x), None, None, training=True)
    for be in BACKENDS:
        with pytest.raises(ValueError, match="expected more than 1 value per channel"):
            be.batch_norm(x, None, None, training=True)
        with pytest.raises(ValueError, match="expected more than 1 value per channel"):
            be.batch_norm_backward(x, x, training=True)


# ---------------------------------------------------------------- hypothesis

@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 9), c=st.integers(1, 20),
       spatial=st.lists(st.integers(1, 7), min_size=0, max_size=2),
       dtype=st.sampled_from(DTYPES), training=st.booleans(), affine=st.booleans(),
       seed=st.integers(0, 2**16))
def test_hypothesis_shapes_match_reference(n, c, spatial, dtype, training, affine, seed):
    shape = (n, c, *spatial)
    if training and n * int(np.prod(spatial)) < 2:
        n, shape = 2, (2, c, *spatial)
    x, w, b, rm, rv, g = _data(shape, dtype, seed=seed)
    wb = (w, b) if affine else (None, None)
    m1, v1, m2, v2 = rm.copy(), rv.copy(), rm.copy(), rv.copy()
    assert_close(F.batch_norm(x, m1, v1, *wb, training=training),
                 R.batch_norm(x, m2, v2, *wb, training=training), dtype=dtype)
    assert_close(m1, m2, dtype=dtype)
    assert_close(v1, v2, dtype=dtype)
    got = F.batch_norm_backward(g, x, wb[0], rm, rv, training=training)
    ref = R.batch_norm_backward(g, x, wb[0], rm, rv, training=training)
    for a, r in zip(got, ref):
        assert_close(a, r, dtype=dtype)


# ---------------------------------------------------------------- layouts and threads

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
def test_non_contiguous_and_fortran_inputs(dtype, training):
    x, w, b, rm, rv, g = _data((6, 4, 5, 3), dtype, seed=9)
    cases = [
        (np.asfortranarray(x), np.asfortranarray(g)),
        (np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2),
         np.ascontiguousarray(g.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)),
    ]
    wide = np.zeros((2, 4), dtype)
    wide[0], wide[1] = w, b
    ws, bs = np.repeat(w, 2)[::2], wide[1]  # strided weight
    assert not ws.flags.c_contiguous or ws.base is not None
    for xs, gs in cases:
        assert not xs.flags.c_contiguous
        m1, v1 = rm.copy(), rv.copy()
        m2, v2 = rm.copy(), rv.copy()
        y = F.batch_norm(xs, m1, v1, ws, bs, training=training)
        y_ref = R.batch_norm(x, m2, v2, w, b, training=training)
        assert y.flags.c_contiguous
        assert_close(y, y_ref, dtype=dtype)
        assert_close(m1, m2, dtype=dtype)
        assert_close(v1, v2, dtype=dtype)
        got = F.batch_norm_backward(gs, xs, ws, rm, rv, training=training)
        ref = R.batch_norm_backward(g, x, w, rm, rv, training=training)
        for a, r in zip(got, ref):
            assert_close(a, r, dtype=dtype)
    # read-only running stats of any layout are fine in eval
    rm2 = np.repeat(rm, 2)[::2]
    rv2 = np.repeat(rv, 2)[::2]
    assert not rm2.flags.c_contiguous
    assert_close(F.batch_norm(x, rm2, rv2), R.batch_norm(x, rm, rv), dtype=dtype)
    assert_close(F.batch_norm_backward(g, x, None, rm2, rv2, training=False)[0],
                 R.batch_norm_backward(g, x, None, rm, rv, training=False)[0], dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
# every shape has >= 32768 values, below which the kernels run on one thread
@pytest.mark.parametrize("shape", [(8, 64, 9, 9), (128, 300), (4, 3, 5000), (70, 600),
                                   (257, 130), (1001, 37)])
def test_one_and_two_threads_bit_identical(dtype, shape):
    x, w, b, rm, rv, g = _data(shape, dtype, seed=10, offset=3.0)
    results = []
    try:
        for n in (1, 2):
            dlkern.set_num_threads(n)
            m, v = rm.copy(), rv.copy()
            out = [F.batch_norm(x, m, v, w, b, training=True), m, v,
                   F.batch_norm(x, rm, rv, w, b, training=False)]
            out += F.batch_norm_backward(g, x, w, training=True)
            out += F.batch_norm_backward(g, x, w, rm, rv, training=False)
            results.append(out)
    finally:
        dlkern.set_num_threads(None)
    for a, b_ in zip(*results):
        np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
def test_fast_and_full_argument_paths_agree(dtype, training):
    """Plain calls take the binding's C-level fast path; the same values in forms it
    declines (np.bool_ flag, np.float64 scalars, strided or Fortran arrays, an ndarray
    subclass) take the full parse. Results and running statistics are bit-identical."""
    from dlkern import _batch_norm

    class Sub(np.ndarray):
        pass

    x, w, b, rm, rv, g = _data((6, 5, 3, 4), dtype, seed=21, offset=1.0)
    nt = dlkern.get_num_threads()
    assert _batch_norm.batch_norm_fast(x, rm.copy(), rv.copy(), w, b, training, 0.1, 1e-5,
                                       nt) is not None
    assert _batch_norm.batch_norm_backward_fast(g, x, w, rm, rv, training, 1e-5,
                                                nt) is not None
    m0, v0 = rm.copy(), rv.copy()
    want = [F.batch_norm(x, m0, v0, w, b, training=training), m0, v0,
            *F.batch_norm_backward(g, x, w, rm, rv, training=training)]
    w2 = np.repeat(w, 2)[::2]
    variants = [
        dict(training=np.bool_(training)),
        dict(momentum=np.float64(0.1), eps=np.float64(1e-5)),
        dict(x=np.asfortranarray(x), g=np.asfortranarray(g)),
        dict(w=w2),
        dict(x=x.view(Sub)),
    ]
    for v in variants:
        xx, gg, ww = v.get("x", x), v.get("g", g), v.get("w", w)
        tr, mom, eps = v.get("training", training), v.get("momentum", 0.1), v.get("eps", 1e-5)
        assert _batch_norm.batch_norm_fast(xx, rm.copy(), rv.copy(), ww, b, tr, mom, eps,
                                           nt) is None, v
        m, var = rm.copy(), rv.copy()
        got = [F.batch_norm(xx, m, var, ww, b, training=tr, momentum=mom, eps=eps), m, var,
               *F.batch_norm_backward(gg, xx, ww, rm, rv, training=tr, eps=eps)]
        for a, e in zip(got, want):
            assert type(a) is np.ndarray
            np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("be", BACKENDS, ids=["dlkern", "reference"])
def test_empty_batch(be):
    x = np.zeros((0, 3, 4), np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    y = be.batch_norm(x, rm, rv)
    assert y.shape == x.shape and y.dtype == np.float32
    gx, gw, gb = be.batch_norm_backward(x, x, None, rm, rv, training=False)
    assert gx.shape == x.shape
    np.testing.assert_array_equal(gw, np.zeros(3, np.float32))
    np.testing.assert_array_equal(gb, np.zeros(3, np.float32))


# ---------------------------------------------------------------- bad input

def _bad_cases():
    x = np.ones((4, 3, 5))
    x32 = x.astype(np.float32)
    c = np.ones(3)
    ro = np.ones(3)
    ro.flags.writeable = False
    strided = np.ones(6)[::2]
    return [
        # batch_norm
        (lambda be: be.batch_norm([[1.0]], c, c), TypeError, "batch_norm: x must be a NumPy"),
        (lambda be: be.batch_norm(x.astype(np.int64), c, c), TypeError,
         "x must be float32 or float64, got dtype int64"),
        (lambda be: be.batch_norm(np.ones(3), c, c), ValueError,
         r"x must be at least 2-D \(N, C, \*\), got shape \(3,\)"),
        (lambda be: be.batch_norm(x32, c, c), TypeError,
         "running_mean has dtype float64 but x has dtype float32"),
        (lambda be: be.batch_norm(x, c, c, weight=np.ones(3, np.float32)), TypeError,
         "weight has dtype float32"),
        (lambda be: be.batch_norm(x, np.ones(4), c), ValueError,
         r"running_mean must have shape \(3,\) \(x has 3 channels\), got \(4,\)"),
        (lambda be: be.batch_norm(x, c, c, bias=np.ones((3, 1))), ValueError,
         r"bias must have shape \(3,\)"),
        (lambda be: be.batch_norm(x, None, None), ValueError,
         "running_mean and running_var are required when training=False"),
        (lambda be: be.batch_norm(x, c.copy(), None, training=True), ValueError,
         "must both be given or both be None"),
        (lambda be: be.batch_norm(x, strided, np.ones(3), training=True), ValueError,
         "running_mean must be a C-contiguous array to be updated in place"),
        (lambda be: be.batch_norm(x, np.ones(3), ro, training=True), ValueError,
         "running_var must be writeable"),
        (lambda be: be.batch_norm(x, c, c, training=True, momentum=None), TypeError,
         "momentum must be a real number in \\[0, 1\\], got None"),
        (lambda be: be.batch_norm(x, c, c, training=True, momentum=1.5), ValueError,
         r"momentum must be in \[0, 1\], got 1.5"),
        (lambda be: be.batch_norm(x, c, c, momentum="0.1"), TypeError,
         "momentum must be a real number"),
        (lambda be: be.batch_norm(x, c, c, eps=0.0), ValueError, "eps must be a finite float > 0"),
        (lambda be: be.batch_norm(x, c, c, eps=-1e-5), ValueError, "eps must be"),
        (lambda be: be.batch_norm(x, c, c, training="yes"), TypeError,
         "training must be a bool"),
        # batch_norm_backward
        (lambda be: be.batch_norm_backward(x, x32), TypeError,
         "batch_norm_backward: grad_out has dtype float64 but x has dtype float32"),
        (lambda be: be.batch_norm_backward(np.ones((4, 3, 6)), x), ValueError,
         r"grad_out must have x's shape \(4, 3, 5\), got \(4, 3, 6\)"),
        (lambda be: be.batch_norm_backward(x, x, training=False), ValueError,
         "batch_norm_backward: running_mean and running_var are required"),
        (lambda be: be.batch_norm_backward(x, x, np.ones(2)), ValueError,
         r"weight must have shape \(3,\)"),
        (lambda be: be.batch_norm_backward(x, x, eps=float("nan")), ValueError, "eps must be"),
        (lambda be: be.batch_norm_backward(x, x.astype(np.float16)), TypeError,
         "float32 or float64"),
        # calls that look plain to the C fast path's first tests but must still raise
        (lambda be: be.batch_norm(x.astype(">f8"), c, c), TypeError,
         "x must be float32 or float64, got dtype >f8"),
        (lambda be: be.batch_norm(x, c, c, eps=float("inf")), ValueError, "eps must be"),
        (lambda be: be.batch_norm(x, c, c, eps=float("nan")), ValueError, "eps must be"),
        (lambda be: be.batch_norm(x, c.copy(), c.copy(), training=True, momentum=float("nan")),
         ValueError, r"momentum must be in \[0, 1\], got nan"),
        (lambda be: be.batch_norm(x, c, c, weight=np.ones(3).astype(">f8")), TypeError,
         "weight must be float32 or float64, got dtype >f8"),
        (lambda be: be.batch_norm(x, np.ones((1, 3)), c), ValueError,
         r"running_mean must have shape \(3,\)"),
        (lambda be: be.batch_norm_backward(np.ones((3, 4)), np.ones((4, 3))), ValueError,
         r"grad_out must have x's shape \(4, 3\), got \(3, 4\)"),
        (lambda be: be.batch_norm_backward(np.ones((4, 3, 1)), np.ones((4, 3))), ValueError,
         r"grad_out must have x's shape \(4, 3\), got \(4, 3, 1\)"),
        (lambda be: be.batch_norm_backward(x, x, None, c, None, training=False), ValueError,
         "must both be given or both be None"),
        (lambda be: be.batch_norm_backward(np.ones((1, 3)), np.ones((1, 3))), ValueError,
         "expected more than 1 value per channel when training"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_cases())))
def test_bad_input_raises_same_error_in_both_backends(case):
    call, exc, match = _bad_cases()[case]
    for be in BACKENDS:
        with pytest.raises(exc, match=match):
            call(be)
