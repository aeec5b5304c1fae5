"""Argument parsing for causal_conv1d / causal_conv1d_backward (C and reference alike).

Layouts follow torch.nn.functional.conv1d: x (N, C_in, L), weight (C_out, C_in, k),
bias (C_out,), grad_out (N, C_out, L). The causal convolution always returns L
outputs (left padding (k-1)*dilation), so k may exceed L.
"""
import numpy as np

from dlkern import _checks


def _x_and_weight(fn, x, weight, dilation):
    x = _checks.float_array(fn, "x", x)
    weight = _checks.float_array(fn, "weight", weight)
    _checks.same_dtype(fn, "x", x, weight=weight)
    _checks.ndim(fn, "x", x, 3, "N, C_in, L")
    _checks.ndim(fn, "weight", weight, 3, "C_out, C_in, k")
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"{fn}: weight has {weight.shape[1]} input channels but x has "
                         f"{x.shape[1]} channels")
    if weight.shape[2] < 1:
        raise ValueError(f"{fn}: weight must have kernel size k >= 1, got shape {weight.shape}")
    dilation = _checks.integer(fn, "dilation", dilation, minimum=1)
    return x, weight, dilation


def parse_forward(fn, x, weight, bias, dilation):
    """(x, weight, bias, dilation) validated; arrays are not copied."""
    x, weight, dilation = _x_and_weight(fn, x, weight, dilation)
    bias = _checks.optional_float_array(fn, "bias", bias)
    _checks.same_dtype(fn, "x", x, bias=bias)
    if bias is not None:
        _checks.shape_equals(fn, "bias", bias, (weight.shape[0],), "C_out of weight")
    return x, weight, bias, dilation


def parse_output_mask(fn, output_mask):
    """output_mask (torch's convolution_backward output_mask: which of grad_x,
    grad_weight, grad_bias to compute) as a tuple of 3 Python bools."""
    if isinstance(output_mask, (str, bytes)) or not hasattr(output_mask, "__len__"):
        raise TypeError(f"{fn}: output_mask must be a sequence of 3 bools, got "
                        f"{output_mask!r}")
    if len(output_mask) != 3:
        raise ValueError(f"{fn}: output_mask must have 3 entries (grad_x, grad_weight, "
                         f"grad_bias), got {len(output_mask)}")
    if not all(isinstance(m, (bool, np.bool_)) for m in output_mask):
        raise TypeError(f"{fn}: output_mask must be a sequence of 3 bools, got "
                        f"{output_mask!r}")
    return tuple(bool(m) for m in output_mask)


def parse_backward(fn, grad_out, x, weight, dilation):
    """(grad_out, x, weight, dilation) validated; arrays are not copied."""
    x, weight, dilation = _x_and_weight(fn, x, weight, dilation)
    grad_out = _checks.float_array(fn, "grad_out", grad_out)
    _checks.same_dtype(fn, "x", x, grad_out=grad_out)
    n, _, length = x.shape
    _checks.shape_equals(fn, "grad_out", grad_out, (n, weight.shape[0], length),
                         "N, C_out, L of the forward output")
    return grad_out, x, weight, dilation
