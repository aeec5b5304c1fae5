"""Inverted dropout in NumPy: same signature, semantics, errors and mask as
dlkern.functional.dropout (both draw the random bits through dlkern._args.dropout)."""
import numpy as np

from dlkern._args import dropout as _args

__all__ = ["dropout", "dropout_backward"]


def dropout(x, p=0.5, training=True, rng=None, return_mask=False):
    """Zero each element with probability p and scale the rest by 1/(1-p).

    Identity (x itself is returned, as torch does) when training=False or p=0; zeros
    when p=1. rng: a numpy Generator, an int seed, or None for dlkern.random's
    default generator. return_mask=True returns (out, mask), mask a bool array of
    the kept elements, which dropout_backward takes."""
    x = _args.array("dropout", "x", x)
    p = _args.probability("dropout", p)
    if not training or p == 0.0:
        return (x, np.ones(x.shape, dtype=bool)) if return_mask else x
    if p == 1.0:
        out, mask = np.zeros_like(x), np.zeros(x.shape, dtype=bool)
    else:
        mask = _args.random_bits("dropout", rng, x) >= np.uint32(_args.threshold(p))
        out = np.where(mask, x * x.dtype.type(_args.scale(p)), x.dtype.type(0))
    return (out, mask) if return_mask else out


def dropout_backward(grad_out, mask, p):
    grad_out = _args.array("dropout_backward", "grad_out", grad_out)
    mask = _args.mask("dropout_backward", mask, grad_out)
    p = _args.probability("dropout_backward", p)
    if p == 1.0:
        return np.zeros_like(grad_out)
    return np.where(mask, grad_out * grad_out.dtype.type(_args.scale(p)),
                    grad_out.dtype.type(0))
