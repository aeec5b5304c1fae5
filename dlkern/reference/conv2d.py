"""conv2d in pure NumPy: the drop-in twin of dlkern.functional.conv2d.

Forward gathers the receptive fields with sliding_window_view and contracts them
with the weights by tensordot, one group at a time. Backward: grad_weight
contracts grad_out with the same windows; grad_x is the transposed convolution,
one tensordot per kernel tap added into a strided slice of the padded gradient.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dlkern import _checks
from dlkern._args.conv2d import parse

__all__ = ["conv2d", "conv2d_backward"]


def _windows(a):
    """(N, C, OH, OW, kH, kW) receptive fields of the padded input."""
    x, weight = a.x, a.weight
    kh, kw = weight.shape[2:]
    (sh, sw), (dh, dw), (oh, ow) = a.stride, a.dilation, a.out_hw
    top, bottom, left, right = a.padding
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    win = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    return win[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, ::dh, ::dw]


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """NumPy twin of dlkern.functional.conv2d (algo is validated and ignored)."""
    a = parse("conv2d", x, weight, bias, stride, padding, dilation, groups, algo)
    win = _windows(a)
    n, c = a.x.shape[:2]
    oc = a.weight.shape[0]
    cg, ocg = c // a.groups, oc // a.groups
    y = np.empty((n, oc) + a.out_hw, dtype=a.x.dtype)
    for g in range(a.groups):
        wg = a.weight[g * ocg : (g + 1) * ocg]
        out = np.tensordot(win[:, g * cg : (g + 1) * cg], wg, axes=([1, 4, 5], [1, 2, 3]))
        y[:, g * ocg : (g + 1) * ocg] = out.transpose(0, 3, 1, 2)
    if a.bias is not None:
        y += a.bias[None, :, None, None]
    return y


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1,
                    algo="auto", *, output_mask=(True, True, True)):
    """NumPy twin of dlkern.functional.conv2d_backward: (grad_x, grad_weight, grad_bias),
    the entries whose output_mask is False not computed (None)."""
    a = parse("conv2d_backward", x, weight, None, stride, padding, dilation, groups, algo,
              grad_out=grad_out, backward=True)
    want_x, want_w, want_b = _checks.bool_mask("conv2d_backward", "output_mask", output_mask)
    gy, w = a.grad_out, a.weight
    n, c, h, wd = a.x.shape
    oc, cg, kh, kw = w.shape
    ocg = oc // a.groups
    (sh, sw), (dh, dw), (oh, ow) = a.stride, a.dilation, a.out_hw
    top, bottom, left, right = a.padding
    grad_w = grad_x = None
    if want_w:
        win = _windows(a)
        grad_w = np.empty_like(w)
        for g in range(a.groups):
            grad_w[g * ocg : (g + 1) * ocg] = np.tensordot(
                gy[:, g * ocg : (g + 1) * ocg], win[:, g * cg : (g + 1) * cg],
                axes=([0, 2, 3], [0, 2, 3]))
    if want_x:
        gxp = np.zeros((n, c, h + top + bottom, wd + left + right), dtype=a.x.dtype)
        for g in range(a.groups):
            gyg = gy[:, g * ocg : (g + 1) * ocg]
            wg = w[g * ocg : (g + 1) * ocg]
            for i in range(kh):
                for j in range(kw):
                    # (N, OH, OW, Cg): every output pixel's contribution through tap (i, j)
                    contrib = np.tensordot(gyg, wg[:, :, i, j], axes=([1], [0]))
                    gxp[:, g * cg : (g + 1) * cg,
                        i * dh : i * dh + (oh - 1) * sh + 1 : sh,
                        j * dw : j * dw + (ow - 1) * sw + 1 : sw] += contrib.transpose(0, 3, 1, 2)
        grad_x = np.ascontiguousarray(gxp[:, :, top : top + h, left : left + wd])
    grad_b = gy.sum(axis=(0, 2, 3)) if want_b else None
    return grad_x, grad_w, grad_b
