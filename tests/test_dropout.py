"""Dropout: C (dlkern.functional) vs NumPy (dlkern.reference), masks from a seed, statistics."""
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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.05, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(), (1,), (0, 3), (7,), (4, 5, 6), (3, 16385 + 5)], ids=str)
@pytest.mark.parametrize("kind", ["c", "fortran", "strided"])
def test_c_and_reference_give_the_same_mask_and_output(shape, p, dtype, kind):
    rng = np.random.default_rng(len(shape))
    x = np.asarray(rng.standard_normal(shape), dtype=dtype)
    xin = x
    if kind == "fortran" and x.ndim:
        xin = np.asfortranarray(x)
    elif kind == "strided" and x.ndim:
        xin = np.repeat(x, 2, axis=-1)[..., ::2]
    y_c, m_c = F.dropout(xin, p, rng=123, return_mask=True)
    y_r, m_r = R.dropout(x, p, rng=123, return_mask=True)
    assert m_c.dtype == np.bool_ and m_c.shape == x.shape and y_c.dtype == dtype
    np.testing.assert_array_equal(m_c, m_r)
    np.testing.assert_array_equal(y_c, y_r)
    scale = dtype(1.0 / (1.0 - p))
    np.testing.assert_array_equal(y_c, np.where(m_c, x * scale, 0))
    g = np.asarray(rng.standard_normal(shape), dtype=dtype)
    gx_c, gx_r = F.dropout_backward(g, m_c, p), R.dropout_backward(g, m_c, p)
    np.testing.assert_array_equal(gx_c, gx_r)
    np.testing.assert_array_equal(gx_c, np.where(m_c, g * scale, 0))


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "ref"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_kept_fraction_is_one_minus_p(backend, dtype, p):
    n = 1_000_000
    _, mask = backend.dropout(np.ones(n, dtype), p, rng=2024, return_mask=True)
    kept = int(mask.sum())
    sigma = np.sqrt(n * p * (1 - p))
    assert abs(kept - n * (1 - p)) < 6 * sigma  # a 6-sigma band: fails ~1e-9 of the time
    # and no structure: both halves keep about the same fraction
    assert abs(int(mask[: n // 2].sum()) - int(mask[n // 2:].sum())) < 6 * sigma


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "ref"])
def test_seed_reproducibility(backend):
    x = np.ones((50, 40))
    a = backend.dropout(x, 0.3, rng=5)
    b = backend.dropout(x, 0.3, rng=5)
    c = backend.dropout(x, 0.3, rng=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    dlkern.random.seed(11)
    d = backend.dropout(x, 0.3)
    e = backend.dropout(x, 0.3)  # the default generator advances
    dlkern.random.seed(11)
    np.testing.assert_array_equal(backend.dropout(x, 0.3), d)
    assert not np.array_equal(d, e)
    gen1, gen2 = np.random.default_rng(8), np.random.default_rng(8)
    np.testing.assert_array_equal(backend.dropout(x, 0.3, rng=gen1),
                                  backend.dropout(x, 0.3, rng=gen2))


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "ref"])
def test_eval_p0_and_p1(backend):
    x = np.arange(6.0).reshape(2, 3)
    assert backend.dropout(x, 0.5, training=False) is x  # identity, as torch returns input
    assert backend.dropout(x, 0.0) is x
    out, mask = backend.dropout(x, 0.5, training=False, return_mask=True)
    assert out is x and mask.all() and mask.shape == x.shape
    np.testing.assert_array_equal(backend.dropout_backward(x, mask, 0.0), x)
    out, mask = backend.dropout(x, 1.0, return_mask=True)
    np.testing.assert_array_equal(out, 0)
    assert not mask.any()
    np.testing.assert_array_equal(backend.dropout_backward(x, mask, 1.0), 0)


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "ref"])
def test_finite_difference_gradient_through_the_mask(backend):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 5))
    g = rng.standard_normal(x.shape)
    _, mask = backend.dropout(x, 0.4, rng=9, return_mask=True)
    num = numerical_gradient(lambda: np.sum(backend.dropout(x, 0.4, rng=9) * g), x)
    assert_close(backend.dropout_backward(g, mask, 0.4), num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scale_and_eval_match_torch(dtype):
    torch = pytest.importorskip("torch")
    p = 0.3
    t = torch.nn.functional.dropout(torch.ones(10_000, dtype=getattr(torch, np.dtype(dtype).name)), p)
    torch_values = np.unique(t.numpy())
    ours = np.unique(F.dropout(np.ones(10_000, dtype), p, rng=0))
    np.testing.assert_array_equal(ours, torch_values)  # {0, 1/(1-p)} in the dtype
    x = np.random.default_rng(0).standard_normal(10).astype(dtype)
    np.testing.assert_array_equal(
        F.dropout(x, p, training=False),
        torch.nn.functional.dropout(torch.tensor(x), p, training=False).numpy())
    # backward through the mask equals torch autograd of x * mask / (1 - p)
    _, mask = F.dropout(x, p, rng=1, return_mask=True)
    tx = torch.tensor(x, requires_grad=True)
    (tg,) = torch.autograd.grad((tx * torch.tensor(mask) / (1 - p)).sum(), tx)
    assert_close(F.dropout_backward(np.ones_like(x), mask, p), tg.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_and_two_threads_are_bit_identical(dtype):
    x = np.random.default_rng(0).standard_normal((8, 64, 33)).astype(dtype)
    try:
        dlkern.set_num_threads(1)
        y1, m1 = F.dropout(x, 0.5, rng=4, return_mask=True)
        g1 = F.dropout_backward(x, m1, 0.5)
        dlkern.set_num_threads(2)
        y2, m2 = F.dropout(x, 0.5, rng=4, return_mask=True)
        g2 = F.dropout_backward(x, m2, 0.5)
    finally:
        dlkern.set_num_threads(None)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(g1, g2)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(0, 9), min_size=0, max_size=4),
       p=st.floats(0.0, 1.0), f64=st.booleans(), seed=st.integers(0, 2**16))
