"""Argument parsing for batch_norm and batch_norm_backward (both backends).

Both return a BatchNormArgs with the arrays validated (not yet copied): x's
shape seen as (N, C, S), S the product of the spatial dims. The backends make
contiguous copies of read-only arrays; running statistics updated in place in
training must already be contiguous, writeable arrays of x's dtype and shape
(C,), because a copy would leave the caller's arrays unchanged.
"""
import math
from collections import namedtuple

import numpy as np

from dlkern._checks import float_array, real, same_dtype

BatchNormArgs = namedtuple(
    "BatchNormArgs",
    "x grad_out running_mean running_var weight bias training momentum eps N C S")


def _flag(fn, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be a bool, got {value!r}")
    return bool(value)


def _real(fn, name, value):
    if type(value) is float:  # the common case, without the slower ABC check
        return value
    return real(fn, name, value)


def _momentum(fn, momentum):
    if momentum is None:
        raise TypeError(f"{fn}: momentum must be a real number in [0, 1], got None (the cumulative "
                        f"moving average of momentum=None belongs to the module layer)")
    momentum = _real(fn, "momentum", momentum)
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{fn}: momentum must be in [0, 1], got {momentum}")
    return momentum


def _eps(fn, eps):
    eps = _real(fn, "eps", eps)
    if not (eps > 0.0 and math.isfinite(eps)):
        raise ValueError(f"{fn}: eps must be a finite float > 0, got {eps}")
    return eps


def _x(fn, x):
    x = float_array(fn, "x", x)
    if x.ndim < 2:
        raise ValueError(f"{fn}: x must be at least 2-D (N, C, *), got shape {x.shape}")
    N, C = x.shape[0], x.shape[1]
    S = math.prod(x.shape[2:])  # Python ints: no overflow, and cheaper than np.prod
    return x, N, C, S


def _per_channel(fn, name, arr, x, C):
    if arr is None:
        return None
    arr = float_array(fn, name, arr)
    same_dtype(fn, "x", x, **{name: arr})
    if arr.shape != (C,):
        raise ValueError(f"{fn}: {name} must have shape ({C},) (x has {C} channels), "
                         f"got {arr.shape}")
    return arr


def _running(fn, x, C, running_mean, running_var, training, updated):
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{fn}: running_mean and running_var must both be given or both "
                         f"be None")
    if running_mean is None and not training:
        raise ValueError(f"{fn}: running_mean and running_var are required when "
                         f"training=False")
    running_mean = _per_channel(fn, "running_mean", running_mean, x, C)
    running_var = _per_channel(fn, "running_var", running_var, x, C)
    if updated and running_mean is not None:
        for name, arr in (("running_mean", running_mean), ("running_var", running_var)):
            if not arr.flags.c_contiguous:
                raise ValueError(f"{fn}: {name} must be a C-contiguous array to be updated "
                                 f"in place when training=True, got strides {arr.strides}")
            if not arr.flags.writeable:
                raise ValueError(f"{fn}: {name} must be writeable to be updated in place "
                                 f"when training=True")
    return running_mean, running_var


def _enough_values(fn, x, N, S, training):
    if training and N * S < 2:
        raise ValueError(f"{fn}: expected more than 1 value per channel when training, "
                         f"got x of shape {x.shape}")


def parse_batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps):
    fn = "batch_norm"
    x, N, C, S = _x(fn, x)
    training = _flag(fn, "training", training)
    momentum = _momentum(fn, momentum)
    eps = _eps(fn, eps)
    weight = _per_channel(fn, "weight", weight, x, C)
    bias = _per_channel(fn, "bias", bias, x, C)
    running_mean, running_var = _running(fn, x, C, running_mean, running_var, training,
                                         updated=training)
    _enough_values(fn, x, N, S, training)
    return BatchNormArgs(x, None, running_mean, running_var, weight, bias, training,
                         momentum, eps, N, C, S)


def parse_batch_norm_backward(grad_out, x, weight, running_mean, running_var, training,
                              eps):
    fn = "batch_norm_backward"
    x, N, C, S = _x(fn, x)
    grad_out = float_array(fn, "grad_out", grad_out)
    same_dtype(fn, "x", x, grad_out=grad_out)
    if grad_out.shape != x.shape:
        raise ValueError(f"{fn}: grad_out must have x's shape {x.shape}, got {grad_out.shape}")
    training = _flag(fn, "training", training)
    eps = _eps(fn, eps)
    weight = _per_channel(fn, "weight", weight, x, C)
    running_mean, running_var = _running(fn, x, C, running_mean, running_var, training,
                                         updated=False)
    _enough_values(fn, x, N, S, training)
    return BatchNormArgs(x, grad_out, running_mean, running_var, weight, None, training,
                         None, eps, N, C, S)
