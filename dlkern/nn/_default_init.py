"""PyTorch's default initializations for dlkern's layers (reset_parameters).

torch's Conv*d and Linear: weight ~ kaiming_uniform_(a=sqrt(5)), i.e.
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) since gain = sqrt(2 / (1 + a^2)) = sqrt(1/3) and
bound = gain * sqrt(3 / fan_in); bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with the
weight's fan_in (receptive field * in_channels / groups).

Draws come from dlkern.random's default generator, so dlkern.random.seed(n) makes a
model's initial weights reproducible.
"""
import math

import numpy as np


def generator():
    """dlkern.random's default NumPy Generator (a private one until it exists)."""
    try:
        from dlkern import random as dkr
    except ImportError:
        return _fallback
    for name in ("default_rng", "default_generator"):
        g = getattr(dkr, name, None)
        if callable(g):
            return g()
        if isinstance(g, np.random.Generator):
            return g
    return _fallback


_fallback = np.random.default_rng()


def uniform(shape, bound, dtype):
    return generator().uniform(-bound, bound, size=shape).astype(dtype)


def fan_in_of(shape):
    """fan_in of a weight (out, in/groups, *kernel): in/groups * prod(kernel)."""
    return int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])


def torch_default_weight_bias(weight_shape, dtype, bias=True):
    """(weight, bias or None) as torch's Conv/Linear reset_parameters draws them."""
    fan_in = fan_in_of(weight_shape)
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    w = uniform(weight_shape, bound, dtype)
    b = uniform((weight_shape[0],), bound, dtype) if bias else None
    return w, b


def normal(shape, std, dtype):
    return generator().normal(0.0, std, size=shape).astype(dtype)
