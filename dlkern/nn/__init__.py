"""dlkern.nn: trainable modules over dlkern.functional (or dlkern.reference, see
dlkern.nn.backend), shaped like torch.nn: same class names, constructor arguments,
parameter names (state_dict keys) and default initialization.
"""
from dlkern.nn.activation import ELU, PReLU, ReLU, RReLU, LeakyReLU, Sigmoid, Softplus, Tanh
from dlkern.nn.backend import get_backend, use_backend
from dlkern.nn.batchnorm import BatchNorm1d, BatchNorm2d
from dlkern.nn.conv import Conv2d
from dlkern.nn.dropout import Dropout
from dlkern.nn.flatten import Flatten
from dlkern.nn.linear import Linear
from dlkern.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from dlkern.nn.module import Module, Sequential
from dlkern.nn.parameter import Parameter
from dlkern.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from dlkern.nn.residual import ResidualBlock
from dlkern.nn.tcn import TCN, CausalConv1d, TemporalBlock

__all__ = [
    "Module", "Sequential", "Parameter", "use_backend", "get_backend",
    "Conv2d", "Linear", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
    "BatchNorm1d", "BatchNorm2d",
    "ReLU", "LeakyReLU", "PReLU", "RReLU", "ELU", "Sigmoid", "Tanh", "Softplus",
    "Dropout", "Flatten", "ResidualBlock", "CausalConv1d", "TemporalBlock", "TCN",
    "CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss",
]
