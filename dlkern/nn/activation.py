"""Activation modules, as torch.nn: ReLU, LeakyReLU, PReLU, RReLU, ELU, Sigmoid,
Tanh, Softplus. Each forward is one kernel call; backward is its *_backward.

`inplace` is accepted for torch compatibility and ignored: backward needs the input
(or output) that forward saw, so the output is always a new array.
"""
import numpy as np

from dlkern.nn.module import Module, _check_dtype
from dlkern.nn.parameter import Parameter

__all__ = ["ReLU", "LeakyReLU", "PReLU", "RReLU", "ELU", "Sigmoid", "Tanh", "Softplus"]


class ReLU(Module):
    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        self._save(x=x)
        return self.F.relu(x)

    def backward(self, grad_out, input_grad=True):
        saved = self._saved()["x"]
        if not input_grad:  # no parameters: nothing to compute
            return None
        return self.F.relu_backward(grad_out, saved)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x):
        self._save(x=x)
        return self.F.leaky_relu(x, self.negative_slope)

    def backward(self, grad_out, input_grad=True):
        saved = self._saved()["x"]
        if not input_grad:  # no parameters: nothing to compute
            return None
        return self.F.leaky_relu_backward(grad_out, saved, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class PReLU(Module):
    """Learnable negative slope: weight (num_parameters,) filled with init (0.25),
    one shared slope (num_parameters=1) or one per channel (dim 1 of the input)."""

    def __init__(self, num_parameters=1, init=0.25, dtype=np.float32):
        super().__init__()
        dtype = _check_dtype("PReLU", dtype)
        self.num_parameters = num_parameters
        self.weight = Parameter(np.full(num_parameters, init, dtype=dtype))

    def forward(self, x):
        self._save(x=x)
        return self.F.prelu(x, self.weight.data)

    def backward(self, grad_out, input_grad=True):
        x = self._saved()["x"]
        if not (input_grad or self.weight.requires_grad):
            return None
        gx, gw = self.F.prelu_backward(grad_out, x, self.weight.data)
        self.weight.accumulate_grad(gw)
        return gx if input_grad else None  # one kernel computes both

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class RReLU(Module):
    """Randomized leaky ReLU: in training the negative slope of each element is drawn
    from U(lower, upper) (from dlkern.random's default generator, or `rng` if given);
    in eval it is (lower + upper) / 2. backward reuses forward's draws."""

    def __init__(self, lower=1.0 / 8, upper=1.0 / 3, inplace=False, rng=None):
        super().__init__()
        self.lower, self.upper, self.inplace, self.rng = lower, upper, inplace, rng

    def forward(self, x):
        out, noise = self.F.rrelu(x, self.lower, self.upper, self.training, self.rng,
                                  return_noise=True)
        self._save(x=x, noise=noise, training=self.training)
        return out

    def backward(self, grad_out, input_grad=True):
        c = self._saved()
        if not input_grad:  # no parameters: nothing to compute
            return None
        return self.F.rrelu_backward(grad_out, c["x"], self.lower, self.upper,
                                     c["training"], c["noise"])

    def extra_repr(self):
        return f"lower={self.lower}, upper={self.upper}"


class ELU(Module):
    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, x):
        self._save(x=x)
        return self.F.elu(x, self.alpha)

    def backward(self, grad_out, input_grad=True):
        saved = self._saved()["x"]
        if not input_grad:  # no parameters: nothing to compute
            return None
        return self.F.elu_backward(grad_out, saved, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class Sigmoid(Module):
    """backward uses the saved output: sigma' = sigma (1 - sigma)."""

    def forward(self, x):
        out = self.F.sigmoid(x)
        self._save(out=out)
        return out

    def backward(self, grad_out, input_grad=True):
        saved = self._saved()["out"]
        if not input_grad:  # no parameters: nothing to compute
            return None
        return self.F.sigmoid_backward(grad_out, saved)


class Tanh(Module):
    """backward uses the saved output: tanh' = 1 - tanh^2."""

    def forward(self, x):
        out = self.F.tanh(x)
        self._save(out=out)
        return out

    def backward(self, grad_out, input_grad=True):
        saved = self._saved()["out"]
        if not input_grad:  # no parameters: nothing to compute
            return None
        return self.F.tanh_backward(grad_out, saved)


class Softplus(Module):
    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        self._save(x=x)
        return self.F.softplus(x, self.beta, self.threshold)

    def backward(self, grad_out, input_grad=True):
        saved = self._saved()["x"]
        if not input_grad:  # no parameters: nothing to compute
            return None
        return self.F.softplus_backward(grad_out, saved, self.beta,
                                        self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"
