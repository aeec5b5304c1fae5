"""Batch normalization (torch.nn.functional.batch_norm semantics) on the C kernels.

Training normalizes with the biased batch variance and, when running_mean and
running_var are given, updates them in place with momentum and the unbiased
batch variance. Eval uses the running statistics. batch_norm_backward recomputes
the batch statistics from x in training mode (one extra read of x, which keeps
float32 results accurate for large offsets and needs no saved state).
"""
import numpy as np

from dlkern import _batch_norm
from dlkern._args.batch_norm import parse_batch_norm, parse_batch_norm_backward
from dlkern._threads import get_num_threads

__all__ = ["batch_norm", "batch_norm_backward"]


def _c(a):
    return None if a is None else np.ascontiguousarray(a)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Normalize x of shape (N, C, *) per channel; returns y of x's shape and dtype.

    running_mean / running_var: (C,) arrays of x's dtype; required when
    training=False, optional when training=True (then updated in place, so they
    must be C-contiguous and writeable). momentum must be a real number in [0, 1].
    """
    y = _batch_norm.batch_norm_fast(x, running_mean, running_var, weight, bias, training,
                                    momentum, eps, get_num_threads())
    if y is not None:  # the plain common call (see _batch_norm.pyx); else the full parse
        return y
    a = parse_batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    rm, rv = a.running_mean, a.running_var
    if not a.training:  # read only: any layout will do
        rm, rv = _c(rm), _c(rv)
    y = _batch_norm.batch_norm(np.ascontiguousarray(a.x), a.N, a.C, a.S, _c(a.weight),
                               _c(a.bias), rm, rv, a.training, a.momentum, a.eps,
                               get_num_threads())
    return y


def batch_norm_backward(grad_out, x, weight=None, running_mean=None, running_var=None,
                        training=True, eps=1e-5):
    """(grad_x, grad_weight, grad_bias) of batch_norm; grad_weight and grad_bias have
    shape (C,) and are returned even for weight=None (gradients w.r.t. an implicit
    weight of ones and bias of zeros). Training mode differentiates through the
    batch statistics (recomputed from x); eval mode uses the running statistics,
    which are then required."""
    grads = _batch_norm.batch_norm_backward_fast(grad_out, x, weight, running_mean,
                                                 running_var, training, eps, get_num_threads())
    if grads is not None:
        return grads
    a = parse_batch_norm_backward(grad_out, x, weight, running_mean, running_var, training,
                                  eps)
    rm, rv = (None, None) if a.training else (_c(a.running_mean), _c(a.running_var))
    return _batch_norm.batch_norm_backward(
        np.ascontiguousarray(a.grad_out), np.ascontiguousarray(a.x), a.N, a.C, a.S,
        _c(a.weight), rm, rv, a.training, a.eps, get_num_threads())
