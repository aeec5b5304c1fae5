"""MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, as their torch.nn namesakes."""
from dlkern.nn.module import Module

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]


class MaxPool2d(Module):
    """Max pooling over NCHW input. forward keeps the argmax indices, so backward
    scatters through them instead of searching the windows again. With
    return_indices=True forward returns (output, indices) like torch; backward still
    takes the gradient of the output only."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices=False, ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x):
        out, idx = self.F.max_pool2d(x, self.kernel_size, self.stride, self.padding,
                                     self.dilation, self.ceil_mode, return_indices=True)
        self._save(x=x, indices=idx)
        return (out, idx) if self.return_indices else out

    def backward(self, grad_out, input_grad=True):
        c = self._saved()
        if not input_grad:  # no parameters: nothing to compute
            return None
        return self.F.max_pool2d_backward(grad_out, c["x"], self.kernel_size, self.stride,
                                          self.padding, self.dilation, self.ceil_mode,
                                          indices=c["indices"])

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
                f", dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Average pooling over NCHW input (torch's arguments and defaults)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def _args(self):
        return (self.kernel_size, self.stride, self.padding, self.ceil_mode,
                self.count_include_pad, self.divisor_override)

    def forward(self, x):
        out = self.F.avg_pool2d(x, *self._args())
        self._save(x=x)
        return out

    def backward(self, grad_out, input_grad=True):
        saved = self._saved()["x"]
        if not input_grad:  # no parameters: nothing to compute
            return None
        return self.F.avg_pool2d_backward(grad_out, saved, *self._args())

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (int, pair; None keeps that axis)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        out = self.F.adaptive_avg_pool2d(x, self.output_size)
        self._save(x=x)
        return out

    def backward(self, grad_out, input_grad=True):
        saved = self._saved()["x"]
        if not input_grad:  # no parameters: nothing to compute
            return None
        return self.F.adaptive_avg_pool2d_backward(grad_out, saved,
                                                   self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"