def test_hypothesis_shapes(shape, p, f64, seed):
    dtype = np.float64 if f64 else np.float32
    x = np.asarray(np.random.default_rng(seed).standard_normal(tuple(shape)), dtype=dtype)
    y_c, m_c = F.dropout(x, p, rng=seed, return_mask=True)
    y_r, m_r = R.dropout(x, p, rng=seed, return_mask=True)
    assert y_c.shape == x.shape and y_c.dtype == dtype
    np.testing.assert_array_equal(m_c, m_r)
    np.testing.assert_array_equal(y_c, y_r)
    np.testing.assert_array_equal(F.dropout_backward(x, m_c, p), R.dropout_backward(x, m_c, p))


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "ref"])
def test_bad_inputs(backend):
    b = backend
    x = np.ones((2, 3))
    for p in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="dropout: dropout probability has to be between 0 and 1"):
            b.dropout(x, p)
    with pytest.raises(TypeError, match="dropout: p must be a real number"):
        b.dropout(x, "0.5")
    with pytest.raises(TypeError, match="dropout: x must be float32 or float64"):
        b.dropout(np.ones(3, np.int32), 0.5)
    with pytest.raises(TypeError, match="dropout: x must be a NumPy array"):
        b.dropout([1.0], 0.5)
    with pytest.raises(TypeError, match="dropout: rng must be a numpy.random.Generator"):
        b.dropout(x, 0.5, rng=0.5)
    mask = np.ones((2, 3), bool)
    with pytest.raises(TypeError, match="dropout_backward: mask must be a boolean array"):
        b.dropout_backward(x, mask.astype(np.float64), 0.5)
    with pytest.raises(ValueError, match=r"dropout_backward: mask must have shape \(2, 3\)"):
        b.dropout_backward(x, np.ones(3, bool), 0.5)
    with pytest.raises(ValueError, match="dropout_backward: dropout probability"):
        b.dropout_backward(x, mask, 2.0)
    with pytest.raises(TypeError, match="dropout_backward: grad_out must be float32 or float64"):
        b.dropout_backward(np.ones((2, 3), np.int64), mask, 0.5)
