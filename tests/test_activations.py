"""Activations: C (dlkern.functional) vs NumPy (dlkern.reference) vs torch autograd."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dlkern
import dlkern.functional as F
import dlkern.reference as R
from dlkern.testing import (assert_close, assert_same_bits_on_one_and_two_threads,
                            numerical_gradient)

DTYPES = [np.float32, np.float64]
BACKENDS = [F, R]

# name -> (forward kwargs, takes the forward output in backward)
SIMPLE = {
    "relu": ({}, False),
    "leaky_relu": ({"negative_slope": 0.2}, False),
    "elu": ({"alpha": 1.7}, False),
    "sigmoid": ({}, True),
    "tanh": ({}, True),
    "softplus": ({"beta": 2.0, "threshold": 5.0}, False),
    "rrelu": ({"lower": 0.1, "upper": 0.3}, False),  # eval mode
}
SMOOTH = ["elu", "sigmoid", "tanh", "softplus"]


def run(backend, name, x, g, **kw):
    """(forward output, input gradient) of activation `name` through backend."""
    y = getattr(backend, name)(x, **kw)
    _, takes_output = SIMPLE.get(name, ({}, False))
    gx = getattr(backend, name + "_backward")(g, y if takes_output else x, **kw)
    return y, gx


def sample(rng, shape, dtype, scale=3.0):
    x = np.asarray(rng.standard_normal(shape) * scale, dtype=dtype)
    if x.size > 4:
        x.reshape(-1)[:3] = (0.0, -0.0, 1e-30)  # exact zeros and a tiny value
    return x


def layout(x, kind):
    if x.ndim == 0:  # asfortranarray would make it 1-D
        return x
    if kind == "fortran":
        return np.asfortranarray(x)
    if kind == "strided" and x.ndim >= 1:
        big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
        big[..., ::2] = x
        return big[..., ::2]
    return x


SHAPES = [(), (1,), (7,), (3, 5), (2, 3, 4, 5), (3, 16385 + 17)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", list(SIMPLE))
@pytest.mark.parametrize("kind", ["c", "fortran", "strided"])
def test_c_matches_reference(name, shape, dtype, kind):
    rng = np.random.default_rng(len(shape) * 7 + len(name))
    kw = SIMPLE[name][0]
    x = sample(rng, shape, dtype)
    g = np.asarray(rng.standard_normal(shape), dtype=dtype)
    y_c, gx_c = run(F, name, layout(x, kind), layout(g, kind), **kw)
    y_r, gx_r = run(R, name, x, g, **kw)
    assert y_c.dtype == dtype and gx_c.dtype == dtype
    assert_close(y_c, y_r, dtype=dtype)
    assert_close(gx_c, gx_r, dtype=dtype)


def _torch_fn(torch, name, kw):
    tf = torch.nn.functional
    return {
        "relu": lambda t: tf.relu(t),
        "leaky_relu": lambda t: tf.leaky_relu(t, kw.get("negative_slope", 0.01)),
        "elu": lambda t: tf.elu(t, kw.get("alpha", 1.0)),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "softplus": lambda t: tf.softplus(t, kw.get("beta", 1.0), kw.get("threshold", 20.0)),
        "rrelu": lambda t: tf.rrelu(t, kw.get("lower", 1 / 8), kw.get("upper", 1 / 3), False),
    }[name]


SPECIAL = [0.0, -0.0, 1e-30, -1e-30, 1.0, -1.0, 0.5, -2.5, 19.9, 20.0, 20.1, -20.0, 88.0,
           -88.0, 100.0, -100.0, 710.0, -710.0, 1e4, -1e4, 1e30, -1e30, np.inf, -np.inf, np.nan]


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "ref"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [False, True], ids=["defaults", "params"])
@pytest.mark.parametrize("name", list(SIMPLE))
def test_matches_torch_autograd(backend, name, dtype, kwargs):
    """Forward and gradient, zeros, extremes, inf and NaN as torch computes them."""
    torch = pytest.importorskip("torch")
    kw = SIMPLE[name][0] if kwargs else {}
    rng = np.random.default_rng(3)
    x = np.concatenate([np.array(SPECIAL), rng.standard_normal(200) * 4]).astype(dtype)
    g = rng.uniform(0.5, 1.5, x.shape).astype(dtype)
    y, gx = run(backend, name, x, g, **kw)
    t = torch.tensor(x, requires_grad=True)
    ty = _torch_fn(torch, name, kw)(t)
    (tg,) = torch.autograd.grad(ty, t, torch.tensor(g))
    ty, tg = ty.detach().numpy(), tg.numpy()
    # elu'(NaN): torch's vectorized loop gives NaN (index 24 lies in it), its scalar
    # tail gives grad_out; dlkern always propagates NaN.
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ty))
    np.testing.assert_array_equal(np.isnan(gx), np.isnan(tg))
    assert_close(y, ty, dtype=dtype)
    assert_close(gx, tg, dtype=dtype)


@pytest.mark.parametrize("name,kw,expected", [
    ("relu", {}, 0.0),
    ("leaky_relu", {"negative_slope": 0.3}, 0.3),
    ("elu", {"alpha": 2.0}, 2.0),
    ("rrelu", {"lower": 0.2, "upper": 0.4}, (0.2 + 0.4) / 2),
])
@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "ref"])
def test_gradient_at_zero_follows_torch(backend, name, kw, expected):
    x = np.array([0.0, -0.0])
    _, gx = run(backend, name, x, np.ones(2), **kw)
    np.testing.assert_array_equal(gx, [expected, expected])


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "ref"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(SIMPLE))
def test_extremes_are_finite_and_silent(backend, name, dtype):
    x = np.array([1e4, -1e4, 1e30, -1e30, 3e38, -3e38], dtype)
    kw = SIMPLE[name][0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            y, gx = run(backend, name, x, np.ones_like(x), **kw)
    if name in ("sigmoid", "tanh", "elu", "softplus"):
        assert np.all(np.isfinite(gx))
    assert np.all(np.isfinite(y[1::2]))  # negatives: bounded activations
    if name == "sigmoid":
        np.testing.assert_array_equal(y, [1, 0, 1, 0, 1, 0])
    if name == "tanh":
        np.testing.assert_array_equal(y, [1, -1, 1, -1, 1, -1])
    if name == "softplus":
        np.testing.assert_array_equal(y[1::2], 0)
        np.testing.assert_array_equal(y[0::2], x[0::2])


def test_softplus_is_stable_where_torchs_direct_form_overflows():
    # threshold=200 lets beta*x = 100 through; log1p(exp(100)) overflows float32 directly
    x = np.array([100.0, -100.0, 150.0], np.float32)
    for backend in BACKENDS:
        y = backend.softplus(x, threshold=200.0)
        assert_close(y, np.array([100.0, 3.7200760e-44, 150.0], np.float32))
        gx = backend.softplus_backward(np.ones_like(x), x, threshold=200.0)
        np.testing.assert_allclose(gx, [1.0, 0.0, 1.0], atol=1e-30)


def _ulps(actual, exact):
    exact = np.asarray(exact)
    keep = np.isfinite(exact) & (np.abs(exact) >= np.finfo(actual.dtype).tiny)
    spacing = np.spacing(np.abs(exact[keep]).astype(actual.dtype)).astype(np.float64)
    return np.max(np.abs(actual[keep].astype(np.float64) - exact[keep].astype(np.float64)) / spacing)


def _exactish(name, x):
    """float64 NumPy/glibc values (exact for float32 results; ~1 ulp for float64)."""
    if name == "sigmoid":
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    if name == "tanh":
        return np.tanh(x)
    if name == "elu":
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
    return np.where(x > 20, x, np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))))


@pytest.mark.parametrize("name", SMOOTH)
def test_vectorized_exp_log1p_are_accurate_to_a_few_ulp(name):
    """The C exp/expm1/log1p against glibc over many binades (C path only)."""
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.uniform(-30, 30, 100_000), rng.uniform(-1, 1, 50_000),
                        10 ** rng.uniform(-40, 2.9, 50_000) * rng.choice([-1, 1], 50_000)])
    x32 = x.astype(np.float32)
    exact32 = _exactish(name, x32.astype(np.float64)).astype(np.float32)
    assert _ulps(getattr(F, name)(x32), exact32) <= 4
    assert _ulps(getattr(F, name)(x), _exactish(name, x)) <= 8
    ge = F.elu_backward(np.ones_like(x), x)
    assert _ulps(ge, np.where(x <= 0, np.exp(np.minimum(x, 0)), 1.0)) <= 4


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "ref"])
@pytest.mark.parametrize("name", list(SIMPLE) + ["prelu"])
def test_finite_difference_gradient(backend, name):
    rng = np.random.default_rng(5)
    x = rng.uniform(0.2, 2.0, (2, 3, 4)) * rng.choice([-1.0, 1.0], (2, 3, 4))  # no kinks
    g = rng.standard_normal(x.shape)
    if name == "prelu":
        w = np.array([0.1, -0.4, 0.7])
        gx, gw = backend.prelu_backward(g, x, w)
        loss = lambda: np.sum(backend.prelu(x, w) * g)  # noqa: E731
        assert_close(gx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
        assert_close(gw, numerical_gradient(loss, w), rtol=1e-6, atol=1e-8)
        return
    kw = SIMPLE[name][0]
    _, gx = run(backend, name, x, g, **kw)
    num = numerical_gradient(lambda: np.sum(getattr(backend, name)(x, **kw) * g), x)
    assert_close(gx, num, rtol=1e-6, atol=1e-8)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(0, 9), min_size=0, max_size=4),
       name=st.sampled_from(list(SIMPLE)), f64=st.booleans(), seed=st.integers(0, 2**16))
def test_hypothesis_shapes(shape, name, f64, seed):
    dtype = np.float64 if f64 else np.float32
    rng = np.random.default_rng(seed)
    x = sample(rng, tuple(shape), dtype)
    g = np.asarray(rng.standard_normal(tuple(shape)), dtype=dtype)
    kw = SIMPLE[name][0]
    y_c, gx_c = run(F, name, x, g, **kw)
    y_r, gx_r = run(R, name, x, g, **kw)
    assert y_c.shape == x.shape and gx_c.shape == x.shape
    assert_close(y_c, y_r, dtype=dtype)
    assert_close(gx_c, gx_r, dtype=dtype)


# ---------------------------------------------------------------- prelu

PRELU_CASES = [((), (1,)), ((5,), (1,)), ((5,), ()), ((4, 3), (3,)), ((4, 3), (1,)),
               ((2, 3, 7), (3,)), ((2, 6, 5, 4), (6,)), ((2, 6, 5, 4), ()), ((1, 1, 3), (1,)),
               ((3, 64, 40, 40), (64,))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,ws", PRELU_CASES, ids=str)
def test_prelu_matches_reference_and_torch(xs, ws, dtype):
    rng = np.random.default_rng(len(xs))
    x = sample(rng, xs, dtype)
    w = np.asarray(rng.uniform(-0.5, 0.5, ws), dtype=dtype)
    g = np.asarray(rng.standard_normal(xs), dtype=dtype)
    y_c, (gx_c, gw_c) = F.prelu(layout(x, "fortran"), w), F.prelu_backward(g, x, w)
    y_r, (gx_r, gw_r) = R.prelu(x, w), R.prelu_backward(g, x, w)
    assert gw_c.shape == w.shape and gw_c.dtype == dtype
    assert_close(y_c, y_r)
    assert_close(gx_c, gx_r)
    assert_close(gw_c, gw_r, rtol=1e-3 if dtype == np.float32 else None)
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.prelu(tx, tw)
    tgx, tgw = torch.autograd.grad(ty, (tx, tw), torch.tensor(g))
    assert_close(y_c, ty.detach().numpy())
    assert_close(gx_c, tgx.numpy())
    # float64 reference sums of x*g: torch's float32 sum carries more rounding than ours
    exact = np.where(x > 0, 0.0, x.astype(np.float64) * g)
    exact = exact.sum() if w.size == 1 else exact.reshape(xs[0], xs[1], -1).sum(axis=(0, 2))
    assert_close(gw_c, np.reshape(exact, ws).astype(dtype), rtol=1e-5 if dtype == np.float32 else None)
    assert_close(gw_c, tgw.numpy(), rtol=1e-3 if dtype == np.float32 else None)


# ---------------------------------------------------------------- rrelu

@pytest.mark.parametrize("dtype", DTYPES)
def test_rrelu_training_slopes_lie_in_bounds_and_c_equals_reference(dtype):
    rng = np.random.default_rng(0)
    x = sample(rng, (64, 257), dtype)
    y_c, noise_c = F.rrelu(x, 0.1, 0.3, training=True, rng=42, return_noise=True)
    y_r, noise_r = R.rrelu(x, 0.1, 0.3, training=True, rng=42, return_noise=True)
    np.testing.assert_array_equal(noise_c, noise_r)  # same seed, same slopes
    np.testing.assert_array_equal(y_c, y_r)
    neg = x <= 0
    assert np.all(noise_c[~neg] == 1)
    assert np.all((noise_c[neg] >= dtype(0.1)) & (noise_c[neg] <= dtype(0.3)))
    assert np.unique(noise_c[neg]).size > neg.sum() // 2  # per element, not one slope
    np.testing.assert_array_equal(y_c, x * noise_c)
    # slopes cover the range: uniform mean and spread (5e3+ samples, loose bounds)
    s = noise_c[neg].astype(np.float64)
    assert abs(s.mean() - 0.2) < 0.01 and s.min() < 0.11 and s.max() > 0.29
    g = rng.standard_normal(x.shape).astype(dtype)
    for backend in BACKENDS:
        gx = backend.rrelu_backward(g, x, 0.1, 0.3, training=True, noise=noise_c)
        np.testing.assert_array_equal(gx, g * noise_c)


@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "ref"])
def test_rrelu_eval_uses_mean_slope_and_seed_reproduces(backend):
    x = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(backend.rrelu(x, 0.1, 0.5), [-0.6, 0.0, 3.0])
    out, noise = backend.rrelu(x, return_noise=True)
    assert noise is None
    dlkern.random.seed(7)
    a = backend.rrelu(-np.ones(100), training=True)
    dlkern.random.seed(7)
    b = backend.rrelu(-np.ones(100), training=True)
    c = backend.rrelu(-np.ones(100), training=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)
    gen = np.random.default_rng(3)
    d = backend.rrelu(-np.ones(100), training=True, rng=gen)
    e = backend.rrelu(-np.ones(100), training=True, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(d, e)


def test_rrelu_training_gradient_matches_torch_given_the_same_noise():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).standard_normal(50)
    _, noise = F.rrelu(x, training=True, rng=1, return_noise=True)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.leaky_relu(tx, 0.0) + torch.where(tx <= 0, tx * torch.tensor(noise), 0)
    (tg,) = torch.autograd.grad(ty.sum(), tx)
    assert_close(F.rrelu_backward(np.ones(50), x, training=True, noise=noise), tg.numpy())


# ---------------------------------------------------------------- threads

@pytest.mark.parametrize("dtype", DTYPES)
def test_one_and_two_threads_are_bit_identical(dtype):
    rng = np.random.default_rng(9)
    x = sample(rng, (4, 8, 33, 65), dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    w = rng.uniform(-1, 1, 8).astype(dtype)

    def everything():
        out = [run(F, name, x, g, **SIMPLE[name][0]) for name in SIMPLE]
        out.append((F.prelu(x, w),) + F.prelu_backward(g, x, w))
        out.append(F.rrelu(x, training=True, rng=3, return_noise=True))
        return [a for group in out for a in group]

    assert_same_bits_on_one_and_two_threads(everything)


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("backend", BACKENDS, ids=["C", "ref"])
def test_bad_inputs(backend):
    b = backend
    x = np.ones((2, 3, 4))
    with pytest.raises(TypeError, match="relu: x must be float32 or float64, got dtype int64"):
        b.relu(np.ones(3, np.int64))
    with pytest.raises(TypeError, match="sigmoid: x must be a NumPy array"):
        b.sigmoid([1.0, 2.0])
    with pytest.raises(TypeError, match="relu_backward: grad_out has dtype float32 but x has dtype float64"):
        b.relu_backward(x.astype(np.float32), x)
    with pytest.raises(ValueError, match=r"elu_backward: grad_out must have shape \(2, 3, 4\)"):
        b.elu_backward(np.ones((2, 3)), x)
    with pytest.raises(ValueError, match=r"tanh_backward: grad_out must have shape .*output"):
        b.tanh_backward(np.ones(5), np.ones(4))
    with pytest.raises(TypeError, match="leaky_relu: negative_slope must be a real number"):
        b.leaky_relu(x, "0.1")
    with pytest.raises(TypeError, match="elu: alpha must be a real number"):
        b.elu(x, alpha=None)
    with pytest.raises(ValueError, match="softplus: beta must be a nonzero number"):
        b.softplus(x, beta=0)
    with pytest.raises(ValueError, match="softplus_backward: beta must be a nonzero"):
        b.softplus_backward(x, x, beta=0.0)
    with pytest.raises(ValueError, match="rrelu: lower must be <= upper"):
        b.rrelu(x, lower=0.5, upper=0.1)
    with pytest.raises(ValueError, match="rrelu_backward: noise is required"):
        b.rrelu_backward(x, x, training=True)
    with pytest.raises(ValueError, match=r"rrelu_backward: noise must have shape \(2, 3, 4\)"):
        b.rrelu_backward(x, x, training=True, noise=np.ones(3))
    with pytest.raises(TypeError, match="rrelu: rng must be a numpy.random.Generator"):
        b.rrelu(x, training=True, rng="seed")
    with pytest.raises(ValueError, match="prelu: weight has 4 elements but x has 3 channels"):
        b.prelu(x, np.ones(4))
    with pytest.raises(ValueError, match="prelu: weight must be 0-D or 1-D"):
        b.prelu(x, np.ones((3, 1)))
    with pytest.raises(TypeError, match="prelu: weight has dtype float32 but x has dtype"):
        b.prelu(x, np.ones(3, np.float32))
    with pytest.raises(ValueError, match="prelu_backward: weight has 2 elements"):
        b.prelu_backward(x, x, np.ones(2))
    with pytest.raises(ValueError, match="prelu_backward: grad_out must have shape"):
        b.prelu_backward(np.ones((2, 3)), x, np.ones(3))


def test_negative_alpha_and_slope_are_allowed_as_in_torch():
    x = np.array([-1.0, 2.0])
    for b in BACKENDS:
        assert_close(b.elu(x, alpha=-2.0), [2 * (1 - np.exp(-1.0)), 2.0])
        assert_close(b.leaky_relu(x, -0.5), [0.5, 2.0])


def test_dlkern_random_module():
    gen = dlkern.random.seed(5)
    assert dlkern.random.default_rng() is gen
    assert dlkern.random.as_rng(None) is gen
    assert dlkern.random.as_rng(gen) is gen
    assert dlkern.random.as_rng(3).random() == np.random.default_rng(3).random()
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        dlkern.random.as_rng(1.5)
    with pytest.raises(TypeError, match="seed: n must be an int"):
        dlkern.random.seed("1")
    with pytest.raises(ValueError, match="seed: n must be >= 0"):
        dlkern.random.seed(-1)
