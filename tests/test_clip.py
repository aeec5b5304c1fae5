"""Gradient clipping against torch.nn.utils."""
import math

import numpy as np
import pytest

from dlkern.nn.parameter import Parameter
from dlkern.nn.utils import clip_grad_norm_, clip_grad_value_

SHAPES = [(4, 3), (7,), (2, 2, 5)]


def _pair(torch, dtype, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    grads = [scale * rng.standard_normal(s).astype(dtype) for s in SHAPES]
    params = []
    tparams = []
    for g in grads:
        p = Parameter(np.zeros(g.shape, dtype))
        p.grad = g.copy()
        params.append(p)
        tp = torch.nn.Parameter(torch.zeros(g.shape, dtype=getattr(torch, np.dtype(dtype).name)))
        tp.grad = torch.from_numpy(g.copy())
        tparams.append(tp)
    return params, tparams


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0, 0.5])
@pytest.mark.parametrize("max_norm", [0.1, 1e6])
def test_clip_grad_norm_matches_torch(dtype, norm_type, max_norm):
    torch = pytest.importorskip("torch")
    params, tparams = _pair(torch, dtype)
    total = clip_grad_norm_(params, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=norm_type)
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    assert isinstance(total, float)
    assert total == pytest.approx(float(ttotal), rel=rtol)
    for p, tp in zip(params, tparams):
        assert p.grad.dtype == dtype
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=rtol, atol=0)
    if max_norm == 0.1:  # the clipped gradients now have (almost exactly) norm max_norm
        after = clip_grad_norm_(params, 1e6, norm_type=norm_type)
        assert after == pytest.approx(0.1, rel=1e-4)


def test_clip_grad_norm_value_independent_of_torch():
    p, q = Parameter(np.zeros(2)), Parameter(np.zeros(1))
    p.grad, q.grad = np.array([3.0, 0.0]), np.array([4.0])
    assert clip_grad_norm_([p, q], 1.0) == 5.0
    np.testing.assert_allclose(p.grad, [3 / (5 + 1e-6), 0.0], rtol=1e-15)
    np.testing.assert_allclose(q.grad, [4 / (5 + 1e-6)], rtol=1e-15)
    r = Parameter(np.zeros(3))
    r.grad = np.array([1.0, -7.0, 2.0])
    assert clip_grad_norm_(r, 14.0, norm_type="inf") == 7.0
    np.testing.assert_array_equal(r.grad, [1.0, -7.0, 2.0])  # coef clamped to 1


def test_clip_grad_norm_skips_missing_grads_and_handles_empty():
    p, q = Parameter(np.zeros(2)), Parameter(np.zeros(2))
    p.grad = np.array([6.0, 8.0])
    assert clip_grad_norm_([p, q], 5.0) == 10.0
    assert q.grad is None
    assert clip_grad_norm_([], 1.0) == 0.0
    assert clip_grad_norm_([q], 1.0) == 0.0


def test_clip_grad_norm_nonfinite():
    torch = pytest.importorskip("torch")
    p = Parameter(np.zeros(2))
    p.grad = np.array([np.inf, 1.0])
    with pytest.raises(RuntimeError, match="non|inf"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    tp = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    tp.grad = torch.tensor([np.inf, 1.0], dtype=torch.float64)
    with pytest.raises(RuntimeError):
        torch.nn.utils.clip_grad_norm_([tp], 1.0, error_if_nonfinite=True)
    # Without the flag both return inf and scale the gradients by 0 (inf becomes nan).
    total = clip_grad_norm_([p], 1.0)
    ttotal = torch.nn.utils.clip_grad_norm_([tp], 1.0)
    assert total == float(ttotal) == math.inf
    np.testing.assert_array_equal(p.grad, tp.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("clip_value", [0.3, 2.0])
def test_clip_grad_value_matches_torch(dtype, clip_value):
    torch = pytest.importorskip("torch")
    params, tparams = _pair(torch, dtype, seed=3)
    grads_before = [p.grad for p in params]
    clip_grad_value_(params, clip_value)
    torch.nn.utils.clip_grad_value_(tparams, clip_value)
    for p, g, tp in zip(params, grads_before, tparams):
        assert p.grad is g  # in place
        np.testing.assert_array_equal(p.grad, tp.grad.numpy())
        assert np.abs(p.grad).max() <= clip_value


def test_bad_arguments():
    with pytest.raises(TypeError, match="Parameters"):
        clip_grad_norm_([np.zeros(2)], 1.0)
    with pytest.raises(TypeError, match="max_norm"):
        clip_grad_norm_([], "1")
    with pytest.raises(TypeError, match="clip_value"):
        clip_grad_value_([], None)
