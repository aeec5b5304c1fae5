"""Argument parsing for the activations, shared by dlkern.functional and dlkern.reference."""

import numpy as np

from dlkern import _checks
from dlkern._checks import contiguous as _contiguous
from dlkern._checks import real  # noqa: F401 (the backends call _args.real)
from dlkern.random import as_rng


def unary(fn, x):
    """x checked (float32/float64 ndarray) and made C-contiguous."""
    return _contiguous(_checks.float_array(fn, "x", x))


def grad_pair(fn, grad_out, x, x_name="x"):
    """grad_out and x (or the forward output) checked: same dtype, same shape, contiguous."""
    grad_out = _checks.float_array(fn, "grad_out", grad_out)
    x = _checks.float_array(fn, x_name, x)
    _checks.same_dtype(fn, x_name, x, grad_out=grad_out)
    _checks.shape_equals(fn, "grad_out", grad_out, x.shape, f"the shape of {x_name}")
    return _contiguous(grad_out), _contiguous(x)


def softplus_params(fn, beta, threshold):
    beta = real(fn, "beta", beta)
    threshold = real(fn, "threshold", threshold)
    if beta == 0.0 or beta != beta:
        raise ValueError(f"{fn}: beta must be a nonzero number, got {beta}")
    return beta, threshold


def rrelu_params(fn, lower, upper, training):
    lower = real(fn, "lower", lower)
    upper = real(fn, "upper", upper)
    if not lower <= upper:
        raise ValueError(f"{fn}: lower must be <= upper, got lower={lower} and upper={upper}")
    return lower, upper, bool(training)


def rrelu_slopes(fn, rng, shape, dtype, lower, upper):
    """Per-element slopes uniform in [lower, upper], drawn in the array dtype.

    Both backends draw through this one function, so a seed gives the same slopes
    (and the same noise) in the C path and the reference."""
    slopes = as_rng(rng, fn).random(shape, dtype=dtype)
    slopes *= upper - lower
    slopes += lower
    return slopes


def rrelu_noise(fn, noise, x, training):
    """The noise rrelu returned in training (required then; ignored in eval)."""
    if not training:
        return None
    if noise is None:
        raise ValueError(f"{fn}: noise is required when training=True (call rrelu with "
                         f"return_noise=True)")
    noise = _checks.float_array(fn, "noise", noise)
    _checks.same_dtype(fn, "x", x, noise=noise)
    _checks.shape_equals(fn, "noise", noise, x.shape, "the shape of x")
    return _contiguous(noise)


def prelu_layout(fn, x, weight):
    """(x, weight, N, C, S) with x viewed as (N, C, S) and weight flattened to C values.

    As in torch the channel dim is dim 1 (x of rank >= 2; a rank 0 or 1 input has one
    channel); weight is 0-D or 1-D with 1 or C elements. A single weight is applied to
    the whole array as one channel."""
    x = _checks.float_array(fn, "x", x)
    weight = _checks.float_array(fn, "weight", weight)
    _checks.same_dtype(fn, "x", x, weight=weight)
    if weight.ndim > 1:
        raise ValueError(f"{fn}: weight must be 0-D or 1-D, got shape {weight.shape}")
    channels = x.shape[1] if x.ndim >= 2 else 1
    if weight.size != 1 and weight.size != channels:
        raise ValueError(f"{fn}: weight has {weight.size} elements but x has {channels} "
                         f"channels (dim 1 of shape {x.shape}); expected 1 or {channels}")
    if weight.size == 1:
        n, c, s = 1, 1, x.size
    else:
        n, c = x.shape[0], channels
        s = int(np.prod(x.shape[2:], dtype=np.int64))
    return (_contiguous(x), _contiguous(weight.reshape(-1)), n, c, s)
