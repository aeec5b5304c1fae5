"""Pooling through the C kernels: max_pool2d, avg_pool2d, adaptive_avg_pool2d and
their backward, with torch.nn.functional's names, arguments and semantics.

x is (N, C, H, W) or unbatched (C, H, W); outputs follow x's rank and dtype.
Non-contiguous inputs are copied once.
"""
from dlkern import _pooling
from dlkern._args import pooling as _args
from dlkern._checks import contiguous
from dlkern._threads import get_num_threads

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
           "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward"]


def _nchw(a, g):
    """a as a C-contiguous 4-D array (an unbatched input gets a batch of one)."""
    a = contiguous(a)
    return a if g.batched else a[None]


def _shaped(a, g):
    return a if g.batched else a[0]


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-D max pooling; with return_indices also the int64 argmax, a flat index into
    each input H*W plane (as PyTorch). Padding is -inf, the first maximum in the
    window wins, NaN propagates."""
    g, return_indices = _args.max_pool2d(x, kernel_size, stride, padding, dilation,
                                         ceil_mode, return_indices)
    out, ind = _pooling.max_pool2d(_nchw(x, g), g, return_indices, get_num_threads())
    if return_indices:
        return _shaped(out, g), _shaped(ind, g)
    return _shaped(out, g)


def max_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, indices=None):
    """Gradient of max_pool2d w.r.t. x: grad_out scattered to the argmax of each window
    (through indices when given, else recomputed from x); overlapping windows add up."""
    g, grad_out, indices = _args.max_pool2d_backward(grad_out, x, kernel_size, stride,
                                                     padding, dilation, ceil_mode, indices)
    ind = None if indices is None else _nchw(indices, g)
    gx = _pooling.max_pool2d_backward(_nchw(grad_out, g), _nchw(x, g), ind, g,
                                      get_num_threads())
    return _shaped(gx, g)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """2-D average pooling with PyTorch's divisor rules (see dlkern/_args/pooling.py)."""
    g, cip, div = _args.avg_pool2d("avg_pool2d", x, kernel_size, stride, padding, ceil_mode,
                                   count_include_pad, divisor_override)
    return _shaped(_pooling.avg_pool2d(_nchw(x, g), g, cip, div, get_num_threads()), g)


def avg_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """Gradient of avg_pool2d w.r.t. x (x gives the shape and dtype only)."""
    fn = "avg_pool2d_backward"
    g, cip, div = _args.avg_pool2d(fn, x, kernel_size, stride, padding, ceil_mode,
                                   count_include_pad, divisor_override)
    grad_out = _args.grad_output(fn, grad_out, x, g)
    return _shaped(_pooling.avg_pool2d_backward(_nchw(grad_out, g), g, cip, div,
                                                get_num_threads()), g)


def adaptive_avg_pool2d(x, output_size):
    """Adaptive average pooling to output_size (int or pair; None keeps that input size).
    Output 1x1 is global average pooling."""
    g = _args.adaptive_geometry("adaptive_avg_pool2d", x, output_size)
    return _shaped(_pooling.adaptive_avg_pool2d(_nchw(x, g), g, get_num_threads()), g)


def adaptive_avg_pool2d_backward(grad_out, x, output_size):
    """Gradient of adaptive_avg_pool2d w.r.t. x (x gives the shape and dtype only)."""
    fn = "adaptive_avg_pool2d_backward"
    g = _args.adaptive_geometry(fn, x, output_size)
    grad_out = _args.grad_output(fn, grad_out, x, g)
    return _shaped(_pooling.adaptive_avg_pool2d_backward(_nchw(grad_out, g), g,
                                                         get_num_threads()), g)
