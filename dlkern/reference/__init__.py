"""Pure-NumPy twins of every dlkern.functional call: same names, same signatures,
same errors. Vectorized as a competent NumPy user would write them, so comparing
the C kernels against them is honest.
"""
from dlkern.reference.causal_conv1d import causal_conv1d, causal_conv1d_backward
from dlkern.reference.linear import linear, linear_backward
