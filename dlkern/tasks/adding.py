"""The adding problem (Bai, Kolter and Koltun 2018, after Hochreiter & Schmidhuber):
a length-T sequence of two channels, random values in [0, 1] and a marker channel
with exactly two ones; the target is the sum of the two marked values. Predicting
the mean (1.0) always gives an MSE of about 1/6 = 0.167, the bar to beat.

As in the paper's code, the first marker falls in the first half of the sequence
and the second in the second half, so the model must remember across ~T/2 steps.
"""
import numpy as np

from dlkern import nn


def make_adding_data(n, seq_len, seed=0, dtype=np.float32):
    """x (n, 2, seq_len) and y (n, 1)."""
    if seq_len < 2:
        raise ValueError(f"make_adding_data: seq_len must be >= 2, got {seq_len}")
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, size=(n, seq_len))
    half = seq_len // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, seq_len, size=n)
    markers = np.zeros((n, seq_len))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=1).astype(dtype)
    y = (values[rows, first] + values[rows, second])[:, None].astype(dtype)
    return x, y


class AddingTCN(nn.Module):
    """TCN over the sequence, then a linear read-out of the last time step."""

    def __init__(self, channels=24, levels=4, kernel_size=8, dropout=0.0, dtype=np.float32):
        super().__init__()
        self.tcn = nn.TCN(2, [channels] * levels, kernel_size=kernel_size, dropout=dropout,
                          dtype=dtype)
        self.linear = nn.Linear(channels, 1, dtype=dtype)

    def forward(self, x):
        h = self.tcn(x)
        self._seq_shape = h.shape
        return self.linear(np.ascontiguousarray(h[:, :, -1]))

    def backward(self, grad_out, input_grad=True):
        grad_last = self.linear.backward(grad_out)
        grad_h = np.zeros(self._seq_shape, dtype=grad_last.dtype)
        grad_h[:, :, -1] = grad_last
        return self.tcn.backward(grad_h, input_grad)


def receptive_field(levels, kernel_size):
    """Time steps a TCN of `levels` temporal blocks (two convs each, dilation 2**i) sees."""
    return 1 + 2 * (kernel_size - 1) * (2 ** levels - 1)
