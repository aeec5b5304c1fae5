"""Initializers: gains and fans equal torch's formulas; distributions checked by statistics.

The arrays are large (200k samples) and the seeds fixed, and each tolerance is many
standard errors wide, so the statistical checks are deterministic and cannot flake."""
import math
import warnings

import numpy as np
import pytest

from dlkern.nn import init
from dlkern.nn.parameter import Parameter

BIG = (500, 400)  # 200k samples; fan_in 400, fan_out 500
CONV = (40, 20, 5, 5)  # 100k samples; fan_in 500, fan_out 1000


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    cases = [("linear", None), ("conv1d", None), ("conv2d", None), ("conv3d", None),
             ("conv_transpose2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
             ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 1), ("leaky_relu", 0),
             ("leaky_relu", math.sqrt(5)), ("selu", None)]
    for name, param in cases:
        assert init.calculate_gain(name, param) == torch.nn.init.calculate_gain(name, param)


def test_calculate_gain_values_and_errors():
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("leaky_relu", 0.5) == math.sqrt(2 / 1.25)
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", True)


@pytest.mark.parametrize("shape", [(4, 3), (8, 3, 5), (16, 4, 3, 3), (2, 3, 1, 4, 2), (6, 1, 7, 2)])
def test_fans_match_torch(shape):
    torch = pytest.importorskip("torch")
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init._calculate_fan_in_and_fan_out(np.empty(shape)) == expected
    assert init._calculate_fan_in_and_fan_out(Parameter(np.empty(shape))) == expected


def test_fans_include_the_receptive_field():
    assert init._calculate_fan_in_and_fan_out(np.empty((64, 32, 3, 5))) == (32 * 15, 64 * 15)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(np.empty(5))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(np.empty((3, 3)), mode="fan_avg")


def _uniform_checks(x, bound):
    x = x.astype(np.float64).ravel()
    assert x.min() >= -bound and x.max() <= bound
    assert x.min() < -0.999 * bound and x.max() > 0.999 * bound  # the whole interval is used
    assert abs(x.mean()) < 0.01 * bound
    assert x.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)
    # flat: each tenth of the interval holds ~10% of the samples
    hist, _ = np.histogram(x, bins=10, range=(-bound, bound))
    np.testing.assert_allclose(hist / x.size, 0.1, atol=0.006)


def _normal_checks(x, std, mean=0.0):
    x = x.astype(np.float64).ravel()
    assert abs(x.mean() - mean) < 0.01 * std
    assert x.std() == pytest.approx(std, rel=0.01)
    within_one = np.mean(np.abs(x - mean) < std)
    assert within_one == pytest.approx(0.6827, abs=0.006)  # gaussian, not uniform (0.577)


UNIFORM = [
    ("xavier_uniform_", BIG, dict(), 1.0 * math.sqrt(6 / 900)),
    ("xavier_uniform_", CONV, dict(gain=2.0), 2.0 * math.sqrt(6 / 1500)),
    ("kaiming_uniform_", BIG, dict(), math.sqrt(3) * math.sqrt(2 / (1 + 0.0)) / math.sqrt(400)),
    ("kaiming_uniform_", CONV, dict(a=math.sqrt(5)),
     math.sqrt(3) * math.sqrt(2 / 6) / math.sqrt(500)),
    ("kaiming_uniform_", CONV, dict(mode="fan_out", nonlinearity="relu"),
     math.sqrt(3) * math.sqrt(2) / math.sqrt(1000)),
    ("kaiming_uniform_", BIG, dict(nonlinearity="tanh", mode="FAN_OUT"),
     math.sqrt(3) * (5 / 3) / math.sqrt(500)),
    ("uniform_", BIG, dict(a=-0.5, b=0.5), 0.5),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,shape,kwargs,bound", UNIFORM,
                         ids=[f"{u[0]}{u[1]}{u[2]}" for u in UNIFORM])
def test_uniform_initializers(name, shape, kwargs, bound, dtype):
    x = np.zeros(shape, dtype)
    out = getattr(init, name)(x, rng=7, **kwargs)
    assert out is x and x.dtype == dtype
    _uniform_checks(x, bound)


NORMAL = [
    ("xavier_normal_", BIG, dict(), math.sqrt(2 / 900)),
    ("xavier_normal_", CONV, dict(gain=0.5), 0.5 * math.sqrt(2 / 1500)),
    ("kaiming_normal_", BIG, dict(), math.sqrt(2) / math.sqrt(400)),
    ("kaiming_normal_", CONV, dict(mode="fan_out", nonlinearity="relu"), math.sqrt(2 / 1000)),
    ("kaiming_normal_", CONV, dict(a=0.2), math.sqrt(2 / 1.04) / math.sqrt(500)),
    ("normal_", BIG, dict(std=0.02), 0.02),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,shape,kwargs,std", NORMAL,
                         ids=[f"{u[0]}{u[1]}{u[2]}" for u in NORMAL])
def test_normal_initializers(name, shape, kwargs, std, dtype):
    p = Parameter(np.zeros(shape, dtype))
    data = p.data
    out = getattr(init, name)(p, rng=np.random.default_rng(11), **kwargs)
    assert out is p and p.data is data and data.dtype == dtype
    _normal_checks(data, std)


def test_normal_mean():
    x = init.normal_(np.zeros(BIG), mean=3.0, std=0.5, rng=1)
    _normal_checks(x, 0.5, mean=3.0)


@pytest.mark.parametrize("name,shape,kwargs", [
    ("kaiming_uniform_", CONV, dict(a=math.sqrt(5))),
    ("kaiming_normal_", BIG, dict(mode="fan_out", nonlinearity="relu")),
    ("xavier_uniform_", CONV, dict(gain=1.3)),
    ("xavier_normal_", BIG, dict()),
])
def test_spread_matches_torch_samples(name, shape, kwargs):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    theirs = getattr(torch.nn.init, name)(torch.empty(shape, dtype=torch.float64),
                                          generator=g, **kwargs).numpy()
    ours = getattr(init, name)(np.empty(shape), rng=0, **kwargs)
    assert ours.std() == pytest.approx(theirs.std(), rel=0.02)
    assert np.abs(ours).max() <= np.abs(theirs).max() * 1.001 or name.endswith("normal_")


def test_reproducible_from_seed_and_generator_advances():
    a = init.kaiming_uniform_(np.empty((30, 20)), rng=5)
    b = init.kaiming_uniform_(np.empty((30, 20)), rng=5)
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(5)
    c = init.kaiming_uniform_(np.empty((30, 20)), rng=rng)
    d = init.kaiming_uniform_(np.empty((30, 20)), rng=rng)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(c, d)


def test_constant_zeros_ones():
    p = Parameter(np.full((3, 2), 7.0, np.float32))
    assert init.zeros_(p) is p and not p.data.any()
    init.ones_(p)
    np.testing.assert_array_equal(p.data, 1)
    x = init.constant_(np.zeros(4), 2.5)
    np.testing.assert_array_equal(x, 2.5)


def test_zero_element_kaiming_is_a_noop_with_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        init.kaiming_normal_(np.empty((0, 3)))
    assert any("zero-element" in str(w.message) for w in caught)


def test_bad_inputs():
    with pytest.raises(TypeError, match="Parameter or a NumPy array"):
        init.zeros_([1.0, 2.0])
    with pytest.raises(TypeError, match="floating-point"):
        init.uniform_(np.zeros(3, np.int64))
    with pytest.raises(TypeError, match="rng"):
        init.normal_(np.zeros(3), rng="seed")
    with pytest.raises(ValueError, match="std"):
        init.normal_(np.zeros(3), std=-1.0)
