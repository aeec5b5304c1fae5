"""Argument parsing for the softmax family, shared by dlkern.functional and dlkern.reference.

`dim` out of range raises IndexError, as torch does ("Dimension out of range").
"""
import math
import numbers

import numpy as np

from dlkern import _checks

REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


def normalize_dim(fn, dim, ndim):
    """dim as an index in [0, max(ndim, 1)); IndexError when out of range (torch's rule:
    a 0-d array accepts dim in [-1, 0])."""
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{fn}: dim must be an int, got {dim!r}")
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{fn}: dim {dim} is out of range for a {ndim}-D array "
                         f"(expected in [{-n}, {n - 1}])")
    return int(dim) % n


def split_shape(shape, dim):
    """(outer, D, inner) view of shape around axis dim (a 0-d array is (1, 1, 1))."""
    if not shape:
        return 1, 1, 1
    return math.prod(shape[:dim]), shape[dim], math.prod(shape[dim + 1:])


def softmax(fn, x, dim):
    """Checks x and dim; returns (dim, outer, D, inner)."""
    _checks.float_array(fn, "x", x)
    d = normalize_dim(fn, dim, x.ndim)
    return (d,) + split_shape(x.shape, d)


def softmax_backward(fn, grad_out, output, dim):
    """Checks grad_out and output (the forward output); returns (dim, outer, D, inner)."""
    _checks.float_array(fn, "grad_out", grad_out)
    _checks.float_array(fn, "output", output)
    if output.dtype != grad_out.dtype:
        raise TypeError(f"{fn}: output has dtype {output.dtype} but grad_out has dtype "
                        f"{grad_out.dtype}; they must match")
    if output.shape != grad_out.shape:
        raise ValueError(f"{fn}: output has shape {output.shape} but grad_out has shape "
                         f"{grad_out.shape}; they must match")
    d = normalize_dim(fn, dim, grad_out.ndim)
    return (d,) + split_shape(grad_out.shape, d)


def cross_entropy(fn, logits, target, weight, ignore_index, reduction, label_smoothing):
    """Checks every argument of cross_entropy; returns (target as an integer ndarray,
    ignore_index as int, reduction code, label_smoothing as float). Target values are
    checked by the kernels (C) or check_target_values (reference)."""
    _checks.float_array(fn, "logits", logits)
    if logits.ndim == 0:
        raise ValueError(f"{fn}: logits must be (C,), (N, C) or (N, C, d1, ...), got a 0-D array")
    if isinstance(target, np.integer):
        target = np.asarray(target)
    if not isinstance(target, np.ndarray):
        raise TypeError(f"{fn}: target must be an integer NumPy array of class indices, "
                        f"got {type(target).__name__}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"{fn}: target must be an integer array of class indices, got dtype "
                        f"{target.dtype} (probability targets are not supported)")
    expected = () if logits.ndim == 1 else (logits.shape[0],) + logits.shape[2:]
    C = logits.shape[0] if logits.ndim == 1 else logits.shape[1]
    if target.shape != expected:
        raise ValueError(f"{fn}: target must have shape {expected} for logits of shape "
                         f"{logits.shape}, got {target.shape}")
    if weight is not None:
        _checks.float_array(fn, "weight", weight)
        if weight.dtype != logits.dtype:
            raise TypeError(f"{fn}: weight has dtype {weight.dtype} but logits has dtype "
                            f"{logits.dtype}; they must match")
        if weight.shape != (C,):
            raise ValueError(f"{fn}: weight must have shape ({C},) (one per class), got "
                             f"{weight.shape}")
    ignore_index = _checks.integer(fn, "ignore_index", ignore_index)
    if not -2**63 <= ignore_index < 2**63:
        raise ValueError(f"{fn}: ignore_index must fit in int64, got {ignore_index}")
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    label_smoothing = _checks.real(fn, "label_smoothing", label_smoothing)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{fn}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if target.dtype == np.uint64 and target.size and int(target.max()) > np.iinfo(np.int64).max:
        # would wrap when cast to int64: report it here, before the cast
        check_target_values(fn, target, C, ignore_index)
    return target, ignore_index, REDUCTIONS[reduction], label_smoothing


def bad_target_error(fn, target, flat_index, num_classes, ignore_index):
    """The ValueError for the out-of-range target at flat_index (its value and position)."""
    pos = tuple(int(i) for i in np.unravel_index(flat_index, target.shape)) if target.ndim else ()
    value = int(target[pos])
    return ValueError(f"{fn}: target value {value} at position {pos} is out of range: "
                      f"expected 0 <= target < {num_classes} (the number of classes) or "
                      f"target == ignore_index ({ignore_index})")


def check_target_values(fn, target, num_classes, ignore_index):
    """ValueError naming the first target outside [0, C) that is not ignore_index."""
    t = target.reshape(-1)
    bad = ((t < 0) | (t >= num_classes)) & (t != ignore_index)
    if bad.any():
        raise bad_target_error(fn, target, int(np.argmax(bad)), num_classes, ignore_index)


def grad_out_for(fn, grad_out, target, reduction, dtype):
    """grad_out of cross_entropy_backward: a real scalar (Python number or 0-d float array)
    for mean/sum, returned as float; for 'none' an array of target's shape and dtype."""
    if reduction == 0:
        _checks.float_array(fn, "grad_out", grad_out)
        if grad_out.dtype != dtype:
            raise TypeError(f"{fn}: grad_out has dtype {grad_out.dtype} but logits has dtype "
                            f"{dtype}; they must match")
        if grad_out.shape != target.shape:
            raise ValueError(f"{fn}: grad_out must have the target's shape {target.shape} "
                             f"for reduction='none', got {grad_out.shape}")
        return grad_out
    if isinstance(grad_out, np.ndarray):
        if grad_out.dtype not in _checks.FLOAT_DTYPES or grad_out.ndim != 0:
            raise ValueError(f"{fn}: grad_out must be a scalar (0-d float array or float) for "
                             f"a reduced loss, got dtype {grad_out.dtype} shape {grad_out.shape}")
        return float(grad_out)
    if isinstance(grad_out, (bool, np.bool_)) or not isinstance(grad_out, numbers.Real):
        raise TypeError(f"{fn}: grad_out must be a real number for a reduced loss, got "
                        f"{grad_out!r}")
    return float(grad_out)
