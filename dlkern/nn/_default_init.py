"""PyTorch's default initialization of Conv*d and Linear (their reset_parameters),
through dlkern.nn.init, which draws from dlkern.random's default generator: so
dlkern.random.seed(n) makes a model's initial weights reproducible.

weight: kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) since
gain = sqrt(2 / (1 + a^2)) = sqrt(1/3) and bound = gain * sqrt(3 / fan_in);
bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with the weight's fan_in
(in_channels / groups * kernel size). Weight first, then bias, as torch draws them.
"""
import math

import numpy as np

from dlkern.nn import init
from dlkern.nn.parameter import Parameter


def reset_weight_bias(weight, bias):
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(bias, -bound, bound)


def weight_and_bias(weight_shape, dtype, bias=True):
    """(Parameter, Parameter or None), uninitialized; call reset_weight_bias next."""
    w = Parameter(np.zeros(weight_shape, dtype=dtype))
    b = Parameter(np.zeros(weight_shape[0], dtype=dtype)) if bias else None
    return w, b
