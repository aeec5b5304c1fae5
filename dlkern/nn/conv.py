"""Conv2d, as torch.nn.Conv2d: forward is dlkern's conv2d, backward conv2d_backward."""
import numpy as np

from dlkern.nn import _default_init as init
from dlkern.nn.module import Module, _check_dtype

__all__ = ["Conv2d"]


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class Conv2d(Module):
    """2-D convolution over NCHW input.

    Same constructor as torch.nn.Conv2d (padding may be an int, a pair, "valid" or
    "same"; only padding_mode="zeros"), plus dtype (float32 default, or float64).
    weight: (out_channels, in_channels // groups, kH, kW); bias: (out_channels,).
    Initialization as torch: kaiming_uniform_(a=sqrt(5)) on weight, so both weight
    and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_channels/groups*kH*kW.

    backward computes only the gradients that are needed (conv2d_backward's
    output_mask): none for frozen parameters (requires_grad=False, they get no
    .grad), and no input gradient with input_grad=False.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", dtype=np.float32):
        super().__init__()
        if padding_mode != "zeros":
            raise ValueError(f"Conv2d: only padding_mode='zeros' is supported, got "
                             f"{padding_mode!r}")
        if groups <= 0 or in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must be divisible by groups ({groups})")
        dtype = _check_dtype("Conv2d", dtype)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.padding_mode = padding_mode
        w, b = init.weight_and_bias((out_channels, in_channels // groups) + self.kernel_size,
                                    dtype, bias)
        self.weight = w
        self.register_parameter("bias", b)
        self.reset_parameters()

    def reset_parameters(self):
        """torch's default: kaiming_uniform_(a=sqrt(5)) weight, U(+-1/sqrt(fan_in)) bias."""
        init.reset_weight_bias(self.weight, self.bias)

    def forward(self, x):
        b = self.bias.data if self.bias is not None else None
        out = self.F.conv2d(x, self.weight.data, b, self.stride, self.padding,
                            self.dilation, self.groups)
        self._save(x=x)
        return out

    def backward(self, grad_out, input_grad=True):
        x = self._saved()["x"]
        weight, bias = self.weight, self.bias
        mask = (bool(input_grad), weight.requires_grad,
                bias is not None and bias.requires_grad)
        gx, gw, gb = self.F.conv2d_backward(grad_out, x, weight.data, self.stride,
                                            self.padding, self.dilation, self.groups,
                                            output_mask=mask)
        if gw is not None:
            weight.accumulate_grad(gw)
        if gb is not None:
            bias.accumulate_grad(gb)
        return gx

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
