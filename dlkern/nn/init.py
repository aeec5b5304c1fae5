"""Weight initialization with torch.nn.init's names, gains and bounds.

Every function fills its argument in place (a Parameter's .data or a float ndarray)
and returns it. Randomness comes from ``rng``: a numpy Generator, an int seed, or None
for dlkern's default generator.

    xavier (Glorot):  std = gain * sqrt(2 / (fan_in + fan_out)), uniform bound sqrt(3) * std
    kaiming (He):     std = gain / sqrt(fan),                    uniform bound sqrt(3) * std
fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive field, where the
receptive field is the product of shape[2:] (the kernel size for conv weights).
"""
import math
import warnings

import numpy as np

from dlkern.nn.parameter import Parameter

from dlkern.random import as_rng

def _array(fn, tensor):
    data = tensor.data if isinstance(tensor, Parameter) else tensor
    if not isinstance(data, np.ndarray):
        raise TypeError(f"{fn}: tensor must be a Parameter or a NumPy array, "
                        f"got {type(tensor).__name__}")
    if data.dtype.kind != "f":
        raise TypeError(f"{fn}: tensor must be a floating-point array, got dtype {data.dtype}")
    return data


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (torch.nn.init.calculate_gain).

    linear, conv*, sigmoid: 1; tanh: 5/3; relu: sqrt(2);
    leaky_relu: sqrt(2 / (1 + negative_slope^2)) with negative_slope = param or 0.01; selu: 3/4.
    """
    linear_fns = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                  "conv_transpose2d", "conv_transpose3d")
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            negative_slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor):
    shape = np.shape(tensor.data if isinstance(tensor, Parameter) else tensor)
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than "
                         f"2 dimensions (got shape {tuple(shape)})")
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def _calculate_correct_fan(tensor, mode):
    mode = mode.lower() if isinstance(mode, str) else mode
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of ['fan_in', 'fan_out']")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a=0.0, b=1.0, rng=None):
    """Fill with values drawn from U(a, b)."""
    data = _array("uniform_", tensor)
    data[...] = as_rng(rng).uniform(a, b, size=data.shape)
    return tensor


def normal_(tensor, mean=0.0, std=1.0, rng=None):
    """Fill with values drawn from N(mean, std^2)."""
    data = _array("normal_", tensor)
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    data[...] = as_rng(rng).normal(mean, std, size=data.shape)
    return tensor


def constant_(tensor, val):
    _array("constant_", tensor)[...] = val
    return tensor


def zeros_(tensor):
    _array("zeros_", tensor)[...] = 0
    return tensor


def ones_(tensor):
    _array("ones_", tensor)[...] = 1
    return tensor


def xavier_uniform_(tensor, gain=1.0, rng=None):
    """Glorot uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    _array("xavier_uniform_", tensor)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std
    return uniform_(tensor, -a, a, rng=rng)


def xavier_normal_(tensor, gain=1.0, rng=None):
    """Glorot normal: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    _array("xavier_normal_", tensor)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, rng=rng)


def _kaiming_std(fn, tensor, a, mode, nonlinearity):
    data = _array(fn, tensor)
    if 0 in data.shape:
        warnings.warn(f"{fn}: initializing a zero-element tensor is a no-op", stacklevel=3)
        return None
    fan = _calculate_correct_fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", rng=None):
    """He uniform: U(-bound, bound), bound = sqrt(3) * gain / sqrt(fan); a is the negative
    slope used by the leaky_relu gain. (torch's Linear/Conv default is a=sqrt(5).)"""
    std = _kaiming_std("kaiming_uniform_", tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, rng=rng)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", rng=None):
    """He normal: N(0, std^2), std = gain / sqrt(fan)."""
    std = _kaiming_std("kaiming_normal_", tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std, rng=rng)


__all__ = ["calculate_gain", "uniform_", "normal_", "constant_", "zeros_", "ones_",
           "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"]
