"""Argument parsing for linear / linear_backward (C and reference alike).

As torch.nn.functional.linear: x (*, in_features), weight (out_features, in_features),
bias (out_features,), output and grad_out (*, out_features)."""
from dlkern import _checks


def _x_and_weight(fn, x, weight):
    x = _checks.float_array(fn, "x", x)
    weight = _checks.float_array(fn, "weight", weight)
    _checks.same_dtype(fn, "x", x, weight=weight)
    if x.ndim < 1:
        raise ValueError(f"{fn}: x must have at least 1 dimension (*, in_features), "
                         f"got shape {x.shape}")
    _checks.ndim(fn, "weight", weight, 2, "out_features, in_features")
    if weight.shape[1] != x.shape[-1]:
        raise ValueError(f"{fn}: weight has {weight.shape[1]} in_features but x has "
                         f"{x.shape[-1]} features in its last dimension (shape {x.shape})")
    return x, weight


def parse_forward(fn, x, weight, bias):
    """(x, weight, bias) validated; arrays are not copied."""
    x, weight = _x_and_weight(fn, x, weight)
    bias = _checks.optional_float_array(fn, "bias", bias)
    _checks.same_dtype(fn, "x", x, bias=bias)
    if bias is not None:
        _checks.shape_equals(fn, "bias", bias, (weight.shape[0],), "out_features of weight")
    return x, weight, bias


def parse_backward(fn, grad_out, x, weight):
    """(grad_out, x, weight) validated; arrays are not copied."""
    x, weight = _x_and_weight(fn, x, weight)
    grad_out = _checks.float_array(fn, "grad_out", grad_out)
    _checks.same_dtype(fn, "x", x, grad_out=grad_out)
    _checks.shape_equals(fn, "grad_out", grad_out, x.shape[:-1] + (weight.shape[0],),
                         "the forward output: x.shape[:-1] + (out_features,)")
    return grad_out, x, weight
