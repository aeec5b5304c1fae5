"""Temporal convolutional networks (Bai, Kolter and Koltun 2018, "An Empirical
Evaluation of Generic Convolutional and Recurrent Networks for Sequence Modeling").

CausalConv1d: y[t] depends on x[<= t] only (left zero padding of dilation*(k-1)).
TemporalBlock and TCN follow the authors' reference code (locuslab/TCN,
TemporalBlock / TemporalConvNet), with two differences, both deliberate:
- no weight normalization: conv1/conv2 are plain causal convolutions;
- their init_weights() draws conv1/conv2 weights from N(0, 0.01), but in their code
  weight_norm recomputes `weight` from weight_g/weight_v before every forward, so that
  draw never takes effect and the effective initialization is PyTorch's Conv1d
  default. We use that default (kaiming_uniform_(a=sqrt(5)) on weights, U(+-1/sqrt
  (fan_in)) on biases) for conv1/conv2, and N(0, 0.01) for the 1x1 downsample
  convolution, which they do not weight-normalize.
"""
import numpy as np

from dlkern.nn import _default_init as init
from dlkern.nn import init as nn_init
from dlkern.nn.activation import ReLU
from dlkern.nn.dropout import Dropout
from dlkern.nn.module import Module, Sequential, _check_dtype

__all__ = ["CausalConv1d", "TemporalBlock", "TCN"]


class CausalConv1d(Module):
    """Causal dilated 1-D convolution over (N, C, L) input; output (N, out, L).

    Equals torch.nn.Conv1d(in, out, k, padding=dilation*(k-1), dilation=dilation)
    with the last dilation*(k-1) outputs chopped off. weight: (out_channels,
    in_channels, kernel_size); bias: (out_channels,); torch's Conv1d default init.
    """

    def __init__(self, in_channels, out_channels, kernel_size, dilation=1, bias=True,
                 dtype=np.float32):
        super().__init__()
        dtype = _check_dtype("CausalConv1d", dtype)
        if kernel_size < 1 or dilation < 1:
            raise ValueError(f"CausalConv1d: kernel_size and dilation must be >= 1, got "
                             f"{kernel_size} and {dilation}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.dilation = kernel_size, dilation
        w, b = init.weight_and_bias((out_channels, in_channels, kernel_size), dtype, bias)
        self.weight = w
        self.register_parameter("bias", b)
        self.reset_parameters()

    def reset_parameters(self):
        """torch's Conv1d default: kaiming_uniform_(a=sqrt(5)), U(+-1/sqrt(fan_in)) bias."""
        init.reset_weight_bias(self.weight, self.bias)

    def forward(self, x):
        b = self.bias.data if self.bias is not None else None
        out = self.F.causal_conv1d(x, self.weight.data, b, self.dilation)
        self._save(x=x)
        return out

    def backward(self, grad_out, input_grad=True):
        """Only the gradients needed (causal_conv1d_backward's output_mask): none for
        frozen parameters, no input gradient with input_grad=False."""
        x = self._saved()["x"]
        weight, bias = self.weight, self.bias
        mask = (bool(input_grad), weight.requires_grad,
                bias is not None and bias.requires_grad)
        gx, gw, gb = self.F.causal_conv1d_backward(grad_out, x, weight.data, self.dilation,
                                                   output_mask=mask)
        if gw is not None:
            weight.accumulate_grad(gw)
        if gb is not None:
            bias.accumulate_grad(gb)
        return gx

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"dilation={self.dilation}, bias={self.bias is not None}")


class TemporalBlock(Module):
    """conv1 -> relu1 -> dropout1 -> conv2 -> relu2 -> dropout2, plus the input (or a
    1x1 `downsample` conv of it when n_inputs != n_outputs), then a final relu.

    Both convs are causal with kernel_size and dilation; state_dict keys conv1.weight,
    conv1.bias, conv2.*, downsample.* (see the module docstring about weight norm).
    """

    def __init__(self, n_inputs, n_outputs, kernel_size, dilation, dropout=0.2,
                 dtype=np.float32):
        super().__init__()
        self.conv1 = CausalConv1d(n_inputs, n_outputs, kernel_size, dilation, dtype=dtype)
        self.relu1 = ReLU()
        self.dropout1 = Dropout(dropout)
        self.conv2 = CausalConv1d(n_outputs, n_outputs, kernel_size, dilation, dtype=dtype)
        self.relu2 = ReLU()
        self.dropout2 = Dropout(dropout)
        if n_inputs != n_outputs:
            self.downsample = CausalConv1d(n_inputs, n_outputs, 1, dtype=dtype)
            nn_init.normal_(self.downsample.weight, 0.0, 0.01)
        else:
            self.downsample = None
        self.relu = ReLU()

    def forward(self, x):
        h = self.dropout1(self.relu1(self.conv1(x)))
        h = self.dropout2(self.relu2(self.conv2(h)))
        res = x if self.downsample is None else self.downsample(x)
        self._save(done=True)
        return self.relu(self._add_residual(h, res))

    def backward(self, grad_out, input_grad=True):
        """conv1 and downsample see the block's input: with input_grad=False they
        compute no input gradient and the block returns None."""
        self._saved()
        g = self.relu.backward(grad_out)
        g_res = g if self.downsample is None else self.downsample.backward(g, input_grad)
        g_main = self.conv2.backward(self.relu2.backward(self.dropout2.backward(g)))
        g_main = self.conv1.backward(self.relu1.backward(self.dropout1.backward(g_main)),
                                     input_grad)
        return self._add_residual(g_main, g_res) if input_grad else None

    @staticmethod
    def _add_residual(main, res):
        """main + res, written into main when main is an array of its own: forward's
        main is relu2's output (ReLU caches its input, Dropout only its mask) and
        backward's is conv1's input gradient, new arrays that nothing else holds, so
        reusing one saves an allocation and a pass over fresh pages (~60 us of a
        ~100 us add at the adding task's (64, 24, 200) float32). Anything else (a view,
        or res itself) gets a new array."""
        if (main is not res and main.flags.owndata and main.flags.writeable
                and main.shape == res.shape and main.dtype == res.dtype):
            return np.add(main, res, out=main)
        return main + res


class TCN(Module):
    """Stack of TemporalBlocks (Bai et al.'s TemporalConvNet): level i maps
    num_channels[i-1] (num_inputs for i = 0) to num_channels[i] channels with dilation
    2**i. Input (N, num_inputs, L), output (N, num_channels[-1], L). Keys
    network.<i>.conv1.weight, ... Receptive field: 1 + 2*(kernel_size-1)*(2**levels-1).
    """

    def __init__(self, num_inputs, num_channels, kernel_size=2, dropout=0.2,
                 dtype=np.float32):
        super().__init__()
        num_channels = list(num_channels)
        if not num_channels:
            raise ValueError("TCN: num_channels must list at least one level")
        blocks = []
        for i, out_ch in enumerate(num_channels):
            in_ch = num_inputs if i == 0 else num_channels[i - 1]
            blocks.append(TemporalBlock(in_ch, out_ch, kernel_size, 2 ** i, dropout,
                                        dtype=dtype))
        self.network = Sequential(*blocks)

    def forward(self, x):
        out = self.network(x)
        self._save(done=True)
        return out

    def backward(self, grad_out, input_grad=True):
        self._saved()
        return self.network.backward(grad_out, input_grad)
