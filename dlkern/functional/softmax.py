"""softmax, log_softmax and cross_entropy (torch.nn.functional semantics) on C kernels.

The backward functions take the forward OUTPUT, as PyTorch's _softmax_backward_data does.

Non-finite input
----------------
Every row (the elements along `dim`) is shifted by its maximum before exp, so every
term is in [0, 1], and the sum of exps is accumulated in double (float32 on AVX-512:
rows of 64 or more elements in float32 vector lanes, folded into double every 1024
elements, which bounds the sum's relative error by about 1e-6 whatever the row length;
shorter rows in float32, 4.2e-7 at most; measured: softmax within 1.2e-6 relative and
log_softmax within 2e-6 absolute of a float64 computation on random rows and on rows of
1e5-1e6 terms), so finite inputs of any magnitude (1e30, -1e30, mixes of both) give
finite results that match a float64 computation to float32 accuracy. A row that contains +inf
or nan gives nan in all of that row's outputs (and a nan loss and nan gradient row in
cross_entropy); other rows are unaffected. A row of all -inf gives nan everywhere in
softmax and log_softmax (exp(-inf - (-inf))), as PyTorch does. -inf mixed with finite
values is fine: exp(-inf) = 0, so softmax gives 0 and log_softmax -inf there.
Results below the smallest normal float (about 1e-38 in float32, 1e-308 in float64,
relative to the row's largest term) may be flushed to 0 instead of returned as subnormals
(the AVX-512 float32 paths keep them, except those of even rows up to 10 long, which
flush; others flush).
cross_entropy with reduction="mean" divides by the total weight of the non-ignored
targets: when every target is ignored that is 0/0 = nan, as in PyTorch (and the gradient
is 0). An ignored row contributes loss 0 even if its logits are not finite; its gradient
is 0, or nan if the row is not finite (PyTorch's log_softmax backward gives the same).

`dim` out of range raises IndexError, as torch does.
"""
import numpy as np

from dlkern import _softmax
from dlkern._args import softmax as _args
from dlkern._checks import contiguous
from dlkern._threads import get_num_threads

__all__ = ["softmax", "log_softmax", "softmax_backward", "log_softmax_backward",
           "cross_entropy", "cross_entropy_backward"]


def softmax(x, dim=-1):
    """exp(x) / sum(exp(x)) along dim, computed as exp(x - max) / sum(exp(x - max)).

    A row with +inf or nan, or of all -inf, is nan (see the module's "Non-finite input")."""
    y = _softmax.softmax_fast(x, dim, False, get_num_threads())
    if y is not None:  # the plain common call (see _softmax.pyx); else the full parse
        return y
    _, outer, D, inner = _args.softmax("softmax", x, dim)
    return _softmax.softmax_forward(contiguous(x), outer, D, inner, False, get_num_threads())


def log_softmax(x, dim=-1):
    """x - log(sum(exp(x))) along dim, computed as (x - max) - log(sum(exp(x - max))).

    A row with +inf or nan, or of all -inf, is nan (see the module's "Non-finite input")."""
    y = _softmax.softmax_fast(x, dim, True, get_num_threads())
    if y is not None:
        return y
    _, outer, D, inner = _args.softmax("log_softmax", x, dim)
    return _softmax.softmax_forward(contiguous(x), outer, D, inner, True, get_num_threads())


def softmax_backward(grad_out, output, dim=-1):
    """Gradient wrt softmax's input, from grad_out and the forward OUTPUT y = softmax(x):
    y * (grad_out - sum(grad_out * y, dim))."""
    gx = _softmax.softmax_backward_fast(grad_out, output, dim, False, get_num_threads())
    if gx is not None:
        return gx
    _, outer, D, inner = _args.softmax_backward("softmax_backward", grad_out, output, dim)
    return _softmax.softmax_backward(contiguous(grad_out), contiguous(output), outer, D, inner,
                                     False, get_num_threads())


