"""Dilated causal conv1d in NumPy (the TCN building block): the reference twin of
dlkern.functional.causal_conv1d.

Left-pad by (k-1)*dilation, take dilated sliding windows and contract them with the
weight in one tensordot (NumPy copies the windows into an im2col matrix and calls
BLAS GEMM), as a competent NumPy user would.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dlkern._args.causal_conv1d import parse_backward, parse_forward, parse_output_mask

__all__ = ["causal_conv1d", "causal_conv1d_backward"]


def _dilated_windows(a, k, dilation, left, right):
    """(N, C, L, k) view: out[n, c, t, i] = padded[n, c, t + i*dilation]."""
    span = (k - 1) * dilation + 1
    padded = np.pad(a, ((0, 0), (0, 0), (left, right)))
    return sliding_window_view(padded, span, axis=2)[..., ::dilation]


def causal_conv1d(x, weight, bias=None, dilation=1):
    """out[n, o, t] = bias[o] + sum_{c, j} weight[o, c, j] * x[n, c, t - (k-1-j)*dilation]
    (x is zero before t = 0). Same as torch conv1d on x left-padded by (k-1)*dilation."""
    x, weight, bias, dilation = parse_forward("causal_conv1d", x, weight, bias, dilation)
    n, _, length = x.shape
    c_out, _, k = weight.shape
    if length == 0:
        return np.zeros((n, c_out, 0), dtype=x.dtype)
    dilation = min(dilation, length)  # shifts >= L read only padding: same result, bounded pad
    win = _dilated_windows(x, k, dilation, (k - 1) * dilation, 0)
    out = np.tensordot(win, weight, axes=([1, 3], [1, 2]))  # (N, L, C_out)
    if bias is not None:
        out += bias
    return np.ascontiguousarray(out.transpose(0, 2, 1))


def causal_conv1d_backward(grad_out, x, weight, dilation=1, *,
                           output_mask=(True, True, True)):
    """(grad_x, grad_weight, grad_bias) of causal_conv1d for the given grad_out; an
    entry whose output_mask is False is not computed and comes back as None."""
    fn = "causal_conv1d_backward"
    grad_out, x, weight, dilation = parse_backward(fn, grad_out, x, weight, dilation)
    want_x, want_w, want_b = parse_output_mask(fn, output_mask)
    n, c_in, length = x.shape
    c_out, _, k = weight.shape
    grad_bias = grad_out.sum(axis=(0, 2)) if want_b else None
    grad_x = grad_weight = None
    if length == 0:
        return (np.zeros_like(x) if want_x else None,
                np.zeros_like(weight) if want_w else None, grad_bias)
    dilation = min(dilation, length)  # shifts >= L read only padding: same result, bounded pad
    pad = (k - 1) * dilation
    if want_w:
        win = _dilated_windows(x, k, dilation, pad, 0)
        grad_weight = np.ascontiguousarray(
            np.tensordot(grad_out, win, axes=([0, 2], [0, 2])))  # (C_out, C_in, k)
    if want_x:
        # grad_x[n, c, t] = sum_{o, j} weight[o, c, j] grad_out[n, o, t + (k-1-j)*dilation]:
        # an anti-causal conv of grad_out (right-padded) with the tap-reversed weight.
        gwin = _dilated_windows(grad_out, k, dilation, 0, pad)
        grad_x = np.tensordot(gwin, weight[:, :, ::-1], axes=([1, 3], [0, 2]))  # (N, L, C_in)
        grad_x = np.ascontiguousarray(grad_x.transpose(0, 2, 1))
    return grad_x, grad_weight, grad_bias
