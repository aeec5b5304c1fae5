"""Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_.

Both act in place on the .grad of the given Parameters (those with grad None are
ignored) and are called between backward() and optimizer.step().
"""
import math

import numpy as np

from dlkern import _checks
from dlkern.nn.parameter import Parameter


def _grads(fn, parameters):
    if isinstance(parameters, Parameter):
        parameters = [parameters]
    grads = []
    for i, p in enumerate(parameters):
        if not isinstance(p, Parameter):
            raise TypeError(f"{fn}: parameters must be Parameters, item {i} is a "
                            f"{type(p).__name__}")
        if p.grad is not None:
            grads.append(p.grad)
    return grads


def _vector_norm(x, p):
    """The p-norm of x's entries, accumulated in float64 (torch's vector_norm values)."""
    x = np.abs(np.asarray(x, dtype=np.float64).ravel())
    if x.size == 0:
        return 0.0
    if p == math.inf:
        return float(x.max())
    if p == -math.inf:
        return float(x.min())
    if p == 0:
        return float(np.count_nonzero(x))
    if p == 1:
        return float(x.sum())
    if p == 2:
        return float(math.sqrt(np.dot(x, x)))
    return float(np.sum(x ** p) ** (1.0 / p))


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients so their joint norm is at most max_norm; return that norm
    (computed before clipping) as a float.

    The norm is taken over all gradients together, as if concatenated into one vector
    (norm_type may be inf for the largest absolute entry). Gradients are multiplied by
    min(1, max_norm / (total_norm + 1e-6)) as torch does. A non-finite norm raises
    RuntimeError when error_if_nonfinite, else the gradients become non-finite too.
    """
    fn = "clip_grad_norm_"
    max_norm = _checks.real(fn, "max_norm", max_norm)
    if isinstance(norm_type, str):  # torch accepts "inf"
        norm_type = float(norm_type)
    norm_type = _checks.real(fn, "norm_type", norm_type)
    grads = _grads(fn, parameters)
    if not grads:
        return 0.0
    total = _vector_norm([_vector_norm(g, norm_type) for g in grads], norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"{fn}: the total norm of order {norm_type} of the gradients is "
                           f"{total}, so they cannot be clipped (error_if_nonfinite=True)")
    coef = min(max_norm / (total + 1e-6), 1.0)
    with np.errstate(invalid="ignore"):  # inf * 0 -> nan, as torch leaves it
        for g in grads:
            g *= g.dtype.type(coef)
    return total


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient entry into [-clip_value, clip_value] in place."""
    fn = "clip_grad_value_"
    clip_value = _checks.real(fn, "clip_value", clip_value)
    for g in _grads(fn, parameters):
        np.clip(g, -clip_value, clip_value, out=g)


__all__ = ["clip_grad_norm_", "clip_grad_value_"]
