"""Argument parsing for the pooling family (max_pool2d, avg_pool2d,
adaptive_avg_pool2d and their backward), shared by dlkern.functional and
dlkern.reference so both accept and reject exactly the same inputs.

The geometry (output size under ceil_mode, padding limits) follows PyTorch:
out = floor_or_ceil((H + 2p - d(k-1) - 1) / s) + 1, and under ceil_mode the last
window is dropped if it would start in the right padding ((out-1)*s >= H + p).
"""
from collections import namedtuple

import numpy as np

from dlkern import _checks

Pool2dGeometry = namedtuple(
    "Pool2dGeometry", "n c h w oh ow kh kw sh sw ph pw dh dw batched")

_LAYOUT = "(C, H, W) or (N, C, H, W)"


def _boolean(fn, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be a bool, got {value!r}")
    return bool(value)


def _input(fn, x):
    x = _checks.float_array(fn, "x", x)
    _checks.ndim(fn, "x", x, (3, 4), _LAYOUT)
    if any(d == 0 for d in x.shape[-3:]):
        raise ValueError(f"{fn}: x must have non-empty C, H and W dimensions, got shape "
                         f"{x.shape}")
    return x


def _output_length(n, k, s, p, d, ceil_mode):
    eff = d * (k - 1) + 1
    num = n + 2 * p - eff
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1  # a window never starts in the right padding (PyTorch's rule)
    return out


def pool_geometry(fn, x, kernel_size, stride, padding, dilation, ceil_mode):
    """Validate x and the window arguments; return a Pool2dGeometry."""
    x = _input(fn, x)
    kh, kw = _checks.int_tuple(fn, "kernel_size", kernel_size, minimum=1)
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        sh, sw = kh, kw  # PyTorch: stride defaults to kernel_size
    else:
        sh, sw = _checks.int_tuple(fn, "stride", stride, minimum=1)
    ph, pw = _checks.int_tuple(fn, "padding", padding, minimum=0)
    dh, dw = _checks.int_tuple(fn, "dilation", dilation, minimum=1)
    ceil_mode = _boolean(fn, "ceil_mode", ceil_mode)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"{fn}: padding must be at most half of kernel_size, got "
                         f"padding={(ph, pw)} and kernel_size={(kh, kw)}")
    batched = x.ndim == 4
    n = x.shape[0] if batched else 1
    c, h, w = x.shape[-3:]
    oh = _output_length(h, kh, sh, ph, dh, ceil_mode)
    ow = _output_length(w, kw, sw, pw, dw, ceil_mode)
    if oh < 1 or ow < 1:
        raise ValueError(f"{fn}: the output would be empty: input {h}x{w} with "
                         f"kernel_size={(kh, kw)}, stride={(sh, sw)}, padding={(ph, pw)}, "
                         f"dilation={(dh, dw)} gives output {oh}x{ow}")
    return Pool2dGeometry(n, c, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, batched)


def output_shape(g):
    return (g.n, g.c, g.oh, g.ow) if g.batched else (g.c, g.oh, g.ow)


def grad_output(fn, grad_out, x, g):
    grad_out = _checks.float_array(fn, "grad_out", grad_out)
    _checks.same_dtype(fn, "x", x, grad_out=grad_out)
    _checks.shape_equals(fn, "grad_out", grad_out, output_shape(g), "the output's shape")
    return grad_out


def max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    fn = "max_pool2d"
    g = pool_geometry(fn, x, kernel_size, stride, padding, dilation, ceil_mode)
    return g, _boolean(fn, "return_indices", return_indices)


def max_pool2d_backward(grad_out, x, kernel_size, stride, padding, dilation, ceil_mode,
                        indices):
    fn = "max_pool2d_backward"
    g = pool_geometry(fn, x, kernel_size, stride, padding, dilation, ceil_mode)
    grad_out = grad_output(fn, grad_out, x, g)
    if indices is not None:
        if not isinstance(indices, np.ndarray):
            raise TypeError(f"{fn}: indices must be a NumPy array or None, got "
                            f"{type(indices).__name__}")
        if indices.dtype != np.int64:
            raise TypeError(f"{fn}: indices must be int64 (as max_pool2d returns them), got "
                            f"dtype {indices.dtype}")
        _checks.shape_equals(fn, "indices", indices, output_shape(g), "the output's shape")
    return g, grad_out, indices


def _divisor(fn, divisor_override):
    if divisor_override is None:
        return None
    return _checks.integer(fn, "divisor_override", divisor_override, minimum=1)


def avg_pool2d(fn, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
               divisor_override):
    g = pool_geometry(fn, x, kernel_size, stride, padding, 1, ceil_mode)
    cip = _boolean(fn, "count_include_pad", count_include_pad)
    return g, cip, _divisor(fn, divisor_override)


def adaptive_geometry(fn, x, output_size):
    x = _input(fn, x)
    batched = x.ndim == 4
    n = x.shape[0] if batched else 1
    c, h, w = x.shape[-3:]
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError(f"{fn}: output_size must be an int or a pair, got "
                             f"{output_size!r}")
        # None keeps that input size, as in PyTorch
        sizes = [h if output_size[0] is None else output_size[0],
                 w if output_size[1] is None else output_size[1]]
    else:
        sizes = [output_size, output_size]
    oh, ow = _checks.int_tuple(fn, "output_size", sizes)
    if oh < 1 or ow < 1:
        raise ValueError(f"{fn}: output_size must be >= 1 (the output would be empty), "
                         f"got {output_size!r} for input {h}x{w}")
    return Pool2dGeometry(n, c, h, w, oh, ow, 0, 0, 1, 1, 0, 0, 1, 1, batched)
