"""Pure-NumPy pooling, the twin of dlkern.functional.pooling: same names, signatures,
semantics and errors. Windows come from sliding_window_view over an explicitly
padded array; scatters (backward) use bincount or one strided add per kernel tap.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dlkern._args import pooling as _args

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
           "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward"]


def _nchw(a, g):
    return a if g.batched else a[None]


def _shaped(a, g):
    return a if g.batched else a[0]


def _padded(x, g, value):
    """x padded by (ph, pw) on the left and enough on the right for every window,
    including the ones ceil_mode adds."""
    eh, ew = g.dh * (g.kh - 1) + 1, g.dw * (g.kw - 1) + 1
    rh = max(g.ph, (g.oh - 1) * g.sh + eh - g.h - g.ph)
    rw = max(g.pw, (g.ow - 1) * g.sw + ew - g.w - g.pw)
    return np.pad(x, ((0, 0), (0, 0), (g.ph, rh), (g.pw, rw)), constant_values=value)


def _windows(xp, g):
    """(N, C, OH, OW, kh, kw) view of the windows of a padded array."""
    eh, ew = g.dh * (g.kh - 1) + 1, g.dw * (g.kw - 1) + 1
    win = sliding_window_view(xp, (eh, ew), axis=(2, 3))
    return win[:, :, ::g.sh, ::g.sw, ::g.dh, ::g.dw][:, :, :g.oh, :g.ow]


def _max_with_indices(x, g):
    valid = _windows(_padded(np.ones(x.shape[2:], bool)[None, None], g, False), g)
    vals = _windows(_padded(x, g, -np.inf), g)
    k = g.kh * g.kw
    vals = vals.reshape(vals.shape[:4] + (k,))
    valid = valid.reshape(valid.shape[:4] + (k,))
    out = vals.max(axis=-1)  # NaN propagates; padding is -inf
    # PyTorch's tie rule: the first valid cell equal to the maximum; with NaN, the last NaN
    tap = np.argmax((vals == out[..., None]) & valid, axis=-1)
    nan = np.isnan(vals)
    last_nan = k - 1 - np.argmax(nan[..., ::-1], axis=-1)
    tap = np.where(np.isnan(out), last_nan, tap)
    hs = np.arange(g.oh)[:, None] * g.sh - g.ph
    ws = np.arange(g.ow)[None, :] * g.sw - g.pw
    ih = hs + (tap // g.kw) * g.dh
    iw = ws + (tap % g.kw) * g.dw
    # a window wholly in the padding (dilation only): PyTorch's index of its first
    # in-range row and column, which lies outside the plane
    empty = ~valid.any(axis=-1)
    if empty.any():
        ih0 = hs + np.where(hs < 0, -(hs // g.dh), 0) * g.dh
        iw0 = ws + np.where(ws < 0, -(ws // g.dw), 0) * g.dw
        ih = np.where(empty, ih0, ih)
        iw = np.where(empty, iw0, iw)
    return out.astype(x.dtype, copy=False), (ih * g.w + iw).astype(np.int64)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    g, return_indices = _args.max_pool2d(x, kernel_size, stride, padding, dilation,
                                         ceil_mode, return_indices)
    out, ind = _max_with_indices(_nchw(x, g), g)
    if return_indices:
        return _shaped(out, g), _shaped(ind, g)
    return _shaped(out, g)


def max_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, indices=None):
    g, grad_out, indices = _args.max_pool2d_backward(grad_out, x, kernel_size, stride,
                                                     padding, dilation, ceil_mode, indices)
    if indices is None:
        _, ind = _max_with_indices(_nchw(x, g), g)
    else:
        ind = _nchw(indices, g)
    hw = g.h * g.w
    planes = g.n * g.c
    ind = ind.reshape(planes, -1)
    keep = (ind >= 0) & (ind < hw)  # out-of-plane indices (empty windows) add nothing
    flat = (ind + np.arange(planes)[:, None] * hw)[keep]
    weights = _nchw(grad_out, g).reshape(planes, -1)[keep]
    gx = np.bincount(flat, weights=weights, minlength=planes * hw)
    return _shaped(gx.astype(x.dtype).reshape(g.n, g.c, g.h, g.w), g)


def _avg_divisor(g, count_include_pad, divisor_override):
    """(OH, OW) divisors: the window clipped to [-p, n + p) or to [0, n)."""
    if divisor_override is not None:
        return np.full((g.oh, g.ow), float(divisor_override))

    def axis(o, k, s, p, n):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        if count_include_pad:
            return end - start
        return np.minimum(end, n) - np.maximum(start, 0)

    return np.outer(axis(g.oh, g.kh, g.sh, g.ph, g.h), axis(g.ow, g.kw, g.sw, g.pw, g.w))


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    g, cip, div = _args.avg_pool2d("avg_pool2d", x, kernel_size, stride, padding, ceil_mode,
                                   count_include_pad, divisor_override)
    sums = _windows(_padded(_nchw(x, g), g, 0), g).sum(axis=(-2, -1))
    out = sums / _avg_divisor(g, cip, div)
    return _shaped(out.astype(x.dtype, copy=False), g)


def avg_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    fn = "avg_pool2d_backward"
    g, cip, div = _args.avg_pool2d(fn, x, kernel_size, stride, padding, ceil_mode,
                                   count_include_pad, divisor_override)
    grad_out = _args.grad_output(fn, grad_out, x, g)
    delta = _nchw(grad_out, g) / _avg_divisor(g, cip, div)
    gp = _padded(np.zeros((g.n, g.c, g.h, g.w), x.dtype), g, 0)
    # one strided add per kernel tap (kh*kw of them): overlapping windows accumulate
    for a in range(g.kh):
        for b in range(g.kw):
            gp[:, :, a:a + (g.oh - 1) * g.sh + 1:g.sh, b:b + (g.ow - 1) * g.sw + 1:g.sw] += delta
    gx = gp[:, :, g.ph:g.ph + g.h, g.pw:g.pw + g.w]
    return _shaped(np.ascontiguousarray(gx), g)


def _adaptive_matrix(o, n):
    """(o, n) averaging matrix of PyTorch's windows [floor(i*n/o), ceil((i+1)*n/o))."""
    i = np.arange(o)[:, None]
    start = (i * n) // o
    end = -((-(i + 1) * n) // o)
    cols = np.arange(n)[None, :]
    inside = (cols >= start) & (cols < end)
    return inside / (end - start)


def adaptive_avg_pool2d(x, output_size):
    g = _args.adaptive_geometry("adaptive_avg_pool2d", x, output_size)
    ah = _adaptive_matrix(g.oh, g.h).astype(x.dtype)
    aw = _adaptive_matrix(g.ow, g.w).astype(x.dtype)
    return _shaped(np.einsum("ih,nchw,jw->ncij", ah, _nchw(x, g), aw, optimize=True), g)


def adaptive_avg_pool2d_backward(grad_out, x, output_size):
    fn = "adaptive_avg_pool2d_backward"
    g = _args.adaptive_geometry(fn, x, output_size)
    grad_out = _args.grad_output(fn, grad_out, x, g)
    ah = _adaptive_matrix(g.oh, g.h).astype(x.dtype)
    aw = _adaptive_matrix(g.ow, g.w).astype(x.dtype)
    return _shaped(np.einsum("ih,ncij,jw->nchw", ah, _nchw(grad_out, g), aw, optimize=True), g)
