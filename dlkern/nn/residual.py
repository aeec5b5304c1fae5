"""ResidualBlock: the ResNet basic block (He et al. 2016), as torchvision's BasicBlock.

    out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))

conv1: 3x3, stride `stride`, padding 1; conv2: 3x3, stride 1, padding 1; both without
bias (batch norm follows). shortcut: identity (an empty Sequential) when stride == 1
and in_channels == out_channels, else a projection Sequential(1x1 conv with stride,
no bias; BatchNorm2d). state_dict keys: conv1.weight, bn1.*, conv2.weight, bn2.*,
shortcut.0.weight, shortcut.1.* (projection only).
"""
import numpy as np

from dlkern.nn.activation import ReLU
from dlkern.nn.batchnorm import BatchNorm2d
from dlkern.nn.conv import Conv2d
from dlkern.nn.module import Module, Sequential

__all__ = ["ResidualBlock"]


class ResidualBlock(Module):
    def __init__(self, in_channels, out_channels, stride=1, dtype=np.float32):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride, 1, bias=False, dtype=dtype)
        self.bn1 = BatchNorm2d(out_channels, dtype=dtype)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(out_channels, out_channels, 3, 1, 1, bias=False, dtype=dtype)
        self.bn2 = BatchNorm2d(out_channels, dtype=dtype)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = Sequential(
                Conv2d(in_channels, out_channels, 1, stride, bias=False, dtype=dtype),
                BatchNorm2d(out_channels, dtype=dtype))
        else:
            self.shortcut = Sequential()
        self.relu2 = ReLU()  # its own instance: each ReLU caches its own input

    def forward(self, x):
        h = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        out = self.relu2(h + self.shortcut(x))
        self._save(done=True)
        return out

    def backward(self, grad_out, input_grad=True):
        """conv1 and the shortcut see the block's input: with input_grad=False they
        compute no input gradient and the block returns None."""
        self._saved()
        g = self.relu2.backward(grad_out)
        g_short = self.shortcut.backward(g, input_grad)
        g_main = self.conv1.backward(self.bn1.backward(self.relu1.backward(
            self.conv2.backward(self.bn2.backward(g)))), input_grad)
        return g_main + g_short if input_grad else None

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"