def log_softmax_backward(grad_out, output, dim=-1):
    """Gradient wrt log_softmax's input, from grad_out and the forward OUTPUT
    y = log_softmax(x): grad_out - exp(y) * sum(grad_out, dim)."""
    gx = _softmax.softmax_backward_fast(grad_out, output, dim, True, get_num_threads())
    if gx is not None:
        return gx
    _, outer, D, inner = _args.softmax_backward("log_softmax_backward", grad_out, output, dim)
    return _softmax.softmax_backward(contiguous(grad_out), contiguous(output), outer, D, inner,
                                     True, get_num_threads())


def _rows(logits, target):
    """(rows, C) C-contiguous logits and (rows,) int64 targets; the class axis of
    (N, C, d1, ...) logits is moved last (one copy)."""
    if logits.ndim == 1:
        x2 = logits.reshape(1, -1)
    elif logits.ndim == 2:
        x2 = logits
    else:
        x2 = np.moveaxis(logits, 1, -1).reshape(-1, logits.shape[1])
    t = target.reshape(-1)
    if t.dtype != np.int64:
        t = t.astype(np.int64)
    return contiguous(x2), contiguous(t)


def cross_entropy(logits, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """torch.nn.functional.cross_entropy with integer class targets.

    logits (C,), (N, C) or (N, C, d1, ...); target (), (N,) or (N, d1, ...) of an integer
    dtype. reduction "mean" divides by the summed weights of the non-ignored targets
    (nan if all are ignored), "sum", or "none" (target's shape). label_smoothing mixes in
    the uniform distribution exactly as torch (weighted, ignored rows excluded).
    Returns a 0-d array for mean/sum. A target outside [0, C) that is not ignore_index
    raises ValueError naming its value and position."""
    fn = "cross_entropy"
    fast = _softmax.cross_entropy_fast(logits, target, weight, ignore_index, reduction,
                                       label_smoothing, get_num_threads())
    if fast is not None and fast[1] < 0:  # the plain common call (see _softmax.pyx)
        return fast[0]
    target, ii, red, ls = _args.cross_entropy(fn, logits, target, weight, ignore_index,
                                              reduction, label_smoothing)
    x2, t = _rows(logits, target)
    w = None if weight is None else contiguous(weight)
    loss, bad = _softmax.cross_entropy_forward(x2, t, w, ii, ls, red, get_num_threads())
    if bad >= 0:
        raise _args.bad_target_error(fn, target, bad, x2.shape[1], ii)
    return loss.reshape(target.shape if red == 0 else ())


def cross_entropy_backward(grad_out, logits, target, weight=None, ignore_index=-100,
                           reduction="mean", label_smoothing=0.0):
    """Gradient of cross_entropy wrt logits, fused: (softmax - smoothed one-hot) * weights
    * grad_out in one pass over each row. grad_out is a scalar (float or 0-d array) for
    mean/sum and an array of target's shape for "none". Ignored rows get 0 (nan if their
    logits are not finite, as PyTorch)."""
    fn = "cross_entropy_backward"
    fast = _softmax.cross_entropy_backward_fast(grad_out, logits, target, weight, ignore_index,
                                                reduction, label_smoothing, get_num_threads())
    if fast is not None and fast[1] < 0:
        return fast[0]
    target, ii, red, ls = _args.cross_entropy(fn, logits, target, weight, ignore_index,
                                              reduction, label_smoothing)
    g = _args.grad_out_for(fn, grad_out, target, red, logits.dtype)
    x2, t = _rows(logits, target)
    w = None if weight is None else contiguous(weight)
    garr, gscalar = (contiguous(g).reshape(-1), 0.0) if red == 0 else (None, g)
    grad, bad = _softmax.cross_entropy_backward(x2, t, w, ii, ls, red, garr, gscalar,
                                                get_num_threads())
    if bad >= 0:
        raise _args.bad_target_error(fn, target, bad, x2.shape[1], ii)
    if logits.ndim <= 2:
        return grad.reshape(logits.shape)
    k_shape = (logits.shape[0],) + logits.shape[2:] + (logits.shape[1],)
    return np.ascontiguousarray(np.moveaxis(grad.reshape(k_shape), -1, 1))
