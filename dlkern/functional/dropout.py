"""Inverted dropout: torch.nn.functional.dropout's semantics, reproducible from a seed.

The random numbers are drawn by NumPy's Generator in both backends (dlkern._args.dropout:
uniform 32-bit integers from its bit generator's raw output), so a seed gives the same
mask here and in dlkern.reference. C then fuses compare, scale, select and the mask
write into one two-threaded pass; NumPy needs a compare, a multiply and a select with
8 MB temporaries. The draw itself (about 0.8 ns per element, single-threaded) is shared
and bounds the forward speedup; the backward is a single C pass.
"""
import numpy as np

from dlkern import _activations
from dlkern._args import dropout as _args
from dlkern._threads import get_num_threads

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
        bits = _args.random_bits("dropout", rng, x)
        out, mask = _activations.dropout(x, bits, _args.threshold(p), _args.scale(p),
                                         get_num_threads())
    return (out, mask) if return_mask else out


def dropout_backward(grad_out, mask, p):
    """grad_out * mask / (1 - p) (zeros for p = 1)."""
    grad_out = _args.array("dropout_backward", "grad_out", grad_out)
    mask = _args.mask("dropout_backward", mask, grad_out)
    p = _args.probability("dropout_backward", p)
    if p == 1.0:
        return np.zeros_like(grad_out)
    return _activations.dropout_backward(grad_out, mask, _args.scale(p), get_num_threads())
