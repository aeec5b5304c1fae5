"""Batch normalization in NumPy: the twin of dlkern.functional.batch_norm.

Statistics are reduced over axes (0, 2) of x seen as (N, C, S) and accumulated in
float64 (np.mean / np.sum with dtype=float64), the variance as the mean of
centered squares (never E[x^2] - E[x]^2). x - mean is formed in x's dtype with
the float64 mean split into a hi + lo pair of x's dtype, so float32 stays
accurate when the mean (say 1e4) is large against the spread.
"""
import numpy as np

from dlkern._args.batch_norm import parse_batch_norm, parse_batch_norm_backward

__all__ = ["batch_norm", "batch_norm_backward"]

_AXES = (0, 2)


def _centered(x3, mean):
    """x3 - mean[:, None] in x3's dtype, accurate for a float64 mean of any size."""
    hi = mean.astype(x3.dtype)
    lo = (mean - hi).astype(x3.dtype)
    return (x3 - hi[:, None]) - lo[:, None]


def _batch_stats(x3, eps):
    """(mean, biased var, invstd) per channel in float64, and the centered x."""
    mean = x3.mean(axis=_AXES, dtype=np.float64)
    d = _centered(x3, mean)
    # corrected two-pass: the mean of d removes what rounding left in the mean
    dmean = d.mean(axis=_AXES, dtype=np.float64)
    var = np.maximum(np.square(d).mean(axis=_AXES, dtype=np.float64) - dmean**2, 0.0)
    mean = mean + dmean
    d = _centered(x3, mean)
    return mean, var, 1.0 / np.sqrt(var + eps), d


def _col(v, dtype):
    return np.asarray(v, dtype=np.float64).astype(dtype)[:, None]


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    a = parse_batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    dt = a.x.dtype
    x3 = a.x.reshape(a.N, a.C, a.S)
    w = np.ones(a.C) if a.weight is None else a.weight.astype(np.float64)
    b = np.zeros(a.C, dt) if a.bias is None else a.bias
    if a.training:
        mean, var, invstd, d = _batch_stats(x3, a.eps)
        if a.running_mean is not None:
            m = a.momentum
            unbiased = var * (a.N * a.S) / (a.N * a.S - 1)
            a.running_mean[...] = (1 - m) * a.running_mean.astype(np.float64) + m * mean
            a.running_var[...] = (1 - m) * a.running_var.astype(np.float64) + m * unbiased
    else:
        d = x3 - a.running_mean[:, None]
        invstd = 1.0 / np.sqrt(a.running_var.astype(np.float64) + a.eps)
    y = d * _col(w * invstd, dt) + b[:, None]
    return y.reshape(a.x.shape)


def batch_norm_backward(grad_out, x, weight=None, running_mean=None, running_var=None,
                        training=True, eps=1e-5):
    a = parse_batch_norm_backward(grad_out, x, weight, running_mean, running_var, training,
                                  eps)
    dt = a.x.dtype
    x3 = a.x.reshape(a.N, a.C, a.S)
    g3 = a.grad_out.reshape(a.N, a.C, a.S)
    w = np.ones(a.C) if a.weight is None else a.weight.astype(np.float64)
    if a.training:
        _, _, invstd, d = _batch_stats(x3, a.eps)
    else:
        d = x3 - a.running_mean[:, None]
        invstd = 1.0 / np.sqrt(a.running_var.astype(np.float64) + a.eps)
    sum_dy = g3.sum(axis=_AXES, dtype=np.float64)
    sum_dyd = (g3 * d).sum(axis=_AXES, dtype=np.float64)
    grad_weight = (sum_dyd * invstd).astype(dt)
    grad_bias = sum_dy.astype(dt)
    scale = w * invstd
    if a.training:
        M = a.N * a.S
        # w * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat = d * invstd
        grad_x = (g3 * _col(scale, dt) - _col(scale * sum_dy / M, dt)
                  - d * _col(scale * invstd**2 * sum_dyd / M, dt))
    else:
        grad_x = g3 * _col(scale, dt)
    return grad_x.reshape(a.x.shape), grad_weight, grad_bias
