"""Dilated causal conv1d (the TCN building block): C kernels over dlkern's own GEMM.

Twin of dlkern.reference.causal_conv1d (same signatures, same errors)."""
from dlkern import _causal_conv1d
from dlkern._args.causal_conv1d import parse_backward, parse_forward, parse_output_mask
from dlkern._threads import get_num_threads

__all__ = ["causal_conv1d", "causal_conv1d_backward"]


def causal_conv1d(x, weight, bias=None, dilation=1):
    """Causal dilated 1-D convolution: x (N, C_in, L), weight (C_out, C_in, k),
    bias (C_out,) or None -> (N, C_out, L). Output at time t depends on x at times
    t, t - dilation, ..., t - (k-1)*dilation only (zero before time 0), i.e.
    torch.nn.functional.conv1d(F.pad(x, ((k-1)*dilation, 0)), weight, bias,
    dilation=dilation)."""
    x, weight, bias, dilation = parse_forward("causal_conv1d", x, weight, bias, dilation)
    return _causal_conv1d.forward(x, weight, bias, dilation, get_num_threads())


def causal_conv1d_backward(grad_out, x, weight, dilation=1, *,
                           output_mask=(True, True, True)):
    """Gradients (grad_x, grad_weight, grad_bias) of causal_conv1d at (x, weight) for
    grad_out (N, C_out, L). grad_bias is returned whether or not a bias was used.

    output_mask: three bools, as torch's convolution_backward: a False entry is not
    computed (the kernel skips that work) and comes back as None."""
    fn = "causal_conv1d_backward"
    grad_out, x, weight, dilation = parse_backward(fn, grad_out, x, weight, dilation)
    output_mask = parse_output_mask(fn, output_mask)
    return _causal_conv1d.backward(grad_out, x, weight, dilation, get_num_threads(),
                                   output_mask)
