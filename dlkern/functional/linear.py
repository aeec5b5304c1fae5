"""linear (fully connected layer): C over dlkern's own GEMM (src/linear.c). Twin of
dlkern.reference.linear."""
from dlkern import _linear
from dlkern._args.linear import parse_backward, parse_forward
from dlkern._threads import get_num_threads

__all__ = ["linear", "linear_backward"]


def linear(x, weight, bias=None):
    """x (*, in_features) @ weight.T + bias -> (*, out_features), as
    torch.nn.functional.linear; weight is (out_features, in_features)."""
    x, weight, bias = parse_forward("linear", x, weight, bias)
    return _linear.forward(x, weight, bias, get_num_threads())


def linear_backward(grad_out, x, weight):
    """Gradients (grad_x, grad_weight, grad_bias) of linear at (x, weight) for
    grad_out (*, out_features)."""
    grad_out, x, weight = parse_backward("linear_backward", grad_out, x, weight)
    return _linear.backward(grad_out, x, weight, get_num_threads())
