"""Linear, as torch.nn.Linear: forward is dlkern's linear, backward linear_backward."""
import numpy as np

from dlkern.nn import _default_init as init
from dlkern.nn.module import Module, _check_dtype

__all__ = ["Linear"]


class Linear(Module):
    """y = x @ weight.T + bias over input (*, in_features), any leading dimensions.

    weight: (out_features, in_features); bias: (out_features,). Initialization as
    torch: weight and bias ~ U(-1/sqrt(in_features), 1/sqrt(in_features)).
    When weight and bias are both frozen, backward computes only the
    input gradient, as grad_out @ weight = linear(grad_out, weight.T). With
    input_grad=False it returns None (linear_backward computes the input gradient
    with the others; a small GEMM next to the first layer's).
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        dtype = _check_dtype("Linear", dtype)
        self.in_features, self.out_features = in_features, out_features
        w, b = init.weight_and_bias((out_features, in_features), dtype, bias)
        self.weight = w
        self.register_parameter("bias", b)
        self.reset_parameters()

    def reset_parameters(self):
        """torch's default: kaiming_uniform_(a=sqrt(5)) weight, U(+-1/sqrt(fan_in)) bias."""
        init.reset_weight_bias(self.weight, self.bias)

    def forward(self, x):
        b = self.bias.data if self.bias is not None else None
        out = self.F.linear(x, self.weight.data, b)
        self._save(x=x)
        return out

    def backward(self, grad_out, input_grad=True):
        x = self._saved()["x"]
        frozen = not self.weight.requires_grad and (self.bias is None or
                                                    not self.bias.requires_grad)
        if frozen:
            return self.F.linear(grad_out, self.weight.data.T) if input_grad else None
        gx, gw, gb = self.F.linear_backward(grad_out, x, self.weight.data)
        self.weight.accumulate_grad(gw)
        if self.bias is not None:
            self.bias.accumulate_grad(gb)
        return gx if input_grad else None

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
