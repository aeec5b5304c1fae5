"""linear in NumPy: the reference twin of dlkern.functional.linear (matmul is BLAS GEMM)."""
import numpy as np

from dlkern._args.linear import parse_backward, parse_forward

__all__ = ["linear", "linear_backward"]


def linear(x, weight, bias=None):
    """x @ weight.T + bias over the last dimension of x, as torch.nn.functional.linear."""
    x, weight, bias = parse_forward("linear", x, weight, bias)
    out = x @ weight.T
    if bias is not None:
        out += bias
    return out


def linear_backward(grad_out, x, weight):
    """(grad_x, grad_weight, grad_bias) of linear for the given grad_out."""
    grad_out, x, weight = parse_backward("linear_backward", grad_out, x, weight)
    rows = int(np.prod(x.shape[:-1]))  # not -1: reshape(-1, 0) is ambiguous when empty
    g2 = grad_out.reshape(rows, weight.shape[0])
    x2 = x.reshape(rows, weight.shape[1])
    grad_x = grad_out @ weight
    grad_weight = g2.T @ x2
    grad_bias = g2.sum(axis=0)
    return grad_x, grad_weight, grad_bias
